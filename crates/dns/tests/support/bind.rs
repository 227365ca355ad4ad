//! A real BIND 9 `named` on a free loopback port, authoritative for two zones that accept
//! TSIG-signed updates of challenge records.
//!
//! - `example.test`: `ns1 A 127.0.0.1`, `* A 127.0.0.1` (every name resolves, for Pebble),
//!   and CNAME delegations of `_acme-challenge.alias` (to `alias.delegated.test`), of
//!   `_acme-challenge.chain` (through `hop.example.test` to `chain.delegated.test`) and of
//!   `_acme-challenge.long` (ten links, more than the solver follows).
//! - `delegated.test`: the zone delegated challenge names point into.
//!
//! Keys made with `tsig-keygen`: [`Bind::key`] (hmac-sha256) and [`Bind::sha512_key`] may
//! update TXT records at `_acme-challenge.example.test`, `_acme-challenge.www.example.test`
//! and anywhere in `delegated.test`; [`Bind::refused_key`] is known to the server but its
//! grant covers only `unrelated.example.test`, so the zone refuses it for challenge names.
//!
//! Ports: named binds with SO_REUSEPORT, so a second named started on a port another one
//! already uses (two tests that picked the same free port) does not fail but shares its
//! queries. So this process never hands out a port twice, and each instance serves a random
//! marker (`instance.example.test TXT`) that must come back, over UDP and TCP, before the
//! instance counts as started; when another server answers instead, another port is tried.
//!
//! Everything lives in a tempdir named can write (it keeps `.jnl` journals of dynamic
//! updates). named runs in the foreground (`-g`) as a child of the test and is killed on
//! drop. It runs as whoever runs the test (root in CI, without `-u`: nothing to drop to).

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long named may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports tried before giving up (another process may take a free port before named does).
const PORT_ATTEMPTS: usize = 5;
/// Ports this process has given to a named, so no two instances get the same one.
static PORTS_GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A TSIG key as `tsig-keygen` made it.
#[derive(Debug, Clone)]
pub struct Key {
    /// With the trailing dot: `ck.`.
    pub name: String,
    pub algorithm: String,
    /// Base64, as in the key file.
    pub secret: String,
    /// The `key { ... };` block, usable as `nsupdate -k FILE`.
    pub file: PathBuf,
}

/// One running named.
pub struct Bind {
    pub dir: tempfile::TempDir,
    /// Where named answers, UDP and TCP.
    pub addr: SocketAddr,
    pub key: Key,
    /// Granted the same names as `key`, with hmac-sha512.
    pub sha512_key: Key,
    pub refused_key: Key,
    child: Child,
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A BIND tool, from `PATH` or the sbin directories (not in every user's `PATH`).
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing: the DNS tests need a real BIND; install it with \
                 `apt-get install -y bind9 bind9-dnsutils`"
            )
        })
}

/// A port free for both UDP and TCP on 127.0.0.1 right now, and not given to another
/// named of this process before.
fn free_port() -> u16 {
    let mut given = PORTS_GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = tcp.local_addr().expect("address").port();
        if !given.contains(&port) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

/// 16 random bytes, hex.
fn random_marker() -> String {
    let mut bytes = [0_u8; 16];
    std::io::Read::read_exact(
        &mut fs::File::open("/dev/urandom").expect("urandom"),
        &mut bytes,
    )
    .expect("random bytes");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn keygen(dir: &Path, name: &str, algorithm: &str) -> Key {
    let output = Command::new(tool("tsig-keygen"))
        .args(["-a", algorithm, name])
        .output()
        .expect("run tsig-keygen");
    assert!(output.status.success(), "tsig-keygen: {output:?}");
    let text = String::from_utf8(output.stdout).expect("key text");
    let secret = text
        .split('"')
        .nth(3)
        .expect("secret \"...\" in the key block")
        .to_owned();
    let file = dir.join(format!("{}.key", name.trim_end_matches('.')));
    fs::write(&file, &text).expect("write key file");
    Key {
        name: name.to_owned(),
        algorithm: algorithm.to_owned(),
        secret,
        file,
    }
}

/// `{marker}` is the instance's own marker.
const EXAMPLE_ZONE: &str = "\
$TTL 60
@ IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60
@ IN NS ns1.example.test.
ns1 IN A 127.0.0.1
instance IN TXT \"{marker}\"
* IN A 127.0.0.1
_acme-challenge.alias IN CNAME alias.delegated.test.
_acme-challenge.chain IN CNAME hop.example.test.
hop IN CNAME chain.delegated.test.
_acme-challenge.long IN CNAME long1.example.test.
long1 IN CNAME long2.example.test.
long2 IN CNAME long3.example.test.
long3 IN CNAME long4.example.test.
long4 IN CNAME long5.example.test.
long5 IN CNAME long6.example.test.
long6 IN CNAME long7.example.test.
long7 IN CNAME long8.example.test.
long8 IN CNAME long9.example.test.
long9 IN CNAME long.delegated.test.
";

const DELEGATED_ZONE: &str = "\
$TTL 60
@ IN SOA ns1.delegated.test. hostmaster.delegated.test. 1 3600 600 86400 60
@ IN NS ns1.delegated.test.
ns1 IN A 127.0.0.1
";

impl Bind {
    /// Start named with the zones and keys above on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Start named; `extra_names` get an example.test TXT grant for [`Bind::key`] too.
    pub fn start_with(extra_names: &[&str]) -> Self {
        let named = tool("named");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = keygen(dir.path(), "ck.", "hmac-sha256");
        let sha512_key = keygen(dir.path(), "ck512.", "hmac-sha512");
        let refused_key = keygen(dir.path(), "other.", "hmac-sha256");
        let marker = random_marker();
        fs::write(
            dir.path().join("example.test.zone"),
            EXAMPLE_ZONE.replace("{marker}", &marker),
        )
        .expect("zone");
        fs::write(dir.path().join("delegated.test.zone"), DELEGATED_ZONE).expect("zone");
        let grants: String = [
            "_acme-challenge.example.test.",
            "_acme-challenge.www.example.test.",
        ]
        .iter()
        .chain(extra_names)
        .flat_map(|name| ["ck.", "ck512."].map(|key| format!("grant {key} name {name} TXT; ")))
        .collect();

        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let config = dir.path().join("named.conf");
            fs::write(
                &config,
                format!(
                    r#"options {{
    directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    pid-file none;
    session-keyfile none;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
include "{ck}";
include "{ck512}";
include "{other}";
zone "example.test" {{
    type primary;
    file "example.test.zone";
    update-policy {{ {grants}grant other. name unrelated.example.test. TXT; }};
}};
zone "delegated.test" {{
    type primary;
    file "delegated.test.zone";
    update-policy {{ grant ck. subdomain delegated.test. TXT; grant ck512. subdomain delegated.test. TXT; }};
}};
"#,
                    dir = dir.path().display(),
                    ck = key.file.display(),
                    ck512 = sha512_key.file.display(),
                    other = refused_key.file.display(),
                ),
            )
            .expect("named.conf");
            let log = dir.path().join("named.log");
            let mut child = Command::new(&named)
                .arg("-g")
                .arg("-4")
                .arg("-c")
                .arg(&config)
                .args(["-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::from(fs::File::create(&log).expect("log")))
                .spawn()
                .expect("start named");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if wait_until_answering(&mut child, addr, &marker, &log) {
                return Self {
                    dir,
                    addr,
                    key,
                    sha512_key,
                    refused_key,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("named found no free port in {PORT_ATTEMPTS} attempts:\n{last_log}");
    }

    /// named's output, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    /// `dig +short` at this named, without recursion.
    pub fn dig(&self, args: &[&str]) -> String {
        dig(self.addr, args)
    }

    /// The TXT values at `name`, as named has them now, sorted.
    pub fn txt(&self, name: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .dig(&[name, "TXT"])
            .lines()
            .inspect(|line| assert!(!line.starts_with(';'), "dig {name} TXT: {line}"))
            .map(|line| line.trim().trim_matches('"').to_owned())
            .filter(|line| !line.is_empty())
            .collect();
        values.sort();
        values
    }

    /// Every TXT record in both zones, by name (for "nothing left behind" checks).
    pub fn all_txt(&self) -> Vec<(String, Vec<String>)> {
        [
            "_acme-challenge.example.test.",
            "_acme-challenge.www.example.test.",
            "alias.delegated.test.",
            "chain.delegated.test.",
        ]
        .iter()
        .map(|name| ((*name).to_owned(), self.txt(name)))
        .filter(|(_, values)| !values.is_empty())
        .collect()
    }
}

/// `dig +short` at `server`, without recursion.
fn dig(server: SocketAddr, args: &[&str]) -> String {
    let output = Command::new(tool("dig"))
        .args(["+short", "+norecurse", "+time=1", "+tries=1"])
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Poll until this named answers with its marker over UDP and TCP (true), exits or another
/// server answers (false: try another port), or [`START_TIMEOUT`] passes (a panic with its
/// log).
fn wait_until_answering(child: &mut Child, addr: SocketAddr, marker: &str, log: &Path) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    let expected = format!("\"{marker}\"");
    while Instant::now() < deadline {
        if let Ok(Some(_exited)) = child.try_wait() {
            return false;
        }
        // dig prints its errors on stdout too; only an answer starts with a quote.
        let answers: Vec<String> = ["+notcp", "+tcp", "+notcp", "+notcp"]
            .iter()
            .map(|transport| dig(addr, &[transport, "instance.example.test", "TXT"]))
            .map(|output| output.trim().to_owned())
            .collect();
        if answers.iter().all(|answer| *answer == expected) {
            return true;
        }
        if answers
            .iter()
            .any(|answer| answer.starts_with('"') && *answer != expected)
        {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!(
        "named did not answer within {START_TIMEOUT:?}:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

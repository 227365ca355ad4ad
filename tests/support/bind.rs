//! DNS-01 end to end: a real BIND 9 `named` on a free loopback port, authoritative for two
//! zones that accept TSIG-signed updates of challenge records, and a real Pebble whose
//! validation reads that named (`-dnsserver`). The harness of the DNS crate's own tests
//! (`crates/dns/tests/support`), for the binary's tests.
//!
//! - `example.test`: `ns1 A 127.0.0.1`, `* A 127.0.0.1`, and the CNAME delegation of
//!   `_acme-challenge.alias` to `alias.delegated.test`.
//! - `delegated.test`: the zone the delegated challenge name points into.
//!
//! named answers recursive queries from loopback (`recursion yes`), as the resolver a CA
//! uses does: a query with RD set for `_acme-challenge.alias.example.test` then gets the CNAME
//! *and* the TXT at its target in `delegated.test`, which an authoritative-only answer would
//! leave out (Pebble follows no CNAME itself). Names outside the two zones go nowhere: the
//! tests ask only about these.
//!
//! Keys made with `tsig-keygen`: [`Bind::key`] (`ck`, hmac-sha256) may update TXT records at
//! `_acme-challenge.example.test`, `_acme-challenge.www.example.test` and anywhere in
//! `delegated.test`; [`Bind::refused_key`] (`other`) is known to the server but its grant
//! covers only `unrelated.example.test`, so the zone refuses it for challenge names.
//!
//! Ports: named binds with SO_REUSEPORT, so a second named started on a port another one
//! already uses does not fail but shares its queries. So this process never hands out a port
//! twice, and each instance serves a random marker (`instance.example.test TXT`) that must
//! come back, over UDP and TCP, before the instance counts as started; when another server
//! answers instead, another port is tried.
//!
//! Everything lives in a tempdir named can write (it keeps `.jnl` journals of dynamic
//! updates). named runs in the foreground (`-g`) as a child of the test and is killed on
//! drop, as is Pebble. A missing named or Pebble is a loud failure naming the install
//! command.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long named or Pebble may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports tried before giving up (another process may take a free port before named does).
const PORT_ATTEMPTS: usize = 5;
/// Ports this process has given to a named, so no two instances get the same one.
static PORTS_GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

const PEBBLE: &str = "/usr/bin/pebble";

/// A TSIG key as `tsig-keygen` made it.
#[derive(Debug, Clone)]
pub struct Key {
    /// Without the trailing dot, as the configuration's `key_name` takes it: `ck`.
    pub name: String,
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
                "{name} is missing: the DNS-01 tests need a real BIND; install it with \
                 `apt-get install -y bind9 bind9-dnsutils`"
            )
        })
}

/// A port free for both UDP and TCP on 127.0.0.1 right now, and not given to another
/// named of this process before.
fn free_dns_port() -> u16 {
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

/// A loopback TCP port nobody listens on (for an unreachable server).
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
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

fn keygen(dir: &Path, name: &str) -> Key {
    let output = Command::new(tool("tsig-keygen"))
        .args(["-a", "hmac-sha256", name])
        .output()
        .expect("run tsig-keygen");
    assert!(output.status.success(), "tsig-keygen: {output:?}");
    let text = String::from_utf8(output.stdout).expect("key text");
    let secret = text
        .split('"')
        .nth(3)
        .expect("secret \"...\" in the key block")
        .to_owned();
    let file = dir.join(format!("{name}.key"));
    fs::write(&file, &text).expect("write key file");
    Key {
        name: name.to_owned(),
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
";

const DELEGATED_ZONE: &str = "\
$TTL 60
@ IN SOA ns1.delegated.test. hostmaster.delegated.test. 1 3600 600 86400 60
@ IN NS ns1.delegated.test.
ns1 IN A 127.0.0.1
";

/// The challenge names [`Bind::all_txt`] looks at: every name a test may write.
const CHALLENGE_NAMES: [&str; 4] = [
    "_acme-challenge.example.test.",
    "_acme-challenge.www.example.test.",
    "_acme-challenge.alias.example.test.",
    "alias.delegated.test.",
];

impl Bind {
    /// Start named with the zones and keys above on a free port.
    pub fn start() -> Self {
        let named = tool("named");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = keygen(dir.path(), "ck");
        let refused_key = keygen(dir.path(), "other");
        let marker = random_marker();
        fs::write(
            dir.path().join("example.test.zone"),
            EXAMPLE_ZONE.replace("{marker}", &marker),
        )
        .expect("zone");
        fs::write(dir.path().join("delegated.test.zone"), DELEGATED_ZONE).expect("zone");

        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_dns_port();
            let config = dir.path().join("named.conf");
            fs::write(
                &config,
                format!(
                    r#"options {{
    directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-recursion {{ 127.0.0.1; }};
    pid-file none;
    session-keyfile none;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
include "{ck}";
include "{other}";
zone "example.test" {{
    type primary;
    file "example.test.zone";
    update-policy {{
        grant ck. name _acme-challenge.example.test. TXT;
        grant ck. name _acme-challenge.www.example.test. TXT;
        grant other. name unrelated.example.test. TXT;
    }};
}};
zone "delegated.test" {{
    type primary;
    file "delegated.test.zone";
    update-policy {{ grant ck. subdomain delegated.test. TXT; }};
}};
"#,
                    dir = dir.path().display(),
                    ck = key.file.display(),
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

    /// The TXT values at `name` (or at the end of its CNAME chain), as named has them now,
    /// sorted.
    pub fn txt(&self, name: &str) -> Vec<String> {
        let mut values: Vec<String> = dig(self.addr, &[name, "TXT"])
            .lines()
            .inspect(|line| assert!(!line.starts_with(';'), "dig {name} TXT: {line}"))
            .map(str::trim)
            // `+short` prints a CNAME's target unquoted, TXT values quoted.
            .filter(|line| line.starts_with('"'))
            .map(|line| line.trim_matches('"').to_owned())
            .collect();
        values.sort();
        values
    }

    /// Every TXT record at a challenge name, by name (for "nothing left behind" checks).
    pub fn all_txt(&self) -> Vec<(String, Vec<String>)> {
        CHALLENGE_NAMES
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

/// A real Pebble (Debian's `pebble`) whose validation reads `dns` (`-dnsserver`): a DNS-01
/// challenge is validated against the TXT records written there. No EAB; a throwaway CA and
/// server certificate for its HTTPS listener; free ports; killed on drop.
pub struct DnsPebble {
    pub dir: tempfile::TempDir,
    pub directory_url: String,
    /// Trust anchor for Pebble's HTTPS listener (not the issuing root).
    pub tls_ca_file: PathBuf,
    child: Child,
}

impl Drop for DnsPebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DnsPebble {
    /// Start Pebble resolving every name through `dns`.
    pub fn start(dns: SocketAddr) -> Self {
        assert!(
            Path::new(PEBBLE).exists(),
            "{PEBBLE} is missing: the end-to-end tests need Debian's Pebble; install it with \
             `apt-get install -y pebble`"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let (tls_ca_file, cert_file, key_file) = write_tls_material(dir.path());
        let [listen, management, http01, tls] = super::pebble::free_ports();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert_file,
                "privateKey": key_file,
                "httpPort": http01,
                "tlsPort": tls,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let config_file = dir.path().join("pebble-config.json");
        fs::write(
            &config_file,
            serde_json::to_vec_pretty(&config).expect("config JSON"),
        )
        .expect("write config");
        let log = |name: &str| fs::File::create(dir.path().join(name)).expect("log file");
        let child = Command::new(PEBBLE)
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::from(log("pebble.log")))
            .stderr(Stdio::from(log("pebble.err")))
            .spawn()
            .expect("start pebble");
        let pebble = Self {
            directory_url: format!("https://localhost:{listen}/dir"),
            tls_ca_file,
            child,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Pebble did not listen within {START_TIMEOUT:?}:\n{}",
                pebble.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pebble
    }

    /// Pebble's own output, for failure messages.
    pub fn logs(&self) -> String {
        ["pebble.log", "pebble.err"]
            .iter()
            .map(|name| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// How many orders Pebble has created, as it counts them itself (each new order is one
    /// `Added order` line of its log).
    pub fn orders(&self) -> usize {
        self.logs()
            .lines()
            .filter(|line| line.contains("Added order"))
            .count()
    }
}

/// A CA and a server certificate for Pebble's HTTPS listener: (ca.pem, cert.pem, key.pem).
fn write_tls_material(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certkeeper DNS-01 test Pebble TLS CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    server_params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    let ca_file = dir.join("tls-ca.pem");
    let cert_file = dir.join("tls-cert.pem");
    let key_file = dir.join("tls-key.pem");
    fs::write(&ca_file, ca_cert.pem()).expect("write CA");
    fs::write(&cert_file, server_cert.pem()).expect("write certificate");
    fs::write(&key_file, server_key.serialize_pem()).expect("write key");
    (ca_file, cert_file, key_file)
}

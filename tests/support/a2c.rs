//! A real acme2certifier (0.46.3, from PyPI) on a free loopback port: the second ACME server of
//! the end-to-end tests, for what Debian's Pebble 2.4 lacks: ARI (RFC 9773 `renewalInfo`) and
//! profiles. `/work/shared/notes/acme2certifier.md` has the facts this is built on.
//!
//! `tests/run.sh` installs it into a virtualenv at [`DEFAULT_VENV`] (or `CERTKEEPER_A2C_VENV`);
//! a missing one is a loud failure naming the install command, never a silent skip.
//! `a2c_launcher.py` (next to this file) makes the CA, TLS and EAB material and the ini file,
//! points HTTP-01 validation at `127.0.0.1:<http01_port>` (certkeeper's `[http01] listen`),
//! records every newOrder payload and renewalInfo GET, and serves the WSGI app over HTTPS on a
//! port the kernel picks, reported in `ready.json`. The process is killed when [`A2c`] drops;
//! if the test is failing, its log is printed first.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;

use super::Cert;
use super::proxy::Upstream;

pub const A2C_VERSION: &str = "0.46.3";
pub const DEFAULT_VENV: &str = "/var/cache/certkeeper-tests/a2c-venv";
/// acme2certifier's newOrder path, for [`super::proxy::FaultProxy::fail_next_on`].
pub const NEW_ORDER_PATH: &str = "/acme/neworders";
/// acme2certifier's renewalInfo path prefix.
pub const RENEWAL_INFO_PATH: &str = "/acme/renewal-info";
const LAUNCHER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/support/a2c_launcher.py"
);

/// Knobs for one acme2certifier (read once at start, like its ini file).
#[derive(Clone, Copy, Debug)]
pub struct A2cOptions {
    /// `[CAhandler] cert_validity_days`: whole days only.
    pub validity_days: u32,
    /// `[Renewalinfo] renewalthreshold_pctg`: the suggested window starts this far into the
    /// lifetime (notBefore + pct% of it) and ends at notAfter.
    pub renewal_threshold_pct: f64,
    /// `[Renewalinfo] retry_after_timeout`: the Retry-After of renewalInfo answers, seconds.
    pub retry_after_secs: u64,
    /// `[Order] profiles`: advertise `classic`, `shortlived` and `tlsserver` (and refuse
    /// unknown ones with `invalidProfile`); off: no `meta.profiles`.
    pub profiles: bool,
}

impl Default for A2cOptions {
    fn default() -> Self {
        Self {
            validity_days: 90,
            renewal_threshold_pct: 85.0,
            retry_after_secs: 3600,
            profiles: true,
        }
    }
}

impl A2cOptions {
    pub fn validity_days(mut self, days: u32) -> Self {
        self.validity_days = days;
        self
    }

    pub fn renewal_threshold_pct(mut self, pct: f64) -> Self {
        self.renewal_threshold_pct = pct;
        self
    }

    pub fn retry_after_secs(mut self, secs: u64) -> Self {
        self.retry_after_secs = secs;
        self
    }

    pub fn profiles(mut self, on: bool) -> Self {
        self.profiles = on;
        self
    }
}

pub struct A2c {
    pub dir: tempfile::TempDir,
    /// Its HTTPS port on 127.0.0.1 (served as `localhost`).
    pub port: u16,
    /// The port its HTTP-01 validation connects to on 127.0.0.1: certkeeper listens here.
    pub http01_port: u16,
    eab: (String, String),
    python: PathBuf,
    child: Child,
}

impl Drop for A2c {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- acme2certifier log ({})\n{}",
                self.log_file().display(),
                self.logs()
            );
        }
    }
}

/// The virtualenv holding acme2certifier, or a panic naming the install command.
fn venv() -> PathBuf {
    let venv = std::env::var_os("CERTKEEPER_A2C_VENV")
        .map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from);
    let installed = fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .any(|entry| {
            entry
                .map(|entry| {
                    entry
                        .path()
                        .join("site-packages")
                        .join(format!("acme2certifier-{A2C_VERSION}.dist-info"))
                        .is_dir()
                })
                .unwrap_or(false)
        });
    assert!(
        installed && venv.join("bin/python").exists(),
        "acme2certifier {A2C_VERSION} is missing from {venv}: the ARI and profile end-to-end \
         tests need it; install it with `python3 -m venv {venv} && {venv}/bin/pip install \
         acme2certifier=={A2C_VERSION}` (Debian: `apt-get install -y python3-venv` first; \
         tests/run.sh does both), or set CERTKEEPER_A2C_VENV to a virtualenv that has it",
        venv = venv.display()
    );
    venv
}

fn now_uts() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

impl A2c {
    pub fn start(options: A2cOptions) -> Self {
        let python = venv().join("bin/python");
        let dir = tempfile::tempdir().expect("tempdir");
        let http01_port = super::pebble::free_port();
        let kid = "certkeeper-a2c-kid".to_owned();
        let mut mac = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut mac))
            .unwrap();
        let mac = BASE64_URL_SAFE_NO_PAD.encode(mac);
        let log = fs::File::create(dir.path().join("a2c.log")).expect("log file");
        let mut command = Command::new(&python);
        command
            .arg(LAUNCHER)
            .arg("serve")
            .arg("--dir")
            .arg(dir.path())
            .arg(format!("--http01-port={http01_port}"))
            .arg(format!("--validity-days={}", options.validity_days))
            .arg(format!("--threshold-pct={}", options.renewal_threshold_pct))
            .arg(format!("--retry-after={}", options.retry_after_secs))
            .arg(format!("--eab-kid={kid}"))
            // `=`: a base64url MAC may start with `-`, which argparse would take for an option.
            .arg(format!("--eab-mac={mac}"))
            .env_remove("ACME_SRV_CONFIGFILE")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if options.profiles {
            command.arg("--profiles");
        }
        let child = command.spawn().expect("start the acme2certifier launcher");
        let mut a2c = Self {
            dir,
            port: 0,
            http01_port,
            eab: (kid, mac),
            python,
            child,
        };
        a2c.wait_ready();
        a2c
    }

    /// Wait for `ready.json` (written once the server listens) and a TCP connect.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = self.dir.path().join("ready.json");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "acme2certifier exited during start ({status}); log:\n{}",
                    self.logs()
                );
            }
            if let Ok(text) = fs::read_to_string(&ready) {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                self.port = u16::try_from(value["port"].as_u64().unwrap()).unwrap();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "acme2certifier was not ready within 60 s; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap_or_else(|e| {
            panic!(
                "acme2certifier on {}: {e}; log:\n{}",
                self.port,
                self.logs()
            )
        });
    }

    pub fn directory_url(&self) -> String {
        format!("{}/directory", self.origin())
    }

    fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Trust anchor for its HTTPS listener (certkeeper's `root_ca_file`); not the issuing CA.
    pub fn root_ca_file(&self) -> PathBuf {
        self.dir.path().join("tls-ca.pem")
    }

    /// The CA that signs the certificates it issues (self-signed, with a subjectKeyIdentifier).
    pub fn issuing_ca_file(&self) -> PathBuf {
        self.dir.path().join("issuing-ca.pem")
    }

    /// (kid, base64url HMAC key without padding).
    pub fn eab(&self) -> (String, String) {
        self.eab.clone()
    }

    /// What [`super::proxy::FaultProxy::start_for`] needs to stand in front of it.
    pub fn upstream(&self) -> Upstream {
        Upstream {
            origin: self.origin(),
            directory_path: "/directory".to_owned(),
            cert_file: self.dir.path().join("tls-cert.pem"),
            key_file: self.dir.path().join("tls-key.pem"),
            root_ca_file: self.root_ca_file(),
            certificate_path: "/acme/cert/".to_owned(),
        }
    }

    /// Every newOrder payload received so far (the decoded JWS payload), in order.
    pub fn new_orders(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.dir.path().join("new-orders.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The path of every renewalInfo GET so far (`/acme/renewal-info/<certID>`), in order.
    pub fn renewal_info_requests(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("renewal-info.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Make the suggested window of the certificate with this serial lie entirely in the past,
    /// so an RFC 9773 client must renew it now (a window that only starts in the past lets the
    /// client pick a random instant in it, which is not deterministic).
    ///
    /// acme2certifier computes the window on every request from its own database:
    /// start = issue_uts + pct% of (expire_uts - issue_uts), end = expire_uts. This sets
    /// issue_uts = now - 2 days and expire_uts = now - 60 s, so for any threshold <= 100 %
    /// both ends are in the past (at 85 %: start about 7 h ago). Only the CA's record changes:
    /// the certificate certkeeper holds keeps its real notAfter and stays valid, and the CA
    /// keeps answering renewalInfo for it. (The record's expiry in the past also keeps
    /// acme2certifier from reusing that certificate for a new order.)
    ///
    /// `serial_hex`: hex with or without leading zeros, any case (as [`super::serial`] prints it).
    pub fn move_window_into_past(&self, serial_hex: &str) {
        let serial = a2c_serial(serial_hex);
        let now = now_uts();
        let result = self.sql(
            "UPDATE certificate SET issue_uts = ?, expire_uts = ? WHERE serial = ?",
            &[
                &(now - 2 * 86_400).to_string(),
                &(now - 60).to_string(),
                &serial,
            ],
        );
        assert_eq!(
            result["rowcount"],
            1,
            "acme2certifier has no certificate with serial {serial}; it has {}",
            self.sql("SELECT serial, issue_uts, expire_uts FROM certificate", &[])["rows"]
        );
    }

    /// The (issue_uts, expire_uts) acme2certifier holds for a serial, which its window uses.
    pub fn certificate_times(&self, serial_hex: &str) -> (i64, i64) {
        let serial = a2c_serial(serial_hex);
        let result = self.sql(
            "SELECT issue_uts, expire_uts FROM certificate WHERE serial = ?",
            &[&serial],
        );
        let row = &result["rows"][0];
        assert!(row.is_array(), "no certificate with serial {serial}");
        (row[0].as_i64().unwrap(), row[1].as_i64().unwrap())
    }

    /// Certificates it has issued (rows of its `certificate` table with a certificate in them).
    pub fn issued_count(&self) -> usize {
        let result = self.sql(
            "SELECT COUNT(*) FROM certificate WHERE cert_raw IS NOT NULL AND cert_raw != ''",
            &[],
        );
        usize::try_from(result["rows"][0][0].as_u64().unwrap()).unwrap()
    }

    /// Run one SQL statement on its sqlite database: `{"rows": [[...]], "rowcount": n}`.
    ///
    /// The server writes the same database while it answers certkeeper; the command waits up
    /// to 30 s for its lock, and a statement that still finds it locked is run again, up to
    /// ten times in all, every failure shown if none succeeds. (The lock held for good, seen
    /// in CI, was acme2certifier's own race on concurrent renewalInfo requests, which the
    /// launcher now serves one at a time.)
    pub fn sql(&self, statement: &str, params: &[&str]) -> serde_json::Value {
        let mut failures = Vec::new();
        for _ in 0..10 {
            let output = Command::new(&self.python)
                .arg(LAUNCHER)
                .arg("sql")
                .arg(self.dir.path().join("a2c.db"))
                .arg(statement)
                .args(params)
                .output()
                .unwrap();
            if output.status.success() {
                return serde_json::from_slice(&output.stdout).unwrap();
            }
            failures.push(String::from_utf8_lossy(&output.stderr).into_owned());
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "sql {statement:?} failed ten times:\n{}",
            failures.join("\n---\n")
        );
    }

    /// GET a path on it (e.g. `/directory`), trusting [`A2c::root_ca_file`].
    pub fn get(&self, path: &str) -> HttpsResponse {
        https_get(&format!("{}{path}", self.origin()), &self.root_ca_file())
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("a2c.log")
    }

    /// Its output so far (launcher, acme2certifier at INFO, one line per request).
    pub fn logs(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }
}

/// acme2certifier stores serials as lower-case hex of even length (one leading zero at most).
fn a2c_serial(serial_hex: &str) -> String {
    let trimmed = serial_hex.trim().to_ascii_lowercase();
    let trimmed = trimmed.trim_start_matches('0');
    if trimmed.len() % 2 == 1 {
        format!("0{trimmed}")
    } else {
        trimmed.to_owned()
    }
}

pub struct HttpsResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// A GET over HTTPS trusting `root_ca_file`, through certkeeper's own transport.
pub fn https_get(url: &str, root_ca_file: &Path) -> HttpsResponse {
    use certkeeper_acme::{Transport, TransportSettings};
    use instant_acme::HttpClient;
    let transport = Transport::new(&TransportSettings {
        root_ca_file: Some(root_ca_file.to_owned()),
        ..TransportSettings::default()
    })
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = url.to_owned();
    runtime.block_on(async move {
        let request = http::Request::get(url)
            .body(instant_acme::BodyWrapper::<bytes::Bytes>::default())
            .unwrap();
        let mut response = transport.request(request).await.unwrap();
        let body = response.body.into_bytes().await.unwrap();
        HttpsResponse {
            status: response.parts.status.as_u16(),
            headers: response.parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
}

/// A temporary certkeeper installation pointed at one acme2certifier (CA name `a2c`): the
/// counterpart of [`super::Setup`] for Pebble.
pub struct A2cSetup {
    pub a2c: A2c,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub hmac_file: PathBuf,
}

impl A2cSetup {
    pub fn new(options: A2cOptions) -> Self {
        let a2c = A2c::start(options);
        let dir = tempfile::tempdir().unwrap();
        let hmac_file = dir.path().join("a2c.hmac");
        super::write_secret(&hmac_file, &a2c.eab().1);
        Self {
            config: dir.path().join("certkeeper.toml"),
            state_dir: dir.path().join("state"),
            a2c,
            dir,
            hmac_file,
        }
    }

    /// Write the inventory with `certs`.
    pub fn write_config(&self, certs: &[Cert<'_>]) {
        self.write_config_with("", certs);
    }

    /// Write the inventory with extra top-level settings (before any table) and `certs`.
    pub fn write_config_with(&self, top: &str, certs: &[Cert<'_>]) {
        self.write_config_via(&self.a2c.directory_url(), top, certs);
    }

    /// Like [`A2cSetup::write_config_with`], with the CA at `directory_url` (a
    /// [`super::proxy::FaultProxy`] in front of acme2certifier, say).
    pub fn write_config_via(&self, directory_url: &str, top: &str, certs: &[Cert<'_>]) {
        let (kid, _) = self.a2c.eab();
        let mut text = format!(
            r#"state_dir = "{state}"
{top}

[http01]
listen = ["127.0.0.1:{http}"]

[[ca]]
name = "a2c"
directory = "{directory_url}"
eab_kid = "{kid}"
eab_hmac_key_file = "{hmac}"
terms_of_service_agreed = true
contact = ["mailto:ops@example.com"]
root_ca_file = "{root}"
"#,
            state = self.state_dir.display(),
            http = self.a2c.http01_port,
            hmac = self.hmac_file.display(),
            root = self.a2c.root_ca_file().display(),
        );
        text.push_str(&super::certificate_tables("a2c", certs));
        fs::write(&self.config, text).unwrap();
    }

    /// Run `certkeeper --config <ours> ARGS...`.
    pub fn certkeeper(&self, args: &[&str]) -> Output {
        super::run_certkeeper(&self.config, args)
    }

    /// Start `certkeeper run` in the background; its stderr goes to a log file.
    pub fn spawn_daemon(&self, envs: &[(&str, &str)]) -> super::Daemon {
        super::spawn_certkeeper_daemon(self.dir.path(), &self.config, envs)
    }

    /// The archive versions of a lineage, sorted: one per installed certificate.
    pub fn versions(&self, name: &str) -> Vec<String> {
        super::archive_versions(&self.state_dir, name)
    }

    pub fn live(&self, name: &str) -> PathBuf {
        self.state_dir.join("live").join(name)
    }
}

//! Test harness shared by the end-to-end tests: a real Pebble (Let's Encrypt's test CA, from
//! Debian's `pebble` package) started on free loopback ports, and helpers to run the real
//! `certkeeper` binary against it and inspect what it wrote with `openssl`.
//!
//! Each test starts its own Pebble, so test binaries and tests run in parallel; every process
//! is killed when its guard drops. A missing Pebble is a loud failure naming the install
//! command, never a silent skip.

#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod a2c;
pub mod bind;
pub mod hostile;
pub mod journald;
pub mod nginx;
pub mod pebble;
pub mod proxy;
pub mod receiver;
pub mod roundrobin;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use pebble::{Pebble, PebbleOptions};

/// A temporary certkeeper installation pointed at one Pebble.
pub struct Setup {
    pub pebble: Pebble,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub hmac_file: PathBuf,
}

/// One `[[certificate]]` entry.
pub struct Cert<'a> {
    pub name: &'a str,
    pub domains: &'a [&'a str],
    pub key_type: &'a str,
    pub extra: &'a str,
}

impl<'a> Cert<'a> {
    pub fn new(name: &'a str, domains: &'a [&'a str]) -> Self {
        Self {
            name,
            domains,
            key_type: "ecdsa-p256",
            extra: "",
        }
    }
}

impl Setup {
    /// An inventory `import-certbot` wrote, with what it asked to fill in filled in for this
    /// Pebble: its EAB credential (and trust in its HTTPS listener).
    pub fn fill_imported(&self, text: &str) -> String {
        let (kid, _) = self.pebble.eab.clone().expect("an EAB credential");
        text.replace("eab_kid = \"FILL-ME\"", &format!("eab_kid = \"{kid}\""))
            .replace(
                "eab_hmac_key_file = \"FILL-ME\"",
                &format!(
                    "eab_hmac_key_file = \"{}\"\nroot_ca_file = \"{}\"",
                    self.hmac_file.display(),
                    self.pebble.tls_ca_file.display()
                ),
            )
    }

    pub fn new(options: PebbleOptions) -> Self {
        let pebble = Pebble::start(options);
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let hmac_file = dir.path().join("pebble.hmac");
        let (_, hmac) = pebble.eab.clone().expect("EAB is always on in these tests");
        write_secret(&hmac_file, &hmac);
        Self {
            config: dir.path().join("certkeeper.toml"),
            pebble,
            dir,
            state_dir,
            hmac_file,
        }
    }

    /// Write the inventory with `certs`.
    pub fn write_config(&self, certs: &[Cert<'_>]) {
        self.write_config_with("", certs);
    }

    /// Write the inventory with extra top-level settings (before any table) and `certs`.
    pub fn write_config_with(&self, top: &str, certs: &[Cert<'_>]) {
        let (kid, _) = self.pebble.eab.clone().unwrap();
        let mut text = format!(
            r#"state_dir = "{state}"
{top}

[http01]
listen = ["127.0.0.1:{http}"]

[[ca]]
name = "pebble"
directory = "{directory}"
eab_kid = "{kid}"
eab_hmac_key_file = "{hmac}"
terms_of_service_agreed = true
contact = ["mailto:ops@example.com"]
root_ca_file = "{root}"
"#,
            state = self.state_dir.display(),
            http = self.pebble.http01_port,
            directory = self.pebble.directory_url,
            hmac = self.hmac_file.display(),
            root = self.pebble.tls_ca_file.display(),
        );
        text.push_str(&certificate_tables("pebble", certs));
        fs::write(&self.config, text).unwrap();
    }

    /// Run `certkeeper --config <ours> ARGS...`.
    pub fn certkeeper(&self, args: &[&str]) -> Output {
        run_certkeeper(&self.config, args)
    }

    /// Start `certkeeper run` in the background; its stderr goes to a log file.
    pub fn spawn_daemon(&self, envs: &[(&str, &str)]) -> Daemon {
        spawn_certkeeper_daemon(self.dir.path(), &self.config, envs)
    }

    /// The archive versions of a lineage (`v0001`, ...), sorted: one per installed certificate.
    pub fn versions(&self, name: &str) -> Vec<String> {
        archive_versions(&self.state_dir, name)
    }

    pub fn live(&self, name: &str) -> PathBuf {
        self.state_dir.join("live").join(name)
    }
}

/// The `[[certificate]]` tables of `certs`, each at CA `ca`.
pub fn certificate_tables(ca: &str, certs: &[Cert<'_>]) -> String {
    let mut text = String::new();
    for cert in certs {
        let domains: Vec<String> = cert.domains.iter().map(|d| format!("{d:?}")).collect();
        text.push_str(&format!(
            "\n[[certificate]]\nname = \"{}\"\nca = \"{ca}\"\ndomains = [{}]\nkey_type = \"{}\"\n{}\n",
            cert.name,
            domains.join(", "),
            cert.key_type,
            cert.extra
        ));
    }
    text
}

/// Run `certkeeper --config CONFIG ARGS...`, echoing what it printed (shown when a test fails).
pub fn run_certkeeper(config: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("CERTKEEPER_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    eprintln!(
        "$ certkeeper {}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    output
}

/// Start `certkeeper --config CONFIG run` in the background; its stderr goes to a log file in
/// `dir`.
pub fn spawn_certkeeper_daemon(dir: &Path, config: &Path, envs: &[(&str, &str)]) -> Daemon {
    let log = dir.join(format!("daemon-{}.log", next_id()));
    let child = Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env_remove("CERTKEEPER_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_LOG", "info,certkeeper_acme=debug")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    Daemon { child, log }
}

/// The archive versions of lineage `name` under `state_dir` (`v0001`, ...), sorted: one per
/// installed certificate.
pub fn archive_versions(state_dir: &Path, name: &str) -> Vec<String> {
    let mut versions: Vec<String> = fs::read_dir(state_dir.join("archive").join(name))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('v'))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
}

pub fn write_secret(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Run openssl and return stdout, failing the test on a non-zero exit.
pub fn openssl(args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (apt-get install -y openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The DNS names in a certificate's subjectAltName, sorted.
pub fn sans(cert: &Path) -> Vec<String> {
    let text = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    let mut names: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|part| part.strip_prefix("DNS:"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// The certificate's serial as lower-case hex without leading zeros (how certkeeper and
/// Pebble's management API print it; openssl pads to whole bytes).
pub fn serial(cert: &Path) -> String {
    let padded = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    match padded.trim_start_matches('0') {
        "" => "0".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

/// Whether the private key belongs to the certificate (same public key).
pub fn key_matches(cert: &Path, key: &Path) -> bool {
    let from_cert = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    let from_key = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    from_cert == from_key
}

/// The key algorithm openssl reports for a private key ("id-ecPublicKey"/"rsaEncryption")
/// plus its size in bits.
pub fn key_description(key: &Path) -> String {
    let text = openssl(&["pkey", "-in", key.to_str().unwrap(), "-noout", "-text"]);
    text.lines().next().unwrap_or_default().trim().to_owned()
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A `certkeeper run` process, stopped (SIGKILL) when dropped if still running.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log satisfies `pred`, or fail after `timeout` showing the log.
    pub fn wait_for_log(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if pred(&text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; daemon log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the process to exit and return its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP/1.0 GET on loopback: (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

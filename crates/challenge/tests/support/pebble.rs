//! A real Pebble and pebble-challtestsrv on free loopback ports.
//!
//! Pebble ships without configuration or TLS certificate, so this makes both: a throwaway CA
//! and a `localhost`/`127.0.0.1` server certificate for Pebble's HTTPS listener, and a JSON
//! config. challtestsrv answers Pebble's DNS lookups with 127.0.0.1 for every name, so HTTP-01
//! validation connects to whatever listens on [`Pebble::http01_port`] (nginx, in these tests).
//! No random validation delay, no rejected nonces and no reused authorizations: every order
//! is validated afresh, at once.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

pub struct Pebble {
    pub dir: tempfile::TempDir,
    pub directory_url: String,
    /// The port Pebble connects to for HTTP-01.
    pub http01_port: u16,
    /// Trust anchor for Pebble's HTTPS listener (not the issuing root).
    pub tls_ca_file: PathBuf,
    children: Vec<Child>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `N` distinct free loopback ports: every listener is held until all are picked, so two picks
/// in a row cannot hand out the same port (the kernel may pick a port just released again).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("a bound listener's address")
            .port()
    })
}

/// Wait until something accepts connections on `port`, at most `timeout`; `what` is for the
/// failure message and says where to look.
pub fn wait_for_port(port: u16, timeout: Duration, what: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} after {timeout:?}: {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Pebble {
    pub fn start() -> Self {
        for binary in [PEBBLE, CHALLTESTSRV] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the webroot tests need Debian's Pebble; install it with `apt-get install -y pebble`"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (tls_ca_file, cert_file, key_file) = write_tls_material(dir.path());
        let [listen, management, http01, tls, dns, challtest_mgmt] = free_ports();
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
            serde_json::to_vec_pretty(&config).expect("config"),
        )
        .expect("write config");

        let log = |name: &str| fs::File::create(dir.path().join(name)).expect("log file");
        let challtestsrv = Command::new(CHALLTESTSRV)
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{challtest_mgmt}")])
            .stdout(Stdio::from(log("challtestsrv.log")))
            .stderr(Stdio::from(log("challtestsrv.err")))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new(PEBBLE)
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::from(log("pebble.log")))
            .stderr(Stdio::from(log("pebble.err")))
            .spawn()
            .expect("start pebble");

        let started = Self {
            directory_url: format!("https://localhost:{listen}/dir"),
            http01_port: http01,
            tls_ca_file,
            children: vec![challtestsrv, pebble],
            dir,
        };
        for port in [listen, management, challtest_mgmt] {
            wait_for_port(port, Duration::from_secs(20), || {
                format!(
                    "Pebble's logs in {}:\n{}",
                    started.dir.path().display(),
                    started.logs()
                )
            });
        }
        started
    }

    /// Pebble's own output, for failure messages.
    pub fn logs(&self) -> String {
        ["pebble.log", "pebble.err"]
            .iter()
            .map(|name| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A CA and a server certificate for Pebble's HTTPS listener: (ca.pem, cert.pem, key.pem).
fn write_tls_material(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certkeeper test Pebble TLS CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    server_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("address")));
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

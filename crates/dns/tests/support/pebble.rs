//! A real Pebble (Debian's `pebble`) whose validation reads a real named: started with
//! `-dnsserver` pointing at [`super::bind::Bind`], so a DNS-01 challenge is validated against
//! the TXT records the solver wrote there. The minimal part of the workspace harness
//! (`tests/support/pebble.rs`): a throwaway CA and server certificate for Pebble's HTTPS
//! listener, a JSON config without EAB, free ports, the process killed on drop.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PEBBLE: &str = "/usr/bin/pebble";
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Pebble {
    pub dir: tempfile::TempDir,
    pub directory_url: String,
    /// Trust anchor for Pebble's HTTPS listener (not the issuing root).
    pub tls_ca_file: PathBuf,
    child: Child,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `N` distinct free loopback ports: every listener is held until all are picked, so two picks in a row cannot hand out the same port (the kernel may pick a port just
/// released again).
fn free_ports<const N: usize>() -> [u16; N] {
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

impl Pebble {
    /// Start Pebble resolving every name through `dns`.
    pub fn start(dns: SocketAddr) -> Self {
        assert!(
            Path::new(PEBBLE).exists(),
            "{PEBBLE} is missing: the end-to-end tests need Debian's Pebble; install it with \
             `apt-get install -y pebble`"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let (tls_ca_file, cert_file, key_file) = write_tls_material(dir.path());
        let [listen, management, http01, tls] = free_ports();
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
            .env("PEBBLE_WFE_NONCEREJECT", "0")
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
}

/// A CA and a server certificate for Pebble's HTTPS listener: (ca.pem, cert.pem, key.pem).
fn write_tls_material(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certkeeper DNS test Pebble TLS CA");
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

//! A real Pebble and pebble-challtestsrv on free loopback ports.
//!
//! Pebble ships without configuration or TLS certificate, so this makes both: a throwaway CA
//! and a `localhost`/`127.0.0.1` server certificate for Pebble's HTTPS listeners, and a JSON
//! config with External Account Binding required. challtestsrv answers Pebble's DNS lookups
//! with 127.0.0.1 for every name, so HTTP-01 validation connects to certkeeper's listener on
//! `httpPort`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// Knobs for one Pebble.
#[derive(Clone, Default)]
pub struct PebbleOptions {
    /// Extra environment, e.g. `PEBBLE_WFE_NONCEREJECT=50`.
    pub env: Vec<(&'static str, String)>,
    /// `certificateValidityPeriod` in seconds.
    pub validity_secs: Option<u64>,
}

impl PebbleOptions {
    pub fn env(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }
}

pub struct Pebble {
    pub dir: tempfile::TempDir,
    pub directory_url: String,
    pub management_url: String,
    /// The port Pebble connects to for HTTP-01: certkeeper listens here.
    pub http01_port: u16,
    /// Trust anchor for Pebble's HTTPS listeners (not the issuing root).
    pub tls_ca_file: PathBuf,
    /// (kid, base64url HMAC key without padding).
    pub eab: Option<(String, String)>,
    children: Vec<Child>,
    /// How Pebble itself was started, for [`Pebble::restart`].
    relaunch: Relaunch,
}

/// What starting Pebble again on the same ports, with the same config, takes.
struct Relaunch {
    config_file: PathBuf,
    dns: u16,
    env: Vec<(&'static str, String)>,
    /// The ACME and management listeners.
    ports: [u16; 2],
}

impl Relaunch {
    fn command(&self, dir: &Path) -> Command {
        let log = |name: &str| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .expect("log file")
        };
        let mut command = Command::new(PEBBLE);
        command
            .arg("-config")
            .arg(&self.config_file)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns)])
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::from(log("pebble.log")))
            .stderr(Stdio::from(log("pebble.err")));
        if !self
            .env
            .iter()
            .any(|(key, _)| *key == "PEBBLE_VA_SLEEPTIME")
        {
            command.env("PEBBLE_VA_NOSLEEP", "1");
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` distinct free loopback ports: every listener is held until all are picked, so two calls
/// of [`free_port`] in a row cannot hand out the same port (the kernel may pick a port just
/// released again).
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

impl Pebble {
    pub fn start(options: PebbleOptions) -> Self {
        for binary in [PEBBLE, CHALLTESTSRV] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the end-to-end tests need Debian's Pebble; install it with `apt-get install -y pebble`"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (tls_ca_file, cert_file, key_file) = write_tls_material(dir.path());

        let [listen, management, http01, tls, dns, challtest_mgmt] = free_ports();
        let kid = "certkeeper-test-kid".to_owned();
        let hmac = BASE64_URL_SAFE_NO_PAD.encode(rand_bytes(32));
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert_file,
                "privateKey": key_file,
                "httpPort": http01,
                "tlsPort": tls,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": true,
                "externalAccountMACKeys": { kid.clone(): hmac.clone() },
                "domainBlocklist": ["blocked.example"],
            }
        });
        if let Some(validity) = options.validity_secs {
            config["pebble"]["certificateValidityPeriod"] = validity.into();
        }
        let config_file = dir.path().join("pebble-config.json");
        fs::write(&config_file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();

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
        let relaunch = Relaunch {
            config_file,
            dns,
            env: options.env,
            ports: [listen, management],
        };
        let mut command = relaunch.command(dir.path());
        let pebble = command.spawn().expect("start pebble");

        let started = Self {
            directory_url: format!("https://localhost:{listen}/dir"),
            management_url: format!("https://localhost:{management}"),
            http01_port: http01,
            tls_ca_file,
            eab: Some((kid, hmac)),
            children: vec![challtestsrv, pebble],
            dir,
            relaunch,
        };
        for port in [listen, management, challtest_mgmt] {
            started.wait_for_port(port);
        }
        started
    }

    /// Stop Pebble and start it again on the same ports with the same configuration and EAB
    /// credentials, as after a crash or an upgrade: it forgets every account, order and
    /// certificate (Pebble keeps them in memory), and its issuing root is new.
    /// challtestsrv keeps running.
    pub fn restart(&mut self) {
        let pebble = self.children.last_mut().expect("pebble runs");
        pebble.kill().expect("stop pebble");
        pebble.wait().expect("reap pebble");
        *pebble = self
            .relaunch
            .command(self.dir.path())
            .spawn()
            .expect("start pebble again");
        for port in self.relaunch.ports {
            self.wait_for_port(port);
        }
    }

    fn wait_for_port(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Pebble did not listen on {port} within 20 s; logs in {}:\n{}",
                self.dir.path().display(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pebble's own output, for failure messages.
    pub fn logs(&self) -> String {
        ["pebble.log", "pebble.err"]
            .iter()
            .map(|name| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// GET a path on Pebble's management listener.
    pub fn management_get(&self, path: &str) -> (u16, String) {
        use certkeeper_acme::{Transport, TransportSettings};
        use instant_acme::HttpClient;
        let transport = Transport::new(&TransportSettings {
            root_ca_file: Some(self.tls_ca_file.clone()),
            ..TransportSettings::default()
        })
        .unwrap();
        let url = format!("{}{path}", self.management_url);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let request = http::Request::get(url)
                .body(instant_acme::BodyWrapper::<bytes::Bytes>::default())
                .unwrap();
            let mut response = transport.request(request).await.unwrap();
            let body = response.body.into_bytes().await.unwrap();
            (
                response.parts.status.as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        })
    }

    /// The root that issued Pebble's certificates (regenerated at every start), as PEM.
    pub fn issuing_root_pem(&self) -> String {
        let (status, body) = self.management_get("/roots/0");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Pebble's view of a certificate, from `/cert-status-by-serial/<hex>`.
    pub fn cert_status(&self, serial_hex: &str) -> serde_json::Value {
        let (status, body) = self.management_get(&format!("/cert-status-by-serial/{serial_hex}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn rand_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    let mut file = fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut file, &mut bytes).unwrap();
    bytes
}

/// A CA and a server certificate for Pebble's HTTPS listeners: (ca.pem, cert.pem, key.pem).
fn write_tls_material(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certkeeper test Pebble TLS CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let ca_file = dir.join("tls-ca.pem");
    let cert_file = dir.join("tls-cert.pem");
    let key_file = dir.join("tls-key.pem");
    fs::write(&ca_file, ca_cert.pem()).unwrap();
    fs::write(&cert_file, server_cert.pem()).unwrap();
    fs::write(&key_file, server_key.serialize_pem()).unwrap();
    (ca_file, cert_file, key_file)
}

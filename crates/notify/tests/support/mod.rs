//! Real servers for the notify tests: aiosmtpd (Debian's python3-aiosmtpd) as the SMTP server,
//! a hyper server on port 0 as the webhook receiver, and TLS material made with rcgen. Every
//! process sits behind a `Drop` guard.

#![allow(
    dead_code,
    reason = "each test binary uses a part of the support module"
)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use certkeeper_core::{Clock, Secret};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener as TokioListener;

const SMTPD: &str = include_str!("smtpd.py");
/// Debian's interpreter, where `apt-get install python3-aiosmtpd` puts the module (a
/// `python3` earlier in PATH, such as pyenv's, does not have it).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// A CA and a certificate for localhost and 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem).
pub fn tls_material(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certkeeper test notify CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("address")));
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    fs::write(&paths.0, ca_cert.pem()).expect("write CA");
    fs::write(&paths.1, cert.pem()).expect("write certificate");
    fs::write(&paths.2, key.serialize_pem()).expect("write key");
    paths
}

/// A port nothing listens on (bound and released: nothing else in the test takes it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// One message the SMTP server received.
#[derive(Debug, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
    pub login: Option<String>,
    pub tls: bool,
}

/// aiosmtpd on a free port; killed on drop.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub ca_file: PathBuf,
    outdir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// `mode`: starttls, implicit or none. `login`: the only accepted user and password;
    /// `None` accepts mail without a login.
    pub fn start(mode: &str, login: Option<(&str, &str)>) -> Self {
        let python = if Path::new(DEBIAN_PYTHON).exists() {
            DEBIAN_PYTHON
        } else {
            "python3"
        };
        let check = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status();
        assert!(
            check.is_ok_and(|status| status.success()),
            "aiosmtpd is missing: the e-mail tests need Debian's python3-aiosmtpd; install it with `apt-get install -y python3-aiosmtpd` (tests/run.sh does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_file, cert, key) = tls_material(dir.path());
        let outdir = dir.path().join("received");
        fs::create_dir(&outdir).expect("mkdir");
        let script = dir.path().join("smtpd.py");
        fs::write(&script, SMTPD).expect("write script");
        let port = free_port();
        let (user, password) = login.unwrap_or(("-", "-"));
        let mut child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(mode)
            .arg(&cert)
            .arg(&key)
            .args([user, password])
            .arg(&outdir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read aiosmtpd's output");
        assert_eq!(line.trim(), "READY", "aiosmtpd did not start");
        Self {
            child,
            port,
            ca_file,
            outdir,
            _dir: dir,
        }
    }

    /// The messages received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut paths: Vec<PathBuf> = fs::read_dir(&self.outdir)
            .expect("read received")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort_by_key(|path| {
            path.file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| stem.parse::<u32>().ok())
        });
        paths
            .iter()
            .map(|path| {
                serde_json::from_slice(&fs::read(path).expect("read message")).expect("parse")
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the webhook receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Accept,
    Status(u16),
    /// Never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: serde_json::Value,
}

/// A hyper server on 127.0.0.1:0 recording every request; it stops when dropped.
pub struct Receiver {
    pub address: SocketAddr,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TokioListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let task = tokio::spawn(serve(listener, Arc::clone(&hits), Arc::clone(&behaviour)));
        Self {
            address,
            hits,
            behaviour,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn behave(&self, behaviour: Behaviour) {
        *self
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listener: TokioListener,
    hits: Arc<Mutex<Vec<Hit>>>,
    behaviour: Arc<Mutex<Behaviour>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let hits = Arc::clone(&hits);
        let behaviour = Arc::clone(&behaviour);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let hits = Arc::clone(&hits);
                let behaviour = Arc::clone(&behaviour);
                async move {
                    let header = |name| {
                        request
                            .headers()
                            .get(name)
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned)
                    };
                    let path = request.uri().path().to_owned();
                    let authorization = header(http::header::AUTHORIZATION);
                    let content_type = header(http::header::CONTENT_TYPE);
                    let body = request.into_body().collect().await?.to_bytes();
                    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let current = *behaviour.lock().unwrap_or_else(PoisonError::into_inner);
                    hits.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Hit {
                            path,
                            authorization,
                            content_type,
                            body,
                        });
                    let status = match current {
                        Behaviour::Accept => StatusCode::OK,
                        Behaviour::Status(code) => {
                            StatusCode::from_u16(code).expect("valid status")
                        }
                        Behaviour::Hang => {
                            std::future::pending::<()>().await;
                            StatusCode::OK
                        }
                    };
                    let mut response = Response::new(Full::new(Bytes::from_static(
                        b"the receiver says: broken pipe in the back office",
                    )));
                    *response.status_mut() = status;
                    Ok::<_, hyper::Error>(response)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The wall clock.
#[derive(Debug)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock the test moves.
#[derive(Debug)]
pub struct TestClock(pub Mutex<SystemTime>);

impl TestClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(SystemTime::now())))
    }

    pub fn now_time(&self) -> SystemTime {
        self.now()
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A secret from text.
pub fn secret(text: &str) -> Secret {
    Secret::new(text.as_bytes().to_vec())
}

/// Wait until `check` holds, for at most `limit`.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

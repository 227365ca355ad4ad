//! A fault-injecting HTTPS proxy between certkeeper and a CA (Pebble, or any HTTPS upstream such
//! as acme2certifier, see [`Upstream`]), for the faults the CA has no knob for: a CA that is
//! down, answers 500/503, rate-limits with 429 + Retry-After, rejects one request with a
//! problem (409 `alreadyReplaced` on the next newOrder), resets connections mid-request or
//! answers slowly. It terminates TLS with the same test certificate the upstream serves (so
//! certkeeper's `root_ca_file` trusts it), forwards the `Host` header unchanged so the CA
//! builds URLs that point back at the proxy, and counts requests, in all and per path.
//!
//! Faults apply in this order: a path-scoped fault whose substring the request path contains
//! ([`FaultProxy::fail_next_on`], [`FaultProxy::set_on`]), else the next queued fault
//! ([`FaultProxy::fail_next`]), else the standing mode ([`FaultProxy::set`]).

use std::collections::VecDeque;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Pebble;

/// The HTTPS server behind the proxy.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `https://host:port`, no trailing slash.
    pub origin: String,
    /// Path of the ACME directory on it (`/dir` for Pebble, `/directory` for acme2certifier).
    pub directory_path: String,
    /// The certificate chain and key the upstream serves; the proxy serves the same.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Trust anchor of that certificate.
    pub root_ca_file: PathBuf,
    /// Path prefix of certificate downloads, which [`FaultProxy::replace_certificates`] rewrites.
    pub certificate_path: String,
}

impl Upstream {
    pub fn pebble(pebble: &Pebble) -> Self {
        let origin = pebble.directory_url.trim_end_matches("/dir").to_owned();
        Self {
            directory_path: pebble.directory_url[origin.len()..].to_owned(),
            origin,
            cert_file: pebble.dir.path().join("tls-cert.pem"),
            key_file: pebble.dir.path().join("tls-key.pem"),
            root_ca_file: pebble.tls_ca_file.clone(),
            certificate_path: "/certZ/".to_owned(),
        }
    }
}

/// What the proxy does with a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forward to the upstream.
    Pass,
    /// Close every connection as soon as it is accepted (the CA is unreachable).
    Down,
    /// Answer with this status and an ACME problem document, with an optional Retry-After.
    Status {
        code: u16,
        problem: &'static str,
        retry_after: Option<u64>,
    },
    /// Read the request, then drop the connection without an answer.
    Reset,
    /// Forward after a pause (a long one is a hang: the proxy never answers in time).
    Delay(Duration),
}

/// A fault for requests whose path contains `path_contains`.
struct ScopedFault {
    path_contains: String,
    /// How many more requests it applies to; `None`: every one.
    remaining: Option<usize>,
    fault: Fault,
}

#[derive(Default)]
struct State {
    /// Replaces the body of certificate downloads (under `Upstream::certificate_path`).
    certificate: Option<String>,
    mode: Option<Fault>,
    next: VecDeque<Fault>,
    scoped: Vec<ScopedFault>,
    requests: u64,
    /// The path of every request, in arrival order.
    paths: Vec<String>,
    /// The decoded JWS payload of every POST with one (empty for POST-as-GET), with its path.
    payloads: Vec<(String, serde_json::Value)>,
    connections_refused: u64,
}

impl State {
    fn fault(&mut self, path: &str) -> Fault {
        if let Some(index) = self
            .scoped
            .iter()
            .position(|scoped| path.contains(&scoped.path_contains))
        {
            let scoped = &mut self.scoped[index];
            let fault = scoped.fault.clone();
            if let Some(remaining) = &mut scoped.remaining {
                *remaining -= 1;
                if *remaining == 0 {
                    self.scoped.remove(index);
                }
            }
            return fault;
        }
        self.next
            .pop_front()
            .or_else(|| self.mode.clone())
            .unwrap_or(Fault::Pass)
    }
}

pub struct FaultProxy {
    pub port: u16,
    directory_path: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FaultProxy {
    /// In front of a Pebble.
    pub fn start(pebble: &Pebble) -> Self {
        Self::start_for(&Upstream::pebble(pebble))
    }

    /// In front of any HTTPS upstream.
    pub fn start_for(upstream: &Upstream) -> Self {
        let port = super::pebble::free_port();
        let state = Arc::new(Mutex::new(State::default()));
        let tls = server_config(upstream);
        let client = upstream_client(upstream);
        let target = Target {
            origin: upstream.origin.clone(),
            certificate_path: upstream.certificate_path.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(run(port, tls, client, target, shared, stopped, ready_tx));
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            port,
            directory_path: upstream.directory_path.clone(),
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn directory_url(&self) -> String {
        format!("https://localhost:{}{}", self.port, self.directory_path)
    }

    /// Apply `fault` to every request from now on.
    pub fn set(&self, fault: Fault) {
        self.state.lock().unwrap().mode = Some(fault);
    }

    /// Apply `fault` to the next `n` requests, then go back to the standing mode.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .next
            .extend(std::iter::repeat_n(fault, n));
    }

    /// Apply `fault` to the next `n` requests whose path contains `path_contains` (for
    /// example the newOrder path, or `renewal-info`); other requests are not affected.
    pub fn fail_next_on(&self, path_contains: &str, n: usize, fault: Fault) {
        if n > 0 {
            self.state.lock().unwrap().scoped.push(ScopedFault {
                path_contains: path_contains.to_owned(),
                remaining: Some(n),
                fault,
            });
        }
    }

    /// Apply `fault` to every request whose path contains `path_contains` from now on, until
    /// [`FaultProxy::clear_on`].
    pub fn set_on(&self, path_contains: &str, fault: Fault) {
        self.state.lock().unwrap().scoped.push(ScopedFault {
            path_contains: path_contains.to_owned(),
            remaining: None,
            fault,
        });
    }

    /// Drop every path-scoped fault for `path_contains`.
    pub fn clear_on(&self, path_contains: &str) {
        self.state
            .lock()
            .unwrap()
            .scoped
            .retain(|scoped| scoped.path_contains != path_contains);
    }

    /// Requests whose path contains `path_contains` (answered, faulted or forwarded).
    pub fn requests_to(&self, path_contains: &str) -> usize {
        let state = self.state.lock().unwrap();
        state
            .paths
            .iter()
            .filter(|path| path.contains(path_contains))
            .count()
    }

    /// The path of every request so far, in arrival order (for failure messages).
    /// The decoded JWS payloads of the POSTs whose path contains `path_contains` (newOrder
    /// payloads, say), in arrival order, including those a fault answered.
    pub fn payloads_to(&self, path_contains: &str) -> Vec<serde_json::Value> {
        self.state
            .lock()
            .unwrap()
            .payloads
            .iter()
            .filter(|(path, _)| path.contains(path_contains))
            .map(|(_, payload)| payload.clone())
            .collect()
    }

    pub fn paths(&self) -> Vec<String> {
        self.state.lock().unwrap().paths.clone()
    }

    /// Hand out `pem` instead of the certificate the CA issued (None: stop doing so).
    pub fn replace_certificates(&self, pem: Option<String>) {
        self.state.lock().unwrap().certificate = pem;
    }

    /// Requests that reached the proxy (including refused connections).
    pub fn requests(&self) -> u64 {
        let state = self.state.lock().unwrap();
        state.requests + state.connections_refused
    }
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

async fn run(
    port: u16,
    tls: Arc<rustls::ServerConfig>,
    client: HttpsClient,
    upstream: Target,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let _ = ready.send(());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
        };
        {
            let mut s = state.lock().unwrap();
            if matches!(s.mode, Some(Fault::Down)) && s.next.is_empty() {
                s.connections_refused += 1;
                drop(stream);
                continue;
            }
        }
        let acceptor = acceptor.clone();
        let client = client.clone();
        let upstream = upstream.clone();
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let Ok(tls_stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |request: Request<Incoming>| {
                let client = client.clone();
                let upstream = upstream.clone();
                let state = Arc::clone(&state);
                async move { handle(request, client, upstream, state).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls_stream), service)
                .await;
        });
    }
    connections.abort_all();
}

/// Where requests are forwarded.
#[derive(Clone)]
struct Target {
    origin: String,
    certificate_path: String,
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

/// The JSON payload of a flattened JWS request body, if it has one.
fn jws_payload(body: &[u8]) -> Option<serde_json::Value> {
    use base64::Engine;
    let jws: serde_json::Value = serde_json::from_slice(body).ok()?;
    let encoded = jws.get("payload")?.as_str()?;
    let decoded = base64::prelude::BASE64_URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    serde_json::from_slice(&decoded).ok()
}

async fn handle(
    request: Request<Incoming>,
    client: HttpsClient,
    upstream: Target,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let fault = {
        let request_path = request.uri().path().to_owned();
        let mut s = state.lock().unwrap();
        s.requests += 1;
        let fault = s.fault(&request_path);
        s.paths.push(request_path);
        fault
    };
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    if let Some(payload) = jws_payload(&body) {
        let path = parts.uri.path().to_owned();
        state.lock().unwrap().payloads.push((path, payload));
    }
    match fault {
        Fault::Reset | Fault::Down => return Err(Dropped),
        Fault::Status {
            code,
            problem,
            retry_after,
        } => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .header("Content-Type", "application/problem+json");
            if let Some(seconds) = retry_after {
                response = response.header("Retry-After", seconds.to_string());
            }
            let document = format!(
                r#"{{"type":"urn:ietf:params:acme:error:{problem}","detail":"injected by the test proxy","status":{code}}}"#
            );
            return Ok(response.body(Full::new(Bytes::from(document))).unwrap());
        }
        Fault::Delay(pause) => tokio::time::sleep(pause).await,
        Fault::Pass => {}
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", upstream.origin));
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let response = client
        .request(forward.body(Full::new(body)).unwrap())
        .await
        .map_err(|_| Dropped)?;
    let (mut parts_out, body) = response.into_parts();
    let mut body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let replacement = state.lock().unwrap().certificate.clone();
    if let Some(pem) = replacement
        && path.starts_with(&upstream.certificate_path)
        && parts_out.status.is_success()
    {
        parts_out.headers.remove(hyper::header::CONTENT_LENGTH);
        body = Bytes::from(pem);
    }
    Ok(Response::from_parts(parts_out, Full::new(body)))
}

fn server_config(upstream: &Upstream) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&upstream.cert_file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&upstream.key_file).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn upstream_client(upstream: &Upstream) -> HttpsClient {
    let mut roots = rustls::RootCertStore::empty();
    let ca = fs::read(&upstream.root_ca_file).unwrap();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

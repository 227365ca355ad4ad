//! The webroot solver and the proxy setup end to end: a real Pebble validates HTTP-01 through
//! a real nginx on the port it validates against, for orders placed and completed by the
//! ACME adapter exactly as the binary does.
//!
//! * Webroot: nginx serves a web root (`root DIR;`), certkeeper's [`Webroot`] writes the key
//!   authorizations into it. The order must be issued, and afterwards the web root must hold
//!   what it held before: no token file, no directory certkeeper created.
//! * Proxy setup: nginx runs [`NGINX_PROXY_LOCATION`] in front of certkeeper's own listener
//!   on a loopback port. The order must be issued and the listener serve nothing afterwards.
//!
//! What is asserted is the order's outcome and the files on disk; a wrapper around the real
//! solver also fetches each token through nginx at `ready`, when the CA is about to, so a
//! failure says whether nginx served it.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt as _, symlink};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use certkeeper_acme::{
    AcmeAccount, AcmeError, Issued, OrderRequest, PollPolicy, Transport, TransportSettings,
};
use certkeeper_challenge::ChallengeTokens;
use certkeeper_challenge::webroot::{NGINX_PROXY_LOCATION, Webroot, WebrootError};
use certkeeper_core::{
    CaName, CaSpec, CertName, ChallengeAnswer, ChallengeKind, ChallengeSolver, DomainName, KeyType,
    SolverError, SolverFuture, SolverStep,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

mod support;

use support::nginx::Nginx;
use support::pebble::Pebble;

/// An account at `pebble`, registered as the binary registers one.
async fn register(pebble: &Pebble) -> AcmeAccount {
    let transport = Transport::new(&TransportSettings {
        root_ca_file: Some(pebble.tls_ca_file.clone()),
        ..TransportSettings::default()
    })
    .expect("transport");
    let ca = CaSpec {
        name: CaName::new("pebble").expect("CA name"),
        directory: pebble.directory_url.clone(),
        eab: None,
        terms_of_service_agreed: true,
        contact: Vec::new(),
        root_ca_file: Some(pebble.tls_ca_file.clone()),
        max_concurrent: None,
        request_timeout: None,
    };
    let (account, _) = AcmeAccount::load_or_register(&ca, transport, None)
        .await
        .unwrap_or_else(|err| panic!("register at Pebble: {err:#?}\n{}", pebble.logs()));
    account
}

/// Order a certificate for `names` from `pebble`, answering with `solver`.
async fn order(
    pebble: &Pebble,
    names: &[&str],
    solver: &dyn ChallengeSolver,
) -> Result<Issued, AcmeError> {
    let account = register(pebble).await;
    let domains: Vec<DomainName> = names
        .iter()
        .map(|name| DomainName::new(name).expect("domain"))
        .collect();
    let cert = CertName::new("webroot").expect("cert name");
    let request = OrderRequest {
        cert: &cert,
        domains: &domains,
        key_type: KeyType::EcdsaP256,
        directory_url: &pebble.directory_url,
        replaces: None,
        profile: None,
    };
    let poll = PollPolicy {
        initial_delay: Duration::from_millis(50),
        backoff: 1.5,
        timeout: Duration::from_secs(30),
    };
    account.issue(&request, solver, poll).await
}

/// GET the challenge path for `token` from `server`: the body of a 200, else the status line.
async fn fetch(server: SocketAddr, token: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(server).await.expect("reach nginx");
    let request = format!(
        "GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if head.starts_with("HTTP/1.1 200") {
        Ok(body.to_owned())
    } else {
        Err(head.lines().next().unwrap_or_default().to_owned())
    }
}

/// What was seen of one answer when the order code called `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// The token file's permission bits on disk (webroot only).
    file_mode: Option<u32>,
    /// Whether nginx served exactly the key authorization.
    served_key_authorization: bool,
}

/// A real solver, and a look through nginx at each answer when it is ready.
struct Observed<'a> {
    solver: &'a dyn ChallengeSolver,
    nginx: SocketAddr,
    /// The web root, to look at the token file's mode.
    web_root: Option<PathBuf>,
    seen: Mutex<Vec<Seen>>,
}

impl<'a> Observed<'a> {
    fn new(solver: &'a dyn ChallengeSolver, nginx: &Nginx, web_root: Option<&Path>) -> Self {
        Self {
            solver,
            nginx: SocketAddr::from(([127, 0, 0, 1], nginx.port)),
            web_root: web_root.map(Path::to_owned),
            seen: Mutex::default(),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("seen"))
    }
}

impl ChallengeSolver for Observed<'_> {
    fn kind(&self) -> ChallengeKind {
        self.solver.kind()
    }

    fn present<'b>(&'b self, answer: &'b ChallengeAnswer) -> SolverFuture<'b> {
        self.solver.present(answer)
    }

    fn ready<'b>(&'b self, answer: &'b ChallengeAnswer) -> SolverFuture<'b> {
        Box::pin(async move {
            self.solver.ready(answer).await?;
            let ChallengeAnswer::Http01 {
                token,
                key_authorization,
                ..
            } = answer
            else {
                panic!("an http-01 answer: {answer:?}");
            };
            let file_mode = self.web_root.as_ref().map(|root| {
                let file = root.join(".well-known/acme-challenge").join(token);
                fs::metadata(file).expect("token file").mode() & 0o7777
            });
            let served = fetch(self.nginx, token).await;
            self.seen.lock().expect("seen").push(Seen {
                file_mode,
                served_key_authorization: served.as_deref() == Ok(key_authorization.as_str()),
            });
            Ok(())
        })
    }

    fn cleanup(&self, answer: &ChallengeAnswer) -> SolverFuture<'static> {
        self.solver.cleanup(answer)
    }
}

/// Every entry under `dir`, relative, sorted, directories with a trailing `/`.
fn entries(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, into: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let name = path
                .strip_prefix(base)
                .expect("under base")
                .display()
                .to_string();
            if fs::symlink_metadata(&path).expect("metadata").is_dir() {
                into.push(format!("{name}/"));
                walk(base, &path, into);
            } else {
                into.push(name);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// A site's web root: `html/` in a fresh tempdir, with an `index.html`.
fn web_root(dir: &Path) -> PathBuf {
    let root = dir.join("html");
    fs::create_dir(&root).expect("web root");
    fs::write(root.join("index.html"), "the site\n").expect("index.html");
    root
}

/// nginx serving `root` as a static web root on Pebble's HTTP-01 port.
fn nginx_serving(pebble: &Pebble, prefix: &Path, root: &Path) -> Nginx {
    Nginx::start(
        prefix,
        pebble.http01_port,
        &format!("    root {};", root.display()),
    )
}

async fn order_through_the_web_root(before: &[&str], prepare: impl FnOnce(&Path)) {
    let pebble = Pebble::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = web_root(dir.path());
    prepare(&root);
    assert_eq!(entries(&root), before, "the site before the order");
    let nginx = nginx_serving(&pebble, &dir.path().join("nginx"), &root);
    let webroot = Webroot::new(&root).expect("web root");
    let solver = Observed::new(&webroot, &nginx, Some(&root));

    let issued = order(&pebble, &["a.example.com", "b.example.com"], &solver)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "issued through nginx: {err:#?}\nPebble:\n{}\nnginx:\n{}",
                pebble.logs(),
                nginx.error_log()
            )
        });

    assert!(
        issued.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        issued.chain_pem
    );
    let served = Seen {
        file_mode: Some(0o644),
        served_key_authorization: true,
    };
    assert_eq!(
        solver.seen(),
        [served, served],
        "both answers written 0644 and served by nginx"
    );
    assert_eq!(
        entries(&root),
        before,
        "token files and the directories certkeeper created are gone"
    );
}

#[tokio::test]
async fn an_order_validates_through_nginx_serving_the_web_root() {
    order_through_the_web_root(&["index.html"], |_| {}).await;
}

#[tokio::test]
async fn a_sites_own_well_known_is_left_as_it_was() {
    order_through_the_web_root(
        &[".well-known/", ".well-known/security.txt", "index.html"],
        |root| {
            fs::create_dir(root.join(".well-known")).expect(".well-known");
            fs::write(root.join(".well-known/security.txt"), "Contact: x\n").expect("file");
        },
    )
    .await;
}

/// A symlink planted in the web root stops the order before Pebble is asked to validate,
/// with the webroot's refusal in the error chain, and nothing is written where it points.
#[tokio::test]
async fn a_planted_symlink_fails_the_order_and_writes_nothing_outside() {
    let pebble = Pebble::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = web_root(dir.path());
    let outside = dir.path().join("etc");
    fs::create_dir(&outside).expect("outside");
    symlink(&outside, root.join(".well-known")).expect("plant symlink");
    let webroot = Webroot::new(&root).expect("web root");

    let err = order(&pebble, &["a.example.com"], &webroot)
        .await
        .expect_err("refused");

    let AcmeError::Solver {
        source:
            SolverError::Failed {
                step: SolverStep::Present,
                source,
                ..
            },
        ..
    } = &err
    else {
        panic!("a failed present: {err:#?}");
    };
    match source.downcast_ref::<WebrootError>() {
        Some(WebrootError::Symlink { path, .. }) => assert_eq!(path, &root.join(".well-known")),
        other => panic!("the symlink refusal: {other:?}"),
    }
    assert!(entries(&outside).is_empty(), "{:?}", entries(&outside));
    assert_eq!(entries(&root), [".well-known", "index.html"]);
}

/// The proxy setup: [`NGINX_PROXY_LOCATION`], as documented, in front of certkeeper's own
/// listener on a loopback port.
#[tokio::test]
async fn an_order_validates_through_nginx_proxying_to_the_embedded_listener() {
    let pebble = Pebble::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let listening = listener.local_addr().expect("address");
    let tokens = ChallengeTokens::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(certkeeper_challenge::serve(
        listener,
        tokens.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let documented = "127.0.0.1:8080";
    assert_eq!(NGINX_PROXY_LOCATION.matches(documented).count(), 1);
    let location = NGINX_PROXY_LOCATION.replace(documented, &listening.to_string());
    let nginx = Nginx::start(&dir.path().join("nginx"), pebble.http01_port, &location);
    let solver = Observed::new(&tokens, &nginx, None);

    let issued = order(&pebble, &["a.example.com", "b.example.com"], &solver)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "issued through nginx's proxy: {err:#?}\nPebble:\n{}\nnginx:\n{}",
                pebble.logs(),
                nginx.error_log()
            )
        });

    assert!(
        issued.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        issued.chain_pem
    );
    let served = Seen {
        file_mode: None,
        served_key_authorization: true,
    };
    assert_eq!(solver.seen(), [served, served]);
    assert!(
        tokens.is_empty(),
        "the listener serves nothing after the order"
    );
    stop.send(()).expect("listener running");
    server.await.expect("join").expect("serve");
}

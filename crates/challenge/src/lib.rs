//! The embedded HTTP-01 responder.
//!
//! certkeeper answers HTTP-01 challenges itself, the way `certbot --standalone` does, so no
//! web server configuration is needed to validate a name. The responder serves exactly one
//! thing: `GET /.well-known/acme-challenge/<token>` for tokens of orders in flight, answered
//! with the key authorization as `text/plain`. Everything else is a 404 with an empty body,
//! so the listener exposes nothing while no order is running.
//!
//! [`ChallengeTokens`] is the shared table (the ACME adapter publishes through the core's
//! [`Http01Responder`] port); [`serve`] runs the listener until a shutdown future resolves, so
//! tests bind port 0 and the lifecycle owner decides when it stops.
//!
//! The listener faces the internet on port 80, so it is built to shrug off abuse: HTTP/1 only,
//! request heads limited to [`Limits::max_head_bytes`], a deadline for the head and for the
//! whole connection (a slow client cannot hold a slot), and at most
//! [`Limits::max_connections`] connections at once, beyond which new connections are closed
//! immediately. Answering the CA's validation request never waits behind a flood.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use certkeeper_core::Http01Responder;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The path prefix RFC 8555 section 8.3 fixes for HTTP-01.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Token -> key authorization for every HTTP-01 challenge currently in flight.
#[derive(Debug, Clone, Default)]
pub struct ChallengeTokens {
    inner: Arc<RwLock<HashMap<String, String>>>,
}

impl ChallengeTokens {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The key authorization published for `token`, if any.
    #[must_use]
    pub fn lookup(&self, token: &str) -> Option<String> {
        // A poisoned lock only means another thread panicked mid-insert of a plain map
        // entry; the map itself is still consistent, so keep serving.
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// Number of tokens currently published.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Http01Responder for ChallengeTokens {
    fn publish(&self, token: &str, key_authorization: &str) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    fn retract(&self, token: &str) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }
}

/// A listener that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for HTTP-01 challenges on {addr}{hint}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: io::Error,
    hint: &'static str,
}

/// Bind every configured address, failing fast (with the address named) if one is taken or
/// needs privileges.
///
/// # Errors
/// The first address that cannot be bound.
pub async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, BindError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(listener) => listeners.push(listener),
            Err(source) => {
                let hint = match source.kind() {
                    io::ErrorKind::PermissionDenied => {
                        " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                    }
                    io::ErrorKind::AddrInUse => {
                        " (another process, often a web server, already listens there)"
                    }
                    _ => "",
                };
                return Err(BindError {
                    addr: *addr,
                    source,
                    hint,
                });
            }
        }
    }
    Ok(listeners)
}

/// The axum router answering challenges from `tokens`.
pub fn router(tokens: ChallengeTokens) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .fallback(not_found)
        .with_state(tokens)
}

async fn answer(State(tokens): State<ChallengeTokens>, Path(token): Path<String>) -> Response {
    match tokens.lookup(&token) {
        Some(key_authorization) => {
            tracing::debug!(token = %token, "answered HTTP-01 challenge");
            ([(header::CONTENT_TYPE, "text/plain")], key_authorization).into_response()
        }
        None => not_found().await,
    }
}

async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// Bounds that keep a flood of hostile clients from exhausting the responder.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time a client gets to send its request head.
    pub head_timeout: Duration,
    /// Time a connection may live in all (keep-alive included).
    pub connection_timeout: Duration,
    /// Largest request head accepted (request line and headers).
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            head_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(15),
            max_head_bytes: 16 * 1024,
        }
    }
}

/// Serve challenges on `listener` until `shutdown` resolves, with the default [`Limits`].
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    tokens: ChallengeTokens,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, tokens, Limits::default(), shutdown).await
}

/// Serve challenges on `listener` within `limits` until `shutdown` resolves. Connections
/// still open then are closed.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_with(
    listener: TcpListener,
    tokens: ChallengeTokens,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_router(listener, router(tokens), limits, shutdown).await
}

/// Serve any `router` on `listener` within `limits` until `shutdown` resolves: the
/// responder's hardened connection handling, shared with certkeeper's other listener (the
/// admin endpoint), so no listener of certkeeper's can be held open by an idle client.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let service = TowerToHyperService::new(router);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait briefly rather than spin.
            Err(err) => {
                tracing::warn!(error = %err, local = ?listener.local_addr().ok(), "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Full: close at once instead of queueing behind a flood.
            drop(stream);
            continue;
        };
        let service = service.clone();
        connections.spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.head_timeout)
                .max_buf_size(limits.max_head_bytes.max(8192))
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            // Errors here are the client's problem (malformed request, reset): nothing to log
            // above debug.
            if let Ok(Err(err)) = tokio::time::timeout(limits.connection_timeout, connection).await
            {
                tracing::debug!(error = %err, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    async fn get_path(addr: SocketAddr, path: &str) -> (StatusCode, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let uri = format!("http://{addr}{path}").parse().expect("valid uri");
        let response = client.get(uri).await.expect("request");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn serves_only_published_tokens() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tokens = ChallengeTokens::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, tokens.clone(), async {
            let _ = stopped.await;
        }));

        let path = format!("{CHALLENGE_PREFIX}tok-1");
        assert_eq!(get_path(addr, &path).await.0, StatusCode::NOT_FOUND);

        tokens.publish("tok-1", "tok-1.thumbprint");
        assert_eq!(
            get_path(addr, &path).await,
            (StatusCode::OK, "tok-1.thumbprint".to_owned())
        );
        assert_eq!(get_path(addr, "/").await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            get_path(addr, "/.well-known/acme-challenge/other").await.0,
            StatusCode::NOT_FOUND
        );

        tokens.retract("tok-1");
        assert_eq!(get_path(addr, &path).await.0, StatusCode::NOT_FOUND);
        assert!(tokens.is_empty());

        stop.send(()).expect("server running");
        server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn bind_names_the_address_in_use() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = bind(&[addr]).await.expect_err("address in use");
        let message = err.to_string();
        assert!(message.contains(&addr.to_string()), "{message}");
        assert!(message.contains("already listens"), "{message}");
    }
}

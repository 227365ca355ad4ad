//! The embedded HTTP-01 responder.
//!
//! certkeeper answers HTTP-01 challenges itself, the way `certbot --standalone` does, so no
//! web server configuration is needed to validate a name. The responder serves exactly one
//! thing: `GET /.well-known/acme-challenge/<token>` for tokens of orders in flight, answered
//! with the key authorization as `text/plain`. Everything else is a 404 with an empty body,
//! so the listener exposes nothing while no order is running.
//!
//! [`ChallengeTokens`] is the shared table, and the core's [`ChallengeSolver`] for `http-01`:
//! the ACME adapter presents and cleans up tokens through that port. Presenting takes effect at
//! once (the listener reads the table on every request), so `ready` has nothing to wait for,
//! and cleanup forgets the token within the call, so even a dropped order attempt leaves no
//! token behind. [`serve`] runs the listener until a shutdown future resolves, so tests bind
//! port 0 and the lifecycle owner decides when it stops.
//!
//! Where a web server owns port 80, [`webroot::Webroot`] is the other `http-01` solver: it
//! writes key authorizations into the server's document root, never through a symlink.
//!
//! The listener faces the internet on port 80, so it is built to shrug off abuse: HTTP/1 only,
//! request heads limited to [`Limits::max_head_bytes`], a deadline for the head and for the
//! whole connection (a slow client cannot hold a slot), and at most
//! [`Limits::max_connections`] connections at once, [`Limits::max_per_address`] of them from
//! one client address.
//!
//! # When the table is full: evict, do not refuse
//!
//! A full listener has to drop someone, and it drops the connection that is worth least: the
//! one that has been idle longest (no request in progress: waiting between keep-alive requests
//! or for its first byte). A new connection is closed on accept only when every connection in
//! its scope is in the middle of a request. The scope is the client's own connections once it
//! holds [`Limits::max_per_address`], so a single-source flood only ever churns its own
//! connections; otherwise it is the whole table.
//!
//! Refusing the newcomer instead, as this responder first did, hands the listener to whoever
//! got there first: 1,024 keep-alive connections asking for unknown paths held all 512 slots
//! and the CA's validation connection was reset on accept (docs/benchmarks.md, "HTTP-01
//! responder under hostile load"). That trade is backwards for an ACME responder. The CA
//! connects once per validation and retries little, if at all, so a refused validation is a
//! failed order; a flooder's idle socket carries no request, so closing it loses nothing, and
//! its owner can only reconnect to the back of the line. A validation cannot be told from a
//! flood by its address (a CA may share a NAT with the flood, and in tests both come from
//! loopback), but it can by what it does: it sends its request at once, and a connection with
//! a request in progress is never evicted.
//!
//! Eviction is hyper's graceful shutdown of the connection: it closes an idle connection at
//! once and lets a request it has begun to read finish first. A connection picked in the
//! instant between accept and its first read is polled before it sees the eviction, so it
//! reads the request already waiting in its socket and still gets its answer. The evicted
//! connection leaves the table when it is picked; its descriptor stays open only while it
//! finishes a request, within the per-connection deadline.
//!
//! Keep-alive is kept for answers worth repeating, and an error answer (any 4xx or 5xx, for
//! the responder every answer but a published token) carries `Connection: close`: a client
//! asking for what is not there has no reason to hold a slot, and a flood of unknown paths
//! cannot park its connections between requests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use certkeeper_core::{ChallengeAnswer, ChallengeKind, ChallengeSolver, SolverError, SolverFuture};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

pub mod webroot;

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

    /// Serve `key_authorization` at `/.well-known/acme-challenge/<token>` from now on.
    pub fn publish(&self, token: &str, key_authorization: &str) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stop serving `token` (nothing happens if it is not served).
    pub fn retract(&self, token: &str) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }
}

/// The embedded responder answers `http-01`; every step completes within the call.
impl ChallengeSolver for ChallengeTokens {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }

    fn present<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        let presented = match answer {
            ChallengeAnswer::Http01 {
                token,
                key_authorization,
                ..
            } => {
                self.publish(token, key_authorization);
                Ok(())
            }
            other => Err(wrong_kind(other)),
        };
        Box::pin(std::future::ready(presented))
    }

    fn ready<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        let ready = match answer {
            ChallengeAnswer::Http01 { .. } => Ok(()),
            other => Err(wrong_kind(other)),
        };
        Box::pin(std::future::ready(ready))
    }

    fn cleanup(&self, answer: &ChallengeAnswer) -> SolverFuture<'static> {
        let cleaned = match answer {
            ChallengeAnswer::Http01 { token, .. } => {
                self.retract(token);
                Ok(())
            }
            other => Err(wrong_kind(other)),
        };
        Box::pin(std::future::ready(cleaned))
    }
}

fn wrong_kind(answer: &ChallengeAnswer) -> SolverError {
    SolverError::WrongKind {
        solver: ChallengeKind::Http01,
        requested: answer.kind(),
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
    /// Connections served at once. A connection beyond this evicts the connection idle the
    /// longest; it is closed as soon as it is accepted only when every one is mid-request.
    pub max_connections: usize,
    /// Connections served at once for one client IP address. Beyond this, a new connection
    /// evicts that address's connection idle the longest, never anyone else's.
    pub max_per_address: usize,
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
            // Far above what an honest client holds at once (a validator opens one connection
            // per challenge and closes it, a browser six), and a full address evicts its own
            // idle connections before anything is refused, so a CA validating a 100-name order
            // at once still gets through. Yet one address holds at most an eighth of the
            // table: a flood from one source churns its own connections and leaves the other
            // 448 slots to everyone else.
            max_per_address: 64,
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
/// Connections still open when `shutdown` resolves are closed.
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
    let table = Arc::new(Mutex::new(Table::new()));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: wait briefly rather than spin.
            Err(err) => {
                tracing::warn!(error = %err, local = listener.local_addr().ok().map(tracing::field::display), "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admitted) = Table::admit(&table, peer.ip(), &limits) else {
            // Every connection in scope is mid-request: close at once instead of queueing.
            tracing::trace!(peer = %peer, "connection refused: every slot is busy");
            drop(stream);
            continue;
        };
        connections.spawn(serve_connection(stream, service.clone(), limits, admitted));
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    let stats = lock(&table).stats;
    tracing::debug!(
        local = listener.local_addr().ok().map(tracing::field::display),
        accepted = stats.accepted,
        evicted = stats.evicted,
        refused = stats.refused,
        "HTTP listener stopped"
    );
    Ok(())
}

/// Serve one admitted connection until it ends, is evicted, or outlives its deadline.
async fn serve_connection(
    stream: TcpStream,
    service: TowerToHyperService<Router>,
    limits: Limits,
    admitted: Admitted,
) {
    let Admitted {
        slot,
        activity,
        mut evicted,
    } = admitted;
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let answer = service_fn(move |request: Request<Incoming>| {
        let response = service.call(request);
        let activity = Arc::clone(&activity);
        async move {
            let mut response = response.await?;
            let status = response.status();
            if status.is_client_error() || status.is_server_error() {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            // hyper still has to write the answer, but eviction is a graceful shutdown,
            // which finishes that first.
            activity.mark_idle();
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192))
        .keep_alive(true)
        .serve_connection(io, answer);
    let served = async move {
        tokio::pin!(connection);
        tokio::select! {
            // The connection first: a connection evicted before it was ever polled reads the
            // request already waiting in its socket, and the graceful shutdown then answers it.
            biased;
            result = connection.as_mut() => return result,
            // A dropped sender (the listener is going away) means the same as a signal.
            _ = &mut evicted => connection.as_mut().graceful_shutdown(),
        }
        connection.await
    };
    // Errors here are the client's problem (malformed request, reset): nothing to log above
    // debug.
    if let Ok(Err(err)) = tokio::time::timeout(limits.connection_timeout, served).await {
        tracing::debug!(error = %err, "HTTP connection ended with an error");
    }
    drop(slot);
}

/// Every connection being served, by id, so a full listener can pick whom to evict.
#[derive(Debug)]
struct Table {
    epoch: Instant,
    next_id: u64,
    open: HashMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    stats: Stats,
}

#[derive(Debug)]
struct Entry {
    address: IpAddr,
    activity: Arc<Activity>,
    evict: oneshot::Sender<()>,
}

/// What the listener did with the connections it accepted, logged when it stops.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    accepted: u64,
    evicted: u64,
    refused: u64,
}

/// A connection let in: its place in the table, its activity and its eviction signal.
struct Admitted {
    slot: Slot,
    activity: Arc<Activity>,
    evicted: oneshot::Receiver<()>,
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // The table is updated in single statements that cannot panic halfway; a poisoned lock
    // still guards a consistent table.
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Table {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            next_id: 0,
            open: HashMap::new(),
            per_address: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Make room for a connection from `address` within `limits` (evicting the connection idle
    /// the longest in its scope if need be) and enter it, or `None` when every connection in
    /// scope is mid-request.
    fn admit(table: &Arc<Mutex<Self>>, address: IpAddr, limits: &Limits) -> Option<Admitted> {
        let mut this = lock(table);
        let from_address = this.per_address.get(&address).copied().unwrap_or(0);
        let room = if from_address >= limits.max_per_address {
            this.evict_idlest(|entry| entry.address == address)
        } else if this.open.len() >= limits.max_connections {
            this.evict_idlest(|_| true)
        } else {
            true
        };
        if !room {
            this.stats.refused += 1;
            return None;
        }
        this.stats.accepted += 1;
        let id = this.next_id;
        this.next_id += 1;
        let activity = Arc::new(Activity::new(this.epoch));
        let (evict, evicted) = oneshot::channel();
        this.open.insert(
            id,
            Entry {
                address,
                activity: Arc::clone(&activity),
                evict,
            },
        );
        *this.per_address.entry(address).or_default() += 1;
        Some(Admitted {
            slot: Slot {
                table: Arc::clone(table),
                id,
            },
            activity,
            evicted,
        })
    }

    /// Evict the connection in `scope` that has been idle the longest; false if none is idle.
    fn evict_idlest(&mut self, scope: impl Fn(&Entry) -> bool) -> bool {
        let idlest = self
            .open
            .iter()
            .filter(|(_, entry)| scope(entry))
            .filter_map(|(id, entry)| Some((entry.activity.idle_since()?, *id)))
            .min();
        let Some((_, id)) = idlest else {
            return false;
        };
        if let Some(entry) = self.remove(id) {
            self.stats.evicted += 1;
            // The connection may have ended meanwhile: nothing left to stop then.
            let _ = entry.evict.send(());
        }
        true
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.open.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&entry.address) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&entry.address);
            }
        }
        Some(entry)
    }
}

/// A connection's place in the table, given up when its task ends (if it was not evicted
/// first).
struct Slot {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.table).remove(self.id);
    }
}

/// The client's socket, marking its connection busy as soon as bytes of a request arrive (a
/// partial head included: a slow sender is bounded by the head timeout, not evicted).
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.mark_busy();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Whether a connection has a request in progress, and if not since when it has been idle.
#[derive(Debug)]
struct Activity {
    /// The listener's start, shared by all its connections so their idle times compare.
    epoch: Instant,
    /// Nanoseconds from `epoch` to the moment the connection became idle, plus one; zero
    /// while a request is in progress.
    idle_since: AtomicU64,
}

impl Activity {
    /// A new connection is idle: it has not sent a byte yet.
    fn new(epoch: Instant) -> Self {
        let activity = Self {
            epoch,
            idle_since: AtomicU64::new(0),
        };
        activity.mark_idle();
        activity
    }

    /// Bytes of a request arrived.
    fn mark_busy(&self) {
        // Relaxed: the flag only orders evictions; a stale read picks a different victim,
        // and hyper's graceful shutdown still lets a started request finish.
        if self.idle_since.load(Ordering::Relaxed) != 0 {
            self.idle_since.store(0, Ordering::Relaxed);
        }
    }

    /// The answer to the request in progress is ready.
    fn mark_idle(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.idle_since.store(nanos + 1, Ordering::Relaxed);
    }

    fn idle_since(&self) -> Option<u64> {
        match self.idle_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(since),
        }
    }
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

    /// The solver port, as the ACME adapter drives it: what `present` publishes is served at
    /// once (`ready` has nothing to wait for), and `cleanup` takes it down within the call,
    /// before its future is even polled, which is what a dropped order attempt relies on.
    #[tokio::test]
    async fn solver_present_serves_the_token_and_cleanup_removes_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tokens = ChallengeTokens::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, tokens.clone(), async {
            let _ = stopped.await;
        }));
        let solver: &dyn ChallengeSolver = &tokens;
        assert_eq!(solver.kind(), ChallengeKind::Http01);
        let answer = ChallengeAnswer::Http01 {
            domain: "www.example.org".to_owned(),
            token: "tok-2".to_owned(),
            key_authorization: "tok-2.thumbprint".to_owned(),
        };
        let path = format!("{CHALLENGE_PREFIX}tok-2");

        solver.present(&answer).await.expect("present");
        solver.ready(&answer).await.expect("ready");
        assert_eq!(
            get_path(addr, &path).await,
            (StatusCode::OK, "tok-2.thumbprint".to_owned())
        );

        let cleanup = solver.cleanup(&answer);
        assert!(tokens.is_empty(), "removed before the future is polled");
        cleanup.await.expect("cleanup");
        assert_eq!(get_path(addr, &path).await.0, StatusCode::NOT_FOUND);
        // Twice is harmless: the order code may clean up an answer again after a drop.
        solver.cleanup(&answer).await.expect("second cleanup");

        stop.send(()).expect("server running");
        server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn solver_refuses_a_dns_answer() {
        let tokens = ChallengeTokens::new();
        let answer = ChallengeAnswer::Dns01 {
            domain: "example.org".to_owned(),
            record_name: "_acme-challenge.example.org".to_owned(),
            value: "digest".to_owned(),
        };
        let err = tokens.present(&answer).await.expect_err("wrong kind");
        assert!(
            matches!(
                err,
                SolverError::WrongKind {
                    solver: ChallengeKind::Http01,
                    requested: ChallengeKind::Dns01
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "this solver answers http-01 challenges, not dns-01"
        );
        assert!(tokens.is_empty());
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

//! The HTTP-01 responder under hostile input: path tricks, oversized and slow requests, and
//! more connections than it accepts. Real TCP on loopback, real time (short limits).

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::time::{Duration, Instant};

use certkeeper_challenge::{ChallengeTokens, Limits, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Server {
    addr: std::net::SocketAddr,
    tokens: ChallengeTokens,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tokens = ChallengeTokens::new();
    tokens.publish("real-token", "real-token.thumbprint");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(listener, tokens.clone(), limits, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        tokens,
        stop: Some(stop),
        task,
    }
}

impl Server {
    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Send raw bytes, return the status code of the response (0 when the server closed the
/// connection without one).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may close before reading everything (oversized heads): ignore write errors.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn only_published_tokens_answer_whatever_the_path_tricks() {
    let server = start(Limits::default()).await;
    let (status, body) = raw(server.addr, &get("/.well-known/acme-challenge/real-token")).await;
    assert_eq!(status, 200);
    assert!(body.ends_with("real-token.thumbprint"), "{body}");
    for path in [
        "/",
        "/.well-known/acme-challenge/",
        "/.well-known/acme-challenge/other",
        "/.well-known/acme-challenge/../acme-challenge/other",
        "/.well-known/acme-challenge/real-token/..",
        "/.well-known/acme-challenge/..%2Freal-token",
        "/.well-known/acme-challenge/real-token%2F..%2F..%2Fetc%2Fpasswd",
        "/.well-known/acme-challenge/real-token/extra",
        "/.well-known/acme-challenge/%00",
        "/etc/passwd",
    ] {
        let (status, _) = raw(server.addr, &get(path)).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = raw(
        server.addr,
        b"POST /.well-known/acme-challenge/real-token HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert_eq!(status, 405, "only GET");
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_refused_fast() {
    let server = start(Limits::default()).await;
    let huge_header = format!(
        "GET /.well-known/acme-challenge/real-token HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    let started = Instant::now();
    let (status, _) = raw(server.addr, huge_header.as_bytes()).await;
    assert!(status == 431 || status == 0, "refused, got {status}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A huge body on a GET is never read into memory: the answer comes first.
    let mut request = b"GET /.well-known/acme-challenge/real-token HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 64 * 1024));
    let (status, _) = raw(server.addr, &request).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn slow_and_surplus_connections_cannot_starve_real_challenges() {
    let limits = Limits {
        max_connections: 32,
        head_timeout: Duration::from_millis(400),
        connection_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let server = start(limits).await;

    // Slowloris: more idle connections than the responder serves.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let _ = stream.write_all(b"GET /.well-known/acme-ch").await;
        idle.push(stream);
    }
    // Surplus connections are closed at once, and the slow ones once their head deadline
    // passes: every idle connection ends up closed by the server.
    let started = Instant::now();
    for stream in &mut idle {
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(_)) | Ok(Err(_))),
            "an idle connection was held open"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // While a fresh flood of idle connections fills the listener twice over, the CA still
    // gets its answer promptly: it evicts the connection idle the longest.
    let mut flood = Vec::new();
    for _ in 0..(limits.max_connections * 2) {
        flood.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let started = Instant::now();
    let (status, body) = raw(server.addr, &get("/.well-known/acme-challenge/real-token")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(flood);
    assert_eq!(server.tokens.len(), 1);
    server.shutdown().await;
}

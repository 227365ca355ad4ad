//! Who keeps a connection when the listener is full: an error answer closes its connection, one
//! client address is capped, a newcomer evicts the connection idle the longest, and a
//! connection in the middle of a request is never evicted. Real TCP on loopback (several
//! loopback addresses stand for several clients), with a route whose handler waits for the
//! test, so "mid-request" is a fact the test observes, not a guess about timing.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use certkeeper_challenge::{ChallengeTokens, Limits, router, serve_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

const TOKEN_PATH: &str = "/.well-known/acme-challenge/real-token";

/// A `/slow` handler holds its request until the test opens the gate, and reports each
/// request it holds.
#[derive(Clone)]
struct Gate {
    entered: mpsc::UnboundedSender<()>,
    open: watch::Receiver<bool>,
}

async fn slow(State(gate): State<Gate>) -> &'static str {
    gate.entered.send(()).unwrap();
    let mut open = gate.open.clone();
    open.wait_for(|open| *open).await.unwrap();
    "slow answer"
}

struct Server {
    addr: SocketAddr,
    entered: mpsc::UnboundedReceiver<()>,
    open: watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tokens = ChallengeTokens::new();
    tokens.publish("real-token", "real-token.thumbprint");
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let (open, open_rx) = watch::channel(false);
    let routes = router(tokens).merge(Router::new().route("/slow", get(slow)).with_state(Gate {
        entered: entered_tx,
        open: open_rx,
    }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_router(listener, routes, limits, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        entered,
        open,
        stop: Some(stop),
        task,
    }
}

impl Server {
    /// Wait until a `/slow` request is inside its handler.
    async fn request_held(&mut self) {
        tokio::time::timeout(Duration::from_secs(5), self.entered.recv())
            .await
            .expect("a /slow request reaches its handler")
            .unwrap();
    }

    fn release_held_requests(&self) {
        self.open.send(true).unwrap();
    }

    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// A client connection from loopback address `127.0.0.<host>`.
async fn connect_from(addr: SocketAddr, host: u8) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)),
            0,
        ))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// One answer: its status, whether it announced `Connection: close`, and its body.
#[derive(Debug)]
struct Answer {
    status: u16,
    close: bool,
    body: String,
}

/// Send a keep-alive GET for `path`.
async fn send(stream: &mut TcpStream, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
}

/// Read one answer, or `None` when the server closes the connection before sending one.
async fn answer(stream: &mut TcpStream) -> Option<Answer> {
    let read = async {
        let mut buf = Vec::new();
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |value| value.trim().parse().unwrap());
                if buf.len() >= end + 4 + length {
                    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                    return Some(Answer {
                        status,
                        close: head.lines().any(|line| line == "connection: close"),
                        body: String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned(),
                    });
                }
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    assert!(buf.is_empty(), "a truncated answer: {buf:?}");
                    return None;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer or a close within 5 s")
}

/// A keep-alive GET on an open connection, answered.
async fn fetch(stream: &mut TcpStream, path: &str) -> Answer {
    send(stream, path).await;
    answer(stream).await.expect("an answer")
}

/// Whether the server has closed the connection (nothing more arrives, reading ends).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    answer(stream).await.is_none()
}

fn assert_challenge_answer(answer: &Answer) {
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "real-token.thumbprint");
    assert!(
        !answer.close,
        "a challenge answer keeps the connection: {answer:?}"
    );
}

#[tokio::test]
async fn an_error_answer_closes_its_connection_and_a_challenge_answer_keeps_it() {
    let server = start(Limits::default()).await;
    let mut client = connect_from(server.addr, 1).await;
    assert_challenge_answer(&fetch(&mut client, TOKEN_PATH).await);
    assert_challenge_answer(&fetch(&mut client, TOKEN_PATH).await);

    let not_found = fetch(&mut client, "/.well-known/acme-challenge/unknown").await;
    assert_eq!(not_found.status, 404);
    assert!(not_found.close, "{not_found:?}");
    assert!(closed_by_server(&mut client).await, "closed after the 404");

    // Any error answer, not only a 404: a POST to the challenge path is a 405.
    let mut client = connect_from(server.addr, 1).await;
    client
        .write_all(
            format!("POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let refused = answer(&mut client).await.unwrap();
    assert_eq!(refused.status, 405);
    assert!(refused.close, "{refused:?}");
    assert!(closed_by_server(&mut client).await, "closed after the 405");
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_listener_evicts_the_connection_idle_longest_and_answers_the_newcomer() {
    let server = start(Limits {
        max_connections: 3,
        ..Limits::default()
    })
    .await;
    // Three keep-alive connections, idle since their answers: oldest first.
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut client = connect_from(server.addr, 1).await;
        assert_challenge_answer(&fetch(&mut client, TOKEN_PATH).await);
        idle.push(client);
    }

    let mut newcomer = connect_from(server.addr, 1).await;
    assert_challenge_answer(&fetch(&mut newcomer, TOKEN_PATH).await);
    assert!(
        closed_by_server(&mut idle[0]).await,
        "the connection idle the longest is evicted"
    );
    for client in &mut idle[1..] {
        assert_challenge_answer(&fetch(client, TOKEN_PATH).await);
    }
    assert_challenge_answer(&fetch(&mut newcomer, TOKEN_PATH).await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_mid_request_is_never_evicted() {
    let mut server = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let mut held = connect_from(server.addr, 1).await;
    send(&mut held, "/slow").await;
    server.request_held().await;

    // Newcomers take the other slot in turn, each evicting the one idle before it, never the
    // connection whose request is in progress although it is the oldest.
    let mut previous = connect_from(server.addr, 1).await;
    assert_challenge_answer(&fetch(&mut previous, TOKEN_PATH).await);
    for _ in 0..3 {
        let mut newcomer = connect_from(server.addr, 1).await;
        assert_challenge_answer(&fetch(&mut newcomer, TOKEN_PATH).await);
        assert!(
            closed_by_server(&mut previous).await,
            "the idle one is evicted"
        );
        previous = newcomer;
    }

    // With every connection mid-request, a newcomer is closed on accept, unanswered.
    let mut second_held = connect_from(server.addr, 1).await;
    send(&mut second_held, "/slow").await;
    server.request_held().await;
    assert!(closed_by_server(&mut previous).await);
    let mut refused = connect_from(server.addr, 1).await;
    assert!(
        closed_by_server(&mut refused).await,
        "refused when all are busy"
    );

    server.release_held_requests();
    for client in [&mut held, &mut second_held] {
        let slow = answer(client).await.expect("the held request is answered");
        assert_eq!((slow.status, slow.body.as_str()), (200, "slow answer"));
        assert!(!slow.close, "kept alive: {slow:?}");
        assert_challenge_answer(&fetch(client, TOKEN_PATH).await);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn one_address_is_capped_and_churns_only_its_own_connections() {
    let mut server = start(Limits {
        max_connections: 8,
        max_per_address: 2,
        ..Limits::default()
    })
    .await;
    // Another client's connection has been idle the longest of all.
    let mut other = connect_from(server.addr, 3).await;
    assert_challenge_answer(&fetch(&mut other, TOKEN_PATH).await);
    let mut first = connect_from(server.addr, 2).await;
    assert_challenge_answer(&fetch(&mut first, TOKEN_PATH).await);
    let mut second = connect_from(server.addr, 2).await;
    assert_challenge_answer(&fetch(&mut second, TOKEN_PATH).await);

    // A third connection from 127.0.0.2, with the listener far from full, evicts that
    // address's own idle connection, not the other client's.
    let mut third = connect_from(server.addr, 2).await;
    assert_challenge_answer(&fetch(&mut third, TOKEN_PATH).await);
    assert!(
        closed_by_server(&mut first).await,
        "its own oldest is evicted"
    );
    assert_challenge_answer(&fetch(&mut other, TOKEN_PATH).await);

    // Both of its connections mid-request: the address gets no more, everyone else does.
    send(&mut second, "/slow").await;
    server.request_held().await;
    send(&mut third, "/slow").await;
    server.request_held().await;
    let mut refused = connect_from(server.addr, 2).await;
    assert!(
        closed_by_server(&mut refused).await,
        "over its cap, all busy"
    );
    let mut newcomer = connect_from(server.addr, 4).await;
    assert_challenge_answer(&fetch(&mut newcomer, TOKEN_PATH).await);
    assert_challenge_answer(&fetch(&mut other, TOKEN_PATH).await);

    server.release_held_requests();
    for client in [&mut second, &mut third] {
        let slow = answer(client).await.expect("the held request is answered");
        assert_eq!(slow.status, 200, "{slow:?}");
    }
    server.shutdown().await;
}

//! End-to-end: an order validates and installs while 1,024 keep-alive connections flood the
//! HTTP-01 responder (issue 11; docs/benchmarks.md, "HTTP-01 responder under hostile load",
//! where this flood denied validation).
//!
//! The daemon starts with no certificate, so its responder listens before any order exists;
//! the flood is established (every flooder has connected) before the certificate is added to
//! the configuration. Pebble's validation therefore arrives during the flood by construction,
//! not by timing. The flood and the validation both come from 127.0.0.1, so the per-address
//! cap cannot tell them apart: what lets the CA in is the eviction of idle connections.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::{Cert, PebbleOptions, Setup, key_matches, sans, serial};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Flood connections held at once.
const FLOOD: usize = 1024;
/// However the test goes, the flood ends by then.
const FLOOD_DEADLINE: Duration = Duration::from_secs(120);

/// What the flooders saw, summed over all of them.
#[derive(Debug, Default, Clone, Copy)]
struct FloodReport {
    /// Connections opened.
    connections: u64,
    /// 404 answers to the unknown paths, each followed by the server closing the connection.
    not_found: u64,
    /// Connections the server closed without an answer: evicted, refused, or past the head
    /// timeout.
    unanswered: u64,
    /// Anything else the server sent before closing.
    other: u64,
    /// Connections still open when the flood was stopped.
    held_at_end: u64,
    connect_errors: u64,
}

impl FloodReport {
    fn add(&mut self, other: &Self) {
        self.connections += other.connections;
        self.not_found += other.not_found;
        self.unanswered += other.unanswered;
        self.other += other.other;
        self.held_at_end += other.held_at_end;
        self.connect_errors += other.connect_errors;
    }
}

/// [`FLOOD`] flooders on one thread of their own, each keeping one connection to the responder
/// at a time. Even-numbered ones ask for an unknown path with keep-alive, then idle on the
/// connection; odd-numbered ones never send a byte. Whenever the server closes a connection its
/// flooder opens the next one, until the flood is stopped (or dropped, or its deadline passes).
struct Flood {
    stop: CancellationToken,
    thread: Option<JoinHandle<FloodReport>>,
}

impl Flood {
    /// Start the flood; return once every flooder has connected.
    fn start(addr: SocketAddr) -> Self {
        let stop = CancellationToken::new();
        let (connected, first_connections) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let mut flooders = tokio::task::JoinSet::new();
                    for index in 0..FLOOD {
                        flooders.spawn(flooder(index, addr, stop.clone(), connected.clone()));
                    }
                    drop(connected);
                    tokio::select! {
                        () = tokio::time::sleep(FLOOD_DEADLINE) => stop.cancel(),
                        () = stop.cancelled() => {}
                    }
                    let mut report = FloodReport::default();
                    while let Some(flooder) = flooders.join_next().await {
                        report.add(&flooder.unwrap());
                    }
                    report
                })
            })
        };
        let flood = Self {
            stop,
            thread: Some(thread),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        for established in 0..FLOOD {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                first_connections.recv_timeout(left).is_ok(),
                "only {established} of {FLOOD} flood connections could connect"
            );
        }
        flood
    }

    fn stop(mut self) -> FloodReport {
        self.stop.cancel();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn flooder(
    index: usize,
    addr: SocketAddr,
    stop: CancellationToken,
    connected: mpsc::Sender<()>,
) -> FloodReport {
    let mut report = FloodReport::default();
    let silent = index % 2 == 1;
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            stream = TcpStream::connect(addr) => stream,
        };
        let Ok(mut stream) = stream else {
            report.connect_errors += 1;
            break;
        };
        if report.connections == 0 {
            let _ = connected.send(());
        }
        report.connections += 1;
        if !silent {
            let request = format!(
                "GET /flood/{index}/{} HTTP/1.1\r\nHost: flood.example.com\r\n\r\n",
                report.connections
            );
            // An evicted connection may be closed before this is written.
            let _ = stream.write_all(request.as_bytes()).await;
        }
        let mut answer = Vec::new();
        tokio::select! {
            () = stop.cancelled() => {
                report.held_at_end += 1;
                break;
            }
            // A reset (the server closed with the request unread) ends it too.
            _ = stream.read_to_end(&mut answer) => {}
        }
        if answer.is_empty() {
            report.unanswered += 1;
        } else if answer.starts_with(b"HTTP/1.1 404 ") {
            report.not_found += 1;
        } else {
            report.other += 1;
        }
    }
    report
}

/// Room for the flood's sockets: the default soft limit of 1,024 descriptors is not.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let needed = u64::try_from(FLOOD).unwrap() + 512;
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|current| current < needed) {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).unwrap();
    }
    assert!(
        limit.current.is_none_or(|current| current >= needed),
        "this test holds {FLOOD} sockets: raise the hard limit on open files (ulimit -Hn) to {needed}"
    );
}

#[test]
fn an_order_validates_and_installs_during_a_flood_of_1024_keep_alive_connections() {
    raise_open_file_limit();
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[]);
    let mut daemon = setup.spawn_daemon(&[(
        "RUST_LOG",
        "info,certkeeper_acme=debug,certkeeper_challenge=debug",
    )]);
    daemon.wait_for_log("the HTTP-01 responder", Duration::from_secs(30), |log| {
        log.contains("HTTP-01 responder listening")
    });

    let flood = Flood::start(SocketAddr::from(([127, 0, 0, 1], setup.pebble.http01_port)));
    setup.write_config(&[Cert::new("flood", &["flood.example.com"])]);
    daemon.signal(Signal::HUP);
    daemon.wait_for_log(
        "the certificate, ordered during the flood",
        Duration::from_secs(90),
        |log| log.contains("certificate installed") || log.contains("will retry with backoff"),
    );
    let report = flood.stop();

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    let log = daemon.log_text();
    let stopped = log
        .lines()
        .filter(|line| line.contains("HTTP listener stopped"))
        .collect::<Vec<_>>();
    eprintln!("flood: {report:?}\nresponder: {stopped:#?}");

    // Validated at the first attempt: a refused validation would fail the order and show up
    // as a retry.
    assert!(log.contains("certificate installed"), "{log}");
    assert_eq!(
        log.matches("starting attempt").count(),
        1,
        "one attempt, no retry:\n{log}"
    );
    assert_eq!(setup.versions("flood"), ["v0001"]);
    let live = setup.live("flood");
    let cert = live.join("cert.pem");
    assert_eq!(sans(&cert), ["flood.example.com"]);
    assert!(key_matches(&cert, &live.join("privkey.pem")));
    assert_eq!(setup.pebble.cert_status(&serial(&cert))["Status"], "Valid");

    // The flood was a flood the whole time: every flooder kept reconnecting until it was
    // stopped, the unknown paths got 404s that closed their connections, and the silent
    // connections were closed unanswered.
    assert_eq!(report.connect_errors, 0, "{report:?}");
    assert!(
        report.connections >= u64::try_from(FLOOD).unwrap(),
        "{report:?}"
    );
    assert!(report.not_found > 0, "{report:?}");
    assert!(report.unanswered > 0, "{report:?}");
    assert_eq!(report.other, 0, "{report:?}");
    let evicted: u64 = stopped
        .iter()
        .filter_map(|line| {
            let field = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("evicted="))?;
            field.parse::<u64>().ok()
        })
        .sum();
    assert!(
        evicted > 0,
        "the responder evicted idle connections: {stopped:?}"
    );
}

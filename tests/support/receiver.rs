//! A webhook receiver for the notification tests: a plain HTTP/1.1 server on loopback that
//! records every `POST /hook` body (as JSON) and answers `200`. Its thread ends with the test
//! process (it only ever blocks in `accept`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    /// On a free port.
    pub fn start() -> Self {
        Self::listen(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// On `port` (one a daemon was already told about, see [`hook_url`]).
    pub fn start_on(port: u16) -> Self {
        Self::listen(TcpListener::bind(("127.0.0.1", port)).unwrap())
    }

    fn listen(listener: TcpListener) -> Self {
        let url = hook_url(listener.local_addr().unwrap().port());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::clone(&bodies);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                let mut line = String::new();
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or_default();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or_default() == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() && request_line.starts_with("POST /hook ") {
                    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    received
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(json);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { url, bodies }
    }

    /// Every body received so far, in arrival order.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The bodies whose `event` is `event`.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.bodies()
            .into_iter()
            .filter(|body| body["event"] == event)
            .collect()
    }

    /// Wait until `pred` holds for the bodies received, or fail after `timeout` showing them.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let bodies = self.bodies();
            if pred(&bodies) {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; received: {bodies:#?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The URL a [`Receiver`] on `port` answers at.
pub fn hook_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hook")
}

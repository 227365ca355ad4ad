//! A TCP round-robin in front of several listeners: each connection goes to the next backend
//! in turn (skipping one that refuses connections, as a health check would), as a load
//! balancer in front of a fleet spreads the CA's HTTP-01 requests. Plain threads copying
//! bytes both ways; it runs until the test process ends.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// Connections accepted so far, per backend index.
pub struct RoundRobin {
    pub per_backend: Arc<Vec<AtomicUsize>>,
}

impl RoundRobin {
    /// Listen on `127.0.0.1:port` and spread connections over `backends` (ports on 127.0.0.1).
    pub fn start(port: u16, backends: Vec<u16>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the round-robin");
        let per_backend: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let counts = Arc::clone(&per_backend);
        thread::spawn(move || {
            let mut next = 0;
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let first = next % backends.len();
                next += 1;
                let backends = backends.clone();
                let counts = Arc::clone(&counts);
                thread::spawn(move || {
                    // A backend that refuses the connection (its node is dead) is skipped, as a
                    // load balancer's health check would; the next one in turn gets it.
                    for offset in 0..backends.len() {
                        let index = (first + offset) % backends.len();
                        if let Ok(server) = TcpStream::connect(("127.0.0.1", backends[index])) {
                            counts[index].fetch_add(1, Ordering::Relaxed);
                            let _ = forward(client, server);
                            return;
                        }
                    }
                });
            }
        });
        Self { per_backend }
    }

    /// Connections each backend got.
    pub fn counts(&self) -> Vec<usize> {
        self.per_backend
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }
}

fn forward(client: TcpStream, server: TcpStream) -> io::Result<()> {
    let (mut client_read, mut server_write) = (client.try_clone()?, server.try_clone()?);
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = io::copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}

//! Waiting until a record is visible where the CA will look.
//!
//! The CA resolves the `_acme-challenge` name through the zone's authoritative servers, and
//! any one of them may answer; so the check asks every one of them directly (no recursion,
//! no cache in between) and is done only when all have the value. When resolvers are
//! configured (a split-horizon setup, a server certkeeper cannot reach directly, or a test),
//! those are asked instead, with recursion.
//!
//! All servers are asked at once, every poll interval, each query bounded by its own
//! timeout, until the overall deadline; the error then names the record and every server that
//! did not have it yet, with what it last answered.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use hickory_proto::rr::{Name, RecordType};
use tokio::time::Instant;

use crate::error::{DnsError, Rcode};
use crate::lookup::txt_values;
use crate::wire::{display_name, query};

/// A server to check, as named in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedServer {
    /// `ns1.example.test. (127.0.0.1:53)` or `127.0.0.1:5353`.
    pub(crate) label: String,
    pub(crate) address: SocketAddr,
    /// Ask with RD set: a resolver, not an authoritative server.
    pub(crate) recursion: bool,
}

/// How long and how often to check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polling {
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) query_timeout: Duration,
}

/// Resolve once every server in `servers` has `value` at `fqdn`.
pub(crate) async fn wait_until_visible(
    servers: &[CheckedServer],
    fqdn: &Name,
    value: &str,
    polling: Polling,
) -> Result<(), DnsError> {
    let deadline = Instant::now() + polling.timeout;
    loop {
        let missing = missing_at(servers, fqdn, value, polling.query_timeout, deadline).await;
        if missing.is_empty() {
            tracing::debug!(fqdn = %fqdn, servers = servers.len(), "TXT record visible everywhere");
            return Ok(());
        }
        let next = Instant::now() + polling.interval;
        if next >= deadline {
            return Err(DnsError::NotPropagated {
                fqdn: display_name(fqdn),
                value: value.to_owned(),
                timeout: polling.timeout,
                missing,
            });
        }
        tracing::debug!(fqdn = %fqdn, missing = ?missing, "TXT record not visible everywhere yet");
        tokio::time::sleep_until(next).await;
    }
}

/// The servers that do not have the value now, each with why.
async fn missing_at(
    servers: &[CheckedServer],
    fqdn: &Name,
    value: &str,
    query_timeout: Duration,
    deadline: Instant,
) -> Vec<String> {
    let timeout = query_timeout.min(deadline.saturating_duration_since(Instant::now()));
    let checks = servers.iter().map(|server| async move {
        let problem = match query(
            server.address,
            fqdn,
            RecordType::TXT,
            server.recursion,
            timeout,
        )
        .await
        {
            Ok(answer) => {
                let values = txt_values(&answer, fqdn);
                if values.iter().any(|found| found == value) {
                    return None;
                }
                if values.is_empty() {
                    format!("{}, no TXT record", Rcode::from(answer.response_code()))
                } else {
                    format!("{} other TXT values", values.len())
                }
            }
            Err(DnsError::Timeout { .. }) => "no answer".to_owned(),
            Err(err) => err.to_string(),
        };
        Some(format!("{} ({problem})", server.label))
    });
    join_all(checks).await.into_iter().flatten().collect()
}

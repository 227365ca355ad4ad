//! The optional admin listener: `GET /healthz` and Prometheus `GET /metrics`.
//!
//! Off by default; the config's `[admin] listen` turns it on (loopback is the expected use:
//! metrics name every certificate). The daemon's loop publishes a [`Snapshot`] after every
//! change and the handlers only read it, so scraping never touches the disk or the engine.
//! Connections get the HTTP-01 responder's limits (head size and time, a deadline per
//! connection, a cap on connections), so a local user cannot pile up idle connections.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use certkeeper_challenge::Limits;
use tokio::net::TcpListener;

/// What the metrics say about one certificate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CertMetrics {
    pub name: String,
    pub not_after_unix: Option<i64>,
    pub last_success_unix: Option<i64>,
    pub consecutive_failures: u32,
    pub successes_total: u64,
    pub failures_total: u64,
    /// Failing and inside its urgent threshold (or missing).
    pub urgent_failing: bool,
    /// A deploy hook or reload has to succeed yet.
    pub deploy_pending: bool,
    /// The challenge type it answers: `http-01` or `dns-01`.
    pub challenge: &'static str,
    /// What answers it: `embedded`, `webroot` or the DNS provider's name.
    pub solver: String,
    /// The CA's suggested renewal window for the live certificate (ARI), Unix time.
    pub renewal_window_start_unix: Option<i64>,
    pub renewal_window_end_unix: Option<i64>,
    /// The instant chosen inside it.
    pub renewal_at_unix: Option<i64>,
    /// The last renewal-information check: when, and whether the CA answered.
    pub renewal_info_checked_unix: Option<i64>,
    pub renewal_info_ok: Option<bool>,
    /// The ACME profile the certificate asks for, if any.
    pub profile: Option<String>,
}

/// The daemon's state as the admin endpoints show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub certificates: Vec<CertMetrics>,
    pub orders_in_flight: usize,
    /// Notices waiting in the outbox, per notify target.
    pub notices_undelivered: Vec<(String, usize)>,
}

/// What the metrics say about this node in its fleet (`[cluster]`); rendered only when set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetMetrics {
    /// Leases this node holds now.
    pub leases_held: usize,
    /// Per certificate: whether this node's `live/` holds the fleet's newest version.
    pub in_sync: Vec<(String, bool)>,
    /// Whether the last exchange with the fleet's database succeeded.
    pub database_up: bool,
}

/// Shared between the loop (writer) and the handlers (readers).
///
/// The fleet's part has its own slot: it is fed by the fleet tasks (leases, sync, the
/// database's health) on their own schedule, not by the certificate loop, and a node outside a
/// fleet never sets it.
#[derive(Debug, Clone, Default)]
pub struct SharedSnapshot(Arc<RwLock<Snapshot>>, Arc<RwLock<Option<FleetMetrics>>>);

impl SharedSnapshot {
    pub fn publish(&self, snapshot: Snapshot) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    /// Publish this node's fleet metrics (`None`: not in a fleet, nothing rendered).
    pub fn publish_fleet(&self, fleet: Option<FleetMetrics>) {
        *self.1.write().unwrap_or_else(PoisonError::into_inner) = fleet;
    }

    fn read(&self) -> Snapshot {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn read_fleet(&self) -> Option<FleetMetrics> {
        self.1
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub fn router(shared: SharedSnapshot) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// The admin listener's bounds: the HTTP-01 responder's connection handling with a smaller
/// cap. Any local user can connect to it, and a scraper needs one connection, not hundreds.
#[must_use]
pub fn limits() -> Limits {
    Limits {
        max_connections: 32,
        ..Limits::default()
    }
}

/// Serve until `shutdown` resolves, within [`limits`].
pub async fn serve(
    listener: TcpListener,
    shared: SharedSnapshot,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    certkeeper_challenge::serve_router(listener, router(shared), limits(), shutdown).await
}

/// 200 when no certificate is failing inside its urgent threshold, 503 otherwise.
async fn healthz(State(shared): State<SharedSnapshot>) -> Response {
    let snapshot = shared.read();
    let failing: Vec<&str> = snapshot
        .certificates
        .iter()
        .filter(|c| c.urgent_failing)
        .map(|c| c.name.as_str())
        .collect();
    if failing.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("failing close to expiry: {}\n", failing.join(" ")),
        )
            .into_response()
    }
}

async fn metrics(State(shared): State<SharedSnapshot>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&shared.read(), shared.read_fleet().as_ref()),
    )
        .into_response()
}

/// The Prometheus text exposition of `snapshot`, and of `fleet` for a node in a fleet.
pub fn render(snapshot: &Snapshot, fleet: Option<&FleetMetrics>) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str,
         kind: &str,
         help: &str,
         values: &mut dyn Iterator<Item = (Option<&str>, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (cert, value) in values {
                match cert {
                    Some(cert) => {
                        let _ = writeln!(out, "{name}{{cert=\"{}\"}} {value}", escape(cert));
                    }
                    None => {
                        let _ = writeln!(out, "{name} {value}");
                    }
                }
            }
        };
    let certs = &snapshot.certificates;
    family(
        "certkeeper_certificate_not_after_timestamp_seconds",
        "gauge",
        "Expiry of the live certificate (Unix time).",
        &mut certs
            .iter()
            .filter_map(|c| Some((Some(c.name.as_str()), c.not_after_unix?.to_string()))),
    );
    family(
        "certkeeper_certificate_last_success_timestamp_seconds",
        "gauge",
        "When certkeeper last installed a certificate for this lineage (Unix time).",
        &mut certs
            .iter()
            .filter_map(|c| Some((Some(c.name.as_str()), c.last_success_unix?.to_string()))),
    );
    family(
        "certkeeper_certificate_consecutive_failures",
        "gauge",
        "Failed attempts since the last success.",
        &mut certs
            .iter()
            .map(|c| (Some(c.name.as_str()), c.consecutive_failures.to_string())),
    );
    family(
        "certkeeper_renewals_total",
        "counter",
        "Certificates installed for this lineage.",
        &mut certs
            .iter()
            .map(|c| (Some(c.name.as_str()), c.successes_total.to_string())),
    );
    family(
        "certkeeper_failures_total",
        "counter",
        "Failed attempts for this lineage.",
        &mut certs
            .iter()
            .map(|c| (Some(c.name.as_str()), c.failures_total.to_string())),
    );
    family(
        "certkeeper_certificate_deploy_pending",
        "gauge",
        "1 while a deploy hook or reload of the live certificate has yet to succeed.",
        &mut certs.iter().map(|c| {
            (
                Some(c.name.as_str()),
                u8::from(c.deploy_pending).to_string(),
            )
        }),
    );
    family(
        "certkeeper_certificate_renewal_window_start_timestamp_seconds",
        "gauge",
        "Start of the renewal window the CA suggests for the live certificate (ARI; Unix time).",
        &mut certs.iter().filter_map(|c| {
            Some((
                Some(c.name.as_str()),
                c.renewal_window_start_unix?.to_string(),
            ))
        }),
    );
    family(
        "certkeeper_certificate_renewal_window_end_timestamp_seconds",
        "gauge",
        "End of the renewal window the CA suggests for the live certificate (ARI; Unix time).",
        &mut certs.iter().filter_map(|c| {
            Some((
                Some(c.name.as_str()),
                c.renewal_window_end_unix?.to_string(),
            ))
        }),
    );
    family(
        "certkeeper_certificate_renewal_scheduled_timestamp_seconds",
        "gauge",
        "The instant chosen inside the CA's renewal window to renew at (Unix time).",
        &mut certs
            .iter()
            .filter_map(|c| Some((Some(c.name.as_str()), c.renewal_at_unix?.to_string()))),
    );
    family(
        "certkeeper_certificate_renewal_info_checked_timestamp_seconds",
        "gauge",
        "When the CA was last asked for renewal information about the live certificate.",
        &mut certs.iter().filter_map(|c| {
            Some((
                Some(c.name.as_str()),
                c.renewal_info_checked_unix?.to_string(),
            ))
        }),
    );
    family(
        "certkeeper_certificate_renewal_info_ok",
        "gauge",
        "1 when the last renewal-information check was answered, 0 when it failed.",
        &mut certs.iter().filter_map(|c| {
            Some((
                Some(c.name.as_str()),
                u8::from(c.renewal_info_ok?).to_string(),
            ))
        }),
    );
    family(
        "certkeeper_orders_in_flight",
        "gauge",
        "Orders being processed right now.",
        &mut std::iter::once((None, snapshot.orders_in_flight.to_string())),
    );
    let _ = writeln!(
        out,
        "# HELP certkeeper_notices_undelivered Notices in the outbox not yet delivered to a \
         notify target."
    );
    let _ = writeln!(out, "# TYPE certkeeper_notices_undelivered gauge");
    for (target, count) in &snapshot.notices_undelivered {
        let _ = writeln!(
            out,
            "certkeeper_notices_undelivered{{target=\"{}\"}} {count}",
            escape(target)
        );
    }
    let _ = writeln!(
        out,
        "# HELP certkeeper_certificate_challenge_info The challenge a lineage answers and what \
         answers it (embedded, webroot or the DNS provider's name); always 1."
    );
    let _ = writeln!(out, "# TYPE certkeeper_certificate_challenge_info gauge");
    for cert in &snapshot.certificates {
        let _ = writeln!(
            out,
            "certkeeper_certificate_challenge_info{{cert=\"{}\",challenge=\"{}\",solver=\"{}\"}} 1",
            escape(&cert.name),
            escape(cert.challenge),
            escape(&cert.solver)
        );
    }
    let _ = writeln!(
        out,
        "# HELP certkeeper_certificate_profile_info The ACME profile a lineage asks its CA for; \
         always 1, absent for lineages without one."
    );
    let _ = writeln!(out, "# TYPE certkeeper_certificate_profile_info gauge");
    for cert in &snapshot.certificates {
        if let Some(profile) = &cert.profile {
            let _ = writeln!(
                out,
                "certkeeper_certificate_profile_info{{cert=\"{}\",profile=\"{}\"}} 1",
                escape(&cert.name),
                escape(profile)
            );
        }
    }
    if let Some(fleet) = fleet {
        render_fleet(&mut out, fleet);
    }
    out
}

fn render_fleet(out: &mut String, fleet: &FleetMetrics) {
    let _ = writeln!(
        out,
        "# HELP certkeeper_fleet_leases_held Certificate leases this node holds in its fleet."
    );
    let _ = writeln!(out, "# TYPE certkeeper_fleet_leases_held gauge");
    let _ = writeln!(out, "certkeeper_fleet_leases_held {}", fleet.leases_held);
    let _ = writeln!(
        out,
        "# HELP certkeeper_fleet_in_sync 1 when this node's live certificate is the fleet's \
         newest version, 0 when it is behind."
    );
    let _ = writeln!(out, "# TYPE certkeeper_fleet_in_sync gauge");
    for (cert, in_sync) in &fleet.in_sync {
        let _ = writeln!(
            out,
            "certkeeper_fleet_in_sync{{cert=\"{}\"}} {}",
            escape(cert),
            u8::from(*in_sync)
        );
    }
    let _ = writeln!(
        out,
        "# HELP certkeeper_fleet_database_up 1 when the fleet's database answered the last \
         exchange, 0 when it is unreachable."
    );
    let _ = writeln!(out, "# TYPE certkeeper_fleet_database_up gauge");
    let _ = writeln!(
        out,
        "certkeeper_fleet_database_up {}",
        u8::from(fleet.database_up)
    );
}

/// Label values escape backslash, quote and newline (certificate names cannot contain them,
/// but the exposition format must never break).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let text = render(
            &Snapshot {
                certificates: vec![
                    CertMetrics {
                        name: "www".to_owned(),
                        not_after_unix: Some(1_800_000_000),
                        last_success_unix: Some(1_790_000_000),
                        consecutive_failures: 0,
                        successes_total: 3,
                        failures_total: 1,
                        urgent_failing: false,
                        deploy_pending: true,
                        challenge: "dns-01",
                        solver: "bind".to_owned(),
                        renewal_window_start_unix: Some(1_795_000_000),
                        renewal_window_end_unix: Some(1_795_086_400),
                        renewal_at_unix: Some(1_795_040_000),
                        renewal_info_checked_unix: Some(1_790_000_100),
                        renewal_info_ok: Some(true),
                        profile: Some("shortlived".to_owned()),
                    },
                    CertMetrics {
                        name: "mail".to_owned(),
                        consecutive_failures: 2,
                        failures_total: 2,
                        challenge: "http-01",
                        solver: "embedded".to_owned(),
                        ..CertMetrics::default()
                    },
                ],
                orders_in_flight: 1,
                notices_undelivered: vec![("ops".to_owned(), 2)],
            },
            None,
        );
        assert!(
            !text.contains("certkeeper_fleet"),
            "no fleet metrics outside a fleet"
        );
        for line in [
            "# TYPE certkeeper_certificate_not_after_timestamp_seconds gauge",
            "certkeeper_certificate_not_after_timestamp_seconds{cert=\"www\"} 1800000000",
            "certkeeper_certificate_consecutive_failures{cert=\"mail\"} 2",
            "certkeeper_renewals_total{cert=\"www\"} 3",
            "certkeeper_failures_total{cert=\"mail\"} 2",
            "certkeeper_orders_in_flight 1",
            "# TYPE certkeeper_notices_undelivered gauge",
            "certkeeper_notices_undelivered{target=\"ops\"} 2",
            "certkeeper_certificate_renewal_window_start_timestamp_seconds{cert=\"www\"} 1795000000",
            "certkeeper_certificate_renewal_window_end_timestamp_seconds{cert=\"www\"} 1795086400",
            "certkeeper_certificate_renewal_scheduled_timestamp_seconds{cert=\"www\"} 1795040000",
            "certkeeper_certificate_renewal_info_ok{cert=\"www\"} 1",
            "certkeeper_certificate_profile_info{cert=\"www\",profile=\"shortlived\"} 1",
            "certkeeper_certificate_deploy_pending{cert=\"www\"} 1",
            "certkeeper_certificate_deploy_pending{cert=\"mail\"} 0",
            "# TYPE certkeeper_certificate_challenge_info gauge",
            "certkeeper_certificate_challenge_info{cert=\"www\",challenge=\"dns-01\",solver=\"bind\"} 1",
            "certkeeper_certificate_challenge_info{cert=\"mail\",challenge=\"http-01\",solver=\"embedded\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("not_after_timestamp_seconds{cert=\"mail\"}"),
            "no expiry for a lineage without a certificate"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn renders_fleet_metrics_in_a_fleet() {
        let fleet = FleetMetrics {
            leases_held: 2,
            in_sync: vec![("www".to_owned(), true), ("mail".to_owned(), false)],
            database_up: false,
        };
        let text = render(&Snapshot::default(), Some(&fleet));
        for line in [
            "# TYPE certkeeper_fleet_leases_held gauge",
            "certkeeper_fleet_leases_held 2",
            "# TYPE certkeeper_fleet_in_sync gauge",
            "certkeeper_fleet_in_sync{cert=\"www\"} 1",
            "certkeeper_fleet_in_sync{cert=\"mail\"} 0",
            "# TYPE certkeeper_fleet_database_up gauge",
            "certkeeper_fleet_database_up 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let shared = SharedSnapshot::default();
        shared.publish_fleet(Some(fleet.clone()));
        assert_eq!(shared.read_fleet(), Some(fleet));
    }
}

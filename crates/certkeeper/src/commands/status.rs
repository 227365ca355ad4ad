//! `certkeeper status [--json]`: what is live for every certificate, what happens next and how
//! the last attempt went. It reads the state directory only (no lock, no IPC), so it works
//! while the daemon runs: each lineage once, its pair checked against that state, and plans
//! with the same pure planner the daemon uses. Each row names the challenge the certificate
//! answers and its solver (`http-01`, `http-01 webroot /var/www/html`, `dns-01 bind`).
//!
//! Exit code 0 when all is well, 1 when a certificate is failing or inside its urgent
//! threshold (missing, expired or close to expiry): usable from monitoring.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use certkeeper_core::schedule::plan_certificate;
use certkeeper_core::{CertificateSpec, Inventory};
use certkeeper_notify::{Entry, Outbox};
use certkeeper_store::{LineageState, Store, from_unix_seconds};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::engine::plan::{attempts_from, par_map};
use crate::engine::solvers::ChallengeLabel;
use crate::engine::{fleet, notices};
use crate::exit::Exit;
use crate::report::{days_left, error_chain, timestamp};

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    domains: Vec<String>,
    /// How it proves control: `http-01`, `http-01 webroot DIR` or `dns-01 PROVIDER`.
    challenge: String,
    not_after: Option<String>,
    days_left: Option<i64>,
    issuer: Option<String>,
    serial: Option<String>,
    /// valid, due, expired, missing, revoked, failing, deploy failing, unreadable
    state: String,
    /// issue, renew or none, and when
    next_action: String,
    next_action_at: Option<String>,
    urgent: bool,
    consecutive_failures: u32,
    last_success: Option<String>,
    last_error: Option<String>,
    order_in_flight: Option<String>,
    /// Whether the running daemon is attempting it now; absent when no daemon answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt_running: Option<bool>,
    /// The ACME profile the configuration asks for.
    profile: Option<String>,
    /// The CA refused that profile: not ordered again until the configuration changes.
    profile_refused: bool,
    /// What the CA last said about renewing the live certificate (ARI); absent when it was
    /// never asked about this certificate (or its CA offers no ARI).
    renewal_info: Option<RenewalInfoRow>,
    /// This certificate's notices still waiting in the outbox, per `[[notify]]` target: every
    /// configured target (0 when nothing waits), then any other target that holds some.
    notices_undelivered: BTreeMap<String, usize>,
    /// In a fleet: `in sync`, `behind` (the fleet has another version), `not yet published`
    /// or `not issued yet`; absent outside a fleet or when its database did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<&'static str>,
}

/// What the fleet's database says, for `status` in a fleet: this node's name and each
/// certificate's newest serial; or why it could not be asked.
pub type FleetView = Result<(String, HashMap<String, String>), String>;

/// The fleet's view for `status`, `None` outside a fleet. Bounded: an unreachable database
/// costs `status` a few seconds, not its answer.
pub async fn fleet_view(inventory: &Inventory) -> Option<FleetView> {
    let cluster = inventory.cluster.as_ref()?;
    let view = async {
        let mut settings = fleet::settings(cluster).map_err(|err| error_chain(&err))?;
        settings.connect_timeout = FLEET_TIMEOUT;
        settings.operation_timeout = FLEET_TIMEOUT;
        let fleet = certkeeper_fleet::Fleet::connect(&settings)
            .await
            .map_err(|err| error_chain(&err))?;
        let heads = fleet
            .version_heads()
            .await
            .map_err(|err| error_chain(&err))?;
        Ok((
            fleet.node().to_owned(),
            heads
                .into_iter()
                .map(|head| (head.lineage, head.serial))
                .collect(),
        ))
    };
    Some(view.await)
}

/// How long `status` waits for the fleet's database.
const FLEET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A certificate's place in the fleet: `local` is this node's live serial.
fn fleet_state(local: Option<&str>, fleet: Option<&String>) -> &'static str {
    let trim = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    match (local, fleet) {
        (None, None) => "not issued yet",
        (Some(_), None) => "not yet published",
        (Some(local), Some(fleet)) if trim(local) == trim(fleet) => "in sync",
        (_, Some(_)) => "behind",
    }
}

/// A lineage's last renewal-information check, for the live certificate.
#[derive(Debug, Serialize)]
struct RenewalInfoRow {
    /// The CA's suggested window.
    window_start: Option<String>,
    window_end: Option<String>,
    /// The instant chosen inside it: when the certificate renews (unless held).
    renew_at: Option<String>,
    explanation_url: Option<String>,
    last_check: String,
    /// `ok`, or why the check failed.
    last_check_outcome: String,
    /// `None`: not asked again before the certificate is replaced.
    next_check: Option<String>,
}

impl RenewalInfoRow {
    fn of(state: &LineageState, serial_hex: &str) -> Option<Self> {
        let record = state
            .renewal_info
            .as_ref()
            .filter(|record| record.serial_hex.eq_ignore_ascii_case(serial_hex))?;
        let at = |unix: Option<i64>| unix.map(|t| timestamp(from_unix_seconds(t)));
        Some(Self {
            window_start: at(record.window_start_unix),
            window_end: at(record.window_end_unix),
            renew_at: at(record.renew_at_unix),
            explanation_url: record.explanation_url.clone(),
            last_check: timestamp(from_unix_seconds(record.checked_at_unix)),
            last_check_outcome: record.last_error.clone().unwrap_or_else(|| "ok".to_owned()),
            next_check: at(record.next_check_unix),
        })
    }

    /// `window 2026-12-10T00:00:00Z .. 2026-12-12T00:00:00Z, renew at ...; checked ... (ok),
    /// next check ...`
    fn line(&self) -> String {
        let mut line = match (&self.window_start, &self.window_end) {
            (Some(start), Some(end)) => format!(
                "CA renewal window {start} .. {end}, renew at {}",
                self.renew_at.as_deref().unwrap_or("-")
            ),
            _ => "no CA renewal window yet".to_owned(),
        };
        line.push_str(&format!(
            "; checked {} ({}), next check {}",
            self.last_check,
            self.last_check_outcome,
            self.next_check.as_deref().unwrap_or("none before expiry")
        ));
        line
    }
}

/// The notification targets (configured ones first) and the notices waiting in the outbox
/// for them; nothing is created when there is no outbox.
fn outbox_entries(store: &Store, inventory: &Inventory) -> (Vec<String>, Vec<Entry>) {
    let targets: Vec<String> = inventory.notify.iter().map(|n| n.name.clone()).collect();
    let path = store.outbox_path();
    if !path.is_dir() {
        return (targets, Vec::new());
    }
    match Outbox::open(path) {
        Ok(outbox) => (targets, notices::pending(&outbox)),
        Err(err) => {
            eprintln!("warning: {}", error_chain(&err));
            (targets, Vec::new())
        }
    }
}

/// `running`: the certificates a running daemon is attempting now (from its control socket),
/// `None` when no daemon answered.
pub fn run(
    inventory: &Inventory,
    args: &StatusArgs,
    running: Option<&[String]>,
    fleet: Option<&FleetView>,
) -> anyhow::Result<Exit> {
    let store = Store::open(&inventory.state_dir)?;
    let now = SystemTime::now();
    let (targets, waiting) = outbox_entries(&store, inventory);
    let rows: Vec<Row> = par_map(&inventory.certificates, |spec| {
        let name = spec.name.as_str();
        let mine = waiting
            .iter()
            .filter(|entry| entry.notice.certificate.as_deref() == Some(name));
        let row = row(&store, inventory, spec, now);
        Row {
            fleet: match fleet {
                Some(Ok((_, heads))) => Some(fleet_state(row.serial.as_deref(), heads.get(name))),
                _ => None,
            },
            attempt_running: running.map(|names| names.iter().any(|n| n == name)),
            notices_undelivered: notices::count_by_target(mine, &targets)
                .into_iter()
                .collect(),
            ..row
        }
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows);
        match running {
            None => println!("daemon: not answering (status read from the state directory)"),
            Some([]) => println!("daemon: running; no attempt in flight"),
            Some(names) => println!("daemon: running; attempts in flight: {}", names.join(" ")),
        }
        for (target, count) in notices::count_by_target(&waiting, &targets) {
            println!("notify {target}: {count} undelivered");
        }
        match fleet {
            None => {}
            Some(Err(why)) => println!("fleet: the database did not answer: {why}"),
            Some(Ok((node, _))) => {
                let behind: Vec<&str> = rows
                    .iter()
                    .filter(|row| matches!(row.fleet, Some("behind" | "not yet published")))
                    .map(|row| row.name.as_str())
                    .collect();
                if behind.is_empty() {
                    println!("fleet: node {node}: in sync");
                } else {
                    println!(
                        "fleet: node {node}: not in sync: {} (certkeeper cluster status tells more)",
                        behind.join(" ")
                    );
                }
            }
        }
    }
    let unwell = rows.iter().any(|r| {
        r.urgent
            || r.consecutive_failures > 0
            || r.state == "unreadable"
            || r.state == "deploy failing"
    });
    Ok(if unwell { Exit::Failure } else { Exit::Success })
}

fn row(store: &Store, inventory: &Inventory, spec: &CertificateSpec, now: SystemTime) -> Row {
    let (state, live, read_error) = match store.lineage(&spec.name) {
        Ok(lineage) => match lineage.live() {
            Ok(live) => (lineage.state().clone(), live, None),
            Err(err) => (lineage.state().clone(), None, Some(error_chain(&err))),
        },
        Err(err) => (LineageState::default(), None, Some(error_chain(&err))),
    };
    let observed = live.as_ref().map(|l| &l.observed);
    let attempts = attempts_from(&state.attempts, spec);
    let profile_refused =
        state.attempts.refused_profile.is_some() && state.attempts.refused_profile == spec.profile;
    let planned = plan_certificate(&spec.name, spec, observed, &attempts, &spec.schedule, now)
        .filter(|_| !profile_refused);
    let label = match (&read_error, observed, &planned) {
        (Some(_), _, _) => "unreadable",
        (None, Some(o), _) if o.revoked => "revoked",
        _ if attempts.consecutive_failures > 0 => "failing",
        _ if state.attempts.pending_deploy => "deploy failing",
        (None, None, _) => "missing",
        (None, Some(o), _) if now >= o.not_after => "expired",
        (None, Some(_), Some(p)) if p.at <= now => "due",
        _ => "valid",
    };
    let (next_action, next_action_at, urgent) = match &planned {
        Some(p) => (
            if p.renewal { "renew" } else { "issue" }.to_owned(),
            Some(timestamp(p.at.max(now))),
            p.urgent && (p.at <= now || observed.is_none()),
        ),
        None if profile_refused => ("none (profile refused)".to_owned(), None, false),
        None => ("none".to_owned(), None, false),
    };
    let renewal_info = live
        .as_ref()
        .and_then(|live| RenewalInfoRow::of(&state, &live.serial_hex));
    Row {
        name: spec.name.to_string(),
        domains: spec.domains.iter().map(ToString::to_string).collect(),
        challenge: ChallengeLabel::of(inventory, &spec.name).to_string(),
        not_after: observed.map(|o| timestamp(o.not_after)),
        days_left: observed.map(|o| days_left(now, o.not_after)),
        issuer: live.as_ref().map(|l| l.issuer.clone()),
        serial: live.as_ref().map(|l| l.serial_hex.clone()),
        state: label.to_owned(),
        next_action,
        next_action_at,
        urgent,
        consecutive_failures: attempts.consecutive_failures,
        last_success: state
            .attempts
            .last_success_at_unix
            .map(|t| timestamp(from_unix_seconds(t))),
        last_error: read_error.or(state.attempts.last_error.clone()),
        order_in_flight: state.pending_order.map(|p| p.order_url),
        attempt_running: None,
        profile: spec.profile.clone(),
        profile_refused,
        renewal_info,
        notices_undelivered: BTreeMap::new(),
        fleet: None,
    }
}

fn print_table(rows: &[Row]) {
    let header = [
        "NAME",
        "STATE",
        "NOT AFTER",
        "DAYS",
        "NEXT",
        "SERIAL",
        "CHALLENGE",
        "DOMAINS",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.state.clone(),
                r.not_after.clone().unwrap_or_else(|| "-".to_owned()),
                r.days_left
                    .map_or_else(|| "-".to_owned(), |d| d.to_string()),
                match &r.next_action_at {
                    Some(at) => format!("{} {at}", r.next_action),
                    None => r.next_action.clone(),
                },
                r.serial.clone().unwrap_or_else(|| "-".to_owned()),
                r.challenge.clone(),
                r.domains.join(","),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cols: &[&str]| {
        let padded: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header);
    for row in &cells {
        line(&row.each_ref().map(String::as_str));
    }
    for row in rows {
        if let Some(issuer) = &row.issuer {
            println!("{}: issuer {issuer}", row.name);
        }
        if row.consecutive_failures > 0 || row.last_error.is_some() {
            println!(
                "{}: {} consecutive failure(s); last error: {}",
                row.name,
                row.consecutive_failures,
                row.last_error.as_deref().unwrap_or("-")
            );
        }
        if let Some(order) = &row.order_in_flight {
            println!("{}: order in flight {order}", row.name);
        }
        if let Some(info) = &row.renewal_info {
            println!("{}: {}", row.name, info.line());
            if let Some(url) = &info.explanation_url {
                println!("{}: the CA explains its window: {url}", row.name);
            }
        }
        match (&row.profile, row.profile_refused) {
            (Some(profile), true) => println!(
                "{}: profile {profile:?} refused by the CA; not ordered until the configuration changes",
                row.name
            ),
            (Some(profile), false) => println!("{}: profile {profile}", row.name),
            (None, _) => {}
        }
    }
}

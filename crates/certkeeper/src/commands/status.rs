//! `certkeeper status [--json]`: what is live for every certificate, what happens next and how
//! the last attempt went. It reads the state directory only (no lock, no IPC), so it works
//! while the daemon runs: each lineage once, its pair checked against that state, and plans
//! with the same pure planner the daemon uses. Each row names the challenge the certificate
//! answers and its solver (`http-01`, `http-01 webroot /var/www/html`, `dns-01 bind`).
//!
//! Exit code 0 when all is well, 1 when a certificate is failing or inside its urgent
//! threshold (missing, expired or close to expiry): usable from monitoring.

use std::time::SystemTime;

use certkeeper_core::schedule::plan_certificate;
use certkeeper_core::{CertificateSpec, Inventory};
use certkeeper_store::{LineageState, Store, from_unix_seconds};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::engine::plan::{attempts_from, par_map};
use crate::engine::solvers::ChallengeLabel;
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
}

/// `running`: the certificates a running daemon is attempting now (from its control socket),
/// `None` when no daemon answered.
pub fn run(
    inventory: &Inventory,
    args: &StatusArgs,
    running: Option<&[String]>,
) -> anyhow::Result<Exit> {
    let store = Store::open(&inventory.state_dir)?;
    let now = SystemTime::now();
    let rows: Vec<Row> = par_map(&inventory.certificates, |spec| Row {
        attempt_running: running.map(|names| names.iter().any(|n| n == spec.name.as_str())),
        ..row(&store, inventory, spec, now)
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
    let attempts = attempts_from(&state.attempts);
    let planned = plan_certificate(&spec.name, spec, observed, &attempts, &spec.schedule, now);
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
        None => ("none".to_owned(), None, false),
    };
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
    }
}

//! `certkeeper status [--json]`: what is live for every certificate in the inventory.

use std::time::SystemTime;

use certkeeper_core::renewal::{Decision, decide};
use certkeeper_core::{CertificateSpec, Inventory};
use certkeeper_store::{LiveCert, Store};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::exit::Exit;
use crate::report::{days_left, timestamp};

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    domains: Vec<String>,
    not_after: Option<String>,
    days_left: Option<i64>,
    issuer: Option<String>,
    serial: Option<String>,
    state: String,
    renewal_at: Option<String>,
    error: Option<String>,
}

pub fn run(inventory: &Inventory, args: &StatusArgs) -> anyhow::Result<Exit> {
    let store = Store::open(&inventory.state_dir)?;
    let now = SystemTime::now();
    let rows: Vec<Row> = inventory
        .certificates
        .iter()
        .map(|spec| row(&store, spec, now))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows);
    }
    Ok(Exit::Success)
}

fn row(store: &Store, spec: &CertificateSpec, now: SystemTime) -> Row {
    let domains = spec.domains.iter().map(ToString::to_string).collect();
    let live: Option<LiveCert> = match store.read_live(&spec.name) {
        Ok(live) => live,
        Err(err) => {
            return Row {
                name: spec.name.to_string(),
                domains,
                not_after: None,
                days_left: None,
                issuer: None,
                serial: None,
                state: "unreadable".to_owned(),
                renewal_at: None,
                error: Some(format!("{:#}", anyhow::Error::from(err))),
            };
        }
    };
    let decision = decide(spec, live.as_ref().map(|l| &l.observed), now, false);
    let (state, renewal_at) = match decision {
        Decision::Issue(_) => ("missing".to_owned(), None),
        Decision::Renew(reason) => (format!("due ({})", reason.as_str()), None),
        Decision::NotDue { due_at } => ("valid".to_owned(), Some(timestamp(due_at))),
        Decision::Revoked => ("revoked".to_owned(), None),
    };
    Row {
        name: spec.name.to_string(),
        domains,
        not_after: live.as_ref().map(|l| timestamp(l.observed.not_after)),
        days_left: live.as_ref().map(|l| days_left(now, l.observed.not_after)),
        issuer: live.as_ref().map(|l| l.issuer.clone()),
        serial: live.as_ref().map(|l| l.serial_hex.clone()),
        state,
        renewal_at,
        error: None,
    }
}

fn print_table(rows: &[Row]) {
    let header = [
        "NAME",
        "DOMAINS",
        "NOT AFTER",
        "DAYS",
        "STATE",
        "SERIAL",
        "ISSUER",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.domains.join(","),
                r.not_after.clone().unwrap_or_else(|| "-".to_owned()),
                r.days_left
                    .map_or_else(|| "-".to_owned(), |d| d.to_string()),
                r.state.clone(),
                r.serial.clone().unwrap_or_else(|| "-".to_owned()),
                r.issuer.clone().unwrap_or_else(|| "-".to_owned()),
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
        if let Some(error) = &row.error {
            println!("{}: {error}", row.name);
        }
    }
}

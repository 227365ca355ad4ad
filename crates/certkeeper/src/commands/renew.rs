//! `certkeeper renew`: obtain missing certificates and renew those that are due.
//!
//! The decision per certificate is the core's [`decide`]; this module only wires the adapters:
//! it binds the HTTP-01 listener when (and only when) something must be ordered, takes each
//! due certificate through the CA and installs the verified result. A failure leaves the live
//! certificate untouched and is reported; the other certificates carry on.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use certkeeper_acme::{OrderRequest, PollPolicy};
use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::lifecycle::order_directory_url;
use certkeeper_core::renewal::{Decision, decide};
use certkeeper_core::{CertificateSpec, Inventory, OrderPurpose};
use certkeeper_store::{LiveCert, Store};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::accounts::Accounts;
use crate::cli::RenewArgs;
use crate::exit::Exit;
use crate::report::{short_duration, timestamp};

pub async fn run(inventory: &Inventory, args: &RenewArgs) -> anyhow::Result<Exit> {
    let selected = select(inventory, &args.names)?;
    let Some((store, _lock)) = super::open_locked(inventory)? else {
        return Ok(Exit::Locked);
    };
    let now = SystemTime::now();

    let mut failed = 0usize;
    let mut jobs = Vec::new();
    for spec in selected {
        let live = match store.read_live(&spec.name) {
            Ok(live) => live,
            Err(err) => {
                // An unreadable lineage is re-issued rather than trusted.
                tracing::warn!(cert = %spec.name, error = %format!("{:#}", anyhow::Error::from(err)), "live certificate unreadable; ordering a new one");
                None
            }
        };
        match decide(spec, live.as_ref().map(|l| &l.observed), now, args.force) {
            Decision::NotDue { due_at } => {
                let wait = due_at.duration_since(now).unwrap_or_default();
                println!(
                    "{}: not due (renewal in {}, at {})",
                    spec.name,
                    short_duration(wait),
                    timestamp(due_at)
                );
            }
            Decision::Revoked => {
                println!(
                    "{}: revoked; not renewed (use --force to issue anew)",
                    spec.name
                );
            }
            Decision::Issue(reason) | Decision::Renew(reason) => {
                jobs.push((spec, live, reason));
            }
        }
    }
    if jobs.is_empty() {
        return Ok(Exit::Success);
    }

    let tokens = ChallengeTokens::new();
    let stop = CancellationToken::new();
    let listeners = certkeeper_challenge::bind(&inventory.http01.listen).await?;
    let mut servers = Vec::new();
    for listener in listeners {
        let addr = listener.local_addr().ok();
        tracing::debug!(?addr, "HTTP-01 responder listening");
        let stop = stop.clone();
        servers.push(tokio::spawn(certkeeper_challenge::serve(
            listener,
            tokens.clone(),
            async move { stop.cancelled().await },
        )));
    }

    let poll = PollPolicy {
        timeout: Duration::from_secs(args.timeout),
        ..PollPolicy::default()
    };
    let mut accounts = Accounts::new(&store);
    for (spec, live, reason) in jobs {
        let span = tracing::info_span!("order", cert = %spec.name, reason = reason.as_str());
        let outcome = obtain(
            inventory,
            &store,
            &mut accounts,
            &tokens,
            spec,
            live.as_ref(),
            args,
            poll,
        )
        .instrument(span)
        .await;
        match outcome {
            Ok(installed) => println!(
                "{}: {} (serial {}, expires {})",
                spec.name,
                if live.is_some() { "renewed" } else { "issued" },
                installed.serial_hex,
                timestamp(installed.observed.not_after)
            ),
            Err(err) => {
                failed += 1;
                tracing::error!(cert = %spec.name, error = %format!("{err:#}"), "certificate not obtained; the live one (if any) stays in place");
                eprintln!("error: {}: {err:#}", spec.name);
            }
        }
    }

    // The challenge listener stops last, once no order can still be validated.
    stop.cancel();
    for server in servers {
        if let Ok(Err(err)) = server.await {
            tracing::warn!(error = %err, "HTTP-01 responder ended with an error");
        }
    }
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Order, verify and install one certificate.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site wiring the adapters together"
)]
async fn obtain(
    inventory: &Inventory,
    store: &Store,
    accounts: &mut Accounts<'_>,
    tokens: &ChallengeTokens,
    spec: &CertificateSpec,
    live: Option<&LiveCert>,
    args: &RenewArgs,
    poll: PollPolicy,
) -> anyhow::Result<LiveCert> {
    let ca = inventory
        .ca(&spec.ca)
        .with_context(|| format!("certificate {} refers to unknown CA {}", spec.name, spec.ca))?;
    let account = accounts.get(ca).await?;
    let purpose = if live.is_some() {
        OrderPurpose::Renewal(args.action.unwrap_or(spec.action))
    } else {
        OrderPurpose::FirstIssuance
    };
    let directory_url = order_directory_url(&ca.directory, purpose, spec.order_id.as_deref())?;
    let issued = account
        .issue(
            &OrderRequest {
                cert: &spec.name,
                domains: &spec.domains,
                key_type: spec.key_type,
                directory_url: &directory_url,
            },
            tokens,
            poll,
        )
        .await?;
    let key_pem =
        std::str::from_utf8(issued.key_pem.expose()).context("generated key is not UTF-8 PEM")?;
    let installed = store
        .install(&spec.name, &spec.domains, key_pem, &issued.chain_pem)
        .with_context(|| format!("installing the certificate from order {}", issued.order_url))?;
    tracing::info!(
        cert = %spec.name,
        serial = %installed.serial_hex,
        not_after = %timestamp(installed.observed.not_after),
        live_dir = %installed.live_dir.display(),
        "certificate installed"
    );
    Ok(installed)
}

/// The certificates named on the command line (all when none), refusing unknown names.
fn select<'a>(
    inventory: &'a Inventory,
    names: &[String],
) -> anyhow::Result<Vec<&'a CertificateSpec>> {
    if names.is_empty() {
        return Ok(inventory.certificates.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            inventory.certificate(name).with_context(|| {
                let known: Vec<&str> = inventory
                    .certificates
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                format!(
                    "no certificate named {name:?} in the inventory (known: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

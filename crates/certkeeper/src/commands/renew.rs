//! `certkeeper renew`: obtain missing certificates and renew those that are due.
//!
//! The decision per certificate is the core's [`decide`]; this module only wires the adapters:
//! it binds the HTTP-01 listener when (and only when) something must be ordered, takes each
//! due certificate through the CA and installs the verified result. A failure leaves the live
//! certificate untouched and is reported; the other certificates carry on.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use certkeeper_acme::PollPolicy;
use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::hooks::DeployAction;
use certkeeper_core::renewal::{Decision, decide};
use certkeeper_core::{CertificateSpec, Inventory, OrderPurpose};
use certkeeper_hooks::{DEFAULT_QUIET, ReloadCoalescer};
use certkeeper_store::LiveCert;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::accounts::Accounts;
use crate::cli::RenewArgs;
use crate::engine::deploy;
use crate::engine::job::{self, Failure, JobContext};
use crate::engine::limits::Limits;
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
    let mut redeploys = Vec::new();
    for spec in selected {
        let live = match store.read_live_certificate(&spec.name) {
            Ok(live) => live,
            Err(err) => {
                // An unreadable lineage is re-issued rather than trusted.
                tracing::warn!(cert = %spec.name, error = %format!("{:#}", anyhow::Error::from(err)), "live certificate unreadable; ordering a new one");
                None
            }
        };
        match decide(spec, live.as_ref().map(|l| &l.observed), now, args.force) {
            Decision::NotDue { due_at } => {
                if !args.no_hooks
                    && let Some(live) = deploy::pending_deploy(&store, spec)
                {
                    redeploys.push((spec, live));
                }
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
    let reloads = ReloadCoalescer::new(inventory.reload_targets.clone(), DEFAULT_QUIET);
    // Deploy hooks that failed earlier run again for certificates that are not re-ordered.
    for (spec, live) in &redeploys {
        match deploy::deploy(inventory, &store, &reloads, spec, live, DeployAction::Renew).await {
            Ok(()) => println!("{}: deploy hooks succeeded on retry", spec.name),
            Err(err) => {
                failed += 1;
                eprintln!("error: {}: deploy hook failed again: {err}", spec.name);
            }
        }
    }
    if jobs.is_empty() {
        failed += finish_hooks(inventory, &store, &reloads, &[]).await;
        return Ok(if failed == 0 {
            Exit::Success
        } else {
            Exit::Failure
        });
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

    let ctx = JobContext {
        store: store.clone(),
        accounts: Accounts::default(),
        tokens,
        poll: PollPolicy {
            timeout: Duration::from_secs(args.timeout),
            ..PollPolicy::default()
        },
    };
    // Orders run concurrently, within `max_concurrent` overall and per CA.
    let limits = Limits::new(inventory);
    let mut running: FuturesUnordered<_> = jobs
        .into_iter()
        .map(|(spec, live, reason)| {
            let (ctx, limits) = (&ctx, &limits);
            let span = tracing::info_span!("order", cert = %spec.name, reason = reason.as_str());
            async move {
                let _slots = limits.acquire(&spec.ca).await;
                let outcome = attempt(inventory, ctx, spec, live.is_some(), args).await;
                (spec, live.is_some(), outcome)
            }
            .instrument(span)
        })
        .collect();
    let mut renewed = Vec::new();
    while let Some((spec, renewal, outcome)) = running.next().await {
        job::record(&store, spec, &outcome, SystemTime::now());
        match outcome {
            Ok(installed) => {
                println!(
                    "{}: {} (serial {}, expires {})",
                    spec.name,
                    if renewal { "renewed" } else { "issued" },
                    installed.serial_hex,
                    timestamp(installed.observed.not_after)
                );
                if !args.no_hooks {
                    let action = deploy::deploy_action(purpose(spec, renewal, args));
                    if let Err(err) =
                        deploy::deploy(inventory, &store, &reloads, spec, &installed, action).await
                    {
                        failed += 1;
                        eprintln!(
                            "error: {}: deploy hook failed (the certificate is installed): {err}",
                            spec.name
                        );
                    }
                }
                renewed.push(spec);
            }
            Err(failure) => {
                failed += 1;
                let err = failure.error();
                tracing::error!(cert = %spec.name, error = %format!("{err:#}"), "certificate not obtained; the live one (if any) stays in place");
                eprintln!("error: {}: {err:#}", spec.name);
            }
        }
    }
    drop(running);
    failed += finish_hooks(inventory, &store, &reloads, &renewed).await;

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

/// One attempt for `spec`: a renewal when a certificate is live, else a first issuance.
async fn attempt(
    inventory: &Inventory,
    ctx: &JobContext,
    spec: &CertificateSpec,
    renewal: bool,
    args: &RenewArgs,
) -> Result<LiveCert, Failure> {
    let Some(ca) = inventory.ca(&spec.ca) else {
        return Err(Failure::Failed {
            error: anyhow::anyhow!("certificate {} refers to unknown CA {}", spec.name, spec.ca),
            retryable: false,
            rate_limited: false,
            retry_after: None,
        });
    };
    if !args.no_hooks
        && let Err(err) = deploy::pre(inventory, spec).await
    {
        return Err(Failure::Failed {
            error: anyhow::anyhow!("pre hook failed, so no order was placed: {err}"),
            retryable: true,
            rate_limited: false,
            retry_after: None,
        });
    }
    let installed = job::obtain(ctx, ca, spec, purpose(spec, renewal, args)).await?;
    tracing::info!(
        cert = %spec.name,
        serial = %installed.serial_hex,
        not_after = %timestamp(installed.observed.not_after),
        live_dir = %installed.live_dir.display(),
        "certificate installed"
    );
    Ok(installed)
}

/// A renewal when a certificate is live (with `--action` overriding the configured one),
/// else a first issuance.
fn purpose(spec: &CertificateSpec, renewal: bool, args: &RenewArgs) -> OrderPurpose {
    if renewal {
        OrderPurpose::Renewal(args.action.unwrap_or(spec.action))
    } else {
        OrderPurpose::FirstIssuance
    }
}

/// After the batch: run the reload targets now (once each) and the post hooks; returns how
/// many reloads failed.
async fn finish_hooks(
    inventory: &Inventory,
    store: &certkeeper_store::Store,
    reloads: &ReloadCoalescer,
    renewed: &[&CertificateSpec],
) -> usize {
    let outcomes = reloads.flush().await;
    deploy::record_reloads(store, &outcomes);
    let failed = outcomes.iter().filter(|o| !o.succeeded()).count();
    for outcome in outcomes.iter().filter(|o| !o.succeeded()) {
        eprintln!(
            "error: reload {} failed for {}; it runs again on the next pass",
            outcome.target,
            outcome.certificates.join(" ")
        );
    }
    deploy::post(inventory, renewed).await;
    failed
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

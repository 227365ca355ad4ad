//! `certkeeper renew`: obtain missing certificates and renew those that are due.
//!
//! The plan per certificate is the daemon's ([`LineageView::plan_one_shot`]: the same due
//! time, backoff and CA Retry-After, without the maintenance window), and each attempt is the
//! engine's [`Attempt`]: this module binds the HTTP-01 listener when (and only when) something
//! must be ordered through the embedded responder, runs the due attempts within the concurrency limits, and prints one line
//! per certificate. `--force` overrides due-ness and certkeeper's own backoff, never a CA's
//! Retry-After: the certificate is then reported as held, with the instant it may be tried.
//! `--new-key` forces the same way and makes the orders' keys new even with `reuse_key`.
//!
//! Before planning, under the state directory lock, DNS-01 records an earlier run presented
//! and never removed (it was killed) are removed through their providers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_acme::PollPolicy;
use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::schedule::Planned;
use certkeeper_core::{CertificateSpec, Inventory};
use certkeeper_hooks::{DEFAULT_QUIET, ReloadCoalescer};
use certkeeper_store::Lineage;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cli::RenewArgs;
use crate::engine::attempt::{self, Attempt};
use crate::engine::deploy;
use crate::engine::job::JobContext;
use crate::engine::limits::Limits;
use crate::engine::pass::{self, Step};
use crate::engine::plan::LineageView;
use crate::engine::solvers::{ChallengeLabel, ConfiguredSolvers, uses_embedded_responder};
use crate::exit::Exit;

pub async fn run(inventory: &Inventory, args: &RenewArgs) -> anyhow::Result<Exit> {
    let selected = pass::select(inventory, &args.names)?;
    let Some((store, _lock)) = super::open_locked(inventory)? else {
        return Ok(Exit::Locked);
    };
    let tokens = ChallengeTokens::new();
    let solvers = Arc::new(ConfiguredSolvers::new(
        tokens.clone(),
        Arc::new(store.presented_journal()),
    ));
    // Under the lock, before anything is planned or presented: DNS-01 records a killed run
    // left behind (a resumed order presents the same value again).
    solvers.remove_stale_records(inventory).await;
    let now = SystemTime::now();

    let mut failed = 0usize;
    // Each due certificate with the lineage its plan was made from, which its attempt then
    // records on: the state is read once per pass.
    let mut jobs: Vec<(&CertificateSpec, Planned, Option<Lineage>)> = Vec::new();
    let mut redeploys = Vec::new();
    let mut skipped = String::new();
    let views = LineageView::load_all(&store, &selected);
    for (spec, view) in selected.into_iter().zip(views) {
        match pass::step(view, spec, now, args.force || args.new_key) {
            Step::Attempt(planned, lineage) => jobs.push((spec, planned, lineage)),
            Step::Skip(skip) => {
                // One write for the whole plan, not one per certificate (a fleet of ten
                // thousand is mostly "not due" lines).
                skipped.push_str(&skip.line);
                skipped.push('\n');
                failed += usize::from(skip.failing);
                if let (false, Some(live)) = (args.no_hooks, skip.redeploy) {
                    redeploys.push((spec, live));
                }
            }
        }
    }
    print!("{skipped}");

    let reloads = Arc::new(ReloadCoalescer::new(
        inventory.reload_targets.clone(),
        DEFAULT_QUIET,
    ));
    // A node of a fleet renews only what it holds the lease of, like its daemon.
    let fleet = match &inventory.cluster {
        None => None,
        Some(cluster) => Some((
            crate::engine::fleet::connect(cluster).await?,
            cluster.lease,
            crate::engine::fleet::LineageGuards::default(),
        )),
    };
    let ctx = JobContext::real(
        store.clone(),
        PollPolicy {
            timeout: Duration::from_secs(args.timeout),
            ..PollPolicy::default()
        },
        solvers,
        Arc::clone(&reloads),
        // A pass runs to its end; Ctrl-C ends the process (persisted orders resume).
        CancellationToken::new(),
        fleet,
    );
    // Deploy hooks that failed earlier run again for certificates that are not re-ordered.
    for (spec, live) in &redeploys {
        let attempt = Attempt {
            inventory,
            ctx: &ctx,
            spec,
            purpose: attempt::purpose(spec, true, None),
            run_hooks: true,
            new_key: false,
            planned_live: None,
        };
        match attempt.redeploy(live).await {
            Ok(()) => println!("{}: deploy hooks succeeded on retry", spec.name),
            Err(_) => {
                failed += 1;
                println!(
                    "{}: deploy hooks failed again (the certificate is installed)",
                    spec.name
                );
            }
        }
    }
    if jobs.is_empty() {
        failed += finish_hooks(inventory, &ctx, &reloads, &[]).await;
        return Ok(if failed == 0 {
            Exit::Success
        } else {
            Exit::Failure
        });
    }

    let stop = CancellationToken::new();
    // Port 80 only when a certificate about to be attempted answers through the embedded
    // responder: a pass of webroot and DNS-01 certificates runs beside the web server.
    let needs_responder = jobs
        .iter()
        .any(|(spec, _, _)| uses_embedded_responder(inventory, &spec.name));
    let listeners = if needs_responder {
        certkeeper_challenge::bind(&inventory.http01.listen).await?
    } else {
        Vec::new()
    };
    let mut servers = Vec::new();
    for listener in listeners {
        let addr = listener.local_addr().ok();
        tracing::debug!(
            addr = addr.map(tracing::field::display),
            "HTTP-01 responder listening"
        );
        let stop = stop.clone();
        servers.push(tokio::spawn(certkeeper_challenge::serve(
            listener,
            tokens.clone(),
            async move { stop.cancelled().await },
        )));
    }

    // Orders run concurrently, within `max_concurrent` overall and per CA.
    let limits = Limits::new(inventory);
    let mut running: FuturesUnordered<_> = jobs
        .into_iter()
        .map(|(spec, planned, lineage)| {
            let (ctx, limits) = (&ctx, &limits);
            let challenge = ChallengeLabel::of(inventory, &spec.name);
            let span = tracing::info_span!(
                "order",
                cert = %spec.name,
                reason = planned.reason.as_str(),
                challenge = challenge.kind,
                dns_provider = challenge.dns_provider,
            );
            async move {
                let _slots = limits.acquire(&spec.ca).await;
                let attempt = Attempt {
                    inventory,
                    ctx,
                    spec,
                    purpose: attempt::purpose(spec, planned.renewal, args.action),
                    run_hooks: !args.no_hooks,
                    new_key: args.new_key,
                    planned_live: None,
                };
                let outcome = match lineage {
                    Some(lineage) => attempt.run_on(lineage).await,
                    None => attempt.run().await,
                };
                (spec, planned.renewal, outcome)
            }
            .instrument(span)
        })
        .collect();
    let mut renewed = Vec::new();
    while let Some((spec, renewal, outcome)) = running.next().await {
        match outcome.result {
            Ok(installed) => {
                println!("{}", pass::installed_line(spec, renewal, &installed));
                if outcome.deploy.is_err() {
                    failed += 1;
                    println!("{}", pass::deploy_failed_line(spec));
                }
                renewed.push(spec);
            }
            Err(failure) => {
                // The live certificate (if any) stays in place.
                failed += 1;
                eprintln!("{}", pass::failed_line(spec, &failure));
            }
        }
    }
    drop(running);
    failed += finish_hooks(inventory, &ctx, &reloads, &renewed).await;

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

/// After the batch: run the reload targets now (once each) and the post hooks; returns how
/// many reloads failed.
async fn finish_hooks(
    inventory: &Inventory,
    ctx: &JobContext,
    reloads: &ReloadCoalescer,
    renewed: &[&CertificateSpec],
) -> usize {
    let outcomes = reloads.flush().await;
    deploy::record_reloads(&ctx.store, &outcomes);
    let failed = outcomes.iter().filter(|o| !o.succeeded()).count();
    for outcome in outcomes.iter().filter(|o| !o.succeeded()) {
        println!(
            "reload {} failed for {}; it runs again on the next pass",
            outcome.target,
            outcome.certificates.join(" ")
        );
    }
    ctx.hooks.post(inventory, renewed).await;
    failed
}

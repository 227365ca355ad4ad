//! Hooks around an attempt, shared by `certkeeper renew` and the daemon: `pre_hook` before an
//! order, `deploy_hook` (and `hooks_dir/deploy/*`) once a certificate is live, reload targets
//! coalesced into one run per batch, `post_hook` (and `hooks_dir/post/*`) after a batch.
//!
//! [`ProcessHooks`] is the real [`Hooks`] port: the operator's hooks run as processes by
//! `certkeeper_hooks`, reloads requested from its [`ReloadCoalescer`] (whose batches the command
//! or the daemon runs). What the engine does around them is here too, the same whatever port
//! runs them: [`deploy`] (the deploy hooks, then the reload, whatever the hooks did) and the
//! record of each outcome on the lineage.
//!
//! A failed deploy hook or reload never un-installs a certificate: the lineage is marked
//! `pending_deploy` and the hooks run again on the next pass until they succeed, without a new
//! order. A failed pre hook skips the order and counts as a failed attempt (with backoff).
//!
//! A phase that did not succeed is a [`HookFailure`]: every hook of it that failed, each with
//! its cause (the exit code, signal or timeout of a hook that ran, the error of one that could
//! not), rendered once by [`report::error_chain`].

use std::sync::Arc;

use certkeeper_core::hooks::{
    DeployAction, Deployment, Hook, deploy_env, distinct_post_hooks, post_env, pre_env,
};
use certkeeper_core::{CertName, CertificateSpec, Inventory, LifecycleAction, OrderPurpose};
use certkeeper_hooks::{HookRun, Phase, ReloadCoalescer, ReloadOutcome, dir_hooks, run};
use certkeeper_store::{Lineage, LiveCert, Store};

use crate::engine::error::{FailedHook, HookFailure};
use crate::engine::ports::{Hooks, PortFuture};
use crate::report::{self, error_chain};

/// The real hooks: processes run by `certkeeper_hooks`, reloads requested from `reloads`.
#[derive(Debug, Clone)]
pub struct ProcessHooks {
    reloads: Arc<ReloadCoalescer>,
}

impl ProcessHooks {
    /// Reload targets are requested from `reloads`; its owner runs them.
    pub fn new(reloads: Arc<ReloadCoalescer>) -> Self {
        Self { reloads }
    }
}

impl Hooks for ProcessHooks {
    fn pre<'a>(
        &'a self,
        inventory: &'a Inventory,
        spec: &'a CertificateSpec,
    ) -> PortFuture<'a, Result<(), HookFailure>> {
        Box::pin(pre(inventory, spec))
    }

    fn deploy<'a>(
        &'a self,
        inventory: &'a Inventory,
        spec: &'a CertificateSpec,
        live: &'a LiveCert,
        action: DeployAction,
    ) -> PortFuture<'a, Result<(), HookFailure>> {
        Box::pin(deploy_hooks(inventory, spec, live, action))
    }

    fn request_reload(&self, spec: &CertificateSpec) {
        if let Err(err) = self.reloads.request(spec.name.as_str(), &spec.hooks.reload) {
            // Targets are checked when the config loads; a race with a reload is all that is
            // left.
            tracing::warn!(cert = %spec.name, error = error_chain(&err), "reload target not configured");
        }
    }

    fn post<'a>(
        &'a self,
        inventory: &'a Inventory,
        renewed: &'a [&'a CertificateSpec],
    ) -> PortFuture<'a, ()> {
        Box::pin(post(inventory, renewed))
    }
}

/// Run `hooks` in order, every one even after a failure; the failures are kept.
async fn run_all(hooks: &[(String, Hook)], env: &[(String, String)]) -> Result<(), HookFailure> {
    let mut failures = Vec::new();
    for (label, hook) in hooks {
        match run(HookRun::new(label, hook, env)).await {
            Ok(outcome) if outcome.success => {}
            Ok(outcome) => failures.push(FailedHook::Ran {
                label: label.clone(),
                outcome: Box::new(outcome),
            }),
            Err(err) => failures.push(err.into()),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(HookFailure::from(failures))
    }
}

/// The certificate's own hook for a phase (labelled) followed by the `hooks_dir` executables.
fn phase_hooks(
    inventory: &Inventory,
    own: Option<&Hook>,
    label: &str,
    phase: Phase,
) -> Result<Vec<(String, Hook)>, HookFailure> {
    let mut hooks: Vec<(String, Hook)> = own
        .map(|hook| (label.to_owned(), hook.clone()))
        .into_iter()
        .collect();
    if let Some(dir) = &inventory.hooks_dir {
        hooks.extend(dir_hooks(dir, phase, inventory.hook_timeout)?);
    }
    Ok(hooks)
}

/// Before an order: the certificate's `pre_hook` and `hooks_dir/pre/*`.
async fn pre(inventory: &Inventory, spec: &CertificateSpec) -> Result<(), HookFailure> {
    let hooks = phase_hooks(
        inventory,
        spec.hooks.pre.as_ref(),
        &format!("pre:{}", spec.name),
        Phase::Pre,
    )?;
    if hooks.is_empty() {
        return Ok(());
    }
    run_all(&hooks, &pre_env(&spec.name, &spec.domains)).await
}

/// What a deploy hook is told about how the certificate came to be.
pub fn deploy_action(purpose: OrderPurpose) -> DeployAction {
    match purpose {
        OrderPurpose::FirstIssuance => DeployAction::Issue,
        OrderPurpose::Renewal(LifecycleAction::Reissue) => DeployAction::Reissue,
        OrderPurpose::Renewal(_) => DeployAction::Renew,
    }
}

/// After a certificate went live: its deploy hooks through `hooks`, then its reload targets
/// are requested (also when a deploy hook failed: the certificate is live either way). The
/// caller records the outcome ([`record`]).
pub async fn deploy(
    hooks: &dyn Hooks,
    inventory: &Inventory,
    spec: &CertificateSpec,
    live: &LiveCert,
    action: DeployAction,
) -> Result<(), HookFailure> {
    let result = hooks.deploy(inventory, spec, live, action).await;
    hooks.request_reload(spec);
    if let Err(err) = &result {
        tracing::error!(cert = %spec.name, error = %err, "deploy hook failed; the certificate is installed, the hook will be retried");
    }
    result
}

/// The certificate's `deploy_hook` and `hooks_dir/deploy/*`.
async fn deploy_hooks(
    inventory: &Inventory,
    spec: &CertificateSpec,
    live: &LiveCert,
    action: DeployAction,
) -> Result<(), HookFailure> {
    let hooks = phase_hooks(
        inventory,
        spec.hooks.deploy.as_ref(),
        &format!("deploy:{}", spec.name),
        Phase::Deploy,
    )?;
    if hooks.is_empty() {
        return Ok(());
    }
    let env = deploy_env(&Deployment {
        name: &spec.name,
        domains: &spec.domains,
        live_dir: &live.live_dir,
        serial: &live.serial_hex,
        not_after: live.observed.not_after,
        action,
    });
    run_all(&hooks, &env).await
}

/// The reload targets' outcomes: a failed target marks every certificate that asked for it.
pub fn record_reloads(store: &Store, outcomes: &[ReloadOutcome]) {
    certkeeper_hooks::log_outcomes(outcomes);
    for outcome in outcomes.iter().filter(|o| !o.succeeded()) {
        let why = match &outcome.result {
            Ok(hook) => format!("reload {} {hook}", outcome.target),
            Err(err) => report::error_chain(err),
        };
        for cert in &outcome.certificates {
            if let Ok(name) = CertName::new(cert) {
                record_on_disk(store, &name, Some(&why));
            }
        }
    }
}

/// After a batch of renewals: the distinct `post_hook`s and `hooks_dir/post/*`, with the
/// names renewed.
async fn post(inventory: &Inventory, renewed: &[&CertificateSpec]) {
    if renewed.is_empty() {
        return;
    }
    let mut hooks: Vec<(String, Hook)> =
        distinct_post_hooks(renewed.iter().map(|spec| &*spec.hooks))
            .into_iter()
            .enumerate()
            .map(|(index, hook)| (format!("post:{index}"), hook.clone()))
            .collect();
    if let Some(dir) = &inventory.hooks_dir {
        match dir_hooks(dir, Phase::Post, inventory.hook_timeout) {
            Ok(found) => hooks.extend(found),
            Err(err) => {
                tracing::error!(error = error_chain(&err), "cannot list post hooks");
            }
        }
    }
    if hooks.is_empty() {
        return;
    }
    let env = post_env(renewed.iter().map(|spec| spec.name.as_str()));
    if let Err(err) = run_all(&hooks, &env).await {
        tracing::error!(error = %err, "post hook failed");
    }
}

/// Note a deploy outcome on `lineage`: a failure (`why`) keeps `pending_deploy` set (with the
/// error shown by `status`), a success clears it.
pub fn record(lineage: &mut Lineage, failure: Option<&str>) {
    let saved = match failure {
        None => lineage.record_deploy(),
        Some(why) => lineage.record_deploy_failure(why),
    };
    if let Err(err) = saved {
        tracing::warn!(cert = %lineage.name(), error = error_chain(&err), "cannot record the deploy outcome");
    }
}

/// [`record`] on the lineage `name` as it is on disk now (a retried deploy, a reload batch).
pub fn record_on_disk(store: &Store, name: &CertName, failure: Option<&str>) {
    match store.lineage(name) {
        Ok(mut lineage) => record(&mut lineage, failure),
        Err(err) => {
            tracing::warn!(cert = %name, error = error_chain(&err), "cannot record the deploy outcome");
        }
    }
}

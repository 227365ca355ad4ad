//! Hooks around an attempt, shared by `certkeeper renew` and the daemon: `pre_hook` before an
//! order, `deploy_hook` (and `hooks_dir/deploy/*`) once a certificate is live, reload targets
//! coalesced into one run per batch, `post_hook` (and `hooks_dir/post/*`) after a batch.
//!
//! A failed deploy hook or reload never un-installs a certificate: the lineage is marked
//! `pending_deploy` and the hooks run again on the next pass until they succeed, without a new
//! order. A failed pre hook skips the order and counts as a failed attempt (with backoff).
//!
//! A phase that did not succeed is a [`HookFailure`]: every hook of it that failed, each with
//! its cause (the exit code, signal or timeout of a hook that ran, the error of one that could
//! not), rendered once by [`report::error_chain`].

use std::fmt;

use certkeeper_core::hooks::{
    DeployAction, Deployment, Hook, deploy_env, distinct_post_hooks, post_env, pre_env,
};
use certkeeper_core::{CertName, CertificateSpec, Inventory, LifecycleAction, OrderPurpose};
use certkeeper_hooks::{
    HookError, HookOutcome, HookRun, Phase, ReloadCoalescer, ReloadOutcome, dir_hooks, run,
};
use certkeeper_store::{Lineage, LiveCert, Store};

use crate::report::{self, error_chain};

/// The hooks of one phase that did not succeed (the others of the phase still ran).
#[derive(Debug)]
pub struct HookFailure(Vec<FailedHook>);

/// One hook that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum FailedHook {
    /// It ran and failed: its exit code, the signal that ended it, or its timeout.
    #[error("hook {label} {outcome}")]
    Ran {
        label: String,
        outcome: Box<HookOutcome>,
    },
    /// It could not be started or waited for, or its hooks directory could not be listed.
    #[error(transparent)]
    NotRun(#[from] HookError),
}

impl From<HookError> for HookFailure {
    fn from(error: HookError) -> Self {
        HookFailure(vec![error.into()])
    }
}

impl fmt::Display for HookFailure {
    /// Each failed hook with its causes, `; `-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, failed) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&error_chain(failed))?;
        }
        Ok(())
    }
}

/// Its causes are in its message (there may be several), so it has no `source`.
impl std::error::Error for HookFailure {}

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
        Err(HookFailure(failures))
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
pub async fn pre(inventory: &Inventory, spec: &CertificateSpec) -> Result<(), HookFailure> {
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

/// After a certificate went live: its `deploy_hook` and `hooks_dir/deploy/*`, then its
/// reload targets are requested from `reloads`. The caller records the outcome ([`record`]).
pub async fn deploy(
    inventory: &Inventory,
    reloads: &ReloadCoalescer,
    spec: &CertificateSpec,
    live: &LiveCert,
    action: DeployAction,
) -> Result<(), HookFailure> {
    let hooks = phase_hooks(
        inventory,
        spec.hooks.deploy.as_ref(),
        &format!("deploy:{}", spec.name),
        Phase::Deploy,
    );
    let result = match hooks {
        Ok(hooks) if hooks.is_empty() => Ok(()),
        Ok(hooks) => {
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
        Err(err) => Err(err),
    };
    if let Err(err) = reloads.request(spec.name.as_str(), &spec.hooks.reload) {
        // Targets are checked when the config loads; a race with a reload is all that is left.
        tracing::warn!(cert = %spec.name, error = error_chain(&err), "reload target not configured");
    }
    if let Err(err) = &result {
        tracing::error!(cert = %spec.name, error = %err, "deploy hook failed; the certificate is installed, the hook will be retried");
    }
    result
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
pub async fn post(inventory: &Inventory, renewed: &[&CertificateSpec]) {
    if renewed.is_empty() {
        return;
    }
    let mut hooks: Vec<(String, Hook)> =
        distinct_post_hooks(renewed.iter().map(|spec| &spec.hooks))
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

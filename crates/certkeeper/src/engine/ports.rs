//! The daemon's ports: where its scheduling loop meets time and the outside world.
//!
//! * [`Clock`]: the wall clock ([`SystemClock`]); scheduler tests use one that follows
//!   tokio's paused time, so a month of renewals runs in milliseconds.
//! * [`Runner`]: how one attempt (or a pending deploy) is carried out. [`EngineRunner`]
//!   is the real one: [`Attempt`](super::attempt::Attempt), which orders from the CA through
//!   the challenge solver, installs into the store and runs the hooks. Scheduler tests script
//!   outcomes instead, recording them on a real store in a temporary directory, so what the
//!   loop plans from is what it would read after a real attempt.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

pub use certkeeper_core::Clock;
use certkeeper_core::{CertificateSpec, Inventory, OrderPurpose};
use certkeeper_hooks::ReloadCoalescer;

use crate::engine::attempt::{self, Attempt, Outcome};
use crate::engine::job::JobContext;
use crate::engine::plan::LineageView;

/// A future the daemon can run as a task of its own.
pub type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What an attempt needs from the daemon at the moment it starts (the inventory may have
/// been reloaded since the daemon started).
#[derive(Debug, Clone)]
pub struct AttemptInput {
    pub inventory: Arc<Inventory>,
    pub reloads: Arc<ReloadCoalescer>,
    pub spec: CertificateSpec,
    pub purpose: OrderPurpose,
}

/// How the daemon carries out attempts.
pub trait Runner: Send + Sync + Debug {
    /// One attempt; its outcome is recorded on the lineage before the future resolves.
    fn attempt(&self, input: AttemptInput) -> Task<Outcome>;
    /// Run the deploy hooks of the live certificate again (a pending deploy).
    fn redeploy(&self, input: AttemptInput) -> Task<()>;
}

/// The real runner: the engine's [`Attempt`].
#[derive(Debug, Clone)]
pub struct EngineRunner {
    pub ctx: JobContext,
}

impl Runner for EngineRunner {
    fn attempt(&self, input: AttemptInput) -> Task<Outcome> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            Attempt {
                inventory: &input.inventory,
                ctx: &ctx,
                reloads: &input.reloads,
                spec: &input.spec,
                purpose: input.purpose,
                hooks: true,
            }
            .run()
            .await
        })
    }

    fn redeploy(&self, input: AttemptInput) -> Task<()> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let view = LineageView::load(&ctx.store, &input.spec.name);
            if let (true, Some(live)) = (view.record.pending_deploy, &view.live) {
                let attempt = Attempt {
                    inventory: &input.inventory,
                    ctx: &ctx,
                    reloads: &input.reloads,
                    spec: &input.spec,
                    purpose: attempt::purpose(&input.spec, true, None),
                    hooks: true,
                };
                // A failure stays recorded as pending and is retried later.
                let _ = attempt.redeploy(live).await;
            }
        })
    }
}

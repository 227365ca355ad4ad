//! The follower: the task through which a node serves the fleet's HTTP-01 key authorisations
//! and installs the fleet's new certificates, as the database announces them.
//!
//! It consumes the adapter's notifications (`Fleet::listen`) in two halves joined in one
//! task, so a slow deploy hook never delays a challenge:
//!
//! - **Challenges**, handled as they arrive: a published key authorisation goes into this
//!   node's [`ChallengeTokens`] (the embedded responder's table), a withdrawn one comes out.
//!   The follower only takes out what it put in: a token already served when its notification
//!   arrives belongs to this node's own solver (an order this node placed), whose cleanup
//!   retracts it; the follower never double-books or retracts it. Each (re)subscription
//!   ([`FleetEvent::Listening`]) is followed by a reconciliation with the database's snapshot
//!   (`Fleet::challenges`), since notifications sent while disconnected are lost; a snapshot
//!   that cannot be read is retried every second.
//! - **Certificates**, on a worker fed by a coalescing queue: a new version of a lineage
//!   ([`FleetEvent::VersionPublished`]) syncs that lineage ([`sync_lineage`]); a
//!   (re)subscription, a configuration reload and every `sync_interval` of `[cluster]` sync
//!   them all ([`sync_all_except`]), which catches up whatever was missed. Requests made
//!   while a sync runs are merged into the next one. Lineages whose lease this node holds are
//!   left out: this node's own attempt on them installs and publishes, and a second writer of
//!   their state would race it. (Whether the lease is still good is judged by this node's
//!   clock here; that only decides whether to skip a sync, never who may write to the fleet.)
//!
//! The database being away is logged once per outage at warn, and its return at info, not
//! once per retry (the adapter retries by itself). The inventory is read from a
//! [`watch::Receiver`], so the daemon's reloads take effect at the next sync.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::Inventory;
use certkeeper_core::cluster::DEFAULT_SYNC_INTERVAL;
use certkeeper_fleet::{Fleet, FleetEvent, Http01Challenge};
use certkeeper_store::Store;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::fleet::LineageGuards;
use crate::engine::fleet::sync::{Synced, log_result, sync_all_except, sync_lineage};
use crate::engine::ports::Hooks;
use crate::report::error_chain;

/// How long to wait before syncing a lineage again whose lease was held.
const SKIPPED_RETRY: Duration = Duration::from_secs(2);

/// How long to wait before reading the challenges' snapshot again after it failed.
const RECONCILE_RETRY: Duration = Duration::from_secs(1);

/// What the follower works with.
#[derive(Debug, Clone)]
pub struct Follower {
    /// The fleet's database.
    pub fleet: Fleet,
    /// This node's state directory.
    pub store: Store,
    /// The embedded HTTP-01 responder's table, the one the local solver publishes into.
    pub tokens: ChallengeTokens,
    /// This node's hooks (the `JobContext`'s port).
    pub hooks: Arc<dyn Hooks>,
    /// The inventory as it is now; the daemon sends the new one on each reload.
    pub inventory: watch::Receiver<Arc<Inventory>>,
    /// Shared with this node's attempts: a lineage is synced only while none works on it.
    pub guards: LineageGuards,
}

/// Follow the fleet until `stop` is cancelled (see the module documentation). Tokens the
/// follower served are retracted when it stops.
pub async fn follow(follower: Follower, stop: CancellationToken) {
    let Follower {
        fleet,
        store,
        tokens,
        hooks,
        inventory,
        guards,
    } = follower;
    let queue = SyncQueue::default();
    let mut served = Served::new(tokens);
    let events = listen(&fleet, &mut served, &queue, &stop);
    let worker = work(
        &fleet,
        &store,
        hooks.as_ref(),
        &guards,
        inventory,
        &queue,
        &stop,
    );
    tokio::join!(events, worker);
    served.retract_all();
}

/// The challenge half: notifications in, tokens served, syncs requested.
async fn listen(fleet: &Fleet, served: &mut Served, queue: &SyncQueue, stop: &CancellationToken) {
    let mut listener = fleet.listen(stop.clone());
    let mut outage = false;
    let mut reconcile_at: Option<Instant> = None;
    loop {
        let retry = async {
            match reconcile_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = retry => None,
            event = listener.recv() => match event {
                Some(event) => Some(event),
                None => return,
            },
        };
        match event {
            None => {}
            Some(FleetEvent::Listening) => {
                if outage {
                    tracing::info!("fleet notifications are back; catching up");
                    outage = false;
                }
                queue.request_all();
            }
            Some(FleetEvent::Disconnected(error)) => {
                if !outage {
                    tracing::warn!(
                        error = error_chain(&error),
                        "lost the fleet's notifications; serving the local certificates and retrying"
                    );
                    outage = true;
                }
                continue;
            }
            Some(FleetEvent::ChallengePublished {
                token,
                key_authorization,
                lineage,
            }) => {
                tracing::debug!(cert = %lineage, token, "serving a fleet challenge");
                served.publish(&token, &key_authorization);
                continue;
            }
            Some(FleetEvent::ChallengeWithdrawn { token }) => {
                served.withdraw(&token);
                continue;
            }
            Some(FleetEvent::VersionPublished { lineage, version }) => {
                tracing::debug!(cert = %lineage, version, "the fleet published a version");
                queue.request(lineage);
                continue;
            }
            Some(other) => {
                tracing::debug!(event = ?other, "ignored a fleet event");
                continue;
            }
        }
        // Listening, or the retry: read the snapshot.
        reconcile_at = match fleet.challenges().await {
            Ok(snapshot) => {
                served.reconcile(&snapshot);
                None
            }
            Err(error) => {
                tracing::debug!(
                    error = error_chain(&error),
                    "cannot read the fleet's challenges; retrying"
                );
                Some(Instant::now() + RECONCILE_RETRY)
            }
        };
    }
}

/// The certificate half: syncs as requested, and all of them every `sync_interval`.
async fn work(
    fleet: &Fleet,
    store: &Store,
    hooks: &dyn Hooks,
    guards: &LineageGuards,
    mut inventory: watch::Receiver<Arc<Inventory>>,
    queue: &SyncQueue,
    stop: &CancellationToken,
) {
    let mut watching = true;
    let mut unavailable = false;
    let mut next_all = Instant::now() + interval(&inventory.borrow());
    // Lineages skipped because a lease was held (another node's sync or renewal, or this
    // node's attempt), asked again shortly.
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    let mut retry_at = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = queue.wait() => {}
            () = tokio::time::sleep_until(next_all) => queue.request_all(),
            () = tokio::time::sleep_until(retry_at), if !skipped.is_empty() => {
                for lineage in std::mem::take(&mut skipped) {
                    queue.request(lineage);
                }
            }
            changed = inventory.changed(), if watching => match changed {
                Ok(()) => queue.request_all(),
                Err(_) => watching = false,
            },
        }
        let Some(pending) = queue.take() else {
            continue;
        };
        let current = Arc::clone(&inventory.borrow_and_update());
        let held = held_leases(fleet).await;
        let results = if pending.all {
            next_all = Instant::now() + interval(&current);
            match sync_all_except(fleet, store, &current, hooks, guards, &held).await {
                Ok(results) => results,
                Err(error) => {
                    note_unavailable(&mut unavailable, error.is_unavailable(), &error);
                    continue;
                }
            }
        } else {
            let mut results = Vec::new();
            for spec in current
                .certificates
                .iter()
                .filter(|spec| pending.lineages.contains(spec.name.as_str()))
            {
                let result = if held.contains(spec.name.as_str()) {
                    Ok(Synced::Skipped)
                } else {
                    sync_lineage(fleet, store, &current, spec, hooks, guards).await
                };
                results.push((spec.name.clone(), result));
            }
            results
        };
        let down = results
            .iter()
            .find_map(|(_, result)| result.as_ref().err().filter(|e| e.is_unavailable()));
        match down {
            Some(error) => note_unavailable(&mut unavailable, true, error),
            None if unavailable => {
                tracing::info!("the fleet's database answers again; in sync");
                unavailable = false;
            }
            None => {}
        }
        for (cert, result) in &results {
            log_result(cert, result);
            if matches!(result, Ok(Synced::Skipped)) {
                skipped.insert(cert.as_str().to_owned());
            }
        }
        if !skipped.is_empty() {
            retry_at = Instant::now() + SKIPPED_RETRY;
        }
    }
}

/// The lineages whose lease this node holds and has not seen expire (by its own clock: see the
/// module documentation). None when the leases cannot be read: the syncs will fail as well.
async fn held_leases(fleet: &Fleet) -> BTreeSet<String> {
    let now = SystemTime::now();
    match fleet.leases().await {
        Ok(leases) => leases
            .into_iter()
            .filter(|lease| lease.owner == fleet.node() && lease.expires_at > now)
            .map(|lease| lease.lineage)
            .collect(),
        Err(error) => {
            tracing::debug!(error = error_chain(&error), "cannot read the leases");
            BTreeSet::new()
        }
    }
}

/// Warn once when the database goes away; other failures each time.
fn note_unavailable(unavailable: &mut bool, now: bool, error: &(dyn std::error::Error + 'static)) {
    if !now {
        tracing::warn!(error = error_chain(error), "fleet sync failed; will retry");
    } else if !*unavailable {
        tracing::warn!(
            error = error_chain(error),
            "the fleet's database is unavailable; keeping the local certificates, will sync when it is back"
        );
        *unavailable = true;
    }
}

/// `sync_interval` of the inventory's `[cluster]`.
fn interval(inventory: &Inventory) -> Duration {
    inventory
        .cluster
        .as_ref()
        .map_or(DEFAULT_SYNC_INTERVAL, |cluster| cluster.sync_interval)
}

/// What the worker has been asked to sync, merged until it gets to it.
#[derive(Debug, Default)]
struct SyncQueue {
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    all: bool,
    lineages: BTreeSet<String>,
}

impl SyncQueue {
    fn request_all(&self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .all = true;
        self.wake.notify_one();
    }

    fn request(&self, lineage: String) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lineages
            .insert(lineage);
        self.wake.notify_one();
    }

    async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Everything requested so far, or `None`.
    fn take(&self) -> Option<Pending> {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        (pending.all || !pending.lineages.is_empty()).then_some(pending)
    }
}

/// The tokens the follower put into the responder's table, with what it served for each.
#[derive(Debug)]
struct Served {
    tokens: ChallengeTokens,
    ours: HashMap<String, String>,
}

impl Served {
    fn new(tokens: ChallengeTokens) -> Self {
        Self {
            tokens,
            ours: HashMap::new(),
        }
    }

    /// Serve `token`, unless this node's own solver already does.
    fn publish(&mut self, token: &str, key_authorization: &str) {
        if !self.ours.contains_key(token) && self.tokens.lookup(token).is_some() {
            return;
        }
        self.tokens.publish(token, key_authorization);
        self.ours
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stop serving `token` if the follower served it (and still serves what it put there).
    fn withdraw(&mut self, token: &str) {
        if let Some(ours) = self.ours.remove(token)
            && self.tokens.lookup(token).as_deref() == Some(ours.as_str())
        {
            self.tokens.retract(token);
        }
    }

    /// Serve exactly the fleet's `snapshot` (besides this node's own tokens).
    fn reconcile(&mut self, snapshot: &[Http01Challenge]) {
        for challenge in snapshot {
            self.publish(&challenge.token, &challenge.key_authorization);
        }
        let gone: Vec<String> = self
            .ours
            .keys()
            .filter(|token| !snapshot.iter().any(|c| &c.token == *token))
            .cloned()
            .collect();
        for token in gone {
            self.withdraw(&token);
        }
    }

    fn retract_all(&mut self) {
        let ours: Vec<String> = self.ours.keys().cloned().collect();
        for token in ours {
            self.withdraw(&token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(token: &str, key_authorization: &str) -> Http01Challenge {
        Http01Challenge {
            token: token.to_owned(),
            key_authorization: key_authorization.to_owned(),
            lineage: "www".to_owned(),
        }
    }

    #[test]
    fn the_follower_takes_out_only_what_it_put_in() {
        let tokens = ChallengeTokens::new();
        let mut served = Served::new(tokens.clone());
        // This node's own solver serves `own`; the fleet's notification for it changes nothing.
        tokens.publish("own", "own.ka");
        served.publish("own", "own.ka");
        served.publish("theirs", "theirs.ka");
        assert_eq!(tokens.lookup("theirs").as_deref(), Some("theirs.ka"));
        served.withdraw("own");
        assert_eq!(tokens.lookup("own").as_deref(), Some("own.ka"));
        served.withdraw("theirs");
        assert_eq!(tokens.lookup("theirs"), None);

        // A snapshot adds what is missing and takes out what the follower served and the
        // fleet no longer has; the node's own token stays.
        served.publish("stale", "stale.ka");
        served.reconcile(&[challenge("fresh", "fresh.ka")]);
        assert_eq!(tokens.lookup("stale"), None);
        assert_eq!(tokens.lookup("fresh").as_deref(), Some("fresh.ka"));
        assert_eq!(tokens.lookup("own").as_deref(), Some("own.ka"));
        served.retract_all();
        assert_eq!(tokens.lookup("fresh"), None);
        assert_eq!(tokens.lookup("own").as_deref(), Some("own.ka"));
    }

    #[test]
    fn requests_merge_until_taken() {
        let queue = SyncQueue::default();
        assert!(queue.take().is_none());
        queue.request("www".to_owned());
        queue.request("api".to_owned());
        queue.request("www".to_owned());
        let pending = queue.take().expect("pending");
        assert!(!pending.all);
        assert_eq!(pending.lineages.len(), 2);
        queue.request_all();
        assert!(queue.take().expect("pending").all);
        assert!(queue.take().is_none());
    }
}

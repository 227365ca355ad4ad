//! A lineage as one aggregate: its state loaded once, what is live read against that state,
//! and every change to `state/NAME.json` made through one of its transitions.
//!
//! [`Store::lineage`](crate::Store::lineage) reads the state file once; the live pair is then
//! read with that copy (no second read for the revocation flag), and each transition (order
//! placed, order forgotten, attempt failed or parked, certificate installed, deploy pending or
//! done, revoked, notified) is a pure change of the in-memory [`LineageState`] followed by one atomic
//! save. Nothing outside the store writes a state file, so what the planner reads next time
//! is decided here only, and a pass costs one read and one write per transition that changes
//! something (a transition that changes nothing writes nothing).
//!
//! The in-memory copy follows the disk: it is replaced only once its save succeeded, so after
//! a failed save the aggregate still says what the file says. Transitions take the instant as
//! a parameter; there is no clock here.
//!
//! How a failed attempt is recorded depends on its [`FailureClass`], which the caller derives
//! from the cause (the crate that knows the cause decides whether it is worth waiting for).

use std::time::{Duration, SystemTime};

use certkeeper_core::notify::NotifyState;
use certkeeper_core::{CertName, DomainName, KeyGroup, KeyType, RevocationReason, Secret};

use crate::Store;
use crate::error::{StoreError, VerifyProblem};
use crate::live::{self, LiveCert, LiveFiles, LiveKey};
use crate::state::{
    self, LineageState, NotifiedRecord, PendingOrder, RenewalInfoRecord, RevokedRecord,
    unix_seconds,
};

/// After an attempt found the CA still working on the order, look at it again this much later.
pub const RECHECK_WAITING_ORDER: Duration = Duration::from_secs(300);
/// After a `rateLimited` refusal without a usable Retry-After, wait at least this long.
pub const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(3_600);

/// What an attempt that installed nothing means for the next one. The caller classifies its
/// cause; the lineage records it accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The CA has not finished the order yet (approval pending, still processing): the order
    /// is kept (parked) and looked at again after [`RECHECK_WAITING_ORDER`]. Not a failure.
    WaitingOnCa,
    /// Trouble that may go away by itself (the network, the CA's own errors, a full disk):
    /// retried with backoff, and not before `retry_after` when the CA sent one.
    Transient { retry_after: Option<SystemTime> },
    /// The CA said to slow down: not before `retry_after`, or [`RATE_LIMIT_PAUSE`] from now
    /// without one.
    RateLimited { retry_after: Option<SystemTime> },
    /// A problem that will not go away by itself (configuration, a refusal, a certificate
    /// that does not verify): a human must act; retried with backoff meanwhile.
    NeedsHuman,
    /// Another node of the fleet works on the certificate (holds its lease): not a failure;
    /// looked at again at `recheck_at`, when that lease would have expired.
    Elsewhere { recheck_at: SystemTime },
}

impl FailureClass {
    /// Whether [`Lineage::record_failure`] counts it in the failure streak the backoff grows
    /// from: everything but an order the CA is still working on and a certificate another node
    /// works on.
    #[must_use]
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::WaitingOnCa | Self::Elsewhere { .. })
    }
}

impl PendingOrder {
    /// The order at `order_url` for `domains` with a `key_type` key, placed through
    /// `directory_url` at `placed_at`.
    #[must_use]
    pub fn new(
        order_url: &str,
        directory_url: &str,
        domains: &[DomainName],
        key_type: KeyType,
        placed_at: SystemTime,
    ) -> Self {
        Self {
            order_url: order_url.to_owned(),
            directory_url: directory_url.to_owned(),
            domains: domains.iter().map(ToString::to_string).collect(),
            key_type: key_type.as_str().to_owned(),
            placed_at_unix: unix_seconds(placed_at),
        }
    }

    /// Whether this order is for exactly `domains` (in the configured order) and `key_type`:
    /// a configuration change makes a stored order stale.
    #[must_use]
    pub fn is_for(&self, domains: &[DomainName], key_type: KeyType) -> bool {
        self.key_type == key_type.as_str()
            && self.domains.len() == domains.len()
            && self
                .domains
                .iter()
                .zip(domains)
                .all(|(stored, wanted)| *stored == wanted.to_string())
    }
}

/// One lineage's state, loaded once, with what is live read against it and every change
/// saved atomically (see the module documentation).
#[derive(Debug, Clone)]
pub struct Lineage {
    store: Store,
    name: CertName,
    state: LineageState,
}

impl Store {
    /// Load the lineage `name`: its state (the default when it has none yet), from which what
    /// is live is then read and through which every change is saved.
    ///
    /// # Errors
    /// [`StoreError::State`] when the state file is not valid; [`StoreError::Unsafe`] when
    /// it or `state/` is a symlink or not certkeeper's; [`StoreError::Io`] when it cannot be
    /// read.
    pub fn lineage(&self, name: &CertName) -> Result<Lineage, StoreError> {
        Ok(Lineage {
            store: self.clone(),
            name: name.clone(),
            state: self.read_state(name)?,
        })
    }
}

/// A lineage loaded by [`Store::load_lineages`]: its state, and what is live read against it
/// (the certificate only, as planning needs it), or why either could not be read.
pub type LoadedLineage = Result<(Lineage, Result<Option<LiveCert>, StoreError>), StoreError>;

impl Store {
    /// [`Store::lineage`] and [`Lineage::live_certificate`] for each of `names`, in order.
    ///
    /// For a batch (a pass over a large inventory), `state/`, `live/` and `archive/` are
    /// checked once, not once per lineage: three `fstatat` calls of some twenty per lineage.
    /// A directory swapped during the batch is seen by the next one, as by a single load
    /// made a moment earlier.
    #[must_use]
    pub fn load_lineages(&self, names: &[&CertName]) -> Vec<LoadedLineage> {
        let held = (
            self.held.state.current(&self.root),
            self.held.live.current(&self.root),
            self.held.archive.current(&self.root),
        );
        let (state_dir, live_dir, archive_dir) = match held {
            (Ok(state), Ok(live), Ok(archive)) => (state, live, archive),
            // Report it per lineage, as single loads would.
            _ => {
                return names
                    .iter()
                    .map(|name| {
                        let lineage = self.lineage(name)?;
                        let live = lineage.live_certificate();
                        Ok((lineage, live))
                    })
                    .collect();
            }
        };
        names
            .iter()
            .map(|&name| {
                let state = match &state_dir {
                    Some(dir) => crate::state::read_in(dir, name)?,
                    None => LineageState::default(),
                };
                let live = match &live_dir {
                    Some(live) => live::read_live(
                        live,
                        || Ok(archive_dir.as_deref().map(crate::nofollow::Reached::Held)),
                        &self.layout,
                        name,
                        &state,
                        live::Check::CertificateOnly,
                    ),
                    None => Ok(None),
                };
                let lineage = Lineage {
                    store: self.clone(),
                    name: name.clone(),
                    state,
                };
                Ok((lineage, live))
            })
            .collect()
    }
}

impl Lineage {
    #[must_use]
    pub fn name(&self) -> &CertName {
        &self.name
    }

    /// The state as loaded and changed since (always what the file holds).
    #[must_use]
    pub fn state(&self) -> &LineageState {
        &self.state
    }

    /// What is live, the key checked against the certificate (see
    /// [`Store::read_live`](crate::Store::read_live)); `observed.revoked` from this state.
    ///
    /// # Errors
    /// As [`Store::read_live`](crate::Store::read_live).
    pub fn live(&self) -> Result<Option<LiveCert>, StoreError> {
        self.read_live(live::Check::Pair)
    }

    /// What is live, the certificate only: what planning needs (see
    /// [`Store::read_live_certificate`](crate::Store::read_live_certificate)).
    ///
    /// # Errors
    /// As [`Store::read_live_certificate`](crate::Store::read_live_certificate).
    pub fn live_certificate(&self) -> Result<Option<LiveCert>, StoreError> {
        self.read_live(live::Check::CertificateOnly)
    }

    fn read_live(&self, check: live::Check) -> Result<Option<LiveCert>, StoreError> {
        self.store.read_live_with(&self.name, &self.state, check)
    }

    /// The private key of what is live, checked to match the live certificate (read as
    /// [`Lineage::live`] reads it); `None` when nothing is live.
    ///
    /// # Errors
    /// As [`Lineage::live`].
    pub fn live_key(&self) -> Result<Option<LiveKey>, StoreError> {
        let read = self
            .store
            .read_live_pair(&self.name, &self.state, live::Check::Pair)?;
        Ok(read.and_then(|(live, key)| {
            key.map(|key| LiveKey {
                key_type: live.observed.key_type,
                pem: Secret::new(key.into_bytes()),
            })
        }))
    }

    /// Every file of what is live (certificate, chain, full chain and key, from one version,
    /// the key checked against the certificate); `None` when nothing is live. What a fleet
    /// node publishes for the others to install.
    ///
    /// # Errors
    /// As [`Lineage::live`].
    pub fn live_files(&self) -> Result<Option<LiveFiles>, StoreError> {
        self.store.read_live_files(&self.name, &self.state)
    }

    /// The order in flight, if one was recorded.
    #[must_use]
    pub fn pending_order(&self) -> Option<&PendingOrder> {
        self.state.pending_order.as_ref()
    }

    /// The private key of the order in flight (`state/NAME.order-key.pem`), if one was kept.
    ///
    /// # Errors
    /// [`StoreError::Unsafe`] when it is a symlink, not certkeeper's or open to others;
    /// [`StoreError::Io`] when it exists but cannot be read.
    pub fn pending_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.read_pending_key(&self.name)
    }

    /// Verify and install a new certificate and make it live, exactly as
    /// [`Store::install`](crate::Store::install) does; `key_pem` must be PEM text. With
    /// `key_group`, `privkey.pem` is that group's and `0640` from its creation. The state is
    /// not changed: [`Lineage::record_install`] records the success.
    ///
    /// # Errors
    /// As [`Store::install`](crate::Store::install); [`StoreError::Verify`] (nothing written)
    /// when `key_pem` is not UTF-8; [`StoreError::KeyGroup`] (nothing published) when the
    /// key cannot be given to `key_group`.
    pub fn install(
        &self,
        domains: &[DomainName],
        key_pem: &[u8],
        chain_pem: &str,
        key_group: Option<&KeyGroup>,
    ) -> Result<LiveCert, StoreError> {
        let key_pem = std::str::from_utf8(key_pem).map_err(|_| StoreError::Verify {
            name: self.name.clone(),
            problem: VerifyProblem::BadPem {
                what: "private key",
                detail: "it is not UTF-8 text".to_owned(),
            },
        })?;
        self.store.install_with_state(
            &self.name,
            domains,
            key_pem,
            chain_pem,
            &self.state,
            key_group,
        )
    }

    // ------------------------------------------------------------ transitions

    /// Order placed: keep its key (`0600` from creation), then record the order, so a restart
    /// finalizes this order instead of placing another one.
    ///
    /// # Errors
    /// [`StoreError::Unsafe`] when `state/` or a file in it is a symlink or not
    /// certkeeper's; [`StoreError::Io`] when one cannot be written. When the key was written
    /// but the order not recorded, the key is left behind and never used.
    pub fn record_order(&mut self, order: PendingOrder, key_pem: &[u8]) -> Result<(), StoreError> {
        state::write_pending_key(&self.store.root, &self.name, key_pem)?;
        self.change(|state| state.pending_order = Some(order))
    }

    /// Order forgotten (dead at the CA, stale after a configuration change, or its
    /// certificate refused): the next attempt places a new one. The record goes first, then
    /// the key.
    ///
    /// # Errors
    /// As [`Lineage::record_order`], and when the key cannot be removed.
    pub fn forget_order(&mut self) -> Result<(), StoreError> {
        self.change(|state| state.pending_order = None)?;
        state::remove_pending_key(&self.store.root, &self.name)
    }

    /// Attempt failed (or, for [`FailureClass::WaitingOnCa`], order parked) at `now` with
    /// `error` as shown to the operator (no secrets): see [`FailureClass`] for what each class
    /// records.
    ///
    /// # Errors
    /// As [`Lineage::record_order`].
    pub fn record_failure(
        &mut self,
        class: FailureClass,
        error: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.change(|state| {
            let attempts = &mut state.attempts;
            if class == FailureClass::WaitingOnCa {
                attempts.last_error = Some(format!("waiting for the CA: {error}"));
                attempts.retry_not_before_unix = Some(unix_seconds(now + RECHECK_WAITING_ORDER));
                return;
            }
            if let FailureClass::Elsewhere { recheck_at } = class {
                attempts.last_error = Some(error.to_owned());
                attempts.retry_not_before_unix = Some(unix_seconds(recheck_at.max(now)));
                return;
            }
            attempts.consecutive_failures = attempts.consecutive_failures.saturating_add(1);
            attempts.failures_total += 1;
            attempts.last_failure_at_unix = Some(unix_seconds(now));
            attempts.last_error = Some(error.to_owned());
            // The CA's own Retry-After wins; a rate limit without one pauses an hour.
            attempts.retry_not_before_unix = match class {
                FailureClass::Transient { retry_after } => retry_after,
                FailureClass::RateLimited { retry_after } => {
                    Some(retry_after.unwrap_or(now + RATE_LIMIT_PAUSE))
                }
                FailureClass::WaitingOnCa
                | FailureClass::NeedsHuman
                | FailureClass::Elsewhere { .. } => None,
            }
            .map(unix_seconds);
        })
    }

    /// In a fleet, after a counted failure: continue the streak the other nodes recorded
    /// (`shared` failures before this one), so the backoff grows for the whole fleet as it
    /// would for one node. Nothing changes when this node's own streak is longer, or when the
    /// last outcome was not a counted failure.
    ///
    /// # Errors
    /// As [`Lineage::record_order`].
    pub fn continue_streak(&mut self, shared: u32) -> Result<(), StoreError> {
        if self.state.attempts.consecutive_failures == 0
            || self.state.attempts.consecutive_failures > shared
        {
            return Ok(());
        }
        self.change(|state| state.attempts.consecutive_failures = shared.saturating_add(1))
    }

    /// Certificate installed at `now` (after [`Lineage::install`]): the failure streak ends,
    /// the order is done. The record goes first, then the order's key.
    ///
    /// # Errors
    /// As [`Lineage::forget_order`].
    pub fn record_install(&mut self, now: SystemTime) -> Result<(), StoreError> {
        self.change(|state| {
            let attempts = &mut state.attempts;
            attempts.consecutive_failures = 0;
            attempts.last_error = None;
            attempts.retry_not_before_unix = None;
            attempts.last_success_at_unix = Some(unix_seconds(now));
            attempts.successes_total += 1;
            attempts.refused_profile = None;
            state.pending_order = None;
        })?;
        state::remove_pending_key(&self.store.root, &self.name)
    }

    /// Deploy pending: a deploy hook or reload failed for the live certificate (`why`, shown
    /// by `status` as `deploy: why`); the hooks run again until they succeed.
    ///
    /// # Errors
    /// As [`Lineage::record_order`].
    pub fn record_deploy_failure(&mut self, why: &str) -> Result<(), StoreError> {
        self.change(|state| {
            state.attempts.pending_deploy = true;
            state.attempts.last_error = Some(format!("deploy: {why}"));
        })
    }

    /// Deploy done: the deploy hooks of the live certificate succeeded (clearing a pending
    /// deploy and its error).
    ///
    /// # Errors
    /// As [`Lineage::record_order`].
    pub fn record_deploy(&mut self) -> Result<(), StoreError> {
        self.change(|state| {
            if state.attempts.pending_deploy {
                state.attempts.last_error = None;
            }
            state.attempts.pending_deploy = false;
        })
    }

    /// Revoked: the operator revoked the certificate with `serial_hex` for `reason` at `at`;
    /// it is not renewed until forced (a reissue has another serial and is not revoked).
    ///
    /// # Errors
    /// As [`Lineage::record_order`].
    pub fn record_revocation(
        &mut self,
        serial_hex: &str,
        reason: RevocationReason,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.change(|state| state.revoked = Some(RevokedRecord::new(serial_hex, reason, at)))
    }

    /// Profile refused: the CA does not offer `profile` (after the failure was recorded with
    /// [`Lineage::record_failure`]); the certificate is not ordered again while it is
    /// configured with the same profile.
    ///
    /// # Errors
    /// As [`Lineage::record_order`].
    pub fn record_refused_profile(&mut self, profile: &str) -> Result<(), StoreError> {
        self.change(|state| state.attempts.refused_profile = Some(profile.to_owned()))
    }

    /// Renewal information checked: what the CA answered (or why it did not) about the live
    /// certificate, and when to ask again.
    ///
    /// # Errors
    /// As [`Lineage::record_order`].
    pub fn record_renewal_info(&mut self, record: RenewalInfoRecord) -> Result<(), StoreError> {
        self.change(|state| state.renewal_info = Some(Box::new(record)))
    }

    /// Notified: what [`certkeeper_core::notify::decide`] returned as the state to persist
    /// (no write when it did not change, as on most planning passes).
    ///
    /// # Errors
    /// As [`Lineage::record_order`].
    pub fn record_notified(&mut self, notified: NotifyState) -> Result<(), StoreError> {
        self.change(|state| state.notified = NotifiedRecord::new(notified))
    }

    /// The notification state (see [`Lineage::record_notified`]).
    #[must_use]
    pub fn notified(&self) -> NotifyState {
        self.state.notified.state()
    }

    /// Apply `edit` to a copy of the state and save it with one atomic write (none when
    /// nothing changed); the in-memory state follows only once the save succeeded.
    fn change(&mut self, edit: impl FnOnce(&mut LineageState)) -> Result<(), StoreError> {
        let mut next = self.state.clone();
        edit(&mut next);
        if next != self.state {
            state::write(&self.store.root, &self.name, &next)?;
            self.state = next;
        }
        Ok(())
    }
}

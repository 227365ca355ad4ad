//! Per-lineage state that is not in the certificate itself: `state/NAME.json`.
//!
//! The operator's revocation record, the history of attempts the scheduler plans backoff
//! from, and the order in flight (so a restart resumes it instead of ordering again). It is
//! read and changed only through [`Lineage`](crate::Lineage). The file is serde JSON written
//! with the crate's atomic writes, and every field is `#[serde(default)]`
//! so a newer certkeeper can add fields that an older file simply lacks (and unknown fields
//! from a newer file are ignored by an older one).
//!
//! `state/` also holds the private key of an order in flight (`NAME.order-key.pem`, `0600`),
//! which is why `state/` is `0700` and every file in it is opened without following
//! symlinks: a planted `state/NAME.order-key.pem` link would otherwise receive the next key.

use std::time::SystemTime;

use certkeeper_core::ari::{SuggestedRenewal, Window};
use certkeeper_core::notify::NotifyState;
use certkeeper_core::{CertName, RevocationReason};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic_at;
use crate::error::StoreError;
use crate::layout::{
    PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, STATE_DIR, pending_key_file_name, state_file_name,
};
use crate::nofollow::{DirFd, Secrecy};

/// Mode of lineage state files: nothing secret in them.
const STATE_FILE_MODE: u32 = 0o644;

/// What certkeeper remembers about a lineage between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LineageState {
    /// The last certificate of this lineage the operator revoked.
    pub revoked: Option<RevokedRecord>,
    /// Outcomes of past attempts.
    pub attempts: AttemptRecord,
    /// An order placed and not yet installed. Its private key is in a separate `0600` file
    /// (see [`Lineage::record_order`](crate::Lineage::record_order)): this file is not secret
    /// (`0644`).
    pub pending_order: Option<PendingOrder>,
    /// What the CA last said about renewing the live certificate (ARI, RFC 9773).
    /// Boxed: most lineages have none (their CA offers no ARI), and this state travels by
    /// value through the engine.
    pub renewal_info: Option<Box<RenewalInfoRecord>>,
    /// What was notified about this lineage ([`NotifyState`]); absent in files older than
    /// notifications, which read as "nothing notified".
    pub notified: NotifiedRecord,
}

/// [`NotifyState`] as stored: seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifiedRecord {
    /// When the `failed` notice of the current failure streak was decided.
    pub failed_at_unix: Option<i64>,
    /// When the last `expiring` notice was decided.
    pub expiring_at_unix: Option<i64>,
}

impl NotifiedRecord {
    /// The record of `state`.
    #[must_use]
    pub fn new(state: NotifyState) -> Self {
        Self {
            failed_at_unix: state.failed_at.map(unix_seconds),
            expiring_at_unix: state.expiring_at.map(unix_seconds),
        }
    }

    /// The state this record holds.
    #[must_use]
    pub fn state(self) -> NotifyState {
        NotifyState {
            failed_at: self.failed_at_unix.map(from_unix_seconds),
            expiring_at: self.expiring_at_unix.map(from_unix_seconds),
        }
    }
}

/// The last renewal-information check of a lineage's live certificate. Times are seconds since
/// the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenewalInfoRecord {
    /// The certificate checked ([`LiveCert::serial_hex`](crate::LiveCert::serial_hex)); a
    /// record for another serial says nothing about the live certificate.
    pub serial_hex: String,
    /// The CA's suggested window, from its last answer.
    pub window_start_unix: Option<i64>,
    pub window_end_unix: Option<i64>,
    /// The instant chosen inside that window (drawn again only when the window changes).
    pub renew_at_unix: Option<i64>,
    /// The CA's `explanationURL`, when its last answer had one.
    pub explanation_url: Option<String>,
    /// When the CA was last asked, and what went wrong then (`None`: it answered).
    pub checked_at_unix: i64,
    pub last_error: Option<String>,
    /// When to ask again; `None`: not before the certificate is replaced.
    pub next_check_unix: Option<i64>,
}

/// What happened on past attempts for a lineage. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttemptRecord {
    /// Failures since the last success.
    pub consecutive_failures: u32,
    pub last_failure_at_unix: Option<i64>,
    /// The last error, as shown to the operator (never contains secrets).
    pub last_error: Option<String>,
    /// The CA asked not to retry before this (Retry-After, rate limit).
    pub retry_not_before_unix: Option<i64>,
    pub last_success_at_unix: Option<i64>,
    /// Certificates installed by certkeeper for this lineage, ever.
    pub successes_total: u64,
    /// Failed attempts, ever.
    pub failures_total: u64,
    /// A deploy hook or reload that still has to succeed for the live certificate.
    pub pending_deploy: bool,
    /// The CA refused this profile (it is not among those it offers): the certificate is not
    /// ordered again while its configuration asks for the same one.
    pub refused_profile: Option<String>,
}

/// An order in flight: enough to pick it up again by URL after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingOrder {
    pub order_url: String,
    /// The directory URL the order was placed through (with any lifecycle query).
    pub directory_url: String,
    /// The names ordered; a config change makes the order stale.
    pub domains: Vec<String>,
    /// The key type ordered (its spelling in the config).
    pub key_type: String,
    pub placed_at_unix: i64,
}

impl LineageState {
    /// The CA's suggestion for the certificate with this serial, from the last renewal
    /// information it answered for that certificate.
    #[must_use]
    pub fn suggested_renewal(&self, serial_hex: &str) -> Option<SuggestedRenewal> {
        let record = self
            .renewal_info
            .as_ref()
            .filter(|record| record.serial_hex.eq_ignore_ascii_case(serial_hex))?;
        Some(SuggestedRenewal {
            window: Window {
                start: from_unix_seconds(record.window_start_unix?),
                end: from_unix_seconds(record.window_end_unix?),
            },
            at: from_unix_seconds(record.renew_at_unix?),
        })
    }

    /// Whether the certificate with this serial is the one recorded as revoked. A later
    /// reissue has another serial, so it is not revoked.
    #[must_use]
    pub fn is_revoked(&self, serial_hex: &str) -> bool {
        self.revoked
            .as_ref()
            .is_some_and(|record| record.serial_hex.eq_ignore_ascii_case(serial_hex))
    }
}

/// A revocation the operator made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RevokedRecord {
    /// Serial of the revoked certificate, formatted like [`LiveCert::serial_hex`](crate::LiveCert::serial_hex).
    pub serial_hex: String,
    /// RFC 5280 spelling of the reason ([`RevocationReason::as_str`]).
    pub reason: String,
    /// When it was revoked, in seconds since the Unix epoch.
    pub at_unix: i64,
}

/// Seconds since the Unix epoch (negative before it), as stored in state files.
#[must_use]
pub fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// The instant for stored Unix seconds.
#[must_use]
pub fn from_unix_seconds(seconds: i64) -> SystemTime {
    let magnitude = std::time::Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

impl RevokedRecord {
    /// A record for `serial_hex` revoked for `reason` at `at`.
    #[must_use]
    pub fn new(serial_hex: &str, reason: RevocationReason, at: SystemTime) -> Self {
        Self {
            serial_hex: serial_hex.to_ascii_lowercase(),
            reason: reason.as_str().to_owned(),
            at_unix: unix_seconds(at),
        }
    }
}

/// The state of `name` in `dir` (`state/`); the default when it has none.
pub(crate) fn read_in(dir: &DirFd, name: &CertName) -> Result<LineageState, StoreError> {
    let file = state_file_name(name);
    let Some(bytes) = dir.read_file(&file, Secrecy::Public, "read lineage state")? else {
        return Ok(LineageState::default());
    };
    serde_json::from_slice(&bytes).map_err(|source| StoreError::State {
        path: dir.child(&file),
        source,
    })
}

pub(crate) fn write(root: &DirFd, name: &CertName, state: &LineageState) -> Result<(), StoreError> {
    let dir = root.ensure_dir(STATE_DIR, PRIVATE_DIR_MODE)?;
    let file = state_file_name(name);
    let mut json = serde_json::to_vec_pretty(state).map_err(|source| StoreError::State {
        path: dir.child(&file),
        source,
    })?;
    json.push(b'\n');
    write_atomic_at(&dir, &file, &json, STATE_FILE_MODE)
}

pub(crate) fn write_pending_key(
    root: &DirFd,
    name: &CertName,
    key_pem: &[u8],
) -> Result<(), StoreError> {
    let dir = root.ensure_dir(STATE_DIR, PRIVATE_DIR_MODE)?;
    write_atomic_at(
        &dir,
        &pending_key_file_name(name),
        key_pem,
        PRIVATE_FILE_MODE,
    )
}

/// The pending order key of `name` in `dir` (`state/`).
pub(crate) fn read_pending_key_in(
    dir: &DirFd,
    name: &CertName,
) -> Result<Option<Vec<u8>>, StoreError> {
    dir.read_file(
        &pending_key_file_name(name),
        Secrecy::Secret,
        "read the pending order key",
    )
}

pub(crate) fn remove_pending_key(root: &DirFd, name: &CertName) -> Result<(), StoreError> {
    let Some(dir) = root.open_dir(STATE_DIR)? else {
        return Ok(());
    };
    dir.remove_file(&pending_key_file_name(name), "remove the pending order key")?;
    dir.fsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_future_files_parse() {
        let empty: LineageState = serde_json::from_str("{}").expect("empty object");
        assert_eq!(empty, LineageState::default());
        let future: LineageState = serde_json::from_str(
            r#"{"revoked":{"serial_hex":"ab","reason":"superseded","at_unix":5,"by":"x"},"next":1}"#,
        )
        .expect("unknown fields are ignored");
        assert!(future.is_revoked("AB"));
        assert!(!future.is_revoked("abc"));
        assert_eq!(future.notified.state(), NotifyState::default());
    }

    #[test]
    fn notified_state_round_trips_in_unix_seconds() {
        let at = from_unix_seconds(1_700_000_000);
        let state = NotifyState {
            failed_at: Some(at),
            expiring_at: None,
        };
        let record = NotifiedRecord::new(state);
        let json = serde_json::to_string(&LineageState {
            notified: record,
            ..LineageState::default()
        })
        .expect("serializes");
        assert!(json.contains(r#""failed_at_unix":1700000000"#), "{json}");
        let back: LineageState = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.notified.state(), state);
    }

    #[test]
    fn unix_seconds_round_trip() {
        for seconds in [0, 1_700_000_000, -5] {
            assert_eq!(unix_seconds(from_unix_seconds(seconds)), seconds);
        }
    }

    #[test]
    fn a_suggested_renewal_belongs_to_one_serial() {
        let state = LineageState {
            renewal_info: Some(Box::new(RenewalInfoRecord {
                serial_hex: "0ABC".to_owned(),
                window_start_unix: Some(100),
                window_end_unix: Some(200),
                renew_at_unix: Some(150),
                ..RenewalInfoRecord::default()
            })),
            ..LineageState::default()
        };
        let suggested = state.suggested_renewal("0abc").expect("same serial");
        assert_eq!(suggested.at, from_unix_seconds(150));
        assert_eq!(suggested.window.end, from_unix_seconds(200));
        assert_eq!(state.suggested_renewal("0abd"), None);
        // A check that failed before any answer has no window.
        let failed = LineageState {
            renewal_info: Some(Box::new(RenewalInfoRecord {
                serial_hex: "0abc".to_owned(),
                last_error: Some("HTTP 500".to_owned()),
                ..RenewalInfoRecord::default()
            })),
            ..LineageState::default()
        };
        assert_eq!(failed.suggested_renewal("0abc"), None);
    }

    #[test]
    fn pending_order_and_attempts_round_trip() {
        let state = LineageState {
            revoked: None,
            notified: NotifiedRecord::default(),
            attempts: AttemptRecord {
                consecutive_failures: 2,
                last_failure_at_unix: Some(10),
                last_error: Some("CA down".to_owned()),
                ..AttemptRecord::default()
            },
            pending_order: Some(PendingOrder {
                order_url: "https://ca/order/1".to_owned(),
                directory_url: "https://ca/dir".to_owned(),
                domains: vec!["a.example.com".to_owned()],
                key_type: "ecdsa-p256".to_owned(),
                placed_at_unix: 9,
            }),
            renewal_info: Some(Box::new(RenewalInfoRecord {
                serial_hex: "0abc".to_owned(),
                window_start_unix: Some(100),
                window_end_unix: Some(200),
                renew_at_unix: Some(150),
                explanation_url: None,
                checked_at_unix: 50,
                last_error: None,
                next_check_unix: Some(110),
            })),
        };
        let json = serde_json::to_string(&state).expect("serialize");
        assert_eq!(
            serde_json::from_str::<LineageState>(&json).expect("parse"),
            state
        );
    }

    #[test]
    fn record_from_reason_and_time() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let record = RevokedRecord::new("0A1B", RevocationReason::KeyCompromise, at);
        assert_eq!(record.serial_hex, "0a1b");
        assert_eq!(record.reason, "keyCompromise");
        assert_eq!(record.at_unix, 1_700_000_000);
    }
}

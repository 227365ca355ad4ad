//! The daemon's renewal-information checks (ACME Renewal Information, RFC 9773).
//!
//! For each live certificate the daemon asks its CA, through the CA port, for the suggested
//! renewal window, and records the answer on the lineage; the store then hands it to the
//! planner as the certificate's `suggested` renewal (see `certkeeper_core::ari` for the rules:
//! one random instant per window, rechecks clamped between a minute and a day, six hours after
//! an error, none after expiry).
//!
//! The check is split in two so that the daemon's loop stays the only writer of a lineage
//! while no attempt runs for it: [`check`] is the task (it reads the live certificate and asks
//! the CA, writing nothing), and [`record`] runs on the loop when the task is done, and only
//! when no attempt for the certificate started meanwhile (the attempt replaces the certificate
//! the answer was about).
//!
//! A CA whose directory has no `renewalInfo` is remembered per CA, in memory, for
//! `RECHECK_UNSUPPORTED` (a day): its certificates are planned by their lifetime, and nothing
//! is written for them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_core::ari;
use certkeeper_core::{CaSpec, CertName};
use certkeeper_store::{Lineage, RenewalInfoRecord, Store, from_unix_seconds, unix_seconds};

use crate::engine::ports::{CertificateAuthority, RenewalInfo};
use crate::report::{error_chain, timestamp};

/// What one check found, for [`record`].
#[derive(Debug)]
pub struct Checked {
    pub name: CertName,
    /// The certificate asked about, and when it expires.
    pub serial_hex: String,
    pub not_after: SystemTime,
    /// The CA's answer; the error as shown to the operator.
    pub answer: Result<RenewalInfo, String>,
}

/// When the live certificate (expiring at `not_after`) is next checked, given the last
/// record of a check of that certificate (`None`: never asked about it) and, for a CA found
/// without ARI, until when that holds. `None`: not again (expired, or past its last check
/// before expiry).
#[must_use]
pub fn next_check_at(
    not_after: SystemTime,
    record: Option<&RenewalInfoRecord>,
    unsupported_until: Option<SystemTime>,
    now: SystemTime,
) -> Option<SystemTime> {
    let planned = match record {
        Some(record) => from_unix_seconds(record.next_check_unix?),
        None => now,
    };
    let at = unsupported_until.map_or(planned, |until| planned.max(until));
    ari::next_check(at, not_after)
}

/// Ask `ca` about the live certificate of `name` in `store`. Writes nothing.
pub async fn check(
    store: Store,
    authority: Arc<dyn CertificateAuthority>,
    ca: CaSpec,
    name: CertName,
) -> Option<Checked> {
    let reading = store.clone();
    let read_name = name.clone();
    let live = tokio::task::spawn_blocking(move || {
        reading
            .lineage(&read_name)
            .and_then(|lineage| lineage.live_certificate())
    })
    .await
    .ok()?;
    // No certificate (or an unreadable one) to ask about: the planner replaces it anyway.
    let live = live.ok().flatten()?;
    let answer = authority
        .renewal_info(&ca, &live.leaf_der)
        .await
        .map_err(|err| error_chain(&err));
    Some(Checked {
        name,
        serial_hex: live.serial_hex,
        not_after: live.observed.not_after,
        answer,
    })
}

/// Record what a check found on `lineage`, at `now`, drawing the renewal instant with
/// `random` when the window is new. Logs what an operator wants to know: a new window (info),
/// the CA's explanation URL (warn: a CA explains a window when it moved it, typically for a
/// revocation), a failed check (warn: the lifetime rule applies meanwhile).
///
/// # Errors
/// When the record cannot be saved.
pub fn record(
    lineage: &mut Lineage,
    checked: Checked,
    now: SystemTime,
    random: u64,
) -> Result<(), certkeeper_store::StoreError> {
    let Checked {
        name,
        serial_hex,
        not_after,
        answer,
    } = checked;
    let previous = lineage
        .state()
        .renewal_info
        .clone()
        .filter(|record| record.serial_hex.eq_ignore_ascii_case(&serial_hex));
    let record = match answer {
        // Not recorded per certificate: see the module docs.
        Ok(RenewalInfo::Unsupported) => return Ok(()),
        Ok(RenewalInfo::Window {
            window,
            explanation_url,
            retry_after,
        }) => {
            let before = lineage.state().suggested_renewal(&serial_hex);
            let suggested = ari::suggest(before.as_ref(), window, not_after, random);
            let next_check = ari::next_check(ari::recheck_after(now, retry_after), not_after);
            if before.map(|before| before.window) != Some(window) {
                tracing::info!(
                    cert = %name,
                    serial = %serial_hex,
                    window_start = %timestamp(window.start),
                    window_end = %timestamp(window.end),
                    renew_at = %timestamp(suggested.at),
                    "the CA suggested a renewal window"
                );
                if let Some(url) = &explanation_url {
                    tracing::warn!(
                        cert = %name,
                        explanation_url = %url,
                        window_start = %timestamp(window.start),
                        window_end = %timestamp(window.end),
                        "the CA explains its renewal window for this certificate"
                    );
                }
            }
            RenewalInfoRecord {
                serial_hex,
                window_start_unix: Some(unix_seconds(window.start)),
                window_end_unix: Some(unix_seconds(window.end)),
                renew_at_unix: Some(unix_seconds(suggested.at)),
                explanation_url,
                checked_at_unix: unix_seconds(now),
                last_error: None,
                next_check_unix: next_check.map(unix_seconds),
            }
        }
        Err(error) => {
            let next_check = ari::next_check(ari::recheck_after_error(now), not_after);
            tracing::warn!(
                cert = %name,
                error,
                next_check = %next_check.map_or_else(|| "none before expiry".to_owned(), timestamp),
                "cannot get the CA's renewal information; the certificate's lifetime decides meanwhile"
            );
            // The CA's last word stands until it says something else.
            let previous = previous.unwrap_or_default();
            RenewalInfoRecord {
                serial_hex,
                checked_at_unix: unix_seconds(now),
                last_error: Some(error),
                next_check_unix: next_check.map(unix_seconds),
                ..*previous
            }
        }
    };
    lineage.record_renewal_info(record)
}

/// How long the CA is taken to lack ARI once its directory said so.
pub const UNSUPPORTED_FOR: Duration = ari::RECHECK_UNSUPPORTED;

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn a_certificate_never_asked_about_is_checked_now_and_never_after_expiry() {
        let record = RenewalInfoRecord {
            serial_hex: "0a".to_owned(),
            next_check_unix: Some(unix_seconds(t(500))),
            ..RenewalInfoRecord::default()
        };
        // Never asked: now.
        assert_eq!(next_check_at(t(1_000), None, None, t(10)), Some(t(10)));
        // Asked: when the record says.
        assert_eq!(
            next_check_at(t(1_000), Some(&record), None, t(10)),
            Some(t(500))
        );
        // A CA without ARI: not before the day is over.
        assert_eq!(
            next_check_at(t(100_000), Some(&record), Some(t(86_410)), t(10)),
            Some(t(86_410))
        );
        // Not at or after expiry.
        assert_eq!(next_check_at(t(500), Some(&record), None, t(10)), None);
        let done = RenewalInfoRecord {
            next_check_unix: None,
            ..record
        };
        assert_eq!(next_check_at(t(1_000), Some(&done), None, t(10)), None);
    }
}

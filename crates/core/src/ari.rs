//! ACME Renewal Information (RFC 9773): what to do with the renewal window a CA suggests.
//!
//! A CA with ARI publishes, per certificate, a suggested window to renew in, and can move it
//! (earlier, for a mass revocation). The rules here are pure: the engine fetches the window
//! through the CA port, persists what these functions decide, and hands the planner the result
//! as [`ObservedCert::suggested`](crate::ObservedCert::suggested).
//!
//! - **One instant per window** ([`suggest`]): a uniformly random instant inside the window
//!   (RFC 9773 section 4.2), drawn once and persisted, drawn again only when the CA changes the
//!   window. Drawing on every check would drift towards the window's start; persisting makes a
//!   restart keep the plan. The instant is also kept before expiry: a window that runs past
//!   `notAfter` is cut there.
//! - **When to ask again** ([`recheck_after`], [`recheck_after_error`]): when the answer's
//!   Retry-After has passed, clamped to between [`MIN_RECHECK`] and [`MAX_RECHECK`] so neither
//!   a CA asking for seconds nor one asking for a month can starve or flood it;
//!   [`RECHECK_AFTER_ERROR`] after an error or an answer without Retry-After; and never at or
//!   after expiry ([`next_check`]).
//! - **The randomness comes in as a number**, so tests choose it and the planner stays a
//!   function of its inputs.

use std::time::{Duration, SystemTime};

/// Recheck no sooner than this after an answer, whatever its Retry-After.
pub const MIN_RECHECK: Duration = Duration::from_secs(60);
/// Recheck no later than this after an answer, whatever its Retry-After.
pub const MAX_RECHECK: Duration = Duration::from_secs(86_400);
/// Recheck this long after a failed check, or an answer without Retry-After.
pub const RECHECK_AFTER_ERROR: Duration = Duration::from_secs(6 * 3_600);
/// Look again this long after finding that a CA does not offer ARI (it may start to).
pub const RECHECK_UNSUPPORTED: Duration = Duration::from_secs(86_400);

/// The window a CA suggests renewing a certificate in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
}

/// The CA's suggestion for the live certificate, with the instant chosen inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuggestedRenewal {
    pub window: Window,
    /// When to renew: inside the window and before expiry. Passed: renew at once.
    pub at: SystemTime,
}

/// The suggestion after the CA answered `window` for a certificate expiring at `not_after`:
/// the previous one when the window did not change, otherwise a new instant chosen with
/// `random` (any value of a uniform `u64`).
#[must_use]
pub fn suggest(
    previous: Option<&SuggestedRenewal>,
    window: Window,
    not_after: SystemTime,
    random: u64,
) -> SuggestedRenewal {
    if let Some(previous) = previous.filter(|previous| previous.window == window) {
        return *previous;
    }
    SuggestedRenewal {
        window,
        at: choose(window, not_after, random),
    }
}

/// A uniformly random instant (to the millisecond) in `[start, min(end, not_after))`; the
/// earlier of `start` and a second before `not_after` when that span is empty (a window
/// starting at or after expiry is the CA's mistake; renewing before expiry is what it means).
#[must_use]
pub fn choose(window: Window, not_after: SystemTime, random: u64) -> SystemTime {
    let before_expiry = not_after
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(not_after);
    let end = window.end.min(not_after);
    let Ok(span) = end.duration_since(window.start) else {
        return window.start.min(before_expiry);
    };
    let millis = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return window.start.min(before_expiry);
    }
    window.start + Duration::from_millis(random % millis)
}

/// When to ask again after an answer that came `now` with `retry_after` (the delay its
/// Retry-After header asked for, if it had one).
#[must_use]
pub fn recheck_after(now: SystemTime, retry_after: Option<Duration>) -> SystemTime {
    let delay = retry_after.map_or(RECHECK_AFTER_ERROR, |delay| {
        delay.clamp(MIN_RECHECK, MAX_RECHECK)
    });
    now.checked_add(delay).unwrap_or(now)
}

/// When to ask again after a check that failed `now`.
#[must_use]
pub fn recheck_after_error(now: SystemTime) -> SystemTime {
    now.checked_add(RECHECK_AFTER_ERROR).unwrap_or(now)
}

/// The next check planned at `at` for a certificate expiring at `not_after`: `None` when that
/// is not before expiry (an expired certificate is renewed, not asked about).
#[must_use]
pub fn next_check(at: SystemTime, not_after: SystemTime) -> Option<SystemTime> {
    (at < not_after).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3_600);
    const DAY: Duration = Duration::from_secs(86_400);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn the_instant_is_kept_until_the_window_changes() {
        let window = Window {
            start: t(0),
            end: t(86_400),
        };
        let first = suggest(None, window, t(10 * 86_400), 12_345_678);
        assert_eq!(first.at, t(0) + Duration::from_millis(12_345_678));
        // The same window again, another random number: the same instant.
        assert_eq!(suggest(Some(&first), window, t(10 * 86_400), 99), first);
        // A window moved into the past: a new instant inside it.
        let moved = Window {
            start: t(0) - DAY,
            end: t(0) - HOUR,
        };
        let second = suggest(Some(&first), moved, t(10 * 86_400), 7);
        assert_eq!(second.window, moved);
        assert_eq!(second.at, moved.start + Duration::from_millis(7));
    }

    #[test]
    fn a_window_past_expiry_is_cut_at_expiry() {
        let window = Window {
            start: t(0),
            end: t(10 * 86_400),
        };
        let not_after = t(86_400);
        for random in [0, 1, 86_399_999, 86_400_000, u64::MAX] {
            let at = choose(window, not_after, random);
            assert!(at >= window.start && at < not_after, "{random}");
        }
        // Starting at expiry: a second before it.
        let late = Window {
            start: not_after,
            end: not_after + DAY,
        };
        assert_eq!(
            choose(late, not_after, 5),
            not_after - Duration::from_secs(1)
        );
        // Reversed: its start, kept before expiry.
        let reversed = Window {
            start: t(100),
            end: t(50),
        };
        assert_eq!(choose(reversed, not_after, 5), t(100));
    }

    #[test]
    fn rechecks_are_clamped_between_a_minute_and_a_day() {
        let now = t(0);
        let table = [
            (Some(Duration::from_secs(5)), now + MIN_RECHECK),
            (Some(HOUR), now + HOUR),
            (Some(30 * DAY), now + MAX_RECHECK),
            (None, now + 6 * HOUR),
        ];
        for (retry_after, expected) in table {
            assert_eq!(recheck_after(now, retry_after), expected, "{retry_after:?}");
        }
        assert_eq!(recheck_after_error(now), now + 6 * HOUR);
        assert_eq!(next_check(t(10), t(20)), Some(t(10)));
        assert_eq!(next_check(t(20), t(20)), None);
    }
}

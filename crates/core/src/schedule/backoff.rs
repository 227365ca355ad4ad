//! Exponential backoff between failed attempts.
//!
//! After `n` consecutive failures the next attempt waits `initial * 2^(n-1)`, capped at `cap`
//! (1 min, 2 min, 4 min ... 6 h by default), shortened by a per-certificate fraction of up to
//! 10 % so that certificates failing together (a CA outage) do not retry in lockstep. The
//! fraction is derived from the name and the failure count, never from a random source, so a
//! restart keeps the plan. The delay never drops below half of `initial`, nor below one
//! second even if `initial` is configured as zero: a failing order must never become a tight
//! loop against the CA.

use std::time::Duration;

use super::jitter::{fraction_of, stable_hash};
use crate::names::CertName;

/// Shortest delay after a failure, whatever the configuration says.
const MIN_DELAY: Duration = Duration::from_secs(1);

/// Backoff between failed attempts for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Longest delay, however many failures.
    pub cap: Duration,
}

impl Default for Backoff {
    /// One minute, doubling up to six hours.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(60),
            cap: Duration::from_secs(6 * 3600),
        }
    }
}

/// How long to wait after the last of `consecutive_failures` failures (zero when there were
/// none). See the module documentation for the formula.
#[must_use]
pub fn backoff_delay(name: &CertName, consecutive_failures: u32, backoff: &Backoff) -> Duration {
    let Some(doublings) = consecutive_failures.checked_sub(1) else {
        return Duration::ZERO;
    };
    let base = 1u32
        .checked_shl(doublings)
        .and_then(|factor| backoff.initial.checked_mul(factor))
        .map_or(backoff.cap, |delay| delay.min(backoff.cap));
    let hash = stable_hash(&[
        b"backoff",
        name.as_str().as_bytes(),
        &consecutive_failures.to_le_bytes(),
    ]);
    let shortened = base - fraction_of(hash, base / 10);
    shortened.max(backoff.initial / 2).max(MIN_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn name(s: &str) -> CertName {
        CertName::new(s).expect("valid test name")
    }

    #[test]
    fn doubles_from_one_minute_to_six_hours_minus_up_to_ten_percent() {
        let backoff = Backoff::default();
        // (consecutive failures, undiminished delay)
        let table: &[(u32, Duration)] = &[
            (1, MIN),
            (2, 2 * MIN),
            (3, 4 * MIN),
            (4, 8 * MIN),
            (5, 16 * MIN),
            (6, 32 * MIN),
            (7, 64 * MIN),
            (8, 128 * MIN),
            (9, 256 * MIN),
            (10, 360 * MIN),
            (11, 360 * MIN),
            (40, 360 * MIN),
            (u32::MAX, 360 * MIN),
        ];
        for cert in ["www", "api", "mail.example.com", "a"] {
            let cert = name(cert);
            for (failures, base) in table {
                let got = backoff_delay(&cert, *failures, &backoff);
                assert!(
                    got <= *base && got > *base - *base / 10,
                    "{cert} after {failures} failures: {got:?} not in ({:?}, {base:?}]",
                    *base - *base / 10
                );
                assert_eq!(got, backoff_delay(&cert, *failures, &backoff), "stable");
            }
        }
        assert_eq!(backoff_delay(&name("www"), 0, &backoff), Duration::ZERO);
    }

    #[test]
    fn jitter_differs_between_names_and_attempts() {
        let backoff = Backoff::default();
        let delays: Vec<Duration> = (0..50)
            .map(|i| backoff_delay(&name(&format!("web{i}")), 10, &backoff))
            .collect();
        let mut distinct = delays.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 45, "too many equal delays: {delays:?}");
        let per_attempt: Vec<Duration> = (10..20)
            .map(|n| backoff_delay(&name("www"), n, &backoff))
            .collect();
        assert!(
            per_attempt.windows(2).any(|w| w[0] != w[1]),
            "capped delays should still vary: {per_attempt:?}"
        );
    }

    #[test]
    fn never_a_tight_loop() {
        let zero = Backoff {
            initial: Duration::ZERO,
            cap: Duration::ZERO,
        };
        assert_eq!(backoff_delay(&name("www"), 1, &zero), MIN_DELAY);
        // A cap below the initial delay is honoured down to half the initial delay.
        let inverted = Backoff {
            initial: 10 * MIN,
            cap: MIN,
        };
        assert_eq!(backoff_delay(&name("www"), 3, &inverted), 5 * MIN);
        // Jitter never takes the first delay below half of `initial`.
        let tiny = Backoff {
            initial: Duration::from_secs(4),
            cap: MIN,
        };
        for i in 0..100 {
            let got = backoff_delay(&name(&format!("n{i}")), 1, &tiny);
            assert!(got >= Duration::from_secs(2) && got <= Duration::from_secs(4));
        }
    }
}

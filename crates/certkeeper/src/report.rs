//! Formatting of instants and durations for people.

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 in UTC, to the second.
pub fn timestamp(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| format!("{at}"))
}

/// Whole days (rounded down) from `now` until `until`; negative once past.
pub fn days_left(now: SystemTime, until: SystemTime) -> i64 {
    let seconds = match until.duration_since(now) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
    };
    seconds.div_euclid(86_400)
}

/// A short human duration: `3d 4h`, `5h 12m`, `42s`.
pub fn short_duration(span: Duration) -> String {
    let secs = span.as_secs();
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

pub use certkeeper_core::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(timestamp(t), "2027-01-15T08:00:00Z");
        assert_eq!(days_left(t, t + Duration::from_secs(86_400 * 3 + 5)), 3);
        assert_eq!(days_left(t, t - Duration::from_secs(10)), -1);
        assert_eq!(
            short_duration(Duration::from_secs(3 * 86_400 + 4 * 3_600)),
            "3d 4h"
        );
        assert_eq!(short_duration(Duration::from_secs(65)), "1m 5s");
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
    }

    #[test]
    fn an_error_chain_names_each_cause_once_like_anyhow() {
        let err = certkeeper_store::StoreError::Io {
            action: "write",
            path: "/var/lib/certkeeper/state/www.json".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        let expected = format!("{:#}", anyhow::Error::from(err));
        let err = certkeeper_store::StoreError::Io {
            action: "write",
            path: "/var/lib/certkeeper/state/www.json".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert_eq!(error_chain(&err), expected);
        assert_eq!(
            expected,
            "cannot write /var/lib/certkeeper/state/www.json: no storage space"
        );
    }
}

//! Durations as operators write them: `"30d"`, `"12h"`, `"1d12h"`, `"90m"`, `"45s"`.
//!
//! Units go largest first and each at most once, so `"1h1h"` or `"30m1d"` (almost always
//! typos) are refused instead of being summed.

use std::time::Duration;

use thiserror::Error;

/// Units in the order they must appear, with their length in seconds.
const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Why a duration was refused. Messages follow the quoted value in a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum DurationError {
    #[error("is empty; write a duration such as \"30d\" or \"1d12h\"")]
    Empty,
    #[error("a number needs a unit (d, h, m or s), as in \"30d\"")]
    MissingUnit,
    #[error("a unit needs a number before it, as in \"30d\"")]
    MissingNumber,
    #[error("unknown unit {0:?}; use d, h, m or s")]
    UnknownUnit(char),
    #[error("units must appear at most once and largest first (d, h, m, s), as in \"1d12h\"")]
    UnitOrder,
    #[error("is too long")]
    Overflow,
    #[error("must be longer than zero")]
    Zero,
}

/// Parse a duration such as `"1d12h"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut seconds: u64 = 0;
    // Units not yet used, largest first; each component consumes its unit and the larger ones.
    let mut remaining_units: &[(char, u64)] = &UNITS;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let mut chars = after.chars();
        let unit = chars.next().ok_or(DurationError::MissingUnit)?;
        if number.is_empty() {
            return Err(if unit.is_ascii_alphabetic() {
                DurationError::MissingNumber
            } else {
                DurationError::UnknownUnit(unit)
            });
        }
        let position = remaining_units
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| {
                if UNITS.iter().any(|(name, _)| *name == unit) {
                    DurationError::UnitOrder
                } else {
                    DurationError::UnknownUnit(unit)
                }
            })?;
        let unit_seconds = remaining_units[position].1;
        remaining_units = &remaining_units[position + 1..];
        let component = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_seconds))
            .ok_or(DurationError::Overflow)?;
        seconds = seconds
            .checked_add(component)
            .ok_or(DurationError::Overflow)?;
        rest = chars.as_str();
    }
    if seconds == 0 {
        return Err(DurationError::Zero);
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600;
    const DAY: u64 = 24 * HOUR;

    #[test]
    fn durations_parse_or_say_why_not() {
        let cases: &[(&str, Result<u64, DurationError>)] = &[
            ("30d", Ok(30 * DAY)),
            ("12h", Ok(12 * HOUR)),
            ("90m", Ok(90 * 60)),
            ("45s", Ok(45)),
            ("1d12h", Ok(DAY + 12 * HOUR)),
            ("1d2h3m4s", Ok(DAY + 2 * HOUR + 3 * 60 + 4)),
            ("0d1s", Ok(1)),
            ("007h", Ok(7 * HOUR)),
            ("", Err(DurationError::Empty)),
            ("30", Err(DurationError::MissingUnit)),
            ("1d12", Err(DurationError::MissingUnit)),
            ("d", Err(DurationError::MissingNumber)),
            ("1dh", Err(DurationError::MissingNumber)),
            ("30w", Err(DurationError::UnknownUnit('w'))),
            ("30D", Err(DurationError::UnknownUnit('D'))),
            ("1d 12h", Err(DurationError::UnknownUnit(' '))),
            ("-1d", Err(DurationError::UnknownUnit('-'))),
            ("1h1h", Err(DurationError::UnitOrder)),
            ("30m1d", Err(DurationError::UnitOrder)),
            ("0d", Err(DurationError::Zero)),
            ("0h0m0s", Err(DurationError::Zero)),
            ("99999999999999999999d", Err(DurationError::Overflow)),
            ("213503982334602d", Err(DurationError::Overflow)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_duration(text),
                expected.clone().map(Duration::from_secs),
                "{text:?}"
            );
        }
    }
}

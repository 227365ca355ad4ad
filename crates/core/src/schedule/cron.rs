//! Maintenance windows written as crontab times.
//!
//! Operators already know crontab syntax from the certbot cron job certkeeper replaces
//! (DigiCert's CertCentral guide runs certbot as `30 2 1 * *`), so a window is a standard
//! five-field expression, `minute hour day-of-month month day-of-week`, evaluated in an
//! explicit [`TimeZone`]. A window is a *start time*: a due renewal waits for the next
//! start and then runs, however long it takes.
//!
//! The rules follow Vixie cron, the crontab most operators have in their heads:
//!
//! - numbers, `*`, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b,c`; month names
//!   `jan`..`dec` and day names `sun`..`sat` in any case; day-of-week 0-7, where both 0 and
//!   7 are Sunday;
//! - when both day-of-month and day-of-week are restricted (neither starts with `*`), a day
//!   matches if *either* matches; otherwise both must match;
//! - a matching local time skipped by a daylight-saving change (spring forward) fires once,
//!   at the first instant after the gap; a local time that happens twice (fall back) fires
//!   once, at its first occurrence.
//!
//! Seconds fields, macros (`@daily`) and extensions (`L`, `W`, `#`, `?`) are refused rather
//! than guessed at. Loading a zone from the system database is the config crate's job: this
//! module only receives [`TimeZone`] values, so it stays free of I/O.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use thiserror::Error;

/// How far ahead [`MaintenanceWindow::next_start`] looks: to the end of the fifth calendar
/// year after the starting point, enough for any February 29 this century.
const SEARCH_YEARS: i16 = 5;

/// One of the five crontab fields, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        }
    }

    /// Smallest and largest accepted value.
    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
        }
    }

    /// Names accepted for the field, starting at the value of the first name.
    fn names(self) -> &'static [&'static str] {
        match self {
            CronField::Month => &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            CronField::DayOfWeek => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => &[],
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a crontab expression was refused. Messages name the field and the bad token, for an
/// operator reading a config error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CronError {
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week), found {found}; \
         a seconds field is not supported"
    )]
    FieldCount { found: usize },
    #[error("{token:?}: macros are not supported; write the 5 fields, such as \"30 2 * * *\"")]
    Macro { token: String },
    #[error("{field}: {value} is out of range {min}-{max}")]
    OutOfRange {
        field: CronField,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("{field}: {token:?} is not a valid value")]
    InvalidValue { field: CronField, token: String },
    #[error("{field}: step {step} in {token:?} is out of range 1-{max}")]
    StepOutOfRange {
        field: CronField,
        token: String,
        step: u32,
        max: u32,
    },
    #[error("{field}: a step needs a range or '*' before the '/' ({token:?})")]
    StepWithoutRange { field: CronField, token: String },
    #[error("{field}: range {token:?} runs backwards; write the smaller value first")]
    BackwardsRange { field: CronField, token: String },
    #[error("{field}: empty list item in {token:?}")]
    EmptyItem { field: CronField, token: String },
}

/// A parsed five-field crontab expression.
///
/// `Display` prints the text it was parsed from (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CronExpr {
    text: String,
    /// Bit `m` set: minute `m` matches.
    minutes: u64,
    /// Bit `h` set: hour `h` matches.
    hours: u32,
    /// Bit `d` set (1..=31): day-of-month `d` matches.
    days_of_month: u32,
    /// Bit `m` set (1..=12): month `m` matches.
    months: u16,
    /// Bit `d` set (0..=6, Sunday = 0): weekday `d` matches.
    days_of_week: u8,
    /// Both day fields restricted (neither starts with `*`): a day matches if either does.
    either_day: bool,
}

impl CronExpr {
    /// Whether local `date` is one of the expression's days.
    fn matches_date(&self, date: Date) -> bool {
        if !bit(u64::from(self.months), date.month()) {
            return false;
        }
        let dom = bit(u64::from(self.days_of_month), date.day());
        let dow = bit(
            u64::from(self.days_of_week),
            date.weekday().to_sunday_zero_offset(),
        );
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }
}

fn bit(mask: u64, index: i8) -> bool {
    u32::try_from(index).is_ok_and(|i| i < 64 && mask & (1 << i) != 0)
}

/// The lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if let Some(token) = text.split_whitespace().find(|t| t.starts_with('@')) {
            return Err(CronError::Macro {
                token: token.to_owned(),
            });
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(CronError::FieldCount {
                found: fields.len(),
            });
        };
        let minutes = parse_field(CronField::Minute, minute)?;
        let hours = parse_field(CronField::Hour, hour)?;
        let days_of_month = parse_field(CronField::DayOfMonth, dom)?;
        let months = parse_field(CronField::Month, month)?;
        let days_of_week = parse_field(CronField::DayOfWeek, dow)?;
        Ok(CronExpr {
            text: text.to_owned(),
            minutes,
            hours: narrow(hours),
            days_of_month: narrow(days_of_month),
            months: narrow(months),
            // 7 is another spelling of Sunday (0).
            days_of_week: narrow((days_of_week | (days_of_week >> 7)) & 0x7f),
            either_day: !dom.starts_with('*') && !dow.starts_with('*'),
        })
    }
}

/// Shrink a mask whose bits are known to fit (every field's maximum is checked on parse).
fn narrow<T: TryFrom<u64> + Default>(mask: u64) -> T {
    T::try_from(mask).unwrap_or_default()
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parse one field into a bit mask of the values it matches.
fn parse_field(field: CronField, text: &str) -> Result<u64, CronError> {
    let (min, max) = field.bounds();
    let mut mask = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(CronError::EmptyItem {
                field,
                token: text.to_owned(),
            });
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = parse_number(field, item, step)?;
                if step == 0 || step > max {
                    return Err(CronError::StepOutOfRange {
                        field,
                        token: item.to_owned(),
                        step,
                        max,
                    });
                }
                (range, step)
            }
            None => (item, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((low, high)) = range.split_once('-') {
            let low = parse_value(field, item, low)?;
            let high = parse_value(field, item, high)?;
            if low > high {
                return Err(CronError::BackwardsRange {
                    field,
                    token: item.to_owned(),
                });
            }
            (low, high)
        } else {
            if step != 1 || item.contains('/') {
                return Err(CronError::StepWithoutRange {
                    field,
                    token: item.to_owned(),
                });
            }
            let value = parse_value(field, item, range)?;
            (value, value)
        };
        for value in (low..=high).step_by(step as usize) {
            mask |= 1 << value;
        }
    }
    Ok(mask)
}

/// A number or, for month and day-of-week, a three-letter name; checked against the bounds.
fn parse_value(field: CronField, item: &str, token: &str) -> Result<u32, CronError> {
    let (min, max) = field.bounds();
    let names = field.names();
    let value = match names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(token))
    {
        Some(index) => {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            // Months are numbered from 1, weekdays from 0 (Sunday).
            if field == CronField::Month {
                index + 1
            } else {
                index
            }
        }
        None => parse_number(field, item, token)?,
    };
    if value < min || value > max {
        return Err(CronError::OutOfRange {
            field,
            value,
            min,
            max,
        });
    }
    Ok(value)
}

fn parse_number(field: CronField, item: &str, token: &str) -> Result<u32, CronError> {
    let invalid = || CronError::InvalidValue {
        field,
        // An empty part ("mon-") is clearer shown in its item.
        token: if token.is_empty() { item } else { token }.to_owned(),
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    token.parse::<u32>().map_err(|_| invalid())
}

/// When maintenance may start: local wall-clock times matching `cron` in `tz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub cron: CronExpr,
    pub tz: TimeZone,
}

impl MaintenanceWindow {
    /// The first window start at or after `after`, or `None` when the expression matches
    /// nothing within about five years (for example `0 0 31 2 *`).
    ///
    /// Starts are whole local minutes (`hh:mm:00`), so an `after` that is exactly a start is
    /// returned as is: the caller can ask again with the instant it woke up at and not lose
    /// the window. To list successive starts, ask again just after the previous one.
    ///
    /// Daylight saving: a matching local time inside a spring-forward gap yields the first
    /// instant after the gap (`30 2 * * *` runs at 03:00 on the day 02:00-02:59 is skipped),
    /// once however many matching minutes the gap swallowed; a local time that occurs twice
    /// yields only its first occurrence.
    #[must_use]
    pub fn next_start(&self, after: SystemTime) -> Option<SystemTime> {
        let after_ts = Timestamp::try_from(after).ok()?;
        // Local civil times are mapped to instants monotonically (a gap maps to its end, a fold
        // to its first occurrence), so no local time before the civil time of an instant just
        // before `after` can map to `after` or later. Starting one nanosecond early keeps a
        // gap-mapped start that equals `after` exactly.
        let probe = after.checked_sub(Duration::from_nanos(1)).unwrap_or(after);
        let start = self.tz.to_datetime(Timestamp::try_from(probe).ok()?);
        let last_year = start.year().saturating_add(SEARCH_YEARS);

        let mut date = start.date();
        // Minute of the day from which to look on `date`: the first whole minute after `start`.
        let mut first_minute = i32::from(start.hour()) * 60 + i32::from(start.minute()) + 1;
        while date.year() <= last_year {
            if !bit(u64::from(self.cron.months), date.month()) {
                // Skip the whole month.
                date = date.last_of_month().tomorrow().ok()?;
                first_minute = 0;
                continue;
            }
            if self.cron.matches_date(date)
                && let Some(found) = self.first_on(date, first_minute, after_ts)
            {
                return SystemTime::try_from(found).ok();
            }
            date = date.tomorrow().ok()?;
            first_minute = 0;
        }
        None
    }

    /// The first matching minute of local `date` from minute-of-day `first_minute` on whose
    /// instant is at or after `after`.
    fn first_on(&self, date: Date, first_minute: i32, after: Timestamp) -> Option<Timestamp> {
        let first_minute = u32::try_from(first_minute).unwrap_or(0);
        let mut hour = next_bit(u64::from(self.cron.hours), first_minute / 60);
        while let Some(h) = hour.filter(|h| *h < 24) {
            let from = if h == first_minute / 60 {
                first_minute % 60
            } else {
                0
            };
            let mut minute = next_bit(self.cron.minutes, from);
            while let Some(m) = minute.filter(|m| *m < 60) {
                let local = date.at(i8::try_from(h).ok()?, i8::try_from(m).ok()?, 0, 0);
                let instant = self.resolve(local)?;
                if instant >= after {
                    return Some(instant);
                }
                minute = next_bit(self.cron.minutes, m + 1);
            }
            hour = next_bit(u64::from(self.cron.hours), h + 1);
        }
        None
    }

    /// The instant a local start time stands for, under the DST rules above.
    fn resolve(&self, local: DateTime) -> Option<Timestamp> {
        match self.tz.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
            // The earlier offset gives the first occurrence.
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
            AmbiguousOffset::Gap { after, .. } => {
                // Read with the later offset, a time in the gap lands before the transition;
                // the transition itself is the first instant after the gap.
                let inside = after.to_timestamp(local).ok()?;
                self.tz.following(inside).next().map(|t| t.timestamp())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        let ts: Timestamp = text.parse().expect("test instants are RFC 3339");
        SystemTime::try_from(ts).expect("in range")
    }

    fn show(t: SystemTime, tz: &TimeZone) -> String {
        let ts = Timestamp::try_from(t).expect("in range");
        let offset = tz.to_offset(ts);
        ts.display_with_offset(offset).to_string()
    }

    fn window(expr: &str, tz: TimeZone) -> MaintenanceWindow {
        MaintenanceWindow {
            cron: expr.parse().expect("test expressions are valid"),
            tz,
        }
    }

    fn eastern() -> TimeZone {
        TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").expect("valid POSIX TZ")
    }

    fn central_europe() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("valid POSIX TZ")
    }

    /// The next `count` starts from `from`, shown in the window's zone.
    fn starts(window: &MaintenanceWindow, from: &str, count: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut after = at(from);
        for _ in 0..count {
            let Some(next) = window.next_start(after) else {
                break;
            };
            out.push(show(next, &window.tz));
            after = next + Duration::from_secs(1);
        }
        out
    }

    #[test]
    fn parses_standard_syntax() {
        let all_minutes = (1u64 << 60) - 1;
        // (text, minutes, hours, days of month, months, days of week, either_day)
        let table: &[(&str, u64, u32, u32, u16, u8, bool)] = &[
            ("30 2 1 * *", 1 << 30, 1 << 2, 1 << 1, 0x1ffe, 0x7f, false),
            (
                "*/15 * * * *",
                1 | 1 << 15 | 1 << 30 | 1 << 45,
                0xff_ffff,
                0xffff_fffe,
                0x1ffe,
                0x7f,
                false,
            ),
            (
                "5-20/5,59 9-17 * * mon-fri",
                1 << 5 | 1 << 10 | 1 << 15 | 1 << 20 | 1 << 59,
                0x3fe00,
                0xffff_fffe,
                0x1ffe,
                0x3e,
                false,
            ),
            (
                "* * 13 JAN,Jul fri",
                all_minutes,
                0xff_ffff,
                1 << 13,
                1 << 1 | 1 << 7,
                1 << 5,
                true,
            ),
            ("0 0 * * 7", 1, 1, 0xffff_fffe, 0x1ffe, 1, false),
            ("0 0 * * 0-7", 1, 1, 0xffff_fffe, 0x1ffe, 0x7f, false),
            ("0 0 * * 5-7", 1, 1, 0xffff_fffe, 0x1ffe, 0x61, false),
            ("0 0 * * sun,SAT", 1, 1, 0xffff_fffe, 0x1ffe, 0x41, false),
            ("0 0 */2 * 1", 1, 1, 0xaaaa_aaaa, 0x1ffe, 1 << 1, false),
            (
                "  00 23 31 dec-dec */3  ",
                1,
                1 << 23,
                1 << 31,
                1 << 12,
                0x49,
                false,
            ),
        ];
        for (text, minutes, hours, doms, months, dows, either) in table {
            let cron: CronExpr = text.parse().expect(text);
            assert_eq!(cron.minutes, *minutes, "minutes of {text:?}");
            assert_eq!(cron.hours, *hours, "hours of {text:?}");
            assert_eq!(cron.days_of_month, *doms, "days of month of {text:?}");
            assert_eq!(cron.months, *months, "months of {text:?}");
            assert_eq!(cron.days_of_week, *dows, "days of week of {text:?}");
            assert_eq!(cron.either_day, *either, "day rule of {text:?}");
            assert_eq!(cron.to_string(), text.trim(), "display of {text:?}");
        }
    }

    #[test]
    fn refuses_bad_expressions_naming_field_and_token() {
        let table: &[(&str, &str)] = &[
            (
                "",
                "expected 5 fields (minute hour day-of-month month day-of-week), found 0; \
                 a seconds field is not supported",
            ),
            (
                "0 30 2 1 * *",
                "expected 5 fields (minute hour day-of-month month day-of-week), found 6; \
                 a seconds field is not supported",
            ),
            (
                "30 2 1 *",
                "expected 5 fields (minute hour day-of-month month day-of-week), found 4; a seconds field is not supported",
            ),
            (
                "@daily",
                "\"@daily\": macros are not supported; write the 5 fields, such as \"30 2 * * *\"",
            ),
            ("0 24 * * *", "hour: 24 is out of range 0-23"),
            ("60 * * * *", "minute: 60 is out of range 0-59"),
            ("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
            ("0 0 32 * *", "day-of-month: 32 is out of range 1-31"),
            ("0 0 * 13 *", "month: 13 is out of range 1-12"),
            ("0 0 * 0 *", "month: 0 is out of range 1-12"),
            ("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
            (
                "0 99999999999 * * *",
                "hour: \"99999999999\" is not a valid value",
            ),
            ("0 0 * * fr", "day-of-week: \"fr\" is not a valid value"),
            ("0 0 * jan-foo *", "month: \"foo\" is not a valid value"),
            ("jan * * * *", "minute: \"jan\" is not a valid value"),
            ("0 0 * * mon-", "day-of-week: \"mon-\" is not a valid value"),
            ("-5 * * * *", "minute: \"-5\" is not a valid value"),
            ("0 0 L * *", "day-of-month: \"L\" is not a valid value"),
            ("0 0 ? * *", "day-of-month: \"?\" is not a valid value"),
            ("0 0 * * 5#2", "day-of-week: \"5#2\" is not a valid value"),
            (
                "*/0 * * * *",
                "minute: step 0 in \"*/0\" is out of range 1-59",
            ),
            (
                "*/90 * * * *",
                "minute: step 90 in \"*/90\" is out of range 1-59",
            ),
            (
                "5/15 * * * *",
                "minute: a step needs a range or '*' before the '/' (\"5/15\")",
            ),
            (
                "0 5-3 * * *",
                "hour: range \"5-3\" runs backwards; write the smaller value first",
            ),
            (
                "0 0 * * fri-sun",
                "day-of-week: range \"fri-sun\" runs backwards; write the smaller value first",
            ),
            ("0 1,,2 * * *", "hour: empty list item in \"1,,2\""),
            ("0 1, * * *", "hour: empty list item in \"1,\""),
        ];
        for (text, message) in table {
            let err = text
                .parse::<CronExpr>()
                .expect_err(&format!("{text:?} must be refused"));
            assert_eq!(err.to_string(), *message, "{text:?}");
        }
        assert_eq!(
            "0 24 * * *".parse::<CronExpr>(),
            Err(CronError::OutOfRange {
                field: CronField::Hour,
                value: 24,
                min: 0,
                max: 23
            })
        );
    }

    #[test]
    fn digicert_monthly_run_crosses_the_year() {
        let w = window("30 2 1 * *", TimeZone::UTC);
        assert_eq!(
            starts(&w, "2026-11-15T12:00:00Z", 4),
            [
                "2026-12-01T02:30:00+00:00",
                "2027-01-01T02:30:00+00:00",
                "2027-02-01T02:30:00+00:00",
                "2027-03-01T02:30:00+00:00",
            ]
        );
        // Inside the start minute but after it: the next month.
        assert_eq!(
            starts(&w, "2026-12-01T02:30:00.5Z", 1),
            ["2027-01-01T02:30:00+00:00"]
        );
        // Exactly on a start: that start.
        assert_eq!(
            starts(&w, "2026-12-01T02:30:00Z", 1),
            ["2026-12-01T02:30:00+00:00"]
        );
        // A fixed offset zone.
        let tokyo = window("30 2 1 * *", TimeZone::fixed(jiff::tz::offset(9)));
        assert_eq!(
            starts(&tokyo, "2026-12-31T17:00:00Z", 1),
            ["2027-01-01T02:30:00+09:00"]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // 2026-01-01 is a Thursday.
        let w = window("0 0 13 * fri", TimeZone::UTC);
        assert_eq!(
            starts(&w, "2026-01-01T00:00:00.1Z", 8),
            [
                "2026-01-02T00:00:00+00:00",
                "2026-01-09T00:00:00+00:00",
                "2026-01-13T00:00:00+00:00",
                "2026-01-16T00:00:00+00:00",
                "2026-01-23T00:00:00+00:00",
                "2026-01-30T00:00:00+00:00",
                "2026-02-06T00:00:00+00:00",
                "2026-02-13T00:00:00+00:00",
            ]
        );
        // Only one day field restricted: that field alone decides.
        let fridays = window("0 0 * * fri", TimeZone::UTC);
        assert_eq!(
            starts(&fridays, "2026-01-10T00:00:00Z", 2),
            ["2026-01-16T00:00:00+00:00", "2026-01-23T00:00:00+00:00"]
        );
        // A day-of-month starting with '*' counts as unrestricted (Vixie): both must match,
        // so odd days that are Fridays.
        let odd_fridays = window("0 0 */2 * 5", TimeZone::UTC);
        assert_eq!(
            starts(&odd_fridays, "2026-01-01T00:00:00Z", 3),
            [
                "2026-01-09T00:00:00+00:00",
                "2026-01-23T00:00:00+00:00",
                "2026-02-13T00:00:00+00:00",
            ]
        );
    }

    #[test]
    fn steps_ranges_and_names() {
        let quarter = window("*/15 * * * *", TimeZone::UTC);
        assert_eq!(
            starts(&quarter, "2026-05-05T23:31:07Z", 4),
            [
                "2026-05-05T23:45:00+00:00",
                "2026-05-06T00:00:00+00:00",
                "2026-05-06T00:15:00+00:00",
                "2026-05-06T00:30:00+00:00",
            ]
        );
        // Weekdays at 22:00 and 23:30, summer months only. 2026-08-28 is a Friday.
        let office = window("0,30 22-23/1 * jun-AUG Mon-fri", TimeZone::UTC);
        assert_eq!(
            starts(&office, "2026-08-28T22:10:00Z", 5),
            [
                "2026-08-28T22:30:00+00:00",
                "2026-08-28T23:00:00+00:00",
                "2026-08-28T23:30:00+00:00",
                "2026-08-31T22:00:00+00:00",
                "2026-08-31T22:30:00+00:00",
            ]
        );
        assert_eq!(
            starts(&office, "2026-08-31T23:30:01Z", 1),
            ["2027-06-01T22:00:00+00:00"]
        );
        let sundays = window("0 12 * * 7", TimeZone::UTC);
        assert_eq!(
            starts(&sundays, "2026-01-01T00:00:00Z", 1),
            ["2026-01-04T12:00:00+00:00"]
        );
    }

    #[test]
    fn leap_days_and_impossible_dates() {
        let leap = window("0 0 29 2 *", TimeZone::UTC);
        assert_eq!(
            starts(&leap, "2026-03-01T00:00:00Z", 2),
            ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]
        );
        let never = window("0 0 31 2 *", TimeZone::UTC);
        assert_eq!(never.next_start(at("2026-01-01T00:00:00Z")), None);
        // Day 31 only in the months that have one.
        let last = window("0 0 31 * *", TimeZone::UTC);
        assert_eq!(
            starts(&last, "2026-04-01T00:00:00Z", 2),
            ["2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00"]
        );
    }

    #[test]
    fn us_eastern_spring_forward_runs_once_after_the_gap() {
        // 2026-03-08: 02:00 EST becomes 03:00 EDT.
        let w = window("30 2 * * *", eastern());
        assert_eq!(
            starts(&w, "2026-03-07T00:00:00-05:00", 3),
            [
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
            ]
        );
        // Asked exactly at the end of the gap, the gap's start is still due.
        assert_eq!(
            starts(&w, "2026-03-08T03:00:00-04:00", 1),
            ["2026-03-08T03:00:00-04:00"]
        );
        // Every minute swallowed by the gap collapses into one run; 03:00 itself matches too.
        let busy = window("*/15 2,3 * * *", eastern());
        assert_eq!(
            starts(&busy, "2026-03-08T01:50:00-05:00", 3),
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:15:00-04:00",
                "2026-03-08T03:30:00-04:00",
            ]
        );
    }

    #[test]
    fn us_eastern_fall_back_runs_at_the_first_occurrence() {
        // 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:00-01:59 happens twice.
        let w = window("30 1 * * *", eastern());
        assert_eq!(
            starts(&w, "2026-10-31T12:00:00-04:00", 2),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
        // During the repeated hour nothing fires again.
        assert_eq!(
            starts(&w, "2026-11-01T01:10:00-05:00", 1),
            ["2026-11-02T01:30:00-05:00"]
        );
        let hourly = window("0 * * * *", eastern());
        assert_eq!(
            starts(&hourly, "2026-11-01T00:30:00-04:00", 3),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T03:00:00-05:00",
            ]
        );
    }

    #[test]
    fn central_europe_both_transitions() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST.
        let w = window("30 2 * * *", central_europe());
        assert_eq!(
            starts(&w, "2026-03-28T03:00:00+01:00", 2),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
        );
        // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, runs once.
        assert_eq!(
            starts(&w, "2026-10-24T03:00:00+02:00", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
    }

    #[test]
    fn far_searches_skip_whole_months() {
        // Five years of nothing must still answer quickly (month skipping plus bit scans).
        let never = window("59 23 30 2 *", central_europe());
        let started = std::time::Instant::now();
        for _ in 0..20 {
            assert_eq!(never.next_start(at("2026-01-01T00:00:00Z")), None);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "20 five-year searches took {:?}",
            started.elapsed()
        );
    }
}

//! Notifications: the validated `[[notify]]` targets, and which notices a certificate's
//! history calls for.
//!
//! This module owns two things:
//! - the vocabulary of notification targets ([`NotifySpec`], [`NotifyTarget`], [`Event`],
//!   [`EventSet`]), built only by the config crate after checking every key;
//! - the rule that keeps notices few and meaningful ([`decide`]): one `failed` per failure
//!   streak, `recovered` only after a `failed`, `expiring` at most once a day while a
//!   certificate is inside its urgent margin, `renewed` on every new certificate. It is a plain
//!   function of the certificate's [`NotifyState`], an [`Observation`] and `now`, so its tests
//!   are tables of instants, like the planner's. The daily `digest` follows the same idea:
//!   [`next_digest`] of the last digest's instant (per target) and `now`, each certificate's
//!   line summed up by [`DigestStatus::of`].
//!
//! Sending, retrying and the outbox are the `certkeeper-notify` crate's business; persisting
//! [`NotifyState`] is the store's. The state is plain data (two optional instants) so the
//! store maps it onto its own serde record, as it does [`crate::schedule::Attempts`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use url::Url;

use crate::hooks::Hook;
use crate::secret::Secret;

/// How often an `expiring` notice may repeat for the same certificate, and how often the
/// digest is sent.
pub const DAILY: Duration = Duration::from_secs(86_400);

/// How long a webhook or e-mail delivery may take when the target sets no `timeout`.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// An attempt failed and a human must act; once per failure streak.
    Failed,
    /// A certificate renewed after a `failed` notice.
    Recovered,
    /// A certificate is inside its urgent margin and has not been renewed; at most daily.
    Expiring,
    /// A new certificate was installed (opt-in).
    Renewed,
    /// The daily summary of every certificate (opt-in).
    Digest,
    /// `certkeeper notify test`: always delivered to the target it is sent to.
    Test,
}

impl Event {
    /// The events a `[[notify]]` table may list in `events`.
    pub const CONFIGURABLE: [Event; 5] = [
        Event::Failed,
        Event::Recovered,
        Event::Expiring,
        Event::Renewed,
        Event::Digest,
    ];
    const ALL: [Event; 6] = [
        Event::Failed,
        Event::Recovered,
        Event::Expiring,
        Event::Renewed,
        Event::Digest,
        Event::Test,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failed => "failed",
            Event::Recovered => "recovered",
            Event::Expiring => "expiring",
            Event::Renewed => "renewed",
            Event::Digest => "digest",
            Event::Test => "test",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not an event name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event {0:?}; expected one of \"failed\", \"recovered\", \"expiring\", \"renewed\", \"digest\""
)]
pub struct UnknownEvent(pub String);

impl FromStr for Event {
    type Err = UnknownEvent;

    /// Any event name, `test` included (the outbox stores it); `events` in the configuration
    /// accepts only [`Event::CONFIGURABLE`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Event::ALL
            .into_iter()
            .find(|event| event.as_str() == s)
            .ok_or_else(|| UnknownEvent(s.to_owned()))
    }
}

/// The events a target receives. [`Event::Test`] is always received.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventSet(u8);

impl EventSet {
    /// No events (only tests).
    pub const NONE: EventSet = EventSet(0);

    /// The set of `events`.
    #[must_use]
    pub fn of(events: &[Event]) -> Self {
        EventSet(events.iter().fold(0, |bits, event| bits | event.bit()))
    }

    /// Whether a target with this set receives `event`.
    #[must_use]
    pub fn contains(self, event: Event) -> bool {
        event == Event::Test || self.0 & event.bit() != 0
    }

    /// The events in the set, in [`Event`] order.
    pub fn iter(self) -> impl Iterator<Item = Event> {
        Event::CONFIGURABLE
            .into_iter()
            .filter(move |event| self.0 & event.bit() != 0)
    }
}

impl Default for EventSet {
    /// `["failed", "recovered", "expiring"]`: what needs or ends a human's attention.
    fn default() -> Self {
        EventSet::of(&[Event::Failed, Event::Recovered, Event::Expiring])
    }
}

impl fmt::Debug for EventSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// One `[[notify]]` target.
#[derive(Debug, Clone)]
pub struct NotifySpec {
    /// Unique among targets; the alphabet of certificate names (it names an outbox folder).
    pub name: String,
    pub events: EventSet,
    /// How long one delivery may take: the target's `timeout`, else
    /// [`DEFAULT_NOTIFY_TIMEOUT`] (commands: `hook_timeout`).
    pub timeout: Duration,
    pub target: NotifyTarget,
}

impl NotifySpec {
    /// Whether this target receives `event`.
    #[must_use]
    pub fn wants(&self, event: Event) -> bool {
        self.events.contains(event)
    }
}

/// Where and how a notice is delivered.
#[derive(Debug, Clone)]
pub enum NotifyTarget {
    /// `type = "webhook"`: an HTTP POST.
    Webhook(WebhookTarget),
    /// `type = "email"`: SMTP or a local sendmail.
    Email(EmailTarget),
    /// `type = "command"`: a command run like the other hooks, the notice in its environment.
    /// A [`Hook`] rather than a bare command, so it carries its timeout like every hook.
    Command(Hook),
}

impl NotifyTarget {
    /// The `type` value.
    #[must_use]
    pub fn type_str(&self) -> &'static str {
        match self {
            NotifyTarget::Webhook(_) => "webhook",
            NotifyTarget::Email(_) => "email",
            NotifyTarget::Command(_) => "command",
        }
    }
}

/// `type = "webhook"`.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// `http` or `https`.
    pub url: Url,
    /// Sent as `Authorization: Bearer TOKEN`.
    pub token: Option<Secret>,
    pub format: WebhookFormat,
    /// Extra trust anchor (PEM) for the receiver's HTTPS certificate.
    pub root_ca_file: Option<PathBuf>,
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// certkeeper's JSON object (every field of the notice).
    #[default]
    Json,
    /// `{"text": "..."}`, what Slack, Mattermost and Teams incoming webhooks take.
    Slack,
}

impl WebhookFormat {
    pub const ALL: [WebhookFormat; 2] = [WebhookFormat::Json, WebhookFormat::Slack];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
        }
    }
}

/// `type = "email"`.
#[derive(Debug, Clone)]
pub struct EmailTarget {
    pub transport: EmailTransport,
    /// An address, `ops@example.com` or `certkeeper <ops@example.com>`.
    pub from: String,
    /// At least one address.
    pub to: Vec<String>,
}

/// How e-mail leaves the host.
#[derive(Debug, Clone)]
pub enum EmailTransport {
    /// `server = "host:port"`.
    Smtp(SmtpSpec),
    /// `sendmail = "/usr/sbin/sendmail"`: the message piped to a local MTA.
    Sendmail { path: PathBuf },
}

/// An SMTP submission server.
#[derive(Debug, Clone)]
pub struct SmtpSpec {
    pub host: String,
    /// The port written, else the usual one for `tls` ([`SmtpTls::default_port`]).
    pub port: u16,
    pub tls: SmtpTls,
    /// Login for AUTH PLAIN or LOGIN; always with a password.
    pub credentials: Option<SmtpCredentials>,
    /// Extra trust anchor (PEM) for the server's certificate.
    pub root_ca_file: Option<PathBuf>,
}

/// `username` and its password.
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    pub username: String,
    pub password: Secret,
}

/// `tls`: how the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No TLS: only for a relay on the same host or a trusted network.
    None,
}

impl SmtpTls {
    pub const ALL: [SmtpTls; 3] = [SmtpTls::Starttls, SmtpTls::Implicit, SmtpTls::None];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Implicit => "implicit",
            SmtpTls::None => "none",
        }
    }

    /// 587 (submission), 465 (submissions) or 25.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }
}

/// Check an e-mail address as `from` and `to` take it: `local@domain`, or
/// `Display Name <local@domain>`. A sanity check for typos, not RFC 5322: the mailer has the
/// last word.
///
/// # Errors
/// What is wrong, quoting the address.
pub fn check_address(text: &str) -> Result<(), String> {
    let address = match (text.find('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        (None, None) => text,
        _ => {
            return Err(format!(
                "invalid address {text:?}: write ops@example.com or \"Name <ops@example.com>\""
            ));
        }
    };
    let bad = |why: &str| {
        Err(format!(
            "invalid address {text:?}: {why}; write ops@example.com or \"Name <ops@example.com>\""
        ))
    };
    if address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
    {
        return bad("the address contains spaces or one of < > , \"");
    }
    match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(())
        }
        _ => bad("expected exactly one '@' between a local part and a domain"),
    }
}

/// What certkeeper has notified about one certificate, persisted with its lineage.
///
/// `None` everywhere is the state of a certificate nobody has heard about: a new lineage, or
/// one whose state predates notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotifyState {
    /// When the `failed` notice of the current failure streak was decided; cleared by a
    /// renewal (which then says `recovered`).
    pub failed_at: Option<SystemTime>,
    /// When the last `expiring` notice was decided; cleared once the certificate is outside
    /// its urgent margin again (renewed, or the margin changed).
    pub expiring_at: Option<SystemTime>,
}

/// What the engine observed about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// An attempt failed and a human must act (what the engine logs at `error`).
    Failed,
    /// A new certificate was installed.
    Renewed,
    /// The live certificate, checked whenever the engine looks at it: it expires at
    /// `not_after`, and `urgent_before` is its urgent margin
    /// ([`crate::schedule::urgent_threshold`]).
    Live {
        not_after: SystemTime,
        urgent_before: Duration,
    },
}

/// What [`decide`] returns: the events to notify (each to the targets that want it, see
/// [`NotifySpec::wants`]) and the state to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notices {
    pub events: Vec<Event>,
    pub state: NotifyState,
}

/// The notices `observation` calls for, given what was notified before (`state`), at `now`.
///
/// - [`Observation::Failed`]: `failed` unless this failure streak was notified already.
/// - [`Observation::Renewed`]: `recovered` when a `failed` was notified, and `renewed`
///   always (targets opt in to it); the streak and the expiring reminder end.
/// - [`Observation::Live`]: `expiring` when less than `urgent_before` is left (or the
///   certificate has expired) and no `expiring` was notified in the last [`DAILY`]; outside
///   the margin the reminder is reset, so a certificate renewed behind certkeeper's back (or
///   given a smaller margin) is not reminded about.
///
/// A clock that went backwards never causes a repeat: an instant in the future counts as
/// "just notified".
#[must_use]
pub fn decide(state: NotifyState, observation: Observation, now: SystemTime) -> Notices {
    let mut next = state;
    let mut events = Vec::new();
    match observation {
        Observation::Failed => {
            if state.failed_at.is_none() {
                events.push(Event::Failed);
                next.failed_at = Some(now);
            }
        }
        Observation::Renewed => {
            if state.failed_at.is_some() {
                events.push(Event::Recovered);
            }
            events.push(Event::Renewed);
            next = NotifyState::default();
        }
        Observation::Live {
            not_after,
            urgent_before,
        } => {
            let left = not_after.duration_since(now).unwrap_or_default();
            if left < urgent_before {
                if is_due(state.expiring_at, now) {
                    events.push(Event::Expiring);
                    next.expiring_at = Some(now);
                }
            } else {
                next.expiring_at = None;
            }
        }
    }
    Notices {
        events,
        state: next,
    }
}

/// Whether the daily digest is due: never sent, or last sent [`DAILY`] or more ago.
#[must_use]
pub fn digest_due(last_sent: Option<SystemTime>, now: SystemTime) -> bool {
    is_due(last_sent, now)
}

/// When the digest for a target last sent at `last_sent` is next due: `now` when it is due
/// ([`digest_due`]), else a day after the last one. A last digest in the future (the clock
/// went back) counts as just sent, so it is not repeated before a day after that instant.
#[must_use]
pub fn next_digest(last_sent: Option<SystemTime>, now: SystemTime) -> SystemTime {
    match last_sent {
        Some(last) if !is_due(last_sent, now) => last.checked_add(DAILY).unwrap_or(now),
        _ => now,
    }
}

/// A certificate's state in one word, as the daily digest lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestStatus {
    /// Live and renewing normally.
    Ok,
    /// Its last attempt failed.
    Failing,
    /// Live, inside its urgent margin, not renewed (and not failing).
    Expiring,
    /// No live certificate yet (and not failing).
    Missing,
}

impl DigestStatus {
    /// The status of a certificate that has a live certificate or not (`live`), whose last
    /// attempts failed `consecutive_failures` times, and that is inside its urgent margin
    /// (`urgent`). A failure says most, so it wins.
    #[must_use]
    pub fn of(live: bool, consecutive_failures: u32, urgent: bool) -> Self {
        match (live, consecutive_failures, urgent) {
            (_, 1.., _) => DigestStatus::Failing,
            (false, 0, _) => DigestStatus::Missing,
            (true, 0, true) => DigestStatus::Expiring,
            (true, 0, false) => DigestStatus::Ok,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DigestStatus::Ok => "ok",
            DigestStatus::Failing => "failing",
            DigestStatus::Expiring => "expiring",
            DigestStatus::Missing => "missing",
        }
    }
}

/// `last` is unset or at least a day before `now`.
fn is_due(last: Option<SystemTime>, now: SystemTime) -> bool {
    last.is_none_or(|last| now.duration_since(last).is_ok_and(|since| since >= DAILY))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(hours: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + hours * 3600)
    }

    fn state(failed: Option<u64>, expiring: Option<u64>) -> NotifyState {
        NotifyState {
            failed_at: failed.map(at),
            expiring_at: expiring.map(at),
        }
    }

    fn live(expires_in_hours: u64, now: u64, urgent_hours: u64) -> Observation {
        Observation::Live {
            not_after: at(now + expires_in_hours),
            urgent_before: Duration::from_secs(urgent_hours * 3600),
        }
    }

    /// What, state before, observation, now (hours), events, state after.
    type Case = (
        &'static str,
        NotifyState,
        Observation,
        u64,
        Vec<Event>,
        NotifyState,
    );

    #[test]
    fn decisions_follow_the_rules() {
        use Event::{Expiring, Failed, Recovered, Renewed};
        let cases: Vec<Case> = vec![
            (
                "first failure of a streak",
                state(None, None),
                Observation::Failed,
                10,
                vec![Failed],
                state(Some(10), None),
            ),
            (
                "later failures of the streak are quiet",
                state(Some(10), None),
                Observation::Failed,
                30,
                vec![],
                state(Some(10), None),
            ),
            (
                "failure keeps the expiring reminder",
                state(None, Some(5)),
                Observation::Failed,
                10,
                vec![Failed],
                state(Some(10), Some(5)),
            ),
            (
                "renewal after a failed notice recovers",
                state(Some(10), Some(12)),
                Observation::Renewed,
                20,
                vec![Recovered, Renewed],
                state(None, None),
            ),
            (
                "renewal without a failed notice only says renewed",
                state(None, None),
                Observation::Renewed,
                20,
                vec![Renewed],
                state(None, None),
            ),
            (
                "outside the urgent margin: nothing",
                state(None, None),
                live(200, 10, 168),
                10,
                vec![],
                state(None, None),
            ),
            (
                "inside the urgent margin: expiring",
                state(None, None),
                live(100, 10, 168),
                10,
                vec![Expiring],
                state(None, Some(10)),
            ),
            (
                "the reminder waits a day",
                state(None, Some(10)),
                live(90, 20, 168),
                20,
                vec![],
                state(None, Some(10)),
            ),
            (
                "and repeats after a day",
                state(None, Some(10)),
                live(76, 34, 168),
                34,
                vec![Expiring],
                state(None, Some(34)),
            ),
            (
                "expired certificates are still expiring",
                state(Some(1), Some(10)),
                Observation::Live {
                    not_after: at(20),
                    urgent_before: 168 * HOUR,
                },
                40,
                vec![Expiring],
                state(Some(1), Some(40)),
            ),
            (
                "a clock that went back does not repeat",
                state(None, Some(50)),
                live(10, 20, 168),
                20,
                vec![],
                state(None, Some(50)),
            ),
            (
                "back outside the margin resets the reminder",
                state(Some(3), Some(10)),
                live(2000, 30, 168),
                30,
                vec![],
                state(Some(3), None),
            ),
        ];
        for (what, before, observation, now, events, after) in cases {
            let notices = decide(before, observation, at(now));
            assert_eq!(notices.events, events, "{what}");
            assert_eq!(notices.state, after, "{what}");
        }
    }

    #[test]
    fn a_failure_streak_notifies_once_and_recovers_once() {
        let mut notified = Vec::new();
        let mut current = NotifyState::default();
        let steps = [
            Observation::Failed,
            Observation::Failed,
            Observation::Failed,
            Observation::Renewed,
            Observation::Renewed,
            Observation::Failed,
        ];
        for (hour, observation) in (0..).zip(steps) {
            let notices = decide(current, observation, at(hour));
            notified.extend(notices.events);
            current = notices.state;
        }
        use Event::{Failed, Recovered, Renewed};
        assert_eq!(notified, [Failed, Recovered, Renewed, Renewed, Failed]);
    }

    #[test]
    fn digest_is_daily() {
        assert!(digest_due(None, at(0)));
        assert!(!digest_due(Some(at(0)), at(23)));
        assert!(digest_due(Some(at(0)), at(24)));
        assert!(!digest_due(Some(at(30)), at(24)));
    }

    #[test]
    fn next_digest_is_a_day_after_the_last() {
        // What, last sent (hours), now (hours), next due (hours).
        let cases: [(&str, Option<u64>, u64, u64); 5] = [
            ("never sent: at once (the first pass)", None, 5, 5),
            ("sent an hour ago: a day after it", Some(4), 5, 28),
            ("sent exactly a day ago: now", Some(5), 29, 29),
            ("sent long ago (daemon was down): now", Some(5), 100, 100),
            (
                "clock went back: a day after the future instant",
                Some(50),
                20,
                74,
            ),
        ];
        for (what, last, now, next) in cases {
            assert_eq!(next_digest(last.map(at), at(now)), at(next), "{what}");
            assert_eq!(
                digest_due(last.map(at), at(now)),
                next == now,
                "due exactly when next is now: {what}"
            );
        }
    }

    #[test]
    fn hourly_checks_send_one_digest_a_day() {
        // The daemon checks at every pass (here hourly) against the last digest's instant,
        // which it keeps on disk, so a restart changes nothing.
        let mut last = None;
        let mut sent = Vec::new();
        for hour in 0..72 {
            if digest_due(last, at(hour)) {
                sent.push(hour);
                last = Some(at(hour));
            }
        }
        assert_eq!(sent, [0, 24, 48]);
    }

    #[test]
    fn digest_statuses() {
        use DigestStatus::{Expiring, Failing, Missing, Ok};
        // live, consecutive failures, urgent, status
        let cases = [
            (true, 0, false, Ok),
            (true, 0, true, Expiring),
            (true, 2, true, Failing),
            (true, 1, false, Failing),
            (false, 0, true, Missing),
            (false, 3, true, Failing),
        ];
        for (live, failures, urgent, status) in cases {
            assert_eq!(
                DigestStatus::of(live, failures, urgent),
                status,
                "{live} {failures} {urgent}"
            );
        }
        assert_eq!(Expiring.as_str(), "expiring");
    }

    #[test]
    fn event_sets() {
        let default = EventSet::default();
        assert!(default.contains(Event::Failed));
        assert!(default.contains(Event::Recovered));
        assert!(default.contains(Event::Expiring));
        assert!(!default.contains(Event::Renewed));
        assert!(!default.contains(Event::Digest));
        assert!(EventSet::NONE.contains(Event::Test));
        assert_eq!(format!("{default:?}"), "{Failed, Recovered, Expiring}");
        for event in Event::ALL {
            assert_eq!(event.as_str().parse::<Event>(), Ok(event));
        }
        assert!("fail".parse::<Event>().is_err());
    }

    #[test]
    fn addresses() {
        for good in [
            "ops@example.com",
            "certkeeper <ops@example.com>",
            "<ops@example.com>",
            "a@b",
        ] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "a@b@c",
            "ops @example.com",
            "ops@example.com, dev@example.com",
            "Name <ops@example.com",
            "ops@example.com.",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}

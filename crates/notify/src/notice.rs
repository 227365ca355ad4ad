//! A [`Notice`] and its renderings: webhook JSON, Slack text, e-mail, command environment.
//!
//! One struct carries everything a notice says, and every rendering is a function of it, so
//! the webhook, the e-mail and the command tell the same story. Times are RFC 3339 in UTC to
//! the second (`2026-01-31T12:00:00Z`), as the hooks' `CERTKEEPER_NOT_AFTER` is. The JSON
//! written to the outbox is the webhook's JSON, so what is queued is what is sent.

use std::fmt::Write as _;
use std::time::SystemTime;

use certkeeper_core::{CertificateSpec, Event};
use serde::{Deserialize, Serialize};

/// What happened, to which certificate, as one notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    #[serde(with = "event_name")]
    pub event: Event,
    /// The lineage name; `None` for a digest or a test notice.
    pub certificate: Option<String>,
    pub domains: Vec<String>,
    /// The CA's name in the configuration.
    pub ca: Option<String>,
    /// The error of the failed attempt, as shown to the operator (never holds secrets).
    pub error: Option<String>,
    /// Expiry of the live certificate.
    #[serde(with = "rfc3339_option")]
    pub not_after: Option<SystemTime>,
    /// When the next attempt is planned.
    #[serde(with = "rfc3339_option")]
    pub next_attempt: Option<SystemTime>,
    /// The host certkeeper runs on.
    pub host: String,
    /// When the notice was made.
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// The digest's lines; empty for other events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digest: Vec<DigestEntry>,
}

/// One certificate in the daily digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    pub certificate: String,
    /// A word for its state: `ok`, `failing`, `expiring`, `missing`.
    pub status: String,
    #[serde(with = "rfc3339_option")]
    pub not_after: Option<SystemTime>,
    /// When the next attempt (or renewal) is planned; `None` when none is.
    #[serde(default, with = "rfc3339_option")]
    pub next_attempt: Option<SystemTime>,
    /// The error of the last failed attempt, while it is failing.
    pub error: Option<String>,
}

/// The webhook body of the JSON format: the notice and its one-line summary.
#[derive(Serialize)]
struct WebhookBody<'n> {
    #[serde(flatten)]
    notice: &'n Notice,
    summary: String,
}

/// The Slack-style body.
#[derive(Serialize)]
struct SlackBody {
    text: String,
}

impl Notice {
    /// A notice about certificate `spec`; add what else is known with the `with_*` methods.
    #[must_use]
    pub fn about(event: Event, spec: &CertificateSpec, host: &str, time: SystemTime) -> Self {
        Self {
            certificate: Some(spec.name.as_str().to_owned()),
            domains: spec
                .domains
                .iter()
                .map(|domain| domain.as_str().to_owned())
                .collect(),
            ca: Some(spec.ca.as_str().to_owned()),
            ..Self::new(event, host, time)
        }
    }

    /// A notice about no certificate in particular (a digest, a test).
    #[must_use]
    pub fn new(event: Event, host: &str, time: SystemTime) -> Self {
        Self {
            event,
            certificate: None,
            domains: Vec::new(),
            ca: None,
            error: None,
            not_after: None,
            next_attempt: None,
            host: host.to_owned(),
            time,
            digest: Vec::new(),
        }
    }

    /// What `certkeeper notify test` sends.
    #[must_use]
    pub fn test(host: &str, time: SystemTime) -> Self {
        Self::new(Event::Test, host, time)
    }

    /// The daily digest of `entries`.
    #[must_use]
    pub fn digest(entries: Vec<DigestEntry>, host: &str, time: SystemTime) -> Self {
        Self {
            digest: entries,
            ..Self::new(Event::Digest, host, time)
        }
    }

    #[must_use]
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    #[must_use]
    pub fn with_not_after(mut self, not_after: SystemTime) -> Self {
        self.not_after = Some(not_after);
        self
    }

    #[must_use]
    pub fn with_next_attempt(mut self, next_attempt: SystemTime) -> Self {
        self.next_attempt = Some(next_attempt);
        self
    }

    /// One line saying what happened: `certificate www: renewal failed on web1`.
    #[must_use]
    pub fn summary(&self) -> String {
        let what = match self.event {
            Event::Failed => "renewal failed, a human must act",
            Event::Recovered => "renewed again after failures",
            Event::Expiring => "expires soon and is not renewed",
            Event::Renewed => "renewed",
            Event::Digest => "daily digest",
            Event::Test => "test notice: this target works",
        };
        match &self.certificate {
            Some(name) => format!("certificate {name}: {what} (on {})", self.host),
            None => format!("certkeeper {what} (on {})", self.host),
        }
    }

    /// The body of a `format = "json"` webhook: every field of the notice (times RFC 3339,
    /// absent values `null`) plus `summary`.
    #[must_use]
    pub fn webhook_json(&self) -> Vec<u8> {
        let body = WebhookBody {
            notice: self,
            summary: self.summary(),
        };
        // Serializing plain strings, vectors and options cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The body of a `format = "slack"` webhook: `{"text": ...}` with the summary in bold and
    /// the details below it.
    #[must_use]
    pub fn slack_json(&self) -> Vec<u8> {
        let body = SlackBody {
            text: format!("*{}*\n{}", self.summary(), self.details()),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// An e-mail's subject: `[certkeeper] www: failed (web1)`.
    #[must_use]
    pub fn email_subject(&self) -> String {
        match &self.certificate {
            Some(name) => format!("[certkeeper] {name}: {} ({})", self.event, self.host),
            None => format!("[certkeeper] {} ({})", self.event, self.host),
        }
    }

    /// An e-mail's plain-text body.
    #[must_use]
    pub fn email_body(&self) -> String {
        format!(
            "{}.\n\n{}\n-- \ncertkeeper on {}\n",
            self.summary(),
            self.details(),
            self.host
        )
    }

    /// The variables a `type = "command"` target runs with, in a fixed order, in the style of
    /// the hooks' (see `certkeeper_core::hooks`); unknown values are empty:
    ///
    /// | variable | value |
    /// | --- | --- |
    /// | `CERTKEEPER_EVENT` | `failed`, `recovered`, `expiring`, `renewed`, `digest` or `test` |
    /// | `CERTKEEPER_NAME` | the lineage name |
    /// | `CERTKEEPER_DOMAINS` | the domains, space separated |
    /// | `CERTKEEPER_CA` | the CA's name |
    /// | `CERTKEEPER_ERROR` | the error of the failed attempt |
    /// | `CERTKEEPER_NOT_AFTER` | expiry, RFC 3339 in UTC |
    /// | `CERTKEEPER_NEXT_ATTEMPT` | the next attempt, RFC 3339 in UTC |
    /// | `CERTKEEPER_HOST` | the host |
    /// | `CERTKEEPER_TIME` | when the notice was made, RFC 3339 in UTC |
    /// | `CERTKEEPER_MESSAGE` | the summary line, and for a digest its lines |
    ///
    /// `CERTKEEPER_NAME` rather than `CERTKEEPER_CERT`: deploy hooks already use
    /// `CERTKEEPER_CERT` for the path of `cert.pem`, and `CERTKEEPER_NAME` for the name.
    #[must_use]
    pub fn command_env(&self) -> Vec<(String, String)> {
        let message = if self.digest.is_empty() {
            self.summary()
        } else {
            format!("{}\n{}", self.summary(), self.details())
        };
        [
            ("CERTKEEPER_EVENT", self.event.as_str().to_owned()),
            (
                "CERTKEEPER_NAME",
                self.certificate.clone().unwrap_or_default(),
            ),
            ("CERTKEEPER_DOMAINS", self.domains.join(" ")),
            ("CERTKEEPER_CA", self.ca.clone().unwrap_or_default()),
            ("CERTKEEPER_ERROR", self.error.clone().unwrap_or_default()),
            ("CERTKEEPER_NOT_AFTER", format_option(self.not_after)),
            ("CERTKEEPER_NEXT_ATTEMPT", format_option(self.next_attempt)),
            ("CERTKEEPER_HOST", self.host.clone()),
            ("CERTKEEPER_TIME", format_time(self.time)),
            ("CERTKEEPER_MESSAGE", message),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// `Label: value` lines for what is known, then the digest's lines.
    fn details(&self) -> String {
        let mut text = String::new();
        let mut line = |label: &str, value: Option<String>| {
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                let _ = writeln!(text, "{label}: {value}");
            }
        };
        line("Event", Some(self.event.as_str().to_owned()));
        line("Certificate", self.certificate.clone());
        line("Domains", Some(self.domains.join(", ")));
        line("CA", self.ca.clone());
        line("Error", self.error.clone());
        line("Expires", self.not_after.map(format_time));
        line("Next attempt", self.next_attempt.map(format_time));
        line("Host", Some(self.host.clone()));
        line("Time", Some(format_time(self.time)));
        for entry in &self.digest {
            let _ = write!(text, "- {}: {}", entry.certificate, entry.status);
            if let Some(not_after) = entry.not_after {
                let _ = write!(text, ", expires {}", format_time(not_after));
            }
            if let Some(next) = entry.next_attempt {
                let _ = write!(text, ", next attempt {}", format_time(next));
            }
            if let Some(error) = &entry.error {
                let _ = write!(text, ", last error: {error}");
            }
            text.push('\n');
        }
        text
    }
}

/// `2026-01-31T12:00:00Z`; an instant outside jiff's range (years beyond 9999) as the empty
/// string.
pub(crate) fn format_time(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .and_then(|ts| jiff::Timestamp::from_second(ts.as_second()))
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

fn format_option(at: Option<SystemTime>) -> String {
    at.map(format_time).unwrap_or_default()
}

pub(crate) fn parse_time<E: serde::de::Error>(text: &str) -> Result<SystemTime, E> {
    let ts = text
        .parse::<jiff::Timestamp>()
        .map_err(|err| E::custom(format!("invalid time {text:?}: {err}")))?;
    let seconds = std::time::Duration::from_secs(ts.as_second().unsigned_abs());
    let at = if ts.as_second() >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(seconds)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(seconds)
    };
    at.ok_or_else(|| E::custom(format!("time {text:?} is out of range")))
}

/// [`Event`] as its name.
mod event_name {
    use certkeeper_core::Event;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        event: &Event,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(event.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Event, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An instant as RFC 3339 text.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        at: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_time(*at))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        super::parse_time(&String::deserialize(deserializer)?)
    }
}

/// An optional instant as RFC 3339 text or `null`.
mod rfc3339_option {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    #[expect(
        clippy::ref_option,
        reason = "serde's `with` passes the field by reference"
    )]
    pub(super) fn serialize<S: Serializer>(
        at: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_str(&super::format_time(*at)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse_time(&text))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn failed() -> Notice {
        Notice {
            event: Event::Failed,
            certificate: Some("www".to_owned()),
            domains: vec!["www.example.com".to_owned(), "example.com".to_owned()],
            ca: Some("letsencrypt".to_owned()),
            error: Some("the CA refused the order: rateLimited".to_owned()),
            not_after: Some(at(1_769_860_800)),
            next_attempt: Some(at(1_769_000_000)),
            host: "web1".to_owned(),
            time: at(1_768_996_400),
            digest: Vec::new(),
        }
    }

    #[test]
    fn webhook_json_has_every_field() {
        let json: serde_json::Value =
            serde_json::from_slice(&failed().webhook_json()).expect("valid JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "event": "failed",
                "certificate": "www",
                "domains": ["www.example.com", "example.com"],
                "ca": "letsencrypt",
                "error": "the CA refused the order: rateLimited",
                "not_after": "2026-01-31T12:00:00Z",
                "next_attempt": "2026-01-21T12:53:20Z",
                "host": "web1",
                "time": "2026-01-21T11:53:20Z",
                "summary": "certificate www: renewal failed, a human must act (on web1)",
            })
        );
    }

    #[test]
    fn notices_round_trip_through_json() {
        let mut notice = failed();
        notice.digest.push(DigestEntry {
            certificate: "api".to_owned(),
            status: "ok".to_owned(),
            not_after: Some(at(1_769_860_800)),
            next_attempt: Some(at(1_769_000_000)),
            error: None,
        });
        let json = serde_json::to_vec(&notice).expect("serialize");
        let back: Notice = serde_json::from_slice(&json).expect("deserialize");
        assert_eq!(back, notice);
        let test = Notice::test("web1", at(0));
        let back: Notice =
            serde_json::from_slice(&serde_json::to_vec(&test).expect("serialize")).expect("read");
        assert_eq!(back, test);
    }

    #[test]
    fn text_renderings() {
        let notice = failed();
        assert_eq!(notice.email_subject(), "[certkeeper] www: failed (web1)");
        let body = notice.email_body();
        for line in [
            "certificate www: renewal failed, a human must act (on web1).",
            "Domains: www.example.com, example.com",
            "CA: letsencrypt",
            "Error: the CA refused the order: rateLimited",
            "Expires: 2026-01-31T12:00:00Z",
            "Next attempt: 2026-01-21T12:53:20Z",
        ] {
            assert!(body.contains(line), "{line:?} in {body}");
        }
        let slack: serde_json::Value =
            serde_json::from_slice(&notice.slack_json()).expect("valid JSON");
        let text = slack["text"].as_str().expect("text");
        assert!(
            text.starts_with("*certificate www: renewal failed"),
            "{text}"
        );
        assert_eq!(slack.as_object().map(serde_json::Map::len), Some(1));
    }

    #[test]
    fn command_env_follows_the_contract() {
        let env = failed().command_env();
        let keys: Vec<&str> = env.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "CERTKEEPER_EVENT",
                "CERTKEEPER_NAME",
                "CERTKEEPER_DOMAINS",
                "CERTKEEPER_CA",
                "CERTKEEPER_ERROR",
                "CERTKEEPER_NOT_AFTER",
                "CERTKEEPER_NEXT_ATTEMPT",
                "CERTKEEPER_HOST",
                "CERTKEEPER_TIME",
                "CERTKEEPER_MESSAGE",
            ]
        );
        assert_eq!(env[0].1, "failed");
        assert_eq!(env[2].1, "www.example.com example.com");
        assert_eq!(env[5].1, "2026-01-31T12:00:00Z");
        let test = Notice::test("web1", at(0)).command_env();
        assert_eq!(test[1].1, "", "no certificate");
    }
}

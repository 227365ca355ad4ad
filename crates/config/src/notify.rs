//! `[[notify]]`: where certkeeper reports failures, recoveries, expiring certificates and,
//! when asked, renewals and a daily digest.
//!
//! Every target has `name`, `type`, `events` (default `["failed", "recovered",
//! "expiring"]`) and `timeout`, plus the keys of its type:
//! - `webhook`: `url` (http or https), `format` (`"json"`, the default, or `"slack"` for
//!   Slack-, Mattermost- and Teams-style `{"text": ...}`), `root_ca_file`, and a bearer token
//!   from exactly one of `token_file`, `token_env` or `token_credential`;
//! - `email`: `from`, `to`, and either `server = "host:port"` with `tls` (`"starttls"`, the
//!   default, `"implicit"` or `"none"`), `root_ca_file`, `username` and the password from one
//!   of `password_file`, `password_env` or `password_credential`; or `sendmail`, the path of
//!   a local MTA's sendmail;
//! - `command`: a command in the forms every hook takes, its `timeout` defaulting to
//!   `hook_timeout`.
//!
//! Secrets go through [`crate::secrets`] like the EAB HMAC key: never quoted, a file others
//! can read is warned about, and a secret pasted where its source's name belongs is caught.
//! Unlike the HMAC key they cannot be written inline, for the reason the TSIG secret cannot:
//! the config file is often world-readable. A key of another type is reported as such, not
//! as unknown, because that is the likelier mistake. Targets live in the main file only.

use std::path::PathBuf;
use std::time::Duration;

use certkeeper_core::hooks::check_reload_name;
use certkeeper_core::notify::{
    DEFAULT_NOTIFY_TIMEOUT, EmailTarget, EmailTransport, Event, EventSet, NotifySpec, NotifyTarget,
    SmtpCredentials, SmtpSpec, SmtpTls, WebhookFormat, WebhookTarget, check_address,
};
use certkeeper_core::{Hook, Secret};
use url::Url;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported, collect_all};
use crate::hooks::command_value;
use crate::inventory::{Named, check_readable_file, entries, report_duplicates};
use crate::secrets::{SecretKeys, Sources, decode_password, secret_keys};
use crate::values::{duration, path};
use crate::walk::{Node, Table};

/// `[[notify]]` at the top level.
pub(crate) const NOTIFY_KEY: &str = "notify";

const TYPE: &str = "type";
const COMMON_KEYS: [&str; 4] = ["name", TYPE, "events", "timeout"];

/// The keys that set a webhook's bearer token.
const TOKEN: SecretKeys = secret_keys! {
    prefix: "token",
    inline: false,
    what: "webhook token",
    example_env: "CERTKEEPER_WEBHOOK_TOKEN",
    example_file: "/etc/certkeeper/webhook.token",
    example_credential: "webhook-token",
};
/// The keys that set an SMTP password.
const PASSWORD: SecretKeys = secret_keys! {
    prefix: "password",
    inline: false,
    what: "SMTP password",
    example_env: "CERTKEEPER_SMTP_PASSWORD",
    example_file: "/etc/certkeeper/smtp.password",
    example_credential: "smtp-password",
};
const WEBHOOK_KEYS: [&str; 6] = [
    "url",
    "format",
    "root_ca_file",
    TOKEN.file,
    TOKEN.env,
    TOKEN.credential,
];
const EMAIL_KEYS: [&str; 10] = [
    "server",
    "tls",
    "root_ca_file",
    "username",
    PASSWORD.file,
    PASSWORD.env,
    PASSWORD.credential,
    "sendmail",
    "from",
    "to",
];
const COMMAND_KEYS: [&str; 1] = ["command"];

/// A target's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetType {
    Webhook,
    Email,
    Command,
}

impl TargetType {
    const ALL: [TargetType; 3] = [TargetType::Webhook, TargetType::Email, TargetType::Command];

    fn as_str(self) -> &'static str {
        match self {
            TargetType::Webhook => "webhook",
            TargetType::Email => "email",
            TargetType::Command => "command",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            TargetType::Webhook => &WEBHOOK_KEYS,
            TargetType::Email => &EMAIL_KEYS,
            TargetType::Command => &COMMAND_KEYS,
        }
    }
}

/// Every `[[notify]]` of the main file, in file order, names unique. `hook_timeout` is the
/// effective timeout of command targets that set none.
pub(crate) fn targets(
    root: &Table<'_, '_>,
    hook_timeout: Duration,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Vec<NotifySpec>, Reported> {
    let tables = entries(root, NOTIFY_KEY, diagnostics);
    let checked: Vec<(Option<Named<'_, '_>>, Result<NotifySpec, Reported>)> = tables
        .iter()
        .map(|table| {
            let spec = target(table, hook_timeout, context, diagnostics);
            (Named::of(table), spec)
        })
        .collect();
    report_duplicates(
        checked.iter().filter_map(|(name, _)| name.as_ref()),
        "notify target name",
        diagnostics,
    );
    let specs = collect_all(checked.into_iter().map(|(_, spec)| spec))?;
    // A broken `notify` (not an array of tables) was reported by `entries`; it refuses the
    // inventory through the diagnostics collector.
    Ok(specs)
}

/// One `[[notify]]` table.
fn target(
    table: &Table<'_, '_>,
    hook_timeout: Duration,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<NotifySpec, Reported> {
    let name = table.required("name", diagnostics).and_then(|node| {
        node.parse(diagnostics, |name| {
            check_reload_name(name)
                .map(|()| name.to_owned())
                .map_err(|err| format!("invalid notify target name {name:?}: {err}"))
        })
    });
    let target_type = match table.get(TYPE) {
        Some(node) => node.parse(diagnostics, |text| {
            TargetType::ALL
                .into_iter()
                .find(|candidate| candidate.as_str() == text)
                .ok_or_else(|| {
                    format!(
                        "unknown notify target type {text:?}; expected \"webhook\" (an HTTP POST), \"email\" (SMTP or sendmail) or \"command\" (a command run like a hook)"
                    )
                })
        }),
        None => Err(table.error(
            diagnostics,
            TYPE,
            "missing required key: the target's type, \"webhook\", \"email\" or \"command\"",
        )),
    };
    reject_unknown_keys(table, target_type.ok(), diagnostics);
    let events = table
        .optional("events", |node| events(node, diagnostics))
        .map(Option::unwrap_or_default);
    let timeout = table.optional("timeout", |node| duration(node, diagnostics));
    let target = match target_type {
        Ok(TargetType::Webhook) => webhook(table, context, diagnostics).map(NotifyTarget::Webhook),
        Ok(TargetType::Email) => email(table, context, diagnostics).map(NotifyTarget::Email),
        Ok(TargetType::Command) => command(table, diagnostics),
        Err(reported) => Err(reported),
    };
    let timeout = timeout?;
    let mut target = target?;
    let default_timeout = match &mut target {
        NotifyTarget::Command(hook) => {
            hook.timeout = timeout.unwrap_or(hook_timeout);
            hook_timeout
        }
        _ => DEFAULT_NOTIFY_TIMEOUT,
    };
    Ok(NotifySpec {
        name: name?,
        events: events?,
        timeout: timeout.unwrap_or(default_timeout),
        target,
    })
}

/// Report keys a target of `target_type` does not have: keys of another type as such, an
/// inline secret with what to write instead, anything else as unknown. Without a valid type,
/// every target key is accepted.
fn reject_unknown_keys(
    table: &Table<'_, '_>,
    target_type: Option<TargetType>,
    diagnostics: &mut Diagnostics<'_>,
) {
    let own: Vec<&str> = match target_type {
        Some(target_type) => target_type.keys().to_vec(),
        None => TargetType::ALL
            .iter()
            .flat_map(|target_type| target_type.keys())
            .copied()
            .collect(),
    };
    let known: Vec<&str> = COMMON_KEYS.iter().copied().chain(own).collect();
    let misplaced = |key: &str| {
        for keys in [&TOKEN, &PASSWORD] {
            if key == keys.prefix {
                return Some(format!(
                    "the {} cannot be written in the config file; put it in a file, an environment variable or a systemd credential and name it with {}, {} or {}",
                    keys.what, keys.file, keys.env, keys.credential
                ));
            }
        }
        let this = target_type?;
        let other = TargetType::ALL
            .into_iter()
            .find(|other| *other != this && other.keys().contains(&key))?;
        Some(format!(
            "{key} is a key of type = \"{}\" targets; this one is type = \"{}\"",
            other.as_str(),
            this.as_str()
        ))
    };
    table.reject_keys(&known, misplaced, diagnostics);
}

/// `events = [...]`: known event names, each once.
fn events(node: &Node<'_, '_>, diagnostics: &mut Diagnostics<'_>) -> Result<EventSet, Reported> {
    let items = node.parse_each(diagnostics, |text| {
        text.parse::<Event>()
            .ok()
            .filter(|event| Event::CONFIGURABLE.contains(event))
            .ok_or_else(|| {
                format!(
                    "unknown event {text:?}; expected one of \"failed\", \"recovered\", \"expiring\", \"renewed\", \"digest\""
                )
            })
    })?;
    let mut seen: Vec<Event> = Vec::new();
    let checked = collect_all(items.iter().map(|(item, event)| {
        if seen.contains(event) {
            return Err(item.error(diagnostics, format!("event {event:?} is listed twice")));
        }
        seen.push(*event);
        Ok(())
    }));
    checked?;
    if seen.is_empty() {
        return Err(node.error(
            diagnostics,
            "must list at least one event; remove the target to send nothing",
        ));
    }
    Ok(EventSet::of(&seen))
}

/// `type = "webhook"`.
fn webhook(
    table: &Table<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<WebhookTarget, Reported> {
    let url_node = table.get("url");
    let url = match &url_node {
        Some(node) => node.parse(diagnostics, webhook_url),
        None => Err(table.error(
            diagnostics,
            "url",
            "missing required key: the URL to POST notices to, such as \"https://hooks.slack.com/services/...\"",
        )),
    };
    let format = table
        .optional("format", |node| {
            node.parse(diagnostics, |text| {
                WebhookFormat::ALL
                    .into_iter()
                    .find(|format| format.as_str() == text)
                    .ok_or_else(|| {
                        format!(
                            "unknown webhook format {text:?}; expected \"json\" (certkeeper's JSON object) or \"slack\" ({{\"text\": ...}} for Slack, Mattermost and Teams)"
                        )
                    })
            })
        })
        .map(Option::unwrap_or_default);
    let root_ca_file = root_ca_file(table, context, diagnostics);
    let token = Sources::of(&TOKEN, table)
        .read(context, diagnostics)
        .and_then(|text| {
            text.map(|text| text.decode(diagnostics, decode_token))
                .transpose()
        });
    let (url, token) = (url?, token?);
    if let Some(node) = url_node.filter(|_| url.scheme() == "http" && token.is_some()) {
        node.warning(
            diagnostics,
            "the webhook token is sent over plain http, readable on the way; use an https URL",
        );
    }
    Ok(WebhookTarget {
        url,
        token,
        format: format?,
        root_ca_file: root_ca_file?,
    })
}

/// An http or https URL with a host. Messages do not quote it: an incoming webhook's URL
/// is its credential (`https://hooks.slack.com/services/T000/B000/XXXX`).
fn webhook_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|err| format!("invalid URL (not shown): {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid webhook URL: only http and https URLs are accepted, not {}:",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("invalid webhook URL: it names no host".to_owned());
    }
    Ok(url)
}

/// A bearer token: one line of visible ASCII, surrounding whitespace ignored.
fn decode_token(text: &str) -> Result<Secret, &'static str> {
    let token = text.trim();
    if token.is_empty() {
        return Err("is empty");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "contains spaces, line breaks or non-ASCII characters, which an Authorization header cannot carry",
        );
    }
    Ok(Secret::new(token.as_bytes().to_vec()))
}

/// `root_ca_file`, a readable file.
fn root_ca_file(
    table: &Table<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Option<PathBuf>, Reported> {
    table.optional("root_ca_file", |node| {
        let path = path(node, context, diagnostics)?;
        check_readable_file(&path)
            .map(|()| path)
            .map_err(|message| node.error(diagnostics, message))
    })
}

/// `type = "email"`.
fn email(
    table: &Table<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<EmailTarget, Reported> {
    let from = match table.get("from") {
        Some(node) => node.parse(diagnostics, |text| {
            check_address(text).map(|()| text.to_owned())
        }),
        None => Err(table.error(
            diagnostics,
            "from",
            "missing required key: the sender address, such as \"certkeeper@example.com\"",
        )),
    };
    let to = match table.get("to") {
        Some(node) => node
            .parse_each(diagnostics, |text| {
                check_address(text).map(|()| text.to_owned())
            })
            .and_then(|items| {
                if items.is_empty() {
                    Err(node.error(diagnostics, "must list at least one address"))
                } else {
                    Ok(items.into_iter().map(|(_, address)| address).collect())
                }
            }),
        None => Err(table.error(
            diagnostics,
            "to",
            "missing required key: the recipients, such as [\"ops@example.com\"]",
        )),
    };
    let transport = match (table.get("server"), table.get("sendmail")) {
        (Some(server), Some(sendmail)) => {
            // The SMTP keys are still checked: whichever is kept should be right.
            let _ = smtp(&server, table, context, diagnostics);
            Err(sendmail.error(
                diagnostics,
                "set either server (an SMTP server) or sendmail (a local MTA), not both",
            ))
        }
        (None, None) => Err(table.error(
            diagnostics,
            "server",
            "missing required key: server = \"host:port\" (an SMTP server), or sendmail = \"/usr/sbin/sendmail\" for a local MTA",
        )),
        (None, Some(node)) => {
            // Report each SMTP key, not only the first: all of them are to be removed.
            let mut misplaced = None;
            for key in ["tls", "root_ca_file", "username"]
                .into_iter()
                .chain([PASSWORD.file, PASSWORD.env, PASSWORD.credential])
            {
                if let Some(other) = table.get(key) {
                    misplaced = Some(other.error(
                        diagnostics,
                        format!(
                            "{key} goes with server; sendmail hands the message to the local MTA"
                        ),
                    ));
                }
            }
            let path = path(&node, context, diagnostics)?;
            match misplaced {
                Some(reported) => Err(reported),
                None => Ok(EmailTransport::Sendmail { path }),
            }
        }
        (Some(node), None) => smtp(&node, table, context, diagnostics).map(EmailTransport::Smtp),
    };
    Ok(EmailTarget {
        transport: transport?,
        from: from?,
        to: to?,
    })
}

/// `server` with `tls`, `root_ca_file`, `username` and the password.
fn smtp(
    server: &Node<'_, '_>,
    table: &Table<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<SmtpSpec, Reported> {
    let tls = table
        .optional("tls", |node| {
            node.parse(diagnostics, |text| {
                SmtpTls::ALL
                    .into_iter()
                    .find(|tls| tls.as_str() == text)
                    .ok_or_else(|| {
                        format!(
                            "unknown tls {text:?}; expected \"starttls\" (port 587), \"implicit\" (port 465) or \"none\" (a local relay)"
                        )
                    })
            })
        })
        .map(Option::unwrap_or_default);
    let address = server.parse(diagnostics, server_address);
    let root_ca_file = root_ca_file(table, context, diagnostics);
    let username = table.optional("username", |node| {
        node.parse(diagnostics, |text| {
            if text.is_empty() {
                Err("must not be empty; leave username out to send without logging in".to_owned())
            } else {
                Ok(text.to_owned())
            }
        })
    });
    let sources = Sources::of(&PASSWORD, table);
    let password = sources.read(context, diagnostics).and_then(|text| {
        text.map(|text| text.decode(diagnostics, decode_password))
            .transpose()
    });
    let credentials = match (username?, password?) {
        (Some(username), Some(password)) => Ok(Some(SmtpCredentials { username, password })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(table.error(
            diagnostics,
            "username",
            format!(
                "username needs a password: set one of {}, {} or {}",
                PASSWORD.file, PASSWORD.env, PASSWORD.credential
            ),
        )),
        (None, Some(_)) => {
            let message = "a password needs username, the login it belongs to";
            Err(match sources.first() {
                Some(node) => node.error(diagnostics, message),
                None => table.error(diagnostics, "username", message),
            })
        }
    };
    let tls = tls?;
    let (host, port) = address?;
    let credentials = credentials?;
    if tls == SmtpTls::None && credentials.is_some() && !is_loopback(&host) {
        table.warning(
            diagnostics,
            "tls",
            "the SMTP password is sent without TLS, readable on the way; use tls = \"starttls\" or \"implicit\"",
        );
    }
    Ok(SmtpSpec {
        port: port.unwrap_or_else(|| tls.default_port()),
        host,
        tls,
        credentials,
        root_ca_file: root_ca_file?,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn server_address(text: &str) -> Result<(String, Option<u16>), String> {
    let invalid = || {
        format!(
            "invalid server {text:?}; write a host and optionally a port, such as \"smtp.example.com:587\" or \"[2001:db8::25]:25\""
        )
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let bracketed = text.starts_with('[');
    let valid_host = if bracketed {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty() && !host.contains(|c: char| c.is_whitespace() || c == '/')
    };
    if !valid_host {
        return Err(invalid());
    }
    let port = port
        .map(|port| match port.parse::<u16>() {
            Ok(0) | Err(_) => Err(invalid()),
            Ok(port) => Ok(port),
        })
        .transpose()?;
    Ok((host.to_owned(), port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `type = "command"`.
fn command(
    table: &Table<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<NotifyTarget, Reported> {
    let command = match table.get("command") {
        Some(node) => command_value(&node, diagnostics),
        None => Err(table.error(
            diagnostics,
            "command",
            "missing required key: the command to run, a string (run by /bin/sh -c) or an array of strings (program and arguments); the notice is in its CERTKEEPER_* environment",
        )),
    };
    // The timeout is set by the caller, which knows `timeout` and `hook_timeout`.
    Ok(NotifyTarget::Command(Hook {
        command: command?,
        timeout: Duration::ZERO,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        type Parsed = Option<(&'static str, Option<u16>)>;
        let cases: &[(&str, Parsed)] = &[
            ("smtp.example.com", Some(("smtp.example.com", None))),
            (
                "smtp.example.com:587",
                Some(("smtp.example.com", Some(587))),
            ),
            ("127.0.0.1:25", Some(("127.0.0.1", Some(25)))),
            ("[2001:db8::25]:25", Some(("2001:db8::25", Some(25)))),
            ("[2001:db8::25]", Some(("2001:db8::25", None))),
            ("", None),
            (":25", None),
            ("smtp.example.com:0", None),
            ("smtp.example.com:smtp", None),
            ("2001:db8::25", None),
            ("[2001:db8::25]x", None),
            ("smtp://example.com", None),
        ];
        for (text, expected) in cases {
            let parsed = server_address(text).ok();
            let expected = expected.map(|(host, port)| (host.to_owned(), port));
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn secrets_are_trimmed_as_their_protocol_needs() {
        assert_eq!(
            decode_token(" abc.DEF-123\n").map(|s| s.expose().to_vec()),
            Ok(b"abc.DEF-123".to_vec())
        );
        assert!(decode_token("a b").is_err());
        assert!(decode_token("\n").is_err());
        assert_eq!(
            decode_password(" pass word \n").map(|s| s.expose().to_vec()),
            Ok(b" pass word ".to_vec())
        );
        assert!(decode_password("\n").is_err());
    }
}

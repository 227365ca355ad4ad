//! `[dns.NAME]`: the DNS providers that publish DNS-01 TXT records.
//!
//! A provider has a `type` and the keys of that type, plus the keys every provider has
//! (`follow_cname` and the `propagation` settings):
//! - `rfc2136`: dynamic updates signed with TSIG. `server`, `key_name`, `algorithm`, the
//!   secret from exactly one of `secret_file`, `secret_env` or `secret_credential`, `zone`,
//!   `ttl`. The secret goes through [`crate::secrets`] like the EAB HMAC key, so it is never
//!   quoted, a key file others can read is warned about, and pasting the key where its
//!   source's name belongs is caught. Unlike the HMAC key it cannot be written inline: a key
//!   that may change a zone has no business in a file that is often world-readable.
//!   `secret_ini_key = "dns_rfc2136_secret"` reads the secret from that key of an INI file
//!   named by `secret_file` or `secret_credential`: certbot's RFC 2136 credentials file, used
//!   as it is, so `import-certbot` leaves the secret where certbot keeps it. Whitespace inside
//!   the base64 text is ignored, as certbot (dnspython) and BIND ignore it: certbot's own
//!   documentation shows a secret with a space in it.
//! - `hook`: a command of the operator's, in the forms every hook takes.
//!
//! A key of the other type is reported as such ("`command` is a key of type = \"hook\"
//! providers"), not as unknown, because that is the likelier mistake. Providers live in the
//! main file only, like reload targets, and certificates refer to them by name; names are
//! checked against every `[dns.*]` key as written, even broken ones, so one mistake in a
//! provider does not also make every certificate that uses it "unknown".

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use certkeeper_core::Hook;
use certkeeper_core::Secret;
use certkeeper_core::challenge::{
    DEFAULT_DNS_PORT, DEFAULT_PROPAGATION_INTERVAL, DEFAULT_PROPAGATION_TIMEOUT, DEFAULT_TTL,
    DnsProviderKind, DnsProviderSpec, Propagation, Rfc2136Spec, TsigAlgorithm,
};
use certkeeper_core::hooks::check_reload_name;
use thiserror::Error;
use toml::de::DeValue;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported, collect_all};
use crate::eab::{DecodeProblem, decode_hmac_key};
use crate::hooks::command_value;
use crate::secrets::{SecretKeys, Sources, looks_like_key_material, secret_keys};
use crate::values::duration;
use crate::walk::{Node, Table};

/// `[dns.NAME]` at the top level; `dns = "NAME"` in a certificate.
pub(crate) const DNS_KEY: &str = "dns";

const TYPE: &str = "type";
const FOLLOW_CNAME: &str = "follow_cname";
const PROPAGATION: &str = "propagation";
const PROPAGATION_TIMEOUT: &str = "propagation_timeout";
const PROPAGATION_INTERVAL: &str = "propagation_interval";
const RESOLVERS: &str = "resolvers";
/// The keys that only matter while propagation is checked.
const CHECK_KEYS: [&str; 3] = [PROPAGATION_TIMEOUT, PROPAGATION_INTERVAL, RESOLVERS];
const COMMON_KEYS: [&str; 6] = [
    TYPE,
    FOLLOW_CNAME,
    PROPAGATION,
    PROPAGATION_TIMEOUT,
    PROPAGATION_INTERVAL,
    RESOLVERS,
];

/// The keys that set the TSIG secret. Not inline: see the module documentation.
pub(crate) const TSIG_SECRET: SecretKeys = secret_keys! {
    prefix: "secret",
    inline: false,
    ini_key: true,
    what: "TSIG secret",
    example_env: "CERTKEEPER_TSIG_SECRET",
    example_file: "/etc/certkeeper/tsig.secret",
    example_credential: "tsig-secret",
};
/// `secret_ini_key`: which key of an INI file holds the secret.
const TSIG_SECRET_INI_KEY: &str = match TSIG_SECRET.ini_key {
    Some(key) => key,
    None => panic!("the TSIG secret may come from an INI file"),
};
const RFC2136_KEYS: [&str; 9] = [
    "server",
    "key_name",
    "algorithm",
    TSIG_SECRET.file,
    TSIG_SECRET.env,
    TSIG_SECRET.credential,
    TSIG_SECRET_INI_KEY,
    "zone",
    "ttl",
];
const HOOK_KEYS: [&str; 2] = ["command", "timeout"];

/// The longest TTL DNS allows (RFC 2181 section 8).
const MAX_TTL: Duration = Duration::from_secs(i32::MAX as u64);

/// A provider's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProviderType {
    Rfc2136,
    Hook,
}

impl ProviderType {
    const ALL: [ProviderType; 2] = [ProviderType::Rfc2136, ProviderType::Hook];

    fn as_str(self) -> &'static str {
        match self {
            ProviderType::Rfc2136 => "rfc2136",
            ProviderType::Hook => "hook",
        }
    }

    /// The keys only this type has.
    fn keys(self) -> &'static [&'static str] {
        match self {
            ProviderType::Rfc2136 => &RFC2136_KEYS,
            ProviderType::Hook => &HOOK_KEYS,
        }
    }
}

/// Provider names as written, valid or not, for reference checks.
#[derive(Debug)]
pub(crate) struct KnownProviders<'a> {
    pub(crate) names: Vec<&'a str>,
    /// Set when `dns` itself is not a table: any name may have been meant to be in it.
    pub(crate) broken: Option<Reported>,
}

impl KnownProviders<'_> {
    /// The names, quoted and listed for a message.
    pub(crate) fn listed(&self) -> String {
        let quoted: Vec<String> = self.names.iter().map(|name| format!("{name:?}")).collect();
        quoted.join(", ")
    }
}

/// `[dns]`: every provider of the main file, in file order, and their names as written.
/// `hook_timeout` is the effective timeout of hook providers that set none.
pub(crate) fn providers<'a>(
    root: &Table<'a, '_>,
    hook_timeout: Duration,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> (KnownProviders<'a>, Result<Vec<DnsProviderSpec>, Reported>) {
    let Some(node) = root.get(DNS_KEY) else {
        let none = KnownProviders {
            names: Vec::new(),
            broken: None,
        };
        return (none, Ok(Vec::new()));
    };
    let table = match node.value() {
        DeValue::Table(_) => node.table(diagnostics),
        DeValue::String(_) => Err(node.error(
            diagnostics,
            "at the top level, dns holds the DNS providers as [dns.NAME] tables; a certificate names its provider with dns = \"NAME\" in its [[certificate]] table",
        )),
        _ => Err(node.wrong_type(diagnostics, "DNS providers, written [dns.NAME]")),
    };
    let table = match table {
        Ok(table) => table,
        Err(reported) => {
            let broken = KnownProviders {
                names: Vec::new(),
                broken: Some(reported),
            };
            return (broken, Err(reported));
        }
    };
    let entries = table.entries();
    let names = entries.iter().map(|(name, _)| *name).collect();
    let providers = collect_all(
        entries
            .iter()
            .map(|(name, node)| provider(name, node, hook_timeout, context, diagnostics)),
    );
    let known = KnownProviders {
        names,
        broken: None,
    };
    (known, providers)
}

/// One `[dns.NAME]` table.
fn provider(
    name: &str,
    node: &Node<'_, '_>,
    hook_timeout: Duration,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<DnsProviderSpec, Reported> {
    let checked_name = check_reload_name(name).map_err(|err| {
        node.error(
            diagnostics,
            format!("invalid DNS provider name {name:?}: {err}"),
        )
    });
    if !matches!(node.value(), DeValue::Table(_)) {
        return Err(node.wrong_type(
            diagnostics,
            "a provider table with a type, written [dns.NAME]",
        ));
    }
    let table = node.table(diagnostics)?;
    let provider_type = match table.get(TYPE) {
        Some(node) => node.parse(diagnostics, |text| {
            ProviderType::ALL
                .into_iter()
                .find(|candidate| candidate.as_str().eq_ignore_ascii_case(text))
                .ok_or_else(|| {
                    format!(
                        "unknown DNS provider type {text:?}; expected \"rfc2136\" (dynamic updates signed with TSIG) or \"hook\" (a command that publishes the record)"
                    )
                })
        }),
        None => Err(table.error(
            diagnostics,
            TYPE,
            "missing required key: the provider's type, \"rfc2136\" (dynamic updates signed with TSIG) or \"hook\" (a command that publishes the record)",
        )),
    };
    reject_unknown_keys(&table, provider_type.ok(), diagnostics);

    let kind = match provider_type {
        Ok(ProviderType::Rfc2136) => {
            rfc2136(&table, context, diagnostics).map(DnsProviderKind::Rfc2136)
        }
        Ok(ProviderType::Hook) => {
            hook(&table, hook_timeout, diagnostics).map(DnsProviderKind::Hook)
        }
        Err(reported) => Err(reported),
    };
    let follow_cname = table
        .optional(FOLLOW_CNAME, |node| node.bool(diagnostics))
        .map(|follow| follow.unwrap_or(true));
    let propagation = propagation(&table, diagnostics);
    checked_name?;
    Ok(DnsProviderSpec {
        name: name.to_owned(),
        kind: kind?,
        follow_cname: follow_cname?,
        propagation: propagation?,
    })
}

/// Report keys a provider of `provider_type` does not have: keys of the other type as such,
/// an inline `secret` with what to write instead, anything else as unknown. Without a valid
/// type, every provider key is accepted.
fn reject_unknown_keys(
    table: &Table<'_, '_>,
    provider_type: Option<ProviderType>,
    diagnostics: &mut Diagnostics<'_>,
) {
    let own: Vec<&str> = match provider_type {
        Some(provider_type) => provider_type.keys().to_vec(),
        None => ProviderType::ALL
            .iter()
            .flat_map(|provider_type| provider_type.keys())
            .copied()
            .collect(),
    };
    let known: Vec<&str> = COMMON_KEYS.iter().copied().chain(own).collect();
    let misplaced = |key: &str| {
        if key == TSIG_SECRET.prefix {
            return Some(format!(
                "the TSIG secret cannot be written in the config file; put it in a file, an environment variable or a systemd credential and name it with {}, {} or {}",
                TSIG_SECRET.file, TSIG_SECRET.env, TSIG_SECRET.credential
            ));
        }
        let this = provider_type?;
        let other = ProviderType::ALL
            .into_iter()
            .find(|other| *other != this && other.keys().contains(&key))?;
        Some(format!(
            "{key} is a key of type = \"{}\" providers; this one is type = \"{}\"",
            other.as_str(),
            this.as_str()
        ))
    };
    table.reject_keys(&known, misplaced, diagnostics);
}

/// `type = "rfc2136"`.
fn rfc2136(
    table: &Table<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Rfc2136Spec, Reported> {
    let server = match table.get("server") {
        Some(node) => node.parse(diagnostics, |text| server_address(text, "server")),
        None => Err(table.error(
            diagnostics,
            "server",
            "missing required key: the address of the primary server that accepts dynamic updates, such as \"192.0.2.53\" or \"[2001:db8::53]:5353\"",
        )),
    };
    let key_name = match table.get("key_name") {
        Some(node) => node.parse(diagnostics, |text| dns_name(text, "key name")),
        None => Err(table.error(
            diagnostics,
            "key_name",
            "missing required key: the name of the TSIG key, as in the server's key \"NAME\" { ... } statement",
        )),
    };
    let algorithm = table
        .optional("algorithm", |node| {
            node.parse(diagnostics, |text| {
                text.parse::<TsigAlgorithm>().map_err(|err| err.to_string())
            })
        })
        .map(Option::unwrap_or_default);
    let sources = Sources::of(&TSIG_SECRET, table);
    // `read` returns `None` only when no source is set.
    let secret = match sources.read(context, diagnostics) {
        Ok(Some(text)) => text
            .decode(diagnostics, decode_tsig_secret)
            .map(Secret::new),
        Ok(None) => Err(table.error(
            diagnostics,
            TSIG_SECRET.file,
            format!(
                "missing required key: the TSIG secret; set one of {}, {} or {} to where its base64 text is (the secret \"...\" of the key statement tsig-keygen prints), or {} and {} = \"dns_rfc2136_secret\" to read it from certbot's credentials file",
                TSIG_SECRET.file, TSIG_SECRET.env, TSIG_SECRET.credential, TSIG_SECRET.file, TSIG_SECRET_INI_KEY
            ),
        )),
        Err(reported) => Err(reported),
    };
    let zone = table.optional("zone", |node| {
        node.parse(diagnostics, |text| dns_name(text, "zone"))
    });
    let ttl = table
        .optional("ttl", |node| {
            let ttl = duration(node, diagnostics)?;
            if ttl > MAX_TTL {
                return Err(node.error(
                    diagnostics,
                    "is longer than a DNS TTL can be (2147483647 seconds); challenge records need only a minute or so",
                ));
            }
            Ok(ttl)
        })
        .map(|ttl| ttl.unwrap_or(DEFAULT_TTL));
    Ok(Rfc2136Spec {
        server: server?,
        key_name: key_name?,
        algorithm: algorithm?,
        secret: secret?,
        zone: zone?,
        ttl: ttl?,
    })
}

/// `type = "hook"`: `command` in either hook form, and its own `timeout`.
fn hook(
    table: &Table<'_, '_>,
    default_timeout: Duration,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Hook, Reported> {
    let command = match table.get("command") {
        Some(node) => command_value(&node, diagnostics),
        None => Err(table.error(
            diagnostics,
            "command",
            "missing required key: the command that publishes and removes the TXT records, a string (run by /bin/sh -c) or an array of strings (program and arguments)",
        )),
    };
    let timeout = table.optional("timeout", |node| duration(node, diagnostics));
    Ok(Hook {
        command: command?,
        timeout: timeout?.unwrap_or(default_timeout),
    })
}

/// `propagation` and the keys that tune the check.
fn propagation(
    table: &Table<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Propagation, Reported> {
    let check = table
        .optional(PROPAGATION, |node| {
            node.parse(diagnostics, |text| match text {
                "check" => Ok(true),
                "none" => Ok(false),
                _ => Err(format!(
                    "unknown propagation {text:?}; expected \"check\" (wait until the record is visible) or \"none\" (ask the CA at once)"
                )),
            })
        })
        .map(|check| check.unwrap_or(true));
    let timeout = table.optional(PROPAGATION_TIMEOUT, |node| duration(node, diagnostics));
    let interval = table.optional(PROPAGATION_INTERVAL, |node| duration(node, diagnostics));
    let resolvers = table.optional(RESOLVERS, |node| {
        let addresses = node.parse_each(diagnostics, |text| server_address(text, "resolver"))?;
        if addresses.is_empty() {
            return Err(node.error(
                diagnostics,
                "must list at least one address; leave resolvers out to ask the zone's authoritative servers",
            ));
        }
        Ok(addresses
            .into_iter()
            .map(|(_, address)| address)
            .collect::<Vec<_>>())
    });
    if !check? {
        let unused = collect_all(CHECK_KEYS.iter().filter_map(|key| {
            let node = table.get(key)?;
            Some(Err::<(), _>(node.error(
                diagnostics,
                format!(
                    "{key} has no effect with propagation = \"none\"; remove it, or set propagation = \"check\""
                ),
            )))
        }));
        unused?;
        return Ok(Propagation::None);
    }
    let (timeout, interval) = (timeout?, interval?);
    let timeout = timeout.unwrap_or(DEFAULT_PROPAGATION_TIMEOUT);
    let interval = interval.unwrap_or(DEFAULT_PROPAGATION_INTERVAL);
    let mut pace = Ok(());
    if interval > timeout {
        let key = if table.get(PROPAGATION_INTERVAL).is_some() {
            PROPAGATION_INTERVAL
        } else {
            PROPAGATION_TIMEOUT
        };
        if let Some(node) = table.get(key) {
            pace = Err(node.error(
                diagnostics,
                "propagation_interval must not be longer than propagation_timeout",
            ));
        }
    }
    let resolvers = resolvers?;
    pace?;
    Ok(Propagation::Check {
        timeout,
        interval,
        resolvers: resolvers.unwrap_or_default(),
    })
}

/// `"IP"`, `"IP:PORT"`, `"[IPv6]"` or `"[IPv6]:PORT"`; the port defaults to 53. Host names
/// are refused: resolving them would make the config depend on DNS, which is what the
/// provider is about to change.
fn server_address(text: &str, what: &str) -> Result<SocketAddr, String> {
    let address = text
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            let ip = text.parse::<IpAddr>().ok().or_else(|| {
                text.strip_prefix('[')
                    .and_then(|rest| rest.strip_suffix(']'))
                    .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
                    .map(IpAddr::V6)
            })?;
            Some(SocketAddr::new(ip, DEFAULT_DNS_PORT))
        })
        .ok_or_else(|| {
            format!(
                "invalid {what} address {text:?}; write an IP address and optionally a port (default 53), such as \"192.0.2.53\", \"192.0.2.53:5353\" or \"[2001:db8::53]:53\"; host names are not resolved"
            )
        })?;
    if address.port() == 0 {
        return Err(format!("invalid {what} address {text:?}: port 0"));
    }
    Ok(address)
}

/// A DNS name such as a TSIG key name or a zone, in lower case and without the trailing
/// dot. A value that looks like key material (a secret pasted into `key_name`) is not quoted
/// in the message.
fn dns_name(text: &str, what: &str) -> Result<String, String> {
    let problem = dns_name_problem(text);
    let Some(problem) = problem else {
        let name = text.strip_suffix('.').unwrap_or(text);
        return Ok(name.to_ascii_lowercase());
    };
    if looks_like_key_material(text) {
        Err(format!(
            "invalid {what}: the value looks like key material, so it is not shown; the TSIG secret itself belongs in the file, variable or credential that {}, {} or {} names",
            TSIG_SECRET.file, TSIG_SECRET.env, TSIG_SECRET.credential
        ))
    } else {
        Err(format!("invalid {what} {text:?}: {problem}"))
    }
}

/// What is wrong with a DNS name, if anything.
fn dns_name_problem(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > 253 {
        return Some(format!(
            "is {} characters long; at most 253 are allowed",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("has an empty label (two dots in a row, or a leading dot)".to_owned());
        }
        if label.len() > 63 {
            return Some(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(found) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Some(format!(
                "label {label:?} may only contain letters, digits, '-' and '_' (found {found:?})"
            ));
        }
    }
    None
}

/// What is wrong with a TSIG secret's text, described without quoting any of it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
enum SecretProblem {
    #[error("is empty")]
    Empty,
    #[error("is not valid base64: invalid character at position {0}")]
    InvalidCharacter(usize),
    #[error("is not valid base64: its length is impossible for base64")]
    InvalidLength,
    #[error("is not valid base64: the last character at position {0} has stray bits")]
    InvalidLastCharacter(usize),
    #[error("is not valid base64: misplaced '=' padding")]
    InvalidPadding,
    #[error(
        "holds a whole key statement, as tsig-keygen prints it; keep only the base64 text between the quotes after `secret` in it"
    )]
    KeyStatement,
}

impl From<DecodeProblem> for SecretProblem {
    fn from(problem: DecodeProblem) -> Self {
        match problem {
            DecodeProblem::Empty => SecretProblem::Empty,
            DecodeProblem::InvalidCharacter(at) => SecretProblem::InvalidCharacter(at),
            DecodeProblem::InvalidLength => SecretProblem::InvalidLength,
            DecodeProblem::InvalidLastCharacter(at) => SecretProblem::InvalidLastCharacter(at),
            DecodeProblem::InvalidPadding => SecretProblem::InvalidPadding,
        }
    }
}

/// Decode a TSIG secret as `tsig-keygen` prints it: base64, whitespace ignored around and
/// inside it (base64url and missing padding tolerated, as for EAB keys). Positions in
/// problems count the characters of the text as written, from its first non-blank one.
fn decode_tsig_secret(text: &str) -> Result<Vec<u8>, SecretProblem> {
    let trimmed = text.trim();
    let compact: String = trimmed
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    decode_hmac_key(&compact).map_err(|problem| {
        let statement = text.contains("secret") && text.contains(['{', ';']);
        if statement {
            return SecretProblem::KeyStatement;
        }
        // The n-th character of the compact text, counted in the text as written.
        let written = |position: usize| {
            trimmed
                .chars()
                .enumerate()
                .filter(|(_, c)| !c.is_ascii_whitespace())
                .nth(position.saturating_sub(1))
                .map_or(position, |(index, _)| index + 1)
        };
        match SecretProblem::from(problem) {
            SecretProblem::InvalidCharacter(at) => SecretProblem::InvalidCharacter(written(at)),
            SecretProblem::InvalidLastCharacter(at) => {
                SecretProblem::InvalidLastCharacter(written(at))
            }
            other => other,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_take_a_default_port() {
        let cases: &[(&str, Option<&str>)] = &[
            ("192.0.2.53", Some("192.0.2.53:53")),
            ("192.0.2.53:5353", Some("192.0.2.53:5353")),
            ("2001:db8::53", Some("[2001:db8::53]:53")),
            ("[2001:db8::53]", Some("[2001:db8::53]:53")),
            ("[2001:db8::53]:5353", Some("[2001:db8::53]:5353")),
            ("ns1.example.com", None),
            ("192.0.2.53:0", None),
            ("192.0.2.53:99999", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let parsed = server_address(text, "server").ok();
            let expected = expected.map(|address| address.parse::<SocketAddr>().expect("valid"));
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn dns_names_are_lowercased_without_the_trailing_dot() {
        assert_eq!(
            dns_name("CertKeeper.", "key name"),
            Ok("certkeeper".to_owned())
        );
        assert_eq!(
            dns_name("_acme-challenge.Example.com", "zone"),
            Ok("_acme-challenge.example.com".to_owned())
        );
        assert_eq!(
            dns_name("a..b", "zone"),
            Err(
                "invalid zone \"a..b\": has an empty label (two dots in a row, or a leading dot)"
                    .to_owned()
            )
        );
        assert_eq!(
            dns_name("", "key name"),
            Err("invalid key name \"\": must not be empty".to_owned())
        );
        let pasted = "q8Zr/Ud9xK3mP0vW7yT2bN5cL1hJ4gF6sD8aQ0eR+tY=";
        let message = dns_name(pasted, "key name").expect_err("not a name");
        assert!(!message.contains("q8Zr"), "{message}");
        assert!(message.contains("not shown"), "{message}");
    }

    #[test]
    fn tsig_secrets_decode_and_problems_never_quote_them() {
        assert_eq!(
            decode_tsig_secret("  c2VjcmV0LXRzaWc=\n"),
            Ok(b"secret-tsig".to_vec())
        );
        assert_eq!(decode_tsig_secret(""), Err(SecretProblem::Empty));
        let statement =
            "key \"certkeeper\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXRzaWc=\";\n};\n";
        let problem = decode_tsig_secret(statement).expect_err("a key statement");
        assert_eq!(problem, SecretProblem::KeyStatement);
        let message = decode_tsig_secret("c2VjcmV0$$$")
            .expect_err("'$'")
            .to_string();
        assert_eq!(
            message,
            "is not valid base64: invalid character at position 9"
        );
        // certbot's documentation writes its example secret with a space in it.
        assert_eq!(
            decode_tsig_secret(" c2VjcmV0 LXRz\naWc= "),
            Ok(b"secret-tsig".to_vec())
        );
        assert_eq!(
            decode_tsig_secret("c2Vj cmV0$$$"),
            Err(SecretProblem::InvalidCharacter(10)),
            "the position counts the space"
        );
    }
}

//! The challenge keys: the top-level `challenge` default, `[http01] webroot`, and each
//! certificate's `challenge`, `webroot` and `dns`.
//!
//! Defaults are resolved here, once, like hooks: a certificate's
//! [`ChallengeSpec`] is its own `challenge` or the top-level one (`http-01` when neither is
//! set), and an HTTP-01 certificate's webroot is its own (`false` for the embedded
//! responder), the `[http01]` default, or none. Keys that contradict the challenge (`dns` on
//! an HTTP-01 certificate, `webroot` on a DNS-01 one) are errors rather than ignored, since
//! either way the operator expected something certkeeper would not do; so is a wildcard name
//! with HTTP-01, which no CA validates.
//!
//! A webroot must be absolute, unlike the other paths in the file: it is the web server's
//! document root, which has nothing to do with where certkeeper's configuration lives.

use std::path::{Path, PathBuf};

use certkeeper_core::challenge::ChallengeSpec;
use certkeeper_core::{ChallengeKind, DomainName};
use toml::de::DeValue;

use crate::diagnostic::{Diagnostics, Reported};
use crate::dns::{DNS_KEY, KnownProviders};
use crate::walk::{Node, Table};

pub(crate) const CHALLENGE_KEY: &str = "challenge";
pub(crate) const WEBROOT_KEY: &str = "webroot";
/// The challenge keys of a `[[certificate]]`.
pub(crate) const CERTIFICATE_CHALLENGE_KEYS: [&str; 3] = [CHALLENGE_KEY, WEBROOT_KEY, DNS_KEY];

const KINDS: [ChallengeKind; 2] = [ChallengeKind::Http01, ChallengeKind::Dns01];

/// The challenge settings of the main file, which certificates inherit, and the providers
/// they may name.
#[derive(Debug)]
pub(crate) struct ChallengeSettings<'a> {
    /// The top-level `challenge`, or HTTP-01.
    default_kind: Result<ChallengeKind, Reported>,
    /// `[http01] webroot`.
    default_webroot: Result<Option<PathBuf>, Reported>,
    providers: KnownProviders<'a>,
}

/// Check the top-level `challenge`; `default_webroot` is `[http01] webroot` and `providers`
/// the `[dns.*]` names as written.
pub(crate) fn settings<'a>(
    root: &Table<'_, '_>,
    default_webroot: Result<Option<PathBuf>, Reported>,
    providers: KnownProviders<'a>,
    diagnostics: &mut Diagnostics<'_>,
) -> ChallengeSettings<'a> {
    let default_kind = root
        .optional(CHALLENGE_KEY, |node| kind(node, diagnostics))
        .map(|kind| kind.unwrap_or(ChallengeKind::Http01));
    ChallengeSettings {
        default_kind,
        default_webroot,
        providers,
    }
}

/// `challenge`: `"http-01"` or `"dns-01"`.
fn kind(node: &Node<'_, '_>, diagnostics: &mut Diagnostics<'_>) -> Result<ChallengeKind, Reported> {
    node.parse(diagnostics, |text| {
        KINDS
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!(
                    "unknown challenge type {text:?}; expected \"http-01\" (a file served over HTTP on port 80) or \"dns-01\" (a TXT record, through a [dns.NAME] provider)"
                )
            })
    })
}

/// `[http01] webroot`: the default web root of HTTP-01 certificates.
pub(crate) fn default_webroot(
    table: &Table<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Option<PathBuf>, Reported> {
    table.optional(WEBROOT_KEY, |node| webroot_path(node, diagnostics))
}

/// A webroot: an absolute directory.
fn webroot_path(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<PathBuf, Reported> {
    node.parse(diagnostics, |text| {
        if text.is_empty() {
            Err("must not be empty; write the directory the web server serves the site from, such as \"/var/www/html\"".to_owned())
        } else if Path::new(text).is_absolute() {
            Ok(PathBuf::from(text))
        } else {
            Err(format!(
                "webroot {text:?} is not an absolute path; write the directory the web server serves the site from, such as \"/var/www/html\" (certkeeper writes .well-known/acme-challenge/ below it)"
            ))
        }
    })
}

/// A certificate's effective challenge. `domains` are its names when they are all valid:
/// a wildcard among them is refused unless the challenge is DNS-01.
pub(crate) fn certificate_challenge(
    table: &Table<'_, '_>,
    domains: Result<&[DomainName], Reported>,
    settings: &ChallengeSettings<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<ChallengeSpec, Reported> {
    let own_kind = table.optional(CHALLENGE_KEY, |node| kind(node, diagnostics));
    let webroot_node = table.get(WEBROOT_KEY);
    let dns_node = table.get(DNS_KEY);
    let kind = match own_kind {
        Ok(Some(kind)) => kind,
        Ok(None) => settings.default_kind?,
        Err(reported) => {
            // The keys that depend on the challenge cannot be judged; their values still can.
            if let Some(node) = &webroot_node {
                webroot(node, diagnostics).ok();
            }
            if let Some(node) = &dns_node {
                provider(node, &settings.providers, diagnostics).ok();
            }
            return Err(reported);
        }
    };
    match kind {
        ChallengeKind::Http01 => {
            let misplaced_dns = dns_node.map_or(Ok(()), |node| {
                Err(node.error(
                    diagnostics,
                    "dns names the provider of a dns-01 certificate, but this one answers http-01 challenges; set challenge = \"dns-01\" to use it, or remove dns",
                ))
            });
            let webroot = match &webroot_node {
                Some(node) => webroot(node, diagnostics),
                None => settings.default_webroot.clone(),
            };
            let wildcards = domains.map_or(Ok(()), |domains| {
                refuse_wildcards(table, domains, diagnostics)
            });
            misplaced_dns?;
            wildcards?;
            Ok(ChallengeSpec::Http01 { webroot: webroot? })
        }
        ChallengeKind::Dns01 => {
            let misplaced_webroot = webroot_node.map_or(Ok(()), |node| {
                Err(node.error(
                    diagnostics,
                    "webroot is for http-01, but this certificate answers dns-01 challenges; remove webroot, or set challenge = \"http-01\"",
                ))
            });
            let provider = match &dns_node {
                Some(node) => provider(node, &settings.providers, diagnostics),
                None => Err(missing_provider(table, &settings.providers, diagnostics)),
            };
            misplaced_webroot?;
            Ok(ChallengeSpec::Dns01 {
                provider: provider?,
            })
        }
    }
}

/// A certificate's `webroot`: a path, or `false` for the embedded responder despite an
/// `[http01]` default.
fn webroot(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Option<PathBuf>, Reported> {
    match node.value() {
        DeValue::Boolean(false) => Ok(None),
        DeValue::String(_) => webroot_path(node, diagnostics).map(Some),
        _ => Err(node.wrong_type(
            diagnostics,
            "an absolute path, or false for the embedded HTTP-01 responder",
        )),
    }
}

/// A certificate's `dns`: the name of a `[dns.NAME]` provider.
fn provider(
    node: &Node<'_, '_>,
    providers: &KnownProviders<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<String, Reported> {
    let name = node.str(diagnostics)?;
    if providers.names.contains(&name) {
        return Ok(name.to_owned());
    }
    if let Some(reported) = providers.broken {
        // `dns` itself is broken and reported; the name may be meant to be there.
        return Err(reported);
    }
    let message = if providers.names.is_empty() {
        format!(
            "unknown DNS provider {name:?}: no [dns.*] provider is configured; add [dns.{name}] with type = \"rfc2136\" or type = \"hook\""
        )
    } else {
        format!(
            "unknown DNS provider {name:?}; configured providers: {}",
            providers.listed()
        )
    };
    Err(node.error(diagnostics, message))
}

/// The error for a DNS-01 certificate without `dns`.
fn missing_provider(
    table: &Table<'_, '_>,
    providers: &KnownProviders<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Reported {
    let message = if providers.names.is_empty() {
        "missing required key: a dns-01 certificate names the [dns.NAME] provider that publishes its TXT records, and none is configured; add one, such as [dns.bind] with type = \"rfc2136\", and set dns = \"bind\" here".to_owned()
    } else {
        format!(
            "missing required key: a dns-01 certificate names the provider that publishes its TXT records, one of {}",
            providers.listed()
        )
    };
    table.error(diagnostics, DNS_KEY, message)
}

/// Report each wildcard of an HTTP-01 certificate, at its place in `domains`.
fn refuse_wildcards(
    table: &Table<'_, '_>,
    domains: &[DomainName],
    diagnostics: &mut Diagnostics<'_>,
) -> Result<(), Reported> {
    if !domains.iter().any(DomainName::is_wildcard) {
        return Ok(());
    }
    // The domains are valid, so `domains` is an array with one item for each.
    let Some(Ok(items)) = table
        .get("domains")
        .map(|node| node.array(diagnostics, "an array of strings"))
    else {
        return Ok(());
    };
    let mut refused = Ok(());
    for (item, domain) in items.iter().zip(domains) {
        if domain.is_wildcard() {
            refused = Err(item.error(
                diagnostics,
                format!(
                    "wildcard {:?} needs the dns-01 challenge (CAs do not validate wildcards over HTTP); set challenge = \"dns-01\" and dns = \"NAME\" on this certificate, or list the names the wildcard should cover",
                    domain.as_str()
                ),
            ));
        }
    }
    refused
}

//! How certbot validated a lineage, as the challenge certkeeper will answer.
//!
//! certbot records its authenticator plugin and that plugin's settings in the renewal file;
//! this module turns them into certkeeper's challenge configuration:
//!
//! | certbot | certkeeper |
//! | --- | --- |
//! | `standalone` (or none recorded) | the embedded HTTP-01 responder on certbot's `http01_port` |
//! | `webroot`, one directory for all the certificate's names | `webroot = "DIR"` |
//! | `webroot`, different directories (or none) for its names | `webroot = "FILL-ME"`: a choice for the operator |
//! | `dns-rfc2136` | `challenge = "dns-01"` and a `[dns.NAME]` `type = "rfc2136"` provider per credentials file |
//! | `manual` with a DNS-01 `manual_auth_hook` | `challenge = "dns-01"` and a `[dns.NAME]` `type = "hook"` provider that runs certbot's hooks unchanged |
//! | `manual` for HTTP-01 | `webroot = "FILL-ME"`: certkeeper has no HTTP-01 hooks |
//! | another `dns-*` plugin | `challenge = "dns-01"`, `dns = "FILL-ME"`: certkeeper has no provider for that DNS service |
//! | `nginx`, `apache`, others | the embedded responder, behind the web server (a note says how) |
//!
//! Why `FILL-ME` rather than a guess: certkeeper takes one webroot per certificate, and
//! certbot's `[[webroot_map]]` may give each name its own; no directory is right for all of
//! them, and splitting the certificate would re-issue it. The lineage is still adopted (so
//! nothing is re-issued) and written with the placeholder, which `certkeeper check` refuses,
//! with a comment listing certbot's directories per name and the ways out (one directory
//! that serves `/.well-known/acme-challenge/` for every name, or `webroot = false` and a proxy
//! to certkeeper's listener). An inventory with a placeholder cannot run by accident.
//!
//! What certkeeper cannot do with certbot's settings at all refuses the lineage instead
//! ([`ChallengeError`]): a wildcard validated over HTTP (no CA does that), a `dns-rfc2136`
//! lineage without a credentials file, and (in [`crate::credentials`]) a TSIG key certkeeper
//! cannot sign with. A refused lineage is neither written nor adopted; certbot keeps it.
//!
//! certbot's manual plugin prefers HTTP-01 unless `pref_challs` says otherwise (or the names
//! include a wildcard, which only DNS-01 validates); that decides which of the two a manual
//! lineage is.

use std::path::PathBuf;

use thiserror::Error;

use crate::credentials::Rfc2136Credentials;
use crate::lineage::{Lineage, RFC2136};

/// The challenge certkeeper answers for an imported lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// certbot's standalone server: certkeeper's own HTTP-01 responder, on this port.
    Standalone { port: u16 },
    /// A web server plugin (`nginx`, `apache`...): the web server owns port 80, and the
    /// embedded responder answers behind it.
    WebServer { authenticator: String },
    /// HTTP-01 through the web server's directory.
    Webroot { path: String },
    /// HTTP-01 through a webroot certbot's settings do not determine: the placeholder, and
    /// why (for the comment and the list of things to fill in).
    WebrootToFill { reason: String },
    /// DNS-01 through certbot's RFC 2136 credentials file.
    Rfc2136 {
        /// The credentials file, resolved to where it was read.
        credentials_file: PathBuf,
        credentials: Rfc2136Credentials,
        /// certbot's fixed wait before asking the CA, when set.
        propagation_seconds: Option<u64>,
    },
    /// DNS-01 through certbot's manual hooks, as written.
    ManualDns {
        auth: String,
        cleanup: Option<String>,
    },
    /// DNS-01 through something certkeeper has no provider for: the placeholder, and why.
    DnsToFill { reason: String },
}

impl Challenge {
    /// Whether this is HTTP-01, which cannot validate a wildcard.
    #[must_use]
    pub fn is_http01(&self) -> bool {
        matches!(
            self,
            Challenge::Standalone { .. }
                | Challenge::WebServer { .. }
                | Challenge::Webroot { .. }
                | Challenge::WebrootToFill { .. }
        )
    }
}

/// A lineage whose validation certkeeper cannot take over.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChallengeError {
    #[error(
        "names {wildcards}, which only DNS-01 validates, but certbot's settings validate it over HTTP-01 ({authenticator}); certbot cannot renew it this way either: move it to a DNS plugin or hooks in certbot, or configure it by hand with challenge = \"dns-01\""
    )]
    WildcardOverHttp {
        wildcards: String,
        authenticator: String,
    },
    #[error(
        "uses certbot's dns-rfc2136 plugin but its renewal file names no dns_rfc2136_credentials file"
    )]
    NoCredentials,
}

/// The challenge for `lineage`, whose certificate names `domains`. `rfc2136` is its
/// credentials file (resolved) and what it says, for a `dns-rfc2136` lineage.
///
/// # Errors
/// See [`ChallengeError`].
pub fn decide(
    lineage: &Lineage,
    domains: &[String],
    rfc2136: Option<(PathBuf, Rfc2136Credentials)>,
) -> Result<Challenge, ChallengeError> {
    let authenticator = lineage.authenticator.as_deref().unwrap_or("standalone");
    let challenge = match authenticator {
        "standalone" => Challenge::Standalone {
            port: lineage.http01_port.unwrap_or(80),
        },
        "webroot" => webroot(lineage, domains),
        "manual" => manual(lineage, domains),
        RFC2136 => {
            let (credentials_file, credentials) = rfc2136.ok_or(ChallengeError::NoCredentials)?;
            Challenge::Rfc2136 {
                credentials_file,
                credentials,
                propagation_seconds: lineage
                    .rfc2136
                    .as_ref()
                    .and_then(|settings| settings.propagation_seconds),
            }
        }
        other if other.starts_with("dns-") => Challenge::DnsToFill {
            reason: format!(
                "certbot published this lineage's DNS-01 records with its {other} plugin, which certkeeper has no provider for: define a [dns.NAME] provider (type = \"hook\" with a script that calls your DNS service's API, or type = \"rfc2136\" if the service accepts RFC 2136 updates) and name it in dns."
            ),
        },
        other => Challenge::WebServer {
            authenticator: other.to_owned(),
        },
    };
    let wildcards: Vec<&str> = domains
        .iter()
        .filter(|domain| domain.starts_with("*."))
        .map(String::as_str)
        .collect();
    if challenge.is_http01() && !wildcards.is_empty() {
        return Err(ChallengeError::WildcardOverHttp {
            wildcards: wildcards.join(", "),
            authenticator: authenticator.to_owned(),
        });
    }
    Ok(challenge)
}

/// certbot's webroot plugin: each name's directory from `[[webroot_map]]`, else the last
/// `webroot_path` (what certbot itself falls back to).
fn webroot(lineage: &Lineage, domains: &[String]) -> Challenge {
    let fallback = lineage.webroot_path.last();
    let per_domain: Vec<(&str, Option<&String>)> = domains
        .iter()
        .map(|domain| {
            let mapped = lineage
                .webroot_map
                .iter()
                .find(|(name, _)| name == domain)
                .map(|(_, path)| path);
            (domain.as_str(), mapped.or(fallback))
        })
        .collect();
    let mut paths: Vec<&String> = per_domain.iter().filter_map(|(_, path)| *path).collect();
    paths.sort();
    paths.dedup();
    let unknown: Vec<&str> = per_domain
        .iter()
        .filter(|(_, path)| path.is_none())
        .map(|(domain, _)| *domain)
        .collect();
    if unknown.is_empty()
        && let [path] = paths.as_slice()
    {
        return Challenge::Webroot {
            path: (*path).clone(),
        };
    }
    let served: Vec<String> = per_domain
        .iter()
        .map(|(domain, path)| match path {
            Some(path) => format!("{domain} from {path}"),
            None => format!("{domain} from no directory certbot's settings name"),
        })
        .collect();
    Challenge::WebrootToFill {
        reason: format!(
            "certbot's webroot plugin served {}; certkeeper writes one certificate's challenges into one webroot. Choose one: a directory the web server serves /.well-known/acme-challenge/ from for every one of these names (e.g. an nginx `location ^~ /.well-known/acme-challenge/ {{ root /var/www/acme; }}` in each server block) as webroot, or webroot = false with the web server passing /.well-known/acme-challenge/ to certkeeper's listener.",
            served.join(", ")
        ),
    }
}

/// certbot's manual plugin: DNS-01 with an auth hook becomes a hook provider; everything
/// else needs a decision.
fn manual(lineage: &Lineage, domains: &[String]) -> Challenge {
    let preferred = lineage
        .preferred_challenges
        .iter()
        .find(|challenge| matches!(challenge.as_str(), "dns-01" | "http-01"));
    let dns01 = match preferred {
        Some(challenge) => challenge == "dns-01",
        // certbot's manual plugin prefers HTTP-01; only DNS-01 validates a wildcard.
        None => domains.iter().any(|domain| domain.starts_with("*.")),
    };
    let hooks = &lineage.manual;
    match (dns01, &hooks.auth) {
        (true, Some(auth)) => Challenge::ManualDns {
            auth: auth.clone(),
            cleanup: hooks.cleanup.clone(),
        },
        (true, None) => Challenge::DnsToFill {
            reason: "certbot's manual plugin had no manual_auth_hook for this lineage, so its DNS-01 records were published by hand: define a [dns.NAME] provider (a hook script or RFC 2136) and name it in dns.".to_owned(),
        },
        (false, Some(auth)) => Challenge::WebrootToFill {
            reason: format!(
                "certbot answered HTTP-01 with the manual hook {auth:?}, and certkeeper has no HTTP-01 hooks. Set webroot to the directory the web server serves /.well-known/acme-challenge/ from for these names (certkeeper writes the files there itself), or webroot = false to answer from certkeeper's own listener."
            ),
        },
        (false, None) => Challenge::WebrootToFill {
            reason: "certbot's manual plugin had no manual_auth_hook for this lineage, so its HTTP-01 files were published by hand. Set webroot to the directory the web server serves /.well-known/acme-challenge/ from for these names, or webroot = false to answer from certkeeper's own listener.".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lineage(params: &str) -> Lineage {
        Lineage::from_renewal_conf("l", &format!("[renewalparams]\n{params}")).expect("parses")
    }

    fn domains(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn webroot_lineages_with_one_directory_get_it() {
        let shared = lineage(
            "authenticator = webroot\nwebroot_path = /var/www/a,\n[[webroot_map]]\nwww.example.com = /var/www/a\nexample.com = /var/www/a\n",
        );
        assert_eq!(
            decide(&shared, &domains(&["www.example.com", "example.com"]), None),
            Ok(Challenge::Webroot {
                path: "/var/www/a".to_owned()
            })
        );
        // A name the map does not list gets the last webroot_path, as in certbot.
        let fallback = lineage(
            "authenticator = webroot\nwebroot_path = /var/www/old, /var/www/a\n[[webroot_map]]\nwww.example.com = /var/www/a\n",
        );
        assert_eq!(
            decide(
                &fallback,
                &domains(&["www.example.com", "new.example.com"]),
                None
            ),
            Ok(Challenge::Webroot {
                path: "/var/www/a".to_owned()
            })
        );
    }

    #[test]
    fn webroot_lineages_with_several_directories_or_none_are_left_to_choose() {
        let split = lineage(
            "authenticator = webroot\nwebroot_path = /var/www/a, /var/www/b\n[[webroot_map]]\na.example.com = /var/www/a\nb.example.com = /var/www/b\n",
        );
        let Ok(Challenge::WebrootToFill { reason }) =
            decide(&split, &domains(&["a.example.com", "b.example.com"]), None)
        else {
            panic!("a choice to make");
        };
        assert!(
            reason.contains("a.example.com from /var/www/a, b.example.com from /var/www/b"),
            "{reason}"
        );
        let none = lineage("authenticator = webroot\n");
        assert!(matches!(
            decide(&none, &domains(&["a.example.com"]), None),
            Ok(Challenge::WebrootToFill { .. })
        ));
    }

    #[test]
    fn manual_lineages_follow_the_preferred_challenge() {
        let dns = lineage(
            "authenticator = manual\npref_challs = dns-01,\nmanual_auth_hook = /etc/letsencrypt/auth.sh\nmanual_cleanup_hook = /etc/letsencrypt/cleanup.sh\n",
        );
        assert_eq!(
            decide(&dns, &domains(&["example.com"]), None),
            Ok(Challenge::ManualDns {
                auth: "/etc/letsencrypt/auth.sh".to_owned(),
                cleanup: Some("/etc/letsencrypt/cleanup.sh".to_owned()),
            })
        );
        // Without pref_challs certbot prefers HTTP-01, unless a wildcard rules it out.
        let unspecified = lineage("authenticator = manual\nmanual_auth_hook = /x/auth\n");
        assert!(matches!(
            decide(&unspecified, &domains(&["h.example.com"]), None),
            Ok(Challenge::WebrootToFill { .. })
        ));
        assert_eq!(
            decide(
                &unspecified,
                &domains(&["*.example.com", "example.com"]),
                None
            ),
            Ok(Challenge::ManualDns {
                auth: "/x/auth".to_owned(),
                cleanup: None,
            })
        );
        let by_hand = lineage("authenticator = manual\npref_challs = dns,\n");
        assert!(matches!(
            decide(&by_hand, &domains(&["example.com"]), None),
            Ok(Challenge::DnsToFill { .. })
        ));
    }

    #[test]
    fn wildcards_over_http_and_rfc2136_without_credentials_are_refused() {
        let standalone = lineage("authenticator = standalone\n");
        assert_eq!(
            decide(&standalone, &domains(&["*.example.com"]), None),
            Err(ChallengeError::WildcardOverHttp {
                wildcards: "*.example.com".to_owned(),
                authenticator: "standalone".to_owned(),
            })
        );
        let rfc2136 = lineage("authenticator = dns-rfc2136\n");
        assert_eq!(
            decide(&rfc2136, &domains(&["example.com"]), None),
            Err(ChallengeError::NoCredentials)
        );
        let cloudflare = lineage("authenticator = dns-cloudflare\n");
        assert!(matches!(
            decide(&cloudflare, &domains(&["*.example.com"]), None),
            Ok(Challenge::DnsToFill { .. })
        ));
        let nginx = lineage("authenticator = nginx\n");
        assert_eq!(
            decide(&nginx, &domains(&["example.com"]), None),
            Ok(Challenge::WebServer {
                authenticator: "nginx".to_owned()
            })
        );
    }
}

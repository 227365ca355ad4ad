//! Hooks: the commands certkeeper runs around an issuance so web servers pick up new
//! certificates, and the environment they run with.
//!
//! This module owns the vocabulary and the environment contract; running processes is the
//! `certkeeper-hooks` crate's job. Each hook is either an argv array, executed directly, or a
//! string for `/bin/sh -c`: the operator chooses the shell explicitly by writing a string, so
//! an argv hook is never re-split or re-quoted, and its arguments can hold any character.
//!
//! When hooks run:
//! - **pre** ([`CertHooks::pre`]): before certkeeper places an order for the certificate (to
//!   open a firewall for HTTP-01, say), with [`pre_env`].
//! - **deploy** ([`CertHooks::deploy`]): after a new certificate is live, once per
//!   certificate, with [`deploy_env`]: certbot's `RENEWED_LINEAGE` and `RENEWED_DOMAINS`, so
//!   certbot deploy hooks work unchanged, and certkeeper's own `CERTKEEPER_*` variables.
//! - **reload** ([`CertHooks::reload`]): named [`ReloadTarget`]s shared by many certificates
//!   (one `systemctl reload nginx` for ten certificates), requested as certificates deploy
//!   and run once per batch, with [`post_env`] naming the certificates that asked.
//! - **post** ([`CertHooks::post`]): after a batch of renewals, each distinct post hook once
//!   ([`distinct_post_hooks`]), with [`post_env`].
//!
//! A certificate's [`CertHooks`] are its effective hooks: its own, or the `[hooks]` defaults
//! of the configuration, resolved by the config crate so nothing downstream looks at
//! defaults.

use std::path::Path;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use crate::names::{CertName, DomainName, NameError};

/// How long a hook may run when the configuration sets no `timeout` and no `hook_timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// certbot's file names in a live directory. They belong to the store's layout; they are
/// repeated here because the environment contract promises them and the core depends on no
/// adapter.
const CERT_FILE: &str = "cert.pem";
const CHAIN_FILE: &str = "chain.pem";
const FULLCHAIN_FILE: &str = "fullchain.pem";
const PRIVKEY_FILE: &str = "privkey.pem";

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HookCommand {
    /// Program and arguments, executed directly without a shell. Never empty; the program is
    /// looked up in `PATH` unless it contains a `/`.
    Argv(Vec<String>),
    /// A shell command line, run as `/bin/sh -c LINE`. Never empty.
    Shell(String),
}

impl HookCommand {
    /// The program that is executed: the first argv element, or `/bin/sh`.
    #[must_use]
    pub fn program(&self) -> &str {
        match self {
            HookCommand::Argv(argv) => argv.first().map_or("", String::as_str),
            HookCommand::Shell(_) => "/bin/sh",
        }
    }
}

/// A command and how long it may run before it is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hook {
    pub command: HookCommand,
    pub timeout: Duration,
}

/// A certificate's effective hooks: its own, or the configuration's `[hooks]` defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertHooks {
    /// Before an order is placed for this certificate.
    pub pre: Option<Hook>,
    /// After a new certificate for this lineage is live.
    pub deploy: Option<Hook>,
    /// After a batch of renewals that included this certificate.
    pub post: Option<Hook>,
    /// Names of [`ReloadTarget`]s to run after this certificate is deployed, in configured
    /// order, each once. Validation guarantees every name exists.
    pub reload: Vec<String>,
}

/// A named reload command shared by many certificates (`[reload.nginx]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadTarget {
    pub name: String,
    pub hook: Hook,
}

/// Check a reload target's name. It appears in labels and logs, so it is kept to the
/// alphabet of certificate names.
///
/// # Errors
/// A [`NameError`] saying what is wrong with `name`.
pub fn check_reload_name(name: &str) -> Result<(), NameError> {
    CertName::new(name).map(drop)
}

/// Which kind of issuance a deploy hook follows (`CERTKEEPER_ACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeployAction {
    /// The lineage had no certificate before.
    Issue,
    /// A new validity period for an existing lineage.
    Renew,
    /// A new certificate on the same order (DigiCert's reissue; same end date).
    Reissue,
}

impl DeployAction {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DeployAction::Issue => "issue",
            DeployAction::Renew => "renew",
            DeployAction::Reissue => "reissue",
        }
    }
}

/// What a deploy hook is told about the certificate that just went live.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    pub name: &'a CertName,
    pub domains: &'a [DomainName],
    /// `state_dir/live/NAME`, the directory holding `cert.pem`, `chain.pem`, `fullchain.pem`
    /// and `privkey.pem`.
    pub live_dir: &'a Path,
    /// The certificate's serial number as the store reports it.
    pub serial: &'a str,
    pub not_after: SystemTime,
    pub action: DeployAction,
}

/// The variables a deploy hook runs with, in a fixed order:
///
/// | variable | value |
/// | --- | --- |
/// | `RENEWED_LINEAGE` | the live directory (certbot's name) |
/// | `RENEWED_DOMAINS` | the domains, space separated (certbot's name) |
/// | `CERTKEEPER_NAME` | the lineage name |
/// | `CERTKEEPER_DOMAINS` | the domains, space separated |
/// | `CERTKEEPER_LIVE_DIR` | the live directory |
/// | `CERTKEEPER_CERT`, `CERTKEEPER_KEY`, `CERTKEEPER_FULLCHAIN`, `CERTKEEPER_CHAIN` | `cert.pem`, `privkey.pem`, `fullchain.pem`, `chain.pem` in the live directory |
/// | `CERTKEEPER_SERIAL` | the serial number |
/// | `CERTKEEPER_NOT_AFTER` | expiry, RFC 3339 in UTC to the second, e.g. `2026-01-31T12:00:00Z` |
/// | `CERTKEEPER_ACTION` | `issue`, `renew` or `reissue` |
///
/// Paths go through the live directory, not the archive, so a hook that records them keeps
/// pointing at the current certificate after the next renewal.
#[must_use]
pub fn deploy_env(deployment: &Deployment<'_>) -> Vec<(String, String)> {
    let live = deployment.live_dir;
    let live_text = live.to_string_lossy().into_owned();
    let file = |name: &str| live.join(name).to_string_lossy().into_owned();
    let domains = join_domains(deployment.domains);
    [
        ("RENEWED_LINEAGE", live_text.clone()),
        ("RENEWED_DOMAINS", domains.clone()),
        ("CERTKEEPER_NAME", deployment.name.as_str().to_owned()),
        ("CERTKEEPER_DOMAINS", domains),
        ("CERTKEEPER_LIVE_DIR", live_text),
        ("CERTKEEPER_CERT", file(CERT_FILE)),
        ("CERTKEEPER_KEY", file(PRIVKEY_FILE)),
        ("CERTKEEPER_FULLCHAIN", file(FULLCHAIN_FILE)),
        ("CERTKEEPER_CHAIN", file(CHAIN_FILE)),
        ("CERTKEEPER_SERIAL", deployment.serial.to_owned()),
        ("CERTKEEPER_NOT_AFTER", rfc3339_utc(deployment.not_after)),
        ("CERTKEEPER_ACTION", deployment.action.as_str().to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// The variables a pre hook runs with: `CERTKEEPER_NAME` and `CERTKEEPER_DOMAINS` (space
/// separated) of the certificate about to be ordered.
#[must_use]
pub fn pre_env(name: &CertName, domains: &[DomainName]) -> Vec<(String, String)> {
    vec![
        ("CERTKEEPER_NAME".to_owned(), name.as_str().to_owned()),
        ("CERTKEEPER_DOMAINS".to_owned(), join_domains(domains)),
    ]
}

/// The variables post and reload hooks run with: `CERTKEEPER_RENEWED`, the names of the
/// certificates renewed in the batch (for a reload: those that requested it), space
/// separated.
#[must_use]
pub fn post_env<'n>(renewed: impl IntoIterator<Item = &'n str>) -> Vec<(String, String)> {
    let names: Vec<&str> = renewed.into_iter().collect();
    vec![("CERTKEEPER_RENEWED".to_owned(), names.join(" "))]
}

/// The post hooks to run after a batch: each distinct hook of the given certificates once,
/// in first-seen order. Certificates usually share the `[hooks]` default, which must run
/// once per batch, not once per certificate.
pub fn distinct_post_hooks<'h>(hooks: impl IntoIterator<Item = &'h CertHooks>) -> Vec<&'h Hook> {
    let mut distinct: Vec<&Hook> = Vec::new();
    for hook in hooks.into_iter().filter_map(|hooks| hooks.post.as_ref()) {
        if !distinct.contains(&hook) {
            distinct.push(hook);
        }
    }
    distinct
}

fn join_domains(domains: &[DomainName]) -> String {
    domains
        .iter()
        .map(DomainName::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2026-01-31T12:00:00Z`: whole seconds, as certificates carry them. A time outside the
/// representable range (years beyond 9999) cannot come from a parsed certificate; it is
/// written as the empty string rather than a made-up date.
fn rfc3339_utc(at: SystemTime) -> String {
    Timestamp::try_from(at)
        .and_then(|ts| Timestamp::from_second(ts.as_second()))
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn hook(command: HookCommand) -> Hook {
        Hook {
            command,
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }

    #[test]
    fn deploy_env_follows_the_contract() {
        let name = CertName::new("www").expect("valid");
        let domains = [
            DomainName::new("www.example.com").expect("valid"),
            DomainName::new("example.com").expect("valid"),
        ];
        let live_dir = PathBuf::from("/var/lib/certkeeper/live/www");
        // 2026-01-31T12:00:00.75Z: the fraction is dropped.
        let not_after = SystemTime::UNIX_EPOCH + Duration::from_millis(1_769_860_800_750);
        let env = deploy_env(&Deployment {
            name: &name,
            domains: &domains,
            live_dir: &live_dir,
            serial: "03a1f2",
            not_after,
            action: DeployAction::Renew,
        });
        let expected = [
            ("RENEWED_LINEAGE", "/var/lib/certkeeper/live/www"),
            ("RENEWED_DOMAINS", "www.example.com example.com"),
            ("CERTKEEPER_NAME", "www"),
            ("CERTKEEPER_DOMAINS", "www.example.com example.com"),
            ("CERTKEEPER_LIVE_DIR", "/var/lib/certkeeper/live/www"),
            ("CERTKEEPER_CERT", "/var/lib/certkeeper/live/www/cert.pem"),
            ("CERTKEEPER_KEY", "/var/lib/certkeeper/live/www/privkey.pem"),
            (
                "CERTKEEPER_FULLCHAIN",
                "/var/lib/certkeeper/live/www/fullchain.pem",
            ),
            ("CERTKEEPER_CHAIN", "/var/lib/certkeeper/live/www/chain.pem"),
            ("CERTKEEPER_SERIAL", "03a1f2"),
            ("CERTKEEPER_NOT_AFTER", "2026-01-31T12:00:00Z"),
            ("CERTKEEPER_ACTION", "renew"),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn actions_are_spelled_as_documented() {
        let spelled: Vec<&str> = [
            DeployAction::Issue,
            DeployAction::Renew,
            DeployAction::Reissue,
        ]
        .into_iter()
        .map(DeployAction::as_str)
        .collect();
        assert_eq!(spelled, ["issue", "renew", "reissue"]);
    }

    #[test]
    fn pre_and_post_env() {
        let name = CertName::new("mail").expect("valid");
        let domains = [DomainName::new("mail.example.com").expect("valid")];
        assert_eq!(
            pre_env(&name, &domains),
            [
                ("CERTKEEPER_NAME".to_owned(), "mail".to_owned()),
                (
                    "CERTKEEPER_DOMAINS".to_owned(),
                    "mail.example.com".to_owned()
                ),
            ]
        );
        assert_eq!(
            post_env(["www", "mail"]),
            [("CERTKEEPER_RENEWED".to_owned(), "www mail".to_owned())]
        );
        assert_eq!(
            post_env([]),
            [("CERTKEEPER_RENEWED".to_owned(), String::new())]
        );
    }

    #[test]
    fn shared_post_hooks_run_once_per_batch() {
        let shared = hook(HookCommand::Shell("systemctl reload postfix".to_owned()));
        let own = hook(HookCommand::Argv(vec!["/usr/local/bin/notify".to_owned()]));
        let with = |post: &Hook| CertHooks {
            post: Some(post.clone()),
            ..CertHooks::default()
        };
        let certs = [
            with(&shared),
            CertHooks::default(),
            with(&own),
            with(&shared),
        ];
        assert_eq!(distinct_post_hooks(&certs), [&shared, &own]);
        // The same command with another timeout is another hook.
        let longer = Hook {
            timeout: Duration::from_secs(5),
            ..shared.clone()
        };
        assert_eq!(
            distinct_post_hooks(&[with(&shared), with(&longer)]).len(),
            2
        );
    }

    #[test]
    fn programs_and_reload_names() {
        let argv = HookCommand::Argv(vec!["systemctl".to_owned(), "reload".to_owned()]);
        assert_eq!(argv.program(), "systemctl");
        assert_eq!(HookCommand::Shell("true".to_owned()).program(), "/bin/sh");
        assert!(check_reload_name("nginx").is_ok());
        assert!(check_reload_name("php-fpm8.2").is_ok());
        assert_eq!(check_reload_name(""), Err(NameError::Empty));
        assert!(check_reload_name("nginx reload").is_err());
    }
}

//! The TOML contract: which keys exist, their types, defaults and rules, and how they become
//! a [`certkeeper_core::Inventory`].
//!
//! Each table is checked as a whole: every key is looked at even after one fails, and an
//! entry that failed still lends its `name` to the uniqueness and reference checks, so a
//! broken `[[ca]]` does not also make every certificate that names it "unknown". Name,
//! domain, key type, action and URL rules live in the core; this module only maps their
//! errors onto positions.
//!
//! Global settings live in the main file only; `[[ca]]` and `[[certificate]]` entries come
//! from every file, main file first, and are checked together. Scheduling settings are
//! resolved here, once: each certificate's [`SchedulePolicy`] holds its effective window
//! (its own, the global one, or none for `"none"`) in the configured zone and its effective
//! urgent margin, so the planner never looks at global settings. A `[[ca]]`'s `profile` is
//! resolved the same way: each certificate carries its effective profile (its own, else its
//! CA's), so ordering never looks at the CA's default.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::challenge::{ChallengeSpec, Challenges};
use certkeeper_core::hooks::DEFAULT_HOOK_TIMEOUT;
use certkeeper_core::inventory::DEFAULT_MAX_CONCURRENT;
use certkeeper_core::lifecycle::parse_directory;
use certkeeper_core::schedule::{Backoff, CronExpr, MaintenanceWindow, SchedulePolicy};
use certkeeper_core::{
    AdminSpec, CaName, CaSpec, CertName, CertificateSpec, DomainName, Http01Spec, Inventory,
    KeyType, LifecycleAction,
};
use jiff::tz::TimeZone;
use toml::de::DeValue;

use crate::Context;
use crate::challenge::{self, CERTIFICATE_CHALLENGE_KEYS, CHALLENGE_KEY, ChallengeSettings};
use crate::cluster::{self, CLUSTER_KEY};
use crate::diagnostic::{Diagnostics, FileId, Reported, collect_all};
use crate::dns::{self, DNS_KEY};
use crate::eab::{self, EAB_KEYS};
use crate::hooks::{
    self, CERTIFICATE_HOOK_KEYS, HOOK_TIMEOUT_KEY, HOOKS_DIR_KEY, HOOKS_KEY, HookSettings,
    RELOAD_KEY,
};
use crate::include::INCLUDE_KEY;
use crate::keys::{self, CERTIFICATE_KEY_KEYS, KEY_GROUP_KEY, KeySettings, REUSE_KEY_KEY};
use crate::notify::{self, NOTIFY_KEY};
use crate::values::{duration, path, preferred_chain, profile};
use crate::walk::{Node, Table};

const DEFAULT_STATE_DIR: &str = "/var/lib/certkeeper";
const DEFAULT_HTTP01_PORT: u16 = 80;
/// The `window` value that means "no maintenance window".
const NO_WINDOW: &str = "none";

const ROOT_KEYS: [&str; 23] = [
    "state_dir",
    INCLUDE_KEY,
    "max_concurrent",
    "timezone",
    "window",
    "urgent_before",
    "retry_initial",
    "retry_max",
    HOOKS_DIR_KEY,
    HOOK_TIMEOUT_KEY,
    REUSE_KEY_KEY,
    KEY_GROUP_KEY,
    PREFERRED_CHAIN_KEY,
    CHALLENGE_KEY,
    "http01",
    DNS_KEY,
    "admin",
    HOOKS_KEY,
    RELOAD_KEY,
    "ca",
    "certificate",
    NOTIFY_KEY,
    CLUSTER_KEY,
];
/// What an included file may hold.
const INCLUDED_KEYS: [&str; 2] = ["ca", "certificate"];
const HTTP01_KEYS: [&str; 2] = ["listen", challenge::WEBROOT_KEY];
const ADMIN_KEYS: [&str; 1] = ["listen"];
const CA_KEYS: [&str; 8] = [
    "name",
    "directory",
    "terms_of_service_agreed",
    "contact",
    "root_ca_file",
    "max_concurrent",
    "request_timeout",
    PROFILE_KEY,
];
const CERTIFICATE_OWN_KEYS: [&str; 11] = [
    "name",
    "ca",
    "domains",
    "key_type",
    "order_id",
    "action",
    "renew_before",
    "window",
    "urgent_before",
    PROFILE_KEY,
    PREFERRED_CHAIN_KEY,
];
/// The issuer common name of the chain to prefer among those the CA offers: at the top level
/// the default of every certificate, on a `[[certificate]]` its own.
const PREFERRED_CHAIN_KEY: &str = "preferred_chain";
/// The ACME profile to request: on a `[[ca]]` the default of its certificates, on a
/// `[[certificate]]` its own.
const PROFILE_KEY: &str = "profile";

/// One file's top-level table, and where relative paths written in it start.
#[derive(Debug)]
pub(crate) struct Source<'a, 'i, 'e> {
    pub(crate) root: Table<'a, 'i>,
    pub(crate) context: Context<'e>,
}

/// The scheduling settings certificates inherit from the main file.
#[derive(Debug)]
struct ScheduleDefaults {
    window: Option<CronExpr>,
    urgent_before: Option<Duration>,
    timezone: TimeZone,
    backoff: Backoff,
}

/// Build the inventory from the main file and the files it includes, recording every
/// problem. `incomplete` is set when an included file is missing (unreadable, or left out
/// for syntax errors): references that may point into it are then not reported as unknown.
pub(crate) fn build(
    main: &Source<'_, '_, '_>,
    included: &[Source<'_, '_, '_>],
    incomplete: Option<Reported>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Inventory, Reported> {
    let root = &main.root;
    let context = &main.context;
    root.reject_unknown_keys(&ROOT_KEYS, diagnostics);
    for source in included {
        source
            .root
            .reject_keys(&INCLUDED_KEYS, only_in_main_file, diagnostics);
    }

    let state_dir = root
        .optional("state_dir", |node| path(node, context, diagnostics))
        .map(|dir| dir.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)));
    let max_concurrent = root
        .optional("max_concurrent", |node| positive_integer(node, diagnostics))
        .map(|limit| limit.unwrap_or(DEFAULT_MAX_CONCURRENT));
    let timezone = root.optional("timezone", |node| timezone(node, diagnostics));
    let window = root
        .optional("window", |node| window(node, diagnostics))
        .map(Option::flatten);
    let urgent_before = root.optional("urgent_before", |node| duration(node, diagnostics));
    let backoff = retry_backoff(root, diagnostics);
    let (http01, default_webroot) = match root.optional("http01", |node| node.table(diagnostics)) {
        Ok(Some(table)) => (
            http01(&table, diagnostics),
            challenge::default_webroot(&table, diagnostics),
        ),
        Ok(None) => (Ok(default_http01()), Ok(None)),
        Err(reported) => (Err(reported), Err(reported)),
    };
    let admin = root.optional("admin", |node| admin(node, diagnostics));
    let hook_settings = hooks::settings(root, context, diagnostics);
    let key_settings = KeySettings::read(root, context, diagnostics);
    let default_chain = root.optional(PREFERRED_CHAIN_KEY, |node| {
        preferred_chain(node, diagnostics)
    });
    // DNS hooks are checked with the default timeout when `hook_timeout` is broken: that is
    // reported already and refuses the inventory.
    let hook_timeout = hook_settings
        .timeout
        .as_ref()
        .copied()
        .unwrap_or(DEFAULT_HOOK_TIMEOUT);
    let (known_providers, dns_providers) = dns::providers(root, hook_timeout, context, diagnostics);
    let challenge_settings =
        challenge::settings(root, default_webroot, known_providers, diagnostics);
    let notify = notify::targets(root, hook_timeout, context, diagnostics);
    let cluster = root.optional(CLUSTER_KEY, |node| {
        cluster::cluster(node, context, diagnostics)
    });
    // Certificates are checked against the defaults even when one of them is broken (that
    // one is reported already, and fails the whole inventory below).
    let defaults = ScheduleDefaults {
        window: window.clone().unwrap_or_default(),
        urgent_before: urgent_before.unwrap_or_default(),
        timezone: timezone
            .clone()
            .ok()
            .flatten()
            .unwrap_or_else(|| context.env.local_timezone.clone()),
        backoff: backoff.unwrap_or_default(),
    };

    let sources: Vec<&Source<'_, '_, '_>> = std::iter::once(main).chain(included).collect();
    let mut ca_entries: Vec<CaEntry<'_, '_>> = Vec::new();
    for source in &sources {
        for table in entries(&source.root, "ca", diagnostics) {
            ca_entries.push(ca(&table, &source.context, diagnostics));
        }
    }
    report_duplicates(
        ca_entries.iter().filter_map(|entry| entry.name.as_ref()),
        "CA name",
        diagnostics,
    );
    let known_cas = KnownCas {
        entries: &ca_entries,
        incomplete,
    };

    let mut certificates: Vec<CertificateEntry<'_, '_>> = Vec::new();
    for source in &sources {
        for table in entries(&source.root, "certificate", diagnostics) {
            certificates.push(certificate(
                &table,
                &source.context,
                &known_cas,
                &defaults,
                &Inherited {
                    hooks: &hook_settings,
                    keys: &key_settings,
                    challenge: &challenge_settings,
                    preferred_chain: &default_chain,
                },
                diagnostics,
            ));
        }
    }
    let any_certificate_key = sources
        .iter()
        .any(|source| source.root.get("certificate").is_some());
    if !any_certificate_key && incomplete.is_none() {
        root.warning(
            diagnostics,
            "certificate",
            "no [[certificate]] is configured, so certkeeper has nothing to keep issued",
        );
    }
    report_duplicates(
        certificates.iter().filter_map(|(name, _)| name.as_ref()),
        "certificate name",
        diagnostics,
    );

    let cas = collect_all(ca_entries.into_iter().map(|entry| entry.spec));
    let certificates = collect_all(certificates.into_iter().map(|(_, spec)| spec));
    // Checked last: the entries above are worth checking even when includes failed.
    if let Some(reported) = incomplete {
        return Err(reported);
    }
    // The scheduling defaults reached the certificates through `defaults`; their own
    // failures still refuse the inventory.
    let (_, _, _, _) = (timezone?, window?, urgent_before?, backoff?);
    key_settings.check()?;
    default_chain?;
    let certificates = certificates?;
    let challenges = Challenges {
        dns_providers: dns_providers?,
        // Only the certificates that do not use the embedded responder: a fleet of ten
        // thousand on HTTP-01 keeps no table of ten thousand defaults.
        by_certificate: certificates
            .iter()
            .filter(|(_, challenge)| *challenge != ChallengeSpec::default())
            .map(|(spec, challenge)| (spec.name.clone(), challenge.clone()))
            .collect(),
    };
    // Collected anew rather than in place: an in-place collect would keep the allocation
    // sized for the (spec, challenge) pairs, for the daemon's whole life.
    let mut specs = Vec::with_capacity(certificates.len());
    specs.extend(certificates.into_iter().map(|(spec, _)| spec));
    share_common_settings(&mut specs);
    Ok(Inventory {
        state_dir: state_dir?,
        http01: http01?,
        cas: cas?,
        certificates: specs,
        max_concurrent: max_concurrent?,
        admin: admin?,
        watch_paths: Vec::new(),
        hooks_dir: hook_settings.hooks_dir?,
        hook_timeout: hook_settings.timeout?,
        reload_targets: hook_settings.reload_targets?,
        challenges,
        notify: notify?,
        cluster: cluster?,
    })
}

/// The message for a key of the main file written in an included file.
fn only_in_main_file(key: &str) -> Option<String> {
    if key == INCLUDE_KEY {
        Some(format!(
            "{INCLUDE_KEY} is only allowed in the main configuration file; included files cannot include others"
        ))
    } else if ROOT_KEYS.contains(&key) {
        Some(format!(
            "{key} is only allowed in the main configuration file; included files may only hold [[ca]] and [[certificate]] tables"
        ))
    } else {
        None
    }
}

/// The tables of an array of tables (`[[ca]]`), each with its indexed path. Absent = none.
pub(crate) fn entries<'a, 'i>(
    root: &Table<'a, 'i>,
    key: &str,
    diagnostics: &mut Diagnostics<'_>,
) -> Vec<Table<'a, 'i>> {
    let Some(node) = root.get(key) else {
        return Vec::new();
    };
    let expected = format!("an array of tables, written [[{key}]]");
    let Ok(items) = node.array(diagnostics, &expected) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| item.table(diagnostics).ok())
        .collect()
}

/// A string `name` as written, before validation: enough for duplicate and reference checks.
#[derive(Debug, Clone)]
pub(crate) struct Named<'a, 'i> {
    node: Node<'a, 'i>,
    name: &'a str,
}

impl<'a, 'i> Named<'a, 'i> {
    pub(crate) fn of(table: &Table<'a, 'i>) -> Option<Self> {
        let node = table.get("name")?;
        let name = node.value().as_str()?;
        Some(Self { node, name })
    }
}

/// Report each name that an earlier entry already used, at the later entry, naming where
/// the first is: its line, and its file when that is another one.
pub(crate) fn report_duplicates<'n, 'a: 'n, 'i: 'a>(
    names: impl IntoIterator<Item = &'n Named<'a, 'i>>,
    what: &str,
    diagnostics: &mut Diagnostics<'_>,
) {
    let mut first_seen: HashMap<&str, (FileId, usize)> = HashMap::new();
    for named in names {
        let file = named.node.file();
        let line = named.node.line(diagnostics);
        match first_seen.get(named.name) {
            Some(&(first_file, first_line)) => {
                let place = if first_file == file {
                    format!("on line {first_line}")
                } else {
                    format!("at {}:{first_line}", diagnostics.path(first_file).display())
                };
                named.node.error(
                    diagnostics,
                    format!(
                        "duplicate {what} {:?}; it is first defined {place}",
                        named.name
                    ),
                );
            }
            None => {
                first_seen.insert(named.name, (file, line));
            }
        }
    }
}

fn default_http01() -> Http01Spec {
    Http01Spec {
        listen: vec![SocketAddr::from((
            Ipv6Addr::UNSPECIFIED,
            DEFAULT_HTTP01_PORT,
        ))],
    }
}

/// `[http01]` except `webroot`, which certificates inherit (see [`challenge`]).
fn http01(
    table: &Table<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Http01Spec, Reported> {
    table.reject_unknown_keys(&HTTP01_KEYS, diagnostics);
    let listen = table.optional("listen", |node| {
        let addresses = node.parse_each(diagnostics, |text| {
            text.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "invalid listen address {text:?}; write an address and a port, such as \"[::]:80\" or \"0.0.0.0:80\""
                )
            })
        })?;
        if addresses.is_empty() {
            return Err(node.error(diagnostics, "must list at least one address"));
        }
        Ok(addresses.into_iter().map(|(_, address)| address).collect())
    })?;
    Ok(listen.map_or_else(default_http01, |listen| Http01Spec { listen }))
}

/// A positive integer such as `max_concurrent`.
fn positive_integer(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<usize, Reported> {
    let DeValue::Integer(integer) = node.value() else {
        return Err(node.wrong_type(diagnostics, "a positive integer"));
    };
    let checked = match usize::from_str_radix(integer.as_str(), integer.radix()) {
        Ok(0) => Err("must be at least 1"),
        Ok(value) => Ok(value),
        Err(_) if integer.as_str().starts_with('-') => Err("must be at least 1"),
        Err(_) => Err("is too large"),
    };
    checked.map_err(|message| node.error(diagnostics, message))
}

/// `timezone`: an IANA time zone name, looked up in the system's zoneinfo or, without one,
/// in the copy built into certkeeper.
fn timezone(node: &Node<'_, '_>, diagnostics: &mut Diagnostics<'_>) -> Result<TimeZone, Reported> {
    node.parse(diagnostics, |name| {
        jiff::tz::db().get(name).map_err(|_| {
            format!(
                "unknown time zone {name:?}; write an IANA time zone name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
            )
        })
    })
}

/// `window`: a crontab expression, or `"none"` for no window.
fn window(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Option<CronExpr>, Reported> {
    node.parse(diagnostics, |text| {
        if text.trim().eq_ignore_ascii_case(NO_WINDOW) {
            return Ok(None);
        }
        text.parse::<CronExpr>()
            .map(Some)
            .map_err(|err| err.to_string())
    })
}

/// `[admin]`: where to serve `/healthz` and `/metrics`.
fn admin(node: &Node<'_, '_>, diagnostics: &mut Diagnostics<'_>) -> Result<AdminSpec, Reported> {
    let table = node.table(diagnostics)?;
    table.reject_unknown_keys(&ADMIN_KEYS, diagnostics);
    let listen = table.required("listen", diagnostics)?;
    let address = listen.parse(diagnostics, |text| {
        text.parse::<SocketAddr>().map_err(|_| {
            format!(
                "invalid listen address {text:?}; write one IP address and a port, such as \"127.0.0.1:9101\" or \"[::1]:9101\""
            )
        })
    })?;
    if !address.ip().to_canonical().is_loopback() {
        listen.warning(
            diagnostics,
            format!(
                "the admin listener on {address} can be reached from other hosts, and /metrics names every certificate; listen on a loopback address such as 127.0.0.1:9101 unless a firewall restricts it"
            ),
        );
    }
    Ok(AdminSpec { listen: address })
}

/// One `[[ca]]` entry: its name as written, the validated spec and the profile its
/// certificates inherit.
#[derive(Debug)]
struct CaEntry<'a, 'i> {
    name: Option<Named<'a, 'i>>,
    spec: Result<CaSpec, Reported>,
    /// `profile`: the default of the certificates that use this CA. Resolved into each
    /// certificate rather than kept on [`CaSpec`], so that nothing past this crate has to
    /// combine the two. `None` when unset, or when invalid (then `spec` is the error).
    profile: Option<String>,
}

fn ca<'a, 'i>(
    table: &Table<'a, 'i>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> CaEntry<'a, 'i> {
    let known: Vec<&str> = CA_KEYS.iter().chain(&EAB_KEYS).copied().collect();
    table.reject_unknown_keys(&known, diagnostics);

    let name = table.required("name", diagnostics).and_then(|node| {
        node.parse(diagnostics, |name| {
            CaName::new(name).map_err(|err| format!("invalid CA name {name:?}: {err}"))
        })
    });
    let directory = table.required("directory", diagnostics).and_then(|node| {
        node.parse(diagnostics, |url| {
            parse_directory(url)
                .map(|_| url.to_owned())
                .map_err(|err| err.to_string())
        })
    });
    let eab = eab::binding(table, context, diagnostics);
    let terms_of_service_agreed = table
        .optional("terms_of_service_agreed", |node| node.bool(diagnostics))
        .map(Option::unwrap_or_default);
    let contact = table
        .optional("contact", |node| node.parse_each(diagnostics, contact))
        .map(|contacts| {
            contacts
                .unwrap_or_default()
                .into_iter()
                .map(|(_, contact)| contact)
                .collect()
        });
    let root_ca_file = table.optional("root_ca_file", |node| {
        let path = path(node, context, diagnostics)?;
        check_readable_file(&path)
            .map(|()| path)
            .map_err(|message| node.error(diagnostics, message))
    });
    let max_concurrent =
        table.optional("max_concurrent", |node| positive_integer(node, diagnostics));
    let request_timeout = table.optional("request_timeout", |node| duration(node, diagnostics));
    let profile = table.optional(PROFILE_KEY, |node| profile(node, diagnostics));

    let spec = (|| {
        // A broken default profile refuses the CA like any other key.
        profile.as_ref().map_err(|reported| *reported)?;
        Ok(CaSpec {
            name: name?,
            directory: directory?,
            eab: eab?,
            terms_of_service_agreed: terms_of_service_agreed?,
            contact: contact?,
            root_ca_file: root_ca_file?,
            max_concurrent: max_concurrent?,
            request_timeout: request_timeout?,
        })
    })();
    CaEntry {
        name: Named::of(table),
        spec,
        profile: profile.unwrap_or_default(),
    }
}

/// A `contact` entry: a `mailto:` URL.
fn contact(text: &str) -> Result<String, String> {
    match text.strip_prefix("mailto:") {
        Some(address) if !address.is_empty() => Ok(text.to_owned()),
        Some(_) => Err(format!(
            "invalid contact {text:?}: add the address after \"mailto:\""
        )),
        None if text.contains('@') && !text.contains(':') => Err(format!(
            "invalid contact {text:?}: contacts are mailto: URLs; did you mean \"mailto:{text}\"?"
        )),
        None => Err(format!(
            "invalid contact {text:?}: contacts are mailto: URLs, such as \"mailto:ops@example.com\""
        )),
    }
}

/// That the root CA file at `path` is a file this process can open.
pub(crate) fn check_readable_file(path: &Path) -> Result<(), String> {
    match std::fs::File::open(path).and_then(|file| file.metadata()) {
        Ok(metadata) if metadata.is_dir() => Err(format!("{path:?} is a directory, not a file")),
        Ok(_) => Ok(()),
        Err(err) => Err(format!("cannot read root CA file {path:?}: {err}")),
    }
}

/// The CAs certificates may refer to, valid or not, from every file.
#[derive(Debug)]
struct KnownCas<'e, 'a, 'i> {
    entries: &'e [CaEntry<'a, 'i>],
    /// Set when an included file could not be loaded: a name not found here may be in it.
    incomplete: Option<Reported>,
}

impl<'a, 'i> KnownCas<'_, 'a, 'i> {
    /// The CA named `name`: `None` when no entry has that name, the entry's own failure
    /// when it is broken (already reported there).
    fn find(&self, name: &str) -> Option<Result<CaName, Reported>> {
        self.entries
            .iter()
            .find(|entry| entry.name.as_ref().is_some_and(|named| named.name == name))
            .map(|entry| {
                entry
                    .spec
                    .as_ref()
                    .map(|spec| spec.name.clone())
                    .map_err(|r| *r)
            })
    }

    /// The default profile of the CA a certificate resolved to: the first valid entry of
    /// that name, as [`KnownCas::find`] and [`KnownCas::only_one`] pick it.
    fn default_profile(&self, ca: &CaName) -> Option<String> {
        self.entries
            .iter()
            .find(|entry| entry.spec.as_ref().is_ok_and(|spec| spec.name == *ca))
            .and_then(|entry| entry.profile.clone())
    }

    /// The entry a certificate without `ca` uses: the only one, or the first when every
    /// entry has the same name (the duplicates are reported as such, not as ambiguity).
    fn only_one(&self) -> Option<&CaEntry<'a, 'i>> {
        let (first, rest) = self.entries.split_first()?;
        let first_name = first.name.as_ref().map(|named| named.name);
        let same = first_name.is_some()
            && rest
                .iter()
                .all(|entry| entry.name.as_ref().map(|named| named.name) == first_name);
        (rest.is_empty() || same).then_some(first)
    }

    /// Distinct names, in file order.
    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for named in self.entries.iter().filter_map(|entry| entry.name.as_ref()) {
            if !names.contains(&named.name) {
                names.push(named.name);
            }
        }
        names
    }

    fn listed(&self) -> String {
        self.names()
            .iter()
            .map(|name| format!("{name:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A `[[certificate]]` entry: its name as written, and the validated spec with its
/// effective challenge.
type CertificateEntry<'a, 'i> = (
    Option<Named<'a, 'i>>,
    Result<(CertificateSpec, ChallengeSpec), Reported>,
);

/// What certificates inherit from the main file besides scheduling: hooks, key settings and
/// the challenge.
#[derive(Debug)]
struct Inherited<'s, 'a, 'i> {
    hooks: &'s HookSettings<'a>,
    keys: &'s KeySettings,
    challenge: &'s ChallengeSettings<'i>,
    /// The top-level `preferred_chain`.
    preferred_chain: &'s Result<Option<String>, Reported>,
}

fn certificate<'a, 'i>(
    table: &Table<'a, 'i>,
    context: &Context<'_>,
    cas: &KnownCas<'_, '_, '_>,
    defaults: &ScheduleDefaults,
    inherited: &Inherited<'_, '_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> CertificateEntry<'a, 'i> {
    let known: Vec<&str> = CERTIFICATE_OWN_KEYS
        .iter()
        .chain(&CERTIFICATE_HOOK_KEYS)
        .chain(&CERTIFICATE_CHALLENGE_KEYS)
        .chain(&CERTIFICATE_KEY_KEYS)
        .copied()
        .collect();
    table.reject_unknown_keys(&known, diagnostics);

    let name = table.required("name", diagnostics).and_then(|node| {
        node.parse(diagnostics, |name| {
            CertName::new(name).map_err(|err| format!("invalid certificate name {name:?}: {err}"))
        })
    });
    let ca = certificate_ca(table, cas, diagnostics);
    let domains = table
        .required("domains", diagnostics)
        .and_then(|node| domains(&node, diagnostics));
    let key_type = table
        .optional("key_type", |node| {
            node.parse(diagnostics, |text| {
                text.parse::<KeyType>().map_err(|err| err.to_string())
            })
        })
        .map(Option::unwrap_or_default);
    let order_id = table.optional("order_id", |node| order_id(node, diagnostics));
    let action = table
        .optional("action", |node| {
            node.parse(diagnostics, |text| {
                text.parse::<LifecycleAction>()
                    .map_err(|err| err.to_string())
            })
        })
        .map(Option::unwrap_or_default);
    let renew_before = table.optional("renew_before", |node| duration(node, diagnostics));
    // `None`: inherit; `Some(None)`: "none", no window for this certificate.
    let own_window = table.optional("window", |node| window(node, diagnostics));
    let urgent_before = table.optional("urgent_before", |node| duration(node, diagnostics));
    let own_profile = table.optional(PROFILE_KEY, |node| profile(node, diagnostics));
    let own_chain = table.optional(PREFERRED_CHAIN_KEY, |node| {
        preferred_chain(node, diagnostics)
    });
    let hooks = hooks::certificate_hooks(table, inherited.hooks, diagnostics);
    let key_settings = keys::certificate_keys(table, inherited.keys, context, diagnostics);
    let challenge = challenge::certificate_challenge(
        table,
        domains.as_deref().map_err(|reported| *reported),
        inherited.challenge,
        diagnostics,
    );

    let spec = (|| {
        let ca = ca?;
        let profile = own_profile?.or_else(|| cas.default_profile(&ca));
        let (reuse_key, key_group) = key_settings?;
        // A broken default is reported where it is written, once; it refuses the inventory.
        let preferred_chain =
            own_chain?.or_else(|| inherited.preferred_chain.clone().ok().flatten());
        let spec = CertificateSpec {
            name: name?,
            ca,
            domains: domains?,
            key_type: key_type?,
            order_id: order_id?,
            action: action?,
            renew_before: renew_before?,
            profile,
            preferred_chain,
            schedule: Arc::new(SchedulePolicy {
                urgent_before: urgent_before?.or(defaults.urgent_before),
                window: own_window?
                    .unwrap_or_else(|| defaults.window.clone())
                    .map(|cron| MaintenanceWindow {
                        cron,
                        tz: defaults.timezone.clone(),
                    }),
                backoff: defaults.backoff,
            }),
            hooks: Arc::new(hooks?),
            reuse_key,
            key_group,
        };
        Ok((spec, challenge?))
    })();
    (Named::of(table), spec)
}

/// Point certificates with equal scheduling settings or hooks at one shared copy. Most
/// inherit the global settings, so a large inventory has a handful of distinct values; past
/// [`DISTINCT_SHARED`] of them the rest keep their own (equal values are still found among
/// the first ones).
fn share_common_settings(specs: &mut [CertificateSpec]) {
    let mut schedules = Vec::new();
    let mut hooks = Vec::new();
    for spec in specs {
        share(&mut spec.schedule, &mut schedules);
        share(&mut spec.hooks, &mut hooks);
    }
}

/// At most this many distinct values are looked through for each certificate.
const DISTINCT_SHARED: usize = 16;

fn share<T: PartialEq>(value: &mut Arc<T>, seen: &mut Vec<Arc<T>>) {
    match seen.iter().find(|known| ***known == **value) {
        Some(known) => *value = Arc::clone(known),
        None if seen.len() < DISTINCT_SHARED => seen.push(Arc::clone(value)),
        None => {}
    }
}

/// `retry_initial` and `retry_max`: the backoff after failures (1 min doubling up to 6 h by
/// default).
fn retry_backoff(
    root: &Table<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Backoff, Reported> {
    let default = Backoff::default();
    let initial = root.optional("retry_initial", |node| duration(node, diagnostics));
    let max = root.optional("retry_max", |node| duration(node, diagnostics));
    let (initial, max) = (initial?, max?);
    let backoff = Backoff {
        initial: initial.unwrap_or(default.initial),
        cap: max.unwrap_or(default.cap),
    };
    if backoff.cap < backoff.initial {
        let key = if max.is_some() {
            "retry_max"
        } else {
            "retry_initial"
        };
        if let Some(node) = root.get(key) {
            return Err(node.error(
                diagnostics,
                "retry_max must not be shorter than retry_initial".to_owned(),
            ));
        }
    }
    Ok(backoff)
}

/// The certificate's CA: the one it names, or the only one configured.
fn certificate_ca(
    table: &Table<'_, '_>,
    cas: &KnownCas<'_, '_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<CaName, Reported> {
    if let Some(node) = table.get("ca") {
        let name = node.str(diagnostics)?;
        return cas.find(name).unwrap_or_else(|| {
            if let Some(reported) = cas.incomplete {
                // It may be defined in the file that could not be loaded.
                return Err(reported);
            }
            let message = if cas.names().is_empty() {
                format!("unknown CA {name:?}: no [[ca]] is configured")
            } else {
                format!("unknown CA {name:?}; configured CAs: {}", cas.listed())
            };
            Err(node.error(diagnostics, message))
        });
    }
    // CAs are counted across all files.
    if let Some(only) = cas.only_one() {
        return only
            .spec
            .as_ref()
            .map(|spec| spec.name.clone())
            .map_err(|reported| *reported);
    }
    match (cas.entries, cas.incomplete) {
        // The CA may be in the file that could not be loaded.
        ([], Some(reported)) => Err(reported),
        ([], None) => Err(table.error(
            diagnostics,
            "ca",
            "no [[ca]] is configured; add one for this certificate to use",
        )),
        (_, _) => Err(table.error(
            diagnostics,
            "ca",
            format!(
                "missing required key: with several [[ca]] entries, name one of {}",
                cas.listed()
            ),
        )),
    }
}

/// `domains`: a non-empty list of distinct DNS names. Duplicates are looked for among the
/// valid names even when others are invalid, so both kinds of mistake show up in one run.
fn domains(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Vec<DomainName>, Reported> {
    let items = node.array(diagnostics, "an array of strings")?;
    if items.is_empty() {
        return Err(node.error(diagnostics, "must list at least one domain name"));
    }
    let parsed: Vec<(Node<'_, '_>, Result<DomainName, Reported>)> = items
        .into_iter()
        .map(|item| {
            let domain = item.parse(diagnostics, |text| {
                DomainName::new(text).map_err(|err| format!("invalid domain name {text:?}: {err}"))
            });
            (item, domain)
        })
        .collect();
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    let mut distinct = Ok(());
    for (index, (item, domain)) in parsed.iter().enumerate() {
        let Ok(domain) = domain else { continue };
        let name = domain.as_str();
        if let Some(first) = first_index.get(name) {
            distinct = Err(item.error(
                diagnostics,
                format!(
                    "duplicate domain name {name:?}; it is already listed as {}[{first}]",
                    node.path()
                ),
            ));
        } else {
            first_index.insert(name, index);
        }
    }
    let domains = collect_all(parsed.into_iter().map(|(_, domain)| domain));
    distinct?;
    domains
}

/// `order_id`: a string, or an integer since CertCentral order ids are numbers.
fn order_id(node: &Node<'_, '_>, diagnostics: &mut Diagnostics<'_>) -> Result<String, Reported> {
    let checked = match node.value() {
        DeValue::String(text) => {
            if text.is_empty() {
                Err("must not be empty".to_owned())
            } else if let Some(found) = text
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
            {
                Err(format!(
                    "invalid order id {text:?}: may only contain letters, digits, '-' and '_' (found {found:?})"
                ))
            } else {
                Ok(text.to_string())
            }
        }
        DeValue::Integer(integer) => match u64::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(id) => Ok(id.to_string()),
            Err(_) if integer.as_str().starts_with('-') => Err("must not be negative".to_owned()),
            Err(_) => Err("is too large for an integer; write the order id as a string".to_owned()),
        },
        _ => return Err(node.wrong_type(diagnostics, "a string or an integer")),
    };
    checked.map_err(|message| node.error(diagnostics, message))
}

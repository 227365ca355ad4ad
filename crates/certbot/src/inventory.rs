//! The certkeeper inventory equivalent to a set of certbot lineages: planning (which `[[ca]]`
//! entries, which names) and the TOML text itself.
//!
//! The text is written by hand rather than serialized, because it is meant to be read and
//! finished by a person: every setting that could not be carried over is a comment next to
//! the entry it concerns, and every value the operator must supply is the literal
//! placeholder [`FILL_ME`], which `certkeeper check` refuses (the HMAC key file
//! `FILL-ME` does not exist, `webroot = "FILL-ME"` is not an absolute path, `dns =
//! "FILL-ME"` names no provider), so an unfinished inventory cannot run by accident.
//!
//! DNS providers are shared the way certbot shared their settings: one `[dns.NAME]` of
//! `type = "rfc2136"` per credentials file, one of `type = "hook"` per pair of manual hooks.
//! The RFC 2136 provider reads its secret from certbot's credentials file itself
//! (`secret_file` and `secret_ini_key`), so the inventory holds no secret and stays 0644.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;

use certkeeper_core::challenge::{DEFAULT_PROPAGATION_TIMEOUT, TsigAlgorithm};
use certkeeper_core::{CaName, CertName, KeyType, LifecycleAction};

use crate::certificate::CertificateFacts;
use crate::challenge::Challenge;
use crate::credentials::SECRET_KEY;
use crate::lineage::{Hooks, Lineage, RequestedProfile};

/// The placeholder for values certbot does not keep (EAB credentials).
pub const FILL_ME: &str = "FILL-ME";

/// One lineage to import: its renewal settings, its live certificate, its account's
/// contacts and the challenge it will answer ([`crate::challenge::decide`]).
#[derive(Debug, Clone)]
pub struct Imported {
    pub lineage: Lineage,
    pub certificate: CertificateFacts,
    pub contact: Vec<String>,
    pub challenge: Challenge,
}

/// Where the import comes from and goes to, for the header and `state_dir`.
#[derive(Debug, Clone)]
pub struct Source {
    /// certbot's configuration directory, as given (`/etc/letsencrypt`).
    pub certbot_dir: String,
    /// certkeeper's state directory the lineages are adopted into.
    pub state_dir: String,
    /// Executables in certbot's `renewal-hooks/{pre,deploy,post}/`, which certbot ran for
    /// every lineage.
    pub directory_hooks: Vec<String>,
}

/// A `[[ca]]` entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCa {
    pub name: String,
    pub directory: String,
    /// Whether to write EAB placeholders (every CA but Let's Encrypt, which has no EAB).
    pub eab: bool,
    pub contact: Vec<String>,
}

/// A `[[certificate]]` entry to write, and the lineage it adopts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCertificate {
    /// certkeeper's lineage name (certbot's, unless that is not a valid name).
    pub name: String,
    /// certbot's lineage name.
    pub certbot_name: String,
    pub ca: String,
    pub domains: Vec<String>,
    /// `None` when the live key is not a type certkeeper makes: the default is written, and
    /// the first run orders a new certificate.
    pub key_type: Option<KeyType>,
    pub order_id: Option<String>,
    pub action: Option<LifecycleAction>,
    pub renew_before: Option<String>,
    /// certbot's `required_profile` or `preferred_profile`, written as `profile`.
    pub profile: Option<RequestedProfile>,
    /// certbot's `preferred_chain`.
    pub preferred_chain: Option<String>,
    /// certbot's `reuse_key`.
    pub reuse_key: bool,
    pub challenge: PlannedChallenge,
    pub hooks: Hooks,
    /// Comments for this entry.
    pub notes: Vec<String>,
}

/// The challenge keys to write for a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedChallenge {
    /// None: the embedded HTTP-01 responder, the default.
    Embedded,
    /// `webroot = "DIR"`.
    Webroot(String),
    /// `webroot = "FILL-ME"`, and why.
    WebrootToFill(String),
    /// `challenge = "dns-01"` and `dns = "NAME"`.
    Dns(String),
    /// `challenge = "dns-01"` and `dns = "FILL-ME"`, and why.
    DnsToFill(String),
}

/// A `[dns.NAME]` provider to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDnsProvider {
    pub name: String,
    pub kind: PlannedDnsKind,
    /// The certificates that use it.
    pub certificates: Vec<String>,
    /// Comments for this entry.
    pub notes: Vec<String>,
}

/// How a planned provider publishes records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedDnsKind {
    /// certbot's `dns-rfc2136` plugin.
    Rfc2136 {
        /// The credentials file, which the provider reads its secret from.
        credentials_file: String,
        server: SocketAddr,
        key_name: String,
        algorithm: TsigAlgorithm,
        sign_query: bool,
        /// The longest fixed wait certbot used for a lineage of this file (60 s unset).
        propagation_seconds: u64,
    },
    /// certbot's manual hooks.
    Hook {
        auth: String,
        cleanup: Option<String>,
    },
}

/// How long certbot's dns-rfc2136 plugin waits by default.
const CERTBOT_PROPAGATION_SECONDS: u64 = 60;
/// How long an imported hook provider's command may run: certbot gave manual hooks all the
/// time they took, and DNS scripts often sleep until the record has propagated.
const MANUAL_HOOK_TIMEOUT: &str = "10m";

/// Everything to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub cas: Vec<PlannedCa>,
    pub certificates: Vec<PlannedCertificate>,
    pub dns_providers: Vec<PlannedDnsProvider>,
    /// Whether any certificate is answered by the embedded HTTP-01 responder.
    pub uses_embedded_responder: bool,
    /// Ports certbot's standalone HTTP-01 server used (80 unless `http01_port` was set).
    pub http01_ports: Vec<u16>,
    /// Certificates whose lineage a web server validated (webroot, nginx, apache...): a web
    /// server owns port 80 there.
    pub served_by_web_server: Vec<String>,
}

/// The generated inventory and what the operator must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// Values to fill in before the inventory is usable, as `KEY (WHERE)` lines.
    pub to_fill: Vec<String>,
    /// Things the operator should know (changed behaviour, dropped settings).
    pub warnings: Vec<String>,
}

/// Decide the `[[ca]]` and `[[certificate]]` entries for `imported` (in the given order).
#[must_use]
pub fn plan(imported: &[Imported]) -> Plan {
    let mut cas: Vec<PlannedCa> = Vec::new();
    let mut certificates = Vec::new();
    let mut ports = BTreeSet::new();
    let mut served_by_web_server = Vec::new();
    let mut used_names: BTreeSet<String> = BTreeSet::new();
    let mut providers: Vec<PlannedDnsProvider> = Vec::new();
    let mut uses_embedded_responder = false;
    for item in imported {
        let lineage = &item.lineage;
        let ca_index = match cas
            .iter()
            .position(|ca| ca.directory == lineage.server.directory)
        {
            Some(index) => index,
            None => {
                let taken: Vec<&str> = cas.iter().map(|ca| ca.name.as_str()).collect();
                cas.push(PlannedCa {
                    name: ca_name(&lineage.server.directory, &taken),
                    directory: lineage.server.directory.clone(),
                    eab: needs_eab(&lineage.server.directory),
                    contact: Vec::new(),
                });
                cas.len() - 1
            }
        };
        let ca = &mut cas[ca_index];
        for contact in &item.contact {
            if !ca.contact.contains(contact) {
                ca.contact.push(contact.clone());
            }
        }

        let mut notes = lineage.server.notes.clone();
        notes.extend(lineage.notes.iter().cloned());
        let name = unique(&lineage_name(&lineage.name, &mut notes), &mut used_names);

        let key_type = item.certificate.key_type;
        match (key_type, lineage.requested_key_type) {
            (None, _) => notes.push(format!(
                "the current key ({}) is not a type certkeeper makes; the default (ecdsa-p256) \
                 is used and a new certificate is ordered on the first run",
                item.certificate.key_description
            )),
            (Some(live), Some(requested)) if live != requested => notes.push(format!(
                "certbot's settings ask for {} keys ({requested}); the current certificate has \
                 {live}, kept so nothing is re-issued early. Set key_type = \"{requested}\" to \
                 switch (that orders a new certificate at once)",
                lineage.requested_key
            )),
            (Some(_), None) => notes.push(format!(
                "certbot's settings ask for {} keys, which certkeeper does not make; renewals \
                 keep the current key type",
                lineage.requested_key
            )),
            _ => {}
        }
        if !item.certificate.other_names.is_empty() {
            notes.push(format!(
                "the certificate also names {}, which certkeeper does not order (DNS names only)",
                item.certificate.other_names.join(", ")
            ));
        }

        let challenge = match &item.challenge {
            Challenge::Standalone { port } => {
                ports.insert(*port);
                uses_embedded_responder = true;
                PlannedChallenge::Embedded
            }
            Challenge::WebServer { authenticator } => {
                served_by_web_server.push(name.clone());
                uses_embedded_responder = true;
                notes.push(format!(
                    "certbot validated this lineage with its {authenticator} authenticator; \
                     certkeeper answers HTTP-01 itself (see [http01] above)"
                ));
                PlannedChallenge::Embedded
            }
            Challenge::Webroot { path } => PlannedChallenge::Webroot(path.clone()),
            Challenge::WebrootToFill { reason } => PlannedChallenge::WebrootToFill(reason.clone()),
            Challenge::DnsToFill { reason } => PlannedChallenge::DnsToFill(reason.clone()),
            Challenge::Rfc2136 {
                credentials_file,
                credentials,
                propagation_seconds,
            } => {
                let file = credentials_file.display().to_string();
                let seconds = propagation_seconds.unwrap_or(CERTBOT_PROPAGATION_SECONDS);
                let kind = PlannedDnsKind::Rfc2136 {
                    credentials_file: file.clone(),
                    server: credentials.server,
                    key_name: credentials.key_name.clone(),
                    algorithm: credentials.algorithm,
                    sign_query: credentials.sign_query,
                    propagation_seconds: seconds,
                };
                let stem = credentials_file
                    .file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let provider = provider_for(&mut providers, kind, &stem, "rfc2136", &name);
                if let PlannedDnsKind::Rfc2136 {
                    propagation_seconds: longest,
                    ..
                } = &mut provider.kind
                {
                    *longest = (*longest).max(seconds);
                }
                for note in &credentials.notes {
                    let note = format!("{file}: {note}");
                    if !provider.notes.contains(&note) {
                        provider.notes.push(note);
                    }
                }
                PlannedChallenge::Dns(provider.name.clone())
            }
            Challenge::ManualDns { auth, cleanup } => {
                let kind = PlannedDnsKind::Hook {
                    auth: auth.clone(),
                    cleanup: cleanup.clone(),
                };
                let provider = provider_for(&mut providers, kind, "manual", "manual", &name);
                PlannedChallenge::Dns(provider.name.clone())
            }
        };

        certificates.push(PlannedCertificate {
            name,
            certbot_name: lineage.name.clone(),
            ca: cas[ca_index].name.clone(),
            domains: item.certificate.dns_names.clone(),
            key_type,
            order_id: lineage.server.order_id.clone(),
            action: lineage.server.action,
            renew_before: lineage.renew_before.clone(),
            profile: lineage.profile.clone(),
            preferred_chain: lineage.preferred_chain.clone(),
            reuse_key: lineage.reuse_key,
            challenge,
            hooks: lineage.hooks.clone(),
            notes,
        });
    }
    Plan {
        cas,
        certificates,
        dns_providers: providers,
        uses_embedded_responder,
        http01_ports: ports.into_iter().collect(),
        served_by_web_server,
    }
}

/// The provider of `kind` (the same credentials file, the same pair of hooks), added with a
/// name made from `stem` (else `fallback`) when there is none yet; `certificate` is recorded
/// as one of its users.
fn provider_for<'p>(
    providers: &'p mut Vec<PlannedDnsProvider>,
    kind: PlannedDnsKind,
    stem: &str,
    fallback: &str,
    certificate: &str,
) -> &'p mut PlannedDnsProvider {
    let same = |existing: &PlannedDnsKind| match (existing, &kind) {
        (
            PlannedDnsKind::Rfc2136 {
                credentials_file: a,
                ..
            },
            PlannedDnsKind::Rfc2136 {
                credentials_file: b,
                ..
            },
        ) => a == b,
        (existing, kind) => existing == kind,
    };
    let index = match providers.iter().position(|provider| same(&provider.kind)) {
        Some(index) => index,
        None => {
            let mut taken: BTreeSet<String> = providers
                .iter()
                .map(|provider| provider.name.clone())
                .collect();
            let base = clean_name(stem).unwrap_or_else(|| fallback.to_owned());
            providers.push(PlannedDnsProvider {
                name: unique(&base, &mut taken),
                kind,
                certificates: Vec::new(),
                notes: Vec::new(),
            });
            providers.len() - 1
        }
    };
    let provider = &mut providers[index];
    provider.certificates.push(certificate.to_owned());
    provider
}

/// `text` as a valid certkeeper name (letters, digits, '.', '_', '-'), if anything is left.
fn clean_name(text: &str) -> Option<String> {
    let cleaned = sanitized_name(text);
    CertName::new(&cleaned).is_ok().then_some(cleaned)
}

/// `text` in certkeeper's name alphabet: leading dots dropped, any other character replaced
/// by `_`, cut to [`CertName::MAX_LEN`].
fn sanitized_name(text: &str) -> String {
    text.trim_start_matches('.')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(CertName::MAX_LEN)
        .collect()
}

/// Write the inventory for `plan`.
#[must_use]
pub fn render(source: &Source, plan: &Plan) -> Rendered {
    let mut text = String::new();
    let mut to_fill = Vec::new();
    let mut warnings = Vec::new();
    comment(
        &mut text,
        &format!(
            "certkeeper inventory imported from certbot's {} by `certkeeper import-certbot`.\n\
             Review it, fill in every FILL-ME, then run `certkeeper check`. See\n\
             /usr/share/doc/certkeeper/examples/certkeeper.toml (or config/certkeeper.toml in\n\
             certkeeper's sources) for every key.",
            source.certbot_dir
        ),
    );
    line(&mut text, "");
    comment(
        &mut text,
        "The lineages below were adopted into this state directory: live/NAME/ holds the\n\
         certificates certbot issued, and certkeeper renews them when they are due.",
    );
    line(
        &mut text,
        &format!("state_dir = {}", toml_string(&source.state_dir)),
    );
    line(&mut text, "");

    line(&mut text, "[http01]");
    let ports = if plan.http01_ports.is_empty() {
        vec![80]
    } else {
        plan.http01_ports.clone()
    };
    if !plan.served_by_web_server.is_empty() {
        comment(
            &mut text,
            &format!(
                "certbot validated {} through a web server, which owns port 80. certkeeper\n\
                 answers HTTP-01 itself: listen on another port and have the web server pass\n\
                 /.well-known/acme-challenge/ to it, for nginx:\n\
                 \x20   location /.well-known/acme-challenge/ {{ proxy_pass http://127.0.0.1:8402; }}\n\
                 with listen = [\"127.0.0.1:8402\"] here.",
                plan.served_by_web_server.join(", ")
            ),
        );
        warnings.push(format!(
            "{}: certbot validated through a web server; certkeeper's HTTP-01 listener needs \
             port 80 or a proxy from the web server (see the [http01] comment)",
            plan.served_by_web_server.join(", ")
        ));
    }
    if !plan.uses_embedded_responder {
        comment(
            &mut text,
            "No imported certificate is answered by this listener: they use a webroot or DNS-01.",
        );
    }
    let listen: Vec<String> = ports
        .iter()
        .map(|port| toml_string(&format!("[::]:{port}")))
        .collect();
    line(&mut text, &format!("listen = [{}]", listen.join(", ")));

    for ca in &plan.cas {
        line(&mut text, "");
        line(&mut text, "[[ca]]");
        line(&mut text, &format!("name = {}", toml_string(&ca.name)));
        line(
            &mut text,
            &format!("directory = {}", toml_string(&ca.directory)),
        );
        if ca.eab {
            comment(
                &mut text,
                "certbot does not keep External Account Binding credentials. Fill in the key id\n\
                 and put the HMAC key in a file (chmod 600), or replace eab_hmac_key_file with\n\
                 eab_hmac_key_env or eab_hmac_key_credential. Remove both lines if this CA does\n\
                 not use EAB.",
            );
            line(&mut text, &format!("eab_kid = {}", toml_string(FILL_ME)));
            line(
                &mut text,
                &format!("eab_hmac_key_file = {}", toml_string(FILL_ME)),
            );
            to_fill.push(format!(
                "eab_kid and eab_hmac_key_file of [[ca]] {:?} ({})",
                ca.name, ca.directory
            ));
        }
        comment(
            &mut text,
            "Agreed when certbot registered its account with this CA.",
        );
        line(&mut text, "terms_of_service_agreed = true");
        if !ca.contact.is_empty() {
            let contacts: Vec<String> = ca.contact.iter().map(|c| toml_string(c)).collect();
            line(&mut text, &format!("contact = [{}]", contacts.join(", ")));
        }
    }

    for provider in &plan.dns_providers {
        line(&mut text, "");
        render_provider(&mut text, provider, &mut warnings);
    }

    for cert in &plan.certificates {
        line(&mut text, "");
        line(&mut text, "[[certificate]]");
        comment(
            &mut text,
            &format!(
                "From certbot's {}/renewal/{}.conf.",
                source.certbot_dir, cert.certbot_name
            ),
        );
        for note in &cert.notes {
            comment(&mut text, &format!("NOTE: {note}"));
            warnings.push(format!("{}: {note}", cert.name));
        }
        line(&mut text, &format!("name = {}", toml_string(&cert.name)));
        line(&mut text, &format!("ca = {}", toml_string(&cert.ca)));
        let domains: Vec<String> = cert.domains.iter().map(|d| toml_string(d)).collect();
        line(&mut text, &format!("domains = [{}]", domains.join(", ")));
        line(
            &mut text,
            &format!(
                "key_type = {}",
                toml_string(cert.key_type.unwrap_or_default().as_str())
            ),
        );
        if let Some(order_id) = &cert.order_id {
            line(&mut text, &format!("order_id = {}", toml_string(order_id)));
        }
        if let Some(action) = cert.action {
            line(
                &mut text,
                &format!("action = {}", toml_string(action.as_str())),
            );
        }
        render_challenge(&mut text, cert, &mut to_fill);
        if let Some(renew_before) = &cert.renew_before {
            comment(&mut text, "certbot's renew_before_expiry.");
            line(
                &mut text,
                &format!("renew_before = {}", toml_string(renew_before)),
            );
        }
        if let Some(profile) = &cert.profile {
            comment(&mut text, &format!("certbot's {}.", profile.key()));
            line(
                &mut text,
                &format!("profile = {}", toml_string(&profile.name)),
            );
        }
        if let Some(chain) = &cert.preferred_chain {
            comment(&mut text, "certbot's preferred_chain.");
            line(
                &mut text,
                &format!("preferred_chain = {}", toml_string(chain)),
            );
        }
        if cert.reuse_key {
            comment(
                &mut text,
                "certbot's reuse_key: the live key is kept across renewals.",
            );
            line(&mut text, "reuse_key = true");
        }
        if !cert.hooks.is_empty() {
            comment(
                &mut text,
                "certbot's hooks for this lineage, run by /bin/sh -c as certbot ran them. Under\n\
                 systemd they run as the certkeeper user, who cannot `systemctl reload` a server:\n\
                 use a reload target writing /run/certkeeper/reload/UNIT instead (README).",
            );
            for (key, hook) in [
                ("pre_hook", &cert.hooks.pre),
                ("deploy_hook", &cert.hooks.deploy),
                ("post_hook", &cert.hooks.post),
            ] {
                if let Some(command) = hook {
                    line(&mut text, &format!("{key} = {}", toml_string(command)));
                }
            }
            warnings.push(format!(
                "{}: certbot's hooks are carried over as pre_hook/deploy_hook/post_hook; under \
                 systemd they run as the certkeeper user, not root",
                cert.name
            ));
        }
    }

    if !source.directory_hooks.is_empty() {
        line(&mut text, "");
        comment(
            &mut text,
            &format!(
                "certbot also ran these hook programs for every lineage:\n{}\n\
                 certkeeper does not run them: add what they do as deploy_hook (or as\n\
                 deploy_hook in [hooks], for every certificate).",
                source
                    .directory_hooks
                    .iter()
                    .map(|hook| format!("    {hook}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        );
        warnings.push(format!(
            "certbot's renewal-hooks directories hold {}; certkeeper does not run them",
            source.directory_hooks.join(", ")
        ));
    }

    Rendered {
        text,
        to_fill,
        warnings,
    }
}

/// Append `content` and a newline.
fn line(text: &mut String, content: &str) {
    text.push_str(content);
    text.push('\n');
}

/// Append `content` as `# ` comment lines.
fn comment(text: &mut String, content: &str) {
    for part in content.lines() {
        if part.is_empty() {
            text.push_str("#\n");
        } else {
            let _ = writeln!(text, "# {part}");
        }
    }
}

/// A certificate's challenge keys (nothing for the embedded responder).
fn render_challenge(text: &mut String, cert: &PlannedCertificate, to_fill: &mut Vec<String>) {
    match &cert.challenge {
        PlannedChallenge::Embedded => {}
        PlannedChallenge::Webroot(path) => {
            comment(
                text,
                "certbot's webroot: certkeeper writes .well-known/acme-challenge/TOKEN below it, as\n\
                 the certkeeper user (certbot wrote as root): let that user write there and, under\n\
                 systemd, add ReadWritePaths= for it in a drop-in (`systemctl edit certkeeper`).",
            );
            line(text, &format!("webroot = {}", toml_string(path)));
        }
        PlannedChallenge::WebrootToFill(reason) => {
            comment(text, &format!("FILL-ME: {}", wrap(reason)));
            line(text, &format!("webroot = {}", toml_string(FILL_ME)));
            to_fill.push(format!(
                "webroot of [[certificate]] {:?}: {reason}",
                cert.name
            ));
        }
        PlannedChallenge::Dns(provider) => {
            line(text, "challenge = \"dns-01\"");
            line(text, &format!("dns = {}", toml_string(provider)));
        }
        PlannedChallenge::DnsToFill(reason) => {
            comment(text, &format!("FILL-ME: {}", wrap(reason)));
            line(text, "challenge = \"dns-01\"");
            line(text, &format!("dns = {}", toml_string(FILL_ME)));
            to_fill.push(format!("dns of [[certificate]] {:?}: {reason}", cert.name));
        }
    }
}

/// A `[dns.NAME]` table.
fn render_provider(text: &mut String, provider: &PlannedDnsProvider, warnings: &mut Vec<String>) {
    line(text, &format!("[dns.{}]", provider.name));
    let users = provider.certificates.join(", ");
    match &provider.kind {
        PlannedDnsKind::Rfc2136 {
            credentials_file,
            server,
            key_name,
            algorithm,
            sign_query,
            propagation_seconds,
        } => {
            comment(
                text,
                &format!(
                    "certbot's dns-rfc2136 plugin with {credentials_file}, for {users}:\n\
                     dns_rfc2136_server, _port, _name and _algorithm are carried over."
                ),
            );
            line(text, "type = \"rfc2136\"");
            line(
                text,
                &format!("server = {}", toml_string(&server.to_string())),
            );
            line(text, &format!("key_name = {}", toml_string(key_name)));
            line(
                text,
                &format!("algorithm = {}", toml_string(algorithm.as_str())),
            );
            comment(
                text,
                &format!(
                    "The TSIG secret stays in certbot's file: certkeeper reads its {SECRET_KEY} line,\n\
                     and this inventory holds no copy. Under systemd certkeeper runs as the\n\
                     certkeeper user, who cannot read that root-only file: load it as a credential\n\
                     in a drop-in (`systemctl edit certkeeper`),\n\
                     \x20   LoadCredential=certbot-{name}:{credentials_file}\n\
                     and replace secret_file below with secret_credential = \"certbot-{name}\"\n\
                     (keep secret_ini_key).",
                    name = provider.name
                ),
            );
            line(
                text,
                &format!("secret_file = {}", toml_string(credentials_file)),
            );
            line(
                text,
                &format!("secret_ini_key = {}", toml_string(SECRET_KEY)),
            );
            warnings.push(format!(
                "[dns.{}] reads its TSIG secret from {credentials_file}; under systemd, load that \
                 file as a credential (see the comment there)",
                provider.name
            ));
            if *sign_query {
                let note = "certbot signed its SOA queries (dns_rfc2136_sign_query); certkeeper's are not \
                            signed, so if the server answers only signed queries, set zone = \"...\" \
                            to the zone to update, which skips those queries";
                comment(text, &format!("NOTE: {}", wrap(note)));
                warnings.push(format!("[dns.{}]: {note}", provider.name));
            }
            let seconds = *propagation_seconds;
            comment(
                text,
                &format!(
                    "certbot waited {seconds} seconds before asking the CA; certkeeper waits until every\n\
                     authoritative server of the zone answers with the record (propagation = \"check\")."
                ),
            );
            if seconds > DEFAULT_PROPAGATION_TIMEOUT.as_secs() {
                line(text, &format!("propagation_timeout = \"{seconds}s\""));
            }
        }
        PlannedDnsKind::Hook { auth, cleanup } => {
            comment(
                text,
                &format!(
                    "certbot's manual hooks, for {users}. They run unchanged: certkeeper calls this\n\
                     command with `present` or `cleanup` (and FQDN VALUE) and sets certbot's\n\
                     CERTBOT_DOMAIN, CERTBOT_VALIDATION, CERTBOT_ALL_DOMAINS,\n\
                     CERTBOT_REMAINING_CHALLENGES and, for cleanup, CERTBOT_AUTH_OUTPUT. They run as\n\
                     the certkeeper user (certbot ran them as root)."
                ),
            );
            line(text, "type = \"hook\"");
            line(
                text,
                &format!(
                    "command = {}",
                    toml_string(&manual_hook_command(auth, cleanup.as_deref()))
                ),
            );
            comment(
                text,
                "certbot gave the hooks all the time they took and checked nothing itself: the auth\n\
                 hook waits until the record is visible, as certbot asks of it.",
            );
            line(
                text,
                &format!("timeout = {}", toml_string(MANUAL_HOOK_TIMEOUT)),
            );
            line(text, "propagation = \"none\"");
            comment(
                text,
                "certbot's scripts write _acme-challenge.$CERTBOT_DOMAIN themselves, so certkeeper\n\
                 looks up no CNAME for them (certbot did not either).",
            );
            line(text, "follow_cname = false");
            warnings.push(format!(
                "[dns.{}] runs certbot's manual hooks as the certkeeper user, not root",
                provider.name
            ));
        }
    }
    for note in &provider.notes {
        comment(text, &format!("NOTE: {}", wrap(note)));
        warnings.push(format!("[dns.{}]: {note}", provider.name));
    }
}

/// The hook provider's shell command: `present` runs certbot's auth hook, `cleanup` its
/// cleanup hook (nothing without one), each as certbot ran it.
fn manual_hook_command(auth: &str, cleanup: Option<&str>) -> String {
    let cleanup = cleanup.map_or_else(|| "exit 0".to_owned(), exec);
    format!(
        "case \"$1\" in present) {} ;; cleanup) {cleanup} ;; *) exit 2 ;; esac",
        exec(auth)
    )
}

/// `exec HOOK` when the hook is one simple command, which the `case` line runs exactly as
/// `sh -c HOOK` did for certbot; otherwise `exec /bin/sh -c 'HOOK'`, so that `;`, `&&`,
/// pipes, redirections, `$` and `#` mean what they meant (and the case's own `$1`, `;;` and
/// `esac` stay out of the hook's way).
fn exec(hook: &str) -> String {
    // `exec NAME=VALUE cmd` would run a program called `NAME=VALUE`.
    let assignment = hook
        .split_whitespace()
        .next()
        .is_some_and(|word| word.contains('='));
    let simple = !hook.trim().is_empty()
        && !assignment
        && !hook.contains([
            ';', '&', '|', '<', '>', '(', ')', '$', '`', '\\', '#', '{', '}', '\n', '\r',
        ]);
    if simple {
        format!("exec {}", hook.trim())
    } else {
        format!("exec /bin/sh -c '{}'", hook.replace('\'', "'\\''"))
    }
}

/// `text` broken into lines of at most about 90 characters, for comments.
fn wrap(text: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for word in text.split(' ') {
        if width > 0 && width + 1 + word.len() > 90 {
            out.push('\n');
            width = 0;
        } else if width > 0 {
            out.push(' ');
            width += 1;
        }
        out.push_str(word);
        width += word.len();
    }
    out
}

/// certbot's lineage name if certkeeper accepts it, else a cleaned-up one (with a note).
fn lineage_name(certbot: &str, notes: &mut Vec<String>) -> String {
    if CertName::new(certbot).is_ok() {
        return certbot.to_owned();
    }
    let mut cleaned = sanitized_name(certbot);
    if cleaned.is_empty() {
        cleaned = "lineage".to_owned();
    }
    notes.push(format!(
        "certbot's lineage name {certbot:?} is not a valid certkeeper name; renamed to {cleaned:?}"
    ));
    cleaned
}

/// `name`, or `name-2`, `name-3`... when taken; records the result as taken.
fn unique(name: &str, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = name.to_owned();
    let mut counter = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}-{counter}");
        counter += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// A readable `[[ca]]` name for a directory URL: `letsencrypt`, `letsencrypt-staging`,
/// `digicert`, else the host (`acme.example.net`), made unique against `taken`.
#[must_use]
pub fn ca_name(directory: &str, taken: &[&str]) -> String {
    let host = url::Url::parse(directory)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default();
    let base = if host.ends_with("api.letsencrypt.org") {
        if host.contains("staging") {
            "letsencrypt-staging".to_owned()
        } else {
            "letsencrypt".to_owned()
        }
    } else if host.contains("digicert") {
        "digicert".to_owned()
    } else {
        let cleaned: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            .collect();
        if CaName::new(&cleaned).is_ok() {
            cleaned
        } else {
            "ca".to_owned()
        }
    };
    let mut taken: BTreeSet<String> = taken.iter().map(|name| (*name).to_owned()).collect();
    unique(&base, &mut taken)
}

/// Whether a CA needs External Account Binding. Only Let's Encrypt is known not to; for
/// every other CA the placeholders are written, with a note to remove them when unused.
fn needs_eab(directory: &str) -> bool {
    !url::Url::parse(directory)
        .ok()
        .and_then(|url| {
            url.host_str()
                .map(|host| host.ends_with("api.letsencrypt.org"))
        })
        .unwrap_or(false)
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::read_leaf;

    fn fixture(name: &str, conf: &str, cert: &[u8], contact: &[&str]) -> Imported {
        let lineage = Lineage::from_renewal_conf(name, conf).expect("fixture parses");
        let certificate = read_leaf(cert).expect("fixture certificate");
        let challenge =
            crate::challenge::decide(&lineage, &certificate.dns_names, None).expect("a challenge");
        Imported {
            lineage,
            certificate,
            contact: contact.iter().map(|c| (*c).to_owned()).collect(),
            challenge,
        }
    }

    fn fixtures() -> Vec<Imported> {
        vec![
            fixture(
                "example.com",
                include_str!("../tests/fixtures/renewal/example.com.conf"),
                include_bytes!("../tests/fixtures/live/example.com/cert.pem"),
                &["mailto:ops@example.com"],
            ),
            fixture(
                "shop",
                include_str!("../tests/fixtures/renewal/shop.conf"),
                include_bytes!("../tests/fixtures/live/shop/cert.pem"),
                &[],
            ),
        ]
    }

    fn source() -> Source {
        Source {
            certbot_dir: "/etc/letsencrypt".to_owned(),
            state_dir: "/var/lib/certkeeper".to_owned(),
            directory_hooks: vec!["/etc/letsencrypt/renewal-hooks/deploy/nginx".to_owned()],
        }
    }

    #[test]
    fn plans_one_ca_per_directory_with_digicert_order_settings() {
        let plan = plan(&fixtures());
        let cas: Vec<(&str, bool)> = plan
            .cas
            .iter()
            .map(|ca| (ca.name.as_str(), ca.eab))
            .collect();
        assert_eq!(cas, [("letsencrypt", false), ("digicert", true)]);
        assert_eq!(plan.cas[0].contact, ["mailto:ops@example.com"]);
        let shop = &plan.certificates[1];
        assert_eq!(shop.ca, "digicert");
        assert_eq!(shop.order_id.as_deref(), Some("123456789"));
        assert_eq!(shop.action, Some(LifecycleAction::Renew));
        assert_eq!(shop.key_type, Some(KeyType::Rsa2048));
        assert_eq!(
            shop.domains,
            ["shop.example.com", "checkout.example.com"],
            "domains come from the certificate"
        );
        assert_eq!(plan.http01_ports, [80]);
        assert_eq!(
            shop.challenge,
            PlannedChallenge::Webroot("/var/www/html".to_owned())
        );
        assert!(plan.served_by_web_server.is_empty());
        assert!(plan.uses_embedded_responder, "example.com is standalone");
    }

    #[test]
    fn renders_placeholders_notes_and_hooks() {
        let rendered = render(&source(), &plan(&fixtures()));
        let text = &rendered.text;
        for expected in [
            "state_dir = \"/var/lib/certkeeper\"\n",
            "listen = [\"[::]:80\"]\n",
            "name = \"digicert\"\ndirectory = \"https://one.digicert.com/mpki/api/v1/acme/v2/directory\"\n",
            "eab_kid = \"FILL-ME\"\neab_hmac_key_file = \"FILL-ME\"\n",
            "domains = [\"shop.example.com\", \"checkout.example.com\"]\nkey_type = \"rsa2048\"\norder_id = \"123456789\"\naction = \"renew\"\n",
            "renew_before = \"30d\"\n",
            "deploy_hook = \"/usr/local/bin/deploy-shop.sh \\\"shop, checkout\\\"\"\n",
            "pre_hook = \"systemctl stop nginx\"\ndeploy_hook = \"systemctl reload nginx\"\npost_hook = \"systemctl start nginx\"\n",
            "#     /etc/letsencrypt/renewal-hooks/deploy/nginx\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(rendered.to_fill.len(), 1, "{:?}", rendered.to_fill);
        assert!(rendered.to_fill[0].contains("digicert"));
        // Let's Encrypt needs no EAB: exactly one pair of placeholders.
        assert_eq!(text.matches("FILL-ME\"").count(), 2);
        assert!(text.contains("webroot = \"/var/www/html\"\n"), "{text}");
    }

    #[test]
    fn certbot_profiles_become_the_certificates_profile() {
        let mut imported = fixtures();
        imported[0].lineage.profile = Some(RequestedProfile {
            name: "shortlived".to_owned(),
            required: true,
        });
        let plan = plan(&imported);
        assert_eq!(
            plan.certificates[0]
                .profile
                .as_ref()
                .map(|p| p.name.as_str()),
            Some("shortlived")
        );
        assert_eq!(plan.certificates[1].profile, None);
        let text = render(&source(), &plan).text;
        assert!(
            text.contains("# certbot's required_profile.\nprofile = \"shortlived\"\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("profile = ").count(),
            1,
            "only the lineage with a profile gets one"
        );
    }

    #[test]
    fn names_are_valid_and_unique() {
        let mut notes = Vec::new();
        assert_eq!(lineage_name("example.com", &mut notes), "example.com");
        assert!(notes.is_empty());
        assert_eq!(lineage_name("my site", &mut notes), "my_site");
        assert_eq!(notes.len(), 1);
        assert_eq!(
            ca_name("https://acme-v02.api.letsencrypt.org/directory", &[]),
            "letsencrypt"
        );
        assert_eq!(
            ca_name(
                "https://acme-staging-v02.api.letsencrypt.org/directory",
                &[]
            ),
            "letsencrypt-staging"
        );
        assert_eq!(
            ca_name("https://localhost:14000/dir", &["localhost"]),
            "localhost-2"
        );
        assert_eq!(
            ca_name("https://acme.zerossl.com/v2/DV90", &[]),
            "acme.zerossl.com"
        );
    }

    #[test]
    fn manual_hooks_run_unchanged_behind_one_command() {
        assert_eq!(
            manual_hook_command("/etc/letsencrypt/auth.sh --zone 'a b'", Some("/x/cleanup")),
            "case \"$1\" in present) exec /etc/letsencrypt/auth.sh --zone 'a b' ;; cleanup) exec /x/cleanup ;; *) exit 2 ;; esac"
        );
        assert_eq!(
            manual_hook_command("cd /x && ./it's.sh # note", None),
            "case \"$1\" in present) exec /bin/sh -c 'cd /x && ./it'\\''s.sh # note' ;; cleanup) exit 0 ;; *) exit 2 ;; esac"
        );
        assert_eq!(
            exec("ZONE=example.com /x/auth"),
            "exec /bin/sh -c 'ZONE=example.com /x/auth'"
        );
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(toml_string("\u{1}"), "\"\\u0001\"");
    }
}

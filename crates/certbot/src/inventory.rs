//! The certkeeper inventory equivalent to a set of certbot lineages: planning (which `[[ca]]`
//! entries, which names) and the TOML text itself.
//!
//! The text is written by hand rather than serialized, because it is meant to be read and
//! finished by a person: every setting that could not be carried over is a comment next to
//! the entry it concerns, and every value the operator must supply is the literal
//! placeholder [`FILL_ME`], which `certkeeper check` refuses (the HMAC key file
//! `FILL-ME` does not exist), so an unfinished inventory cannot run by accident.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use certkeeper_core::{CaName, CertName, KeyType, LifecycleAction};

use crate::certificate::CertificateFacts;
use crate::lineage::{Hooks, Lineage};

/// The placeholder for values certbot does not keep (EAB credentials).
pub const FILL_ME: &str = "FILL-ME";

/// One lineage to import: its renewal settings, its live certificate and its account's
/// contacts.
#[derive(Debug, Clone)]
pub struct Imported {
    pub lineage: Lineage,
    pub certificate: CertificateFacts,
    pub contact: Vec<String>,
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
    pub authenticator: Option<String>,
    pub webroot: Vec<String>,
    pub hooks: Hooks,
    /// Comments for this entry.
    pub notes: Vec<String>,
}

/// Everything to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub cas: Vec<PlannedCa>,
    pub certificates: Vec<PlannedCertificate>,
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

        match lineage.authenticator.as_deref() {
            None | Some("standalone") => {
                ports.insert(lineage.http01_port.unwrap_or(80));
            }
            Some(other) => {
                served_by_web_server.push(name.clone());
                let webroot = if lineage.webroot.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", lineage.webroot.join(", "))
                };
                notes.push(format!(
                    "certbot validated this lineage with its {other} authenticator{webroot}; \
                     certkeeper answers HTTP-01 itself (see [http01] above)"
                ));
            }
        }

        certificates.push(PlannedCertificate {
            name,
            certbot_name: lineage.name.clone(),
            ca: cas[ca_index].name.clone(),
            domains: item.certificate.dns_names.clone(),
            key_type,
            order_id: lineage.server.order_id.clone(),
            action: lineage.server.action,
            renew_before: lineage.renew_before.clone(),
            authenticator: lineage.authenticator.clone(),
            webroot: lineage.webroot.clone(),
            hooks: lineage.hooks.clone(),
            notes,
        });
    }
    Plan {
        cas,
        certificates,
        http01_ports: ports.into_iter().collect(),
        served_by_web_server,
    }
}

/// Write the inventory for `plan`.
#[must_use]
pub fn render(source: &Source, plan: &Plan) -> Rendered {
    let mut text = String::new();
    let mut to_fill = Vec::new();
    let mut warnings = Vec::new();
    let line = |text: &mut String, content: &str| {
        text.push_str(content);
        text.push('\n');
    };
    let comment = |text: &mut String, content: &str| {
        for part in content.lines() {
            if part.is_empty() {
                text.push_str("#\n");
            } else {
                let _ = writeln!(text, "# {part}");
            }
        }
    };

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
        if let Some(renew_before) = &cert.renew_before {
            comment(&mut text, "certbot's renew_before_expiry.");
            line(
                &mut text,
                &format!("renew_before = {}", toml_string(renew_before)),
            );
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

/// certbot's lineage name if certkeeper accepts it, else a cleaned-up one (with a note).
fn lineage_name(certbot: &str, notes: &mut Vec<String>) -> String {
    if CertName::new(certbot).is_ok() {
        return certbot.to_owned();
    }
    let mut cleaned: String = certbot
        .trim_start_matches('.')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(CertName::MAX_LEN)
        .collect();
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
        Imported {
            lineage: Lineage::from_renewal_conf(name, conf).expect("fixture parses"),
            certificate: read_leaf(cert).expect("fixture certificate"),
            contact: contact.iter().map(|c| (*c).to_owned()).collect(),
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
        assert_eq!(plan.served_by_web_server, ["shop"]);
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
        assert!(
            rendered
                .warnings
                .iter()
                .any(|warning| warning.contains("web server"))
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
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(toml_string("\u{1}"), "\"\\u0001\"");
    }
}

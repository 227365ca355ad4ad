//! Every TOML example in the README is a configuration certkeeper accepts, so the README
//! cannot drift from the code; the "Challenges" section shows every setup, and its webroot
//! example is `config/webroot.toml`'s.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use certkeeper_config::{Environment, load, load_str};
use certkeeper_core::Inventory;
use certkeeper_core::challenge::{ChallengeSpec, DnsProviderKind};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
const WEBROOT_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/webroot.toml");

fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Every TOML block of the README, loaded as `readme-N.toml` in a directory that holds the
/// secrets the examples name: `digicert.hmac` next to them (`eab_hmac_key_file`), and the
/// systemd credential `tsig-secret` (`secret_credential`).
fn readme_inventories() -> Vec<(String, Inventory)> {
    let readme = fs::read_to_string(README).expect("README.md");
    let blocks = toml_blocks(&readme);
    assert!(
        !blocks.is_empty(),
        "the README shows at least one inventory"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let hmac = dir.path().join("digicert.hmac");
    fs::write(&hmac, "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw\n").expect("write");
    fs::set_permissions(&hmac, fs::Permissions::from_mode(0o600)).expect("chmod");
    let credentials = dir.path().join("credentials");
    fs::create_dir(&credentials).expect("credentials directory");
    // What `tsig-keygen -a hmac-sha256 certkeeper` puts between the quotes.
    let tsig = credentials.join("tsig-secret");
    fs::write(&tsig, "dGhpcy1pcy1hLXRzaWctc2VjcmV0LWZvci10ZXN0cw==\n").expect("write");
    fs::set_permissions(&tsig, fs::Permissions::from_mode(0o400)).expect("chmod");
    // The "Notifications" section's SMTP password (`password_credential`).
    let smtp = credentials.join("smtp-password");
    fs::write(&smtp, "not-a-real-password\n").expect("write");
    fs::set_permissions(&smtp, fs::Permissions::from_mode(0o400)).expect("chmod");
    // The "Fleet mode" section's database password and fleet key (`openssl rand -hex 32`).
    for (name, text) in [
        ("db-password", "not-a-real-password\n"),
        (
            "fleet-key",
            "6a9f1c0b3e7d5a2f8c4e6b1d9a3f7c5e2b8d4a6f1c3e5b7d9f0a2c4e6b8d0f1a\n",
        ),
    ] {
        let path = credentials.join(name);
        fs::write(&path, text).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
    }
    let env = Environment::empty()
        .with_credentials_directory(&credentials)
        // `key_group = "ssl-cert"`: Debian's group for reading TLS keys.
        .with_group("ssl-cert", 103);

    let mut inventories = Vec::new();
    for (index, block) in blocks.into_iter().enumerate() {
        let path = dir.path().join(format!("readme-{index}.toml"));
        let loaded = load_str(&block, &path, &env).unwrap_or_else(|errors| {
            panic!("README example {index} is invalid:\n{errors}\n{block}")
        });
        assert!(
            loaded.warnings.is_empty(),
            "README example {index} warns: {:?}",
            loaded.warnings
        );
        assert!(!loaded.inventory.certificates.is_empty());
        inventories.push((block, loaded.inventory));
    }
    inventories
}

#[test]
fn readme_examples_load() {
    readme_inventories();
}

/// The "Challenges" section shows an inventory for each setup: the embedded listener, a
/// webroot, the proxy setup's loopback listener, and DNS-01 through RFC 2136, through a hook
/// and with CNAME delegation.
#[test]
fn readme_shows_every_challenge_setup() {
    let inventories = readme_inventories();
    let answers = |pred: &dyn Fn(&Inventory, &ChallengeSpec) -> bool| {
        inventories.iter().any(|(_, inventory)| {
            inventory
                .certificates
                .iter()
                .any(|spec| pred(inventory, inventory.challenge(&spec.name)))
        })
    };
    let dns_kind = |inventory: &Inventory, challenge: &ChallengeSpec, rfc2136: bool| match challenge
    {
        ChallengeSpec::Dns01 { provider } => {
            let kind = &inventory.dns_provider(provider).expect("provider").kind;
            matches!(kind, DnsProviderKind::Rfc2136(_)) == rfc2136
        }
        ChallengeSpec::Http01 { .. } => false,
    };
    assert!(
        answers(&|_, c| matches!(c, ChallengeSpec::Http01 { webroot: Some(_) })),
        "a webroot"
    );
    assert!(
        answers(&|inventory, c| {
            matches!(c, ChallengeSpec::Http01 { webroot: None })
                && inventory.http01.listen
                    == ["127.0.0.1:8080"
                        .parse::<std::net::SocketAddr>()
                        .expect("address")]
        }),
        "the proxy setup's listener, where NGINX_PROXY_LOCATION passes validations"
    );
    assert!(answers(&|i, c| dns_kind(i, c, true)), "RFC 2136");
    assert!(answers(&|i, c| dns_kind(i, c, false)), "a hook provider");
    assert!(
        inventories
            .iter()
            .any(|(block, _)| block.contains("follow_cname = true")
                && block.contains("resolvers = ")
                && block.contains("propagation_timeout = ")),
        "CNAME delegation and propagation"
    );
    assert!(
        answers(&|i, c| {
            matches!(c, ChallengeSpec::Dns01 { .. })
                && i.certificates.iter().any(|spec| {
                    spec.domains
                        .iter()
                        .any(|domain| domain.as_str().starts_with("*."))
                })
        }),
        "a wildcard"
    );
}

/// The README's webroot example is `config/webroot.toml` without its comments: the same
/// certificates answering the same way.
#[test]
fn readme_webroot_example_is_the_shipped_one() {
    let shipped = load(Path::new(WEBROOT_EXAMPLE), &Environment::empty())
        .unwrap_or_else(|errors| panic!("{errors}"))
        .inventory;
    let summary = |inventory: &Inventory| -> Vec<(String, Vec<String>, ChallengeSpec)> {
        inventory
            .certificates
            .iter()
            .map(|spec| {
                (
                    spec.name.to_string(),
                    spec.domains.iter().map(|d| d.as_str().to_owned()).collect(),
                    inventory.challenge(&spec.name).clone(),
                )
            })
            .collect()
    };
    let readme: Vec<_> = readme_inventories()
        .into_iter()
        .filter(|(block, _)| block.contains("[http01]\nwebroot = "))
        .map(|(_, inventory)| summary(&inventory))
        .collect();
    assert_eq!(readme, [summary(&shipped)]);
}

/// The "Notifications" section shows an e-mail target with STARTTLS and a login, and a Slack
/// webhook, and both load.
#[test]
fn readme_shows_an_email_and_a_slack_notification() {
    use certkeeper_core::notify::{NotifyTarget, SmtpTls, WebhookFormat};
    let inventories = readme_inventories();
    let targets = || {
        inventories
            .iter()
            .flat_map(|(_, inventory)| inventory.notify.iter().map(|spec| &spec.target))
    };
    assert!(
        targets().any(|target| matches!(target, NotifyTarget::Email(email)
            if matches!(&email.transport, certkeeper_core::notify::EmailTransport::Smtp(smtp)
                if smtp.tls == SmtpTls::Starttls && smtp.credentials.is_some()))),
        "an e-mail target with STARTTLS and a login"
    );
    assert!(
        targets().any(|target| matches!(target, NotifyTarget::Webhook(hook)
            if hook.format == WebhookFormat::Slack)),
        "a Slack webhook"
    );
}

/// The "Fleet mode" section shows a node of a fleet, and it loads.
#[test]
fn readme_shows_a_fleet_node() {
    let inventories = readme_inventories();
    let cluster = inventories
        .iter()
        .find_map(|(_, inventory)| inventory.cluster.as_ref())
        .expect("a [cluster] example");
    assert_eq!(cluster.node.as_deref(), Some("web-1"));
    assert!(cluster.password.is_some(), "the password from a credential");
    assert_eq!(cluster.fleet_key.expose().len(), 32);
}

//! The example configuration shipped in `config/certkeeper.toml` loads, means what its
//! comments say, and documents every key of the contract.

use std::path::Path;
use std::time::{Duration, SystemTime};

use certkeeper_config::{Environment, load};
use certkeeper_core::inventory::DEFAULT_MAX_CONCURRENT;
use certkeeper_core::{AdminSpec, DomainName, Hook, HookCommand, KeyType, LifecycleAction};
use jiff::Timestamp;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/certkeeper.toml");

/// The key the example's `eab_hmac_key_env` points at: base64url, unpadded, as
/// CertCentral shows it.
const HMAC_KEY: &str = "dGhpcy1pcy1hLXRlc3QtaG1hYy1rZXktb2YtMzItYnl0";

#[test]
fn example_config_is_valid_and_means_what_it_says() {
    let env = Environment::empty().with_var("CERTKEEPER_DIGICERT_HMAC", HMAC_KEY);
    let loaded = load(Path::new(EXAMPLE), &env).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;

    assert_eq!(inventory.state_dir, Path::new("/var/lib/certkeeper"));
    assert_eq!(
        inventory.http01.listen,
        vec!["[::]:80".parse().expect("socket address")]
    );
    assert_eq!(inventory.max_concurrent, DEFAULT_MAX_CONCURRENT);
    assert_eq!(
        inventory.admin,
        Some(AdminSpec {
            listen: "127.0.0.1:9101".parse().expect("socket address")
        })
    );
    // conf.d/ does not exist next to the example: nothing is included, but it is watched.
    let example = Path::new(EXAMPLE);
    assert_eq!(
        inventory.watch_paths,
        [
            example.to_path_buf(),
            example.parent().expect("directory").join("conf.d")
        ]
    );

    assert_eq!(inventory.cas.len(), 1);
    let digicert = &inventory.cas[0];
    assert_eq!(digicert.name.as_str(), "digicert");
    assert_eq!(
        digicert.directory,
        "https://one.digicert.com/mpki/api/v1/acme/v2/directory"
    );
    let eab = digicert.eab.as_ref().expect("DigiCert uses EAB");
    assert_eq!(eab.kid, "a1B2c3D4e5F6g7H8");
    assert_eq!(eab.hmac_key.expose(), b"this-is-a-test-hmac-key-of-32-byt");
    assert!(digicert.terms_of_service_agreed);
    assert_eq!(digicert.contact, vec!["mailto:pki-team@example.com"]);
    assert_eq!(digicert.root_ca_file, None);
    assert_eq!(digicert.max_concurrent, Some(2));

    assert_eq!(inventory.certificates.len(), 2);
    let www = inventory.certificate("www").expect("www lineage");
    assert_eq!(www.ca.as_str(), "digicert");
    let domains: Vec<&str> = www.domains.iter().map(DomainName::as_str).collect();
    assert_eq!(domains, ["www.example.com", "example.com"]);
    assert_eq!(www.key_type, KeyType::Rsa2048);
    assert_eq!(www.order_id.as_deref(), Some("123456789"));
    assert_eq!(www.action, LifecycleAction::Renew);
    assert_eq!(www.renew_before, Some(Duration::from_secs(30 * 86_400)));
    // 02:30 Berlin time on the 1st: 01:30 UTC in winter.
    let www_window = www.schedule.window.as_ref().expect("own window");
    assert_eq!(www_window.cron.to_string(), "30 2 1 * *");
    assert_eq!(www_window.tz.iana_name(), Some("Europe/Berlin"));
    assert_eq!(
        www_window.next_start(instant("2025-01-15T12:00:00Z")),
        Some(instant("2025-02-01T01:30:00Z"))
    );
    assert_eq!(
        www.schedule.urgent_before,
        Some(Duration::from_secs(10 * 86_400))
    );

    let mail = inventory.certificate("mail").expect("mail lineage");
    assert_eq!(mail.ca.as_str(), "digicert", "the only CA is the default");
    assert_eq!(mail.domains.len(), 3);
    assert_eq!(mail.key_type, KeyType::EcdsaP256);
    assert_eq!(mail.order_id, None);
    assert_eq!(mail.action, LifecycleAction::Auto);
    assert_eq!(mail.renew_before, None);
    // The global window, 02:30 Berlin time every night.
    let mail_window = mail.schedule.window.as_ref().expect("global window");
    assert_eq!(mail_window.cron.to_string(), "30 2 * * *");
    assert_eq!(
        mail_window.next_start(instant("2025-07-10T12:00:00Z")),
        Some(instant("2025-07-11T00:30:00Z"))
    );
    assert_eq!(
        mail.schedule.urgent_before,
        Some(Duration::from_secs(7 * 86_400))
    );
}

#[test]
fn example_config_hooks_mean_what_they_say() {
    let env = Environment::empty().with_var("CERTKEEPER_DIGICERT_HMAC", HMAC_KEY);
    let inventory = load(Path::new(EXAMPLE), &env)
        .unwrap_or_else(|errors| panic!("{errors}"))
        .inventory;
    let minute = Duration::from_secs(60);
    let argv = |args: &[&str], timeout: Duration| Hook {
        command: HookCommand::Argv(args.iter().map(|arg| (*arg).to_owned()).collect()),
        timeout,
    };
    // hooks_dir is shown commented out: a missing directory would be a warning here.
    assert_eq!(inventory.hooks_dir, None);
    assert_eq!(inventory.hook_timeout, minute);

    let targets: Vec<(&str, &Hook)> = inventory
        .reload_targets
        .iter()
        .map(|target| (target.name.as_str(), &target.hook))
        .collect();
    let nginx = argv(
        &["touch", "/run/certkeeper/reload/nginx"],
        Duration::from_secs(30),
    );
    let postfix = argv(&["touch", "/run/certkeeper/reload/postfix"], minute);
    assert_eq!(targets, [("nginx", &nginx), ("postfix", &postfix)]);

    let firewall = |flag: &str| {
        argv(
            &[
                "/usr/sbin/iptables",
                flag,
                "INPUT",
                "-p",
                "tcp",
                "--dport",
                "80",
                "-j",
                "ACCEPT",
            ],
            minute,
        )
    };
    let www = &inventory.certificate("www").expect("www lineage").hooks;
    assert_eq!(www.pre, Some(firewall("-I")));
    assert_eq!(www.post, Some(firewall("-D")));
    assert_eq!(
        www.deploy,
        Some(argv(
            &[
                "install",
                "-m",
                "0640",
                "-g",
                "app",
                "/var/lib/certkeeper/live/www/fullchain.pem",
                "/srv/app/tls/fullchain.pem",
            ],
            Duration::from_secs(10),
        ))
    );
    assert_eq!(www.reload, ["nginx"], "the [hooks] default");

    let mail = &inventory.certificate("mail").expect("mail lineage").hooks;
    assert_eq!(mail.pre, Some(firewall("-I")));
    assert_eq!(mail.post, Some(firewall("-D")));
    assert_eq!(mail.deploy, None, "deploy_hook = false drops the default");
    assert_eq!(mail.reload, ["postfix"]);
}

fn instant(text: &str) -> SystemTime {
    SystemTime::try_from(text.parse::<Timestamp>().expect("timestamp")).expect("representable")
}

#[test]
fn example_config_fails_loudly_without_its_secret() {
    let errors = load(Path::new(EXAMPLE), &Environment::empty()).expect_err("no HMAC key");
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert_eq!(errors.errors[0].key, "ca[0].eab_hmac_key_env");
    assert!(
        errors.errors[0]
            .message
            .contains("CERTKEEPER_DIGICERT_HMAC is not set"),
        "{errors}"
    );
}

#[test]
fn example_config_documents_every_key() {
    let text = std::fs::read_to_string(EXAMPLE).expect("example is readable");
    let keys = [
        "state_dir",
        "include",
        "max_concurrent",
        "window",
        "timezone",
        "urgent_before",
        "[http01]",
        "listen",
        "[admin]",
        "[[ca]]",
        "name",
        "directory",
        "eab_kid",
        "eab_hmac_key_file",
        "eab_hmac_key_env",
        "eab_hmac_key_credential",
        "eab_hmac_key",
        "terms_of_service_agreed",
        "contact",
        "root_ca_file",
        "[[certificate]]",
        "ca",
        "domains",
        "key_type",
        "order_id",
        "action",
        "renew_before",
        "hooks_dir",
        "hook_timeout",
        "[hooks]",
        "pre_hook",
        "deploy_hook",
        "post_hook",
        "reload",
        "[reload.",
        "command",
        "timeout",
    ];
    for key in keys {
        let written = if key.starts_with('[') {
            key.to_owned()
        } else {
            format!("{key} = ")
        };
        assert!(
            text.contains(&written),
            "{key} is not documented in {EXAMPLE}"
        );
    }
    for key_type in KeyType::ALL {
        assert!(
            text.contains(key_type.as_str()),
            "{key_type} is not documented"
        );
    }
    for action in ["auto", "renew", "reissue", "duplicate"] {
        assert!(text.contains(action), "action {action} is not documented");
    }
    // The hook environment contract, as the core builds it.
    for variable in [
        "RENEWED_LINEAGE",
        "RENEWED_DOMAINS",
        "CERTKEEPER_NAME",
        "CERTKEEPER_DOMAINS",
        "CERTKEEPER_LIVE_DIR",
        "CERTKEEPER_CERT",
        "CERTKEEPER_KEY",
        "CERTKEEPER_FULLCHAIN",
        "CERTKEEPER_CHAIN",
        "CERTKEEPER_SERIAL",
        "CERTKEEPER_NOT_AFTER",
        "CERTKEEPER_ACTION",
        "CERTKEEPER_RENEWED",
    ] {
        assert!(
            text.contains(variable),
            "hook variable {variable} is not documented"
        );
    }
}

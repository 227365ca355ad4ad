//! The example configurations shipped in `config/` load, mean what their comments say, and
//! together document every key of the contract: `certkeeper.toml` (everything, with the
//! embedded HTTP-01 responder), `dns-01.toml` (DNS providers, wildcards) and `webroot.toml`
//! (HTTP-01 through a web server's document root) and `notify.toml` (notification targets).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use certkeeper_config::{Environment, load};
use certkeeper_core::challenge::{ChallengeSpec, DnsProviderKind, Propagation, TsigAlgorithm};
use certkeeper_core::inventory::DEFAULT_MAX_CONCURRENT;
use certkeeper_core::notify::{EmailTransport, SmtpTls, WebhookFormat};
use certkeeper_core::{
    AdminSpec, CertName, DomainName, Hook, HookCommand, KeyType, LifecycleAction,
};
use certkeeper_core::{Event, EventSet, NotifyTarget};
use jiff::Timestamp;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/certkeeper.toml");
const DNS_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/dns-01.toml");
const WEBROOT_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/webroot.toml");
const NOTIFY_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/notify.toml");
const FLEET_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/fleet.toml");

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
    assert_eq!(www.profile, None, "profile is commented out in the example");
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
fn fleet_example_is_valid_and_means_what_it_says() {
    use certkeeper_core::cluster::ClusterTls;

    let credentials = tempfile::tempdir().expect("tempdir");
    for (name, text) in [
        ("db-password", "not-a-real-password\n"),
        // `openssl rand -hex 32`
        (
            "fleet-key",
            "6a9f1c0b3e7d5a2f8c4e6b1d9a3f7c5e2b8d4a6f1c3e5b7d9f0a2c4e6b8d0f1a\n",
        ),
    ] {
        let path = credentials.path().join(name);
        std::fs::write(&path, text).expect("write credential");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o400))
            .expect("chmod");
    }
    let env = Environment::empty().with_credentials_directory(credentials.path());
    let loaded = load(Path::new(FLEET_EXAMPLE), &env).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;
    assert_eq!(inventory.certificates.len(), 1);
    let cluster = inventory.cluster.expect("[cluster]");
    assert_eq!(
        cluster.postgres.as_str(),
        "postgres://certkeeper@db.example.com:5432/certkeeper"
    );
    assert_eq!(
        cluster
            .password
            .as_ref()
            .map(certkeeper_core::Secret::expose),
        Some(b"not-a-real-password".as_slice())
    );
    assert_eq!(cluster.tls, ClusterTls::Verify);
    assert_eq!(cluster.ca_file, None);
    assert_eq!(cluster.node.as_deref(), Some("web-1"));
    assert_eq!(cluster.fleet_key.expose().len(), 32);
    assert_eq!(cluster.fleet_key.expose()[0], 0x6a);
    assert_eq!(cluster.lease, Duration::from_secs(60));
    assert_eq!(cluster.sync_interval, Duration::from_secs(300));
}

#[test]
fn every_example_config_is_loaded_by_a_test() {
    let dir = Path::new(EXAMPLE).parent().expect("config directory");
    let mut examples: Vec<String> = std::fs::read_dir(dir)
        .expect("config/ is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            path.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    examples.sort();
    assert_eq!(
        examples,
        [
            "certkeeper.toml",
            "dns-01.toml",
            "fleet.toml",
            "notify.toml",
            "webroot.toml"
        ],
        "a new example in config/ needs a test here that loads it"
    );
}

#[test]
fn dns_example_is_valid_and_means_what_it_says() {
    let credentials = tempfile::tempdir().expect("tempdir");
    let credential = credentials.path().join("tsig-secret");
    // What `tsig-keygen -a hmac-sha256 certkeeper` puts between the quotes.
    std::fs::write(
        &credential,
        "dGhpcy1pcy1hLXRzaWctc2VjcmV0LWZvci10ZXN0cw==\n",
    )
    .expect("write credential");
    std::fs::set_permissions(
        &credential,
        std::os::unix::fs::PermissionsExt::from_mode(0o400),
    )
    .expect("chmod");
    let env = Environment::empty().with_credentials_directory(credentials.path());
    let loaded = load(Path::new(DNS_EXAMPLE), &env).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;

    let challenge = |name: &str| inventory.challenge(&CertName::new(name).expect("valid name"));
    let dns01 = |provider: &str| ChallengeSpec::Dns01 {
        provider: provider.to_owned(),
    };
    let apex = inventory
        .certificate("example.com")
        .expect("example.com lineage");
    let domains: Vec<&str> = apex.domains.iter().map(DomainName::as_str).collect();
    assert_eq!(domains, ["example.com", "*.example.com"]);
    assert_eq!(
        challenge("example.com"),
        &dns01("bind"),
        "the global default"
    );
    assert_eq!(challenge("intranet"), &dns01("script"));
    assert_eq!(challenge("www"), &ChallengeSpec::Http01 { webroot: None });

    let bind = inventory.dns_provider("bind").expect("[dns.bind]");
    assert!(bind.follow_cname);
    assert_eq!(bind.propagation, Propagation::default());
    let DnsProviderKind::Rfc2136(rfc2136) = &bind.kind else {
        panic!("bind is an rfc2136 provider: {bind:?}");
    };
    assert_eq!(rfc2136.server, "192.0.2.53:53".parse().expect("address"));
    assert_eq!(rfc2136.key_name, "certkeeper");
    assert_eq!(rfc2136.algorithm, TsigAlgorithm::HmacSha256);
    assert_eq!(rfc2136.secret.expose(), b"this-is-a-tsig-secret-for-tests");
    assert_eq!(rfc2136.zone, None);
    assert_eq!(rfc2136.ttl, Duration::from_secs(60));

    let script = inventory.dns_provider("script").expect("[dns.script]");
    assert_eq!(script.propagation, Propagation::None);
    assert_eq!(
        script.kind,
        DnsProviderKind::Hook(Hook {
            command: HookCommand::Argv(vec!["/usr/local/lib/certkeeper/dns-hook".to_owned()]),
            timeout: Duration::from_secs(120),
        })
    );

    // Without the credentials directory, the secret's source is what is missing.
    let errors = load(Path::new(DNS_EXAMPLE), &Environment::empty()).expect_err("no secret");
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert_eq!(errors.errors[0].key, "dns.bind.secret_credential");
}

#[test]
fn webroot_example_is_valid_and_means_what_it_says() {
    let loaded = load(Path::new(WEBROOT_EXAMPLE), &Environment::empty())
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;
    let webroot = |name: &str| match inventory.challenge(&CertName::new(name).expect("valid")) {
        ChallengeSpec::Http01 { webroot } => webroot.clone(),
        other => panic!("{name} answers {other:?}"),
    };
    assert_eq!(webroot("www"), Some(PathBuf::from("/var/www/html")));
    assert_eq!(webroot("shop"), Some(PathBuf::from("/srv/shop/public")));
    assert_eq!(webroot("status"), None);
    assert!(inventory.challenges.dns_providers.is_empty());
}

#[test]
fn notify_example_is_valid_and_means_what_it_says() {
    let credentials = tempfile::tempdir().expect("tempdir");
    let credential = credentials.path().join("smtp-password");
    std::fs::write(&credential, "correct horse battery staple\n").expect("write credential");
    std::fs::set_permissions(
        &credential,
        std::os::unix::fs::PermissionsExt::from_mode(0o400),
    )
    .expect("chmod");
    let env = Environment::empty()
        .with_credentials_directory(credentials.path())
        .with_var("CERTKEEPER_WEBHOOK_TOKEN", "s3cr3t-t0ken");
    let loaded = load(Path::new(NOTIFY_EXAMPLE), &env).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;
    let names: Vec<&str> = inventory.notify.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["ops-mail", "local-mail", "slack", "alerting", "pager"]
    );

    let mail = inventory.notify_target("ops-mail").expect("ops-mail");
    assert_eq!(mail.events, EventSet::default());
    assert_eq!(mail.timeout, Duration::from_secs(30));
    let NotifyTarget::Email(email) = &mail.target else {
        panic!("ops-mail is e-mail: {mail:?}");
    };
    assert_eq!(email.from, "certkeeper <certkeeper@example.com>");
    assert_eq!(email.to, ["ops@example.com", "pki-team@example.com"]);
    let EmailTransport::Smtp(smtp) = &email.transport else {
        panic!("ops-mail uses SMTP: {email:?}");
    };
    assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.com", 587));
    assert_eq!(smtp.tls, SmtpTls::Starttls);
    let login = smtp.credentials.as_ref().expect("a login");
    assert_eq!(login.username, "certkeeper@example.com");
    assert_eq!(login.password.expose(), b"correct horse battery staple");

    let local = inventory.notify_target("local-mail").expect("local-mail");
    assert_eq!(local.events, EventSet::of(&[Event::Digest]));
    let NotifyTarget::Email(email) = &local.target else {
        panic!("local-mail is e-mail: {local:?}");
    };
    assert!(matches!(
        &email.transport,
        EmailTransport::Sendmail { path } if path == Path::new("/usr/sbin/sendmail")
    ));

    let slack = inventory.notify_target("slack").expect("slack");
    let NotifyTarget::Webhook(webhook) = &slack.target else {
        panic!("slack is a webhook: {slack:?}");
    };
    assert_eq!(webhook.format, WebhookFormat::Slack);
    assert!(webhook.token.is_none());
    assert!(slack.wants(Event::Renewed) && !slack.wants(Event::Digest));

    let alerting = inventory.notify_target("alerting").expect("alerting");
    let NotifyTarget::Webhook(webhook) = &alerting.target else {
        panic!("alerting is a webhook: {alerting:?}");
    };
    assert_eq!(webhook.format, WebhookFormat::Json);
    assert_eq!(
        webhook.token.as_ref().map(certkeeper_core::Secret::expose),
        Some(&b"s3cr3t-t0ken"[..])
    );

    let pager = inventory.notify_target("pager").expect("pager");
    let NotifyTarget::Command(hook) = &pager.target else {
        panic!("pager is a command: {pager:?}");
    };
    assert_eq!(
        hook.command,
        HookCommand::Argv(vec![
            "/usr/local/bin/page-oncall".to_owned(),
            "--team".to_owned(),
            "pki".to_owned()
        ])
    );
    assert_eq!(hook.timeout, Duration::from_secs(20));
    assert_eq!(pager.timeout, Duration::from_secs(20));

    // Without the credential and the variable, both secrets are reported, and neither is shown.
    let errors = load(Path::new(NOTIFY_EXAMPLE), &Environment::empty()).expect_err("no secrets");
    let keys: Vec<&str> = errors.errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["notify[0].password_credential", "notify[3].token_env"],
        "{errors}"
    );
}

#[test]
fn example_config_documents_every_key() {
    // Keys of DNS-01 and webroots are documented in their own examples.
    let text = [EXAMPLE, DNS_EXAMPLE, WEBROOT_EXAMPLE, NOTIFY_EXAMPLE]
        .map(|path| std::fs::read_to_string(path).expect("example is readable"))
        .join("\n");
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
        "reuse_key",
        "key_group",
        "preferred_chain",
        "order_id",
        "action",
        "renew_before",
        "profile",
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
        "challenge",
        "webroot",
        "dns",
        "[dns.",
        "type",
        "server",
        "key_name",
        "algorithm",
        "secret_file",
        "secret_env",
        "secret_credential",
        "zone",
        "ttl",
        "follow_cname",
        "propagation",
        "propagation_timeout",
        "propagation_interval",
        "resolvers",
        "[[notify]]",
        "events",
        "url",
        "format",
        "token_file",
        "token_env",
        "token_credential",
        "tls",
        "username",
        "password_file",
        "password_env",
        "password_credential",
        "sendmail",
        "from",
        "to",
    ];
    for key in keys {
        let written = if key.starts_with('[') {
            key.to_owned()
        } else {
            format!("{key} = ")
        };
        assert!(
            text.contains(&written),
            "{key} is not documented in the examples in config/"
        );
    }
    for key_type in KeyType::ALL {
        assert!(
            text.contains(key_type.as_str()),
            "{key_type} is not documented"
        );
    }
    for algorithm in TsigAlgorithm::ALL {
        assert!(
            text.contains(algorithm.as_str()),
            "{algorithm} is not documented"
        );
    }
    for value in [
        "http-01",
        "dns-01",
        "rfc2136",
        "hook",
        "\"check\"",
        "\"none\"",
    ] {
        assert!(text.contains(value), "{value} is not documented");
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

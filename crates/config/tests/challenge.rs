//! Challenges and DNS providers that load: each certificate's effective challenge (its own,
//! the top-level default, the `[http01]` webroot), wildcards with DNS-01, and `[dns.NAME]`
//! providers of both types with every source of the TSIG secret.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certkeeper_config::{Environment, Loaded, Severity, load, load_str};
use certkeeper_core::challenge::{
    ChallengeSpec, DEFAULT_PROPAGATION_INTERVAL, DEFAULT_PROPAGATION_TIMEOUT, DEFAULT_TTL,
    DnsProviderKind, DnsProviderSpec, Propagation, Rfc2136Spec, TsigAlgorithm,
};
use certkeeper_core::{CertName, ChallengeKind, DomainName, Hook, HookCommand, Inventory};

/// base64 of `TSIG_BYTES`, as `tsig-keygen` prints a secret.
const TSIG_TEXT: &str = "dHNpZy1zZWNyZXQtb2YtY2VydGtlZXBlcg==";
const TSIG_BYTES: &[u8] = b"tsig-secret-of-certkeeper";

const CA: &str = r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"
"#;

fn load_ok(text: &str, env: &Environment) -> Loaded {
    load_str(text, Path::new("/etc/certkeeper/certkeeper.toml"), env)
        .unwrap_or_else(|errors| panic!("{errors}\n{text}"))
}

fn challenge<'i>(inventory: &'i Inventory, name: &str) -> &'i ChallengeSpec {
    inventory.challenge(&CertName::new(name).expect("valid name"))
}

fn provider<'i>(inventory: &'i Inventory, name: &str) -> &'i DnsProviderSpec {
    inventory
        .dns_provider(name)
        .unwrap_or_else(|| panic!("provider {name}"))
}

fn rfc2136(provider: &DnsProviderSpec) -> &Rfc2136Spec {
    match &provider.kind {
        DnsProviderKind::Rfc2136(spec) => spec,
        DnsProviderKind::Hook(_) => panic!("{} is a hook provider", provider.name),
    }
}

fn address(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

#[test]
fn http01_answers_from_the_embedded_responder_or_a_webroot() {
    let text = format!(
        r#"
[http01]
webroot = "/var/www/html"
{CA}
[[certificate]]
name = "default"
domains = ["www.example.com"]

[[certificate]]
name = "own"
domains = ["shop.example.com"]
challenge = "http-01"
webroot = "/srv/shop/public"

[[certificate]]
name = "embedded"
domains = ["mail.example.com"]
webroot = false
"#
    );
    let inventory = load_ok(&text, &Environment::empty()).inventory;
    let webroot = |name| match challenge(&inventory, name) {
        ChallengeSpec::Http01 { webroot } => webroot.clone(),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(webroot("default"), Some(PathBuf::from("/var/www/html")));
    assert_eq!(webroot("own"), Some(PathBuf::from("/srv/shop/public")));
    assert_eq!(
        webroot("embedded"),
        None,
        "false drops the [http01] default"
    );
    // `webroot` is not part of the listener's settings, which a reload cannot change.
    assert_eq!(inventory.http01.listen, [address("[::]:80")]);
    // Only the certificates that do not use the embedded responder are tabled.
    assert_eq!(inventory.challenges.by_certificate.len(), 2);

    // Without a default, certificates use the embedded responder.
    let text = format!("{CA}\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n");
    let inventory = load_ok(&text, &Environment::empty()).inventory;
    assert_eq!(
        challenge(&inventory, "www"),
        &ChallengeSpec::Http01 { webroot: None }
    );
}

#[test]
fn dns01_with_an_rfc2136_provider_from_an_environment_variable_with_defaults() {
    let text = format!(
        r#"
[dns.bind]
type = "rfc2136"
server = "192.0.2.53"
key_name = "certkeeper"
secret_env = "CERTKEEPER_TSIG_SECRET"
{CA}
[[certificate]]
name = "wild"
domains = ["*.example.com", "example.com"]
challenge = "dns-01"
dns = "bind"
"#
    );
    let env = Environment::empty().with_var("CERTKEEPER_TSIG_SECRET", format!("{TSIG_TEXT}\n"));
    let loaded = load_ok(&text, &env);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;

    let wild = inventory.certificate("wild").expect("wild");
    let domains: Vec<&str> = wild.domains.iter().map(DomainName::as_str).collect();
    assert_eq!(domains, ["*.example.com", "example.com"]);
    let spec = challenge(&inventory, "wild");
    assert_eq!(spec.kind(), ChallengeKind::Dns01);
    assert_eq!(
        spec,
        &ChallengeSpec::Dns01 {
            provider: "bind".to_owned()
        }
    );

    let bind = provider(&inventory, "bind");
    assert!(bind.follow_cname);
    assert_eq!(
        bind.propagation,
        Propagation::Check {
            timeout: DEFAULT_PROPAGATION_TIMEOUT,
            interval: DEFAULT_PROPAGATION_INTERVAL,
            resolvers: Vec::new(),
        }
    );
    let rfc2136 = rfc2136(bind);
    assert_eq!(rfc2136.server, address("192.0.2.53:53"));
    assert_eq!(rfc2136.key_name, "certkeeper");
    assert_eq!(rfc2136.algorithm, TsigAlgorithm::HmacSha256);
    assert_eq!(rfc2136.secret.expose(), TSIG_BYTES);
    assert_eq!(rfc2136.zone, None);
    assert_eq!(rfc2136.ttl, DEFAULT_TTL);
    assert_eq!(DEFAULT_TTL, Duration::from_secs(60));
    assert_eq!(DEFAULT_PROPAGATION_TIMEOUT, Duration::from_secs(120));
    assert_eq!(DEFAULT_PROPAGATION_INTERVAL, Duration::from_secs(2));
}

#[test]
fn rfc2136_provider_with_every_key_and_a_key_file_next_to_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("tsig.secret");
    fs::write(&key, format!("{TSIG_TEXT}\n")).expect("write key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = format!(
        r#"
challenge = "dns-01"

[dns.knot]
type = "rfc2136"
server = "[2001:db8::53]:5353"
key_name = "CertKeeper.Example.COM."
algorithm = "hmac-sha512"
secret_file = "tsig.secret"
zone = "_acme-challenge.example.com."
ttl = "5m"
follow_cname = false
propagation = "check"
propagation_timeout = "10m"
propagation_interval = "15s"
resolvers = ["192.0.2.1", "192.0.2.2:5300", "[2001:db8::1]:53"]
{CA}
[[certificate]]
name = "www"
domains = ["www.example.com"]
dns = "knot"
"#
    );
    let config = dir.path().join("certkeeper.toml");
    fs::write(&config, &text).expect("write config");
    let loaded = load(&config, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;
    assert_eq!(
        challenge(&inventory, "www"),
        &ChallengeSpec::Dns01 {
            provider: "knot".to_owned()
        },
        "the top-level challenge is the default"
    );
    let knot = provider(&inventory, "knot");
    assert_eq!(knot.name, "knot");
    assert!(!knot.follow_cname);
    assert_eq!(
        knot.propagation,
        Propagation::Check {
            timeout: Duration::from_secs(600),
            interval: Duration::from_secs(15),
            resolvers: vec![
                address("192.0.2.1:53"),
                address("192.0.2.2:5300"),
                address("[2001:db8::1]:53"),
            ],
        }
    );
    let rfc2136 = rfc2136(knot);
    assert_eq!(rfc2136.server, address("[2001:db8::53]:5353"));
    assert_eq!(rfc2136.key_name, "certkeeper.example.com");
    assert_eq!(rfc2136.algorithm, TsigAlgorithm::HmacSha512);
    assert_eq!(rfc2136.secret.expose(), TSIG_BYTES);
    assert_eq!(rfc2136.zone.as_deref(), Some("_acme-challenge.example.com"));
    assert_eq!(rfc2136.ttl, Duration::from_secs(300));
}

#[test]
fn rfc2136_secret_from_a_systemd_credential() {
    let credentials = tempfile::tempdir().expect("tempdir");
    let credential = credentials.path().join("tsig-secret");
    fs::write(&credential, TSIG_TEXT).expect("write credential");
    fs::set_permissions(&credential, fs::Permissions::from_mode(0o400)).expect("chmod");
    let text = format!(
        r#"
[dns.bind]
type = "rfc2136"
server = "192.0.2.53:53"
key_name = "certkeeper"
algorithm = "hmac-sha384"
secret_credential = "tsig-secret"
{CA}
[[certificate]]
name = "www"
domains = ["www.example.com"]
challenge = "dns-01"
dns = "bind"
"#
    );
    let env = Environment::empty().with_credentials_directory(credentials.path());
    let loaded = load_ok(&text, &env);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let rfc2136 = rfc2136(provider(&loaded.inventory, "bind"));
    assert_eq!(rfc2136.secret.expose(), TSIG_BYTES);
    assert_eq!(rfc2136.algorithm, TsigAlgorithm::HmacSha384);
}

#[test]
fn a_tsig_secret_file_others_can_read_loads_with_a_chmod_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("tsig.secret");
    fs::write(&key, TSIG_TEXT).expect("write key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let text = format!(
        r#"[dns.bind]
type = "rfc2136"
server = "192.0.2.53"
key_name = "certkeeper"
secret_file = "{}"
{CA}
[[certificate]]
name = "www"
domains = ["www.example.com"]
challenge = "dns-01"
dns = "bind"
"#,
        key.display()
    );
    let loaded = load_ok(&text, &Environment::empty());
    assert_eq!(
        rfc2136(provider(&loaded.inventory, "bind")).secret.expose(),
        TSIG_BYTES
    );
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.key, "dns.bind.secret_file");
    assert_eq!((warning.line, warning.column), (5, 15));
    assert_eq!(
        warning.message,
        format!(
            "file {key:?} can be read by group or others (mode 0644); restrict it with chmod 600"
        )
    );
}

#[test]
fn hook_providers_take_every_hook_form_and_the_hook_timeout() {
    let text = format!(
        r#"
hook_timeout = "90s"

[dns.script]
type = "hook"
command = ["/usr/local/bin/dns-hook", "--zone", "example.com"]

[dns.shell]
type = "hook"
command = "/usr/local/bin/dns-hook \"$CERTBOT_DOMAIN\""
timeout = "5m"
propagation = "none"
follow_cname = false
{CA}
[[certificate]]
name = "www"
domains = ["www.example.com", "*.www.example.com"]
challenge = "dns-01"
dns = "script"

[[certificate]]
name = "mail"
domains = ["mail.example.com"]
challenge = "dns-01"
dns = "shell"
"#
    );
    let inventory = load_ok(&text, &Environment::empty()).inventory;
    let names: Vec<&str> = inventory
        .challenges
        .dns_providers
        .iter()
        .map(|provider| provider.name.as_str())
        .collect();
    assert_eq!(names, ["script", "shell"], "in file order");

    let script = provider(&inventory, "script");
    assert_eq!(
        script.kind,
        DnsProviderKind::Hook(Hook {
            command: HookCommand::Argv(
                ["/usr/local/bin/dns-hook", "--zone", "example.com"]
                    .map(str::to_owned)
                    .to_vec()
            ),
            timeout: Duration::from_secs(90),
        })
    );
    assert!(script.follow_cname);
    assert_eq!(script.propagation, Propagation::default());

    let shell = provider(&inventory, "shell");
    assert_eq!(
        shell.kind,
        DnsProviderKind::Hook(Hook {
            command: HookCommand::Shell("/usr/local/bin/dns-hook \"$CERTBOT_DOMAIN\"".to_owned()),
            timeout: Duration::from_secs(300),
        })
    );
    assert!(!shell.follow_cname);
    assert_eq!(shell.propagation, Propagation::None);
    assert_eq!(
        challenge(&inventory, "mail"),
        &ChallengeSpec::Dns01 {
            provider: "shell".to_owned()
        }
    );
}

#[test]
fn certificates_of_included_files_use_the_main_files_providers() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
    fs::write(
        dir.path().join("conf.d/wild.toml"),
        "[[certificate]]\nname = \"wild\"\ndomains = [\"*.example.org\", \"example.org\"]\nchallenge = \"dns-01\"\ndns = \"script\"\n\n[[certificate]]\nname = \"site\"\ndomains = [\"www.example.org\"]\n",
    )
    .expect("write included file");
    let text = format!(
        r#"include = ["conf.d/*.toml"]

[http01]
webroot = "/var/www/html"

[dns.script]
type = "hook"
command = ["/usr/local/bin/dns-hook"]
{CA}"#
    );
    let config = dir.path().join("certkeeper.toml");
    fs::write(&config, text).expect("write config");
    let inventory = load(&config, &Environment::empty())
        .unwrap_or_else(|errors| panic!("{errors}"))
        .inventory;
    assert_eq!(
        challenge(&inventory, "wild"),
        &ChallengeSpec::Dns01 {
            provider: "script".to_owned()
        }
    );
    assert_eq!(
        challenge(&inventory, "site"),
        &ChallengeSpec::Http01 {
            webroot: Some(PathBuf::from("/var/www/html"))
        }
    );

    // An included file may not define providers: they are global, like reload targets.
    fs::write(
        dir.path().join("conf.d/dns.toml"),
        "[dns.other]\ntype = \"hook\"\ncommand = \"x\"\n",
    )
    .expect("write included file");
    let errors = load(&config, &Environment::empty()).expect_err("dns in an included file");
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert_eq!(errors.errors[0].key, "dns");
    assert!(
        errors.errors[0]
            .message
            .starts_with("dns is only allowed in the main configuration file"),
        "{errors}"
    );
}

#[test]
fn a_key_statement_in_the_secret_file_says_what_to_keep() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("certkeeper.key");
    // What `tsig-keygen -a hmac-sha256 certkeeper` prints.
    fs::write(
        &key,
        format!(
            "key \"certkeeper\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{TSIG_TEXT}\";\n}};\n"
        ),
    )
    .expect("write key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = format!(
        "[dns.bind]\ntype = \"rfc2136\"\nserver = \"192.0.2.53\"\nkey_name = \"certkeeper\"\nsecret_file = \"certkeeper.key\"\n{CA}"
    );
    let errors = load_str(
        &text,
        &dir.path().join("certkeeper.toml"),
        &Environment::empty(),
    )
    .expect_err("a key statement is not base64");
    let shown = format!("{errors}\n{errors:?}");
    assert_eq!(errors.errors.len(), 1, "{shown}");
    assert_eq!(errors.errors[0].key, "dns.bind.secret_file");
    assert_eq!(
        errors.errors[0].message,
        format!(
            "TSIG secret from file {key:?} holds a whole key statement, as tsig-keygen prints it; keep only the base64 text between the quotes after `secret` in it"
        )
    );
    assert!(!shown.contains(TSIG_TEXT), "{shown}");
}

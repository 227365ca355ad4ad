//! The TSIG secret read from one key of an INI file (`secret_ini_key`): certbot's RFC 2136
//! credentials file used as it is, from a file or a systemd credential; every problem names
//! the file, a line and the key, and nothing any of them print holds the secret.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use certkeeper_config::{ConfigErrors, Environment, Loaded, Severity, load};
use certkeeper_core::challenge::{DnsProviderKind, Rfc2136Spec, TsigAlgorithm};

/// base64 of `TSIG_BYTES`.
const TSIG_TEXT: &str = "dHNpZy1zZWNyZXQtb2YtY2VydGtlZXBlcg==";
const TSIG_BYTES: &[u8] = b"tsig-secret-of-certkeeper";

/// A credentials file as certbot-dns-rfc2136's documentation writes it, the secret on line 8.
fn certbot_ini(secret: &str) -> String {
    format!(
        "# Target DNS server (IPv4 or IPv6 address, not a hostname)\n\
         dns_rfc2136_server = 192.0.2.53\n\
         # Target DNS port\n\
         dns_rfc2136_port = 53\n\
         # TSIG key name\n\
         dns_rfc2136_name = certbot.\n\
         # TSIG key secret\n\
         dns_rfc2136_secret = {secret}\n\
         # TSIG key algorithm\n\
         dns_rfc2136_algorithm = HMAC-SHA512\n"
    )
}

/// `[dns.bind]` with the given secret keys, and a certificate that uses it.
fn config_text(secret_keys: &str) -> String {
    format!(
        r#"
[dns.bind]
type = "rfc2136"
server = "192.0.2.53"
key_name = "certbot"
algorithm = "hmac-sha512"
{secret_keys}

[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"

[[certificate]]
name = "www"
domains = ["www.example.com", "*.example.com"]
challenge = "dns-01"
dns = "bind"
"#
    )
}

struct Files {
    dir: tempfile::TempDir,
    config: PathBuf,
    ini: PathBuf,
}

/// A config with `secret_keys` and `rfc2136.ini` holding `ini_text` (mode `mode`) in a fresh
/// directory.
fn files(secret_keys: &str, ini_text: &str, mode: u32) -> Files {
    let dir = tempfile::tempdir().expect("tempdir");
    let ini = dir.path().join("rfc2136.ini");
    fs::write(&ini, ini_text).expect("write ini");
    fs::set_permissions(&ini, fs::Permissions::from_mode(mode)).expect("chmod");
    let config = dir.path().join("certkeeper.toml");
    fs::write(&config, config_text(secret_keys)).expect("write config");
    Files { dir, config, ini }
}

fn rfc2136(loaded: &Loaded) -> &Rfc2136Spec {
    let provider = loaded
        .inventory
        .dns_provider("bind")
        .expect("provider bind");
    match &provider.kind {
        DnsProviderKind::Rfc2136(spec) => spec,
        DnsProviderKind::Hook(_) => panic!("bind is a hook provider"),
    }
}

/// Nothing printed about `shown` holds the secret or a recognizable part of it.
fn assert_no_secret(shown: &str) {
    for part in [TSIG_TEXT, &TSIG_TEXT[..12], "tsig-secret"] {
        assert!(!shown.contains(part), "{part:?} in:\n{shown}");
    }
}

fn refused(files: &Files, env: &Environment) -> ConfigErrors {
    let errors = load(&files.config, env).expect_err("refused");
    assert_no_secret(&format!("{errors}\n{errors:?}"));
    errors
}

#[test]
fn a_certbot_credentials_file_is_read_at_its_secret_key() {
    let files = files(
        r#"secret_file = "rfc2136.ini"
secret_ini_key = "dns_rfc2136_secret""#,
        &certbot_ini(TSIG_TEXT),
        0o600,
    );
    let loaded =
        load(&files.config, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let spec = rfc2136(&loaded);
    assert_eq!(spec.secret.expose(), TSIG_BYTES);
    assert_eq!(spec.algorithm, TsigAlgorithm::HmacSha512);
    assert_eq!(spec.key_name, "certbot");
    assert_no_secret(&format!("{loaded:?}"));
}

#[test]
fn a_quoted_secret_with_spaces_and_comments_around_it_is_read() {
    // certbot's documentation shows a secret with a space in it, which dnspython ignores.
    let (head, tail) = TSIG_TEXT.split_at(10);
    let ini = format!(
        "\"dns_rfc2136_secret\" = '{head} {tail}'  # from tsig-keygen\n[other]\ndns_rfc2136_secret = x\n"
    );
    let files = files(
        r#"secret_file = "rfc2136.ini"
secret_ini_key = "dns_rfc2136_secret""#,
        &ini,
        0o600,
    );
    let loaded =
        load(&files.config, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(rfc2136(&loaded).secret.expose(), TSIG_BYTES);
}

#[test]
fn a_credentials_file_loaded_as_a_systemd_credential_is_read_at_its_secret_key() {
    let credentials = tempfile::tempdir().expect("tempdir");
    let credential = credentials.path().join("certbot-rfc2136");
    fs::write(&credential, certbot_ini(TSIG_TEXT)).expect("write credential");
    fs::set_permissions(&credential, fs::Permissions::from_mode(0o400)).expect("chmod");
    let files = files(
        r#"secret_credential = "certbot-rfc2136"
secret_ini_key = "dns_rfc2136_secret""#,
        "",
        0o600,
    );
    let env = Environment::empty().with_credentials_directory(credentials.path());
    let loaded = load(&files.config, &env).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(rfc2136(&loaded).secret.expose(), TSIG_BYTES);
}

#[test]
fn a_credentials_file_others_can_read_loads_with_a_chmod_warning() {
    let files = files(
        r#"secret_file = "rfc2136.ini"
secret_ini_key = "dns_rfc2136_secret""#,
        &certbot_ini(TSIG_TEXT),
        0o644,
    );
    let loaded =
        load(&files.config, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(rfc2136(&loaded).secret.expose(), TSIG_BYTES);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.key, "dns.bind.secret_file");
    assert_eq!(
        warning.message,
        format!(
            "file {:?} can be read by group or others (mode 0644); restrict it with chmod 600",
            files.ini
        )
    );
}

/// The one error loading `files` reports: (key, message).
fn only_error(files: &Files) -> (String, String) {
    let errors = refused(files, &Environment::empty());
    assert_eq!(errors.errors.len(), 1, "{errors}");
    let error = &errors.errors[0];
    (error.key.clone(), error.message.clone())
}

#[test]
fn problems_in_the_credentials_file_name_the_file_the_line_and_the_key() {
    let keys = r#"secret_file = "rfc2136.ini"
secret_ini_key = "dns_rfc2136_secret""#;
    let cases: Vec<(String, &str, String)> = vec![
        (
            // The secret pasted on a line of its own (without its `=` padding, which would
            // make the line `key = value` to configobj as well).
            format!(
                "{}{}\n",
                certbot_ini(TSIG_TEXT),
                TSIG_TEXT.trim_end_matches('=')
            ),
            "dns.bind.secret_ini_key",
            "cannot read the TSIG secret from file {ini:?}: line 11 is neither `key = value`, a [section] header nor a # comment (the line is not shown)".to_owned(),
        ),
        (
            certbot_ini(TSIG_TEXT).replace("dns_rfc2136_secret", "dns_rfc2136_secrets"),
            "dns.bind.secret_ini_key",
            "cannot read the TSIG secret from file {ini:?}: the file has no `dns_rfc2136_secret = ...` line at its top level (before any [section])".to_owned(),
        ),
        (
            format!("{}dns_rfc2136_secret = {TSIG_TEXT}\n", certbot_ini(TSIG_TEXT)),
            "dns.bind.secret_ini_key",
            "cannot read the TSIG secret from file {ini:?}: the file sets dns_rfc2136_secret twice, on lines 8 and 11; keep one".to_owned(),
        ),
        (
            certbot_ini(&format!("\"{TSIG_TEXT}")),
            "dns.bind.secret_ini_key",
            "cannot read the TSIG secret from file {ini:?}: line 8 has a value with an unterminated quote (the line is not shown)".to_owned(),
        ),
        (
            certbot_ini(&format!("{TSIG_TEXT}, {TSIG_TEXT}")),
            "dns.bind.secret_ini_key",
            "cannot read the TSIG secret from file {ini:?}: line 8: dns_rfc2136_secret holds a list (a comma outside quotes), not one secret; quote the value".to_owned(),
        ),
        (
            certbot_ini(&format!("{}$$", &TSIG_TEXT[..20])),
            "dns.bind.secret_file",
            "TSIG secret from key dns_rfc2136_secret (line 8) of file {ini:?} is not valid base64: invalid character at position 21".to_owned(),
        ),
        (
            certbot_ini(""),
            "dns.bind.secret_file",
            "TSIG secret from key dns_rfc2136_secret (line 8) of file {ini:?} is empty".to_owned(),
        ),
    ];
    for (ini_text, key, message) in cases {
        let files = files(keys, &ini_text, 0o600);
        let (found_key, found) = only_error(&files);
        let expected = message.replace("{ini:?}", &format!("{:?}", files.ini));
        assert_eq!(
            (found_key.as_str(), found.as_str()),
            (key, expected.as_str())
        );
        drop(files.dir);
    }
}

#[test]
fn secret_ini_key_goes_with_a_file_and_names_a_plain_key() {
    let ini = certbot_ini(TSIG_TEXT);
    let env_source = files(
        r#"secret_env = "TSIG"
secret_ini_key = "dns_rfc2136_secret""#,
        &ini,
        0o600,
    );
    let errors = refused(
        &env_source,
        &Environment::empty().with_var("TSIG", TSIG_TEXT),
    );
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert_eq!(errors.errors[0].key, "dns.bind.secret_ini_key");
    assert_eq!(
        errors.errors[0].message,
        "secret_ini_key picks one key of an INI file, so it goes with secret_file or secret_credential; secret_env holds the TSIG secret itself: remove secret_ini_key, or name the INI file with secret_file instead"
    );

    let no_file = files(r#"secret_ini_key = "dns_rfc2136_secret""#, &ini, 0o600);
    assert_eq!(
        only_error(&no_file),
        (
            "dns.bind.secret_ini_key".to_owned(),
            "secret_ini_key names a key of an INI file, but no file is named: set secret_file (or secret_credential) to the file that holds the TSIG secret under that key".to_owned()
        )
    );

    // The secret pasted where the key's name belongs is not shown.
    let pasted = files(
        &format!("secret_file = \"rfc2136.ini\"\nsecret_ini_key = \"{TSIG_TEXT}\""),
        &ini,
        0o600,
    );
    assert_eq!(
        only_error(&pasted),
        (
            "dns.bind.secret_ini_key".to_owned(),
            "secret_ini_key names the key whose line holds the TSIG secret in the INI file, e.g. dns_rfc2136_secret for certbot's RFC 2136 credentials; the value given is not such a name (letters, digits, '_', '.', ':' and '-'), so it is not shown".to_owned()
        )
    );
}

#[test]
fn secret_ini_key_is_a_key_of_rfc2136_providers_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("certkeeper.toml");
    fs::write(
        &config,
        "[dns.script]\ntype = \"hook\"\ncommand = \"/bin/true\"\nsecret_ini_key = \"dns_rfc2136_secret\"\n",
    )
    .expect("write config");
    let errors = load(Path::new(&config), &Environment::empty()).expect_err("refused");
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert_eq!(errors.errors[0].key, "dns.script.secret_ini_key");
    assert_eq!(
        errors.errors[0].message,
        "secret_ini_key is a key of type = \"rfc2136\" providers; this one is type = \"hook\""
    );
}

//! EAB HMAC keys and TSIG secrets from every source, the warnings about where they are kept,
//! and proof that no diagnostic or debug print ever contains one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use certkeeper_config::{Environment, Loaded, Severity, load, load_str};

/// base64url of `SECRET_BYTES`.
const SECRET_TEXT: &str = "czNjcjN0LWhtYWMtazN5LXZhbHVl";
const SECRET_BYTES: &[u8] = b"s3cr3t-hmac-k3y-value";

fn config_with(source: &str) -> String {
    format!(
        r#"
[[ca]]
name = "digicert"
directory = "https://one.digicert.com/mpki/api/v1/acme/v2/directory"
eab_kid = "kid-1"
{source}

[[certificate]]
name = "www"
domains = ["www.example.com"]
"#
    )
}

/// A config file and a key file with `mode` in a fresh directory.
fn setup(source: &str, key_file_mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("digicert.hmac");
    fs::write(&key_file, format!("{SECRET_TEXT}\n")).expect("write key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(key_file_mode)).expect("chmod");
    let config = dir.path().join("certkeeper.toml");
    fs::write(&config, config_with(source)).expect("write config");
    (dir, config)
}

fn assert_no_secret(loaded: &Loaded) {
    let printed = format!("{loaded:?}");
    assert!(!printed.contains(SECRET_TEXT), "{printed}");
    assert!(!printed.contains("s3cr3t"), "{printed}");
    for warning in &loaded.warnings {
        let shown = warning.to_string();
        assert!(!shown.contains(SECRET_TEXT), "{shown}");
    }
}

fn hmac_key(loaded: &Loaded) -> &[u8] {
    loaded.inventory.cas[0]
        .eab
        .as_ref()
        .expect("EAB configured")
        .hmac_key
        .expose()
}

#[test]
fn private_key_file_relative_to_the_config_loads_without_warnings() {
    let (_dir, config) = setup(r#"eab_hmac_key_file = "digicert.hmac""#, 0o600);
    let loaded = load(&config, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(hmac_key(&loaded), SECRET_BYTES);
    assert_no_secret(&loaded);
}

#[test]
fn group_readable_key_file_loads_with_a_chmod_warning() {
    let (dir, config) = setup(r#"eab_hmac_key_file = "digicert.hmac""#, 0o640);
    let loaded = load(&config, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(hmac_key(&loaded), SECRET_BYTES);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.key, "ca[0].eab_hmac_key_file");
    assert_eq!((warning.line, warning.column), (6, 21));
    let key_file = dir.path().join("digicert.hmac");
    assert_eq!(
        warning.message,
        format!(
            "file {key_file:?} can be read by group or others (mode 0640); restrict it with chmod 600"
        )
    );
    assert_no_secret(&loaded);
}

#[test]
fn inline_key_loads_with_a_warning_that_does_not_quote_it() {
    let source = format!(r#"eab_hmac_key = "{SECRET_TEXT}""#);
    let loaded = load_str(
        &config_with(&source),
        Path::new("/etc/certkeeper/certkeeper.toml"),
        &Environment::empty(),
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(hmac_key(&loaded), SECRET_BYTES);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(
        loaded.warnings[0].to_string(),
        "/etc/certkeeper/certkeeper.toml:6:16: ca[0].eab_hmac_key: the HMAC key is stored in the config file; keep it out of the file with eab_hmac_key_file, eab_hmac_key_env or eab_hmac_key_credential"
    );
    assert_no_secret(&loaded);
}

#[test]
fn warnings_survive_when_other_errors_refuse_the_config() {
    let source = format!("eab_hmac_key = \"{SECRET_TEXT}\"\nunknown = 1");
    let errors = load_str(
        &config_with(&source),
        Path::new("c.toml"),
        &Environment::empty(),
    )
    .expect_err("unknown key");
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert_eq!(errors.warnings.len(), 1, "{errors}");
    assert_eq!(
        errors.to_string(),
        "c.toml:7:1: ca[0].unknown: unknown key; expected one of: name, directory, terms_of_service_agreed, contact, root_ca_file, max_concurrent, request_timeout, profile, eab_kid, eab_hmac_key_file, eab_hmac_key_env, eab_hmac_key_credential, eab_hmac_key\n\
         warning: c.toml:6:16: ca[0].eab_hmac_key: the HMAC key is stored in the config file; keep it out of the file with eab_hmac_key_file, eab_hmac_key_env or eab_hmac_key_credential"
    );
    let shown = format!("{errors}\n{errors:?}");
    assert!(!shown.contains(SECRET_TEXT), "{shown}");
}

#[test]
fn undecodable_keys_are_reported_without_quoting_them() {
    let secret = "S3cretButNot$Base64";
    let env = Environment::empty().with_var("DIGICERT_HMAC", secret);
    let errors = load_str(
        &config_with(r#"eab_hmac_key_env = "DIGICERT_HMAC""#),
        Path::new("c.toml"),
        &env,
    )
    .expect_err("not base64url");
    let shown = format!("{errors}\n{errors:?}");
    assert!(
        shown.contains("environment variable DIGICERT_HMAC"),
        "{shown}"
    );
    assert!(!shown.contains("S3cret"), "{shown}");
    assert!(!shown.contains('$'), "{shown}");

    let inline = format!(r#"eab_hmac_key = "{secret}""#);
    let errors =
        load_str(&config_with(&inline), Path::new("c.toml"), &env).expect_err("not base64url");
    let shown = format!("{errors}\n{errors:?}");
    assert!(!shown.contains("S3cret"), "{shown}");
}

#[test]
fn environment_variable_and_credential_sources() {
    let env = Environment::empty().with_var("DIGICERT_HMAC", format!(" {SECRET_TEXT}\n"));
    let loaded = load_str(
        &config_with(r#"eab_hmac_key_env = "DIGICERT_HMAC""#),
        Path::new("c.toml"),
        &env,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(hmac_key(&loaded), SECRET_BYTES);
    assert_no_secret(&loaded);

    let credentials = tempfile::tempdir().expect("tempdir");
    let credential = credentials.path().join("digicert-hmac");
    fs::write(&credential, SECRET_TEXT).expect("write credential");
    fs::set_permissions(&credential, fs::Permissions::from_mode(0o400)).expect("chmod");
    let env = Environment::empty().with_credentials_directory(credentials.path());
    let loaded = load_str(
        &config_with(r#"eab_hmac_key_credential = "digicert-hmac""#),
        Path::new("c.toml"),
        &env,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(hmac_key(&loaded), SECRET_BYTES);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let errors = load_str(
        &config_with(r#"eab_hmac_key_credential = "../digicert-hmac""#),
        Path::new("c.toml"),
        &env,
    )
    .expect_err("not a plain name");
    // Not the shape of a credential name, so not shown (a secret pasted here would not be
    // either); the message says what a name looks like instead.
    assert_eq!(
        errors.to_string(),
        "c.toml:6:27: ca[0].eab_hmac_key_credential: eab_hmac_key_credential names a systemd credential that holds the HMAC key, e.g. digicert-hmac (LoadCredential=digicert-hmac:/etc/certkeeper/digicert.hmac); the value given is not a credential name (a file name without '/', ':', spaces or control characters), so it is not shown; load the HMAC key as a credential and give its name here, or use eab_hmac_key_file"
    );

    let errors = load_str(
        &config_with(r#"eab_hmac_key_credential = "other""#),
        Path::new("c.toml"),
        &env,
    )
    .expect_err("no such credential");
    let message = &errors.errors[0].message;
    assert!(
        message.starts_with("cannot read HMAC key from credential \"other\" (")
            && message.ends_with("No such file or directory (os error 2)"),
        "{message}"
    );
}

#[test]
fn inline_key_in_a_file_others_can_read_gets_a_louder_warning() {
    let source = format!(r#"eab_hmac_key = "{SECRET_TEXT}""#);
    let (_dir, config) = setup(&source, 0o600);
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod");
    let loaded = load(&config, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let shown = loaded.warnings[0].to_string();
    assert!(
        shown.contains("which group or others can read (mode 0644; chmod 600"),
        "{shown}"
    );
    assert_no_secret(&loaded);

    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).expect("chmod");
    let loaded = load(&config, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(!loaded.warnings[0].to_string().contains("others can read"));
}

/// base64 of `TSIG_BYTES`.
const TSIG_TEXT: &str = "kL9vQ2mX7pR4tW1zB8nC5yH3jF6dG0aE";
const TSIG_BYTES_PREFIX: &str = "kL9vQ2mX";

/// A config with one RFC 2136 provider whose secret comes from `source`, plus `extra`.
fn tsig_config(source: &str, extra: &str) -> String {
    format!(
        r#"
[dns.bind]
type = "rfc2136"
server = "192.0.2.53"
key_name = "certkeeper"
{source}

[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"

[[certificate]]
name = "wild"
domains = ["*.example.com", "example.com"]
challenge = "dns-01"
dns = "bind"
{extra}
"#
    )
}

/// Neither the secret's text nor its bytes (as Rust would print a byte slice) appear.
fn assert_no_tsig_secret(printed: &str) {
    assert!(!printed.contains(TSIG_BYTES_PREFIX), "{printed}");
    let bytes = base64_bytes(TSIG_TEXT);
    let debug_bytes = format!("{:?}", &bytes[..8]);
    let debug_inner = debug_bytes.trim_start_matches('[').trim_end_matches(']');
    assert!(!printed.contains(debug_inner), "{printed}");
    if let Ok(text) = std::str::from_utf8(&bytes) {
        assert!(!printed.contains(text), "{printed}");
    }
}

fn base64_bytes(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64")
}

#[test]
fn tsig_secrets_never_reach_debug_output_of_the_inventory() {
    let env = Environment::empty().with_var("CERTKEEPER_TSIG", TSIG_TEXT);
    let loaded = load_str(
        &tsig_config(r#"secret_env = "CERTKEEPER_TSIG""#, ""),
        Path::new("c.toml"),
        &env,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    let provider = loaded.inventory.dns_provider("bind").expect("provider");
    let certkeeper_core::challenge::DnsProviderKind::Rfc2136(rfc2136) = &provider.kind else {
        panic!("an rfc2136 provider");
    };
    assert_eq!(rfc2136.secret.expose(), base64_bytes(TSIG_TEXT));
    for printed in [
        format!("{loaded:?}"),
        format!("{:?}", loaded.inventory),
        format!("{:#?}", loaded.inventory.challenges),
        format!("{provider:?}"),
    ] {
        assert_no_tsig_secret(&printed);
        assert!(printed.contains("redacted"), "{printed}");
    }
}

#[test]
fn tsig_secrets_never_reach_error_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("tsig.secret");
    fs::write(&key_file, format!("{TSIG_TEXT}\n")).expect("write key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let bad_file = dir.path().join("bad.secret");
    fs::write(&bad_file, format!("{TSIG_TEXT}$")).expect("write key");
    fs::set_permissions(&bad_file, fs::Permissions::from_mode(0o600)).expect("chmod");
    let env = Environment::empty()
        .with_var("CERTKEEPER_TSIG", TSIG_TEXT)
        .with_var("CERTKEEPER_BAD_TSIG", format!("{TSIG_TEXT}!"));
    let config = dir.path().join("certkeeper.toml");
    let cases = [
        // A valid secret next to another error, with the loose-mode warning.
        tsig_config(r#"secret_file = "tsig.secret""#, "unknown = 1"),
        tsig_config(r#"secret_env = "CERTKEEPER_TSIG""#, "unknown = 1"),
        // Undecodable secrets.
        tsig_config(r#"secret_file = "bad.secret""#, ""),
        tsig_config(r#"secret_env = "CERTKEEPER_BAD_TSIG""#, ""),
        // The secret pasted where its source's name belongs, inline, or as the key's name.
        tsig_config(&format!(r#"secret_env = "{TSIG_TEXT}""#), ""),
        tsig_config(&format!(r#"secret_credential = "{TSIG_TEXT}""#), ""),
        tsig_config(&format!(r#"secret_file = "{TSIG_TEXT}""#), ""),
        tsig_config(
            &format!("secret = \"{TSIG_TEXT}\"\nsecret_env = \"CERTKEEPER_TSIG\""),
            "",
        ),
        tsig_config(r#"secret_env = "CERTKEEPER_TSIG""#, "").replace(
            r#"key_name = "certkeeper""#,
            &format!(r#"key_name = "{TSIG_TEXT}=""#),
        ),
    ];
    for text in cases {
        let errors = load_str(&text, &config, &env).expect_err("each case is invalid");
        let printed = format!("{errors}\n{errors:?}");
        assert_no_tsig_secret(&printed);
    }
}

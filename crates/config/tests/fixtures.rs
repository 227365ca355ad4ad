//! Every invalid configuration in `tests/fixtures/` is refused with exactly the diagnostics
//! in its `.expected` file.
//!
//! Each fixture is loaded with the path as written here (`tests/fixtures/NAME.toml`, relative
//! to the crate, which is the working directory of `cargo test`), so the expected output
//! does not depend on where the repository is checked out. After an intended change of
//! messages, run with `CERTKEEPER_BLESS=1` to rewrite the `.expected` files, then review the
//! diff.
//!
//! A fixture that includes other files is a directory, `tests/fixtures/NAME/main.toml` with
//! `NAME/main.expected` next to it and the included files below it (`NAME/conf.d/*.toml`), so
//! the expected output shows included files' paths too.

use std::fs;
use std::path::{Path, PathBuf};

use certkeeper_config::{Environment, load_str};

const FIXTURES: &str = "tests/fixtures";

/// The environment every fixture is loaded with. `FIXTURE_HMAC` decodes to a key;
/// `FIXTURE_BAD_HMAC` does not; no credentials directory.
fn environment() -> Environment {
    Environment::empty()
        .with_var("FIXTURE_HMAC", "c2VjcmV0LWhtYWMta2V5")
        .with_var("FIXTURE_BAD_HMAC", "not base64!")
}

/// `tests/fixtures/*.toml` and `tests/fixtures/*/main.toml`.
fn fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(FIXTURES)
        .expect("tests/fixtures is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter_map(|path| {
            let name = Path::new(FIXTURES).join(path.file_name().expect("file name"));
            if path.is_dir() {
                let main = name.join("main.toml");
                main.exists().then_some(main)
            } else {
                path.extension()
                    .is_some_and(|ext| ext == "toml")
                    .then_some(name)
            }
        })
        .collect();
    paths.sort();
    paths
}

/// What loading `path` reports, one diagnostic per line.
fn render(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("fixture is readable");
    match load_str(&text, path, &environment()) {
        Ok(loaded) => panic!(
            "{} was accepted but every fixture is invalid: {loaded:?}",
            path.display()
        ),
        Err(errors) => format!("{errors}\n"),
    }
}

#[test]
fn every_fixture_reports_exactly_its_expected_diagnostics() {
    let bless = std::env::var_os("CERTKEEPER_BLESS").is_some();
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= 25,
        "expected the fixture set, found {} files in {FIXTURES}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let rendered = render(fixture);
        let expected_path = fixture.with_extension("expected");
        if bless {
            fs::write(&expected_path, &rendered).expect("write .expected");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_else(|err| {
            panic!(
                "{}: {err} (run with CERTKEEPER_BLESS=1 to create it)",
                expected_path.display()
            )
        });
        if rendered != expected {
            failures.push(format!(
                "--- {}\n{expected}+++ actual\n{rendered}",
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_a_fixture() {
    let mut directories = vec![PathBuf::from(FIXTURES)];
    while let Some(directory) = directories.pop() {
        for entry in fs::read_dir(&directory).expect("fixture directory is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                directories.push(path);
            } else if path.extension().is_some_and(|ext| ext == "expected") {
                assert!(
                    path.with_extension("toml").exists(),
                    "{} has no .toml fixture",
                    path.display()
                );
            }
        }
    }
}

/// Every error category appears in the fixture set, so deleting a fixture cannot quietly
/// drop a check from the suite.
#[test]
fn fixtures_cover_every_error_category() {
    let categories = [
        "unknown_key",
        "bad_type",
        "duplicate_cert_name",
        "duplicate_ca_name",
        "unknown_ca",
        "bad_domain",
        "wildcard",
        "duplicate_domain",
        "unreadable_secret_file",
        "missing_eab_key_source",
        "eab_key_without_kid",
        "two_eab_key_sources",
        "bad_base64",
        "syntax_error",
        "missing_required_key",
        "several_errors",
        "bad_window",
        "unknown_timezone",
        "bad_urgent_before",
        "bad_max_concurrent",
        "bad_admin_listen",
        "admin_without_listen",
        "bad_include",
        "include_not_an_array",
        "include_forbidden_key",
        "include_dup",
        "include_unknown_ca",
        "include_unreadable",
        "include_syntax",
        "bad_hook",
        "bad_hook_timeout",
        "unknown_reload_target",
        "reload_without_targets",
        "bad_reload_target",
        "reload_not_a_table",
        "hooks_dir_not_a_directory",
        "bad_challenge",
        "wildcard_with_http01",
        "relative_webroot",
        "webroot_with_dns01",
        "dns_with_http01",
        "dns01_without_dns",
        "dns_unknown_provider",
        "dns_without_providers",
        "dns_top_level_string",
        "dns_unknown_key",
        "rfc2136_missing_keys",
        "bad_tsig_algorithm",
        "bad_tsig_secret",
        "bad_dns_provider",
    ];
    for category in categories {
        let file = Path::new(FIXTURES).join(format!("{category}.toml"));
        let directory = Path::new(FIXTURES).join(category).join("main.toml");
        assert!(
            file.exists() || directory.exists(),
            "missing fixture {} (or {})",
            file.display(),
            directory.display()
        );
    }
}

#[test]
fn several_errors_are_all_reported_at_once() {
    let rendered = render(&Path::new(FIXTURES).join("several_errors.toml"));
    let lines: Vec<&str> = rendered.lines().collect();
    assert!(lines.len() >= 10, "{rendered}");
    let positions: Vec<(usize, usize)> = lines
        .iter()
        .map(|line| {
            let mut parts = line.splitn(4, ':');
            let _file = parts.next();
            let line_no = parts.next().and_then(|n| n.parse().ok());
            let column = parts.next().and_then(|n| n.parse().ok());
            (
                line_no.expect("a line number"),
                column.expect("a column number"),
            )
        })
        .collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted, "errors are in file order:\n{rendered}");
}

/// The 8-character pieces of `secret`, with and without its separators: any one of them in
/// a message would be a leak.
fn fragments(secret: &str) -> Vec<String> {
    let joined: String = secret.chars().filter(|c| !matches!(c, ' ' | ':')).collect();
    [secret, joined.as_str()]
        .iter()
        .flat_map(|text| {
            let chars: Vec<char> = text.chars().collect();
            chars
                .windows(8)
                .map(|window| window.iter().collect::<String>())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Key material pasted into a secret key is never echoed. Each fixture holds keys (base64
/// with '/', '+' and '=', and hex) in one kind of key; its rendering contains no key and no 8
/// characters of one, and says what the key expects. The ordinary mistakes next to them
/// (a variable that is not set, a missing file, a credential without a credentials
/// directory) are still quoted, because there the value helps.
#[test]
fn key_material_is_never_echoed() {
    struct Case {
        fixture: &'static str,
        keys: &'static [&'static str],
        expects: &'static str,
        quoted: Option<&'static str>,
    }
    let cases = [
        Case {
            fixture: "key_material_in_env",
            keys: &[
                "k/IG1IOcxwkY05RF9MEIFAkCVWnw1ye/bOLVjuSiN+k=",
                "0bbb7c417d678d29d4ba7eb6137e69d4bc226f1a71afb15559a258618459fa55",
            ],
            expects: "eab_hmac_key_env names an environment variable that holds the HMAC key, e.g. CERTKEEPER_DIGICERT_HMAC",
            quoted: Some("environment variable CERTKEEPER_MISSING is not set"),
        },
        Case {
            fixture: "key_in_source_name",
            keys: &["dGhpcy1pcy1hLXRlc3QtaG1hYy1rZXktb2YtMzItYnl0"],
            expects: "eab_hmac_key_env names an environment variable that holds the HMAC key",
            quoted: None,
        },
        Case {
            fixture: "key_material_in_file",
            keys: &[
                "3JGizFduY/n+5NuiUkbAHIej5Awpf+7lAopiqJRQD5E=",
                "64ebb766c3924d4f75609382a13ca67e37c5987e9aaf19716b0c5d33dee7af29",
            ],
            expects: "eab_hmac_key_file names a file that holds the HMAC key, e.g. /etc/certkeeper/digicert.hmac",
            quoted: Some("file \"tests/fixtures/missing.hmac\""),
        },
        Case {
            fixture: "key_material_in_credential",
            keys: &[
                "ouFiiCDSRcsuXchvQ0B/U/iILTV0WmronKedw8+Xl/U=",
                "b82df66b62a4c70d7629d9ef04625deb44341acc18c684f276f139a888ed4877",
            ],
            expects: "eab_hmac_key_credential names a systemd credential that holds the HMAC key",
            quoted: Some("credential \"digicert-hmac\""),
        },
        Case {
            fixture: "key_material_inline_invalid",
            keys: &[
                "eVSEz8NPeV6qMnO1X1/245K3SQe Xog2YMS7ipeY+t00=",
                "a0:db:ad:a8:b7:ce:fd:98:24:fd:59:04:83:87:0e:64:da:f4:0a:83",
            ],
            expects: "HMAC key in eab_hmac_key is not valid base64url",
            quoted: None,
        },
        Case {
            fixture: "tsig_key_material",
            keys: &[
                "Xb0mQ2rT9vLp4sWz8yK1nC6hJ3fD5gA7eR0uI2oP+Q8=",
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            ],
            expects: "secret_env names an environment variable that holds the TSIG secret, e.g. CERTKEEPER_TSIG_SECRET",
            quoted: None,
        },
    ];
    for case in cases {
        let path = Path::new(FIXTURES).join(format!("{}.toml", case.fixture));
        let text = fs::read_to_string(&path).expect("fixture is readable");
        let rendered = render(&path);
        let errors = load_str(&text, &path, &environment()).expect_err("invalid");
        let printed = format!("{rendered}\n{errors:?}");
        for key in case.keys {
            assert!(text.contains(key), "{} does not hold {key}", path.display());
            for fragment in fragments(key) {
                assert!(
                    !printed.contains(&fragment),
                    "{}: {fragment:?} of a key is echoed:\n{printed}",
                    case.fixture
                );
            }
        }
        let hidden = rendered
            .lines()
            .filter(|line| line.contains(case.expects))
            .count();
        assert_eq!(
            hidden,
            case.keys.len(),
            "{}: one message saying what the key expects per key:\n{rendered}",
            case.fixture
        );
        if let Some(quoted) = case.quoted {
            assert!(rendered.contains(quoted), "{}:\n{rendered}", case.fixture);
        }
    }
}

//! `preferred_chain` end to end: a real Pebble offering alternate chains
//! (`PEBBLE_ALTERNATE_ROOTS`), the `certkeeper` binary choosing among them, the installed
//! `chain.pem` read back with `openssl`.
//!
//! Pebble names its roots "Pebble Root CA <random>" at every start, so the names are read from
//! its management API (`/roots/N`: N = 0 the default chain's root, 1.. the alternates') first.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::path::Path;

use support::{Cert, PebbleOptions, Setup, openssl, stderr};

/// The common name in `openssl x509 -subject`/`-issuer` output (`subject=CN=...`).
fn common_name(line: &str) -> String {
    let line = line.trim();
    let (_, name) = line
        .split_once("CN=")
        .or_else(|| line.split_once("CN = "))
        .unwrap_or_else(|| panic!("no CN in {line:?}"));
    name.split(',').next().unwrap().trim().to_owned()
}

/// The subject CN of the PEM certificate in `pem`, written to `scratch` for openssl.
fn subject_cn(pem: &str, scratch: &Path) -> String {
    fs::write(scratch, pem).unwrap();
    common_name(&openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-in",
        scratch.to_str().unwrap(),
    ]))
}

/// The issuer CN of the last certificate of the chain at `chain` (the chain's name, as
/// certbot's --preferred-chain and certkeeper define it).
fn last_issuer_cn(chain: &Path, scratch: &Path) -> String {
    let text = fs::read_to_string(chain).unwrap();
    let start = text
        .rfind("-----BEGIN CERTIFICATE-----")
        .expect("a certificate in the chain");
    fs::write(scratch, &text[start..]).unwrap();
    common_name(&openssl(&[
        "x509",
        "-noout",
        "-issuer",
        "-nameopt",
        "RFC2253",
        "-in",
        scratch.to_str().unwrap(),
    ]))
}

#[test]
fn preferred_chain_picks_an_alternate_and_an_unknown_name_falls_back_to_the_default() {
    let setup = Setup::new(PebbleOptions::default().env("PEBBLE_ALTERNATE_ROOTS", "2"));
    let scratch = setup.dir.path().join("scratch.pem");
    let root_cn = |n: usize| {
        let (status, pem) = setup.pebble.management_get(&format!("/roots/{n}"));
        assert_eq!(status, 200, "{pem}");
        subject_cn(&pem, &scratch)
    };
    let (default_root, first_alternate, second_alternate) = (root_cn(0), root_cn(1), root_cn(2));
    assert!(
        default_root != first_alternate && first_alternate != second_alternate,
        "Pebble names its roots apart: {default_root:?} {first_alternate:?} {second_alternate:?}"
    );

    // The second alternate, so the choice is not merely "the first alternate".
    let preferred = format!("preferred_chain = {second_alternate:?}");
    let unknown = r#"preferred_chain = "No Such Root CA""#;
    let default_root_named = format!("preferred_chain = {default_root:?}");
    setup.write_config(&[
        Cert {
            extra: &preferred,
            ..Cert::new("alternate", &["alternate.example.com"])
        },
        Cert {
            extra: unknown,
            ..Cert::new("fallback", &["fallback.example.com"])
        },
        Cert {
            extra: &default_root_named,
            ..Cert::new("default", &["default.example.com"])
        },
        Cert::new("plain", &["plain.example.com"]),
    ]);

    let output = setup.certkeeper(&["renew"]);
    assert!(
        output.status.success(),
        "an unknown chain name does not fail the renewal"
    );
    let chain_of = |name: &str| last_issuer_cn(&setup.live(name).join("chain.pem"), &scratch);
    assert_eq!(
        chain_of("alternate"),
        second_alternate,
        "the preferred chain"
    );
    assert_eq!(chain_of("fallback"), default_root, "the default chain");
    assert_eq!(
        chain_of("default"),
        default_root,
        "the default chain, named"
    );
    assert_eq!(
        chain_of("plain"),
        default_root,
        "no preference: the default"
    );

    let log = stderr(&output);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("keeping the default chain"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, for the unknown name: {log}"
    );
    let warning = warnings[0];
    for named in [
        "No Such Root CA",
        &default_root,
        &first_alternate,
        &second_alternate,
    ] {
        assert!(
            warning.contains(named),
            "the warning names {named:?}: {warning}"
        );
    }
}

//! Hostile configuration text: whatever the bytes, loading ends in an inventory or in
//! diagnostics that point inside the file, never in a panic. And an HMAC key written into any
//! of the keys that say where the key is never comes back out.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use certkeeper_config::{Environment, load_str};
use proptest::prelude::*;

/// Keys certkeeper knows (and a few it does not), for documents that get past the TOML parser.
const KEYS: &[&str] = &[
    "state_dir",
    "include",
    "max_concurrent",
    "timezone",
    "window",
    "urgent_before",
    "name",
    "ca",
    "domains",
    "key_type",
    "order_id",
    "action",
    "renew_before",
    "directory",
    "eab_kid",
    "eab_hmac_key",
    "eab_hmac_key_env",
    "eab_hmac_key_file",
    "terms_of_service_agreed",
    "contact",
    "root_ca_file",
    "listen",
    "deploy_hook",
    "reload",
    "command",
    "timeout",
    "bogus",
];
const TABLES: &[&str] = &[
    "[[ca]]",
    "[[certificate]]",
    "[http01]",
    "[admin]",
    "[hooks]",
    "[reload.web]",
    "[unknown]",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,30}".prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        proptest::collection::vec("[a-z.*-]{0,12}".prop_map(|s| format!("{s:?}")), 0..4)
            .prop_map(|items| format!("[{}]", items.join(", "))),
        Just("{ a = 1 }".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        Just("\"30 2 1 * *\"".to_owned()),
        Just("\"[::]:80\"".to_owned()),
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (proptest::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => proptest::sample::select(TABLES).prop_map(str::to_owned),
    ]
}

fn check(text: &str) -> Result<(), TestCaseError> {
    let lines = text.lines().count().max(1);
    match load_str(
        text,
        Path::new("/nonexistent/fuzz.toml"),
        &Environment::empty(),
    ) {
        Ok(_) => {}
        Err(errors) => {
            prop_assert!(!errors.errors.is_empty());
            for diagnostic in &errors.errors {
                prop_assert!(
                    diagnostic.line <= lines + 1,
                    "{diagnostic} is outside a {lines}-line file"
                );
                prop_assert!(!diagnostic.message.is_empty());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check(&text)?;
    }

    #[test]
    fn plausible_documents_never_panic(lines in proptest::collection::vec(line(), 0..30)) {
        check(&lines.join("\n"))?;
    }
}

/// A key of 32 to 64 random bytes, written as CAs hand keys out: base64, base64url or hex.
fn key_text() -> impl Strategy<Value = String> {
    (proptest::collection::vec(any::<u8>(), 32..=64), 0..3_u8).prop_map(
        |(bytes, form)| match form {
            0 => STANDARD.encode(&bytes),
            1 => URL_SAFE_NO_PAD.encode(&bytes),
            _ => bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
        },
    )
}

/// Everything loading `text` prints: the errors or the warnings, shown and debug-printed.
fn printed(text: &str, env: &Environment) -> String {
    match load_str(text, Path::new("/nonexistent/certkeeper.toml"), env) {
        Ok(loaded) => {
            let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
            format!("{}\n{loaded:?}", warnings.join("\n"))
        }
        Err(errors) => format!("{errors}\n{errors:?}"),
    }
}

proptest! {
    #[test]
    fn keys_in_secret_keys_are_never_echoed(
        key in key_text(),
        field in proptest::sample::select(&[
            "eab_hmac_key_env",
            "eab_hmac_key_file",
            "eab_hmac_key_credential",
            "eab_hmac_key",
        ]),
        quoted in any::<bool>(),
        credentials in any::<bool>(),
    ) {
        // Unquoted, the value is a TOML syntax error, whose message must not quote it either.
        let value = if quoted { format!("{key:?}") } else { key.clone() };
        let text = format!(
            "[[ca]]\nname = \"digicert\"\n\
             directory = \"https://one.digicert.com/mpki/api/v1/acme/v2/directory\"\n\
             eab_kid = \"kid-1\"\n{field} = {value}\n\n\
             [[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n"
        );
        let mut env = Environment::empty();
        if credentials {
            env = env.with_credentials_directory("/nonexistent/credentials");
        }
        let printed = printed(&text, &env);
        for window in key.as_bytes().windows(8) {
            let fragment = std::str::from_utf8(window).expect("ASCII");
            prop_assert!(!printed.contains(fragment), "{fragment:?} of the key in {field}:\n{printed}");
        }
    }
}

//! The dependency rule, checked: the core links no runtime, network or filesystem adapter,
//! and adapters depend on the core only, never on each other. Only the binary wires them.

use std::path::Path;

fn dependencies(krate: &str) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let parsed: toml::Table = text.parse().expect("valid manifest");
    parsed
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|deps| deps.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn core_is_pure() {
    let deps = dependencies("core");
    for forbidden in [
        "tokio",
        "axum",
        "instant-acme",
        "hyper",
        "rustls",
        "rcgen",
        "certkeeper-store",
        "certkeeper-acme",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "core depends on {forbidden}: {deps:?}"
        );
    }
}

#[test]
fn adapters_depend_inward_only() {
    let adapters = ["config", "store", "acme", "challenge"];
    for adapter in adapters {
        let deps = dependencies(adapter);
        assert!(
            deps.iter().any(|d| d == "certkeeper-core"),
            "{adapter} uses the core"
        );
        for other in adapters.iter().filter(|other| **other != adapter) {
            let name = format!("certkeeper-{other}");
            assert!(
                !deps.contains(&name),
                "{adapter} depends on {name}: adapters must not depend on each other"
            );
        }
    }
}

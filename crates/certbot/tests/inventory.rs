//! The inventory written for certbot fixtures is one certkeeper's loader accepts once the
//! placeholders are filled in, and one it refuses before.

use std::path::Path;

use certkeeper_certbot::{Imported, Lineage, Source, plan, read_leaf, render};
use certkeeper_config::Environment;

fn imported() -> Vec<Imported> {
    ["example.com", "shop"]
        .iter()
        .map(|name| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
            let conf = std::fs::read_to_string(dir.join(format!("renewal/{name}.conf")))
                .expect("fixture renewal file");
            let cert =
                std::fs::read(dir.join(format!("live/{name}/cert.pem"))).expect("fixture cert");
            Imported {
                lineage: Lineage::from_renewal_conf(name, &conf).expect("parses"),
                certificate: read_leaf(&cert).expect("certificate"),
                contact: vec!["mailto:ops@example.com".to_owned()],
            }
        })
        .collect()
}

#[test]
fn generated_inventory_loads_once_filled_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = Source {
        certbot_dir: "/etc/letsencrypt".to_owned(),
        state_dir: dir.path().join("state").display().to_string(),
        directory_hooks: Vec::new(),
    };
    let rendered = render(&source, &plan(&imported()));
    let path = dir.path().join("certkeeper.toml");

    let unfinished = certkeeper_config::load_str(&rendered.text, &path, &Environment::empty())
        .expect_err("placeholders must not pass");
    assert!(
        unfinished
            .errors
            .iter()
            .any(|error| error.to_string().contains("eab_hmac_key_file")),
        "{unfinished:?}"
    );

    let hmac = dir.path().join("digicert.hmac");
    std::fs::write(&hmac, "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw").expect("write hmac");
    std::fs::set_permissions(&hmac, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let filled = rendered
        .text
        .replace("eab_kid = \"FILL-ME\"", "eab_kid = \"kid-1\"")
        .replace(
            "eab_hmac_key_file = \"FILL-ME\"",
            &format!("eab_hmac_key_file = \"{}\"", hmac.display()),
        );
    let loaded = certkeeper_config::load_str(&filled, &path, &Environment::empty())
        .unwrap_or_else(|errors| panic!("{errors:?}\n{filled}"));
    let names: Vec<&str> = loaded
        .inventory
        .certificates
        .iter()
        .map(|cert| cert.name.as_str())
        .collect();
    assert_eq!(names, ["example.com", "shop"]);
}

//! Every TOML example in the README is a configuration certkeeper accepts, so the README
//! cannot drift from the code.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use certkeeper_config::{Environment, load_str};

fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn readme_examples_load() {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
        .expect("README.md");
    let blocks = toml_blocks(&readme);
    assert!(
        !blocks.is_empty(),
        "the README shows at least one inventory"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let hmac = dir.path().join("digicert.hmac");
    fs::write(&hmac, "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw\n").expect("write");
    fs::set_permissions(&hmac, fs::Permissions::from_mode(0o600)).expect("chmod");
    for (index, block) in blocks.iter().enumerate() {
        let path = dir.path().join(format!("readme-{index}.toml"));
        let loaded = load_str(block, &path, &Environment::empty()).unwrap_or_else(|errors| {
            panic!("README example {index} is invalid:\n{errors}\n{block}")
        });
        assert!(
            loaded.warnings.is_empty(),
            "README example {index} warns: {:?}",
            loaded.warnings
        );
        assert!(!loaded.inventory.certificates.is_empty());
    }
}

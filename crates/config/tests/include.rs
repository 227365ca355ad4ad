//! `include`: entries from other files, resolved across files, and what the daemon watches.

use std::fs;
use std::path::{Path, PathBuf};

use certkeeper_config::{Environment, Loaded, load, load_str};

const CA: &str = r#"
[[ca]]
name = "digicert"
directory = "https://one.digicert.com/mpki/api/v1/acme/v2/directory"
"#;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("create directory");
    fs::write(path, text).expect("write file");
}

fn load_ok(path: &Path) -> Loaded {
    load(path, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"))
}

fn names(loaded: &Loaded) -> Vec<&str> {
    loaded
        .inventory
        .certificates
        .iter()
        .map(|cert| cert.name.as_str())
        .collect()
}

#[test]
fn included_entries_resolve_across_files_in_sorted_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("certkeeper.toml");
    write(
        &main,
        &format!(
            "include = [\"conf.d/*.toml\", \"sites/*/certs.toml\", \"missing/*.toml\"]\n{CA}\n[[certificate]]\nname = \"www\"\nca = \"internal\"\ndomains = [\"www.example.com\"]\n"
        ),
    );
    // Loaded in sorted order, whatever order they were written in.
    write(
        &dir.path().join("conf.d/b.toml"),
        "[[certificate]]\nname = \"b\"\nca = \"digicert\"\ndomains = [\"b.example.com\"]\n",
    );
    write(
        &dir.path().join("conf.d/a.toml"),
        // A CA that the main file's certificate uses, and a certificate using the main
        // file's CA. The root CA file is relative to this file's directory.
        "[[ca]]\nname = \"internal\"\ndirectory = \"https://ca.internal.example/directory\"\nroot_ca_file = \"internal-root.pem\"\n\n[[certificate]]\nname = \"a\"\nca = \"digicert\"\ndomains = [\"a.example.com\"]\n",
    );
    write(
        &dir.path().join("conf.d/internal-root.pem"),
        "-----BEGIN CERTIFICATE-----\n",
    );
    // Not matched: another extension, and a hidden file (an editor's leftovers).
    write(&dir.path().join("conf.d/notes.txt"), "not TOML");
    write(&dir.path().join("conf.d/.a.toml"), "not = [TOML");
    write(
        &dir.path().join("sites/shop/certs.toml"),
        "[[certificate]]\nname = \"shop\"\nca = \"digicert\"\ndomains = [\"shop.example.com\"]\n",
    );

    let loaded = load_ok(&main);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(names(&loaded), ["www", "a", "b", "shop"]);
    let inventory = &loaded.inventory;
    let cas: Vec<&str> = inventory.cas.iter().map(|ca| ca.name.as_str()).collect();
    assert_eq!(cas, ["digicert", "internal"]);
    assert_eq!(
        inventory.cas[1].root_ca_file,
        Some(dir.path().join("conf.d/internal-root.pem"))
    );
    assert_eq!(
        inventory.certificate("www").expect("www").ca.as_str(),
        "internal"
    );

    let expected: Vec<PathBuf> = [
        "certkeeper.toml",
        "conf.d/a.toml",
        "conf.d/b.toml",
        "sites/shop/certs.toml",
        "conf.d",
        "sites",
        "missing",
    ]
    .iter()
    .map(|path| dir.path().join(path))
    .collect();
    assert_eq!(inventory.watch_paths, expected);
    assert!(inventory.watch_paths.iter().all(|path| path.is_absolute()));
}

#[test]
fn the_only_ca_counts_across_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("certkeeper.toml");
    write(&main, "include = [\"conf.d/*.toml\"]\n");
    write(&dir.path().join("conf.d/ca.toml"), CA);
    write(
        &dir.path().join("conf.d/www.toml"),
        "[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n",
    );
    let loaded = load_ok(&main);
    assert_eq!(loaded.inventory.certificates[0].ca.as_str(), "digicert");
}

#[test]
fn an_empty_include_directory_and_the_main_file_itself_are_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("conf.d")).expect("conf.d");
    let main = dir.path().join("certkeeper.toml");
    // "*.toml" matches the main file itself, which is not loaded twice; "conf.d/*.toml"
    // matches nothing, and both patterns name the same file twice.
    write(
        &main,
        &format!(
            "include = [\"*.toml\", \"conf.d/*.toml\", \"other.toml\", \"o*.toml\"]\n{CA}\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n"
        ),
    );
    write(
        &dir.path().join("other.toml"),
        "[[certificate]]\nname = \"other\"\ndomains = [\"other.example.com\"]\n",
    );
    let loaded = load_ok(&main);
    assert_eq!(names(&loaded), ["www", "other"]);
    assert_eq!(
        loaded.inventory.watch_paths,
        [
            main.clone(),
            dir.path().join("other.toml"),
            dir.path().to_path_buf(),
            dir.path().join("conf.d"),
        ]
    );
}

#[test]
fn load_str_reads_includes_relative_to_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &dir.path().join("conf.d/www.toml"),
        "[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n",
    );
    // The main file need not exist: only its directory matters.
    let main = dir.path().join("not-on-disk.toml");
    let text = format!("include = [\"conf.d/*.toml\"]\n{CA}");
    let loaded =
        load_str(&text, &main, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(names(&loaded), ["www"]);
    assert_eq!(
        loaded.inventory.watch_paths,
        [
            main,
            dir.path().join("conf.d/www.toml"),
            dir.path().join("conf.d")
        ]
    );
}

#[test]
fn watch_paths_stay_relative_for_a_relative_main_path() {
    let text = format!("{CA}\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n");
    let loaded = load_str(&text, Path::new("certkeeper.toml"), &Environment::empty())
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(loaded.inventory.watch_paths, [Path::new("certkeeper.toml")]);

    let text = format!("include = [\"conf.d/*.toml\"]\n{text}");
    let loaded = load_str(
        &text,
        Path::new("etc/certkeeper.toml"),
        &Environment::empty(),
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(
        loaded.inventory.watch_paths,
        [Path::new("etc/certkeeper.toml"), Path::new("etc/conf.d")]
    );
}

#[test]
fn problems_in_included_files_name_those_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("certkeeper.toml");
    write(
        &main,
        &format!("include = [\"conf.d/*.toml\"]\nmax_concurrent = 0\n{CA}"),
    );
    let included = dir.path().join("conf.d/www.toml");
    write(
        &included,
        "[[certificate]]\nname = \"www\"\ndomains = [\"www..example.com\"]\nstate_dir = \"x\"\n",
    );
    let errors = load(&main, &Environment::empty()).expect_err("invalid");
    let files: Vec<&Path> = errors.errors.iter().map(|d| d.file.as_path()).collect();
    assert_eq!(
        files,
        [main.as_path(), included.as_path(), included.as_path()]
    );
    assert_eq!(errors.errors[1].key, "certificate[0].domains[0]");
    assert_eq!((errors.errors[1].line, errors.errors[1].column), (3, 12));
    assert_eq!(errors.errors[2].key, "certificate[0].state_dir");
}

#[test]
fn a_directory_name_with_glob_characters_is_taken_literally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etc = dir.path().join("etc[prod]*");
    let main = etc.join("certkeeper.toml");
    write(&main, &format!("include = [\"conf.d/*.toml\"]\n{CA}"));
    write(
        &etc.join("conf.d/www.toml"),
        "[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n",
    );
    // A sibling the unescaped pattern "etc[prod]*/conf.d/*.toml" would also match.
    write(
        &dir.path().join("etcp/conf.d/other.toml"),
        "[[certificate]]\nname = \"other\"\ndomains = [\"other.example.com\"]\n",
    );
    let loaded = load_ok(&main);
    assert_eq!(names(&loaded), ["www"]);
    assert_eq!(loaded.inventory.watch_paths[2], etc.join("conf.d"));
}

//! `certkeeper cluster status` and `cluster import` against a real PostgreSQL (the fleet
//! crate's harness, shared rather than copied) and a real Pebble: a single node's state
//! directory, issued without `[cluster]` (or adopted from a real certbot by `import-certbot`),
//! is moved into the fleet with one command and the node then reads as in sync; a second import
//! publishes nothing, and a node whose fleet has a newer version reads as behind. Bad input (a
//! wrong password, a database nobody listens for, a wrong fleet key, a newer schema, no
//! `[cluster]`) is a clear error with its documented exit code, and no output quotes the
//! password or the fleet key.

#[path = "../crates/fleet/tests/support/postgres.rs"]
mod postgres;
mod support;

use std::fs;
use std::path::Path;

use postgres::PgCluster;
use support::{Cert, PebbleOptions, Setup, serial, stderr, stdout, write_secret};

/// 32 bytes as 64 hex digits: the fleet key the tests' nodes share.
const FLEET_KEY: &str = "6a9f1c0b3e7d5a2f8c4e6b1d9a3f7c5e2b8d4a6f1c3e5b7d9f0a2c4e6b8d0f1a";
/// Another valid key: the wrong one.
const OTHER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// `[cluster]` for `pg` (verified TLS with its throwaway CA), with this password and key.
fn cluster_table(dir: &Path, port: u16, ca_file: &Path, password: &str, key: &str) -> String {
    let password_file = dir.join("db.password");
    let key_file = dir.join("fleet.key");
    write_secret(&password_file, password);
    write_secret(&key_file, key);
    format!(
        r#"
[cluster]
postgres = "postgres://{role}@127.0.0.1:{port}/{database}"
password_file = "{password}"
ca_file = "{ca}"
node = "node-1"
fleet_key_file = "{key}"
lease = "30s"
"#,
        role = postgres::ROLE,
        database = postgres::DATABASE,
        password = password_file.display(),
        ca = ca_file.display(),
        key = key_file.display(),
    )
}

/// Append `[cluster]` to the inventory `setup` wrote.
fn join_cluster(setup: &Setup, table: &str) {
    let mut text = fs::read_to_string(&setup.config).expect("read the inventory");
    text.push_str(table);
    fs::write(&setup.config, text).expect("write the inventory");
}

fn assert_no_secret(output: &std::process::Output) {
    let all = format!("{}{}", stdout(output), stderr(output));
    for secret in [postgres::PASSWORD, FLEET_KEY, OTHER_KEY, "wrong-password"] {
        assert!(!all.contains(secret), "a secret was printed:\n{all}");
    }
}

#[test]
fn a_single_node_moves_into_the_fleet_with_one_command() {
    let pg = PgCluster::start();
    let setup = Setup::new(PebbleOptions::default());
    let certs = [
        Cert::new("www", &["www.example.com"]),
        Cert::new("later", &["later.example.com"]),
    ];
    setup.write_config(&certs);

    // Issued by a node on its own, before there is any fleet.
    let renew = setup.certkeeper(&["renew", "www"]);
    assert_eq!(renew.status.code(), Some(0), "issued without [cluster]");
    let www_serial = serial(&setup.live("www").join("cert.pem"));

    join_cluster(
        &setup,
        &cluster_table(
            setup.dir.path(),
            pg.port,
            &pg.ca_file,
            postgres::PASSWORD,
            FLEET_KEY,
        ),
    );
    let check = setup.certkeeper(&["check"]);
    assert_eq!(check.status.code(), Some(0), "check passes with [cluster]");
    // A node of the fleet: nothing is due, nothing is ordered or published.
    let renew = setup.certkeeper(&["renew", "www"]);
    assert_eq!(renew.status.code(), Some(0), "not due");

    // An empty fleet: this node's certificate is not published yet.
    let status = setup.certkeeper(&["cluster", "status"]);
    assert_eq!(
        status.status.code(),
        Some(3),
        "not in sync before the import"
    );
    let text = stdout(&status);
    assert!(text.contains("node-1 (this node)"), "{text}");
    assert!(text.contains("no leases"), "{text}");
    assert!(text.contains("www: not yet published"), "{text}");
    assert!(text.contains("later: not issued yet"), "{text}");
    assert_no_secret(&status);

    let import = setup.certkeeper(&["cluster", "import"]);
    assert_eq!(import.status.code(), Some(0), "import");
    let text = stdout(&import);
    assert!(text.contains("ca pebble: account imported"), "{text}");
    assert!(text.contains("www: published as fleet version 1"), "{text}");
    assert!(text.contains("later: nothing live here"), "{text}");
    assert_no_secret(&import);
    assert_eq!(
        pg.psql("SELECT lineage, version, serial FROM certkeeper_versions"),
        format!(
            "www|1|{}",
            www_serial.to_ascii_lowercase().trim_start_matches('0')
        ),
    );
    assert_eq!(pg.psql("SELECT count(*) FROM certkeeper_accounts"), "1");
    let sealed = pg.psql("SELECT encode(key_sealed, 'escape') FROM certkeeper_versions");
    assert!(
        !sealed.contains("PRIVATE KEY"),
        "the key is sealed in the database"
    );

    let status = setup.certkeeper(&["cluster", "status", "--json"]);
    assert_eq!(status.status.code(), Some(0), "in sync after the import");
    let json: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("JSON");
    assert_eq!(json["in_sync"], true);
    assert_eq!(json["node"], "node-1");
    assert_eq!(json["certificates"][0]["state"], "in sync");
    assert_eq!(json["certificates"][0]["fleet_version"], 1);
    assert_eq!(json["leases"][0]["lineage"], "www", "{json}");
    assert_eq!(
        json["leases"][0]["expires_in_seconds"], 0,
        "the import released it"
    );
    let status = setup.certkeeper(&["cluster", "status"]);
    assert!(
        stdout(&status).contains("www: in sync (fleet v1 serial"),
        "{}",
        stdout(&status)
    );
    // Plain `status` says it too.
    let status = setup.certkeeper(&["status"]);
    assert!(
        stdout(&status)
            .lines()
            .any(|line| line == "fleet: node node-1: in sync"),
        "{}",
        stdout(&status)
    );
    let status = setup.certkeeper(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("JSON");
    let www = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["name"] == "www"))
        .expect("www");
    assert_eq!(www["fleet"], "in sync", "{rows}");

    let again = setup.certkeeper(&["cluster", "import"]);
    assert_eq!(again.status.code(), Some(0), "a second import");
    let text = stdout(&again);
    assert!(
        text.contains("ca pebble: account already in the fleet"),
        "{text}"
    );
    assert!(
        text.contains("www: already in the fleet as version 1"),
        "{text}"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM certkeeper_versions"),
        "1",
        "nothing published twice"
    );
    assert_eq!(
        pg.psql("SELECT generation FROM certkeeper_leases WHERE lineage = 'www'"),
        "1",
        "no lease taken when there is nothing to publish"
    );

    // A second node, which renewed www on its own later, imports its newer certificate: the
    // first node is now behind the fleet, and says by how much.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = setup.dir.path().join("node-2");
    fs::create_dir(&second).expect("node-2 directory");
    let on_its_own = fs::read_to_string(&setup.config)
        .expect("read the inventory")
        .split("\n[cluster]")
        .next()
        .expect("the part before [cluster]")
        .replace(
            &format!("state_dir = \"{}\"", setup.state_dir.display()),
            &format!("state_dir = \"{}\"", second.join("state").display()),
        );
    let config_2 = second.join("certkeeper.toml");
    fs::write(&config_2, &on_its_own).expect("write node-2's inventory");
    let renew = support::run_certkeeper(&config_2, &["renew", "www"]);
    assert_eq!(renew.status.code(), Some(0), "node-2 issued on its own");
    let node_2_serial = serial(&second.join("state/live/www/cert.pem"));
    let table = cluster_table(&second, pg.port, &pg.ca_file, postgres::PASSWORD, FLEET_KEY)
        .replace("node = \"node-1\"", "node = \"node-2\"");
    fs::write(&config_2, format!("{on_its_own}{table}")).expect("write node-2's inventory");
    let import = support::run_certkeeper(&config_2, &["cluster", "import"]);
    assert_eq!(import.status.code(), Some(0), "node-2's import");
    assert!(
        stdout(&import).contains("www: published as fleet version 2"),
        "a newer certificate is published: {}",
        stdout(&import)
    );
    assert!(
        stdout(&import)
            .contains("ca pebble: the fleet has another account for this CA; keeping the fleet's"),
        "node-2 registered an account of its own; the fleet keeps one per CA: {}",
        stdout(&import)
    );
    assert_eq!(pg.psql("SELECT count(*) FROM certkeeper_accounts"), "1");

    let status = setup.certkeeper(&["cluster", "status"]);
    assert_eq!(status.status.code(), Some(3), "node-1 is behind");
    let text = stdout(&status);
    assert!(
        text.contains(&format!(
            "www: behind (fleet v2 serial {node_2_serial}, here serial {www_serial}; lag "
        )),
        "{text}"
    );
    assert!(text.contains("node node-2: last seen"), "{text}");
    assert!(text.contains("lease www: node-2 generation 2"), "{text}");
}

/// An inventory that never reaches a CA: enough for `cluster` commands.
fn inventory(dir: &Path, cluster: &str) -> std::path::PathBuf {
    let config = dir.join("certkeeper.toml");
    let text = format!(
        r#"state_dir = "{state}"

[[ca]]
name = "le"
directory = "https://acme.invalid/directory"

[[certificate]]
name = "www"
ca = "le"
domains = ["www.example.com"]
{cluster}"#,
        state = dir.join("state").display()
    );
    fs::write(&config, text).expect("write the inventory");
    config
}

fn cluster_command(config: &Path) -> std::process::Output {
    support::run_certkeeper(config, &["cluster", "status"])
}

#[test]
fn a_database_that_cannot_be_used_is_a_clear_error_with_its_exit_code() {
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");

    // The fleet's first node sets the fleet key.
    let good = cluster_table(
        dir.path(),
        pg.port,
        &pg.ca_file,
        postgres::PASSWORD,
        FLEET_KEY,
    );
    let out = cluster_command(&inventory(dir.path(), &good));
    assert_eq!(out.status.code(), Some(0), "an empty fleet, nothing issued");
    assert!(stdout(&out).contains("www: not issued yet"));

    let wrong_password = cluster_table(
        dir.path(),
        pg.port,
        &pg.ca_file,
        "wrong-password",
        FLEET_KEY,
    );
    let out = cluster_command(&inventory(dir.path(), &wrong_password));
    assert_eq!(out.status.code(), Some(77), "login refused");
    assert!(
        stderr(&out).contains("refused the login of \"certkeeper\""),
        "{}",
        stderr(&out)
    );
    assert_no_secret(&out);

    let nobody = postgres::free_port();
    let unreachable = cluster_table(
        dir.path(),
        nobody,
        &pg.ca_file,
        postgres::PASSWORD,
        FLEET_KEY,
    );
    let out = cluster_command(&inventory(dir.path(), &unreachable));
    assert_eq!(out.status.code(), Some(69), "unreachable");
    assert!(
        stderr(&out).contains(&format!(
            "the database at 127.0.0.1:{nobody} is unreachable"
        )),
        "{}",
        stderr(&out)
    );
    assert_no_secret(&out);

    let wrong_key = cluster_table(
        dir.path(),
        pg.port,
        &pg.ca_file,
        postgres::PASSWORD,
        OTHER_KEY,
    );
    let config = inventory(dir.path(), &wrong_key);
    for args in [["cluster", "status"], ["cluster", "import"]] {
        let out = support::run_certkeeper(&config, &args);
        assert_eq!(out.status.code(), Some(78), "wrong fleet key");
        assert!(
            stderr(&out).contains("the fleet key does not match"),
            "{}",
            stderr(&out)
        );
        assert_no_secret(&out);
    }

    // A schema migrated by a newer certkeeper.
    pg.psql("INSERT INTO certkeeper_schema (version) VALUES (999)");
    let out = cluster_command(&inventory(dir.path(), &good));
    assert_eq!(out.status.code(), Some(78), "newer schema");
    assert!(
        stderr(&out).contains("upgrade certkeeper on this node"),
        "{}",
        stderr(&out)
    );

    let out = cluster_command(&inventory(dir.path(), ""));
    assert_eq!(out.status.code(), Some(78), "not in a cluster");
    assert!(
        stderr(&out).contains("this node is not in a cluster (no [cluster] in"),
        "{}",
        stderr(&out)
    );
}

/// A state directory made by `import-certbot` from a real certbot lineage moves into the fleet
/// the same way: its certificate with its key. certbot's account is not carried over by
/// `import-certbot` (it keeps the contacts only), so there is none to import: the fleet's first
/// order registers one.
#[test]
fn a_state_directory_imported_from_certbot_moves_into_the_fleet() {
    const CERTBOT: &str = "/usr/bin/certbot";
    assert!(
        Path::new(CERTBOT).exists(),
        "{CERTBOT} is missing: this test runs Debian's certbot; install it with `apt-get install -y certbot`"
    );
    let pg = PgCluster::start();
    // certbot retries a rejected nonce only once: Pebble rejects none here.
    let setup = Setup::new(PebbleOptions::default().env("PEBBLE_WFE_NONCEREJECT", "0"));
    let (kid, hmac) = setup.pebble.eab.clone().expect("EAB");
    let certbot_dir = setup.dir.path().join("letsencrypt");
    let output = std::process::Command::new(CERTBOT)
        .args([
            "certonly",
            "--standalone",
            "--non-interactive",
            "--agree-tos",
        ])
        .args(["-m", "ops@example.com", "--no-eff-email"])
        .args(["--server", &setup.pebble.directory_url])
        // `=`: a base64url key may start with '-', which certbot would take for an option.
        .arg(format!("--eab-kid={kid}"))
        .arg(format!("--eab-hmac-key={hmac}"))
        .args(["--http-01-port", &setup.pebble.http01_port.to_string()])
        .arg("--config-dir")
        .arg(&certbot_dir)
        .arg("--work-dir")
        .arg(setup.dir.path().join("certbot-work"))
        .arg("--logs-dir")
        .arg(setup.dir.path().join("certbot-logs"))
        .args(["--cert-name", "shop", "-d", "shop.example.com"])
        .env("REQUESTS_CA_BUNDLE", &setup.pebble.tls_ca_file)
        .output()
        .expect("run certbot");
    assert!(
        output.status.success(),
        "certbot failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    let certbot_serial = serial(&certbot_dir.join("live/shop/cert.pem"));

    let inventory = setup.dir.path().join("imported.toml");
    let import = std::process::Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .args(["import-certbot", "--certbot-dir"])
        .arg(&certbot_dir)
        .arg("--state-dir")
        .arg(&setup.state_dir)
        .arg("--output")
        .arg(&inventory)
        .env("CERTKEEPER_CONFIG", "/nonexistent/certkeeper.toml")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run import-certbot");
    assert_eq!(import.status.code(), Some(0), "{}", stderr(&import));
    let text = fs::read_to_string(&inventory).expect("the imported inventory");
    let filled = setup.fill_imported(&text);
    let table = cluster_table(
        setup.dir.path(),
        pg.port,
        &pg.ca_file,
        postgres::PASSWORD,
        FLEET_KEY,
    );
    fs::write(&inventory, format!("{filled}{table}")).expect("write the inventory");

    let import = support::run_certkeeper(&inventory, &["cluster", "import"]);
    assert_eq!(import.status.code(), Some(0), "cluster import");
    let text = stdout(&import);
    assert!(
        text.contains("ca localhost: no account here or in the fleet"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "shop: published as fleet version 1 (serial {certbot_serial}"
        )),
        "{text}"
    );
    assert_no_secret(&import);
    let status = support::run_certkeeper(&inventory, &["cluster", "status"]);
    assert_eq!(status.status.code(), Some(0), "in sync");
    assert!(
        stdout(&status).contains("shop: in sync (fleet v1"),
        "{}",
        stdout(&status)
    );
    let again = support::run_certkeeper(&inventory, &["cluster", "import"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("shop: already in the fleet as version 1"),
        "{}",
        stdout(&again)
    );
    assert_eq!(pg.psql("SELECT count(*) FROM certkeeper_versions"), "1");
}

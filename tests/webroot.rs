//! HTTP-01 through a web server that owns the validation port, end to end: the real
//! `certkeeper` binary, a real Pebble, and a real nginx on the port Pebble validates HTTP-01
//! against, where certkeeper has no listener of its own.
//!
//! * Webroot (`webroot = "DIR"`): nginx serves the sites' directories, certkeeper writes the
//!   key authorizations into them. The certificates must be installed, and afterwards every
//!   web root must hold exactly what it held before, byte for byte: no token file, no
//!   directory certkeeper created, the site's own files (its `.well-known/security.txt`)
//!   untouched. The configuration is `config/webroot.toml` itself, with its paths and CA
//!   pointed at the test's, so the shipped example is what is proven to work.
//! * A symlink planted in a web root (`.well-known -> elsewhere`) is not followed: the attempt
//!   fails naming the path, nothing appears where the link points, the live certificate stays.
//! * The proxy setup: nginx runs the README's `location` block ([`NGINX_PROXY_LOCATION`], the
//!   address replaced by the test's) in front of certkeeper's embedded listener on a loopback
//!   port.
//! * The daemon (`certkeeper run`) answers through a web root as `renew` does.
//!
//! What is asserted is what an operator would check: the live files and their names, the
//! serial's status at the CA, the web roots' contents, the exit code and the error naming the
//! path; never log wording.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt as _, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use certkeeper_challenge::webroot::NGINX_PROXY_LOCATION;
use rustix::process::Signal;
use support::nginx::Nginx;
use support::pebble::free_port;
use support::{PebbleOptions, Setup, sans, serial, stderr};

const WEBROOT_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/webroot.toml");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");

/// The address the documented proxy snippet passes validations to.
const DOCUMENTED_LISTENER: &str = "127.0.0.1:8080";

/// `text` with the one occurrence of `from` replaced by `to`; fails when `from` occurs any
/// other number of times (the example or snippet changed under the test).
fn replace_once(what: &str, text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{what} should contain {from:?} exactly once:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// [`NGINX_PROXY_LOCATION`] passing to `listener` instead of the documented address.
fn proxy_location(listener: &str) -> String {
    replace_once(
        "NGINX_PROXY_LOCATION",
        NGINX_PROXY_LOCATION,
        DOCUMENTED_LISTENER,
        listener,
    )
}

/// The `[[ca]]` keys that point an inventory at the setup's Pebble (EAB, its TLS root),
/// after `name` and before `terms_of_service_agreed`.
fn pebble_keys(setup: &Setup) -> String {
    let (kid, _) = setup.pebble.eab.clone().unwrap();
    format!(
        "directory = \"{directory}\"\neab_kid = \"{kid}\"\neab_hmac_key_file = \"{hmac}\"\nroot_ca_file = \"{root}\"\n",
        directory = setup.pebble.directory_url,
        hmac = setup.hmac_file.display(),
        root = setup.pebble.tls_ca_file.display(),
    )
}

/// Write an inventory: `state_dir`, `[http01]` with `http01` (its keys), one `[[ca]]` for the
/// setup's Pebble, then `certificates` (`[[certificate]]` tables, as written).
fn write_inventory(setup: &Setup, http01: &str, certificates: &str) {
    let text = format!(
        "state_dir = \"{state}\"\n\n[http01]\n{http01}\n\n[[ca]]\nname = \"pebble\"\n{ca}terms_of_service_agreed = true\n\n{certificates}",
        state = setup.state_dir.display(),
        ca = pebble_keys(setup),
    );
    fs::write(&setup.config, text).unwrap();
}

/// A site's document root `dir/NAME` with `files` (relative paths, parents created).
fn site(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let root = dir.join(name);
    fs::create_dir(&root).unwrap();
    for (path, content) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    root
}

/// nginx's directives for a static web root.
fn root_directive(root: &Path) -> String {
    format!("    root {};", root.display())
}

/// Every entry under `dir`, sorted by relative path, with what it is: a directory and its
/// mode; a file with its mode, modification time and content; a symlink and its target.
/// Two equal snapshots mean nothing under `dir` was added, removed or changed.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, into: &mut Vec<(String, String)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(base).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            if meta.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                into.push((name, format!("symlink to {}", target.display())));
            } else if meta.is_dir() {
                into.push((format!("{name}/"), format!("directory {mode:o}")));
                walk(base, &path, into);
            } else {
                let content = fs::read_to_string(&path).unwrap();
                into.push((
                    name,
                    format!(
                        "file {mode:o} modified {}.{:09}: {content:?}",
                        meta.mtime(),
                        meta.mtime_nsec()
                    ),
                ));
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// Assert that `name` is live for exactly `domains`, and that Pebble issued it and holds it
/// valid; returns its serial.
fn assert_live(setup: &Setup, name: &str, domains: &[&str]) -> String {
    let cert = setup.live(name).join("cert.pem");
    assert!(cert.exists(), "{name} is not installed");
    let mut expected: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
    expected.sort();
    assert_eq!(sans(&cert), expected, "{name}: names");
    let serial = serial(&cert);
    assert_eq!(
        setup.pebble.cert_status(&serial)["Status"],
        "Valid",
        "{name}: Pebble's view of serial {serial}"
    );
    serial
}

/// `certkeeper status --json`'s row for `name`.
fn status_row(setup: &Setup, name: &str) -> serde_json::Value {
    let output = setup.certkeeper(&["status", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    rows.into_iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no status row for {name}"))
}

/// `config/webroot.toml`, unchanged but for what points it at this test: its two web roots
/// (`/var/www/html`, `/srv/shop/public`), a state directory, the embedded listener on
/// `listen` (for the certificate with `webroot = false`), and Pebble instead of Let's
/// Encrypt.
fn webroot_example(setup: &Setup, www: &Path, shop: &Path, listen: &str) -> String {
    let example = fs::read_to_string(WEBROOT_EXAMPLE).unwrap();
    let what = "config/webroot.toml";
    let text = replace_once(
        what,
        &example,
        "\"/var/www/html\"",
        &format!("{:?}", www.display().to_string()),
    );
    let text = replace_once(
        what,
        &text,
        "\"/srv/shop/public\"",
        &format!("{:?}", shop.display().to_string()),
    );
    let text = replace_once(
        what,
        &text,
        "\n[http01]\n",
        &format!("\n[http01]\nlisten = [\"{listen}\"]\n"),
    );
    let text = replace_once(
        what,
        &text,
        "directory = \"https://acme-v02.api.letsencrypt.org/directory\"\n",
        &pebble_keys(setup),
    );
    format!("state_dir = \"{}\"\n{text}", setup.state_dir.display())
}

/// `config/webroot.toml` as shipped: `www` through the `[http01]` web root, `shop` through
/// its own (a site with a `.well-known` of its own), `status` through the embedded listener
/// behind nginx's proxy `location`; one `certkeeper renew` issues all three through nginx on
/// Pebble's validation port, and the web roots are left exactly as they were.
#[test]
fn the_webroot_example_issues_through_nginx_and_leaves_the_sites_as_they_were() {
    let setup = Setup::new(PebbleOptions::default());
    let dir = setup.dir.path();
    let www = site(dir, "www", &[("index.html", "www\n")]);
    let shop = site(
        dir,
        "shop",
        &[
            ("index.html", "shop\n"),
            (
                ".well-known/security.txt",
                "Contact: mailto:security@example.com\n",
            ),
        ],
    );
    let listen = format!("127.0.0.1:{}", free_port());
    fs::write(&setup.config, webroot_example(&setup, &www, &shop, &listen)).unwrap();
    let location = proxy_location(&listen);
    let nginx = Nginx::start_http(
        &dir.join("nginx"),
        setup.pebble.http01_port,
        &[
            ("www.example.com example.com", &root_directive(&www)),
            ("shop.example.com", &root_directive(&shop)),
            ("status.example.com", &location),
        ],
    );
    let (www_before, shop_before) = (snapshot(&www), snapshot(&shop));

    let output = setup.certkeeper(&["renew"]);
    assert!(
        output.status.success(),
        "renew failed; nginx:\n{}",
        nginx.error_log()
    );

    assert_live(&setup, "www", &["www.example.com", "example.com"]);
    assert_live(&setup, "shop", &["shop.example.com"]);
    assert_live(&setup, "status", &["status.example.com"]);
    assert_eq!(
        snapshot(&www),
        www_before,
        "the token files and the directories certkeeper created are gone"
    );
    assert_eq!(
        snapshot(&shop),
        shop_before,
        "the site's own .well-known is as it was"
    );
}

/// The proxy setup: nginx on Pebble's validation port with the documented `location` block
/// in front of certkeeper's embedded listener on a loopback port.
#[test]
fn the_proxy_setup_issues_through_nginx_in_front_of_the_embedded_listener() {
    let setup = Setup::new(PebbleOptions::default());
    let listen = format!("127.0.0.1:{}", free_port());
    write_inventory(
        &setup,
        &format!("listen = [\"{listen}\"]"),
        "[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\", \"example.com\"]\n",
    );
    let nginx = Nginx::start_http(
        &setup.dir.path().join("nginx"),
        setup.pebble.http01_port,
        &[("_", &proxy_location(&listen))],
    );

    let output = setup.certkeeper(&["renew"]);
    assert!(
        output.status.success(),
        "renew failed; nginx:\n{}",
        nginx.error_log()
    );
    assert_live(&setup, "www", &["www.example.com", "example.com"]);
}

/// `.well-known -> elsewhere`, planted by whoever can write to the web root, is not followed:
/// the renewal of a live certificate fails naming the link, the certificate stays live, and
/// a certificate ordered for the first time through such a web root is not installed.
/// Nothing appears where the links point; the links are left for the administrator to see.
#[test]
fn a_planted_symlink_is_not_followed_and_the_live_certificate_is_kept() {
    let setup = Setup::new(PebbleOptions::default());
    let dir = setup.dir.path();
    let www = site(dir, "www", &[("index.html", "www\n")]);
    let fresh = site(dir, "fresh", &[("index.html", "fresh\n")]);
    let listen = format!("127.0.0.1:{}", free_port());
    let http01 = format!(
        "listen = [\"{listen}\"]\nwebroot = {:?}",
        www.display().to_string()
    );
    write_inventory(
        &setup,
        &http01,
        "[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n",
    );
    let nginx = Nginx::start_http(
        &dir.join("nginx"),
        setup.pebble.http01_port,
        &[
            ("www.example.com", &root_directive(&www)),
            ("fresh.example.com", &root_directive(&fresh)),
        ],
    );
    let output = setup.certkeeper(&["renew"]);
    assert!(
        output.status.success(),
        "first issuance; nginx:\n{}",
        nginx.error_log()
    );
    let live_serial = assert_live(&setup, "www", &["www.example.com"]);

    let elsewhere = dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    for root in [&www, &fresh] {
        symlink(&elsewhere, root.join(".well-known")).unwrap();
    }
    write_inventory(
        &setup,
        &http01,
        &format!(
            "[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n\n\
             [[certificate]]\nname = \"fresh\"\ndomains = [\"fresh.example.com\"]\nwebroot = {:?}\n",
            fresh.display().to_string()
        ),
    );
    let (www_before, fresh_before) = (snapshot(&www), snapshot(&fresh));

    let output = setup.certkeeper(&["renew", "--force"]);

    assert_eq!(output.status.code(), Some(1), "both attempts fail");
    for (name, root) in [("www", &www), ("fresh", &fresh)] {
        let link = root.join(".well-known").display().to_string();
        assert!(
            stderr(&output).contains(&link),
            "{name}: the error names {link}"
        );
        let row = status_row(&setup, name);
        assert_eq!(row["consecutive_failures"], 1, "{name}: {row}");
        assert!(
            row["last_error"]
                .as_str()
                .unwrap_or_default()
                .contains(&link),
            "{name}: status names {link}: {row}"
        );
    }
    assert!(
        snapshot(&elsewhere).is_empty(),
        "nothing is written where the links point: {:?}",
        snapshot(&elsewhere)
    );
    assert_eq!(snapshot(&www), www_before, "the link is left in place");
    assert_eq!(snapshot(&fresh), fresh_before, "the link is left in place");
    assert_eq!(
        serial(&setup.live("www").join("cert.pem")),
        live_serial,
        "the live certificate is kept"
    );
    assert_eq!(setup.versions("www"), ["v0001"], "nothing new installed");
    assert!(
        !setup.live("fresh").exists(),
        "nothing installed for the first order"
    );
}

/// `certkeeper run` answers through the web root as `renew` does: the certificate is issued
/// and installed, the web root is as it was, and SIGTERM stops the daemon cleanly.
/// The daemon answers through the web root, and with no certificate on the embedded
/// responder it leaves `[http01] listen` alone: the web server on port 80 owns that address
/// (here another socket holds it, and the daemon still starts).
#[test]
fn the_daemon_answers_through_the_web_root() {
    let setup = Setup::new(PebbleOptions::default());
    let dir = setup.dir.path();
    let www = site(dir, "www", &[("index.html", "www\n")]);
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    write_inventory(
        &setup,
        &format!(
            "listen = [\"{}\"]\nwebroot = {:?}",
            held.local_addr().unwrap(),
            www.display().to_string()
        ),
        "[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\", \"example.com\"]\n",
    );
    let nginx = Nginx::start_http(
        &dir.join("nginx"),
        setup.pebble.http01_port,
        &[("_", &root_directive(&www))],
    );
    let before = snapshot(&www);
    let mut daemon = setup.spawn_daemon(&[]);

    let cert = setup.live("www").join("cert.pem");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(cert.exists() && snapshot(&www) == before) {
        assert!(
            Instant::now() < deadline,
            "not installed with a clean web root within 60 s: {:?}\ndaemon:\n{}\nnginx:\n{}",
            snapshot(&www),
            daemon.log_text(),
            nginx.error_log()
        );
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "the daemon exited:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_live(&setup, "www", &["www.example.com", "example.com"]);

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(45)), Some(0));
    assert_eq!(snapshot(&www), before);
    drop(held);
}

/// `certkeeper renew` with only webroot certificates needs no listener of its own: its
/// `[http01] listen` address may be held by something else.
#[test]
fn renew_with_only_webroot_certificates_leaves_the_listen_address_alone() {
    let setup = Setup::new(PebbleOptions::default());
    let dir = setup.dir.path();
    let www = site(dir, "www", &[("index.html", "www\n")]);
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    write_inventory(
        &setup,
        &format!(
            "listen = [\"{}\"]\nwebroot = {:?}",
            held.local_addr().unwrap(),
            www.display().to_string()
        ),
        "[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n",
    );
    let nginx = Nginx::start_http(
        &dir.join("nginx"),
        setup.pebble.http01_port,
        &[("_", &root_directive(&www))],
    );
    let before = snapshot(&www);

    let output = setup.certkeeper(&["renew"]);
    assert!(
        output.status.success(),
        "renew failed; nginx:\n{}",
        nginx.error_log()
    );
    assert_live(&setup, "www", &["www.example.com"]);
    assert_eq!(snapshot(&www), before);
    drop(held);
}

/// The README shows the proxy setup as exactly the snippet the tests above run.
#[test]
fn the_readme_shows_the_tested_proxy_snippet() {
    let readme = fs::read_to_string(README).unwrap();
    let block = format!("```nginx\n{NGINX_PROXY_LOCATION}```\n");
    assert_eq!(
        readme.matches(&block).count(),
        1,
        "README.md should show the proxy setup as this block, once:\n{block}"
    );
    assert!(
        readme.contains(&format!("listen = [\"{DOCUMENTED_LISTENER}\"]")),
        "the README configures the listener the snippet passes to ({DOCUMENTED_LISTENER})"
    );
}

//! `certkeeper import-certbot` on a real certbot lineage: Debian's certbot obtains a
//! certificate from a real Pebble (with EAB, and a DigiCert-style `?action=renew&orderId=...`
//! server URL), certkeeper imports it, the placeholders are filled in the way the command
//! asks, and certkeeper then keeps the adopted certificate until it is due, and renews it from
//! the same CA when forced. Lineages certbot validated through a webroot, manual DNS-01
//! hooks or its dns-rfc2136 plugin keep their challenge; the TSIG secret stays in certbot's
//! credentials file.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::hostile::{Victims, attacker, not_owned_by, open_to_others};
use support::{PebbleOptions, Setup, key_matches, sans, serial, stderr, stdout};

const CERTBOT: &str = "/usr/bin/certbot";

fn show(what: &str, output: &Output) {
    eprintln!(
        "$ {what}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// `certbot certonly --standalone` against the Pebble of `setup`, into `config_dir`.
fn certbot_certonly(setup: &Setup, config_dir: &Path, server: &str, domains: &[&str]) {
    assert!(
        Path::new(CERTBOT).exists(),
        "{CERTBOT} is missing: this test runs Debian's certbot; install it with `apt-get install -y certbot`"
    );
    let (kid, hmac) = setup.pebble.eab.clone().unwrap();
    let work = setup.dir.path().join("certbot-work");
    let logs = setup.dir.path().join("certbot-logs");
    let mut command = Command::new(CERTBOT);
    command
        .args([
            "certonly",
            "--standalone",
            "--non-interactive",
            "--agree-tos",
        ])
        .args(["-m", "ops@example.com", "--no-eff-email"])
        .args(["--server", server])
        // `=`: a base64url key may start with '-', which certbot would take for an option.
        .arg(format!("--eab-kid={kid}"))
        .arg(format!("--eab-hmac-key={hmac}"))
        .args(["--key-type", "ecdsa", "--elliptic-curve", "secp384r1"])
        .args(["--http-01-port", &setup.pebble.http01_port.to_string()])
        .args(["--deploy-hook", &deploy_hook(setup)])
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--work-dir")
        .arg(&work)
        .arg("--logs-dir")
        .arg(&logs)
        .args(["--cert-name", "shop"]);
    for domain in domains {
        command.args(["-d", domain]);
    }
    // certbot (python-requests) must trust Pebble's HTTPS listener.
    let output = command
        .env("REQUESTS_CA_BUNDLE", &setup.pebble.tls_ca_file)
        .output()
        .unwrap();
    show("certbot certonly ...", &output);
    assert!(
        output.status.success(),
        "certbot failed; its log:\n{}\nPebble:\n{}",
        fs::read_to_string(logs.join("letsencrypt.log")).unwrap_or_default(),
        setup.pebble.logs()
    );
}

/// Pebble for certbot: it rejects 5% of nonces by default to exercise clients, and certbot
/// 2.1 retries a bad nonce only once (then fails with an unrelated AttributeError), so with
/// several certbot runs per test binary that would make these tests fail now and then for
/// certbot's sake. Every other test keeps Pebble's default, so certkeeper meets bad nonces.
fn certbot_pebble() -> PebbleOptions {
    PebbleOptions::default().env("PEBBLE_WFE_NONCEREJECT", "0")
}

/// A harmless deploy hook that leaves a mark in the test's directory.
fn deploy_hook(setup: &Setup) -> String {
    format!("touch {}/deployed-by-$(id -u)", marks(setup).display())
}

/// Where the deploy hook leaves its mark: writable by root's certbot and by certkeeper's
/// hooks, which run as the state directory's owner.
fn marks(setup: &Setup) -> PathBuf {
    let marks = setup.dir.path().join("marks");
    if !marks.exists() {
        fs::create_dir(&marks).unwrap();
        fs::set_permissions(&marks, fs::Permissions::from_mode(0o1777)).unwrap();
    }
    marks
}

fn certkeeper(args: &[&str], config: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certkeeper"));
    if let Some(config) = config {
        command.arg("--config").arg(config);
    } else {
        // import-certbot must not need an inventory: point at one that does not exist.
        command.env("CERTKEEPER_CONFIG", "/nonexistent/certkeeper.toml");
    }
    let output = command
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    show(&format!("certkeeper {}", args.join(" ")), &output);
    output
}

fn versions(state_dir: &Path, name: &str) -> usize {
    fs::read_dir(state_dir.join("archive").join(name))
        .map(Iterator::count)
        .unwrap_or(0)
}

#[test]
fn adopts_a_certbot_lineage_and_renews_it_only_when_due_or_forced() {
    let setup = Setup::new(certbot_pebble());
    let certbot_dir = setup.dir.path().join("letsencrypt");
    let server = format!("{}?action=renew&orderId=4242", setup.pebble.directory_url);
    let domains = ["shop.example.com", "checkout.example.com"];
    certbot_certonly(&setup, &certbot_dir, &server, &domains);
    let certbot_cert = certbot_dir.join("live/shop/cert.pem");
    let certbot_serial = serial(&certbot_cert);

    // Run as root, with a state directory that belongs to another user, as the packaged one
    // belongs to `certkeeper`: what the import creates there is theirs from the start, and
    // root's later commands act as that user too.
    let user = attacker();
    open_to_others(setup.dir.path());
    open_to_others(setup.pebble.dir.path());
    let state_dir = setup.state_dir.clone();
    fs::create_dir_all(&state_dir).unwrap();
    user.chown(&state_dir);

    let inventory = setup.dir.path().join("imported.toml");
    let output = certkeeper(
        &[
            "import-certbot",
            "--certbot-dir",
            certbot_dir.to_str().unwrap(),
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--output",
            inventory.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    let messages = stderr(&output);
    assert!(messages.contains("adopted shop"), "{messages}");
    assert!(
        messages.contains("eab_kid and eab_hmac_key_file of [[ca]] \"localhost\""),
        "the command names what to fill in: {messages}"
    );

    let text = fs::read_to_string(&inventory).unwrap();
    eprintln!("--- imported inventory\n{text}");
    for expected in [
        format!("directory = \"{}\"\n", setup.pebble.directory_url),
        "domains = [\"shop.example.com\", \"checkout.example.com\"]\n".to_owned(),
        "key_type = \"ecdsa-p384\"\norder_id = \"4242\"\naction = \"renew\"\n".to_owned(),
        format!("listen = [\"[::]:{}\"]\n", setup.pebble.http01_port),
        format!("deploy_hook = \"{}\"\n", deploy_hook(&setup)),
    ] {
        assert!(text.contains(&expected), "missing {expected:?}");
    }

    // The adopted lineage is certbot's certificate, in certkeeper's layout.
    let live = state_dir.join("live/shop");
    assert_eq!(serial(&live.join("cert.pem")), certbot_serial);
    assert!(key_matches(
        &live.join("cert.pem"),
        &live.join("privkey.pem")
    ));
    assert_eq!(
        sans(&live.join("fullchain.pem")),
        ["checkout.example.com", "shop.example.com"]
    );
    assert_eq!(not_owned_by(&state_dir, user.uid), Vec::<PathBuf>::new());
    let key = fs::metadata(live.join("privkey.pem")).unwrap();
    assert_eq!((key.uid(), key.gid()), (user.uid, user.gid));

    // Unfinished, the inventory is refused.
    let check = certkeeper(&["check"], Some(&inventory));
    assert_eq!(check.status.code(), Some(78), "FILL-ME must not pass check");

    // Fill in what the command asked for (and trust Pebble's HTTPS listener).
    let filled = setup.fill_imported(&text);
    assert_ne!(filled, text, "the placeholders were there to fill");
    fs::write(&inventory, filled).unwrap();
    assert_eq!(
        certkeeper(&["check"], Some(&inventory)).status.code(),
        Some(0)
    );

    // Nothing is due: the adopted certificate is kept.
    let renew = certkeeper(&["renew"], Some(&inventory));
    assert_eq!(renew.status.code(), Some(0));
    assert!(
        stdout(&renew).contains("shop: not due"),
        "{}",
        stdout(&renew)
    );
    assert_eq!(serial(&live.join("cert.pem")), certbot_serial);
    assert_eq!(versions(&state_dir, "shop"), 1);

    // Forced, it renews from the same CA with the DigiCert-style order settings.
    let forced = certkeeper(&["renew", "--force"], Some(&inventory));
    assert_eq!(forced.status.code(), Some(0), "{}", setup.pebble.logs());
    let renewed: PathBuf = live.join("cert.pem");
    assert_ne!(serial(&renewed), certbot_serial);
    assert_eq!(sans(&renewed), ["checkout.example.com", "shop.example.com"]);
    assert!(key_matches(&renewed, &live.join("privkey.pem")));
    assert_eq!(versions(&state_dir, "shop"), 2);

    // A second import into the same state directory leaves certkeeper's lineage alone.
    let again = setup.dir.path().join("again.toml");
    let output = certkeeper(
        &[
            "import-certbot",
            "--certbot-dir",
            certbot_dir.to_str().unwrap(),
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--output",
            again.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(stderr(&output).contains("already has this lineage"));
    assert_eq!(versions(&state_dir, "shop"), 2);

    // An existing output file is never overwritten, and nothing is done then.
    let output = certkeeper(
        &[
            "import-certbot",
            "--certbot-dir",
            certbot_dir.to_str().unwrap(),
            "--output",
            again.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("already exists"));
}

/// The certbot directory of a fresh lineage `shop` (real certbot, real Pebble).
fn certbot_lineage(setup: &Setup) -> PathBuf {
    let certbot_dir = setup.dir.path().join("letsencrypt");
    certbot_certonly(
        setup,
        &certbot_dir,
        &setup.pebble.directory_url,
        &["shop.example.com"],
    );
    certbot_dir
}

fn import(certbot_dir: &Path, state_dir: &Path, output: &Path) -> Output {
    certkeeper(
        &[
            "import-certbot",
            "--certbot-dir",
            certbot_dir.to_str().unwrap(),
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        None,
    )
}

#[test]
fn an_import_as_root_changes_no_owner_even_while_the_state_owner_swaps_directories() {
    let user = attacker();
    let setup = Setup::new(certbot_pebble());
    let certbot_dir = certbot_lineage(&setup);
    open_to_others(setup.dir.path());
    let state_dir = setup.state_dir.clone();
    fs::create_dir(&state_dir).unwrap();
    user.chown(&state_dir);
    let victims = Victims::new(setup.dir.path());
    let before = victims.snapshot();

    // While root imports, the state directory's owner keeps exchanging its archive/ with a
    // link to root's directory, the swap that used to hand root's files over to it.
    let decoy = state_dir.join("decoy");
    std::os::unix::fs::symlink(&victims.dir, &decoy).unwrap();
    user.chown(&decoy);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = std::sync::Arc::clone(&stop);
        let state_dir = state_dir.clone();
        std::thread::spawn(move || {
            use rustix::fs::{CWD, RenameFlags, renameat_with};
            let mut swaps = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && swaps < 1_000_000 {
                let archive = state_dir.join("archive");
                if renameat_with(
                    CWD,
                    &archive,
                    CWD,
                    state_dir.join("decoy"),
                    RenameFlags::EXCHANGE,
                )
                .is_ok()
                {
                    swaps += 1;
                }
                std::thread::yield_now();
            }
            swaps
        })
    };
    let output = import(&certbot_dir, &state_dir, &setup.dir.path().join("out.toml"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("REPORT import race: {swaps} directory swaps during the import");
    assert_eq!(victims.snapshot(), before, "root's directory was changed");
    // Whatever the race did to the import, nothing it created is root's.
    assert_eq!(not_owned_by(&state_dir, user.uid), Vec::<PathBuf>::new());
    assert!(output.status.code().is_some());

    // Undisturbed, the same import adopts the lineage.
    fs::remove_dir_all(&state_dir).unwrap();
    fs::create_dir(&state_dir).unwrap();
    user.chown(&state_dir);
    let output = import(
        &certbot_dir,
        &state_dir,
        &setup.dir.path().join("again.toml"),
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(not_owned_by(&state_dir, user.uid), Vec::<PathBuf>::new());
}

#[test]
fn a_certbot_directory_with_links_out_of_it_or_other_owners_is_refused() {
    let setup = Setup::new(certbot_pebble());
    let certbot_dir = certbot_lineage(&setup);
    let outside = setup.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();

    // A root-only key and a shadow-like file outside certbot's directory.
    let secret_key = outside.join("other.key");
    let key = support::openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
    ]);
    fs::write(&secret_key, &key).unwrap();
    fs::set_permissions(&secret_key, fs::Permissions::from_mode(0o600)).unwrap();
    let shadow = outside.join("shadow");
    fs::write(&shadow, "root:$6$SHADOWSECRETHASH:19000:0:99999:7:::\n").unwrap();
    fs::set_permissions(&shadow, fs::Permissions::from_mode(0o600)).unwrap();

    // certbot's privkey.pem link now leads out of its directory, and a renewal file is a link
    // to the shadow-like file.
    let privkey = certbot_dir.join("live/shop/privkey.pem");
    fs::remove_file(&privkey).unwrap();
    std::os::unix::fs::symlink(&secret_key, &privkey).unwrap();
    std::os::unix::fs::symlink(&shadow, certbot_dir.join("renewal/evil.conf")).unwrap();

    let state_dir = setup.state_dir.clone();
    let output = import(&certbot_dir, &state_dir, &setup.dir.path().join("out.toml"));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert_ne!(output.status.code(), Some(0));
    assert!(said.contains("outside certbot's directory"), "{said}");
    assert!(
        !said.contains("SHADOWSECRETHASH"),
        "file content was quoted"
    );
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!said.contains(&key_body[..16]), "the key was quoted");
    assert!(
        !state_dir.join("live/shop").exists(),
        "the outside key was adopted"
    );

    // A certbot directory that someone other than root could change is refused outright.
    fs::remove_file(certbot_dir.join("renewal/evil.conf")).unwrap();
    let user = attacker();
    std::os::unix::fs::lchown(&certbot_dir, Some(user.uid), None).unwrap();
    let output = import(
        &certbot_dir,
        &state_dir,
        &setup.dir.path().join("out2.toml"),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("belongs to uid {}", user.uid)));
    std::os::unix::fs::lchown(&certbot_dir, Some(0), None).unwrap();
    fs::set_permissions(&certbot_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let output = import(
        &certbot_dir,
        &state_dir,
        &setup.dir.path().join("out3.toml"),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("writable by group or others"));
}

/// The TSIG secret of the credentials files below (base64 of `e2e-tsig-secret-of-import-test-key`).
const TSIG_SECRET: &str = "ZTJlLXRzaWctc2VjcmV0LW9mLWltcG9ydC10ZXN0LWtleQ==";
const TSIG_BYTES: &[u8] = b"e2e-tsig-secret-of-import-test-key";

/// `certbot certonly --cert-name NAME -d DOMAIN...` with `args` (the authenticator's) against
/// the Pebble of `setup`, into `config_dir`.
fn certbot_with(setup: &Setup, config_dir: &Path, name: &str, args: &[&str], domains: &[&str]) {
    assert!(
        Path::new(CERTBOT).exists(),
        "{CERTBOT} is missing: this test runs Debian's certbot; install it with `apt-get install -y certbot`"
    );
    let (kid, hmac) = setup.pebble.eab.clone().unwrap();
    let logs = setup.dir.path().join("certbot-logs");
    let mut command = Command::new(CERTBOT);
    command
        .args(["certonly", "--non-interactive", "--agree-tos"])
        .args(["-m", "ops@example.com", "--no-eff-email"])
        .args(["--server", &setup.pebble.directory_url])
        // `=`: a base64url key may start with '-', which certbot would take for an option.
        .arg(format!("--eab-kid={kid}"))
        .arg(format!("--eab-hmac-key={hmac}"))
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--work-dir")
        .arg(setup.dir.path().join("certbot-work"))
        .arg("--logs-dir")
        .arg(&logs)
        .args(["--cert-name", name])
        .args(args);
    for domain in domains {
        command.args(["-d", domain]);
    }
    let output = command
        .env("REQUESTS_CA_BUNDLE", &setup.pebble.tls_ca_file)
        .output()
        .unwrap();
    show(&format!("certbot certonly --cert-name {name} ..."), &output);
    assert!(
        output.status.success(),
        "certbot failed; its log:\n{}\nPebble:\n{}",
        fs::read_to_string(logs.join("letsencrypt.log")).unwrap_or_default(),
        setup.pebble.logs()
    );
}

/// An executable script at `path` that appends `NAME $CERTBOT_DOMAIN $#` to `log`.
fn hook_script(path: &Path, log: &Path) {
    let name = path.file_stem().unwrap().to_str().unwrap();
    fs::write(
        path,
        format!(
            "#!/bin/sh\necho \"{name} $CERTBOT_DOMAIN $#\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A certbot-dns-rfc2136 credentials file, `mode`, with the algorithm line when given.
fn credentials_file(path: &Path, algorithm: Option<&str>) {
    let mut text = format!(
        "# Target DNS server\ndns_rfc2136_server = 192.0.2.53\ndns_rfc2136_port = 5353\n\
         # TSIG key name\ndns_rfc2136_name = certbot.example.\n\
         # TSIG key secret\ndns_rfc2136_secret = {TSIG_SECRET}\n"
    );
    if let Some(algorithm) = algorithm {
        text.push_str(&format!("dns_rfc2136_algorithm = {algorithm}\n"));
    }
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// `renewal/FROM.conf` of a manual DNS-01 lineage rewritten as certbot-dns-rfc2136 writes a
/// renewal file (Debian's test machines have no certbot-dns-rfc2136 to write it, and it
/// would need a DNS server that accepts its updates), saved as `renewal/TO.conf`. The
/// lineage's certificate files stay `FROM`'s.
fn as_rfc2136_lineage(certbot_dir: &Path, from: &str, to: &str, credentials: &Path) {
    let text = fs::read_to_string(certbot_dir.join(format!("renewal/{from}.conf"))).unwrap();
    let mut rewritten = String::new();
    for line in text.lines() {
        if line.starts_with("pref_challs") || line.starts_with("manual_") {
            continue;
        }
        if line == "authenticator = manual" {
            rewritten.push_str(&format!(
                "authenticator = dns-rfc2136\ndns_rfc2136_credentials = {}\n\
                 dns_rfc2136_propagation_seconds = 30\n",
                credentials.display()
            ));
            continue;
        }
        rewritten.push_str(line);
        rewritten.push('\n');
    }
    assert!(rewritten.contains("dns-rfc2136"), "{text}");
    let path = certbot_dir.join(format!("renewal/{to}.conf"));
    fs::write(&path, rewritten).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
}

/// Webroot, manual DNS-01 and dns-rfc2136 lineages: what Debian's certbot wrote (against a
/// real Pebble that skips validation, PEBBLE_VA_ALWAYS_VALID, so no web or DNS server is
/// needed: the subject is the import) becomes certkeeper's challenge configuration, which
/// `certkeeper check` and the config loader accept once the one choice certbot's files
/// cannot answer is made; the TSIG secret is read from certbot's own credentials file and
/// appears nowhere else; lineages certkeeper cannot take over are refused and not adopted.
#[test]
fn webroot_dns_rfc2136_and_manual_lineages_keep_their_challenges() {
    let setup = Setup::new(certbot_pebble().env("PEBBLE_VA_ALWAYS_VALID", "1"));
    let certbot_dir = setup.dir.path().join("letsencrypt");
    let www = setup.dir.path().join("www");
    for site in ["main", "a", "b", "acme"] {
        fs::create_dir_all(www.join(site)).unwrap();
    }
    let hooks = setup.dir.path().join("hooks");
    fs::create_dir(&hooks).unwrap();
    let hook_log = setup.dir.path().join("hooks.log");
    let (auth, cleanup) = (hooks.join("auth.sh"), hooks.join("cleanup.sh"));
    hook_script(&auth, &hook_log);
    hook_script(&cleanup, &hook_log);
    let webroot = |site: &str| www.join(site).display().to_string();

    certbot_with(
        &setup,
        &certbot_dir,
        "www",
        &["--webroot", "-w", &webroot("main")],
        &["www.example.com", "example.com"],
    );
    certbot_with(
        &setup,
        &certbot_dir,
        "split",
        &[
            "--webroot",
            "-w",
            &webroot("a"),
            "-d",
            "a.example.com",
            "-w",
            &webroot("b"),
        ],
        &["b.example.com"],
    );
    let manual = [
        "--manual",
        "--preferred-challenges",
        "dns",
        "--manual-auth-hook",
        auth.to_str().unwrap(),
        "--manual-cleanup-hook",
        cleanup.to_str().unwrap(),
    ];
    certbot_with(
        &setup,
        &certbot_dir,
        "wild",
        &manual,
        &["*.example.com", "example.com"],
    );
    certbot_with(
        &setup,
        &certbot_dir,
        "zone",
        &manual,
        &["example.net", "*.example.net"],
    );
    let certbot_ran = fs::read_to_string(&hook_log).unwrap();
    assert!(
        certbot_ran.contains("auth example.com 0"),
        "certbot ran the manual hooks: {certbot_ran}"
    );

    // The lineage "zone" becomes certbot-dns-rfc2136's, with its credentials outside
    // certbot's directory (where certbot's documentation puts them); "legacy" uses a file
    // without an algorithm (HMAC-MD5 to certbot) and "exposed" one in a directory others
    // may write: both are refused.
    let secrets = setup.dir.path().join("secrets");
    fs::create_dir(&secrets).unwrap();
    fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700)).unwrap();
    let ini = secrets.join("rfc2136.ini");
    credentials_file(&ini, Some("HMAC-SHA512"));
    as_rfc2136_lineage(&certbot_dir, "zone", "zone", &ini);
    let legacy_ini = certbot_dir.join("legacy.ini");
    credentials_file(&legacy_ini, None);
    as_rfc2136_lineage(&certbot_dir, "wild", "legacy", &legacy_ini);
    let open = setup.dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let exposed_ini = open.join("rfc2136.ini");
    credentials_file(&exposed_ini, Some("HMAC-SHA256"));
    as_rfc2136_lineage(&certbot_dir, "wild", "exposed", &exposed_ini);

    let state_dir = setup.state_dir.clone();
    let inventory = setup.dir.path().join("imported.toml");
    let output = import(&certbot_dir, &state_dir, &inventory);
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "two lineages are refused");
    assert!(!said.contains(TSIG_SECRET) && !said.contains(&TSIG_SECRET[..16]));
    let messages = stderr(&output);
    let refusal = |name: &str| {
        messages
            .lines()
            .find(|line| line.starts_with(&format!("error: {name}: ")))
            .unwrap_or_else(|| panic!("no error for {name}: {messages}"))
            .to_owned()
    };
    let legacy = refusal("legacy");
    assert!(legacy.contains(legacy_ini.to_str().unwrap()), "{legacy}");
    assert!(legacy.contains("HMAC-MD5"), "{legacy}");
    assert!(legacy.ends_with("not imported"), "{legacy}");
    let exposed = refusal("exposed");
    assert!(exposed.contains("writable by group or others"), "{exposed}");
    for adopted in ["www", "split", "wild", "zone"] {
        assert!(
            state_dir
                .join("live")
                .join(adopted)
                .join("cert.pem")
                .exists(),
            "{adopted} was not adopted: {messages}"
        );
    }
    for refused in ["legacy", "exposed"] {
        assert!(!state_dir.join("live").join(refused).exists(), "{refused}");
    }
    assert!(
        messages.contains("webroot of [[certificate]] \"split\""),
        "the command names the choice to make: {messages}"
    );

    let text = fs::read_to_string(&inventory).unwrap();
    eprintln!("--- imported inventory\n{text}");
    assert!(!text.contains(TSIG_SECRET) && !text.contains(&TSIG_SECRET[..16]));
    assert!(!text.contains("legacy") && !text.contains("exposed"));

    // Unfinished (EAB, and the split lineage's webroot), the inventory is refused.
    let check = certkeeper(&["check"], Some(&inventory));
    assert_eq!(check.status.code(), Some(78), "FILL-ME must not pass check");
    let filled = setup.fill_imported(&text).replace(
        "webroot = \"FILL-ME\"",
        &format!("webroot = \"{}\"", webroot("acme")),
    );
    fs::write(&inventory, &filled).unwrap();
    let check = certkeeper(&["check"], Some(&inventory));
    assert_eq!(check.status.code(), Some(0));
    let said = format!("{}{}", stdout(&check), stderr(&check));
    assert!(!said.contains(TSIG_SECRET) && !said.contains(&TSIG_SECRET[..16]));

    // What the inventory means, as the daemon will load it.
    let loaded =
        certkeeper_config::load(&inventory, &certkeeper_config::Environment::empty()).unwrap();
    let spec = &loaded.inventory;
    let challenge = |name: &str| {
        spec.challenge(&certkeeper_core::CertName::new(name).unwrap())
            .clone()
    };
    use certkeeper_core::challenge::{ChallengeSpec, DnsProviderKind, Propagation, TsigAlgorithm};
    assert_eq!(
        challenge("www"),
        ChallengeSpec::Http01 {
            webroot: Some(www.join("main"))
        }
    );
    assert_eq!(
        challenge("split"),
        ChallengeSpec::Http01 {
            webroot: Some(www.join("acme"))
        }
    );
    let dns = |provider: &str| ChallengeSpec::Dns01 {
        provider: provider.to_owned(),
    };
    assert_eq!(challenge("wild"), dns("manual"));
    assert_eq!(challenge("zone"), dns("rfc2136"));

    let rfc2136 = spec.dns_provider("rfc2136").unwrap();
    let DnsProviderKind::Rfc2136(tsig) = &rfc2136.kind else {
        panic!("{rfc2136:?}");
    };
    assert_eq!(tsig.server, "192.0.2.53:5353".parse().unwrap());
    assert_eq!(tsig.key_name, "certbot.example");
    assert_eq!(tsig.algorithm, TsigAlgorithm::HmacSha512);
    assert_eq!(
        tsig.secret.expose(),
        TSIG_BYTES,
        "the secret is certbot's file's"
    );
    assert!(text.contains(&format!("secret_file = \"{}\"\n", ini.display())));

    let hook = spec.dns_provider("manual").unwrap();
    assert_eq!(hook.propagation, Propagation::None);
    assert!(!hook.follow_cname);
    let DnsProviderKind::Hook(hook) = &hook.kind else {
        panic!("{hook:?}");
    };
    let certkeeper_core::HookCommand::Shell(line) = &hook.command else {
        panic!("{hook:?}");
    };

    // certbot's scripts run unchanged behind the provider's command, called the way
    // certkeeper's hook provider calls it.
    fs::write(&hook_log, "").unwrap();
    for action in ["present", "cleanup"] {
        let status = Command::new("/bin/sh")
            .args(["-c", line, "certkeeper-dns-hook", action])
            .args(["_acme-challenge.example.com.", "value"])
            .env("CERTBOT_DOMAIN", "example.com")
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert_eq!(
        fs::read_to_string(&hook_log).unwrap(),
        "auth example.com 0\ncleanup example.com 0\n"
    );
}

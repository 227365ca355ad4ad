//! DNS-01 end to end: the real `certkeeper` binary against a real Pebble whose validation
//! reads a real BIND named (`-dnsserver`), with the records published by RFC 2136 updates
//! signed with TSIG or by the operator's hook scripts calling `nsupdate`.
//!
//! What is checked is what an operator would check: the certificate's names, the TXT
//! records named holds afterwards (none), the live certificate after a failure (unchanged),
//! the number of orders Pebble created, the journal of presented records in the state
//! directory, and that the TSIG secret appears in no output, log or file of certkeeper's.
//! Each test has its own named and Pebble on free ports, so they run in parallel; configs use
//! one-second propagation intervals and every wait is bounded.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::bind::{Bind, DnsPebble, Key, closed_port, tool};
use support::{Daemon, sans, serial, stderr, stdout, write_secret};

/// How long one issuance may take before a wait gives up.
const ISSUE_DEADLINE: Duration = Duration::from_secs(60);

/// A certkeeper installation pointed at one Pebble that validates at one named.
struct Dns01 {
    bind: Bind,
    pebble: DnsPebble,
    dir: tempfile::TempDir,
    config: PathBuf,
    state_dir: PathBuf,
    /// The embedded HTTP-01 listener's address in the configuration.
    http01: SocketAddr,
}

impl Dns01 {
    fn start() -> Self {
        let bind = Bind::start();
        let pebble = DnsPebble::start(bind.addr);
        let dir = tempfile::tempdir().unwrap();
        let http01 = SocketAddr::from(([127, 0, 0, 1], support::pebble::free_port()));
        Self {
            config: dir.path().join("certkeeper.toml"),
            state_dir: dir.path().join("state"),
            bind,
            pebble,
            dir,
            http01,
        }
    }

    /// `key`'s secret in a file of its own (`0600`), as `secret_file` wants it.
    fn secret_file(&self, key: &Key) -> PathBuf {
        let path = self.dir.path().join(format!("{}.secret", key.name));
        write_secret(&path, &format!("{}\n", key.secret));
        path
    }

    /// An RFC 2136 provider `[dns.NAME]` at `server` signing with `key`, checking propagation
    /// every second; `extra` adds or overrides keys.
    fn rfc2136(&self, name: &str, server: SocketAddr, key: &Key, extra: &str) -> String {
        format!(
            "[dns.{name}]\ntype = \"rfc2136\"\nserver = \"{server}\"\nkey_name = \"{key_name}\"\n\
             secret_file = \"{secret}\"\npropagation_interval = \"1s\"\n{extra}\n",
            key_name = key.name,
            secret = self.secret_file(key).display(),
        )
    }

    /// Write the inventory: `tables` (providers, before the certificates) and `certs`.
    fn write_config(&self, tables: &str, certs: &str) {
        let text = format!(
            r#"state_dir = "{state}"

[http01]
listen = ["{http01}"]

[[ca]]
name = "pebble"
directory = "{directory}"
terms_of_service_agreed = true
root_ca_file = "{root}"

{tables}
{certs}"#,
            state = self.state_dir.display(),
            http01 = self.http01,
            directory = self.pebble.directory_url,
            root = self.pebble.tls_ca_file.display(),
        );
        fs::write(&self.config, text).unwrap();
    }

    /// Run `certkeeper --config <ours> ARGS...`.
    fn certkeeper(&self, args: &[&str]) -> Output {
        support::run_certkeeper(&self.config, args)
    }

    /// Start `certkeeper run` in the background, its stderr in a log file.
    fn spawn_daemon(&self, log_name: &str, filter: &str) -> Daemon {
        let log = self.dir.path().join(log_name);
        let child = Command::new(env!("CARGO_BIN_EXE_certkeeper"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env_remove("CERTKEEPER_CONFIG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn live(&self, name: &str) -> PathBuf {
        self.state_dir.join("live").join(name)
    }

    /// The archive versions of a lineage: one per installed certificate.
    fn versions(&self, name: &str) -> usize {
        fs::read_dir(self.state_dir.join("archive").join(name))
            .map(|entries| {
                entries
                    .filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.file_name().to_string_lossy().starts_with('v'))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// The records the journal of presented records lists: (provider, fqdn, value).
    fn journal(&self) -> Vec<(String, String, String)> {
        let path = self.state_dir.join("state").join("dns-presented.journal");
        let Ok(text) = fs::read_to_string(&path) else {
            return Vec::new();
        };
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let field = |name: &str| r[name].as_str().unwrap().to_owned();
                (field("provider"), field("fqdn"), field("value"))
            })
            .collect()
    }

    /// Fail with every log that could say why.
    fn explain(&self) -> String {
        format!(
            "--- pebble\n{}\n--- named\n{}",
            self.pebble.logs(),
            self.bind.log()
        )
    }

    /// `certkeeper status --json`'s row for `name`.
    fn status_row(&self, name: &str) -> serde_json::Value {
        let output = self.certkeeper(&["status", "--json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        rows.into_iter()
            .find(|row| row["name"] == name)
            .unwrap_or_else(|| panic!("no status row for {name}"))
    }
}

/// A `[[certificate]]` answering DNS-01 through `provider`.
fn dns_cert(name: &str, domains: &[&str], provider: &str) -> String {
    let domains: Vec<String> = domains.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "[[certificate]]\nname = \"{name}\"\nca = \"pebble\"\ndomains = [{}]\n\
         challenge = \"dns-01\"\ndns = \"{provider}\"\n",
        domains.join(", ")
    )
}

/// Wait until `done`, at most `timeout`; `what` and `explain` say what was awaited.
fn wait_until(
    what: &str,
    timeout: Duration,
    explain: impl Fn() -> String,
    done: impl Fn() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    names.sort();
    names
}

/// Write an executable script.
fn script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `renew` issued `name` for `domains`, validated at named, which is left without a
/// challenge record, as the journal is.
fn assert_issued(env: &Dns01, output: &Output, name: &str, domains: &[&str]) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stderr(output),
        env.explain()
    );
    let cert = env.live(name).join("cert.pem");
    assert_eq!(
        sans(&cert),
        sorted(domains),
        "{name}: the certificate's names"
    );
    assert_eq!(env.bind.all_txt(), Vec::new(), "no record left at named");
    assert_eq!(env.journal(), Vec::new(), "the journal is empty");
}

#[test]
fn rfc2136_issues_a_wildcard_and_its_apex_without_binding_port_80() {
    let env = Dns01::start();
    // The embedded responder's address is taken: a pass of DNS-01 certificates must not
    // need it.
    let _taken = TcpListener::bind(env.http01).unwrap();
    env.write_config(
        &env.rfc2136("bind", env.bind.addr, &env.bind.key, ""),
        &dns_cert("wild", &["example.test", "*.example.test"], "bind"),
    );
    assert_eq!(env.certkeeper(&["check"]).status.code(), Some(0));

    let output = env.certkeeper(&["renew"]);
    // Both values stood at _acme-challenge.example.test at once: Pebble validated both.
    assert_issued(&env, &output, "wild", &["example.test", "*.example.test"]);
    assert_eq!(env.pebble.orders(), 1);
    let row = env.status_row("wild");
    assert_eq!(row["challenge"], "dns-01 bind", "{row}");
    assert_eq!(row["state"], "valid", "{row}");
}

#[test]
fn a_challenge_name_delegated_by_cname_is_written_in_the_target_zone() {
    let env = Dns01::start();
    // `ck` may not touch _acme-challenge.alias.example.test, only delegated.test: an
    // issuance proves the record went where the CNAME points.
    env.write_config(
        &env.rfc2136("bind", env.bind.addr, &env.bind.key, ""),
        &dns_cert("alias", &["alias.example.test"], "bind"),
    );
    let output = env.certkeeper(&["renew"]);
    assert_issued(&env, &output, "alias", &["alias.example.test"]);
}

/// A hook provider running `command` (TOML: an argv array or a shell line), checking
/// propagation at named.
fn hook_provider(env: &Dns01, name: &str, command: &str) -> String {
    format!(
        "[dns.{name}]\ntype = \"hook\"\ncommand = {command}\npropagation_interval = \"1s\"\n\
         resolvers = [\"{}\"]\n",
        env.bind.addr
    )
}

#[test]
fn a_hook_provider_whose_script_calls_nsupdate() {
    let env = Dns01::start();
    // lego's `exec` convention: `present|cleanup FQDN VALUE`.
    let path = env.dir.path().join("dns-hook");
    script(
        &path,
        &format!(
            r#"#!/bin/sh
set -e
case "$1" in present) op=add ;; cleanup) op=delete ;; *) exit 2 ;; esac
printf 'server {ip} {port}\nupdate %s %s 60 TXT "%s"\nsend\n' "$op" "$2" "$3" | {nsupdate} -k {key}
"#,
            ip = env.bind.addr.ip(),
            port = env.bind.addr.port(),
            nsupdate = tool("nsupdate").display(),
            key = env.bind.key.file.display(),
        ),
    );
    env.write_config(
        // An argv command: `present FQDN VALUE` is appended to it.
        &hook_provider(
            &env,
            "script",
            &format!("[{:?}]", path.display().to_string()),
        ),
        &dns_cert("wild", &["example.test", "*.example.test"], "script"),
    );
    assert_eq!(env.certkeeper(&["check"]).status.code(), Some(0));
    let output = env.certkeeper(&["renew"]);
    assert_issued(&env, &output, "wild", &["example.test", "*.example.test"]);
    assert_eq!(env.status_row("wild")["challenge"], "dns-01 script");
}

#[test]
fn certbot_manual_hooks_run_unchanged_behind_the_one_line_dispatcher() {
    let env = Dns01::start();
    let server = format!("server {} {}", env.bind.addr.ip(), env.bind.addr.port());
    let nsupdate = tool("nsupdate");
    let key = env.bind.key.file.display();
    let log = env.dir.path().join("hooks.log");
    // As certbot users have them for --manual-auth-hook / --manual-cleanup-hook: certbot's
    // variables, no arguments.
    let auth = env.dir.path().join("auth.sh");
    script(
        &auth,
        &format!(
            r#"#!/bin/sh
set -e
echo "auth $CERTBOT_DOMAIN $CERTBOT_VALIDATION" >> {log}
printf '{server}\nupdate add _acme-challenge.%s. 60 TXT "%s"\nsend\n' "$CERTBOT_DOMAIN" "$CERTBOT_VALIDATION" | {nsupdate} -k {key}
"#,
            log = log.display(),
            nsupdate = nsupdate.display(),
        ),
    );
    let cleanup = env.dir.path().join("cleanup.sh");
    script(
        &cleanup,
        &format!(
            r#"#!/bin/sh
set -e
echo "cleanup $CERTBOT_DOMAIN $CERTBOT_VALIDATION" >> {log}
printf '{server}\nupdate delete _acme-challenge.%s. TXT "%s"\nsend\n' "$CERTBOT_DOMAIN" "$CERTBOT_VALIDATION" | {nsupdate} -k {key}
"#,
            log = log.display(),
            nsupdate = nsupdate.display(),
        ),
    );
    // The dispatcher of crates/dns/src/hook.rs, as the README gives it.
    let dispatcher = format!(
        r#"case "$1" in present) exec {} ;; cleanup) exec {} ;; esac"#,
        auth.display(),
        cleanup.display()
    );
    env.write_config(
        &hook_provider(&env, "certbot", &format!("{dispatcher:?}")),
        &dns_cert("wild", &["example.test", "*.example.test"], "certbot"),
    );
    let output = env.certkeeper(&["renew"]);
    assert_issued(&env, &output, "wild", &["example.test", "*.example.test"]);
    let calls = fs::read_to_string(&log).unwrap();
    let mut auth_values: Vec<&str> = calls
        .lines()
        .filter_map(|line| line.strip_prefix("auth example.test "))
        .collect();
    let mut cleanup_values: Vec<&str> = calls
        .lines()
        .filter_map(|line| line.strip_prefix("cleanup example.test "))
        .collect();
    auth_values.sort_unstable();
    cleanup_values.sort_unstable();
    assert_eq!(auth_values.len(), 2, "apex and wildcard: {calls}");
    assert_eq!(auth_values, cleanup_values, "each value removed: {calls}");
}

/// Issue `wild` through a working `[dns.bind]`, then run `renew --force` with the provider
/// defined by `broken` (given the environment): one error naming the provider and the
/// certificate, exit 1, the live certificate unchanged, nothing left at named, and the
/// secret in no output.
fn a_broken_provider_fails_cleanly(broken: impl Fn(&Dns01) -> String) {
    let env = Dns01::start();
    let cert = dns_cert("wild", &["example.test", "*.example.test"], "bind");
    env.write_config(
        &env.rfc2136("bind", env.bind.addr, &env.bind.key, ""),
        &cert,
    );
    let output = env.certkeeper(&["renew"]);
    assert_issued(&env, &output, "wild", &["example.test", "*.example.test"]);
    let live_serial = serial(&env.live("wild").join("cert.pem"));

    env.write_config(&broken(&env), &cert);
    let output = env.certkeeper(&["renew", "--force"]);
    assert_eq!(output.status.code(), Some(1), "{}", env.explain());
    let errors: Vec<String> = stderr(&output)
        .lines()
        .filter(|line| line.starts_with("error:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(errors.len(), 1, "one error: {errors:?}");
    assert!(
        errors[0].contains("`bind`") && errors[0].contains("certificate wild"),
        "the error names the provider and the certificate: {}",
        errors[0]
    );
    assert_eq!(serial(&env.live("wild").join("cert.pem")), live_serial);
    assert_eq!(env.versions("wild"), 1, "nothing new installed");
    assert_eq!(env.bind.all_txt(), Vec::new(), "no record left at named");
    let printed = format!("{}{}", stdout(&output), stderr(&output));
    for key in [&env.bind.key, &env.bind.refused_key] {
        assert!(!printed.contains(&key.secret), "a TSIG secret was printed");
    }
    let row = env.status_row("wild");
    assert_eq!(row["consecutive_failures"], 1, "{row}");
}

#[test]
fn a_wrong_tsig_secret_fails_cleanly() {
    a_broken_provider_fails_cleanly(|env| {
        // The refused key's secret under the right key's name: BADSIG.
        let wrong = Key {
            secret: env.bind.refused_key.secret.clone(),
            ..env.bind.key.clone()
        };
        env.rfc2136("bind", env.bind.addr, &wrong, "")
    });
}

#[test]
fn a_key_the_zone_refuses_fails_cleanly() {
    a_broken_provider_fails_cleanly(|env| {
        env.rfc2136("bind", env.bind.addr, &env.bind.refused_key, "")
    });
}

#[test]
fn an_unreachable_dns_server_fails_cleanly() {
    a_broken_provider_fails_cleanly(|env| {
        // Lookups still reach named through `resolvers`; the updates go nowhere.
        let resolvers = format!("resolvers = [\"{}\"]", env.bind.addr);
        env.rfc2136("bind", closed_port(), &env.bind.key, &resolvers)
    });
}

#[test]
fn a_record_that_does_not_propagate_in_time_fails_cleanly() {
    let elsewhere = Bind::start();
    a_broken_provider_fails_cleanly(|env| {
        // The propagation check asks a server that serves the zone but never gets the
        // update; the record that was written is removed again.
        let extra = format!(
            "propagation_timeout = \"2s\"\nresolvers = [\"{}\"]",
            elsewhere.addr
        );
        env.rfc2136("bind", env.bind.addr, &env.bind.key, &extra)
    });
}

#[test]
fn a_killed_daemon_s_record_is_removed_at_the_next_start_and_its_order_resumed() {
    let env = Dns01::start();
    // While the first daemon runs, the propagation check asks a server that never gets the
    // record, for five minutes: the order waits for DNS, its record published at named.
    let elsewhere = Bind::start();
    let cert = dns_cert("www", &["www.example.test"], "bind");
    let waiting = format!(
        "propagation_timeout = \"5m\"\nresolvers = [\"{}\"]",
        elsewhere.addr
    );
    env.write_config(
        &env.rfc2136("bind", env.bind.addr, &env.bind.key, &waiting),
        &cert,
    );
    let challenge = "_acme-challenge.www.example.test.";
    let mut first = env.spawn_daemon("first.log", "info");
    wait_until(
        "the record to be published and journaled",
        ISSUE_DEADLINE,
        || format!("{}\n{}", first.log_text(), env.explain()),
        || env.bind.txt(challenge).len() == 1 && env.journal().len() == 1,
    );
    first.signal(Signal::KILL);
    first.wait_exit(Duration::from_secs(10));
    let stale = env.bind.txt(challenge);
    assert_eq!(env.journal()[0].1, challenge);
    assert_eq!(
        env.journal()[0].2,
        stale[0],
        "the journal names the record left"
    );
    assert!(
        !env.live("www").exists(),
        "killed before anything was issued"
    );

    // The next start checks at named itself, and its pre hook holds the attempt until the
    // test has looked at named: the stale record must be gone before anything is presented.
    let started = env.dir.path().join("pre-hook-started");
    let gate = env.dir.path().join("gate");
    let pre_hook = format!(
        "touch {started}; while [ ! -e {gate} ]; do sleep 0.1; done",
        started = started.display(),
        gate = gate.display()
    );
    env.write_config(
        &format!(
            "[hooks]\npre_hook = {pre_hook:?}\n\n{}",
            env.rfc2136("bind", env.bind.addr, &env.bind.key, "")
        ),
        &cert,
    );
    let second = env.spawn_daemon("second.log", "info");
    wait_until(
        "the attempt after the start",
        ISSUE_DEADLINE,
        || second.log_text(),
        || started.exists(),
    );
    assert_eq!(
        env.bind.txt(challenge),
        Vec::<String>::new(),
        "the stale record was removed at the start\n{}",
        second.log_text()
    );
    fs::write(&gate, b"").unwrap();
    wait_until(
        "the resumed order's certificate",
        ISSUE_DEADLINE,
        || format!("{}\n{}", second.log_text(), env.explain()),
        || env.live("www").join("cert.pem").exists(),
    );
    assert_eq!(
        sans(&env.live("www").join("cert.pem")),
        ["www.example.test"]
    );
    assert_eq!(
        env.pebble.orders(),
        1,
        "the order was resumed, not placed again"
    );
    wait_until(
        "the cleanup after the issuance",
        Duration::from_secs(10),
        || second.log_text(),
        || env.bind.all_txt().is_empty() && env.journal().is_empty(),
    );
}

#[test]
fn the_tsig_secret_reaches_no_output_log_or_file() {
    let env = Dns01::start();
    env.write_config(
        &env.rfc2136("bind", env.bind.addr, &env.bind.key, ""),
        &dns_cert("wild", &["example.test", "*.example.test"], "bind"),
    );
    let mut printed = String::new();
    let mut run = |args: &[&str]| {
        let output = env.certkeeper(args);
        printed.push_str(&stdout(&output));
        printed.push_str(&stderr(&output));
        output
    };
    assert_eq!(run(&["check"]).status.code(), Some(0));
    // Everything the daemon logs, down to debug, while it issues and is asked about it.
    let mut daemon = env.spawn_daemon("daemon.log", "debug");
    wait_until(
        "the daemon's certificate",
        ISSUE_DEADLINE,
        || format!("{}\n{}", daemon.log_text(), env.explain()),
        || env.live("wild").join("cert.pem").exists(),
    );
    assert_eq!(run(&["renew", "--force"]).status.code(), Some(0));
    run(&["status"]);
    run(&["status", "--json"]);
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    printed.push_str(&daemon.log_text());
    assert!(
        printed.contains("wild"),
        "the outputs were captured: {printed}"
    );

    let secret = &env.bind.key.secret;
    assert!(
        !printed.contains(secret.as_str()),
        "the TSIG secret was printed or logged"
    );
    let decoded = base64::Engine::decode(&base64::prelude::BASE64_STANDARD, secret).unwrap();
    let mut files = vec![env.state_dir.clone()];
    let mut searched = 0;
    while let Some(path) = files.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            files.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            let bytes = fs::read(&path).unwrap();
            searched += 1;
            assert!(
                !contains(&bytes, secret.as_bytes()) && !contains(&bytes, &decoded),
                "{} holds the TSIG secret",
                path.display()
            );
        }
    }
    assert!(
        searched > 5,
        "the state directory was searched ({searched} files)"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

//! The DNS-01 solver against a real BIND 9.
//!
//! Each test starts its own `named` on a free port (tests/support/bind.rs) and drives the
//! solver through the core's `ChallengeSolver` port the way the order code does: present
//! every answer, wait until each is ready, clean up. What is in DNS is read back from named
//! with `dig`, not through the code under test. Bad input (a wrong secret, an unknown key, a
//! key the zone refuses, a closed port, a record that never shows up) must give one typed
//! error each and leave nothing behind at named.

#[allow(dead_code)]
mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::{ChallengeSolver, Hook, HookCommand, Secret, SolverError, SolverStep};
use certkeeper_dns::{
    Dns01Settings, Dns01Solver, DnsError, HookProvider, MAX_CNAME_LINKS, PresentedRecord,
    PresentedRecords, Propagation, ProviderError, Rfc2136, TsigRejection,
};
use support::bind::{Bind, Key, tool};
use support::{MemoryJournal, answer, quick_settings, rfc2136};

fn solver(bind: &Bind, key: &Key, journal: &Arc<MemoryJournal>) -> Dns01Solver {
    solver_with(bind, key, journal, quick_settings())
}

fn solver_with(
    bind: &Bind,
    key: &Key,
    journal: &Arc<MemoryJournal>,
    settings: Dns01Settings,
) -> Dns01Solver {
    let provider = Rfc2136::new("bind", &rfc2136(bind, key)).expect("provider");
    Dns01Solver::new(Arc::new(provider), settings, journal.clone())
}

/// The `DnsError` under a solver failure, and the step that failed.
fn dns_error(err: &SolverError) -> (SolverStep, &DnsError) {
    let SolverError::Failed { step, source, .. } = err else {
        panic!("a solver failure: {err:?}");
    };
    let provider = source
        .downcast_ref::<ProviderError>()
        .unwrap_or_else(|| panic!("a provider error: {source:?}"));
    assert_eq!(provider.provider, "bind");
    (*step, &provider.source)
}

/// Add a TXT value with BIND's own `nsupdate`, as an operator would.
fn nsupdate(bind: &Bind, line: &str) {
    let mut child = Command::new(tool("nsupdate"))
        .arg("-k")
        .arg(&bind.key.file)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run nsupdate");
    let script = format!(
        "server {} {}\n{line}\nsend\n",
        bind.addr.ip(),
        bind.addr.port()
    );
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), script.as_bytes())
        .expect("write to nsupdate");
    drop(child.stdin.take());
    assert!(child.wait().expect("nsupdate").success(), "nsupdate {line}");
}

fn strings(values: &[&str]) -> Vec<String> {
    let mut values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    values.sort();
    values
}

#[tokio::test]
async fn wildcard_and_apex_share_one_name_and_cleanup_removes_exactly_one_value() {
    let bind = Bind::start();
    // A value the operator keeps there: adding must not replace the RRset, removing must
    // not touch it.
    nsupdate(
        &bind,
        "update add _acme-challenge.example.test. 300 TXT \"keep-me\"",
    );
    let journal = MemoryJournal::new();
    let solver = solver(&bind, &bind.key, &journal);
    let apex = answer("example.test", "apex-digest");
    let wildcard = answer("*.example.test", "wildcard-digest");

    for answer in [&apex, &wildcard] {
        solver.present(answer).await.expect("present");
    }
    for answer in [&apex, &wildcard] {
        solver.ready(answer).await.expect("visible at ns1");
    }
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        strings(&["apex-digest", "keep-me", "wildcard-digest"])
    );
    assert_eq!(journal.records().len(), 2);

    solver.cleanup(&apex).await.expect("cleanup");
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        strings(&["keep-me", "wildcard-digest"])
    );
    // Twice is harmless.
    solver.cleanup(&apex).await.expect("second cleanup");
    solver.cleanup(&wildcard).await.expect("cleanup");
    assert_eq!(bind.txt("_acme-challenge.example.test"), ["keep-me"]);
    assert!(journal.records().is_empty(), "{:?}", journal.records());
}

#[tokio::test]
async fn hmac_sha512_keys_sign_too() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    let solver = solver(&bind, &bind.sha512_key, &journal);
    let www = answer("www.example.test", "sha512-digest");

    solver.present(&www).await.expect("present");
    solver.ready(&www).await.expect("ready");
    assert_eq!(
        bind.txt("_acme-challenge.www.example.test"),
        ["sha512-digest"]
    );
    solver.cleanup(&www).await.expect("cleanup");
    assert!(bind.all_txt().is_empty(), "{:?}", bind.all_txt());
}

#[tokio::test]
async fn cname_delegation_writes_in_the_delegated_zone() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    let solver = solver(&bind, &bind.key, &journal);
    // _acme-challenge.alias.example.test CNAME alias.delegated.test; and a chain of two.
    let alias = answer("alias.example.test", "alias-digest");
    let chain = answer("*.chain.example.test", "chain-digest");

    for answer in [&alias, &chain] {
        solver.present(answer).await.expect("present");
    }
    for answer in [&alias, &chain] {
        solver
            .ready(answer)
            .await
            .expect("visible at ns1.delegated.test");
    }
    assert_eq!(bind.txt("alias.delegated.test"), ["alias-digest"]);
    assert_eq!(bind.txt("chain.delegated.test"), ["chain-digest"]);
    let mut written: Vec<String> = journal.records().into_iter().map(|r| r.fqdn).collect();
    written.sort();
    assert_eq!(written, ["alias.delegated.test.", "chain.delegated.test."]);

    for answer in [&alias, &chain] {
        solver.cleanup(answer).await.expect("cleanup");
    }
    assert!(bind.all_txt().is_empty(), "{:?}", bind.all_txt());
    assert!(journal.records().is_empty());
}

#[tokio::test]
async fn a_cname_chain_too_long_is_an_error_and_writes_nothing() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    let solver = solver(&bind, &bind.key, &journal);
    // _acme-challenge.long.example.test CNAME long1 CNAME ... long9 CNAME long.delegated.test.
    let looping = answer("long.example.test", "long-digest");

    let err = solver.present(&looping).await.expect_err("too long");
    let (step, dns) = dns_error(&err);
    assert_eq!(step, SolverStep::Present);
    assert!(
        matches!(dns, DnsError::CnameChainTooLong { limit, .. } if *limit == MAX_CNAME_LINKS),
        "{dns:?}"
    );
    solver.cleanup(&looping).await.expect("nothing to clean up");
    assert!(journal.records().is_empty());
}

/// A lego `exec`-style script: `present|cleanup FQDN VALUE`, writing with nsupdate.
fn lego_script(bind: &Bind) -> String {
    format!(
        r#"set -e
case "$1" in present) op=add ;; cleanup) op=delete ;; *) exit 2 ;; esac
printf 'server {ip} {port}\nupdate %s %s 60 TXT "%s"\nsend\n' "$op" "$2" "$3" | {nsupdate} -k {key}
"#,
        ip = bind.addr.ip(),
        port = bind.addr.port(),
        nsupdate = tool("nsupdate").display(),
        key = bind.key.file.display(),
    )
}

/// Check propagation through `resolver` (the hook provider is no DNS server).
fn through(resolver: SocketAddr) -> Dns01Settings {
    let mut settings = quick_settings();
    let Propagation::Check { resolvers, .. } = &mut settings.propagation else {
        unreachable!("quick settings check propagation");
    };
    resolvers.push(resolver);
    settings
}

#[tokio::test]
async fn a_hook_that_calls_nsupdate_with_the_key() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    let hook = Hook {
        command: HookCommand::Shell(lego_script(&bind)),
        timeout: Duration::from_secs(20),
    };
    let provider = HookProvider::new("script", hook);
    let solver = Dns01Solver::new(Arc::new(provider), through(bind.addr), journal.clone());
    let apex = answer("example.test", "hook-apex");
    let wildcard = answer("*.example.test", "hook-wildcard");

    for answer in [&apex, &wildcard] {
        solver.present(answer).await.expect("present");
    }
    for answer in [&apex, &wildcard] {
        solver.ready(answer).await.expect("ready");
    }
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        strings(&["hook-apex", "hook-wildcard"])
    );
    assert_eq!(
        journal.records()[0],
        PresentedRecord {
            provider: "script".to_owned(),
            fqdn: "_acme-challenge.example.test.".to_owned(),
            value: "hook-apex".to_owned(),
        }
    );

    solver.cleanup(&apex).await.expect("cleanup");
    assert_eq!(bind.txt("_acme-challenge.example.test"), ["hook-wildcard"]);
    solver.cleanup(&wildcard).await.expect("cleanup");
    assert!(bind.all_txt().is_empty(), "{:?}", bind.all_txt());
    assert!(journal.records().is_empty());
}

#[tokio::test]
async fn certbot_manual_hooks_run_unchanged() {
    let bind = Bind::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = format!("server {} {}", bind.addr.ip(), bind.addr.port());
    let nsupdate = tool("nsupdate");
    let key = bind.key.file.display();
    let log = dir.path().join("hook.log");
    // Scripts as certbot users write them for --manual-auth-hook / --manual-cleanup-hook:
    // they read certbot's variables and ignore arguments.
    let auth = dir.path().join("auth.sh");
    std::fs::write(
        &auth,
        format!(
            r#"#!/bin/sh
set -e
echo "auth $CERTBOT_DOMAIN $CERTBOT_VALIDATION all=$CERTBOT_ALL_DOMAINS remaining=$CERTBOT_REMAINING_CHALLENGES" >> {log}
printf '{server}\nupdate add _acme-challenge.%s. 60 TXT "%s"\nsend\n' "$CERTBOT_DOMAIN" "$CERTBOT_VALIDATION" | {nsupdate} -k {key}
echo "added $CERTBOT_VALIDATION"
"#,
            log = log.display(),
            nsupdate = nsupdate.display(),
        ),
    )
    .expect("auth hook");
    let cleanup = dir.path().join("cleanup.sh");
    std::fs::write(
        &cleanup,
        format!(
            r#"#!/bin/sh
set -e
echo "cleanup $CERTBOT_DOMAIN $CERTBOT_VALIDATION output=$CERTBOT_AUTH_OUTPUT" >> {log}
printf '{server}\nupdate delete _acme-challenge.%s. TXT "%s"\nsend\n' "$CERTBOT_DOMAIN" "$CERTBOT_VALIDATION" | {nsupdate} -k {key}
"#,
            log = log.display(),
            nsupdate = nsupdate.display(),
        ),
    )
    .expect("cleanup hook");
    for script in [&auth, &cleanup] {
        let mut permissions = std::fs::metadata(script).expect("script").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(script, permissions).expect("chmod");
    }
    // One command for both steps: the action argument picks the script.
    let command = format!(
        r#"case "$1" in present) exec {} ;; cleanup) exec {} ;; esac"#,
        auth.display(),
        cleanup.display()
    );
    let provider = HookProvider::new(
        "certbot",
        Hook {
            command: HookCommand::Shell(command),
            timeout: Duration::from_secs(20),
        },
    );
    let journal = MemoryJournal::new();
    let solver = Dns01Solver::new(Arc::new(provider), through(bind.addr), journal.clone())
        .with_certificate(
            "site",
            vec!["example.test".to_owned(), "*.example.test".to_owned()],
        );
    let apex = answer("example.test", "certbot-apex");
    let wildcard = answer("*.example.test", "certbot-wildcard");

    for answer in [&apex, &wildcard] {
        solver.present(answer).await.expect("present");
    }
    for answer in [&apex, &wildcard] {
        solver.ready(answer).await.expect("ready");
    }
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        strings(&["certbot-apex", "certbot-wildcard"])
    );
    for answer in [&apex, &wildcard] {
        solver.cleanup(answer).await.expect("cleanup");
    }
    assert!(bind.all_txt().is_empty(), "{:?}", bind.all_txt());
    let all = "all=example.test,*.example.test";
    assert_eq!(
        std::fs::read_to_string(&log).expect("hook log"),
        format!(
            "auth example.test certbot-apex {all} remaining=1\n\
             auth example.test certbot-wildcard {all} remaining=0\n\
             cleanup example.test certbot-apex output=added certbot-apex\n\
             cleanup example.test certbot-wildcard output=added certbot-wildcard\n"
        )
    );
}

/// Present `answer` with `solver`, expect a failure, clean up as the order code would, and
/// check named has nothing. Returns the error of the present.
async fn fails_and_leaves_nothing(
    bind: &Bind,
    solver: &Dns01Solver,
    answer: &certkeeper_core::ChallengeAnswer,
) -> SolverError {
    let err = solver.present(answer).await.expect_err("present fails");
    let _cleanup_may_fail_too = solver.cleanup(answer).await;
    assert!(bind.all_txt().is_empty(), "{:?}", bind.all_txt());
    err
}

#[tokio::test]
async fn a_wrong_secret_is_badsig() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    let mut settings = rfc2136(&bind, &bind.key);
    settings.secret = Secret::new(vec![7; 32]);
    let provider = Rfc2136::new("bind", &settings).expect("provider");
    let solver = Dns01Solver::new(Arc::new(provider), quick_settings(), journal.clone());

    let err = fails_and_leaves_nothing(&bind, &solver, &answer("example.test", "x")).await;
    let (step, dns) = dns_error(&err);
    assert_eq!(step, SolverStep::Present);
    assert!(
        matches!(dns, DnsError::TsigRejected { code: TsigRejection::BadSig, key, server }
            if key == "ck." && *server == bind.addr),
        "{dns:?}"
    );
}

#[tokio::test]
async fn an_unknown_key_is_badkey() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    let mut settings = rfc2136(&bind, &bind.key);
    settings.key_name = "nobody".to_owned();
    let provider = Rfc2136::new("bind", &settings).expect("provider");
    let solver = Dns01Solver::new(Arc::new(provider), quick_settings(), journal.clone());

    let err = fails_and_leaves_nothing(&bind, &solver, &answer("example.test", "x")).await;
    let (_, dns) = dns_error(&err);
    assert!(
        matches!(dns, DnsError::TsigRejected { code: TsigRejection::BadKey, key, .. } if key == "nobody."),
        "{dns:?}"
    );
}

#[tokio::test]
async fn a_key_the_zone_refuses() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    let solver = solver(&bind, &bind.refused_key, &journal);

    let err = fails_and_leaves_nothing(&bind, &solver, &answer("www.example.test", "x")).await;
    let (_, dns) = dns_error(&err);
    assert!(
        matches!(dns, DnsError::UpdateRefused { key, fqdn, zone, .. }
            if key == "other." && fqdn == "_acme-challenge.www.example.test." && zone == "example.test."),
        "{dns:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server() {
    let bind = Bind::start();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let journal = MemoryJournal::new();
    let mut settings = rfc2136(&bind, &bind.key);
    settings.server = closed;
    settings.timeout = Duration::from_millis(500);
    let provider = Rfc2136::new("bind", &settings).expect("provider");
    let solver = Dns01Solver::new(
        Arc::new(provider),
        Dns01Settings {
            follow_cname: false,
            query_timeout: Duration::from_millis(500),
            ..quick_settings()
        },
        journal.clone(),
    );

    let err = fails_and_leaves_nothing(&bind, &solver, &answer("example.test", "x")).await;
    let (_, dns) = dns_error(&err);
    assert!(
        matches!(dns, DnsError::Unreachable { server, .. } | DnsError::Timeout { server, .. }
            if *server == closed),
        "{dns:?}"
    );
}

#[tokio::test]
async fn a_record_that_never_shows_up_times_out_naming_the_servers() {
    let bind = Bind::start();
    // Serves the same zones but never gets the update.
    let elsewhere = Bind::start();
    let journal = MemoryJournal::new();
    let mut settings = through(elsewhere.addr);
    let Propagation::Check {
        timeout, interval, ..
    } = &mut settings.propagation
    else {
        unreachable!("checked");
    };
    *timeout = Duration::from_secs(1);
    *interval = Duration::from_millis(100);
    let solver = solver_with(&bind, &bind.key, &journal, settings);
    let apex = answer("example.test", "never-there");

    solver.present(&apex).await.expect("present");
    let err = solver.ready(&apex).await.expect_err("not at the resolver");
    let (step, dns) = dns_error(&err);
    assert_eq!(step, SolverStep::Ready);
    let DnsError::NotPropagated {
        fqdn,
        value,
        missing,
        ..
    } = dns
    else {
        panic!("a propagation timeout: {dns:?}");
    };
    assert_eq!(fqdn, "_acme-challenge.example.test.");
    assert_eq!(value, "never-there");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(
        missing[0].starts_with(&elsewhere.addr.to_string()),
        "{missing:?}"
    );
    solver.cleanup(&apex).await.expect("cleanup");
    assert!(bind.all_txt().is_empty(), "{:?}", bind.all_txt());
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_stops_the_present() {
    let bind = Bind::start();
    let journal = MemoryJournal::failing();
    let solver = solver(&bind, &bind.key, &journal);

    let err = fails_and_leaves_nothing(&bind, &solver, &answer("example.test", "x")).await;
    let (_, dns) = dns_error(&err);
    assert!(matches!(dns, DnsError::Journal { .. }), "{dns:?}");
}

#[tokio::test]
async fn records_left_by_a_crash_are_removed_at_the_next_start() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    {
        let crashed = solver(&bind, &bind.key, &journal);
        for answer in [
            answer("example.test", "stale-apex"),
            answer("alias.example.test", "stale-alias"),
        ] {
            crashed.present(&answer).await.expect("present");
        }
        // Dropped without cleanup, as by a SIGKILL.
    }
    assert_eq!(bind.all_txt().len(), 2, "{:?}", bind.all_txt());
    let stale = journal.records();
    // The journal of another provider's records is not this provider's business.
    let foreign = PresentedRecord {
        provider: "other".to_owned(),
        fqdn: "_acme-challenge.example.test.".to_owned(),
        value: "not-mine".to_owned(),
    };
    journal.record(&foreign).expect("journal");

    let restarted = solver(&bind, &bind.key, &journal);
    let removals = restarted.remove_stale(&journal.records()).await;

    assert_eq!(removals.len(), stale.len());
    assert!(
        removals.iter().all(|removal| removal.result.is_ok()),
        "{removals:?}"
    );
    assert!(bind.all_txt().is_empty(), "{:?}", bind.all_txt());
    assert_eq!(journal.records(), [foreign]);
}

#[tokio::test]
async fn propagation_none_does_not_wait() {
    let bind = Bind::start();
    let journal = MemoryJournal::new();
    let settings = Dns01Settings {
        propagation: Propagation::None,
        ..quick_settings()
    };
    let solver = solver_with(&bind, &bind.key, &journal, settings);
    let www = answer("www.example.test", "unchecked");
    solver.present(&www).await.expect("present");
    solver.ready(&www).await.expect("nothing to wait for");
    solver.cleanup(&www).await.expect("cleanup");
    assert!(bind.all_txt().is_empty());
}

//! Running real hooks: the environment they see, exit codes, captured and labelled output,
//! timeouts that take the hook's children down too, and spawn errors that name the program.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use certkeeper_core::{CertName, DeployAction, Deployment, DomainName, deploy_env};
use certkeeper_hooks::{HookError, HookRun, MAX_LINE_BYTES, MAX_LINES, OutputLine, Stream, run};
use support::{Logs, alive, argv, read_pid, script, shell};

const MINUTE: Duration = Duration::from_secs(60);

fn contract_env(live_dir: &Path) -> Vec<(String, String)> {
    let name = CertName::new("www").expect("valid");
    let domains = [
        DomainName::new("www.example.com").expect("valid"),
        DomainName::new("example.com").expect("valid"),
    ];
    deploy_env(&Deployment {
        name: &name,
        domains: &domains,
        live_dir,
        serial: "0a1b2c",
        // 2026-01-31T12:00:00Z
        not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(1_769_860_800),
        action: DeployAction::Issue,
    })
}

/// `NAME=value` lines as `env` prints them.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn assert_contract(seen: &HashMap<String, String>) {
    let live = "/var/lib/certkeeper/live/www";
    let expected = [
        ("RENEWED_LINEAGE", live.to_owned()),
        ("RENEWED_DOMAINS", "www.example.com example.com".to_owned()),
        ("CERTKEEPER_NAME", "www".to_owned()),
        (
            "CERTKEEPER_DOMAINS",
            "www.example.com example.com".to_owned(),
        ),
        ("CERTKEEPER_LIVE_DIR", live.to_owned()),
        ("CERTKEEPER_CERT", format!("{live}/cert.pem")),
        ("CERTKEEPER_KEY", format!("{live}/privkey.pem")),
        ("CERTKEEPER_FULLCHAIN", format!("{live}/fullchain.pem")),
        ("CERTKEEPER_CHAIN", format!("{live}/chain.pem")),
        ("CERTKEEPER_SERIAL", "0a1b2c".to_owned()),
        ("CERTKEEPER_NOT_AFTER", "2026-01-31T12:00:00Z".to_owned()),
        ("CERTKEEPER_ACTION", "issue".to_owned()),
    ];
    for (name, value) in expected {
        assert_eq!(seen.get(name), Some(&value), "{name} in {seen:?}");
    }
    assert!(
        seen.contains_key("PATH"),
        "PATH is passed through: {seen:?}"
    );
    // cargo sets this for the test process; hooks get a cleared environment.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(
        !seen.contains_key("CARGO_MANIFEST_DIR"),
        "certkeeper's own environment leaked into the hook: {seen:?}"
    );
}

#[tokio::test]
async fn argv_hook_runs_without_a_shell_with_the_contract_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("env.txt");
    let hook_script = dir.path().join("dump-env");
    script(&hook_script, "env > \"$1\"", 0o755);
    // An argument with spaces and shell characters arrives as one argument, unchanged.
    let odd = dir.path().join("a b;$(echo no).txt");
    let hook = argv(
        &[
            hook_script.to_str().expect("utf-8"),
            odd.to_str().expect("utf-8"),
        ],
        MINUTE,
    );
    let env = contract_env(Path::new("/var/lib/certkeeper/live/www"));
    let outcome = run(HookRun::new("deploy:www", &hook, &env))
        .await
        .expect("hook runs");
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.exit, Some(0));
    assert!(!dump.exists());
    let seen = parse_env(&std::fs::read_to_string(&odd).expect("the hook wrote its env"));
    assert_contract(&seen);
}

#[tokio::test]
async fn shell_hook_runs_through_bin_sh_with_the_contract_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("env.txt");
    let hook = shell(
        &format!(
            "env | sort > '{}' && echo \"deployed $CERTKEEPER_NAME\" | tr a-z A-Z",
            dump.display()
        ),
        MINUTE,
    );
    let env = contract_env(Path::new("/var/lib/certkeeper/live/www"));
    let outcome = run(HookRun::new("deploy:www", &hook, &env))
        .await
        .expect("hook runs");
    assert!(outcome.success, "{outcome:?}");
    assert_contract(&parse_env(&std::fs::read_to_string(&dump).expect("env")));
    let texts: Vec<&str> = outcome.output.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["DEPLOYED WWW"]);
}

#[tokio::test]
async fn failure_reports_the_exit_code_and_labels_every_output_line() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let hook = shell(
        "echo 'checking nginx config'; echo 'nginx: [emerg] no such file' >&2; exit 3",
        MINUTE,
    );
    let outcome = run(HookRun::new("reload:nginx", &hook, &[]))
        .await
        .expect("hook runs");
    assert!(!outcome.success);
    assert_eq!(outcome.exit, Some(3));
    assert!(!outcome.timed_out);
    assert_eq!(outcome.to_string(), "exited with code 3");
    assert_eq!(outcome.output_lines, 2);
    assert_eq!(outcome.dropped_lines, 0);
    let stdout = OutputLine {
        stream: Stream::Stdout,
        text: "checking nginx config".to_owned(),
        truncated: false,
    };
    let stderr = OutputLine {
        stream: Stream::Stderr,
        text: "nginx: [emerg] no such file".to_owned(),
        truncated: false,
    };
    assert!(outcome.output.contains(&stdout), "{:?}", outcome.output);
    assert!(outcome.output.contains(&stderr), "{:?}", outcome.output);

    let text = logs.text();
    for line in ["checking nginx config", "nginx: [emerg] no such file"] {
        let logged = text
            .lines()
            .find(|logged| logged.contains(line))
            .unwrap_or_else(|| panic!("{line:?} was not logged:\n{text}"));
        assert!(
            logged.contains("hook=\"reload:nginx\""),
            "unlabelled: {logged}"
        );
    }
    assert!(text.contains("stream=\"stderr\""), "{text}");
}

#[tokio::test]
async fn output_is_bounded_in_lines_and_line_length() {
    let hook = shell(
        "i=0; while [ $i -lt 250 ]; do echo \"line $i\"; i=$((i+1)); done",
        MINUTE,
    );
    let outcome = run(HookRun::new("post:many", &hook, &[]))
        .await
        .expect("hook runs");
    assert!(outcome.success);
    assert_eq!(outcome.output_lines, MAX_LINES);
    assert_eq!(outcome.dropped_lines, 250 - MAX_LINES);
    assert_eq!(outcome.output[0].text, "line 0");
    assert_eq!(
        outcome.output[MAX_LINES - 1].text,
        format!("line {}", MAX_LINES - 1)
    );

    let hook = shell(
        "head -c 100000 /dev/zero | tr '\\0' x; echo; echo after",
        MINUTE,
    );
    let outcome = run(HookRun::new("post:long", &hook, &[]))
        .await
        .expect("hook runs");
    assert_eq!(outcome.output_lines, 2, "{:?}", outcome.output.len());
    assert!(outcome.output[0].truncated);
    assert_eq!(outcome.output[0].text.len(), MAX_LINE_BYTES);
    assert_eq!(outcome.output[1].text, "after");
}

/// A hook that runs too long takes its whole process group down: the shell and the child it
/// put in the background.
#[tokio::test]
async fn timeout_kills_the_hook_and_its_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("child.pid");
    let timeout = Duration::from_secs(1);
    let hook = shell(
        &format!("sleep 300 & echo $! > '{}'; sleep 300", pid_file.display()),
        timeout,
    );
    let run_hook = HookRun::new("deploy:slow", &hook, &[]);
    let (outcome, child) = tokio::join!(run(run_hook), read_pid(&pid_file));
    let outcome = outcome.expect("hook runs");
    assert!(outcome.timed_out);
    assert!(!outcome.success);
    assert_eq!(outcome.to_string(), "timed out after 1s");
    assert!(
        outcome.duration >= timeout && outcome.duration < timeout + run_hook.kill_grace,
        "{:?}",
        outcome.duration
    );
    assert!(
        !alive(child),
        "the hook's child {child} survived the timeout"
    );
}

/// A hook that ignores SIGTERM gets SIGKILL after the grace period, children included.
#[tokio::test]
async fn sigterm_ignored_means_sigkill_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("child.pid");
    let timeout = Duration::from_millis(500);
    // `trap '' TERM` is inherited by the background sleep, so nothing in the group obeys
    // SIGTERM.
    let hook = shell(
        &format!(
            "trap '' TERM; sleep 300 & echo $! > '{}'; sleep 300",
            pid_file.display()
        ),
        timeout,
    );
    let run_hook = HookRun {
        kill_grace: Duration::from_millis(500),
        ..HookRun::new("deploy:stubborn", &hook, &[])
    };
    let (outcome, child) = tokio::join!(run(run_hook), read_pid(&pid_file));
    let outcome = outcome.expect("hook runs");
    assert!(outcome.timed_out);
    assert_eq!(outcome.signal, Some(9), "{outcome:?}");
    assert!(
        outcome.duration >= timeout + run_hook.kill_grace,
        "SIGKILL came before the grace period ended: {:?}",
        outcome.duration
    );
    assert!(outcome.duration < timeout + run_hook.kill_grace + Duration::from_secs(2));
    assert!(!alive(child), "the hook's child {child} survived SIGKILL");
}

/// Abandoning a run (the daemon's hard stop) kills the hook's group instead of leaking it.
#[tokio::test]
async fn dropping_a_run_kills_the_hook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("child.pid");
    let hook = shell(
        &format!("sleep 300 & echo $! > '{}'; sleep 300", pid_file.display()),
        MINUTE,
    );
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        run(HookRun::new("pre:www", &hook, &[])),
    )
    .await;
    assert!(abandoned.is_err(), "the hook finished: {abandoned:?}");
    let child = read_pid(&pid_file).await;
    for _ in 0..100 {
        if !alive(child) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the hook's child {child} outlived the abandoned run");
}

#[tokio::test]
async fn spawn_errors_name_the_program() {
    let hook = argv(&["/nonexistent/certkeeper-hook", "--flag"], MINUTE);
    let err = run(HookRun::new("deploy:www", &hook, &[]))
        .await
        .expect_err("no such program");
    assert!(matches!(err, HookError::Spawn { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot start hook deploy:www: /nonexistent/certkeeper-hook"
    );
    let source = std::error::Error::source(&err).expect("the OS error");
    assert!(source.to_string().contains("No such file"), "{source}");

    let dir = tempfile::tempdir().expect("tempdir");
    let not_executable = dir.path().join("deploy.sh");
    script(&not_executable, "exit 0", 0o644);
    let path = not_executable.to_str().expect("utf-8");
    let hook = argv(&[path], MINUTE);
    let err = run(HookRun::new("deploy:www", &hook, &[]))
        .await
        .expect_err("not executable");
    assert_eq!(
        err.to_string(),
        format!("cannot start hook deploy:www: {path}")
    );
    let source = std::error::Error::source(&err).expect("the OS error");
    assert!(source.to_string().contains("Permission denied"), "{source}");
}

//! `hooks_dir`: executables in name order; dotfiles, non-executables and folders skipped.

mod support;

use std::os::unix::fs::symlink;
use std::time::Duration;

use certkeeper_core::HookCommand;
use certkeeper_hooks::{HookRun, Phase, dir_hooks, run};
use support::script;

const TIMEOUT: Duration = Duration::from_secs(42);

#[tokio::test]
async fn executables_run_in_name_order_and_the_rest_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks_dir = dir.path().join("hooks");
    let deploy = hooks_dir.join("deploy");
    std::fs::create_dir_all(deploy.join("10-folder")).expect("mkdir");
    let log = dir.path().join("order.log");
    let append = |name: &str| format!("echo {name} >> '{}'", log.display());
    script(&deploy.join("50-nginx"), &append("50-nginx"), 0o755);
    script(&deploy.join("10-firewall"), &append("10-firewall"), 0o700);
    script(&deploy.join("README"), &append("README"), 0o644);
    script(&deploy.join(".50-nginx.swp"), &append("dotfile"), 0o755);
    script(&deploy.join("9-late"), &append("9-late"), 0o755);
    let elsewhere = dir.path().join("shared-hook");
    script(&elsewhere, &append("20-link"), 0o755);
    symlink(&elsewhere, deploy.join("20-link")).expect("symlink");
    symlink(dir.path().join("missing"), deploy.join("30-dangling")).expect("symlink");

    let hooks = dir_hooks(&hooks_dir, Phase::Deploy, TIMEOUT).expect("readable");
    let labels: Vec<&str> = hooks.iter().map(|(label, _)| label.as_str()).collect();
    // Byte order, as `ls` in the C locale: "9-late" after "50-nginx".
    assert_eq!(
        labels,
        [
            "deploy:dir/10-firewall",
            "deploy:dir/20-link",
            "deploy:dir/50-nginx",
            "deploy:dir/9-late"
        ]
    );
    for (_, hook) in &hooks {
        assert_eq!(hook.timeout, TIMEOUT);
        assert!(matches!(&hook.command, HookCommand::Argv(argv) if argv.len() == 1));
    }

    for (label, hook) in &hooks {
        let outcome = run(HookRun::new(label, hook, &[])).await.expect("runs");
        assert!(outcome.success, "{label}: {outcome:?}");
    }
    let ran = std::fs::read_to_string(&log).expect("hooks ran");
    assert_eq!(ran, "10-firewall\n20-link\n50-nginx\n9-late\n");
}

#[test]
fn missing_folders_mean_no_hooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("pre")).expect("mkdir");
    assert!(
        dir_hooks(dir.path(), Phase::Pre, TIMEOUT)
            .expect("empty")
            .is_empty()
    );
    assert!(
        dir_hooks(dir.path(), Phase::Post, TIMEOUT)
            .expect("no post/")
            .is_empty()
    );
    let missing = dir.path().join("not-created-yet");
    assert!(
        dir_hooks(&missing, Phase::Deploy, TIMEOUT)
            .expect("no hooks_dir")
            .is_empty()
    );
}

#[test]
fn a_phase_that_is_a_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("post"), "").expect("write");
    let err = dir_hooks(dir.path(), Phase::Post, TIMEOUT).expect_err("not a directory");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read hooks directory {}",
            dir.path().join("post").display()
        )
    );
}

//! Hook keys: defaults and per-certificate overrides, the three hook forms, timeouts,
//! reload targets and `hooks_dir`.

use std::path::Path;
use std::time::Duration;

use certkeeper_config::{Environment, Loaded, load_str};
use certkeeper_core::hooks::DEFAULT_HOOK_TIMEOUT;
use certkeeper_core::{CertHooks, Hook, HookCommand};

fn load_ok(text: &str, path: &Path) -> Loaded {
    load_str(text, path, &Environment::empty()).unwrap_or_else(|errors| panic!("{errors}"))
}

fn shell(line: &str, timeout: Duration) -> Hook {
    Hook {
        command: HookCommand::Shell(line.to_owned()),
        timeout,
    }
}

fn argv(args: &[&str], timeout: Duration) -> Hook {
    Hook {
        command: HookCommand::Argv(args.iter().map(|arg| (*arg).to_owned()).collect()),
        timeout,
    }
}

const CA: &str = r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"
"#;

#[test]
fn without_hook_keys_nothing_runs() {
    let text = format!("{CA}\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n");
    let loaded = load_ok(&text, Path::new("/etc/certkeeper/certkeeper.toml"));
    let inventory = loaded.inventory;
    assert_eq!(inventory.hooks_dir, None);
    assert_eq!(inventory.hook_timeout, DEFAULT_HOOK_TIMEOUT);
    assert_eq!(DEFAULT_HOOK_TIMEOUT, Duration::from_secs(60));
    assert!(inventory.reload_targets.is_empty());
    assert_eq!(*inventory.certificates[0].hooks, CertHooks::default());
}

#[test]
fn certificates_inherit_the_defaults_unless_they_set_their_own() {
    let text = format!(
        r#"
hook_timeout = "2m"

[hooks]
pre_hook = ["/usr/sbin/iptables", "-I", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"]
deploy_hook = "cp \"$CERTKEEPER_FULLCHAIN\" /srv/app/tls.pem"
post_hook = {{ command = ["/usr/local/bin/notify", "renewed"], timeout = "10s" }}
reload = ["nginx"]

[reload.nginx]
command = ["systemctl", "reload", "nginx"]
timeout = "30s"

[reload.postfix]
command = "postfix reload"

{CA}

[[certificate]]
name = "www"
domains = ["www.example.com"]

[[certificate]]
name = "mail"
domains = ["mail.example.com"]
deploy_hook = {{ command = "doveadm reload", timeout = "5s" }}
pre_hook = false
reload = ["postfix", "nginx"]

[[certificate]]
name = "intranet"
domains = ["intranet.example.com"]
post_hook = ["/bin/true"]
deploy_hook = false
reload = []
"#
    );
    let loaded = load_ok(&text, Path::new("/etc/certkeeper/certkeeper.toml"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;
    assert_eq!(inventory.hook_timeout, Duration::from_secs(120));

    let names: Vec<&str> = inventory
        .reload_targets
        .iter()
        .map(|target| target.name.as_str())
        .collect();
    assert_eq!(names, ["nginx", "postfix"]);
    let nginx = inventory.reload_target("nginx").expect("configured");
    assert_eq!(
        nginx.hook,
        argv(&["systemctl", "reload", "nginx"], Duration::from_secs(30))
    );
    let postfix = inventory.reload_target("postfix").expect("configured");
    assert_eq!(
        postfix.hook,
        shell("postfix reload", Duration::from_secs(120)),
        "hook_timeout applies without a timeout of its own"
    );

    let defaults = CertHooks {
        pre: Some(argv(
            &[
                "/usr/sbin/iptables",
                "-I",
                "INPUT",
                "-p",
                "tcp",
                "--dport",
                "80",
                "-j",
                "ACCEPT",
            ],
            Duration::from_secs(120),
        )),
        deploy: Some(shell(
            "cp \"$CERTKEEPER_FULLCHAIN\" /srv/app/tls.pem",
            Duration::from_secs(120),
        )),
        post: Some(argv(
            &["/usr/local/bin/notify", "renewed"],
            Duration::from_secs(10),
        )),
        reload: vec!["nginx".to_owned()],
    };
    let hooks = |name: &str| &*inventory.certificate(name).expect("configured").hooks;
    assert_eq!(hooks("www"), &defaults);
    assert_eq!(
        hooks("mail"),
        &CertHooks {
            pre: None,
            deploy: Some(shell("doveadm reload", Duration::from_secs(5))),
            reload: vec!["postfix".to_owned(), "nginx".to_owned()],
            ..defaults.clone()
        }
    );
    assert_eq!(
        hooks("intranet"),
        &CertHooks {
            deploy: None,
            post: Some(argv(&["/bin/true"], Duration::from_secs(120))),
            reload: Vec::new(),
            ..defaults.clone()
        }
    );
}

#[test]
fn reload_targets_keep_file_order_in_every_form() {
    let text = format!(
        r#"
[reload]
zeta = "systemctl reload zeta"
alpha = ["systemctl", "reload", "alpha"]

[reload.mid]
command = "true"

{CA}
[[certificate]]
name = "www"
domains = ["www.example.com"]
reload = ["alpha", "mid"]
"#
    );
    let loaded = load_ok(&text, Path::new("certkeeper.toml"));
    let names: Vec<&str> = loaded
        .inventory
        .reload_targets
        .iter()
        .map(|target| target.name.as_str())
        .collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
    assert_eq!(
        loaded.inventory.reload_targets[0].hook,
        shell("systemctl reload zeta", DEFAULT_HOOK_TIMEOUT)
    );
}

#[test]
fn hooks_dir_resolves_relative_paths_and_only_warns_when_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("hooks")).expect("mkdir");
    let config = dir.path().join("certkeeper.toml");
    let text = format!("hooks_dir = \"hooks\"\nhook_timeout = \"90s\"\n{CA}");
    let loaded = load_ok(&text, &config);
    assert_eq!(loaded.inventory.hooks_dir, Some(dir.path().join("hooks")));
    assert_eq!(loaded.inventory.hook_timeout, Duration::from_secs(90));
    let hooks_dir_warnings = loaded
        .warnings
        .iter()
        .filter(|warning| warning.key == "hooks_dir")
        .count();
    assert_eq!(hooks_dir_warnings, 0, "{:?}", loaded.warnings);

    let text = format!("hooks_dir = \"/nonexistent/certkeeper/hooks\"\n{CA}");
    let loaded = load_ok(&text, &config);
    assert_eq!(
        loaded.inventory.hooks_dir.as_deref(),
        Some(Path::new("/nonexistent/certkeeper/hooks"))
    );
    let warning = loaded
        .warnings
        .iter()
        .find(|warning| warning.key == "hooks_dir")
        .expect("a warning about the missing directory");
    assert_eq!(
        warning.to_string(),
        format!(
            "{}:1:13: hooks_dir: \"/nonexistent/certkeeper/hooks\" does not exist; no hooks run from it until it is created (with pre/, deploy/ and post/ folders)",
            config.display()
        )
    );
}

#[test]
fn included_certificates_use_the_main_files_targets_and_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(
        dir.path().join("conf.d/site.toml"),
        "[[certificate]]\nname = \"site\"\ndomains = [\"site.example.com\"]\nreload = [\"nginx\"]\n\n[[certificate]]\nname = \"other\"\ndomains = [\"other.example.com\"]\n",
    )
    .expect("write");
    let text = format!(
        "include = [\"conf.d/*.toml\"]\n\n[hooks]\ndeploy_hook = \"true\"\n\n[reload.nginx]\ncommand = [\"nginx\", \"-s\", \"reload\"]\n{CA}"
    );
    let loaded = load_ok(&text, &dir.path().join("certkeeper.toml"));
    let site = loaded.inventory.certificate("site").expect("included");
    assert_eq!(site.hooks.reload, ["nginx"]);
    assert_eq!(site.hooks.deploy, Some(shell("true", DEFAULT_HOOK_TIMEOUT)));
    let other = loaded.inventory.certificate("other").expect("included");
    assert!(other.hooks.reload.is_empty());

    // Hook settings themselves belong to the main file.
    std::fs::write(
        dir.path().join("conf.d/site.toml"),
        "hook_timeout = \"1m\"\n\n[reload.apache]\ncommand = \"apachectl graceful\"\n",
    )
    .expect("write");
    let errors = load_str(
        &text,
        &dir.path().join("certkeeper.toml"),
        &Environment::empty(),
    )
    .expect_err("main-file keys in an included file");
    let keys: Vec<&str> = errors.errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["hook_timeout", "reload"], "{errors}");
}

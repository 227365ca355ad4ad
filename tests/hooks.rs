//! Hooks that reload a real nginx: deploy hooks, a reload target shared by many certificates,
//! failing and hanging hooks retried without re-ordering, and a certbot-style deploy hook in
//! `hooks_dir/deploy/` working unchanged.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rustix::process::Signal;
use support::nginx::Nginx;
use support::{Cert, PebbleOptions, Setup, key_matches, serial, stdout};

fn toml_array(argv: &[String]) -> String {
    let items: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", items.join(", "))
}

fn executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn write_root(setup: &Setup) -> std::path::PathBuf {
    let root = setup.dir.path().join("pebble-root.pem");
    fs::write(&root, setup.pebble.issuing_root_pem()).unwrap();
    root
}

#[test]
fn nginx_serves_the_renewed_certificate_after_the_deploy_hook() {
    let setup = Setup::new(PebbleOptions::default());
    let live = setup.live("www");
    // First issuance without hooks: nginx needs a certificate to start with.
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    assert!(setup.certkeeper(&["renew", "--no-hooks"]).status.success());
    let nginx = Nginx::start(
        &setup.dir.path().join("nginx"),
        &[("www.example.com", &live)],
    );
    let root = write_root(&setup);
    let old = serial(&live.join("cert.pem"));
    assert_eq!(nginx.served_serial("www.example.com", &root), old);

    let hook = format!("deploy_hook = {}", toml_array(&nginx.reload_argv()));
    setup.write_config(&[Cert {
        extra: &hook,
        ..Cert::new("www", &["www.example.com"])
    }]);
    let output = setup.certkeeper(&["renew", "--force"]);
    assert!(output.status.success());
    let new = serial(&live.join("cert.pem"));
    assert_ne!(new, old);
    let took = nginx.wait_for_serial("www.example.com", &root, &new, Duration::from_secs(5));
    eprintln!("REPORT nginx served the new serial {took:?} after renew returned");
}

#[test]
fn ten_certificates_renewed_together_reload_nginx_once() {
    // 45-second certificates issued together all come due together, about 30 s later.
    let setup = Setup::new(PebbleOptions {
        validity_secs: Some(45),
        ..PebbleOptions::default()
    });
    let names: Vec<String> = (0..10).map(|i| format!("site{i}")).collect();
    let domains: Vec<[String; 1]> = names.iter().map(|n| [format!("{n}.example.com")]).collect();
    let domain_refs: Vec<[&str; 1]> = domains.iter().map(|[d]| [d.as_str()]).collect();
    let certs: Vec<Cert<'_>> = names
        .iter()
        .zip(&domain_refs)
        .map(|(name, domains)| Cert {
            extra: "reload = [\"nginx\"]",
            ..Cert::new(name, domains)
        })
        .collect();
    let counter = setup.dir.path().join("reloads");
    let wrapper = setup.dir.path().join("reload-nginx");
    let top = format!(
        "max_concurrent = 10\n[reload.nginx]\ncommand = [{:?}]\n",
        wrapper.display().to_string()
    );
    setup.write_config_with(&top, &certs);
    assert!(setup.certkeeper(&["renew", "--no-hooks"]).status.success());
    let lives: Vec<std::path::PathBuf> = names.iter().map(|n| setup.live(n)).collect();
    let servers: Vec<(&str, &Path)> = domains
        .iter()
        .zip(&lives)
        .map(|([d], live)| (d.as_str(), live.as_path()))
        .collect();
    let nginx = Nginx::start(&setup.dir.path().join("nginx"), &servers);
    let root = write_root(&setup);
    // The shared reload target counts its runs, then reloads nginx.
    let argv: Vec<String> = nginx
        .reload_argv()
        .iter()
        .map(|a| format!("'{a}'"))
        .collect();
    executable(
        &wrapper,
        &format!(
            "#!/bin/sh\necho reload >> {}\nexec {}\n",
            counter.display(),
            argv.join(" ")
        ),
    );
    let before: Vec<String> = lives.iter().map(|l| serial(&l.join("cert.pem"))).collect();

    let mut daemon = setup.spawn_daemon(&[]);
    daemon.wait_for_log(
        "ten renewals and their reload",
        Duration::from_secs(60),
        |_| {
            counter.exists()
                && lives
                    .iter()
                    .zip(&before)
                    .all(|(l, old)| serial(&l.join("cert.pem")) != *old)
        },
    );
    // Give a second (wrong) reload every chance to happen before counting.
    std::thread::sleep(Duration::from_secs(4));
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    let log = daemon.log_text();
    assert_eq!(log.matches("certificate installed").count(), 10, "{log}");
    assert_eq!(
        fs::read_to_string(&counter).unwrap().lines().count(),
        1,
        "{log}"
    );
    for ([domain], live) in domains.iter().zip(&lives) {
        let renewed = serial(&live.join("cert.pem"));
        nginx.wait_for_serial(domain, &root, &renewed, Duration::from_secs(5));
    }
    eprintln!("REPORT reload coalescing: 1 nginx reload for 10 renewals");
}

#[test]
fn failing_and_hanging_deploy_hooks_are_retried_without_a_new_order() {
    let setup = Setup::new(PebbleOptions::default());
    let flag = setup.dir.path().join("fixed");
    let child_pid = setup.dir.path().join("child.pid");
    let failing = format!(
        "deploy_hook = \"test -e {} || {{ echo 'upstream not ready' >&2; exit 1; }}\"",
        flag.display()
    );
    let hanging = format!(
        "deploy_hook = {{ command = \"test -e {f} && exit 0; sleep 600 & echo $! > {p}; sleep 600\", timeout = \"2s\" }}",
        f = flag.display(),
        p = child_pid.display()
    );
    setup.write_config(&[
        Cert {
            extra: &failing,
            ..Cert::new("failing", &["failing.example.com"])
        },
        Cert {
            extra: &hanging,
            ..Cert::new("hanging", &["hanging.example.com"])
        },
    ]);
    let output = setup.certkeeper(&["renew"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed deploy fails the pass"
    );
    for name in ["failing", "hanging"] {
        let live = setup.live(name);
        assert!(
            key_matches(&live.join("cert.pem"), &live.join("privkey.pem")),
            "{name} stays installed"
        );
    }
    // The hanging hook's background child died with it.
    let pid = fs::read_to_string(&child_pid).unwrap().trim().to_owned();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the hook's child {pid} outlived it"
    );

    let status = setup.certkeeper(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["state"], "deploy failing", "{row}");
        assert!(
            row["last_error"].as_str().unwrap().starts_with("deploy: "),
            "{row}"
        );
    }
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("exited with code 1")
    );
    assert!(
        rows[1]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out after 2s")
    );

    // Fixed: the next pass runs the hooks again and does not order anything.
    fs::write(&flag, "").unwrap();
    let output = setup.certkeeper(&["renew"]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("failing: deploy hooks succeeded on retry"));
    assert!(stdout(&output).contains("hanging: deploy hooks succeeded on retry"));
    for name in ["failing", "hanging"] {
        assert_eq!(setup.versions(name).len(), 1, "{name} was not re-ordered");
    }
    let status = setup.certkeeper(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(0));
}

#[test]
fn a_certbot_deploy_hook_works_unchanged_from_hooks_dir() {
    let setup = Setup::new(PebbleOptions::default());
    let hooks_dir = setup.dir.path().join("renewal-hooks");
    fs::create_dir_all(hooks_dir.join("deploy")).unwrap();
    let target = setup.dir.path().join("app-tls");
    fs::create_dir_all(&target).unwrap();
    // Written for certbot: only RENEWED_LINEAGE and RENEWED_DOMAINS.
    executable(
        &hooks_dir.join("deploy/50-copy-to-app"),
        &format!(
            "#!/bin/sh\nset -e\ncp \"$RENEWED_LINEAGE/fullchain.pem\" \"$RENEWED_LINEAGE/privkey.pem\" {t}/\nfor domain in $RENEWED_DOMAINS; do echo \"$domain\" >> {t}/domains; done\n",
            t = target.display()
        ),
    );
    setup.write_config_with(
        &format!("hooks_dir = {:?}\n", hooks_dir.display().to_string()),
        &[Cert::new(
            "app",
            &["app.example.com", "www.app.example.com"],
        )],
    );
    assert!(setup.certkeeper(&["renew"]).status.success());
    let live = setup.live("app");
    assert_eq!(
        fs::read(target.join("fullchain.pem")).unwrap(),
        fs::read(live.join("fullchain.pem")).unwrap()
    );
    assert_eq!(
        fs::read(target.join("privkey.pem")).unwrap(),
        fs::read(live.join("privkey.pem")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(target.join("domains")).unwrap(),
        "app.example.com\nwww.app.example.com\n"
    );
}

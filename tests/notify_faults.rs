//! Broken notification targets, against real servers: a webhook that hangs, one that answers
//! 500, an SMTP server that is down and a real aiosmtpd that refuses the login. The daemon
//! issues every certificate all the same (notices wait in the outbox, counted by `status`),
//! and `certkeeper notify test` names each target's actual fault.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;
// The notify crate's real servers: aiosmtpd and a webhook receiver.
#[path = "../crates/notify/tests/support/mod.rs"]
mod notify_support;

use std::time::{Duration, Instant};

use notify_support::{Behaviour, Receiver, SmtpServer};
use rustix::process::Signal;
use support::{Cert, PebbleOptions, Setup, stdout};

#[test]
fn broken_targets_never_hold_up_issuance_and_each_fault_is_named() {
    let setup = Setup::new(PebbleOptions::default());
    let smtp = SmtpServer::start("none", Some(("certkeeper", "the-right-password")));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hanging = runtime.block_on(Receiver::start(Behaviour::Hang));
    let failing = runtime.block_on(Receiver::start(Behaviour::Status(500)));
    let down_port = notify_support::free_port();
    let wrong_password = setup.dir.path().join("smtp-password");
    std::fs::write(&wrong_password, "not-the-password").unwrap();
    setup.write_config_with(
        "",
        &[
            Cert::new("www", &["www.example.com"]),
            Cert::new("api", &["api.example.com"]),
        ],
    );
    let mut config = std::fs::read_to_string(&setup.config).unwrap();
    config.push_str(&format!(
        r#"
[[notify]]
name = "hanging"
type = "webhook"
url = "{hanging}"
events = ["renewed"]
timeout = "3s"

[[notify]]
name = "failing"
type = "webhook"
url = "{failing}"
events = ["renewed"]

[[notify]]
name = "down"
type = "email"
server = "127.0.0.1:{down_port}"
tls = "none"
from = "certkeeper@example.com"
to = ["ops@example.com"]
events = ["renewed"]

[[notify]]
name = "refused"
type = "email"
server = "127.0.0.1:{smtp_port}"
tls = "none"
username = "certkeeper"
password_file = "{password}"
from = "certkeeper@example.com"
to = ["ops@example.com"]
events = ["renewed"]
"#,
        hanging = hanging.url("/hook"),
        failing = failing.url("/hook"),
        smtp_port = smtp.port,
        password = wrong_password.display(),
    ));
    std::fs::write(&setup.config, config).unwrap();

    let mut daemon = setup.spawn_daemon(&[]);
    // Both certificates are issued while every target fails or hangs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !["www", "api"]
        .iter()
        .all(|name| setup.live(name).join("fullchain.pem").exists())
    {
        assert!(
            Instant::now() < deadline,
            "not issued within 60 s: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(setup.versions("www").len(), 1);
    assert_eq!(setup.versions("api").len(), 1);
    // Nothing was delivered: each target keeps its two `renewed` notices.
    let output = setup.certkeeper(&["status"]);
    let text = stdout(&output);
    for target in ["hanging", "failing", "down", "refused"] {
        assert!(
            text.lines()
                .any(|line| line == format!("notify {target}: 2 undelivered")),
            "{text}"
        );
    }
    assert!(smtp.received().is_empty());
    assert!(!hanging.hits().is_empty(), "the hanging target was tried");
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));

    // Each fault is named, with what to look at.
    let output = setup.certkeeper(&["notify", "test"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let line = |target: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("{target}: failed: ")))
            .unwrap_or_else(|| panic!("no failure line for {target}: {text}"))
            .to_owned()
    };
    assert!(line("hanging").contains("3s"), "{text}");
    assert!(line("failing").contains("500"), "{text}");
    assert!(
        line("down").contains(&format!("127.0.0.1:{down_port}")),
        "{text}"
    );
    assert!(line("refused").contains("535"), "{text}");
    assert!(
        !text.contains("not-the-password"),
        "the password stays secret"
    );
}

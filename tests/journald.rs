//! `certkeeper run` under a real systemd-journald, started the way systemd starts the unit
//! (stderr on journald's stream socket, `JOURNAL_STREAM` set; see `support::journald`),
//! against a real Pebble: what `journalctl` shows is what the README promises. Fields arrive
//! as `CERT`, `DOMAINS`, `ORDER_URL`, ... (no prefix, no `Some(...)`), under the identifier
//! `certkeeper`, routine work at info (6), and `journalctl -p err` lists exactly what needs a
//! human: the failed attempts, and the notice each one queued for a `[[notify]]` target (a
//! real webhook receiver), with its event in `NOTIFY_EVENT`.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::time::Duration;

use rustix::process::Signal;
use support::journald::{Entry, Journald, show};
use support::proxy::{Fault, FaultProxy};
use support::receiver::Receiver;
use support::{Cert, Daemon, PebbleOptions, Setup};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");

/// The field names the README's `journalctl` lines use (`CERT=www`, "fields CERT, ...").
fn readme_journal_fields() -> Vec<String> {
    let readme = fs::read_to_string(README).unwrap();
    let mut names: Vec<String> = readme
        .lines()
        .filter(|line| line.starts_with("journalctl "))
        .flat_map(|line| line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|word| word.len() >= 3 && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `certkeeper run` on `setup`'s config, under `journald`.
fn spawn_daemon(journald: &Journald, setup: &Setup) -> Daemon {
    let child = journald
        .command("certkeeper", env!("CARGO_BIN_EXE_certkeeper"))
        .arg("--config")
        .arg(&setup.config)
        .arg("run")
        .env_remove("CERTKEEPER_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap();
    Daemon {
        child,
        // Nothing is written there: the log is in the journal.
        log: setup.dir.path().join("daemon.log"),
    }
}

/// The first entry with this message.
fn find<'a>(entries: &'a [Entry], message: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.message() == message)
        .unwrap_or_else(|| panic!("no entry {message:?} in:\n{}", show(entries)))
}

#[test]
fn an_issuance_is_in_the_journal_with_plain_fields_at_info() {
    let journald = Journald::start();
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert::new("www", &["www.example.com", "web.example.com"])]);
    let mut daemon = spawn_daemon(&journald, &setup);
    let pid = format!("_PID={}", daemon.pid());

    let entries = journald.wait_for(
        "the certificate to be installed",
        Duration::from_secs(60),
        &[&pid],
        |entries| {
            entries
                .iter()
                .any(|e| e.message() == "certificate installed")
        },
    );

    let installed = find(&entries, "certificate installed");
    assert_eq!(
        installed.field("CERT").as_deref(),
        Some("www"),
        "{installed}"
    );
    assert_eq!(
        installed.field("DOMAINS").as_deref(),
        Some("www.example.com web.example.com"),
        "{installed}"
    );
    assert_eq!(installed.priority(), "6", "info is priority 6: {installed}");
    assert!(installed.field("NOT_AFTER").is_some(), "{installed}");

    let created = find(&entries, "order created");
    let order_url = created.field("ORDER_URL").unwrap();
    let ca = setup.pebble.directory_url.trim_end_matches("dir");
    assert!(order_url.starts_with(ca), "{created}");
    assert_eq!(created.field("CERT").as_deref(), Some("www"), "{created}");

    // Optional values arrive as the value itself.
    let listening = find(&entries, "HTTP-01 responder listening");
    assert_eq!(
        listening.field("ADDR"),
        Some(format!("127.0.0.1:{}", setup.pebble.http01_port)),
        "{listening}"
    );
    let registering = find(&entries, "registering ACME account");
    let (kid, _) = setup.pebble.eab.clone().unwrap();
    assert_eq!(registering.field("EAB_KID"), Some(kid), "{registering}");

    for entry in &entries {
        assert_eq!(
            entry.field("SYSLOG_IDENTIFIER").as_deref(),
            Some("certkeeper"),
            "{entry}"
        );
        assert_eq!(
            entry.field("_TRANSPORT").as_deref(),
            Some("journal"),
            "sent natively, not as a line on the stream: {entry}"
        );
        for name in entry.sender_fields() {
            assert!(!name.starts_with("F_"), "prefixed field {name}: {entry}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "field name {name}: {entry}"
            );
            for value in entry.values(name) {
                assert!(
                    !value.starts_with("Some(") && value != "None",
                    "{name}={value}: {entry}"
                );
            }
        }
        // No tracing field collides with one journald reads itself.
        for name in [
            "MESSAGE",
            "PRIORITY",
            "SYSLOG_IDENTIFIER",
            "TARGET",
            "CODE_FILE",
            "CODE_LINE",
        ] {
            assert!(entry.values(name).len() <= 1, "{name} twice: {entry}");
        }
    }

    // The README's query: a field match finds the certificate's entries, and only them.
    let by_field = journald.entries(&["CERT=www"]);
    find(&by_field, "certificate installed");
    find(&by_field, "order created");
    assert!(
        by_field.iter().all(|e| e.values("CERT") == ["www"]),
        "{}",
        show(&by_field)
    );
    // ... and every field the README's journalctl lines name is one certkeeper sends.
    let documented = readme_journal_fields();
    assert!(documented.contains(&"CERT".to_owned()), "{documented:?}");
    for name in &documented {
        assert!(
            entries.iter().any(|e| e.field(name).is_some()),
            "the README names field {name}, which no entry has:\n{}",
            show(&entries)
        );
    }
    assert_eq!(
        journald
            .entries(&["--identifier=certkeeper", "--priority=info", &pid])
            .len(),
        journald.entries(&[&pid]).len(),
        "everything logged at info or above"
    );

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    // certkeeper found its stream in JOURNAL_STREAM and wrote nothing to it: every entry went
    // natively, with its fields.
    let on_stream = journald.entries(&["_TRANSPORT=stdout"]);
    assert!(on_stream.is_empty(), "{}", show(&on_stream));
}

#[test]
fn priority_err_lists_exactly_what_needs_a_human() {
    let journald = Journald::start();
    let setup = Setup::new(PebbleOptions::default());
    let proxy = FaultProxy::start(&setup.pebble);
    let receiver = Receiver::start();
    setup.write_config(&[]);
    // A second CA entry, "flaky": the same Pebble behind the fault proxy.
    let text = fs::read_to_string(&setup.config).unwrap();
    let flaky = text
        .split("[[ca]]")
        .nth(1)
        .unwrap()
        .replace("name = \"pebble\"", "name = \"flaky\"")
        .replace(&setup.pebble.directory_url, &proxy.directory_url());
    // `blocked.example` is on Pebble's domainBlocklist: refused for good, a human must act.
    let text = format!(
        "{text}\n[[ca]]{flaky}
[[certificate]]
name = \"refused\"
ca = \"pebble\"
domains = [\"blocked.example\"]

[[certificate]]
name = \"www\"
ca = \"flaky\"
domains = [\"www.example.com\"]

[[notify]]
name = \"hook\"
type = \"webhook\"
url = \"{}\"
",
        receiver.url
    );
    fs::write(&setup.config, text).unwrap();
    let mut daemon = spawn_daemon(&journald, &setup);
    let pid = format!("_PID={}", daemon.pid());

    journald.wait_for(
        "www installed and refused refused",
        Duration::from_secs(60),
        &[&pid],
        |entries| {
            let has = |cert: &str, priority: &str, message: &str| {
                entries.iter().any(|e| {
                    e.values("CERT") == [cert]
                        && e.priority() == priority
                        && e.message().starts_with(message)
                })
            };
            has("www", "6", "certificate installed")
                && has(
                    "refused",
                    "3",
                    "attempt failed and will not succeed by itself",
                )
                && entries
                    .iter()
                    .any(|e| e.field("NOTIFY_EVENT").as_deref() == Some("failed"))
        },
    );

    // A transient failure while the certificate is still valid: the CA is unreachable
    // during a forced renewal (carried out by the daemon, through its control socket).
    proxy.set(Fault::Down);
    let renew = setup.certkeeper(&["renew", "--force", "www"]);
    assert_eq!(renew.status.code(), Some(1), "the renewal failed");
    let transient = journald.wait_for(
        "the transient failure",
        Duration::from_secs(30),
        &[&pid, "CERT=www", "PRIORITY=4"],
        |entries| {
            entries.iter().any(|e| {
                e.message()
                    .starts_with("renewal failed; the certificate is still valid")
            })
        },
    );

    let errors = journald.entries(&["--priority=err", &pid]);
    assert!(!errors.is_empty());
    // Two kinds of entry, both about the certificate a human must fix: its failed attempts,
    // and the notice the first of them queued (the others of the streak queue none).
    let (notices, failures): (Vec<&Entry>, Vec<&Entry>) = errors
        .iter()
        .partition(|e| e.field("NOTIFY_EVENT").is_some());
    assert!(!failures.is_empty(), "{}", show(&errors));
    for entry in &errors {
        assert_eq!(entry.field("CERT").as_deref(), Some("refused"), "{entry}");
    }
    for entry in &failures {
        assert!(
            entry
                .message()
                .starts_with("attempt failed and will not succeed by itself"),
            "{entry}"
        );
        assert!(
            entry.field("ERROR").is_some_and(|e| !e.is_empty()),
            "the CA's reason is in ERROR: {entry}"
        );
    }
    assert_eq!(notices.len(), 1, "one failed notice: {}", show(&errors));
    let notice = notices[0];
    assert_eq!(
        notice.field("NOTIFY_EVENT").as_deref(),
        Some("failed"),
        "{notice}"
    );
    assert_eq!(
        notice.field("NOTIFY_TARGET").as_deref(),
        Some("hook"),
        "{notice}"
    );
    // ... and it is the notice the receiver got.
    let bodies = receiver.wait_for("the failed notice", Duration::from_secs(30), |bodies| {
        !bodies.is_empty()
    });
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(bodies[0]["event"], "failed", "{:#}", bodies[0]);
    assert_eq!(bodies[0]["certificate"], "refused", "{:#}", bodies[0]);
    // The same from every process of the identifier: nothing else is at err or above.
    assert_eq!(
        journald
            .entries(&["--priority=err", "--identifier=certkeeper"])
            .len(),
        errors.len(),
        "{}",
        show(&journald.entries(&["--priority=err"]))
    );
    let transient = &transient[transient.len() - 1];
    assert!(transient.field("ERROR").is_some(), "{transient}");

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

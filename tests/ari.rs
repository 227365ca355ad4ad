//! Renewal signals from the CA, end to end: ACME Renewal Information (RFC 9773) with
//! `replaces`, profiles, and short-lived certificates, against real ACME servers:
//! acme2certifier 0.46.3 (ARI and profiles; `tests/support/a2c.rs`) and Debian's Pebble 2.4
//! (neither), with the fault proxy in front of either for what neither does by itself (a 409
//! `alreadyReplaced`, a renewalInfo endpoint answering 500 or hanging).
//!
//! What is asserted is what a user can see: the certificates in the state directory, the
//! orders and their payloads at the CA, and `certkeeper status --json`.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use support::a2c::{A2cOptions, A2cSetup, NEW_ORDER_PATH, RENEWAL_INFO_PATH};
use support::proxy::{Fault, FaultProxy};
use support::{Cert, PebbleOptions, Setup, serial, stderr, stdout};

/// Pebble's newOrder path.
const PEBBLE_NEW_ORDER: &str = "/order-plz";

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many certificates were installed for `name` under `state_dir`.
fn versions(state_dir: &Path, name: &str) -> usize {
    support::archive_versions(state_dir, name).len()
}

/// `certkeeper status --json`, the row of `name`.
fn status_row(output: &std::process::Output, name: &str) -> Value {
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("status --json: {err}\n{}", stdout(output)));
    rows.into_iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

fn instant(text: &Value) -> SystemTime {
    let ts: jiff::Timestamp = text
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {text}"))
        .parse()
        .unwrap();
    SystemTime::try_from(ts).unwrap()
}

/// The RFC 9773 certID of the certificate in `pem_file`, as the CA expects it in `replaces`.
fn cert_id(pem_file: &Path) -> String {
    let der = CertificateDer::from_pem_file(pem_file).unwrap();
    instant_acme::CertificateIdentifier::try_from(&der)
        .unwrap()
        .to_string()
}

fn a2c_cert<'a>(name: &'a str, domains: &'a [&'a str], extra: &'a str) -> Cert<'a> {
    Cert {
        extra,
        ..Cert::new(name, domains)
    }
}

#[test]
fn a_window_in_the_future_is_shown_and_waited_for() {
    // 90-day certificates; the CA's window opens at 85% of the lifetime.
    let setup = A2cSetup::new(A2cOptions::default());
    setup.write_config(&[Cert::new("www", &["www.example.test"])]);
    assert!(setup.certkeeper(&["renew"]).status.success());
    let issued = serial(&setup.live("www").join("cert.pem"));

    let mut daemon = setup.spawn_daemon(&[]);
    wait_until("the CA's window in status", Duration::from_secs(60), || {
        !status_row(&setup.certkeeper(&["status", "--json"]), "www")["renewal_info"].is_null()
    });
    let row = status_row(&setup.certkeeper(&["status", "--json"]), "www");
    let info = &row["renewal_info"];
    let (start, end, renew_at) = (
        instant(&info["window_start"]),
        instant(&info["window_end"]),
        instant(&info["renew_at"]),
    );
    assert!(
        start > SystemTime::now() + Duration::from_secs(70 * 86_400),
        "{info}"
    );
    assert!(start <= renew_at && renew_at <= end, "{info}");
    assert_eq!(info["last_check_outcome"], "ok", "{info}");
    // The CA's Retry-After (an hour) sets the next check.
    let checked = instant(&info["last_check"]);
    assert_eq!(
        instant(&info["next_check"])
            .duration_since(checked)
            .unwrap(),
        Duration::from_secs(3_600)
    );
    // The plan is the chosen instant, and nothing was renewed.
    assert_eq!(instant(&row["next_action_at"]), renew_at);
    assert_eq!(versions(&setup.state_dir, "www"), 1);
    assert_eq!(serial(&setup.live("www").join("cert.pem")), issued);
    assert_eq!(setup.a2c.new_orders().len(), 1);
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn a_window_moved_into_the_past_renews_that_certificate_only_with_replaces() {
    // Retry-After 60 s (the shortest certkeeper honours).
    let setup = A2cSetup::new(A2cOptions::default().retry_after_secs(60));
    setup.write_config(&[
        Cert::new("www", &["www.example.test"]),
        Cert::new("api", &["api.example.test"]),
    ]);
    assert!(setup.certkeeper(&["renew"]).status.success());
    let www_cert = setup.live("www").join("cert.pem");
    let old_www = serial(&www_cert);
    let old_api = serial(&setup.live("api").join("cert.pem"));
    let replaced_id = cert_id(&www_cert);

    let mut daemon = setup.spawn_daemon(&[]);
    wait_until("both windows known", Duration::from_secs(60), || {
        let status = setup.certkeeper(&["status", "--json"]);
        ["www", "api"]
            .iter()
            .all(|name| !status_row(&status, name)["renewal_info"].is_null())
    });
    let orders_before = setup.a2c.new_orders().len();

    // The CA moves www's window into the past (as for a revocation).
    setup
        .a2c
        .move_window_into_past(&old_www.to_ascii_lowercase());
    let moved = Instant::now();
    wait_until("www renewed", Duration::from_secs(150), || {
        versions(&setup.state_dir, "www") == 2
    });
    // Within the Retry-After interval (60 s), plus the order itself.
    assert!(
        moved.elapsed() < Duration::from_secs(120),
        "{:?}",
        moved.elapsed()
    );
    assert_ne!(serial(&www_cert), old_www);
    // api was not touched.
    assert_eq!(versions(&setup.state_dir, "api"), 1);
    assert_eq!(serial(&setup.live("api").join("cert.pem")), old_api);
    // One new order, carrying the replaced certificate's certID.
    let orders = setup.a2c.new_orders();
    assert_eq!(orders.len(), orders_before + 1, "{orders:?}");
    let payload = orders.last().unwrap();
    assert_eq!(payload["replaces"], replaced_id.as_str(), "{payload}");
    // First issuances carried none.
    assert!(
        orders[..orders_before]
            .iter()
            .all(|o| o.get("replaces").is_none())
    );
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn a_ca_without_ari_renews_by_lifetime_without_replaces_or_renewal_info_requests() {
    // 20-second certificates: short-lived, renewed at half their lifetime.
    let setup = Setup::new(PebbleOptions {
        validity_secs: Some(20),
        ..PebbleOptions::default()
    });
    let proxy = FaultProxy::start(&setup.pebble);
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace(&setup.pebble.directory_url, &proxy.directory_url()),
    )
    .unwrap();
    let mut daemon = setup.spawn_daemon(&[]);
    wait_until("two renewals", Duration::from_secs(90), || {
        setup.versions("www").len() >= 3
    });
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));

    let orders = proxy.payloads_to(PEBBLE_NEW_ORDER);
    assert!(orders.len() >= 3, "{orders:?}");
    assert!(
        orders.iter().all(|order| order.get("replaces").is_none()),
        "{orders:?}"
    );
    let paths = proxy.paths();
    assert!(
        !paths.iter().any(|path| path.contains("renewal")),
        "{paths:?}"
    );
    let row = status_row(&setup.certkeeper(&["status", "--json"]), "www");
    assert!(row["renewal_info"].is_null(), "{row}");
}

#[test]
fn an_already_replaced_refusal_is_retried_once_without_replaces() {
    let setup = A2cSetup::new(A2cOptions::default());
    let proxy = FaultProxy::start_for(&setup.a2c.upstream());
    setup.write_config_via(
        &proxy.directory_url(),
        "",
        &[Cert::new("www", &["www.example.test"])],
    );
    assert!(setup.certkeeper(&["renew"]).status.success());
    let first = serial(&setup.live("www").join("cert.pem"));

    proxy.fail_next_on(
        NEW_ORDER_PATH,
        1,
        Fault::Status {
            code: 409,
            problem: "alreadyReplaced",
            retry_after: None,
        },
    );
    let renewed = setup.certkeeper(&["renew", "--force", "www"]);
    assert!(renewed.status.success(), "{}", stderr(&renewed));
    assert_ne!(serial(&setup.live("www").join("cert.pem")), first);
    assert_eq!(versions(&setup.state_dir, "www"), 2);
    // At the proxy: the refused order with `replaces`, then one without.
    let sent = proxy.payloads_to(NEW_ORDER_PATH);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[1].get("replaces").is_some(), "{sent:?}");
    assert!(sent[2].get("replaces").is_none(), "{sent:?}");
    // At the CA: the first issuance and the one retry.
    assert_eq!(setup.a2c.new_orders().len(), 2);
    assert_eq!(setup.a2c.issued_count(), 2);
}

#[test]
fn renewal_info_failing_or_hanging_leaves_the_lifetime_rule_and_retries_in_six_hours() {
    for (label, fault) in [
        (
            "500",
            Fault::Status {
                code: 500,
                problem: "serverInternal",
                retry_after: None,
            },
        ),
        ("hang", Fault::Delay(Duration::from_secs(3_600))),
    ] {
        // One-day certificates, which the lifetime rule (renew_before: all but 20 s of it)
        // makes due 20 s after issuance.
        let setup = A2cSetup::new(A2cOptions::default().validity_days(1));
        let proxy = FaultProxy::start_for(&setup.a2c.upstream());
        proxy.set_on(RENEWAL_INFO_PATH, fault);
        setup.write_config_via(
            &proxy.directory_url(),
            "",
            &[a2c_cert(
                "www",
                &["www.example.test"],
                "renew_before = \"23h59m40s\"",
            )],
        );
        let text = std::fs::read_to_string(&setup.config)
            .unwrap()
            .replace("root_ca_file", "request_timeout = \"3s\"\nroot_ca_file");
        std::fs::write(&setup.config, text).unwrap();
        assert!(setup.certkeeper(&["renew"]).status.success(), "{label}");

        let mut daemon = setup.spawn_daemon(&[]);
        wait_until("a failed check recorded", Duration::from_secs(60), || {
            let row = status_row(&setup.certkeeper(&["status", "--json"]), "www");
            row["renewal_info"]["last_check_outcome"]
                .as_str()
                .is_some_and(|outcome| outcome != "ok")
        });
        let info =
            status_row(&setup.certkeeper(&["status", "--json"]), "www")["renewal_info"].clone();
        assert!(info["window_start"].is_null(), "{label}: {info}");
        assert_eq!(
            instant(&info["next_check"])
                .duration_since(instant(&info["last_check"]))
                .unwrap(),
            Duration::from_secs(6 * 3_600),
            "{label}: {info}"
        );
        // The lifetime rule still renews it.
        wait_until(
            "the lifetime rule's renewal",
            Duration::from_secs(90),
            || versions(&setup.state_dir, "www") >= 2,
        );
        assert!(proxy.requests_to(RENEWAL_INFO_PATH) >= 1, "{label}");
        daemon.signal(rustix::process::Signal::TERM);
        assert_eq!(
            daemon.wait_exit(Duration::from_secs(40)),
            Some(0),
            "{label}"
        );
    }
}

#[test]
fn profiles_are_sent_and_an_unknown_one_is_refused_with_the_offered_list() {
    let setup = A2cSetup::new(A2cOptions::default());
    setup.write_config(&[
        a2c_cert("short", &["short.example.test"], "profile = \"shortlived\""),
        a2c_cert("odd", &["odd.example.test"], "profile = \"nosuchprofile\""),
    ]);
    let first = setup.certkeeper(&["renew"]);
    assert!(!first.status.success());
    // shortlived was asked for and issued.
    assert_eq!(versions(&setup.state_dir, "short"), 1);
    let orders = setup.a2c.new_orders();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["profile"], "shortlived");
    // The unknown one was refused before anything was ordered, with the CA's list.
    let err = stderr(&first);
    for offered in ["classic", "shortlived", "tlsserver"] {
        assert!(err.contains(offered), "{offered} missing from:\n{err}");
    }
    assert_eq!(versions(&setup.state_dir, "odd"), 0);
    let row = status_row(&setup.certkeeper(&["status", "--json"]), "odd");
    assert_eq!(row["profile_refused"], true, "{row}");

    // Not ordered again while the configuration asks for it...
    let again = setup.certkeeper(&["renew"]);
    assert!(!again.status.success());
    assert_eq!(setup.a2c.new_orders().len(), 1);
    assert_eq!(versions(&setup.state_dir, "odd"), 0);
    // ... and ordered once it changes.
    setup.write_config(&[
        a2c_cert("short", &["short.example.test"], "profile = \"shortlived\""),
        a2c_cert("odd", &["odd.example.test"], "profile = \"tlsserver\""),
    ]);
    let fixed = setup.certkeeper(&["renew"]);
    assert!(fixed.status.success(), "{}", stderr(&fixed));
    assert_eq!(versions(&setup.state_dir, "odd"), 1);
    assert_eq!(
        setup.a2c.new_orders().last().unwrap()["profile"],
        "tlsserver"
    );
}

#[test]
fn a_six_day_certificate_is_planned_at_half_its_lifetime() {
    let setup = Setup::new(PebbleOptions {
        validity_secs: Some(6 * 86_400),
        ..PebbleOptions::default()
    });
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    assert!(setup.certkeeper(&["renew"]).status.success());
    let row = status_row(&setup.certkeeper(&["status", "--json"]), "www");
    let not_after = instant(&row["not_after"]);
    let next = instant(&row["next_action_at"]);
    let half = not_after - Duration::from_secs(3 * 86_400);
    // At half the lifetime, earlier by at most a tenth of the three days (jitter).
    assert!(next <= half, "{row}");
    assert!(next >= half - Duration::from_secs(3 * 86_400 / 10), "{row}");
    assert_eq!(row["next_action"], "renew");
    assert_eq!(row["urgent"], false);
}

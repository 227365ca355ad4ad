//! Planner tables: instants in, instants out.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::*;
use crate::inventory::KeyType;
use crate::lifecycle::LifecycleAction;
use crate::names::{CaName, DomainName};

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn t(text: &str) -> SystemTime {
    let ts: Timestamp = text.parse().expect("test instants are RFC 3339");
    SystemTime::try_from(ts).expect("in range")
}

fn show(at: SystemTime) -> String {
    Timestamp::try_from(at).expect("in range").to_string()
}

fn name(s: &str) -> CertName {
    CertName::new(s).expect("valid test name")
}

fn spec(cert: &str, renew_before: Option<Duration>) -> CertificateSpec {
    CertificateSpec {
        name: name(cert),
        ca: CaName::new("ca").expect("valid test name"),
        domains: vec![DomainName::new("a.example.com").expect("valid test name")],
        key_type: KeyType::EcdsaP256,
        order_id: None,
        action: LifecycleAction::Auto,
        renew_before,
        profile: None,
        preferred_chain: None,
        schedule: std::sync::Arc::default(),
        hooks: std::sync::Arc::default(),
        reuse_key: false,
        key_group: None,
    }
}

fn cert(not_before: SystemTime, lifetime: Duration) -> ObservedCert {
    ObservedCert {
        not_before,
        not_after: not_before + lifetime,
        domains: vec!["a.example.com".into()],
        key_type: Some(KeyType::EcdsaP256),
        revoked: false,
        suggested: None,
    }
}

fn windowed(expr: &str, tz: TimeZone) -> SchedulePolicy {
    SchedulePolicy {
        window: Some(MaintenanceWindow {
            cron: expr.parse().expect("test expressions are valid"),
            tz,
        }),
        ..SchedulePolicy::default()
    }
}

fn plan(
    cert_name: &str,
    renew_before: Option<Duration>,
    observed: Option<&ObservedCert>,
    attempts: &Attempts,
    policy: &SchedulePolicy,
    now: SystemTime,
) -> Planned {
    plan_certificate(
        &name(cert_name),
        &spec(cert_name, renew_before),
        observed,
        attempts,
        policy,
        now,
    )
    .expect("only revoked lineages are unplanned")
}

const NO_FAILURES: Attempts = Attempts {
    consecutive_failures: 0,
    last_failure_at: None,
    retry_not_before: None,
};

#[test]
fn due_time_is_the_renewal_point_moved_earlier_by_jitter() {
    let issued = t("2026-01-01T00:00:00Z");
    let policy = SchedulePolicy::default();
    // (lifetime, renew_before)
    let table: &[(Duration, Option<Duration>)] = &[
        (10 * MIN, None),
        (10 * MIN, Some(2 * MIN)),
        (HOUR, None),
        (DAY, None),
        (6 * DAY, None),
        (10 * DAY, None),
        (47 * DAY, None),
        (90 * DAY, None),
        (100 * DAY, None),
        (200 * DAY, None),
        (398 * DAY, None),
        (398 * DAY, Some(30 * DAY)),
    ];
    for cert_name in ["www", "api", "mail"] {
        for (lifetime, renew_before) in table {
            let observed = cert(issued, *lifetime);
            let before =
                renew_before.unwrap_or_else(|| crate::renewal::default_renew_before(*lifetime));
            let due_at = observed.not_after - before;
            let span = before / 10;
            let offset = jitter(&name(cert_name), span);
            assert!(
                offset < span,
                "{cert_name} {lifetime:?}: {offset:?} >= {span:?}"
            );
            let expected = due_at - offset;
            let got = plan(
                cert_name,
                *renew_before,
                Some(&observed),
                &NO_FAILURES,
                &policy,
                issued + SEC,
            );
            let urgent_point = observed.not_after - urgent_threshold(&observed, &policy);
            assert_eq!(
                got,
                Planned {
                    at: expected,
                    reason: Reason::RenewalDue,
                    renewal: true,
                    urgent: expected >= urgent_point,
                    hold: None,
                },
                "{cert_name} lifetime {lifetime:?} renew_before {renew_before:?}"
            );
            // Between the jittered point and the unjittered one `decide` says "not due",
            // yet the plan is to act now; after it, `decide` says "due": still now.
            for now in [expected, expected + offset / 2, due_at, due_at + SEC] {
                let later = plan(
                    cert_name,
                    *renew_before,
                    Some(&observed),
                    &NO_FAILURES,
                    &policy,
                    now,
                );
                assert_eq!(
                    (later.at, later.hold),
                    (now, None),
                    "{cert_name} at {now:?}"
                );
            }
        }
    }
}

#[test]
fn pinned_instants_for_a_fleet() {
    // Literal instants, so a change to the hash or the span shows up as a diff of dates.
    let issued = t("2026-01-01T00:00:00Z");
    let observed = cert(issued, 90 * DAY);
    // Without jitter the renewal point is 2026-03-02T00:00:00Z (30 days before expiry).
    let got: Vec<String> = ["www", "api", "mail", "shop"]
        .iter()
        .map(|n| {
            let planned = plan(
                n,
                None,
                Some(&observed),
                &NO_FAILURES,
                &SchedulePolicy::default(),
                issued,
            );
            show(planned.at)
        })
        .collect();
    assert_eq!(got, PINNED_FLEET);
}

const PINNED_FLEET: [&str; 4] = [
    "2026-02-27T17:45:20.254Z",
    "2026-03-01T10:05:01.931Z",
    "2026-02-27T22:34:54.544Z",
    "2026-03-01T19:59:06.697Z",
];

#[test]
fn jitter_spreads_a_fleet_and_survives_restarts() {
    let issued = t("2026-01-01T00:00:00Z");
    let observed = cert(issued, 90 * DAY);
    let due_at = observed.not_after - 30 * DAY;
    let policy = SchedulePolicy::default();
    let mut instants = Vec::new();
    for i in 0..100 {
        let cert_name = format!("web{i}");
        let first = plan(
            &cert_name,
            None,
            Some(&observed),
            &NO_FAILURES,
            &policy,
            issued,
        );
        // A restart days later, or a second call, plans the same instant.
        for now in [issued, issued + 3 * DAY, issued + 50 * DAY] {
            let again = plan(
                &cert_name,
                None,
                Some(&observed),
                &NO_FAILURES,
                &policy,
                now,
            );
            assert_eq!(again, first, "{cert_name} replanned at {now:?}");
        }
        assert!(
            first.at <= due_at && first.at > due_at - 3 * DAY,
            "{cert_name}"
        );
        instants.push(first.at);
    }
    instants.sort_unstable();
    instants.dedup();
    assert_eq!(instants.len(), 100, "every name gets its own instant");
    let spread = instants[99]
        .duration_since(instants[0])
        .expect("sorted instants");
    assert!(spread > 2 * DAY, "100 names spread over only {spread:?}");
}

#[test]
fn digicert_monthly_window_holds_a_renewal_until_the_first() {
    // 90 days from 2026-01-09 12:00: due at 2026-03-10 12:00 (minus up to 3 days of jitter),
    // expires 2026-04-09 12:00, urgent from 2026-04-02 12:00.
    let observed = cert(t("2026-01-09T12:00:00Z"), 90 * DAY);
    let utc = windowed("30 2 1 * *", TimeZone::UTC);
    let eastern = windowed(
        "30 2 1 * *",
        TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").expect("valid POSIX TZ"),
    );
    // (policy, now, expected at, hold)
    let table: &[(&SchedulePolicy, &str, &str, Option<Hold>)] = &[
        (
            &utc,
            "2026-01-10T00:00:00Z",
            "2026-04-01T02:30:00Z",
            Some(Hold::Window),
        ),
        (
            &utc,
            "2026-03-10T13:00:00Z",
            "2026-04-01T02:30:00Z",
            Some(Hold::Window),
        ),
        (
            &utc,
            "2026-04-01T02:29:59Z",
            "2026-04-01T02:30:00Z",
            Some(Hold::Window),
        ),
        // Woken exactly at, or a little after, the start: run now.
        (&utc, "2026-04-01T02:30:00Z", "2026-04-01T02:30:00Z", None),
        (&utc, "2026-04-01T02:30:40Z", "2026-04-01T02:30:40Z", None),
        (
            &eastern,
            "2026-01-10T00:00:00Z",
            "2026-04-01T06:30:00Z",
            Some(Hold::Window),
        ),
    ];
    for (policy, now, expected, hold) in table {
        let got = plan("www", None, Some(&observed), &NO_FAILURES, policy, t(now));
        assert_eq!(
            (show(got.at), got.hold, got.urgent, got.reason, got.renewal),
            (expected.to_string(), *hold, false, Reason::RenewalDue, true),
            "now {now}"
        );
    }
}

#[test]
fn window_too_far_gives_way_to_the_urgent_point() {
    let utc = windowed("30 2 1 * *", TimeZone::UTC);
    // (name, issued, lifetime, now, expected at)
    let table: &[(&str, &str, Duration, &str, &str)] = &[
        // 90 days from 2026-02-05: due about 2026-04-06, window 2026-05-01, urgent point
        // 2026-04-29 (7 days before expiry) comes first.
        (
            "www",
            "2026-02-05T00:00:00Z",
            90 * DAY,
            "2026-02-06T00:00:00Z",
            "2026-04-29T00:00:00Z",
        ),
        // 10 days from 2026-03-03: urgent point one day before expiry, window weeks away.
        (
            "short",
            "2026-03-03T00:00:00Z",
            10 * DAY,
            "2026-03-03T00:00:00Z",
            "2026-03-12T00:00:00Z",
        ),
        // 10 minutes: urgent one minute before expiry.
        (
            "tiny",
            "2026-03-03T00:00:00Z",
            10 * MIN,
            "2026-03-03T00:00:01Z",
            "2026-03-03T00:09:00Z",
        ),
        // Already past the urgent point: now.
        (
            "late",
            "2026-02-05T00:00:00Z",
            90 * DAY,
            "2026-04-30T08:00:00Z",
            "2026-04-30T08:00:00Z",
        ),
    ];
    for (cert_name, issued, lifetime, now, expected) in table {
        let observed = cert(t(issued), *lifetime);
        let got = plan(cert_name, None, Some(&observed), &NO_FAILURES, &utc, t(now));
        let hold = (t(expected) > t(now)).then_some(Hold::Window);
        assert_eq!(
            (show(got.at), got.hold, got.urgent),
            (expected.to_string(), hold, true),
            "{cert_name}"
        );
    }
}

#[test]
fn windows_and_jitter_never_push_past_the_urgent_point() {
    let windows = [
        windowed("30 2 1 * *", TimeZone::UTC),
        windowed("0 0 29 2 *", TimeZone::UTC),
        windowed("0 0 31 2 *", TimeZone::UTC), // never matches
        windowed("*/5 * * * *", TimeZone::UTC),
        windowed(
            "30 2 * * sun",
            TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("valid POSIX TZ"),
        ),
    ];
    let lifetimes = [
        10 * MIN,
        HOUR,
        DAY,
        10 * DAY,
        47 * DAY,
        90 * DAY,
        200 * DAY,
        398 * DAY,
    ];
    let issued = t("2026-02-20T17:45:00Z");
    for policy in &windows {
        for lifetime in lifetimes {
            for cert_name in ["www", "api", "mail"] {
                let observed = cert(issued, lifetime);
                let urgent_point = observed.not_after - urgent_threshold(&observed, policy);
                let due_at = observed.renewal_due_at(None);
                for now in [issued, due_at, urgent_point - SEC] {
                    let got = plan(cert_name, None, Some(&observed), &NO_FAILURES, policy, now);
                    let context =
                        format!("{cert_name} {lifetime:?} {:?} now {now:?}", policy.window);
                    assert!(got.at <= urgent_point, "{context}: {}", show(got.at));
                    assert!(got.at < observed.not_after, "{context}");
                    assert!(got.at >= now, "{context}");
                    assert_eq!(got.urgent, got.at >= urgent_point, "{context}");
                    assert_eq!(got.reason, Reason::RenewalDue, "{context}");
                }
            }
        }
    }
}

#[test]
fn backoff_after_failures_doubles_up_to_six_hours() {
    // A 90-day certificate that has been due for a while.
    let observed = cert(t("2026-01-01T00:00:00Z"), 90 * DAY);
    let failed = t("2026-03-05T10:00:00Z");
    let policy = SchedulePolicy::default();
    let bases = [1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360, 360];
    for (failures, base_minutes) in (1u32..).zip(bases) {
        let attempts = Attempts {
            consecutive_failures: failures,
            last_failure_at: Some(failed),
            retry_not_before: None,
        };
        let got = plan("www", None, Some(&observed), &attempts, &policy, failed);
        let base = base_minutes * MIN;
        let delay = got.at.duration_since(failed).expect("after the failure");
        assert!(
            delay <= base && delay > base - base / 10,
            "after {failures} failures waited {delay:?}, expected about {base:?}"
        );
        assert_eq!(
            delay,
            backoff_delay(&name("www"), failures, &policy.backoff)
        );
        assert_eq!((got.hold, got.urgent), (Some(Hold::Backoff), false));
        // Once the delay has passed: now.
        let later = plan(
            "www",
            None,
            Some(&observed),
            &attempts,
            &policy,
            failed + base,
        );
        assert_eq!((later.at, later.hold), (failed + base, None));
    }
}

#[test]
fn ca_retry_after_wins_when_later_than_the_backoff() {
    let observed = cert(t("2026-01-01T00:00:00Z"), 90 * DAY);
    let failed = t("2026-03-05T10:00:00Z");
    let policy = SchedulePolicy::default();
    // (failures, retry_not_before, expected at, hold); the backoff after 1 failure is about
    // a minute, after 3 about 4 minutes.
    let table: &[(u32, Option<&str>, Option<&str>, Hold)] = &[
        (
            1,
            Some("2026-03-05T11:00:00Z"),
            Some("2026-03-05T11:00:00Z"),
            Hold::RetryAfter,
        ),
        (3, Some("2026-03-05T10:02:00Z"), None, Hold::Backoff),
        // Rate limited without a failed order on record.
        (
            0,
            Some("2026-03-06T00:00:00Z"),
            Some("2026-03-06T00:00:00Z"),
            Hold::RetryAfter,
        ),
    ];
    for (failures, retry, expected, hold) in table {
        let attempts = Attempts {
            consecutive_failures: *failures,
            last_failure_at: Some(failed),
            retry_not_before: retry.map(t),
        };
        let got = plan("www", None, Some(&observed), &attempts, &policy, failed);
        let expected = expected.map_or_else(
            || failed + backoff_delay(&name("www"), *failures, &policy.backoff),
            t,
        );
        assert_eq!(
            (got.at, got.hold),
            (expected, Some(*hold)),
            "{failures} {retry:?}"
        );
    }
    // A Retry-After equal to the end of the backoff is reported as the CA's.
    let until = failed + backoff_delay(&name("www"), 2, &policy.backoff);
    let attempts = Attempts {
        consecutive_failures: 2,
        last_failure_at: Some(failed),
        retry_not_before: Some(until),
    };
    let got = plan("www", None, Some(&observed), &attempts, &policy, failed);
    assert_eq!((got.at, got.hold), (until, Some(Hold::RetryAfter)));
    // A stale Retry-After is ignored.
    let attempts = Attempts {
        consecutive_failures: 0,
        last_failure_at: None,
        retry_not_before: Some(t("2026-03-01T00:00:00Z")),
    };
    let now = t("2026-03-05T10:00:00Z");
    let got = plan("www", None, Some(&observed), &attempts, &policy, now);
    assert_eq!((got.at, got.hold), (now, None));
}

#[test]
fn backoff_and_retry_after_hold_even_past_expiry() {
    // Expires 2026-01-01T00:10:00Z; the last attempt failed 30 s before that.
    let observed = cert(t("2026-01-01T00:00:00Z"), 10 * MIN);
    let failed = t("2026-01-01T00:09:30Z");
    let policy = windowed("30 2 1 * *", TimeZone::UTC);
    let attempts = Attempts {
        consecutive_failures: 10,
        last_failure_at: Some(failed),
        retry_not_before: None,
    };
    let got = plan("www", None, Some(&observed), &attempts, &policy, failed);
    assert_eq!(
        got,
        Planned {
            at: failed + backoff_delay(&name("www"), 10, &policy.backoff),
            reason: Reason::Expired,
            renewal: true,
            urgent: true,
            hold: Some(Hold::Backoff),
        }
    );
    let rate_limited = Attempts {
        retry_not_before: Some(t("2026-01-03T00:00:00Z")),
        ..attempts
    };
    let got = plan("www", None, Some(&observed), &rate_limited, &policy, failed);
    assert_eq!(
        (show(got.at), got.hold, got.urgent, got.reason),
        (
            "2026-01-03T00:00:00Z".to_string(),
            Some(Hold::RetryAfter),
            true,
            Reason::Expired
        )
    );
}

#[test]
fn failure_in_a_window_waits_for_the_next_one_or_the_urgent_point() {
    let utc = windowed("30 2 1 * *", TimeZone::UTC);
    // 200 days from 2026-01-01: due about 2026-05-06, expires 2026-07-20, urgent 2026-07-13.
    let observed = cert(t("2026-01-01T00:00:00Z"), 200 * DAY);
    let attempts = Attempts {
        consecutive_failures: 1,
        last_failure_at: Some(t("2026-06-01T02:31:00Z")),
        retry_not_before: None,
    };
    let got = plan(
        "www",
        None,
        Some(&observed),
        &attempts,
        &utc,
        t("2026-06-01T02:31:00Z"),
    );
    assert_eq!(
        (show(got.at), got.hold, got.urgent),
        (
            "2026-07-01T02:30:00Z".to_string(),
            Some(Hold::Window),
            false
        )
    );
    // The July attempt fails too: the August window is past the urgent point.
    let attempts = Attempts {
        consecutive_failures: 2,
        last_failure_at: Some(t("2026-07-01T02:31:00Z")),
        retry_not_before: None,
    };
    let got = plan(
        "www",
        None,
        Some(&observed),
        &attempts,
        &utc,
        t("2026-07-01T02:31:00Z"),
    );
    assert_eq!(
        (show(got.at), got.hold, got.urgent),
        ("2026-07-13T00:00:00Z".to_string(), Some(Hold::Window), true)
    );
}

#[test]
fn missing_and_changed_certificates_are_urgent_now() {
    let now = t("2026-03-04T05:06:07Z");
    let window = windowed("30 2 1 * *", TimeZone::UTC);
    let fresh = cert(t("2026-03-01T00:00:00Z"), 90 * DAY);
    let mut other_names = fresh.clone();
    other_names.domains = vec!["b.example.com".into()];
    let mut other_key = fresh.clone();
    other_key.key_type = Some(KeyType::Rsa2048);
    let expired = cert(t("2025-12-01T00:00:00Z"), 90 * DAY);
    // (observed, reason, renewal)
    let table: &[(Option<&ObservedCert>, Reason, bool)] = &[
        (None, Reason::Missing, false),
        (Some(&other_names), Reason::NamesChanged, true),
        (Some(&other_key), Reason::KeyTypeChanged, true),
        (Some(&expired), Reason::Expired, true),
    ];
    for (observed, reason, renewal) in table {
        for policy in [&SchedulePolicy::default(), &window] {
            let got = plan("www", None, *observed, &NO_FAILURES, policy, now);
            assert_eq!(
                got,
                Planned {
                    at: now,
                    reason: *reason,
                    renewal: *renewal,
                    urgent: true,
                    hold: None,
                },
                "{reason:?} window {:?}",
                policy.window
            );
        }
        // Backoff still applies, and the plan stays urgent.
        let attempts = Attempts {
            consecutive_failures: 2,
            last_failure_at: Some(now),
            retry_not_before: None,
        };
        let got = plan("www", None, *observed, &attempts, &window, now);
        assert_eq!(
            (got.at, got.hold, got.urgent),
            (
                now + backoff_delay(&name("www"), 2, &window.backoff),
                Some(Hold::Backoff),
                true
            ),
            "{reason:?}"
        );
    }
}

#[test]
fn revoked_lineages_are_not_planned() {
    let mut revoked = cert(t("2026-01-01T00:00:00Z"), 90 * DAY);
    revoked.revoked = true;
    for now in [t("2026-01-02T00:00:00Z"), t("2026-06-01T00:00:00Z")] {
        assert_eq!(
            plan_certificate(
                &name("www"),
                &spec("www", None),
                Some(&revoked),
                &NO_FAILURES,
                &windowed("30 2 1 * *", TimeZone::UTC),
                now,
            ),
            None
        );
    }
}

#[test]
fn urgent_threshold_defaults_to_a_tenth_of_the_lifetime_at_most_a_week() {
    let issued = t("2026-01-01T00:00:00Z");
    let policy = SchedulePolicy::default();
    let table: &[(Duration, Duration)] = &[
        (398 * DAY, 7 * DAY),
        (90 * DAY, 7 * DAY),
        (70 * DAY, 7 * DAY),
        (47 * DAY, 47 * DAY / 10),
        (10 * DAY, DAY),
        (10 * MIN, MIN),
    ];
    for (lifetime, expected) in table {
        assert_eq!(
            urgent_threshold(&cert(issued, *lifetime), &policy),
            *expected,
            "{lifetime:?}"
        );
    }
    let configured = SchedulePolicy {
        urgent_before: Some(3 * DAY),
        ..SchedulePolicy::default()
    };
    assert_eq!(
        urgent_threshold(&cert(issued, 398 * DAY), &configured),
        3 * DAY
    );
}

#[test]
fn next_wake_is_the_earliest_future_plan_capped_by_the_recheck() {
    let now = t("2026-03-04T05:00:00Z");
    // (planned instants, idle recheck, expected wake)
    let table: &[(&[SystemTime], Duration, SystemTime)] = &[
        (&[], HOUR, now + HOUR),
        (
            &[now + 10 * MIN, now + 5 * MIN, now + 2 * DAY],
            HOUR,
            now + 5 * MIN,
        ),
        (&[now + 2 * DAY, now + 3 * HOUR], HOUR, now + HOUR),
        // Due ones are acted on before sleeping, not slept for.
        (&[now - MIN, now, now + 20 * MIN], HOUR, now + 20 * MIN),
        (&[now - MIN, now], HOUR, now + HOUR),
        (&[now + SEC], HOUR, now + SEC),
        (&[now + HOUR], HOUR, now + HOUR),
        (&[now + 2 * DAY], Duration::MAX, now + 2 * DAY),
        (&[], Duration::MAX, now + HOUR),
    ];
    for (planned, recheck, expected) in table {
        assert_eq!(
            next_wake(planned.iter().copied(), now, *recheck),
            *expected,
            "{planned:?} recheck {recheck:?}"
        );
    }
}

#[test]
fn a_one_shot_pass_follows_the_daemon_without_its_window() {
    let issued = t("2026-03-01T00:00:00Z");
    let live = cert(issued, 90 * DAY);
    let s = spec("www", None);
    let monthly = windowed("30 2 1 * *", TimeZone::UTC);
    // Due on 2026-04-30 minus jitter: the daemon waits for the 1st of May, a pass does not.
    let now = t("2026-04-30T12:00:00Z");
    let daemon = plan_certificate(
        &s.name,
        &s,
        Some(&live),
        &Attempts::default(),
        &monthly,
        now,
    )
    .expect("planned");
    assert_eq!(daemon.hold, Some(Hold::Window));
    let pass = plan_one_shot(
        &s.name,
        &s,
        Some(&live),
        &Attempts::default(),
        &monthly,
        now,
        false,
    )
    .expect("planned");
    assert_eq!((pass.at, pass.hold), (now, None));
    // Not due yet: the same instant as the daemon's rule without a window.
    let early = t("2026-03-10T00:00:00Z");
    let plain = plan_certificate(
        &s.name,
        &s,
        Some(&live),
        &Attempts::default(),
        &SchedulePolicy::default(),
        early,
    )
    .expect("planned");
    let pass = plan_one_shot(
        &s.name,
        &s,
        Some(&live),
        &Attempts::default(),
        &monthly,
        early,
        false,
    )
    .expect("planned");
    assert_eq!(pass.at, plain.at);
    assert!(pass.at > early);
}

#[test]
fn a_pass_honours_backoff_and_retry_after_and_force_skips_only_the_backoff() {
    let issued = t("2026-03-01T00:00:00Z");
    let live = cert(issued, 90 * DAY);
    let s = spec("www", None);
    let policy = SchedulePolicy::default();
    let failed_at = t("2026-04-30T12:00:00Z");
    let backing_off = Attempts {
        consecutive_failures: 3,
        last_failure_at: Some(failed_at),
        retry_not_before: None,
    };
    let now = failed_at + SEC;
    let pass = plan_one_shot(&s.name, &s, Some(&live), &backing_off, &policy, now, false)
        .expect("planned");
    assert_eq!(pass.hold, Some(Hold::Backoff));
    assert!(pass.at > now);
    let forced =
        plan_one_shot(&s.name, &s, Some(&live), &backing_off, &policy, now, true).expect("planned");
    assert_eq!(
        (forced.at, forced.hold, forced.reason),
        (now, None, Reason::Forced)
    );

    // A CA's Retry-After beyond the backoff (4 minutes after 3 failures).
    let rate_limited = Attempts {
        retry_not_before: Some(failed_at + HOUR),
        ..backing_off
    };
    for force in [false, true] {
        let pass = plan_one_shot(&s.name, &s, Some(&live), &rate_limited, &policy, now, force)
            .expect("planned");
        assert_eq!(pass.at, failed_at + HOUR, "force={force}");
        assert_eq!(pass.hold, Some(Hold::RetryAfter), "force={force}");
    }
    // Once the CA's instant has passed, forcing goes ahead.
    let later = failed_at + HOUR + SEC;
    let forced = plan_one_shot(
        &s.name,
        &s,
        Some(&live),
        &rate_limited,
        &policy,
        later,
        true,
    )
    .expect("planned");
    assert_eq!((forced.at, forced.hold), (later, None));
}

#[test]
fn a_forced_pass_reissues_a_revoked_lineage_and_a_plain_one_leaves_it() {
    let mut revoked = cert(t("2026-03-01T00:00:00Z"), 90 * DAY);
    revoked.revoked = true;
    let s = spec("www", None);
    let now = t("2026-03-02T00:00:00Z");
    let policy = SchedulePolicy::default();
    assert_eq!(
        plan_one_shot(
            &s.name,
            &s,
            Some(&revoked),
            &Attempts::default(),
            &policy,
            now,
            false
        ),
        None
    );
    let forced = plan_one_shot(
        &s.name,
        &s,
        Some(&revoked),
        &Attempts::default(),
        &policy,
        now,
        true,
    )
    .expect("planned");
    assert!(forced.renewal);
    assert_eq!(forced.at, now);
}

fn with_suggestion(mut observed: ObservedCert, start: SystemTime, end: SystemTime) -> ObservedCert {
    let window = crate::ari::Window { start, end };
    observed.suggested = Some(Box::new(crate::ari::SuggestedRenewal {
        window,
        at: crate::ari::choose(window, observed.not_after, 0x1234_5678_9abc),
    }));
    observed
}

#[test]
fn a_suggested_window_replaces_the_lifetime_rule_and_its_jitter() {
    let issued = t("2026-01-01T00:00:00Z");
    let plain = cert(issued, 90 * DAY);
    let none = Attempts::default();
    let policy = SchedulePolicy::default();
    let now = issued + DAY;

    // In the future: planned at the chosen instant, not jittered, not before the window.
    let later = with_suggestion(plain.clone(), issued + 80 * DAY, issued + 82 * DAY);
    let planned = plan("www", None, Some(&later), &none, &policy, now);
    let chosen = later.suggested.as_deref().expect("set").at;
    assert_eq!(show(planned.at), show(chosen));
    assert!(chosen >= issued + 80 * DAY && chosen < issued + 82 * DAY);
    assert_eq!(planned.hold, None);

    // Moved into the past: renewed now.
    let past = with_suggestion(plain.clone(), now - 2 * DAY, now - HOUR);
    let planned = plan("www", None, Some(&past), &none, &policy, now);
    assert_eq!(planned.at, now);
    assert_eq!(planned.reason, Reason::RenewalDue);
    assert!(planned.renewal);

    // An operator's renew_before earlier than the window wins.
    let planned = plan("www", Some(30 * DAY), Some(&later), &none, &policy, now);
    assert!(planned.at <= issued + 60 * DAY, "{}", show(planned.at));

    // A certificate other than the one the CA was asked about has no suggestion: the
    // lifetime rule (with its jitter) plans it.
    let planned = plan("www", None, Some(&plain), &none, &policy, now);
    let lifetime_point = issued + 60 * DAY;
    assert!(planned.at <= lifetime_point && planned.at >= lifetime_point - 3 * DAY);
}

#[test]
fn a_suggested_window_closing_before_the_maintenance_window_overrides_it() {
    let issued = t("2026-01-01T00:00:00Z");
    let none = Attempts::default();
    // The 1st of the month at 02:30 UTC.
    let monthly = windowed("30 2 1 * *", TimeZone::UTC);
    let now = t("2026-02-10T00:00:00Z");

    // The CA's window (Feb 12-14) closes before the next maintenance window (Mar 1): the
    // renewal runs at the chosen instant.
    let short = with_suggestion(
        cert(issued, 90 * DAY),
        t("2026-02-12T00:00:00Z"),
        t("2026-02-14T00:00:00Z"),
    );
    let planned = plan("www", None, Some(&short), &none, &monthly, now);
    assert_eq!(planned.at, short.suggested.as_deref().expect("set").at);
    assert_eq!(planned.hold, None);

    // A CA window spanning the next maintenance window: the renewal waits for it.
    let wide = with_suggestion(
        cert(issued, 90 * DAY),
        t("2026-02-12T00:00:00Z"),
        t("2026-03-05T00:00:00Z"),
    );
    let planned = plan("www", None, Some(&wide), &none, &monthly, now);
    if planned.at != wide.suggested.as_deref().expect("set").at {
        assert_eq!(show(planned.at), "2026-03-01T02:30:00Z");
        assert_eq!(planned.hold, Some(Hold::Window));
    }
}

#[test]
fn a_six_day_certificate_renews_at_half_its_lifetime() {
    let issued = t("2026-01-01T00:00:00Z");
    let six_days = cert(issued, 6 * DAY);
    let none = Attempts::default();
    let policy = SchedulePolicy::default();
    let planned = plan(
        "short",
        None,
        Some(&six_days),
        &none,
        &policy,
        issued + HOUR,
    );
    let half = issued + 3 * DAY;
    // At half the lifetime, moved earlier by at most a tenth of the remaining three days.
    assert!(planned.at <= half, "{}", show(planned.at));
    assert!(planned.at >= half - 3 * DAY / 10, "{}", show(planned.at));
    assert!(!planned.urgent);
    // After a failure the backoff is minutes, not days: a retry long before expiry.
    let failed = Attempts {
        consecutive_failures: 3,
        last_failure_at: Some(half),
        retry_not_before: None,
    };
    let retry = plan("short", None, Some(&six_days), &failed, &policy, half + SEC);
    assert!(retry.at < half + HOUR, "{}", show(retry.at));
    // Ten days is still short-lived; eleven is not.
    for (days, before) in [(10, 5 * DAY), (11, 11 * DAY / 3)] {
        let observed = cert(issued, days * DAY);
        assert_eq!(
            observed.renewal_due_at(None),
            issued + days * DAY - before,
            "{days} days"
        );
    }
}

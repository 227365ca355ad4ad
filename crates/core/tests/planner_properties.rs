//! Property tests of the planner and the cron parser: for any inventory entry, observed
//! certificate, attempt history and instant, planning neither panics nor breaks its promises.

use std::time::{Duration, SystemTime};

use certkeeper_core::ari::{self, SuggestedRenewal, Window};
use certkeeper_core::schedule::{
    Attempts, Backoff, Hold, MaintenanceWindow, SchedulePolicy, plan_certificate,
};
use certkeeper_core::{
    CaName, CertName, CertificateSpec, DomainName, KeyType, LifecycleAction, ObservedCert,
};
use proptest::prelude::*;

const DAY: u64 = 86_400;

fn spec(
    name: &CertName,
    renew_before: Option<Duration>,
    schedule: SchedulePolicy,
) -> CertificateSpec {
    CertificateSpec {
        name: name.clone(),
        ca: CaName::new("ca").expect("valid"),
        domains: vec![DomainName::new("a.example.com").expect("valid")],
        key_type: KeyType::EcdsaP256,
        order_id: None,
        action: LifecycleAction::Auto,
        renew_before,
        profile: None,
        preferred_chain: None,
        schedule: std::sync::Arc::new(schedule),
        hooks: std::sync::Arc::default(),
        reuse_key: false,
        key_group: None,
    }
}

fn cron_field(max: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (0..=max).prop_map(|v| v.to_string()),
        (1..=max.max(1)).prop_map(|v| format!("*/{v}")),
        (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
    ]
}

fn cron_text() -> impl Strategy<Value = String> {
    (
        cron_field(59),
        cron_field(23),
        cron_field(31),
        cron_field(12),
        cron_field(7),
    )
        .prop_map(|(m, h, dom, mon, dow)| format!("{m} {h} {dom} {mon} {dow}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn plans_are_never_in_the_past_and_never_past_expiry_without_a_ca_reason(
        name in "[a-z][a-z0-9-]{0,20}",
        lifetime_secs in 60u64..(400 * DAY),
        issued_at in 1_700_000_000u64..1_900_000_000u64,
        elapsed_frac in 0.0f64..1.5,
        renew_before_secs in proptest::option::of(1u64..(500 * DAY)),
        failures in 0u32..40,
        failure_ago_secs in 0u64..(30 * DAY),
        retry_in_secs in proptest::option::of(0u64..(10 * DAY)),
        urgent_secs in proptest::option::of(1u64..(30 * DAY)),
        cron in proptest::option::of(cron_text()),
        missing in any::<bool>(),
    ) {
        let name = CertName::new(&name).expect("generated names are valid");
        let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(issued_at);
        let lifetime = Duration::from_secs(lifetime_secs);
        let now = not_before + lifetime.mul_f64(elapsed_frac);
        let window = cron.as_deref().and_then(|text| text.parse().ok()).map(|cron| MaintenanceWindow {
            cron,
            tz: jiff::tz::TimeZone::UTC,
        });
        let policy = SchedulePolicy {
            urgent_before: urgent_secs.map(Duration::from_secs),
            window,
            backoff: Backoff::default(),
        };
        let spec = spec(&name, renew_before_secs.map(Duration::from_secs), policy.clone());
        let observed = ObservedCert {
            not_before,
            not_after: not_before + lifetime,
            domains: vec!["a.example.com".to_owned()],
            key_type: Some(KeyType::EcdsaP256),
            revoked: false,
            suggested: None,
        };
        let attempts = Attempts {
            consecutive_failures: failures,
            last_failure_at: (failures > 0).then(|| now.checked_sub(Duration::from_secs(failure_ago_secs)).unwrap_or(now)),
            retry_not_before: retry_in_secs.map(|s| now + Duration::from_secs(s)),
        };
        let observed = (!missing).then_some(&observed);
        let planned = plan_certificate(&name, &spec, observed, &attempts, &policy, now)
            .expect("only revoked lineages are unplanned");
        prop_assert!(planned.at >= now, "planned in the past: {planned:?}");
        if let Some(observed) = observed {
            let ca_asked = matches!(planned.hold, Some(Hold::Backoff | Hold::RetryAfter));
            if !ca_asked {
                prop_assert!(
                    planned.at <= now.max(observed.not_after),
                    "a window or jitter pushed the renewal past expiry: {planned:?}"
                );
            }
        } else {
            prop_assert!(planned.urgent, "a missing certificate is urgent");
        }
        if let Some(retry) = attempts.retry_not_before {
            prop_assert!(planned.at >= retry, "before the CA's Retry-After: {planned:?}");
        }
        if failures > 0 {
            // Backoff never below 30 s: no tight retry loop.
            let last = attempts.last_failure_at.expect("set with failures");
            prop_assert!(planned.at >= last + Duration::from_secs(30) || planned.at == now && now >= last + Duration::from_secs(30));
        }
    }

    /// RFC 9773: the instant chosen in a CA's suggested window lies inside it and before
    /// expiry, for any window that opens before expiry; and a plan from it is never in the
    /// past and never later than that instant when nothing holds it (no window, no failure).
    #[test]
    fn the_instant_chosen_in_a_suggested_window_is_inside_it_and_before_expiry(
        issued_at in 1_700_000_000u64..1_900_000_000u64,
        lifetime_secs in 60u64..(400 * DAY),
        start_frac in 0.0f64..1.0,
        width_secs in 0u64..(500 * DAY),
        random in any::<u64>(),
        now_frac in 0.0f64..1.2,
        previous_random in proptest::option::of(any::<u64>()),
    ) {
        let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(issued_at);
        let lifetime = Duration::from_secs(lifetime_secs);
        let not_after = not_before + lifetime;
        let start = not_before + lifetime.mul_f64(start_frac);
        let window = Window { start, end: start + Duration::from_secs(width_secs) };
        // A previous suggestion for another window never leaks into the new one.
        let previous = previous_random.map(|r| SuggestedRenewal {
            window: Window { start: not_before, end: not_before + Duration::from_secs(1) },
            at: ari::choose(window, not_after, r),
        });
        let suggested = ari::suggest(previous.as_ref(), window, not_after, random);
        prop_assert!(suggested.at >= window.start, "before the window: {suggested:?}");
        prop_assert!(suggested.at <= window.end, "after the window: {suggested:?}");
        prop_assert!(suggested.at < not_after, "not before expiry: {suggested:?}");

        let name = CertName::new("www").expect("valid");
        let policy = SchedulePolicy::default();
        let spec = spec(&name, None, policy.clone());
        let observed = ObservedCert {
            not_before,
            not_after,
            domains: vec!["a.example.com".to_owned()],
            key_type: Some(KeyType::EcdsaP256),
            revoked: false,
            suggested: Some(Box::new(suggested)),
        };
        let now = not_before + lifetime.mul_f64(now_frac);
        let planned = plan_certificate(&name, &spec, Some(&observed), &Attempts::default(), &policy, now)
            .expect("not revoked");
        prop_assert!(planned.at >= now);
        prop_assert!(planned.at <= now.max(suggested.at), "later than the chosen instant: {planned:?}");
    }

    #[test]
    fn cron_parsing_never_panics(text in "\\PC{0,40}") {
        let _ = text.parse::<certkeeper_core::schedule::CronExpr>();
    }

    #[test]
    fn valid_cron_windows_find_a_start_or_none_without_panicking(
        cron in cron_text(),
        after in 1_700_000_000u64..1_900_000_000u64,
    ) {
        if let Ok(cron) = cron.parse() {
            let window = MaintenanceWindow { cron, tz: jiff::tz::TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("valid") };
            let after = SystemTime::UNIX_EPOCH + Duration::from_secs(after);
            if let Some(start) = window.next_start(after) {
                prop_assert!(start >= after);
            }
        }
    }
}

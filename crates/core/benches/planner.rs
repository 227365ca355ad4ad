//! The planner at scale: [`plan_certificate`] over a 10,000-certificate inventory, built in
//! memory, the way the daemon plans on every wake-up and `certkeeper status` on every run.
//!
//! The inventory is a fleet as it looks in practice: lifetimes of 47, 100 and 200 days,
//! issued at staggered times so every planning rule is exercised (not yet due, due, inside
//! the urgent margin, expired), plus some lineages with no certificate yet, some whose names
//! changed and some in backoff after failures. Each iteration plans every entry and derives
//! the daemon's next wake-up from the results ([`next_wake`]); the reported throughput is
//! certificates planned per second. A second case adds a maintenance window (`30 2 * * *`),
//! which makes the planner search the calendar for the next window start.
//!
//! `bench/run` runs this with `cargo bench -p certkeeper-core --bench planner` and copies the
//! result into `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use certkeeper_core::schedule::{
    Attempts, Backoff, MaintenanceWindow, SchedulePolicy, next_wake, plan_certificate,
};
use certkeeper_core::{
    CaName, CertName, CertificateSpec, DomainName, KeyType, LifecycleAction, ObservedCert,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ENTRIES: usize = 10_000;
const DAY: Duration = Duration::from_secs(86_400);
const IDLE_RECHECK: Duration = Duration::from_secs(3_600);

/// One inventory entry with what the daemon knows about it.
struct Entry {
    spec: CertificateSpec,
    observed: Option<ObservedCert>,
    attempts: Attempts,
}

fn now() -> SystemTime {
    // A fixed instant, so every run plans the same fleet: 2026-11-28T00:00:00Z.
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_824_000)
}

fn fleet(policy: &SchedulePolicy) -> Vec<Entry> {
    let now = now();
    let ca = CaName::new("digicert").expect("valid CA name");
    (0..ENTRIES)
        .map(|i| {
            let name = CertName::new(&format!("site-{i:05}")).expect("valid name");
            let domain = format!("site-{i:05}.example.com");
            let spec = CertificateSpec {
                name,
                ca: ca.clone(),
                domains: vec![
                    DomainName::new(&domain).expect("valid domain"),
                    DomainName::new(&format!("www.{domain}")).expect("valid domain"),
                ],
                key_type: KeyType::EcdsaP256,
                order_id: (i % 10 == 0).then(|| format!("{}", 100_000_000 + i)),
                action: LifecycleAction::Auto,
                renew_before: (i % 7 == 0).then_some(30 * DAY),
                profile: None,
                preferred_chain: None,
                schedule: std::sync::Arc::new(policy.clone()),
                hooks: std::sync::Arc::default(),
                reuse_key: false,
                key_group: None,
            };
            let lifetime = [47, 100, 200][i % 3] * DAY;
            // Issued between 0 and 250 days ago: some fresh, some due, a few expired.
            let age = Duration::from_secs((i as u64 * 7_919) % (250 * 86_400));
            let not_before = now.checked_sub(age).expect("representable");
            let mut sans = vec![format!("www.{domain}"), domain];
            if i % 97 == 0 {
                sans.pop(); // the inventory gained a name since issuance
            }
            let observed = (i % 50 != 0).then(|| ObservedCert {
                not_before,
                not_after: not_before + lifetime,
                domains: sans,
                key_type: Some(KeyType::EcdsaP256),
                revoked: false,
                suggested: None,
            });
            let attempts = if i % 31 == 0 {
                Attempts {
                    consecutive_failures: 1 + (i % 5) as u32,
                    last_failure_at: now.checked_sub(Duration::from_secs(600)),
                    retry_not_before: None,
                }
            } else {
                Attempts::default()
            };
            Entry {
                spec,
                observed,
                attempts,
            }
        })
        .collect()
}

/// What the daemon does on a wake-up: plan every certificate, then sleep until the earliest.
fn plan_all(entries: &[Entry], now: SystemTime) -> (usize, SystemTime) {
    let mut due = 0;
    let mut upcoming = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(planned) = plan_certificate(
            &entry.spec.name,
            &entry.spec,
            entry.observed.as_ref(),
            &entry.attempts,
            &entry.spec.schedule,
            now,
        ) else {
            continue;
        };
        if planned.at <= now {
            due += 1;
        } else {
            upcoming.push(planned.at);
        }
    }
    (due, next_wake(upcoming, now, IDLE_RECHECK))
}

fn planner(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_certificate");
    group.throughput(Throughput::Elements(ENTRIES as u64));

    let plain = fleet(&SchedulePolicy::default());
    group.bench_function("10000 entries, no window", |b| {
        b.iter(|| plan_all(black_box(&plain), black_box(now())));
    });

    let windowed = fleet(&SchedulePolicy {
        window: Some(MaintenanceWindow {
            cron: "30 2 * * *".parse().expect("valid crontab time"),
            tz: jiff::tz::TimeZone::UTC,
        }),
        urgent_before: None,
        backoff: Backoff::default(),
    });
    group.bench_function("10000 entries, window 30 2 * * *", |b| {
        b.iter(|| plan_all(black_box(&windowed), black_box(now())));
    });
    group.finish();
}

criterion_group!(benches, planner);
criterion_main!(benches);

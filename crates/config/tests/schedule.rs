//! Scheduling and daemon settings: maintenance windows and their time zone, urgency margins,
//! concurrency limits and the admin listener.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use certkeeper_config::{Environment, Loaded, load_str};
use certkeeper_core::inventory::DEFAULT_MAX_CONCURRENT;
use certkeeper_core::schedule::{Backoff, SchedulePolicy};
use certkeeper_core::{AdminSpec, CertificateSpec};
use jiff::Timestamp;
use jiff::tz::TimeZone;

const DAY: u64 = 86_400;

const ENTRIES: &str = r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"

[[certificate]]
name = "nightly"
domains = ["nightly.example.com"]

[[certificate]]
name = "monthly"
domains = ["monthly.example.com"]
window = "30 2 1 * *"
urgent_before = "2d"

[[certificate]]
name = "anytime"
domains = ["anytime.example.com"]
window = "none"
"#;

fn load_ok(text: &str, env: &Environment) -> Loaded {
    load_str(text, Path::new("/etc/certkeeper/certkeeper.toml"), env)
        .unwrap_or_else(|errors| panic!("{errors}"))
}

fn instant(text: &str) -> SystemTime {
    SystemTime::try_from(text.parse::<Timestamp>().expect("timestamp")).expect("representable")
}

fn next_start(cert: &CertificateSpec, after: &str) -> Option<SystemTime> {
    cert.schedule
        .window
        .as_ref()
        .expect("a window")
        .next_start(instant(after))
}

fn cert<'l>(loaded: &'l Loaded, name: &str) -> &'l CertificateSpec {
    loaded.inventory.certificate(name).expect("configured")
}

#[test]
fn windows_resolve_per_certificate_in_the_configured_zone() {
    let text = format!(
        "timezone = \"Europe/Berlin\"\nwindow = \"30 2 * * *\"\nurgent_before = \"7d\"\n{ENTRIES}"
    );
    let loaded = load_ok(&text, &Environment::empty());
    let berlin = TimeZone::get("Europe/Berlin").expect("zone");

    // The global window, in Berlin time: 02:30 CET is 01:30 UTC in winter, 00:30 in summer.
    let nightly = cert(&loaded, "nightly");
    assert_eq!(
        nightly
            .schedule
            .window
            .as_ref()
            .map(|w| (&w.tz, w.cron.to_string())),
        Some((&berlin, "30 2 * * *".to_owned()))
    );
    assert_eq!(
        next_start(nightly, "2025-01-15T12:00:00Z"),
        Some(instant("2025-01-16T01:30:00Z"))
    );
    assert_eq!(
        next_start(nightly, "2025-07-10T12:00:00Z"),
        Some(instant("2025-07-11T00:30:00Z"))
    );
    assert_eq!(
        nightly.schedule.urgent_before,
        Some(Duration::from_secs(7 * DAY))
    );
    assert_eq!(nightly.schedule.backoff, Backoff::default());

    // The certificate's own window (DigiCert's guide: 02:30 on the 1st) and margin.
    let monthly = cert(&loaded, "monthly");
    assert_eq!(
        next_start(monthly, "2025-01-15T12:00:00Z"),
        Some(instant("2025-02-01T01:30:00Z"))
    );
    assert_eq!(
        monthly.schedule.urgent_before,
        Some(Duration::from_secs(2 * DAY))
    );

    // Opted out of the global window; the global margin still applies.
    let anytime = cert(&loaded, "anytime");
    assert_eq!(anytime.schedule.window, None);
    assert_eq!(
        anytime.schedule.urgent_before,
        Some(Duration::from_secs(7 * DAY))
    );
}

#[test]
fn without_a_timezone_windows_follow_the_local_zone() {
    let text = format!("window = \"30 2 * * *\"\n{ENTRIES}");
    let new_york = TimeZone::get("America/New_York").expect("zone");
    let env = Environment::empty().with_local_timezone(new_york.clone());
    let loaded = load_ok(&text, &env);
    let nightly = cert(&loaded, "nightly");
    assert_eq!(
        nightly.schedule.window.as_ref().map(|w| &w.tz),
        Some(&new_york)
    );
    // 02:30 EST is 07:30 UTC.
    assert_eq!(
        next_start(nightly, "2025-01-15T12:00:00Z"),
        Some(instant("2025-01-16T07:30:00Z"))
    );

    // `Environment::empty()` stands for a host whose local zone is UTC.
    let loaded = load_ok(&text, &Environment::empty());
    assert_eq!(
        next_start(cert(&loaded, "nightly"), "2025-01-15T12:00:00Z"),
        Some(instant("2025-01-16T02:30:00Z"))
    );
}

#[test]
fn without_global_settings_only_certificates_that_ask_get_a_window() {
    let loaded = load_ok(ENTRIES, &Environment::empty());
    assert_eq!(
        *cert(&loaded, "nightly").schedule,
        SchedulePolicy::default()
    );
    assert_eq!(
        *cert(&loaded, "anytime").schedule,
        SchedulePolicy::default()
    );
    let monthly = cert(&loaded, "monthly");
    assert_eq!(
        monthly.schedule.window.as_ref().map(|w| &w.tz),
        Some(&TimeZone::UTC)
    );
    assert_eq!(
        next_start(monthly, "2025-01-15T12:00:00Z"),
        Some(instant("2025-02-01T02:30:00Z"))
    );

    // A global "none" is the same as no global window.
    let text = format!("window = \"none\"\n{ENTRIES}");
    let loaded = load_ok(&text, &Environment::empty());
    assert_eq!(cert(&loaded, "nightly").schedule.window, None);
}

#[test]
fn concurrency_limits_default_and_apply_per_ca() {
    let loaded = load_ok(ENTRIES, &Environment::empty());
    assert_eq!(loaded.inventory.max_concurrent, DEFAULT_MAX_CONCURRENT);
    assert_eq!(loaded.inventory.cas[0].max_concurrent, None);

    let text = format!("max_concurrent = 8\n{ENTRIES}").replace(
        "directory = \"https://acme-v02.api.letsencrypt.org/directory\"",
        "directory = \"https://acme-v02.api.letsencrypt.org/directory\"\nmax_concurrent = 2",
    );
    let loaded = load_ok(&text, &Environment::empty());
    assert_eq!(loaded.inventory.max_concurrent, 8);
    assert_eq!(loaded.inventory.cas[0].max_concurrent, Some(2));
}

#[test]
fn the_admin_listener_is_off_unless_configured() {
    let loaded = load_ok(ENTRIES, &Environment::empty());
    assert_eq!(loaded.inventory.admin, None);

    for listen in ["127.0.0.1:9101", "[::1]:9101", "[::ffff:127.0.0.1]:9101"] {
        let text = format!("[admin]\nlisten = \"{listen}\"\n{ENTRIES}");
        let loaded = load_ok(&text, &Environment::empty());
        assert!(
            loaded.warnings.is_empty(),
            "{listen}: {:?}",
            loaded.warnings
        );
        let address: SocketAddr = listen.parse().expect("address");
        assert_eq!(loaded.inventory.admin, Some(AdminSpec { listen: address }));
    }
}

#[test]
fn an_admin_listener_reachable_from_other_hosts_is_a_warning() {
    for listen in ["0.0.0.0:9101", "[::]:9101", "192.0.2.10:9101"] {
        let text = format!("[admin]\nlisten = \"{listen}\"\n{ENTRIES}");
        let loaded = load_ok(&text, &Environment::empty());
        let address: SocketAddr = listen.parse().expect("address");
        assert_eq!(loaded.inventory.admin, Some(AdminSpec { listen: address }));
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [format!(
                "/etc/certkeeper/certkeeper.toml:2:10: admin.listen: the admin listener on {address} can be reached from other hosts, and /metrics names every certificate; listen on a loopback address such as 127.0.0.1:9101 unless a firewall restricts it"
            )],
            "{listen}"
        );
    }
}

/// Hosts without the tzdata package (minimal containers) still resolve `timezone`: the
/// database built into certkeeper is used when the system has none.
#[test]
fn the_zone_database_is_built_in() {
    let bundled = jiff::tz::TimeZoneDatabase::bundled();
    assert!(!bundled.is_definitively_empty());
    assert!(bundled.get("Europe/Berlin").is_ok());
}

#[test]
fn time_zone_names_are_looked_up_without_regard_to_case() {
    let text = format!("timezone = \"europe/berlin\"\nwindow = \"30 2 * * *\"\n{ENTRIES}");
    let loaded = load_ok(&text, &Environment::empty());
    let window = cert(&loaded, "nightly")
        .schedule
        .window
        .as_ref()
        .expect("window");
    assert_eq!(window.tz.iana_name(), Some("Europe/Berlin"));
}

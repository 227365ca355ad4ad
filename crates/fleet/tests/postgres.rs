//! certkeeper-fleet against a real, throwaway PostgreSQL 15 (tests/support/postgres.rs).

mod support;

use std::time::{Duration, Instant, SystemTime};

use certkeeper_core::Secret;
use certkeeper_fleet::{
    Fleet, FleetError, FleetEvent, FleetKey, FleetListener, FleetSettings, Lease, OrderRecord,
    SCHEMA_VERSION, VersionRecord,
};
use support::postgres::{PASSWORD, PgCluster, free_port};
use tokio_util::sync::CancellationToken;

const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+not+a+real+key+just+test+bytes+00\n-----END PRIVATE KEY-----\n";

fn key() -> FleetKey {
    FleetKey::from_bytes([0x42; 32])
}

fn settings(cluster: &PgCluster, node: &str) -> FleetSettings {
    let mut settings = FleetSettings::new(cluster.url(), node, key());
    settings.password = Some(Secret::new(PASSWORD.as_bytes().to_vec()));
    settings.connect_timeout = Duration::from_secs(3);
    settings.operation_timeout = Duration::from_secs(5);
    settings
}

async fn connect(cluster: &PgCluster, node: &str) -> Fleet {
    Fleet::connect(&settings(cluster, node))
        .await
        .unwrap_or_else(|error| panic!("connect {node}: {}", certkeeper_core::error_chain(&error)))
}

fn record(serial: &str) -> VersionRecord {
    VersionRecord {
        serial: serial.to_owned(),
        cert_pem: format!("-----BEGIN CERTIFICATE-----\n{serial}\n-----END CERTIFICATE-----\n"),
        chain_pem: "-----BEGIN CERTIFICATE-----\nchain\n-----END CERTIFICATE-----\n".to_owned(),
        fullchain_pem: format!("cert {serial} + chain"),
        key_pem: Secret::new(KEY_PEM.as_bytes().to_vec()),
        not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
    }
}

/// Retry `acquire` until it succeeds or `within` passes.
async fn acquire_within(fleet: &Fleet, lineage: &str, ttl: Duration, within: Duration) -> Lease {
    let deadline = Instant::now() + within;
    loop {
        if let Some(lease) = fleet.acquire(lineage, ttl).await.expect("acquire") {
            return lease;
        }
        assert!(
            Instant::now() < deadline,
            "{lineage}: lease not acquired within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Take the lease on `lineage`, which must be free.
async fn take(fleet: &Fleet, lineage: &str, ttl: Duration) -> Lease {
    fleet
        .acquire(lineage, ttl)
        .await
        .expect("acquire")
        .expect("the lease is free")
}

/// The next event other than `Disconnected`, within `within`.
async fn next_event(listener: &mut FleetListener, within: Duration) -> FleetEvent {
    tokio::time::timeout(within, listener.recv())
        .await
        .expect("an event in time")
        .expect("the listener runs")
}

async fn wait_listening(listener: &mut FleetListener, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_event(listener, left).await {
            FleetEvent::Listening => return,
            FleetEvent::Disconnected(_) => {}
            other => panic!("expected Listening, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_together_migrate_once() {
    let cluster = PgCluster::start();
    let (settings_a, settings_b) = (settings(&cluster, "a"), settings(&cluster, "b"));
    let (a, b) = tokio::join!(Fleet::connect(&settings_a), Fleet::connect(&settings_b));
    a.expect("node a connects");
    let b = b.expect("node b connects");
    assert_eq!(
        cluster
            .psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM certkeeper_schema"),
        (1..=SCHEMA_VERSION)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let nodes: Vec<String> = b
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(nodes, ["a", "b"]);
    // A third start finds the schema current.
    connect(&cluster, "c").await;
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused() {
    let cluster = PgCluster::start();
    connect(&cluster, "a").await;
    cluster.psql("INSERT INTO certkeeper_schema (version) VALUES (999)");
    let error = Fleet::connect(&settings(&cluster, "a"))
        .await
        .expect_err("too new");
    assert!(
        matches!(error, FleetError::SchemaTooNew { found: 999, known } if known == SCHEMA_VERSION),
        "{error:?}"
    );
    assert!(error.to_string().contains("upgrade certkeeper"), "{error}");
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error() {
    let cluster = PgCluster::start();
    let mut wrong = settings(&cluster, "a");
    wrong.password = Some(Secret::new(b"not the password".to_vec()));
    let error = Fleet::connect(&wrong).await.expect_err("wrong password");
    assert!(
        matches!(error, FleetError::Authentication { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("\"certkeeper\"") && text.contains("password"),
        "{text}"
    );
    assert!(!error.is_unavailable());
    assert!(!format!("{wrong:?}").contains("not the password"));
}

#[tokio::test]
async fn nobody_listening_is_an_unreachable_error() {
    let port = free_port();
    let mut settings = FleetSettings::new(
        format!("postgres://certkeeper@127.0.0.1:{port}/certkeeper?sslmode=disable"),
        "a",
        key(),
    );
    settings.connect_timeout = Duration::from_secs(3);
    let started = Instant::now();
    let error = Fleet::connect(&settings).await.expect_err("unreachable");
    assert!(matches!(error, FleetError::Unreachable { .. }), "{error:?}");
    assert!(error.is_unavailable());
    assert!(
        error
            .to_string()
            .contains(&format!("127.0.0.1:{port} is unreachable")),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_wrong_fleet_key_is_refused_at_connect() {
    let cluster = PgCluster::start();
    connect(&cluster, "a").await;
    let mut other = settings(&cluster, "b");
    other.fleet_key = FleetKey::from_bytes([0x43; 32]);
    let error = Fleet::connect(&other).await.expect_err("wrong key");
    assert!(matches!(error, FleetError::WrongFleetKey), "{error:?}");
    assert!(error.to_string().contains("fleet_key_file"), "{error}");
}

#[tokio::test]
async fn private_keys_and_accounts_are_sealed_in_the_database() {
    let cluster = PgCluster::start();
    let a = connect(&cluster, "a").await;
    let lease = take(&a, "www", Duration::from_secs(60)).await;
    assert_eq!(
        a.publish_version(&lease, &record("01"))
            .await
            .expect("publish"),
        1
    );
    assert_eq!(
        a.publish_version(&lease, &record("02"))
            .await
            .expect("publish"),
        2
    );

    let raw =
        cluster.psql("SELECT encode(key_sealed, 'hex') FROM certkeeper_versions WHERE version = 1");
    let raw = hex::decode(&raw).expect("hex");
    assert!(
        raw.len() > KEY_PEM.len(),
        "nonce and tag stored with the ciphertext"
    );
    let needle = b"PRIVATE KEY";
    assert!(
        !raw.windows(needle.len()).any(|w| w == needle),
        "the raw column holds no PEM"
    );
    assert!(
        !raw.windows(16)
            .any(|w| KEY_PEM.as_bytes().windows(16).any(|k| k == w))
    );
    let dump = cluster.psql("SELECT row_to_json(v)::text FROM certkeeper_versions v");
    assert!(!dump.contains("PRIVATE KEY"), "{dump}");

    // Another node with the same key reads it back.
    let b = connect(&cluster, "b").await;
    let latest = b
        .latest_version("www")
        .await
        .expect("latest")
        .expect("a version");
    assert_eq!(latest.version, 2);
    assert_eq!(latest.record, record("02"));
    assert_eq!(latest.published_by, "a");
    let since = b.versions_since("www", 0).await.expect("since");
    assert_eq!(since.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
    let heads = b.version_heads().await.expect("heads");
    assert_eq!(heads.len(), 1);
    assert_eq!((heads[0].version, heads[0].serial.as_str()), (2, "02"));

    // A sealed key moved to another row does not open there.
    cluster.psql(
        "UPDATE certkeeper_versions SET key_sealed = (SELECT key_sealed FROM certkeeper_versions \
         WHERE version = 1) WHERE version = 2",
    );
    let error = b.latest_version("www").await.expect_err("moved ciphertext");
    assert!(matches!(error, FleetError::Decrypt { .. }), "{error:?}");

    // Accounts.
    let account =
        Secret::new(br#"{"kid":"https://ca/acct/1","key":"-----BEGIN PRIVATE KEY-----"}"#.to_vec());
    a.save_account("https://ca/directory", &account)
        .await
        .expect("save account");
    assert_eq!(
        b.account("https://ca/directory").await.expect("account"),
        Some(account)
    );
    assert_eq!(
        b.account("https://other/directory").await.expect("account"),
        None
    );
    let raw = cluster.psql("SELECT encode(sealed, 'escape') FROM certkeeper_accounts");
    assert!(!raw.contains("kid") && !raw.contains("PRIVATE"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_until_it_expires_then_taken_over_with_the_next_generation() {
    let cluster = PgCluster::start();
    let a = connect(&cluster, "a").await;
    let b = connect(&cluster, "b").await;
    let ttl = Duration::from_secs(2);
    let held = take(&a, "www", ttl).await;
    assert_eq!((held.owner.as_str(), held.generation), ("a", 1));
    assert_eq!(
        b.acquire("www", ttl).await.expect("acquire"),
        None,
        "taken, not expired"
    );
    assert_eq!(
        a.acquire("www", ttl).await.expect("acquire"),
        None,
        "not even by its owner"
    );
    // Another lineage is independent.
    assert!(b.acquire("api", ttl).await.expect("acquire").is_some());

    let renewed = a.renew(&held, ttl).await.expect("renew");
    assert!(renewed.expires_at >= held.expires_at);

    let taken = acquire_within(&b, "www", ttl, Duration::from_secs(10)).await;
    assert_eq!((taken.owner.as_str(), taken.generation), ("b", 2));
    let error = a.renew(&held, ttl).await.expect_err("lost");
    assert!(
        matches!(error, FleetError::LeaseLost { generation: 1, .. }),
        "{error:?}"
    );
    assert!(a.release(&held).await.is_err());

    // Released: the next acquirer gets it at once, with the next generation.
    b.release(&taken).await.expect("release");
    let again = a
        .acquire("www", ttl)
        .await
        .expect("acquire")
        .expect("released");
    assert_eq!((again.owner.as_str(), again.generation), ("a", 3));
    let leases = b.leases().await.expect("leases");
    assert_eq!(
        leases
            .iter()
            .map(|l| l.lineage.as_str())
            .collect::<Vec<_>>(),
        ["api", "www"]
    );
}

/// An order in flight at `url`, with a key.
fn order(url: &str) -> OrderRecord {
    OrderRecord {
        order_url: url.to_owned(),
        directory_url: "https://ca/dir".to_owned(),
        key_pem: Secret::new(
            b"-----BEGIN PRIVATE KEY-----\norder key\n-----END PRIVATE KEY-----\n".to_vec(),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_under_a_lost_lease_are_fenced() {
    let cluster = PgCluster::start();
    let a = connect(&cluster, "a").await;
    let b = connect(&cluster, "b").await;
    let ttl = Duration::from_secs(1);
    let stale = take(&a, "www", ttl).await;
    a.record_order(&stale, &order("https://ca/order/1"))
        .await
        .expect("record");

    let fresh = acquire_within(&b, "www", Duration::from_secs(60), Duration::from_secs(10)).await;
    assert_eq!(fresh.generation, stale.generation + 1);
    // b resumes a's order by URL.
    let resumed = b
        .order_in_flight("www")
        .await
        .expect("order")
        .expect("in flight");
    assert_eq!(
        (resumed.order.order_url.as_str(), resumed.owner.as_str()),
        ("https://ca/order/1", "a")
    );
    assert_eq!(resumed.order, order("https://ca/order/1"), "its key opens");
    let raw = cluster.psql("SELECT encode(key_sealed, 'escape') FROM certkeeper_orders");
    assert!(
        !raw.contains("PRIVATE KEY"),
        "the order's key is sealed: {raw}"
    );

    let error = a
        .publish_version(&stale, &record("01"))
        .await
        .expect_err("fenced");
    assert!(
        matches!(&error, FleetError::Fenced { held: 1, current: 2, owner, .. } if owner == "b"),
        "{error:?}"
    );
    assert!(matches!(
        a.save_state(&stale, &serde_json::json!({"from": "a"}))
            .await,
        Err(FleetError::Fenced { .. })
    ));
    assert!(matches!(
        a.record_order(&stale, &order("https://ca/order/2")).await,
        Err(FleetError::Fenced { .. })
    ));
    assert!(matches!(
        a.publish_challenge(&stale, "t", "t.k").await,
        Err(FleetError::Fenced { .. })
    ));

    assert_eq!(
        b.publish_version(&fresh, &record("01"))
            .await
            .expect("publish"),
        1
    );
    b.save_state(&fresh, &serde_json::json!({"from": "b"}))
        .await
        .expect("state");
    b.clear_order(&fresh).await.expect("clear order");
    assert_eq!(
        a.state("www").await.expect("state"),
        Some(serde_json::json!({"from": "b"}))
    );
    assert_eq!(a.order_in_flight("www").await.expect("order"), None);
    assert_eq!(
        cluster.psql("SELECT count(*) FROM certkeeper_versions"),
        "1"
    );
}

#[tokio::test]
async fn an_expired_lease_does_not_write_until_renewed() {
    let cluster = PgCluster::start();
    let a = connect(&cluster, "a").await;
    let lease = take(&a, "www", Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let error = a
        .save_state(&lease, &serde_json::json!(1))
        .await
        .expect_err("expired");
    assert!(
        matches!(error, FleetError::LeaseExpired { .. }),
        "{error:?}"
    );
    let lease = a
        .renew(&lease, Duration::from_secs(60))
        .await
        .expect("nobody took it");
    a.save_state(&lease, &serde_json::json!(1))
        .await
        .expect("renewed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_hear_of_challenges_and_versions() {
    let cluster = PgCluster::start();
    let a = connect(&cluster, "a").await;
    let b = connect(&cluster, "b").await;
    let shutdown = CancellationToken::new();
    let mut listener = b.listen(shutdown.clone());
    wait_listening(&mut listener, Duration::from_secs(10)).await;

    let lease = take(&a, "www", Duration::from_secs(60)).await;
    a.publish_challenge(&lease, "tok1", "tok1.thumb")
        .await
        .expect("publish");
    match next_event(&mut listener, Duration::from_secs(10)).await {
        FleetEvent::ChallengePublished {
            token,
            key_authorization,
            lineage,
        } => {
            assert_eq!(
                (token.as_str(), key_authorization.as_str(), lineage.as_str()),
                ("tok1", "tok1.thumb", "www")
            );
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
    let snapshot = b.challenges().await.expect("challenges");
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].key_authorization, "tok1.thumb");

    a.publish_version(&lease, &record("01"))
        .await
        .expect("publish");
    match next_event(&mut listener, Duration::from_secs(10)).await {
        FleetEvent::VersionPublished { lineage, version } => {
            assert_eq!((lineage.as_str(), version), ("www", 1));
        }
        other => panic!("expected a version, got {other:?}"),
    }
    a.withdraw_challenge("tok1").await.expect("withdraw");
    match next_event(&mut listener, Duration::from_secs(10)).await {
        FleetEvent::ChallengeWithdrawn { token } => assert_eq!(token, "tok1"),
        other => panic!("expected a withdrawal, got {other:?}"),
    }
    assert!(b.challenges().await.expect("challenges").is_empty());

    shutdown.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("stops")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_withdraws_only_its_own_challenges_and_a_cleared_order_takes_all_of_them() {
    let cluster = PgCluster::start();
    let a = connect(&cluster, "a").await;
    let b = connect(&cluster, "b").await;
    let lease = take(&a, "www", Duration::from_millis(300)).await;
    a.publish_challenge(&lease, "tok1", "tok1.thumb")
        .await
        .expect("publish");
    a.publish_challenge(&lease, "tok2", "tok2.thumb")
        .await
        .expect("publish");
    // b carries the order on after a's lease ran out, and publishes the same token again.
    let taken = acquire_within(&b, "www", Duration::from_secs(60), Duration::from_secs(10)).await;
    b.publish_challenge(&taken, "tok1", "tok1.thumb")
        .await
        .expect("publish again");
    // a's late cleanup leaves b's token alone, and takes its own.
    a.withdraw_challenge("tok1").await.expect("withdraw");
    a.withdraw_challenge("tok2").await.expect("withdraw");
    let tokens: Vec<String> = b
        .challenges()
        .await
        .expect("challenges")
        .into_iter()
        .map(|c| c.token)
        .collect();
    assert_eq!(tokens, ["tok1"]);

    // Another one left by a node that died: clearing the order takes every one.
    a.publish_challenge(&lease, "tok3", "tok3.thumb")
        .await
        .expect_err("a's lease is gone");
    b.publish_challenge(&taken, "tok3", "tok3.thumb")
        .await
        .expect("publish");
    let shutdown = CancellationToken::new();
    let mut listener = a.listen(shutdown.clone());
    wait_listening(&mut listener, Duration::from_secs(10)).await;
    b.clear_order(&taken).await.expect("clear");
    let mut withdrawn = Vec::new();
    while withdrawn.len() < 2 {
        match next_event(&mut listener, Duration::from_secs(10)).await {
            FleetEvent::ChallengeWithdrawn { token } => withdrawn.push(token),
            other => panic!("expected a withdrawal, got {other:?}"),
        }
    }
    withdrawn.sort();
    assert_eq!(withdrawn, ["tok1", "tok3"]);
    assert!(a.challenges().await.expect("challenges").is_empty());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_is_a_clear_error_meanwhile_and_everything_recovers() {
    let mut cluster = PgCluster::start();
    let a = connect(&cluster, "a").await;
    let b = connect(&cluster, "b").await;
    let shutdown = CancellationToken::new();
    let mut listener = b.listen(shutdown.clone());
    wait_listening(&mut listener, Duration::from_secs(10)).await;

    cluster.stop();
    let started = Instant::now();
    let error = a
        .acquire("www", Duration::from_secs(60))
        .await
        .expect_err("database down");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("keep serving their local certificates"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "no hang: {:?}",
        started.elapsed()
    );
    let error = b.challenges().await.expect_err("still down");
    assert!(error.is_unavailable(), "{error:?}");
    match next_event(&mut listener, Duration::from_secs(10)).await {
        FleetEvent::Disconnected(error) => assert!(error.is_unavailable(), "{error:?}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }

    cluster.restart();
    wait_listening(&mut listener, Duration::from_secs(20)).await;
    let lease = a
        .acquire("www", Duration::from_secs(60))
        .await
        .expect("acquire after restart")
        .expect("free");
    a.publish_challenge(&lease, "tok2", "tok2.thumb")
        .await
        .expect("publish after restart");
    match next_event(&mut listener, Duration::from_secs(10)).await {
        FleetEvent::ChallengePublished { token, .. } => assert_eq!(token, "tok2"),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_is_verified_against_the_ca_file() {
    let cluster = PgCluster::start();
    let mut tls = settings(&cluster, "a");
    tls.url = cluster.tls_url();
    tls.ca_file = Some(cluster.ca_file.clone());
    let fleet = Fleet::connect(&tls).await.expect("verified TLS");
    assert_eq!(
        cluster.psql(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.usename = 'certkeeper' AND s.ssl"
        ),
        "1",
        "the fleet's connection is TLS"
    );
    drop(fleet);

    // The system's roots do not know the throwaway CA.
    tls.ca_file = None;
    let error = Fleet::connect(&tls).await.expect_err("untrusted");
    assert!(matches!(error, FleetError::Tls { .. }), "{error:?}");

    // The default sslmode (prefer) is raised to require: never a silent plain-text fallback.
    tls.url = tls.url.replace("?sslmode=require", "");
    let error = Fleet::connect(&tls).await.expect_err("untrusted");
    assert!(matches!(error, FleetError::Tls { .. }), "{error:?}");

    let mut missing = settings(&cluster, "a");
    missing.ca_file = Some(cluster.ca_file.with_file_name("nope.pem"));
    let error = Fleet::connect(&missing).await.expect_err("no CA file");
    assert!(matches!(error, FleetError::CaFile { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_times_out_instead_of_hanging() {
    let cluster = PgCluster::start();
    let mut quick = settings(&cluster, "a");
    quick.connect_timeout = Duration::from_secs(1);
    quick.operation_timeout = Duration::from_secs(2);
    let a = Fleet::connect(&quick).await.expect("connect");

    cluster.pause();
    let started = Instant::now();
    let error = a.challenges().await.expect_err("no answer");
    let waited = started.elapsed();
    cluster.resume();
    assert!(matches!(error, FleetError::TimedOut { .. }), "{error:?}");
    assert!(error.is_unavailable());
    assert!(
        waited < Duration::from_secs(4),
        "bounded by the operation timeout: {waited:?}"
    );
    // The timed-out connection was dropped; the next operation opens a fresh one.
    assert!(a.challenges().await.expect("answers again").is_empty());
}

#[tokio::test]
async fn a_server_without_tls_is_a_tls_error_not_a_plain_text_fallback() {
    let cluster = PgCluster::start_without_tls();
    let mut tls = settings(&cluster, "a");
    tls.url = cluster.tls_url().replace("?sslmode=require", "");
    tls.ca_file = Some(cluster.ca_file.clone());
    let error = Fleet::connect(&tls)
        .await
        .expect_err("no TLS on the server");
    assert!(matches!(error, FleetError::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("TLS"), "{error}");
    assert!(!error.is_unavailable());
    // Plain text only when the URL asks for it.
    connect(&cluster, "a").await;
}

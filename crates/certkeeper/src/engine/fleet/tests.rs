//! Fleet sync and the follower against a real, throwaway PostgreSQL (the fleet crate's harness)
//! and real stores in temporary directories: node "a" publishes what it installed, node "b"
//! installs it through its own store and runs its own deploy hook (the real `ProcessHooks`, a
//! shell `deploy_hook` appending to a file). Outcomes are waited for with deadlines, never
//! fixed sleeps.

#[path = "../../../../fleet/tests/support/postgres.rs"]
mod postgres;

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use certkeeper_challenge::ChallengeTokens;
use certkeeper_config::Environment;
use certkeeper_core::cluster::{ClusterSpec, ClusterTls, DEFAULT_LEASE};
use certkeeper_core::ports::ChallengeAnswer;
use certkeeper_core::{CertName, Inventory, Secret};
use certkeeper_fleet::{Fleet, FleetKey, FleetSettings, Lease, VersionRecord};
use certkeeper_hooks::ReloadCoalescer;
use certkeeper_store::layout::{CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE, PRIVKEY_FILE};
use certkeeper_store::{Store, VerifyProblem};
use postgres::{PASSWORD, PgCluster};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber, date_time_ymd,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::follow::{Follower, follow};
use super::publish::live_version;
use super::sync::{SyncError, Synced, sync_all, sync_all_except, sync_lineage};
use super::{FleetCoordination, LineageGuards};
use crate::engine::deploy::ProcessHooks;
use crate::engine::ports::{Claimed, Coordination as _, Hooks};

const WWW: &str = "www.example.com";

// ------------------------------------------------------------------ certificates

struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn test_ca() -> TestCa {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "certkeeper fleet test CA");
    let cert = params.self_signed(&key).expect("CA certificate");
    TestCa {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
    }
}

/// A leaf for `names` with `serial`, as a CA returns it: (key PEM, leaf PEM, CA PEM).
fn leaf(ca: &TestCa, names: &[&str], serial: u8) -> (String, String, String) {
    leaf_from(ca, names, serial, 2025)
}

/// [`leaf`], valid from the first of January of `year`.
fn leaf_from(ca: &TestCa, names: &[&str], serial: u8, year: i32) -> (String, String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("leaf params");
    params.serial_number = Some(SerialNumber::from_slice(&[serial]));
    params.not_before = date_time_ymd(year, 1, 1);
    params.not_after = date_time_ymd(2099, 1, 1);
    let cert = params.signed_by(&key, &ca.issuer).expect("sign leaf");
    (key.serialize_pem(), cert.pem(), ca.pem.clone())
}

/// A record made by hand (not read from a store), for versions a store would refuse.
fn record(key_pem: &str, cert_pem: &str, chain_pem: &str, serial: &str) -> VersionRecord {
    VersionRecord {
        serial: serial.to_owned(),
        cert_pem: cert_pem.to_owned(),
        chain_pem: chain_pem.to_owned(),
        fullchain_pem: format!("{cert_pem}{chain_pem}"),
        key_pem: Secret::new(key_pem.as_bytes().to_vec()),
        not_after: SystemTime::now() + Duration::from_secs(86_400),
    }
}

// ------------------------------------------------------------------ nodes

struct Node {
    _dir: tempfile::TempDir,
    fleet: Fleet,
    store: Store,
    inventory: Arc<Inventory>,
    hooks: Arc<dyn Hooks>,
    /// Where the deploy hook appends "SERIAL ACTION" lines.
    deploys: PathBuf,
}

impl Node {
    async fn start(cluster: &PgCluster, name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let deploys = dir.path().join("deploys");
        let config = dir.path().join("certkeeper.toml");
        fs::write(
            &config,
            format!(
                r#"state_dir = "{state}"

[[ca]]
name = "test"
directory = "https://ca.invalid/directory"

[[certificate]]
name = "www"
ca = "test"
domains = ["{WWW}"]
deploy_hook = "echo \"$CERTKEEPER_SERIAL $CERTKEEPER_ACTION\" >> {deploys}"
"#,
                state = dir.path().join("state").display(),
                deploys = deploys.display(),
            ),
        )
        .expect("write config");
        let inventory = certkeeper_config::load(&config, &Environment::from_process())
            .expect("load config")
            .inventory;
        let store = Store::open(&inventory.state_dir).expect("open store");
        let reloads = Arc::new(ReloadCoalescer::new(Vec::new(), Duration::from_millis(10)));
        let mut settings = FleetSettings::new(cluster.url(), name, FleetKey::from_bytes([7; 32]));
        settings.password = Some(Secret::new(PASSWORD.as_bytes().to_vec()));
        settings.connect_timeout = Duration::from_secs(3);
        settings.operation_timeout = Duration::from_secs(5);
        let fleet = Fleet::connect(&settings)
            .await
            .unwrap_or_else(|e| panic!("connect {name}: {}", certkeeper_core::error_chain(&e)));
        Node {
            _dir: dir,
            fleet,
            store,
            inventory: Arc::new(inventory),
            hooks: Arc::new(ProcessHooks::new(reloads)),
            deploys,
        }
    }

    /// This node's follower, serving into `tokens`, until `stop`.
    fn follow(
        &self,
        tokens: &ChallengeTokens,
        inventory: watch::Receiver<Arc<Inventory>>,
        stop: &CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(follow(
            Follower {
                fleet: self.fleet.clone(),
                store: self.store.clone(),
                tokens: tokens.clone(),
                hooks: Arc::clone(&self.hooks),
                inventory,
                guards: LineageGuards::default(),
            },
            stop.clone(),
        ))
    }

    fn www(&self) -> CertName {
        CertName::new("www").expect("name")
    }

    async fn sync(&self) -> Result<Synced, SyncError> {
        sync_lineage(
            &self.fleet,
            &self.store,
            &self.inventory,
            &self.inventory.certificates[0],
            self.hooks.as_ref(),
            &LineageGuards::default(),
        )
        .await
    }

    fn live_serial(&self) -> Option<String> {
        self.store
            .read_live(&self.www())
            .expect("read live")
            .map(|live| live.serial_hex)
    }

    fn deploys(&self) -> Vec<String> {
        fs::read_to_string(&self.deploys)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Install a certificate with `serial` as an attempt would, then publish what is live.
    async fn issue_and_publish(&self, ca: &TestCa, lease: &Lease, serial: u8) -> i64 {
        let (key, cert, chain) = leaf(ca, &[WWW], serial);
        let lineage = self.store.lineage(&self.www()).expect("lineage");
        lineage
            .install(
                &self.inventory.certificates[0].domains,
                key.as_bytes(),
                &format!("{cert}{chain}"),
                None,
            )
            .expect("install on a");
        let record = live_version(&lineage).expect("read").expect("live");
        assert_eq!(record.serial, format!("{serial:x}"));
        publish_within(&self.fleet, lease, &record).await
    }
}

/// Publish, retrying while the database comes back, for at most 20 s.
async fn publish_within(fleet: &Fleet, lease: &Lease, record: &VersionRecord) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match fleet.publish_version(lease, record).await {
            Ok(version) => return version,
            Err(error) if error.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("publish: {}", certkeeper_core::error_chain(&error)),
        }
    }
}

async fn lease(fleet: &Fleet) -> Lease {
    fleet
        .acquire("www", Duration::from_secs(600))
        .await
        .expect("acquire")
        .expect("the lease is free")
}

/// Wait until `check` holds, polling, for at most `within`.
async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn file_mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).expect("metadata").mode() & 0o7777
}

// ------------------------------------------------------------------ sync

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_version_is_installed_once_and_a_bad_one_is_refused() {
    let cluster = PgCluster::start();
    let ca = test_ca();
    let a = Node::start(&cluster, "a").await;
    let b = Node::start(&cluster, "b").await;

    assert_eq!(b.sync().await.expect("sync"), Synced::NothingPublished);
    let lease = lease(&a.fleet).await;
    assert_eq!(a.issue_and_publish(&ca, &lease, 1).await, 1);

    // b installs it into its own live/: the same files, the key private.
    assert_eq!(
        b.sync().await.expect("sync"),
        Synced::Installed {
            serial: "1".to_owned(),
            version: 1,
            deployed: true
        }
    );
    let (a_live, b_live) = (a.store.live_dir(&a.www()), b.store.live_dir(&b.www()));
    for file in [CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE, PRIVKEY_FILE] {
        assert_eq!(
            fs::read(b_live.join(file)).expect("b's file"),
            fs::read(a_live.join(file)).expect("a's file"),
            "{file}"
        );
    }
    assert_eq!(file_mode(&b_live.join(PRIVKEY_FILE)), 0o600);
    assert_eq!(b.deploys(), ["1 issue"]);
    let state = b.store.lineage(&b.www()).expect("lineage");
    assert_eq!(state.state().attempts.successes_total, 1);
    assert!(!state.state().attempts.pending_deploy);

    // In sync: nothing installed, no hook.
    assert_eq!(b.sync().await.expect("sync"), Synced::UpToDate);
    let all = sync_all(
        &b.fleet,
        &b.store,
        &b.inventory,
        b.hooks.as_ref(),
        &LineageGuards::default(),
    )
    .await
    .expect("sync all");
    assert!(matches!(&all[..], [(name, Ok(Synced::UpToDate))] if name.as_str() == "www"));
    assert_eq!(b.deploys(), ["1 issue"]);

    // Versions that do not check out are refused; the live pair and the hooks stay as they were.
    let (key, cert, chain) = leaf(&ca, &["api.example.com"], 2);
    publish_within(&a.fleet, &lease, &record(&key, &cert, &chain, "2")).await;
    let refused = b.sync().await.expect_err("other names");
    assert!(
        matches!(
            &refused,
            SyncError::Refused {
                problem: VerifyProblem::NamesMismatch { .. },
                version: 2,
                ..
            }
        ),
        "{refused:?}"
    );
    let (_, cert, chain) = leaf(&ca, &[WWW], 3);
    let (other_key, _, _) = leaf(&ca, &[WWW], 4);
    publish_within(&a.fleet, &lease, &record(&other_key, &cert, &chain, "3")).await;
    let refused = b.sync().await.expect_err("another key");
    assert!(
        matches!(
            &refused,
            SyncError::Refused {
                problem: VerifyProblem::KeyMismatch,
                ..
            }
        ),
        "{refused:?}"
    );
    let (key, cert, chain) = leaf(&ca, &[WWW], 5);
    publish_within(&a.fleet, &lease, &record(&key, &cert, &chain, "6")).await;
    let refused = b.sync().await.expect_err("another serial");
    assert!(
        matches!(&refused, SyncError::SerialMismatch { claimed, found, .. } if claimed == "6" && found == "5"),
        "{refused:?}"
    );
    assert!(!refused.is_unavailable());
    assert_eq!(b.live_serial().as_deref(), Some("1"));
    assert_eq!(b.deploys(), ["1 issue"]);

    // The next good version is a renewal.
    assert_eq!(a.issue_and_publish(&ca, &lease, 7).await, 5);
    assert!(matches!(
        b.sync().await.expect("sync"),
        Synced::Installed { ref serial, version: 5, deployed: true } if serial == "7"
    ));
    assert_eq!(b.deploys(), ["1 issue", "7 renew"]);

    // b's own renewal, installed before it is published (issued later than the fleet's
    // newest): kept, not overwritten by the older version.
    let (key, cert, chain) = leaf_from(&ca, &[WWW], 8, 2026);
    b.store
        .install(
            &b.www(),
            &b.inventory.certificates[0].domains,
            &key,
            &format!("{cert}{chain}"),
        )
        .expect("b's own install");
    assert_eq!(
        b.sync().await.expect("sync"),
        Synced::LocalNewer {
            local: "8".to_owned(),
            fleet: "7".to_owned()
        }
    );
    assert_eq!(b.live_serial().as_deref(), Some("8"));
    assert_eq!(b.deploys(), ["1 issue", "7 renew"]);

    // Lineages left out (the follower's, for leases this node holds) are not looked at.
    let skip = std::collections::BTreeSet::from(["www".to_owned()]);
    let all = sync_all_except(
        &b.fleet,
        &b.store,
        &b.inventory,
        b.hooks.as_ref(),
        &LineageGuards::default(),
        &skip,
    )
    .await
    .expect("sync all");
    assert!(matches!(&all[..], [(_, Ok(Synced::Skipped))]), "{all:?}");

    // A node with an empty state directory fills itself.
    let c = Node::start(&cluster, "c").await;
    let all = sync_all(
        &c.fleet,
        &c.store,
        &c.inventory,
        c.hooks.as_ref(),
        &LineageGuards::default(),
    )
    .await
    .expect("sync all");
    assert!(
        matches!(&all[..], [(_, Ok(Synced::Installed { serial, .. }))] if serial == "7"),
        "{all:?}"
    );
    assert_eq!(c.deploys(), ["7 issue"]);
}

// ------------------------------------------------------------------ the follower

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_serves_challenges_installs_versions_and_catches_up_after_an_outage() {
    let mut cluster = PgCluster::start();
    let ca = test_ca();
    let a = Node::start(&cluster, "a").await;
    let b = Node::start(&cluster, "b").await;
    let tokens = ChallengeTokens::new();
    let (_inventory_tx, inventory_rx) = watch::channel(Arc::clone(&b.inventory));
    let stop = CancellationToken::new();
    let follower = b.follow(&tokens, inventory_rx, &stop);
    let within = Duration::from_secs(10);
    let lease = lease(&a.fleet).await;

    // A challenge published by a is served by b, and withdrawn.
    a.fleet
        .publish_challenge(&lease, "tok-1", "tok-1.ka")
        .await
        .expect("publish challenge");
    eventually("tok-1 served by b", within, || {
        tokens.lookup("tok-1").as_deref() == Some("tok-1.ka")
    })
    .await;
    a.fleet
        .withdraw_challenge("tok-1")
        .await
        .expect("withdraw challenge");
    eventually("tok-1 withdrawn from b", within, || {
        tokens.lookup("tok-1").is_none()
    })
    .await;

    // A token b's own solver serves stays when the fleet withdraws it: the follower did not
    // put it there. (Notifications arrive in order: once tok-2 is served, "own" was handled.)
    tokens.publish("own", "own.ka");
    a.fleet
        .publish_challenge(&lease, "own", "own.ka")
        .await
        .expect("publish");
    a.fleet.withdraw_challenge("own").await.expect("withdraw");
    a.fleet
        .publish_challenge(&lease, "tok-2", "tok-2.ka")
        .await
        .expect("publish");
    eventually("tok-2 served by b", within, || {
        tokens.lookup("tok-2").is_some()
    })
    .await;
    assert_eq!(tokens.lookup("own").as_deref(), Some("own.ka"));

    // A new version is installed on its notification, its hook run once.
    a.issue_and_publish(&ca, &lease, 1).await;
    eventually("version 1 on b", within, || {
        b.live_serial().as_deref() == Some("1") && b.deploys().len() == 1
    })
    .await;

    // The database restarts: the follower reconnects and installs what was published after.
    cluster.stop();
    cluster.restart();
    a.issue_and_publish(&ca, &lease, 2).await;
    eventually(
        "version 2 on b after the restart",
        Duration::from_secs(20),
        || b.live_serial().as_deref() == Some("2"),
    )
    .await;

    // A version published while b cannot listen (its notification lost to it) is caught up
    // when it listens again: logins refused, b's listening connection cut, a publishes on its
    // open connection, logins allowed again.
    cluster.psql("ALTER ROLE certkeeper NOLOGIN");
    let cut = cluster.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE usename = 'certkeeper' AND query LIKE 'LISTEN%'",
    );
    assert_eq!(cut, "1", "b's listening connection");
    a.issue_and_publish(&ca, &lease, 3).await;
    a.fleet
        .publish_challenge(&lease, "tok-3", "tok-3.ka")
        .await
        .expect("publish");
    a.fleet.withdraw_challenge("tok-2").await.expect("withdraw");
    cluster.psql("ALTER ROLE certkeeper LOGIN");
    eventually(
        "version 3 on b after it listens again",
        Duration::from_secs(20),
        || b.live_serial().as_deref() == Some("3"),
    )
    .await;
    eventually("the challenges reconciled", within, || {
        tokens.lookup("tok-3").is_some() && tokens.lookup("tok-2").is_none()
    })
    .await;
    assert_eq!(b.deploys(), ["1 issue", "2 renew", "3 renew"]);

    stop.cancel();
    tokio::time::timeout(within, follower)
        .await
        .expect("the follower stops")
        .expect("the follower did not panic");
    assert!(tokens.lookup("tok-3").is_none(), "its tokens retracted");
    assert_eq!(tokens.lookup("own").as_deref(), Some("own.ka"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_syncs_what_a_reload_adds_and_repairs_drift_every_sync_interval() {
    let cluster = PgCluster::start();
    let ca = test_ca();
    let a = Node::start(&cluster, "a").await;
    let b = Node::start(&cluster, "b").await;
    let lease = lease(&a.fleet).await;
    a.issue_and_publish(&ca, &lease, 1).await;

    // b starts without the certificate in its configuration: it installs nothing.
    let mut without = (*b.inventory).clone();
    without.certificates.clear();
    without.cluster = Some(ClusterSpec {
        postgres: cluster.url().parse().expect("url"),
        password: None,
        tls: ClusterTls::None,
        ca_file: None,
        node: Some("b".to_owned()),
        fleet_key: Secret::new(vec![7; 32]),
        lease: DEFAULT_LEASE,
        sync_interval: Duration::from_millis(300),
    });
    let mut with = without.clone();
    with.certificates.clone_from(&b.inventory.certificates);
    let (inventory_tx, inventory_rx) = watch::channel(Arc::new(without));
    let tokens = ChallengeTokens::new();
    let stop = CancellationToken::new();
    let follower = b.follow(&tokens, inventory_rx, &stop);
    let within = Duration::from_secs(10);
    // The follower is up (it serves the fleet's challenges) and has nothing to install.
    a.fleet
        .publish_challenge(&lease, "marker", "marker.ka")
        .await
        .expect("publish");
    eventually("the follower is up", within, || {
        tokens.lookup("marker").is_some()
    })
    .await;
    assert_eq!(b.live_serial(), None);

    // The reload adds it: installed.
    inventory_tx
        .send(Arc::new(with))
        .expect("send the reloaded inventory");
    eventually("version 1 on b after the reload", within, || {
        b.live_serial().as_deref() == Some("1")
    })
    .await;

    // Something else made live here (older than the fleet's), with no notification: the
    // periodic check puts the fleet's version back.
    let (key, cert, chain) = leaf_from(&ca, &[WWW], 9, 2024);
    b.store
        .install(
            &b.www(),
            &b.inventory.certificates[0].domains,
            &key,
            &format!("{cert}{chain}"),
        )
        .expect("install by hand");
    assert_eq!(b.live_serial().as_deref(), Some("9"));
    eventually("the fleet's version back on b", within, || {
        b.live_serial().as_deref() == Some("1")
    })
    .await;
    assert_eq!(b.deploys(), ["1 issue", "1 renew"]);

    stop.cancel();
    tokio::time::timeout(within, follower)
        .await
        .expect("the follower stops")
        .expect("the follower did not panic");
}

// ------------------------------------------------------------------ challenges

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_cleaned_up_while_the_database_is_away_is_served_until_it_is_withdrawn() {
    let mut cluster = PgCluster::start();
    let a = Node::start(&cluster, "a").await;
    let coordination = FleetCoordination::new(
        a.fleet.clone(),
        Duration::from_secs(600),
        LineageGuards::default(),
    );
    let Claimed::Held(claim) = coordination.claim(&a.www()).await.expect("claim") else {
        panic!("the lease is free");
    };
    let tokens = ChallengeTokens::new();
    let solver = claim.solver(Arc::new(tokens.clone()));
    let answer = ChallengeAnswer::Http01 {
        domain: WWW.to_owned(),
        token: "tok".to_owned(),
        key_authorization: "tok.thumb".to_owned(),
    };
    solver.present(&answer).await.expect("present");
    assert_eq!(a.fleet.challenges().await.expect("challenges").len(), 1);

    // The attempt ends (its lease lost to the outage, say) while the CA may be validating.
    cluster.stop();
    solver.cleanup(&answer).await.expect("cleanup");
    assert_eq!(
        tokens.lookup("tok").as_deref(),
        Some("tok.thumb"),
        "served here while the fleet still lists it"
    );
    cluster.restart();
    eventually("withdrawn here", Duration::from_secs(40), || {
        tokens.lookup("tok").is_none()
    })
    .await;
    assert!(
        a.fleet.challenges().await.expect("challenges").is_empty(),
        "withdrawn from the fleet first"
    );
    claim.release().await;
}

//! Fleet mode end to end: three `certkeeper run` nodes with their own state directories on one
//! machine, sharing a real PostgreSQL (a throwaway cluster, crates/fleet/tests/support) and a
//! real Pebble, whose HTTP-01 requests go through a TCP round-robin in front of the three
//! nodes' listeners, so validation usually reaches a node that did not place the order. Orders
//! are counted at a proxy in front of Pebble.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

#[path = "../crates/fleet/tests/support/postgres.rs"]
mod postgres;
mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::PgCluster;
use rustix::process::Signal;
use support::proxy::{Fault, FaultProxy};
use support::roundrobin::RoundRobin;
use support::{Daemon, PebbleOptions, Setup};

/// Pebble's newOrder path.
const NEW_ORDER: &str = "/order-plz";
/// Pebble's challenge, finalize and certificate download paths.
const CHALLENGE: &str = "/chalZ/";
const FINALIZE: &str = "/finalize-order/";
const CERTIFICATE: &str = "/certZ/";
/// A base64 fleet key (32 bytes of 0x2a).
const FLEET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// One node: its directory, configuration and HTTP-01 port.
struct Node {
    name: String,
    dir: PathBuf,
    config: PathBuf,
    state_dir: PathBuf,
    http01_port: u16,
}

impl Node {
    fn deploys(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("deploys"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn live_serial(&self, cert: &str) -> Option<String> {
        let path = self.state_dir.join("live").join(cert).join("cert.pem");
        path.exists().then(|| support::serial(&path))
    }

    fn live_key(&self, cert: &str) -> Option<Vec<u8>> {
        fs::read(self.state_dir.join("live").join(cert).join("privkey.pem")).ok()
    }

    fn spawn(&self) -> Daemon {
        support::spawn_certkeeper_daemon(&self.dir, &self.config, &[])
    }
}

/// What every node's configuration shares: the database, the secrets, the CA and the
/// certificates.
struct Common {
    pg_port: String,
    password: PathBuf,
    key: PathBuf,
    kid: String,
    lease: String,
    certs: Vec<String>,
}

/// The fleet: Pebble behind the counting proxy, PostgreSQL, and `count` nodes configured for
/// `certs`, Pebble's HTTP-01 port spread over their listeners.
struct Fleet {
    setup: Setup,
    proxy: FaultProxy,
    pg: PgCluster,
    nodes: Vec<Node>,
    common: Common,
    _round_robin: RoundRobin,
}

impl Fleet {
    fn start(count: usize, certs: &[String], lease: &str) -> Self {
        Self::start_with(count, certs, lease, PebbleOptions::default())
    }

    fn start_with(count: usize, certs: &[String], lease: &str, pebble: PebbleOptions) -> Self {
        // Pebble refuses no nonce, so every newOrder request at the proxy is one order.
        let setup = Setup::new(pebble.env("PEBBLE_WFE_NONCEREJECT", "0"));
        let proxy = FaultProxy::start(&setup.pebble);
        let pg = PgCluster::start_without_tls();
        let secrets = setup.dir.path().join("secrets");
        fs::create_dir_all(&secrets).unwrap();
        let password = secrets.join("db.password");
        fs::write(&password, postgres::PASSWORD).unwrap();
        let key = secrets.join("fleet.key");
        fs::write(&key, FLEET_KEY).unwrap();
        let (kid, _) = setup.pebble.eab.clone().unwrap();
        let pg_port = pg
            .url()
            .split(':')
            .nth(2)
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .to_owned();
        let common = Common {
            pg_port,
            password,
            key,
            kid,
            lease: lease.to_owned(),
            certs: certs.to_vec(),
        };
        let nodes: Vec<Node> = (0..count)
            .map(|i| {
                let name = format!("node-{}", char::from(b'a' + u8::try_from(i).unwrap()));
                write_node(&setup, &proxy, &common, &name, &common.key)
            })
            .collect();
        let round_robin = RoundRobin::start(
            setup.pebble.http01_port,
            nodes.iter().map(|node| node.http01_port).collect(),
        );
        Self {
            setup,
            proxy,
            pg,
            nodes,
            common,
            _round_robin: round_robin,
        }
    }

    /// Configure one more node, `name`, with the fleet key in `key_file` (not behind the
    /// round-robin).
    fn extra_node(&self, name: &str, key_file: &Path) -> Node {
        write_node(&self.setup, &self.proxy, &self.common, name, key_file)
    }

    /// Start every node, and wait until the first has set up the fleet's schema.
    fn spawn_all(&self) -> Vec<Daemon> {
        let daemons: Vec<Daemon> = self.nodes.iter().map(Node::spawn).collect();
        wait_for(
            "the fleet's schema",
            Duration::from_secs(30),
            &daemons,
            || {
                self.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'certkeeper_key_check'")
                    == "1"
            },
        );
        daemons
    }

    /// The index of the node named `name`.
    fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node named {name:?}"))
    }

    /// Wait until every node has every one of `certs` live with the same serial and key.
    fn wait_in_sync(&self, certs: &[String], timeout: Duration, daemons: &[Daemon]) {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.wait_in_sync_on(&all, certs, timeout, daemons);
    }

    /// Wait until the nodes at `which` have every one of `certs` live with the same serial.
    fn wait_in_sync_on(
        &self,
        which: &[usize],
        certs: &[String],
        timeout: Duration,
        daemons: &[Daemon],
    ) {
        let behind = || -> Vec<String> {
            certs
                .iter()
                .filter(|cert| {
                    let serials: BTreeSet<Option<String>> = which
                        .iter()
                        .map(|&i| self.nodes[i].live_serial(cert))
                        .collect();
                    serials.len() != 1 || serials.contains(&None)
                })
                .cloned()
                .collect()
        };
        wait_for("every node in sync", timeout, daemons, || {
            behind().is_empty()
        });
    }

    /// One value from PostgreSQL.
    fn sql(&self, query: &str) -> String {
        self.pg.psql(query)
    }
}

/// Write the configuration of node `name` with the fleet key in `key_file`.
fn write_node(
    setup: &Setup,
    proxy: &FaultProxy,
    common: &Common,
    name: &str,
    key_file: &Path,
) -> Node {
    let dir = setup.dir.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    let node = Node {
        config: dir.join("certkeeper.toml"),
        state_dir: dir.join("state"),
        http01_port: support::pebble::free_port(),
        dir,
        name: name.to_owned(),
    };
    let mut text = format!(
        r#"state_dir = "{state}"
retry_initial = "2s"
retry_max = "10s"

[http01]
listen = ["127.0.0.1:{http}"]

[cluster]
postgres = "postgres://{role}@127.0.0.1:{pg_port}/{database}"
tls = "none"
password_file = "{password}"
fleet_key_file = "{key}"
node = "{name}"
lease = "{lease}"
sync_interval = "5s"

[[ca]]
name = "pebble"
directory = "{directory}"
eab_kid = "{kid}"
eab_hmac_key_file = "{hmac}"
terms_of_service_agreed = true
root_ca_file = "{root}"
"#,
        state = node.state_dir.display(),
        http = node.http01_port,
        role = postgres::ROLE,
        pg_port = common.pg_port,
        database = postgres::DATABASE,
        password = common.password.display(),
        key = key_file.display(),
        lease = common.lease,
        directory = proxy.directory_url(),
        kid = common.kid,
        hmac = setup.hmac_file.display(),
        root = setup.pebble.tls_ca_file.display(),
    );
    for cert in &common.certs {
        text.push_str(&format!(
            "\n[[certificate]]\nname = \"{cert}\"\nca = \"pebble\"\ndomains = [\"{cert}.example.com\"]\n\
             deploy_hook = \"echo {cert} >> {deploys}\"\n",
            deploys = node.dir.join("deploys").display()
        ));
    }
    fs::write(&node.config, text).unwrap();
    node
}

/// Poll `done` until it holds, or fail after `timeout` showing every daemon's log.
fn wait_for(what: &str, timeout: Duration, daemons: &[Daemon], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            logs(daemons)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn logs(daemons: &[Daemon]) -> String {
    daemons
        .iter()
        .map(Daemon::log_text)
        .collect::<Vec<_>>()
        .join("\n=========\n")
}

/// SIGTERM each daemon still running and expect a clean exit.
fn stop(daemons: Vec<Daemon>) {
    let mut running: Vec<Daemon> = daemons
        .into_iter()
        .filter_map(|mut daemon| daemon.is_running().then_some(daemon))
        .collect();
    for daemon in &running {
        daemon.signal(Signal::TERM);
    }
    for daemon in &mut running {
        assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    }
}

/// The last path segment of `url` (Pebble's order, finalize and certificate ids).
fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

fn names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("site{i:02}")).collect()
}

#[test]
fn twenty_certificates_are_ordered_once_each_and_installed_on_every_node() {
    let certs = names(20);
    let fleet = Fleet::start(3, &certs, "10s");
    let daemons = fleet.spawn_all();
    fleet.wait_in_sync(&certs, Duration::from_secs(180), &daemons);

    // One order per certificate, counted at the CA.
    assert_eq!(
        fleet.proxy.requests_to(NEW_ORDER),
        certs.len(),
        "one newOrder per certificate"
    );
    for cert in &certs {
        let keys: BTreeSet<Vec<u8>> = fleet
            .nodes
            .iter()
            .map(|node| node.live_key(cert).unwrap())
            .collect();
        assert_eq!(keys.len(), 1, "{cert}: one key on every node");
    }
    // Each node ran its own deploy hook once per certificate.
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &fleet.nodes {
        loop {
            let mut deploys = node.deploys();
            deploys.sort();
            if deploys == certs {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: deploy hooks {deploys:?}",
                node.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Work spread: orders were placed by more than one node.
    let publishers = fleet
        .pg
        .psql("SELECT count(DISTINCT published_by) FROM certkeeper_versions");
    assert_ne!(publishers, "1", "one node did all the work");
    assert_eq!(
        fleet.pg.psql("SELECT count(*) FROM certkeeper_versions"),
        certs.len().to_string()
    );
    stop(daemons);
}

/// The node that holds `cert`'s lease in the fleet, and the lease's generation.
fn lease_holder(fleet: &Fleet, cert: &str) -> (String, String) {
    let row = fleet.sql(&format!(
        "SELECT owner || ' ' || generation FROM certkeeper_leases WHERE lineage = '{cert}'"
    ));
    let (owner, generation) = row.split_once(' ').unwrap();
    (owner.to_owned(), generation.to_owned())
}

#[test]
fn the_order_of_a_node_killed_while_it_waits_for_validation_is_completed_by_another() {
    let certs = names(1);
    let cert = &certs[0];
    let fleet = Fleet::start(3, &certs, "5s");
    // The first challenge POST hangs at the proxy (well within the client's 30 s request
    // timeout): the order sits in the fleet, waiting for validation, when its node is killed.
    fleet
        .proxy
        .fail_next_on(CHALLENGE, 1, Fault::Delay(Duration::from_secs(25)));
    let mut daemons = fleet.spawn_all();
    wait_for(
        "the challenge POST",
        Duration::from_secs(60),
        &daemons,
        || fleet.proxy.requests_to(CHALLENGE) >= 1,
    );
    let row = fleet.sql(&format!(
        "SELECT owner || ' ' || generation || ' ' || order_url FROM certkeeper_orders \
         WHERE lineage = '{cert}'"
    ));
    let [owner, generation, order_url] = row.split(' ').collect::<Vec<_>>()[..] else {
        panic!("no order in the fleet: {row:?}");
    };
    let victim = fleet.index_of(owner);
    daemons[victim].signal(Signal::KILL);
    daemons[victim].wait_exit(Duration::from_secs(10));

    let survivors: Vec<usize> = (0..fleet.nodes.len()).filter(|&i| i != victim).collect();
    fleet.wait_in_sync_on(&survivors, &certs, Duration::from_secs(90), &daemons);
    // Still one order, and the one finalized is the order the dead node placed.
    assert_eq!(fleet.proxy.requests_to(NEW_ORDER), 1, "one newOrder");
    let finalized: BTreeSet<String> = fleet
        .proxy
        .paths()
        .iter()
        .filter(|path| path.contains(FINALIZE))
        .map(|path| last_segment(path).to_owned())
        .collect();
    assert_eq!(
        finalized,
        BTreeSet::from([last_segment(order_url).to_owned()]),
        "the dead node's order {order_url} was finalized, and no other"
    );
    let published = fleet.sql(&format!(
        "SELECT published_by || ' ' || generation || ' ' || serial FROM certkeeper_versions \
         WHERE lineage = '{cert}'"
    ));
    let [publisher, published_generation, serial] = published.split(' ').collect::<Vec<_>>()[..]
    else {
        panic!("not one version: {published:?}");
    };
    assert_ne!(publisher, owner, "published by a survivor");
    assert!(
        published_generation.parse::<u64>().unwrap() > generation.parse::<u64>().unwrap(),
        "published under a later lease ({published_generation}) than the dead node's ({generation})"
    );
    let adopted = &daemons[fleet.index_of(publisher)];
    assert!(
        adopted
            .log_text()
            .contains("carrying on the order another node of the fleet placed"),
        "{publisher} resumed the order by URL:\n{}",
        adopted.log_text()
    );
    for &i in &survivors {
        let live = fleet.nodes[i].live_serial(cert).unwrap();
        assert!(
            live.eq_ignore_ascii_case(serial.trim_start_matches('0'))
                || live.eq_ignore_ascii_case(serial),
            "{}: live serial {live}, fleet's {serial}",
            fleet.nodes[i].name
        );
    }
    stop(daemons);
}

#[test]
fn a_node_whose_lease_was_stolen_while_paused_has_its_writes_refused() {
    let certs = names(1);
    let cert = &certs[0];
    let fleet = Fleet::start(3, &certs, "5s");
    // The first certificate download is held back 3 s at the proxy: the order is valid and
    // its node is about to publish when it is paused (SIGSTOP); the answer waits in its socket.
    fleet
        .proxy
        .fail_next_on(CERTIFICATE, 1, Fault::Delay(Duration::from_secs(3)));
    let daemons = fleet.spawn_all();
    wait_for(
        "the certificate download",
        Duration::from_secs(60),
        &daemons,
        || fleet.proxy.requests_to(CERTIFICATE) >= 1,
    );
    let (owner, generation) = lease_holder(&fleet, cert);
    let victim = fleet.index_of(&owner);
    daemons[victim].signal(Signal::STOP);

    // Past the lease's expiry another node takes the lease over and publishes.
    wait_for(
        "another node's version",
        Duration::from_secs(60),
        &daemons,
        || fleet.sql("SELECT count(*) FROM certkeeper_versions") == "1",
    );
    let (thief, stolen_generation) = lease_holder(&fleet, cert);
    assert_ne!(thief, owner, "the lease was taken over");
    assert!(
        stolen_generation.parse::<u64>().unwrap() > generation.parse::<u64>().unwrap(),
        "a newer generation: {stolen_generation} after {generation}"
    );
    daemons[victim].signal(Signal::CONT);

    // The resumed node gives up: its lease is lost, or its publish is fenced off.
    let paused = &daemons[victim];
    paused.wait_for_log(
        "the paused node to give up",
        Duration::from_secs(30),
        |log| log.contains("the fleet lease is lost") || log.contains("was taken over by"),
    );
    fleet.wait_in_sync(&certs, Duration::from_secs(60), &daemons);
    let versions = fleet.sql(&format!(
        "SELECT count(*) || ' ' || string_agg(published_by, ',') || ' ' || max(serial) \
         FROM certkeeper_versions WHERE lineage = '{cert}'"
    ));
    let fields: Vec<&str> = versions.split(' ').collect();
    assert_eq!(
        fields[..2],
        ["1", thief.as_str()],
        "one version, by {thief}"
    );
    let live = fleet.nodes[victim].live_serial(cert).unwrap();
    assert!(
        live.eq_ignore_ascii_case(fields[2].trim_start_matches('0'))
            || live.eq_ignore_ascii_case(fields[2]),
        "the paused node installed the fleet's certificate: {live} vs {}",
        fields[2]
    );
    assert_eq!(fleet.proxy.requests_to(NEW_ORDER), 1, "one newOrder");
    // Nothing of the paused node's was written after it lost the lease.
    assert_eq!(
        fleet.sql(&format!(
            "SELECT count(*) FROM certkeeper_state \
             WHERE lineage = '{cert}' AND updated_by = '{owner}' AND generation = {generation}"
        )),
        "0"
    );
    eprintln!(
        "paused node's log:\n{}",
        paused
            .log_text()
            .lines()
            .filter(|line| line.contains("lease") || line.contains("refused"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    stop(daemons);
}

#[test]
fn postgres_down_mid_run_loses_nothing_and_issues_nothing_twice() {
    let certs = names(10);
    // Validation takes 0-4 s, so certificates are still being issued when the database stops.
    let fleet = Fleet::start_with(
        3,
        &certs,
        "5s",
        PebbleOptions::default().env("PEBBLE_VA_SLEEPTIME", "5"),
    );
    let mut fleet = fleet;
    let mut daemons = fleet.spawn_all();
    wait_for("a first version", Duration::from_secs(90), &daemons, || {
        fleet.sql("SELECT count(*) FROM certkeeper_versions") != "0"
    });
    fleet.pg.stop();
    let published: usize = certs
        .iter()
        .filter(|cert| {
            fleet
                .nodes
                .iter()
                .any(|node| node.live_serial(cert).is_some())
        })
        .count();
    eprintln!(
        "database stopped with {published} of {} certificates installed somewhere",
        certs.len()
    );
    // Down for a minute: every 5 s lease lapses, every node notices and backs off, and the
    // daemons keep running meanwhile. An order whose challenge the CA was validating when its
    // holder lost the lease must not die of it: every node, its holder included, serves the
    // key authorisation until the fleet withdraws it.
    let up_again = Instant::now() + Duration::from_secs(60);
    while Instant::now() < up_again {
        for (node, daemon) in fleet.nodes.iter().zip(&mut daemons) {
            assert!(
                daemon.is_running(),
                "{} exited while the database was down:\n{}",
                node.name,
                daemon.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    fleet.pg.restart();
    let restarted = Instant::now();
    fleet.wait_in_sync(&certs, Duration::from_secs(180), &daemons);
    eprintln!("in sync {:?} after the restart", restarted.elapsed());
    assert_eq!(
        fleet.proxy.requests_to(NEW_ORDER),
        certs.len(),
        "one newOrder per certificate"
    );
    assert_eq!(
        fleet.sql("SELECT count(*) || ' ' || count(DISTINCT lineage) FROM certkeeper_versions"),
        format!("{0} {0}", certs.len()),
        "one version per certificate"
    );
    for cert in &certs {
        let keys: BTreeSet<Vec<u8>> = fleet
            .nodes
            .iter()
            .map(|node| node.live_key(cert).unwrap())
            .collect();
        assert_eq!(keys.len(), 1, "{cert}: one key on every node");
    }
    stop(daemons);
}

#[test]
fn a_node_with_another_fleet_key_exits_at_start_naming_the_fleet_key() {
    const OTHER_KEY: &str = "KysrKysrKysrKysrKysrKysrKysrKysrKysrKysrKys=";
    let certs = names(1);
    let fleet = Fleet::start(1, &certs, "10s");
    let daemons = fleet.spawn_all();
    wait_for(
        "the fleet's key check",
        Duration::from_secs(30),
        &daemons,
        || fleet.sql("SELECT count(*) FROM certkeeper_key_check") == "1",
    );
    let other_key = fleet.setup.dir.path().join("secrets").join("other.key");
    fs::write(&other_key, OTHER_KEY).unwrap();
    let node = fleet.extra_node("node-d", &other_key);
    let started = Instant::now();
    let mut stranger = node.spawn();
    let code = stranger.wait_exit(Duration::from_secs(30));
    let log = stranger.log_text();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "exited only after {:?}",
        started.elapsed()
    );
    // EX_CONFIG, as documented (README, docs/fleet.md): systemd does not restart it.
    assert_eq!(code, Some(78), "exit code:\n{log}");
    assert!(
        log.contains("fleet key"),
        "the error names the fleet key:\n{log}"
    );
    assert!(
        !log.contains(OTHER_KEY) && !log.contains(FLEET_KEY),
        "no key printed:\n{log}"
    );
    assert_eq!(
        fleet.sql("SELECT count(*) FROM certkeeper_nodes WHERE name = 'node-d'"),
        "0",
        "the stranger did not join"
    );
    eprintln!("exit {code:?}: {log}");
    stop(daemons);
}

#[test]
fn a_failure_is_recorded_in_the_fleet_and_its_backoff_holds_every_node() {
    let certs = names(1);
    let fleet = Fleet::start(3, &certs, "5s");
    // The CA refuses every order (a problem a human must fix).
    fleet.proxy.set_on(
        NEW_ORDER,
        Fault::Status {
            code: 400,
            problem: "rejectedIdentifier",
            retry_after: None,
        },
    );
    let daemons = fleet.spawn_all();
    // The attempt's outcome is the fleet's: its state row holds the failure streak the
    // backoff is counted from.
    let state = || {
        fleet.sql(
            "SELECT coalesce(state->'attempts'->>'consecutive_failures', '') || ' ' || \
             coalesce(state->'attempts'->>'last_failure_at_unix', '') \
             FROM certkeeper_state WHERE lineage = 'site01'",
        )
    };
    wait_for(
        "a failure in the fleet's state",
        Duration::from_secs(60),
        &daemons,
        || {
            state()
                .split_once(' ')
                .is_some_and(|(failures, at)| failures >= "1" && !at.is_empty())
        },
    );
    // Within the first failure's backoff (retry_initial 2s, doubled per failure), the three
    // nodes together stay near one node's pace: far fewer orders than three nodes each
    // retrying on its own would place.
    let started = fleet.proxy.requests_to(NEW_ORDER);
    std::thread::sleep(Duration::from_secs(12));
    let placed = fleet.proxy.requests_to(NEW_ORDER) - started;
    eprintln!("REPORT fleet backoff: {placed} newOrder in 12 s from 3 nodes");
    assert!(
        placed <= 4,
        "{placed} newOrder in 12 s from 3 nodes sharing one backoff:\n{}",
        logs(&daemons)
    );
    assert!(
        fleet
            .nodes
            .iter()
            .all(|node| node.live_serial("site01").is_none()),
        "nothing issued"
    );
    stop(daemons);
}

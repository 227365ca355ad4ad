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
use std::path::PathBuf;
use std::time::{Duration, Instant};

use postgres::PgCluster;
use rustix::process::Signal;
use support::proxy::FaultProxy;
use support::roundrobin::RoundRobin;
use support::{Daemon, PebbleOptions, Setup};

/// Pebble's newOrder path.
const NEW_ORDER: &str = "/order-plz";
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

/// The fleet: Pebble behind the counting proxy, PostgreSQL, and `count` nodes configured for
/// `certs`, Pebble's HTTP-01 port spread over their listeners.
struct Fleet {
    setup: Setup,
    proxy: FaultProxy,
    pg: PgCluster,
    nodes: Vec<Node>,
    _round_robin: RoundRobin,
}

impl Fleet {
    fn start(count: usize, certs: &[String], lease: &str) -> Self {
        // Pebble refuses no nonce, so every newOrder request at the proxy is one order.
        let setup = Setup::new(PebbleOptions::default().env("PEBBLE_WFE_NONCEREJECT", "0"));
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
        let nodes: Vec<Node> = (0..count)
            .map(|i| {
                let name = format!("node-{}", char::from(b'a' + u8::try_from(i).unwrap()));
                let dir = setup.dir.path().join(&name);
                fs::create_dir_all(&dir).unwrap();
                let node = Node {
                    config: dir.join("certkeeper.toml"),
                    state_dir: dir.join("state"),
                    http01_port: support::pebble::free_port(),
                    dir,
                    name,
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
                    database = postgres::DATABASE,
                    password = password.display(),
                    key = key.display(),
                    name = node.name,
                    directory = proxy.directory_url(),
                    hmac = setup.hmac_file.display(),
                    root = setup.pebble.tls_ca_file.display(),
                );
                for cert in certs {
                    text.push_str(&format!(
                        "\n[[certificate]]\nname = \"{cert}\"\nca = \"pebble\"\ndomains = [\"{cert}.example.com\"]\n\
                         deploy_hook = \"echo {cert} >> {deploys}\"\n",
                        deploys = node.dir.join("deploys").display()
                    ));
                }
                fs::write(&node.config, text).unwrap();
                node
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
            _round_robin: round_robin,
        }
    }

    /// Wait until every node has every one of `certs` live with the same serial and key.
    fn wait_in_sync(&self, certs: &[String], timeout: Duration, daemons: &[Daemon]) {
        let deadline = Instant::now() + timeout;
        loop {
            let behind: Vec<String> = certs
                .iter()
                .filter(|cert| {
                    let serials: BTreeSet<Option<String>> = self
                        .nodes
                        .iter()
                        .map(|node| node.live_serial(cert))
                        .collect();
                    serials.len() != 1 || serials.contains(&None)
                })
                .cloned()
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not in sync within {timeout:?}: {behind:?}\n{}",
                daemons
                    .iter()
                    .map(Daemon::log_text)
                    .collect::<Vec<_>>()
                    .join("\n=========\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("site{i:02}")).collect()
}

#[test]
fn twenty_certificates_are_ordered_once_each_and_installed_on_every_node() {
    let certs = names(20);
    let fleet = Fleet::start(3, &certs, "10s");
    let daemons: Vec<Daemon> = fleet.nodes.iter().map(Node::spawn).collect();
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
    for daemon in &daemons {
        daemon.signal(Signal::TERM);
    }
    for mut daemon in daemons {
        assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    }
    let _ = &fleet.setup;
}

//! A throwaway PostgreSQL 15 cluster from Debian's `postgresql` package, on 127.0.0.1 and a free
//! port, with its data and socket directory in a temporary directory.
//!
//! The server refuses to run as root (CI runs as root), so when we are root `initdb`, `postgres`,
//! `pg_ctl` and `psql` run as the `postgres` system user through `setpriv`, which execs them
//! directly (the child we hold is the postmaster, not a wrapper). The cluster has `fsync=off`,
//! scram-sha-256 password authentication on TCP for the role [`ROLE`] (so a wrong password is
//! refused), trust on its Unix socket for the superuser (the tests' back door via `psql`), and
//! TLS with a throwaway CA ([`PgCluster::ca_file`]) accepted on the same port. It can be stopped
//! and started again on the same port; `Drop` stops it.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The role the fleet logs in as, owner of the database [`DATABASE`].
pub const ROLE: &str = "certkeeper";
/// Its password.
pub const PASSWORD: &str = "fleet-test-password";
/// The database.
pub const DATABASE: &str = "certkeeper";

pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    pub ca_file: PathBuf,
    child: Option<Child>,
    /// `Some((uid, gid))` of `postgres` when we run as root.
    run_as: Option<(u32, u32)>,
    tls: bool,
}

fn require_postgres() {
    let initdb = Path::new(BIN).join("initdb");
    assert!(
        initdb.exists(),
        "{} is missing: install PostgreSQL 15 with `apt-get install postgresql` (tests/run.sh does)",
        initdb.display()
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("run id");
    assert!(out.status.success(), "id {args:?} failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

impl PgCluster {
    /// initdb, start with TLS, create [`ROLE`] with [`PASSWORD`] and its database.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// As [`PgCluster::start`], without TLS on the server (`ssl=off`).
    pub fn start_without_tls() -> Self {
        Self::start_with(false)
    }

    fn start_with(tls: bool) -> Self {
        require_postgres();
        let dir = tempfile::Builder::new()
            .prefix("certkeeper-pg-")
            .tempdir()
            .expect("tempdir");
        let run_as = (id(&["-u"]) == 0).then(|| (id(&["-u", "postgres"]), id(&["-g", "postgres"])));
        let mut cluster = Self {
            ca_file: dir.path().join("ca.pem"),
            dir,
            port: free_port(),
            child: None,
            run_as,
            tls,
        };
        cluster.write_tls();
        let pwfile = cluster.dir.path().join("superuser-password");
        fs::write(&pwfile, "superuser-not-used\n").expect("write pwfile");
        cluster.chown_all();
        let out = cluster
            .command("initdb")
            .args([
                "-N",
                "-A",
                "scram-sha-256",
                "--auth-local=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ])
            .arg("--pwfile")
            .arg(&pwfile)
            .arg("-D")
            .arg(cluster.data_dir())
            .output()
            .expect("run initdb");
        check("initdb", &out);
        cluster.start_server();
        cluster.psql_as_superuser(
            "postgres",
            &format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"),
        );
        cluster.psql_as_superuser(
            "postgres",
            &format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"),
        );
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for one of PostgreSQL's programs, as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let path = Path::new(BIN).join(program);
        match self.run_as {
            Some((uid, gid)) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn chown_all(&self) {
        let Some((uid, gid)) = self.run_as else {
            return;
        };
        for entry in fs::read_dir(self.dir.path()).expect("read tempdir") {
            let path = entry.expect("entry").path();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
        }
        std::os::unix::fs::chown(self.dir.path(), Some(uid), Some(gid)).expect("chown tempdir");
    }

    fn write_tls(&self) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "certkeeper test PostgreSQL CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        server_params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("address")));
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        fs::write(&self.ca_file, ca_cert.pem()).expect("write CA");
        fs::write(self.dir.path().join("server.crt"), server_cert.pem()).expect("write cert");
        let key_path = self.dir.path().join("server.key");
        fs::write(&key_path, server_key.serialize_pem()).expect("write key");
        // PostgreSQL refuses a key file that others can read.
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).expect("chmod key");
    }

    fn start_server(&mut self) {
        assert!(self.child.is_none(), "the cluster is already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open log");
        let dir = self.dir.path();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(dir)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .arg("-c")
            .arg(format!("ssl={}", if self.tls { "on" } else { "off" }))
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.join("server.crt").display()
            ))
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("server.key").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        self.wait_ready();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Wait until the server accepts connections (pg_isready), failing with its log.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().expect("try_wait")
            {
                panic!("postgres exited with {status}:\n{}", self.log());
            }
            let ready = Command::new(Path::new(BIN).join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-t",
                    "1",
                ])
                .status()
                .expect("run pg_isready");
            if ready.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready after 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the server (fast shutdown: connections are closed), keeping the data.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let out = self
            .command("pg_ctl")
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(self.data_dir())
            .output()
            .expect("run pg_ctl");
        if !out.status.success() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Freeze the server and every backend (SIGSTOP): connections stay open but nothing answers,
    /// as with a hung host or a partition that drops packets.
    pub fn pause(&self) {
        assert!(self.signal_all("-STOP"), "SIGSTOP the cluster");
    }

    /// Let a paused server go on (SIGCONT).
    pub fn resume(&self) {
        assert!(self.signal_all("-CONT"), "SIGCONT the cluster");
    }

    /// Send `signal` to the postmaster we started and its children, by process id.
    fn signal_all(&self, signal: &str) -> bool {
        let Some(child) = self.child.as_ref() else {
            return false;
        };
        let pid = child.id().to_string();
        let Ok(out) = Command::new("pgrep").args(["-P", &pid]).output() else {
            return false;
        };
        let mut pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        pids.push(pid);
        Command::new("kill")
            .arg(signal)
            .args(&pids)
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Start the stopped server again on the same port.
    pub fn restart(&mut self) {
        self.start_server();
    }

    /// The URL for [`ROLE`] without TLS (the password is given separately).
    pub fn url(&self) -> String {
        format!(
            "postgres://{ROLE}@127.0.0.1:{}/{DATABASE}?sslmode=disable",
            self.port
        )
    }

    /// The URL for [`ROLE`] with verified TLS.
    pub fn tls_url(&self) -> String {
        format!(
            "postgres://{ROLE}@127.0.0.1:{}/{DATABASE}?sslmode=require",
            self.port
        )
    }

    /// Run SQL as the superuser over the Unix socket in [`DATABASE`]; tuples only, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_as_superuser(DATABASE, sql)
    }

    fn psql_as_superuser(&self, database: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        check(&format!("psql {sql:?}"), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // A test that failed while the cluster was paused must not leave frozen backends.
        self.signal_all("-CONT");
        if let Some(mut child) = self.child.take() {
            let _ = self
                .command("pg_ctl")
                .args(["stop", "-w", "-m", "immediate", "-D"])
                .arg(self.data_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

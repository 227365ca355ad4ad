//! A real systemd-journald of the test's own, and processes started under it the way systemd
//! starts a service, so the tests read back with `journalctl -o json` exactly what an operator
//! would see.
//!
//! Each [`Journald`] runs in a private mount namespace (`unshare --mount`) where a temporary
//! directory is bind-mounted over `/run`: its sockets (`/run/systemd/journal/{socket,stdout}`)
//! and its volatile journal (`/run/log/journal`) live in that directory, and a drop-in there
//! (`/run/systemd/journald.conf.d`) keeps it volatile, away from the kernel log and from
//! syslog. So tests and test binaries each have their own journald, in parallel, and neither
//! disturb nor see a journald the machine already runs (CI runners often have one).
//! tracing-journald always sends to `/run/systemd/journal/socket`, so a process that logs
//! to this journald joins the namespace (`nsenter --mount`, which execs in place: the PID is
//! the process's own). `journalctl --directory` reads the files from outside.
//!
//! [`Journald::command`] connects stdout and stderr as systemd does for
//! `StandardOutput=journal`: a stream socket connected to `/run/systemd/journal/stdout`, opened
//! with the stream header, and `JOURNAL_STREAM=<dev>:<inode>` of that socket in the
//! environment. One difference: systemd connects from the forked service process, this
//! harness from the test, so lines written to the stream (not the native entries) carry the
//! test's `_PID`. Both are told apart by `_TRANSPORT` (`stdout` or `journal`).
//!
//! Needs root (mount namespaces) and Debian's `systemd` package; a missing journald is a loud
//! failure naming the install command.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const JOURNALD: &str = "/lib/systemd/systemd-journald";
const INSTALL: &str = "apt-get install -y systemd";

/// What the private journald is told beyond its defaults (read from `/etc` as well; this
/// drop-in comes last).
const CONF: &str = "[Journal]
Storage=volatile
ReadKMsg=no
Audit=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
";

/// A systemd-journald of this test's own, stopped (SIGTERM) and removed when dropped.
pub struct Journald {
    /// Mounted over `/run` in the journald's mount namespace.
    run: tempfile::TempDir,
    child: Child,
}

impl Journald {
    pub fn start() -> Self {
        assert!(
            Path::new(JOURNALD).exists(),
            "{JOURNALD} is missing: the journald tests need a real systemd-journald; install it with `{INSTALL}`"
        );
        for (tool, package) in [
            ("journalctl", "systemd"),
            ("unshare", "util-linux"),
            ("nsenter", "util-linux"),
        ] {
            assert!(
                Command::new(tool)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success()),
                "{tool} is missing: install it with `apt-get install -y {package}`"
            );
        }
        assert!(
            rustix::process::geteuid().is_root(),
            "the journald tests start systemd-journald in a private mount namespace, which needs root"
        );

        let run = tempfile::tempdir().unwrap();
        fs::create_dir_all(run.path().join("systemd/journal")).unwrap();
        fs::create_dir_all(run.path().join("systemd/journald.conf.d")).unwrap();
        fs::write(
            run.path()
                .join("systemd/journald.conf.d/zz-certkeeper-tests.conf"),
            CONF,
        )
        .unwrap();
        // journald says READY=1 on $NOTIFY_SOCKET once it listens, as under systemd. The
        // path is outside /run, so the same inside its namespace.
        let notify_path = run.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = fs::File::create(run.path().join("journald.log")).unwrap();

        // `unshare` and `sh` exec in place: the child is journald itself.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount --bind "$0" /run && exec "$1""#)
            .arg(run.path())
            .arg(JOURNALD)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut journald = Self { run, child };
        journald.wait_ready(&notify);
        journald
    }

    fn wait_ready(&mut self, notify: &UnixDatagram) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = vec![0u8; 4096];
        loop {
            if let Ok(n) = notify.recv(&mut buf)
                && String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|line| line == "READY=1")
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("systemd-journald exited ({status}):\n{}", self.own_log());
            }
            assert!(
                Instant::now() < deadline,
                "systemd-journald did not say READY=1 within 20 s:\n{}",
                self.own_log()
            );
        }
    }

    /// journald's own stderr, for failure messages.
    fn own_log(&self) -> String {
        fs::read_to_string(self.run.path().join("journald.log")).unwrap_or_default()
    }

    /// Where journald keeps its (volatile) journal files, for `journalctl --directory`.
    pub fn journal_dir(&self) -> PathBuf {
        self.run.path().join("log/journal")
    }

    /// `program` as systemd would start it with `StandardOutput=journal`: stdout and stderr
    /// connected to journald's stream socket under `identifier` (priority info, level
    /// prefixes parsed), `JOURNAL_STREAM` naming that socket, in journald's mount namespace
    /// so that `/run/systemd/journal/socket` is this journald. Add arguments and spawn; the
    /// child's PID is `program`'s.
    pub fn command(&self, identifier: &str, program: impl AsRef<OsStr>) -> Command {
        let stream = UnixStream::connect(self.run.path().join("systemd/journal/stdout")).unwrap();
        // The header systemd writes (src/core/execute.c, connect_logger_as): identifier, unit
        // id, priority, level_prefix, forward_to_syslog, forward_to_kmsg, forward_to_console.
        write!(&stream, "{identifier}\n\n6\n1\n0\n0\n0\n").unwrap();
        stream.shutdown(std::net::Shutdown::Read).unwrap();
        let stat = rustix::fs::fstat(&stream).unwrap();
        let journal_stream = format!("{}:{}", stat.st_dev, stat.st_ino);

        let mut command = Command::new("nsenter");
        command
            .arg(format!("--mount=/proc/{}/ns/mnt", self.child.id()))
            .arg(format!(
                "--wd={}",
                std::env::current_dir().unwrap().display()
            ))
            .arg("--")
            .arg(program)
            .env("JOURNAL_STREAM", journal_stream)
            .stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(stream.try_clone().unwrap())))
            .stderr(Stdio::from(OwnedFd::from(stream)));
        command
    }

    /// `journalctl --output=json` over this journal with `args` (matches such as `_PID=42`
    /// or `CERT=www`, options such as `--priority=err`): its entries, oldest first.
    pub fn entries(&self, args: &[&str]) -> Vec<Entry> {
        let output = Command::new("journalctl")
            .arg("--directory")
            .arg(self.journal_dir())
            .args(["--output=json", "--all", "--no-pager", "--quiet"])
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("journalctl: {err}; install it with `{INSTALL}`"));
        assert!(
            output.status.success(),
            "journalctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| Entry(serde_json::from_str(line).unwrap()))
            .collect()
    }

    /// Poll `journalctl` with `args` until `done` holds for its entries; fail after `timeout`
    /// showing them. Returns the entries that satisfied `done`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        args: &[&str],
        done: impl Fn(&[Entry]) -> bool,
    ) -> Vec<Entry> {
        let deadline = Instant::now() + timeout;
        loop {
            let entries = self.entries(args);
            if done(&entries) {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; journalctl {args:?}:\n{}",
                show(&entries)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One journal entry as `journalctl -o json` prints it: field name to value, where a value is
/// a string, an array of byte values (not UTF-8), or an array of those (a field given more
/// than once).
pub struct Entry(pub serde_json::Map<String, serde_json::Value>);

impl Entry {
    /// Every value of `field`, as text.
    pub fn values(&self, field: &str) -> Vec<String> {
        fn text(value: &serde_json::Value) -> Option<String> {
            match value {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Array(bytes) => bytes
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
                _ => None,
            }
        }
        match self.0.get(field) {
            None => Vec::new(),
            Some(value) => text(value).map_or_else(
                || match value {
                    serde_json::Value::Array(values) => values.iter().filter_map(text).collect(),
                    _ => Vec::new(),
                },
                |single| vec![single],
            ),
        }
    }

    /// The value of a field the entry has once; `None` when it has none (and a failure when it
    /// has several).
    pub fn field(&self, field: &str) -> Option<String> {
        let mut values = self.values(field);
        assert!(
            values.len() <= 1,
            "{field} given {} times: {self}",
            values.len()
        );
        values.pop()
    }

    pub fn message(&self) -> String {
        self.field("MESSAGE").unwrap_or_default()
    }

    pub fn priority(&self) -> String {
        self.field("PRIORITY").unwrap_or_default()
    }

    /// The names of the fields the sender chose (not journald's trusted `_...` ones nor
    /// journalctl's `__...` addresses).
    pub fn sender_fields(&self) -> impl Iterator<Item = &str> {
        self.0
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with('_'))
    }
}

/// One line per entry: priority, message, then the sender's other fields.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (priority, message) = (self.values("PRIORITY"), self.values("MESSAGE"));
        write!(f, "<{}> {}", priority.join(","), message.join(" | "))?;
        for name in self.sender_fields() {
            if name != "MESSAGE" && name != "PRIORITY" {
                write!(f, " {name}={:?}", self.values(name))?;
            }
        }
        for name in ["_PID", "_TRANSPORT"] {
            write!(f, " {name}={:?}", self.values(name))?;
        }
        Ok(())
    }
}

/// Entries one per line, for failure messages.
pub fn show(entries: &[Entry]) -> String {
    entries.iter().map(|e| format!("{e}\n")).collect()
}

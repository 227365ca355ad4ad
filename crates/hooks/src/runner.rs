//! Running one hook: spawn, capture, time out, kill the process group.
//!
//! Each hook is the leader of a new process group (`process_group(0)`), so the timeout can
//! reach everything it started: `kill(-pgid, SIGTERM)`, then, after the grace period, SIGKILL
//! to whatever is left in the group. A hook that is still running when its [`run`] future is
//! dropped (the daemon's hard cancellation) gets the same SIGKILL from a guard, so no hook
//! survives certkeeper by accident.
//!
//! The timeout covers the hook's main process. When that exits by itself, whatever it left
//! in its group keeps running (it may be a daemon the hook started on purpose), and its
//! output is read for at most [`DRAIN_AFTER_EXIT`] more, so a background child holding the
//! pipe open cannot stall the runner.
//!
//! The environment is cleared and rebuilt: the variables in [`PASSED_THROUGH`] are copied
//! from certkeeper's own environment, then the hook's contract variables are added. Hooks do
//! not see `NOTIFY_SOCKET` (a hook calling `systemd-notify` would speak for certkeeper), the
//! credentials directory, or variables an EAB key may be stored in.
//!
//! Output is read line by line from stdout and stderr concurrently and logged at once, each
//! line as one event with the hook's label, so lines of different hooks or streams are never
//! interleaved unlabeled. At most [`MAX_LINES`] lines (both streams together) of at most
//! [`MAX_LINE_BYTES`] bytes are kept; the rest is still read, so the hook never blocks on a
//! full pipe, and counted.

use std::fmt;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use certkeeper_core::{Hook, HookCommand};
use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::HookError;

/// Between SIGTERM and SIGKILL after a timeout.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// Output lines kept (and logged) per run, stdout and stderr together.
pub const MAX_LINES: usize = 200;
/// Longest line kept; longer lines are cut here and marked truncated.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// How long output is still read after the main process exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);
/// How often the group is checked while it is given time to exit after SIGTERM.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// Variables hooks inherit from certkeeper's environment; everything else is dropped.
pub const PASSED_THROUGH: [&str; 12] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
];
/// `PATH` when certkeeper has none, so argv hooks such as `systemctl` are found.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SHELL: &str = "/bin/sh";

/// One hook to run.
#[derive(Debug, Clone, Copy)]
pub struct HookRun<'a> {
    /// How the hook is named in logs and errors: `deploy:www`, `reload:nginx`,
    /// `deploy:dir/50-nginx`.
    pub label: &'a str,
    pub hook: &'a Hook,
    /// Contract variables ([`certkeeper_core::deploy_env`] and friends).
    pub env: &'a [(String, String)],
    /// Between SIGTERM and SIGKILL after a timeout; [`KILL_GRACE`] unless a test is in a
    /// hurry.
    pub kill_grace: Duration,
}

impl<'a> HookRun<'a> {
    #[must_use]
    pub fn new(label: &'a str, hook: &'a Hook, env: &'a [(String, String)]) -> Self {
        Self {
            label,
            hook,
            env,
            kill_grace: KILL_GRACE,
        }
    }
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One kept line of a hook's output, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: Stream,
    /// The line, lossily decoded as UTF-8.
    pub text: String,
    /// The line was longer than [`MAX_LINE_BYTES`] and was cut.
    pub truncated: bool,
}

/// How a hook ended. A hook that ran and failed is an outcome, not an error.
#[derive(Debug, Clone)]
pub struct HookOutcome {
    /// Exited with status 0 before its timeout.
    pub success: bool,
    /// Exit code, when it exited (rather than being killed by a signal).
    pub exit: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// It ran past its timeout and was killed.
    pub timed_out: bool,
    /// Lines kept in `output` (and logged).
    pub output_lines: usize,
    /// Lines beyond [`MAX_LINES`], read and dropped.
    pub dropped_lines: usize,
    /// From spawn to exit.
    pub duration: Duration,
    /// The kept lines, in the order they were read.
    pub output: Vec<OutputLine>,
    /// The timeout it ran with, for messages.
    pub timeout: Duration,
}

impl fmt::Display for HookOutcome {
    /// `succeeded`, `exited with code 1`, `was killed by signal 9`, `timed out after 60s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timed_out {
            write!(f, "timed out after {}s", self.timeout.as_secs_f64())
        } else if self.success {
            f.write_str("succeeded")
        } else if let Some(code) = self.exit {
            write!(f, "exited with code {code}")
        } else if let Some(signal) = self.signal {
            write!(f, "was killed by signal {signal}")
        } else {
            f.write_str("failed")
        }
    }
}

/// Run a hook to completion (or to its timeout), logging its output under its label.
///
/// # Errors
/// [`HookError::Spawn`] when the program cannot be started (not found, not executable),
/// naming it; [`HookError::Wait`] when waiting for it fails.
pub async fn run(run: HookRun<'_>) -> Result<HookOutcome, HookError> {
    let label = run.label;
    let mut command = command(run.hook, run.env);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|source| HookError::Spawn {
        label: label.to_owned(),
        program: run.hook.command.program().to_owned(),
        source,
    })?;
    // The child leads its own group, so its pid is the group id. `id()` is only `None` after
    // the child was reaped, which has not happened yet.
    let mut group = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw),
    };
    tracing::debug!(
        hook = label,
        program = run.hook.command.program(),
        "hook started"
    );

    let capture = Mutex::new(Capture::default());
    let (ended, duration) = {
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let reading = async {
            tokio::join!(
                read_lines(stdout, Stream::Stdout, label, &capture),
                read_lines(stderr, Stream::Stderr, label, &capture),
            );
        };
        tokio::pin!(reading);
        let supervising = supervise(&mut child, group.pgid, run.hook.timeout, run.kill_grace);
        tokio::pin!(supervising);

        let mut reading_done = false;
        let ended = loop {
            tokio::select! {
                ended = &mut supervising => break ended,
                () = &mut reading, if !reading_done => reading_done = true,
            }
        };
        let duration = started.elapsed();
        if ended.is_ok() {
            // The main process is gone (or was killed with its group): nothing to clean up.
            // When waiting failed, the guard still kills the group below.
            group.pgid = None;
        }
        if !reading_done {
            // Background children of the hook may hold the pipes open; stop listening soon.
            let _still_open = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut reading).await;
        }
        (ended, duration)
    };
    let (status, timed_out) = ended.map_err(|source| HookError::Wait {
        label: label.to_owned(),
        source,
    })?;

    let capture = capture.into_inner().unwrap_or_else(PoisonError::into_inner);
    if capture.dropped > 0 {
        tracing::warn!(
            hook = label,
            dropped_lines = capture.dropped,
            "hook printed more than {MAX_LINES} lines; the rest was not logged"
        );
    }
    let outcome = HookOutcome {
        success: status.success() && !timed_out,
        exit: status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        timed_out,
        output_lines: capture.lines.len(),
        dropped_lines: capture.dropped,
        duration,
        output: capture.lines,
        timeout: run.hook.timeout,
    };
    tracing::debug!(hook = label, duration = ?outcome.duration, "hook {outcome}");
    Ok(outcome)
}

/// The process to start: argv directly, or the line through `/bin/sh -c`.
fn command(hook: &Hook, env: &[(String, String)]) -> Command {
    let mut command = match &hook.command {
        HookCommand::Argv(argv) => {
            let (program, args) = argv.split_first().map_or(("", &[][..]), |(p, a)| (p, a));
            let mut command = Command::new(program);
            command.args(args);
            command
        }
        HookCommand::Shell(line) => {
            let mut command = Command::new(SHELL);
            command.arg("-c").arg(line);
            command
        }
    };
    command.env_clear();
    for name in PASSED_THROUGH {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        command.env("PATH", DEFAULT_PATH);
    }
    command
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    command
}

/// Wait for the main process; past `timeout`, SIGTERM the group, give it `grace` to go
/// (all of it, not only the main process), then SIGKILL what is left. Returns the main
/// process's status and whether it timed out.
async fn supervise(
    child: &mut Child,
    pgid: Option<Pid>,
    timeout: Duration,
    grace: Duration,
) -> io::Result<(ExitStatus, bool)> {
    if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
        return Ok((status?, false));
    }
    signal_group(pgid, Signal::TERM);
    let deadline = Instant::now() + grace;
    let mut status = None;
    loop {
        if status.is_none() {
            status = child.try_wait()?;
        }
        // Once the main process is reaped, the group exists as long as any member does.
        if status.is_some() && !group_alive(pgid) {
            break;
        }
        if Instant::now() >= deadline {
            signal_group(pgid, Signal::KILL);
            // The main process at least, should its group be unknown.
            let _already_gone = child.start_kill();
            break;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
    let status = match status {
        Some(status) => status,
        None => child.wait().await?,
    };
    Ok((status, true))
}

fn signal_group(pgid: Option<Pid>, signal: Signal) {
    if let Some(pgid) = pgid {
        // ESRCH: the group is already gone, which is what we want.
        let _gone = kill_process_group(pgid, signal);
    }
}

fn group_alive(pgid: Option<Pid>) -> bool {
    // EPERM means a member exists that we may not signal (a setuid program): alive.
    pgid.is_some_and(|pgid| match test_kill_process_group(pgid) {
        Ok(()) => true,
        Err(err) => err == rustix::io::Errno::PERM,
    })
}

/// SIGKILLs the hook's process group if the run is abandoned while the hook still runs.
#[derive(Debug)]
struct GroupGuard {
    pgid: Option<Pid>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.pgid, Signal::KILL);
    }
}

#[derive(Debug, Default)]
struct Capture {
    lines: Vec<OutputLine>,
    dropped: usize,
}

impl Capture {
    fn add(&mut self, label: &str, line: OutputLine) {
        if self.lines.len() >= MAX_LINES {
            self.dropped += 1;
            return;
        }
        let stream = line.stream.as_str();
        if line.truncated {
            tracing::info!(hook = label, stream, truncated = true, "{}", line.text);
        } else {
            tracing::info!(hook = label, stream, "{}", line.text);
        }
        self.lines.push(line);
    }
}

/// Read `pipe` to its end, splitting lines and cutting long ones, into `capture`.
async fn read_lines<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    stream: Stream,
    label: &str,
    capture: &Mutex<Capture>,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buffer = vec![0_u8; 8 * 1024];
    let mut line = LineBuffer::default();
    loop {
        let read = match pipe.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::debug!(hook = label, stream = stream.as_str(), error = %err, "cannot read hook output");
                break;
            }
        };
        let mut chunk = &buffer[..read];
        while let Some(end) = chunk.iter().position(|&byte| byte == b'\n') {
            line.push(&chunk[..end]);
            let complete = line.take(stream);
            lock(capture).add(label, complete);
            chunk = &chunk[end + 1..];
        }
        line.push(chunk);
    }
    if !line.is_empty() {
        let last = line.take(stream);
        lock(capture).add(label, last);
    }
}

fn lock(capture: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    // Only `Capture::add` holds the lock and it cannot leave the data inconsistent.
    capture.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The line being assembled, at most [`MAX_LINE_BYTES`] of it.
#[derive(Debug, Default)]
struct LineBuffer {
    bytes: Vec<u8>,
    truncated: bool,
}

impl LineBuffer {
    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES - self.bytes.len();
        if bytes.len() > room {
            self.bytes.extend_from_slice(&bytes[..room]);
            self.truncated = true;
        } else {
            self.bytes.extend_from_slice(bytes);
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.truncated
    }

    fn take(&mut self, stream: Stream) -> OutputLine {
        let mut bytes = std::mem::take(&mut self.bytes);
        if !self.truncated && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        OutputLine {
            stream,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            truncated: std::mem::take(&mut self.truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_marked() {
        let mut line = LineBuffer::default();
        line.push(&[b'a'; MAX_LINE_BYTES - 1]);
        line.push(b"bc");
        line.push(b"more");
        let cut = line.take(Stream::Stdout);
        assert_eq!(cut.text.len(), MAX_LINE_BYTES);
        assert!(cut.text.ends_with("ab"));
        assert!(cut.truncated);
        assert!(line.is_empty());

        line.push(b"dos line\r");
        let dos = line.take(Stream::Stderr);
        assert_eq!(
            dos,
            OutputLine {
                stream: Stream::Stderr,
                text: "dos line".to_owned(),
                truncated: false
            }
        );
    }

    #[test]
    fn outcomes_read_as_sentences() {
        let outcome = HookOutcome {
            success: false,
            exit: Some(1),
            signal: None,
            timed_out: false,
            output_lines: 0,
            dropped_lines: 0,
            duration: Duration::ZERO,
            output: Vec::new(),
            timeout: Duration::from_secs(60),
        };
        assert_eq!(outcome.to_string(), "exited with code 1");
        let timed_out = HookOutcome {
            timed_out: true,
            exit: None,
            signal: Some(15),
            ..outcome.clone()
        };
        assert_eq!(timed_out.to_string(), "timed out after 60s");
        let killed = HookOutcome {
            exit: None,
            signal: Some(9),
            ..outcome.clone()
        };
        assert_eq!(killed.to_string(), "was killed by signal 9");
        let fine = HookOutcome {
            success: true,
            exit: Some(0),
            ..outcome
        };
        assert_eq!(fine.to_string(), "succeeded");
    }
}

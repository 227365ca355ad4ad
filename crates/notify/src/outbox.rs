//! The outbox: every notice is on disk before it is sent, and stays there until a target
//! took it.
//!
//! Layout: `DIR/TARGET/ID.json`, one file per notice per target, so targets never share a
//! file and a target's backlog is one directory listing. A file is written to a temporary
//! name in the same directory, created with mode `0600` (a notice may carry an error text
//! the operator would not publish), fsynced, renamed into place, and the directory fsynced:
//! after [`Outbox::enqueue`] returns the notice survives a crash. Directories are created
//! `0700`, so nobody else can plant a file in them. Delivery removes the file;
//! a failed attempt rewrites it with the attempt count, the error and the next try, backing
//! off from [`RETRY_INITIAL`] to [`RETRY_MAX`]. Delivery is therefore at least once: a crash
//! between a target's answer and the removal sends that notice again, which beats losing it.
//! `DIR/TARGET/.last-digest` remembers when the target's daily digest was last queued, so a
//! restart does not send a second one the same day.
//!
//! Every method is a few small file operations; callers on the runtime call them directly,
//! as the engine does with the store's state files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::NotifyError;
use crate::notice::{Notice, rfc3339};

/// The wait after the first failed attempt.
pub const RETRY_INITIAL: Duration = Duration::from_secs(60);
/// The longest wait between attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(3600);

const FILE_MODE: u32 = 0o600;
/// In a target's directory: when its last digest was queued.
const LAST_DIGEST: &str = ".last-digest";
const DIR_MODE: u32 = 0o700;

/// Distinguishes notices made in the same millisecond by this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// One notice waiting for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The file name without `.json`: sortable by creation time.
    pub id: String,
    pub target: String,
    pub notice: Notice,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be tried before this.
    #[serde(with = "rfc3339")]
    pub next_try: SystemTime,
    /// The error of the last attempt (never holds secrets).
    pub last_error: Option<String>,
}

/// The wait before the next try after `attempts` failed ones: [`RETRY_INITIAL`], doubling,
/// at most [`RETRY_MAX`].
#[must_use]
pub fn retry_delay(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    RETRY_INITIAL.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// The outbox directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// The outbox in `dir` (created `0700` when missing), typically `state_dir/outbox`.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, NotifyError> {
        let dir = dir.into();
        create_dir(&dir)?;
        Ok(Self { dir })
    }

    /// The directory the outbox lives in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queue `notice` for `target`, due at once.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn enqueue(&self, target: &str, notice: &Notice) -> Result<Entry, NotifyError> {
        let target_dir = self.dir.join(target);
        create_dir(&target_dir)?;
        let millis = notice
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let subject = notice.certificate.as_deref().unwrap_or("all");
        let entry = loop {
            let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let id = format!(
                "{millis:014}-{:05}-{}-{}-{subject}",
                sequence % 100_000,
                std::process::id(),
                notice.event
            );
            if !target_dir.join(format!("{id}.json")).exists() {
                break Entry {
                    id,
                    target: target.to_owned(),
                    notice: notice.clone(),
                    attempts: 0,
                    next_try: notice.time,
                    last_error: None,
                };
            }
        };
        self.write(&entry)?;
        Ok(entry)
    }

    /// Every entry, in creation order (oldest first). Files that cannot be read or parsed are
    /// logged and left alone, so one bad file never blocks the rest.
    ///
    /// # Errors
    /// When the outbox directory cannot be listed.
    pub fn pending(&self) -> Result<Vec<Entry>, NotifyError> {
        let mut entries = Vec::new();
        for target in read_dir(&self.dir)? {
            if target.is_dir() {
                entries.extend(self.read_target(&target)?);
            }
        }
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    /// The entries of `target`, in creation order.
    ///
    /// # Errors
    /// When the target's directory exists but cannot be listed.
    pub fn pending_for(&self, target: &str) -> Result<Vec<Entry>, NotifyError> {
        let mut entries = self.read_target(&self.dir.join(target))?;
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    /// The entries due at `now`, in creation order.
    ///
    /// # Errors
    /// See [`Outbox::pending`].
    pub fn due(&self, now: SystemTime) -> Result<Vec<Entry>, NotifyError> {
        Ok(self
            .pending()?
            .into_iter()
            .filter(|entry| entry.next_try <= now)
            .collect())
    }

    /// The entries of `target` due at `now`, in creation order.
    ///
    /// # Errors
    /// See [`Outbox::pending_for`].
    pub fn due_for(&self, target: &str, now: SystemTime) -> Result<Vec<Entry>, NotifyError> {
        Ok(self
            .pending_for(target)?
            .into_iter()
            .filter(|entry| entry.next_try <= now)
            .collect())
    }

    /// `entry` was delivered: remove it.
    ///
    /// # Errors
    /// When the file exists and cannot be removed.
    pub fn delivered(&self, entry: &Entry) -> Result<(), NotifyError> {
        let path = self.path_of(entry);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(&self.dir)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NotifyError::Outbox { path, source }),
        }
    }

    /// An attempt to deliver `entry` failed at `now` with `error`: count it and schedule the
    /// next try. Returns the entry as written.
    ///
    /// # Errors
    /// When the file cannot be rewritten.
    pub fn failed(
        &self,
        entry: &Entry,
        now: SystemTime,
        error: &str,
    ) -> Result<Entry, NotifyError> {
        let attempts = entry.attempts.saturating_add(1);
        let updated = Entry {
            attempts,
            next_try: now.checked_add(retry_delay(attempts)).unwrap_or(now),
            last_error: Some(error.to_owned()),
            ..entry.clone()
        };
        self.write(&updated)?;
        Ok(updated)
    }

    /// When a digest was last queued for `target`: `DIR/TARGET/.last-digest`, one RFC 3339
    /// instant (a dot file, so it is never taken for a notice). `None` when none was, or the
    /// file cannot be parsed (logged): then a digest is due, which beats never sending one.
    ///
    /// # Errors
    /// When the file exists and cannot be read.
    pub fn last_digest(&self, target: &str) -> Result<Option<SystemTime>, NotifyError> {
        let path = self.dir.join(target).join(LAST_DIGEST);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(NotifyError::Outbox { path, source }),
        };
        match crate::notice::parse_time::<serde_json::Error>(text.trim()) {
            Ok(at) => Ok(Some(at)),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "cannot read when the last digest was queued; one is sent now");
                Ok(None)
            }
        }
    }

    /// Remember that a digest was queued for `target` at `at` (atomically, `0600`).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn record_digest(&self, target: &str, at: SystemTime) -> Result<(), NotifyError> {
        let dir = self.dir.join(target);
        create_dir(&dir)?;
        let text = format!("{}\n", crate::notice::format_time(at));
        write_atomic(&dir, LAST_DIGEST, text.as_bytes())
    }

    fn path_of(&self, entry: &Entry) -> PathBuf {
        self.dir
            .join(&entry.target)
            .join(format!("{}.json", entry.id))
    }

    fn read_target(&self, dir: &Path) -> Result<Vec<Entry>, NotifyError> {
        let paths = match read_dir(dir) {
            Ok(paths) => paths,
            Err(NotifyError::Outbox { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new());
            }
            Err(err) => return Err(err),
        };
        let mut entries = Vec::new();
        for path in paths {
            let name = path.file_name().map(|name| name.to_string_lossy());
            let Some(name) = name else { continue };
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let read = fs::read(&path)
                .map_err(|err| err.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Entry>(&bytes).map_err(|err| err.to_string())
                });
            match read {
                Ok(entry) => entries.push(entry),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    error,
                    "cannot read a notice in the outbox; it is left there"
                ),
            }
        }
        Ok(entries)
    }

    /// Write `entry` atomically with mode `0600`.
    fn write(&self, entry: &Entry) -> Result<(), NotifyError> {
        let path = self.path_of(entry);
        let bytes = serde_json::to_vec_pretty(entry).map_err(|err| NotifyError::Outbox {
            path: path.clone(),
            source: io::Error::other(err),
        })?;
        let dir = path.parent().unwrap_or(&self.dir);
        write_atomic(dir, &format!("{}.json", entry.id), &bytes)
    }
}

/// Write `bytes` to `dir/name` atomically: a temporary dot file created `0600`, fsynced,
/// renamed into place, the directory fsynced.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), NotifyError> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{}.tmp", name.trim_start_matches('.')));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, &path)
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&temporary);
        return Err(NotifyError::Outbox { path, source });
    }
    sync_dir(dir)
}

fn create_dir(dir: &Path) -> Result<(), NotifyError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| NotifyError::Outbox {
            path: dir.to_owned(),
            source,
        })
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, NotifyError> {
    let error = |source| NotifyError::Outbox {
        path: dir.to_owned(),
        source,
    };
    fs::read_dir(dir)
        .map_err(error)?
        .map(|entry| entry.map(|entry| entry.path()).map_err(error))
        .collect()
}

fn sync_dir(dir: &Path) -> Result<(), NotifyError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| NotifyError::Outbox {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use certkeeper_core::Event;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour() {
        let minutes: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs() / 60).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn entries_live_until_delivered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Outbox::open(dir.path().join("outbox")).expect("open");
        let notice = Notice::new(Event::Failed, "web1", at(0));
        let first = outbox.enqueue("mail", &notice).expect("enqueue");
        let second = outbox.enqueue("mail", &notice).expect("enqueue");
        let other = outbox.enqueue("slack", &notice).expect("enqueue");
        assert_ne!(first.id, second.id);

        let file = dir
            .path()
            .join("outbox/mail")
            .join(format!("{}.json", first.id));
        let mode = fs::metadata(&file).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        assert_eq!(outbox.due(at(0)).expect("due").len(), 3);
        assert_eq!(
            outbox.due_for("mail", at(0)).expect("due"),
            [first.clone(), second.clone()]
        );

        let retried = outbox
            .failed(&first, at(10), "connection refused")
            .expect("failed");
        assert_eq!(retried.attempts, 1);
        assert_eq!(retried.next_try, at(70));
        assert_eq!(retried.last_error.as_deref(), Some("connection refused"));
        assert_eq!(
            outbox.due_for("mail", at(69)).expect("due"),
            std::slice::from_ref(&second)
        );

        // A new outbox over the same directory sees the same entries.
        let reopened = Outbox::open(dir.path().join("outbox")).expect("reopen");
        assert_eq!(
            reopened.pending().expect("pending"),
            [retried.clone(), second.clone(), other.clone()]
        );

        reopened.delivered(&second).expect("delivered");
        reopened
            .delivered(&second)
            .expect("delivered twice is fine");
        assert_eq!(reopened.pending_for("mail").expect("pending"), [retried]);
        assert!(outbox.pending_for("unknown").expect("none").is_empty());
    }

    #[test]
    fn the_last_digest_is_remembered_per_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Outbox::open(dir.path()).expect("open");
        assert_eq!(outbox.last_digest("mail").expect("read"), None);
        outbox.record_digest("mail", at(100)).expect("record");
        let reopened = Outbox::open(dir.path()).expect("reopen");
        assert_eq!(reopened.last_digest("mail").expect("read"), Some(at(100)));
        assert_eq!(reopened.last_digest("slack").expect("read"), None);
        let file = dir.path().join("mail").join(LAST_DIGEST);
        let mode = fs::metadata(&file).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // It is no notice.
        assert!(reopened.pending().expect("pending").is_empty());
        // A damaged file means "never": a digest is sent rather than never again.
        fs::write(&file, "yesterday").expect("write");
        assert_eq!(reopened.last_digest("mail").expect("read"), None);
    }

    #[test]
    fn unreadable_files_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Outbox::open(dir.path()).expect("open");
        let entry = outbox
            .enqueue("mail", &Notice::new(Event::Test, "web1", at(0)))
            .expect("enqueue");
        fs::write(dir.path().join("mail/broken.json"), "{").expect("write");
        fs::write(dir.path().join("mail/.partial.json.tmp"), "{").expect("write");
        assert_eq!(outbox.pending().expect("pending"), [entry]);
    }
}

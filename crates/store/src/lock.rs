//! The state directory lock: one running certkeeper per state directory.
//!
//! Two daemons renewing the same lineages would race on orders, versions and the `live/`
//! symlinks, so [`Store::lock`](crate::Store::lock) takes an exclusive, non-blocking
//! `flock(2)` on `state_dir/lock`. `flock` was chosen over a pid file because the kernel
//! drops it when the process dies, however it dies: no stale lock to clean up after a crash or
//! `kill -9`. The lock file is opened close-on-exec (std's default), so hooks spawned while the
//! lock is held do not inherit it. The holder's pid is written into the file purely as a hint
//! for the "locked" error message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::error::StoreError;

/// Proof that this process holds the state directory lock. Dropping it releases the lock
/// (closing the file descriptor releases the `flock`).
#[derive(Debug)]
pub struct StoreLock {
    path: PathBuf,
    _file: File,
}

impl StoreLock {
    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Take the exclusive lock on `path`, creating the file if needed.
pub(crate) fn acquire(path: &Path) -> Result<StoreLock, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|err| StoreError::io("open lock file", path, err))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(errno) if errno == Errno::WOULDBLOCK || errno == Errno::AGAIN => {
            return Err(StoreError::Locked {
                path: path.to_path_buf(),
                holder: read_holder(&mut file),
            });
        }
        Err(errno) => {
            return Err(StoreError::io("lock", path, errno.into()));
        }
    }
    // Best effort: the pid is only a hint for the error message of a second instance.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(StoreLock {
        path: path.to_path_buf(),
        _file: file,
    })
}

fn read_holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

//! The state directory lock: one running certkeeper per state directory.
//!
//! Two daemons renewing the same lineages would race on orders, versions and the `live/`
//! symlinks, so [`Store::lock`](crate::Store::lock) takes an exclusive, non-blocking
//! `flock(2)` on `state_dir/lock`. `flock` was chosen over a pid file because the kernel
//! drops it when the process dies, however it dies: no stale lock to clean up after a crash or
//! `kill -9`. The lock file is opened close-on-exec, so hooks spawned while the lock is held
//! do not inherit it. The holder's pid is written into the file purely as a hint for the
//! "locked" error message.
//!
//! Writing that pid truncates the file, so the file must be certkeeper's own: it is opened
//! relative to the state directory's descriptor with `O_NOFOLLOW` (a symlink there, dangling
//! or not, is refused, and nothing is created at its target), never with `O_TRUNC`, and only
//! after `fstat` shows a regular file owned by the user certkeeper runs as with exactly one
//! link (a hard link to a file elsewhere is refused) is it locked and rewritten.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags, flock, openat};
use rustix::io::Errno;

use crate::error::{FileKind, StoreError, UnsafeProblem};
use crate::layout::LOCK_FILE;
use crate::nofollow::{DirFd, euid};

/// How the lock file is opened: created if missing, never through a symlink, never
/// truncated on open. `O_NONBLOCK` keeps a planted FIFO from hanging the open.
const LOCK_FLAGS: OFlags = OFlags::RDWR
    .union(OFlags::CREATE)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

const LOCK_FILE_MODE: u32 = 0o644;

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

/// Take the exclusive lock on `root/lock`, creating the file if needed.
pub(crate) fn acquire(root: &DirFd) -> Result<StoreLock, StoreError> {
    let path = root.child(LOCK_FILE);
    let fd = openat(
        root.as_fd(),
        LOCK_FILE,
        LOCK_FLAGS,
        Mode::from_raw_mode(LOCK_FILE_MODE),
    )
    .map_err(|errno| {
        root.open_failed(
            std::ffi::OsStr::new(LOCK_FILE),
            errno,
            FileKind::RegularFile,
            "open lock file",
        )
    })?;
    let mut file = File::from(fd);
    check_ours(&file, &path)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(errno) if errno == Errno::WOULDBLOCK || errno == Errno::AGAIN => {
            return Err(StoreError::Locked {
                path,
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
    Ok(StoreLock { path, _file: file })
}

/// Refuse a lock file that is not a regular file of ours with one link.
fn check_ours(file: &File, path: &Path) -> Result<(), StoreError> {
    let meta = file
        .metadata()
        .map_err(|err| StoreError::io("inspect", path, err))?;
    let problem = if !meta.file_type().is_file() {
        let found = if meta.is_dir() {
            FileKind::Directory
        } else {
            FileKind::Other
        };
        UnsafeProblem::WrongType {
            expected: FileKind::RegularFile,
            found,
        }
    } else if meta.uid() != euid() {
        UnsafeProblem::WrongOwner {
            uid: meta.uid(),
            expected: euid(),
        }
    } else if meta.nlink() != 1 {
        UnsafeProblem::TooManyLinks {
            links: meta.nlink(),
        }
    } else {
        return Ok(());
    };
    Err(StoreError::Unsafe {
        path: path.to_path_buf(),
        problem,
    })
}

fn read_holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

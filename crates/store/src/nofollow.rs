//! Every path under the state directory, opened relative to a directory descriptor and never
//! through a symlink.
//!
//! The state directory may be writable by an account that is less trusted than the process
//! using it (the unprivileged `certkeeper` user, when root runs a command). Whoever controls
//! that account can plant symlinks and hard links, and a path-based store follows them: root
//! would chmod, truncate or write keys wherever the links point. So the store never resolves a
//! path under the state directory by name from the top:
//!
//! * the state directory is opened once ([`DirFd::open_root`]), its last component with
//!   `O_NOFOLLOW`, and kept open; everything else is reached from that descriptor one
//!   component at a time with the `*at` system calls, so no component is ever resolved
//!   through a symlink, and a directory renamed or replaced behind our back cannot redirect a
//!   later operation;
//! * every directory and file opened is `fstat`ed *through the descriptor just opened* (no
//!   check-then-open race) and must be the kind expected and owned by the effective uid; a
//!   secret must also be closed to group and others;
//! * anything else is refused with [`StoreError::Unsafe`] naming the path, never skipped, so
//!   an operator learns that something planted it.
//!
//! The only symlinks certkeeper reads are its own `live/NAME -> ../archive/NAME/vNNNN` links,
//! read with `readlinkat` and checked by `live` before anything is opened through them.
//! Files are opened with `O_NONBLOCK`, so a FIFO planted where a file is expected cannot hang
//! the daemon before `fstat` refuses it (the flag changes nothing for regular files).

use std::ffi::{OsStr, OsString};
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat, fchmod, fstat,
    fsync, mkdirat, openat, openat2, readlinkat, renameat, renameat_with, statat, symlinkat,
    unlinkat,
};
use rustix::io::Errno;

use crate::error::{FileKind, StoreError, UnsafeProblem};

/// How a directory is opened: never through a symlink, never inherited by hooks.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How a file is opened for reading.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

/// How deep [`DirFd::remove_tree`] descends. Staging directories are flat; anything deeper
/// was not made by certkeeper.
const MAX_REMOVE_DEPTH: u32 = 8;

/// Whether a file holds a secret (a private key, account credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    /// Anyone allowed into the directory may read it (certificates, lineage state).
    Public,
    /// Must have no group or other permission bits; one that has may have leaked, and using
    /// it would hide that.
    Secret,
    /// A lineage's private key, which `key_group` lets its group read: group read is
    /// accepted, any other group or other bit is refused as for [`Secrecy::Secret`]. Which
    /// group that is, only the owner (certkeeper) can choose, and the configuration says.
    GroupReadable,
}

impl Secrecy {
    /// The permission bits that must not be set.
    fn forbidden_bits(self) -> u32 {
        match self {
            Secrecy::Public => 0,
            Secrecy::Secret => 0o077,
            Secrecy::GroupReadable => 0o037,
        }
    }
}

/// An open directory and the path it was reached by (for messages and hook environments
/// only: the store never opens that path again).
#[derive(Debug)]
pub(crate) struct DirFd {
    fd: OwnedFd,
    path: PathBuf,
    /// The uid every entry reached from this directory must belong to: the effective uid when
    /// the state directory was opened, asked once and handed down to every directory opened
    /// from it rather than asked again after every open. certkeeper changes its uid only
    /// before it opens the state directory (and while it has one thread), so it cannot differ
    /// from asking each time.
    owner: u32,
}

/// The effective uid: the owner everything in the state directory must have.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

impl DirFd {
    /// Open the state directory `path`, creating it with `mode` when missing, and tighten it
    /// to `mode`. The parent path is trusted (root's `/var/lib`); the last component must not
    /// be a symlink. Missing parents are created with `mode`.
    ///
    /// # Errors
    /// [`StoreError::Unsafe`] for a symlink or non-directory, [`StoreError::StateDirNotOwned`]
    /// when it belongs to another user, [`StoreError::Io`] otherwise.
    pub(crate) fn open_root(path: &Path, mode: u32) -> Result<DirFd, StoreError> {
        let Some(name) = path.file_name() else {
            // `/`, `..`, `x/..`: no last component that could be a link of ours to refuse.
            let fd = openat(CWD, path, DIR_FLAGS, Mode::empty())
                .map_err(|errno| StoreError::io("open state directory", path, errno.into()))?;
            return Self::checked_root(fd, path, mode);
        };
        let parent = parent_dir(path);
        if !parent.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(parent)
                .map_err(|err| StoreError::io("create state directory", path, err))?;
        }
        let parent_fd = openat(
            CWD,
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| StoreError::io("open the parent of", path, errno.into()))?;
        let parent = DirFd {
            fd: parent_fd,
            path: parent.to_path_buf(),
            owner: euid(),
        };
        let created = match mkdirat(&parent.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(errno) => {
                return Err(StoreError::io("create state directory", path, errno.into()));
            }
        };
        let fd = openat(&parent.fd, name, DIR_FLAGS, Mode::empty()).map_err(|errno| {
            parent.open_failed(name, errno, FileKind::Directory, "open state directory")
        })?;
        if created {
            // The umask may have narrowed the mode; set it exactly, as for every directory.
            fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|errno| StoreError::io("set the mode of", path, errno.into()))?;
            parent.fsync()?;
        }
        Self::checked_root(fd, path, mode)
    }

    fn checked_root(fd: OwnedFd, path: &Path, mode: u32) -> Result<DirFd, StoreError> {
        let dir = DirFd {
            fd,
            path: path.to_path_buf(),
            owner: euid(),
        };
        let stat = dir.stat()?;
        if stat.st_uid != dir.owner {
            return Err(StoreError::StateDirNotOwned {
                path: path.to_path_buf(),
                owner: stat.st_uid,
                running_as: dir.owner,
            });
        }
        dir.tighten(mode)?;
        Ok(dir)
    }

    /// Open a directory outside the state directory whose path the caller trusts, following
    /// symlinks (used by [`write_file_atomic`](crate::write_file_atomic) and tests).
    pub(crate) fn open_trusted(path: &Path) -> Result<DirFd, StoreError> {
        let fd = openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| StoreError::io("open directory", path, errno.into()))?;
        Ok(DirFd {
            fd,
            path: path.to_path_buf(),
            owner: euid(),
        })
    }

    /// The path this directory was reached by.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of entry `name`, for messages.
    pub(crate) fn child(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn stat(&self) -> Result<Stat, StoreError> {
        fstat(&self.fd).map_err(|errno| StoreError::io("inspect", &self.path, errno.into()))
    }

    /// Open the existing subdirectory `name`: a real directory owned by us. `None` when
    /// there is nothing by that name.
    pub(crate) fn open_dir(&self, name: &str) -> Result<Option<DirFd>, StoreError> {
        let name = component(name, &self.path)?;
        let fd = match openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(errno) => {
                return Err(self.open_failed(
                    OsStr::new(name),
                    errno,
                    FileKind::Directory,
                    "open directory",
                ));
            }
        };
        let dir = DirFd {
            fd,
            path: self.child(name),
            owner: self.owner,
        };
        let stat = dir.stat()?;
        check_stat(&dir.path, &stat, FileKind::Directory, self.owner)?;
        Ok(Some(dir))
    }

    /// The directory `first/second` below this one, both real directories, the last one
    /// checked to be ours: what `require_dir(first)?.require_dir(second)` returns, in one
    /// `openat2` that refuses any symlink on the way (`RESOLVE_NO_SYMLINKS`) and any escape
    /// (`RESOLVE_BENEATH`) instead of four calls. A large inventory reads `archive/NAME/vNNNN`
    /// for every lineage on every pass. Whenever the single call fails (a kernel without
    /// `openat2`, a missing directory, a symlink) the two steps are taken one by one, so the
    /// error is the one they give, naming the component at fault.
    pub(crate) fn require_dir_below(&self, first: &str, second: &str) -> Result<DirFd, StoreError> {
        let one_call = component(first, &self.path).and_then(|first| {
            component(second, &self.path).map(|second| format!("{first}/{second}"))
        });
        if let Ok(relative) = one_call {
            let resolve = ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV;
            if let Ok(fd) = openat2(&self.fd, &relative, DIR_FLAGS, Mode::empty(), resolve) {
                let dir = DirFd {
                    fd,
                    path: self.path.join(&relative),
                    owner: self.owner,
                };
                let stat = dir.stat()?;
                check_stat(&dir.path, &stat, FileKind::Directory, self.owner)?;
                return Ok(dir);
            }
        }
        self.require_dir(first)?.require_dir(second)
    }

    /// Like [`DirFd::open_dir`], a missing directory being an error.
    pub(crate) fn require_dir(&self, name: &str) -> Result<DirFd, StoreError> {
        self.open_dir(name)?.ok_or_else(|| {
            StoreError::io(
                "open directory",
                self.child(name),
                io::Error::from(ErrorKind::NotFound),
            )
        })
    }

    /// Open the subdirectory `name`, creating it with exactly `mode` when missing (and making
    /// the creation durable); an existing one is tightened to `mode`.
    pub(crate) fn ensure_dir(&self, name: &str, mode: u32) -> Result<DirFd, StoreError> {
        let name = component(name, &self.path)?;
        let created = match mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(errno) => {
                return Err(StoreError::io(
                    "create directory",
                    self.child(name),
                    errno.into(),
                ));
            }
        };
        let dir = self.require_dir(name)?;
        if created {
            dir.set_mode(mode)?;
            self.fsync()?;
        } else {
            dir.tighten(mode)?;
        }
        Ok(dir)
    }

    /// Create the new subdirectory `name` (which must not exist) with exactly `mode`. The
    /// parent is not fsynced: the caller publishes it with a rename and fsyncs then.
    pub(crate) fn create_dir(&self, name: &str, mode: u32) -> Result<DirFd, StoreError> {
        let name = component(name, &self.path)?;
        mkdirat(&self.fd, name, Mode::from_raw_mode(mode))
            .map_err(|errno| StoreError::io("create directory", self.child(name), errno.into()))?;
        let dir = self.require_dir(name)?;
        dir.set_mode(mode)?;
        Ok(dir)
    }

    fn set_mode(&self, mode: u32) -> Result<(), StoreError> {
        fchmod(&self.fd, Mode::from_raw_mode(mode))
            .map_err(|errno| StoreError::io("set the mode of", &self.path, errno.into()))
    }

    /// Remove permission bits beyond `mode`, and setuid, setgid and sticky bits. Never widens.
    pub(crate) fn tighten(&self, mode: u32) -> Result<(), StoreError> {
        let current = self.stat()?.st_mode & 0o7777;
        let wanted = current & mode & 0o777;
        if wanted == current {
            return Ok(());
        }
        fchmod(&self.fd, Mode::from_raw_mode(wanted))
            .map_err(|errno| StoreError::io("restrict the mode of", &self.path, errno.into()))
    }

    /// What `name` is, without following it; `None` when it does not exist.
    pub(crate) fn kind_of(&self, name: &str) -> Result<Option<FileKind>, StoreError> {
        let name = component(name, &self.path)?;
        match statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(FileKind::of(&stat))),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(StoreError::io("inspect", self.child(name), errno.into())),
        }
    }

    /// The target of the symlink `name`, as stored (never resolved).
    pub(crate) fn read_link(&self, name: &str) -> Result<PathBuf, StoreError> {
        let name = component(name, &self.path)?;
        readlinkat(&self.fd, name, Vec::new())
            .map(|target| PathBuf::from(OsString::from_vec(target.into_bytes())))
            .map_err(|errno| StoreError::io("read symlink", self.child(name), errno.into()))
    }

    /// The target of `name` when it is a symlink, `None` when it is anything else or
    /// nothing.
    pub(crate) fn read_link_if_symlink(&self, name: &str) -> Result<Option<PathBuf>, StoreError> {
        let name = component(name, &self.path)?;
        match readlinkat(&self.fd, name, Vec::new()) {
            Ok(target) => Ok(Some(PathBuf::from(OsString::from_vec(target.into_bytes())))),
            Err(Errno::INVAL | Errno::NOENT) => Ok(None),
            Err(errno) => Err(StoreError::io(
                "read symlink",
                self.child(name),
                errno.into(),
            )),
        }
    }

    /// Create the symlink `name` pointing at `target`.
    pub(crate) fn symlink(&self, target: &Path, name: &str) -> io::Result<()> {
        symlinkat(target, &self.fd, name).map_err(io::Error::from)
    }

    /// Open `name` for reading: a regular file owned by us, closed to others when it is a
    /// secret. `None` when it does not exist. Also returns the file's size as `fstat` saw it.
    fn open_file(
        &self,
        name: &str,
        secrecy: Secrecy,
    ) -> Result<Option<(OwnedFd, u64)>, StoreError> {
        let name = component(name, &self.path)?;
        let fd = match openat(&self.fd, name, READ_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(errno) => {
                return Err(self.open_failed(
                    OsStr::new(name),
                    errno,
                    FileKind::RegularFile,
                    "open",
                ));
            }
        };
        // The path is only built for an error: joining it on every successful open showed in
        // profiles of large fleets.
        let stat = fstat(&fd)
            .map_err(|errno| StoreError::io("inspect", self.child(name), errno.into()))?;
        let mode = stat.st_mode & 0o7777;
        let problem = stat_problem(&stat, FileKind::RegularFile, self.owner)
            .or((mode & secrecy.forbidden_bits() != 0)
                .then_some(UnsafeProblem::OpenToOthers { mode }));
        if let Some(problem) = problem {
            return Err(StoreError::Unsafe {
                path: self.child(name),
                problem,
            });
        }
        Ok(Some((fd, u64::try_from(stat.st_size).unwrap_or(0))))
    }

    /// The content of the file `name` (see [`DirFd::open_file`]); `None` when it does not
    /// exist.
    ///
    /// Read with plain `read(2)` into a buffer sized from the `fstat` already made: std's
    /// `read_to_end` would ask the kernel for the size and position again (`statx`, `lseek`).
    pub(crate) fn read_file(
        &self,
        name: &str,
        secrecy: Secrecy,
        action: &'static str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((fd, size)) = self.open_file(name, secrecy)? else {
            return Ok(None);
        };
        read_whole(&fd, size, action, || self.child(name)).map(Some)
    }

    /// The public file `components` (joined by `/`) below this directory, in one `openat2`
    /// that refuses any symlink on the way and any escape, the file checked like
    /// [`DirFd::read_file`] checks its own. `None` whenever that single call does not succeed
    /// (a kernel without `openat2`, anything missing, a symlink): the caller then walks the
    /// components one by one, which names the one at fault. Planning a large inventory reads
    /// `archive/NAME/vNNNN/cert.pem` for every lineage on every pass; this saves the three
    /// calls of opening and closing the version directory.
    pub(crate) fn read_public_below(
        &self,
        components: &[&str],
        action: &'static str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut relative = String::new();
        for part in components {
            let Ok(part) = component(part, &self.path) else {
                return Ok(None);
            };
            if !relative.is_empty() {
                relative.push('/');
            }
            relative.push_str(part);
        }
        let resolve = ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV;
        let Ok(fd) = openat2(&self.fd, &relative, READ_FLAGS, Mode::empty(), resolve) else {
            return Ok(None);
        };
        let path = || self.path.join(&relative);
        let stat = fstat(&fd).map_err(|errno| StoreError::io("inspect", path(), errno.into()))?;
        if let Some(problem) = stat_problem(&stat, FileKind::RegularFile, self.owner) {
            return Err(StoreError::Unsafe {
                path: path(),
                problem,
            });
        }
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        read_whole(&fd, size, action, path).map(Some)
    }

    /// Check that `name` may be replaced by a rename: absent, or a regular file. A symlink is
    /// refused rather than silently replaced, so a planted one is reported.
    pub(crate) fn check_replaceable(&self, name: &str) -> Result<(), StoreError> {
        match self.kind_of(name)? {
            None | Some(FileKind::RegularFile) => Ok(()),
            Some(found) => Err(self.refuse(OsStr::new(name), found, FileKind::RegularFile)),
        }
    }

    /// Remove the file `name`; nothing to do when it does not exist. A symlink or directory
    /// there is refused.
    pub(crate) fn remove_file(&self, name: &str, action: &'static str) -> Result<(), StoreError> {
        self.check_replaceable(name)?;
        match unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(StoreError::io(action, self.child(name), errno.into())),
        }
    }

    /// Rename `from` to `to`, both in this directory, replacing `to` (never following it).
    pub(crate) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        renameat(&self.fd, from, &self.fd, to).map_err(io::Error::from)
    }

    /// Rename `from` to `to` in this directory, failing with `AlreadyExists` instead of
    /// replacing `to`.
    pub(crate) fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        match renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            // A file system without RENAME_NOREPLACE: check, then rename. The store lock keeps
            // other certkeepers out, so the check is not racing anyone in practice.
            Err(Errno::INVAL | Errno::NOSYS) => {
                match statat(&self.fd, to, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(_) => Err(io::Error::from(ErrorKind::AlreadyExists)),
                    Err(Errno::NOENT) => self.rename(from, to),
                    Err(errno) => Err(errno.into()),
                }
            }
            Err(errno) => Err(errno.into()),
        }
    }

    /// Remove the entry `name` whatever it is (a leftover of an interrupted operation): a
    /// symlink is removed as a link, a directory with [`DirFd::remove_tree`].
    pub(crate) fn remove_entry(&self, name: &OsStr) -> Result<(), StoreError> {
        self.remove_entry_at_depth(name, 0)
    }

    fn remove_entry_at_depth(&self, name: &OsStr, depth: u32) -> Result<(), StoreError> {
        match statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileKind::of(&stat) == FileKind::Directory => self.remove_tree(name, depth),
            Ok(_) => match unlinkat(&self.fd, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(errno) => Err(StoreError::io("remove", self.child(name), errno.into())),
            },
            Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(StoreError::io("inspect", self.child(name), errno.into())),
        }
    }

    /// Remove the directory `name` and everything in it, never following a symlink: a
    /// subdirectory is opened with `O_NOFOLLOW` (so one swapped for a link is refused, not
    /// entered) and links inside are removed as links, their targets untouched.
    fn remove_tree(&self, name: &OsStr, depth: u32) -> Result<(), StoreError> {
        let path = self.child(name);
        if depth >= MAX_REMOVE_DEPTH {
            return Err(StoreError::io(
                "remove",
                path,
                io::Error::other("nested deeper than certkeeper ever makes directories"),
            ));
        }
        let fd = match openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(errno) => {
                return Err(self.open_failed(name, errno, FileKind::Directory, "open directory"));
            }
        };
        let dir = DirFd {
            fd,
            path,
            owner: self.owner,
        };
        check_stat(&dir.path, &dir.stat()?, FileKind::Directory, self.owner)?;
        for entry in dir.raw_entries()? {
            dir.remove_entry_at_depth(&entry, depth + 1)?;
        }
        match unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(StoreError::io("remove directory", &dir.path, errno.into())),
        }
    }

    /// Every entry name but `.` and `..`, as the bytes on disk.
    fn raw_entries(&self) -> Result<Vec<OsString>, StoreError> {
        let listing_failed =
            |errno: Errno| StoreError::io("list directory", &self.path, errno.into());
        // A fresh open of `.`: its own read position, so listing never disturbs `self`.
        let mut dir = Dir::read_from(&self.fd).map_err(listing_failed)?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(listing_failed)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(names)
    }

    /// Names of the entries. Names that are not UTF-8 are skipped: certkeeper never creates
    /// them.
    pub(crate) fn entry_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .raw_entries()?
            .into_iter()
            .filter_map(|name| name.into_string().ok())
            .collect())
    }

    /// `fsync` the directory, making renames and creations inside it durable.
    pub(crate) fn fsync(&self) -> Result<(), StoreError> {
        fsync(&self.fd).map_err(|errno| StoreError::io("fsync directory", &self.path, errno.into()))
    }

    /// The error for a failed `openat` of `name` expected to be `expected`: a symlink or an
    /// entry of the wrong type becomes [`StoreError::Unsafe`], anything else stays an I/O
    /// error.
    pub(crate) fn open_failed(
        &self,
        name: &OsStr,
        errno: Errno,
        expected: FileKind,
        action: &'static str,
    ) -> StoreError {
        // ELOOP: O_NOFOLLOW met a symlink; ENOTDIR / EISDIR: the wrong type; ENXIO: a socket.
        if matches!(
            errno,
            Errno::LOOP | Errno::NOTDIR | Errno::ISDIR | Errno::NXIO
        ) && let Ok(stat) = statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
        {
            let found = FileKind::of(&stat);
            if found != expected {
                return self.refuse(name, found, expected);
            }
        }
        StoreError::io(action, self.child(name), errno.into())
    }

    /// The refusal of `name`, found to be `found` where `expected` was wanted.
    fn refuse(&self, name: &OsStr, found: FileKind, expected: FileKind) -> StoreError {
        let problem = if found == FileKind::Symlink {
            UnsafeProblem::Symlink {
                target: readlinkat(&self.fd, name, Vec::new())
                    .ok()
                    .map(|target| PathBuf::from(OsString::from_vec(target.into_bytes()))),
            }
        } else {
            UnsafeProblem::WrongType { expected, found }
        };
        StoreError::Unsafe {
            path: self.child(name),
            problem,
        }
    }
}

/// A fixed subdirectory of the state directory (`live/`, `archive/`, `state/`), opened and
/// checked at [`Store::open`](crate::Store::open) and kept open, so a read does not open and
/// check it again.
///
/// Each use still asks what the name is now, with one `fstatat` (never following it): while
/// the name is the directory held, with the kind and owner it must have, the held descriptor
/// is used; otherwise (a symlink planted there, the directory replaced or given away) the name
/// is opened and checked exactly as [`DirFd::open_dir`] does, so what a read finds and refuses
/// is what it found and refused when every read opened the directory afresh.
#[derive(Debug)]
pub(crate) struct HeldDir {
    name: &'static str,
    dir: DirFd,
    dev: u64,
    ino: u64,
}

/// A directory reached through a [`HeldDir`]: the held descriptor or a fresh one.
#[derive(Debug)]
pub(crate) enum Reached<'a> {
    Held(&'a DirFd),
    Fresh(DirFd),
}

impl std::ops::Deref for Reached<'_> {
    type Target = DirFd;

    fn deref(&self) -> &DirFd {
        match self {
            Reached::Held(dir) => dir,
            Reached::Fresh(dir) => dir,
        }
    }
}

impl HeldDir {
    /// Keep `dir`, the entry `name` of the state directory, open.
    pub(crate) fn new(name: &'static str, dir: DirFd) -> Result<HeldDir, StoreError> {
        let stat = dir.stat()?;
        Ok(HeldDir {
            name,
            dev: stat.st_dev,
            ino: stat.st_ino,
            dir,
        })
    }

    /// The directory `root/name` now is; `None` when there is nothing by that name.
    pub(crate) fn current<'a>(&'a self, root: &DirFd) -> Result<Option<Reached<'a>>, StoreError> {
        match statat(&root.fd, self.name, AtFlags::SYMLINK_NOFOLLOW) {
            // The held inode stays allocated while it is open, so its number cannot be
            // reused by another directory: same device and inode means the same directory.
            Ok(stat) if stat.st_dev == self.dev && stat.st_ino == self.ino => {
                check_stat(&self.dir.path, &stat, FileKind::Directory, self.dir.owner)?;
                Ok(Some(Reached::Held(&self.dir)))
            }
            Ok(_) => Ok(root.open_dir(self.name)?.map(Reached::Fresh)),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(StoreError::io(
                "inspect",
                root.child(self.name),
                errno.into(),
            )),
        }
    }
}

impl FileKind {
    pub(crate) fn of(stat: &Stat) -> FileKind {
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => FileKind::Directory,
            FileType::RegularFile => FileKind::RegularFile,
            FileType::Symlink => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }
}

/// Refuse what `fstat` says is not `expected` or not owned by `owner` (the effective uid).
pub(crate) fn check_stat(
    path: &Path,
    stat: &Stat,
    expected: FileKind,
    owner: u32,
) -> Result<(), StoreError> {
    match stat_problem(stat, expected, owner) {
        None => Ok(()),
        Some(problem) => Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            problem,
        }),
    }
}

/// What is wrong with what `fstat` says, if anything: not `expected`, or not `owner`'s.
fn stat_problem(stat: &Stat, expected: FileKind, owner: u32) -> Option<UnsafeProblem> {
    let found = FileKind::of(stat);
    if found != expected {
        Some(UnsafeProblem::WrongType { expected, found })
    } else if stat.st_uid != owner {
        Some(UnsafeProblem::WrongOwner {
            uid: stat.st_uid,
            expected: owner,
        })
    } else {
        None
    }
}

/// The content of the open regular file `fd`, `size` bytes by its `fstat`, with plain
/// `read(2)`: std's `read_to_end` would ask the kernel for the size and position again
/// (`statx`, `lseek`). `path` names the file in an error.
fn read_whole(
    fd: &OwnedFd,
    size: u64,
    action: &'static str,
    path: impl Fn() -> PathBuf,
) -> Result<Vec<u8>, StoreError> {
    // One byte more than the size: a file that grew since `fstat` fills the buffer and is
    // read on, one read whole leaves the spare byte and needs no second `read`.
    let size = usize::try_from(size).unwrap_or(0);
    let mut bytes = vec![0; size.saturating_add(1)];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            // The file grew since `fstat`: keep reading.
            bytes.resize(len.saturating_mul(2).max(4096), 0);
        }
        let spare = bytes.get_mut(len..).unwrap_or_default();
        match rustix::io::read(fd, spare) {
            Ok(0) => break,
            // All `fstat` announced, with room to spare: the file did not grow, and asking
            // again only to be told so would cost a system call per file.
            Ok(read) if len + read >= size && len + read < bytes.len() => {
                len += read;
                break;
            }
            Ok(read) => len += read,
            Err(Errno::INTR) => {}
            Err(errno) => return Err(StoreError::io(action, path(), errno.into())),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `name` as one path component. Every name the store uses is built from validated parts;
/// this keeps a slip from ever turning an `*at` call into a multi-component walk.
fn component<'a>(name: &'a str, dir: &Path) -> Result<&'a str, StoreError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(StoreError::io(
            "use an entry of",
            dir,
            io::Error::new(ErrorKind::InvalidInput, "not a single path component"),
        ));
    }
    Ok(name)
}

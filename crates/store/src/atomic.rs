//! Crash-safe file writes.
//!
//! A file certkeeper writes is either its old content or its new content, never a torn
//! mixture, and a secret is never readable by others, not even for an instant:
//!
//! 1. the temporary file is created in the *same directory* as the target (so the final
//!    `rename` is atomic: same file system), relative to that directory's descriptor, with
//!    `O_EXCL | O_NOFOLLOW` (nothing planted under the temporary name is ever opened) and
//!    its *final mode* passed to
//!    `open`, then `fchmod`ed to exactly that mode before any byte is written: the umask can
//!    only narrow a mode at creation, and the explicit `fchmod` makes the result the same under
//!    every umask (a `0644` certificate stays readable even under `umask 077`);
//! 2. the data is written and `fsync`ed;
//! 3. the temporary file is renamed over the target (`renameat` replaces the entry itself;
//!    a target that is a symlink is refused beforehand, never written through);
//! 4. the directory is `fsync`ed through its descriptor so the rename itself survives a
//!    power loss.
//!
//! Temporary names start with a dot and contain `.tmp-`, so listings skip them and a later
//! run can recognise leftovers of an interrupted write.

use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use certkeeper_core::KeyGroup;
use rustix::fs::{AtFlags, Mode, OFlags, fchmod, fchown, openat, unlinkat};
use rustix::io::Errno;
use rustix::process::{Gid, getegid, geteuid, getgroups};

use crate::error::{FileKind, StoreError};
use crate::layout::{GROUP_KEY_FILE_MODE, PRIVATE_FILE_MODE};
use crate::nofollow::DirFd;

/// How many names [`create_exclusive`] tries before giving up. Collisions need another
/// writer using the same pid, counter and random value; a second try is already paranoia.
const NAME_ATTEMPTS: u32 = 16;

/// How a new file is created: only if nothing (not even a dangling symlink) has the name.
const CREATE_FLAGS: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Write `bytes` to `path` atomically, the file ending up with exactly `mode` (e.g. `0o600`).
///
/// The parent directory must exist; its path is trusted (followed), but an existing `path`
/// that is a symlink is refused rather than replaced. See the module documentation for the
/// exact steps.
///
/// # Errors
/// [`StoreError::Unsafe`] when `path` is a symlink or a directory; [`StoreError::Io`] naming
/// the path and the step that failed. The temporary file is removed on failure.
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let Some(name) = path.file_name().and_then(OsStr::to_str) else {
        return Err(StoreError::io(
            "write",
            path,
            io::Error::new(ErrorKind::InvalidInput, "no UTF-8 file name"),
        ));
    };
    let dir = DirFd::open_trusted(crate::nofollow::parent_dir(path))?;
    write_atomic_at(&dir, name, bytes, mode)
}

/// Write `bytes` to `dir/name` atomically with exactly `mode`: temp file, fsync, rename,
/// fsync of `dir`. An existing `name` that is not a regular file is refused.
pub(crate) fn write_atomic_at(
    dir: &DirFd,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    dir.check_replaceable(name)?;
    let (mut file, temp) = create_exclusive(dir, &format!(".{name}.tmp-"), mode)?;
    let written = file
        .write_all(bytes)
        .map_err(|err| StoreError::io("write", dir.child(&temp), err))
        .and_then(|()| {
            file.sync_all()
                .map_err(|err| StoreError::io("fsync", dir.child(&temp), err))
        });
    drop(file);
    if let Err(err) = written {
        let _ = unlinkat(dir.as_fd(), temp.as_str(), AtFlags::empty());
        return Err(err);
    }
    // rename(2) replaces the entry `name` itself, whatever it has become since the check: it
    // never writes through a symlink.
    if let Err(err) = dir.rename(&temp, name) {
        let _ = unlinkat(dir.as_fd(), temp.as_str(), AtFlags::empty());
        return Err(StoreError::io(
            "rename a temporary file over",
            dir.child(name),
            err,
        ));
    }
    dir.fsync()
}

/// Create a new file `dir/<prefix><unique>` with `O_EXCL | O_NOFOLLOW`, created with `mode`
/// and then set to exactly `mode` before anything is written. Returns the open file and its
/// name.
pub(crate) fn create_exclusive(
    dir: &DirFd,
    prefix: &str,
    mode: u32,
) -> Result<(File, String), StoreError> {
    let mut last_err = None;
    for _ in 0..NAME_ATTEMPTS {
        let name = format!("{prefix}{}", unique_suffix());
        match create_new(dir, &name, mode) {
            Ok(file) => return Ok((file, name)),
            Err(CreateError::Exists(err)) => last_err = Some((name, err)),
            Err(CreateError::Other(err)) => return Err(err),
        }
    }
    let (name, err) = last_err.unwrap_or_else(|| {
        (
            String::new(),
            std::io::Error::from(ErrorKind::AlreadyExists),
        )
    });
    Err(StoreError::io(
        "create a uniquely named file",
        dir.child(name),
        err,
    ))
}

enum CreateError {
    Exists(io::Error),
    Other(StoreError),
}

/// Create `dir/name`, which must not exist, with exactly `mode`.
fn create_new(dir: &DirFd, name: &str, mode: u32) -> Result<File, CreateError> {
    let fd = match openat(dir.as_fd(), name, CREATE_FLAGS, Mode::from_raw_mode(mode)) {
        Ok(fd) => fd,
        Err(Errno::EXIST) => return Err(CreateError::Exists(Errno::EXIST.into())),
        Err(errno) => {
            return Err(CreateError::Other(dir.open_failed(
                OsStr::new(name),
                errno,
                FileKind::RegularFile,
                "create",
            )));
        }
    };
    if let Err(errno) = fchmod(&fd, Mode::from_raw_mode(mode)) {
        drop(fd);
        let _ = unlinkat(dir.as_fd(), name, AtFlags::empty());
        return Err(CreateError::Other(StoreError::io(
            "set the mode of",
            dir.child(name),
            errno.into(),
        )));
    }
    Ok(File::from(fd))
}

/// Write a *new* file `dir/name` (which must not exist) with exactly `mode`, and fsync it.
///
/// Used inside a private staging directory, where nothing else looks and no temporary name
/// is needed: the whole directory is published with one rename once every file is durable.
pub(crate) fn write_new_file(
    dir: &DirFd,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    let mut file = create_new(dir, name, mode).map_err(|err| match err {
        CreateError::Exists(err) => StoreError::io("create", dir.child(name), err),
        CreateError::Other(err) => err,
    })?;
    file.write_all(bytes)
        .map_err(|err| StoreError::io("write", dir.child(name), err))?;
    file.sync_all()
        .map_err(|err| StoreError::io("fsync", dir.child(name), err))
}

/// Write the *new* private key file `dir/name` like [`write_new_file`]: `0600`, or with
/// `group`, given to that group and only then opened to it (`0640`), before any byte is
/// written. At no instant can another group read it, and no mode is changed once the file
/// is visible under its final name.
pub(crate) fn write_new_key(
    dir: &DirFd,
    name: &str,
    bytes: &[u8],
    group: Option<&KeyGroup>,
) -> Result<(), StoreError> {
    let mut file = create_new(dir, name, PRIVATE_FILE_MODE).map_err(|err| match err {
        CreateError::Exists(err) => StoreError::io("create", dir.child(name), err),
        CreateError::Other(err) => err,
    })?;
    if let Some(group) = group {
        fchown(&file, None, Some(Gid::from_raw(group.gid))).map_err(|errno| {
            let egid = getegid().as_raw();
            let member = egid == group.gid
                || getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == group.gid));
            StoreError::KeyGroup {
                group: group.clone(),
                path: dir.child(name),
                uid: geteuid().as_raw(),
                member,
                source: errno.into(),
            }
        })?;
        fchmod(&file, Mode::from_raw_mode(GROUP_KEY_FILE_MODE))
            .map_err(|errno| StoreError::io("set the mode of", dir.child(name), errno.into()))?;
    }
    file.write_all(bytes)
        .map_err(|err| StoreError::io("write", dir.child(name), err))?;
    file.sync_all()
        .map_err(|err| StoreError::io("fsync", dir.child(name), err))
}

/// A suffix that does not repeat within this process and is unlikely across processes:
/// pid, a per-process counter and a random value from the standard library's hasher keys.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(count);
    format!(
        "{}-{count}-{:08x}",
        std::process::id(),
        hasher.finish() & 0xffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").mode() & 0o7777
    }

    #[test]
    fn replaces_content_with_exact_mode_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("privkey.pem");
        fs::write(&target, "old").expect("seed");
        fs::set_permissions(&target, Permissions::from_mode(0o644)).expect("chmod");

        write_file_atomic(&target, b"new secret", 0o600).expect("write");

        assert_eq!(fs::read(&target).expect("read"), b"new secret");
        assert_eq!(mode_of(&target), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("privkey.pem")]);
    }

    #[test]
    fn temp_file_has_its_final_mode_before_any_byte_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A wide-open umask must not widen the private mode; every mode this crate creates
        // is explicit, so changing the process umask here cannot disturb parallel tests.
        let old = rustix::process::umask(rustix::fs::Mode::empty());
        let handle = DirFd::open_trusted(dir.path()).expect("open dir");
        let created = create_exclusive(&handle, ".privkey.pem.tmp-", 0o600);
        rustix::process::umask(old);
        let (file, name) = created.expect("create");
        let path = dir.path().join(name);
        assert_eq!(file.metadata().expect("metadata").len(), 0);
        assert_eq!(mode_of(&path), 0o600);

        // And a restrictive umask does not narrow a public certificate.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let written = write_file_atomic(&dir.path().join("cert.pem"), b"cert", 0o644);
        rustix::process::umask(old);
        written.expect("write");
        assert_eq!(mode_of(&dir.path().join("cert.pem")), 0o644);
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("absent").join("file.json");
        let err = write_file_atomic(&target, b"{}", 0o644).expect_err("must fail");
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn a_symlinked_target_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").expect("seed");
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        let err = write_file_atomic(&link, b"{}", 0o644).expect_err("must refuse");
        assert!(
            matches!(
                &err,
                StoreError::Unsafe { path, problem: crate::UnsafeProblem::Symlink { .. } }
                    if *path == link
            ),
            "{err:?}"
        );
        assert_eq!(fs::read(&victim).expect("read"), b"precious");
        assert!(fs::symlink_metadata(&link).expect("link").is_symlink());
        assert_eq!(
            fs::read_dir(dir.path()).expect("list").count(),
            2,
            "no temp left"
        );
    }

    #[test]
    fn unique_suffixes_do_not_repeat() {
        let a = unique_suffix();
        let b = unique_suffix();
        assert_ne!(a, b);
    }
}

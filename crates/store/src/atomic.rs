//! Crash-safe file writes.
//!
//! A file certkeeper writes is either its old content or its new content, never a torn
//! mixture, and a secret is never readable by others, not even for an instant:
//!
//! 1. the temporary file is created in the *same directory* as the target (so the final
//!    `rename` is atomic: same file system), with `O_EXCL` and its *final mode* passed to
//!    `open`, then `fchmod`ed to exactly that mode before any byte is written: the umask can
//!    only narrow a mode at creation, and the explicit `fchmod` makes the result the same under
//!    every umask (a `0644` certificate stays readable even under `umask 077`);
//! 2. the data is written and `fsync`ed;
//! 3. the temporary file is renamed over the target;
//! 4. the directory is `fsync`ed so the rename itself survives a power loss.
//!
//! Temporary names start with a dot and contain `.tmp-`, so listings skip them and a later
//! run can recognise leftovers of an interrupted write.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions, Permissions};
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StoreError;

/// How many names [`create_exclusive`] tries before giving up. Collisions need another
/// writer using the same pid, counter and random value; a second try is already paranoia.
const NAME_ATTEMPTS: u32 = 16;

/// Write `bytes` to `path` atomically, the file ending up with exactly `mode` (e.g. `0o600`).
///
/// The parent directory must exist. See the module documentation for the exact steps.
///
/// # Errors
/// [`StoreError::Io`] naming the path and the step that failed. The temporary file is removed
/// on failure.
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = parent_dir(path);
    let base = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut file, temp) = create_exclusive(dir, &format!(".{base}.tmp-"), mode)?;
    let written = file
        .write_all(bytes)
        .map_err(|err| StoreError::io("write", &temp, err))
        .and_then(|()| {
            file.sync_all()
                .map_err(|err| StoreError::io("fsync", &temp, err))
        });
    drop(file);
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    if let Err(err) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(StoreError::io("rename a temporary file over", path, err));
    }
    fsync_dir(dir)
}

/// Create a new file `dir/<prefix><unique>` with `O_EXCL`, created with `mode` and then set
/// to exactly `mode` before anything is written. Returns the open file and its path.
pub(crate) fn create_exclusive(
    dir: &Path,
    prefix: &str,
    mode: u32,
) -> Result<(File, PathBuf), StoreError> {
    let mut last_err = None;
    for _ in 0..NAME_ATTEMPTS {
        let path = dir.join(format!("{prefix}{}", unique_suffix()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
        {
            Ok(file) => {
                if let Err(err) = file.set_permissions(Permissions::from_mode(mode)) {
                    drop(file);
                    let _ = fs::remove_file(&path);
                    return Err(StoreError::io("set the mode of", path, err));
                }
                return Ok((file, path));
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => last_err = Some((path, err)),
            Err(err) => return Err(StoreError::io("create", path, err)),
        }
    }
    let (path, err) = last_err.unwrap_or_else(|| {
        (
            dir.to_path_buf(),
            std::io::Error::from(ErrorKind::AlreadyExists),
        )
    });
    Err(StoreError::io("create a uniquely named file", path, err))
}

/// Write a *new* file at `path` (which must not exist) with exactly `mode`, and fsync it.
///
/// Used inside a private staging directory, where nothing else looks and no temporary name
/// is needed: the whole directory is published with one rename once every file is durable.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|err| StoreError::io("create", path, err))?;
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|err| StoreError::io("set the mode of", path, err))?;
    file.write_all(bytes)
        .map_err(|err| StoreError::io("write", path, err))?;
    file.sync_all()
        .map_err(|err| StoreError::io("fsync", path, err))
}

/// Create one directory with exactly `mode`; `Ok(false)` when it already existed (its mode is
/// then left alone). The parent is fsynced after a creation so the new entry is durable.
pub(crate) fn create_dir(path: &Path, mode: u32) -> Result<bool, StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            fs::set_permissions(path, Permissions::from_mode(mode))
                .map_err(|err| StoreError::io("set the mode of", path, err))?;
            fsync_dir(parent_dir(path))?;
            Ok(true)
        }
        Err(err) if err.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(err) => Err(StoreError::io("create directory", path, err)),
    }
}

/// `fsync` a directory, making renames and creations inside it durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|err| StoreError::io("fsync directory", dir, err))
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
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
    use std::os::unix::fs::MetadataExt;

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
        let created = create_exclusive(dir.path(), ".privkey.pem.tmp-", 0o600);
        rustix::process::umask(old);
        let (file, path) = created.expect("create");
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
    fn unique_suffixes_do_not_repeat() {
        let a = unique_suffix();
        let b = unique_suffix();
        assert_ne!(a, b);
    }
}

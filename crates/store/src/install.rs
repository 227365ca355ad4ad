//! Installing a new certificate and key so that they switch together, atomically.
//!
//! 1. Refuse early if `live/NAME` is something certkeeper cannot swap (a real directory).
//! 2. Remove leftovers of interrupted installs of this lineage: `archive/NAME/.staging-*`
//!    directories and `live/.NAME.tmp-*` symlinks. Nothing points at them.
//! 3. Assemble the version in a fresh staging directory `archive/NAME/.staging-<unique>`:
//!    every file is created there with its final mode (the key `0600` from creation),
//!    written and fsynced, then the staging directory is fsynced.
//! 4. Publish it with one `renameat2(RENAME_NOREPLACE)` to `archive/NAME/vNNNN` and fsync
//!    `archive/NAME`. A `vNNNN` directory therefore only ever exists complete, and two
//!    installs can never take the same name (the loser retries with the next number).
//! 5. Point a new temporary symlink `live/.NAME.tmp-<unique>` at `../archive/NAME/vNNNN`,
//!    rename it over `live/NAME` (atomic, and it replaces the old symlink) and fsync `live/`.
//!
//! A crash before step 5 leaves the old version live (plus, at worst, an unreferenced staging
//! directory or complete version); a crash after it leaves the new one live. Readers never see
//! a key from one issuance with a certificate from another, because the whole directory
//! switches. Versions are never modified or deleted after publication.
//!
//! The brief for this crate described writing each file through temp-and-rename inside the
//! version directory; assembling the version under a staging name and renaming the directory
//! gives the same crash safety and a stronger invariant (a `vNNNN` directory is never partial).

use std::fs;
use std::io::{self, ErrorKind};
use std::path::Path;

use certkeeper_core::CertName;
use rustix::fs::{CWD, RenameFlags, renameat_with};
use rustix::io::Errno;

use crate::atomic::{create_dir, fsync_dir, unique_suffix, write_new_file};
use crate::error::StoreError;
use crate::layout::{
    CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE, Layout, PRIVATE_FILE_MODE, PRIVKEY_FILE,
    PUBLIC_DIR_MODE, PUBLIC_FILE_MODE, STAGING_PREFIX, highest_version, remove_leftovers,
    version_name,
};
use crate::verify::VerifiedIssue;

/// How many version numbers to try when a concurrent install takes ours.
const VERSION_ATTEMPTS: u32 = 32;

/// Write `issue` as a new version of `name` and make it live. Returns the version name.
pub(crate) fn install(
    layout: &Layout,
    name: &CertName,
    issue: &VerifiedIssue,
) -> Result<String, StoreError> {
    let live_link = layout.live_link(name);
    check_swappable(&live_link)?;

    let archive = layout.archive_dir(name);
    create_dir(&archive, PUBLIC_DIR_MODE)?;
    remove_leftovers(&archive, STAGING_PREFIX)?;
    remove_leftovers(&layout.live_root(), &Layout::live_temp_prefix(name))?;

    let staging = archive.join(format!("{STAGING_PREFIX}{}", unique_suffix()));
    create_dir(&staging, PUBLIC_DIR_MODE)?;
    let version = fill_staging(&staging, issue).and_then(|()| publish(&archive, &staging));
    let version = match version {
        Ok(version) => version,
        Err(err) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(err);
        }
    };
    swap_live(layout, name, &version)?;
    Ok(version)
}

fn check_swappable(live_link: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(live_link) {
        Ok(meta) if meta.file_type().is_symlink() => Ok(()),
        Ok(_) => Err(StoreError::LiveNotSymlink {
            path: live_link.to_path_buf(),
        }),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(StoreError::io("inspect", live_link, err)),
    }
}

fn fill_staging(staging: &Path, issue: &VerifiedIssue) -> Result<(), StoreError> {
    // The key first: should anything below fail, no certificate exists without its key.
    write_new_file(
        &staging.join(PRIVKEY_FILE),
        issue.key.to_pem().as_bytes(),
        PRIVATE_FILE_MODE,
    )?;
    write_new_file(
        &staging.join(CERT_FILE),
        issue.cert_pem().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    write_new_file(
        &staging.join(CHAIN_FILE),
        issue.chain_pem().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    write_new_file(
        &staging.join(FULLCHAIN_FILE),
        issue.fullchain_pem().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    fsync_dir(staging)
}

/// Rename the staging directory to the next free version name.
fn publish(archive: &Path, staging: &Path) -> Result<String, StoreError> {
    let mut number = highest_version(archive)?.saturating_add(1);
    for _ in 0..VERSION_ATTEMPTS {
        let version = version_name(number);
        let target = archive.join(&version);
        match rename_noreplace(staging, &target) {
            Ok(()) => {
                fsync_dir(archive)?;
                return Ok(version);
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                number = number.saturating_add(1);
            }
            Err(err) => return Err(StoreError::io("publish the new version as", target, err)),
        }
    }
    Err(StoreError::NoFreeVersion {
        dir: archive.to_path_buf(),
    })
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A file system without RENAME_NOREPLACE: check, then rename. The store lock keeps
        // other certkeepers out, so the check is not racing anyone in practice.
        Err(errno) if errno == Errno::INVAL || errno == Errno::NOSYS => {
            if fs::symlink_metadata(to).is_ok() {
                Err(io::Error::from(ErrorKind::AlreadyExists))
            } else {
                fs::rename(from, to)
            }
        }
        Err(errno) => Err(errno.into()),
    }
}

/// Point `live/NAME` at `version` with one atomic rename.
fn swap_live(layout: &Layout, name: &CertName, version: &str) -> Result<(), StoreError> {
    let live_root = layout.live_root();
    let live_link = layout.live_link(name);
    let target = Layout::live_target(name, version);
    let prefix = Layout::live_temp_prefix(name);
    let mut attempts = 0;
    let temp = loop {
        let temp = live_root.join(format!("{prefix}{}", unique_suffix()));
        match std::os::unix::fs::symlink(&target, &temp) {
            Ok(()) => break temp,
            Err(err) if err.kind() == ErrorKind::AlreadyExists && attempts < VERSION_ATTEMPTS => {
                attempts += 1;
            }
            Err(err) => return Err(StoreError::io("create symlink", temp, err)),
        }
    };
    if let Err(err) = fs::rename(&temp, &live_link) {
        let _ = fs::remove_file(&temp);
        // A directory appeared at live/NAME since the check at the start.
        if matches!(
            err.raw_os_error().map(Errno::from_raw_os_error),
            Some(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST)
        ) {
            return Err(StoreError::LiveNotSymlink { path: live_link });
        }
        return Err(StoreError::io("swap the live symlink", live_link, err));
    }
    fsync_dir(&live_root)
}

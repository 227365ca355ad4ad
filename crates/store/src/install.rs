//! Installing a new certificate and key so that they switch together, atomically.
//!
//! 1. Refuse early if `live/NAME` is something certkeeper cannot swap (a real directory).
//! 2. Remove leftovers of interrupted installs of this lineage: `archive/NAME/.staging-*`
//!    directories and `live/.NAME.tmp-*` symlinks. Nothing points at them.
//! 3. Assemble the version in a fresh staging directory `archive/NAME/.staging-<unique>`:
//!    every file is created there with its final mode (the key `0600` from creation, or
//!    given to its `key_group` and then `0640` before its first byte), written and fsynced,
//!    then the staging directory is fsynced.
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
//! Every step works on directory descriptors reached from the state directory's, one
//! component at a time and without following symlinks: `archive/NAME` is opened (or
//! created) with `O_NOFOLLOW` and tightened to `0750`, the staging directory is created and
//! opened the same way, files are created `O_EXCL | O_NOFOLLOW`, and the renames and the
//! symlink are `renameat`/`symlinkat` relative to those descriptors. A symlink planted at
//! `archive/NAME` is refused before anything is written, so an install never writes outside
//! the state directory.
//!
//! The brief for this crate described writing each file through temp-and-rename inside the
//! version directory; assembling the version under a staging name and renaming the directory
//! gives the same crash safety and a stronger invariant (a `vNNNN` directory is never partial).

use std::ffi::OsStr;
use std::io::ErrorKind;

use certkeeper_core::{CertName, KeyGroup};
use rustix::io::Errno;

use crate::atomic::{unique_suffix, write_new_file, write_new_key};
use crate::error::{FileKind, StoreError};
use crate::layout::{
    ARCHIVE_DIR, CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE, GROUP_DIR_MODE, LIVE_DIR, Layout,
    PRIVKEY_FILE, PUBLIC_FILE_MODE, STAGING_PREFIX, highest_version, remove_leftovers,
    version_name,
};
use crate::nofollow::DirFd;
use crate::verify::VerifiedIssue;

/// How many version numbers to try when a concurrent install takes ours.
const VERSION_ATTEMPTS: u32 = 32;

/// Write `issue` as a new version of `name` and make it live, its key readable by
/// `key_group` when there is one. Returns the version name.
pub(crate) fn install(
    root: &DirFd,
    layout: &Layout,
    name: &CertName,
    issue: &VerifiedIssue,
    key_group: Option<&KeyGroup>,
) -> Result<String, StoreError> {
    let live = root.ensure_dir(LIVE_DIR, GROUP_DIR_MODE)?;
    check_swappable(&live, layout, name)?;

    let archive = root
        .ensure_dir(ARCHIVE_DIR, GROUP_DIR_MODE)?
        .ensure_dir(name.as_str(), GROUP_DIR_MODE)?;
    remove_leftovers(&archive, STAGING_PREFIX)?;
    remove_leftovers(&live, &Layout::live_temp_prefix(name))?;

    let staging_name = format!("{STAGING_PREFIX}{}", unique_suffix());
    let staging = archive.create_dir(&staging_name, GROUP_DIR_MODE)?;
    let version =
        fill_staging(&staging, issue, key_group).and_then(|()| publish(&archive, &staging_name));
    drop(staging);
    let version = match version {
        Ok(version) => version,
        Err(err) => {
            let _ = archive.remove_entry(OsStr::new(&staging_name));
            return Err(err);
        }
    };
    swap_live(&live, layout, name, &version)?;
    Ok(version)
}

/// `live/NAME` must be absent or a symlink (which the swap replaces as a link, never
/// following it).
fn check_swappable(live: &DirFd, layout: &Layout, name: &CertName) -> Result<(), StoreError> {
    match live.kind_of(name.as_str())? {
        None | Some(FileKind::Symlink) => Ok(()),
        Some(_) => Err(StoreError::LiveNotSymlink {
            path: layout.live_link(name),
        }),
    }
}

fn fill_staging(
    staging: &DirFd,
    issue: &VerifiedIssue,
    key_group: Option<&KeyGroup>,
) -> Result<(), StoreError> {
    // The key first: should anything below fail, no certificate exists without its key.
    write_new_key(
        staging,
        PRIVKEY_FILE,
        issue.key.to_pem().as_bytes(),
        key_group,
    )?;
    write_new_file(
        staging,
        CERT_FILE,
        issue.cert_pem().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    write_new_file(
        staging,
        CHAIN_FILE,
        issue.chain_pem().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    write_new_file(
        staging,
        FULLCHAIN_FILE,
        issue.fullchain_pem().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    staging.fsync()
}

/// Rename the staging directory to the next free version name.
fn publish(archive: &DirFd, staging: &str) -> Result<String, StoreError> {
    let mut number = highest_version(archive)?.saturating_add(1);
    for _ in 0..VERSION_ATTEMPTS {
        let version = version_name(number);
        match archive.rename_noreplace(staging, &version) {
            Ok(()) => {
                archive.fsync()?;
                return Ok(version);
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                number = number.saturating_add(1);
            }
            Err(err) => {
                return Err(StoreError::io(
                    "publish the new version as",
                    archive.child(&version),
                    err,
                ));
            }
        }
    }
    Err(StoreError::NoFreeVersion {
        dir: archive.path().to_path_buf(),
    })
}

/// Point `live/NAME` at `version` with one atomic rename.
fn swap_live(
    live: &DirFd,
    layout: &Layout,
    name: &CertName,
    version: &str,
) -> Result<(), StoreError> {
    let live_link = layout.live_link(name);
    let target = Layout::live_target(name, version);
    let prefix = Layout::live_temp_prefix(name);
    let mut attempts = 0;
    let temp = loop {
        let temp = format!("{prefix}{}", unique_suffix());
        match live.symlink(&target, &temp) {
            Ok(()) => break temp,
            Err(err) if err.kind() == ErrorKind::AlreadyExists && attempts < VERSION_ATTEMPTS => {
                attempts += 1;
            }
            Err(err) => return Err(StoreError::io("create symlink", live.child(&temp), err)),
        }
    };
    if let Err(err) = live.rename(&temp, name.as_str()) {
        let _ = live.remove_entry(OsStr::new(&temp));
        // A directory appeared at live/NAME since the check at the start.
        if matches!(
            err.raw_os_error().map(Errno::from_raw_os_error),
            Some(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST)
        ) {
            return Err(StoreError::LiveNotSymlink { path: live_link });
        }
        return Err(StoreError::io("swap the live symlink", live_link, err));
    }
    live.fsync()
}

//! Where everything lives under the state directory, and the modes it gets.
//!
//! ```text
//! state_dir/                                    0755
//!   lock                                        0644  flock(2) of the running certkeeper
//!   accounts/                                   0700  ACME account credentials
//!     <server>/<kid>/account.json               0700 dirs, 0600 file
//!   archive/                                    0755
//!     NAME/                                     0755
//!       v0001/ v0002/ ...                       0755  one per issuance, never modified
//!         cert.pem chain.pem fullchain.pem      0644
//!         privkey.pem                           0600
//!       .staging-*                                    an install in progress (or interrupted)
//!   live/                                       0755
//!     NAME -> ../archive/NAME/v0002                   swapped atomically by rename(2)
//!     .NAME.tmp-*                                     a swap in progress (or interrupted)
//!   state/                                      0755
//!     NAME.json                                 0644  lineage state
//! ```
//!
//! `live/NAME/fullchain.pem` and friends are certbot's paths, so web server configs written
//! for certbot keep working. The archive and version directories are world-searchable on
//! purpose: a web server worker or a hook running as another user may need the certificate
//! files, and the private key is protected by its own `0600` mode, which it has from the
//! moment it is created. The accounts tree is `0700` because everything in it is secret.
//!
//! Version names are `v` and at least four digits; the next one is the highest existing
//! number plus one, so names never repeat even after gaps, and anything that does not look
//! like a version (junk, staging leftovers) is ignored when numbering.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use certkeeper_core::CertName;

use crate::error::StoreError;

pub(crate) const LOCK_FILE: &str = "lock";
pub(crate) const ACCOUNTS_DIR: &str = "accounts";
pub(crate) const ARCHIVE_DIR: &str = "archive";
pub(crate) const LIVE_DIR: &str = "live";
pub(crate) const STATE_DIR: &str = "state";

/// The leaf certificate.
pub const CERT_FILE: &str = "cert.pem";
/// The intermediates, without the leaf.
pub const CHAIN_FILE: &str = "chain.pem";
/// Leaf followed by intermediates: what web servers want.
pub const FULLCHAIN_FILE: &str = "fullchain.pem";
/// The private key (`0600`).
pub const PRIVKEY_FILE: &str = "privkey.pem";
/// An ACME account's credentials (`0600`).
pub const ACCOUNT_FILE: &str = "account.json";

pub(crate) const PUBLIC_DIR_MODE: u32 = 0o755;
/// The state directory itself: no access for others, so nothing under it (accounts, keys of
/// orders in flight, live keys) is reachable by unrelated users; the group (a web server's
/// user, for instance) may read.
pub(crate) const STATE_ROOT_MODE: u32 = 0o750;
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;
pub(crate) const PUBLIC_FILE_MODE: u32 = 0o644;
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;

/// Name prefix of an archive version being assembled.
pub(crate) const STAGING_PREFIX: &str = ".staging-";

/// Paths under one state directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    pub(crate) fn accounts_root(&self) -> PathBuf {
        self.root.join(ACCOUNTS_DIR)
    }

    pub(crate) fn archive_root(&self) -> PathBuf {
        self.root.join(ARCHIVE_DIR)
    }

    pub(crate) fn live_root(&self) -> PathBuf {
        self.root.join(LIVE_DIR)
    }

    pub(crate) fn state_root(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub(crate) fn archive_dir(&self, name: &CertName) -> PathBuf {
        self.archive_root().join(name.as_str())
    }

    pub(crate) fn live_link(&self, name: &CertName) -> PathBuf {
        self.live_root().join(name.as_str())
    }

    /// Where `live/NAME` points for `version`, relative to `live/` so the state directory can
    /// be moved or bind-mounted elsewhere without breaking the links.
    pub(crate) fn live_target(name: &CertName, version: &str) -> PathBuf {
        Path::new("..")
            .join(ARCHIVE_DIR)
            .join(name.as_str())
            .join(version)
    }

    /// Prefix of the temporary symlink made while swapping `live/NAME`.
    pub(crate) fn live_temp_prefix(name: &CertName) -> String {
        format!(".{}.tmp-", name.as_str())
    }

    /// Private key of an order in flight, kept so a restart can finalize the same order.
    pub(crate) fn pending_key_file(&self, name: &CertName) -> PathBuf {
        self.state_root().join(format!("{name}.order-key.pem"))
    }

    pub(crate) fn state_file(&self, name: &CertName) -> PathBuf {
        self.state_root().join(format!("{}.json", name.as_str()))
    }
}

/// The directory name of version `number`.
pub(crate) fn version_name(number: u64) -> String {
    format!("v{number:04}")
}

/// The number of a version directory name, `None` for anything else.
pub(crate) fn parse_version(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('v')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The highest version number in `archive_dir` (0 when there is none).
pub(crate) fn highest_version(archive_dir: &Path) -> Result<u64, StoreError> {
    let mut highest = 0;
    for name in entry_names(archive_dir)? {
        if let Some(number) = parse_version(&name) {
            highest = highest.max(number);
        }
    }
    Ok(highest)
}

/// Lineage names present under `live/`, sorted; hidden entries and names that are not valid
/// lineage names are skipped.
pub(crate) fn lineages(live_root: &Path) -> Result<Vec<CertName>, StoreError> {
    let mut names: Vec<CertName> = entry_names(live_root)?
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .filter_map(|name| CertName::new(&name).ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Remove entries of `dir` whose names start with `prefix` (leftovers of an interrupted
/// install). Directories are removed recursively.
pub(crate) fn remove_leftovers(dir: &Path, prefix: &str) -> Result<(), StoreError> {
    for name in entry_names(dir)? {
        if !name.starts_with(prefix) {
            continue;
        }
        let path = dir.join(&name);
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(StoreError::io("remove leftover", path, err)),
        }
    }
    Ok(())
}

/// Names of the entries of `dir` (empty when `dir` does not exist). Names that are not UTF-8
/// are skipped: certkeeper never creates them.
fn entry_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(StoreError::io("list directory", dir, err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| StoreError::io("list directory", dir, err))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_sort_and_parse() {
        assert_eq!(version_name(1), "v0001");
        assert_eq!(version_name(12_345), "v12345");
        assert_eq!(parse_version("v0001"), Some(1));
        assert_eq!(parse_version("v12345"), Some(12_345));
        for junk in ["v", "v-1", "v1a", "x0001", ".staging-1", "v+1", "V0001"] {
            assert_eq!(parse_version(junk), None, "{junk}");
        }
        assert!(version_name(9) < version_name(10));
    }

    #[test]
    fn highest_version_tolerates_gaps_and_junk() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            highest_version(&dir.path().join("absent")).expect("absent"),
            0
        );
        for name in ["v0001", "v0007", "vjunk", ".staging-3-1-ab", "v0003"] {
            fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        fs::write(dir.path().join("v0100.txt"), "").expect("junk file");
        assert_eq!(highest_version(dir.path()).expect("list"), 7);
    }

    #[test]
    fn lineages_skip_hidden_and_invalid_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["www", "api.example", ".www.tmp-1", "bad name"] {
            fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        let names: Vec<String> = lineages(dir.path())
            .expect("list")
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        assert_eq!(names, ["api.example", "www"]);
    }
}

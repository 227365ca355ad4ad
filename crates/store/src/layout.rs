//! Where everything lives under the state directory, and the modes it gets.
//!
//! ```text
//! state_dir/                                    0750  owned by the user certkeeper runs as
//!   lock                                        0644  flock(2) of the running certkeeper
//!   accounts/                                   0700  ACME account credentials
//!     <server>/<kid>/account.json               0700 dirs, 0600 file
//!   archive/                                    0750
//!     NAME/                                     0750
//!       v0001/ v0002/ ...                       0750  one per issuance, never modified
//!         cert.pem chain.pem fullchain.pem      0644
//!         privkey.pem                           0600, or 0640 owned by `key_group`
//!       .staging-*                                    an install in progress (or interrupted)
//!   live/                                       0750
//!     NAME -> ../archive/NAME/v0002                   swapped atomically by rename(2)
//!     .NAME.tmp-*                                     a swap in progress (or interrupted)
//!   state/                                      0700
//!     NAME.json                                 0644  lineage state
//!     NAME.order-key.pem                        0600  key of the order in flight
//!     dns-presented.journal                     0644  DNS-01 records presented and not yet
//!                                                     removed (provider, name, value)
//!   outbox/                                     0700  notices not yet delivered (created
//!     TARGET/ID.json                            0600  when a [[notify]] target is set)
//! ```
//!
//! `live/NAME/fullchain.pem` and friends are certbot's paths, so web server configs written
//! for certbot keep working. Every directory is closed to others and writable by its owner
//! only. Writable by the owner only, because a group member who can create entries can plant
//! a symlink or a file where certkeeper will write next (the key of the next order, say);
//! closed to others, because nothing here is for unrelated users. A web server or hook that
//! needs the certificates gets them through the group: `archive/` and `live/` are `0750`, and
//! the private key keeps its own `0600` from the moment it is created (the web server reads it
//! as root before dropping privileges, as with certbot). A lineage configured with `key_group`
//! gets its `privkey.pem` `0640`, owned by that group from its creation: for servers that
//! read their key as an unprivileged user in that group (which must also be able to enter
//! the directories above, through certkeeper's group). The key of an order in flight in
//! `state/` stays `0600` either way: only certkeeper uses it. `accounts/` and `state/` hold
//! credentials and the keys of orders in flight, and nobody but certkeeper needs them:
//! `0700`. [`Store::open`](crate::Store::open) tightens directories that are wider than this
//! (older certkeepers made `archive/`, `live/` and `state/` `0755`), clearing setuid, setgid
//! and sticky bits too; it never widens.
//!
//! Everything under the state directory is reached through the descriptor of the state
//! directory, one component at a time and never through a symlink (module `nofollow`); the
//! paths below are for messages and hook environments only.
//!
//! Version names are `v` and at least four digits; the next one is the highest existing
//! number plus one, so names never repeat even after gaps, and anything that does not look
//! like a version (junk, staging leftovers) is ignored when numbering.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use certkeeper_core::CertName;

use crate::error::StoreError;
use crate::nofollow::DirFd;

pub(crate) const LOCK_FILE: &str = "lock";
pub(crate) const ACCOUNTS_DIR: &str = "accounts";
pub(crate) const ARCHIVE_DIR: &str = "archive";
pub(crate) const LIVE_DIR: &str = "live";
pub(crate) const STATE_DIR: &str = "state";
/// The notification outbox (`0700`), owned by the notify crate's `Outbox`.
pub(crate) const OUTBOX_DIR: &str = "outbox";

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

/// `archive/`, `live/` and the lineage and version directories: the group (a web server's
/// user, for instance) may read certificates; nobody but the owner may create entries.
pub(crate) const GROUP_DIR_MODE: u32 = 0o750;
/// The state directory itself: no access for others, so nothing under it (accounts, keys of
/// orders in flight, live keys) is reachable by unrelated users; the group may read.
pub(crate) const STATE_ROOT_MODE: u32 = 0o750;
/// `accounts/` (and each account's directories) and `state/`: the owner only.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;
pub(crate) const PUBLIC_FILE_MODE: u32 = 0o644;
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;
/// A lineage's `privkey.pem` with `key_group`: its group may read it.
pub(crate) const GROUP_KEY_FILE_MODE: u32 = 0o640;

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
    /// be moved or bind-mounted elsewhere without breaking the links. The only form of link
    /// certkeeper makes, and the only one it reads (see [`parse_live_target`]).
    pub(crate) fn live_target(name: &CertName, version: &str) -> PathBuf {
        PathBuf::from(format!("../{ARCHIVE_DIR}/{}/{version}", name.as_str()))
    }

    /// Prefix of the temporary symlink made while swapping `live/NAME`.
    pub(crate) fn live_temp_prefix(name: &CertName) -> String {
        format!(".{}.tmp-", name.as_str())
    }

    pub(crate) fn state_file(&self, name: &CertName) -> PathBuf {
        self.state_root().join(state_file_name(name))
    }
}

/// Private key of an order in flight (in `state/`), kept so a restart can finalize the same
/// order.
pub(crate) fn pending_key_file_name(name: &CertName) -> String {
    format!("{}.order-key.pem", name.as_str())
}

/// The lineage state file (in `state/`).
pub(crate) fn state_file_name(name: &CertName) -> String {
    format!("{}.json", name.as_str())
}

/// The version a `live/NAME` link target names, when it is exactly what certkeeper makes:
/// `../archive/NAME/vNNNN`, relative, for this very lineage. `None` for anything else (an
/// absolute path, `..` escapes, another lineage, extra or missing components), which is then
/// never followed. Compared as a string, not as path components, so spellings such as
/// `..//archive/./NAME/v0001` are refused too.
pub(crate) fn parse_live_target(name: &CertName, target: &Path) -> Option<String> {
    let target = target.to_str()?;
    let prefix = format!("../{ARCHIVE_DIR}/{}/", name.as_str());
    let version = target.strip_prefix(&prefix)?;
    parse_version(version)?;
    Some(version.to_owned())
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
pub(crate) fn highest_version(archive_dir: &DirFd) -> Result<u64, StoreError> {
    let mut highest = 0;
    for name in archive_dir.entry_names()? {
        if let Some(number) = parse_version(&name) {
            highest = highest.max(number);
        }
    }
    Ok(highest)
}

/// Lineage names present under `live/`, sorted; hidden entries and names that are not valid
/// lineage names are skipped.
pub(crate) fn lineages(live_root: &DirFd) -> Result<Vec<CertName>, StoreError> {
    let mut names: Vec<CertName> = live_root
        .entry_names()?
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .filter_map(|name| CertName::new(&name).ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Remove entries of `dir` whose names start with `prefix` (leftovers of an interrupted
/// install). Directories are removed recursively, never following a symlink: a link is
/// removed as a link, its target untouched.
pub(crate) fn remove_leftovers(dir: &DirFd, prefix: &str) -> Result<(), StoreError> {
    for name in dir.entry_names()? {
        if name.starts_with(prefix) {
            dir.remove_entry(OsStr::new(&name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
        let handle = DirFd::open_trusted(dir.path()).expect("open");
        assert_eq!(highest_version(&handle).expect("empty"), 0);
        for name in ["v0001", "v0007", "vjunk", ".staging-3-1-ab", "v0003"] {
            fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        fs::write(dir.path().join("v0100.txt"), "").expect("junk file");
        assert_eq!(highest_version(&handle).expect("list"), 7);
    }

    #[test]
    fn lineages_skip_hidden_and_invalid_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["www", "api.example", ".www.tmp-1", "bad name"] {
            fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        let handle = DirFd::open_trusted(dir.path()).expect("open");
        let names: Vec<String> = lineages(&handle)
            .expect("list")
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        assert_eq!(names, ["api.example", "www"]);
    }

    #[test]
    fn only_certkeepers_own_link_form_is_accepted() {
        let www = CertName::new("www").expect("name");
        let accept = |target: &str| parse_live_target(&www, Path::new(target));
        assert_eq!(accept("../archive/www/v0001").as_deref(), Some("v0001"));
        assert_eq!(accept("../archive/www/v12345").as_deref(), Some("v12345"));
        assert_eq!(
            Layout::live_target(&www, "v0002"),
            Path::new("../archive/www/v0002")
        );
        for refused in [
            "/srv/www/v0001",
            "/var/lib/certkeeper/archive/www/v0001",
            "../../outside",
            "../archive/other/v0001",
            "../archive/www/v0001/..",
            "../archive/www/../other/v0001",
            "../archive/www/vjunk",
            "../archive/www/v0001/",
            "../archive/www",
            "..//archive/www/v0001",
            "../archive/./www/v0001",
            "./../archive/www/v0001",
            "archive/www/v0001",
            "../archive/www/.staging-1",
        ] {
            assert_eq!(accept(refused), None, "{refused}");
        }
    }

    #[test]
    fn leftovers_are_removed_without_following_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).expect("mkdir outside");
        fs::write(outside.join("precious"), "keep").expect("victim");
        let archive = dir.path().join("archive");
        let staging = archive.join(".staging-1");
        fs::create_dir_all(staging.join("nested")).expect("mkdir staging");
        fs::write(staging.join("privkey.pem"), "key").expect("file");
        std::os::unix::fs::symlink(&outside, staging.join("link")).expect("link");
        std::os::unix::fs::symlink(&outside, archive.join(".staging-2")).expect("link");
        fs::write(archive.join("v0001"), "kept").expect("kept");

        let handle = DirFd::open_trusted(&archive).expect("open");
        remove_leftovers(&handle, STAGING_PREFIX).expect("remove");

        let left: Vec<String> = handle.entry_names().expect("list");
        assert_eq!(left, ["v0001"]);
        assert_eq!(
            fs::read_to_string(outside.join("precious")).expect("victim"),
            "keep"
        );
    }
}

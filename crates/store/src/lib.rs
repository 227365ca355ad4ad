//! certkeeper's on-disk state: certbot-compatible `live/` layout, crash-safe atomic installs,
//! account and lineage state files.
//!
//! [`Store`] is the only way the rest of certkeeper touches the state directory. It owns
//! three promises:
//!
//! * **Nothing unverified is written.** [`Store::install`] checks the chain, the key and the
//!   names before creating a single file (module `verify`).
//! * **Key and certificate switch together.** Each issuance is a new, never-modified
//!   directory under `archive/NAME/`, and `live/NAME` is a symlink swapped with one atomic
//!   rename (module `install`); every other file is written temp-fsync-rename-fsync
//!   (module `atomic`). A crash at any point leaves the old pair or the new pair live, never
//!   a mix.
//! * **Secrets are private from their first byte.** Private keys and account credentials are
//!   created `0600` (under `0700` for accounts), never widened later, never printed. A
//!   lineage's key that its `key_group` may read is given to that group before its mode
//!   opens to it (`0640`) and before its first byte.
//! * **Nothing in the state directory steers certkeeper elsewhere.** The state directory is
//!   opened once and kept open; everything under it is reached from that descriptor without
//!   following symlinks, and checked to be the kind of entry expected, owned by the user
//!   certkeeper runs as (module `nofollow`). A planted symlink, a hard-linked lock file or a
//!   foreign file is refused with [`StoreError::Unsafe`] naming it, never followed; the only
//!   links read are certkeeper's own `live/NAME -> ../archive/NAME/vNNNN` (module `live`).
//!
//! * **One writer of a lineage's state.** `state/NAME.json` is read and written only through
//!   [`Lineage`] ([`Store::lineage`]): loaded once, changed by one method per transition,
//!   each saved with one atomic write (module `lineage`).
//!
//! The layout, with modes, is documented in [`layout`]. One certkeeper runs per state
//! directory, enforced by [`Store::lock`] (module `lock`).

mod accounts;
mod atomic;
mod error;
mod install;
pub mod layout;
mod lineage;
mod live;
mod lock;
mod nofollow;
mod presented;
mod state;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use certkeeper_core::{CertName, DomainName, KeyGroup};

pub use accounts::AccountKey;
pub use atomic::write_file_atomic;
pub use error::{FileKind, StoreError, UnsafeProblem, VerifyProblem};
pub use lineage::{FailureClass, Lineage, LoadedLineage, RATE_LIMIT_PAUSE, RECHECK_WAITING_ORDER};
pub use live::{LiveCert, LiveFiles, LiveKey};
pub use lock::StoreLock;
pub use presented::{PRESENTED_FILE, PresentedJournal, PresentedTxt};
pub use state::{
    AttemptRecord, LineageState, NotifiedRecord, PendingOrder, RenewalInfoRecord, RevokedRecord,
    from_unix_seconds, unix_seconds,
};
pub use verify::{CheckedIssue, IssueFacts, inspect_issue};

use crate::layout::{
    ACCOUNTS_DIR, ARCHIVE_DIR, GROUP_DIR_MODE, LIVE_DIR, Layout, OUTBOX_DIR, PRIVATE_DIR_MODE,
    STATE_DIR, STATE_ROOT_MODE,
};
use crate::nofollow::{DirFd, HeldDir, Reached};

/// The state directory, held open: every operation goes through its descriptor, so moving
/// or replacing the path after [`Store::open`] cannot redirect the store.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
    root: Arc<DirFd>,
    /// `live/`, `archive/` and `state/`, kept open for reads (see [`HeldDir`]).
    held: Arc<HeldDirs>,
}

#[derive(Debug)]
struct HeldDirs {
    live: HeldDir,
    archive: HeldDir,
    state: HeldDir,
}

impl Store {
    /// Open (and, where missing, create) the state directory and its `accounts/` and
    /// `state/` (`0700`), `archive/` and `live/` (`0750`) subdirectories. The state directory
    /// is `0750`. Existing directories wider than that are tightened (see [`layout`]).
    ///
    /// The state directory's own path is trusted up to its last component, which must not be
    /// a symlink; it must be owned by the user certkeeper runs as (the effective uid), and so
    /// must every subdirectory, none of which may be a symlink.
    ///
    /// # Errors
    /// [`StoreError::StateDirNotOwned`] when the state directory belongs to another user;
    /// [`StoreError::Unsafe`] when it or a subdirectory is a symlink, not a directory or
    /// another user's; [`StoreError::Io`] when a directory cannot be created or inspected.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let root = DirFd::open_root(state_dir, STATE_ROOT_MODE)?;
        root.ensure_dir(ACCOUNTS_DIR, PRIVATE_DIR_MODE)?;
        let archive = root.ensure_dir(ARCHIVE_DIR, GROUP_DIR_MODE)?;
        let live = root.ensure_dir(LIVE_DIR, GROUP_DIR_MODE)?;
        let state = root.ensure_dir(STATE_DIR, PRIVATE_DIR_MODE)?;
        let held = HeldDirs {
            live: HeldDir::new(LIVE_DIR, live)?,
            archive: HeldDir::new(ARCHIVE_DIR, archive)?,
            state: HeldDir::new(STATE_DIR, state)?,
        };
        Ok(Store {
            layout: Layout::new(state_dir),
            root: Arc::new(root),
            held: Arc::new(held),
        })
    }

    /// The state directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Take the exclusive, non-blocking lock on `state_dir/lock`, held until the returned
    /// guard is dropped.
    ///
    /// The lock file must be a regular file of certkeeper's own with one link (or absent):
    /// it is truncated to write the holder's pid.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process (or another open of this store in this
    /// process) holds it; [`StoreError::Unsafe`] when `lock` is a symlink, not a regular
    /// file, another user's or hard-linked; [`StoreError::Io`] when it cannot be opened.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        lock::acquire(&self.root)
    }

    /// `state_dir/live/NAME`, the certbot-compatible directory holding `cert.pem`,
    /// `chain.pem`, `fullchain.pem` and `privkey.pem`.
    #[must_use]
    pub fn live_dir(&self, name: &CertName) -> PathBuf {
        self.layout.live_link(name)
    }

    /// `state_dir/archive/NAME`, holding one directory per issuance.
    #[must_use]
    pub fn archive_dir(&self, name: &CertName) -> PathBuf {
        self.layout.archive_dir(name)
    }

    /// `state_dir/outbox`, the notification outbox, created `0700` when missing and checked
    /// like every other subdirectory (certkeeper's own, not a symlink, tightened when wider),
    /// because a notice may carry an error text the operator would not publish.
    ///
    /// # Errors
    /// [`StoreError::Unsafe`] when `outbox` is a symlink, not a directory or another user's;
    /// [`StoreError::Io`] when it cannot be created.
    pub fn outbox_dir(&self) -> Result<PathBuf, StoreError> {
        self.root.ensure_dir(OUTBOX_DIR, PRIVATE_DIR_MODE)?;
        Ok(self.layout.root().join(OUTBOX_DIR))
    }

    /// `state_dir/outbox` without creating it (for readers such as `status`).
    #[must_use]
    pub fn outbox_path(&self) -> PathBuf {
        self.layout.root().join(OUTBOX_DIR)
    }

    /// `state_dir/state/NAME.json`.
    #[must_use]
    pub fn lineage_state_path(&self, name: &CertName) -> PathBuf {
        self.layout.state_file(name)
    }

    /// What is live for `name`, or `None` when `live/NAME` does not exist. The certificate
    /// and key are read from one version and checked to belong together; `observed.revoked`
    /// is true only when the lineage state records this very certificate's serial as revoked.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the files are unparsable or the key does not match;
    /// [`StoreError::Unsafe`] when `live/NAME` points anywhere but `../archive/NAME/vNNNN`,
    /// or an entry on the way is a symlink, another user's, or (the key) open to others;
    /// [`StoreError::Io`] when they cannot be read; [`StoreError::State`] when the lineage
    /// state file is invalid.
    pub fn read_live(&self, name: &CertName) -> Result<Option<LiveCert>, StoreError> {
        let state = self.read_state(name)?;
        self.read_live_with(name, &state, live::Check::Pair)
    }

    /// Like [`Store::read_live`], reading the certificate only: what planning needs, fast
    /// for large fleets (parsing an RSA key costs far more than the certificate). The pair
    /// was verified when it was installed and archive versions are never rewritten, so
    /// only a hand-edited key would go unnoticed here; [`Store::read_live`] (used by
    /// `status`) still checks it.
    ///
    /// # Errors
    /// As [`Store::read_live`], without the key checks.
    pub fn read_live_certificate(&self, name: &CertName) -> Result<Option<LiveCert>, StoreError> {
        let state = self.read_state(name)?;
        self.read_live_with(name, &state, live::Check::CertificateOnly)
    }

    /// Verify and install a new certificate for `name`, then make it live.
    ///
    /// `chain_pem` is the chain as the CA returns it (leaf first, then intermediates). Before
    /// anything is written, the chain must parse, the leaf's public key must be `key_pem`'s,
    /// and the leaf's DNS names must be exactly `domains` (as sets, case-insensitively).
    /// Writes `cert.pem` (leaf), `chain.pem` (intermediates), `fullchain.pem` (both) and
    /// `privkey.pem` (`0600`) into a new archive version and swaps `live/NAME` to it.
    ///
    /// # Errors
    /// [`StoreError::Verify`] (nothing written) when the inputs do not check out;
    /// [`StoreError::LiveNotSymlink`] or [`StoreError::State`] (nothing written) when
    /// `live/NAME` is a real directory or the lineage state file is damaged;
    /// [`StoreError::Unsafe`] (nothing written) when `archive/NAME` or a directory above it
    /// is a symlink or another user's; [`StoreError::Io`] when writing fails (the previous
    /// certificate stays live).
    pub fn install(
        &self,
        name: &CertName,
        domains: &[DomainName],
        key_pem: &str,
        chain_pem: &str,
    ) -> Result<LiveCert, StoreError> {
        // Read the lineage state before writing, so a damaged state file stops the install
        // while nothing is written, rather than failing the read-back after the swap.
        let state = self.read_state(name)?;
        self.install_with_state(name, domains, key_pem, chain_pem, &state, None)
    }

    /// Check a key and chain for `name` as [`Store::install`] would (the key loads, the leaf
    /// is its certificate and names exactly `domains`), writing nothing.
    ///
    /// # Errors
    /// [`StoreError::Verify`] naming what is wrong.
    pub fn check_issue(
        name: &CertName,
        domains: &[DomainName],
        key_pem: &str,
        chain_pem: &str,
    ) -> Result<CheckedIssue, StoreError> {
        verify::checked_issue(domains, key_pem, chain_pem).map_err(|problem| StoreError::Verify {
            name: name.clone(),
            problem,
        })
    }

    /// [`Store::install`] with the lineage state already read, the key given to `key_group`
    /// when there is one.
    pub(crate) fn install_with_state(
        &self,
        name: &CertName,
        domains: &[DomainName],
        key_pem: &str,
        chain_pem: &str,
        state: &LineageState,
        key_group: Option<&KeyGroup>,
    ) -> Result<LiveCert, StoreError> {
        let issue = verify::check_issue(domains, key_pem, chain_pem).map_err(|problem| {
            StoreError::Verify {
                name: name.clone(),
                problem,
            }
        })?;
        install::install(&self.root, &self.layout, name, &issue, key_group)?;
        self.read_live_with(name, state, live::Check::Pair)?
            .ok_or_else(|| StoreError::Io {
                action: "read back the installed certificate",
                path: self.live_dir(name),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    }

    /// Where the account for `key` is stored.
    ///
    /// # Errors
    /// [`StoreError::InvalidAccountKey`] when a component is not a safe directory name.
    pub fn account_path(&self, key: &AccountKey) -> Result<PathBuf, StoreError> {
        accounts::account_path(&self.layout, key)
    }

    /// The stored account JSON for `key` (from
    /// `certkeeper_core::lifecycle::account_storage_key`), or `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError::InvalidAccountKey`]; [`StoreError::Unsafe`] when a directory on the way
    /// or the file is a symlink or not certkeeper's, or the file is open to others;
    /// [`StoreError::Io`] when it cannot be read.
    pub fn read_account(&self, key: &AccountKey) -> Result<Option<Vec<u8>>, StoreError> {
        accounts::read(&self.root, &self.layout, key)
    }

    /// Store account JSON for `key` atomically, `0600` from creation under `0700`
    /// directories. Returns the file's path.
    ///
    /// # Errors
    /// [`StoreError::InvalidAccountKey`]; [`StoreError::Unsafe`] when a directory on the way
    /// or the file is a symlink or not certkeeper's; [`StoreError::Io`] when it cannot be
    /// written.
    pub fn write_account(&self, key: &AccountKey, json: &[u8]) -> Result<PathBuf, StoreError> {
        accounts::write(&self.root, &self.layout, key, json)
    }

    /// Lineage names present under `live/`, sorted.
    ///
    /// # Errors
    /// [`StoreError::Unsafe`] when `live/` is a symlink or not certkeeper's;
    /// [`StoreError::Io`] when it cannot be listed.
    pub fn lineages(&self) -> Result<Vec<CertName>, StoreError> {
        match self.live_dir_fd()? {
            Some(live) => layout::lineages(&live),
            None => Ok(Vec::new()),
        }
    }

    /// `live/`, as it is now (see [`HeldDir::current`]).
    fn live_dir_fd(&self) -> Result<Option<Reached<'_>>, StoreError> {
        self.held.live.current(&self.root)
    }

    /// The lineage state of `name`, read through the held `state/`.
    pub(crate) fn read_state(&self, name: &CertName) -> Result<LineageState, StoreError> {
        match self.held.state.current(&self.root)? {
            Some(dir) => state::read_in(&dir, name),
            None => Ok(LineageState::default()),
        }
    }

    /// The pending order key of `name`, read through the held `state/`.
    pub(crate) fn read_pending_key(&self, name: &CertName) -> Result<Option<Vec<u8>>, StoreError> {
        match self.held.state.current(&self.root)? {
            Some(dir) => state::read_pending_key_in(&dir, name),
            None => Ok(None),
        }
    }

    /// What is live for `name`, read through the held `live/` and `archive/`.
    pub(crate) fn read_live_with(
        &self,
        name: &CertName,
        state: &LineageState,
        check: live::Check,
    ) -> Result<Option<LiveCert>, StoreError> {
        self.read_live_pair(name, state, check)
            .map(|read| read.map(|(live, _)| live))
    }

    /// Every file of what is live for `name`, read through the held `live/` and `archive/`.
    pub(crate) fn read_live_files(
        &self,
        name: &CertName,
        state: &LineageState,
    ) -> Result<Option<LiveFiles>, StoreError> {
        let Some(live) = self.live_dir_fd()? else {
            return Ok(None);
        };
        live::read_live_files(
            &live,
            || self.held.archive.current(&self.root),
            &self.layout,
            name,
            state,
        )
    }

    /// [`Store::read_live_with`], with the key's text when `check` reads it.
    pub(crate) fn read_live_pair(
        &self,
        name: &CertName,
        state: &LineageState,
        check: live::Check,
    ) -> Result<Option<(LiveCert, Option<String>)>, StoreError> {
        let Some(live) = self.live_dir_fd()? else {
            return Ok(None);
        };
        live::read_live_pair(
            &live,
            || self.held.archive.current(&self.root),
            &self.layout,
            name,
            state,
            check,
        )
    }
}

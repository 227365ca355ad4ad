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
//!   created `0600` (under `0700` for accounts), never widened later, never printed.
//!
//! The layout, with modes, is documented in [`layout`]. One certkeeper runs per state
//! directory, enforced by [`Store::lock`] (module `lock`).

mod accounts;
mod atomic;
mod error;
mod install;
pub mod layout;
mod live;
mod lock;
mod state;
mod verify;

use std::fs::{self, Permissions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use certkeeper_core::{CertName, DomainName};

pub use accounts::AccountKey;
pub use atomic::write_file_atomic;
pub use error::{StoreError, VerifyProblem};
pub use live::LiveCert;
pub use lock::StoreLock;
pub use state::{
    AttemptRecord, LineageState, PendingOrder, RevokedRecord, from_unix_seconds, unix_seconds,
};

use crate::atomic::create_dir;
use crate::layout::{Layout, PRIVATE_DIR_MODE, PUBLIC_DIR_MODE, STATE_ROOT_MODE};

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
}

impl Store {
    /// Open (and, where missing, create) the state directory (`0750`: nothing for others; an
    /// existing one is tightened to that) and its `accounts/` (`0700`),
    /// `archive/`, `live/` and `state/` (`0755`) subdirectories. An existing `accounts/` that
    /// group or others can read is tightened to `0700`, since it holds credentials.
    ///
    /// # Errors
    /// [`StoreError::Io`] when a directory cannot be created or inspected.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        if state_dir.is_dir() {
            tighten(state_dir, STATE_ROOT_MODE)?;
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(STATE_ROOT_MODE)
                .create(state_dir)
                .map_err(|err| StoreError::io("create state directory", state_dir, err))?;
            // The umask may have narrowed it further; that is fine. Never wider.
        }
        let layout = Layout::new(state_dir);
        let accounts = layout.accounts_root();
        if !create_dir(&accounts, PRIVATE_DIR_MODE)? {
            tighten(&accounts, PRIVATE_DIR_MODE)?;
        }
        create_dir(&layout.archive_root(), PUBLIC_DIR_MODE)?;
        create_dir(&layout.live_root(), PUBLIC_DIR_MODE)?;
        create_dir(&layout.state_root(), PUBLIC_DIR_MODE)?;
        Ok(Store { layout })
    }

    /// The state directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Take the exclusive, non-blocking lock on `state_dir/lock`, held until the returned
    /// guard is dropped.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process (or another open of this store in this
    /// process) holds it; [`StoreError::Io`] when the lock file cannot be opened.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        lock::acquire(&self.layout.lock_file())
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
    /// [`StoreError::Io`] when they cannot be read; [`StoreError::State`] when the lineage
    /// state file is invalid.
    pub fn read_live(&self, name: &CertName) -> Result<Option<LiveCert>, StoreError> {
        let state = self.read_lineage_state(name)?;
        live::read_live(&self.layout, name, &state, live::Check::Pair)
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
        let state = self.read_lineage_state(name)?;
        live::read_live(&self.layout, name, &state, live::Check::CertificateOnly)
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
    /// [`StoreError::Io`] when writing fails (the previous certificate stays live).
    pub fn install(
        &self,
        name: &CertName,
        domains: &[DomainName],
        key_pem: &str,
        chain_pem: &str,
    ) -> Result<LiveCert, StoreError> {
        let issue = verify::check_issue(domains, key_pem, chain_pem).map_err(|problem| {
            StoreError::Verify {
                name: name.clone(),
                problem,
            }
        })?;
        // Read the lineage state before writing, so a damaged state file stops the install
        // while nothing is written, rather than failing the read-back after the swap.
        let state = self.read_lineage_state(name)?;
        install::install(&self.layout, name, &issue)?;
        live::read_live(&self.layout, name, &state, live::Check::Pair)?.ok_or_else(|| {
            StoreError::Io {
                action: "read back the installed certificate",
                path: self.live_dir(name),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }
        })
    }

    /// The lineage state, or the default when there is none yet.
    ///
    /// # Errors
    /// [`StoreError::State`] when the file is not valid; [`StoreError::Io`] when it cannot be
    /// read.
    pub fn read_lineage_state(&self, name: &CertName) -> Result<LineageState, StoreError> {
        state::read(&self.layout.state_file(name))
    }

    /// Replace the lineage state atomically.
    ///
    /// # Errors
    /// [`StoreError::Io`] when it cannot be written.
    pub fn write_lineage_state(
        &self,
        name: &CertName,
        state: &LineageState,
    ) -> Result<(), StoreError> {
        state::write(&self.layout.state_file(name), state)
    }

    /// Keep the private key of an order in flight (`0600` from creation), so a restart can
    /// finalize the same order instead of placing a new one.
    ///
    /// # Errors
    /// [`StoreError::Io`] when it cannot be written.
    pub fn write_pending_key(&self, name: &CertName, key_pem: &[u8]) -> Result<(), StoreError> {
        write_file_atomic(
            &self.layout.pending_key_file(name),
            key_pem,
            layout::PRIVATE_FILE_MODE,
        )
    }

    /// The key of the order in flight, if one was kept.
    ///
    /// # Errors
    /// [`StoreError::Io`] when it exists but cannot be read.
    pub fn read_pending_key(&self, name: &CertName) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.layout.pending_key_file(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StoreError::io("read the pending order key", path, err)),
        }
    }

    /// Forget the key of the order in flight (after install, or when the order is dead).
    ///
    /// # Errors
    /// [`StoreError::Io`] when it exists but cannot be removed.
    pub fn remove_pending_key(&self, name: &CertName) -> Result<(), StoreError> {
        let path = self.layout.pending_key_file(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(StoreError::io("remove the pending order key", path, err)),
        }
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
    /// [`StoreError::InvalidAccountKey`], or [`StoreError::Io`] when it cannot be read.
    pub fn read_account(&self, key: &AccountKey) -> Result<Option<Vec<u8>>, StoreError> {
        accounts::read(&self.layout, key)
    }

    /// Store account JSON for `key` atomically, `0600` from creation under `0700`
    /// directories. Returns the file's path.
    ///
    /// # Errors
    /// [`StoreError::InvalidAccountKey`], or [`StoreError::Io`] when it cannot be written.
    pub fn write_account(&self, key: &AccountKey, json: &[u8]) -> Result<PathBuf, StoreError> {
        accounts::write(&self.layout, key, json)
    }

    /// Lineage names present under `live/`, sorted.
    ///
    /// # Errors
    /// [`StoreError::Io`] when `live/` cannot be listed.
    pub fn lineages(&self) -> Result<Vec<CertName>, StoreError> {
        layout::lineages(&self.layout.live_root())
    }
}

/// Remove group and other permission bits beyond `mode` from an existing directory.
fn tighten(dir: &Path, mode: u32) -> Result<(), StoreError> {
    let meta = fs::metadata(dir).map_err(|err| StoreError::io("inspect", dir, err))?;
    let current = meta.permissions().mode() & 0o7777;
    if current & !mode != 0 {
        fs::set_permissions(dir, Permissions::from_mode(current & mode))
            .map_err(|err| StoreError::io("restrict the mode of", dir, err))?;
    }
    Ok(())
}

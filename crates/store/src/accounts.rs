//! ACME account credentials: `accounts/<server>/<kid>/account.json`.
//!
//! The two components come from `certkeeper_core::lifecycle::account_storage_key`, which
//! already sanitises them; they are checked again here because they become path components
//! and a slip must not write credentials outside `accounts/`. Directories are `0700` and the
//! file `0600` from creation: the JSON holds the account's private key. Each directory is
//! opened from the one above without following symlinks, and a stored account is only read
//! back if it is a regular file of ours that others cannot read.

use std::path::PathBuf;

use crate::atomic::write_atomic_at;
use crate::error::StoreError;
use crate::layout::{ACCOUNT_FILE, ACCOUNTS_DIR, Layout, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};
use crate::nofollow::{DirFd, Secrecy};

/// `(server, kid)` as produced by `account_storage_key`.
pub type AccountKey = (String, String);

pub(crate) fn account_path(layout: &Layout, key: &AccountKey) -> Result<PathBuf, StoreError> {
    check_component(&key.0)?;
    check_component(&key.1)?;
    Ok(layout
        .accounts_root()
        .join(&key.0)
        .join(&key.1)
        .join(ACCOUNT_FILE))
}

pub(crate) fn read(
    root: &DirFd,
    layout: &Layout,
    key: &AccountKey,
) -> Result<Option<Vec<u8>>, StoreError> {
    account_path(layout, key)?;
    let Some(accounts) = root.open_dir(ACCOUNTS_DIR)? else {
        return Ok(None);
    };
    let Some(server) = accounts.open_dir(&key.0)? else {
        return Ok(None);
    };
    let Some(kid) = server.open_dir(&key.1)? else {
        return Ok(None);
    };
    kid.read_file(ACCOUNT_FILE, Secrecy::Secret, "read account")
}

pub(crate) fn write(
    root: &DirFd,
    layout: &Layout,
    key: &AccountKey,
    json: &[u8],
) -> Result<PathBuf, StoreError> {
    let path = account_path(layout, key)?;
    let kid = root
        .ensure_dir(ACCOUNTS_DIR, PRIVATE_DIR_MODE)?
        .ensure_dir(&key.0, PRIVATE_DIR_MODE)?
        .ensure_dir(&key.1, PRIVATE_DIR_MODE)?;
    write_atomic_at(&kid, ACCOUNT_FILE, json, PRIVATE_FILE_MODE)?;
    Ok(path)
}

fn check_component(component: &str) -> Result<(), StoreError> {
    let safe = !component.is_empty()
        && !component.starts_with('.')
        && !component.contains(['/', '\\', '\0']);
    if safe {
        Ok(())
    } else {
        Err(StoreError::InvalidAccountKey {
            component: component.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_components_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a\0b"] {
            assert!(
                matches!(
                    check_component(bad),
                    Err(StoreError::InvalidAccountKey { .. })
                ),
                "{bad:?}"
            );
        }
        for good in ["localhost_14000_dir", "no-eab", "_.._.._etc", "kid-1"] {
            assert!(check_component(good).is_ok(), "{good:?}");
        }
    }
}

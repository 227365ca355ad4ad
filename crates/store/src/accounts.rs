//! ACME account credentials: `accounts/<server>/<kid>/account.json`.
//!
//! The two components come from `certkeeper_core::lifecycle::account_storage_key`, which
//! already sanitises them; they are checked again here because they become path components
//! and a slip must not write credentials outside `accounts/`. Directories are `0700` and the
//! file `0600` from creation: the JSON holds the account's private key.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

use crate::atomic::{create_dir, write_file_atomic};
use crate::error::StoreError;
use crate::layout::{ACCOUNT_FILE, Layout, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};

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

pub(crate) fn read(layout: &Layout, key: &AccountKey) -> Result<Option<Vec<u8>>, StoreError> {
    let path = account_path(layout, key)?;
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(StoreError::io("read account", path, err)),
    }
}

pub(crate) fn write(layout: &Layout, key: &AccountKey, json: &[u8]) -> Result<PathBuf, StoreError> {
    let path = account_path(layout, key)?;
    let server_dir = layout.accounts_root().join(&key.0);
    create_dir(&layout.accounts_root(), PRIVATE_DIR_MODE)?;
    create_dir(&server_dir, PRIVATE_DIR_MODE)?;
    create_dir(&server_dir.join(&key.1), PRIVATE_DIR_MODE)?;
    write_file_atomic(&path, json, PRIVATE_FILE_MODE)?;
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

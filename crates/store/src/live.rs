//! Reading what is live for a lineage.
//!
//! `live/NAME` is resolved once, and the certificate and key are then read from the version
//! directory it pointed to, not through the symlink: an install swapping the link between the
//! two reads cannot hand back a certificate from one issuance and a key from another. The
//! pair read is checked to match, so a hand-edited or damaged lineage is reported as
//! [`StoreError::Corrupt`] instead of being reported as healthy.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use certkeeper_core::{CertName, ObservedCert};

use crate::error::{StoreError, VerifyProblem};
use crate::layout::{CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE, Layout, PRIVKEY_FILE};
use crate::state::LineageState;
use crate::verify::{key_matches, leaf_info, parse_certificate, parse_chain, parse_private_key};

/// The certificate currently live for a lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCert {
    /// What the renewal planner needs: validity, names, key type, revocation.
    pub observed: ObservedCert,
    /// Serial number as lower-case hex without leading zeros, as Pebble's management API and
    /// `big.Int.Text(16)` print it (`openssl x509 -serial` prints the same digits, upper case
    /// and padded to whole bytes).
    pub serial_hex: String,
    /// The issuer's distinguished name, e.g. `CN=Pebble Intermediate CA 1d4b3c`.
    pub issuer: String,
    /// The leaf certificate, DER, for revocation.
    pub leaf_der: Vec<u8>,
    /// The archive version directory `live/NAME` points to (`v0003`); empty when `live/NAME`
    /// is a plain directory not made by certkeeper.
    pub version: String,
    /// `state_dir/live/NAME`: the certbot-compatible directory.
    pub live_dir: PathBuf,
}

impl LiveCert {
    /// `live/NAME/cert.pem`: the leaf.
    #[must_use]
    pub fn cert_path(&self) -> PathBuf {
        self.live_dir.join(CERT_FILE)
    }

    /// `live/NAME/chain.pem`: the intermediates.
    #[must_use]
    pub fn chain_path(&self) -> PathBuf {
        self.live_dir.join(CHAIN_FILE)
    }

    /// `live/NAME/fullchain.pem`: leaf and intermediates.
    #[must_use]
    pub fn fullchain_path(&self) -> PathBuf {
        self.live_dir.join(FULLCHAIN_FILE)
    }

    /// `live/NAME/privkey.pem`.
    #[must_use]
    pub fn privkey_path(&self) -> PathBuf {
        self.live_dir.join(PRIVKEY_FILE)
    }
}

/// How much of a live pair to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Read and parse the key too, and check it matches the certificate.
    Pair,
    /// The certificate alone: enough to plan with. The pair was verified when it was
    /// installed and version directories are never written again, so skipping the key (the
    /// costly part for RSA) loses nothing but the detection of hand edits.
    CertificateOnly,
}

pub(crate) fn read_live(
    layout: &Layout,
    name: &CertName,
    state: &LineageState,
    check: Check,
) -> Result<Option<LiveCert>, StoreError> {
    let link = layout.live_link(name);
    let meta = match fs::symlink_metadata(&link) {
        Ok(meta) => meta,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(StoreError::io("inspect", link, err)),
    };
    let (dir, version) = if meta.file_type().is_symlink() {
        let target =
            fs::read_link(&link).map_err(|err| StoreError::io("read symlink", &link, err))?;
        let version = target
            .file_name()
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        (layout.live_root().join(target), version)
    } else if meta.is_dir() {
        (link.clone(), String::new())
    } else {
        return Err(StoreError::LiveNotSymlink { path: link });
    };
    read_version(name, &dir, version, link, state, check).map(Some)
}

fn read_version(
    name: &CertName,
    dir: &Path,
    version: String,
    live_dir: PathBuf,
    state: &LineageState,
    check: Check,
) -> Result<LiveCert, StoreError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(PRIVKEY_FILE);
    let cert_pem = read_text(&cert_path)?;
    let corrupt = |path: &Path, problem: VerifyProblem| StoreError::Corrupt {
        name: name.clone(),
        path: path.to_path_buf(),
        problem,
    };

    let chain = parse_chain(&cert_pem).map_err(|p| corrupt(&cert_path, p))?;
    let leaf_der = chain
        .into_iter()
        .next()
        .ok_or_else(|| corrupt(&cert_path, VerifyProblem::NoCertificate))?;
    let leaf =
        parse_certificate(&leaf_der, "leaf certificate").map_err(|p| corrupt(&cert_path, p))?;
    if check == Check::Pair {
        let key_pem = read_text(&key_path)?;
        let key = parse_private_key(&key_pem).map_err(|p| corrupt(&key_path, p))?;
        if !key_matches(&key, leaf.public_key()) {
            return Err(corrupt(dir, VerifyProblem::KeyMismatch));
        }
    }
    let info = leaf_info(&leaf).map_err(|p| corrupt(&cert_path, p))?;
    drop(leaf);

    Ok(LiveCert {
        observed: ObservedCert {
            not_before: info.not_before,
            not_after: info.not_after,
            domains: info.domains,
            key_type: info.key_type,
            revoked: state.is_revoked(&info.serial_hex),
        },
        serial_hex: info.serial_hex,
        issuer: info.issuer,
        leaf_der,
        version,
        live_dir,
    })
}

fn read_text(path: &Path) -> Result<String, StoreError> {
    fs::read_to_string(path).map_err(|err| StoreError::io("read", path, err))
}

//! Reading what is live for a lineage.
//!
//! `live/NAME` is resolved once, and the certificate and key are then read from the version
//! directory it pointed to, not through the symlink: an install swapping the link between the
//! two reads cannot hand back a certificate from one issuance and a key from another. The
//! pair read is checked to match, so a hand-edited or damaged lineage is reported as
//! [`StoreError::Corrupt`] instead of being reported as healthy.
//!
//! The link is never resolved by the kernel. Its target is read with `readlinkat` and must be
//! exactly `../archive/NAME/vNNNN` (see `layout::parse_live_target`): certkeeper's own form.
//! The version directory is then reached from the state directory's descriptor, `archive` ->
//! `NAME` -> `vNNNN`, each opened without following symlinks, and the files in it likewise.
//! Any other link (absolute, escaping with `..`, into another lineage) is refused with
//! [`StoreError::Unsafe`], so a planted `live/NAME` cannot make certkeeper report, or hand to
//! hooks, a certificate and key from elsewhere. A real directory at `live/NAME` (made by hand
//! or by certbot) is still read, its files opened without following symlinks: certbot's
//! per-file links to `../../archive/` are refused, with a message naming the link.

use std::path::PathBuf;

use certkeeper_core::{CertName, KeyType, ObservedCert, Secret};

use crate::error::{FileKind, StoreError, UnsafeProblem, VerifyProblem};
use crate::layout::{
    ARCHIVE_DIR, CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE, Layout, PRIVKEY_FILE, parse_live_target,
};
use crate::nofollow::{DirFd, Reached, Secrecy};
use crate::state::LineageState;
use crate::verify::{
    check_certificates, decode_chain, key_matches, leaf_info, parse_certificate, parse_private_key,
};

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

/// The private key of what is live, checked to match the live certificate: what a renewal
/// with `reuse_key` orders with. Its `Debug` is redacted.
#[derive(Debug, Clone)]
pub struct LiveKey {
    /// The type of the key, when recognised.
    pub key_type: Option<KeyType>,
    /// `privkey.pem` as it is on disk.
    pub pem: Secret,
}

/// Every file of what is live, read from one version: what a fleet node publishes for the
/// other nodes to install. Its `Debug` is redacted (the key is a [`Secret`]).
#[derive(Debug, Clone)]
pub struct LiveFiles {
    /// What is live, as [`Store::read_live`](crate::Store::read_live) reports it.
    pub cert: LiveCert,
    /// `cert.pem`: the leaf.
    pub cert_pem: String,
    /// `chain.pem`: the intermediates.
    pub chain_pem: String,
    /// `fullchain.pem`: leaf and intermediates.
    pub fullchain_pem: String,
    /// `privkey.pem`, checked to match the leaf.
    pub key_pem: Secret,
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

/// What is live for `name` in `live` (the `live/` directory); `archive` reaches `archive/`.
pub(crate) fn read_live<'a>(
    live: &DirFd,
    archive: impl FnOnce() -> Result<Option<Reached<'a>>, StoreError>,
    layout: &Layout,
    name: &CertName,
    state: &LineageState,
    check: Check,
) -> Result<Option<LiveCert>, StoreError> {
    read_live_pair(live, archive, layout, name, state, check).map(|read| read.map(|(live, _)| live))
}

/// [`read_live`], with the key's text when it was read ([`Check::Pair`]).
pub(crate) fn read_live_pair<'a>(
    live: &DirFd,
    archive: impl FnOnce() -> Result<Option<Reached<'a>>, StoreError>,
    layout: &Layout,
    name: &CertName,
    state: &LineageState,
    check: Check,
) -> Result<Option<(LiveCert, Option<String>)>, StoreError> {
    let link = layout.live_link(name);
    let version = match resolve(live, layout, name)? {
        None => return Ok(None),
        Some(Resolved::Directory(dir)) => {
            return read_version(name, &dir, String::new(), link, state, check).map(Some);
        }
        Some(Resolved::Version(version)) => version,
    };
    let archive = archive_dir(archive, layout)?;
    // Planning needs the certificate alone: read it straight from `archive/`, without
    // opening the version directory (the walk below names what is wrong when that fails).
    if check == Check::CertificateOnly
        && let Some(bytes) =
            archive.read_public_below(&[name.as_str(), &version, CERT_FILE], "read")?
    {
        let cert_path = archive.child(name.as_str()).join(&version).join(CERT_FILE);
        let cert_pem = text(bytes, || cert_path.clone())?;
        return certificate_facts(name, &cert_pem, &cert_path, version, link, state, None)
            .map(Some);
    }
    let dir = archive.require_dir_below(name.as_str(), &version)?;
    read_version(name, &dir, version, link, state, check).map(Some)
}

/// Every file of what is live, read from the one version directory `live/NAME` names (so
/// from one issuance), the key checked against the certificate: what a fleet node publishes.
pub(crate) fn read_live_files<'a>(
    live: &DirFd,
    archive: impl FnOnce() -> Result<Option<Reached<'a>>, StoreError>,
    layout: &Layout,
    name: &CertName,
    state: &LineageState,
) -> Result<Option<LiveFiles>, StoreError> {
    let link = layout.live_link(name);
    let (dir, version) = match resolve(live, layout, name)? {
        None => return Ok(None),
        Some(Resolved::Directory(dir)) => (dir, String::new()),
        Some(Resolved::Version(version)) => {
            let archive = archive_dir(archive, layout)?;
            (archive.require_dir_below(name.as_str(), &version)?, version)
        }
    };
    let (cert, key) = read_version(name, &dir, version, link, state, Check::Pair)?;
    let cert_pem = read_text(&dir, CERT_FILE, Secrecy::Public)?;
    let chain_pem = read_text(&dir, CHAIN_FILE, Secrecy::Public)?;
    let fullchain_pem = read_text(&dir, FULLCHAIN_FILE, Secrecy::Public)?;
    // `Check::Pair` always reads the key; an absent one would have failed above.
    let key_pem = key
        .map(|key| Secret::new(key.into_bytes()))
        .ok_or_else(|| {
            StoreError::io(
                "read",
                dir.child(PRIVKEY_FILE),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })?;
    Ok(Some(LiveFiles {
        cert,
        cert_pem,
        chain_pem,
        fullchain_pem,
        key_pem,
    }))
}

/// What `live/NAME` is.
enum Resolved {
    /// A real directory (made by hand or by certbot), opened.
    Directory(DirFd),
    /// certkeeper's own link to `../archive/NAME/<version>`.
    Version(String),
}

/// Resolve `live/NAME` without letting the kernel follow it; `None` when it does not exist.
fn resolve(live: &DirFd, layout: &Layout, name: &CertName) -> Result<Option<Resolved>, StoreError> {
    // `readlinkat` first: for certkeeper's own links it answers both what the entry is and
    // where it points; only what is not a link is then looked at.
    let target = match live.read_link_if_symlink(name.as_str())? {
        Some(target) => target,
        None => match live.kind_of(name.as_str())? {
            None => return Ok(None),
            // A link again (swapped in between the two calls): read it as one.
            Some(FileKind::Symlink) => live.read_link(name.as_str())?,
            Some(FileKind::Directory) => {
                return live
                    .require_dir(name.as_str())
                    .map(|dir| Some(Resolved::Directory(dir)));
            }
            Some(_) => {
                return Err(StoreError::LiveNotSymlink {
                    path: layout.live_link(name),
                });
            }
        },
    };
    match parse_live_target(name, &target) {
        Some(version) => Ok(Some(Resolved::Version(version))),
        None => Err(StoreError::Unsafe {
            path: layout.live_link(name),
            problem: UnsafeProblem::LinkTarget { target },
        }),
    }
}

/// `archive/`, which a live link needs.
fn archive_dir<'a>(
    archive: impl FnOnce() -> Result<Option<Reached<'a>>, StoreError>,
    layout: &Layout,
) -> Result<Reached<'a>, StoreError> {
    archive()?.ok_or_else(|| {
        StoreError::io(
            "open directory",
            layout.root().join(ARCHIVE_DIR),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })
}

fn read_version(
    name: &CertName,
    dir: &DirFd,
    version: String,
    live_dir: PathBuf,
    state: &LineageState,
    check: Check,
) -> Result<(LiveCert, Option<String>), StoreError> {
    let cert_pem = read_text(dir, CERT_FILE, Secrecy::Public)?;
    let pair = (check == Check::Pair).then_some(dir);
    certificate_facts(
        name,
        &cert_pem,
        &dir.child(CERT_FILE),
        version,
        live_dir,
        state,
        pair,
    )
}

/// What is live, from the certificate file's text (at `cert_file`); with `pair`, the version
/// directory, the private key beside it is read, checked to match and returned too.
fn certificate_facts(
    name: &CertName,
    cert_pem: &str,
    cert_file: &std::path::Path,
    version: String,
    live_dir: PathBuf,
    state: &LineageState,
    pair: Option<&DirFd>,
) -> Result<(LiveCert, Option<String>), StoreError> {
    // Paths are joined for an error only.
    let corrupt = |path: PathBuf, problem: VerifyProblem| StoreError::Corrupt {
        name: name.clone(),
        path,
        problem,
    };
    let cert_path = || cert_file.to_path_buf();

    // Each certificate is parsed once: the leaf here (kept for the facts below), the
    // intermediates only to check them.
    let mut chain = decode_chain(cert_pem).map_err(|p| corrupt(cert_path(), p))?;
    let leaf_der = if chain.is_empty() {
        return Err(corrupt(cert_path(), VerifyProblem::NoCertificate));
    } else {
        chain.remove(0)
    };
    let leaf = parse_certificate(&leaf_der, "certificate").map_err(|p| corrupt(cert_path(), p))?;
    check_certificates(&chain).map_err(|p| corrupt(cert_path(), p))?;
    let mut key_text = None;
    if let Some(dir) = pair {
        // `key_group` makes it 0640 (see `layout`).
        let key_pem = read_text(dir, PRIVKEY_FILE, Secrecy::GroupReadable)?;
        let key = parse_private_key(&key_pem, Some(leaf.public_key()))
            .map_err(|p| corrupt(dir.child(PRIVKEY_FILE), p))?;
        if !key_matches(&key, leaf.public_key()) {
            return Err(corrupt(
                dir.path().to_path_buf(),
                VerifyProblem::KeyMismatch,
            ));
        }
        key_text = Some(key_pem);
    }
    let info = leaf_info(&leaf).map_err(|p| corrupt(cert_path(), p))?;
    drop(leaf);

    let live = LiveCert {
        observed: ObservedCert {
            not_before: info.not_before,
            not_after: info.not_after,
            domains: info.domains,
            key_type: info.key_type,
            revoked: state.is_revoked(&info.serial_hex),
            suggested: state.suggested_renewal(&info.serial_hex).map(Box::new),
        },
        serial_hex: info.serial_hex,
        issuer: info.issuer,
        leaf_der,
        version,
        live_dir,
    };
    Ok((live, key_text))
}

/// The file `name` of `dir` as text; its absence is an error (a version always has it).
fn read_text(dir: &DirFd, name: &str, secrecy: Secrecy) -> Result<String, StoreError> {
    let bytes = dir.read_file(name, secrecy, "read")?.ok_or_else(|| {
        StoreError::io(
            "read",
            dir.child(name),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    text(bytes, || dir.child(name))
}

/// A file's bytes as text; `path` names it in the error.
fn text(bytes: Vec<u8>, path: impl Fn() -> PathBuf) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|err| {
        StoreError::io(
            "read",
            path(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, err),
        )
    })
}

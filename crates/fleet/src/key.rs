//! The fleet key and what it seals.
//!
//! A fleet key is 32 random bytes that every node holds and the database never sees. It is
//! written as 64 hex digits (`openssl rand -hex 32`) or as standard base64 (44 characters);
//! surrounding whitespace is ignored. Raw binary files are refused: a hex or base64 key can be
//! pasted into a secret store and compared by eye.
//!
//! Values are sealed with AES-256-GCM (aws-lc-rs) under a fresh random 96-bit nonce each time;
//! the stored form is `nonce || ciphertext || tag`. The additional authenticated data names the
//! row (for a private key: lineage and version), so a sealed value copied to another row does not
//! open there.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use certkeeper_core::Secret;

use crate::FleetError;

/// The constant sealed into the key check row.
const KEY_CHECK_PLAINTEXT: &[u8] = b"certkeeper fleet key check v1";
const KEY_CHECK_AAD: &[u8] = b"certkeeper/key-check";

/// The fleet's 32-byte AES-256-GCM key. `Debug` is redacted.
#[derive(Clone)]
pub struct FleetKey([u8; 32]);

impl FleetKey {
    /// A key from its 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parse a key written as 64 hex digits or 44 base64 characters.
    ///
    /// # Errors
    /// [`FleetError::FleetKeyFormat`] naming what was found (never the key itself).
    pub fn parse(text: &[u8]) -> Result<Self, FleetError> {
        let text = std::str::from_utf8(text).map_err(|_| FleetError::FleetKeyFormat {
            reason: "the text is not UTF-8 (a raw binary key is not accepted)".to_owned(),
        })?;
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| FleetError::FleetKeyFormat {
                reason: "invalid hex".to_owned(),
            })?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| FleetError::FleetKeyFormat {
                    reason: format!("{} characters, neither hex nor base64", text.len()),
                })?
        };
        let bytes: [u8; 32] =
            bytes
                .try_into()
                .map_err(|bytes: Vec<u8>| FleetError::FleetKeyFormat {
                    reason: format!("{} bytes", bytes.len()),
                })?;
        Ok(Self(bytes))
    }

    /// Read and parse a key file.
    ///
    /// # Errors
    /// [`FleetError::FleetKeyFile`] when the file cannot be read, else as [`FleetKey::parse`].
    pub fn from_file(path: &Path) -> Result<Self, FleetError> {
        let text = std::fs::read(path).map_err(|source| FleetError::FleetKeyFile {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    fn aead(&self) -> Result<RandomizedNonceKey, FleetError> {
        RandomizedNonceKey::new(&AES_256_GCM, &self.0).map_err(|_| FleetError::Encrypt {
            what: "the fleet key".to_owned(),
        })
    }

    /// Seal `plaintext` for the row named by `aad`: `nonce || ciphertext || tag`.
    pub(crate) fn seal(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        what: &str,
    ) -> Result<Vec<u8>, FleetError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .aead()?
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| FleetError::Encrypt {
                what: what.to_owned(),
            })?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Open a value sealed by [`FleetKey::seal`] for the same `aad`.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8], what: &str) -> Result<Secret, FleetError> {
        let fail = || FleetError::Decrypt {
            what: what.to_owned(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .aead()?
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| fail())?;
        Ok(Secret::new(plaintext.to_vec()))
    }

    /// The sealed key check written at the fleet's first start.
    pub(crate) fn seal_check(&self) -> Result<Vec<u8>, FleetError> {
        self.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT, "the fleet key check")
    }

    /// Whether `sealed` is the key check sealed with this key.
    pub(crate) fn matches_check(&self, sealed: &[u8]) -> bool {
        self.open(KEY_CHECK_AAD, sealed, "the fleet key check")
            .is_ok_and(|plain| plain.expose() == KEY_CHECK_PLAINTEXT)
    }
}

impl fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetKey(<redacted>)")
    }
}

/// The AAD of a certificate version's private key.
pub(crate) fn version_key_aad(lineage: &str, version: i64) -> Vec<u8> {
    format!("certkeeper/version-key\0{lineage}\0{version}").into_bytes()
}

/// The AAD of the private key of a lineage's order in flight.
pub(crate) fn order_key_aad(lineage: &str, order_url: &str) -> Vec<u8> {
    format!("certkeeper/order-key\0{lineage}\0{order_url}").into_bytes()
}

/// The AAD of an ACME account.
pub(crate) fn account_aad(ca_key: &str) -> Vec<u8> {
    format!("certkeeper/account\0{ca_key}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_base64_and_refuses_other_lengths() {
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
        let from_hex = FleetKey::parse(hex_key.as_bytes()).expect("hex");
        let b64 = base64::engine::general_purpose::STANDARD.encode(from_hex.0);
        let from_b64 = FleetKey::parse(b64.as_bytes()).expect("base64");
        assert_eq!(from_hex.0, from_b64.0);
        let err = FleetKey::parse(b"abcd").expect_err("short");
        assert!(err.to_string().contains("openssl rand -hex 32"), "{err}");
        assert!(FleetKey::parse(&[0xff; 32]).is_err());
    }

    #[test]
    fn reads_a_key_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).expect("write");
        assert_eq!(FleetKey::from_file(&path).expect("key").0, [0xab; 32]);
        let missing = dir.path().join("missing.key");
        let err = FleetKey::from_file(&missing).expect_err("missing");
        assert!(matches!(err, FleetError::FleetKeyFile { ref path, .. } if *path == missing));
    }

    #[test]
    fn seal_binds_the_row_and_uses_fresh_nonces() {
        let key = FleetKey::from_bytes([7; 32]);
        let aad = version_key_aad("example", 1);
        let one = key.seal(&aad, b"secret pem", "key").expect("seal");
        let two = key.seal(&aad, b"secret pem", "key").expect("seal");
        assert_ne!(one, two, "a fresh nonce each time");
        assert_eq!(
            key.open(&aad, &one, "key").expect("open").expose(),
            b"secret pem"
        );
        assert!(
            key.open(&version_key_aad("example", 2), &one, "key")
                .is_err()
        );
        assert!(
            FleetKey::from_bytes([8; 32])
                .open(&aad, &one, "key")
                .is_err()
        );
        assert!(key.matches_check(&key.seal_check().expect("check")));
        assert!(!FleetKey::from_bytes([8; 32]).matches_check(&key.seal_check().expect("check")));
        assert_eq!(format!("{key:?}"), "FleetKey(<redacted>)");
    }
}

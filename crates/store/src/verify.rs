//! Reading and checking PEM certificates and private keys, without touching the disk.
//!
//! [`check_issue`] is what makes an install safe: before a single byte is written, the chain
//! must parse, the leaf must be issued for exactly the private key given and for exactly the
//! configured names. The same parsing serves [`inspect_leaf`] for certificates already on
//! disk, so the facts reported about a live certificate (dates, names, key type, serial) come
//! from one place.
//!
//! Key matching compares the leaf's `SubjectPublicKeyInfo` (x509-parser) with the one rcgen
//! derives from the private key (aws-lc-rs loads PKCS#8, SEC1 and PKCS#1 keys). rcgen encodes
//! RSA keys with `rsaEncryption` and NULL parameters and EC keys with `id-ecPublicKey` and the
//! named curve, which is what CAs put in certificates; should a CA encode the algorithm
//! parameters differently, the algorithm OID and the public key bits still have to agree.

use std::fmt;
use std::time::{Duration, SystemTime};

use certkeeper_core::renewal::same_names;
use certkeeper_core::{DomainName, KeyType};
use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::VerifyProblem;

const CHAIN: &str = "certificate chain";
const KEY: &str = "private key";

/// A private key, decoded and checked to be loadable. Its `Debug` is redacted.
pub(crate) struct PrivateKey {
    /// PEM label of the block it came from ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY").
    label: String,
    der: Vec<u8>,
    /// DER `SubjectPublicKeyInfo` of the matching public key.
    spki: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.label)
    }
}

impl PrivateKey {
    /// The key re-encoded as PEM, in the format it was given in.
    pub(crate) fn to_pem(&self) -> String {
        encode_pem(&self.label, &self.der)
    }
}

/// What certkeeper reports about a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafInfo {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    /// DNS names from subjectAltName, lower case, in certificate order.
    pub(crate) domains: Vec<String>,
    pub(crate) key_type: Option<KeyType>,
    pub(crate) serial_hex: String,
    pub(crate) issuer: String,
}

/// A certificate chain and key that passed [`check_issue`].
#[derive(Debug)]
pub(crate) struct VerifiedIssue {
    pub(crate) key: PrivateKey,
    /// DER certificates, leaf first.
    pub(crate) chain: Vec<Vec<u8>>,
}

impl VerifiedIssue {
    pub(crate) fn cert_pem(&self) -> String {
        self.chain
            .first()
            .map(|leaf| encode_pem("CERTIFICATE", leaf))
            .unwrap_or_default()
    }

    pub(crate) fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .skip(1)
            .map(|der| encode_pem("CERTIFICATE", der))
            .collect()
    }

    pub(crate) fn fullchain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|der| encode_pem("CERTIFICATE", der))
            .collect()
    }
}

/// A certificate as a CA issued it, checked as an install checks it but not written: what
/// another node needs to install the same files (fleet mode publishes it before installing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedIssue {
    /// The serial, as [`crate::LiveCert::serial_hex`] spells it.
    pub serial_hex: String,
    pub not_after: SystemTime,
    /// `cert.pem`: the leaf.
    pub cert_pem: String,
    /// `chain.pem`: the intermediates.
    pub chain_pem: String,
    /// `fullchain.pem`.
    pub fullchain_pem: String,
}

/// [`check_issue`], and the files an install would write.
pub(crate) fn checked_issue(
    domains: &[DomainName],
    key_pem: &str,
    chain_pem: &str,
) -> Result<CheckedIssue, VerifyProblem> {
    let issue = check_issue(domains, key_pem, chain_pem)?;
    let leaf_der = issue.chain.first().ok_or(VerifyProblem::NoCertificate)?;
    let info = leaf_info(&parse_certificate(leaf_der, "certificate")?)?;
    Ok(CheckedIssue {
        serial_hex: info.serial_hex,
        not_after: info.not_after,
        cert_pem: issue.cert_pem(),
        chain_pem: issue.chain_pem(),
        fullchain_pem: issue.fullchain_pem(),
    })
}

/// Check everything an install needs, in order: the key loads, the chain parses, the leaf's
/// key is `key_pem`'s key, and the leaf names exactly `domains`.
pub(crate) fn check_issue(
    domains: &[DomainName],
    key_pem: &str,
    chain_pem: &str,
) -> Result<VerifiedIssue, VerifyProblem> {
    let key = parse_private_key(key_pem, None)?;
    let chain = decode_chain(chain_pem)?;
    let (leaf_der, intermediates) = chain.split_first().ok_or(VerifyProblem::NoCertificate)?;
    let leaf = parse_certificate(leaf_der, "certificate")?;
    check_certificates(intermediates)?;
    if !key_matches(&key, leaf.public_key()) {
        return Err(VerifyProblem::KeyMismatch);
    }
    let info = leaf_info(&leaf)?;
    if !same_names(domains, &info.domains) {
        let mut expected: Vec<String> = domains.iter().map(|d| d.as_str().to_owned()).collect();
        expected.sort_unstable();
        let mut found = info.domains.clone();
        found.sort_unstable();
        return Err(VerifyProblem::NamesMismatch { expected, found });
    }
    Ok(VerifiedIssue { key, chain })
}

/// What [`inspect_issue`] reports about a certificate that would install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueFacts {
    /// The leaf's serial number, as [`LiveCert::serial_hex`](crate::LiveCert::serial_hex)
    /// writes it.
    pub serial_hex: String,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
}

/// Make the checks an install makes ([`Store::install`](crate::Store::install): the key
/// loads, the chain parses, the leaf is for that key and exactly `domains`) without writing
/// anything, and report the leaf's serial and validity: for a caller that must know what it
/// is about to install (a fleet node comparing a published version with its own).
///
/// # Errors
/// The [`VerifyProblem`] an install would refuse with.
pub fn inspect_issue(
    domains: &[DomainName],
    key_pem: &str,
    chain_pem: &str,
) -> Result<IssueFacts, VerifyProblem> {
    let issue = check_issue(domains, key_pem, chain_pem)?;
    let leaf_der = issue.chain.first().ok_or(VerifyProblem::NoCertificate)?;
    let leaf = parse_certificate(leaf_der, "certificate")?;
    let info = leaf_info(&leaf)?;
    Ok(IssueFacts {
        serial_hex: info.serial_hex,
        not_before: info.not_before,
        not_after: info.not_after,
    })
}

/// Decode the first private key block of `pem` and load it.
///
/// `certificate_key` is the public key of the certificate the key should belong to, when
/// known: the key is then loaded once, with the parser for that key's algorithm. Without it,
/// or when that parser refuses the key (a key of another type: the caller then reports the
/// mismatch), the parsers are tried in turn (Ed25519, ECDSA P-256, P-384, P-521, RSA), which
/// for an ECDSA key means aws-lc decodes and checks it twice.
pub(crate) fn parse_private_key(
    pem: &str,
    certificate_key: Option<&SubjectPublicKeyInfo<'_>>,
) -> Result<PrivateKey, VerifyProblem> {
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|err| VerifyProblem::BadPem {
            what: KEY,
            detail: err.to_string(),
        })?;
        if block.label == "ENCRYPTED PRIVATE KEY" {
            return Err(VerifyProblem::BadPem {
                what: KEY,
                detail: "the key is encrypted; certkeeper needs an unencrypted key".into(),
            });
        }
        if !block.label.ends_with("PRIVATE KEY") {
            continue;
        }
        let der = block.contents.as_slice();
        let known = certificate_key
            .and_then(signature_algorithm)
            .and_then(|alg| load_key_as(der, alg));
        let key_pair = match known {
            Some(key_pair) => key_pair,
            None => KeyPair::try_from(der).map_err(|_| VerifyProblem::BadPem {
                what: KEY,
                detail: format!(
                    "the {} block is not an ECDSA, Ed25519 or RSA key in PKCS#8, SEC1 or PKCS#1 form",
                    block.label
                ),
            })?,
        };
        return Ok(PrivateKey {
            spki: key_pair.subject_public_key_info(),
            label: block.label,
            der: block.contents,
        });
    }
    Err(VerifyProblem::BadPem {
        what: KEY,
        detail: "no PRIVATE KEY block found".into(),
    })
}

/// The key `der` (PKCS#8, SEC1 or PKCS#1) loaded as a key for `alg` only; `None` when it is
/// not one.
fn load_key_as(der: &[u8], alg: &'static SignatureAlgorithm) -> Option<KeyPair> {
    // rcgen takes rustls-pki-types' `PrivateKeyDer`, which sniffs the form from the DER; it
    // is named here only through inference, so the store needs no dependency for it.
    match TryInto::try_into(der) {
        Ok(key) => KeyPair::from_der_and_sign_algo(&key, alg).ok(),
        Err(_) => None,
    }
}

/// The rcgen algorithm whose parser loads the private half of `spki`, by the certificate's
/// public key algorithm (and named curve).
fn signature_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> Option<&'static SignatureAlgorithm> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        Some(&rcgen::PKCS_RSA_SHA256)
    } else if *algorithm == OID_SIG_ED25519 {
        Some(&rcgen::PKCS_ED25519)
    } else if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
        if curve == OID_EC_P256 {
            Some(&rcgen::PKCS_ECDSA_P256_SHA256)
        } else if curve == OID_NIST_EC_P384 {
            Some(&rcgen::PKCS_ECDSA_P384_SHA384)
        } else if curve == OID_NIST_EC_P521 {
            Some(&rcgen::PKCS_ECDSA_P521_SHA512)
        } else {
            None
        }
    } else {
        None
    }
}

/// Decode every block of `pem`, which must all be certificates, leaf first. Any other block
/// (a private key pasted in by mistake, say) is refused so it can never end up in a
/// world-readable chain file. The blocks are not parsed as X.509 here: the caller parses the
/// leaf (once: it needs it anyway) and the rest with [`check_certificates`].
pub(crate) fn decode_chain(pem: &str) -> Result<Vec<Vec<u8>>, VerifyProblem> {
    let mut chain = Vec::new();
    for (index, block) in Pem::iter_from_buffer(pem.as_bytes()).enumerate() {
        let block = block.map_err(|err| VerifyProblem::BadPem {
            what: CHAIN,
            detail: format!("PEM block {}: {err}", index + 1),
        })?;
        if block.label != "CERTIFICATE" {
            return Err(VerifyProblem::BadPem {
                what: CHAIN,
                detail: format!(
                    "PEM block {} is a {:?} block, expected CERTIFICATE",
                    index + 1,
                    block.label
                ),
            });
        }
        chain.push(block.contents);
    }
    if chain.is_empty() {
        return Err(VerifyProblem::NoCertificate);
    }
    Ok(chain)
}

/// Check that each of `ders` parses as X.509.
pub(crate) fn check_certificates(ders: &[Vec<u8>]) -> Result<(), VerifyProblem> {
    for der in ders {
        parse_certificate(der, "certificate")?;
    }
    Ok(())
}

/// [`decode_chain`], each block also checked to parse as X.509.
#[cfg(test)]
pub(crate) fn parse_chain(pem: &str) -> Result<Vec<Vec<u8>>, VerifyProblem> {
    let chain = decode_chain(pem)?;
    check_certificates(&chain)?;
    Ok(chain)
}

/// Parse one DER certificate, refusing trailing bytes.
pub(crate) fn parse_certificate<'a>(
    der: &'a [u8],
    what: &str,
) -> Result<X509Certificate<'a>, VerifyProblem> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(VerifyProblem::BadPem {
            what: CHAIN,
            detail: format!("the {what} has trailing bytes after its DER encoding"),
        }),
        Err(err) => Err(VerifyProblem::BadPem {
            what: CHAIN,
            detail: format!("the {what} is not valid X.509: {err}"),
        }),
    }
}

/// Whether `key` is the private half of the certificate key `spki`.
pub(crate) fn key_matches(key: &PrivateKey, spki: &SubjectPublicKeyInfo<'_>) -> bool {
    if key.spki == spki.raw {
        return true;
    }
    // Same algorithm and same key bits, with differently encoded algorithm parameters.
    let Ok((_, ours)) = SubjectPublicKeyInfo::from_der(&key.spki) else {
        return false;
    };
    ours.algorithm.algorithm == spki.algorithm.algorithm
        && ours.subject_public_key.data == spki.subject_public_key.data
}

/// Facts about a leaf certificate, for [`ObservedCert`](certkeeper_core::ObservedCert).
pub(crate) fn leaf_info(cert: &X509Certificate<'_>) -> Result<LeafInfo, VerifyProblem> {
    let san = cert
        .subject_alternative_name()
        .map_err(|err| VerifyProblem::BadPem {
            what: CHAIN,
            detail: format!("the leaf certificate's subjectAltName is invalid: {err}"),
        })?;
    let domains = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let validity = cert.validity();
    Ok(LeafInfo {
        not_before: system_time(validity.not_before.timestamp()),
        not_after: system_time(validity.not_after.timestamp()),
        domains,
        key_type: key_type(cert.public_key()),
        serial_hex: serial_hex(cert.raw_serial()),
        issuer: cert.issuer().to_string(),
    })
}

/// The serial number as lower-case hex without leading zeros (`"0"` for zero): how Go's
/// `big.Int.Text(16)` prints it, which is what Pebble's management API returns in `Serial`
/// and accepts in `/cert-status-by-serial/<serial>`.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(raw.len() * 2);
    for byte in raw {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    let zeros = hex.len() - hex.trim_start_matches('0').len();
    hex.drain(..zeros);
    if hex.is_empty() {
        hex.push('0');
    }
    hex
}

/// The key type of a certificate's public key: EC by named curve, RSA by modulus size.
pub(crate) fn key_type(spki: &SubjectPublicKeyInfo<'_>) -> Option<KeyType> {
    match spki.parsed().ok()? {
        PublicKey::RSA(rsa) => match modulus_bits(rsa.modulus) {
            2048 => Some(KeyType::Rsa2048),
            3072 => Some(KeyType::Rsa3072),
            4096 => Some(KeyType::Rsa4096),
            _ => None,
        },
        PublicKey::EC(_) => {
            let curve = Oid::try_from(spki.algorithm.parameters.as_ref()?).ok()?;
            match curve.to_id_string().as_str() {
                "1.2.840.10045.3.1.7" => Some(KeyType::EcdsaP256),
                "1.3.132.0.34" => Some(KeyType::EcdsaP384),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Significant bits of a big-endian unsigned integer (x509-parser's own `key_size` only
/// handles moduli with a leading zero byte).
fn modulus_bits(modulus: &[u8]) -> usize {
    let significant: &[u8] = {
        let start = modulus
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(modulus.len());
        &modulus[start..]
    };
    match significant.first() {
        Some(first) => significant.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn system_time(unix: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix.unsigned_abs());
    if unix >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(magnitude)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// PEM-encode DER with 64-character lines, as OpenSSL and certbot write it.
pub(crate) fn encode_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // base64 output is ASCII, so splitting at any byte index is a char boundary.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_is_hex_without_leading_zeros() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x00, 0x8f, 0x01], "8f01"),
            (&[0x0a, 0xbc, 0xde], "abcde"),
            (&[0x12, 0x34], "1234"),
            (&[0x00], "0"),
            (&[], "0"),
        ];
        for (raw, hex) in cases {
            assert_eq!(serial_hex(raw), *hex, "{raw:02x?}");
        }
    }

    #[test]
    fn modulus_bits_ignore_leading_zero_bytes() {
        let mut modulus = vec![0x00, 0x80];
        modulus.extend(std::iter::repeat_n(0xff, 255));
        assert_eq!(modulus_bits(&modulus), 2048);
        assert_eq!(modulus_bits(&modulus[1..]), 2048);
        assert_eq!(modulus_bits(&[0x01, 0x00]), 9);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let pem = encode_pem("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert_eq!(lines.get(1).map(|l| l.len()), Some(64));
        let back: Vec<Pem> = Pem::iter_from_buffer(pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("round trip");
        assert_eq!(back.len(), 1);
        assert_eq!(
            back.first().map(|p| p.contents.clone()),
            Some(vec![0u8; 100])
        );
    }

    #[test]
    fn a_private_key_in_the_chain_is_refused() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let err = parse_chain(&key.serialize_pem()).expect_err("must refuse");
        assert!(
            matches!(&err, VerifyProblem::BadPem { detail, .. } if detail.contains("PRIVATE KEY")),
            "{err:?}"
        );
        assert!(!format!("{err:?}{err}").contains(&key.serialize_pem()[30..80]));
        assert_eq!(
            parse_chain("no pem here"),
            Err(VerifyProblem::NoCertificate)
        );
    }

    #[test]
    fn private_key_debug_is_redacted() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let pem = key.serialize_pem();
        let parsed = parse_private_key(&pem, None).expect("parse");
        let printed = format!("{parsed:?}");
        assert_eq!(printed, "PrivateKey(PRIVATE KEY, <redacted>)");
        assert_eq!(parsed.to_pem(), pem);
    }
}

//! What the importer needs to know about a lineage's current certificate: its names and its
//! key type.
//!
//! certbot's renewal file does not list the domains (certbot reads them back from the
//! certificate), and the key type it records is what the *next* renewal would use, which
//! may differ from the live key. certkeeper plans from the live certificate, so both come
//! from the leaf certificate itself: anything else would make certkeeper re-issue at once
//! ("names or key type changed"), which an import must never cause.

use certkeeper_core::KeyType;
use thiserror::Error;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;
use x509_parser::public_key::PublicKey;

/// The facts read from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// DNS names from subjectAltName, lower-case, in certificate order.
    pub dns_names: Vec<String>,
    /// subjectAltName entries that are not DNS names (IP addresses...), as text.
    pub other_names: Vec<String>,
    /// The key type, when certkeeper supports it.
    pub key_type: Option<KeyType>,
    /// The public key as text (`RSA 2048`, `EC 1.3.132.0.35`...), for messages.
    pub key_description: String,
    /// notAfter, seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// The certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a readable PEM certificate: {0}")]
pub struct CertificateError(String);

/// Read the first certificate of `pem` (a `cert.pem` or `fullchain.pem`).
///
/// # Errors
/// When the text holds no parsable certificate.
pub fn read_leaf(pem: &[u8]) -> Result<CertificateFacts, CertificateError> {
    let (_, block) = parse_x509_pem(pem).map_err(|err| CertificateError(err.to_string()))?;
    let cert = block
        .parse_x509()
        .map_err(|err| CertificateError(err.to_string()))?;
    let mut dns_names = Vec::new();
    let mut other_names = Vec::new();
    if let Some(san) = cert
        .subject_alternative_name()
        .map_err(|err| CertificateError(format!("invalid subjectAltName: {err}")))?
    {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_ascii_lowercase()),
                other => other_names.push(other.to_string()),
            }
        }
    }
    let spki = cert.public_key();
    let (key_type, key_description) = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = modulus_bits(rsa.modulus);
            let key_type = match bits {
                2048 => Some(KeyType::Rsa2048),
                3072 => Some(KeyType::Rsa3072),
                4096 => Some(KeyType::Rsa4096),
                _ => None,
            };
            (key_type, format!("RSA {bits}"))
        }
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|params| Oid::try_from(params).ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            let key_type = match curve.as_str() {
                "1.2.840.10045.3.1.7" => Some(KeyType::EcdsaP256),
                "1.3.132.0.34" => Some(KeyType::EcdsaP384),
                _ => None,
            };
            let name = match curve.as_str() {
                "1.2.840.10045.3.1.7" => "P-256".to_owned(),
                "1.3.132.0.34" => "P-384".to_owned(),
                "1.3.132.0.35" => "P-521".to_owned(),
                other => other.to_owned(),
            };
            (key_type, format!("EC {name}"))
        }
        Ok(_) | Err(_) => (None, spki.algorithm.algorithm.to_id_string()),
    };
    Ok(CertificateFacts {
        dns_names,
        other_names,
        key_type,
        key_description,
        not_after_unix: cert.validity().not_after.timestamp(),
    })
}

/// Significant bits of a big-endian unsigned integer.
fn modulus_bits(modulus: &[u8]) -> usize {
    let start = modulus
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(modulus.len());
    let significant = &modulus[start..];
    match significant.first() {
        Some(first) => significant.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_key_type_from_the_fixture() {
        let facts = read_leaf(include_bytes!(
            "../tests/fixtures/live/example.com/cert.pem"
        ))
        .expect("fixture parses");
        assert_eq!(facts.dns_names, ["example.com", "www.example.com"]);
        assert!(facts.other_names.is_empty());
        assert_eq!(facts.key_type, Some(KeyType::EcdsaP256));
        assert_eq!(facts.key_description, "EC P-256");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_leaf(b"not a certificate").is_err());
    }

    #[test]
    fn modulus_bits_ignores_leading_zero_bytes() {
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01]), 1);
        assert_eq!(modulus_bits(&[]), 0);
    }
}

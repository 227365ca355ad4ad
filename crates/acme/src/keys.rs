//! Certificate keys and CSRs, generated with rcgen on aws-lc-rs.
//!
//! The CSR has an empty subject and the configured names as subjectAltNames, which is what
//! RFC 8555 CAs expect (the CA copies names from the order, not from a CN).

use certkeeper_core::{DomainName, KeyType, Secret};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, RsaKeySize};

use crate::error::AcmeError;

/// A fresh private key and a CSR for `domains` signed with it.
pub struct KeyAndCsr {
    /// PKCS#8 PEM of the private key.
    pub key_pem: Secret,
    /// DER of the certificate signing request.
    pub csr_der: Vec<u8>,
}

impl std::fmt::Debug for KeyAndCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndCsr")
            .field("key_pem", &self.key_pem)
            .field("csr_der_len", &self.csr_der.len())
            .finish()
    }
}

/// Generate a key of `key_type`.
///
/// # Errors
/// When the crypto provider cannot generate the key.
pub fn generate_key(key_type: KeyType) -> Result<KeyPair, AcmeError> {
    let generated = match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
    };
    generated.map_err(|err| AcmeError::KeyGeneration {
        key_type: key_type.to_string(),
        reason: err.to_string(),
    })
}

/// Generate a key of `key_type` and a CSR for `domains`.
///
/// # Errors
/// When key generation or CSR serialization fails.
pub fn key_and_csr(key_type: KeyType, domains: &[DomainName]) -> Result<KeyAndCsr, AcmeError> {
    let failed = |err: rcgen::Error| AcmeError::KeyGeneration {
        key_type: key_type.to_string(),
        reason: err.to_string(),
    };
    let key = generate_key(key_type)?;
    let names: Vec<String> = domains.iter().map(ToString::to_string).collect();
    let mut params = CertificateParams::new(names).map_err(failed)?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(failed)?;
    Ok(KeyAndCsr {
        key_pem: Secret::new(key.serialize_pem().into_bytes()),
        csr_der: csr.der().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_yields_a_loadable_key_and_csr() {
        let domains = [
            DomainName::new("a.example.com").expect("valid"),
            DomainName::new("b.example.com").expect("valid"),
        ];
        for key_type in KeyType::ALL {
            let generated = key_and_csr(key_type, &domains).expect("generate");
            let pem = std::str::from_utf8(generated.key_pem.expose()).expect("utf-8");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{key_type}");
            let reloaded = KeyPair::from_pem(pem).expect("reload");
            let expected_alg = match key_type {
                KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
                KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
                _ => &rcgen::PKCS_RSA_SHA256,
            };
            assert_eq!(reloaded.algorithm(), expected_alg, "{key_type}");
            assert!(!generated.csr_der.is_empty());
            assert!(!format!("{generated:?}").contains("PRIVATE KEY"));
        }
    }
}

//! Certificate keys and CSRs, generated with rcgen on aws-lc-rs.
//!
//! The CSR has an empty subject and the configured names as subjectAltNames, which is what
//! RFC 8555 CAs expect (the CA copies names from the order, not from a CN).

use certkeeper_core::{DomainName, KeyType, Secret};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, RsaKeySize};

use crate::error::AcmeError;

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

/// A fresh private key of `key_type`, as PKCS#8 PEM.
///
/// # Errors
/// When the crypto provider cannot generate the key.
pub fn generate_key_pem(key_type: KeyType) -> Result<Secret, AcmeError> {
    Ok(Secret::new(
        generate_key(key_type)?.serialize_pem().into_bytes(),
    ))
}

/// A CSR for `domains`, signed with `key_pem` (which may have been persisted and reloaded to
/// resume an order after a restart).
///
/// # Errors
/// When the key does not load or the CSR cannot be built.
pub fn csr_der(key_pem: &Secret, domains: &[DomainName]) -> Result<Vec<u8>, AcmeError> {
    let failed = |reason: String| AcmeError::KeyGeneration {
        key_type: "stored".to_owned(),
        reason,
    };
    let pem = std::str::from_utf8(key_pem.expose())
        .map_err(|_| failed("key is not PEM text".to_owned()))?;
    let key = KeyPair::from_pem(pem).map_err(|err| failed(err.to_string()))?;
    let names: Vec<String> = domains.iter().map(ToString::to_string).collect();
    let mut params = CertificateParams::new(names).map_err(|err| failed(err.to_string()))?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|err| failed(err.to_string()))?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_yields_a_reloadable_key_and_a_csr() {
        let domains = [
            DomainName::new("a.example.com").expect("valid"),
            DomainName::new("b.example.com").expect("valid"),
        ];
        for key_type in KeyType::ALL {
            let key_pem = generate_key_pem(key_type).expect("generate");
            let pem = std::str::from_utf8(key_pem.expose()).expect("utf-8");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{key_type}");
            let reloaded = KeyPair::from_pem(pem).expect("reload");
            let expected_alg = match key_type {
                KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
                KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
                _ => &rcgen::PKCS_RSA_SHA256,
            };
            assert_eq!(reloaded.algorithm(), expected_alg, "{key_type}");
            let csr = csr_der(&key_pem, &domains).expect("csr");
            // DER SEQUENCE, and the two names are in it.
            assert_eq!(csr[0], 0x30, "{key_type}");
            for name in ["a.example.com", "b.example.com"] {
                assert!(
                    csr.windows(name.len()).any(|w| w == name.as_bytes()),
                    "{key_type}: {name}"
                );
            }
            assert!(!format!("{key_pem:?}").contains("PRIVATE KEY"));
        }
    }

    #[test]
    fn csr_refuses_a_broken_key() {
        let domains = [DomainName::new("a.example.com").expect("valid")];
        let err = csr_der(&Secret::new(b"not a key".to_vec()), &domains).expect_err("broken key");
        assert!(
            !err.to_string().contains("not a key"),
            "the key text is never echoed: {err}"
        );
    }
}

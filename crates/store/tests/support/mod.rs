//! Helpers shared by the store's integration tests: a test CA made with rcgen (aws-lc-rs)
//! that signs leaves for every key type, and file system snapshots.

#![allow(
    dead_code,
    reason = "each test crate includes this module and uses a different subset"
)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use certkeeper_core::{CertName, DomainName, KeyType};
use certkeeper_store::Store;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, RsaKeySize, SerialNumber,
    date_time_ymd,
};

// ---------------------------------------------------------------- certificate factory

pub struct TestCa {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: Vec<u8>,
}

pub fn test_ca() -> TestCa {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "certkeeper test CA");
    let cert = params.self_signed(&key).expect("self-signed CA");
    TestCa {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
        der: cert.der().to_vec(),
    }
}

pub fn new_key(key_type: KeyType) -> KeyPair {
    match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
    }
    .expect("generate key")
}

/// A leaf as the CA would return it: key PEM, full chain PEM (leaf + CA), leaf DER.
pub struct Issued {
    pub key_pem: String,
    pub chain_pem: String,
    pub leaf_der: Vec<u8>,
}

pub fn issue(ca: &TestCa, key: &KeyPair, sans: &[&str], serial: &[u8]) -> Issued {
    let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2025, 4, 1);
    params
        .distinguished_name
        .push(DnType::CommonName, sans.first().copied().unwrap_or("leaf"));
    let cert = params.signed_by(key, &ca.issuer).expect("sign leaf");
    Issued {
        key_pem: key.serialize_pem(),
        chain_pem: format!("{}{}", cert.pem(), ca.pem),
        leaf_der: cert.der().to_vec(),
    }
}

pub fn domains(names: &[&str]) -> Vec<DomainName> {
    names
        .iter()
        .map(|n| DomainName::new(n).expect("valid domain"))
        .collect()
}

pub fn name(n: &str) -> CertName {
    CertName::new(n).expect("valid lineage name")
}

// ---------------------------------------------------------------- file system helpers

pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("metadata").mode() & 0o7777
}

/// Every entry under `root`: file contents and modes, symlink targets, directory modes.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("read_link");
                out.insert(rel, format!("-> {}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, format!("dir {:o}", meta.mode() & 0o7777));
                walk(root, &path, out);
            } else {
                let content = fs::read(&path).expect("read");
                out.insert(
                    rel,
                    format!(
                        "file {:o} {}",
                        meta.mode() & 0o7777,
                        String::from_utf8_lossy(&content)
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

pub fn open_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state")).expect("open store");
    (dir, store)
}

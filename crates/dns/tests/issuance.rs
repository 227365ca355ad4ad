//! End to end: a real Pebble issues a certificate for a wildcard and its apex, validated by
//! DNS-01 against a real named, with the order code of the ACME adapter driving this crate's
//! solver exactly as the daemon does.
//!
//! Pebble runs with `-dnsserver` pointing at named, so its validation reads the TXT records
//! the RFC 2136 provider wrote there; both values sit at `_acme-challenge.example.test` at
//! once. Afterwards named must hold no challenge record and the journal must be empty.

#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::time::Duration;

use certkeeper_acme::{AcmeAccount, OrderRequest, PollPolicy, Transport, TransportSettings};
use certkeeper_core::{CaName, CaSpec, CertName, DomainName, KeyType};
use certkeeper_dns::{Dns01Solver, Rfc2136};
use support::bind::Bind;
use support::pebble::Pebble;
use support::{MemoryJournal, quick_settings, rfc2136};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

#[tokio::test]
async fn pebble_issues_a_wildcard_and_its_apex_validated_at_bind() {
    let bind = Bind::start();
    let pebble = Pebble::start(bind.addr);
    let transport = Transport::new(&TransportSettings {
        root_ca_file: Some(pebble.tls_ca_file.clone()),
        ..TransportSettings::default()
    })
    .expect("transport");
    let ca = CaSpec {
        name: CaName::new("pebble").expect("CA name"),
        directory: pebble.directory_url.clone(),
        eab: None,
        terms_of_service_agreed: true,
        contact: Vec::new(),
        root_ca_file: Some(pebble.tls_ca_file.clone()),
        max_concurrent: None,
        request_timeout: None,
    };
    let (account, _stored) = AcmeAccount::load_or_register(&ca, transport, None)
        .await
        .unwrap_or_else(|err| panic!("register at Pebble: {err:#?}\n{}", pebble.logs()));

    let names = ["example.test", "*.example.test"];
    let domains: Vec<DomainName> = names
        .iter()
        .map(|name| DomainName::new(name).expect("domain"))
        .collect();
    let cert = CertName::new("wild").expect("cert name");
    let journal = MemoryJournal::new();
    let provider = Rfc2136::new("bind", &rfc2136(&bind, &bind.key)).expect("provider");
    let solver = Dns01Solver::new(Arc::new(provider), quick_settings(), journal.clone())
        .with_certificate("wild", names.map(str::to_owned).to_vec());

    let issued = account
        .issue(
            &OrderRequest {
                cert: &cert,
                domains: &domains,
                key_type: KeyType::EcdsaP256,
                directory_url: &pebble.directory_url,
                replaces: None,
                profile: None,
            },
            &solver,
            PollPolicy {
                initial_delay: Duration::from_millis(50),
                backoff: 1.5,
                timeout: Duration::from_secs(60),
            },
        )
        .await
        .unwrap_or_else(|err| panic!("issued: {err:#?}\n{}\n{}", pebble.logs(), bind.log()));

    assert!(
        issued.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        issued.chain_pem
    );
    let mut sans = subject_alt_names(&issued.chain_pem);
    sans.sort();
    let mut expected = names.map(str::to_owned);
    expected.sort();
    assert_eq!(sans, expected);
    assert!(bind.all_txt().is_empty(), "{:?}", bind.all_txt());
    assert!(journal.records().is_empty(), "{:?}", journal.records());
}

/// The DNS names of the leaf certificate (the first of the chain).
fn subject_alt_names(chain_pem: &str) -> Vec<String> {
    let (_, pem) = parse_x509_pem(chain_pem.as_bytes()).expect("PEM");
    let leaf = pem.parse_x509().expect("certificate");
    let san = leaf
        .subject_alternative_name()
        .expect("valid extensions")
        .expect("a SAN extension");
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

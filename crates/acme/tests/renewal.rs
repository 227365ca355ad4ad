//! ACME Renewal Information, `replaces` and profiles at a CA that offers neither, a real
//! Pebble (Debian's 2.4 has no `renewalInfo` and no `meta.profiles` in its directory).
//!
//! What must hold there: the ARI client answers `Unsupported` from the directory alone, a
//! renewal is ordered without `replaces` (instant-acme refuses `replaces` without ARI, and the
//! CA would not know it), and a requested profile is refused before anything is ordered, with
//! a message that says the CA offers none.

#[path = "../../../tests/support/pebble.rs"]
#[allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]
mod pebble;

use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use certkeeper_acme::{
    AcmeAccount, AcmeError, OrderRequest, PollPolicy, RenewalInfoAnswer, RenewalInfoClient,
    Transport, TransportSettings, cert_id,
};
use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::{CaName, CaSpec, CertName, DomainName, Eab, KeyType, Secret};
use pebble::{Pebble, PebbleOptions};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpListener;

struct Client {
    transport: Transport,
    account: AcmeAccount,
    directory_url: String,
}

async fn register(pebble: &Pebble) -> Client {
    let transport = Transport::new(&TransportSettings {
        root_ca_file: Some(pebble.tls_ca_file.clone()),
        ..TransportSettings::default()
    })
    .expect("transport");
    let (kid, hmac) = pebble.eab.clone().expect("Pebble requires EAB");
    let ca = CaSpec {
        name: CaName::new("pebble").expect("CA name"),
        directory: pebble.directory_url.clone(),
        eab: Some(Eab {
            kid,
            hmac_key: Secret::new(BASE64_URL_SAFE_NO_PAD.decode(hmac).expect("EAB key")),
        }),
        terms_of_service_agreed: true,
        contact: Vec::new(),
        root_ca_file: Some(pebble.tls_ca_file.clone()),
        max_concurrent: None,
        request_timeout: None,
    };
    let (account, _) = AcmeAccount::load_or_register(&ca, transport.clone(), None)
        .await
        .expect("register at Pebble");
    Client {
        transport,
        account,
        directory_url: pebble.directory_url.clone(),
    }
}

fn poll() -> PollPolicy {
    PollPolicy {
        initial_delay: Duration::from_millis(50),
        backoff: 1.5,
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn without_ari_or_profiles_a_renewal_orders_plainly_and_a_profile_is_refused_first() {
    let pebble = Pebble::start(PebbleOptions::default().env("PEBBLE_WFE_NONCEREJECT", "0"));
    let tokens = ChallengeTokens::new();
    let listener = TcpListener::bind(("127.0.0.1", pebble.http01_port))
        .await
        .expect("bind Pebble's HTTP-01 port");
    tokio::spawn(certkeeper_challenge::serve(
        listener,
        tokens.clone(),
        std::future::pending(),
    ));
    let client = register(&pebble).await;
    let cert = CertName::new("www").expect("cert name");
    let domains = vec![DomainName::new("www.example.com").expect("domain")];
    let request = |replaces, profile| OrderRequest {
        cert: &cert,
        domains: &domains,
        key_type: KeyType::EcdsaP256,
        directory_url: &client.directory_url,
        replaces,
        profile,
    };

    let issued = client
        .account
        .issue(&request(None, None), &tokens, poll())
        .await
        .unwrap_or_else(|err| panic!("issued: {err:#?}\n{}", pebble.logs()));
    let leaf = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .next()
        .expect("a certificate in the chain")
        .expect("PEM");
    // Pebble's leaves carry an AKI, so what follows is about the CA, not the certificate.
    let id = cert_id(&leaf).expect("certID of Pebble's leaf");
    assert!(id.contains('.'), "{id}");

    let ari = RenewalInfoClient::new(
        "pebble".to_owned(),
        client.transport.clone(),
        client.directory_url.clone(),
    );
    assert!(!ari.has_renewal_info().await.expect("directory"));
    assert!(ari.profiles().await.expect("directory").is_empty());
    assert_eq!(
        ari.check(&leaf)
            .await
            .expect("an answer from the directory alone"),
        RenewalInfoAnswer::Unsupported
    );

    let placed = client
        .account
        .place_order(&request(Some(&leaf), None))
        .await
        .unwrap_or_else(|err| panic!("renewal ordered: {err:#?}\n{}", pebble.logs()));
    assert!(!placed.replaced(), "no replaces without ARI");

    let err = client
        .account
        .place_order(&request(Some(&leaf), Some("shortlived")))
        .await
        .expect_err("Pebble 2.4 offers no profiles");
    assert!(
        matches!(&err, AcmeError::UnknownProfile { profile, offered, .. }
            if profile == "shortlived" && offered.is_empty()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "CA \"pebble\" does not offer the certificate profile \"shortlived\" (it offers no \
         profiles); change profile in the configuration"
    );
}

//! The acme2certifier harness (`support::a2c`) proved end to end with the current binary:
//! certkeeper issues through it (EAB, HTTP-01 on loopback), it advertises ARI and profiles,
//! answers renewalInfo from its own database (a window the harness can move into the past),
//! and the fault proxy stands in front of it with path-scoped faults.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use support::a2c::{A2cOptions, A2cSetup, NEW_ORDER_PATH, RENEWAL_INFO_PATH, https_get};
use support::proxy::{Fault, FaultProxy};
use support::{Cert, openssl, sans, serial, stderr};

/// The ARI certID of a certificate (RFC 9773 section 4.1): base64url(AKI keyIdentifier) "."
/// base64url(serial DER content bytes), both read with openssl.
fn cert_id(cert: &std::path::Path) -> String {
    use base64::Engine;
    use base64::prelude::BASE64_URL_SAFE_NO_PAD;
    let aki = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-ext",
        "authorityKeyIdentifier",
    ]);
    let aki_hex: String = aki
        .lines()
        .skip(1)
        .map(|line| line.trim().trim_start_matches("keyid:"))
        .collect::<String>()
        .replace(':', "");
    let serial_hex = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    let bytes = |hex: &str| -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    };
    let mut serial_bytes = bytes(&serial_hex);
    // DER INTEGER content: positive, so a leading 0x00 when the top bit is set.
    if serial_bytes[0] & 0x80 != 0 {
        serial_bytes.insert(0, 0);
    }
    format!(
        "{}.{}",
        BASE64_URL_SAFE_NO_PAD.encode(bytes(&aki_hex)),
        BASE64_URL_SAFE_NO_PAD.encode(serial_bytes)
    )
}

/// `2026-11-30T16:28:57Z` (how acme2certifier writes window bounds) as a Unix timestamp.
fn uts(instant: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| -> i32 { instant[range].parse().unwrap() };
    assert!(instant.len() == 20 && instant.ends_with('Z'), "{instant}");
    let date = time::Date::from_calendar_date(
        number(0..4),
        time::Month::try_from(u8::try_from(number(5..7)).unwrap()).unwrap(),
        u8::try_from(number(8..10)).unwrap(),
    )
    .unwrap();
    let hms = [11..13, 14..16, 17..19].map(|range| u8::try_from(number(range)).unwrap());
    date.with_hms(hms[0], hms[1], hms[2])
        .unwrap()
        .assume_utc()
        .unix_timestamp()
}

#[test]
fn certkeeper_issues_through_acme2certifier_which_offers_ari_and_profiles() {
    let setup = A2cSetup::new(A2cOptions::default().renewal_threshold_pct(50.0));
    setup.write_config(&[Cert::new("www", &["www.example.test"])]);

    let output = setup.certkeeper(&["renew"]);
    assert!(output.status.success(), "renew failed: {}", stderr(&output));

    let live = setup.live("www");
    let cert = live.join("cert.pem");
    assert!(cert.exists(), "no live certificate");
    assert_eq!(sans(&cert), ["www.example.test"]);
    let verified = openssl(&[
        "verify",
        "-CAfile",
        setup.a2c.issuing_ca_file().to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(verified.trim_end().ends_with(": OK"), "{verified}");
    assert_eq!(setup.a2c.issued_count(), 1);

    let orders = setup.a2c.new_orders();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(
        orders[0]["identifiers"],
        serde_json::json!([{"type": "dns", "value": "www.example.test"}]),
        "{orders:?}"
    );

    let directory = setup.a2c.get("/directory");
    assert_eq!(directory.status, 200, "{}", directory.body);
    let directory: serde_json::Value = serde_json::from_str(&directory.body).unwrap();
    assert_eq!(
        directory["renewalInfo"],
        format!(
            "{}{RENEWAL_INFO_PATH}",
            setup.a2c.directory_url().trim_end_matches("/directory")
        ),
        "{directory}"
    );
    let profiles: Vec<&String> = directory["meta"]["profiles"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        profiles,
        ["classic", "shortlived", "tlsserver"],
        "{directory}"
    );

    // renewalInfo answers from the CA's database: first the real window (half-way through
    // the lifetime to notAfter), then, once moved, one that lies wholly in the past.
    let id = cert_id(&cert);
    let path = format!("{RENEWAL_INFO_PATH}/{id}");
    let info = setup.a2c.get(&path);
    assert_eq!(info.status, 200, "{path}: {}", info.body);
    assert_eq!(info.headers["retry-after"], "3600");
    let window: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    let (issued, expires) = setup.a2c.certificate_times(&serial(&cert));
    let start = uts(window["suggestedWindow"]["start"].as_str().unwrap());
    let end = uts(window["suggestedWindow"]["end"].as_str().unwrap());
    assert_eq!(end, expires, "{window}");
    assert!(
        (start - (issued + (expires - issued) / 2)).abs() <= 1,
        "{window}"
    );

    setup.a2c.move_window_into_past(&serial(&cert));
    let moved: serde_json::Value = serde_json::from_str(&setup.a2c.get(&path).body).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        uts(moved["suggestedWindow"]["end"].as_str().unwrap()) < now,
        "{moved}"
    );
    assert_eq!(setup.a2c.renewal_info_requests(), [path.clone(), path]);
    // Only the CA's record moved: the certificate certkeeper holds is still valid.
    let checked = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-checkend",
        "86400",
    ]);
    assert!(checked.contains("will not expire"), "{checked}");
}

#[test]
fn the_fault_proxy_stands_in_front_of_acme2certifier_with_path_scoped_faults() {
    let setup = A2cSetup::new(A2cOptions::default());
    let proxy = FaultProxy::start_for(&setup.a2c.upstream());
    setup.write_config_via(
        &proxy.directory_url(),
        "",
        &[Cert::new("www", &["www.example.test"])],
    );
    proxy.fail_next_on(
        NEW_ORDER_PATH,
        1,
        Fault::Status {
            code: 409,
            problem: "alreadyReplaced",
            retry_after: None,
        },
    );

    let output = setup.certkeeper(&["renew"]);
    assert!(!output.status.success(), "renew succeeded despite the 409");
    let text = format!("{}{}", support::stdout(&output), stderr(&output));
    assert!(text.contains("alreadyReplaced"), "{text}");
    assert_eq!(proxy.requests_to(NEW_ORDER_PATH), 1, "{:?}", proxy.paths());
    // The account was created through the proxy; the order never reached acme2certifier.
    assert!(
        proxy.requests_to("/acme/newaccount") >= 1,
        "{:?}",
        proxy.paths()
    );
    assert!(setup.a2c.new_orders().is_empty());
    assert!(!setup.live("www").exists());

    // The fault was for one newOrder only: the next run (forced past the backoff the failure
    // started) goes through the proxy and issues.
    let output = setup.certkeeper(&["renew", "--force", "www"]);
    assert!(output.status.success(), "renew failed: {}", stderr(&output));
    assert_eq!(proxy.requests_to(NEW_ORDER_PATH), 2, "{:?}", proxy.paths());
    assert_eq!(setup.a2c.new_orders().len(), 1);
    assert_eq!(setup.a2c.issued_count(), 1);
    let cert = setup.live("www").join("cert.pem");
    assert!(cert.exists());

    // A fault on every renewalInfo request, and only there, until cleared.
    let origin = proxy.directory_url().replace("/directory", "");
    let root = setup.a2c.root_ca_file();
    let info_url = format!("{origin}{RENEWAL_INFO_PATH}/{}", cert_id(&cert));
    proxy.set_on(
        "renewal-info",
        Fault::Status {
            code: 500,
            problem: "serverInternal",
            retry_after: Some(7),
        },
    );
    for _ in 0..2 {
        let failed = https_get(&info_url, &root);
        assert_eq!(failed.status, 500, "{}", failed.body);
        assert_eq!(failed.headers["retry-after"], "7");
    }
    assert_eq!(https_get(&proxy.directory_url(), &root).status, 200);
    proxy.clear_on("renewal-info");
    let info = https_get(&info_url, &root);
    assert_eq!(info.status, 200, "{}", info.body);
    assert!(info.body.contains("suggestedWindow"), "{}", info.body);
    assert_eq!(proxy.requests_to("renewal-info"), 3);
    assert_eq!(setup.a2c.renewal_info_requests().len(), 1);
}

//! ACME Renewal Information (ARI, RFC 9773): when the CA suggests renewing a certificate.
//!
//! [`RenewalInfoClient`] asks one CA about certificates it issued. It reads the CA's directory
//! once (lazily, through the same [`Transport`] as orders, so its timeouts and trust apply; a
//! failed read is not kept, the next check reads again) and answers
//! [`RenewalInfoAnswer::Unsupported`] without another request when the directory has no
//! `renewalInfo`. Otherwise it GETs `{renewalInfo}/{certID}`: a plain unauthenticated GET
//! (RFC 9773 section 4.1), so no account and no JWS.
//!
//! It does that GET itself rather than through instant-acme's `Account::renewal_info`, which
//! needs an account session and fails when the CA sends no `Retry-After`; RFC 9773 section 4.3
//! only says the client should then choose a sensible interval, so here a missing header is
//! `retry_after: None`. The request also leaves the transport's remembered Retry-After alone:
//! that value is the CA's word on the next *order*, and an ARI answer is not.
//!
//! Turning an answer into the instant to renew is the core planner's business (a window is an
//! input to it, like the certificate's validity); this module only fetches and checks the
//! window. The reading of an answer ([`read_renewal_info`]) is a pure function of the status,
//! headers, body and `now`, so it is tested without a CA.
//!
//! [`cert_id`] is also what orders put in `replaces` (RFC 9773 section 5).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use instant_acme::{BodyWrapper, CertificateIdentifier, Problem, RenewalInfo};
use rustls_pki_types::Der;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::OnceCell;
use x509_parser::extensions::ParsedExtension;

use crate::directory::{Directory, fetch_directory};
use crate::error::{AcmeError, RenewalInfoFailure};
use crate::transport::{Transport, parse_retry_after};

/// The RFC 9773 certificate ID of a leaf certificate (DER):
/// `base64url(AKI keyIdentifier) "." base64url(serial number DER bytes)`.
///
/// # Errors
/// [`AcmeError::NoAuthorityKeyId`] when the certificate has no authority key identifier with a
/// `keyIdentifier` (ARI cannot be used for it); [`AcmeError::UnreadableCertificate`] when
/// `leaf_der` is not an X.509 certificate.
pub fn cert_id(leaf_der: &[u8]) -> Result<String, AcmeError> {
    certificate_identifier(leaf_der).map(|id| id.to_string())
}

/// The certificate ID as instant-acme's type, for `NewOrder::replaces`.
///
/// The certificate is parsed here rather than through instant-acme's `TryFrom`, whose error is
/// one string for both "not a certificate" and "no AKI"; the identifier is still built by
/// instant-acme from the same two DER values.
pub(crate) fn certificate_identifier(
    leaf_der: &[u8],
) -> Result<CertificateIdentifier<'static>, AcmeError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf_der).map_err(|err| {
        AcmeError::UnreadableCertificate {
            reason: err.to_string(),
        }
    })?;
    let key_identifier = certificate
        .iter_extensions()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .ok_or(AcmeError::NoAuthorityKeyId)?;
    Ok(CertificateIdentifier::new(
        Der::from_slice(key_identifier.0),
        Der::from_slice(certificate.tbs_certificate.raw_serial()),
    )
    .into_owned())
}

/// What a CA says about renewing one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalInfoAnswer {
    /// The CA's directory has no `renewalInfo`: it offers no ARI.
    Unsupported,
    /// The suggested renewal window (RFC 9773 section 4.2): renew at a time within it.
    Window {
        start: SystemTime,
        /// Not before `start`.
        end: SystemTime,
        /// A page explaining the window, for the operator (often set when the CA asks for an
        /// early renewal, e.g. before a mass revocation).
        explanation_url: Option<String>,
        /// When to ask again, from the answer's `Retry-After`, counted from when it was read;
        /// `None` when the CA sent none.
        retry_after: Option<Duration>,
    },
}

/// Asks one CA for renewal information; see the module docs.
#[derive(Debug)]
pub struct RenewalInfoClient {
    ca: String,
    transport: Transport,
    directory_url: String,
    directory: OnceCell<Directory>,
}

impl RenewalInfoClient {
    /// A client for the CA named `ca` (for messages) with directory `directory_url`. Nothing
    /// is fetched until it is first asked something.
    #[must_use]
    pub fn new(ca: String, transport: Transport, directory_url: String) -> Self {
        Self {
            ca,
            transport,
            directory_url,
            directory: OnceCell::new(),
        }
    }

    /// The CA's directory, read on first use and kept once read.
    async fn directory(&self) -> Result<&Directory, AcmeError> {
        self.directory
            .get_or_try_init(|| fetch_directory(&self.ca, &self.transport, &self.directory_url))
            .await
    }

    /// Whether the CA offers ARI (its directory has `renewalInfo`).
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub async fn has_renewal_info(&self) -> Result<bool, AcmeError> {
        Ok(self.directory().await?.renewal_info.is_some())
    }

    /// The certificate profiles the CA offers (draft-ietf-acme-profiles), name -> description;
    /// empty when it offers none.
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub async fn profiles(&self) -> Result<BTreeMap<String, String>, AcmeError> {
        Ok(self.directory().await?.meta.profiles.clone())
    }

    /// Ask the CA when to renew the certificate `leaf_der` (DER).
    ///
    /// # Errors
    /// The directory cannot be read; the certificate has no AKI or does not parse; the
    /// `renewalInfo` request fails, times out or is answered with an error status, a body
    /// that is not renewal information, or a window that ends before it starts
    /// ([`AcmeError::RenewalInfo`]).
    pub async fn check(&self, leaf_der: &[u8]) -> Result<RenewalInfoAnswer, AcmeError> {
        let Some(base) = self.directory().await?.renewal_info.as_deref() else {
            return Ok(RenewalInfoAnswer::Unsupported);
        };
        let id = cert_id(leaf_der)?;
        // RFC 9773 section 4.1: the certID is appended as one more path segment.
        let url = format!("{}/{id}", base.trim_end_matches('/'));
        let failed = |source: RenewalInfoFailure| AcmeError::RenewalInfo {
            ca: self.ca.clone(),
            url: url.clone(),
            source: Box::new(source),
        };
        let request = http::Request::get(&url)
            .body(BodyWrapper::<Bytes>::default())
            .map_err(|err| failed(RenewalInfoFailure::Request(instant_acme::Error::Http(err))))?;
        let mut response = self
            .transport
            .request_unremembered(request)
            .await
            .map_err(|err| failed(RenewalInfoFailure::Request(err)))?;
        let body =
            response.body.into_bytes().await.map_err(|err| {
                failed(RenewalInfoFailure::Request(instant_acme::Error::Other(err)))
            })?;
        let answer = read_renewal_info(
            response.parts.status,
            &response.parts.headers,
            &body,
            SystemTime::now(),
        )
        .map_err(failed)?;
        if let RenewalInfoAnswer::Window {
            explanation_url: Some(explanation),
            ..
        } = &answer
        {
            tracing::debug!(ca = %self.ca, url = %url, explanation = %explanation, "renewal window explained");
        }
        Ok(answer)
    }
}

/// Read a `renewalInfo` answer (RFC 9773 section 4.2) received at `now`.
///
/// A success status needs a body `{"suggestedWindow": {"start", "end"}, "explanationURL"?}`
/// with RFC 3339 times and `end` not before `start`; `Retry-After` (delay-seconds or an HTTP
/// date) becomes the time from `now` until it, zero for a date already past, and `None` when
/// absent or unreadable. An error status keeps the problem document, if the body is one, and
/// its `Retry-After`.
///
/// # Errors
/// An error status, a malformed body or an inverted window.
pub fn read_renewal_info(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<RenewalInfoAnswer, RenewalInfoFailure> {
    let retry_after = parse_retry_after(headers, now);
    if !status.is_success() {
        let problem = serde_json::from_slice::<Problem>(body)
            .ok()
            .filter(|problem| problem.r#type.is_some() || problem.detail.is_some());
        return Err(RenewalInfoFailure::Status {
            status,
            retry_after,
            problem,
        });
    }
    let info: RenewalInfo = serde_json::from_slice(body).map_err(RenewalInfoFailure::Malformed)?;
    let window = info.suggested_window;
    if window.end < window.start {
        return Err(RenewalInfoFailure::InvertedWindow {
            start: rfc3339(window.start),
            end: rfc3339(window.end),
        });
    }
    Ok(RenewalInfoAnswer::Window {
        start: window.start.into(),
        end: window.end.into(),
        explanation_url: info.explanation_url,
        retry_after: retry_after.map(|at| at.duration_since(now).unwrap_or(Duration::ZERO)),
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, IsCa, Issuer, KeyIdMethod, KeyPair,
        SerialNumber,
    };

    use super::*;

    /// A leaf signed by a CA whose key identifier is `ca_key_id`, with serial `serial`
    /// (rcgen's bytes, before DER adds a leading zero to a negative-looking number).
    pub(crate) fn leaf(ca_key_id: &[u8], serial: &[u8], with_aki: bool) -> Vec<u8> {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_identifier_method = KeyIdMethod::PreSpecified(ca_key_id.to_vec());
        let ca = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(["www.example.com".to_owned()]).expect("leaf params");
        params.distinguished_name = DistinguishedName::new();
        params.serial_number = Some(SerialNumber::from_slice(serial));
        params.use_authority_key_identifier_extension = with_aki;
        params.signed_by(&key, &ca).expect("leaf").der().to_vec()
    }

    #[test]
    fn cert_id_is_the_rfc_9773_example() {
        // RFC 9773 section 4.1: AKI 69:88:5B:...:C8:D4 and serial 00:87:65:43:21.
        let aki = [
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        let der = leaf(&aki, &[0x87, 0x65, 0x43, 0x21], true);
        assert_eq!(
            cert_id(&der).expect("cert id"),
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
        );
        // A serial without the high bit set has no leading zero.
        let der = leaf(&[0xC0, 0xFF, 0xEE], &[0x01, 0x02, 0x03], true);
        assert_eq!(cert_id(&der).expect("cert id"), "wP_u.AQID");
    }

    #[test]
    fn a_certificate_without_an_aki_or_not_a_certificate_is_a_typed_error() {
        let der = leaf(&[0xC0, 0xFF, 0xEE], &[0x01], false);
        let err = cert_id(&der).expect_err("no AKI");
        assert!(matches!(err, AcmeError::NoAuthorityKeyId), "{err:?}");
        assert!(
            err.to_string()
                .contains("ACME Renewal Information cannot be used")
        );
        let err = cert_id(b"not a certificate").expect_err("garbage");
        assert!(
            matches!(err, AcmeError::UnreadableCertificate { .. }),
            "{err:?}"
        );
    }

    const WINDOW: &str = r#"{
        "suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"},
        "explanationURL": "https://acme.example.com/docs/ari"
    }"#;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    fn headers(retry_after: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(
                http::header::RETRY_AFTER,
                value.parse().expect("header value"),
            );
        }
        headers
    }

    #[test]
    fn a_window_with_each_kind_of_retry_after() {
        // 2025-01-02T04:00:00Z and a day later.
        let (start, end) = (at(1_735_790_400), at(1_735_876_800));
        let now = at(1_735_700_000);
        let table = [
            (None, None),
            (Some("21600"), Some(Duration::from_secs(21_600))),
            (Some(" 0 "), Some(Duration::ZERO)),
            // An HTTP date, 100 seconds after `now`.
            (
                Some("Wed, 01 Jan 2025 02:55:00 GMT"),
                Some(Duration::from_secs(1_735_700_100 - 1_735_700_000)),
            ),
            // A date already past counts as "ask again now".
            (Some("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO)),
            // Unreadable: as if absent, not a failure.
            (Some("later"), None),
            (Some("-5"), None),
        ];
        for (header, expected) in table {
            let answer = read_renewal_info(
                http::StatusCode::OK,
                &headers(header),
                WINDOW.as_bytes(),
                now,
            )
            .expect("window");
            assert_eq!(
                answer,
                RenewalInfoAnswer::Window {
                    start,
                    end,
                    explanation_url: Some("https://acme.example.com/docs/ari".to_owned()),
                    retry_after: expected,
                },
                "{header:?}"
            );
        }
    }

    #[test]
    fn explanation_is_optional_and_offsets_are_honoured() {
        let body = br#"{"suggestedWindow": {"start": "2025-01-02T06:00:00+02:00",
                                          "end": "2025-01-02T04:00:00Z"}}"#;
        let answer = read_renewal_info(http::StatusCode::OK, &headers(None), body, at(0))
            .expect("a window of no length is still a window");
        assert_eq!(
            answer,
            RenewalInfoAnswer::Window {
                start: at(1_735_790_400),
                end: at(1_735_790_400),
                explanation_url: None,
                retry_after: None,
            }
        );
    }

    #[test]
    fn an_unusable_answer_is_a_typed_failure() {
        let now = at(1_735_700_000);
        let inverted = br#"{"suggestedWindow": {"start": "2025-01-03T04:00:00Z",
                                              "end": "2025-01-02T04:00:00Z"}}"#;
        let err = read_renewal_info(http::StatusCode::OK, &headers(None), inverted, now)
            .expect_err("inverted");
        assert!(
            matches!(&err, RenewalInfoFailure::InvertedWindow { start, end }
                if start == "2025-01-03T04:00:00Z" && end == "2025-01-02T04:00:00Z"),
            "{err:?}"
        );
        for body in [
            &b"<html>oops</html>"[..],
            br#"{"suggestedWindow": {"start": "yesterday", "end": "2025-01-02T04:00:00Z"}}"#,
            br#"{"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"}"#,
        ] {
            let err = read_renewal_info(http::StatusCode::OK, &headers(None), body, now)
                .expect_err("malformed");
            assert!(matches!(err, RenewalInfoFailure::Malformed(_)), "{err:?}");
        }
    }

    #[test]
    fn an_error_status_keeps_the_problem_and_the_retry_after() {
        let now = at(1_735_700_000);
        let problem = br#"{"type": "urn:ietf:params:acme:error:serverInternal",
                           "detail": "ARI is down", "status": 503}"#;
        let err = read_renewal_info(
            http::StatusCode::SERVICE_UNAVAILABLE,
            &headers(Some("60")),
            problem,
            now,
        )
        .expect_err("503");
        let RenewalInfoFailure::Status {
            status,
            retry_after,
            problem,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(*status, http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(*retry_after, Some(now + Duration::from_secs(60)));
        assert_eq!(
            problem.as_ref().and_then(|p| p.detail.as_deref()),
            Some("ARI is down")
        );
        let error = AcmeError::RenewalInfo {
            ca: "ca-1".to_owned(),
            url: "https://ca/ari/x.y".to_owned(),
            source: Box::new(err),
        };
        assert!(error.is_retryable());
        assert_eq!(
            certkeeper_core::error_chain(&error),
            "CA \"ca-1\": cannot get renewal information from https://ca/ari/x.y: \
             HTTP status 503 Service Unavailable: API error: ARI is down \
             (urn:ietf:params:acme:error:serverInternal)"
        );

        let err = read_renewal_info(
            http::StatusCode::NOT_FOUND,
            &headers(None),
            b"not found",
            now,
        )
        .expect_err("404");
        assert!(
            matches!(
                &err,
                RenewalInfoFailure::Status {
                    problem: None,
                    retry_after: None,
                    ..
                }
            ),
            "{err:?}"
        );
        let error = AcmeError::RenewalInfo {
            ca: "ca-1".to_owned(),
            url: "https://ca/ari/x.y".to_owned(),
            source: Box::new(err),
        };
        assert!(!error.is_retryable());
    }
}

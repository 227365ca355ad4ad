//! The HTTPS client instant-acme talks through.
//!
//! Every request gets a deadline covering connect, headers and the whole body: instant-acme's
//! stock client would wait forever on a CA that accepts a connection and never answers.
//!
//! The transport also remembers the latest `Retry-After` a CA sent with an error (429, 503):
//! instant-acme honours it while polling but drops it from the errors it returns, and the
//! scheduler must not retry before it. Requests whose answers certkeeper reads itself (ARI's
//! `renewalInfo`) go through `Transport::request_unremembered` and leave it alone.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{AcmeError, CaFailure};

/// Timeouts and trust for talking to one CA.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Time allowed to open the TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for one request, from sending it to the last byte of the response.
    pub request_timeout: Duration,
    /// Extra trust anchors (PEM) added to the system's, for private or test CAs.
    pub root_ca_file: Option<PathBuf>,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            root_ca_file: None,
        }
    }
}

/// A cloneable HTTPS client implementing instant-acme's [`HttpClient`].
#[derive(Clone)]
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    request_timeout: Duration,
    retry_after: Arc<Mutex<Option<SystemTime>>>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Build a client trusting the system roots plus `settings.root_ca_file`.
    ///
    /// # Errors
    /// When the extra trust anchor cannot be read or parsed, or no trust anchor is found at all.
    pub fn new(settings: &TransportSettings) -> Result<Self, AcmeError> {
        let mut roots = RootCertStore::empty();
        // A host without a CA bundle still works with an explicit root_ca_file, so an
        // unreadable system store is not fatal here; an empty store is reported below.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &settings.root_ca_file {
            add_pem_roots(&mut roots, path)?;
        }
        if roots.is_empty() {
            return Err(AcmeError::NoTrustAnchors);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| AcmeError::Tls(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            request_timeout: settings.request_timeout,
            retry_after: Arc::default(),
        })
    }

    /// The latest `Retry-After` the CA sent with an error response, taken (so it is reported
    /// once).
    #[must_use]
    pub fn take_retry_after(&self) -> Option<SystemTime> {
        self.retry_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// `error`, met through this transport, with the Retry-After the CA sent with it (taken).
    #[must_use]
    pub fn failure(&self, error: AcmeError) -> CaFailure {
        CaFailure {
            error,
            retry_after: self.take_retry_after(),
        }
    }

    /// This transport boxed for instant-acme's account builder.
    #[must_use]
    pub fn boxed(&self) -> Box<dyn HttpClient> {
        Box::new(self.clone())
    }
}

fn add_pem_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), AcmeError> {
    let bad = |reason: String| AcmeError::RootCaFile {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| bad(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad(err.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".to_owned()));
    }
    for cert in certs {
        roots.add(cert).map_err(|err| bad(err.to_string()))?;
    }
    Ok(())
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 section 10.2.3).
pub(crate) fn parse_retry_after(headers: &http::HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(now + Duration::from_secs(seconds));
    }
    httpdate::parse_http_date(value).ok()
}

/// The deadline passed before the response was complete.
#[derive(Debug, thiserror::Error)]
#[error("no complete response from the CA within {0:?}")]
pub struct RequestTimeout(pub Duration);

/// A response on its way, as instant-acme's [`HttpClient`] returns it.
pub(crate) type PendingResponse =
    Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>;

impl Transport {
    /// Send `req` with the request deadline, leaving the remembered Retry-After alone.
    ///
    /// For requests whose answer the caller reads itself (ARI's `renewalInfo`): their error
    /// answers are not the CA's word on the next order, and a Retry-After remembered from them
    /// would hold back an unrelated retry.
    pub(crate) fn request_unremembered(&self, req: Request<BodyWrapper<Bytes>>) -> PendingResponse {
        self.send(req, None)
    }

    fn send(
        &self,
        req: Request<BodyWrapper<Bytes>>,
        remember: Option<Arc<Mutex<Option<SystemTime>>>>,
    ) -> PendingResponse {
        let timeout = self.request_timeout;
        let response = self.client.request(req);
        Box::pin(async move {
            let complete = async {
                let response = response
                    .await
                    .map_err(|err| instant_acme::Error::Other(Box::new(err)))?;
                let (parts, body) = response.into_parts();
                if let Some(retry_after) = &remember
                    && (parts.status.is_client_error() || parts.status.is_server_error())
                    && let Some(at) = parse_retry_after(&parts.headers, SystemTime::now())
                {
                    *retry_after.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
                }
                let body = body
                    .collect()
                    .await
                    .map_err(|err| instant_acme::Error::Other(Box::new(err)))?
                    .to_bytes();
                Ok(BytesResponse::from(http::Response::from_parts(
                    parts,
                    Full::new(body),
                )))
            };
            match tokio::time::timeout(timeout, complete).await {
                Ok(result) => result,
                Err(_) => Err(instant_acme::Error::Other(Box::new(RequestTimeout(
                    timeout,
                )))),
            }
        })
    }
}

impl HttpClient for Transport {
    fn request(&self, req: Request<BodyWrapper<Bytes>>) -> PendingResponse {
        self.send(req, Some(Arc::clone(&self.retry_after)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = http::HeaderMap::new();
        assert_eq!(parse_retry_after(&headers, now), None);
        headers.insert(http::header::RETRY_AFTER, "120".parse().expect("header"));
        assert_eq!(
            parse_retry_after(&headers, now),
            Some(now + Duration::from_secs(120))
        );
        headers.insert(
            http::header::RETRY_AFTER,
            "Tue, 14 Nov 2023 22:15:20 GMT".parse().expect("header"),
        );
        assert_eq!(
            parse_retry_after(&headers, now),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_120))
        );
        headers.insert(http::header::RETRY_AFTER, "soon".parse().expect("header"));
        assert_eq!(parse_retry_after(&headers, now), None);
    }
}

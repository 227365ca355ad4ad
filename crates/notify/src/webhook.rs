//! `type = "webhook"`: one POST per notice, with hyper and rustls.
//!
//! The client trusts the system roots plus the target's `root_ca_file`, like the ACME
//! transport. The target is named in errors by scheme, host and port only: an incoming
//! webhook's path (`/services/T000/B000/XXXX`) is the credential.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use certkeeper_core::Secret;
use certkeeper_core::notify::{WebhookFormat, WebhookTarget};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::{Notice, NotifyError, is_tls, root_cause};

/// How much of an error response's body is kept for the error message.
const BODY_EXCERPT: usize = 200;

/// A webhook target, ready to send.
pub(crate) struct WebhookSender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: http::Uri,
    /// `scheme://host:port`, for messages.
    address: String,
    token: Option<Secret>,
    format: WebhookFormat,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender")
            .field("address", &self.address)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl WebhookSender {
    pub(crate) fn new(name: &str, spec: &WebhookTarget) -> Result<Self, NotifyError> {
        let setup = |reason: String| NotifyError::Setup {
            target: name.to_owned(),
            reason,
        };
        let tls = client_config(spec.root_ca_file.as_deref()).map_err(setup)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let uri: http::Uri = spec
            .url
            .as_str()
            .parse()
            .map_err(|_| setup("the webhook URL is not a valid HTTP URI".to_owned()))?;
        let address = format!(
            "{}://{}:{}",
            spec.url.scheme(),
            spec.url.host_str().unwrap_or_default(),
            spec.url.port_or_known_default().unwrap_or_default()
        );
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            uri,
            address,
            token: spec.token.clone(),
            format: spec.format,
        })
    }

    pub(crate) async fn send(&self, name: &str, notice: &Notice) -> Result<(), NotifyError> {
        let body = match self.format {
            WebhookFormat::Json => notice.webhook_json(),
            WebhookFormat::Slack => notice.slack_json(),
        };
        let mut request = http::Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("certkeeper/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| self.failed(name, err.to_string()))?;
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_bytes(&[b"Bearer ", token.expose()].concat())
                .map_err(|_| self.failed(name, "the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let response = self.client.request(request).await.map_err(|err| {
            let reason = root_cause(&err);
            if is_tls(&err) {
                NotifyError::Tls {
                    target: name.to_owned(),
                    address: self.address.clone(),
                    reason,
                }
            } else if err.is_connect() {
                NotifyError::Connect {
                    target: name.to_owned(),
                    address: self.address.clone(),
                    reason,
                }
            } else {
                self.failed(name, reason)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The body says why, often; a receiver that does not send it is not waited for long.
        let body = response
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let excerpt: String = text
            .trim()
            .chars()
            .take(BODY_EXCERPT)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Err(NotifyError::HttpStatus {
            target: name.to_owned(),
            address: self.address.clone(),
            status: status.as_u16(),
            body: excerpt,
        })
    }

    fn failed(&self, name: &str, reason: String) -> NotifyError {
        NotifyError::Http {
            target: name.to_owned(),
            address: self.address.clone(),
            reason,
        }
    }
}

/// A rustls client configuration trusting the system roots plus `root_ca_file`.
pub(crate) fn client_config(root_ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = root_ca_file {
        for cert in read_pem_certificates(path)? {
            roots
                .add(cert)
                .map_err(|err| format!("cannot use root_ca_file {}: {err}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted root certificates: the system store is empty and no root_ca_file is set"
                .to_owned(),
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The certificates of a PEM file, at least one.
pub(crate) fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |reason: String| format!("cannot use root_ca_file {}: {reason}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| bad(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad(err.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".to_owned()));
    }
    Ok(certs)
}

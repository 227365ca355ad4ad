//! The CA's directory document (RFC 8555 section 7.1.1), as certkeeper reads it itself.
//!
//! instant-acme parses the directory into private fields, and some decisions are made before
//! (or without) an instant-acme session: the terms and EAB checks before registering, and
//! whether the CA offers ACME Renewal Information (`renewalInfo`, RFC 9773) and which
//! certificate profiles (`meta.profiles`, draft-ietf-acme-profiles). So the few fields those
//! need are read here, from a plain GET through the [`Transport`], and nothing else.

use std::collections::BTreeMap;

use bytes::Bytes;
use instant_acme::{BodyWrapper, HttpClient};
use serde::Deserialize;

use crate::error::AcmeError;
use crate::transport::Transport;

/// The parts of a CA's directory certkeeper reads itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Directory {
    /// Where a fresh nonce is had (RFC 8555 section 7.2), for the requests certkeeper signs
    /// itself (an alternate chain's download).
    pub(crate) new_nonce: Option<String>,
    /// The ARI base URL (RFC 9773 section 4); `None` when the CA offers no ARI.
    pub(crate) renewal_info: Option<String>,
    #[serde(default)]
    pub(crate) meta: DirectoryMeta,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DirectoryMeta {
    pub(crate) terms_of_service: Option<String>,
    #[serde(default)]
    pub(crate) external_account_required: bool,
    /// Profile name -> description (draft-ietf-acme-profiles section 3).
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, String>,
}

impl Directory {
    /// The directory in a response body, if it is one.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// GET the directory at `url` through `transport`.
pub(crate) async fn fetch_directory(
    ca: &str,
    transport: &Transport,
    url: &str,
) -> Result<Directory, AcmeError> {
    let failed = |source: instant_acme::Error| AcmeError::Directory {
        ca: ca.to_owned(),
        url: url.to_owned(),
        source: Box::new(source),
    };
    let request = http::Request::get(url)
        .body(BodyWrapper::<Bytes>::default())
        .map_err(|err| failed(instant_acme::Error::Http(err)))?;
    let mut response = transport.request(request).await.map_err(failed)?;
    let body = response
        .body
        .into_bytes()
        .await
        .map_err(|err| failed(instant_acme::Error::Other(err)))?;
    if !response.parts.status.is_success() {
        return Err(failed(instant_acme::Error::Other(
            format!("HTTP status {}", response.parts.status).into(),
        )));
    }
    Directory::parse(&body).map_err(|err| failed(instant_acme::Error::Json(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_renewal_info_and_profiles_and_tolerates_their_absence() {
        let full = br#"{
            "newNonce": "https://ca/nonce", "newAccount": "https://ca/acct",
            "newOrder": "https://ca/order", "renewalInfo": "https://ca/ari",
            "meta": {"termsOfService": "https://ca/tos", "externalAccountRequired": true,
                     "profiles": {"tlsserver": "TLS server only", "classic": "the old one"}}
        }"#;
        let directory = Directory::parse(full).expect("directory");
        assert_eq!(directory.renewal_info.as_deref(), Some("https://ca/ari"));
        assert!(directory.meta.external_account_required);
        assert_eq!(
            directory.meta.profiles.keys().collect::<Vec<_>>(),
            ["classic", "tlsserver"]
        );
        let bare = br#"{"newNonce": "n", "newAccount": "a", "newOrder": "o"}"#;
        let directory = Directory::parse(bare).expect("directory");
        assert!(directory.renewal_info.is_none());
        assert!(directory.meta.profiles.is_empty());
        assert!(directory.meta.terms_of_service.is_none());
    }
}

//! `preferred_chain`: choosing among the chains a CA offers for one certificate.
//!
//! A CA may offer the same certificate under several chains, each ending at a different root
//! (RFC 8555 section 7.4.2): the default one at the certificate URL, the others at the URLs of
//! its `Link: <url>;rel="alternate"` headers. instant-acme downloads the default chain and
//! hands out neither those headers nor a signed request to another URL, so:
//!
//! - the order's session records the `Link` headers of the certificate download (the order's
//!   recorder, in `order.rs`);
//! - an alternate chain is fetched here with a POST-as-GET (RFC 8555 section 6.3) that this
//!   module signs itself: ES256 with the account key, which instant-acme creates as ECDSA P-256
//!   (`Key::generate_pkcs8`), `kid` the account URL, a nonce from the directory's `newNonce`,
//!   retried once on `badNonce`.
//!
//! A chain's name is the issuer common name of its *last* certificate: the root-most issuer,
//! as certbot defines `--preferred-chain` ("the issuer of the last certificate in the chain";
//! for a chain ending at a cross-signed intermediate, that is the cross-signing root). When no
//! chain has the preferred name, or an alternate cannot be fetched, the default chain is kept
//! and a warning names the issuers offered: a preference never fails a renewal.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use bytes::Bytes;
use instant_acme::{BodyWrapper, Problem};
use x509_parser::pem::Pem;

use crate::account::AcmeAccount;
use crate::error::{AcmeError, ProblemType};

const STEP: &str = "downloading an alternate chain";

/// The URLs of the `Link: <url>;rel="alternate"` headers (RFC 8288) in `headers`.
pub(crate) fn alternate_links(headers: &http::HeaderMap) -> Vec<String> {
    let mut links = Vec::new();
    for value in headers.get_all(http::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        // One header may carry several links, separated by commas.
        for link in value.split(',') {
            let link = link.trim();
            let Some((target, params)) =
                link.strip_prefix('<').and_then(|rest| rest.split_once('>'))
            else {
                continue;
            };
            let alternate = params.split(';').any(|param| {
                param.split_once('=').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("rel")
                        && value
                            .trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|rel| rel.eq_ignore_ascii_case("alternate"))
                })
            });
            if alternate {
                links.push(target.to_owned());
            }
        }
    }
    links
}

/// A chain's name: the issuer common name of its last certificate (see the module docs).
/// `None` when the chain has no parsable certificate or that issuer has no common name.
pub(crate) fn chain_name(chain_pem: &str) -> Option<String> {
    let last = Pem::iter_from_buffer(chain_pem.as_bytes())
        .filter_map(Result::ok)
        .last()?;
    let certificate = last.parse_x509().ok()?;
    let name = certificate
        .issuer()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(name)
}

/// The index of the first chain named `preferred` among `names` (the default chain first).
pub(crate) fn choose(names: &[Option<String>], preferred: &str) -> Option<usize> {
    names
        .iter()
        .position(|name| name.as_deref() == Some(preferred))
}

/// The offered names, for the warning: `"A", "B"`, or `(none named)`.
pub(crate) fn describe(names: &[Option<String>]) -> String {
    let named: Vec<String> = names
        .iter()
        .flatten()
        .map(|name| format!("{name:?}"))
        .collect();
    if named.is_empty() {
        "(none named)".to_owned()
    } else {
        named.join(", ")
    }
}

/// The JWS (flattened JSON serialization, RFC 7515 section 7.2.2) of a POST-as-GET to `url`:
/// protected header `{alg: ES256, kid, nonce, url}`, empty payload, signed with the P-256
/// key `key_pkcs8` (DER).
pub(crate) fn sign_post_as_get(
    key_pkcs8: &[u8],
    kid: &str,
    nonce: &str,
    url: &str,
) -> Result<Vec<u8>, instant_acme::Error> {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_pkcs8)
        .map_err(|_| instant_acme::Error::KeyRejected)?;
    let header = serde_json::json!({ "alg": "ES256", "kid": kid, "nonce": nonce, "url": url });
    let protected = BASE64_URL_SAFE_NO_PAD.encode(header.to_string());
    let signature = key
        .sign(&SystemRandom::new(), format!("{protected}.").as_bytes())
        .map_err(|_| instant_acme::Error::Crypto)?;
    let jws = serde_json::json!({
        "protected": protected,
        "payload": "",
        "signature": BASE64_URL_SAFE_NO_PAD.encode(signature.as_ref()),
    });
    Ok(jws.to_string().into_bytes())
}

impl AcmeAccount {
    /// `default` (the chain at the certificate URL), or the first of `alternates` whose name is
    /// `preferred`. Never fails: see the module docs.
    pub(crate) async fn preferred_chain(
        &self,
        default: String,
        alternates: &[String],
        new_nonce: Option<&str>,
        preferred: &str,
    ) -> String {
        let mut names = vec![chain_name(&default)];
        if choose(&names, preferred).is_some() {
            tracing::debug!(
                preferred_chain = preferred,
                "the default chain is the preferred one"
            );
            return default;
        }
        for url in alternates {
            let fetched = match new_nonce {
                Some(new_nonce) => self.post_as_get(new_nonce, url).await,
                None => Err(self.alternate_failure(instant_acme::Error::Str(
                    "the CA's directory names no newNonce",
                ))),
            };
            let chain = match fetched {
                Ok(chain) => chain,
                Err(err) => {
                    tracing::warn!(
                        url = %url,
                        error = %certkeeper_core::error_chain(&err),
                        "an alternate chain could not be downloaded; it is left out of the choice"
                    );
                    continue;
                }
            };
            names.push(chain_name(&chain));
            if choose(&names, preferred).is_some() {
                tracing::info!(preferred_chain = preferred, url = %url, "using the CA's alternate chain with the preferred issuer");
                return chain;
            }
        }
        tracing::warn!(
            preferred_chain = preferred,
            offered = %describe(&names),
            "no chain the CA offers ends at the preferred issuer; keeping the default chain"
        );
        default
    }

    /// A signed POST-as-GET to `url`, its answer as text; a fresh nonce from `new_nonce`,
    /// and once more after `badNonce`.
    async fn post_as_get(&self, new_nonce: &str, url: &str) -> Result<String, AcmeError> {
        let key = self.key_pkcs8_der().ok_or_else(|| {
            self.alternate_failure(instant_acme::Error::Str("the account key does not decode"))
        })?;
        let mut nonce = None;
        for attempt in 0..2 {
            let fresh = match nonce.take() {
                Some(nonce) => nonce,
                None => self.fresh_nonce(new_nonce).await?,
            };
            let body = sign_post_as_get(&key, self.account_url(), &fresh, url)
                .map_err(|source| self.alternate_failure(source))?;
            let request = http::Request::post(url)
                .header(http::header::CONTENT_TYPE, "application/jose+json")
                .body(BodyWrapper::<Bytes>::from(body))
                .map_err(|err| self.alternate_failure(instant_acme::Error::Http(err)))?;
            let mut response = self
                .transport()
                .request_unremembered(request)
                .await
                .map_err(|source| self.alternate_failure(source))?;
            let status = response.parts.status;
            nonce = replay_nonce(&response.parts.headers);
            let body = response
                .body
                .into_bytes()
                .await
                .map_err(|err| self.alternate_failure(instant_acme::Error::Other(err)))?;
            if status.is_success() {
                return String::from_utf8(body.to_vec()).map_err(|_| {
                    self.alternate_failure(instant_acme::Error::Str("the chain is not text"))
                });
            }
            match serde_json::from_slice::<Problem>(&body) {
                Ok(problem)
                    if attempt == 0 && ProblemType::of(&problem) == Some(ProblemType::BadNonce) =>
                {
                    // Once more, with the nonce this answer carried (or a fresh one).
                }
                Ok(problem) => {
                    return Err(self.alternate_failure(instant_acme::Error::Api(problem)));
                }
                Err(_) => {
                    return Err(self.alternate_failure(instant_acme::Error::Str(
                        "the CA answered with an error and no problem document",
                    )));
                }
            }
        }
        Err(self.alternate_failure(instant_acme::Error::Str("badNonce twice")))
    }

    /// A nonce from a HEAD on `new_nonce` (RFC 8555 section 7.2).
    async fn fresh_nonce(&self, new_nonce: &str) -> Result<String, AcmeError> {
        let request = http::Request::head(new_nonce)
            .body(BodyWrapper::<Bytes>::default())
            .map_err(|err| self.alternate_failure(instant_acme::Error::Http(err)))?;
        let response = self
            .transport()
            .request_unremembered(request)
            .await
            .map_err(|source| self.alternate_failure(source))?;
        replay_nonce(&response.parts.headers).ok_or_else(|| {
            self.alternate_failure(instant_acme::Error::Str("no Replay-Nonce from newNonce"))
        })
    }

    fn alternate_failure(&self, source: instant_acme::Error) -> AcmeError {
        AcmeError::Protocol {
            ca: self.ca().to_owned(),
            step: STEP,
            source: Box::new(source),
        }
    }
}

fn replay_nonce(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("replay-nonce")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair as CertKey};

    #[test]
    fn the_post_as_get_jws_is_signed_with_the_account_key() {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("key");
        let jws = sign_post_as_get(
            pkcs8.as_ref(),
            "https://ca/acct/1",
            "n0nce",
            "https://ca/cert/1/alt/1",
        )
        .expect("signed");
        let jws: serde_json::Value = serde_json::from_slice(&jws).expect("JSON");
        let protected = jws["protected"].as_str().expect("protected");
        let header: serde_json::Value =
            serde_json::from_slice(&BASE64_URL_SAFE_NO_PAD.decode(protected).expect("b64"))
                .expect("header");
        assert_eq!(
            header,
            serde_json::json!({
                "alg": "ES256", "kid": "https://ca/acct/1", "nonce": "n0nce",
                "url": "https://ca/cert/1/alt/1",
            })
        );
        assert_eq!(jws["payload"], "");
        let signature = BASE64_URL_SAFE_NO_PAD
            .decode(jws["signature"].as_str().expect("signature"))
            .expect("b64");
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref());
        public
            .verify(format!("{protected}.").as_bytes(), &signature)
            .expect("the signature verifies");
        assert!(public.verify(b"other.", &signature).is_err());
        assert!(sign_post_as_get(b"not a key", "k", "n", "u").is_err());
    }

    #[test]
    fn alternate_links_are_read_from_every_link_header() {
        let mut headers = http::HeaderMap::new();
        for value in [
            r#"<https://ca/dir>;rel="index""#,
            r#"<https://ca/cert/1/1>;rel="alternate""#,
            r#"<https://ca/cert/1/2> ; rel=alternate, <https://ca/x>; rel="up""#,
        ] {
            headers.append(http::header::LINK, value.parse().expect("header"));
        }
        assert_eq!(
            alternate_links(&headers),
            ["https://ca/cert/1/1", "https://ca/cert/1/2"]
        );
        assert!(alternate_links(&http::HeaderMap::new()).is_empty());
    }

    /// A CA named `cn`, self-signed or signed by `by`, and its issuer for what it signs.
    fn ca(
        cn: &str,
        by: Option<&Issuer<'_, CertKey>>,
    ) -> (rcgen::Certificate, Issuer<'static, CertKey>) {
        let key = CertKey::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = match by {
            Some(issuer) => params.signed_by(&key, issuer),
            None => params.self_signed(&key),
        }
        .expect("certificate");
        (cert, Issuer::new(params, key))
    }

    #[test]
    fn the_chain_is_named_by_its_last_certificates_issuer() {
        let (_, root_a) = ca("Root A", None);
        let (_, root_b) = ca("Root B", None);
        // One intermediate key, certified by both roots (a cross-sign).
        let (inter_a, inter) = ca("Intermediate", Some(&root_a));
        let inter_b = {
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, "Intermediate");
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.signed_by(inter.key(), &root_b).expect("cross-sign")
        };
        let leaf_key = CertKey::generate().expect("key");
        let leaf = CertificateParams::new(vec!["www.example.org".to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &inter)
            .expect("leaf");
        let default = format!("{}{}", leaf.pem(), inter_a.pem());
        let alternate = format!("{}{}", leaf.pem(), inter_b.pem());
        // The leaf's issuer is "Intermediate" in both: the last certificate tells them apart.
        let names = [chain_name(&default), chain_name(&alternate)];
        assert_eq!(
            names,
            [Some("Root A".to_owned()), Some("Root B".to_owned())]
        );
        assert_eq!(choose(&names, "Root B"), Some(1));
        assert_eq!(choose(&names, "Root A"), Some(0));
        assert_eq!(choose(&names, "Intermediate"), None);
        assert_eq!(choose(&names, "root b"), None, "names compare exactly");
        assert_eq!(describe(&names), r#""Root A", "Root B""#);
        assert_eq!(chain_name("no certificate here"), None);
        assert_eq!(describe(&[None]), "(none named)");
    }
}

//! DigiCert CertCentral lifecycle rules for directory URLs.
//!
//! CertCentral decides whether an order enrolls, renews or reissues from two query parameters
//! on the *directory* URL: `action=enroll|renew|reissue|duplicate` and `orderId=<id>`. certbot
//! users pass them by hand (and lose `orderId` to an unquoted `&` in a crontab). certkeeper
//! derives them: the first issuance uses the directory exactly as configured; every renewal
//! adds the configured action (none for `auto`, so CertCentral detects the order) and the
//! order id. Other CAs ignore unknown query parameters on the directory, so the rule is safe
//! to apply everywhere.
//!
//! The ACME account is keyed by the directory *without* these parameters, so a lineage that
//! renews through `...?action=renew&orderId=1` keeps using the one account registered with the
//! EAB credential (DigiCert rejects a second binding of the same credential).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;
use url::Url;

/// Query parameters owned by the lifecycle rule.
const ACTION_PARAM: &str = "action";
const ORDER_ID_PARAM: &str = "orderId";

/// The lifecycle action requested for renewals (`action` in the inventory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LifecycleAction {
    /// Send no `action`: CertCentral renews inside the renewal window, otherwise reissues.
    #[default]
    Auto,
    Renew,
    Reissue,
    Duplicate,
}

impl LifecycleAction {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Auto => "auto",
            LifecycleAction::Renew => "renew",
            LifecycleAction::Reissue => "reissue",
            LifecycleAction::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for LifecycleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a lifecycle action.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown action {0:?}; expected auto, renew, reissue or duplicate")]
pub struct UnknownAction(pub String);

impl FromStr for LifecycleAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            LifecycleAction::Auto,
            LifecycleAction::Renew,
            LifecycleAction::Reissue,
            LifecycleAction::Duplicate,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// Why an order is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderPurpose {
    /// No certificate exists for the lineage yet.
    FirstIssuance,
    /// The lineage has a certificate that this order replaces.
    Renewal(LifecycleAction),
}

/// A directory URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DirectoryUrlError {
    #[error("{url:?} is not a valid URL: {reason}")]
    Invalid { url: String, reason: String },
    #[error("{url:?} must use https (http is only accepted for localhost)")]
    NotHttps { url: String },
}

/// Parse and check a configured directory URL.
///
/// # Errors
/// When the URL does not parse, or is plain `http` to anything but a loopback host.
pub fn parse_directory(directory: &str) -> Result<Url, DirectoryUrlError> {
    let url = Url::parse(directory).map_err(|err| DirectoryUrlError::Invalid {
        url: directory.to_owned(),
        reason: err.to_string(),
    })?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(DirectoryUrlError::NotHttps {
            url: directory.to_owned(),
        }),
    }
}

/// The directory URL to fetch for an order of the given purpose.
///
/// Existing query parameters are kept in order; `action` and `orderId` are replaced when this
/// rule sets them, and encoded as `application/x-www-form-urlencoded`.
///
/// # Errors
/// When `directory` is not a usable URL.
pub fn order_directory_url(
    directory: &str,
    purpose: OrderPurpose,
    order_id: Option<&str>,
) -> Result<String, DirectoryUrlError> {
    let mut url = parse_directory(directory)?;
    let OrderPurpose::Renewal(action) = purpose else {
        return Ok(url.into());
    };
    let action = match action {
        LifecycleAction::Auto => None,
        other => Some(other.as_str()),
    };
    if action.is_none() && order_id.is_none() {
        return Ok(url.into());
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| {
            (action.is_none() || key != ACTION_PARAM)
                && (order_id.is_none() || key != ORDER_ID_PARAM)
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (key, value) in &kept {
            query.append_pair(key, value);
        }
        if let Some(action) = action {
            query.append_pair(ACTION_PARAM, action);
        }
        if let Some(order_id) = order_id {
            query.append_pair(ORDER_ID_PARAM, order_id);
        }
    }
    Ok(url.into())
}

/// The directory that identifies the ACME account: the configured URL without the lifecycle
/// parameters (and without a fragment).
///
/// # Errors
/// When `directory` is not a usable URL.
pub fn account_directory(directory: &str) -> Result<String, DirectoryUrlError> {
    let mut url = parse_directory(directory)?;
    url.set_fragment(None);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != ACTION_PARAM && key != ORDER_ID_PARAM)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok(url.into())
}

/// A relative path (two components, each safe as a file name) under which the account for
/// (`directory`, `eab_kid`) is stored: `<host[_port]_path_query>/<kid or "no-eab">`.
///
/// # Errors
/// When `directory` is not a usable URL.
pub fn account_storage_key(
    directory: &str,
    eab_kid: Option<&str>,
) -> Result<(String, String), DirectoryUrlError> {
    let account_dir = account_directory(directory)?;
    let url = parse_directory(&account_dir)?;
    let mut server = url.host_str().unwrap_or("unknown-host").to_owned();
    if let Some(port) = url.port() {
        server.push('_');
        server.push_str(&port.to_string());
    }
    server.push_str(url.path());
    if let Some(query) = url.query() {
        server.push('_');
        server.push_str(query);
    }
    Ok((
        sanitize_component(&server),
        eab_kid.map_or_else(|| "no-eab".to_owned(), sanitize_component),
    ))
}

fn sanitize_component(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('_');
    if trimmed.is_empty() || trimmed.starts_with('.') {
        format!("_{trimmed}")
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGICERT: &str = "https://one.digicert.com/mpki/api/v1/acme/v2/directory";

    #[test]
    fn order_urls_follow_the_lifecycle_rule() {
        let cases: &[(&str, OrderPurpose, Option<&str>, &str)] = &[
            (DIGICERT, OrderPurpose::FirstIssuance, Some("123"), DIGICERT),
            (
                DIGICERT,
                OrderPurpose::Renewal(LifecycleAction::Auto),
                None,
                DIGICERT,
            ),
            (
                DIGICERT,
                OrderPurpose::Renewal(LifecycleAction::Auto),
                Some("123456789"),
                "https://one.digicert.com/mpki/api/v1/acme/v2/directory?orderId=123456789",
            ),
            (
                DIGICERT,
                OrderPurpose::Renewal(LifecycleAction::Renew),
                Some("123456789"),
                "https://one.digicert.com/mpki/api/v1/acme/v2/directory?action=renew&orderId=123456789",
            ),
            (
                DIGICERT,
                OrderPurpose::Renewal(LifecycleAction::Reissue),
                None,
                "https://one.digicert.com/mpki/api/v1/acme/v2/directory?action=reissue",
            ),
            (
                "https://ca.example/dir?tenant=a%26b&action=enroll",
                OrderPurpose::Renewal(LifecycleAction::Duplicate),
                Some("a b&c"),
                "https://ca.example/dir?tenant=a%26b&action=duplicate&orderId=a+b%26c",
            ),
            (
                "https://ca.example/dir?tenant=x&action=renew",
                OrderPurpose::Renewal(LifecycleAction::Auto),
                Some("9"),
                "https://ca.example/dir?tenant=x&action=renew&orderId=9",
            ),
            (
                "https://ca.example/dir?action=renew",
                OrderPurpose::FirstIssuance,
                None,
                "https://ca.example/dir?action=renew",
            ),
        ];
        for (directory, purpose, order_id, expected) in cases {
            assert_eq!(
                order_directory_url(directory, *purpose, *order_id).as_deref(),
                Ok(*expected),
                "{directory} {purpose:?} {order_id:?}"
            );
        }
    }

    #[test]
    fn one_account_whatever_the_lifecycle_query() {
        let renew = order_directory_url(
            DIGICERT,
            OrderPurpose::Renewal(LifecycleAction::Renew),
            Some("1"),
        )
        .expect("valid");
        assert_eq!(account_directory(&renew).as_deref(), Ok(DIGICERT));
        assert_eq!(
            account_storage_key(&renew, Some("kid-1")),
            account_storage_key(DIGICERT, Some("kid-1"))
        );
        assert_ne!(
            account_storage_key(DIGICERT, Some("kid-1")),
            account_storage_key(DIGICERT, Some("kid-2"))
        );
        assert_eq!(
            account_storage_key("https://localhost:14000/dir?action=reissue&orderId=5", None),
            Ok(("localhost_14000_dir".to_owned(), "no-eab".to_owned()))
        );
        assert_eq!(
            account_storage_key(DIGICERT, Some("../../etc")),
            Ok((
                "one.digicert.com_mpki_api_v1_acme_v2_directory".to_owned(),
                "_.._.._etc".to_owned()
            ))
        );
    }

    #[test]
    fn directory_must_be_https_except_loopback() {
        assert!(parse_directory("http://localhost:4001/dir").is_ok());
        assert!(matches!(
            parse_directory("http://ca.example/dir"),
            Err(DirectoryUrlError::NotHttps { .. })
        ));
        assert!(matches!(
            parse_directory("one.digicert.com/directory"),
            Err(DirectoryUrlError::Invalid { .. })
        ));
    }

    #[test]
    fn actions_parse() {
        assert_eq!("Reissue".parse(), Ok(LifecycleAction::Reissue));
        assert!("enroll".parse::<LifecycleAction>().is_err());
    }
}

//! certbot's account files: only the contacts are carried over.
//!
//! `accounts/<server>/<id>/regr.json` holds the registration the CA returned; older certbot
//! versions kept the account's `contact` URLs in its `body`, current ones (1.x and later)
//! write an empty `body`, so most imports find no contact and leave `contact` out. The key (`private_key.json`) is deliberately not
//! imported: certkeeper registers its own account, keyed by directory and EAB key id, and a
//! CA such as DigiCert binds the EAB credential to that account.

/// The `mailto:` contacts in a `regr.json`; empty when there are none or the file is not
/// the JSON certbot writes.
#[must_use]
pub fn contacts(regr_json: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(regr_json) else {
        return Vec::new();
    };
    value
        .pointer("/body/contact")
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(serde_json::Value::as_str)
                .filter(|contact| contact.starts_with("mailto:"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mailto_contacts_only() {
        let regr = r#"{"body": {"contact": ["mailto:ops@example.com", "tel:+1"], "status": "valid"}, "uri": "https://ca/acct/1"}"#;
        assert_eq!(contacts(regr), ["mailto:ops@example.com"]);
        assert!(contacts(r#"{"body": {}}"#).is_empty());
        assert!(contacts("not json").is_empty());
    }
}

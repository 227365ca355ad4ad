//! External Account Binding: the key id, the HMAC key's source, and how the key is decoded.
//!
//! A CA hands out the HMAC key as base64url text. The config names where that text lives
//! with the `eab_hmac_key` family of secret keys (see [`crate::secrets`]): a file, an
//! environment variable, a systemd credential or, discouraged with a warning, inline.
//!
//! Decoding errors report a position, never the offending character (base64's own error
//! text quotes the byte). The decoded bytes go straight into [`Secret`], whose `Debug` is
//! redacted.

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use certkeeper_core::{Eab, Secret};
use thiserror::Error;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported};
use crate::secrets::{SecretKeys, Sources, secret_keys};
use crate::walk::Table;

const KID: &str = "eab_kid";

/// The keys that set the HMAC key.
pub(crate) const HMAC_KEY: SecretKeys = secret_keys! {
    prefix: "eab_hmac_key",
    inline: true,
    what: "HMAC key",
    example_env: "CERTKEEPER_DIGICERT_HMAC",
    example_file: "/etc/certkeeper/digicert.hmac",
    example_credential: "digicert-hmac",
};

/// The EAB keys of a `[[ca]]` table.
pub(crate) const EAB_KEYS: [&str; 5] = [
    KID,
    HMAC_KEY.file,
    HMAC_KEY.env,
    HMAC_KEY.credential,
    HMAC_KEY.prefix,
];

/// base64url, padded or not. Standard base64's `+` and `/` are mapped onto it first.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What is wrong with base64url text, described without quoting any of it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum DecodeProblem {
    #[error("is empty")]
    Empty,
    #[error("is not valid base64url: invalid character at position {0}")]
    InvalidCharacter(usize),
    #[error("is not valid base64url: its length is impossible for base64")]
    InvalidLength,
    #[error("is not valid base64url: the last character at position {0} has stray bits")]
    InvalidLastCharacter(usize),
    #[error("is not valid base64url: misplaced '=' padding")]
    InvalidPadding,
}

/// Decode an HMAC key as CAs hand it out: base64url, surrounding whitespace ignored,
/// padding optional, standard base64 (`+`, `/`) tolerated. Positions are 1-based, counted
/// in the trimmed text.
pub(crate) fn decode_hmac_key(text: &str) -> Result<Vec<u8>, DecodeProblem> {
    let normalized: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    let bytes = BASE64URL.decode(normalized).map_err(|err| match err {
        base64::DecodeError::InvalidByte(offset, _) => DecodeProblem::InvalidCharacter(offset + 1),
        base64::DecodeError::InvalidLength(_) => DecodeProblem::InvalidLength,
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            DecodeProblem::InvalidLastCharacter(offset + 1)
        }
        base64::DecodeError::InvalidPadding => DecodeProblem::InvalidPadding,
    })?;
    if bytes.is_empty() {
        return Err(DecodeProblem::Empty);
    }
    Ok(bytes)
}

/// The EAB credentials of one `[[ca]]` table: `eab_kid` and exactly one HMAC key source,
/// or neither.
pub(crate) fn binding(
    table: &Table<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Option<Eab>, Reported> {
    let kid_node = table.get(KID);
    let kid = kid_node
        .as_ref()
        .map(|node| {
            node.parse(diagnostics, |kid| {
                if kid.is_empty() {
                    Err("must not be empty".to_owned())
                } else {
                    Ok(kid.to_owned())
                }
            })
        })
        .transpose();

    let sources = Sources::of(&HMAC_KEY, table);
    let pairing = match (&kid_node, sources.first()) {
        (Some(kid), None) => Err(kid.error(
            diagnostics,
            format!(
                "{KID} needs an HMAC key: set one of {}, {} or {}",
                HMAC_KEY.file, HMAC_KEY.env, HMAC_KEY.credential
            ),
        )),
        (None, Some(node)) => Err(node.error(
            diagnostics,
            format!("an HMAC key needs {KID}, the key identifier the CA issued with it"),
        )),
        _ => Ok(()),
    };

    let hmac_key = sources
        .read(context, diagnostics)
        .and_then(|text| {
            text.map(|text| text.decode(diagnostics, decode_hmac_key))
                .transpose()
        })
        .map(|bytes| bytes.map(Secret::new));

    let (kid, hmac_key, ()) = (kid?, hmac_key?, pairing?);
    Ok(kid
        .zip(hmac_key)
        .map(|(kid, hmac_key)| Eab { kid, hmac_key }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_keys_decode_padded_unpadded_and_standard() {
        // 0xfb 0xff 0xbf encodes to "-_-_" in base64url and "+/+/" in standard base64.
        let cases: &[(&str, Result<&[u8], DecodeProblem>)] = &[
            ("aGVsbG8", Ok(b"hello")),
            ("aGVsbG8=", Ok(b"hello")),
            ("  aGVsbG8\n", Ok(b"hello")),
            ("-_-_", Ok(&[0xfb, 0xff, 0xbf])),
            ("+/+/", Ok(&[0xfb, 0xff, 0xbf])),
            ("YQ", Ok(b"a")),
            ("YQ==", Ok(b"a")),
            ("", Err(DecodeProblem::Empty)),
            ("   \n", Err(DecodeProblem::Empty)),
            ("aGV$bG8", Err(DecodeProblem::InvalidCharacter(4))),
            ("aGVsb", Err(DecodeProblem::InvalidLength)),
            ("YR", Err(DecodeProblem::InvalidLastCharacter(2))),
            ("YQ=a", Err(DecodeProblem::InvalidCharacter(3))),
        ];
        for (text, expected) in cases {
            assert_eq!(
                decode_hmac_key(text).as_deref().map_err(Clone::clone),
                expected.clone(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn decode_problems_never_quote_the_key() {
        let problem = decode_hmac_key("c2VjcmV0$$$").expect_err("'$' is not base64");
        let message = problem.to_string();
        assert_eq!(
            message,
            "is not valid base64url: invalid character at position 9"
        );
        assert!(!message.contains('$'), "{message}");
    }
}

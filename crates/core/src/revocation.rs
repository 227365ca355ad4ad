//! Revocation reasons certkeeper offers (RFC 5280 section 5.3.1, the subset CAs accept from
//! subscribers), with certbot's spellings accepted.

use std::fmt;
use std::str::FromStr;

/// Why a certificate is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationReason {
    #[default]
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 5] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
    ];

    /// The CRL reason code sent to the CA.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
        }
    }

    /// The RFC 5280 spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a known revocation reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown revocation reason {0:?}; expected unspecified, keyCompromise, affiliationChanged, superseded or cessationOfOperation"
)]
pub struct UnknownReason(pub String);

impl FromStr for RevocationReason {
    type Err = UnknownReason;

    /// Case-insensitive, so certbot's `keycompromise` and RFC 5280's `keyCompromise` both parse;
    /// `-` and `_` are ignored (`key-compromise`, `cessation_of_operation`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .collect::<String>()
            .to_ascii_lowercase();
        RevocationReason::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(&folded))
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certbot_and_rfc_spellings_parse() {
        let cases = [
            ("unspecified", RevocationReason::Unspecified, 0),
            ("keycompromise", RevocationReason::KeyCompromise, 1),
            ("keyCompromise", RevocationReason::KeyCompromise, 1),
            (
                "affiliationchanged",
                RevocationReason::AffiliationChanged,
                3,
            ),
            ("Superseded", RevocationReason::Superseded, 4),
            (
                "cessationofoperation",
                RevocationReason::CessationOfOperation,
                5,
            ),
            (
                "cessation-of-operation",
                RevocationReason::CessationOfOperation,
                5,
            ),
        ];
        for (text, reason, code) in cases {
            assert_eq!(text.parse::<RevocationReason>(), Ok(reason), "{text}");
            assert_eq!(reason.code(), code);
        }
        assert!("caCompromise".parse::<RevocationReason>().is_err());
    }
}

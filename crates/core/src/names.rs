//! Names that are checked once, at the edge, and trusted everywhere after.

use std::fmt;

use thiserror::Error;

/// Why a name was refused. Messages are written for the operator reading a config error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} characters long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error(
        "may only contain letters, digits, '.', '_' and '-' and must not start with '.' (found {found:?})"
    )]
    BadCertNameChar { found: char },
    #[error("label {label:?} is empty (two dots in a row, or a leading or trailing dot)")]
    EmptyLabel { label: String },
    #[error("label {label:?} is longer than 63 characters")]
    LabelTooLong { label: String },
    #[error("label {label:?} may only contain letters, digits and '-' (found {found:?})")]
    BadLabelChar { label: String, found: char },
    #[error("label {label:?} must not start or end with '-'")]
    HyphenAtLabelEdge { label: String },
    #[error("a wildcard '*' is only allowed as the whole leftmost label, as in \"*.example.com\"")]
    MisplacedWildcard,
    #[error("needs at least two labels, such as \"example.com\"")]
    SingleLabel,
    #[error("looks like an IP address; certkeeper orders DNS names only")]
    IpAddress,
}

/// The name of a certificate lineage: the directory under `live/` and `archive/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertName(String);

impl CertName {
    /// Longest accepted lineage name.
    pub const MAX_LEN: usize = 64;

    /// Validate a lineage name. It becomes a directory name, so it is kept to a safe alphabet.
    ///
    /// # Errors
    /// A [`NameError`] saying what is wrong with `name`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        check_simple_name(name)?;
        Ok(Self(name.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a `[[ca]]` entry, referenced by certificates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaName(String);

impl CaName {
    /// Validate a CA name (same alphabet as [`CertName`]).
    ///
    /// # Errors
    /// A [`NameError`] saying what is wrong with `name`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        check_simple_name(name)?;
        Ok(Self(name.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_simple_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > CertName::MAX_LEN {
        return Err(NameError::TooLong {
            len: name.len(),
            max: CertName::MAX_LEN,
        });
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError::BadCertNameChar { found });
    }
    if name.starts_with('.') {
        return Err(NameError::BadCertNameChar { found: '.' });
    }
    Ok(())
}

/// A DNS name to put in a certificate, in lower case; `*.` allowed as the leftmost label only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Longest DNS name (RFC 1035, without the trailing dot).
    pub const MAX_LEN: usize = 253;

    /// Validate and lower-case a DNS name.
    ///
    /// # Errors
    /// A [`NameError`] saying what is wrong with `name`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                len: name.len(),
                max: Self::MAX_LEN,
            });
        }
        let lower = name.to_ascii_lowercase();
        let labels: Vec<&str> = lower.split('.').collect();
        for (index, label) in labels.iter().enumerate() {
            if label.contains('*') {
                if index == 0 && *label == "*" {
                    continue;
                }
                return Err(NameError::MisplacedWildcard);
            }
            check_label(label)?;
        }
        let significant = labels.iter().filter(|label| **label != "*").count();
        if significant < 2 {
            return Err(NameError::SingleLabel);
        }
        if labels
            .iter()
            .all(|label| label.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(NameError::IpAddress);
        }
        Ok(Self(lower))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a wildcard name (`*.example.com`).
    #[must_use]
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

fn check_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel {
            label: label.to_owned(),
        });
    }
    if label.len() > 63 {
        return Err(NameError::LabelTooLong {
            label: label.to_owned(),
        });
    }
    if let Some(found) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(NameError::BadLabelChar {
            label: label.to_owned(),
            found,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::HyphenAtLabelEdge {
            label: label.to_owned(),
        });
    }
    Ok(())
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for CaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_lowercased_and_checked() {
        let cases: &[(&str, Result<&str, NameError>)] = &[
            ("Test1.Example.COM", Ok("test1.example.com")),
            ("*.example.com", Ok("*.example.com")),
            ("xn--bcher-kva.example", Ok("xn--bcher-kva.example")),
            ("", Err(NameError::Empty)),
            ("example", Err(NameError::SingleLabel)),
            ("*.com", Err(NameError::SingleLabel)),
            ("www.*.example.com", Err(NameError::MisplacedWildcard)),
            ("w*.example.com", Err(NameError::MisplacedWildcard)),
            ("127.0.0.1", Err(NameError::IpAddress)),
            (
                "a..example.com",
                Err(NameError::EmptyLabel {
                    label: String::new(),
                }),
            ),
            (
                "-a.example.com",
                Err(NameError::HyphenAtLabelEdge { label: "-a".into() }),
            ),
            (
                "a_b.example.com",
                Err(NameError::BadLabelChar {
                    label: "a_b".into(),
                    found: '_',
                }),
            ),
            (
                " test2.example.com",
                Err(NameError::BadLabelChar {
                    label: " test2".into(),
                    found: ' ',
                }),
            ),
        ];
        for (input, expected) in cases {
            let got = DomainName::new(input);
            match expected {
                Ok(name) => assert_eq!(got.as_ref().map(DomainName::as_str), Ok(*name), "{input}"),
                Err(err) => assert_eq!(got.as_ref().err(), Some(err), "{input}"),
            }
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(matches!(
            DomainName::new(&long_label),
            Err(NameError::LabelTooLong { .. })
        ));
    }

    #[test]
    fn cert_names_are_safe_directory_names() {
        assert!(CertName::new("www.example-1_a").is_ok());
        assert_eq!(
            CertName::new("../etc"),
            Err(NameError::BadCertNameChar { found: '/' })
        );
        assert_eq!(
            CertName::new(".hidden"),
            Err(NameError::BadCertNameChar { found: '.' })
        );
        assert_eq!(CertName::new(""), Err(NameError::Empty));
        assert!(matches!(
            CertName::new(&"a".repeat(65)),
            Err(NameError::TooLong { .. })
        ));
    }
}

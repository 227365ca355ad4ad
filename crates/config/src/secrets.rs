//! External Account Binding: the key id, where its HMAC key comes from, and how it is decoded.
//!
//! A CA hands out the HMAC key as base64url text. The config names *where* that text lives,
//! in exactly one of four places: a file (`eab_hmac_key_file`), an environment variable
//! (`eab_hmac_key_env`), a systemd credential (`eab_hmac_key_credential`, read from
//! `$CREDENTIALS_DIRECTORY`), or, discouraged with a warning, inline (`eab_hmac_key`).
//!
//! The key itself never reaches a message: diagnostics name the source, and decoding
//! errors report a position, never the offending character (base64's own error text quotes
//! the byte). The decoded bytes go straight into [`Secret`], whose `Debug` is redacted.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use certkeeper_core::{Eab, Secret};
use thiserror::Error;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported};
use crate::walk::{Node, Table};

const KID: &str = "eab_kid";

/// The EAB keys of a `[[ca]]` table.
pub(crate) const EAB_KEYS: [&str; 5] = [
    KID,
    Source::File.key(),
    Source::Env.key(),
    Source::Credential.key(),
    Source::Inline.key(),
];

/// base64url, padded or not. Standard base64's `+` and `/` are mapped onto it first.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Where the HMAC key text comes from, one per config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    File,
    Env,
    Credential,
    Inline,
}

impl Source {
    const ALL: [Source; 4] = [
        Source::File,
        Source::Env,
        Source::Credential,
        Source::Inline,
    ];

    /// What the value of this source's key names, for messages.
    const fn names(self) -> &'static str {
        match self {
            Source::File => "a file path",
            Source::Env => "an environment variable name",
            Source::Credential => "a credential name",
            Source::Inline => "the key",
        }
    }

    const fn key(self) -> &'static str {
        match self {
            Source::File => "eab_hmac_key_file",
            Source::Env => "eab_hmac_key_env",
            Source::Credential => "eab_hmac_key_credential",
            Source::Inline => "eab_hmac_key",
        }
    }
}

/// The sources to recommend, as a phrase.
const RECOMMENDED_SOURCES: &str = "eab_hmac_key_file, eab_hmac_key_env or eab_hmac_key_credential";

/// A described source, for messages: `file "/etc/certkeeper/digicert.hmac"`.
#[derive(Debug, Clone)]
enum Origin {
    File(PathBuf),
    Env(String),
    Credential { name: String, path: PathBuf },
    Inline,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "file {path:?}"),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Credential { name, path } => {
                write!(f, "credential {name:?} ({})", path.display())
            }
            Origin::Inline => f.write_str(Source::Inline.key()),
        }
    }
}

/// Why an HMAC key could not be obtained. No variant holds key material.
#[derive(Debug, Error)]
enum SecretError {
    #[error("cannot read HMAC key from {origin}: {source}")]
    Read { origin: Origin, source: io::Error },
    #[error("environment variable {name} is not set")]
    EnvUnset { name: String },
    #[error(
        "CREDENTIALS_DIRECTORY is not set, so credential {name:?} cannot be read; run certkeeper as a systemd service with LoadCredential={name}:/path/to/key"
    )]
    NoCredentialsDirectory { name: String },
    #[error("credential name {name:?} must be a plain file name")]
    BadCredentialName { name: String },
    #[error("must not be empty")]
    EmptyName,
    #[error(
        "this looks like the HMAC key itself rather than {what}; store the key elsewhere and give its location here (the value is not shown)"
    )]
    KeyInsteadOfName { what: &'static str },
    #[error("HMAC key from {origin} {problem}")]
    Decode {
        origin: Origin,
        problem: DecodeProblem,
    },
}

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

/// Whether `value`, given as a file path, variable or credential name, is more likely an
/// HMAC key: at least 16 bytes of base64url mixing upper case, lower case and digits, with
/// none of the dots and slashes of paths. Conventional variable names (upper case) and
/// credential names (lower case) never match.
fn looks_like_a_key(value: &str) -> bool {
    value.len() >= 22
        && !value.contains(['.', '/'])
        && value.chars().any(|c| c.is_ascii_uppercase())
        && value.chars().any(|c| c.is_ascii_lowercase())
        && value.chars().any(|c| c.is_ascii_digit())
        && decode_hmac_key(value).is_ok_and(|bytes| bytes.len() >= 16)
}

/// The EAB credentials of one `[[ca]]` table: `eab_kid` and exactly one HMAC key source,
/// or neither.
pub(crate) fn eab(
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

    // In file order, so "already set" points back at the one written first.
    let mut sources: Vec<(Source, Node<'_, '_>)> = Source::ALL
        .into_iter()
        .filter_map(|source| table.get(source.key()).map(|node| (source, node)))
        .collect();
    sources.sort_by_key(|(_, node)| node.span().start);
    if let Some((_, inline)) = sources.iter().find(|(source, _)| *source == Source::Inline) {
        // Worse when anyone on the machine can read the file.
        let exposed = context
            .file_mode
            .filter(|mode| mode & 0o077 != 0)
            .map(|mode| {
                format!(
                    ", which group or others can read (mode {mode:04o}; chmod 600 {})",
                    context.file.display()
                )
            })
            .unwrap_or_default();
        inline.warning(
            diagnostics,
            format!(
                "the HMAC key is stored in the config file{exposed}; keep it out of the file with {RECOMMENDED_SOURCES}"
            ),
        );
    }

    let pairing = match (&kid_node, sources.first()) {
        (Some(kid), None) => Err(kid.error(
            diagnostics,
            format!("{KID} needs an HMAC key: set one of {RECOMMENDED_SOURCES}"),
        )),
        (None, Some((_, node))) => Err(node.error(
            diagnostics,
            format!("an HMAC key needs {KID}, the key identifier the CA issued with it"),
        )),
        _ => Ok(()),
    };

    let hmac_key = match sources.as_slice() {
        [] => Ok(None),
        [(source, node)] => hmac_key(*source, node, context, diagnostics).map(Some),
        [(first, first_node), rest @ ..] => {
            let line = first_node.line(diagnostics);
            let mut reported = None;
            for (_, node) in rest {
                reported = Some(node.error(
                    diagnostics,
                    format!(
                        "only one HMAC key source may be set; {} is already set on line {line}",
                        first.key()
                    ),
                ));
            }
            reported.map_or(Ok(None), Err)
        }
    };

    let (kid, hmac_key, ()) = (kid?, hmac_key?, pairing?);
    Ok(kid
        .zip(hmac_key)
        .map(|(kid, hmac_key)| Eab { kid, hmac_key }))
}

/// Read and decode the key from `source`, whose value (a path, a name or the key) is `node`.
fn hmac_key(
    source: Source,
    node: &Node<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Secret, Reported> {
    let value = node.str(diagnostics)?;
    let fetched =
        fetch(source, value, context).map_err(|err| node.error(diagnostics, err.to_string()))?;
    if let Some(mode) = fetched.loose_mode {
        node.warning(
            diagnostics,
            format!(
                "{} can be read by group or others (mode {mode:04o}); restrict it with chmod 600",
                fetched.origin
            ),
        );
    }
    decode_hmac_key(&fetched.text)
        .map(Secret::new)
        .map_err(|problem| {
            let err = SecretError::Decode {
                origin: fetched.origin,
                problem,
            };
            node.error(diagnostics, err.to_string())
        })
}

/// Key text and where it came from.
struct Fetched {
    text: String,
    origin: Origin,
    /// Permission bits of a key file that group or others can access.
    loose_mode: Option<u32>,
}

fn fetch(source: Source, value: &str, context: &Context<'_>) -> Result<Fetched, SecretError> {
    if source != Source::Inline {
        if value.is_empty() {
            return Err(SecretError::EmptyName);
        }
        // Pasting the key where its location belongs is an easy mistake, and every message
        // below quotes the location: refuse without echoing it.
        if looks_like_a_key(value) {
            return Err(SecretError::KeyInsteadOfName {
                what: source.names(),
            });
        }
    }
    match source {
        Source::Inline => Ok(Fetched {
            text: value.to_owned(),
            origin: Origin::Inline,
            loose_mode: None,
        }),
        Source::Env => {
            let text = context
                .env
                .var(value)
                .ok_or_else(|| SecretError::EnvUnset {
                    name: value.to_owned(),
                })?;
            Ok(Fetched {
                text: text.to_owned(),
                origin: Origin::Env(value.to_owned()),
                loose_mode: None,
            })
        }
        Source::File => {
            let path = context.resolve(value);
            read_key_file(&path, Origin::File(path.clone()))
        }
        Source::Credential => {
            if value.contains('/') || value == "." || value == ".." {
                return Err(SecretError::BadCredentialName {
                    name: value.to_owned(),
                });
            }
            let directory = context.env.credentials_directory.as_ref().ok_or_else(|| {
                SecretError::NoCredentialsDirectory {
                    name: value.to_owned(),
                }
            })?;
            let path = directory.join(value);
            read_key_file(
                &path,
                Origin::Credential {
                    name: value.to_owned(),
                    path: path.clone(),
                },
            )
        }
    }
}

/// Read a key file, noting its mode when group or others may access it.
fn read_key_file(path: &Path, origin: Origin) -> Result<Fetched, SecretError> {
    let read = || -> io::Result<(String, u32)> {
        let mut file = File::open(path)?;
        let mode = file.metadata()?.permissions().mode();
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok((text, mode))
    };
    match read() {
        Ok((text, mode)) => Ok(Fetched {
            text,
            origin,
            loose_mode: (mode & 0o077 != 0).then_some(mode & 0o777),
        }),
        Err(source) => Err(SecretError::Read { origin, source }),
    }
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
    fn keys_pasted_as_locations_are_recognized() {
        let cases = [
            ("dGhpcy1pcy1hLXRlc3QtaG1hYy1rZXktb2YtMzItYnl0", true),
            ("Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA", true),
            ("CERTKEEPER_DIGICERT_HMAC", false),
            ("digicert-hmac", false),
            ("/etc/certkeeper/digicert.hmac", false),
            ("DigiCert2024Key", false),
            ("certkeeper-digicert-hmac-key-for-prod", false),
        ];
        for (value, expected) in cases {
            assert_eq!(looks_like_a_key(value), expected, "{value}");
        }
    }

    #[test]
    fn decode_problems_never_quote_the_key() {
        let secret = "c2VjcmV0$$$";
        let problem = decode_hmac_key(secret).expect_err("'$' is not base64");
        let message = SecretError::Decode {
            origin: Origin::Env("HMAC".to_owned()),
            problem,
        }
        .to_string();
        assert_eq!(
            message,
            "HMAC key from environment variable HMAC is not valid base64url: invalid character at position 9"
        );
        assert!(!message.contains('$'), "{message}");
    }
}

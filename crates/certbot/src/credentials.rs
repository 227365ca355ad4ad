//! certbot's RFC 2136 credentials file (`dns_rfc2136_credentials`), read for everything but
//! the secret.
//!
//! The file is configobj like the renewal files: `dns_rfc2136_server` (an IP address),
//! `dns_rfc2136_port` (53 when unset), `dns_rfc2136_name` (the TSIG key), `dns_rfc2136_secret`,
//! `dns_rfc2136_algorithm` and `dns_rfc2136_sign_query`. The importer writes the server, key
//! name and algorithm into a `[dns.NAME]` provider, and points that provider's secret at this
//! same file (`secret_file` plus `secret_ini_key = "dns_rfc2136_secret"`): the secret is only
//! checked to be there, never kept, so it cannot end up in the inventory, a message or a log.
//!
//! What certbot does with the algorithm decides what is refused. certbot accepts HMAC-MD5,
//! -SHA1, -SHA224, -SHA256, -SHA384 and -SHA512, in any case when it checks the file, but
//! signs with the algorithm looked up exactly as written, falling back to HMAC-MD5: an unset
//! algorithm means HMAC-MD5, and so does a lower-case name such as `hmac-sha512`. certkeeper
//! signs with HMAC-SHA256, -SHA384 or -SHA512 only (RFC 8945 deprecates the others), so a key
//! certbot used with another algorithm is refused with what to do: a new key. A lower-case
//! name of one of those three is taken at its word, with a note, since the server's key
//! statement, not certbot's lookup, decides what the key is.
//!
//! Errors name keys and lines, never values: any line of the file may be the secret.

use std::net::{IpAddr, SocketAddr};

use certkeeper_core::challenge::{DEFAULT_DNS_PORT, TsigAlgorithm};
use thiserror::Error;

use crate::configobj::{self, ConfigObj};

/// The key of the secret in certbot's credentials file, which the generated provider names
/// in `secret_ini_key`.
pub const SECRET_KEY: &str = "dns_rfc2136_secret";

/// The algorithms certbot's plugin accepts, as it spells them.
const CERTBOT_ALGORITHMS: [&str; 6] = [
    "HMAC-MD5",
    "HMAC-SHA1",
    "HMAC-SHA224",
    "HMAC-SHA256",
    "HMAC-SHA384",
    "HMAC-SHA512",
];

/// What a credentials file says, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc2136Credentials {
    /// `dns_rfc2136_server` and `dns_rfc2136_port`.
    pub server: SocketAddr,
    /// `dns_rfc2136_name`, as written.
    pub key_name: String,
    pub algorithm: TsigAlgorithm,
    /// `dns_rfc2136_sign_query`: the server only answers SOA queries signed with the key.
    pub sign_query: bool,
    /// What the operator should know about how the file was read.
    pub notes: Vec<String>,
}

/// A credentials file certkeeper cannot use as certbot did.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialsError {
    #[error("is not an INI file as certbot reads it: {0}")]
    Syntax(#[from] configobj::ParseError),
    #[error("has no {key}, which certbot requires (the {what}); it cannot be what certbot used")]
    Missing {
        key: &'static str,
        what: &'static str,
    },
    #[error(
        "its dns_rfc2136_server is not an IP address (the value is not shown); certbot accepts no host names either"
    )]
    Server,
    #[error("its dns_rfc2136_port is not a port number (the value is not shown)")]
    Port,
    #[error(
        "sets no dns_rfc2136_algorithm, so certbot signs its updates with HMAC-MD5, which certkeeper does not support; {}",
        NEW_KEY
    )]
    DefaultMd5,
    #[error(
        "its dns_rfc2136_algorithm is {algorithm}, which certkeeper does not support; {}",
        NEW_KEY
    )]
    Unsupported { algorithm: &'static str },
    #[error(
        "its dns_rfc2136_algorithm is none that certbot knows (the value is not shown); certbot would refuse it too"
    )]
    Unknown,
}

/// What to do about a key certkeeper cannot sign with.
const NEW_KEY: &str = "certkeeper signs with hmac-sha256, hmac-sha384 or hmac-sha512: create a key with `tsig-keygen -a hmac-sha256 NAME`, allow it on the server, put its name and secret in this file with dns_rfc2136_algorithm = HMAC-SHA256, and import again";

impl Rfc2136Credentials {
    /// Read a credentials file's `text`.
    ///
    /// # Errors
    /// When the text is not configobj, lacks the server, key name or secret (certbot requires
    /// all three), has an unusable server or port, or names an algorithm certkeeper does not
    /// sign with (see the module documentation).
    pub fn from_ini(text: &str) -> Result<Self, CredentialsError> {
        let conf = configobj::parse(text)?;
        let get = |key: &str| value(&conf, key);
        let mut notes = Vec::new();

        let server = get("dns_rfc2136_server").ok_or(CredentialsError::Missing {
            key: "dns_rfc2136_server",
            what: "address of the DNS server",
        })?;
        let ip = server
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|_| CredentialsError::Server)?;
        let port = match get("dns_rfc2136_port") {
            None => DEFAULT_DNS_PORT,
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(CredentialsError::Port),
            },
        };
        let key_name = get("dns_rfc2136_name").ok_or(CredentialsError::Missing {
            key: "dns_rfc2136_name",
            what: "TSIG key name",
        })?;
        // Only whether it is there: the value stays in the file.
        if get(SECRET_KEY).is_none() {
            return Err(CredentialsError::Missing {
                key: SECRET_KEY,
                what: "TSIG secret",
            });
        }
        let algorithm = match get("dns_rfc2136_algorithm") {
            None => return Err(CredentialsError::DefaultMd5),
            Some(written) => {
                let upper = written.to_ascii_uppercase();
                let Some(known) = CERTBOT_ALGORITHMS.iter().find(|known| **known == upper) else {
                    return Err(CredentialsError::Unknown);
                };
                let Ok(algorithm) = upper.parse::<TsigAlgorithm>() else {
                    return Err(CredentialsError::Unsupported { algorithm: known });
                };
                if written != upper {
                    notes.push(format!(
                        "certbot looks dns_rfc2136_algorithm up as written and signed with HMAC-MD5 for {written:?} (only {known} matches); certkeeper signs with {algorithm} as the file says, which the server's key must be"
                    ));
                }
                algorithm
            }
        };
        let sign_query =
            get("dns_rfc2136_sign_query").is_some_and(|text| text.eq_ignore_ascii_case("true"));
        Ok(Rfc2136Credentials {
            server: SocketAddr::new(ip, port),
            key_name,
            algorithm,
            sign_query,
            notes,
        })
    }
}

/// A top-level value, under its name or the third-party-style `certbot_dns_rfc2136:` one;
/// `None` when absent or empty.
fn value(conf: &ConfigObj, key: &str) -> Option<String> {
    conf.top_str(key)
        .or_else(|| conf.top_str(&format!("certbot_dns_rfc2136:{key}")))
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LXRzaWctb2YtY2VydGJvdA==";

    fn ini(lines: &[&str]) -> String {
        let mut text = format!("dns_rfc2136_secret = {SECRET}\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    #[test]
    fn reads_what_certbot_documents() {
        let credentials = Rfc2136Credentials::from_ini(&ini(&[
            "# Target DNS server",
            "dns_rfc2136_server = 192.0.2.53",
            "dns_rfc2136_port = 5353",
            "dns_rfc2136_name = certbot.",
            "dns_rfc2136_algorithm = HMAC-SHA512",
            "dns_rfc2136_sign_query = true",
        ]))
        .expect("reads");
        assert_eq!(
            credentials,
            Rfc2136Credentials {
                server: "192.0.2.53:5353".parse().expect("address"),
                key_name: "certbot.".to_owned(),
                algorithm: TsigAlgorithm::HmacSha512,
                sign_query: true,
                notes: Vec::new(),
            }
        );
        assert!(!format!("{credentials:?}").contains(SECRET));

        let v6 = Rfc2136Credentials::from_ini(&ini(&[
            "dns_rfc2136_server = 2001:db8::53",
            "dns_rfc2136_name = k",
            "dns_rfc2136_algorithm = HMAC-SHA256",
        ]))
        .expect("reads");
        assert_eq!(v6.server, "[2001:db8::53]:53".parse().expect("address"));
        assert!(!v6.sign_query);
    }

    #[test]
    fn lower_case_names_are_taken_at_their_word_with_a_note() {
        let credentials = Rfc2136Credentials::from_ini(&ini(&[
            "dns_rfc2136_server = 192.0.2.53",
            "dns_rfc2136_name = k",
            "dns_rfc2136_algorithm = hmac-sha384",
        ]))
        .expect("reads");
        assert_eq!(credentials.algorithm, TsigAlgorithm::HmacSha384);
        assert_eq!(credentials.notes.len(), 1);
        assert!(credentials.notes[0].contains("HMAC-MD5"));
    }

    #[test]
    fn what_certkeeper_cannot_sign_with_or_use_is_refused_without_quoting_values() {
        let base = ["dns_rfc2136_server = 192.0.2.53", "dns_rfc2136_name = k"];
        let with = |extra: &[&str]| {
            let lines: Vec<&str> = base.iter().chain(extra).copied().collect();
            Rfc2136Credentials::from_ini(&ini(&lines))
        };
        assert_eq!(with(&[]), Err(CredentialsError::DefaultMd5));
        assert_eq!(
            with(&["dns_rfc2136_algorithm = HMAC-MD5"]),
            Err(CredentialsError::Unsupported {
                algorithm: "HMAC-MD5"
            })
        );
        assert_eq!(
            with(&["dns_rfc2136_algorithm = hmac-sha1"]),
            Err(CredentialsError::Unsupported {
                algorithm: "HMAC-SHA1"
            })
        );
        assert_eq!(
            with(&["dns_rfc2136_algorithm = HMAC-SHA224"]),
            Err(CredentialsError::Unsupported {
                algorithm: "HMAC-SHA224"
            })
        );
        assert_eq!(
            with(&["dns_rfc2136_algorithm = GOST"]),
            Err(CredentialsError::Unknown)
        );
        let algorithm = "dns_rfc2136_algorithm = HMAC-SHA256";
        let bad = [
            (
                "dns_rfc2136_server = ns1.example.com\ndns_rfc2136_name = k\n".to_owned(),
                CredentialsError::Server,
            ),
            (
                format!(
                    "dns_rfc2136_server = 192.0.2.53\ndns_rfc2136_port = 0\ndns_rfc2136_name = k\n{algorithm}\n"
                ),
                CredentialsError::Port,
            ),
            (
                format!("dns_rfc2136_server = 192.0.2.53\n{algorithm}\n"),
                CredentialsError::Missing {
                    key: "dns_rfc2136_name",
                    what: "TSIG key name",
                },
            ),
        ];
        for (lines, expected) in bad {
            let text = format!("{}{lines}", ini(&[]));
            assert_eq!(Rfc2136Credentials::from_ini(&text), Err(expected));
        }
        let no_secret = format!("{}\n{algorithm}\n", base.join("\n"));
        assert_eq!(
            Rfc2136Credentials::from_ini(&no_secret),
            Err(CredentialsError::Missing {
                key: SECRET_KEY,
                what: "TSIG secret"
            })
        );
        // A line that is not configobj is named by its number; the secret is never quoted.
        // (Without its `=` padding, which would make the line `key = value`.)
        let broken = format!("{}{}\n", ini(&base), SECRET.trim_end_matches('='));
        let error = Rfc2136Credentials::from_ini(&broken).expect_err("not configobj");
        assert!(!error.to_string().contains(&SECRET[..12]), "{error}");
        assert!(error.to_string().contains("line 4"), "{error}");
        let quoted = format!("dns_rfc2136_secret = \"{SECRET}\" {SECRET}\n");
        let error = Rfc2136Credentials::from_ini(&quoted).expect_err("not configobj");
        assert!(!error.to_string().contains(&SECRET[..12]), "{error}");
    }
}

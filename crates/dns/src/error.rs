//! The crate's one error type, [`DnsError`], and [`ProviderError`], which names the provider
//! (and the certificate) a failure belongs to.
//!
//! Every variant says what the operator should change, because a DNS-01 failure is nearly
//! always a configuration problem: a secret that does not match, an update-policy that does
//! not cover the name, a server address that is wrong. The provider's name is added once, by
//! [`ProviderError`], so a chain reads `dns provider `bind`: TSIG key `ck.` rejected by
//! 127.0.0.1:5353 (BADSIG): ...` without repeating itself.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Why the server refused a TSIG-signed request, from the error field of its TSIG record
/// (RFC 8945 section 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigRejection {
    /// BADSIG (16): the MAC did not verify.
    BadSig,
    /// BADKEY (17): no key of that name and algorithm.
    BadKey,
    /// BADTIME (18): the signing time is outside the server's fudge window.
    BadTime,
    /// Any other TSIG error code.
    Other(u16),
}

impl TsigRejection {
    pub(crate) fn from_code(code: u16) -> Self {
        match code {
            16 => Self::BadSig,
            17 => Self::BadKey,
            18 => Self::BadTime,
            other => Self::Other(other),
        }
    }

    /// What to change, for the error message.
    fn advice(self) -> &'static str {
        match self {
            Self::BadSig => "the secret does not match the server's key; check secret_file",
            Self::BadKey => {
                "the server knows no key of that name and algorithm; check key_name and algorithm"
            }
            Self::BadTime => {
                "the clocks of this host and the server differ by more than five minutes; fix the clock"
            }
            Self::Other(_) => "check the key's name, algorithm and secret",
        }
    }
}

impl fmt::Display for TsigRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSig => f.write_str("BADSIG"),
            Self::BadKey => f.write_str("BADKEY"),
            Self::BadTime => f.write_str("BADTIME"),
            Self::Other(code) => write!(f, "TSIG error {code}"),
        }
    }
}

/// A DNS response code, shown with the mnemonic `dig` prints (`SERVFAIL`, `REFUSED`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rcode(pub u16);

impl Rcode {
    pub const NOERROR: Self = Self(0);
    pub const SERVFAIL: Self = Self(2);
    pub const NXDOMAIN: Self = Self(3);
    pub const REFUSED: Self = Self(5);
    pub const NOTAUTH: Self = Self(9);
}

impl From<hickory_proto::op::ResponseCode> for Rcode {
    fn from(code: hickory_proto::op::ResponseCode) -> Self {
        Self(code.into())
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            16 => "BADVERS",
            other => return write!(f, "RCODE {other}"),
        };
        f.write_str(name)
    }
}

/// What went wrong talking to DNS, running a hook, or waiting for a record.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The server rejected the update's TSIG signature.
    #[error("TSIG key `{key}` rejected by {server} ({code}): {}", code.advice())]
    TsigRejected {
        key: String,
        server: SocketAddr,
        code: TsigRejection,
    },
    /// REFUSED: the key is valid but the zone's policy does not let it change this name.
    #[error(
        "{server} refused to let key `{key}` update {fqdn} in zone {zone} (REFUSED): the key \
         may not update that name; allow it in the zone's update-policy, e.g. \
         `grant {key} name {fqdn} TXT;`"
    )]
    UpdateRefused {
        server: SocketAddr,
        key: String,
        fqdn: String,
        zone: String,
    },
    /// NOTAUTH without a TSIG error: the server is not the primary of the zone, or the key
    /// may not update it.
    #[error(
        "{server} is not authoritative for zone {zone} or does not let key `{key}` update \
         {fqdn} (NOTAUTH): point server at the zone's primary, set zone, or allow the key in \
         the zone's update-policy"
    )]
    NotAuthoritative {
        server: SocketAddr,
        key: String,
        fqdn: String,
        zone: String,
    },
    /// NOTZONE: the name is outside the zone named in the update.
    #[error("{fqdn} is not in zone {zone} at {server} (NOTZONE): check the zone setting")]
    NotZone {
        server: SocketAddr,
        fqdn: String,
        zone: String,
    },
    /// Any other response code to an update (SERVFAIL, FORMERR, NOTIMP, ...).
    #[error("{server} answered {rcode} to the update of {fqdn} in zone {zone}")]
    UpdateFailed {
        server: SocketAddr,
        fqdn: String,
        zone: String,
        rcode: Rcode,
    },
    /// The answer to a signed update was not signed with our key.
    #[error(
        "the answer of {server} is not signed with key `{key}` ({reason}): is another server \
         answering at that address?"
    )]
    ResponseNotAuthentic {
        server: SocketAddr,
        key: String,
        reason: String,
    },
    /// No answer in time.
    #[error(
        "DNS server {server} did not answer within {}: check the server address and port, and \
         that no firewall drops DNS",
        seconds(*timeout)
    )]
    Timeout {
        server: SocketAddr,
        timeout: Duration,
    },
    /// Connection refused, network unreachable, ...
    #[error("cannot reach DNS server {server}: check the server address and port")]
    Unreachable {
        server: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A query was answered with an error code.
    #[error("{server} answered the {rtype} query for {name} with {rcode}")]
    QueryFailed {
        server: SocketAddr,
        name: String,
        rtype: String,
        rcode: Rcode,
    },
    /// An answer that is not a DNS message, or not an answer to what was asked.
    #[error("malformed answer from {server}: {reason}")]
    Malformed { server: SocketAddr, reason: String },
    /// No server to ask: no resolvers configured and none in `/etc/resolv.conf`.
    #[error("no DNS server to ask about {name}: configure resolvers")]
    NoServers { name: String },
    /// Walking up from the name found no zone.
    #[error(
        "no zone found for {name} at {servers}: check that the server hosts the zone, or set zone"
    )]
    ZoneNotFound { name: String, servers: String },
    /// A CNAME chain that does not end.
    #[error("the CNAME chain from {name} is longer than {limit} links (a loop?)")]
    CnameChainTooLong { name: String, limit: usize },
    /// The zone's NS records name no server with an address.
    #[error("no nameserver with an address found for zone {zone}")]
    NoNameservers { zone: String },
    /// The record was not visible everywhere before the propagation timeout.
    #[error(
        "TXT record {fqdn} \"{value}\" not visible after {}; still missing at: {}",
        seconds(*timeout),
        missing.join(", ")
    )]
    NotPropagated {
        fqdn: String,
        value: String,
        timeout: Duration,
        /// Each server that did not have it yet, with what it answered last.
        missing: Vec<String>,
    },
    /// `ready` for an answer that was not presented (a caller's mistake).
    #[error("no TXT record was presented for {fqdn}")]
    NotPresented { fqdn: String },
    /// A name that is not a valid DNS name.
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// The TSIG secret is not base64.
    #[error("the TSIG secret is not valid base64 (as tsig-keygen prints it)")]
    InvalidSecret,
    /// The DNS hook could not be started.
    #[error("cannot run the DNS hook")]
    HookRun {
        #[source]
        source: certkeeper_hooks::HookError,
    },
    /// The DNS hook ran and failed.
    #[error("DNS hook {label} {outcome}{}", last_line(.output))]
    HookFailed {
        label: String,
        /// `exited with code 1`, `timed out after 60s`, ...
        outcome: String,
        /// Its last lines of output, stderr included.
        output: Vec<String>,
    },
    /// The journal of presented records could not be written.
    #[error("cannot record the TXT record {fqdn} in the journal of presented records")]
    Journal {
        fqdn: String,
        #[source]
        source: io::Error,
    },
    /// Internal: building or signing a message failed.
    #[error("cannot build the DNS message: {reason}")]
    Message { reason: String },
}

/// A [`DnsError`] with the provider (and certificate) it happened for.
#[derive(Debug, thiserror::Error)]
#[error("dns provider `{provider}`{}", for_certificate(.certificate.as_deref()))]
pub struct ProviderError {
    /// The provider's configured name.
    pub provider: String,
    /// The certificate the challenge belongs to, when the solver knows it.
    pub certificate: Option<String>,
    #[source]
    pub source: DnsError,
}

fn for_certificate(certificate: Option<&str>) -> String {
    certificate
        .map(|name| format!(" (certificate {name})"))
        .unwrap_or_default()
}

fn last_line(output: &[String]) -> String {
    output
        .last()
        .map(|line| format!("; last output: {line}"))
        .unwrap_or_default()
}

/// `2s`, `0.5s`, `120s`.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5353))
    }

    #[test]
    fn a_rejected_key_says_what_to_check() {
        let err = ProviderError {
            provider: "bind".to_owned(),
            certificate: None,
            source: DnsError::TsigRejected {
                key: "ck.".to_owned(),
                server: server(),
                code: TsigRejection::BadSig,
            },
        };
        assert_eq!(
            certkeeper_core::error_chain(&err),
            "dns provider `bind`: TSIG key `ck.` rejected by 127.0.0.1:5353 (BADSIG): the \
             secret does not match the server's key; check secret_file"
        );
    }

    #[test]
    fn rcodes_read_like_dig() {
        assert_eq!(Rcode::SERVFAIL.to_string(), "SERVFAIL");
        assert_eq!(Rcode(10).to_string(), "NOTZONE");
        assert_eq!(Rcode(23).to_string(), "RCODE 23");
        assert_eq!(
            Rcode::from(hickory_proto::op::ResponseCode::Refused),
            Rcode::REFUSED
        );
    }

    #[test]
    fn tsig_codes() {
        assert_eq!(TsigRejection::from_code(16), TsigRejection::BadSig);
        assert_eq!(TsigRejection::from_code(17), TsigRejection::BadKey);
        assert_eq!(TsigRejection::from_code(18), TsigRejection::BadTime);
        assert_eq!(TsigRejection::from_code(22).to_string(), "TSIG error 22");
    }

    #[test]
    fn propagation_names_fqdn_value_and_servers() {
        let err = DnsError::NotPropagated {
            fqdn: "_acme-challenge.example.test.".to_owned(),
            value: "abc".to_owned(),
            timeout: Duration::from_millis(1500),
            missing: vec!["127.0.0.1:53 (no TXT record)".to_owned()],
        };
        assert_eq!(
            err.to_string(),
            "TXT record _acme-challenge.example.test. \"abc\" not visible after 1.5s; still \
             missing at: 127.0.0.1:53 (no TXT record)"
        );
    }

    #[test]
    fn the_certificate_is_named_when_known() {
        let err = ProviderError {
            provider: "hook".to_owned(),
            certificate: Some("www".to_owned()),
            source: DnsError::InvalidSecret,
        };
        assert_eq!(err.to_string(), "dns provider `hook` (certificate www)");
    }
}

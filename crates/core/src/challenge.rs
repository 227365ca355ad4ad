//! How each certificate proves control of its names: the challenge it answers and, for
//! DNS-01, the DNS provider that publishes its TXT records.
//!
//! The config crate builds these values after checking every key (a webroot is absolute, a
//! provider a certificate names exists, a wildcard only goes with DNS-01), and resolves the
//! defaults once, so a certificate's [`ChallengeSpec`] is its effective challenge. The types
//! are plain data: the binary maps them onto the solver adapters (the embedded HTTP-01
//! responder, a webroot writer, the DNS crate's providers), none of which the core knows.
//!
//! Providers are defined once (`[dns.NAME]`) and referred to by name, like reload targets:
//! ten certificates in one zone share one provider, and one change of its key reaches all.
//!
//! Where the challenges live: [`Challenges`] on the [`Inventory`](crate::Inventory), keyed by
//! certificate name, rather than a field of [`CertificateSpec`](crate::CertificateSpec). The
//! planner's tests and benchmarks build certificate specs literally; keeping the challenge
//! next to them, with a [`Default`] that is today's behaviour (the embedded HTTP-01
//! responder), lets an inventory built without any challenge configuration mean what it
//! meant before.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::hooks::Hook;
use crate::names::CertName;
use crate::ports::ChallengeKind;
use crate::secret::Secret;

/// The port of an RFC 2136 server written without one.
pub const DEFAULT_DNS_PORT: u16 = 53;
/// TTL of the TXT records an RFC 2136 provider adds, unless it sets `ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// How long to wait for a record to be visible, unless a provider sets
/// `propagation_timeout`.
pub const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
/// How often to look while waiting, unless a provider sets `propagation_interval`.
pub const DEFAULT_PROPAGATION_INTERVAL: Duration = Duration::from_secs(2);

/// The challenge one certificate answers, with everything its solver needs but the
/// provider's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeSpec {
    /// HTTP-01: the key authorization at `/.well-known/acme-challenge/TOKEN`.
    Http01 {
        /// Write the file below this directory (absolute), for the web server that already
        /// serves the site; `None`: the embedded responder answers.
        webroot: Option<PathBuf>,
    },
    /// DNS-01: a TXT record at `_acme-challenge.DOMAIN`, published by the provider with
    /// this name. Validation guarantees [`Challenges::dns_provider`] finds it.
    Dns01 { provider: String },
}

impl ChallengeSpec {
    /// The embedded HTTP-01 responder: what a certificate answers unless configured
    /// otherwise.
    pub const EMBEDDED_HTTP01: ChallengeSpec = ChallengeSpec::Http01 { webroot: None };

    /// The challenge type, as the CA names it.
    #[must_use]
    pub fn kind(&self) -> ChallengeKind {
        match self {
            Self::Http01 { .. } => ChallengeKind::Http01,
            Self::Dns01 { .. } => ChallengeKind::Dns01,
        }
    }
}

impl Default for ChallengeSpec {
    fn default() -> Self {
        Self::EMBEDDED_HTTP01
    }
}

/// Every certificate's challenge and the DNS providers they use.
///
/// Built by the config crate with an entry for every certificate. A certificate without an
/// entry (an inventory built by hand, as tests do) answers with the embedded HTTP-01
/// responder, which is also what [`Challenges::default`] means for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenges {
    /// `[dns.NAME]` providers, in file order; names are unique.
    pub dns_providers: Vec<DnsProviderSpec>,
    /// Each certificate's effective challenge (its own settings, or the defaults).
    pub by_certificate: HashMap<CertName, ChallengeSpec>,
}

impl Challenges {
    /// The challenge certificate `name` answers.
    #[must_use]
    pub fn of(&self, name: &CertName) -> &ChallengeSpec {
        static EMBEDDED: ChallengeSpec = ChallengeSpec::EMBEDDED_HTTP01;
        self.by_certificate.get(name).unwrap_or(&EMBEDDED)
    }

    /// The DNS provider named `name`. Validation guarantees that every provider a
    /// certificate's [`ChallengeSpec::Dns01`] names exists.
    #[must_use]
    pub fn dns_provider(&self, name: &str) -> Option<&DnsProviderSpec> {
        self.dns_providers
            .iter()
            .find(|provider| provider.name == name)
    }
}

/// A `[dns.NAME]` table: how to publish TXT records, and how to tell that the CA can see
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsProviderSpec {
    /// The `NAME` of `[dns.NAME]`: letters, digits, '.', '_' and '-'.
    pub name: String,
    pub kind: DnsProviderKind,
    /// Follow a CNAME at `_acme-challenge.DOMAIN` and publish the record at its target (a
    /// challenge zone delegated to a server certkeeper may update).
    pub follow_cname: bool,
    pub propagation: Propagation,
}

/// How a provider publishes records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsProviderKind {
    /// Dynamic updates (RFC 2136) signed with TSIG (RFC 8945).
    Rfc2136(Rfc2136Spec),
    /// An external command publishes and removes each record.
    Hook(Hook),
}

/// An RFC 2136 server and the TSIG key certkeeper signs its updates with.
///
/// `Debug` shows the secret redacted (see [`Secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc2136Spec {
    /// The primary server that accepts updates ([`DEFAULT_DNS_PORT`] unless written).
    pub server: SocketAddr,
    /// The TSIG key's name as the server knows it: lower case, without the trailing dot.
    pub key_name: String,
    pub algorithm: TsigAlgorithm,
    /// The decoded TSIG key (the config names where its base64 text is).
    pub secret: Secret,
    /// The zone to update (lower case, without the trailing dot); `None`: the zone that
    /// holds the record, found through the server's SOA answers.
    pub zone: Option<String>,
    /// TTL of the TXT records added ([`DEFAULT_TTL`] unless set).
    pub ttl: Duration,
}

/// Whether and how to wait until a published record is visible before the CA is asked to
/// look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Propagation {
    /// Query until every checked server answers with the record, at most `timeout` long,
    /// every `interval`.
    Check {
        timeout: Duration,
        interval: Duration,
        /// Servers to ask (each `IP:PORT`); empty: the zone's authoritative servers.
        resolvers: Vec<SocketAddr>,
    },
    /// Trust the provider: ask the CA at once (for providers whose hook waits itself).
    None,
}

impl Default for Propagation {
    fn default() -> Self {
        Self::Check {
            timeout: DEFAULT_PROPAGATION_TIMEOUT,
            interval: DEFAULT_PROPAGATION_INTERVAL,
            resolvers: Vec::new(),
        }
    }
}

/// A TSIG MAC algorithm (RFC 8945). The HMAC-SHA2 family only: HMAC-MD5 and HMAC-SHA1 are
/// deprecated, and the DNS libraries certkeeper can use sign with these three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TsigAlgorithm {
    #[default]
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    /// Every accepted algorithm, for error messages and docs.
    pub const ALL: [TsigAlgorithm; 3] = [
        TsigAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512,
    ];

    /// The name BIND's `tsig-keygen -a` and `algorithm` statements use.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of [`TsigAlgorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TSIG algorithm {0:?}; expected one of hmac-sha256, hmac-sha384, hmac-sha512")]
pub struct UnknownTsigAlgorithm(pub String);

impl FromStr for TsigAlgorithm {
    type Err = UnknownTsigAlgorithm;

    /// In any case, with or without the trailing dot of the algorithm's domain-name form
    /// (`hmac-sha256.`, as BIND writes it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.strip_suffix('.').unwrap_or(s);
        TsigAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownTsigAlgorithm(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsig_algorithms_round_trip_and_others_are_refused() {
        for algorithm in TsigAlgorithm::ALL {
            assert_eq!(algorithm.as_str().parse::<TsigAlgorithm>(), Ok(algorithm));
        }
        assert_eq!(
            "HMAC-SHA512".parse::<TsigAlgorithm>(),
            Ok(TsigAlgorithm::HmacSha512)
        );
        assert_eq!(TsigAlgorithm::default(), TsigAlgorithm::HmacSha256);
        // BIND writes the algorithm as a domain name, with its trailing dot.
        assert_eq!(
            "hmac-sha384.".parse::<TsigAlgorithm>(),
            Ok(TsigAlgorithm::HmacSha384)
        );
        let refused = "hmac-md5".parse::<TsigAlgorithm>().expect_err("deprecated");
        assert_eq!(
            refused.to_string(),
            "unknown TSIG algorithm \"hmac-md5\"; expected one of hmac-sha256, hmac-sha384, hmac-sha512"
        );
        for algorithm in TsigAlgorithm::ALL {
            assert!(refused.to_string().contains(algorithm.as_str()));
        }
    }

    #[test]
    fn certificates_without_an_entry_answer_with_the_embedded_responder() {
        let www = CertName::new("www").expect("valid");
        let mail = CertName::new("mail").expect("valid");
        let mut challenges = Challenges::default();
        assert_eq!(challenges.of(&www), &ChallengeSpec::EMBEDDED_HTTP01);
        assert_eq!(challenges.of(&www).kind(), ChallengeKind::Http01);
        challenges.by_certificate.insert(
            mail.clone(),
            ChallengeSpec::Dns01 {
                provider: "bind".to_owned(),
            },
        );
        assert_eq!(challenges.of(&mail).kind(), ChallengeKind::Dns01);
        assert_eq!(challenges.dns_provider("bind"), None);
    }

    #[test]
    fn provider_secrets_are_redacted_in_debug_output() {
        let provider = DnsProviderSpec {
            name: "bind".to_owned(),
            kind: DnsProviderKind::Rfc2136(Rfc2136Spec {
                server: SocketAddr::from(([192, 0, 2, 53], DEFAULT_DNS_PORT)),
                key_name: "certkeeper".to_owned(),
                algorithm: TsigAlgorithm::default(),
                secret: Secret::new(b"tsig-secret-bytes".to_vec()),
                zone: None,
                ttl: DEFAULT_TTL,
            }),
            follow_cname: true,
            propagation: Propagation::default(),
        };
        let printed = format!("{provider:?}");
        assert!(!printed.contains("tsig-secret"), "{printed}");
        assert!(printed.contains("redacted"), "{printed}");
        let challenges = Challenges {
            dns_providers: vec![provider.clone()],
            by_certificate: HashMap::new(),
        };
        assert_eq!(challenges.dns_provider("bind"), Some(&provider));
    }
}

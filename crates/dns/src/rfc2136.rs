//! The RFC 2136 provider: dynamic UPDATE, signed with TSIG (RFC 8945), sent to one server.
//!
//! Adding a record is RFC 2136 section 2.5.1 "Add To An RRset" with no prerequisite: the
//! server adds the value next to the ones already at the name (a wildcard and its apex need
//! two at once) and ignores a duplicate. Removing is section 2.5.4 "Delete An RR From An
//! RRset" (class NONE, the exact RDATA), which leaves every other value alone and is ignored
//! when the value is not there. Both are therefore safe to repeat.
//!
//! The zone of the update is configured or found by asking the server for the name's SOA,
//! walking up a label at a time. Updates go over TCP (no retransmission of a signed request;
//! no size limit). The answer's TSIG is verified with the same key, so a spoofed NOERROR
//! cannot make certkeeper believe a record exists; an error the server reports in its TSIG
//! record (BADSIG, BADKEY, BADTIME, unsigned by design) and the response codes REFUSED,
//! NOTAUTH and NOTZONE become typed errors that say what to change.
//!
//! Only HMAC-SHA256 (the default), -SHA384 and -SHA512 are offered: HMAC-MD5 and -SHA1 are
//! deprecated by RFC 8945, and hickory implements no truncated variants.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use certkeeper_core::Secret;
use certkeeper_core::challenge::TsigAlgorithm;
use hickory_proto::dnssec::rdata::{DNSSECRData, TSIG};
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::op::{Message, ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordSet, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use tokio::time::Instant;

use crate::error::{DnsError, TsigRejection};
use crate::lookup::Lookup;
use crate::provider::{DnsProvider, ProviderFuture, TxtRecord};
use crate::wire::{check_answer, display_name, encode, parse, parse_name, tcp};

/// TTL of the records written when none is configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// How long one exchange with the server may take when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Allowed clock difference between us and the server (RFC 8945 recommends 300 s).
const FUDGE_SECONDS: u16 = 300;

/// hickory's name for one of the TSIG algorithms certkeeper offers (the core's
/// [`TsigAlgorithm`], which the configuration checks).
fn hickory(algorithm: TsigAlgorithm) -> hickory_proto::dnssec::rdata::tsig::TsigAlgorithm {
    use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm as Hickory;
    match algorithm {
        TsigAlgorithm::HmacSha256 => Hickory::HmacSha256,
        TsigAlgorithm::HmacSha384 => Hickory::HmacSha384,
        TsigAlgorithm::HmacSha512 => Hickory::HmacSha512,
    }
}

/// Decode a TSIG secret as `tsig-keygen` prints it (base64, surrounding whitespace ignored).
///
/// # Errors
/// [`DnsError::InvalidSecret`] when `text` is not base64.
pub fn decode_tsig_secret(text: &str) -> Result<Secret, DnsError> {
    BASE64_STANDARD
        .decode(text.trim())
        .map(Secret::new)
        .map_err(|_| DnsError::InvalidSecret)
}

/// Settings of an RFC 2136 provider (certbot-dns-rfc2136's and lego's `dnsupdate` knobs).
#[derive(Debug, Clone)]
pub struct Rfc2136Settings {
    /// The primary server to send updates to, with its port (53 normally).
    pub server: SocketAddr,
    /// The TSIG key's name, e.g. `certkeeper.` (a trailing dot is optional).
    pub key_name: String,
    pub algorithm: TsigAlgorithm,
    /// The key's secret, decoded ([`decode_tsig_secret`]).
    pub secret: Secret,
    /// The zone to update; found by asking `server` for the SOA when `None`.
    pub zone: Option<String>,
    /// TTL of the records written.
    pub ttl: Duration,
    /// Bound of one exchange with the server.
    pub timeout: Duration,
}

impl Rfc2136Settings {
    /// Settings with the defaults: hmac-sha256, zone found by SOA, [`DEFAULT_TTL`],
    /// [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn new(server: SocketAddr, key_name: impl Into<String>, secret: Secret) -> Self {
        Self {
            server,
            key_name: key_name.into(),
            algorithm: TsigAlgorithm::default(),
            secret,
            zone: None,
            ttl: DEFAULT_TTL,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Writes TXT records with TSIG-signed dynamic updates.
pub struct Rfc2136 {
    name: String,
    server: SocketAddr,
    key_name: Name,
    signer: TSigner,
    zone: Option<Name>,
    ttl: u32,
    timeout: Duration,
}

impl fmt::Debug for Rfc2136 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfc2136")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("key_name", &self.key_name.to_ascii())
            .field("algorithm", self.signer.algorithm())
            .field("zone", &self.zone.as_ref().map(Name::to_ascii))
            .finish_non_exhaustive()
    }
}

enum Change {
    Add,
    Remove,
}

impl Rfc2136 {
    /// A provider called `name` (its configured name) with `settings`.
    ///
    /// # Errors
    /// [`DnsError::InvalidName`] for a key name or zone that is not a DNS name.
    pub fn new(name: impl Into<String>, settings: &Rfc2136Settings) -> Result<Self, DnsError> {
        let key_name = parse_name(&settings.key_name)?;
        let zone = settings.zone.as_deref().map(parse_name).transpose()?;
        let signer = TSigner::new(
            settings.secret.expose().to_vec(),
            hickory(settings.algorithm),
            key_name.clone(),
            FUDGE_SECONDS,
        )
        .map_err(|err| DnsError::Message {
            reason: err.to_string(),
        })?;
        Ok(Self {
            name: name.into(),
            server: settings.server,
            key_name,
            signer,
            zone,
            ttl: u32::try_from(settings.ttl.as_secs()).unwrap_or(u32::MAX),
            timeout: settings.timeout,
        })
    }

    fn key(&self) -> String {
        display_name(&self.key_name)
    }

    /// The configured zone, or the one the server has an SOA for.
    async fn zone_of(&self, fqdn: &Name) -> Result<Name, DnsError> {
        if let Some(zone) = &self.zone {
            return Ok(zone.clone());
        }
        Lookup {
            servers: vec![self.server],
            timeout: self.timeout,
        }
        .find_zone(fqdn)
        .await
    }

    async fn update(&self, record: &TxtRecord, change: Change) -> Result<(), DnsError> {
        let fqdn = parse_name(&record.fqdn)?;
        let zone = self.zone_of(&fqdn).await?;
        let names = || (display_name(&fqdn), display_name(&zone));
        if !zone.zone_of(&fqdn) {
            let (fqdn, zone) = names();
            return Err(DnsError::NotZone {
                server: self.server,
                fqdn,
                zone,
            });
        }
        let mut rrset = RecordSet::with_ttl(fqdn.clone(), RecordType::TXT, self.ttl);
        rrset.add_rdata(RData::TXT(TXT::new(vec![record.value.clone()])));
        let mut message = match change {
            Change::Add => update_message::append(rrset, zone.clone(), false, false),
            Change::Remove => update_message::delete_by_rdata(rrset, zone.clone(), false),
        };
        let verifier = message
            .finalize(&self.signer, unix_seconds())
            .map_err(|err| DnsError::Message {
                reason: err.to_string(),
            })?;
        let request = encode(&message)?;

        let deadline = Instant::now() + self.timeout;
        let bytes = tcp(self.server, &request, deadline, self.timeout).await?;
        let answer = parse(self.server, &bytes)?;
        check_answer(self.server, &message, &answer)?;
        // The server reports a rejected key in its TSIG record, which it cannot sign.
        if let Some(code) = tsig_error(&answer).filter(|code| *code != 0) {
            return Err(DnsError::TsigRejected {
                key: self.key(),
                server: self.server,
                code: TsigRejection::from_code(code),
            });
        }
        let not_authentic = |reason: String| DnsError::ResponseNotAuthentic {
            server: self.server,
            key: self.key(),
            reason,
        };
        let mut verify = verifier.ok_or_else(|| not_authentic("no verifier".to_owned()))?;
        verify(&bytes).map_err(|err| not_authentic(err.to_string()))?;

        let (fqdn, zone) = names();
        match answer.response_code() {
            ResponseCode::NoError => Ok(()),
            ResponseCode::Refused => Err(DnsError::UpdateRefused {
                server: self.server,
                key: self.key(),
                fqdn,
                zone,
            }),
            ResponseCode::NotAuth => Err(DnsError::NotAuthoritative {
                server: self.server,
                key: self.key(),
                fqdn,
                zone,
            }),
            ResponseCode::NotZone => Err(DnsError::NotZone {
                server: self.server,
                fqdn,
                zone,
            }),
            other => Err(DnsError::UpdateFailed {
                server: self.server,
                fqdn,
                zone,
                rcode: other.into(),
            }),
        }
    }
}

impl DnsProvider for Rfc2136 {
    fn name(&self) -> &str {
        &self.name
    }

    fn add_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
        Box::pin(async move {
            self.update(record, Change::Add).await?;
            tracing::info!(provider = %self.name, server = %self.server, fqdn = %record.fqdn, "TXT record added");
            Ok(())
        })
    }

    fn remove_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
        Box::pin(async move {
            self.update(record, Change::Remove).await?;
            tracing::info!(provider = %self.name, server = %self.server, fqdn = %record.fqdn, "TXT record removed");
            Ok(())
        })
    }

    fn update_server(&self) -> Option<SocketAddr> {
        Some(self.server)
    }
}

fn unix_seconds() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| u32::try_from(since.as_secs()).ok())
        .unwrap_or(0)
}

/// The error field of the answer's TSIG record, if it has one.
///
/// hickory-proto 0.25 keeps the field private (0.26 exposes it but needs a newer Rust), so
/// the record data is encoded again and read: algorithm name (uncompressed: a fresh encoder
/// has no names to point to), time (6), fudge (2), MAC size (2), MAC, original id (2), error.
fn tsig_error(answer: &Message) -> Option<u16> {
    let tsig = answer
        .signature()
        .iter()
        .find_map(|record| match record.data() {
            RData::DNSSEC(DNSSECRData::TSIG(tsig)) => Some(tsig),
            _ => None,
        })?;
    tsig_error_field(tsig)
}

fn tsig_error_field(tsig: &TSIG) -> Option<u16> {
    let mut bytes = Vec::new();
    tsig.emit(&mut BinEncoder::new(&mut bytes)).ok()?;
    let mut at = 0;
    loop {
        let length = usize::from(*bytes.get(at)?);
        at += 1 + length;
        if length == 0 {
            break;
        }
    }
    at += 6 + 2;
    let mac_size = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
    at += 2 + mac_size + 2;
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

#[cfg(test)]
mod tests {
    use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm as Hickory;

    use super::*;

    #[test]
    fn algorithms_map_to_hickorys() {
        assert_eq!(hickory(TsigAlgorithm::HmacSha256), Hickory::HmacSha256);
        assert_eq!(hickory(TsigAlgorithm::HmacSha384), Hickory::HmacSha384);
        assert_eq!(hickory(TsigAlgorithm::HmacSha512), Hickory::HmacSha512);
    }

    #[test]
    fn the_tsig_error_field_is_read_back() {
        for (mac, error) in [(vec![], 16), (vec![7_u8; 32], 0), (vec![1, 2, 3], 18)] {
            let tsig = TSIG::new(
                Hickory::HmacSha256,
                1_700_000_000,
                300,
                mac,
                4711,
                error,
                vec![0, 0, 1, 2, 3, 4],
            );
            assert_eq!(tsig_error_field(&tsig), Some(error));
        }
    }

    /// A server on loopback that answers every update NOERROR without signing it, as an
    /// impostor at the server's address would.
    async fn unsigned_noerror_server() -> SocketAddr {
        use hickory_proto::op::MessageType;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut length = [0_u8; 2];
            stream.read_exact(&mut length).await.expect("length");
            let mut request = vec![0_u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut request).await.expect("request");
            let request = Message::from_vec(&request).expect("a DNS message");
            let mut answer = Message::new();
            answer
                .set_id(request.id())
                .set_message_type(MessageType::Response)
                .set_op_code(request.op_code())
                .add_queries(request.queries().to_vec());
            let answer = answer.to_vec().expect("encode");
            let length = u16::try_from(answer.len()).expect("short");
            stream
                .write_all(&length.to_be_bytes())
                .await
                .expect("write");
            stream.write_all(&answer).await.expect("write");
        });
        addr
    }

    #[tokio::test]
    async fn an_unsigned_answer_is_not_believed() {
        let server = unsigned_noerror_server().await;
        let mut settings = Rfc2136Settings::new(server, "ck.", Secret::new(vec![1; 32]));
        settings.zone = Some("example.test".to_owned());
        let provider = Rfc2136::new("bind", &settings).expect("valid");
        let record = TxtRecord {
            fqdn: "_acme-challenge.example.test.".to_owned(),
            value: "digest".to_owned(),
            context: crate::provider::RecordContext::default(),
        };
        let err = provider.add_txt(&record).await.expect_err("unsigned");
        assert!(
            matches!(&err, DnsError::ResponseNotAuthentic { server: s, key, .. }
                if *s == server && key == "ck."),
            "{err:?}"
        );
    }

    #[test]
    fn secrets_decode_and_stay_redacted() {
        let secret = decode_tsig_secret(" c2VjcmV0LWtleS1ieXRlcw==\n").expect("base64");
        assert_eq!(secret.expose(), b"secret-key-bytes");
        assert!(matches!(
            decode_tsig_secret("not base64!"),
            Err(DnsError::InvalidSecret)
        ));
        let settings = Rfc2136Settings::new(
            "127.0.0.1:53".parse().expect("address"),
            "ck.",
            secret.clone(),
        );
        let provider = Rfc2136::new("bind", &settings).expect("valid");
        let printed = format!("{settings:?} {provider:?}");
        assert!(!printed.contains("c2VjcmV0"), "{printed}");
        assert!(!printed.contains("secret-key-bytes"), "{printed}");
    }
}

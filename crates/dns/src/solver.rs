//! [`Dns01Solver`]: the core's challenge solver port for `dns-01`, over a [`DnsProvider`].
//!
//! - **present**: follow the `_acme-challenge` name's CNAME chain (when `follow_cname`), note
//!   the record in memory and in the journal, then have the provider add it. The note comes
//!   first, so a present that fails or is dropped half-way is still cleaned up.
//! - **ready**: wait until every authoritative server of the record's zone (or every
//!   configured resolver) returns the value, unless the propagation check is off.
//! - **cleanup**: take the note within the call (so a second call finds nothing and succeeds
//!   at once), and return a future that owns the provider and removes exactly that value, then
//!   forgets it in the journal. An answer never presented has no note: nothing to do.
//!
//! A solver can be told which certificate it works for ([`Dns01Solver::with_certificate`]):
//! errors then name it, and hooks get `CERTKEEPER_NAME`, `CERTBOT_ALL_DOMAINS` and a
//! `CERTBOT_REMAINING_CHALLENGES` counted from the certificate's domains not presented yet
//! (an estimate: the solver does not see the authorizations a CA reused).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use certkeeper_core::challenge::Propagation;
use certkeeper_core::{
    ChallengeAnswer, ChallengeKind, ChallengeSolver, SolverError, SolverFuture, SolverStep,
};

use crate::error::{DnsError, ProviderError};
use crate::journal::{PresentedRecord, PresentedRecords, StaleRemoval, remove_stale_records};
use crate::lookup::{Lookup, system_resolvers};
use crate::propagation::{CheckedServer, Polling, wait_until_visible};
use crate::provider::{DnsProvider, RecordContext, TxtRecord};
use crate::wire::{display_name, parse_name};

/// Bound of one lookup or propagation query by default.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How the solver finds where to write and when a record is visible.
#[derive(Debug, Clone)]
pub struct Dns01Settings {
    /// Follow a CNAME at `_acme-challenge.NAME` and write at its target (default true).
    pub follow_cname: bool,
    /// Whether and how `ready` waits until a record is visible: the core's `Propagation`,
    /// as the configuration produces it. With `Check`, `resolvers` (each `addr:port`) are
    /// asked, with recursion, instead of the zone's authoritative servers, and also for
    /// lookups when the provider is no DNS server; empty, the authoritative servers are,
    /// and `/etc/resolv.conf` for lookups.
    pub propagation: Propagation,
    /// Bound of one lookup or propagation query (default [`DEFAULT_QUERY_TIMEOUT`]).
    pub query_timeout: Duration,
}

impl Default for Dns01Settings {
    fn default() -> Self {
        Self {
            follow_cname: true,
            propagation: Propagation::default(),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }
}

impl Dns01Settings {
    fn resolvers(&self) -> &[SocketAddr] {
        match &self.propagation {
            Propagation::Check { resolvers, .. } => resolvers,
            Propagation::None => &[],
        }
    }
}

/// The certificate a solver works for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Certificate {
    name: String,
    domains: Vec<String>,
}

/// A record presented and not cleaned up yet.
#[derive(Debug, Clone)]
struct Noted {
    /// The identifier it validates, as the CA names it (`*.example.org`).
    identifier: String,
    record: TxtRecord,
}

/// Answers `dns-01` challenges through a [`DnsProvider`].
pub struct Dns01Solver {
    provider: Arc<dyn DnsProvider>,
    journal: Arc<dyn PresentedRecords>,
    settings: Dns01Settings,
    certificate: Option<Certificate>,
    /// Records presented and not cleaned up, by (`_acme-challenge` name, value).
    presented: Mutex<HashMap<(String, String), Noted>>,
}

impl std::fmt::Debug for Dns01Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns01Solver")
            .field("provider", &self.provider.name())
            .field("settings", &self.settings)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl Dns01Solver {
    /// A solver writing through `provider`, noting records in `journal`.
    #[must_use]
    pub fn new(
        provider: Arc<dyn DnsProvider>,
        settings: Dns01Settings,
        journal: Arc<dyn PresentedRecords>,
    ) -> Self {
        Self {
            provider,
            journal,
            settings,
            certificate: None,
            presented: Mutex::default(),
        }
    }

    /// The solver works for certificate `name` with `domains` (see the module docs).
    #[must_use]
    pub fn with_certificate(mut self, name: impl Into<String>, domains: Vec<String>) -> Self {
        self.certificate = Some(Certificate {
            name: name.into(),
            domains,
        });
        self
    }

    /// Remove what an earlier run of this provider left behind (see [`remove_stale_records`]).
    pub async fn remove_stale(&self, records: &[PresentedRecord]) -> Vec<StaleRemoval> {
        remove_stale_records(self.provider.as_ref(), records, self.journal.as_ref()).await
    }

    fn provider_error(&self, source: DnsError) -> ProviderError {
        provider_error(self.provider.as_ref(), self.certificate.as_ref(), source)
    }

    fn presented(&self) -> MutexGuard<'_, HashMap<(String, String), Noted>> {
        // Nothing panics while holding the lock.
        self.presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Where lookups go: the provider's server first, then the resolvers.
    fn lookup(&self) -> Lookup {
        let resolvers = if self.settings.resolvers().is_empty() {
            system_resolvers()
        } else {
            self.settings.resolvers().to_vec()
        };
        let mut servers: Vec<SocketAddr> = self.provider.update_server().into_iter().collect();
        for resolver in resolvers {
            if !servers.contains(&resolver) {
                servers.push(resolver);
            }
        }
        Lookup {
            servers,
            timeout: self.settings.query_timeout,
        }
    }

    fn context(&self, domain: &str, presented: &HashMap<(String, String), Noted>) -> RecordContext {
        let identifier = domain;
        let domain = domain.strip_prefix("*.").unwrap_or(domain).to_owned();
        let Some(certificate) = &self.certificate else {
            return RecordContext {
                all_domains: vec![domain.clone()],
                domain,
                ..RecordContext::default()
            };
        };
        let remaining = certificate
            .domains
            .iter()
            .filter(|d| *d != identifier && !presented.values().any(|n| n.identifier == **d))
            .count();
        RecordContext {
            domain,
            certificate: Some(certificate.name.clone()),
            all_domains: certificate.domains.clone(),
            remaining_challenges: remaining,
        }
    }

    async fn present_record(
        &self,
        domain: &str,
        record_name: &str,
        value: &str,
    ) -> Result<(), DnsError> {
        let name = parse_name(record_name)?;
        let target = if self.settings.follow_cname {
            self.lookup().follow_cname(&name).await?
        } else {
            name.clone()
        };
        let record = {
            let mut presented = self.presented();
            let record = TxtRecord {
                fqdn: display_name(&target),
                value: value.to_owned(),
                context: self.context(domain, &presented),
            };
            let noted = Noted {
                identifier: domain.to_owned(),
                record: record.clone(),
            };
            presented.insert((display_name(&name), value.to_owned()), noted);
            record
        };
        let entry = PresentedRecord {
            provider: self.provider.name().to_owned(),
            fqdn: record.fqdn.clone(),
            value: record.value.clone(),
        };
        self.journal
            .record(&entry)
            .map_err(|source| DnsError::Journal {
                fqdn: record.fqdn.clone(),
                source,
            })?;
        self.provider.add_txt(&record).await?;
        tracing::info!(provider = %self.provider.name(), fqdn = %record.fqdn, domain, "TXT record presented");
        Ok(())
    }

    async fn wait_for(&self, record_name: &str, value: &str) -> Result<(), DnsError> {
        let (timeout, interval) = match &self.settings.propagation {
            Propagation::Check {
                timeout, interval, ..
            } => (*timeout, *interval),
            Propagation::None => return Ok(()),
        };
        let key = (display_name(&parse_name(record_name)?), value.to_owned());
        let fqdn = match self.presented().get(&key) {
            Some(noted) => noted.record.fqdn.clone(),
            None => return Err(DnsError::NotPresented { fqdn: key.0 }),
        };
        let fqdn = parse_name(&fqdn)?;
        let servers = self.servers_to_check(&fqdn).await?;
        let polling = Polling {
            timeout,
            interval,
            query_timeout: self.settings.query_timeout,
        };
        wait_until_visible(&servers, &fqdn, value, polling).await
    }

    /// The configured resolvers, or the authoritative servers of the record's zone. The
    /// provider's own server is asked at its port; other nameservers at 53.
    async fn servers_to_check(
        &self,
        fqdn: &hickory_proto::rr::Name,
    ) -> Result<Vec<CheckedServer>, DnsError> {
        if !self.settings.resolvers().is_empty() {
            return Ok(self
                .settings
                .resolvers()
                .iter()
                .map(|&address| CheckedServer {
                    label: address.to_string(),
                    address,
                    recursion: true,
                })
                .collect());
        }
        let lookup = self.lookup();
        let zone = lookup.find_zone(fqdn).await?;
        let update_server = self.provider.update_server();
        let nameservers = lookup
            .nameservers(&zone, |ip| match update_server {
                Some(server) if server.ip() == ip => server.port(),
                _ => 53,
            })
            .await?;
        Ok(nameservers
            .into_iter()
            .map(|ns| CheckedServer {
                label: format!("{} ({})", ns.name, ns.address),
                address: ns.address,
                recursion: false,
            })
            .collect())
    }
}

fn provider_error(
    provider: &dyn DnsProvider,
    certificate: Option<&Certificate>,
    source: DnsError,
) -> ProviderError {
    ProviderError {
        provider: provider.name().to_owned(),
        certificate: certificate.map(|c| c.name.clone()),
        source,
    }
}

/// The parts of a `dns-01` answer: (domain, record name, value).
fn dns01(answer: &ChallengeAnswer) -> Result<(&str, &str, &str), SolverError> {
    match answer {
        ChallengeAnswer::Dns01 {
            domain,
            record_name,
            value,
        } => Ok((domain, record_name, value)),
        ChallengeAnswer::Http01 { .. } => Err(SolverError::WrongKind {
            solver: ChallengeKind::Dns01,
            requested: answer.kind(),
        }),
    }
}

impl ChallengeSolver for Dns01Solver {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Dns01
    }

    fn present<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
            let (domain, record_name, value) = dns01(answer)?;
            self.present_record(domain, record_name, value)
                .await
                .map_err(|err| {
                    SolverError::failed(SolverStep::Present, answer, self.provider_error(err))
                })
        })
    }

    fn ready<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
            let (_, record_name, value) = dns01(answer)?;
            self.wait_for(record_name, value).await.map_err(|err| {
                SolverError::failed(SolverStep::Ready, answer, self.provider_error(err))
            })
        })
    }

    fn cleanup(&self, answer: &ChallengeAnswer) -> SolverFuture<'static> {
        let (_, record_name, value) = match dns01(answer) {
            Ok(parts) => parts,
            Err(err) => return Box::pin(std::future::ready(Err(err))),
        };
        // A name that does not parse was never presented.
        let Ok(name) = parse_name(record_name) else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let Some(Noted { record, .. }) = self
            .presented()
            .remove(&(display_name(&name), value.to_owned()))
        else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let provider = Arc::clone(&self.provider);
        let journal = Arc::clone(&self.journal);
        let certificate = self.certificate.clone();
        let answer = answer.clone();
        Box::pin(async move {
            provider.remove_txt(&record).await.map_err(|err| {
                let err = provider_error(provider.as_ref(), certificate.as_ref(), err);
                SolverError::failed(SolverStep::Cleanup, &answer, err)
            })?;
            let entry = PresentedRecord {
                provider: provider.name().to_owned(),
                fqdn: record.fqdn.clone(),
                value: record.value.clone(),
            };
            if let Err(err) = journal.forget(&entry) {
                tracing::warn!(provider = %entry.provider, fqdn = %entry.fqdn, error = %err, "TXT record removed but not forgotten in the journal; it is removed again at the next start");
            }
            tracing::info!(provider = %entry.provider, fqdn = %entry.fqdn, "TXT record cleaned up");
            Ok(())
        })
    }
}

//! Finding things out before and after writing a record: where a `_acme-challenge` name
//! points (CNAME delegation), which zone holds a name, which servers are authoritative for it,
//! and what TXT values a server has.
//!
//! Lookups ask a list of servers in order and take the first usable answer: for RFC 2136 the
//! update server first (it hosts the zone, and may be the only server that knows it, as in a
//! test or a hidden primary), then the configured resolvers, or the system's from
//! `/etc/resolv.conf` when none are configured. A usable answer is one that speaks for the
//! name: NOERROR or NXDOMAIN with an answer or an SOA in the authority section. A REFUSED
//! (a server that does not host the name) or a referral moves on to the next server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::error::{DnsError, Rcode};
use crate::wire::{display_name, query};

/// How many CNAME links are followed before giving up.
pub const MAX_CNAME_LINKS: usize = 8;

/// Where lookups are sent, in order.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    pub(crate) servers: Vec<SocketAddr>,
    pub(crate) timeout: Duration,
}

impl Lookup {
    /// Ask the servers in turn about `name`/`rtype`; the first usable answer wins. When none
    /// has one, the first server's problem is returned.
    pub(crate) async fn ask(&self, name: &Name, rtype: RecordType) -> Result<Message, DnsError> {
        let mut first_problem = None;
        for &server in &self.servers {
            let problem = match query(server, name, rtype, true, self.timeout).await {
                Ok(answer) if speaks_for_name(&answer) => return Ok(answer),
                Ok(answer) => DnsError::QueryFailed {
                    server,
                    name: display_name(name),
                    rtype: rtype.to_string(),
                    rcode: answer.response_code().into(),
                },
                Err(err) => err,
            };
            tracing::debug!(%server, name = %name, %rtype, error = %problem, "lookup: no usable answer");
            first_problem.get_or_insert(problem);
        }
        Err(first_problem.unwrap_or_else(|| DnsError::NoServers {
            name: display_name(name),
        }))
    }

    /// Follow CNAMEs from `name` to the name that holds the records.
    pub(crate) async fn follow_cname(&self, name: &Name) -> Result<Name, DnsError> {
        let mut current = name.clone();
        for _ in 0..=MAX_CNAME_LINKS {
            let answer = match self.ask(&current, RecordType::CNAME).await {
                Ok(answer) => answer,
                // No server hosts or resolves the name: no delegation is known to follow.
                Err(DnsError::QueryFailed { rcode, .. })
                    if rcode == Rcode::REFUSED || rcode == Rcode::NOTAUTH =>
                {
                    return Ok(current);
                }
                Err(err) => return Err(err),
            };
            let target = answer
                .answers()
                .iter()
                .find_map(|record| match record.data() {
                    RData::CNAME(cname) if record.name() == &current => Some(cname.0.clone()),
                    _ => None,
                });
            match target {
                Some(mut target) => {
                    target.set_fqdn(true);
                    tracing::debug!(from = %current, to = %target, "following CNAME");
                    current = target;
                }
                None => return Ok(current),
            }
        }
        Err(DnsError::CnameChainTooLong {
            name: display_name(name),
            limit: MAX_CNAME_LINKS,
        })
    }

    /// The zone `name` belongs to: the SOA's owner, asking for `name` and then each parent
    /// until a server speaks for one.
    pub(crate) async fn find_zone(&self, name: &Name) -> Result<Name, DnsError> {
        let mut candidate = name.clone();
        loop {
            match self.ask(&candidate, RecordType::SOA).await {
                Ok(answer) => {
                    if let Some(zone) = soa_owner(&answer, name) {
                        return Ok(zone);
                    }
                }
                Err(DnsError::QueryFailed { .. }) => {}
                Err(err) => return Err(err),
            }
            if candidate.is_root() {
                return Err(DnsError::ZoneNotFound {
                    name: display_name(name),
                    servers: self.describe(),
                });
            }
            candidate = candidate.base_name();
        }
    }

    /// The authoritative servers of `zone`, from its NS records, with their addresses (from
    /// the additional section when the answer carries them). `port_for` picks the port to
    /// query each address on.
    pub(crate) async fn nameservers(
        &self,
        zone: &Name,
        port_for: impl Fn(IpAddr) -> u16,
    ) -> Result<Vec<Nameserver>, DnsError> {
        let answer = self.ask(zone, RecordType::NS).await?;
        let names: Vec<Name> = answer
            .answers()
            .iter()
            .filter_map(|record| match record.data() {
                RData::NS(ns) if record.name() == zone => Some(ns.0.clone()),
                _ => None,
            })
            .collect();
        let mut servers: Vec<Nameserver> = Vec::new();
        for name in names {
            let mut addresses = addresses_in(&answer, &name);
            if addresses.is_empty() {
                for rtype in [RecordType::A, RecordType::AAAA] {
                    if let Ok(found) = self.ask(&name, rtype).await {
                        addresses.extend(addresses_in(&found, &name));
                    }
                }
            }
            for ip in addresses {
                let address = SocketAddr::new(ip, port_for(ip));
                if !servers.iter().any(|known| known.address == address) {
                    servers.push(Nameserver {
                        name: display_name(&name),
                        address,
                    });
                }
            }
        }
        if servers.is_empty() {
            return Err(DnsError::NoNameservers {
                zone: display_name(zone),
            });
        }
        Ok(servers)
    }

    fn describe(&self) -> String {
        self.servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One authoritative server of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Nameserver {
    pub(crate) name: String,
    pub(crate) address: SocketAddr,
}

/// The TXT values `answer` holds at `name`, each record's strings joined (RFC 7208 style).
pub(crate) fn txt_values(answer: &Message, name: &Name) -> Vec<String> {
    answer
        .answers()
        .iter()
        .filter(|record| record.name() == name)
        .filter_map(|record| match record.data() {
            RData::TXT(txt) => Some(
                txt.iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

/// The servers of `/etc/resolv.conf`, port 53.
pub(crate) fn system_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| parse_resolv_conf(&text))
        .unwrap_or_default()
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // A scoped IPv6 address (fe80::1%eth0) cannot be parsed into an IpAddr; skipped.
        .filter_map(|address| address.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// An answer that speaks for the name it was asked about: NOERROR or NXDOMAIN, with records
/// or with an SOA in the authority section (a negative answer from the zone itself), not a
/// referral.
fn speaks_for_name(answer: &Message) -> bool {
    matches!(
        answer.response_code(),
        ResponseCode::NoError | ResponseCode::NXDomain
    ) && (!answer.answers().is_empty()
        || answer
            .name_servers()
            .iter()
            .any(|record| record.record_type() == RecordType::SOA))
}

/// The owner of the SOA in `answer` that is `name` or one of its parents.
fn soa_owner(answer: &Message, name: &Name) -> Option<Name> {
    answer
        .answers()
        .iter()
        .chain(answer.name_servers())
        .filter(|record| record.record_type() == RecordType::SOA)
        .map(|record| record.name().clone())
        .find(|owner| owner.zone_of(name))
}

fn addresses_in(answer: &Message, name: &Name) -> Vec<IpAddr> {
    answer
        .answers()
        .iter()
        .chain(answer.additionals())
        .filter(|record| record.name() == name)
        .filter_map(|record| record.data().ip_addr())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver ::1\n\
                    nameserver fe80::1%eth0\noptions edns0\n";
        assert_eq!(
            parse_resolv_conf(text),
            [
                "192.0.2.53:53".parse::<SocketAddr>().expect("address"),
                "[::1]:53".parse().expect("address"),
            ]
        );
    }
}

//! What the DNS tests share: a real named ([`bind`]), a real Pebble ([`pebble`]), and a
//! journal of presented records kept in memory, standing in for the binary's file in the
//! state directory.

pub mod bind;
pub mod pebble;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_core::{ChallengeAnswer, Secret};
use certkeeper_dns::{
    Dns01Settings, PresentedRecord, PresentedRecords, Propagation, Rfc2136Settings,
    decode_tsig_secret,
};

use bind::{Bind, Key};

/// The journal in memory; `fail` makes `record` fail, as a full disk would.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    records: Mutex<Vec<PresentedRecord>>,
    pub fail: bool,
}

impl MemoryJournal {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A journal whose `record` always fails.
    pub fn failing() -> Arc<Self> {
        Arc::new(Self {
            fail: true,
            ..Self::default()
        })
    }

    pub fn records(&self) -> Vec<PresentedRecord> {
        self.records.lock().expect("journal").clone()
    }
}

impl PresentedRecords for MemoryJournal {
    fn record(&self, record: &PresentedRecord) -> io::Result<()> {
        if self.fail {
            return Err(io::Error::other("no space left on device"));
        }
        let mut records = self.records.lock().expect("journal");
        if !records.contains(record) {
            records.push(record.clone());
        }
        Ok(())
    }

    fn forget(&self, record: &PresentedRecord) -> io::Result<()> {
        self.records
            .lock()
            .expect("journal")
            .retain(|kept| kept != record);
        Ok(())
    }
}

pub fn secret(key: &Key) -> Secret {
    decode_tsig_secret(&key.secret).expect("tsig-keygen prints base64")
}

/// RFC 2136 settings for `bind` with `key`, short timeouts.
pub fn rfc2136(bind: &Bind, key: &Key) -> Rfc2136Settings {
    let mut settings = Rfc2136Settings::new(bind.addr, key.name.clone(), secret(key));
    settings.algorithm = key.algorithm.parse().expect("algorithm");
    settings.timeout = Duration::from_secs(5);
    settings
}

/// Solver settings that check propagation at the authoritative servers, quickly.
pub fn quick_settings() -> Dns01Settings {
    Dns01Settings {
        propagation: Propagation::Check {
            timeout: Duration::from_secs(10),
            interval: Duration::from_millis(100),
            resolvers: Vec::new(),
        },
        query_timeout: Duration::from_secs(2),
        ..Dns01Settings::default()
    }
}

/// A dns-01 answer for `domain` with `value`, as the order code builds it.
pub fn answer(domain: &str, value: &str) -> ChallengeAnswer {
    ChallengeAnswer::Dns01 {
        domain: domain.to_owned(),
        record_name: format!(
            "_acme-challenge.{}",
            domain.strip_prefix("*.").unwrap_or(domain)
        ),
        value: value.to_owned(),
    }
}

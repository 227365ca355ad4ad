//! The journal of DNS-01 records presented and not yet removed: `state/dns-presented.journal`.
//!
//! A DNS-01 solver publishes a TXT record before the CA looks and removes it afterwards; only
//! a crash or a SIGKILL between the two leaves it in DNS. So every record is written here
//! *before* the DNS provider is asked to add it, and taken out once the provider removed it;
//! at the next start the binary removes whatever is still listed (the DNS crate's
//! `remove_stale_records`). This module is only the storage: the store knows nothing of DNS.
//!
//! What an entry holds: the provider's configured name, the record's name and its TXT value
//! (a hash of a key authorization, public in DNS anyway), nothing secret. So the file is
//! `0644` like the lineage state next to it, under `state/` (`0700`).
//!
//! One file for every certificate, not one per certificate: a stale record is found by
//! provider, and the start-up cleanup reads one file instead of one per lineage. Its name
//! ends in `.journal`, so no certificate name can collide with it (those files end in
//! `.json` and `.pem`). Every change is a read-modify-write of the whole file through the
//! crate's atomic writes, reached from the held `state/` descriptor without following
//! symlinks, under a lock inside [`PresentedJournal`]: make one journal per store and share
//! it (the state directory lock keeps other processes out).

use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::Store;
use crate::atomic::write_atomic_at;
use crate::error::StoreError;
use crate::layout::{PRIVATE_DIR_MODE, STATE_DIR};
use crate::nofollow::{DirFd, Secrecy};

/// The journal's file name in `state/`.
pub const PRESENTED_FILE: &str = "dns-presented.journal";
/// Mode of the journal: nothing secret in it.
const PRESENTED_FILE_MODE: u32 = 0o644;

/// One TXT record presented through a DNS provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PresentedTxt {
    /// The configured name of the provider (`[dns.NAME]`) that wrote it.
    pub provider: String,
    /// Where it was written (after CNAME delegation), absolute with the trailing dot.
    pub fqdn: String,
    /// The TXT value.
    pub value: String,
}

/// The file's content: a list, so a newer certkeeper can add fields.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct JournalFile {
    records: Vec<PresentedTxt>,
}

/// The journal of presented records of one store. Changes are serialised by an internal
/// lock; keep one per store (an `Arc`), not one per attempt.
#[derive(Debug)]
pub struct PresentedJournal {
    store: Store,
    lock: Mutex<()>,
}

impl Store {
    /// The journal of DNS-01 records presented in this state directory (see the module
    /// `presented`).
    #[must_use]
    pub fn presented_journal(&self) -> PresentedJournal {
        PresentedJournal {
            store: self.clone(),
            lock: Mutex::new(()),
        }
    }
}

impl PresentedJournal {
    /// Every record presented and not yet removed, in the order they were noted.
    ///
    /// # Errors
    /// [`StoreError::Unsafe`] when the journal or `state/` is a symlink or not certkeeper's;
    /// [`StoreError::State`] when it is not valid JSON; [`StoreError::Io`] when it cannot be
    /// read.
    pub fn records(&self) -> Result<Vec<PresentedTxt>, StoreError> {
        let _guard = self.guard();
        Ok(self.read()?.records)
    }

    /// Note `record` (before it is presented). Noting it twice keeps one entry.
    ///
    /// # Errors
    /// As [`PresentedJournal::records`], and when the file cannot be written.
    pub fn note(&self, record: &PresentedTxt) -> Result<(), StoreError> {
        let _guard = self.guard();
        let mut file = self.read()?;
        if file.records.contains(record) {
            return Ok(());
        }
        file.records.push(record.clone());
        self.write(&file)
    }

    /// Forget `record` (once it is removed). Forgetting what is not there is no error and
    /// writes nothing.
    ///
    /// # Errors
    /// As [`PresentedJournal::note`].
    pub fn forget(&self, record: &PresentedTxt) -> Result<(), StoreError> {
        let _guard = self.guard();
        let mut file = self.read()?;
        let before = file.records.len();
        file.records.retain(|noted| noted != record);
        if file.records.len() == before {
            return Ok(());
        }
        self.write(&file)
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        // The lock guards no data of its own: a panic while holding it leaves nothing torn.
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_dir(&self) -> Result<DirFd, StoreError> {
        self.store.root.ensure_dir(STATE_DIR, PRIVATE_DIR_MODE)
    }

    fn read(&self) -> Result<JournalFile, StoreError> {
        let Some(dir) = self.store.held.state.current(&self.store.root)? else {
            return Ok(JournalFile::default());
        };
        let Some(bytes) =
            dir.read_file(PRESENTED_FILE, Secrecy::Public, "read the DNS-01 journal")?
        else {
            return Ok(JournalFile::default());
        };
        serde_json::from_slice(&bytes).map_err(|source| StoreError::State {
            path: dir.child(PRESENTED_FILE),
            source,
        })
    }

    fn write(&self, file: &JournalFile) -> Result<(), StoreError> {
        let dir = self.state_dir()?;
        let mut json = serde_json::to_vec_pretty(file).map_err(|source| StoreError::State {
            path: dir.child(PRESENTED_FILE),
            source,
        })?;
        json.push(b'\n');
        write_atomic_at(&dir, PRESENTED_FILE, &json, PRESENTED_FILE_MODE)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;
    use crate::error::UnsafeProblem;

    fn record(value: &str) -> PresentedTxt {
        PresentedTxt {
            provider: "bind".to_owned(),
            fqdn: "_acme-challenge.example.test.".to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn records_are_noted_once_and_forgotten_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let journal = store.presented_journal();
        assert_eq!(journal.records().expect("empty"), Vec::new());
        journal.note(&record("apex")).expect("note");
        journal.note(&record("wildcard")).expect("note");
        journal.note(&record("apex")).expect("again");
        assert_eq!(
            journal.records().expect("read"),
            vec![record("apex"), record("wildcard")]
        );
        journal.forget(&record("apex")).expect("forget");
        journal.forget(&record("never")).expect("nothing to forget");
        // A second journal (the next start) reads what the first wrote.
        let again = Store::open(dir.path()).expect("reopen").presented_journal();
        assert_eq!(again.records().expect("read"), vec![record("wildcard")]);
        let path = dir.path().join(STATE_DIR).join(PRESENTED_FILE);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, PRESENTED_FILE_MODE);
    }

    #[test]
    fn a_planted_symlink_is_refused_and_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, b"not ours\n").expect("write");
        symlink(&elsewhere, dir.path().join(STATE_DIR).join(PRESENTED_FILE)).expect("plant");
        let journal = store.presented_journal();
        for err in [
            journal.records().expect_err("read through a symlink"),
            journal
                .note(&record("apex"))
                .expect_err("write through a symlink"),
        ] {
            assert!(
                matches!(
                    err,
                    StoreError::Unsafe {
                        problem: UnsafeProblem::WrongType { .. } | UnsafeProblem::Symlink { .. },
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        assert_eq!(
            std::fs::read(&elsewhere).expect("read"),
            b"not ours\n".to_vec()
        );
    }
}

//! How many orders may run at once: `max_concurrent` overall and a CA's own `max_concurrent`.
//! Shared by `certkeeper renew` and the daemon.

use std::collections::HashMap;
use std::sync::Arc;

use certkeeper_core::{CaName, Inventory};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct Limits {
    global: Arc<Semaphore>,
    per_ca: HashMap<CaName, Arc<Semaphore>>,
}

/// Held while an order runs; dropping it frees the slots.
#[derive(Debug)]
pub struct Slots {
    _global: OwnedSemaphorePermit,
    _per_ca: Option<OwnedSemaphorePermit>,
}

impl Limits {
    pub fn new(inventory: &Inventory) -> Self {
        Self {
            global: Arc::new(Semaphore::new(inventory.max_concurrent.max(1))),
            per_ca: inventory
                .cas
                .iter()
                .filter_map(|ca| {
                    let limit = ca.max_concurrent?;
                    Some((ca.name.clone(), Arc::new(Semaphore::new(limit.max(1)))))
                })
                .collect(),
        }
    }

    /// Wait for a slot at `ca` and overall. The CA slot is taken first, so an order queued
    /// behind its CA's limit does not hold a global slot other CAs could use.
    pub async fn acquire(&self, ca: &CaName) -> Slots {
        let per_ca = match self.per_ca.get(ca) {
            // The semaphores are never closed, so acquiring cannot fail.
            Some(semaphore) => Arc::clone(semaphore).acquire_owned().await.ok(),
            None => None,
        };
        let global = Arc::clone(&self.global).acquire_owned().await;
        match global {
            Ok(global) => Slots {
                _global: global,
                _per_ca: per_ca,
            },
            Err(_) => unreachable!("the global semaphore is never closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use certkeeper_core::{CaSpec, Http01Spec};

    use super::*;

    fn inventory(global: usize, per_ca: Option<usize>) -> Inventory {
        Inventory {
            state_dir: PathBuf::from("/nonexistent"),
            http01: Http01Spec { listen: Vec::new() },
            cas: vec![CaSpec {
                name: CaName::new("a").expect("valid"),
                directory: "https://ca.example/dir".to_owned(),
                eab: None,
                terms_of_service_agreed: true,
                contact: Vec::new(),
                root_ca_file: None,
                max_concurrent: per_ca,
                request_timeout: None,
            }],
            certificates: Vec::new(),
            max_concurrent: global,
            admin: None,
            watch_paths: Vec::new(),
            hooks_dir: None,
            hook_timeout: Duration::from_secs(60),
            reload_targets: Vec::new(),
            challenges: certkeeper_core::challenge::Challenges::default(),
            notify: Vec::new(),
            cluster: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_ca_and_global_limits_hold() {
        let a = CaName::new("a").expect("valid");
        let b = CaName::new("b").expect("valid");
        let limits = Limits::new(&inventory(3, Some(1)));
        let first = limits.acquire(&a).await;
        // A second order at CA `a` waits for the first...
        let waiting = tokio::time::timeout(Duration::from_secs(1), limits.acquire(&a)).await;
        assert!(waiting.is_err(), "per-CA limit of 1");
        // ...while CA `b` (no own limit) still gets the remaining global slots.
        let _b1 = limits.acquire(&b).await;
        let _b2 = limits.acquire(&b).await;
        let blocked = tokio::time::timeout(Duration::from_secs(1), limits.acquire(&b)).await;
        assert!(blocked.is_err(), "global limit of 3");
        drop(first);
        let again = tokio::time::timeout(Duration::from_secs(1), limits.acquire(&a)).await;
        assert!(again.is_ok(), "the freed slot is reused");
    }
}

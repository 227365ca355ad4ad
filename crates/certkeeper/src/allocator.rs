//! The process's memory allocator: jemalloc, with a background thread that returns freed
//! pages to the system.
//!
//! Reading a large inventory (at start, and on every reload) allocates and frees tens of
//! megabytes of parse trees and lineage reads. glibc's allocator keeps that memory mapped for
//! the rest of the process's life: a daemon over 10,000 certificates stayed at 32 MiB
//! resident at rest, twice its live heap (docs/benchmarks.md, scenario 6). jemalloc purges
//! dirty pages after a decay period, from a background thread that sleeps while there is
//! nothing to purge, so the daemon at rest costs its live heap and no wake-ups.

/// Every allocation of the process goes through jemalloc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Give the pages freed so far back to the system now, instead of after jemalloc's decay
/// period (ten seconds): called once a start or a reload has read the inventory and every
/// lineage, the moment the daemon's memory drops from its peak to what it keeps at rest.
/// Then freed pages decay within [`DECAY_AT_REST_MS`].
pub fn return_freed_memory() {
    use tikv_jemalloc_ctl::{Access, AsName};
    let arenas = tikv_jemalloc_ctl::arenas::narenas::read().unwrap_or(0);
    for arena in 0..arenas {
        // A decay time of 0 purges at once; the one set after it applies from then on.
        for (kind, decay) in [
            ("dirty", 0),
            ("muzzy", 0),
            ("dirty", DECAY_AT_REST_MS),
            ("muzzy", DECAY_AT_REST_MS),
        ] {
            let key = format!("arena.{arena}.{kind}_decay_ms\0");
            if let Err(err) = key.as_bytes().name().write(decay) {
                // An arena index that was never initialised has nothing to purge.
                tracing::trace!(arena, error = %err, "cannot set jemalloc's decay time");
                break;
            }
        }
    }
}

/// Make the calling thread allocate from jemalloc's first arena, the main thread's. By
/// default jemalloc gives threads arenas of their own (four per core), each keeping pages of
/// its own: right for a server allocating on many cores at once, wasteful for certkeeper,
/// whose threads (the runtime's blocking pool: key generation, installs) allocate little and
/// seldom. Called when the runtime starts one of them.
pub fn share_main_arena() {
    use tikv_jemalloc_ctl::{Access, AsName};
    if let Err(err) = b"thread.arena\0".name().write(0_u32) {
        tracing::trace!(error = %err, "cannot move the thread to jemalloc's first arena");
    }
    // Nor a cache of freed blocks of its own: the thread allocates too seldom to gain from it.
    if let Err(err) = b"thread.tcache.enabled\0".name().write(false) {
        tracing::trace!(error = %err, "cannot turn the thread's jemalloc cache off");
    }
}

/// How long freed pages stay mapped before the background thread returns them.
const DECAY_AT_REST_MS: isize = 1000;

/// Start jemalloc's purging thread. Call it after the process's last change of credentials
/// or capabilities: those are per thread on Linux, and a thread keeps the ones it was started
/// with. Only the daemon needs it: a one-shot command's memory goes back when it exits.
pub fn purge_in_background() {
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %err, "jemalloc's background purging is unavailable; freed memory is returned as the allocator is used");
    }
}

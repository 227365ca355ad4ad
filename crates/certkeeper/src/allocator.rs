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

/// Start jemalloc's purging thread. Call it after the process's last change of credentials
/// or capabilities: those are per thread on Linux, and a thread keeps the ones it was started
/// with. Only the daemon needs it: a one-shot command's memory goes back when it exits.
pub fn purge_in_background() {
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %err, "jemalloc's background purging is unavailable; freed memory is returned as the allocator is used");
    }
}

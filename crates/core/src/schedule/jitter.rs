//! Deterministic jitter derived from the certificate name.
//!
//! A fleet of certificates issued together would otherwise all renew (and all hit the CA)
//! in the same second. Randomness would spread them, but it would also move the plan on
//! every restart, and the core has no randomness source anyway. A hash of the name spreads
//! them just as well and gives the same instant every time. The hash is FNV-1a 64 followed by
//! a bit mixer, written out here because std's `DefaultHasher` may change between Rust
//! releases, which would move every renewal on upgrade.

use std::time::Duration;

use crate::names::CertName;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The 64-bit finaliser of MurmurHash3: every input bit reaches the low bits, which the
/// modulo in [`fraction_of`] keeps (FNV-1a alone mixes its last byte poorly into them).
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A stable hash of `parts`, separated so that `("ab", "c")` and `("a", "bc")` differ.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut joined = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        joined.extend_from_slice(part);
        joined.push(0);
    }
    mix(fnv1a(&joined))
}

/// A duration in `[0, span)` chosen by `hash`, in whole milliseconds (zero when `span` is
/// shorter than a millisecond).
pub(crate) fn fraction_of(hash: u64, span: Duration) -> Duration {
    let span_ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
    if span_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(hash % span_ms)
}

/// The per-certificate offset in `[0, span)` by which renewal is moved earlier.
///
/// It depends only on the name and the span, so it is the same after a restart and on every
/// machine, and differs between names. Whole milliseconds; zero for a span under 1 ms.
#[must_use]
pub fn jitter(name: &CertName, span: Duration) -> Duration {
    fraction_of(stable_hash(&[b"renewal", name.as_str().as_bytes()]), span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> CertName {
        CertName::new(s).expect("valid test name")
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference test suite (fnv-1a 64).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn jitter_is_pinned_so_upgrades_do_not_move_renewals() {
        // If this fails, every deployed certificate's renewal instant would move on upgrade.
        let day = Duration::from_secs(86_400);
        assert_eq!(
            jitter(&name("www"), 10 * day),
            Duration::from_millis(PINNED_WWW)
        );
        assert_eq!(
            jitter(&name("api"), 10 * day),
            Duration::from_millis(PINNED_API)
        );
    }

    const PINNED_WWW: u64 = 195_279_746;
    const PINNED_API: u64 = 395_698_069;

    #[test]
    fn jitter_is_stable_bounded_and_spread() {
        let spans = [
            Duration::ZERO,
            Duration::from_micros(900),
            Duration::from_millis(1),
            Duration::from_secs(20),
            Duration::from_secs(86_400 * 3),
            Duration::from_secs(86_400 * 13),
        ];
        let names: Vec<CertName> = (0..200).map(|i| name(&format!("web{i}"))).collect();
        for span in spans {
            for n in &names {
                let j = jitter(n, span);
                assert_eq!(j, jitter(n, span), "stable for {n} over {span:?}");
                assert!(
                    j < span || (span < Duration::from_millis(1) && j.is_zero()),
                    "{j:?} not in [0, {span:?}) for {n}"
                );
            }
        }
        // Similar names land far apart: over three days, 200 names fill most of ten buckets.
        let span = Duration::from_secs(86_400 * 3);
        let mut buckets = [0usize; 10];
        for n in &names {
            let j = jitter(n, span);
            let bucket = usize::try_from(j.as_millis() * 10 / span.as_millis())
                .expect("bucket index is below 10");
            buckets[bucket] += 1;
        }
        assert!(
            buckets.iter().all(|count| (8..=35).contains(count)),
            "uneven spread {buckets:?}"
        );
        assert_ne!(jitter(&names[0], span), jitter(&names[1], span));
    }

    #[test]
    fn stable_hash_separates_parts() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_ne!(stable_hash(&[b"x"]), stable_hash(&[b"x", b""]));
    }
}

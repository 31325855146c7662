//! Request ids: unique per request, unpredictable across daemon runs, cheap to make.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes UUID-formatted (version 4 layout) request ids.
///
/// The kernel's random source is read once, for a 128-bit seed; each id then mixes a
/// counter into the seed with a bijection, so ids never repeat within a run (for 2^62
/// requests) and do not look sequential, which keeps people from reading meaning into them.
#[derive(Debug)]
pub struct RequestIds {
    hi: u64,
    lo: u64,
    counter: AtomicU64,
}

/// The low 62 bits: what is left of the second half once the variant bits are set.
const MASK62: u64 = (1 << 62) - 1;

impl RequestIds {
    /// Seeds from `/dev/urandom`; falls back to the clock and pid if it cannot be read.
    pub fn new() -> Self {
        let mut seed = [0u8; 16];
        let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
        if read.is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let mixed = nanos ^ (u128::from(std::process::id()) << 96);
            seed = mixed.to_be_bytes();
        }
        Self::with_seed(seed)
    }

    /// A generator with a fixed seed, for reproducible tests.
    pub fn with_seed(seed: [u8; 16]) -> Self {
        let v = u128::from_be_bytes(seed);
        RequestIds {
            hi: (v >> 64) as u64,
            lo: v as u64,
            counter: AtomicU64::new(0),
        }
    }

    /// The next id, e.g. `3f1c9a0e-7b2d-4c55-9a1e-0c8e4b7d2f61`.
    pub fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // The second half is a bijection of the counter: that makes ids unique. The first
        // half only varies them, so that ids in a log do not share a long common prefix.
        let lo = (2 << 62) | mix62(self.lo.wrapping_add(n)); // RFC 4122 variant
        let hi = self.hi ^ mix62(lo).rotate_left(17);
        let hi = (hi & !0xf000) | 0x4000; // version 4
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// A bijection on 62-bit values (xor-shifts and odd multipliers, modulo 2^62).
fn mix62(x: u64) -> u64 {
    let mut x = x & MASK62;
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9) & MASK62;
    x ^= x >> 29;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb) & MASK62;
    x ^= x >> 32;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_uuid_shaped_and_unique() {
        let ids = RequestIds::new();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next_id();
            let parts: Vec<&str> = id.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
            assert!(
                id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
                "{id}"
            );
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(
                matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn unique_even_when_the_counter_wraps_the_seed() {
        let ids = RequestIds::with_seed([0xff; 16]);
        let a: HashSet<String> = (0..1000).map(|_| ids.next_id()).collect();
        assert_eq!(a.len(), 1000);
    }

    #[test]
    fn consecutive_ids_differ_at_the_start() {
        let ids = RequestIds::with_seed([7; 16]);
        let (a, b) = (ids.next_id(), ids.next_id());
        assert_ne!(a[..8], b[..8]);
    }

    #[test]
    fn mix62_is_injective_on_a_sample() {
        let outs: HashSet<u64> = (0..100_000u64).map(mix62).collect();
        assert_eq!(outs.len(), 100_000);
        assert!(outs.iter().all(|x| *x <= MASK62));
    }
}

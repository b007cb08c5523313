//! Deterministic hashing used for compact identifiers stored in state.
//!
//! State must hash identically across processes and restarts (snapshots store the
//! hashes), so this uses FNV-1a rather than the randomly seeded std hasher.

/// 64-bit FNV-1a of `bytes`.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The partition (`0..partitions`) of a card number: FNV-1a 64 of its bytes modulo the
/// partition count (0 when `partitions` is 0 or 1).
pub fn partition_of(card_number: &str, partitions: u32) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    (fnv1a64(card_number.as_bytes()) % u64::from(partitions)) as u32
}

/// [`key32`] of `s` with ASCII letters upper-cased, without allocating.
pub(crate) fn key32_upper(s: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b.to_ascii_uppercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fold(h)
}

fn fold(h: u64) -> u32 {
    let folded = (h ^ (h >> 32)) as u32;
    if folded == 0 {
        1
    } else {
        folded
    }
}

/// A non-zero 32-bit key for `s`; 0 is reserved for "unknown".
pub(crate) fn key32(s: &str) -> u32 {
    fold(fnv1a64(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn key32_is_never_zero_and_stable() {
        assert_ne!(key32(""), 0);
        assert_eq!(key32("merchant-1"), key32("merchant-1"));
        assert_ne!(key32("merchant-1"), key32("merchant-2"));
        assert_eq!(key32_upper("fr"), key32("FR"));
    }
}

//! The little the coordinator reads of the consumer embedded protocol.
//!
//! Member metadata is opaque to the coordinator except for one question OffsetDelete and offset
//! retention ask: which topics do the members of a `consumer` group subscribe to? Like Kafka,
//! the subscription is parsed with its version-0 layout, a prefix of every later version:
//! `version: i16`, `topics: [string]` (`i32` count, `i16`-length strings), then fields we do
//! not need (user data, owned partitions, generation, rack). If any member's metadata does not
//! parse, the answer is "unknown", which callers treat as "subscribed to everything" (safe).

/// The protocol type of Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics a consumer subscription names, or `None` if it does not parse.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = metadata.get(pos..pos.checked_add(n)?)?;
        pos += n;
        Some(s)
    };
    let version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    // Each topic takes at least two bytes: bound the count before trusting it.
    if count > metadata.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        topics.push(String::from_utf8(take(len)?.to_vec()).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subscription(version: i16, topics: &[&str]) -> Vec<u8> {
        let mut out = version.to_be_bytes().to_vec();
        out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            out.extend_from_slice(&(t.len() as i16).to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(&(-1i32).to_be_bytes()); // null user data
        out
    }

    #[test]
    fn parses_every_version_prefix() {
        for v in 0..4 {
            assert_eq!(
                subscribed_topics(&subscription(v, &["a", "payments"])),
                Some(vec!["a".to_string(), "payments".to_string()])
            );
        }
        assert_eq!(subscribed_topics(&[0, 0, 0]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
    }

    proptest! {
        #[test]
        fn arbitrary_metadata_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = subscribed_topics(&bytes);
        }
    }
}

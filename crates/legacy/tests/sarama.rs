//! Interoperability with the client the tutorial uses: request bodies written by sarama 1.22.1
//! (see `data/sarama-1.22.1/README.md`) decode to what sarama meant, and its message sets
//! convert to v2 batches and back without losing anything.

use bytes::Bytes;
use veritas_legacy::list_offsets::{self, OffsetsPartition, EARLIEST, LATEST};
use veritas_legacy::{
    decode_message_set, fetch, from_v2_batches, offset_commit, offset_fetch, produce, Compression,
    DownConversion, Limits, Magic, SetSource, UpConversion,
};

fn vector(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/data/sarama-1.22.1/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

const KEYS: [Option<&[u8]>; 4] = [Some(b"card-0"), None, Some(b"card-2"), Some(b"card-3")];
const VALUES: [Option<&[u8]>; 4] = [
    Some(br#"{"amount":100}"#),
    Some(br#"{"amount":101}"#),
    Some(br#"{"amount":102}"#),
    None,
];
const FIRST_TS: i64 = 1_600_000_000_123;

/// Decodes one of sarama's produce requests and returns its only partition's message set.
fn produced_set(name: &str, version: i16) -> Bytes {
    let req = produce::decode_request(&vector(name), version).unwrap();
    assert_eq!(req.acks, 1);
    assert_eq!(req.timeout_ms, 10_000);
    assert_eq!(req.topic_data.len(), 1);
    assert_eq!(req.topic_data[0].name.as_str(), "transactions");
    let partition = &req.topic_data[0].partition_data;
    assert_eq!(partition.len(), 1);
    assert_eq!(partition[0].index, 2);
    partition[0].records.clone().unwrap()
}

#[test]
fn sarama_message_sets_decode_with_every_codec() {
    for (name, version, magic, codec) in [
        ("produce_v0_none", 0, Magic::V0, Compression::None),
        ("produce_v0_gzip", 0, Magic::V0, Compression::Gzip),
        ("produce_v0_snappy", 0, Magic::V0, Compression::Snappy),
        ("produce_v2_none", 2, Magic::V1, Compression::None),
        ("produce_v2_gzip", 2, Magic::V1, Compression::Gzip),
        ("produce_v2_snappy", 2, Magic::V1, Compression::Snappy),
        ("produce_v2_lz4", 2, Magic::V1, Compression::Lz4),
    ] {
        let set = produced_set(name, version);
        assert_eq!(set[16], magic.value() as u8, "{name}");
        let decoded = decode_message_set(&set, SetSource::Produce, &Limits::default()).unwrap();
        assert_eq!(decoded.compression, codec, "{name}");
        assert_eq!(decoded.messages.len(), 4, "{name}");
        for (i, m) in decoded.messages.iter().enumerate() {
            assert_eq!(m.key.as_deref(), KEYS[i], "{name}");
            assert_eq!(m.value.as_deref(), VALUES[i], "{name}");
            let ts = (magic == Magic::V1).then_some(FIRST_TS + i as i64);
            assert_eq!(m.timestamp, ts, "{name}");
        }
    }
}

#[test]
fn sarama_produce_requests_up_convert_and_come_back_for_old_fetchers() {
    let now = 1_700_000_000_000;
    for (name, version) in [
        ("produce_v0_none", 0),
        ("produce_v0_gzip", 0),
        ("produce_v0_snappy", 0),
        ("produce_v2_none", 2),
        ("produce_v2_gzip", 2),
        ("produce_v2_snappy", 2),
        ("produce_v2_lz4", 2),
    ] {
        let mut req = produce::decode_request(&vector(name), version).unwrap();
        let rejected = produce::up_convert(&mut req, now, &UpConversion::default());
        assert!(rejected.is_empty(), "{name}: {rejected:?}");
        let batch = req.topic_data[0].partition_data[0].records.clone().unwrap();
        assert_eq!(batch[16], 2, "{name}: a v2 batch");

        // As the log would store it at offset 500, fetched by a v0 and a v2 fetcher from 501.
        let mut stored = batch.to_vec();
        stored[..8].copy_from_slice(&500i64.to_be_bytes());
        for magic in [Magic::V0, Magic::V1] {
            let set = from_v2_batches(&stored, magic, &DownConversion::from_offset(501)).unwrap();
            let back = decode_message_set(&set, SetSource::Fetch, &Limits::default()).unwrap();
            assert_eq!(back.messages.len(), 3, "{name}");
            for (j, m) in back.messages.iter().enumerate() {
                let i = j + 1;
                assert_eq!(m.offset, 500 + i as i64);
                assert_eq!(m.key.as_deref(), KEYS[i], "{name}");
                assert_eq!(m.value.as_deref(), VALUES[i], "{name}");
                let expected = match (magic, version) {
                    (Magic::V0, _) => None,
                    (Magic::V1, 0) => Some(now),
                    (Magic::V1, _) => Some(FIRST_TS + i as i64),
                };
                assert_eq!(m.timestamp, expected, "{name}");
            }
        }
    }
}

#[test]
fn sarama_fetch_requests_decode() {
    for version in [0i16, 2, 3] {
        let req =
            fetch::decode_request(&vector(&format!("fetch_request_v{version}")), version).unwrap();
        assert_eq!(req.replica_id.0, -1);
        assert_eq!(req.max_wait_ms, 250);
        assert_eq!(req.min_bytes, 1);
        let max = if version >= 3 { 1_048_576 } else { i32::MAX };
        assert_eq!(req.max_bytes, max);
        assert_eq!(req.topics.len(), 1);
        assert_eq!(req.topics[0].topic.as_str(), "transactions");
        let p = &req.topics[0].partitions[0];
        assert_eq!(
            (p.partition, p.fetch_offset, p.partition_max_bytes),
            (2, 12, 32768)
        );
    }
}

#[test]
fn sarama_list_offsets_v0_decodes() {
    let req = list_offsets::decode_request(&vector("list_offsets_request_v0")).unwrap();
    assert_eq!(req.replica_id, -1);
    assert_eq!(req.topics.len(), 1);
    let mut partitions = req.topics[0].partitions.clone();
    partitions.sort_by_key(|p| p.partition_index);
    assert_eq!(
        partitions,
        vec![
            OffsetsPartition {
                partition_index: 2,
                timestamp: LATEST,
                max_num_offsets: 1
            },
            OffsetsPartition {
                partition_index: 3,
                timestamp: EARLIEST,
                max_num_offsets: 1
            }
        ]
    );
}

#[test]
fn sarama_offset_commit_and_fetch_decode() {
    let v0 = offset_commit::decode_request(&vector("offset_commit_request_v0"), 0).unwrap();
    assert_eq!(v0.request.group_id.as_str(), "fraud");
    assert_eq!(v0.request.generation_id_or_member_epoch, -1);
    let p = &v0.request.topics[0].partitions[0];
    assert_eq!((p.partition_index, p.committed_offset), (2, 77));
    assert_eq!(p.committed_metadata.as_deref(), Some("meta"));

    let v1 = offset_commit::decode_request(&vector("offset_commit_request_v1"), 1).unwrap();
    assert_eq!(v1.request.generation_id_or_member_epoch, 4);
    assert_eq!(v1.request.member_id.as_str(), "member-1");
    assert_eq!(v1.commit_timestamps[0].timestamp, 1_600_000_000_000);
    assert_eq!(v1.request.topics[0].partitions[0].committed_offset, 77);

    let f = offset_fetch::decode_request(&vector("offset_fetch_request_v0"), 0).unwrap();
    assert_eq!(f.group_id.as_str(), "fraud");
    let topics = f.topics.unwrap();
    assert_eq!(topics[0].name.as_str(), "transactions");
    assert_eq!(topics[0].partition_indexes, vec![2]);
}

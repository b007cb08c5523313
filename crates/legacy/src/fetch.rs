//! Fetch (API key 1) versions 0–3, whose records are message sets: magic 0 for v0–v1, magic 0
//! or 1 for v2–v3 (we answer v2–v3 with magic 1, which carries timestamps).
//!
//! ```text
//! request v0-v2  = replica_id:i32 max_wait_ms:i32 min_bytes:i32
//!                  [topic:string [partition:i32 fetch_offset:i64 partition_max_bytes:i32]]
//! request v3     = replica_id:i32 max_wait_ms:i32 min_bytes:i32 max_bytes:i32 [topics as v0]
//! response v0    = [topic:string [partition:i32 error_code:i16 high_watermark:i64
//!                                 records:bytes]]
//! response v1-v3 = throttle_time_ms:i32 [topics as v0]
//! ```
//!
//! The request maps onto [`FetchRequest`] (defaults for the fields later versions added:
//! max_bytes `i32::MAX` before v3, isolation level read-uncommitted, no session, no leader
//! epoch). The broker's handler answers with v2 batches; [`down_convert`] turns each partition's
//! batches into a message set and [`encode_response`] writes the old layout.
//! Requests use header v1, responses header v0.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};

use crate::convert::{from_v2_batches, DownCompression, DownConversion};
use crate::message_set::Magic;
use crate::wire::{put_array_len, put_nullable_bytes, put_string, Reader};
use crate::{LegacyError, Limits};

const API: &str = "Fetch";

/// The message-set magic a fetcher of `version` understands, if `version` is a legacy one.
pub fn magic_for_version(version: i16) -> Option<Magic> {
    match version {
        0 | 1 => Some(Magic::V0),
        2 | 3 => Some(Magic::V1),
        _ => None,
    }
}

fn check_version(version: i16) -> Result<Magic, LegacyError> {
    magic_for_version(version).ok_or(LegacyError::UnsupportedVersion { api: API, version })
}

/// Decodes a Fetch v0–v3 request body (after the request header).
pub fn decode_request(body: &Bytes, version: i16) -> Result<FetchRequest, LegacyError> {
    check_version(version)?;
    let mut r = Reader::new(body, "fetch request");
    let replica_id = r.i32()?;
    let max_wait_ms = r.i32()?;
    let min_bytes = r.i32()?;
    let max_bytes = if version >= 3 { r.i32()? } else { i32::MAX };
    let mut topics = Vec::new();
    for _ in 0..r.array_len()? {
        let name = TopicName(r.string()?);
        let mut partitions = Vec::new();
        for _ in 0..r.array_len()? {
            let partition = r.i32()?;
            let fetch_offset = r.i64()?;
            let partition_max_bytes = r.i32()?;
            partitions.push(
                FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(fetch_offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(partition_max_bytes),
            );
        }
        topics.push(
            FetchTopic::default()
                .with_topic(name)
                .with_partitions(partitions),
        );
    }
    r.finish()?;
    Ok(FetchRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics))
}

/// A partition whose stored batches could not be down-converted: its answer now carries
/// CORRUPT_MESSAGE and no records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionFailure {
    /// The topic.
    pub topic: TopicName,
    /// The partition index.
    pub partition: i32,
    /// Why.
    pub error: LegacyError,
}

/// Replaces each partition's v2 batches in `response` with a message set of the magic
/// `version` calls for ([`from_v2_batches`]): records from the partition's fetch offset on, at
/// most its `partition_max_bytes` (at least one message), uncompressed unless `compression`
/// says otherwise. A partition that fails to convert gets CORRUPT_MESSAGE and empty records,
/// and is returned so it can be logged.
pub fn down_convert(
    response: &mut FetchResponse,
    request: &FetchRequest,
    version: i16,
    compression: DownCompression,
    limits: &Limits,
) -> Result<Vec<ConversionFailure>, LegacyError> {
    let magic = check_version(version)?;
    let mut failures = Vec::new();
    for topic in &mut response.responses {
        let asked = request.topics.iter().find(|t| t.topic == topic.topic);
        for p in &mut topic.partitions {
            let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) else {
                continue;
            };
            let fetch = asked.and_then(|t| {
                t.partitions
                    .iter()
                    .find(|q| q.partition == p.partition_index)
            });
            let options = DownConversion {
                first_offset: fetch.map_or(i64::MIN, |q| q.fetch_offset),
                max_bytes: fetch
                    .and_then(|q| usize::try_from(q.partition_max_bytes).ok())
                    .unwrap_or(usize::MAX),
                compression,
                limits: *limits,
            };
            match from_v2_batches(records, magic, &options) {
                Ok(set) => p.records = Some(set),
                Err(error) => {
                    p.error_code = error.kafka_error_code();
                    p.records = Some(Bytes::new());
                    failures.push(ConversionFailure {
                        topic: topic.topic.clone(),
                        partition: p.partition_index,
                        error,
                    });
                }
            }
        }
    }
    Ok(failures)
}

/// Encodes a Fetch v0–v3 response body (after the response header, which is v0). Records are
/// written as they are (call [`down_convert`] first); null records are written as an empty
/// set, since old clients (sarama among them) cannot read a null one.
pub fn encode_response(
    response: &FetchResponse,
    version: i16,
    out: &mut BytesMut,
) -> Result<(), LegacyError> {
    check_version(version)?;
    if version >= 1 {
        out.put_i32(response.throttle_time_ms);
    }
    put_array_len(out, response.responses.len())?;
    for topic in &response.responses {
        put_string(out, &topic.topic)?;
        put_array_len(out, topic.partitions.len())?;
        for p in &topic.partitions {
            out.put_i32(p.partition_index);
            out.put_i16(p.error_code);
            out.put_i64(p.high_watermark);
            put_nullable_bytes(out, Some(p.records.as_deref().unwrap_or_default()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{encode_batch, NewRecord};
    use crate::message_set::{decode_message_set, SetSource};
    use crate::Compression;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::StrBytes;

    fn topic(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    fn request_bytes(version: i16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(-1i32).to_be_bytes()); // replica
        b.extend_from_slice(&250i32.to_be_bytes()); // max wait
        b.extend_from_slice(&1i32.to_be_bytes()); // min bytes
        if version >= 3 {
            b.extend_from_slice(&1_000_000i32.to_be_bytes());
        }
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(b"tx");
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&4i32.to_be_bytes()); // partition
        b.extend_from_slice(&12i64.to_be_bytes()); // fetch offset
        b.extend_from_slice(&32768i32.to_be_bytes()); // partition max bytes
        b
    }

    #[test]
    fn requests_of_each_version_decode() {
        for version in 0..=3 {
            let req = decode_request(&Bytes::from(request_bytes(version)), version).unwrap();
            assert_eq!(req.replica_id, BrokerId(-1));
            assert_eq!(req.max_wait_ms, 250);
            assert_eq!(req.min_bytes, 1);
            assert_eq!(
                req.max_bytes,
                if version >= 3 { 1_000_000 } else { i32::MAX }
            );
            assert_eq!(req.isolation_level, 0);
            let p = &req.topics[0].partitions[0];
            assert_eq!(req.topics[0].topic, topic("tx"));
            assert_eq!(
                (p.partition, p.fetch_offset, p.partition_max_bytes),
                (4, 12, 32768)
            );
            assert_eq!(p.current_leader_epoch, -1);
        }
        // A v3 body read as v2 has four bytes too many; a v2 body read as v3 is misparsed
        // into an error rather than accepted.
        assert!(decode_request(&Bytes::from(request_bytes(3)), 2).is_err());
        assert!(decode_request(&Bytes::from(request_bytes(2)), 3).is_err());
        assert!(decode_request(&Bytes::from(request_bytes(0)), 4).is_err());
    }

    fn response_with(records: Option<Bytes>) -> FetchResponse {
        FetchResponse::default()
            .with_throttle_time_ms(5)
            .with_responses(vec![FetchableTopicResponse::default()
                .with_topic(topic("tx"))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(4)
                    .with_high_watermark(15)
                    .with_records(records)])])
    }

    #[test]
    fn response_layouts_and_null_records() {
        let resp = response_with(None);
        let v0: &[u8] = &[
            0, 0, 0, 1, // topics
            0, 2, b't', b'x', // name
            0, 0, 0, 1, // partitions
            0, 0, 0, 4, // partition
            0, 0, // error
            0, 0, 0, 0, 0, 0, 0, 15, // high watermark
            0, 0, 0, 0, // records: empty, never null
        ];
        let mut out = BytesMut::new();
        encode_response(&resp, 0, &mut out).unwrap();
        assert_eq!(&out[..], v0);
        for version in 1..=3 {
            let mut expected = vec![0, 0, 0, 5];
            expected.extend_from_slice(v0);
            let mut out = BytesMut::new();
            encode_response(&resp, version, &mut out).unwrap();
            assert_eq!(&out[..], &expected[..]);
        }
    }

    #[test]
    fn down_conversion_uses_the_fetch_offset_and_magic_of_the_version() {
        let recs: Vec<NewRecord<'_>> = (0..5)
            .map(|i| NewRecord {
                timestamp: 1000 + i,
                key: None,
                value: Some(b"v"),
            })
            .collect();
        let mut batch = encode_batch(&recs, Compression::None).unwrap().to_vec();
        batch[..8].copy_from_slice(&10i64.to_be_bytes());
        let req = decode_request(&Bytes::from(request_bytes(0)), 0).unwrap();
        for (version, magic_byte, ts) in [
            (0, 0, None),
            (1, 0, None),
            (2, 1, Some(1002)),
            (3, 1, Some(1002)),
        ] {
            let mut resp = response_with(Some(Bytes::from(batch.clone())));
            let failures = down_convert(
                &mut resp,
                &req,
                version,
                DownCompression::None,
                &Limits::default(),
            )
            .unwrap();
            assert!(failures.is_empty());
            let set = resp.responses[0].partitions[0].records.clone().unwrap();
            assert_eq!(set[16], magic_byte);
            let msgs = decode_message_set(&set, SetSource::Fetch, &Limits::default())
                .unwrap()
                .messages;
            let offsets: Vec<i64> = msgs.iter().map(|m| m.offset).collect();
            assert_eq!(offsets, vec![12, 13, 14]);
            assert_eq!(msgs[0].timestamp, ts);
        }
    }

    #[test]
    fn corrupt_stored_batches_become_corrupt_message() {
        let req = decode_request(&Bytes::from(request_bytes(0)), 0).unwrap();
        let mut junk = vec![0u8; 70];
        junk[8..12].copy_from_slice(&58i32.to_be_bytes());
        junk[16] = 2;
        let mut resp = response_with(Some(Bytes::from(junk)));
        let failures = down_convert(
            &mut resp,
            &req,
            1,
            DownCompression::None,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(failures.len(), 1);
        assert!(matches!(failures[0].error, LegacyError::BatchCrc { .. }));
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 2);
        assert_eq!(p.records.as_deref(), Some(&b""[..]));
    }
}

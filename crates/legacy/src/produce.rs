//! Produce (API key 0) versions 0–2, which carry message sets (magic 0 for v0–v1, 0 or 1 for v2).
//!
//! ```text
//! request v0-v2   = acks:i16 timeout_ms:i32
//!                   [topic:string [partition:i32 records:nullable_bytes]]
//! response v0     = [topic:string [partition:i32 error_code:i16 base_offset:i64]]
//! response v1     = v0 throttle_time_ms:i32
//! response v2     = [topic:string [partition:i32 error_code:i16 base_offset:i64
//!                                  log_append_time_ms:i64]] throttle_time_ms:i32
//! ```
//!
//! The request maps onto [`ProduceRequest`] with the records left as the raw message set;
//! [`up_convert`] then replaces each partition's message set with a v2 batch so the broker's
//! produce handler can run unchanged. Requests use header v1, responses header v0.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use crate::convert::{to_v2_batch_with, UpConversion};
use crate::wire::{put_array_len, put_string, Reader};
use crate::LegacyError;

const API: &str = "Produce";

fn check_version(version: i16) -> Result<(), LegacyError> {
    if (0..=2).contains(&version) {
        Ok(())
    } else {
        Err(LegacyError::UnsupportedVersion { api: API, version })
    }
}

/// Decodes a Produce v0–v2 request body (after the request header). Each partition's `records`
/// is the message set as sent; see [`up_convert`].
pub fn decode_request(body: &Bytes, version: i16) -> Result<ProduceRequest, LegacyError> {
    check_version(version)?;
    let mut r = Reader::new(body, "produce request");
    let acks = r.i16()?;
    let timeout_ms = r.i32()?;
    let mut topic_data = Vec::new();
    for _ in 0..r.array_len()? {
        let name = TopicName(r.string()?);
        let mut partition_data = Vec::new();
        for _ in 0..r.array_len()? {
            let index = r.i32()?;
            let records = r.nullable_bytes()?;
            partition_data.push(
                PartitionProduceData::default()
                    .with_index(index)
                    .with_records(records),
            );
        }
        topic_data.push(
            TopicProduceData::default()
                .with_name(name)
                .with_partition_data(partition_data),
        );
    }
    r.finish()?;
    Ok(ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topic_data))
}

/// A partition whose message set could not be converted: it was removed from the request and
/// must be answered with [`RejectedPartition::error_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedPartition {
    /// The topic.
    pub topic: TopicName,
    /// The partition index.
    pub partition: i32,
    /// Why.
    pub error: LegacyError,
}

impl RejectedPartition {
    /// The Kafka error code to answer with.
    pub fn error_code(&self) -> i16 {
        self.error.kafka_error_code()
    }
}

/// Replaces every partition's message set with one v2 batch ([`to_v2_batch_with`], timestamps
/// of v0 messages `now_ms`). Partitions whose set is invalid are removed from the request (a
/// topic left without partitions too) and returned, so one bad partition does not fail the
/// others — as Kafka answers CORRUPT_MESSAGE per partition. Partitions with null records are
/// left for the handler to refuse.
pub fn up_convert(
    request: &mut ProduceRequest,
    now_ms: i64,
    options: &UpConversion,
) -> Vec<RejectedPartition> {
    let mut rejected = Vec::new();
    for topic in &mut request.topic_data {
        topic.partition_data.retain_mut(|p| {
            let Some(set) = &p.records else {
                return true;
            };
            match to_v2_batch_with(set, now_ms, options) {
                Ok(batch) => {
                    p.records = Some(batch);
                    true
                }
                Err(error) => {
                    rejected.push(RejectedPartition {
                        topic: topic.name.clone(),
                        partition: p.index,
                        error,
                    });
                    false
                }
            }
        });
    }
    request.topic_data.retain(|t| !t.partition_data.is_empty());
    rejected
}

/// Adds an error answer for each rejected partition to `response` (base offset -1), under its
/// topic's entry, creating the entry if the handler had none.
pub fn add_rejections(response: &mut ProduceResponse, rejected: &[RejectedPartition]) {
    for r in rejected {
        let answer = PartitionProduceResponse::default()
            .with_index(r.partition)
            .with_error_code(r.error_code())
            .with_base_offset(-1)
            .with_log_append_time_ms(-1);
        match response.responses.iter_mut().find(|t| t.name == r.topic) {
            Some(t) => t.partition_responses.push(answer),
            None => response.responses.push(
                TopicProduceResponse::default()
                    .with_name(r.topic.clone())
                    .with_partition_responses(vec![answer]),
            ),
        }
    }
}

/// Encodes a Produce v0–v2 response body (after the response header, which is v0:
/// the correlation id alone).
pub fn encode_response(
    response: &ProduceResponse,
    version: i16,
    out: &mut BytesMut,
) -> Result<(), LegacyError> {
    check_version(version)?;
    put_array_len(out, response.responses.len())?;
    for topic in &response.responses {
        put_string(out, &topic.name)?;
        put_array_len(out, topic.partition_responses.len())?;
        for p in &topic.partition_responses {
            out.put_i32(p.index);
            out.put_i16(p.error_code);
            out.put_i64(p.base_offset);
            if version >= 2 {
                out.put_i64(p.log_append_time_ms);
            }
        }
    }
    if version >= 1 {
        out.put_i32(response.throttle_time_ms);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message_set::{encode_message_set, Magic, Message, TimestampType};
    use crate::Compression;
    use kafka_protocol::protocol::StrBytes;

    fn topic(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    fn request_bytes(set: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1i16.to_be_bytes()); // acks
        b.extend_from_slice(&1500i32.to_be_bytes()); // timeout
        b.extend_from_slice(&1i32.to_be_bytes()); // one topic
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(b"txn");
        b.extend_from_slice(&2i32.to_be_bytes()); // two partitions
        b.extend_from_slice(&0i32.to_be_bytes()); // partition 0
        b.extend_from_slice(&(set.len() as i32).to_be_bytes());
        b.extend_from_slice(set);
        b.extend_from_slice(&1i32.to_be_bytes()); // partition 1
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(b"junk");
        b
    }

    #[test]
    fn request_decodes_to_the_v3_struct() {
        let set = encode_message_set(
            &[Message {
                offset: 0,
                timestamp: None,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: Some(Bytes::from_static(b"hello")),
            }],
            Magic::V0,
            Compression::None,
        )
        .unwrap();
        let body = Bytes::from(request_bytes(&set));
        for version in 0..=2 {
            let req = decode_request(&body, version).unwrap();
            assert_eq!(req.acks, 1);
            assert_eq!(req.timeout_ms, 1500);
            assert_eq!(req.transactional_id, None);
            assert_eq!(req.topic_data.len(), 1);
            assert_eq!(req.topic_data[0].name, topic("txn"));
            let parts = &req.topic_data[0].partition_data;
            assert_eq!(parts[0].index, 0);
            assert_eq!(parts[0].records.as_deref(), Some(&set[..]));
            assert_eq!(parts[1].records.as_deref(), Some(&b"junk"[..]));
        }
        assert_eq!(
            decode_request(&body, 3),
            Err(LegacyError::UnsupportedVersion {
                api: "Produce",
                version: 3
            })
        );
        // Trailing bytes and truncation are errors.
        let mut long = request_bytes(&set);
        long.push(0);
        assert!(matches!(
            decode_request(&Bytes::from(long), 0),
            Err(LegacyError::TrailingBytes { count: 1, .. })
        ));
        let short = Bytes::from(request_bytes(&set)).slice(..25);
        assert!(matches!(
            decode_request(&short, 0),
            Err(LegacyError::Truncated { .. })
        ));
    }

    #[test]
    fn up_convert_rejects_bad_partitions_only() {
        let set = encode_message_set(
            &[Message {
                offset: 0,
                timestamp: None,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: Some(Bytes::from_static(b"hello")),
            }],
            Magic::V0,
            Compression::Gzip,
        )
        .unwrap();
        let mut req = decode_request(&Bytes::from(request_bytes(&set)), 0).unwrap();
        let rejected = up_convert(&mut req, 42, &UpConversion::default());
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].partition, 1);
        assert_eq!(rejected[0].error_code(), 2);
        let parts = &req.topic_data[0].partition_data;
        assert_eq!(parts.len(), 1);
        let batch = parts[0].records.clone().unwrap();
        assert_eq!(batch[16], 2); // magic 2

        let mut resp =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(topic("txn"))
                .with_partition_responses(vec![PartitionProduceResponse::default()
                    .with_index(0)
                    .with_base_offset(7)])]);
        add_rejections(&mut resp, &rejected);
        let parts = &resp.responses[0].partition_responses;
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[1].index, parts[1].error_code), (1, 2));
    }

    #[test]
    fn response_layouts_per_version() {
        let resp = ProduceResponse::default()
            .with_throttle_time_ms(9)
            .with_responses(vec![TopicProduceResponse::default()
                .with_name(topic("t"))
                .with_partition_responses(vec![PartitionProduceResponse::default()
                    .with_index(3)
                    .with_error_code(0)
                    .with_base_offset(0x0102)
                    .with_log_append_time_ms(-1)])]);
        let v0: &[u8] = &[
            0, 0, 0, 1, // topics
            0, 1, b't', // name
            0, 0, 0, 1, // partitions
            0, 0, 0, 3, // partition
            0, 0, // error
            0, 0, 0, 0, 0, 0, 1, 2, // base offset
        ];
        let mut out = BytesMut::new();
        encode_response(&resp, 0, &mut out).unwrap();
        assert_eq!(&out[..], v0);
        let mut v1 = v0.to_vec();
        v1.extend_from_slice(&[0, 0, 0, 9]);
        let mut out = BytesMut::new();
        encode_response(&resp, 1, &mut out).unwrap();
        assert_eq!(&out[..], &v1[..]);
        let mut v2 = v0.to_vec();
        v2.extend_from_slice(&[0xff; 8]);
        v2.extend_from_slice(&[0, 0, 0, 9]);
        let mut out = BytesMut::new();
        encode_response(&resp, 2, &mut out).unwrap();
        assert_eq!(&out[..], &v2[..]);
    }
}

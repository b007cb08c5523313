//! OffsetFetch (API key 9) version 0 (and version 1, whose layout is the same: v0 read offsets
//! from ZooKeeper and v1 from Kafka, a difference a single store does not have).
//!
//! ```text
//! request v0-v1  = group_id:string [topic:string [partition:i32]]
//! response v0-v1 = [topic:string [partition:i32 offset:i64 metadata:nullable_string
//!                                 error_code:i16]]
//! ```
//!
//! These versions have no top-level error code: when the answer has one (coordinator not
//! available, …), every partition carries it, as Kafka's v0/v1 responses do —
//! [`error_response`] lists the requested partitions for that case. A partition without a
//! committed offset answers offset -1, empty metadata and no error. Requests use header v1,
//! responses header v0.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use crate::wire::{put_array_len, put_nullable_string, put_string, Reader};
use crate::LegacyError;

const API: &str = "OffsetFetch";

fn check_version(version: i16) -> Result<(), LegacyError> {
    if (0..=1).contains(&version) {
        Ok(())
    } else {
        Err(LegacyError::UnsupportedVersion { api: API, version })
    }
}

/// Decodes an OffsetFetch v0 or v1 request body (after the request header).
pub fn decode_request(body: &Bytes, version: i16) -> Result<OffsetFetchRequest, LegacyError> {
    check_version(version)?;
    let mut r = Reader::new(body, "offset fetch request");
    let group_id = GroupId(r.string()?);
    let mut topics = Vec::new();
    for _ in 0..r.array_len()? {
        let name = TopicName(r.string()?);
        let mut partition_indexes = Vec::new();
        for _ in 0..r.array_len()? {
            partition_indexes.push(r.i32()?);
        }
        topics.push(
            OffsetFetchRequestTopic::default()
                .with_name(name)
                .with_partition_indexes(partition_indexes),
        );
    }
    r.finish()?;
    Ok(OffsetFetchRequest::default()
        .with_group_id(group_id)
        .with_topics(Some(topics))
        .with_require_stable(false))
}

/// The response to `request` when the whole request failed with `error_code`: every requested
/// partition carries it.
pub fn error_response(request: &OffsetFetchRequest, error_code: i16) -> OffsetFetchResponse {
    let topics = request
        .topics
        .iter()
        .flatten()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(-1)
                                .with_metadata(None)
                                .with_error_code(error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_error_code(error_code)
        .with_topics(topics)
}

/// Encodes an OffsetFetch v0 or v1 response body (after the response header, v0). A top-level
/// error is written into every partition that has none of its own.
pub fn encode_response(
    response: &OffsetFetchResponse,
    version: i16,
    out: &mut BytesMut,
) -> Result<(), LegacyError> {
    check_version(version)?;
    put_array_len(out, response.topics.len())?;
    for t in &response.topics {
        put_string(out, &t.name)?;
        put_array_len(out, t.partitions.len())?;
        for p in &t.partitions {
            out.put_i32(p.partition_index);
            out.put_i64(p.committed_offset);
            put_nullable_string(out, p.metadata.as_deref())?;
            out.put_i16(if p.error_code == 0 {
                response.error_code
            } else {
                p.error_code
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = &[
        0, 1, b'g', // group
        0, 0, 0, 1, // topics
        0, 1, b't', // name
        0, 0, 0, 2, // partitions
        0, 0, 0, 0, //
        0, 0, 0, 7, //
    ];

    #[test]
    fn request_decodes() {
        for version in 0..=1 {
            let req = decode_request(&Bytes::from_static(REQUEST), version).unwrap();
            assert_eq!(req.group_id.as_str(), "g");
            let topics = req.topics.unwrap();
            assert_eq!(topics[0].name.as_str(), "t");
            assert_eq!(topics[0].partition_indexes, vec![0, 7]);
        }
        assert!(decode_request(&Bytes::from_static(REQUEST), 2).is_err());
        assert!(decode_request(&Bytes::from_static(&REQUEST[..REQUEST.len() - 2]), 0).is_err());
    }

    #[test]
    fn response_layout_and_top_level_errors() {
        let req = decode_request(&Bytes::from_static(REQUEST), 0).unwrap();
        let ok =
            OffsetFetchResponse::default().with_topics(vec![OffsetFetchResponseTopic::default()
                .with_name(TopicName(
                    kafka_protocol::protocol::StrBytes::from_static_str("t"),
                ))
                .with_partitions(vec![OffsetFetchResponsePartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)
                    .with_metadata(Some(
                        kafka_protocol::protocol::StrBytes::from_static_str("m"),
                    ))])]);
        let mut out = BytesMut::new();
        encode_response(&ok, 0, &mut out).unwrap();
        assert_eq!(
            &out[..],
            &[
                0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, // topic t, one partition
                0, 0, 0, 0, // partition 0
                0, 0, 0, 0, 0, 0, 0, 42, // offset
                0, 1, b'm', // metadata
                0, 0, // error
            ]
        );
        // COORDINATOR_NOT_AVAILABLE (15) on every requested partition.
        let failed = error_response(&req, 15);
        let mut out = BytesMut::new();
        encode_response(&failed, 1, &mut out).unwrap();
        let partition = |p: u8| {
            [
                0, 0, 0, p, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 15,
            ]
        };
        let mut expected = vec![0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2];
        expected.extend_from_slice(&partition(0));
        expected.extend_from_slice(&partition(7));
        assert_eq!(&out[..], &expected[..]);
    }
}

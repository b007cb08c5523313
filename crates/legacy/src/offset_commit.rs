//! OffsetCommit (API key 8) versions 0 and 1.
//!
//! ```text
//! request v0     = group_id:string
//!                  [topic:string [partition:i32 offset:i64 metadata:nullable_string]]
//! request v1     = group_id:string generation_id:i32 member_id:string
//!                  [topic:string [partition:i32 offset:i64 commit_timestamp:i64
//!                                 metadata:nullable_string]]
//! response v0-v1 = [topic:string [partition:i32 error_code:i16]]
//! ```
//!
//! The request maps onto [`OffsetCommitRequest`] as v2 would carry it: v0 has no group
//! membership, so generation -1 and an empty member id (the "standalone" commit a coordinator
//! accepts for a group with no members); retention is -1 (the broker's default). v1's per-partition
//! commit timestamp has no place in later versions and is returned beside the request
//! ([`CommitTimestamp`]); Kafka used it, when not -1, as the commit time from which the offset's
//! retention is counted. Requests use header v1, responses header v0.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::wire::{put_array_len, put_string, Reader};
use crate::LegacyError;

const API: &str = "OffsetCommit";

/// A decoded OffsetCommit v0 or v1 request.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyOffsetCommit {
    /// The request, as the v2+ structure carries it.
    pub request: OffsetCommitRequest,
    /// v1 only: each partition's commit timestamp (-1: now).
    pub commit_timestamps: Vec<CommitTimestamp>,
}

/// A v1 partition's commit timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitTimestamp {
    /// The topic.
    pub topic: TopicName,
    /// The partition index.
    pub partition_index: i32,
    /// The commit time in milliseconds, or -1 for the time the broker handles it.
    pub timestamp: i64,
}

/// Decodes an OffsetCommit v0 or v1 request body (after the request header).
pub fn decode_request(body: &Bytes, version: i16) -> Result<LegacyOffsetCommit, LegacyError> {
    if !(0..=1).contains(&version) {
        return Err(LegacyError::UnsupportedVersion { api: API, version });
    }
    let mut r = Reader::new(body, "offset commit request");
    let group_id = GroupId(r.string()?);
    let (generation, member_id) = if version >= 1 {
        (r.i32()?, r.string()?)
    } else {
        (-1, StrBytes::default())
    };
    let mut topics = Vec::new();
    let mut commit_timestamps = Vec::new();
    for _ in 0..r.array_len()? {
        let name = TopicName(r.string()?);
        let mut partitions = Vec::new();
        for _ in 0..r.array_len()? {
            let partition_index = r.i32()?;
            let offset = r.i64()?;
            if version >= 1 {
                commit_timestamps.push(CommitTimestamp {
                    topic: name.clone(),
                    partition_index,
                    timestamp: r.i64()?,
                });
            }
            let metadata = r.nullable_string()?;
            partitions.push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(partition_index)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(metadata),
            );
        }
        topics.push(
            OffsetCommitRequestTopic::default()
                .with_name(name)
                .with_partitions(partitions),
        );
    }
    r.finish()?;
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id)
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member_id)
        .with_group_instance_id(None)
        .with_retention_time_ms(-1)
        .with_topics(topics);
    Ok(LegacyOffsetCommit {
        request,
        commit_timestamps,
    })
}

/// Encodes an OffsetCommit v0 or v1 response body (after the response header, v0).
pub fn encode_response(
    response: &OffsetCommitResponse,
    version: i16,
    out: &mut BytesMut,
) -> Result<(), LegacyError> {
    if !(0..=1).contains(&version) {
        return Err(LegacyError::UnsupportedVersion { api: API, version });
    }
    put_array_len(out, response.topics.len())?;
    for t in &response.topics {
        put_string(out, &t.name)?;
        put_array_len(out, t.partitions.len())?;
        for p in &t.partitions {
            out.put_i32(p.partition_index);
            out.put_i16(p.error_code);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };

    fn body(version: i16) -> Vec<u8> {
        let mut b = vec![0, 2, b'g', b'1'];
        if version >= 1 {
            b.extend_from_slice(&3i32.to_be_bytes()); // generation
            b.extend_from_slice(&[0, 1, b'm']); // member
        }
        b.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1]);
        b.extend_from_slice(&2i32.to_be_bytes()); // partition
        b.extend_from_slice(&77i64.to_be_bytes()); // offset
        if version >= 1 {
            b.extend_from_slice(&1234i64.to_be_bytes()); // commit timestamp
        }
        b.extend_from_slice(&[0xff, 0xff]); // null metadata
        b
    }

    #[test]
    fn v0_and_v1_requests_decode() {
        let v0 = decode_request(&Bytes::from(body(0)), 0).unwrap();
        assert_eq!(v0.request.group_id.as_str(), "g1");
        assert_eq!(v0.request.generation_id_or_member_epoch, -1);
        assert_eq!(v0.request.member_id.as_str(), "");
        assert_eq!(v0.request.retention_time_ms, -1);
        let p = &v0.request.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.committed_offset), (2, 77));
        assert_eq!(p.committed_metadata, None);
        assert!(v0.commit_timestamps.is_empty());

        let v1 = decode_request(&Bytes::from(body(1)), 1).unwrap();
        assert_eq!(v1.request.generation_id_or_member_epoch, 3);
        assert_eq!(v1.request.member_id.as_str(), "m");
        assert_eq!(v1.commit_timestamps.len(), 1);
        assert_eq!(v1.commit_timestamps[0].timestamp, 1234);
        assert_eq!(v1.commit_timestamps[0].partition_index, 2);
        assert_eq!(v1.commit_timestamps[0].topic.as_str(), "t");

        assert!(decode_request(&Bytes::from(body(0)), 1).is_err());
        assert!(decode_request(&Bytes::from(body(1)), 0).is_err());
        assert!(decode_request(&Bytes::from(body(1)), 2).is_err());
    }

    #[test]
    fn response_layout() {
        let resp = OffsetCommitResponse::default()
            .with_throttle_time_ms(99)
            .with_topics(vec![OffsetCommitResponseTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![OffsetCommitResponsePartition::default()
                    .with_partition_index(2)
                    .with_error_code(25)])]);
        for version in 0..=1 {
            let mut out = BytesMut::new();
            encode_response(&resp, version, &mut out).unwrap();
            assert_eq!(
                &out[..],
                &[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 2, 0, 25]
            );
        }
    }
}

//! ListOffsets (API key 2) version 0: Kafka 0.8's "offsets before a time".
//!
//! ```text
//! request v0  = replica_id:i32
//!               [topic:string [partition:i32 timestamp:i64 max_num_offsets:i32]]
//! response v0 = [topic:string [partition:i32 error_code:i16 offsets:[i64]]]
//! ```
//!
//! v0 answers a list of offsets, newest first, rather than v1's single offset and timestamp.
//! Its semantics, from Kafka's `fetchOffsetsBefore`: the candidates are the base offset of every
//! log segment (with the segment's last-modified time) plus, if the active segment holds data,
//! the log end offset (with the current time);
//!
//! * `-1` (latest): up to `max_num_offsets` candidates from the newest, so `[high watermark]`
//!   for the usual `max_num_offsets = 1`;
//! * `-2` (earliest): `[log start offset]`;
//! * any other time `t`: up to `max_num_offsets` candidates whose time is at or before `t`,
//!   newest first — "a segment start from before `t`", a safe place to start reading.
//!
//! For an ordinary consumer (replica id -1) offsets above the high watermark are replaced by the
//! high watermark. Clients (sarama's `GetOffset`, Kafka's old `SimpleConsumer`) only ever ask
//! `-1` or `-2` with `max_num_offsets = 1`; [`ListOffsetsV0Response::from_v1`] answers those
//! exactly from the broker's v1 handler. For other times it answers the v1 offset (the first
//! record at or after `t`) when there is one; [`offsets_before`] implements the full old
//! semantics for a broker that can list its segments.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName};

use crate::wire::{put_array_len, put_string, Reader};
use crate::LegacyError;

/// Timestamp asking for the latest offset.
pub const LATEST: i64 = -1;
/// Timestamp asking for the earliest offset.
pub const EARLIEST: i64 = -2;

/// A ListOffsets v0 request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOffsetsV0Request {
    /// -1 for a consumer, a broker id for a follower.
    pub replica_id: i32,
    /// What is asked, per topic.
    pub topics: Vec<OffsetsTopic>,
}

/// The partitions asked of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetsTopic {
    /// Topic name.
    pub name: TopicName,
    /// Partitions.
    pub partitions: Vec<OffsetsPartition>,
}

/// One partition's question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OffsetsPartition {
    /// Partition index.
    pub partition_index: i32,
    /// [`LATEST`], [`EARLIEST`] or a time in milliseconds.
    pub timestamp: i64,
    /// At most this many offsets are answered.
    pub max_num_offsets: i32,
}

/// Decodes a ListOffsets v0 request body (after the request header, v1).
pub fn decode_request(body: &Bytes) -> Result<ListOffsetsV0Request, LegacyError> {
    let mut r = Reader::new(body, "list offsets request");
    let replica_id = r.i32()?;
    let mut topics = Vec::new();
    for _ in 0..r.array_len()? {
        let name = TopicName(r.string()?);
        let mut partitions = Vec::new();
        for _ in 0..r.array_len()? {
            partitions.push(OffsetsPartition {
                partition_index: r.i32()?,
                timestamp: r.i64()?,
                max_num_offsets: r.i32()?,
            });
        }
        topics.push(OffsetsTopic { name, partitions });
    }
    r.finish()?;
    Ok(ListOffsetsV0Request { replica_id, topics })
}

impl ListOffsetsV0Request {
    /// The same question as a v1 request (read-uncommitted), for the broker's handler.
    pub fn to_v1(&self) -> ListOffsetsRequest {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(self.replica_id))
            .with_isolation_level(0)
            .with_topics(
                self.topics
                    .iter()
                    .map(|t| {
                        ListOffsetsTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(p.timestamp)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    }
}

/// A ListOffsets v0 response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOffsetsV0Response {
    /// Answers per topic.
    pub topics: Vec<OffsetsTopicResponse>,
}

/// The answers for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetsTopicResponse {
    /// Topic name.
    pub name: TopicName,
    /// Partitions.
    pub partitions: Vec<OffsetsPartitionResponse>,
}

/// One partition's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetsPartitionResponse {
    /// Partition index.
    pub partition_index: i32,
    /// Kafka error code, 0 for none.
    pub error_code: i16,
    /// The offsets, newest first.
    pub offsets: Vec<i64>,
}

impl ListOffsetsV0Response {
    /// The v0 answer from the broker's answer to [`ListOffsetsV0Request::to_v1`]: in request
    /// order, `[offset]` when the v1 answer has an offset and `max_num_offsets` ≥ 1, `[]`
    /// otherwise (or on error). A partition missing from `v1` is answered
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub fn from_v1(request: &ListOffsetsV0Request, v1: &ListOffsetsResponse) -> Self {
        const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
        let topics = request
            .topics
            .iter()
            .map(|t| {
                let answered = v1.topics.iter().find(|a| a.name == t.name);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = answered.and_then(|a| {
                            a.partitions
                                .iter()
                                .find(|q| q.partition_index == p.partition_index)
                        });
                        match answer {
                            None => OffsetsPartitionResponse {
                                partition_index: p.partition_index,
                                error_code: UNKNOWN_TOPIC_OR_PARTITION,
                                offsets: Vec::new(),
                            },
                            Some(a) => OffsetsPartitionResponse {
                                partition_index: p.partition_index,
                                error_code: a.error_code,
                                offsets: if a.error_code == 0
                                    && a.offset >= 0
                                    && p.max_num_offsets >= 1
                                {
                                    vec![a.offset]
                                } else {
                                    Vec::new()
                                },
                            },
                        }
                    })
                    .collect();
                OffsetsTopicResponse {
                    name: t.name.clone(),
                    partitions,
                }
            })
            .collect();
        ListOffsetsV0Response { topics }
    }

    /// Encodes the response body (after the response header, v0).
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), LegacyError> {
        put_array_len(out, self.topics.len())?;
        for t in &self.topics {
            put_string(out, &t.name)?;
            put_array_len(out, t.partitions.len())?;
            for p in &t.partitions {
                out.put_i32(p.partition_index);
                out.put_i16(p.error_code);
                put_array_len(out, p.offsets.len())?;
                for o in &p.offsets {
                    out.put_i64(*o);
                }
            }
        }
        Ok(())
    }
}

/// A log segment, as [`offsets_before`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentTime {
    /// The segment's base offset.
    pub base_offset: i64,
    /// When the segment was last written to, in milliseconds (Kafka used the file's mtime;
    /// the largest timestamp the segment holds is a fine stand-in).
    pub last_modified_ms: i64,
}

/// What [`offsets_before`] needs to know of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The log start offset.
    pub log_start_offset: i64,
    /// The log end offset (next offset to be written).
    pub log_end_offset: i64,
    /// The high watermark.
    pub high_watermark: i64,
    /// The segments, oldest first; the last is the active one.
    pub segments: Vec<SegmentTime>,
    /// The current time in milliseconds.
    pub now_ms: i64,
}

/// Kafka 0.8's answer to "at most `max_num_offsets` offsets before `timestamp`", newest first
/// (see the module documentation). `from_consumer` is true for replica id -1: offsets above the
/// high watermark are then replaced by it.
pub fn offsets_before(
    partition: &PartitionOffsets,
    timestamp: i64,
    max_num_offsets: i32,
    from_consumer: bool,
) -> Vec<i64> {
    let Ok(max) = usize::try_from(max_num_offsets) else {
        return Vec::new();
    };
    // A log that lists no segment is taken as one segment starting at the log start offset.
    let whole_log = [SegmentTime {
        base_offset: partition.log_start_offset,
        last_modified_ms: partition.now_ms,
    }];
    let segments: &[SegmentTime] = if partition.segments.is_empty() {
        &whole_log
    } else {
        &partition.segments
    };
    let mut candidates: Vec<(i64, i64)> = segments
        .iter()
        .map(|s| {
            (
                s.base_offset.max(partition.log_start_offset),
                s.last_modified_ms,
            )
        })
        .collect();
    let active_has_data = segments
        .last()
        .is_some_and(|s| partition.log_end_offset > s.base_offset);
    if active_has_data {
        candidates.push((partition.log_end_offset, partition.now_ms));
    }
    // Index of the newest candidate to answer; everything older follows.
    let start = match timestamp {
        LATEST => candidates.len().checked_sub(1),
        EARLIEST => (!candidates.is_empty()).then_some(0),
        t => candidates.iter().rposition(|(_, time)| *time <= t),
    };
    let Some(start) = start else {
        return Vec::new();
    };
    let mut offsets: Vec<i64> = candidates
        .get(..=start)
        .unwrap_or_default()
        .iter()
        .rev()
        .take(max)
        .map(|(offset, _)| *offset)
        .collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    if from_consumer && offsets.iter().any(|o| *o > partition.high_watermark) {
        offsets.retain(|o| *o <= partition.high_watermark);
        offsets.insert(0, partition.high_watermark);
        offsets.truncate(max);
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use kafka_protocol::protocol::StrBytes;

    fn topic(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    const REQUEST: &[u8] = &[
        0xff, 0xff, 0xff, 0xff, // replica -1
        0, 0, 0, 1, // topics
        0, 1, b't', // name
        0, 0, 0, 2, // partitions
        0, 0, 0, 0, // partition 0
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // latest
        0, 0, 0, 1, // max 1
        0, 0, 0, 1, // partition 1
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, // earliest
        0, 0, 0, 1, // max 1
    ];

    #[test]
    fn request_decodes_and_maps_to_v1() {
        let req = decode_request(&Bytes::from_static(REQUEST)).unwrap();
        assert_eq!(req.replica_id, -1);
        assert_eq!(
            req.topics[0].partitions,
            vec![
                OffsetsPartition {
                    partition_index: 0,
                    timestamp: LATEST,
                    max_num_offsets: 1
                },
                OffsetsPartition {
                    partition_index: 1,
                    timestamp: EARLIEST,
                    max_num_offsets: 1
                }
            ]
        );
        let v1 = req.to_v1();
        assert_eq!(v1.replica_id, BrokerId(-1));
        assert_eq!(v1.topics[0].name, topic("t"));
        assert_eq!(v1.topics[0].partitions[1].timestamp, EARLIEST);
        assert!(decode_request(&Bytes::from_static(&REQUEST[..REQUEST.len() - 1])).is_err());
    }

    #[test]
    fn response_from_v1_and_its_layout() {
        let req = decode_request(&Bytes::from_static(REQUEST)).unwrap();
        let v1 =
            ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(1)
                        .with_offset(3),
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(0)
                        .with_offset(0x10),
                ])]);
        let resp = ListOffsetsV0Response::from_v1(&req, &v1);
        let mut out = BytesMut::new();
        resp.encode(&mut out).unwrap();
        let expected: &[u8] = &[
            0, 0, 0, 1, // topics
            0, 1, b't', //
            0, 0, 0, 2, // partitions
            0, 0, 0, 0, 0, 0, // partition 0, no error
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10, // [16]
            0, 0, 0, 1, 0, 0, // partition 1, no error
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, // [3]
        ];
        assert_eq!(&out[..], expected);
        // An unanswered partition is UNKNOWN_TOPIC_OR_PARTITION.
        let resp = ListOffsetsV0Response::from_v1(&req, &ListOffsetsResponse::default());
        assert_eq!(resp.topics[0].partitions[0].error_code, 3);
        assert!(resp.topics[0].partitions[0].offsets.is_empty());
    }

    fn partition() -> PartitionOffsets {
        PartitionOffsets {
            log_start_offset: 5,
            log_end_offset: 300,
            high_watermark: 290,
            segments: vec![
                SegmentTime {
                    base_offset: 0,
                    last_modified_ms: 1000,
                },
                SegmentTime {
                    base_offset: 100,
                    last_modified_ms: 2000,
                },
                SegmentTime {
                    base_offset: 200,
                    last_modified_ms: 3000,
                },
            ],
            now_ms: 4000,
        }
    }

    #[test]
    fn offsets_before_follows_kafka_0_8() {
        let p = partition();
        assert_eq!(offsets_before(&p, LATEST, 1, true), vec![290]);
        assert_eq!(offsets_before(&p, LATEST, 1, false), vec![300]);
        assert_eq!(
            offsets_before(&p, LATEST, 10, false),
            vec![300, 200, 100, 5]
        );
        assert_eq!(offsets_before(&p, LATEST, 10, true), vec![290, 200, 100, 5]);
        assert_eq!(offsets_before(&p, EARLIEST, 1, true), vec![5]);
        assert_eq!(offsets_before(&p, EARLIEST, 5, true), vec![5]);
        assert_eq!(offsets_before(&p, 2500, 5, true), vec![100, 5]);
        assert_eq!(offsets_before(&p, 2000, 1, true), vec![100]);
        assert_eq!(offsets_before(&p, 999, 5, true), Vec::<i64>::new());
        assert_eq!(offsets_before(&p, 5000, 2, true), vec![290, 200]);
        assert_eq!(offsets_before(&p, LATEST, 0, true), Vec::<i64>::new());
        assert_eq!(offsets_before(&p, LATEST, -1, true), Vec::<i64>::new());
        // An empty active segment adds no log-end candidate.
        let mut empty_tail = partition();
        empty_tail.log_end_offset = 200;
        empty_tail.high_watermark = 200;
        assert_eq!(offsets_before(&empty_tail, LATEST, 2, true), vec![200, 100]);
        // A log that lists no segment still answers latest and earliest.
        let none = PartitionOffsets {
            segments: Vec::new(),
            ..partition()
        };
        assert_eq!(offsets_before(&none, LATEST, 1, true), vec![290]);
        assert_eq!(offsets_before(&none, LATEST, 1, false), vec![300]);
        assert_eq!(offsets_before(&none, EARLIEST, 1, false), vec![5]);
    }
}

//! Fuzz target bodies: one function per cargo-fuzz target in `fuzz/fuzz_targets/`, each taking
//! arbitrary bytes.
//!
//! The targets in `fuzz/` are one-line wrappers around these, and `tests/fuzz_corpus.rs` replays
//! every committed corpus and regression file through them on the stable toolchain, so a crash
//! once found stays a test forever. Each body panics only when an invariant breaks — a decoder
//! that panics or aborts, or two of our own functions that disagree about the same bytes —
//! never because the input is invalid.

use std::fmt::Debug;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use veritas_broker::frame::{parse_header, read_frame, HeaderPrefix};
use veritas_detect::shared::SharedTable;
use veritas_detect::{Engine, EngineConfig};
use veritas_events::{decode_event, encode_event, RecordContext};
use veritas_log::batch::builder::{decode_records, BatchBuilder, Record};
use veritas_log::batch::{compute_crc, validate_batch, BatchIter, Compression};

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the file names in `fuzz/fuzz_targets/` and the corpus folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("request_frame", request_frame),
    ("record_batch", record_batch),
    ("legacy_message_set", legacy_message_set),
    ("legacy_request", legacy_request),
    ("log_recover", log_recover),
    ("event_json", event_json),
    ("detector_state", detector_state),
];

/// Largest frame the target's framing accepts (the broker's limit is configurable; a small one
/// keeps the fuzzer's allocations small, the check is the same).
const FRAME_LIMIT: usize = 1 << 20;

/// Runs a future that never waits (reading from a byte slice) to completion.
fn ready<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// The broker's request path up to the handler: `data` is a byte stream from a client. It is
/// cut into frames with the broker's own `read_frame`; each frame (and `data` itself, taken as
/// one frame payload) goes through `HeaderPrefix::peek`, the supported-version check and
/// `parse_header`, then the kafka-protocol decoder of that API and version — every API in
/// `veritas_broker::api::SUPPORTED`. A request that decodes must re-encode and decode to an
/// equal request (what the broker reads is what the client meant).
pub fn request_frame(data: &[u8]) {
    let mut reader = data;
    let mut frames = vec![Bytes::copy_from_slice(data)];
    for _ in 0..16 {
        match ready(read_frame(&mut reader, FRAME_LIMIT)) {
            Some(Ok(frame)) => {
                assert!(
                    (8..=FRAME_LIMIT).contains(&frame.len()),
                    "read_frame returned {} bytes",
                    frame.len()
                );
                frames.push(frame);
            }
            Some(Err(_)) => break,
            None => panic!("read_frame waited on an in-memory reader"),
        }
    }
    for frame in frames {
        request_payload(frame);
    }
}

fn request_payload(frame: Bytes) {
    let Some(prefix) = HeaderPrefix::peek(&frame) else {
        return;
    };
    let Ok(api) = ApiKey::try_from(prefix.api_key) else {
        return;
    };
    let Some(range) = veritas_broker::api::supported(api) else {
        return;
    };
    let version = prefix.api_version;
    let legacy = LEGACY_VERSIONS
        .iter()
        .any(|(k, lo, hi, _)| *k == api && (*lo..=*hi).contains(&version));
    if !legacy && (version < range.min || version > range.max) {
        return;
    }
    let mut body = frame.clone();
    let Ok(header) = parse_header(api, &mut body) else {
        return;
    };
    assert_eq!(header.request_api_key, prefix.api_key, "header api key");
    assert_eq!(header.request_api_version, version, "header api version");
    assert_eq!(
        header.correlation_id, prefix.correlation_id,
        "correlation id"
    );
    decode_request(api, version, body);
}

/// The request versions from before Kafka 0.11, which `kafka-protocol` does not decode and the
/// broker serves through `veritas-legacy`: (api, lowest, highest, selector of
/// `veritas_legacy::fuzz::fuzz_request`).
pub const LEGACY_VERSIONS: &[(ApiKey, i16, i16, u8)] = &[
    (ApiKey::Produce, 0, 2, 0),
    (ApiKey::Fetch, 0, 3, 1),
    (ApiKey::ListOffsets, 0, 0, 2),
    (ApiKey::OffsetCommit, 0, 1, 3),
    (ApiKey::OffsetFetch, 0, 0, 4),
];

/// Calls `$m!` with every request the broker advertises, as `ApiKey variant => message type`:
/// one list for the decoder target and its seed corpus, so a new API is added to both.
macro_rules! for_each_request {
    ($m:ident) => {
        $m!(
            Produce => ProduceRequest,
            Fetch => FetchRequest,
            ListOffsets => ListOffsetsRequest,
            Metadata => MetadataRequest,
            ApiVersions => ApiVersionsRequest,
            CreateTopics => CreateTopicsRequest,
            DeleteTopics => DeleteTopicsRequest,
            DeleteRecords => DeleteRecordsRequest,
            InitProducerId => InitProducerIdRequest,
            OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
            DescribeConfigs => DescribeConfigsRequest,
            AlterConfigs => AlterConfigsRequest,
            CreatePartitions => CreatePartitionsRequest,
            IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
            DescribeCluster => DescribeClusterRequest,
            DescribeLogDirs => DescribeLogDirsRequest,
            ElectLeaders => ElectLeadersRequest,
            DescribeAcls => DescribeAclsRequest,
            CreateAcls => CreateAclsRequest,
            DeleteAcls => DeleteAclsRequest,
            OffsetCommit => OffsetCommitRequest,
            OffsetFetch => OffsetFetchRequest,
            FindCoordinator => FindCoordinatorRequest,
            JoinGroup => JoinGroupRequest,
            Heartbeat => HeartbeatRequest,
            LeaveGroup => LeaveGroupRequest,
            SyncGroup => SyncGroupRequest,
            DescribeGroups => DescribeGroupsRequest,
            ListGroups => ListGroupsRequest,
            DeleteGroups => DeleteGroupsRequest,
            OffsetDelete => OffsetDeleteRequest,
        )
    };
}

/// Decodes `body` as the request of `api` at `version` and checks the re-encoding round trip.
/// Legacy versions go to the `veritas-legacy` decoders instead.
pub fn decode_request(api: ApiKey, version: i16, body: Bytes) {
    if let Some(&(_, _, _, selector)) = LEGACY_VERSIONS
        .iter()
        .find(|(k, lo, hi, _)| *k == api && (*lo..=*hi).contains(&version))
    {
        let mut data = Vec::with_capacity(body.len() + 1);
        data.push(selector << 2 | (version as u8 & 0x03));
        data.extend_from_slice(&body);
        veritas_legacy::fuzz::fuzz_request(&data);
        return;
    }
    macro_rules! by_api {
        ($($key:ident => $ty:ty),* $(,)?) => {
            match api {
                $(ApiKey::$key => round_trip::<$ty>(body, version),)*
                _ => {}
            }
        };
    }
    for_each_request!(by_api);
}

fn round_trip<R: Decodable + Encodable + PartialEq + Debug>(mut body: Bytes, version: i16) {
    let Ok(req) = R::decode(&mut body, version) else {
        return;
    };
    // Unknown tagged fields are exempt: kafka-protocol 0.18 accepts tags out of order and tags
    // above i32::MAX (read back as negative), which its encoder cannot write back (found by
    // this target; `fuzz/regressions/request_frame/`). The broker ignores unknown tagged
    // fields and never re-encodes a request, so this is no broker bug.
    if has_unknown_tagged_fields(&req) {
        return;
    }
    let mut buf = BytesMut::new();
    if req.encode(&mut buf, version).is_err() {
        return; // a field this version cannot carry: the broker never re-encodes requests
    }
    let mut again = buf.freeze();
    match R::decode(&mut again, version) {
        Ok(back) => assert_eq!(back, req, "request changed through encode/decode"),
        Err(e) => panic!("a re-encoded request does not decode: {e}"),
    }
}

/// Whether a decoded message (or any structure in it) kept unknown tagged fields.
fn has_unknown_tagged_fields(m: &impl Debug) -> bool {
    let text = format!("{m:?}");
    text.match_indices("unknown_tagged_fields: {")
        .any(|(i, pat)| !text[i + pat.len()..].starts_with('}'))
}

/// Every request the broker advertises, at every version, as a complete frame payload (header
/// + default body): the seed corpus of [`request_frame`].
pub fn request_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (api, range) in veritas_broker::api::SUPPORTED {
        for version in range.min..=range.max {
            macro_rules! by_api {
                ($($key:ident => $ty:ty),* $(,)?) => {
                    match api {
                        $(ApiKey::$key => seed::<$ty>(*api, version),)*
                        _ => None,
                    }
                };
            }
            let frame = for_each_request!(by_api);
            if let Some(frame) = frame {
                out.push((format!("{api:?}-v{version}"), frame));
            }
        }
    }
    out
}

fn seed<R: Default + Encodable>(api: ApiKey, version: i16) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str(
            "seed",
        )));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .ok()?;
    R::default().encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

/// v2 record batches as the log and the broker see them: `validate_batch`, the validating
/// iterator, the log's record decoder, the record walker compaction uses and the
/// record-position decoder must agree on every batch, and a batch rebuilt from its decoded records decodes to the same records.
/// Then the same bytes are down-converted to magic 0 and 1 (`veritas_legacy`).
pub fn record_batch(data: &[u8]) {
    if let Ok(h) = validate_batch(data, data.len()) {
        let size = h.size();
        assert!(size <= data.len(), "header size past the buffer");
        assert_eq!(
            compute_crc(&data[..size]),
            h.crc,
            "CRC accepted but differs"
        );
        assert_eq!(
            i64::from(h.record_count),
            i64::from(h.last_offset_delta) + 1
        );
        let positions = veritas_broker::records::record_positions(&data[..size]);
        if h.compression() == Compression::None {
            if let Some(records) = decode_records(&data[..size]) {
                assert_eq!(records.len(), h.record_count as usize, "record count");
                for (r, off) in records.iter().zip(h.base_offset..) {
                    assert_eq!(r.offset, off, "record offsets are base + delta");
                }
                match &positions {
                    Ok(p) => assert_eq!(p.len(), records.len(), "broker and log record counts"),
                    Err(e) => panic!("the log decodes the records, the broker does not: {e}"),
                }
                // The record walker compaction uses sees the same keys and values.
                let section = veritas_log::records::records_section(&data[..size], &h);
                let walked = section.as_deref().map_err(Clone::clone).and_then(|s| {
                    veritas_log::records::parse_records(s, h.record_count).map(|rs| {
                        rs.iter()
                            .map(|r| (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec)))
                            .collect::<Vec<_>>()
                    })
                });
                match walked {
                    Ok(w) => assert!(
                        w.iter().eq(records
                            .iter()
                            .map(|r| (r.key.clone(), r.value.clone()))
                            .collect::<Vec<_>>()
                            .iter()),
                        "compaction's record walker disagrees"
                    ),
                    Err(e) => {
                        panic!("the test decoder reads the records, the walker does not: {e}")
                    }
                }
                let mut b = BatchBuilder::new(h.base_timestamp);
                for r in &records {
                    let mut rec = Record::new(r.key.clone(), r.value.clone());
                    for (k, v) in &r.headers {
                        rec = rec.with_header(k.clone(), v.clone());
                    }
                    b.push(rec);
                }
                let rebuilt = b.build();
                let back = decode_records(&rebuilt).unwrap_or_default();
                assert_eq!(back.len(), records.len(), "rebuilt batch record count");
                for (a, b) in records.iter().zip(&back) {
                    assert_eq!(
                        (&a.key, &a.value, &a.headers),
                        (&b.key, &b.value, &b.headers)
                    );
                }
            }
        }
    }
    let mut end = 0;
    for b in BatchIter::new(data) {
        let Ok(b) = b else { break };
        assert_eq!(b.position, end, "batches are contiguous");
        assert!(validate_batch(b.bytes, b.bytes.len()).is_ok());
        end = b.position + b.bytes.len();
    }
    veritas_legacy::fuzz::fuzz_v2_batches(data);
}

/// Legacy (magic 0/1) message sets: see `veritas_legacy::fuzz::fuzz_message_set`.
pub fn legacy_message_set(data: &[u8]) {
    veritas_legacy::fuzz::fuzz_message_set(data);
}

/// Legacy request bodies (Produce v0-2, Fetch v0-3, ListOffsets v0, OffsetCommit/Fetch v0-1):
/// see `veritas_legacy::fuzz::fuzz_request`.
pub fn legacy_request(data: &[u8]) {
    veritas_legacy::fuzz::fuzz_request(data);
}

/// Segment recovery from arbitrary bytes: see `veritas_log::fuzz_recover`.
pub fn log_recover(data: &[u8]) {
    veritas_log::fuzz_recover(data);
}

/// Event JSON: an event that decodes re-encodes to canonical JSON that decodes to the same
/// event, and that JSON decodes again to the same bytes (the canonical form is a fixed point).
pub fn event_json(data: &[u8]) {
    let ctx = RecordContext::new("bankaccount", 3, 42, 1_700_000_000_000);
    let Ok(tx) = decode_event(data, &ctx) else {
        return;
    };
    let json = encode_event(&tx);
    let back = match decode_event(&json, &ctx) {
        Ok(back) => back,
        Err(e) => panic!(
            "canonical JSON of a valid event does not decode: {e}: {}",
            String::from_utf8_lossy(&json)
        ),
    };
    // Numbers must come back bit for bit: `veritas-events` parses JSON floats correctly
    // rounded (serde_json's `float_roundtrip`). The default parser was off by one ulp for some
    // long mantissas or large exponents ("4.2e137" as an amount, a 40-digit longitude; both
    // found by this target and kept in fuzz/regressions/event_json/).
    assert_eq!(back, tx, "event changed through its canonical JSON");
    assert_eq!(encode_event(&back), json, "canonical JSON is not stable");
}

/// A transaction the detector target feeds to restored engines.
const PROBE_EVENT: &[u8] = br#"{"transaction_id":"probe-1","timestamp":"2025-01-15T10:00:00Z","card_number":"4111111111111111","amount":250.0,"merchant":"Probe","merchant_id":"m-probe","category":"electronics","channel":"online","country":"US"}"#;

/// The detector's state decoders: `data[0]` selects a merchant table checkpoint
/// (`SharedTable::restore`, when `data[0] % 3 == 2`), an engine snapshot (`Engine::restore`) or
/// a changelog (`apply_changelog`, records framed as `key len u8, key, value len u16 BE or
/// 0xffff for a tombstone, value`). Whatever is accepted must survive snapshot → restore →
/// snapshot unchanged, and the engine must then score an event without panicking.
pub fn detector_state(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cfg = EngineConfig::default();
    if mode % 3 == 2 {
        return merchant_table_checkpoint(&cfg, rest);
    }
    let mut engine = if mode & 1 == 0 {
        match Engine::restore(cfg.clone(), rest) {
            Ok(e) => e,
            Err(_) => return,
        }
    } else {
        let mut engine = Engine::new(cfg.clone());
        let mut cur = rest;
        while let Some((&klen, tail)) = cur.split_first() {
            let Some((key, tail)) = tail.split_at_checked(usize::from(klen)) else {
                break;
            };
            let Some((len, tail)) = tail.split_at_checked(2) else {
                break;
            };
            let len = u16::from_be_bytes([len[0], len[1]]);
            let (value, tail) = if len == u16::MAX {
                (None, tail)
            } else {
                let Some((v, t)) = tail.split_at_checked(usize::from(len)) else {
                    break;
                };
                (Some(v), t)
            };
            let _ = engine.apply_changelog(key, value);
            cur = tail;
        }
        engine
    };
    let snap = engine.snapshot();
    let restored = match Engine::restore(cfg.clone(), &snap) {
        Ok(e) => e,
        Err(e) => panic!("a snapshot of accepted state does not restore: {e}"),
    };
    assert_eq!(
        restored.snapshot(),
        snap,
        "snapshot changed through restore"
    );
    let ctx = RecordContext::new("bankaccount", 0, 0, -1);
    if let Ok(tx) = decode_event(PROBE_EVENT, &ctx) {
        let _features = engine.process(&tx);
        let _ = engine.drain_changelog();
        let _ = engine.snapshot();
    }
}

/// A merchant table checkpoint: whatever restores must survive checkpoint → restore →
/// checkpoint unchanged, then take an event and answer lookups without panicking (a corrupt
/// frontier far from the next boundary must not stall it either).
fn merchant_table_checkpoint(cfg: &EngineConfig, bytes: &[u8]) {
    let interval = cfg.shared_interval_ms();
    let Ok(mut table) = SharedTable::restore(cfg, interval, bytes) else {
        return;
    };
    let again = table.checkpoint();
    match SharedTable::restore(cfg, interval, &again) {
        Ok(t) => assert_eq!(t.checkpoint(), again, "checkpoint changed through restore"),
        Err(e) => panic!("a checkpoint of an accepted table does not restore: {e}"),
    }
    let ctx = RecordContext::new("bankaccount", 0, 0, -1);
    if let Ok(tx) = decode_event(PROBE_EVENT, &ctx) {
        let at = tx.timestamp.timestamp_millis();
        table.offer(0, 0, &tx);
        table.release(0);
        let _ = table.lookup(at);
        let _ = table.checkpoint();
    }
}

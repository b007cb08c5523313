//! The request versions from before Kafka 0.11, served through the `veritas-legacy` codecs:
//! Produce v0–2, Fetch v0–3, ListOffsets v0, OffsetCommit v0–1 and OffsetFetch v0.
//!
//! `kafka-protocol` does not decode these versions (Kafka 4.0 dropped them), yet old clients
//! still speak them — Go's sarama 1.22 with its default configuration (the Kafka 0.8.2
//! protocol) among them. Each is decoded by the legacy crate into the structure of the oldest
//! modern version, handed to the ordinary handler at that version, and its answer written
//! back in the old layout with response header v0 (the correlation id alone):
//!
//! | request | handled as | conversion |
//! |---|---|---|
//! | Produce v0–2 | Produce v3 | each message set (magic 0/1, any codec) becomes one uncompressed v2 batch: records are stored as v2 like everyone else's; v0 messages, which have no timestamp, get the receive time |
//! | Fetch v0–3 | Fetch v4 | the stored v2 batches become a message set of magic 0 (v0–1) or 1 (v2–3), uncompressed, from the fetch offset on, at most `partition_max_bytes` but always one whole message (as Kafka 3.x down-converts for old fetchers) |
//! | ListOffsets v0 | ListOffsets v1 | `[offset]` for each question (`-1` latest, `-2` earliest, or a time: the first record at or after it), `[]` when there is none |
//! | OffsetCommit v0–1 | OffsetCommit v2 | v0 has no membership (generation -1, empty member: a standalone commit); v1's per-partition commit timestamps are ignored, the broker's offset retention applies |
//! | OffsetFetch v0 | OffsetFetch v1 | the same layout; a top-level error is repeated in every partition |
//!
//! A topic whose `message.downconversion.enable` is false answers Fetch v0–3 with
//! UNSUPPORTED_VERSION for its partitions, as Kafka does.
//!
//! A partition whose message set is invalid is answered CORRUPT_MESSAGE (MESSAGE_TOO_LARGE for
//! a decompression bomb) and the rest of the request proceeds; a stored batch that cannot be
//! down-converted gives its partition CORRUPT_MESSAGE. A body that does not decode closes the
//! connection, as for any other version.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use veritas_legacy::convert::{DownCompression, UpConversion};
use veritas_legacy::{encode_response_frame, LegacyError, Limits};

use super::{fetch, list_offsets, offset_commit, offset_fetch, produce, ConnError, Ctx, Outcome};
use crate::cluster::now_ms;
use crate::frame::{EncodeError, FrameError};
use crate::server::Shared;

/// The header version of every legacy request: v1 (api key, version, correlation id, client id).
const REQUEST_HEADER_VERSION: i16 = 1;

/// The legacy versions of each API, served here rather than by `kafka-protocol`: the lowest
/// version the modern handler takes is the first after these.
pub const LEGACY: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 2),
    (ApiKey::Fetch, 0, 3),
    (ApiKey::ListOffsets, 0, 0),
    (ApiKey::OffsetCommit, 0, 1),
    (ApiKey::OffsetFetch, 0, 0),
];

/// Whether `version` of `api` is a legacy version served by this module.
pub fn serves(api: ApiKey, version: i16) -> bool {
    LEGACY
        .iter()
        .any(|&(k, min, max)| k == api && (min..=max).contains(&version))
}

/// The version of the modern handler a legacy request of `api` is run as.
fn modern_version(api: ApiKey) -> i16 {
    LEGACY
        .iter()
        .find(|(k, _, _)| *k == api)
        .map_or(0, |&(_, _, max)| max + 1)
}

/// Handles one legacy request frame (header included), appending the response frame, if any,
/// to `out`. Returns the error code to count the request under.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    api: ApiKey,
    version: i16,
    mut frame: Bytes,
    peer: std::net::SocketAddr,
    out: &mut BytesMut,
) -> Result<i16, ConnError> {
    let header = RequestHeader::decode(&mut frame, REQUEST_HEADER_VERSION)
        .map_err(|e| ConnError::Header(FrameError::BadHeader(e.to_string())))?;
    let ctx = Ctx {
        shared,
        header: &header,
        version: modern_version(api),
        peer,
    };
    let correlation_id = header.correlation_id;
    let bad_body = |e: LegacyError| ConnError::BadBody {
        api,
        version,
        reason: e.to_string(),
    };
    let body = frame;
    match api {
        ApiKey::Produce => {
            let mut req =
                veritas_legacy::produce::decode_request(&body, version).map_err(bad_body)?;
            let rejected =
                veritas_legacy::produce::up_convert(&mut req, now_ms(), &UpConversion::default());
            for r in &rejected {
                tracing::debug!(%peer, topic = %r.topic.0, partition = r.partition, error = %r.error,
                    "legacy produce: message set refused");
            }
            let acks = req.acks;
            let answered = produce::handle(&ctx, req).await;
            if acks == 0 {
                return Ok(0); // acks=0: no response at all, whatever happened
            }
            let mut resp = answered.unwrap_or_default();
            veritas_legacy::produce::add_rejections(&mut resp, &rejected);
            write(out, correlation_id, |o| {
                veritas_legacy::produce::encode_response(&resp, version, o)
            })?;
            Ok(resp.error_code())
        }
        ApiKey::Fetch => {
            let req = veritas_legacy::fetch::decode_request(&body, version).map_err(bad_body)?;
            let mut resp = fetch::handle(&ctx, req.clone()).await;
            refuse_down_conversion(shared, &mut resp);
            let failures = veritas_legacy::fetch::down_convert(
                &mut resp,
                &req,
                version,
                DownCompression::None,
                &Limits::default(),
            )
            .map_err(bad_body)?;
            for f in &failures {
                tracing::error!(%peer, topic = %f.topic.0, partition = f.partition, error = %f.error,
                    "legacy fetch: stored batches could not be down-converted");
            }
            write(out, correlation_id, |o| {
                veritas_legacy::fetch::encode_response(&resp, version, o)
            })?;
            Ok(resp.error_code())
        }
        ApiKey::ListOffsets => {
            let req = veritas_legacy::list_offsets::decode_request(&body).map_err(bad_body)?;
            let v1 = list_offsets::handle(&ctx, req.to_v1()).await;
            let resp = veritas_legacy::list_offsets::ListOffsetsV0Response::from_v1(&req, &v1);
            write(out, correlation_id, |o| resp.encode(o))?;
            Ok(super::first_error(
                resp.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ))
        }
        ApiKey::OffsetCommit => {
            let req =
                veritas_legacy::offset_commit::decode_request(&body, version).map_err(bad_body)?;
            let resp = offset_commit::handle(&ctx, req.request).await;
            write(out, correlation_id, |o| {
                veritas_legacy::offset_commit::encode_response(&resp, version, o)
            })?;
            Ok(resp.error_code())
        }
        ApiKey::OffsetFetch => {
            let req =
                veritas_legacy::offset_fetch::decode_request(&body, version).map_err(bad_body)?;
            let mut resp = offset_fetch::handle(&ctx, req.clone()).await;
            if resp.error_code != 0 && resp.topics.is_empty() {
                resp = veritas_legacy::offset_fetch::error_response(&req, resp.error_code);
            }
            write(out, correlation_id, |o| {
                veritas_legacy::offset_fetch::encode_response(&resp, version, o)
            })?;
            Ok(resp.error_code())
        }
        other => Err(ConnError::Unsupported {
            api: other,
            version,
        }),
    }
}

/// Answers UNSUPPORTED_VERSION, with no records, for the partitions of topics whose
/// `message.downconversion.enable` is false, as Kafka does for Fetch v0–3 (the old formats
/// can only be served by down-converting).
fn refuse_down_conversion(shared: &Shared, resp: &mut kafka_protocol::messages::FetchResponse) {
    for topic in &mut resp.responses {
        let refused = shared
            .cluster
            .topic(&topic.topic)
            .is_some_and(|t| !t.config().down_conversion_enabled());
        if !refused {
            continue;
        }
        for p in &mut topic.partitions {
            p.error_code = kafka_protocol::error::ResponseError::UnsupportedVersion.code();
            p.high_watermark = -1;
            p.last_stable_offset = -1;
            p.log_start_offset = -1;
            p.records = Some(Bytes::new());
        }
    }
}

/// Appends a response frame with header v0; an encoding failure (a field the old layout cannot
/// carry) closes the connection like any other encoding bug.
fn write(
    out: &mut BytesMut,
    correlation_id: i32,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), LegacyError>,
) -> Result<(), ConnError> {
    encode_response_frame(out, correlation_id, encode)
        .map_err(|e| ConnError::Encode(EncodeError(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_versions_end_where_the_modern_handlers_begin() {
        for &(api, min, max) in LEGACY {
            let served = super::super::supported(api).expect("advertised");
            assert_eq!(served.min, min, "{api:?}: legacy versions are advertised");
            assert!(served.max > max, "{api:?}");
            assert!(serves(api, min) && serves(api, max));
            assert!(!serves(api, max + 1) && !serves(api, -1));
            // The version the handler runs at is the oldest kafka-protocol decodes.
            assert_eq!(modern_version(api), max + 1);
        }
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::Message;
        assert_eq!(
            modern_version(ApiKey::Produce),
            ProduceRequest::VERSIONS.min
        );
        assert_eq!(modern_version(ApiKey::Fetch), FetchRequest::VERSIONS.min);
        assert_eq!(
            modern_version(ApiKey::ListOffsets),
            ListOffsetsRequest::VERSIONS.min
        );
        assert_eq!(
            modern_version(ApiKey::OffsetCommit),
            OffsetCommitRequest::VERSIONS.min
        );
        assert_eq!(
            modern_version(ApiKey::OffsetFetch),
            OffsetFetchRequest::VERSIONS.min
        );
        assert!(!serves(ApiKey::Metadata, 0));
    }
}

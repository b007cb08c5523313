//! Kafka APIs: one module per API, each opening with the versions it serves and what it does.
//!
//! [`SUPPORTED`] is built from the `VERSIONS` constant beside each handler and is exactly what
//! ApiVersions advertises; a request outside it is refused here, before any handler runs.
//!
//! Dispatch rules, following Apache Kafka:
//! * unknown API key, or a version we do not serve (other than ApiVersions) → log and close the
//!   connection: the response format of such a request is unknowable;
//! * ApiVersions at a version we do not serve → a v0 response with UNSUPPORTED_VERSION and our
//!   ranges, so the client can retry at a version we speak (KIP-511);
//! * a body that does not decode → log and close (Kafka's InvalidRequestException);
//! * everything else is answered, errors as Kafka error codes inside the response.
//!
//! The versions from before Kafka 0.11 (Produce v0–2, Fetch v0–3, ListOffsets v0,
//! OffsetCommit v0–1, OffsetFetch v0) are dispatched first, to [`legacy`], which decodes them
//! with the `veritas-legacy` codecs and runs the ordinary handlers on the converted requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, VersionRange};

use crate::frame::{encode_response, parse_header, EncodeError, FrameError, HeaderPrefix};
use crate::server::Shared;

pub mod alter_configs;
pub mod api_versions;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod legacy;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

/// Everything a handler may need about the request it is serving.
pub struct Ctx<'a> {
    /// Broker state.
    pub shared: &'a Arc<Shared>,
    /// The request header.
    pub header: &'a RequestHeader,
    /// The request (and response) version.
    pub version: i16,
    /// The client's address.
    pub peer: SocketAddr,
}

/// The Kafka error code a response carries, for metrics: the top-level error, else the first
/// per-topic or per-partition error, else 0.
pub trait Outcome {
    /// The error code to count this response under.
    fn error_code(&self) -> i16;
}

/// The first non-zero code of an iterator, or 0.
pub(crate) fn first_error(codes: impl IntoIterator<Item = i16>) -> i16 {
    codes.into_iter().find(|c| *c != 0).unwrap_or(0)
}

/// Every API we serve, with the versions we serve: what ApiVersions advertises.
pub const SUPPORTED: &[(ApiKey, VersionRange)] = &[
    (ApiKey::Produce, produce::VERSIONS),
    (ApiKey::Fetch, fetch::VERSIONS),
    (ApiKey::ListOffsets, list_offsets::VERSIONS),
    (ApiKey::Metadata, metadata::VERSIONS),
    (ApiKey::ApiVersions, api_versions::VERSIONS),
    (ApiKey::CreateTopics, create_topics::VERSIONS),
    (ApiKey::DeleteTopics, delete_topics::VERSIONS),
    (ApiKey::DeleteRecords, delete_records::VERSIONS),
    (ApiKey::InitProducerId, init_producer_id::VERSIONS),
    (
        ApiKey::OffsetForLeaderEpoch,
        offset_for_leader_epoch::VERSIONS,
    ),
    (ApiKey::DescribeConfigs, describe_configs::VERSIONS),
    (ApiKey::AlterConfigs, alter_configs::VERSIONS),
    (ApiKey::CreatePartitions, create_partitions::VERSIONS),
    (
        ApiKey::IncrementalAlterConfigs,
        incremental_alter_configs::VERSIONS,
    ),
    (ApiKey::DescribeCluster, describe_cluster::VERSIONS),
    (ApiKey::DescribeLogDirs, describe_log_dirs::VERSIONS),
    (ApiKey::ElectLeaders, elect_leaders::VERSIONS),
    (ApiKey::DescribeAcls, describe_acls::VERSIONS),
    (ApiKey::CreateAcls, create_acls::VERSIONS),
    (ApiKey::DeleteAcls, delete_acls::VERSIONS),
    (ApiKey::OffsetCommit, offset_commit::VERSIONS),
    (ApiKey::OffsetFetch, offset_fetch::VERSIONS),
    (ApiKey::FindCoordinator, find_coordinator::VERSIONS),
    (ApiKey::JoinGroup, join_group::VERSIONS),
    (ApiKey::Heartbeat, heartbeat::VERSIONS),
    (ApiKey::LeaveGroup, leave_group::VERSIONS),
    (ApiKey::SyncGroup, sync_group::VERSIONS),
    (ApiKey::DescribeGroups, describe_groups::VERSIONS),
    (ApiKey::ListGroups, list_groups::VERSIONS),
    (ApiKey::DeleteGroups, delete_groups::VERSIONS),
    (ApiKey::OffsetDelete, offset_delete::VERSIONS),
];

/// The versions of `key` we serve, if any.
pub fn supported(key: ApiKey) -> Option<VersionRange> {
    SUPPORTED.iter().find(|(k, _)| *k == key).map(|(_, r)| *r)
}

/// Why a connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The frame is shorter than a header.
    #[error("request shorter than a header")]
    Short,
    /// An API key Kafka does not define.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// An API we do not serve, or a version of it we do not serve.
    #[error("unsupported {api:?} v{version}")]
    Unsupported {
        /// The API.
        api: ApiKey,
        /// Requested version.
        version: i16,
    },
    /// The header could not be parsed.
    #[error(transparent)]
    Header(#[from] FrameError),
    /// The body could not be parsed.
    #[error("malformed {api:?} v{version} request: {reason}")]
    BadBody {
        /// The API.
        api: ApiKey,
        /// Version.
        version: i16,
        /// Decoder message.
        reason: String,
    },
    /// A response could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Handles one request frame, appending the response frame (if any) to `out`.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    mut frame: Bytes,
    peer: SocketAddr,
    out: &mut BytesMut,
) -> Result<(), ConnError> {
    let prefix = HeaderPrefix::peek(&frame).ok_or(ConnError::Short)?;
    let api =
        ApiKey::try_from(prefix.api_key).map_err(|_| ConnError::UnknownApi(prefix.api_key))?;
    let version = prefix.api_version;
    if legacy::serves(api, version) {
        let started = Instant::now();
        let code = legacy::handle(shared, api, version, frame, peer, out).await?;
        count(shared, api, code, started);
        return Ok(());
    }
    let range = supported(api).ok_or(ConnError::Unsupported { api, version })?;
    if version < range.min || version > range.max {
        if api == ApiKey::ApiVersions {
            let resp = api_versions::unsupported_version_response();
            encode_response(ApiKey::ApiVersions, 0, prefix.correlation_id, &resp, out)?;
            count(shared, api, resp.error_code, Instant::now());
            return Ok(());
        }
        return Err(ConnError::Unsupported { api, version });
    }
    let header = parse_header(api, &mut frame)?;
    let ctx = Ctx {
        shared,
        header: &header,
        version,
        peer,
    };
    let started = Instant::now();
    let code = dispatch(&ctx, api, frame, out).await?;
    count(shared, api, code, started);
    Ok(())
}

fn count(shared: &Shared, api: ApiKey, code: i16, started: Instant) {
    let name = format!("{api:?}");
    let code = code.to_string();
    shared
        .metrics
        .requests
        .with_label_values(&[name.as_str(), code.as_str()])
        .inc();
    shared
        .metrics
        .request_seconds
        .with_label_values(&[name.as_str()])
        .observe(started.elapsed().as_secs_f64());
}

fn decode<R: Decodable>(api: ApiKey, version: i16, body: &mut Bytes) -> Result<R, ConnError> {
    R::decode(body, version).map_err(|e| ConnError::BadBody {
        api,
        version,
        reason: e.to_string(),
    })
}

fn respond<R: Encodable + Outcome>(
    ctx: &Ctx<'_>,
    api: ApiKey,
    resp: &R,
    out: &mut BytesMut,
) -> Result<i16, ConnError> {
    encode_response(api, ctx.version, ctx.header.correlation_id, resp, out)?;
    Ok(resp.error_code())
}

macro_rules! route {
    ($ctx:expr, $api:expr, $body:expr, $out:expr, { $($key:ident => $module:ident),* $(,)? }) => {
        match $api {
            $(
                ApiKey::$key => {
                    let req = decode($api, $ctx.version, &mut $body)?;
                    let resp = $module::handle($ctx, req).await;
                    respond($ctx, $api, &resp, $out)
                }
            )*
            ApiKey::Produce => {
                let req = decode($api, $ctx.version, &mut $body)?;
                match produce::handle($ctx, req).await {
                    Some(resp) => respond($ctx, $api, &resp, $out),
                    None => Ok(0), // acks=0: Kafka sends no response at all
                }
            }
            other => Err(ConnError::Unsupported { api: other, version: $ctx.version }),
        }
    };
}

async fn dispatch(
    ctx: &Ctx<'_>,
    api: ApiKey,
    mut body: Bytes,
    out: &mut BytesMut,
) -> Result<i16, ConnError> {
    route!(ctx, api, body, out, {
        Fetch => fetch,
        ListOffsets => list_offsets,
        Metadata => metadata,
        ApiVersions => api_versions,
        CreateTopics => create_topics,
        DeleteTopics => delete_topics,
        DeleteRecords => delete_records,
        InitProducerId => init_producer_id,
        OffsetForLeaderEpoch => offset_for_leader_epoch,
        DescribeConfigs => describe_configs,
        AlterConfigs => alter_configs,
        CreatePartitions => create_partitions,
        IncrementalAlterConfigs => incremental_alter_configs,
        DescribeCluster => describe_cluster,
        DescribeLogDirs => describe_log_dirs,
        ElectLeaders => elect_leaders,
        DescribeAcls => describe_acls,
        CreateAcls => create_acls,
        DeleteAcls => delete_acls,
        OffsetCommit => offset_commit,
        OffsetFetch => offset_fetch,
        FindCoordinator => find_coordinator,
        JoinGroup => join_group,
        Heartbeat => heartbeat,
        LeaveGroup => leave_group,
        SyncGroup => sync_group,
        DescribeGroups => describe_groups,
        ListGroups => list_groups,
        DeleteGroups => delete_groups,
        OffsetDelete => offset_delete,
    })
}

/// Shorthand for building a `StrBytes` from a `String`.
pub(crate) fn sb(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}

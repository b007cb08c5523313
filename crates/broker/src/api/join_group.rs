//! JoinGroup (key 11), versions 0–9.
//!
//! Joins (or rejoins) a classic group and waits — a long poll that holds no lock and blocks
//! no other connection — until the rebalance it starts or joins completes; see
//! [`crate::group`] for the protocol. Version behaviour, as Kafka:
//! * v0 has no rebalance timeout: the session timeout is used.
//! * v4+ (KIP-394): a new dynamic member first gets MEMBER_ID_REQUIRED with its assigned id
//!   and must rejoin with it; older versions join at once.
//! * v5+ carry `group.instance.id` (KIP-345 static membership) in requests and in the leader's
//!   member list; v7+ return the protocol type and a nullable protocol name; v8 adds a reason
//!   (logged); v9 adds `skip_assignment` (KIP-814) for a static leader replaced without a
//!   rebalance.
//!
//! Errors: INVALID_GROUP_ID (empty id), INVALID_SESSION_TIMEOUT (outside the broker's
//! `group.min/max.session.timeout.ms`), INCONSISTENT_GROUP_PROTOCOL, UNKNOWN_MEMBER_ID,
//! FENCED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED, REBALANCE_IN_PROGRESS (a superseded request),
//! COORDINATOR_NOT_AVAILABLE (group deleted meanwhile), NOT_COORDINATOR (broker shutting down).

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::VersionRange;

use super::{sb, Ctx, Outcome};
use crate::group::{JoinOutcome, JoinParams};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

/// A timeout in milliseconds from the wire (negative counts as zero).
pub(crate) fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The client id of the request, empty when absent.
pub(crate) fn client_id(ctx: &Ctx<'_>) -> String {
    ctx.header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// Handles JoinGroup.
pub async fn handle(ctx: &Ctx<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.version;
    let groups = &ctx.shared.groups;
    let config = groups.config();
    let member_id = req.member_id.to_string();
    let error = |code: ResponseError| {
        response(
            v,
            JoinOutcome {
                error: code.code(),
                generation: -1,
                member_id: member_id.clone(),
                ..JoinOutcome::default()
            },
        )
    };
    if req.group_id.is_empty() {
        return error(ResponseError::InvalidGroupId);
    }
    let session = millis(req.session_timeout_ms);
    if req.session_timeout_ms < 0
        || session < config.min_session_timeout
        || session > config.max_session_timeout
    {
        return error(ResponseError::InvalidSessionTimeout);
    }
    let rebalance = if v == 0 {
        session
    } else {
        millis(req.rebalance_timeout_ms)
    };
    if let Some(reason) = req.reason.as_ref().filter(|_| v >= 8) {
        tracing::debug!(group = %req.group_id.0, member = %member_id, reason = %reason, "join reason");
    }
    let params = JoinParams {
        member_id,
        instance_id: req
            .group_instance_id
            .filter(|_| v >= 5)
            .map(|i| i.to_string()),
        client_id: client_id(ctx),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: v >= 4,
        supports_skip_assignment: v >= 9,
    };
    let outcome = groups
        .join(&req.group_id, params, ctx.shared.shutting_down.clone())
        .await;
    response(v, outcome)
}

fn response(v: i16, o: JoinOutcome) -> JoinGroupResponse {
    let members = o
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(m.member_id))
                .with_group_instance_id(m.instance_id.filter(|_| v >= 5).map(sb))
                .with_metadata(m.metadata)
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(o.error)
        .with_generation_id(o.generation)
        .with_leader(sb(o.leader))
        .with_member_id(sb(o.member_id))
        .with_members(members);
    if v >= 7 {
        resp.protocol_type = o.protocol_type.map(sb);
        resp.protocol_name = o.protocol_name.map(sb);
    } else {
        // Not nullable before v7.
        resp.protocol_name = Some(sb(o.protocol_name.unwrap_or_default()));
    }
    if v >= 9 {
        resp.skip_assignment = o.skip_assignment;
    }
    resp
}

impl Outcome for JoinGroupResponse {
    fn error_code(&self) -> i16 {
        self.error_code
    }
}

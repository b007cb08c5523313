//! SyncGroup (key 14), versions 0–5.
//!
//! After a completed join phase, every member asks for its assignment; the leader's request
//! carries the whole group's. Followers wait (a long poll holding no lock) until the leader's
//! arrives; the group's metadata is then persisted and each member gets its part. A member of
//! a Stable group gets its current assignment at once. v3+ carry `group.instance.id`; v5 adds
//! the protocol type and name, checked against the group's (INCONSISTENT_GROUP_PROTOCOL) and
//! returned.
//!
//! Errors: INVALID_GROUP_ID, UNKNOWN_MEMBER_ID (unknown group or member), FENCED_INSTANCE_ID,
//! ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS (a new rebalance started: rejoin),
//! COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR (storing the group failed, or shutdown).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::VersionRange;

use super::{sb, Ctx, Outcome};
use crate::group::SyncParams;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// Handles SyncGroup.
pub async fn handle(ctx: &Ctx<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let v = ctx.version;
    if req.group_id.is_empty() {
        return SyncGroupResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    let params = SyncParams {
        member_id: req.member_id.to_string(),
        instance_id: req
            .group_instance_id
            .filter(|_| v >= 3)
            .map(|i| i.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.filter(|_| v >= 5).map(|p| p.to_string()),
        protocol_name: req.protocol_name.filter(|_| v >= 5).map(|p| p.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let o = ctx
        .shared
        .groups
        .sync(&req.group_id, params, ctx.shared.shutting_down.clone())
        .await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(o.error)
        .with_assignment(o.assignment);
    if v >= 5 {
        resp.protocol_type = o.protocol_type.map(sb);
        resp.protocol_name = o.protocol_name.map(sb);
    }
    resp
}

impl Outcome for SyncGroupResponse {
    fn error_code(&self) -> i16 {
        self.error_code
    }
}

//! Heartbeat (key 12), versions 0–4.
//!
//! Keeps a member's session alive. REBALANCE_IN_PROGRESS tells a member of a rebalancing
//! group to rejoin; UNKNOWN_MEMBER_ID (unknown group or member, or an empty group — e.g. after
//! a broker restart), ILLEGAL_GENERATION and FENCED_INSTANCE_ID (v3+ static members) as Kafka;
//! INVALID_GROUP_ID for an empty group id.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::protocol::VersionRange;

use super::{Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Handles Heartbeat.
pub async fn handle(ctx: &Ctx<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    if req.group_id.is_empty() {
        return HeartbeatResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    let instance = req
        .group_instance_id
        .as_ref()
        .filter(|_| ctx.version >= 3)
        .map(|i| i.to_string());
    let code = ctx.shared.groups.heartbeat(
        &req.group_id,
        &req.member_id,
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code)
}

impl Outcome for HeartbeatResponse {
    fn error_code(&self) -> i16 {
        self.error_code
    }
}

//! LeaveGroup (key 13), versions 0–5.
//!
//! Removes members from a group, which then rebalances. v0–2 name one member; v3+ a batch
//! (KIP-345), each by member id or — for administrative removal of a static member — by
//! `group.instance.id` with an empty member id, with a result per member; v5 adds a reason
//! (logged). A KIP-394 id handed out but not yet used can leave too. Per member:
//! UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID; group level: INVALID_GROUP_ID,
//! COORDINATOR_NOT_AVAILABLE. Before v3 the top-level code is the member's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, Ctx, Outcome};
use crate::group::LeavingMember;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// Handles LeaveGroup.
pub async fn handle(ctx: &Ctx<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = ctx.version;
    if req.group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    let identities: Vec<MemberIdentity> = if v >= 3 {
        req.members
    } else {
        vec![MemberIdentity::default().with_member_id(req.member_id)]
    };
    let leaving: Vec<LeavingMember> = identities
        .iter()
        .map(|m| {
            if let Some(reason) = m.reason.as_ref().filter(|_| v >= 5) {
                tracing::debug!(group = %req.group_id.0, member = %m.member_id, reason = %reason, "leave reason");
            }
            LeavingMember {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            }
        })
        .collect();
    match ctx.shared.groups.leave(&req.group_id, &leaving) {
        Err(code) => LeaveGroupResponse::default().with_error_code(code),
        Ok(codes) if v < 3 => LeaveGroupResponse::default().with_error_code(first_error(codes)),
        Ok(codes) => LeaveGroupResponse::default().with_members(
            identities
                .into_iter()
                .zip(codes)
                .map(|(m, code)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(code)
                })
                .collect(),
        ),
    }
}

impl Outcome for LeaveGroupResponse {
    fn error_code(&self) -> i16 {
        first_error(
            std::iter::once(self.error_code).chain(self.members.iter().map(|m| m.error_code)),
        )
    }
}

//! DescribeGroups (key 15), versions 0–6.
//!
//! Per group: state, protocol type, and — in a Stable group — the selected protocol and each
//! member's client id, host, metadata and assignment (other states list the members without
//! metadata or assignment, as Kafka does). v3+ report authorized operations when asked
//! (every group operation: there are no ACLs); v4+ members' `group.instance.id`. An unknown
//! group is described as `Dead` with no error, or with GROUP_ID_NOT_FOUND from v6
//! (KIP-1043), which also adds an error message.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, sb, Ctx, Outcome};
use crate::group::GroupPhase;

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };

/// Kafka's ACL operations that apply to a group: READ (3), DELETE (6), DESCRIBE (8).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Handles DescribeGroups.
pub async fn handle(ctx: &Ctx<'_>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = ctx.version;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let mut out = match ctx.shared.groups.describe_group(&id) {
                Some(d) => DescribedGroup::default()
                    .with_group_state(sb(d.phase.as_str()))
                    .with_protocol_type(sb(d.protocol_type))
                    .with_protocol_data(sb(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(sb(m.member_id))
                                    .with_group_instance_id(
                                        m.instance_id.filter(|_| v >= 4).map(sb),
                                    )
                                    .with_client_id(sb(m.client_id))
                                    .with_client_host(sb(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                None => {
                    let mut dead =
                        DescribedGroup::default().with_group_state(sb(GroupPhase::Dead.as_str()));
                    if v >= 6 {
                        dead.error_code = ResponseError::GroupIdNotFound.code();
                        dead.error_message = Some(sb(format!("group {} not found", &*id)));
                    }
                    dead
                }
            };
            out.group_id = id;
            if v >= 3 && req.include_authorized_operations {
                out.authorized_operations = GROUP_OPERATIONS;
            }
            out
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

impl Outcome for DescribeGroupsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.groups.iter().map(|g| g.error_code))
    }
}

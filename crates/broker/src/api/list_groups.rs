//! ListGroups (key 16), versions 0–5.
//!
//! Every group this broker coordinates (all of them), with its protocol type; v4+ (KIP-518)
//! with its state and an optional state filter (case-insensitive, Kafka's state names); v5+
//! (KIP-848) with its type, always `classic` here, and an optional type filter — any type but
//! `classic` matches nothing.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// The type of every group here (the classic protocol).
const GROUP_TYPE: &str = "classic";

/// Handles ListGroups.
pub async fn handle(ctx: &Ctx<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.version;
    let states: Vec<String> = if v >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if v >= 5 {
        req.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    if !types.is_empty() && !types.iter().any(|t| t == GROUP_TYPE) {
        return ListGroupsResponse::default();
    }
    let groups = ctx
        .shared
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.phase.as_str().to_lowercase()))
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(sb(g.group_id)))
                .with_protocol_type(sb(g.protocol_type));
            if v >= 4 {
                listed.group_state = sb(g.phase.as_str());
            }
            if v >= 5 {
                listed.group_type = sb(GROUP_TYPE);
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

impl Outcome for ListGroupsResponse {
    fn error_code(&self) -> i16 {
        self.error_code
    }
}

//! DeleteGroups (key 42), versions 0–2.
//!
//! Deletes groups and their committed offsets (tombstones in `__consumer_offsets`), one result
//! per group. Only an Empty group can go: NON_EMPTY_GROUP while it has members,
//! GROUP_ID_NOT_FOUND for an unknown group, NOT_COORDINATOR if the deletion could not be
//! written.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{first_error, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// Handles DeleteGroups.
pub async fn handle(ctx: &Ctx<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let code = ctx.shared.groups.delete_group(&id).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

impl Outcome for DeleteGroupsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.results.iter().map(|r| r.error_code))
    }
}

//! DeleteAcls (key 31), versions 1–3.
//!
//! No authorizer: every filter is answered SECURITY_DISABLED with no matching ACLs, as by a
//! Kafka broker without one (see [`super::describe_acls`]).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::VersionRange;

use super::describe_acls::NO_AUTHORIZER;
use super::{first_error, sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

/// Handles DeleteAcls.
pub async fn handle(_ctx: &Ctx<'_>, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let results = req
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(sb(NO_AUTHORIZER)))
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

impl Outcome for DeleteAclsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.filter_results.iter().map(|r| r.error_code))
    }
}

//! CreateAcls (key 30), versions 1–3.
//!
//! No authorizer: every creation is answered SECURITY_DISABLED, as by a Kafka broker without
//! one (see [`super::describe_acls`]). Nothing is stored.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::VersionRange;

use super::describe_acls::NO_AUTHORIZER;
use super::{first_error, sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

/// Handles CreateAcls.
pub async fn handle(_ctx: &Ctx<'_>, req: CreateAclsRequest) -> CreateAclsResponse {
    let results = req
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(sb(NO_AUTHORIZER)))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

impl Outcome for CreateAclsResponse {
    fn error_code(&self) -> i16 {
        first_error(self.results.iter().map(|r| r.error_code))
    }
}

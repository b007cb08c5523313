//! DescribeAcls (key 29), versions 1–3.
//!
//! The broker has no authorizer, so, exactly as a Kafka broker without `authorizer.class.name`
//! answers, every DescribeAcls is SECURITY_DISABLED ("No Authorizer is configured on the
//! broker"), with no resources. Clients then know ACLs are off, rather than seeing the API as
//! missing.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };

/// What a broker without an authorizer says to every ACL request.
pub(crate) const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

/// Handles DescribeAcls.
pub async fn handle(_ctx: &Ctx<'_>, _req: DescribeAclsRequest) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(Some(sb(NO_AUTHORIZER)))
}

impl Outcome for DescribeAclsResponse {
    fn error_code(&self) -> i16 {
        self.error_code
    }
}

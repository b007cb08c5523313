//! ApiVersions (key 18), versions 0–3.
//!
//! Lists every API in [`super::SUPPORTED`] with exactly the versions we implement — never more
//! than the handlers serve. A request at a version above 3 (kafka-python 3.x opens with v4) is
//! answered by the dispatcher with a v0 response carrying UNSUPPORTED_VERSION (35) and our
//! ranges, as Kafka does (KIP-511), so the client retries at a version we speak.
//! No feature flags are advertised (no KRaft features, no KIP-848 consumer protocol).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

fn api_keys() -> Vec<ApiVersion> {
    super::SUPPORTED
        .iter()
        .map(|(key, range)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(range.min)
                .with_max_version(range.max)
        })
        .collect()
}

/// Answers ApiVersions.
pub async fn handle(_ctx: &Ctx<'_>, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The v0 response to an ApiVersions request at a version we do not serve.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys())
}

impl Outcome for ApiVersionsResponse {
    fn error_code(&self) -> i16 {
        self.error_code
    }
}

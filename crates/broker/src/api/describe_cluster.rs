//! DescribeCluster (key 60), versions 0–1.
//!
//! The cluster id and its one broker, which is also the controller. Only the broker endpoint
//! type (1) exists here; asking for controllers (2) gives UNSUPPORTED_ENDPOINT_TYPE as Kafka
//! brokers do.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::VersionRange;

use super::{sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

/// Handles DescribeCluster.
pub async fn handle(ctx: &Ctx<'_>, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let shared = ctx.shared;
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(sb(shared.cluster_id.clone()))
        .with_controller_id(BrokerId(shared.config.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(shared.config.node_id))
            .with_host(sb(shared.advertised.0.clone()))
            .with_port(shared.advertised.1 as i32)]);
    if ctx.version >= 1 {
        resp.endpoint_type = req.endpoint_type;
        if req.endpoint_type != 1 {
            resp.error_code = ResponseError::UnsupportedEndpointType.code();
            resp.brokers.clear();
        }
    }
    resp
}

impl Outcome for DescribeClusterResponse {
    fn error_code(&self) -> i16 {
        self.error_code
    }
}

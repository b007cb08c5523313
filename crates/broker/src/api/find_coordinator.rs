//! FindCoordinator (key 10), versions 0–6.
//!
//! This broker coordinates every group, so a group key (type 0) always resolves to it — its
//! node id and advertised host and port. v4+ answers a batch of keys, one entry each.
//!
//! Other key types are refused per key, never left to retry forever:
//! * transactional ids (type 1): transactions are not supported, so the answer is
//!   TRANSACTIONAL_ID_AUTHORIZATION_FAILED — the code InitProducerId and Produce give
//!   transactional producers here, which clients treat as fatal with a clear message.
//!   COORDINATOR_NOT_AVAILABLE would be retriable: a transactional producer would spin until
//!   its own timeout instead of failing at once.
//! * share groups (type 2, v6+, KIP-932) are not supported: INVALID_REQUEST, as a Kafka broker
//!   without share groups enabled answers; so is any unknown type, and type 2 before v6.
//!
//! The v5 addition (TRANSACTION_ABORTABLE) concerns transactions and never arises here.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::{first_error, sb, Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };

/// Handles FindCoordinator.
pub async fn handle(ctx: &Ctx<'_>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let key_type = if ctx.version >= 1 { req.key_type } else { 0 };
    let keys = if ctx.version >= 4 {
        req.coordinator_keys
    } else {
        vec![req.key]
    };
    let mut found: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| lookup(ctx, key_type, key))
        .collect();
    let resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        return resp.with_coordinators(found);
    }
    let Some(c) = found.pop() else {
        return resp.with_error_code(ResponseError::InvalidRequest.code());
    };
    resp.with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

fn lookup(ctx: &Ctx<'_>, key_type: i8, key: StrBytes) -> Coordinator {
    let refuse = |code: ResponseError, why: &str| {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_host(sb(""))
            .with_port(-1)
            .with_error_code(code.code())
            .with_error_message(Some(sb(why)))
    };
    match key_type {
        0 => Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(ctx.shared.config.node_id))
            .with_host(sb(ctx.shared.advertised.0.clone()))
            .with_port(i32::from(ctx.shared.advertised.1)),
        1 => refuse(
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactions are not supported by this broker",
        ),
        2 if ctx.version >= 6 => refuse(
            ResponseError::InvalidRequest,
            "share groups are not supported by this broker",
        ),
        _ => refuse(
            ResponseError::InvalidRequest,
            "unknown coordinator key type",
        ),
    }
}

impl Outcome for FindCoordinatorResponse {
    fn error_code(&self) -> i16 {
        first_error(
            std::iter::once(self.error_code).chain(self.coordinators.iter().map(|c| c.error_code)),
        )
    }
}

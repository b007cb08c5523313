//! InitProducerId (key 22), versions 0–4.
//!
//! Idempotent producers (no transactional id) get a fresh producer id at epoch 0 every time —
//! as Kafka does, whatever id/epoch the request carries (KIP-360 epoch bumps are for
//! transactional producers). Ids are never reused, across restarts included (see
//! `producer_ids`). Transactions are not supported by this broker: a transactional id is
//! refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients report as fatal instead of
//! retrying forever. If the id block cannot be persisted, COORDINATOR_NOT_AVAILABLE, which
//! clients retry.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;

use super::{Ctx, Outcome};

/// Versions served.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Handles InitProducerId.
pub async fn handle(ctx: &Ctx<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        tracing::info!(peer = %ctx.peer, "refusing a transactional producer: transactions are not supported");
        return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    match ctx.shared.producer_ids.allocate() {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            resp.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}

impl Outcome for InitProducerIdResponse {
    fn error_code(&self) -> i16 {
        self.error_code
    }
}

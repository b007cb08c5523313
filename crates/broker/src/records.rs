//! What the broker needs to see *inside* record batches, which is little: the storage layer keeps
//! batches as opaque validated bytes, and only a few paths look at individual records —
//! ListOffsets by timestamp (the exact first record at or after a time, even inside a
//! compressed batch) and the group coordinator's offsets topic. The record walker and the
//! bounded codecs live in the storage crate ([`veritas_log::records`], which compaction uses
//! too); this module maps storage errors to Kafka error codes.

use kafka_protocol::error::ResponseError;
use veritas_log::LogError;

pub use veritas_log::batch::HEADER_SIZE as BATCH_HEADER_BYTES;
pub use veritas_log::records::{
    decompress, record_positions, RecordPosition, RecordsError, MAX_DECOMPRESSED,
};

/// The Kafka error code for a storage error.
pub fn log_error_code(e: &LogError) -> i16 {
    use ResponseError as E;
    match e {
        LogError::Io { .. } | LogError::InvalidLog(..) => E::KafkaStorageError.code(),
        LogError::CorruptMessage(_) => E::CorruptMessage.code(),
        LogError::RecordTooLarge { .. } => E::MessageTooLarge.code(),
        LogError::InvalidRecord(_) => E::InvalidRecord.code(),
        LogError::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
        LogError::OutOfOrderSequence { .. } => E::OutOfOrderSequenceNumber.code(),
        LogError::InvalidProducerEpoch { .. } => E::InvalidProducerEpoch.code(),
        LogError::InvalidTimestamp(_) => E::InvalidTimestamp.code(),
        #[allow(unreachable_patterns)]
        _ => E::UnknownServerError.code(),
    }
}

//! Errors returned by the log.

use std::io;
use std::path::PathBuf;

use crate::batch::BatchError;

/// Everything that can go wrong in a [`Log`](crate::Log) operation. Variants map onto Kafka
/// error codes (noted on each) so the broker can translate them directly.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A filesystem operation failed (Kafka: `KAFKA_STORAGE_ERROR`).
    #[error("I/O error on {path}: {cause}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The underlying error.
        // Named `cause`, not `source`: the message already includes it, and reporting it again
        // as the error's source would print it twice in error chains.
        cause: io::Error,
    },
    /// A batch failed framing, magic or CRC checks (Kafka: `CORRUPT_MESSAGE`).
    #[error("corrupt message: {0}")]
    CorruptMessage(BatchError),
    /// A batch is larger than `max.message.bytes` (Kafka: `MESSAGE_TOO_LARGE`).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge {
        /// Size of the offending batch, overhead included.
        size: usize,
        /// The configured limit.
        max: u32,
    },
    /// A batch is well-formed but not acceptable (Kafka: `INVALID_RECORD`).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A read outside `[log_start, log_end]` (Kafka: `OFFSET_OUT_OF_RANGE`).
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// First readable offset.
        log_start: i64,
        /// Next offset to be written.
        log_end: i64,
    },
    /// An idempotent producer skipped or repeated sequence numbers
    /// (Kafka: `OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error("out of order sequence for producer {producer_id} (epoch {epoch}): expected {expected}, got {found}")]
    OutOfOrderSequence {
        /// Producer id.
        producer_id: i64,
        /// Producer epoch of the batch.
        epoch: i16,
        /// Sequence the log expected.
        expected: i32,
        /// baseSequence of the batch.
        found: i32,
    },
    /// The batch's producer epoch is older than the one the log knows (Kafka:
    /// `INVALID_PRODUCER_EPOCH`, the producer has been fenced).
    #[error("producer {producer_id} fenced: epoch {found} is older than current epoch {current}")]
    InvalidProducerEpoch {
        /// Producer id.
        producer_id: i64,
        /// Epoch the log knows.
        current: i16,
        /// Epoch in the batch.
        found: i16,
    },
    /// A batch timestamp is not acceptable (Kafka: `INVALID_TIMESTAMP`).
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// The log was already closed or deleted through another handle (should not happen).
    #[error("log directory {0} is not a valid log: {1}")]
    InvalidLog(PathBuf, String),
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: io::Error) -> LogError {
        LogError::Io {
            path: path.into(),
            cause,
        }
    }
}

/// Attaches a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError> {
        self.map_err(|e| LogError::io(path, e))
    }
}

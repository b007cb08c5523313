//! The one error type of this crate, and the Kafka error code each error maps to.

use kafka_protocol::error::ResponseError;

/// Why legacy bytes could not be decoded, converted or encoded.
///
/// Byte positions (`at`) are relative to the start of the buffer being parsed: the message set,
/// the decompressed value of a wrapper message, the batch range or the request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyError {
    /// The input ended inside a field.
    #[error("{what} is truncated at byte {at}: {needed} bytes needed, {available} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where the field starts.
        at: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that remain.
        available: usize,
    },
    /// A length or count is negative where that is not allowed, or larger than the input.
    #[error("{what} at byte {at} has an invalid length {length}")]
    InvalidLength {
        /// The field.
        what: &'static str,
        /// Where the length field starts.
        at: usize,
        /// The value read.
        length: i64,
    },
    /// Bytes were left over after a complete request body or inner message set.
    #[error("{what}: {count} unexpected trailing bytes at byte {at}")]
    TrailingBytes {
        /// What was parsed.
        what: &'static str,
        /// Where the leftover starts.
        at: usize,
        /// How many bytes are left over.
        count: usize,
    },
    /// A string is not UTF-8.
    #[error("{what} at byte {at} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        what: &'static str,
        /// Where the string starts.
        at: usize,
    },
    /// A message's size field is smaller than the smallest message of its magic.
    #[error("message at byte {at}: size {size} is below the minimum of {min} bytes")]
    MessageTooSmall {
        /// Where the message's offset field starts.
        at: usize,
        /// The size read.
        size: i32,
        /// The smallest valid size.
        min: usize,
    },
    /// A message's key and value lengths do not add up to its size.
    #[error("message at byte {at}: its fields do not fill its size exactly")]
    MessageSizeMismatch {
        /// Where the message's offset field starts.
        at: usize,
    },
    /// A message's CRC-32 does not match its contents.
    #[error(
        "message at byte {at}: CRC-32 mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    MessageCrc {
        /// Where the message's offset field starts.
        at: usize,
        /// CRC in the message.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A record batch's CRC-32C does not match its contents.
    #[error("record batch at byte {at}: CRC-32C mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BatchCrc {
        /// Where the batch starts.
        at: usize,
        /// CRC in the batch.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A magic byte this operation does not accept.
    #[error("unsupported magic {magic} at byte {at}")]
    UnsupportedMagic {
        /// Where the message or batch starts.
        at: usize,
        /// The magic read.
        magic: i8,
    },
    /// Compression codec bits Kafka does not define, or a codec that this magic cannot carry
    /// (zstd needs magic 2).
    #[error("compression codec {codec} is not valid for magic {magic} (at byte {at})")]
    InvalidCodec {
        /// Where the message or batch starts.
        at: usize,
        /// The codec bits.
        codec: u8,
        /// The magic of the message or batch.
        magic: i8,
    },
    /// A compressed message inside a compressed message (Kafka allows one level only).
    #[error(
        "compressed message at byte {at} of a decompressed message set: nesting is not allowed"
    )]
    NestedCompression {
        /// Where the inner message starts in the decompressed set.
        at: usize,
    },
    /// An inner message's magic differs from its wrapper's.
    #[error("inner message magic {inner} differs from its wrapper's magic {outer}")]
    InnerMagicMismatch {
        /// Wrapper magic.
        outer: i8,
        /// Inner magic.
        inner: i8,
    },
    /// A compressed wrapper message holds no messages, or has a null value.
    #[error("compressed message at byte {at} holds no messages")]
    EmptyWrapper {
        /// Where the wrapper starts.
        at: usize,
    },
    /// Decompression failed.
    #[error("{codec} decompression failed: {reason}")]
    Decompress {
        /// Codec name.
        codec: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Compression failed.
    #[error("{codec} compression failed: {reason}")]
    Compress {
        /// Codec name.
        codec: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// Decompressed data would exceed the budget of one call.
    #[error("decompressed data would exceed the limit of {limit} bytes")]
    DecompressionLimit {
        /// The limit in force.
        limit: usize,
    },
    /// A produced message set (or a message list to encode) holds no message.
    #[error("the message set holds no message")]
    EmptyMessageSet,
    /// A produced message set ends in the middle of a message (only fetched sets may).
    #[error("the message set ends with a partial message at byte {at}")]
    PartialMessage {
        /// Where the partial message starts.
        at: usize,
    },
    /// Offsets of a wrapper and its inner messages do not add up to valid absolute offsets.
    #[error("message at byte {at}: offsets overflow")]
    OffsetOverflow {
        /// Where the wrapper starts.
        at: usize,
    },
    /// A v2 record batch whose header is inconsistent.
    #[error("record batch at byte {at}: {reason}")]
    InvalidBatch {
        /// Where the batch starts.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A record inside a v2 batch is malformed.
    #[error("record {index} of the batch at byte {batch_at}: {reason}")]
    InvalidRecord {
        /// Where the batch starts.
        batch_at: usize,
        /// Index of the record in the batch.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value is too large for the field that must carry it.
    #[error("{what} is too large to encode ({len})")]
    TooLargeToEncode {
        /// The field.
        what: &'static str,
        /// Its size or count.
        len: usize,
    },
    /// A request or response version this crate does not handle.
    #[error("{api} v{version} is not a legacy version handled here")]
    UnsupportedVersion {
        /// The API.
        api: &'static str,
        /// The version asked for.
        version: i16,
    },
}

impl LegacyError {
    /// The Kafka error code a produce or fetch partition should answer with for this error.
    ///
    /// Clients of the legacy versions predate most error codes, so everything that means "these
    /// bytes are not a valid message set" is `CORRUPT_MESSAGE` (2), which every client knows;
    /// a decompression bomb is `MESSAGE_TOO_LARGE` (10).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LegacyError::DecompressionLimit { .. } | LegacyError::TooLargeToEncode { .. } => {
                ResponseError::MessageTooLarge.code()
            }
            LegacyError::UnsupportedVersion { .. } => ResponseError::UnsupportedVersion.code(),
            LegacyError::Compress { .. } => ResponseError::UnknownServerError.code(),
            _ => ResponseError::CorruptMessage.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_the_ones_old_clients_know() {
        assert_eq!(LegacyError::EmptyMessageSet.kafka_error_code(), 2);
        assert_eq!(
            LegacyError::MessageCrc {
                at: 0,
                stored: 1,
                computed: 2
            }
            .kafka_error_code(),
            2
        );
        assert_eq!(
            LegacyError::DecompressionLimit { limit: 1 }.kafka_error_code(),
            10
        );
        assert_eq!(
            LegacyError::UnsupportedVersion {
                api: "Produce",
                version: 9
            }
            .kafka_error_code(),
            35
        );
    }

    #[test]
    fn messages_name_the_place() {
        let e = LegacyError::MessageCrc {
            at: 12,
            stored: 0xdead_beef,
            computed: 1,
        };
        assert_eq!(
            e.to_string(),
            "message at byte 12: CRC-32 mismatch (stored 0xdeadbeef, computed 0x00000001)"
        );
    }
}

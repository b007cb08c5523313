//! Kafka framing: a big-endian `i32` size, then a request header and body.
//!
//! Everything here treats its input as hostile: sizes are checked against a limit before any
//! allocation, and every parse is a checked read that turns into a [`FrameError`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The smallest request that can carry a header: api key, api version, correlation id.
pub const MIN_REQUEST_BYTES: usize = 8;

/// Why a frame could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        got: usize,
        /// Bytes announced.
        expected: usize,
    },
    /// The announced size is negative, too small for a header, or over the limit.
    #[error("invalid frame size {size} (limit {limit})")]
    BadSize {
        /// Announced size.
        size: i64,
        /// Configured maximum.
        limit: usize,
    },
    /// The request header could not be parsed.
    #[error("malformed request header: {0}")]
    BadHeader(String),
    /// Socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame's payload (without the size prefix).
///
/// Fails with [`FrameError::BadSize`] before allocating if the announced size is out of range.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Bytes, FrameError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(len);
    if size < MIN_REQUEST_BYTES as i32 || size as usize > max_bytes {
        return Err(FrameError::BadSize {
            size: size as i64,
            limit: max_bytes,
        });
    }
    let size = size as usize;
    let mut buf = BytesMut::zeroed(size);
    let mut got = 0;
    while got < size {
        let n = reader.read(&mut buf[got..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got,
                expected: size,
            });
        }
        got += n;
    }
    Ok(buf.freeze())
}

/// The fixed start of every request header, readable even when the rest is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    /// Raw API key.
    pub api_key: i16,
    /// Requested version.
    pub api_version: i16,
    /// Echoed back in the response.
    pub correlation_id: i32,
}

impl HeaderPrefix {
    /// Peeks the first eight bytes of a frame.
    pub fn peek(frame: &[u8]) -> Option<HeaderPrefix> {
        let b = frame.get(..MIN_REQUEST_BYTES)?;
        Some(HeaderPrefix {
            api_key: i16::from_be_bytes([b[0], b[1]]),
            api_version: i16::from_be_bytes([b[2], b[3]]),
            correlation_id: i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// Parses the request header of a frame whose API key is known, leaving `frame` at the body.
pub fn parse_header(api_key: ApiKey, frame: &mut Bytes) -> Result<RequestHeader, FrameError> {
    let prefix = HeaderPrefix::peek(frame).ok_or_else(|| FrameError::BadHeader("short".into()))?;
    let header_version = api_key.request_header_version(prefix.api_version);
    RequestHeader::decode(frame, header_version).map_err(|e| FrameError::BadHeader(e.to_string()))
}

/// Encodes a complete response frame (size, header, body) for `api_key` at `version`.
pub fn encode_response<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let start = out.len();
    out.put_i32(0);
    let encoded = header
        .encode(out, header_version)
        .and_then(|()| body.encode(out, version));
    if let Err(e) = encoded {
        out.truncate(start); // never leave half a frame behind
        return Err(EncodeError(e.to_string()));
    }
    let size = out.len() - start - 4;
    let size = i32::try_from(size).map_err(|_| EncodeError("response too large".into()))?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// A response could not be encoded: a handler set a field its version cannot carry (a bug,
/// logged and turned into a closed connection rather than a panic).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode response: {0}")]
pub struct EncodeError(pub String);

/// Reads a big-endian `i32` from a body being parsed by hand (legacy versions).
pub fn get_i32(buf: &mut Bytes) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_oversized_and_negative_sizes_before_allocating() {
        let mut input: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut input, 1024).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            read_frame(&mut input, 1024).await,
            Err(FrameError::BadSize { size: -2, .. })
        ));
        let mut input: &[u8] = &[0, 0, 0, 3, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut input, 1024).await,
            Err(FrameError::BadSize { size: 3, .. })
        ));
    }

    #[tokio::test]
    async fn reports_truncation_and_clean_close() {
        let mut input: &[u8] = &[0, 0, 0, 10, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut input, 1024).await,
            Err(FrameError::Truncated {
                got: 3,
                expected: 10
            })
        ));
        let mut input: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut input, 1024).await,
            Err(FrameError::Closed)
        ));
        let mut input: &[u8] = &[0, 0, 0, 8, 0, 18, 0, 3, 0, 0, 0, 7];
        let frame = read_frame(&mut input, 1024)
            .await
            .map_err(|e| e.to_string());
        let prefix = frame.as_deref().ok().and_then(HeaderPrefix::peek);
        assert_eq!(
            prefix,
            Some(HeaderPrefix {
                api_key: 18,
                api_version: 3,
                correlation_id: 7
            })
        );
    }
}

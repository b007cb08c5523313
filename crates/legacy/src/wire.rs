//! Checked big-endian reads of Kafka's classic (non-flexible) primitive types over untrusted
//! bytes, and the writes that mirror them.
//!
//! Every read checks its length against what remains before touching the input, and no read
//! allocates from a length field: byte fields are zero-copy slices of the input, and array
//! counts are checked against the remaining bytes (every element takes at least one byte)
//! before the caller loops over them.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;

use crate::LegacyError;

/// A cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    what: &'static str,
    /// Added to positions in errors, for a buffer that is part of a larger one.
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `buf`; `what` names the structure in errors.
    pub(crate) fn new(buf: &'a Bytes, what: &'static str) -> Self {
        Reader::with_base(buf, what, 0)
    }

    /// A reader of `buf`, which starts at byte `base` of the structure named in errors.
    pub(crate) fn with_base(buf: &'a Bytes, what: &'static str, base: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            what,
            base,
        }
    }

    /// Current position within this reader's buffer.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Current position as reported in errors.
    fn at(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn truncated(&self, needed: usize) -> LegacyError {
        LegacyError::Truncated {
            what: self.what,
            at: self.at(),
            needed,
            available: self.remaining(),
        }
    }

    /// The next `n` bytes as a borrowed slice.
    pub(crate) fn slice(&mut self, n: usize) -> Result<&'a [u8], LegacyError> {
        let buf: &'a [u8] = self.buf;
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= buf.len())
            .ok_or_else(|| self.truncated(n))?;
        let out = buf.get(self.pos..end).ok_or_else(|| self.truncated(n))?;
        self.pos = end;
        Ok(out)
    }

    /// The next `n` bytes as a zero-copy `Bytes`.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, LegacyError> {
        let start = self.pos;
        self.slice(n)?;
        Ok(self.buf.slice(start..self.pos))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LegacyError> {
        let s = self.slice(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, LegacyError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, LegacyError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, LegacyError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, LegacyError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, LegacyError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn invalid_length(&self, at: usize, length: i64) -> LegacyError {
        LegacyError::InvalidLength {
            what: self.what,
            at,
            length,
        }
    }

    /// `STRING`: an `i16` length then UTF-8; negative lengths are refused.
    pub(crate) fn string(&mut self) -> Result<StrBytes, LegacyError> {
        let at = self.at();
        self.nullable_string()?
            .ok_or_else(|| self.invalid_length(at, -1))
    }

    /// `NULLABLE_STRING`: like `STRING`, with length -1 meaning null.
    pub(crate) fn nullable_string(&mut self) -> Result<Option<StrBytes>, LegacyError> {
        let at = self.at();
        let len = self.i16()?;
        if len == -1 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| self.invalid_length(at, len.into()))?;
        let raw = self.bytes(n)?;
        StrBytes::from_utf8(raw)
            .map(Some)
            .map_err(|_| LegacyError::InvalidUtf8 {
                what: self.what,
                at,
            })
    }

    /// `NULLABLE_BYTES`: an `i32` length (-1 null) then the bytes, zero-copy.
    pub(crate) fn nullable_bytes(&mut self) -> Result<Option<Bytes>, LegacyError> {
        let at = self.at();
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| self.invalid_length(at, len.into()))?;
        self.bytes(n).map(Some)
    }

    /// An `ARRAY` count, refused if negative (these versions have no nullable arrays) or if
    /// larger than the bytes left (every element takes at least one byte).
    pub(crate) fn array_len(&mut self) -> Result<usize, LegacyError> {
        let at = self.at();
        let n = self.i32()?;
        match usize::try_from(n) {
            Ok(count) if count <= self.remaining() => Ok(count),
            _ => Err(self.invalid_length(at, n.into())),
        }
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), LegacyError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(LegacyError::TrailingBytes {
                what: self.what,
                at: self.at(),
                count,
            }),
        }
    }
}

/// Writes a `STRING`.
pub(crate) fn put_string(out: &mut BytesMut, s: &str) -> Result<(), LegacyError> {
    let len = i16::try_from(s.len()).map_err(|_| LegacyError::TooLargeToEncode {
        what: "string",
        len: s.len(),
    })?;
    out.put_i16(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

/// Writes a `NULLABLE_STRING`.
pub(crate) fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) -> Result<(), LegacyError> {
    match s {
        None => {
            out.put_i16(-1);
            Ok(())
        }
        Some(s) => put_string(out, s),
    }
}

/// Writes `NULLABLE_BYTES`.
pub(crate) fn put_nullable_bytes(out: &mut BytesMut, b: Option<&[u8]>) -> Result<(), LegacyError> {
    match b {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(i32_len("bytes", b.len())?);
            out.put_slice(b);
        }
    }
    Ok(())
}

/// Writes an `ARRAY` count.
pub(crate) fn put_array_len(out: &mut BytesMut, n: usize) -> Result<(), LegacyError> {
    out.put_i32(i32_len("array", n)?);
    Ok(())
}

/// `n` as an `i32` length field.
pub(crate) fn i32_len(what: &'static str, n: usize) -> Result<i32, LegacyError> {
    i32::try_from(n).map_err(|_| LegacyError::TooLargeToEncode { what, len: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked() {
        let buf = Bytes::from_static(&[0, 3, b'a', b'b', b'c', 0xff, 0xff, 0, 0, 0, 9]);
        let mut r = Reader::new(&buf, "test");
        assert_eq!(r.string().map(|s| s.to_string()), Ok("abc".to_string()));
        assert_eq!(r.nullable_string(), Ok(None));
        assert_eq!(
            r.nullable_bytes(),
            Err(LegacyError::Truncated {
                what: "test",
                at: 11,
                needed: 9,
                available: 0
            })
        );
        let buf = Bytes::from_static(&[0xff, 0xff]);
        assert!(matches!(
            Reader::new(&buf, "t").string(),
            Err(LegacyError::InvalidLength { length: -1, .. })
        ));
        let buf = Bytes::from_static(&[0xff, 0xfe]);
        assert!(matches!(
            Reader::new(&buf, "t").nullable_string(),
            Err(LegacyError::InvalidLength { length: -2, .. })
        ));
        let buf = Bytes::from_static(&[0, 1, 0xff]);
        assert!(matches!(
            Reader::new(&buf, "t").string(),
            Err(LegacyError::InvalidUtf8 { at: 0, .. })
        ));
    }

    #[test]
    fn array_counts_are_bounded_by_the_input() {
        let buf = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            Reader::new(&buf, "t").array_len(),
            Err(LegacyError::InvalidLength {
                length: 2147483647,
                ..
            })
        ));
        let buf = Bytes::from_static(&[0, 0, 0, 2, 1, 2]);
        assert_eq!(Reader::new(&buf, "t").array_len(), Ok(2));
        let buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert!(Reader::new(&buf, "t").array_len().is_err());
    }

    #[test]
    fn writes_mirror_reads() {
        let mut out = BytesMut::new();
        put_string(&mut out, "topic").unwrap();
        put_nullable_string(&mut out, None).unwrap();
        put_nullable_bytes(&mut out, Some(b"xy")).unwrap();
        put_nullable_bytes(&mut out, None).unwrap();
        put_array_len(&mut out, 0).unwrap();
        let buf = out.freeze();
        let mut r = Reader::new(&buf, "t");
        assert_eq!(r.string().unwrap().as_str(), "topic");
        assert_eq!(r.nullable_string().unwrap(), None);
        assert_eq!(r.nullable_bytes().unwrap().as_deref(), Some(&b"xy"[..]));
        assert_eq!(r.nullable_bytes().unwrap(), None);
        assert_eq!(r.array_len().unwrap(), 0);
        r.finish().unwrap();
        let long = "x".repeat(40_000);
        assert!(put_string(&mut BytesMut::new(), &long).is_err());
    }
}

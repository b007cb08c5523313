//! A small little-endian binary codec for state records.
//!
//! Every read is bounds-checked and returns [`DecodeError`]; state bytes come from a
//! Kafka topic or a file and are treated as untrusted. Floats are stored as their
//! IEEE-754 bit patterns so a restore reproduces scores bit for bit.

use crate::error::DecodeError;

/// Largest magnitude of a stored time, in ms since the epoch (2^53: beyond chrono's year
/// 262143, so every real event time fits; differences of two such times never overflow).
pub(crate) const MAX_ABS_TIME_MS: i64 = 1 << 53;

/// Largest counter a state record may hold (2^53: far beyond any real stream, and far enough
/// below `u64::MAX` that the engine's increments never overflow).
pub(crate) const MAX_COUNT: u64 = 1 << 53;

/// Appends values to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }

    pub(crate) fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    /// A collection length. Lengths in state are bounded far below `u32::MAX`.
    pub(crate) fn len(&mut self, n: usize) {
        debug_assert!(u32::try_from(n).is_ok(), "collection too large to encode");
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// Reads values from a byte slice.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::UnexpectedEnd {
                at: self.pos,
                needed: n,
            })?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::UnexpectedEnd {
                at: self.pos,
                needed: n,
            })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A counter: at most [`MAX_COUNT`]. Every `u64` in a state record counts events, and the
    /// engine adds to them with plain `+ 1`; a larger value can only come from corrupt or
    /// hostile state and would overflow (found by the `detector_state` fuzz target).
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let v = u64::from_le_bytes(self.array()?);
        if v > MAX_COUNT {
            return Err(DecodeError::Invalid("counter out of range"));
        }
        Ok(v)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A time in ms: `i64::MIN` (the engine's "never") or within ±[`MAX_ABS_TIME_MS`]. A larger
    /// one can only come from corrupt or hostile state, and would overflow the engine's time
    /// differences (found by the `detector_state` fuzz target).
    pub(crate) fn ms(&mut self) -> Result<i64, DecodeError> {
        let v = self.i64()?;
        if v == i64::MIN || v.unsigned_abs() <= MAX_ABS_TIME_MS.unsigned_abs() {
            Ok(v)
        } else {
            Err(DecodeError::Invalid("time out of range"))
        }
    }

    pub(crate) fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_bits(self.u32()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(u64::from_le_bytes(self.array()?)))
    }

    /// A collection length, rejected if above `max` (guards allocations against
    /// crafted input).
    pub(crate) fn len(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::Invalid(what));
        }
        Ok(n)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        let rest = self.buf.len().saturating_sub(self.pos);
        if rest == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(rest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_types() {
        let mut w = Writer::new();
        w.u8(7);
        w.u16(65000);
        w.u32(123_456);
        w.u64(MAX_COUNT);
        w.i64(-42);
        w.f32(1.5);
        w.f64(f64::NAN);
        w.str("héllo");
        let b = w.into_bytes();
        let mut r = Reader::new(&b);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u16().unwrap(), 65000);
        assert_eq!(r.u32().unwrap(), 123_456);
        assert_eq!(r.u64().unwrap(), MAX_COUNT);
        assert_eq!(r.i64().unwrap(), -42);
        assert_eq!(r.f32().unwrap(), 1.5);
        assert!(r.f64().unwrap().is_nan());
        assert_eq!(r.string().unwrap(), "héllo");
        r.finish().unwrap();
    }

    #[test]
    fn counters_and_times_beyond_their_range_are_rejected() {
        let mut w = Writer::new();
        w.u64(MAX_COUNT + 1);
        w.i64(MAX_ABS_TIME_MS + 1);
        w.i64(i64::MIN);
        w.f64(f64::from_bits(u64::MAX)); // a float's bits are not a counter
        let b = w.into_bytes();
        let mut r = Reader::new(&b);
        assert!(r.u64().is_err());
        assert!(r.ms().is_err());
        assert_eq!(r.ms().unwrap(), i64::MIN);
        assert!(r.f64().unwrap().is_nan());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut w = Writer::new();
        w.str("abcdef");
        let b = w.into_bytes();
        for cut in 0..b.len() {
            let mut r = Reader::new(&b[..cut]);
            assert!(r.string().is_err());
        }
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(r.bytes(), Err(DecodeError::UnexpectedEnd { .. })));
        let mut r = Reader::new(&[9, 0, 0, 0]);
        assert_eq!(r.len(8, "x"), Err(DecodeError::Invalid("x")));
    }
}

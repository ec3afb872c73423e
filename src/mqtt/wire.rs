//! Low-level wire primitives shared by the decoder, the property parser and the
//! encoder: a bounds-checked cursor and the variable byte integer (spec 1.5.5).

/// Outcome of reading a variable byte integer from the start of a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Varint {
    /// Value and bytes used (1..=4).
    Ok(u32, usize),
    /// The slice ended before the last byte (continuation bit still set).
    Incomplete,
    /// A 4th byte still has the continuation bit set: a 5th byte would be needed.
    Invalid,
}

/// Reads a variable byte integer. Non-minimal encodings (e.g. `80 00`) are accepted
/// like brokers and tshark do; only the 4-byte limit is structural.
#[inline]
pub(crate) fn read_varint(buf: &[u8]) -> Varint {
    let mut value: u32 = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Varint::Incomplete;
        };
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Varint::Ok(value, i + 1);
        }
    }
    Varint::Invalid
}

/// Largest value a variable byte integer can hold (spec 1.5.5).
pub const VARINT_MAX: u32 = 268_435_455;

/// Appends `v` (clamped to `VARINT_MAX`) as a minimal variable byte integer.
pub(crate) fn write_varint(v: u32, out: &mut Vec<u8>) {
    let mut v = v.min(VARINT_MAX);
    loop {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if v != 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            return;
        }
    }
}

/// Bytes `write_varint(v)` produces.
pub(crate) fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends a two-byte length prefix and the bytes. Fields longer than 65,535 bytes
/// cannot be represented; they are cut to that length (encoder inputs come from
/// tests, the generator and re-encoding decoded packets, which always fit).
pub(crate) fn write_bytes16(b: &[u8], out: &mut Vec<u8>) {
    let b = &b[..b.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// Forward-only cursor over a borrowed slice. Every read is bounds-checked and
/// returns `None` instead of panicking; callers map that to the right error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// Everything not yet read.
    #[inline]
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    #[inline]
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(b)
    }
    #[inline]
    pub(crate) fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    #[inline]
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Two-byte length prefix followed by that many bytes (strings and binary data).
    #[inline]
    pub(crate) fn bytes16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    #[inline]
    pub(crate) fn varint(&mut self) -> Varint {
        let v = read_varint(self.buf);
        if let Varint::Ok(_, n) = v {
            self.buf = self.buf.get(n..).unwrap_or_default();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_spec_boundaries() {
        // Spec 1.5.5 table: 0 / 127 / 128 / 16383 / 16384 / 2097151 / 2097152 / 268435455.
        let cases: &[(u32, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for &(v, bytes) in cases {
            assert_eq!(read_varint(bytes), Varint::Ok(v, bytes.len()), "{v}");
            let mut out = Vec::new();
            write_varint(v, &mut out);
            assert_eq!(out, bytes);
            assert_eq!(varint_len(v), bytes.len());
        }
    }

    #[test]
    fn varint_incomplete_and_invalid() {
        assert_eq!(read_varint(&[]), Varint::Incomplete);
        assert_eq!(read_varint(&[0x80]), Varint::Incomplete);
        assert_eq!(read_varint(&[0xff, 0xff, 0xff]), Varint::Incomplete);
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0x80]), Varint::Invalid);
        assert_eq!(read_varint(&[0x80, 0x00]), Varint::Ok(0, 2));
    }

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(&[0, 3, b'a', b'b']);
        assert_eq!(r.bytes16(), None);
        let mut r = Reader::new(&[0, 2, b'a', b'b', 9]);
        assert_eq!(r.bytes16(), Some(&b"ab"[..]));
        assert_eq!(r.u16(), None);
        assert_eq!(r.u8(), Some(9));
        assert_eq!(r.u8(), None);
        assert!(r.is_empty());
    }
}

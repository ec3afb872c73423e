//! Fixed header (spec 2.1): type/flags byte and the remaining-length varint. Parsed on
//! its own so a stream can be cut into packets by length before any body is examined,
//! which lets callers skip reserved types and oversized packets cheaply.

use super::wire::{Varint, read_varint};
use super::{DecodeError, FixedHeader};

/// Parses the fixed header at the start of `buf`.
///
/// `Ok(None)`: `buf` ends inside the header (need more bytes). `Err(BadRemainingLength)`:
/// the remaining length would need a 5th byte. Type 0 is *not* rejected here so the
/// caller can still skip the packet by its length; `decode_body` rejects it.
#[inline]
pub fn parse_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first_byte, rest)) = buf.split_first() else {
        return Ok(None);
    };
    match read_varint(rest) {
        Varint::Ok(remaining_length, n) => Ok(Some(FixedHeader {
            first_byte,
            remaining_length,
            header_len: (n + 1) as u8,
        })),
        Varint::Incomplete => Ok(None),
        Varint::Invalid => Err(DecodeError::BadRemainingLength),
    }
}

/// The fixed header `encode` would write for a packet with this first byte and body length.
pub fn fixed_header_for(first_byte: u8, remaining_length: u32) -> FixedHeader {
    let remaining_length = remaining_length.min(super::wire::VARINT_MAX);
    FixedHeader {
        first_byte,
        remaining_length,
        header_len: (1 + super::wire::varint_len(remaining_length)) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_headers() {
        // PINGREQ: C0 00.
        let h = parse_fixed_header(&[0xc0, 0x00]).unwrap().unwrap();
        assert_eq!(h.first_byte, 0xc0);
        assert_eq!(h.remaining_length, 0);
        assert_eq!(h.header_len, 2);
        assert_eq!(h.total_len(), 2);
        // PUBLISH QoS1 retain with 321 bytes: 0x41 0x02 = 65 + 2*128.
        let h = parse_fixed_header(&[0x33, 0xc1, 0x02, 0xaa])
            .unwrap()
            .unwrap();
        assert_eq!(h.flags(), 0x3);
        assert_eq!(h.remaining_length, 321);
        assert_eq!(h.header_len, 3);
        assert_eq!(h.total_len(), 324);
    }

    #[test]
    fn needs_more_bytes() {
        assert_eq!(parse_fixed_header(&[]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30, 0x80]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30, 0xff, 0xff, 0xff]), Ok(None));
    }

    #[test]
    fn five_byte_length_is_an_error() {
        assert_eq!(
            parse_fixed_header(&[0x30, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::BadRemainingLength)
        );
        // Detected even before the 5th byte arrives.
        assert_eq!(
            parse_fixed_header(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::BadRemainingLength)
        );
    }

    #[test]
    fn type_zero_is_framed() {
        let h = parse_fixed_header(&[0x00, 0x02, 0, 0]).unwrap().unwrap();
        assert_eq!(h.packet_type(), None);
        assert_eq!(h.total_len(), 4);
    }

    #[test]
    fn max_length() {
        let h = parse_fixed_header(&[0x30, 0xff, 0xff, 0xff, 0x7f])
            .unwrap()
            .unwrap();
        assert_eq!(h.remaining_length, 268_435_455);
        assert_eq!(h.header_len, 5);
        assert_eq!(fixed_header_for(0x30, 268_435_455), h);
    }
}

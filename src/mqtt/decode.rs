//! Stub: body decoding (filled in by the mqtt work).
use super::{DecodeError, FixedHeader, Packet, ProtocolLevel};

pub fn decode_body<'a>(_h: &FixedHeader, _body: &'a [u8], _level: ProtocolLevel) -> Result<Packet<'a>, DecodeError> {
    Err(DecodeError::Truncated)
}
pub fn decode_packet(_buf: &[u8], _level: ProtocolLevel, _max: u32) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    Ok(None)
}
pub fn peek_connect_level(_body: &[u8]) -> Option<ProtocolLevel> {
    None
}

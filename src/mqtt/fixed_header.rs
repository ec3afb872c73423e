//! Stub (filled in by the mqtt work).
use super::{DecodeError, FixedHeader};
pub fn parse_fixed_header(_buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    Ok(None)
}

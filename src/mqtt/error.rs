//! Typed decode errors. `kind()` gives the stable snake_case name used in reports,
//! counters and the jsonl `error` field.

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum DecodeError {
    /// The remaining-length varint uses more than 4 bytes.
    #[error("remaining length is not a valid variable byte integer")]
    BadRemainingLength,
    /// Fixed-header type nibble 0 (reserved).
    #[error("reserved packet type 0")]
    ReservedType,
    /// Remaining length exceeds the configured maximum; the packet is skipped by its length.
    #[error("packet larger than the configured maximum")]
    Oversized,
    /// The body ended before a field that must be there.
    #[error("packet body shorter than its fields")]
    Truncated,
    /// Bytes left after the last field of a packet type that allows none.
    #[error("unexpected bytes after the last field")]
    TrailingBytes,
    /// CONNECT protocol name/level not one of MQIsdp/3, MQTT/4, MQTT/5.
    #[error("unknown protocol name or level in CONNECT")]
    UnknownProtocol,
    /// A property length or a property inside it does not fit.
    #[error("malformed property block")]
    BadProperties,
    /// Unknown property identifier.
    #[error("unknown property identifier")]
    UnknownProperty,
    /// A property not allowed in this packet type.
    #[error("property not allowed in this packet type")]
    PropertyNotAllowed,
    /// A variable byte integer (other than remaining length) is invalid.
    #[error("invalid variable byte integer")]
    BadVarint,
    /// SUBSCRIBE / UNSUBSCRIBE / SUBACK without any entries.
    #[error("empty topic filter or code list")]
    EmptyList,
}

impl DecodeError {
    pub const ALL: [DecodeError; 11] = [
        DecodeError::BadRemainingLength,
        DecodeError::ReservedType,
        DecodeError::Oversized,
        DecodeError::Truncated,
        DecodeError::TrailingBytes,
        DecodeError::UnknownProtocol,
        DecodeError::BadProperties,
        DecodeError::UnknownProperty,
        DecodeError::PropertyNotAllowed,
        DecodeError::BadVarint,
        DecodeError::EmptyList,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            DecodeError::BadRemainingLength => "bad_remaining_length",
            DecodeError::ReservedType => "reserved_type",
            DecodeError::Oversized => "oversized",
            DecodeError::Truncated => "truncated",
            DecodeError::TrailingBytes => "trailing_bytes",
            DecodeError::UnknownProtocol => "unknown_protocol",
            DecodeError::BadProperties => "bad_properties",
            DecodeError::UnknownProperty => "unknown_property",
            DecodeError::PropertyNotAllowed => "property_not_allowed",
            DecodeError::BadVarint => "bad_varint",
            DecodeError::EmptyList => "empty_list",
        }
    }
}

//! MQTT 3.1 / 3.1.1 / 5 wire format: one decoder, one encoder, no I/O.
//!
//! - `packet`: the version-neutral `Packet` model (borrows from the input).
//! - `fixed_header`: length-first framing (`parse_fixed_header`), used to cut packets
//!   out of a byte stream before looking at any body.
//! - `decode`: body decoding for every packet type and protocol level.
//! - `properties`: MQTT 5 property parsing/iteration and which packet allows which.
//! - `encode`: the inverse of `decode`, for tests, fuzzing and the synthetic capture generator.
//! - `session`: per-connection codec state: protocol level and topic aliases per direction.
//! - `validate`: protocol violations that do not stop decoding (QoS 3, wildcards in a
//!   PUBLISH topic, invalid UTF-8, reserved flags).
//! - `reason`: names of CONNACK return codes and MQTT 5 reason codes.

// Wire data reaches everything in this module: a panic here would take the sidecar down.
// Outside tests, unwrap/expect are refused by clippy; failures are typed errors or counts.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod decode;
pub mod encode;
pub mod error;
pub mod fixed_header;
pub mod packet;
pub mod properties;
pub mod reason;
pub mod session;
pub mod validate;
mod wire;

pub use wire::VARINT_MAX;

pub use decode::{decode_body, decode_packet, peek_connect_level};
pub use error::DecodeError;
pub use fixed_header::parse_fixed_header;
pub use packet::*;
pub use session::{Direction, Session, SessionLimits, SessionStats, TopicResolution};
pub use validate::{Violation, Violations};

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod session_tests;

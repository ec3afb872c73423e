//! Names of MQTT 3.x CONNACK return codes / SUBACK return codes and of every MQTT 5
//! reason code (spec 5.0 section 2.4; 3.1.1 sections 3.2.2.3 and 3.9.3).

use super::{PacketType, ProtocolLevel};

/// Human-readable name of `code` as carried by `packet_type` at `level`
/// ("unknown" for codes the spec does not define there).
pub fn name(packet_type: PacketType, code: u8, level: ProtocolLevel) -> &'static str {
    if level < 5 && packet_type != PacketType::Auth {
        return match (packet_type, code) {
            (PacketType::ConnAck, 0) => "Connection Accepted",
            (PacketType::ConnAck, 1) => "Unacceptable protocol version",
            (PacketType::ConnAck, 2) => "Identifier rejected",
            (PacketType::ConnAck, 3) => "Server unavailable",
            (PacketType::ConnAck, 4) => "Bad user name or password",
            (PacketType::ConnAck, 5) => "Not authorized",
            (PacketType::SubAck, 0) => "Success - Maximum QoS 0",
            (PacketType::SubAck, 1) => "Success - Maximum QoS 1",
            (PacketType::SubAck, 2) => "Success - Maximum QoS 2",
            (PacketType::SubAck, 0x80) => "Failure",
            _ => "unknown",
        };
    }
    match code {
        0x00 => match packet_type {
            PacketType::Disconnect => "Normal disconnection",
            PacketType::SubAck => "Granted QoS 0",
            _ => "Success",
        },
        0x01 => "Granted QoS 1",
        0x02 => "Granted QoS 2",
        0x04 => "Disconnect with Will Message",
        0x10 => "No matching subscribers",
        0x11 => "No subscription existed",
        0x18 => "Continue authentication",
        0x19 => "Re-authenticate",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8B => "Server shutting down",
        0x8C => "Bad authentication method",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x92 => "Packet Identifier not found",
        0x93 => "Receive Maximum exceeded",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9E => "Shared Subscriptions not supported",
        0x9F => "Connection rate exceeded",
        0xA0 => "Maximum connect time",
        0xA1 => "Subscription Identifiers not supported",
        0xA2 => "Wildcard Subscriptions not supported",
        _ => "unknown",
    }
}

/// MQTT 5 rule, also right for 3.x SUBACK (0x80 = failure): codes from 0x80 up fail.
pub fn is_failure(code: u8) -> bool {
    code >= 0x80
}

/// `is_failure` with the one context-dependent case: a 3.x CONNACK fails on any non-zero code.
pub fn is_failure_in(packet_type: PacketType, code: u8, level: ProtocolLevel) -> bool {
    if level < 5 && packet_type == PacketType::ConnAck {
        code != 0
    } else {
        is_failure(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_connack_codes() {
        assert_eq!(name(PacketType::ConnAck, 0, 4), "Connection Accepted");
        assert_eq!(name(PacketType::ConnAck, 5, 3), "Not authorized");
        assert_eq!(name(PacketType::ConnAck, 6, 4), "unknown");
        assert!(!is_failure_in(PacketType::ConnAck, 0, 4));
        assert!(is_failure_in(PacketType::ConnAck, 4, 4));
        assert!(is_failure_in(PacketType::SubAck, 0x80, 4));
        assert!(!is_failure_in(PacketType::SubAck, 2, 4));
    }

    #[test]
    fn v5_codes() {
        // Spec 2.4: 0x00 depends on the packet; 43 distinct codes are defined.
        assert_eq!(name(PacketType::Disconnect, 0, 5), "Normal disconnection");
        assert_eq!(name(PacketType::SubAck, 0, 5), "Granted QoS 0");
        assert_eq!(name(PacketType::PubAck, 0, 5), "Success");
        assert_eq!(
            name(PacketType::ConnAck, 0x86, 5),
            "Bad User Name or Password"
        );
        assert_eq!(name(PacketType::Auth, 0x18, 4), "Continue authentication");
        let defined = (0u8..=255)
            .filter(|&c| name(PacketType::PubAck, c, 5) != "unknown")
            .count();
        assert_eq!(defined, 43);
        assert!(is_failure(0x80) && !is_failure(0x7f) && !is_failure(0x18));
        assert!(
            is_failure_in(PacketType::ConnAck, 0x86, 5)
                && !is_failure_in(PacketType::ConnAck, 0, 5)
        );
    }
}

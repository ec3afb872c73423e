//! Protocol violations that do not stop decoding. A passive observer reports these
//! instead of dropping the packet (a broker would disconnect the client). Checks are
//! allocation-free and return a small bitset.

use super::properties::{PropContext, repeatable};
use super::{FixedHeader, MqttStr, Packet, PacketType, Properties, ProtocolLevel};

/// One kind of violation. `kind()` is the stable snake_case name used in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Violation {
    /// PUBLISH (or Will) QoS 3.
    InvalidQos = 0,
    /// Fixed-header flags other than the spec demands for the type (spec 2.1.3).
    ReservedFlags,
    /// '+' or '#' in a PUBLISH (or Will) topic name.
    WildcardInPublishTopic,
    /// A string field that is not valid UTF-8 or contains U+0000.
    InvalidUtf8,
    /// CONNECT flags bit 0 set.
    ReservedConnectFlag,
    /// Will QoS / Will Retain set without the Will flag.
    WillFlagsWithoutWill,
    /// Packet identifier 0 where a non-zero one is required.
    PacketIdZero,
    /// PUBLISH with an empty topic and no Topic Alias (3.x never allows an empty topic).
    EmptyTopicWithoutAlias,
    /// 3.x CONNECT with a password but no user name.
    PasswordWithoutUsername,
    /// AUTH on a connection below MQTT 5.
    AuthBeforeV5,
    /// Subscription options with reserved bits set, QoS 3 or Retain Handling 3.
    InvalidSubscriptionOptions,
    /// An MQTT 5 property that may appear only once appears again.
    DuplicateProperty,
    /// Topic Alias property with value 0.
    TopicAliasZero,
}

impl Violation {
    pub const ALL: [Violation; 13] = [
        Violation::InvalidQos,
        Violation::ReservedFlags,
        Violation::WildcardInPublishTopic,
        Violation::InvalidUtf8,
        Violation::ReservedConnectFlag,
        Violation::WillFlagsWithoutWill,
        Violation::PacketIdZero,
        Violation::EmptyTopicWithoutAlias,
        Violation::PasswordWithoutUsername,
        Violation::AuthBeforeV5,
        Violation::InvalidSubscriptionOptions,
        Violation::DuplicateProperty,
        Violation::TopicAliasZero,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            Violation::InvalidQos => "invalid_qos",
            Violation::ReservedFlags => "reserved_flags",
            Violation::WildcardInPublishTopic => "wildcard_in_publish_topic",
            Violation::InvalidUtf8 => "invalid_utf8",
            Violation::ReservedConnectFlag => "reserved_connect_flag",
            Violation::WillFlagsWithoutWill => "will_flags_without_will",
            Violation::PacketIdZero => "packet_id_zero",
            Violation::EmptyTopicWithoutAlias => "empty_topic_without_alias",
            Violation::PasswordWithoutUsername => "password_without_username",
            Violation::AuthBeforeV5 => "auth_before_v5",
            Violation::InvalidSubscriptionOptions => "invalid_subscription_options",
            Violation::DuplicateProperty => "duplicate_property",
            Violation::TopicAliasZero => "topic_alias_zero",
        }
    }
}

/// Set of violations found in one packet.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Violations(u16);

impl Violations {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, v: Violation) -> bool {
        self.0 & (1 << v as u8) != 0
    }
    pub fn insert(&mut self, v: Violation) {
        self.0 |= 1 << v as u8;
    }
    fn set_if(&mut self, cond: bool, v: Violation) {
        if cond {
            self.insert(v);
        }
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn bits(self) -> u16 {
        self.0
    }
    pub fn iter(self) -> impl Iterator<Item = Violation> {
        Violation::ALL
            .into_iter()
            .filter(move |v| self.contains(*v))
    }
}

impl std::fmt::Debug for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Violation::kind))
            .finish()
    }
}

/// Spec-mandated fixed-header flags, or `None` for PUBLISH (its flags carry data).
fn required_flags(t: PacketType) -> Option<u8> {
    match t {
        PacketType::Publish => None,
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
        _ => Some(0),
    }
}

fn bad_str(s: MqttStr<'_>) -> bool {
    // Fast path: printable-or-control ASCII without NUL is valid; most topics are ASCII.
    if s.0.is_ascii() {
        return s.0.contains(&0);
    }
    !s.is_valid_mqtt()
}

fn has_wildcard(s: MqttStr<'_>) -> bool {
    s.0.iter().any(|&b| b == b'+' || b == b'#')
}

/// Property checks: strings in UTF-8, no duplicates of once-only ids, alias != 0.
fn check_props(pr: &Properties<'_>, ctx: PropContext, v: &mut Violations) {
    use super::Property as P;
    if pr.is_empty() {
        return;
    }
    let mut seen: u64 = 0;
    for p in pr.iter() {
        let id = p.id();
        let bit = 1u64 << (id & 63);
        if seen & bit != 0 && !repeatable(id, ctx) {
            v.insert(Violation::DuplicateProperty);
        }
        seen |= bit;
        match p {
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => v.set_if(bad_str(s), Violation::InvalidUtf8),
            P::UserProperty(k, s) => v.set_if(bad_str(k) || bad_str(s), Violation::InvalidUtf8),
            P::TopicAlias(0) => v.insert(Violation::TopicAliasZero),
            _ => {}
        }
    }
}

/// All violations in a decoded packet. `level` is the connection's protocol level (for
/// CONNECT the packet's own level is used).
pub fn violations(h: &FixedHeader, p: &Packet<'_>, level: ProtocolLevel) -> Violations {
    let mut v = Violations::default();
    let t = p.packet_type();
    if let Some(req) = required_flags(t) {
        v.set_if(h.flags() != req, Violation::ReservedFlags);
    }
    let ctx = PropContext::packet(t);
    match p {
        Packet::Connect(c) => {
            let v5 = c.protocol_level & 0x7f >= 5;
            v.set_if(c.flags & 0x01 != 0, Violation::ReservedConnectFlag);
            v.set_if(bad_str(c.client_id), Violation::InvalidUtf8);
            if let Some(u) = c.username {
                v.set_if(bad_str(u), Violation::InvalidUtf8);
            }
            v.set_if(
                !v5 && c.password.is_some() && c.username.is_none(),
                Violation::PasswordWithoutUsername,
            );
            check_props(&c.properties, ctx, &mut v);
            match &c.will {
                Some(w) => {
                    v.set_if(w.qos == 3, Violation::InvalidQos);
                    v.set_if(bad_str(w.topic), Violation::InvalidUtf8);
                    v.set_if(has_wildcard(w.topic), Violation::WildcardInPublishTopic);
                    check_props(&w.properties, PropContext::WILL, &mut v);
                }
                None => v.set_if(c.flags & 0x38 != 0, Violation::WillFlagsWithoutWill),
            }
        }
        Packet::ConnAck(c) => check_props(&c.properties, ctx, &mut v),
        Packet::Publish(pb) => {
            v.set_if(pb.qos == 3, Violation::InvalidQos);
            v.set_if(pb.packet_id == Some(0), Violation::PacketIdZero);
            v.set_if(bad_str(pb.topic), Violation::InvalidUtf8);
            v.set_if(has_wildcard(pb.topic), Violation::WildcardInPublishTopic);
            if pb.topic.is_empty() && (level < 5 || pb.properties.topic_alias().is_none()) {
                v.insert(Violation::EmptyTopicWithoutAlias);
            }
            check_props(&pb.properties, ctx, &mut v);
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            v.set_if(a.packet_id == 0, Violation::PacketIdZero);
            check_props(&a.properties, ctx, &mut v);
        }
        Packet::Subscribe(s) => {
            v.set_if(s.packet_id == 0, Violation::PacketIdZero);
            check_props(&s.properties, ctx, &mut v);
            for (f, o) in s.filters() {
                v.set_if(bad_str(f), Violation::InvalidUtf8);
                // 3.x: only the QoS bits exist. 5: bits 6-7 reserved, retain handling 3 invalid.
                let bad = (o & 0x03) == 3
                    || if level >= 5 {
                        o & 0xc0 != 0 || (o >> 4) & 0x03 == 3
                    } else {
                        o & 0xfc != 0
                    };
                v.set_if(bad, Violation::InvalidSubscriptionOptions);
            }
        }
        Packet::Unsubscribe(s) => {
            v.set_if(s.packet_id == 0, Violation::PacketIdZero);
            check_props(&s.properties, ctx, &mut v);
            for f in s.filters() {
                v.set_if(bad_str(f), Violation::InvalidUtf8);
            }
        }
        Packet::SubAck(s) | Packet::UnsubAck(s) => {
            v.set_if(s.packet_id == 0, Violation::PacketIdZero);
            check_props(&s.properties, ctx, &mut v);
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => check_props(&d.properties, ctx, &mut v),
        Packet::Auth(d) => {
            v.set_if(level < 5, Violation::AuthBeforeV5);
            check_props(&d.properties, ctx, &mut v);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::decode_packet;
    use crate::mqtt::parse_fixed_header;

    /// Frames a body; lengths here are small, so one length byte.
    fn pkt(first: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![first, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    fn viol(bytes: &[u8], level: u8) -> Vec<&'static str> {
        let h = parse_fixed_header(bytes).unwrap().unwrap();
        let (p, _) = decode_packet(bytes, level, u32::MAX).unwrap().unwrap();
        violations(&h, &p, level)
            .iter()
            .map(Violation::kind)
            .collect()
    }

    #[test]
    fn clean_packets_have_none() {
        assert!(viol(&pkt(0x30, &[0, 3, b'a', b'/', b'b']), 4).is_empty());
        assert!(viol(&pkt(0x82, &[0, 1, 0, 1, b'#', 2]), 4).is_empty());
        assert!(viol(&pkt(0x62, &[0, 1]), 4).is_empty());
        assert!(viol(&pkt(0xc0, &[]), 4).is_empty());
    }

    #[test]
    fn publish_violations() {
        // QoS 3 (flags 0b0110) with packet id 0 and a wildcard topic.
        assert_eq!(
            viol(&pkt(0x36, &[0, 3, b'a', b'/', b'#', 0, 0]), 4),
            ["invalid_qos", "wildcard_in_publish_topic", "packet_id_zero"]
        );
        // Invalid UTF-8 (lone continuation byte) and NUL.
        assert_eq!(viol(&pkt(0x30, &[0, 1, 0x80]), 4), ["invalid_utf8"]);
        assert_eq!(viol(&pkt(0x30, &[0, 1, 0x00]), 4), ["invalid_utf8"]);
        // Valid multi-byte UTF-8 ("é").
        assert!(viol(&pkt(0x30, &[0, 2, 0xc3, 0xa9]), 4).is_empty());
        // Empty topic: always a violation in 3.x; fine in 5 with an alias, unless alias 0.
        assert_eq!(viol(&pkt(0x30, &[0, 0]), 4), ["empty_topic_without_alias"]);
        assert_eq!(
            viol(&pkt(0x30, &[0, 0, 0]), 5),
            ["empty_topic_without_alias"]
        );
        assert!(viol(&pkt(0x30, &[0, 0, 3, 0x23, 0, 1]), 5).is_empty());
        assert_eq!(
            viol(&pkt(0x30, &[0, 0, 3, 0x23, 0, 0]), 5),
            ["topic_alias_zero"]
        );
        // Duplicate topic alias; repeated subscription identifiers are allowed in PUBLISH.
        assert_eq!(
            viol(&pkt(0x30, &[0, 0, 6, 0x23, 0, 1, 0x23, 0, 2]), 5),
            ["duplicate_property"]
        );
        assert!(viol(&pkt(0x30, &[0, 1, b't', 4, 0x0b, 1, 0x0b, 2]), 5).is_empty());
    }

    #[test]
    fn reserved_flags() {
        assert_eq!(
            viol(&pkt(0x80, &[0, 1, 0, 1, b'#', 0]), 4),
            ["reserved_flags"]
        );
        assert_eq!(viol(&pkt(0x60, &[0, 1]), 4), ["reserved_flags"]);
        assert_eq!(viol(&pkt(0xc1, &[]), 4), ["reserved_flags"]);
        assert_eq!(viol(&pkt(0x41, &[0, 1]), 4), ["reserved_flags"]);
    }

    #[test]
    fn connect_violations() {
        // 3.1.1, flags 0x59 = password 0x40 | will QoS bits 0x18 without will | reserved 0x01.
        let b = pkt(
            0x10,
            &[
                0, 4, b'M', b'Q', b'T', b'T', 4, 0x59, 0, 0, 0, 1, b'c', 0, 2, b'p', b'w',
            ],
        );
        assert_eq!(
            viol(&b, 4),
            [
                "reserved_connect_flag",
                "will_flags_without_will",
                "password_without_username"
            ]
        );
        // Will with QoS 3 (flags 0x1c = qos bits 11 + will) and wildcard will topic "+".
        let b = pkt(
            0x10,
            &[
                0, 4, b'M', b'Q', b'T', b'T', 4, 0x1c, 0, 0, 0, 1, b'c', 0, 1, b'+', 0, 0,
            ],
        );
        assert_eq!(viol(&b, 4), ["invalid_qos", "wildcard_in_publish_topic"]);
    }

    #[test]
    fn subscribe_options_and_ids() {
        // 3.x options 0x04 (bit 2 reserved in 3.x), packet id 0.
        assert_eq!(
            viol(&pkt(0x82, &[0, 0, 0, 1, b'#', 4]), 4),
            ["packet_id_zero", "invalid_subscription_options"]
        );
        // Same byte is No Local in 5: fine. Retain handling 3 (0x30) is not.
        assert!(viol(&pkt(0x82, &[0, 1, 0, 0, 1, b'#', 4]), 5).is_empty());
        assert_eq!(
            viol(&pkt(0x82, &[0, 1, 0, 0, 1, b'#', 0x30]), 5),
            ["invalid_subscription_options"]
        );
        assert_eq!(
            viol(&pkt(0xa2, &[0, 0, 0, 1, 0xff]), 4),
            ["invalid_utf8", "packet_id_zero"]
        );
    }

    #[test]
    fn auth_before_v5() {
        assert_eq!(viol(&pkt(0xf0, &[]), 4), ["auth_before_v5"]);
        assert!(viol(&pkt(0xf0, &[]), 5).is_empty());
    }
}

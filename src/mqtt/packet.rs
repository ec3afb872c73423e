//! The version-neutral MQTT control packet model.
//!
//! One `Packet` type serves MQTT 3.1 (protocol level 3, "MQIsdp"), 3.1.1 (level 4)
//! and 5 (level 5). Fields that exist only in MQTT 5 (properties, most reason codes)
//! are empty / `None` for older levels. Everything borrows from the input buffer:
//! decoding allocates nothing.

use std::fmt;

/// Protocol level as carried in CONNECT: 3 = MQTT 3.1, 4 = MQTT 3.1.1, 5 = MQTT 5.
pub type ProtocolLevel = u8;

/// The 15 control packet types (values are the fixed-header type nibble).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    pub const ALL: [PacketType; 15] = [
        PacketType::Connect,
        PacketType::ConnAck,
        PacketType::Publish,
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
        PacketType::Subscribe,
        PacketType::SubAck,
        PacketType::Unsubscribe,
        PacketType::UnsubAck,
        PacketType::PingReq,
        PacketType::PingResp,
        PacketType::Disconnect,
        PacketType::Auth,
    ];

    /// Type from the fixed header's high nibble; `None` for the reserved value 0.
    pub fn from_nibble(n: u8) -> Option<PacketType> {
        match n {
            1..=15 => Some(Self::ALL[(n - 1) as usize]),
            _ => None,
        }
    }

    /// Upper-case name as used in reports and tshark ("CONNECT", "PUBACK", ...).
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }
}

/// A UTF-8 string field as it appeared on the wire. MQTT requires valid UTF-8, but a
/// passive observer must still report a packet that violates this, so validity is a
/// question asked of the string (`as_str`) rather than a reason to drop the packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MqttStr<'a>(pub &'a [u8]);

impl<'a> MqttStr<'a> {
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The string if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }
    /// Valid UTF-8 without U+0000 (MQTT-1.5.4-2)? Other checks live in `validate`.
    pub fn is_valid_mqtt(&self) -> bool {
        self.as_str().is_some_and(|s| !s.contains('\0'))
    }
    pub fn to_string_lossy(&self) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.0)
    }
}

impl fmt::Debug for MqttStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

/// The parsed fixed header: first byte and the variable-length remaining length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    /// Byte 1: type in the high nibble, flags in the low nibble.
    pub first_byte: u8,
    /// Remaining length (variable header + payload), at most 268_435_455.
    pub remaining_length: u32,
    /// Bytes taken by the fixed header itself (2..=5).
    pub header_len: u8,
}

impl FixedHeader {
    pub fn type_nibble(&self) -> u8 {
        self.first_byte >> 4
    }
    pub fn packet_type(&self) -> Option<PacketType> {
        PacketType::from_nibble(self.type_nibble())
    }
    pub fn flags(&self) -> u8 {
        self.first_byte & 0x0f
    }
    /// Whole packet length on the wire: fixed header + remaining length.
    pub fn total_len(&self) -> usize {
        self.header_len as usize + self.remaining_length as usize
    }
}

/// Raw, already validated MQTT 5 property block (the bytes after the property-length
/// varint). Iterate with `iter()`; empty for MQTT 3.x. `Debug` lists the properties.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Properties<'a> {
    pub raw: &'a [u8],
}

/// One MQTT 5 property (MQTT 5.0 spec section 2.2.2.2), borrowed from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property<'a> {
    PayloadFormatIndicator(u8),             // 0x01
    MessageExpiryInterval(u32),             // 0x02
    ContentType(MqttStr<'a>),               // 0x03
    ResponseTopic(MqttStr<'a>),             // 0x08
    CorrelationData(&'a [u8]),              // 0x09
    SubscriptionIdentifier(u32),            // 0x0B (varint)
    SessionExpiryInterval(u32),             // 0x11
    AssignedClientIdentifier(MqttStr<'a>),  // 0x12
    ServerKeepAlive(u16),                   // 0x13
    AuthenticationMethod(MqttStr<'a>),      // 0x15
    AuthenticationData(&'a [u8]),           // 0x16
    RequestProblemInformation(u8),          // 0x17
    WillDelayInterval(u32),                 // 0x18
    RequestResponseInformation(u8),         // 0x19
    ResponseInformation(MqttStr<'a>),       // 0x1A
    ServerReference(MqttStr<'a>),           // 0x1C
    ReasonString(MqttStr<'a>),              // 0x1F
    ReceiveMaximum(u16),                    // 0x21
    TopicAliasMaximum(u16),                 // 0x22
    TopicAlias(u16),                        // 0x23
    MaximumQoS(u8),                         // 0x24
    RetainAvailable(u8),                    // 0x25
    UserProperty(MqttStr<'a>, MqttStr<'a>), // 0x26
    MaximumPacketSize(u32),                 // 0x27
    WildcardSubscriptionAvailable(u8),      // 0x28
    SubscriptionIdentifierAvailable(u8),    // 0x29
    SharedSubscriptionAvailable(u8),        // 0x2A
}

/// CONNECT (type 1). `Debug` shows the password's length only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// "MQTT" (levels 4, 5) or "MQIsdp" (level 3).
    pub protocol_name: MqttStr<'a>,
    pub protocol_level: ProtocolLevel,
    /// Raw connect flags byte (reserved bit 0 must be 0).
    pub flags: u8,
    /// Clean Session (3.x) / Clean Start (5).
    pub clean_start: bool,
    pub keep_alive: u16,
    pub properties: Properties<'a>,
    pub client_id: MqttStr<'a>,
    pub will: Option<Will<'a>>,
    pub username: Option<MqttStr<'a>>,
    /// Kept for length only; never logged or exported.
    pub password: Option<&'a [u8]>,
}

impl fmt::Debug for Connect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("protocol_name", &self.protocol_name)
            .field("protocol_level", &self.protocol_level)
            .field("flags", &format_args!("{:#04x}", self.flags))
            .field("clean_start", &self.clean_start)
            .field("keep_alive", &self.keep_alive)
            .field("properties", &self.properties)
            .field("client_id", &self.client_id)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password_len", &self.password.map(<[u8]>::len))
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Will<'a> {
    pub properties: Properties<'a>,
    pub topic: MqttStr<'a>,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
}

/// CONNACK (type 2). `code` is the MQTT 3 return code or the MQTT 5 reason code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnAck<'a> {
    pub session_present: bool,
    pub code: u8,
    pub properties: Properties<'a>,
}

/// PUBLISH (type 3). `topic` is the topic as on the wire (empty when an MQTT 5 topic
/// alias stands in for it; the session resolves aliases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    /// 0, 1, 2, or 3 (invalid, reported by `validate`, decoded as if it had a packet id).
    pub qos: u8,
    pub retain: bool,
    pub topic: MqttStr<'a>,
    /// Present when qos > 0.
    pub packet_id: Option<u16>,
    pub properties: Properties<'a>,
    pub payload: &'a [u8],
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP (types 4-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    pub packet_id: u16,
    /// MQTT 5 reason code; `None` when absent on the wire (3.x, or 5's short form meaning 0x00).
    pub reason_code: Option<u8>,
    pub properties: Properties<'a>,
}

/// SUBSCRIBE (type 8). `filters` holds the validated raw topic-filter list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    /// Raw bytes of the (filter, options) list; iterate with `filters()`.
    pub filters_raw: &'a [u8],
}

/// SUBACK (type 9) and UNSUBACK (type 11). UNSUBACK in 3.x carries no codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubAck<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    /// One return/reason code per filter of the request.
    pub codes: &'a [u8],
}

/// UNSUBSCRIBE (type 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    /// Raw bytes of the filter list; iterate with `filters()`.
    pub filters_raw: &'a [u8],
}

/// DISCONNECT (type 14) and AUTH (type 15): reason code and properties (MQTT 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasonOnly<'a> {
    /// `None` when absent (3.x, or 5 with remaining length 0 meaning 0x00).
    pub reason_code: Option<u8>,
    pub properties: Properties<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck<'a>),
    Publish(Publish<'a>),
    PubAck(Ack<'a>),
    PubRec(Ack<'a>),
    PubRel(Ack<'a>),
    PubComp(Ack<'a>),
    Subscribe(Subscribe<'a>),
    SubAck(SubAck<'a>),
    Unsubscribe(Unsubscribe<'a>),
    UnsubAck(SubAck<'a>),
    PingReq,
    PingResp,
    Disconnect(ReasonOnly<'a>),
    Auth(ReasonOnly<'a>),
}

impl Packet<'_> {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

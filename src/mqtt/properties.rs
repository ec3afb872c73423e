//! MQTT 5 properties (spec 2.2.2): the single validation pass run at decode time,
//! allocation-free iteration over an already validated block, typed getters, and which
//! packet (or the Will) may carry which property.

use std::fmt;

use super::wire::{Reader, Varint};
use super::{DecodeError, MqttStr, PacketType, Properties, Property};

/// Where a property block sits: a packet type, or the Will properties inside CONNECT.
/// Will gets slot 0, which no packet type uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropContext(u8);

impl PropContext {
    pub const WILL: PropContext = PropContext(0);
    pub fn packet(t: PacketType) -> PropContext {
        PropContext(t as u8)
    }
    fn bit(self) -> u16 {
        1 << self.0
    }
}

/// Shape of a property value on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Byte,
    U16,
    U32,
    Varint,
    Str,
    Binary,
    StrPair,
}

const WILL: u16 = 1 << 0;
const CONNECT: u16 = 1 << 1;
const CONNACK: u16 = 1 << 2;
const PUBLISH: u16 = 1 << 3;
const PUBACK: u16 = 1 << 4;
const PUBREC: u16 = 1 << 5;
const PUBREL: u16 = 1 << 6;
const PUBCOMP: u16 = 1 << 7;
const SUBSCRIBE: u16 = 1 << 8;
const SUBACK: u16 = 1 << 9;
const UNSUBSCRIBE: u16 = 1 << 10;
const UNSUBACK: u16 = 1 << 11;
const DISCONNECT: u16 = 1 << 14;
const AUTH: u16 = 1 << 15;
const ANY: u16 = WILL
    | CONNECT
    | CONNACK
    | PUBLISH
    | PUBACK
    | PUBREC
    | PUBREL
    | PUBCOMP
    | SUBSCRIBE
    | SUBACK
    | UNSUBSCRIBE
    | UNSUBACK
    | DISCONNECT
    | AUTH;
const ACKS: u16 = PUBACK | PUBREC | PUBREL | PUBCOMP;

/// Value kind and allowed contexts for each property id (spec 2.2.2.2 table).
#[inline]
fn spec(id: u8) -> Option<(Kind, u16)> {
    use Kind::*;
    Some(match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => (
            match id {
                0x01 => Byte,
                0x02 => U32,
                0x09 => Binary,
                _ => Str,
            },
            PUBLISH | WILL,
        ),
        0x0B => (Varint, PUBLISH | SUBSCRIBE),
        0x11 => (U32, CONNECT | CONNACK | DISCONNECT),
        0x12 => (Str, CONNACK),
        0x13 => (U16, CONNACK),
        0x15 => (Str, CONNECT | CONNACK | AUTH),
        0x16 => (Binary, CONNECT | CONNACK | AUTH),
        0x17 => (Byte, CONNECT),
        0x18 => (U32, WILL),
        0x19 => (Byte, CONNECT),
        0x1A => (Str, CONNACK),
        0x1C => (Str, CONNACK | DISCONNECT),
        0x1F => (Str, CONNACK | ACKS | SUBACK | UNSUBACK | DISCONNECT | AUTH),
        0x21 | 0x22 => (U16, CONNECT | CONNACK),
        0x23 => (U16, PUBLISH),
        0x24 | 0x25 => (Byte, CONNACK),
        0x26 => (StrPair, ANY),
        0x27 => (U32, CONNECT | CONNACK),
        0x28..=0x2A => (Byte, CONNACK),
        _ => return None,
    })
}

/// Is property `id` defined by the spec at all?
pub fn is_known(id: u8) -> bool {
    spec(id).is_some()
}

/// May property `id` appear in `ctx`? (false for unknown ids)
pub fn allowed(id: u8, ctx: PropContext) -> bool {
    spec(id).is_some_and(|(_, mask)| mask & ctx.bit() != 0)
}

/// May the property appear more than once? Only User Property, and Subscription
/// Identifier in PUBLISH (one per matching subscription), spec 3.3.2.3.8.
pub fn repeatable(id: u8, ctx: PropContext) -> bool {
    id == 0x26 || (id == 0x0B && ctx == PropContext::packet(PacketType::Publish))
}

/// Reads one property at the cursor. `Err(BadProperties)` when it does not fit,
/// `Err(BadVarint)` for a Subscription Identifier needing a 5th byte.
#[inline]
fn read_one<'a>(r: &mut Reader<'a>, ctx: Option<PropContext>) -> Result<Property<'a>, DecodeError> {
    const T: DecodeError = DecodeError::BadProperties;
    let id = r.u8().ok_or(T)?;
    let (kind, mask) = spec(id).ok_or(DecodeError::UnknownProperty)?;
    if let Some(ctx) = ctx
        && mask & ctx.bit() == 0
    {
        return Err(DecodeError::PropertyNotAllowed);
    }
    let p = match kind {
        Kind::Byte => {
            let v = r.u8().ok_or(T)?;
            match id {
                0x01 => Property::PayloadFormatIndicator(v),
                0x17 => Property::RequestProblemInformation(v),
                0x19 => Property::RequestResponseInformation(v),
                0x24 => Property::MaximumQoS(v),
                0x25 => Property::RetainAvailable(v),
                0x28 => Property::WildcardSubscriptionAvailable(v),
                0x29 => Property::SubscriptionIdentifierAvailable(v),
                _ => Property::SharedSubscriptionAvailable(v),
            }
        }
        Kind::U16 => {
            let v = r.u16().ok_or(T)?;
            match id {
                0x13 => Property::ServerKeepAlive(v),
                0x21 => Property::ReceiveMaximum(v),
                0x22 => Property::TopicAliasMaximum(v),
                _ => Property::TopicAlias(v),
            }
        }
        Kind::U32 => {
            let v = r.u32().ok_or(T)?;
            match id {
                0x02 => Property::MessageExpiryInterval(v),
                0x11 => Property::SessionExpiryInterval(v),
                0x18 => Property::WillDelayInterval(v),
                _ => Property::MaximumPacketSize(v),
            }
        }
        Kind::Varint => match r.varint() {
            Varint::Ok(v, _) => Property::SubscriptionIdentifier(v),
            Varint::Incomplete => return Err(T),
            Varint::Invalid => return Err(DecodeError::BadVarint),
        },
        Kind::Binary => {
            let v = r.bytes16().ok_or(T)?;
            match id {
                0x09 => Property::CorrelationData(v),
                _ => Property::AuthenticationData(v),
            }
        }
        Kind::Str => {
            let v = MqttStr(r.bytes16().ok_or(T)?);
            match id {
                0x03 => Property::ContentType(v),
                0x08 => Property::ResponseTopic(v),
                0x12 => Property::AssignedClientIdentifier(v),
                0x15 => Property::AuthenticationMethod(v),
                0x1A => Property::ResponseInformation(v),
                0x1C => Property::ServerReference(v),
                _ => Property::ReasonString(v),
            }
        }
        Kind::StrPair => {
            let k = MqttStr(r.bytes16().ok_or(T)?);
            let v = MqttStr(r.bytes16().ok_or(T)?);
            Property::UserProperty(k, v)
        }
    };
    Ok(p)
}

/// Validates a raw property block (the bytes after the property length) for `ctx` in
/// one pass: every id known and allowed there, every value inside the block.
pub fn validate(raw: &[u8], ctx: PropContext) -> Result<(), DecodeError> {
    let mut r = Reader::new(raw);
    while !r.is_empty() {
        read_one(&mut r, Some(ctx))?;
    }
    Ok(())
}

/// Reads a property length and the block it announces, validated for `ctx`.
/// Body ending inside the length: `Truncated`; length needing a 5th byte: `BadVarint`;
/// length past the end of the body: `BadProperties`.
pub(crate) fn read_block<'a>(
    r: &mut Reader<'a>,
    ctx: PropContext,
) -> Result<Properties<'a>, DecodeError> {
    let len = match r.varint() {
        Varint::Ok(v, _) => v as usize,
        Varint::Incomplete => return Err(DecodeError::Truncated),
        Varint::Invalid => return Err(DecodeError::BadVarint),
    };
    let raw = r.take(len).ok_or(DecodeError::BadProperties)?;
    if !raw.is_empty() {
        validate(raw, ctx)?;
    }
    Ok(Properties { raw })
}

/// Iterator over a property block. Stops at the first malformed property, which cannot
/// happen for blocks produced by the decoder.
#[derive(Clone, Debug)]
pub struct PropIter<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for PropIter<'a> {
    type Item = Property<'a>;
    #[inline]
    fn next(&mut self) -> Option<Property<'a>> {
        if self.r.is_empty() {
            return None;
        }
        match read_one(&mut self.r, None) {
            Ok(p) => Some(p),
            Err(_) => {
                self.r.rest();
                None
            }
        }
    }
}

impl<'a> Properties<'a> {
    pub const EMPTY: Properties<'static> = Properties { raw: &[] };

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
    pub fn iter(&self) -> PropIter<'a> {
        PropIter {
            r: Reader::new(self.raw),
        }
    }
    /// Property ids in wire order.
    pub fn ids(&self) -> impl Iterator<Item = u8> + 'a {
        self.iter().map(|p| p.id())
    }
    fn find<T>(&self, f: impl FnMut(Property<'a>) -> Option<T>) -> Option<T> {
        self.iter().find_map(f)
    }
    pub fn payload_format_indicator(&self) -> Option<u8> {
        self.find(|p| match p {
            Property::PayloadFormatIndicator(v) => Some(v),
            _ => None,
        })
    }
    pub fn message_expiry_interval(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::MessageExpiryInterval(v) => Some(v),
            _ => None,
        })
    }
    pub fn content_type(&self) -> Option<MqttStr<'a>> {
        self.find(|p| match p {
            Property::ContentType(v) => Some(v),
            _ => None,
        })
    }
    pub fn response_topic(&self) -> Option<MqttStr<'a>> {
        self.find(|p| match p {
            Property::ResponseTopic(v) => Some(v),
            _ => None,
        })
    }
    pub fn correlation_data(&self) -> Option<&'a [u8]> {
        self.find(|p| match p {
            Property::CorrelationData(v) => Some(v),
            _ => None,
        })
    }
    /// All Subscription Identifiers (PUBLISH may carry several).
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + 'a {
        self.iter().filter_map(|p| match p {
            Property::SubscriptionIdentifier(v) => Some(v),
            _ => None,
        })
    }
    pub fn session_expiry_interval(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::SessionExpiryInterval(v) => Some(v),
            _ => None,
        })
    }
    pub fn assigned_client_identifier(&self) -> Option<MqttStr<'a>> {
        self.find(|p| match p {
            Property::AssignedClientIdentifier(v) => Some(v),
            _ => None,
        })
    }
    pub fn server_keep_alive(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::ServerKeepAlive(v) => Some(v),
            _ => None,
        })
    }
    pub fn authentication_method(&self) -> Option<MqttStr<'a>> {
        self.find(|p| match p {
            Property::AuthenticationMethod(v) => Some(v),
            _ => None,
        })
    }
    pub fn reason_string(&self) -> Option<MqttStr<'a>> {
        self.find(|p| match p {
            Property::ReasonString(v) => Some(v),
            _ => None,
        })
    }
    pub fn receive_maximum(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::ReceiveMaximum(v) => Some(v),
            _ => None,
        })
    }
    pub fn topic_alias_maximum(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::TopicAliasMaximum(v) => Some(v),
            _ => None,
        })
    }
    pub fn topic_alias(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::TopicAlias(v) => Some(v),
            _ => None,
        })
    }
    pub fn maximum_qos(&self) -> Option<u8> {
        self.find(|p| match p {
            Property::MaximumQoS(v) => Some(v),
            _ => None,
        })
    }
    pub fn maximum_packet_size(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::MaximumPacketSize(v) => Some(v),
            _ => None,
        })
    }
    pub fn user_properties(&self) -> impl Iterator<Item = (MqttStr<'a>, MqttStr<'a>)> + 'a {
        self.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k, v)),
            _ => None,
        })
    }
}

impl fmt::Debug for Properties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Property<'_> {
    /// The property identifier (spec 2.2.2.2).
    pub fn id(&self) -> u8 {
        match self {
            Property::PayloadFormatIndicator(_) => 0x01,
            Property::MessageExpiryInterval(_) => 0x02,
            Property::ContentType(_) => 0x03,
            Property::ResponseTopic(_) => 0x08,
            Property::CorrelationData(_) => 0x09,
            Property::SubscriptionIdentifier(_) => 0x0B,
            Property::SessionExpiryInterval(_) => 0x11,
            Property::AssignedClientIdentifier(_) => 0x12,
            Property::ServerKeepAlive(_) => 0x13,
            Property::AuthenticationMethod(_) => 0x15,
            Property::AuthenticationData(_) => 0x16,
            Property::RequestProblemInformation(_) => 0x17,
            Property::WillDelayInterval(_) => 0x18,
            Property::RequestResponseInformation(_) => 0x19,
            Property::ResponseInformation(_) => 0x1A,
            Property::ServerReference(_) => 0x1C,
            Property::ReasonString(_) => 0x1F,
            Property::ReceiveMaximum(_) => 0x21,
            Property::TopicAliasMaximum(_) => 0x22,
            Property::TopicAlias(_) => 0x23,
            Property::MaximumQoS(_) => 0x24,
            Property::RetainAvailable(_) => 0x25,
            Property::UserProperty(_, _) => 0x26,
            Property::MaximumPacketSize(_) => 0x27,
            Property::WildcardSubscriptionAvailable(_) => 0x28,
            Property::SubscriptionIdentifierAvailable(_) => 0x29,
            Property::SharedSubscriptionAvailable(_) => 0x2A,
        }
    }

    /// Appends id and value as on the wire.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use super::wire::{write_bytes16, write_varint};
        out.push(self.id());
        match *self {
            Property::PayloadFormatIndicator(v)
            | Property::RequestProblemInformation(v)
            | Property::RequestResponseInformation(v)
            | Property::MaximumQoS(v)
            | Property::RetainAvailable(v)
            | Property::WildcardSubscriptionAvailable(v)
            | Property::SubscriptionIdentifierAvailable(v)
            | Property::SharedSubscriptionAvailable(v) => out.push(v),
            Property::ServerKeepAlive(v)
            | Property::ReceiveMaximum(v)
            | Property::TopicAliasMaximum(v)
            | Property::TopicAlias(v) => out.extend_from_slice(&v.to_be_bytes()),
            Property::MessageExpiryInterval(v)
            | Property::SessionExpiryInterval(v)
            | Property::WillDelayInterval(v)
            | Property::MaximumPacketSize(v) => out.extend_from_slice(&v.to_be_bytes()),
            Property::SubscriptionIdentifier(v) => write_varint(v, out),
            Property::CorrelationData(v) | Property::AuthenticationData(v) => write_bytes16(v, out),
            Property::ContentType(v)
            | Property::ResponseTopic(v)
            | Property::AssignedClientIdentifier(v)
            | Property::AuthenticationMethod(v)
            | Property::ResponseInformation(v)
            | Property::ServerReference(v)
            | Property::ReasonString(v) => write_bytes16(v.0, out),
            Property::UserProperty(k, v) => {
                write_bytes16(k.0, out);
                write_bytes16(v.0, out);
            }
        }
    }
}

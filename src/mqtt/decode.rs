//! Body decoding for all 15 packet types at protocol levels 3, 4 and 5.
//!
//! Levels 3 and 4 differ only in the CONNECT protocol name; level 5 adds properties and
//! reason codes. The decoder is lenient where brokers and tshark are (QoS 3 PUBLISH,
//! reserved header flags, short MQTT 5 acks; `validate` reports the violations) and
//! strict where the structure breaks (lengths past the end, bytes after the last field,
//! malformed property blocks). Nothing is allocated: every field borrows from `body`.

use super::fixed_header::parse_fixed_header;
use super::properties::{PropContext, read_block};
use super::wire::Reader;
use super::*;

const TRUNC: DecodeError = DecodeError::Truncated;

/// Decodes a packet body. `body` must be exactly the `h.remaining_length` bytes after
/// the fixed header. For CONNECT the level comes from the packet (`level` is ignored);
/// AUTH exists only in MQTT 5 and is always decoded with MQTT 5 rules. Any `level`
/// of 5 or more means MQTT 5, anything else 3.x.
pub fn decode_body<'a>(
    h: &FixedHeader,
    body: &'a [u8],
    level: ProtocolLevel,
) -> Result<Packet<'a>, DecodeError> {
    let t = h.packet_type().ok_or(DecodeError::ReservedType)?;
    let v5 = level >= 5;
    let mut r = Reader::new(body);
    let p = match t {
        PacketType::Connect => Packet::Connect(connect(&mut r)?),
        PacketType::ConnAck => {
            let flags = r.u8().ok_or(TRUNC)?;
            let code = r.u8().ok_or(TRUNC)?;
            // A v5 CONNACK must carry a property length, but some implementations
            // omit an empty one; treat a bare 2-byte CONNACK as having none.
            let properties = if v5 && !r.is_empty() {
                read_block(&mut r, PropContext::packet(t))?
            } else {
                Properties::EMPTY
            };
            Packet::ConnAck(ConnAck {
                session_present: flags & 0x01 != 0,
                code,
                properties,
            })
        }
        PacketType::Publish => Packet::Publish(publish(h.flags(), &mut r, v5)?),
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            let packet_id = r.u16().ok_or(TRUNC)?;
            let (reason_code, properties) = if v5 {
                reason_and_props(&mut r, t)?
            } else {
                (None, Properties::EMPTY)
            };
            let a = Ack {
                packet_id,
                reason_code,
                properties,
            };
            match t {
                PacketType::PubAck => Packet::PubAck(a),
                PacketType::PubRec => Packet::PubRec(a),
                PacketType::PubRel => Packet::PubRel(a),
                _ => Packet::PubComp(a),
            }
        }
        PacketType::Subscribe => {
            let packet_id = r.u16().ok_or(TRUNC)?;
            let properties = props_if(v5, &mut r, t)?;
            let filters_raw = r.rest();
            check_filter_list(filters_raw, true)?;
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters_raw,
            })
        }
        PacketType::SubAck => {
            let packet_id = r.u16().ok_or(TRUNC)?;
            let properties = props_if(v5, &mut r, t)?;
            let codes = r.rest();
            if codes.is_empty() {
                return Err(DecodeError::EmptyList);
            }
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                codes,
            })
        }
        PacketType::Unsubscribe => {
            let packet_id = r.u16().ok_or(TRUNC)?;
            let properties = props_if(v5, &mut r, t)?;
            let filters_raw = r.rest();
            check_filter_list(filters_raw, false)?;
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters_raw,
            })
        }
        PacketType::UnsubAck => {
            let packet_id = r.u16().ok_or(TRUNC)?;
            // 3.x UNSUBACK has no payload. In 5 a bare packet id (no property length)
            // is tolerated like the short acks; codes may then be empty.
            let properties = if v5 && !r.is_empty() {
                read_block(&mut r, PropContext::packet(t))?
            } else {
                Properties::EMPTY
            };
            let codes = if v5 { r.rest() } else { &[] };
            Packet::UnsubAck(SubAck {
                packet_id,
                properties,
                codes,
            })
        }
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect | PacketType::Auth => {
            let (reason_code, properties) = if v5 || t == PacketType::Auth {
                reason_and_props(&mut r, t)?
            } else {
                (None, Properties::EMPTY)
            };
            let ro = ReasonOnly {
                reason_code,
                properties,
            };
            if t == PacketType::Auth {
                Packet::Auth(ro)
            } else {
                Packet::Disconnect(ro)
            }
        }
    };
    if !r.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(p)
}

#[inline]
fn props_if<'a>(
    v5: bool,
    r: &mut Reader<'a>,
    t: PacketType,
) -> Result<Properties<'a>, DecodeError> {
    if v5 {
        read_block(r, PropContext::packet(t))
    } else {
        Ok(Properties::EMPTY)
    }
}

/// MQTT 5 optional tail of acks, DISCONNECT and AUTH: nothing (reason absent, meaning
/// success), a reason code alone (properties empty, spec 3.4.2.2.1), or both.
#[inline]
fn reason_and_props<'a>(
    r: &mut Reader<'a>,
    t: PacketType,
) -> Result<(Option<u8>, Properties<'a>), DecodeError> {
    let Some(code) = r.u8() else {
        return Ok((None, Properties::EMPTY));
    };
    if r.is_empty() {
        return Ok((Some(code), Properties::EMPTY));
    }
    Ok((Some(code), read_block(r, PropContext::packet(t))?))
}

#[inline]
fn publish<'a>(flags: u8, r: &mut Reader<'a>, v5: bool) -> Result<Publish<'a>, DecodeError> {
    let qos = (flags >> 1) & 0x03;
    let topic = MqttStr(r.bytes16().ok_or(TRUNC)?);
    // QoS 3 is invalid; decode it like QoS 1/2 (as tshark does) and let `validate` report it.
    let packet_id = if qos > 0 {
        Some(r.u16().ok_or(TRUNC)?)
    } else {
        None
    };
    let properties = props_if(v5, r, PacketType::Publish)?;
    Ok(Publish {
        dup: flags & 0x08 != 0,
        qos,
        retain: flags & 0x01 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

/// Protocol name and level: MQIsdp/3, MQTT/4 or MQTT/5. Bit 7 of the level is the
/// non-standard "bridge" marker mosquitto bridges set (e.g. 0x84); it is tolerated and
/// kept in `protocol_level`, the version is the low 7 bits.
fn protocol<'a>(r: &mut Reader<'a>) -> Option<(&'a [u8], u8)> {
    let name = r.bytes16()?;
    let level = r.u8()?;
    Some((name, level))
}

/// Version (3, 4 or 5) a CONNECT announces, if name and level form a known pair.
fn known_version(name: &[u8], level: u8) -> Option<ProtocolLevel> {
    match (name, level & 0x7f) {
        (b"MQIsdp", 3) => Some(3),
        (b"MQTT", 4) => Some(4),
        (b"MQTT", 5) => Some(5),
        _ => None,
    }
}

fn connect<'a>(r: &mut Reader<'a>) -> Result<Connect<'a>, DecodeError> {
    let (name, protocol_level) = protocol(r).ok_or(TRUNC)?;
    let version = known_version(name, protocol_level).ok_or(DecodeError::UnknownProtocol)?;
    let v5 = version >= 5;
    let flags = r.u8().ok_or(TRUNC)?;
    let keep_alive = r.u16().ok_or(TRUNC)?;
    let properties = props_if(v5, r, PacketType::Connect)?;
    let client_id = MqttStr(r.bytes16().ok_or(TRUNC)?);
    let will = if flags & 0x04 != 0 {
        let properties = if v5 {
            read_block(r, PropContext::WILL)?
        } else {
            Properties::EMPTY
        };
        let topic = MqttStr(r.bytes16().ok_or(TRUNC)?);
        let payload = r.bytes16().ok_or(TRUNC)?;
        Some(Will {
            properties,
            topic,
            payload,
            qos: (flags >> 3) & 0x03,
            retain: flags & 0x20 != 0,
        })
    } else {
        None
    };
    let username = if flags & 0x80 != 0 {
        Some(MqttStr(r.bytes16().ok_or(TRUNC)?))
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(r.bytes16().ok_or(TRUNC)?)
    } else {
        None
    };
    Ok(Connect {
        protocol_name: MqttStr(name),
        protocol_level,
        flags,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

/// Checks a SUBSCRIBE (`with_options`) or UNSUBSCRIBE filter list: at least one entry,
/// every length inside the list. Afterwards `filters()` cannot fail.
fn check_filter_list(mut raw: &[u8], with_options: bool) -> Result<(), DecodeError> {
    if raw.is_empty() {
        return Err(DecodeError::EmptyList);
    }
    let step = if with_options { 1 } else { 0 };
    while !raw.is_empty() {
        let [a, b, ..] = *raw else { return Err(TRUNC) };
        let n = 2 + usize::from(u16::from_be_bytes([a, b])) + step;
        raw = raw.get(n..).ok_or(TRUNC)?;
    }
    Ok(())
}

/// Protocol level of a CONNECT body, read from its first fields only, so that a
/// session learns its version even when the rest of the CONNECT is malformed. The
/// bridge bit (0x80) is masked off. `None` unless the level is 3, 4 or 5.
pub fn peek_connect_level(body: &[u8]) -> Option<ProtocolLevel> {
    let mut r = Reader::new(body);
    let (_, level) = protocol(&mut r)?;
    let level = level & 0x7f;
    (3..=5).contains(&level).then_some(level)
}

/// Header, size check and body in one call. `Ok(None)`: need more bytes.
/// `Err(Oversized)` when the remaining length exceeds `max_size` (checked before
/// waiting for the body, so the caller can skip it by length). On success returns the
/// packet and the bytes it took.
pub fn decode_packet(
    buf: &[u8],
    level: ProtocolLevel,
    max_size: u32,
) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    let Some(h) = parse_fixed_header(buf)? else {
        return Ok(None);
    };
    if h.remaining_length > max_size {
        return Err(DecodeError::Oversized);
    }
    let total = h.total_len();
    let Some(body) = buf.get(usize::from(h.header_len)..total) else {
        return Ok(None);
    };
    decode_body(&h, body, level).map(|p| Some((p, total)))
}

/// Iterator over the (filter, options byte) entries of a decoded SUBSCRIBE.
#[derive(Clone, Debug)]
pub struct SubscribeFilters<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for SubscribeFilters<'a> {
    type Item = (MqttStr<'a>, u8);
    fn next(&mut self) -> Option<Self::Item> {
        let f = self.r.bytes16()?;
        let o = self.r.u8()?;
        Some((MqttStr(f), o))
    }
}

/// Iterator over the filters of a decoded UNSUBSCRIBE.
#[derive(Clone, Debug)]
pub struct UnsubscribeFilters<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for UnsubscribeFilters<'a> {
    type Item = MqttStr<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        self.r.bytes16().map(MqttStr)
    }
}

impl<'a> Subscribe<'a> {
    /// (topic filter, subscription options byte) in wire order. The list was checked at
    /// decode time; on a hand-built malformed `filters_raw` iteration simply stops.
    pub fn filters(&self) -> SubscribeFilters<'a> {
        SubscribeFilters {
            r: Reader::new(self.filters_raw),
        }
    }
}

impl<'a> Unsubscribe<'a> {
    /// Topic filters in wire order.
    pub fn filters(&self) -> UnsubscribeFilters<'a> {
        UnsubscribeFilters {
            r: Reader::new(self.filters_raw),
        }
    }
}

//! The inverse of `decode`: writes whole packets (fixed header + body). Used by tests,
//! the fuzz target and the synthetic capture generator, not by the replay hot path.
//!
//! `decode(encode(p)) == p` for every packet the decoder can produce, with these
//! representational limits (the encoder cannot express what the model does not hold):
//! - reserved fixed-header flags are written as the spec demands (use
//!   `encode_with_flags` to write violations);
//! - CONNECT flags: presence bits (will, username, password), will QoS/retain and clean
//!   start come from the fields; the other bits (reserved bit 0, and will QoS/retain
//!   when there is no will) are taken from `Connect::flags`;
//! - MQTT 5 ack/DISCONNECT/AUTH with properties but `reason_code: None` is written with
//!   reason 0x00 (the wire cannot carry properties without a reason code);
//! - 3.x UNSUBACK carries no codes, 3.x acks/DISCONNECT no reason or properties;
//! - strings longer than 65,535 bytes are cut (they cannot be represented).

use super::fixed_header::fixed_header_for;
use super::wire::{VARINT_MAX, varint_len, write_bytes16, write_varint};
use super::*;

/// Low nibble of the first byte the spec requires for `p` (PUBLISH: dup/QoS/retain).
pub fn spec_flags(p: &Packet<'_>) -> u8 {
    match p {
        Packet::Publish(p) => (u8::from(p.dup) << 3) | ((p.qos & 3) << 1) | u8::from(p.retain),
        Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
        _ => 0,
    }
}

/// Appends the whole packet as level `level` would carry it (CONNECT uses its own
/// `protocol_level`; AUTH is always MQTT 5).
pub fn encode(p: &Packet<'_>, level: ProtocolLevel, out: &mut Vec<u8>) {
    encode_with_flags(p, level, spec_flags(p), out)
}

/// Like `encode` but with an explicit low nibble for the first byte, to produce
/// reserved-flag violations. For PUBLISH the nibble also decides QoS on decode.
pub fn encode_with_flags(p: &Packet<'_>, level: ProtocolLevel, flags: u8, out: &mut Vec<u8>) {
    let first_byte = ((p.packet_type() as u8) << 4) | (flags & 0x0f);
    // Write the body after a maximal 5-byte header slot, then close the gap once the
    // body length (and so the header length) is known. Avoids a second buffer.
    let start = out.len();
    out.extend_from_slice(&[0; 5]);
    let body_start = out.len();
    body(p, level, out);
    let body_len = (out.len() - body_start).min(VARINT_MAX as usize) as u32;
    let h = fixed_header_for(first_byte, body_len);
    let hl = usize::from(h.header_len);
    let gap = 5 - hl;
    out[start + gap] = first_byte;
    let mut v = body_len;
    for b in &mut out[start + gap + 1..start + 5] {
        *b = (v & 0x7f) as u8 | if v >= 0x80 { 0x80 } else { 0 };
        v >>= 7;
    }
    out.drain(start..start + gap);
}

/// Length the packet would take on the wire.
pub fn encoded_len(p: &Packet<'_>, level: ProtocolLevel) -> usize {
    let mut v = Vec::new();
    body(p, level, &mut v);
    1 + varint_len(v.len() as u32) + v.len()
}

fn props(pr: &Properties<'_>, out: &mut Vec<u8>) {
    write_varint(pr.raw.len() as u32, out);
    out.extend_from_slice(pr.raw);
}

/// MQTT 5 optional tail shared by acks, DISCONNECT and AUTH.
fn reason_tail(code: Option<u8>, pr: &Properties<'_>, out: &mut Vec<u8>) {
    if pr.is_empty() {
        if let Some(c) = code {
            out.push(c);
        }
    } else {
        out.push(code.unwrap_or(0));
        props(pr, out);
    }
}

fn body(p: &Packet<'_>, level: ProtocolLevel, out: &mut Vec<u8>) {
    let v5 = level >= 5;
    match p {
        Packet::Connect(c) => connect(c, out),
        Packet::ConnAck(c) => {
            out.push(u8::from(c.session_present));
            out.push(c.code);
            if v5 {
                props(&c.properties, out);
            }
        }
        Packet::Publish(pb) => {
            write_bytes16(pb.topic.0, out);
            if pb.qos > 0 {
                out.extend_from_slice(&pb.packet_id.unwrap_or(0).to_be_bytes());
            }
            if v5 {
                props(&pb.properties, out);
            }
            out.extend_from_slice(pb.payload);
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            out.extend_from_slice(&a.packet_id.to_be_bytes());
            if v5 {
                reason_tail(a.reason_code, &a.properties, out);
            }
        }
        Packet::Subscribe(s) => {
            out.extend_from_slice(&s.packet_id.to_be_bytes());
            if v5 {
                props(&s.properties, out);
            }
            out.extend_from_slice(s.filters_raw);
        }
        Packet::Unsubscribe(s) => {
            out.extend_from_slice(&s.packet_id.to_be_bytes());
            if v5 {
                props(&s.properties, out);
            }
            out.extend_from_slice(s.filters_raw);
        }
        Packet::SubAck(s) => {
            out.extend_from_slice(&s.packet_id.to_be_bytes());
            if v5 {
                props(&s.properties, out);
            }
            out.extend_from_slice(s.codes);
        }
        Packet::UnsubAck(s) => {
            out.extend_from_slice(&s.packet_id.to_be_bytes());
            if v5 {
                props(&s.properties, out);
                out.extend_from_slice(s.codes);
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if v5 {
                reason_tail(d.reason_code, &d.properties, out);
            }
        }
        Packet::Auth(d) => reason_tail(d.reason_code, &d.properties, out),
    }
}

fn connect(c: &Connect<'_>, out: &mut Vec<u8>) {
    let v5 = c.protocol_level & 0x7f >= 5;
    write_bytes16(c.protocol_name.0, out);
    out.push(c.protocol_level);
    let mut flags = c.flags & !(0x80 | 0x40 | 0x04 | 0x02);
    flags |= u8::from(c.clean_start) << 1;
    if let Some(w) = &c.will {
        flags = (flags & !0x38) | 0x04 | ((w.qos & 3) << 3) | (u8::from(w.retain) << 5);
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    out.push(flags);
    out.extend_from_slice(&c.keep_alive.to_be_bytes());
    if v5 {
        props(&c.properties, out);
    }
    write_bytes16(c.client_id.0, out);
    if let Some(w) = &c.will {
        if v5 {
            props(&w.properties, out);
        }
        write_bytes16(w.topic.0, out);
        write_bytes16(w.payload, out);
    }
    if let Some(u) = &c.username {
        write_bytes16(u.0, out);
    }
    if let Some(pw) = c.password {
        write_bytes16(pw, out);
    }
}

/// Raw SUBSCRIBE payload (for `Subscribe::filters_raw`): each filter with its
/// subscription options byte.
pub fn subscribe_filters(filters: &[(&[u8], u8)], out: &mut Vec<u8>) {
    for (f, o) in filters {
        write_bytes16(f, out);
        out.push(*o);
    }
}

/// Raw UNSUBSCRIBE payload (for `Unsubscribe::filters_raw`).
pub fn unsubscribe_filters(filters: &[&[u8]], out: &mut Vec<u8>) {
    for f in filters {
        write_bytes16(f, out);
    }
}

/// Raw property block without the length prefix (for `Properties { raw }`).
pub fn properties(props: &[Property<'_>], out: &mut Vec<u8>) {
    for p in props {
        p.encode(out);
    }
}

/// Appends a variable byte integer (clamped to 268,435,455).
pub fn varint(v: u32, out: &mut Vec<u8>) {
    write_varint(v, out)
}

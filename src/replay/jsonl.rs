//! One JSON object per MQTT control packet, with a fixed key set (null where a key does
//! not apply), so downstream tools (jq, pandas, the tshark comparison test) never have
//! to guess. Written by hand rather than through a serde struct: the record borrows
//! everything from the capture and the hot loop should not build an owned copy.

use std::io::{self, Write};

use crate::dissect::MqttRecord;
use crate::mqtt::{Direction, MqttStr, Packet, PacketType};

pub struct JsonlWriter<W: Write> {
    out: W,
    /// First write error; later records are dropped and the error is reported at the end.
    error: Option<io::Error>,
    scratch: Vec<u8>,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W) -> Self {
        JsonlWriter {
            out,
            error: None,
            scratch: Vec::with_capacity(1024),
        }
    }

    pub fn write(&mut self, r: &MqttRecord<'_>) {
        if self.error.is_some() {
            return;
        }
        self.scratch.clear();
        format_record(&mut self.scratch, r);
        if let Err(e) = self.out.write_all(&self.scratch) {
            self.error = Some(e);
        }
    }

    pub fn finish(mut self) -> io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Values of the fixed key set for one record, `None` = null.
#[derive(Default)]
struct Fields<'a> {
    topic: Option<MqttStr<'a>>,
    topic_alias: Option<u16>,
    qos: Option<u8>,
    dup: Option<bool>,
    retain: Option<bool>,
    packet_id: Option<u16>,
    payload_len: Option<usize>,
    client_id: Option<MqttStr<'a>>,
    username: Option<MqttStr<'a>>,
    password_len: Option<usize>,
    keepalive: Option<u16>,
    clean_start: Option<bool>,
    will_topic: Option<MqttStr<'a>>,
    reason_codes: Option<Codes<'a>>,
    sub: Option<Subs<'a>>,
    properties: bool,
}

enum Codes<'a> {
    One(u8),
    Many(&'a [u8]),
}

enum Subs<'a> {
    Subscribe(&'a crate::mqtt::Subscribe<'a>),
    Unsubscribe(&'a crate::mqtt::Unsubscribe<'a>),
}

pub fn format_record(o: &mut Vec<u8>, r: &MqttRecord<'_>) {
    let mut f = Fields::default();
    let v5 = r.level >= 5;
    // Flags come from the fixed header so an oversized (undecoded) PUBLISH still shows them.
    if r.header.packet_type() == Some(PacketType::Publish) {
        let fl = r.header.flags();
        f.qos = Some((fl >> 1) & 3);
        f.dup = Some(fl & 8 != 0);
        f.retain = Some(fl & 1 != 0);
    }
    if let Ok(p) = &r.packet {
        fill(&mut f, p, r, v5);
    }
    let _ = write!(
        o,
        "{{\"frame\":{},\"ts\":{}.{:09}",
        r.frame,
        r.ts_ns / 1_000_000_000,
        r.ts_ns % 1_000_000_000
    );
    let _ = write!(o, ",\"flow\":\"{}-{}\"", r.flow.client, r.flow.broker);
    o.extend_from_slice(match r.dir {
        Direction::C2S => b",\"dir\":\"c2s\"",
        Direction::S2C => b",\"dir\":\"s2c\"",
    });
    o.extend_from_slice(b",\"type\":");
    match r.header.packet_type() {
        Some(t) => {
            o.push(b'"');
            o.extend_from_slice(t.name().as_bytes());
            o.push(b'"');
        }
        None => o.extend_from_slice(b"null"),
    }
    let _ = write!(o, ",\"version\":{}", r.level);
    key_str(o, "topic", f.topic);
    key_num(o, "topic_alias", f.topic_alias);
    key_num(o, "qos", f.qos);
    key_bool(o, "dup", f.dup);
    key_bool(o, "retain", f.retain);
    key_num(o, "packet_id", f.packet_id);
    key_num(o, "remaining_length", Some(r.header.remaining_length));
    key_num(o, "payload_len", f.payload_len);
    key_str(o, "client_id", f.client_id);
    key_str(o, "username", f.username);
    key_num(o, "password_len", f.password_len);
    key_num(o, "keepalive", f.keepalive);
    key_bool(o, "clean_start", f.clean_start);
    key_str(o, "will_topic", f.will_topic);
    o.extend_from_slice(b",\"reason_codes\":");
    match f.reason_codes {
        None => o.extend_from_slice(b"null"),
        Some(Codes::One(c)) => {
            let _ = write!(o, "[{c}]");
        }
        Some(Codes::Many(cs)) => num_array(o, cs.iter().copied()),
    }
    o.extend_from_slice(b",\"sub_topics\":");
    match &f.sub {
        None => o.extend_from_slice(b"null"),
        Some(Subs::Subscribe(s)) => str_array(o, s.filters().map(|(t, _)| t)),
        Some(Subs::Unsubscribe(u)) => str_array(o, u.filters()),
    }
    o.extend_from_slice(b",\"sub_qos\":");
    match &f.sub {
        Some(Subs::Subscribe(s)) => num_array(o, s.filters().map(|(_, opts)| opts & 3)),
        _ => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"properties\":");
    match (&r.packet, f.properties) {
        (Ok(p), true) => num_array(o, property_ids(p)),
        _ => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"error\":");
    match r.error_kind() {
        Some(k) => {
            let _ = write!(o, "\"{k}\"");
        }
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b"}\n");
}

fn fill<'a>(f: &mut Fields<'a>, p: &'a Packet<'a>, r: &MqttRecord<'a>, v5: bool) {
    f.properties = v5;
    // MQTT 5 lets a sender omit a success reason code (spec 3.4.2.1, 3.14.2.1, 3.15.2.1):
    // the record shows the code the receiver acts on.
    let implied = |rc: Option<u8>| {
        if v5 {
            Some(Codes::One(rc.unwrap_or(0)))
        } else {
            None
        }
    };
    match p {
        Packet::Connect(c) => {
            f.client_id = Some(c.client_id);
            f.username = c.username;
            f.password_len = c.password.map(|p| p.len());
            f.keepalive = Some(c.keep_alive);
            f.clean_start = Some(c.clean_start);
            f.will_topic = c.will.map(|w| w.topic);
            // A CONNECT's own level decides whether it has properties.
            f.properties = c.protocol_level >= 5;
        }
        Packet::ConnAck(c) => f.reason_codes = Some(Codes::One(c.code)),
        Packet::Publish(pb) => {
            f.topic = r.topic;
            f.topic_alias = pb.properties.topic_alias();
            f.packet_id = pb.packet_id;
            f.payload_len = Some(pb.payload.len());
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            f.packet_id = Some(a.packet_id);
            f.reason_codes = implied(a.reason_code);
        }
        Packet::Subscribe(s) => {
            f.packet_id = Some(s.packet_id);
            f.sub = Some(Subs::Subscribe(s));
        }
        Packet::SubAck(s) => {
            f.packet_id = Some(s.packet_id);
            f.reason_codes = Some(Codes::Many(s.codes));
        }
        Packet::Unsubscribe(u) => {
            f.packet_id = Some(u.packet_id);
            f.sub = Some(Subs::Unsubscribe(u));
        }
        Packet::UnsubAck(s) => {
            f.packet_id = Some(s.packet_id);
            // MQTT 3.x UNSUBACK carries no codes at all.
            f.reason_codes = v5.then_some(Codes::Many(s.codes));
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) | Packet::Auth(d) => f.reason_codes = implied(d.reason_code),
    }
}

/// Property ids in wire order; a CONNECT's will properties follow its own, as on the wire.
fn property_ids<'a>(p: &'a Packet<'a>) -> impl Iterator<Item = u8> + 'a {
    let (main, will) = match p {
        Packet::Connect(c) => (Some(c.properties), c.will.map(|w| w.properties)),
        Packet::ConnAck(c) => (Some(c.properties), None),
        Packet::Publish(x) => (Some(x.properties), None),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            (Some(a.properties), None)
        }
        Packet::Subscribe(s) => (Some(s.properties), None),
        Packet::SubAck(s) | Packet::UnsubAck(s) => (Some(s.properties), None),
        Packet::Unsubscribe(u) => (Some(u.properties), None),
        Packet::PingReq | Packet::PingResp => (None, None),
        Packet::Disconnect(d) | Packet::Auth(d) => (Some(d.properties), None),
    };
    main.into_iter()
        .chain(will)
        .flat_map(|props| props.iter().map(|p| p.id()))
}

fn key_str(o: &mut Vec<u8>, k: &str, v: Option<MqttStr<'_>>) {
    let _ = write!(o, ",\"{k}\":");
    match v {
        Some(s) => json_str(o, s),
        None => o.extend_from_slice(b"null"),
    }
}

fn key_num<N: std::fmt::Display>(o: &mut Vec<u8>, k: &str, v: Option<N>) {
    let _ = match v {
        Some(n) => write!(o, ",\"{k}\":{n}"),
        None => write!(o, ",\"{k}\":null"),
    };
}

fn key_bool(o: &mut Vec<u8>, k: &str, v: Option<bool>) {
    let _ = match v {
        Some(b) => write!(o, ",\"{k}\":{b}"),
        None => write!(o, ",\"{k}\":null"),
    };
}

fn num_array(o: &mut Vec<u8>, it: impl Iterator<Item = u8>) {
    o.push(b'[');
    for (i, n) in it.enumerate() {
        if i > 0 {
            o.push(b',');
        }
        let _ = write!(o, "{n}");
    }
    o.push(b']');
}

fn str_array<'a>(o: &mut Vec<u8>, it: impl Iterator<Item = MqttStr<'a>>) {
    o.push(b'[');
    for (i, s) in it.enumerate() {
        if i > 0 {
            o.push(b',');
        }
        json_str(o, s);
    }
    o.push(b']');
}

/// A JSON string; invalid UTF-8 on the wire is shown with U+FFFD replacements (the
/// `error` field says the packet violated the spec).
fn json_str(o: &mut Vec<u8>, s: MqttStr<'_>) {
    let text = s.to_string_lossy();
    // serde_json's escaping is correct for every control character and cannot fail on a Vec.
    let _ = serde_json::to_writer(&mut *o, text.as_ref());
}

//! Property tests: any valid packet of any type at levels 3, 4 and 5 survives
//! encode -> decode unchanged and consumes exactly the encoded bytes; arbitrary
//! (and mutated valid) bytes never make the decoder or a session panic.

use mqscope::mqtt::encode::{
    encode, encoded_len, properties, subscribe_filters, unsubscribe_filters,
};
use mqscope::mqtt::properties::{PropContext, allowed};
use mqscope::mqtt::validate::violations;
use mqscope::mqtt::*;
use proptest::prelude::*;

/// One property: which of the ids allowed in its context (`sel` modulo their count),
/// and raw material for its value.
#[derive(Clone, Debug)]
struct GenProp {
    sel: usize,
    num: u32,
    s1: Vec<u8>,
    s2: Vec<u8>,
}

/// Raw material for one packet; `build` turns it into a valid `Packet` of `kind`.
#[derive(Clone, Debug)]
struct Gen {
    kind: u8,
    level: u8,
    bits: u8,
    n16: u16,
    code: u8,
    opt_code: Option<u8>,
    bools: [bool; 4],
    strs: Vec<Vec<u8>>,
    opts: Vec<u8>,
    payload: Vec<u8>,
    props: Vec<GenProp>,
    will_props: Vec<GenProp>,
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        "[a-z/+#]{0,12}".prop_map(String::into_bytes),
    ]
}

fn gen_prop() -> impl Strategy<Value = GenProp> {
    (any::<usize>(), any::<u32>(), bytes(12), bytes(12)).prop_map(|(sel, num, s1, s2)| GenProp {
        sel,
        num,
        s1,
        s2,
    })
}

fn gen_packet() -> impl Strategy<Value = Gen> {
    (
        (
            1u8..=15,
            3u8..=5,
            any::<u8>(),
            any::<u16>(),
            any::<u8>(),
            any::<Option<u8>>(),
            any::<[bool; 4]>(),
        ),
        (
            proptest::collection::vec(bytes(20), 1..4),
            proptest::collection::vec(any::<u8>(), 1..6),
            bytes(64),
            proptest::collection::vec(gen_prop(), 0..5),
            proptest::collection::vec(gen_prop(), 0..4),
        ),
    )
        .prop_map(
            |(
                (kind, level, bits, n16, code, opt_code, bools),
                (strs, opts, payload, props, will_props),
            )| Gen {
                kind,
                level,
                bits,
                n16,
                code,
                opt_code,
                bools,
                strs,
                opts,
                payload,
                props,
                will_props,
            },
        )
}

/// Encodes the generated properties as a raw block, each mapped onto an id allowed in `ctx`.
fn props_raw(g: &[GenProp], ctx: PropContext) -> Vec<u8> {
    let ids: Vec<u8> = (0u8..=0x2a).filter(|&id| allowed(id, ctx)).collect();
    let mut out = Vec::new();
    if ids.is_empty() {
        return out;
    }
    for p in g {
        let id = ids[p.sel % ids.len()];
        let (s1, s2) = (MqttStr(&p.s1), MqttStr(&p.s2));
        let prop = match id {
            0x01 => Property::PayloadFormatIndicator(p.num as u8),
            0x02 => Property::MessageExpiryInterval(p.num),
            0x03 => Property::ContentType(s1),
            0x08 => Property::ResponseTopic(s1),
            0x09 => Property::CorrelationData(&p.s1),
            0x0B => Property::SubscriptionIdentifier(p.num % (VARINT_MAX + 1)),
            0x11 => Property::SessionExpiryInterval(p.num),
            0x12 => Property::AssignedClientIdentifier(s1),
            0x13 => Property::ServerKeepAlive(p.num as u16),
            0x15 => Property::AuthenticationMethod(s1),
            0x16 => Property::AuthenticationData(&p.s1),
            0x17 => Property::RequestProblemInformation(p.num as u8),
            0x18 => Property::WillDelayInterval(p.num),
            0x19 => Property::RequestResponseInformation(p.num as u8),
            0x1A => Property::ResponseInformation(s1),
            0x1C => Property::ServerReference(s1),
            0x1F => Property::ReasonString(s1),
            0x21 => Property::ReceiveMaximum(p.num as u16),
            0x22 => Property::TopicAliasMaximum(p.num as u16),
            0x23 => Property::TopicAlias(p.num as u16),
            0x24 => Property::MaximumQoS(p.num as u8),
            0x25 => Property::RetainAvailable(p.num as u8),
            0x26 => Property::UserProperty(s1, s2),
            0x27 => Property::MaximumPacketSize(p.num),
            0x28 => Property::WildcardSubscriptionAvailable(p.num as u8),
            0x29 => Property::SubscriptionIdentifierAvailable(p.num as u8),
            0x2A => Property::SharedSubscriptionAvailable(p.num as u8),
            _ => unreachable!("id {id:#x} listed as allowed"),
        };
        assert_eq!(prop.id(), id);
        properties(&[prop], &mut out);
    }
    out
}

/// Owned buffers the built packet borrows from.
struct Bufs {
    props: Vec<u8>,
    will_props: Vec<u8>,
    list: Vec<u8>,
}

fn bufs(g: &Gen) -> Bufs {
    let t = PacketType::from_nibble(g.kind).unwrap();
    let v5 = g.level >= 5 || t == PacketType::Auth;
    let props = if v5 {
        props_raw(&g.props, PropContext::packet(t))
    } else {
        Vec::new()
    };
    let will_props = if g.level >= 5 {
        props_raw(&g.will_props, PropContext::WILL)
    } else {
        Vec::new()
    };
    let mut list = Vec::new();
    if t == PacketType::Subscribe {
        let f: Vec<(&[u8], u8)> = g
            .strs
            .iter()
            .zip(g.opts.iter().cycle())
            .map(|(s, o)| (s.as_slice(), *o))
            .collect();
        subscribe_filters(&f, &mut list);
    } else if t == PacketType::Unsubscribe {
        let f: Vec<&[u8]> = g.strs.iter().map(Vec::as_slice).collect();
        unsubscribe_filters(&f, &mut list);
    }
    Bufs {
        props,
        will_props,
        list,
    }
}

/// Optional reason code + properties for MQTT 5 acks/DISCONNECT/AUTH: properties force a
/// reason code (the wire cannot carry them without one).
fn reason<'a>(g: &Gen, v5: bool, raw: &'a [u8]) -> (Option<u8>, Properties<'a>) {
    if !v5 {
        return (None, Properties::default());
    }
    let code = if raw.is_empty() {
        g.opt_code
    } else {
        Some(g.code)
    };
    (code, Properties { raw })
}

fn build<'a>(g: &'a Gen, b: &'a Bufs) -> Packet<'a> {
    let v5 = g.level >= 5;
    let props = Properties { raw: &b.props };
    let s0 = MqttStr(&g.strs[0]);
    match PacketType::from_nibble(g.kind).unwrap() {
        PacketType::Connect => {
            let will = g.bools[1].then(|| Will {
                properties: Properties { raw: &b.will_props },
                topic: s0,
                payload: &g.payload,
                qos: (g.bits >> 1) & 3,
                retain: g.bools[2],
            });
            // Reserved bit 0 and, without a will, stray will QoS/retain bits are kept as generated.
            let mut flags = g.bits & if will.is_some() { 0x01 } else { 0x39 };
            if let Some(w) = &will {
                flags |= 0x04 | (w.qos << 3) | (u8::from(w.retain) << 5);
            }
            flags |= u8::from(g.bools[0]) << 1;
            let username = (g.n16 & 1 != 0).then(|| MqttStr(g.strs.last().unwrap()));
            let password = (g.n16 & 2 != 0).then_some(&g.payload[..g.payload.len().min(8)]);
            flags |= if username.is_some() { 0x80 } else { 0 }
                | if password.is_some() { 0x40 } else { 0 };
            let bridge = if g.bools[3] { 0x80 } else { 0 };
            Packet::Connect(Connect {
                protocol_name: MqttStr(if g.level == 3 { b"MQIsdp" } else { b"MQTT" }),
                protocol_level: g.level | bridge,
                flags,
                clean_start: g.bools[0],
                keep_alive: g.n16,
                properties: props,
                client_id: MqttStr(g.strs.get(1).map_or(&[][..], Vec::as_slice)),
                will,
                username,
                password,
            })
        }
        PacketType::ConnAck => Packet::ConnAck(ConnAck {
            session_present: g.bools[0],
            code: g.code,
            properties: props,
        }),
        PacketType::Publish => {
            let qos = g.bits & 3;
            Packet::Publish(Publish {
                dup: g.bools[0],
                qos,
                retain: g.bools[1],
                topic: s0,
                packet_id: (qos > 0).then_some(g.n16),
                properties: props,
                payload: &g.payload,
            })
        }
        t
        @ (PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp) => {
            let (reason_code, properties) = reason(g, v5, &b.props);
            let a = Ack {
                packet_id: g.n16,
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
        PacketType::Subscribe => Packet::Subscribe(Subscribe {
            packet_id: g.n16,
            properties: props,
            filters_raw: &b.list,
        }),
        PacketType::SubAck => Packet::SubAck(SubAck {
            packet_id: g.n16,
            properties: props,
            codes: &g.opts,
        }),
        PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe {
            packet_id: g.n16,
            properties: props,
            filters_raw: &b.list,
        }),
        PacketType::UnsubAck => Packet::UnsubAck(SubAck {
            packet_id: g.n16,
            properties: props,
            codes: if v5 && g.bools[0] { &g.opts } else { &[] },
        }),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => {
            let (reason_code, properties) = reason(g, v5, &b.props);
            Packet::Disconnect(ReasonOnly {
                reason_code,
                properties,
            })
        }
        PacketType::Auth => {
            let (reason_code, properties) = reason(g, true, &b.props);
            Packet::Auth(ReasonOnly {
                reason_code,
                properties,
            })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_roundtrip(g in gen_packet()) {
        let b = bufs(&g);
        let p = build(&g, &b);
        let mut out = vec![0xee]; // encode appends: existing bytes stay untouched
        encode(&p, g.level, &mut out);
        prop_assert_eq!(out[0], 0xee);
        let wire = &out[1..];
        prop_assert_eq!(wire.len(), encoded_len(&p, g.level));
        let (back, used) = decode_packet(wire, g.level, u32::MAX).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(back, p);
        // Property blocks iterate fully (iteration stops early only on malformed blocks).
        if let Packet::Publish(pb) = &back {
            let n = g.props.len();
            prop_assert_eq!(pb.properties.iter().count(), if g.level >= 5 { n } else { 0 });
        }
        // No strict prefix decodes as a packet longer than the prefix.
        for cut in 0..wire.len() {
            if let Ok(Some((_, n))) = decode_packet(&wire[..cut], g.level, u32::MAX) {
                prop_assert!(n <= cut);
            }
        }
        // A session at the same level decodes the same packet.
        let h = parse_fixed_header(wire).unwrap().unwrap();
        let mut s = Session::new(SessionLimits { default_level: g.level, ..SessionLimits::default() });
        let dir = if g.bools[3] { Direction::C2S } else { Direction::S2C };
        if let Ok(sp) = s.decode(dir, &h, &wire[usize::from(h.header_len)..]) {
            let _ = violations(&h, &sp, s.effective_level());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), level in 0u8..8) {
        let _ = decode_packet(&data, level, 1 << 16);
        if let Ok(Some(h)) = parse_fixed_header(&data) {
            let body = &data[usize::from(h.header_len).min(data.len())..];
            let body = &body[..body.len().min(h.remaining_length as usize)];
            if let Ok(p) = decode_body(&h, body, level) {
                let _ = violations(&h, &p, level);
                let _ = format!("{p:?}");
            }
        }
        let _ = peek_connect_level(&data);
    }

    #[test]
    fn mutated_valid_packets_never_panic(g in gen_packet(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let b = bufs(&g);
        let p = build(&g, &b);
        let mut out = Vec::new();
        encode(&p, g.level, &mut out);
        for (i, x) in flips {
            let n = out.len();
            out[i % n] ^= x;
        }
        let mut s = Session::default();
        let mut buf = &out[..];
        while let Ok(Some(h)) = parse_fixed_header(buf) {
            let Some(body) = buf.get(usize::from(h.header_len)..h.total_len()) else { break };
            if let Ok(Packet::Publish(pb)) = s.decode(Direction::C2S, &h, body) {
                let _ = s.resolve_topic(Direction::C2S, &pb);
            }
            buf = &buf[h.total_len()..];
        }
    }
}

//! MQTT behaviour of a connection: which packets a device and the broker send, in
//! which order, with which options. Packets are built as `Packet` values and written
//! with the crate's encoder straight into the sending side's TCP buffer; every packet
//! is counted in the `Tally` at that moment, which is what makes the summary exact
//! ground truth independent of any decoder.

use super::conn::{Conn, MAX_FILTERS, MAX_SUBS, Phase, Reply};
use super::content::{self, METRICS, Pools};
use super::rng::Rng;
use super::tcp::Side;
use crate::mqtt::encode;
use crate::mqtt::{
    Ack, ConnAck, Connect, MqttStr, Packet, PacketType, Properties, Property, Publish, ReasonOnly,
    SubAck, Subscribe, Unsubscribe, Will,
};

/// Exact counts of what was encoded.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub packets: u64,
    /// Index = packet type nibble (1..=15); [0] = client to broker, [1] = broker to client.
    pub by_type: [[u64; 16]; 2],
    pub bytes: [u64; 2],
    pub publish_by_qos: [u64; 3],
    pub alias_only_publishes: u64,
    pub largest_payload: u64,
}

impl Tally {
    fn add(&mut self, t: PacketType, c2s: bool, len: usize) {
        let d = usize::from(!c2s);
        self.packets += 1;
        self.by_type[d][t as usize] += 1;
        self.bytes[d] += len as u64;
    }
}

/// Generator-wide shared state: payload pools, scratch buffers, counters.
pub struct Gen {
    pub pools: Pools,
    pub props: Vec<u8>,
    pub topic: Vec<u8>,
    pub list: Vec<u8>,
    pub tally: Tally,
    pub max_payload: usize,
    pub large_share: f64,
}

/// Encodes `p` into `side`'s buffer and counts it. Returns the stream offset just
/// past the packet (what the receiver must have before it can react).
fn send(tally: &mut Tally, side: &mut Side, c2s: bool, level: u8, p: &Packet<'_>) -> u64 {
    let before = side.buf.len();
    encode::encode(p, level, &mut side.buf);
    tally.add(p.packet_type(), c2s, side.buf.len() - before);
    // Fixed header = type byte + remaining-length varint (continuation bit 0x80).
    let mut hdr_len = 2u8;
    while hdr_len < 5
        && side
            .buf
            .get(before + usize::from(hdr_len) - 1)
            .is_some_and(|b| b & 0x80 != 0)
    {
        hdr_len += 1;
    }
    side.headers.push_back((side.base + before as u64, hdr_len));
    side.written_end()
}

fn props_into(out: &mut Vec<u8>, list: &[Property<'_>]) {
    out.clear();
    encode::properties(list, out);
}

/// CONNECT from the client.
pub fn connect(g: &mut Gen, c: &mut Conn) {
    let empty_client_id = c.client_id_assigned;
    let v5 = c.level >= 5;
    let mut list = [Property::PayloadFormatIndicator(0); 5];
    let mut n = 0;
    if v5 {
        let sei = [0u32, 300, 3600, 86_400][c.rng.below(4) as usize];
        list[n] = Property::SessionExpiryInterval(sei);
        n += 1;
        list[n] = Property::ReceiveMaximum(c.rng.range(10, 1000) as u16);
        n += 1;
        if c.alias_max_s2c > 0 {
            list[n] = Property::TopicAliasMaximum(c.alias_max_s2c);
            n += 1;
        }
        if c.rng.chance(0.5) {
            list[n] = Property::UserProperty(MqttStr(b"fw"), MqttStr(b"2.4.1"));
            n += 1;
        }
        if c.rng.chance(0.2) {
            list[n] = Property::MaximumPacketSize(1 << 20);
            n += 1;
        }
    }
    props_into(&mut g.props, &list[..n]);

    g.topic.clear();
    g.topic.extend_from_slice(c.prefix.as_bytes());
    g.topic.extend_from_slice(b"/status");
    g.list.clear();
    if v5 {
        encode::properties(&[Property::WillDelayInterval(5)], &mut g.list);
    }
    let will = c.rng.chance(0.25).then_some(Will {
        properties: Properties { raw: &g.list },
        topic: MqttStr(&g.topic),
        payload: b"offline",
        qos: 1,
        retain: true,
    });
    let user = c.rng.chance(0.8);
    let p = Packet::Connect(Connect {
        protocol_name: MqttStr(if c.level == 3 { b"MQIsdp" } else { b"MQTT" }),
        protocol_level: c.level,
        flags: 0,
        clean_start: empty_client_id || c.rng.chance(0.8),
        keep_alive: [30u16, 60, 120, 300][c.rng.below(4) as usize],
        properties: Properties { raw: &g.props },
        client_id: MqttStr(if empty_client_id {
            b""
        } else {
            c.client_id.as_bytes()
        }),
        will,
        username: user.then_some(MqttStr(c.client_id.as_bytes())),
        password: user.then_some(&b"s3cr3t-t0ken"[..]),
    });
    let end = send(&mut g.tally, &mut c.client, true, c.level, &p);
    c.owed_by_broker.push_back((end, Reply::ConnAck));
}

/// Encodes `r`, owed by the client (`by_c2s`) or the broker, and queues what the peer
/// then owes in turn.
pub fn reply(g: &mut Gen, c: &mut Conn, by_c2s: bool, r: Reply) {
    let level = c.level;
    let v5 = level >= 5;
    let ack = |packet_id| Ack {
        packet_id,
        reason_code: None,
        properties: Properties::default(),
    };
    let (p, then) = match r {
        Reply::ConnAck => {
            let mut list = [Property::PayloadFormatIndicator(0); 4];
            let mut n = 0;
            if v5 {
                list[n] = Property::ReceiveMaximum(c.rng.range(20, 100) as u16);
                n += 1;
                if c.alias_max_c2s > 0 {
                    list[n] = Property::TopicAliasMaximum(c.alias_max_c2s);
                    n += 1;
                }
                if c.client_id_assigned {
                    list[n] = Property::AssignedClientIdentifier(MqttStr(c.client_id.as_bytes()));
                    n += 1;
                }
                list[n] = Property::SharedSubscriptionAvailable(1);
                n += 1;
            }
            props_into(&mut g.props, &list[..n]);
            let p = Packet::ConnAck(ConnAck {
                session_present: false,
                code: 0,
                properties: Properties { raw: &g.props },
            });
            let end = send(&mut g.tally, &mut c.broker, false, level, &p);
            c.owed_by_client.push_back((end, Reply::SessionUp));
            return;
        }
        Reply::SessionUp => {
            c.phase = Phase::Open;
            subscribe(g, c, true);
            return;
        }
        Reply::SubAck { pid, n, codes } => {
            let p = Packet::SubAck(SubAck {
                packet_id: pid,
                properties: Properties::default(),
                codes: &codes[..usize::from(n).min(MAX_FILTERS)],
            });
            send(&mut g.tally, &mut c.broker, false, level, &p);
            return;
        }
        Reply::UnsubAck { pid, n } => {
            // MQTT 5 reason per filter: success, or 0x11 "no subscription existed".
            let mut codes = [0u8; MAX_FILTERS];
            for code in codes.iter_mut() {
                *code = if c.rng.chance(0.05) { 0x11 } else { 0 };
            }
            let p = Packet::UnsubAck(SubAck {
                packet_id: pid,
                properties: Properties::default(),
                codes: &codes[..usize::from(n).min(MAX_FILTERS)],
            });
            send(&mut g.tally, &mut c.broker, false, level, &p);
            return;
        }
        Reply::PubAck(pid) => {
            let mut a = ack(pid);
            if v5 && !by_c2s && c.rng.chance(0.05) {
                a.reason_code = Some(0x10); // no matching subscribers
            }
            (Packet::PubAck(a), None)
        }
        Reply::PubRec(pid) => (Packet::PubRec(ack(pid)), Some(Reply::PubRel(pid))),
        Reply::PubRel(pid) => (Packet::PubRel(ack(pid)), Some(Reply::PubComp(pid))),
        Reply::PubComp(pid) => (Packet::PubComp(ack(pid)), None),
        Reply::PingResp => (Packet::PingResp, None),
    };
    let end = send(&mut g.tally, c.side(by_c2s), by_c2s, level, &p);
    if let Some(next) = then {
        c.owed_by_receiver_of(by_c2s).push_back((end, next));
    }
}

/// SUBSCRIBE; the first one of a session always includes the device's command topic.
/// Returns false (nothing sent) when the connection already holds `MAX_SUBS`.
pub fn subscribe(g: &mut Gen, c: &mut Conn, initial: bool) -> bool {
    let v5 = c.level >= 5;
    let want = if initial {
        if c.rng.chance(0.3) {
            c.rng.range(2, MAX_FILTERS as u64)
        } else {
            1
        }
    } else {
        c.rng.range(1, 2)
    } as usize;
    let first_new = c.subs.len();
    for i in 0..want {
        if c.subs.len() >= MAX_SUBS {
            break;
        }
        if initial && i == 0 {
            let mut f = c.prefix.as_bytes().to_vec();
            f.extend_from_slice(b"/cmd/#");
            c.subs.push(f);
        } else {
            content::filter_into(&mut g.topic, &c.prefix, &mut c.rng);
            c.subs.push(g.topic.clone());
        }
    }
    let n = c.subs.len() - first_new;
    if n == 0 {
        return false;
    }
    let mut entries: [(&[u8], u8); MAX_FILTERS] = [(&[], 0); MAX_FILTERS];
    let mut codes = [0u8; MAX_FILTERS];
    for (i, f) in c.subs[first_new..].iter().enumerate().take(MAX_FILTERS) {
        let qos = c.rng.below(3) as u8;
        let mut opts = qos;
        if v5 {
            // No Local and Retain As Published sometimes; Retain Handling 0..=2.
            opts |= (u8::from(c.rng.chance(0.2)) << 2) | (u8::from(c.rng.chance(0.2)) << 3);
            opts |= (c.rng.below(3) as u8) << 4;
        }
        entries[i] = (f.as_slice(), opts);
        codes[i] = if c.rng.chance(0.02) {
            if v5 { 0x87 } else { 0x80 } // not authorized / failure
        } else {
            qos
        };
    }
    g.list.clear();
    encode::subscribe_filters(&entries[..n], &mut g.list);
    g.props.clear();
    if v5 && c.rng.chance(0.3) {
        encode::properties(
            &[Property::SubscriptionIdentifier(c.rng.range(1, 5000) as u32)],
            &mut g.props,
        );
    }
    let pid = c.next_pid(true);
    let p = Packet::Subscribe(Subscribe {
        packet_id: pid,
        properties: Properties { raw: &g.props },
        filters_raw: &g.list,
    });
    let end = send(&mut g.tally, &mut c.client, true, c.level, &p);
    let reply = Reply::SubAck {
        pid,
        n: n as u8,
        codes,
    };
    c.owed_by_broker.push_back((end, reply));
    true
}

/// UNSUBSCRIBE of up to two filters other than the command topic (index 0).
pub fn unsubscribe(g: &mut Gen, c: &mut Conn) -> bool {
    if c.subs.len() < 2 {
        return false;
    }
    let n = (c.rng.range(1, 2) as usize).min(c.subs.len() - 1);
    let keep = c.subs.len() - n;
    let mut entries: [&[u8]; MAX_FILTERS] = [&[]; MAX_FILTERS];
    for (e, f) in entries.iter_mut().zip(&c.subs[keep..]) {
        *e = f.as_slice();
    }
    g.list.clear();
    encode::unsubscribe_filters(&entries[..n], &mut g.list);
    let pid = c.next_pid(true);
    let p = Packet::Unsubscribe(Unsubscribe {
        packet_id: pid,
        properties: Properties::default(),
        filters_raw: &g.list,
    });
    let end = send(&mut g.tally, &mut c.client, true, c.level, &p);
    c.subs.truncate(keep);
    c.owed_by_broker
        .push_back((end, Reply::UnsubAck { pid, n: n as u8 }));
    true
}

fn payload_len(rng: &mut Rng, max: usize, large_share: f64) -> usize {
    let u = rng.unit();
    let len = if u < 0.01 {
        0 // e.g. clearing a retained message
    } else if u < 0.01 + large_share {
        // A tenth of the large ones sit exactly at the maximum (boundary case).
        if rng.chance(0.1) {
            max
        } else {
            rng.range(4096, max as u64) as usize
        }
    } else if u < 0.04 + large_share {
        rng.range(300, 4096) as usize
    } else {
        rng.range(10, 300) as usize
    };
    len.min(max)
}

/// One PUBLISH, from the client (`c2s`, telemetry) or the broker (a delivery on the
/// device's command topic).
pub fn publish(g: &mut Gen, c: &mut Conn, c2s: bool) {
    let v5 = c.level >= 5;
    let metric = c.rng.below(METRICS.len() as u64) as usize;
    g.topic.clear();
    g.topic.extend_from_slice(c.prefix.as_bytes());
    g.topic.extend_from_slice(if c2s { b"/" } else { b"/cmd/" });
    g.topic.extend_from_slice(METRICS[metric].as_bytes());
    let u = c.rng.unit();
    let qos = if u < 0.6 {
        0
    } else if u < 0.9 {
        1
    } else {
        2
    };

    // Topic alias: the first use of a topic carries topic + alias, later ones only the
    // alias (empty topic), within the maximum the receiver announced.
    let (max, table, next) = if c2s {
        (c.alias_max_c2s, &mut c.aliases_c2s, &mut c.next_alias_c2s)
    } else {
        (c.alias_max_s2c, &mut c.aliases_s2c, &mut c.next_alias_s2c)
    };
    let mut alias = 0u16;
    let mut topic_on_wire = true;
    if v5 && max > 0 {
        if table[metric] != 0 {
            alias = table[metric];
            topic_on_wire = false;
        } else if *next <= max {
            alias = *next;
            table[metric] = alias;
            *next += 1;
        }
    }

    let mut list = [Property::PayloadFormatIndicator(0); 4];
    let mut n = 0;
    if v5 {
        if alias != 0 {
            list[n] = Property::TopicAlias(alias);
            n += 1;
        }
        if c.rng.chance(0.2) {
            list[n] = Property::PayloadFormatIndicator(1);
            n += 1;
            list[n] = Property::ContentType(MqttStr(b"application/json"));
            n += 1;
        }
        if c.rng.chance(0.1) {
            list[n] = Property::MessageExpiryInterval(c.rng.range(10, 3600) as u32);
            n += 1;
        }
    }
    props_into(&mut g.props, &list[..n]);

    let len = payload_len(&mut c.rng, g.max_payload, g.large_share);
    let payload = if len > 4096 {
        g.pools.blob(&mut c.rng, len)
    } else {
        g.pools.text(&mut c.rng, len)
    };
    let packet_id = (qos > 0).then(|| c.next_pid(c2s));
    let p = Packet::Publish(Publish {
        dup: false,
        qos,
        retain: c.rng.chance(0.02),
        topic: MqttStr(if topic_on_wire { &g.topic } else { &[] }),
        packet_id,
        properties: Properties { raw: &g.props },
        payload,
    });
    let level = c.level;
    let end = send(&mut g.tally, c.side(c2s), c2s, level, &p);
    g.tally.publish_by_qos[usize::from(qos)] += 1;
    g.tally.alias_only_publishes += u64::from(!topic_on_wire);
    g.tally.largest_payload = g.tally.largest_payload.max(payload.len() as u64);
    match packet_id {
        Some(pid) if qos == 1 => c
            .owed_by_receiver_of(c2s)
            .push_back((end, Reply::PubAck(pid))),
        Some(pid) => c
            .owed_by_receiver_of(c2s)
            .push_back((end, Reply::PubRec(pid))),
        None => {}
    }
}

pub fn ping(g: &mut Gen, c: &mut Conn) {
    let end = send(&mut g.tally, &mut c.client, true, c.level, &Packet::PingReq);
    c.owed_by_broker.push_back((end, Reply::PingResp));
}

pub fn disconnect(g: &mut Gen, c: &mut Conn) {
    let mut d = ReasonOnly {
        reason_code: None,
        properties: Properties::default(),
    };
    // MQTT 5: usually the short form; sometimes an explicit "normal disconnection"
    // with Session Expiry Interval 0 (always allowed, MQTT-3.14.2-2).
    g.props.clear();
    if c.level >= 5 && c.rng.chance(0.1) {
        encode::properties(&[Property::SessionExpiryInterval(0)], &mut g.props);
        d.reason_code = Some(0);
        d.properties = Properties { raw: &g.props };
    }
    send(
        &mut g.tally,
        &mut c.client,
        true,
        c.level,
        &Packet::Disconnect(d),
    );
}

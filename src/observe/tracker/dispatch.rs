//! `Tracker::on_record`: one match over the packet type.

use crate::dissect::MqttRecord;
use crate::mqtt::{Ack, Direction, Packet, Publish, SubAck, Subscribe, Unsubscribe};
use crate::observe::event::EventKind;
use crate::observe::types::{Exchange, GroupId};

use super::events::{event, subscribe_alerts, text};
use super::fanout::message_hash;
use super::latency::{Extra, PendKey, Pending, Stage};
use super::{LatencySample, Tracker, TrackerOutput, hash_with_tag};

/// SUBSCRIBE / UNSUBSCRIBE filter lists kept for matching their acks are cut here.
const MAX_KEPT_FILTERS_BYTES: usize = 4096;

/// A PUBLISH topic kept with its request (`Extra::Topic`) is cut here: the longest topic
/// that gets an exact group (`topics::MAX_NAME_LEN`), so 50 000 pending requests hold at
/// most ~13 MB of topics.
const MAX_KEPT_TOPIC_BYTES: usize = crate::observe::topics::MAX_NAME_LEN;

fn other(d: Direction) -> Direction {
    match d {
        Direction::C2S => Direction::S2C,
        Direction::S2C => Direction::C2S,
    }
}

fn key(rec: &MqttRecord<'_>, stage: Stage, dir: Direction, packet_id: u16) -> PendKey {
    PendKey {
        flow: rec.flow.id,
        stage,
        dir,
        packet_id,
    }
}

fn filter_hash(f: &[u8]) -> u64 {
    hash_with_tag(3, f)
}

/// What the caller knows about a PUBLISH record beyond its group.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PublishCtx {
    /// The group is the exact topic (its name is the topic).
    pub exact: bool,
    pub fanout: FanoutPart,
}

/// How a PUBLISH takes part in fan-out matching.
#[derive(Clone, Copy, Debug, Default)]
pub(super) enum FanoutPart {
    /// Matched; its hash is computed here (the caller did not route it).
    #[default]
    Hash,
    /// Matched, with this `message_hash(topic, payload)` already computed.
    Hashed(u64),
    /// Not matched (`PublishRoute::fanout`): counted only, not hashed.
    Untracked,
}

pub(super) fn on_record(
    t: &mut Tracker,
    rec: &MqttRecord<'_>,
    group: Option<GroupId>,
    pc: PublishCtx,
    out: &mut TrackerOutput<'_>,
) {
    t.n.packets += 1;
    let slot = t.conn_slot(rec);
    let Some(conn) = t.conns.at_mut(slot) else {
        return;
    };
    let len = rec.header.total_len() as u64;
    match rec.dir {
        Direction::C2S => conn.bytes_in += len,
        Direction::S2C => conn.bytes_out += len,
    }
    t.last_key = (rec.flow.id, conn.key);
    let pkt = match &rec.packet {
        Ok(p) => p,
        Err(e) => {
            t.n.malformed += 1;
            let mut ev = event(rec, Some(conn), EventKind::Malformed);
            ev.detail = Some(e.kind());
            out.events.push(ev);
            // A broker may still answer a CONNECT we could not decode (suricata-verify's
            // mqtt5-excessiveproplen gets CONNACK 0 from Mosquitto): the round trip is
            // real, so time it, though the connection's identity stays unknown.
            if rec.dir == Direction::C2S
                && rec.header.packet_type() == Some(crate::mqtt::PacketType::Connect)
            {
                let key = PendKey {
                    flow: rec.flow.id,
                    stage: Stage::Connect,
                    dir: Direction::C2S,
                    packet_id: 0,
                };
                let p = Pending {
                    ts_ns: rec.ts_ns,
                    publish_ts_ns: None,
                    group: None,
                    extra: Extra::None,
                };
                t.lat.start(key, p, false);
            }
            return;
        }
    };
    // Packets before CONNECT: only provable when the flow was seen from its first
    // byte; reported once per connection.
    if rec.dir == Direction::C2S
        && conn.from_start
        && conn.connected_at_ns.is_none()
        && !conn.flagged_before_connect
        && !matches!(pkt, Packet::Connect(_))
    {
        conn.flagged_before_connect = true;
        t.n.packets_before_connect += 1;
        let mut ev = event(rec, Some(conn), EventKind::ProtocolViolation);
        ev.detail = Some("packet_before_connect");
        out.events.push(ev);
    }
    if let Some(v) = rec.violation {
        let mut ev = event(rec, Some(conn), EventKind::ProtocolViolation);
        ev.detail = Some(v);
        if let Some(tp) = rec.topic {
            ev.topic = Some(text(tp.0));
        }
        out.events.push(ev);
    }
    match pkt {
        Packet::Publish(p) => publish(t, slot, rec, p, group, pc, out),
        Packet::PubAck(a) => ack(t, rec, a, Stage::Qos1, out),
        Packet::PubRec(a) => ack(t, rec, a, Stage::Q2Rec, out),
        Packet::PubRel(a) => ack(t, rec, a, Stage::Q2Rel, out),
        Packet::PubComp(a) => ack(t, rec, a, Stage::Q2Comp, out),
        Packet::Connect(c) => t.on_connect(slot, rec, c, out),
        Packet::ConnAck(a) => t.on_connack(slot, rec, a, out),
        Packet::Subscribe(s) => subscribe(t, slot, rec, s, out),
        Packet::SubAck(a) => suback(t, slot, rec, a, out),
        Packet::Unsubscribe(u) => unsubscribe(t, rec, u),
        Packet::UnsubAck(a) => unsuback(t, slot, rec, a, out),
        Packet::PingReq => {
            // A second PINGREQ means the first got no answer: count it, time the new one.
            let p = pending(rec.ts_ns, None, None, Extra::None);
            t.lat
                .start(key(rec, Stage::Ping, Direction::C2S, 0), p, false);
        }
        Packet::PingResp => {
            if let Some(p) = t.lat.answer(key(rec, Stage::Ping, Direction::C2S, 0)) {
                sample(t, out, Exchange::Ping, p.ts_ns, rec.ts_ns, None);
            }
        }
        Packet::Disconnect(d) => t.on_disconnect(slot, rec, d, out),
        Packet::Auth(a) => {
            let mut ev = event(rec, t.conns.at(slot), EventKind::AuthExchange);
            ev.code = a.reason_code;
            out.events.push(ev);
        }
    }
}

fn pending(
    ts_ns: u64,
    publish_ts_ns: Option<u64>,
    group: Option<GroupId>,
    extra: Extra,
) -> Pending {
    Pending {
        ts_ns,
        publish_ts_ns,
        group,
        extra,
    }
}

fn sample(
    t: &mut Tracker,
    out: &mut TrackerOutput<'_>,
    e: Exchange,
    start: u64,
    end: u64,
    group: Option<GroupId>,
) {
    if let Some(seconds) = t.lat.record(e, start, end) {
        out.samples.push(LatencySample {
            exchange: e,
            seconds,
            group,
        });
    }
}

fn publish(
    t: &mut Tracker,
    slot: u32,
    rec: &MqttRecord<'_>,
    p: &Publish<'_>,
    group: Option<GroupId>,
    pc: PublishCtx,
    out: &mut TrackerOutput<'_>,
) {
    let mut level = 0;
    if let Some(conn) = t.conns.at_mut(slot) {
        match rec.dir {
            Direction::C2S => conn.msgs_in += 1,
            Direction::S2C => conn.msgs_out += 1,
        }
        level = conn.level;
    }
    let topic = rec.topic.map_or(p.topic.0, |t| t.0);
    // QoS 3 is invalid (reported as a violation): no exchange to time.
    let stage = match p.qos {
        1 => Some(Stage::Qos1),
        2 => Some(Stage::Q2Rec),
        _ => None,
    };
    if let (Some(stage), Some(pid)) = (stage, p.packet_id) {
        // The topic, for a refusal to name (see `Extra::Topic`): 3.x acks cannot refuse,
        // an exact group names it at refusal time; only the rest is copied.
        let named = pc.exact && group.is_some();
        let extra = if named || matches!(level, 3 | 4) {
            Extra::None
        } else {
            let kept = topic.get(..MAX_KEPT_TOPIC_BYTES).unwrap_or(topic);
            Extra::Topic(kept.into(), kept.len() < topic.len())
        };
        let pe = pending(rec.ts_ns, Some(rec.ts_ns), group, extra);
        // dup=1: a re-send; the first send time is kept so one message is timed once.
        t.lat.start(key(rec, stage, rec.dir, pid), pe, p.dup);
    }
    // Fan-out needs the real topic; an unresolved alias gives none.
    if let Some(tp) = rec.topic {
        let h = match pc.fanout {
            FanoutPart::Untracked => {
                t.fan.untracked(rec.dir == Direction::S2C, p.dup, p.retain);
                return;
            }
            FanoutPart::Hashed(h) => h,
            FanoutPart::Hash => message_hash(tp.0, p.payload),
        };
        match rec.dir {
            Direction::C2S => t.fan.inbound(h, rec.ts_ns, group, p.dup),
            Direction::S2C => {
                if let Some((seconds, g)) = t.fan.outbound(h, rec.ts_ns, p.dup, p.retain) {
                    out.samples.push(LatencySample {
                        exchange: Exchange::Fanout,
                        seconds,
                        group: g.or(group),
                    });
                }
            }
        }
    }
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP: `stage` is the stage this packet answers.
fn ack(
    t: &mut Tracker,
    rec: &MqttRecord<'_>,
    a: &Ack<'_>,
    stage: Stage,
    out: &mut TrackerOutput<'_>,
) {
    let req_dir = other(rec.dir);
    let got = t.lat.answer(key(rec, stage, req_dir, a.packet_id));
    let (group, publish_ts) = got
        .as_ref()
        .map_or((None, None), |p| (p.group, p.publish_ts_ns));
    if let Some(p) = &got {
        sample(t, out, stage.exchange(), p.ts_ns, rec.ts_ns, p.group);
    }
    let code = a.reason_code.unwrap_or(0);
    let refused = code >= 0x80;
    match stage {
        Stage::Qos1 | Stage::Q2Rec if refused => {
            let conn = t.conns.get(&rec.flow.id);
            let mut ev = event(rec, conn, EventKind::PublishRefused);
            ev.code = Some(code);
            ev.topic = match &got {
                Some(Pending {
                    extra: Extra::Topic(tp, cut),
                    ..
                }) => {
                    let mut s = text(tp);
                    if *cut {
                        s.push('…');
                    }
                    Some(s)
                }
                Some(p) => p
                    .group
                    .zip(out.topics)
                    .and_then(|(g, topics)| topics.exact_topic(g))
                    .map(String::from),
                None => None,
            };
            out.events.push(ev);
        }
        // PUBREC accepted: the publisher's PUBREL comes next.
        Stage::Q2Rec => {
            let p = pending(rec.ts_ns, publish_ts, group, Extra::None);
            t.lat
                .start(key(rec, Stage::Q2Rel, rec.dir, a.packet_id), p, true);
        }
        Stage::Q2Rel => {
            let p = pending(rec.ts_ns, publish_ts, group, Extra::None);
            t.lat
                .start(key(rec, Stage::Q2Comp, rec.dir, a.packet_id), p, true);
        }
        Stage::Q2Comp => {
            if let Some(t0) = publish_ts {
                sample(t, out, Exchange::PublishQos2, t0, rec.ts_ns, group);
            }
        }
        _ => {}
    }
}

fn keep_filters(raw: &[u8]) -> Extra {
    Extra::Filters(raw.get(..MAX_KEPT_FILTERS_BYTES).unwrap_or(raw).into())
}

fn subscribe(
    t: &mut Tracker,
    slot: u32,
    rec: &MqttRecord<'_>,
    s: &Subscribe<'_>,
    out: &mut TrackerOutput<'_>,
) {
    for (f, _) in s.filters() {
        let (all, sys) = subscribe_alerts(f.0);
        for (hit, kind) in [
            (all, EventKind::WildcardSubscribe),
            (sys, EventKind::SysSubscribe),
        ] {
            if hit {
                let mut ev = event(rec, t.conns.at(slot), kind);
                ev.topic = Some(text(f.0));
                out.events.push(ev);
            }
        }
    }
    let p = pending(rec.ts_ns, None, None, keep_filters(s.filters_raw));
    t.lat
        .start(key(rec, Stage::Subscribe, rec.dir, s.packet_id), p, false);
}

fn unsubscribe(t: &mut Tracker, rec: &MqttRecord<'_>, u: &Unsubscribe<'_>) {
    let p = pending(rec.ts_ns, None, None, keep_filters(u.filters_raw));
    t.lat
        .start(key(rec, Stage::Unsubscribe, rec.dir, u.packet_id), p, false);
}

/// Filters of a kept SUBSCRIBE / UNSUBSCRIBE, in order.
fn kept_filters(p: &Option<Pending>, subscribe: bool) -> Vec<&[u8]> {
    let Some(Pending {
        extra: Extra::Filters(raw),
        ..
    }) = p
    else {
        return Vec::new();
    };
    if subscribe {
        let s = Subscribe {
            packet_id: 0,
            properties: Default::default(),
            filters_raw: raw,
        };
        s.filters().map(|(f, _)| f.0).collect()
    } else {
        let u = Unsubscribe {
            packet_id: 0,
            properties: Default::default(),
            filters_raw: raw,
        };
        u.filters().map(|f| f.0).collect()
    }
}

fn suback(
    t: &mut Tracker,
    slot: u32,
    rec: &MqttRecord<'_>,
    a: &SubAck<'_>,
    out: &mut TrackerOutput<'_>,
) {
    let got = t
        .lat
        .answer(key(rec, Stage::Subscribe, other(rec.dir), a.packet_id));
    if let Some(p) = &got {
        sample(t, out, Exchange::Subscribe, p.ts_ns, rec.ts_ns, None);
    }
    let filters = kept_filters(&got, true);
    for (i, &code) in a.codes.iter().enumerate() {
        let f = filters.get(i).copied();
        if code >= 0x80 {
            let mut ev = event(rec, t.conns.at(slot), EventKind::SubscribeRefused);
            ev.code = Some(code);
            ev.topic = f.map(text);
            out.events.push(ev);
        } else if let (Some(f), Some(conn)) = (f, t.conns.at_mut(slot)) {
            conn.subs.add(filter_hash(f), f);
        }
    }
}

fn unsuback(
    t: &mut Tracker,
    slot: u32,
    rec: &MqttRecord<'_>,
    a: &SubAck<'_>,
    out: &mut TrackerOutput<'_>,
) {
    let got = t
        .lat
        .answer(key(rec, Stage::Unsubscribe, other(rec.dir), a.packet_id));
    if let Some(p) = &got {
        sample(t, out, Exchange::Unsubscribe, p.ts_ns, rec.ts_ns, None);
    }
    // 3.x UNSUBACK carries no codes: every filter was removed.
    for (i, f) in kept_filters(&got, false).into_iter().enumerate() {
        let code = a.codes.get(i).copied().unwrap_or(0);
        if code >= 0x80 {
            let mut ev = event(rec, t.conns.at(slot), EventKind::UnsubscribeRefused);
            ev.code = Some(code);
            ev.topic = Some(text(f));
            out.events.push(ev);
        } else if let Some(conn) = t.conns.at_mut(slot) {
            conn.subs.remove(filter_hash(f), f);
        }
    }
    if got.is_none() {
        for &code in a.codes.iter().filter(|&&c| c >= 0x80) {
            let mut ev = event(rec, t.conns.at(slot), EventKind::UnsubscribeRefused);
            ev.code = Some(code);
            out.events.push(ev);
        }
    }
}

//! Tracker behaviour from hand-built records with chosen timestamps. Expected latencies
//! are hand-computed nanosecond differences; expected events and codes come from the
//! MQTT 3.1.1 / 5 specs.

use std::net::SocketAddr;

use mqscope::capture::CloseReason;
use mqscope::dissect::{FlowMeta, MqttRecord};
use mqscope::mqtt::encode::{encode, subscribe_filters, unsubscribe_filters};
use mqscope::mqtt::{
    Ack, ConnAck, Connect, DecodeError, Direction, FixedHeader, MqttStr, Packet, Publish,
    ReasonOnly, SubAck, Subscribe, Unsubscribe, parse_fixed_header,
};
use mqscope::observe::tracker::{LatencySample, Tracker, TrackerOutput, TrackerSnapshot};
use mqscope::observe::{Event, EventKind, EventQueue, Exchange, GroupId, ObserveConfig};

use Direction::{C2S, S2C};

/// A base time well into the epoch, so arithmetic near u64 nanosecond scale is exercised.
const T0: u64 = 1_700_000_000_123_456_789;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn flow(id: u64, client: &str) -> FlowMeta {
    FlowMeta {
        id,
        client: addr(client),
        broker: addr("10.9.9.9:1883"),
        from_start: false,
    }
}

fn header(p: &Packet<'_>, level: u8) -> FixedHeader {
    let mut v = Vec::new();
    encode(p, level, &mut v);
    parse_fixed_header(&v).unwrap().unwrap()
}

fn rec<'a>(f: &'a FlowMeta, ts: u64, dir: Direction, p: Packet<'a>) -> MqttRecord<'a> {
    rec_at(f, ts, dir, p, 5)
}

fn rec_at<'a>(
    f: &'a FlowMeta,
    ts: u64,
    dir: Direction,
    p: Packet<'a>,
    level: u8,
) -> MqttRecord<'a> {
    let topic = match &p {
        Packet::Publish(pb) => Some(pb.topic),
        _ => None,
    };
    MqttRecord {
        frame: ts % 1000,
        ts_ns: ts,
        flow: f,
        dir,
        level,
        level_known: true,
        header: header(&p, level),
        packet: Ok(p),
        topic,
        violation: None,
    }
}

fn connect(id: &'static str, user: Option<&'static str>, level: u8) -> Packet<'static> {
    Packet::Connect(Connect {
        protocol_name: MqttStr(if level == 3 { b"MQIsdp" } else { b"MQTT" }),
        protocol_level: level,
        flags: 0,
        clean_start: true,
        keep_alive: 30,
        properties: Default::default(),
        client_id: MqttStr(id.as_bytes()),
        will: None,
        username: user.map(|u| MqttStr(u.as_bytes())),
        password: None,
    })
}

fn connack(code: u8) -> Packet<'static> {
    Packet::ConnAck(ConnAck {
        session_present: false,
        code,
        properties: Default::default(),
    })
}

fn publish(
    topic: &'static str,
    payload: &'static [u8],
    qos: u8,
    pid: Option<u16>,
) -> Publish<'static> {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: MqttStr(topic.as_bytes()),
        packet_id: pid,
        properties: Default::default(),
        payload,
    }
}

fn ack(pid: u16, code: Option<u8>) -> Ack<'static> {
    Ack {
        packet_id: pid,
        reason_code: code,
        properties: Default::default(),
    }
}

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn subscribe(pid: u16, filters: &[&str]) -> Packet<'static> {
    let mut raw = Vec::new();
    let f: Vec<(&[u8], u8)> = filters.iter().map(|f| (f.as_bytes(), 1)).collect();
    subscribe_filters(&f, &mut raw);
    Packet::Subscribe(Subscribe {
        packet_id: pid,
        properties: Default::default(),
        filters_raw: leak(raw),
    })
}

fn unsubscribe(pid: u16, filters: &[&str]) -> Packet<'static> {
    let mut raw = Vec::new();
    let f: Vec<&[u8]> = filters.iter().map(|f| f.as_bytes()).collect();
    unsubscribe_filters(&f, &mut raw);
    Packet::Unsubscribe(Unsubscribe {
        packet_id: pid,
        properties: Default::default(),
        filters_raw: leak(raw),
    })
}

fn codes(pid: u16, codes: &'static [u8]) -> SubAck<'static> {
    SubAck {
        packet_id: pid,
        properties: Default::default(),
        codes,
    }
}

struct H {
    t: Tracker,
    q: EventQueue,
    samples: Vec<LatencySample>,
    events: Vec<Event>,
}

impl H {
    fn new(cfg: ObserveConfig) -> H {
        H {
            t: Tracker::new(&cfg),
            q: EventQueue::new(10_000),
            samples: Vec::new(),
            events: Vec::new(),
        }
    }

    fn feed(&mut self, r: &MqttRecord<'_>) {
        self.feed_g(r, None)
    }

    fn feed_g(&mut self, r: &MqttRecord<'_>, g: Option<GroupId>) {
        let mut out = TrackerOutput::new(&mut self.q);
        self.t.on_record(r, g, &mut out);
        self.samples.append(&mut out.samples);
        self.events.extend(self.q.drain());
    }

    fn close(&mut self, f: &FlowMeta, ts: u64, why: CloseReason) {
        let mut out = TrackerOutput::new(&mut self.q);
        self.t.on_flow_closed(f, ts, why, &mut out);
        self.events.extend(self.q.drain());
    }

    fn tick(&mut self, ts: u64) {
        let mut out = TrackerOutput::new(&mut self.q);
        self.t.tick(ts, &mut out);
    }

    fn of(&self, e: Exchange) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|s| s.exchange == e)
            .map(|s| s.seconds)
            .collect()
    }

    fn events_of(&self, k: EventKind) -> Vec<&Event> {
        self.events.iter().filter(|e| e.kind == k).collect()
    }

    fn snap(&self, ts: u64) -> TrackerSnapshot {
        self.t.snapshot(ts)
    }
}

fn ex(s: &TrackerSnapshot, e: Exchange) -> &mqscope::observe::tracker::ExchangeSnapshot {
    s.exchanges.iter().find(|x| x.exchange == e.name()).unwrap()
}

#[test]
fn every_exchange_latency_is_exact() {
    let mut h = H::new(ObserveConfig::default());
    let f = flow(1, "10.0.0.1:40000");
    h.feed(&rec(&f, T0, C2S, connect("dev1", None, 5)));
    h.feed(&rec(&f, T0 + 250_333, S2C, connack(0)));
    // QoS 1 client → broker and broker → client, same packet id: independent.
    h.feed(&rec(
        &f,
        T0 + 1_000_000,
        C2S,
        Packet::Publish(publish("a/b", b"x", 1, Some(7))),
    ));
    h.feed(&rec(
        &f,
        T0 + 1_100_000,
        S2C,
        Packet::Publish(publish("c/d", b"y", 1, Some(7))),
    ));
    h.feed(&rec(
        &f,
        T0 + 1_000_000 + 41_017,
        S2C,
        Packet::PubAck(ack(7, None)),
    ));
    h.feed(&rec(
        &f,
        T0 + 1_100_000 + 3_000_001,
        C2S,
        Packet::PubAck(ack(7, Some(0))),
    ));
    // QoS 2 from the client: PUBLISH, PUBREC, PUBREL, PUBCOMP.
    let q2 = T0 + 2_000_000_000;
    h.feed(&rec(
        &f,
        q2,
        C2S,
        Packet::Publish(publish("q/2", b"z", 2, Some(9))),
    ));
    h.feed(&rec(&f, q2 + 11, S2C, Packet::PubRec(ack(9, None))));
    h.feed(&rec(&f, q2 + 11 + 222, C2S, Packet::PubRel(ack(9, None))));
    h.feed(&rec(
        &f,
        q2 + 11 + 222 + 3_333,
        S2C,
        Packet::PubComp(ack(9, None)),
    ));
    // SUBSCRIBE, UNSUBSCRIBE, PING.
    let s = T0 + 3_000_000_000;
    h.feed(&rec(&f, s, C2S, subscribe(3, &["a/#"])));
    h.feed(&rec(&f, s + 777_777, S2C, Packet::SubAck(codes(3, &[1]))));
    h.feed(&rec(&f, s + 1_000_000_000, C2S, unsubscribe(4, &["a/#"])));
    h.feed(&rec(
        &f,
        s + 1_000_000_000 + 5,
        S2C,
        Packet::UnsubAck(codes(4, &[0])),
    ));
    h.feed(&rec(&f, s + 2_000_000_000, C2S, Packet::PingReq));
    h.feed(&rec(
        &f,
        s + 2_000_000_000 + 1_234_567_891,
        S2C,
        Packet::PingResp,
    ));

    assert_eq!(h.of(Exchange::Connect), vec![0.000250333]);
    assert_eq!(h.of(Exchange::PublishQos1), vec![0.000041017, 0.003000001]);
    assert_eq!(h.of(Exchange::PubRec), vec![11e-9]);
    assert_eq!(h.of(Exchange::PubRel), vec![222e-9]);
    assert_eq!(h.of(Exchange::PubComp), vec![3_333e-9]);
    assert_eq!(h.of(Exchange::PublishQos2), vec![3_566e-9]);
    assert_eq!(h.of(Exchange::Subscribe), vec![0.000777777]);
    assert_eq!(h.of(Exchange::Unsubscribe), vec![5e-9]);
    assert_eq!(h.of(Exchange::Ping), vec![1.234567891]);
    assert!(h.events.is_empty(), "{:?}", h.events);

    let snap = h.snap(s + 3_000_000_000);
    assert_eq!(ex(&snap, Exchange::PublishQos1).count, 2);
    assert_eq!(ex(&snap, Exchange::Ping).count, 1);
    // Sketch: within 1% of the true value.
    let p50 = ex(&snap, Exchange::Ping).p50.unwrap();
    assert!((p50 / 1.234567891 - 1.0).abs() < 0.01, "{p50}");
    assert_eq!(snap.tables.pending_requests, 0);
    let c = &snap.clients.top[0];
    assert_eq!(
        (c.client_id.as_str(), c.connects, c.msgs_in, c.msgs_out),
        ("dev1", 1, 2, 1)
    );
    assert!(c.connected);
    assert_eq!(c.subscriptions_held, 0);
}

#[test]
fn publish_samples_carry_the_publish_group() {
    let mut h = H::new(ObserveConfig::default());
    let f = flow(1, "10.0.0.1:40000");
    h.feed_g(
        &rec(&f, T0, C2S, Packet::Publish(publish("a", b"x", 1, Some(1)))),
        Some(GroupId(42)),
    );
    h.feed(&rec(&f, T0 + 10, S2C, Packet::PubAck(ack(1, None))));
    assert_eq!(
        h.samples,
        vec![LatencySample {
            exchange: Exchange::PublishQos1,
            seconds: 10e-9,
            group: Some(GroupId(42))
        }]
    );
}

#[test]
fn unanswered_requests_expire_and_close_counts_them() {
    let cfg = ObserveConfig {
        unanswered_timeout_secs: 2.0,
        ..Default::default()
    };
    let mut h = H::new(cfg);
    let f = flow(1, "10.0.0.1:40000");
    h.feed(&rec(
        &f,
        T0,
        C2S,
        Packet::Publish(publish("a", b"x", 1, Some(1))),
    ));
    h.tick(T0 + 1_999_999_999);
    assert_eq!(ex(&h.snap(T0), Exchange::PublishQos1).unanswered, 0);
    h.tick(T0 + 2_000_000_000);
    let s = h.snap(T0);
    assert_eq!(ex(&s, Exchange::PublishQos1).unanswered, 1);
    assert_eq!(s.tables.pending_requests, 0);
    // A PUBACK after expiry has nothing to answer.
    h.feed(&rec(
        &f,
        T0 + 3_000_000_000,
        S2C,
        Packet::PubAck(ack(1, None)),
    ));
    assert!(h.of(Exchange::PublishQos1).is_empty());
    assert_eq!(ex(&h.snap(T0), Exchange::PublishQos1).unmatched, 1);

    // SUBSCRIBE and a QoS 2 PUBREC-stage request, then the flow closes: counted at tick.
    let g = flow(2, "10.0.0.2:40000");
    h.feed(&rec(&g, T0 + 10, C2S, subscribe(5, &["x"])));
    h.feed(&rec(
        &g,
        T0 + 11,
        C2S,
        Packet::Publish(publish("q", b"z", 2, Some(6))),
    ));
    h.close(&g, T0 + 20, CloseReason::Rst);
    h.tick(T0 + 21);
    let s = h.snap(T0 + 21);
    assert_eq!(ex(&s, Exchange::Subscribe).unanswered, 1);
    assert_eq!(ex(&s, Exchange::PubRec).unanswered, 1);
    assert_eq!(ex(&s, Exchange::PublishQos2).unanswered, 1);
    assert_eq!(s.tables.pending_requests, 0);
}

#[test]
fn dup_retransmission_keeps_the_first_send_time() {
    let mut h = H::new(ObserveConfig::default());
    let f = flow(1, "10.0.0.1:40000");
    h.feed(&rec(
        &f,
        T0,
        C2S,
        Packet::Publish(publish("a", b"x", 1, Some(7))),
    ));
    let mut again = publish("a", b"x", 1, Some(7));
    again.dup = true;
    h.feed(&rec(&f, T0 + 1_000_000_000, C2S, Packet::Publish(again)));
    h.feed(&rec(
        &f,
        T0 + 1_500_000_000,
        S2C,
        Packet::PubAck(ack(7, None)),
    ));
    assert_eq!(h.of(Exchange::PublishQos1), vec![1.5]);
    let s = h.snap(T0);
    let e = ex(&s, Exchange::PublishQos1);
    assert_eq!((e.count, e.retransmits, e.unanswered), (1, 1, 0));
    // The re-sent copy is not a new inbound message for fan-out either.
    assert_eq!(s.fanout.inbound, 1);
}

#[test]
fn fanout_to_three_subscribers_with_known_delays() {
    let cfg = ObserveConfig {
        fanout_window_ms: 100,
        ..Default::default()
    };
    let mut h = H::new(cfg);
    let pubf = flow(1, "10.0.0.1:40000");
    let subs = [
        flow(2, "10.0.0.2:1"),
        flow(3, "10.0.0.3:1"),
        flow(4, "10.0.0.4:1"),
    ];
    let payload: &'static [u8] = b"{\"t\":21.5}";
    h.feed_g(
        &rec(
            &pubf,
            T0,
            C2S,
            Packet::Publish(publish("plant/1/temp", payload, 1, Some(1))),
        ),
        Some(GroupId(5)),
    );
    // Each subscriber gets its own copy: its own QoS and packet id.
    let delays = [100_000u64, 250_001, 1_000_000];
    for (i, (s, d)) in subs.iter().zip(delays).enumerate() {
        let qos = i as u8;
        let pid = (qos > 0).then_some(100 + i as u16);
        h.feed(&rec(
            s,
            T0 + d,
            S2C,
            Packet::Publish(publish("plant/1/temp", payload, qos, pid)),
        ));
    }
    // Same topic, other payload: not this message.
    h.feed(&rec(
        &subs[0],
        T0 + 5,
        S2C,
        Packet::Publish(publish("plant/1/temp", b"other", 0, None)),
    ));
    // A retained copy to a new subscriber: no sample.
    let mut ret = publish("plant/1/temp", payload, 0, None);
    ret.retain = true;
    h.feed(&rec(&subs[1], T0 + 6, S2C, Packet::Publish(ret)));
    // A message nobody receives.
    h.feed(&rec(
        &pubf,
        T0 + 7,
        C2S,
        Packet::Publish(publish("plant/2/temp", b"1", 0, None)),
    ));

    let fan: Vec<&LatencySample> = h
        .samples
        .iter()
        .filter(|s| s.exchange == Exchange::Fanout)
        .collect();
    assert_eq!(fan.len(), 3);
    assert_eq!(
        fan.iter().map(|s| s.seconds).collect::<Vec<_>>(),
        vec![100e-6, 250.001e-6, 1e-3]
    );
    assert!(fan.iter().all(|s| s.group == Some(GroupId(5))));

    // Copies after the window give no sample.
    h.feed(&rec(
        &subs[2],
        T0 + 100_000_001,
        S2C,
        Packet::Publish(publish("plant/1/temp", payload, 0, None)),
    ));
    assert_eq!(h.of(Exchange::Fanout).len(), 3);
    h.tick(T0 + 100_000_007);
    let f = h.snap(T0).fanout;
    assert_eq!(
        (f.inbound, f.matched, f.unmatched, f.skipped_retained),
        (2, 3, 2, 1)
    );
    assert_eq!((f.delivered_0, f.delivered_1, f.delivered_n), (1, 0, 1));
}

#[test]
fn takeover_from_another_address() {
    let mut h = H::new(ObserveConfig::default());
    let a = flow(1, "10.0.0.1:5000");
    let b = flow(2, "10.0.0.2:6000");
    h.feed(&rec(&a, T0, C2S, connect("dev-7", Some("alice"), 4)));
    h.feed(&rec(&a, T0 + 1, S2C, connack(0)));
    h.feed(&rec(
        &b,
        T0 + 1_000,
        C2S,
        connect("dev-7", Some("mallory"), 4),
    ));
    let ev = h.events_of(EventKind::ClientTakeover);
    assert_eq!(ev.len(), 1);
    let e = ev[0];
    assert_eq!(e.client_id.as_deref(), Some("dev-7"));
    assert_eq!(e.username.as_deref(), Some("mallory"));
    assert_eq!(e.client_addr, Some(addr("10.0.0.2:6000")));
    assert_eq!(e.detail, Some("other_ip"));
    assert_eq!(e.ts_ns, T0 + 1_000);
    // The old connection ends (the broker drops it).
    h.close(&a, T0 + 2_000, CloseReason::Fin);
    let s = h.snap(T0 + 2_000);
    let c = &s.clients.top[0];
    assert_eq!(c.connects, 2);
    assert_eq!(c.takeovers, 1);
    assert_eq!(c.disconnects, vec![("taken_over", 1)]);
    assert_eq!(c.session_count, 1);
    assert_eq!(c.session_secs_max, Some(2e-6));
    assert!(c.connected, "the new connection is open");
    assert_eq!(c.connects_last_1m, 2.0);
    assert_eq!(s.connections.takeovers, 1);
    // Reconnecting after the old one closed is no takeover.
    let c3 = flow(3, "10.0.0.3:7000");
    h.close(&b, T0 + 3_000, CloseReason::Fin);
    h.feed(&rec(&c3, T0 + 4_000, C2S, connect("dev-7", None, 4)));
    assert_eq!(h.events_of(EventKind::ClientTakeover).len(), 1);
}

#[test]
fn connack_refusals_and_auth_failures() {
    let mut h = H::new(ObserveConfig::default());
    // (level, code, refused, auth)
    let cases = [
        (4u8, 0u8, false, false),
        (4, 1, true, false),
        (4, 2, true, false),
        (4, 3, true, false),
        (4, 4, true, true),
        (3, 5, true, true),
        (5, 0x00, false, false),
        (5, 0x80, true, false),
        (5, 0x86, true, true),
        (5, 0x87, true, true),
        (5, 0x8C, true, true),
        (5, 0x8A, true, false),
    ];
    let flows: Vec<FlowMeta> = (0..cases.len())
        .map(|i| flow(i as u64 + 1, "10.0.0.1:1"))
        .collect();
    for (i, &(level, code, refused, auth)) in cases.iter().enumerate() {
        h.events.clear();
        let f = &flows[i];
        h.feed(&rec_at(
            f,
            T0 + i as u64,
            C2S,
            connect("c", Some("u1"), level),
            level,
        ));
        h.feed(&rec_at(f, T0 + i as u64 + 1, S2C, connack(code), level));
        let r = h.events_of(EventKind::ConnectRefused);
        assert_eq!(
            r.len(),
            usize::from(refused),
            "level {level} code {code:#x}"
        );
        assert_eq!(
            h.events_of(EventKind::AuthFailure).len(),
            usize::from(auth),
            "level {level} code {code:#x}"
        );
        if refused {
            assert_eq!(r[0].code, Some(code));
            assert_eq!(r[0].username.as_deref(), Some("u1"));
            assert_eq!(r[0].client_id.as_deref(), Some("c"));
        }
    }
    let s = h.snap(T0);
    assert_eq!(s.connections.connacks_refused, 10);
    assert_eq!(s.connections.auth_failures, 5);
    assert_eq!(s.clients.top[0].auth_result, Some(0x8A));
}

#[test]
fn refusals_name_their_topic_or_filter() {
    let mut h = H::new(ObserveConfig::default());
    let f = flow(1, "10.0.0.1:1");
    h.feed(&rec(&f, T0, C2S, connect("c1", Some("bob"), 5)));
    h.feed(&rec(&f, T0, S2C, connack(0)));
    // SUBACK: the second filter refused (0x87 not authorised), by position.
    h.feed(&rec(
        &f,
        T0 + 1,
        C2S,
        subscribe(1, &["ok/1", "secret/#", "ok/2"]),
    ));
    h.feed(&rec(
        &f,
        T0 + 2,
        S2C,
        Packet::SubAck(codes(1, &[1, 0x87, 0])),
    ));
    let e = h.events_of(EventKind::SubscribeRefused);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].topic.as_deref(), e[0].code),
        (Some("secret/#"), Some(0x87))
    );
    assert_eq!(e[0].username.as_deref(), Some("bob"));
    // MQTT 3.1.1 SUBACK failure 0x80.
    h.feed(&rec(&f, T0 + 3, C2S, subscribe(2, &["x"])));
    h.feed(&rec(&f, T0 + 4, S2C, Packet::SubAck(codes(2, &[0x80]))));
    assert_eq!(
        h.events_of(EventKind::SubscribeRefused)[1].topic.as_deref(),
        Some("x")
    );
    // Granted filters are held.
    assert_eq!(h.snap(T0).clients.top[0].subscriptions_held, 2);

    // PUBACK / PUBREC >= 0x80 name the PUBLISH's topic.
    h.feed(&rec(
        &f,
        T0 + 5,
        C2S,
        Packet::Publish(publish("cmd/door", b"open", 1, Some(3))),
    ));
    h.feed(&rec(&f, T0 + 6, S2C, Packet::PubAck(ack(3, Some(0x87)))));
    h.feed(&rec(
        &f,
        T0 + 7,
        C2S,
        Packet::Publish(publish("cmd/q2", b"1", 2, Some(4))),
    ));
    h.feed(&rec(&f, T0 + 8, S2C, Packet::PubRec(ack(4, Some(0x80)))));
    // PUBACK 0x10 (no matching subscribers) is a success.
    h.feed(&rec(
        &f,
        T0 + 9,
        C2S,
        Packet::Publish(publish("a", b"1", 1, Some(5))),
    ));
    h.feed(&rec(&f, T0 + 10, S2C, Packet::PubAck(ack(5, Some(0x10)))));
    let e = h.events_of(EventKind::PublishRefused);
    assert_eq!(e.len(), 2);
    assert_eq!(
        (e[0].topic.as_deref(), e[0].code),
        (Some("cmd/door"), Some(0x87))
    );
    assert_eq!(
        (e[1].topic.as_deref(), e[1].code),
        (Some("cmd/q2"), Some(0x80))
    );
    // A refused PUBREC ends the QoS 2 flow: no PUBREL is awaited.
    assert_eq!(h.snap(T0).tables.pending_requests, 0);

    // UNSUBACK >= 0x80 (MQTT 5).
    h.feed(&rec(&f, T0 + 11, C2S, unsubscribe(6, &["ok/1", "nope"])));
    h.feed(&rec(
        &f,
        T0 + 12,
        S2C,
        Packet::UnsubAck(codes(6, &[0, 0x8F])),
    ));
    let e = h.events_of(EventKind::UnsubscribeRefused);
    assert_eq!(
        (e.len(), e[0].topic.as_deref(), e[0].code),
        (1, Some("nope"), Some(0x8F))
    );
    assert_eq!(h.snap(T0).clients.top[0].subscriptions_held, 1);
}

#[test]
fn other_wire_events() {
    let mut h = H::new(ObserveConfig::default());
    let f = flow(1, "10.0.0.1:1");
    h.feed(&rec(&f, T0, C2S, connect("c1", Some("eve"), 5)));
    h.feed(&rec(
        &f,
        T0 + 1,
        C2S,
        subscribe(1, &["#", "$SYS/#", "a/#", "$share/g/#"]),
    ));
    let w = h.events_of(EventKind::WildcardSubscribe);
    assert_eq!(
        w.iter()
            .map(|e| e.topic.as_deref().unwrap())
            .collect::<Vec<_>>(),
        vec!["#", "$share/g/#"]
    );
    let s = h.events_of(EventKind::SysSubscribe);
    assert_eq!((s.len(), s[0].topic.as_deref()), (1, Some("$SYS/#")));

    h.feed(&rec(
        &f,
        T0 + 2,
        C2S,
        Packet::Auth(ReasonOnly {
            reason_code: Some(0x18),
            properties: Default::default(),
        }),
    ));
    assert_eq!(h.events_of(EventKind::AuthExchange)[0].code, Some(0x18));

    // A second CONNECT on the same connection.
    h.feed(&rec(&f, T0 + 3, C2S, connect("c1", Some("eve"), 5)));
    let v = h.events_of(EventKind::ProtocolViolation);
    assert_eq!((v.len(), v[0].detail), (1, Some("second_connect")));

    // A violation reported by the decoder, and a malformed packet.
    let mut r = rec(
        &f,
        T0 + 4,
        C2S,
        Packet::Publish(publish("a/+", b"", 0, None)),
    );
    r.violation = Some("wildcard_in_topic");
    h.feed(&r);
    let mut bad = rec(&f, T0 + 5, C2S, Packet::PingReq);
    bad.packet = Err(DecodeError::Truncated);
    h.feed(&bad);
    let v = h.events_of(EventKind::ProtocolViolation);
    assert_eq!(
        (v[1].detail, v[1].topic.as_deref()),
        (Some("wildcard_in_topic"), Some("a/+"))
    );
    let m = h.events_of(EventKind::Malformed);
    assert_eq!(
        (m.len(), m[0].detail, m[0].frame),
        (1, Some("truncated"), Some((T0 + 5) % 1000))
    );
    assert_eq!(m[0].client_id.as_deref(), Some("c1"));

    // DISCONNECT from the broker: session taken over (0x8E); a normal one raises nothing.
    h.feed(&rec(
        &f,
        T0 + 6,
        S2C,
        Packet::Disconnect(ReasonOnly {
            reason_code: Some(0x8E),
            properties: Default::default(),
        }),
    ));
    let d = h.events_of(EventKind::Disconnect);
    assert_eq!(
        (d.len(), d[0].code, d[0].detail),
        (1, Some(0x8E), Some("from_broker"))
    );
    let g = flow(2, "10.0.0.2:1");
    h.feed(&rec(&g, T0 + 7, C2S, connect("c2", None, 5)));
    h.feed(&rec(
        &g,
        T0 + 8,
        C2S,
        Packet::Disconnect(ReasonOnly {
            reason_code: None,
            properties: Default::default(),
        }),
    ));
    assert_eq!(h.events_of(EventKind::Disconnect).len(), 1);
    h.close(&f, T0 + 9, CloseReason::Fin);
    h.close(&g, T0 + 9, CloseReason::Fin);
    let s = h.snap(T0 + 9);
    assert_eq!(
        s.clients.disconnects,
        vec![("normal", 1), ("taken_over", 1)]
    );
}

#[test]
fn packets_before_connect_only_when_seen_from_the_start() {
    let mut h = H::new(ObserveConfig::default());
    let mid = flow(1, "10.0.0.1:1");
    let mut start = flow(2, "10.0.0.2:1");
    start.from_start = true;
    // Midstream: we may simply have missed the CONNECT.
    h.feed(&rec(
        &mid,
        T0,
        C2S,
        Packet::Publish(publish("a", b"", 0, None)),
    ));
    assert!(h.events.is_empty());
    h.feed(&rec(
        &start,
        T0 + 1,
        C2S,
        Packet::Publish(publish("a", b"", 0, None)),
    ));
    h.feed(&rec(&start, T0 + 2, C2S, Packet::PingReq));
    let v = h.events_of(EventKind::ProtocolViolation);
    assert_eq!((v.len(), v[0].detail), (1, Some("packet_before_connect")));
    assert_eq!(h.snap(T0).connections.packets_before_connect, 1);
}

#[test]
fn caps_evict_and_count_and_memory_stays_bounded() {
    let cfg = ObserveConfig {
        max_pending_requests: 100,
        max_clients: 50,
        max_connections: 40,
        max_fanout_pending: 32,
        ..Default::default()
    };
    let mut h = H::new(cfg);
    let ids: Vec<&'static str> = (0..2_000)
        .map(|i| &*Box::leak(format!("client-{i}").into_boxed_str()))
        .collect();
    let payloads: Vec<&'static [u8]> = (0..2_000u32)
        .map(|i| leak(i.to_be_bytes().to_vec()))
        .collect();
    let flows: Vec<FlowMeta> = (0..2_000).map(|i| flow(i + 1, "10.0.0.1:1")).collect();
    let mut mem_at_200 = 0;
    for (i, f) in flows.iter().enumerate() {
        let ts = T0 + i as u64 * 1_000;
        h.feed(&rec(f, ts, C2S, connect(ids[i], None, 5)));
        h.feed(&rec(
            f,
            ts + 1,
            C2S,
            Packet::Publish(publish("t", payloads[i], 1, Some(1))),
        ));
        h.feed(&rec(f, ts + 2, C2S, subscribe(2, &["x/#"])));
        if i == 199 {
            h.tick(ts);
            mem_at_200 = h.t.mem_bytes();
        }
    }
    h.tick(T0 + 2_000_000);
    let s = h.snap(T0);
    assert_eq!(s.tables.clients, 50);
    assert_eq!(s.clients.evicted, 1_950);
    assert_eq!(s.tables.connections, 40);
    assert_eq!(s.connections.evicted, 1_960);
    assert_eq!(s.tables.pending_requests, 100);
    // 3 requests per connection (CONNECT, PUBLISH, SUBSCRIBE): 100 still pending (all
    // of connections still open), the rest pushed out of the full table.
    let evicted: u64 = s.exchanges.iter().map(|e| e.evicted).sum();
    let dropped: u64 = s.exchanges.iter().map(|e| e.unanswered).sum();
    assert_eq!((evicted, dropped), (6_000 - 100, 0));
    // 32 slots (8 sets of 4), all taken: every other message pushed out.
    assert_eq!(s.tables.fanout_pending, 32);
    assert_eq!(s.fanout.evicted, 2_000 - 32);
    // Ten times the input, same state size (slots are reused once the caps are hit).
    let mem = h.t.mem_bytes();
    assert!(mem <= mem_at_200 + mem_at_200 / 10, "{mem} vs {mem_at_200}");
    assert!(s.clients.top.len() <= 50);
}

#[test]
fn broker_to_client_qos2_and_client_keys() {
    let mut h = H::new(ObserveConfig::default());
    let f = flow(1, "10.0.0.1:40000");
    let g = flow(2, "10.0.0.1:40001");
    // Before CONNECT the key is the address's; after, the client id's, and the same
    // id on another connection gives the same key.
    h.feed(&rec(&f, T0, C2S, Packet::PingReq));
    let k_addr = h.t.client_key(1);
    h.feed(&rec(&f, T0 + 1, C2S, connect("sensor-9", None, 5)));
    let k_id = h.t.client_key(1);
    assert_ne!(k_addr, k_id);
    h.feed(&rec(&g, T0 + 2, C2S, connect("sensor-9", None, 5)));
    assert_eq!(h.t.client_key(2), k_id);
    assert_eq!(h.t.client_key(1), k_id);
    // QoS 2 from the broker: PUBLISH and PUBREL go out, PUBREC and PUBCOMP come back.
    let t = T0 + 1_000;
    h.feed(&rec(
        &f,
        t,
        S2C,
        Packet::Publish(publish("cmd", b"1", 2, Some(1))),
    ));
    h.feed(&rec(&f, t + 100, C2S, Packet::PubRec(ack(1, None))));
    h.feed(&rec(&f, t + 300, S2C, Packet::PubRel(ack(1, None))));
    h.feed(&rec(&f, t + 600, C2S, Packet::PubComp(ack(1, None))));
    assert_eq!(h.of(Exchange::PubRec), vec![100e-9]);
    assert_eq!(h.of(Exchange::PubRel), vec![200e-9]);
    assert_eq!(h.of(Exchange::PubComp), vec![300e-9]);
    assert_eq!(h.of(Exchange::PublishQos2), vec![600e-9]);
    // A PUBCOMP in the wrong direction answers nothing.
    h.feed(&rec(&f, t + 700, S2C, Packet::PubComp(ack(1, None))));
    assert_eq!(h.of(Exchange::PubComp).len(), 1);
}

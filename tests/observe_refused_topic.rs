//! A refused PUBLISH (MQTT 5 PUBACK / PUBREC with a reason code >= 0x80) names its whole
//! topic in the `publish_refused` event, whether the topic holds an exact group (named
//! from the group) or lies beyond the exact-topic cap (the topic is kept with the
//! request). ISA-95 topics are longer than the 46 bytes once kept. A kept topic is cut at
//! 256 bytes (the longest exact group name), so clients sending 64 KB topics cannot make
//! the pending-request table hold megabytes.

use std::net::SocketAddr;

use mqscope::capture::TcpSegment;
use mqscope::dissect::{DissectConfig, Dissector};
use mqscope::mqtt::{Ack, ConnAck, Connect, MqttStr, Packet, Properties, Publish, encode};
use mqscope::observe::{EventKind, ObserveConfig, Observer};

/// One TCP connection, client and broker side, fed segment by segment.
struct Conn {
    c: SocketAddr,
    s: SocketAddr,
    cseq: u32,
    sseq: u32,
    t: u64,
    f: u64,
}

impl Conn {
    fn open(d: &mut Dissector, obs: &mut Observer, port: u16) -> Conn {
        let mut k = Conn {
            c: SocketAddr::from(([10, 0, 0, 5], port)),
            s: SocketAddr::from(([10, 0, 0, 1], 1883)),
            cseq: 100,
            sseq: 900,
            t: 1_000_000_000,
            f: 0,
        };
        k.seg(d, obs, true, true, b"");
        k.seg(d, obs, false, true, b"");
        k
    }

    fn seg(&mut self, d: &mut Dissector, obs: &mut Observer, c2s: bool, syn: bool, p: &[u8]) {
        self.t += 1_000_000;
        self.f += 1;
        let (src, dst, seq, ack) = if c2s {
            (self.c, self.s, self.cseq, self.sseq)
        } else {
            (self.s, self.c, self.sseq, self.cseq)
        };
        let sg = TcpSegment {
            src,
            dst,
            seq,
            ack,
            syn,
            ack_flag: !(syn && c2s),
            fin: false,
            rst: false,
            payload: p,
            truncated: false,
            missing: 0,
        };
        d.on_segment(self.f, self.t, &sg, obs);
        let n = p.len() as u32 + u32::from(syn);
        if c2s {
            self.cseq = self.cseq.wrapping_add(n);
        } else {
            self.sseq = self.sseq.wrapping_add(n);
        }
    }

    fn send(&mut self, d: &mut Dissector, obs: &mut Observer, c2s: bool, pkt: Packet<'_>) {
        let mut b = Vec::new();
        encode::encode(&pkt, 5, &mut b);
        self.seg(d, obs, c2s, false, &b);
    }
}

fn connect(id: &str) -> Packet<'_> {
    Packet::Connect(Connect {
        protocol_name: MqttStr(b"MQTT"),
        protocol_level: 5,
        flags: 0,
        clean_start: true,
        keep_alive: 30,
        properties: Properties::default(),
        client_id: MqttStr(id.as_bytes()),
        will: None,
        username: None,
        password: None,
    })
}

fn publish(topic: &str, qos: u8, pid: u16) -> Packet<'_> {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: MqttStr(topic.as_bytes()),
        packet_id: Some(pid),
        properties: Properties::default(),
        payload: b"21.5",
    })
}

fn ack(pid: u16, code: u8) -> Ack<'static> {
    Ack {
        packet_id: pid,
        reason_code: Some(code),
        properties: Properties::default(),
    }
}

/// An observer with one MQTT 5 connection, CONNECT and CONNACK seen.
fn connected(cfg: &ObserveConfig) -> (Dissector, Observer, Conn) {
    let mut d = Dissector::new(DissectConfig::default());
    let mut obs = Observer::new(cfg).unwrap();
    let mut k = Conn::open(&mut d, &mut obs, 40001);
    k.send(&mut d, &mut obs, true, connect("line-7-plc"));
    let ca = ConnAck {
        session_present: false,
        code: 0,
        properties: Properties::default(),
    };
    k.send(&mut d, &mut obs, false, Packet::ConnAck(ca));
    (d, obs, k)
}

/// Publishes each topic at QoS `qos`, refused with `code`; returns the refusals' topics.
fn refused_topics(cfg: &ObserveConfig, topics: &[&str], qos: u8, code: u8) -> Vec<String> {
    let (mut d, mut obs, mut k) = connected(cfg);
    for (i, t) in topics.iter().enumerate() {
        let pid = i as u16 + 1;
        k.send(&mut d, &mut obs, true, publish(t, qos, pid));
        let a = ack(pid, code);
        let answer = if qos == 1 {
            Packet::PubAck(a)
        } else {
            Packet::PubRec(a)
        };
        k.send(&mut d, &mut obs, false, answer);
    }
    obs.events()
        .drain()
        .filter(|e| e.kind == EventKind::PublishRefused)
        .map(|e| {
            assert_eq!(e.client_id.as_deref(), Some("line-7-plc"));
            assert_eq!(e.code, Some(code));
            e.topic.unwrap_or_default()
        })
        .collect()
}

const LONG: &str = "acme/site-03/area-2/line-07/cell-4/dev-0123/temperature";
const LONGER: &str = "acme/site-03/area-2/line-07/cell-4/dev-0124/cmd/setpoint/zone-1";

#[test]
fn an_exact_topic_is_named_whole() {
    let cfg = ObserveConfig::default();
    assert_eq!(
        refused_topics(&cfg, &[LONG, LONGER], 1, 0x87),
        [LONG, LONGER]
    );
    assert_eq!(refused_topics(&cfg, &[LONG], 2, 0x97), [LONG]);
}

#[test]
fn a_topic_beyond_the_exact_cap_is_named_whole() {
    // One exact topic allowed: the first takes it, the next two go to their template
    // (or `__other__`), whose name is not the topic.
    let cfg = ObserveConfig {
        max_exact_topics: 1,
        ..ObserveConfig::default()
    };
    assert_eq!(
        refused_topics(&cfg, &["first", LONG, LONGER], 1, 0x87),
        ["first", LONG, LONGER]
    );
    let cfg = ObserveConfig {
        max_exact_topics: 1,
        max_templates: 1,
        ..ObserveConfig::default()
    };
    assert_eq!(
        refused_topics(&cfg, &["first", LONG, LONGER], 2, 0x80),
        ["first", LONG, LONGER]
    );
}

#[test]
fn a_topic_longer_than_a_group_name_is_cut_and_marked() {
    // 1000 bytes: longer than any exact group's name (256), so it is kept with the
    // request, cut to 256 bytes and marked.
    let long = "a/".repeat(500);
    let got = refused_topics(&ObserveConfig::default(), &[&long], 1, 0x87);
    assert_eq!(got, [format!("{}…", &long[..256])]);
}

#[test]
fn long_topics_of_unanswered_requests_do_not_grow_memory() {
    // 1000 QoS 1 PUBLISHes with 20 KB topics (MQTT allows 64 KB), never acknowledged:
    // kept whole they would pin 20 MB; cut, at most 1000 x 256 bytes.
    let (mut d, mut obs, mut k) = connected(&ObserveConfig::default());
    let before = obs.mem_bytes();
    let long = "x".repeat(20_000);
    for i in 0..1000u16 {
        k.send(&mut d, &mut obs, true, publish(&long, 1, i + 1));
    }
    let grown = obs.mem_bytes() - before;
    assert!(grown < 1_000_000, "observation state grew by {grown} bytes");
    // The requests are really pending (so their topics are held).
    let pending = obs.tracker().snapshot(k.t).tables.pending_requests;
    assert_eq!(pending, 1000);
}

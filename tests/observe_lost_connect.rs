//! "Packet before CONNECT" is a protocol violation only when the connection's start was
//! really seen. When the capture lost the client's first segment (a kernel drop: the
//! broker ACKs bytes the capture never saw), the next packet must not be flagged.

use std::net::SocketAddr;

use mqscope::capture::TcpSegment;
use mqscope::dissect::{DissectConfig, Dissector};
use mqscope::mqtt::{Connect, MqttStr, Packet, Properties, Publish, encode};
use mqscope::observe::{EventKind, ObserveConfig, Observer};

fn seg<'a>(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    syn: bool,
    payload: &'a [u8],
) -> TcpSegment<'a> {
    TcpSegment {
        src,
        dst,
        seq,
        ack,
        syn,
        ack_flag: !(syn && ack == 0),
        fin: false,
        rst: false,
        payload,
        truncated: false,
        missing: 0,
    }
}

fn run(lose_connect: bool) -> u64 {
    let c: SocketAddr = "10.0.0.5:40001".parse().unwrap();
    let s: SocketAddr = "10.0.0.1:1883".parse().unwrap();
    let mut connect = Vec::new();
    encode::encode(
        &Packet::Connect(Connect {
            protocol_name: MqttStr(b"MQTT"),
            protocol_level: 4,
            flags: 0,
            clean_start: true,
            keep_alive: 30,
            properties: Properties::default(),
            client_id: MqttStr(b"pump-7"),
            will: None,
            username: None,
            password: None,
        }),
        4,
        &mut connect,
    );
    let mut publish = Vec::new();
    let p = Publish {
        dup: false,
        qos: 0,
        retain: false,
        topic: MqttStr(b"plant/pump-7/rpm"),
        packet_id: None,
        properties: Properties::default(),
        payload: b"1450",
    };
    encode::encode(&Packet::Publish(p), 4, &mut publish);
    let mut d = Dissector::new(DissectConfig::default());
    let mut obs = Observer::new(&ObserveConfig::default()).unwrap();
    let n = connect.len() as u32;
    let mut t = 1_000_000_000u64;
    let mut f = 0;
    let mut feed = |d: &mut Dissector, obs: &mut Observer, sg: TcpSegment<'_>| {
        t += 1000;
        f += 1;
        d.on_segment(f, t, &sg, obs);
    };
    feed(&mut d, &mut obs, seg(c, s, 100, 0, true, b""));
    feed(&mut d, &mut obs, seg(s, c, 900, 101, true, b""));
    if !lose_connect {
        feed(&mut d, &mut obs, seg(c, s, 101, 901, false, &connect));
    }
    // The broker acknowledges the CONNECT either way (it did receive it).
    feed(&mut d, &mut obs, seg(s, c, 901, 101 + n, false, b""));
    feed(&mut d, &mut obs, seg(c, s, 101 + n, 901, false, &publish));
    obs.events()
        .drain()
        .filter(|e| {
            e.kind == EventKind::ProtocolViolation && e.detail == Some("packet_before_connect")
        })
        .count() as u64
}

#[test]
fn a_lost_connect_is_not_a_protocol_violation() {
    assert_eq!(run(true), 0);
}

#[test]
fn a_publish_really_before_connect_still_is() {
    // Control: the same flow with the CONNECT present gives no violation either, and a
    // flow that starts with a PUBLISH right after the handshake gives one.
    assert_eq!(run(false), 0);
    let c: SocketAddr = "10.0.0.6:40002".parse().unwrap();
    let s: SocketAddr = "10.0.0.1:1883".parse().unwrap();
    let mut publish = Vec::new();
    let p = Publish {
        dup: false,
        qos: 0,
        retain: false,
        topic: MqttStr(b"x"),
        packet_id: None,
        properties: Properties::default(),
        payload: b"1",
    };
    encode::encode(&Packet::Publish(p), 4, &mut publish);
    let mut d = Dissector::new(DissectConfig::default());
    let mut obs = Observer::new(&ObserveConfig::default()).unwrap();
    d.on_segment(1, 1000, &seg(c, s, 100, 0, true, b""), &mut obs);
    d.on_segment(2, 2000, &seg(s, c, 900, 101, true, b""), &mut obs);
    d.on_segment(3, 3000, &seg(c, s, 101, 901, false, &publish), &mut obs);
    let n = obs
        .events()
        .drain()
        .filter(|e| e.detail == Some("packet_before_connect"))
        .count();
    assert_eq!(n, 1);
}

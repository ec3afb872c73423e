//! Each rule fires on its pattern at the threshold and stays quiet just below it.

use std::net::SocketAddr;

use crate::dissect::{FlowMeta, MqttRecord};
use crate::mqtt::{
    Connect, Direction, FixedHeader, MqttStr, Packet, Properties, Publish, SubAck, Subscribe,
};
use crate::observe::{Event, EventKind};

use super::*;

const S: u64 = 1_000_000_000;

fn flow(id: u64, port: u16) -> FlowMeta {
    FlowMeta {
        id,
        client: SocketAddr::from(([10, 0, 0, id as u8], port)),
        broker: SocketAddr::from(([10, 0, 0, 1], 1883)),
        from_start: true,
    }
}

fn rec<'a>(f: &'a FlowMeta, ts: u64, dir: Direction, p: Packet<'a>) -> MqttRecord<'a> {
    MqttRecord {
        frame: 1,
        ts_ns: ts,
        flow: f,
        dir,
        level: 4,
        level_known: true,
        header: FixedHeader {
            first_byte: 0,
            remaining_length: 0,
            header_len: 2,
        },
        packet: Ok(p),
        topic: None,
        violation: None,
    }
}

fn connect(id: &str, keep_alive: u16) -> Packet<'_> {
    Packet::Connect(Connect {
        protocol_name: MqttStr(b"MQTT"),
        protocol_level: 4,
        flags: 2,
        clean_start: true,
        keep_alive,
        properties: Properties::default(),
        client_id: MqttStr(id.as_bytes()),
        will: None,
        username: None,
        password: None,
    })
}

fn publish<'a>(topic: &'a str, payload: &'a [u8], retain: bool) -> Packet<'a> {
    Packet::Publish(Publish {
        dup: false,
        qos: 0,
        retain,
        topic: MqttStr(topic.as_bytes()),
        packet_id: None,
        properties: Properties::default(),
        payload,
    })
}

fn event(ts: u64, kind: EventKind, port: u16, id: &str, user: &str) -> Event {
    let mut e = Event::new(ts, kind);
    e.client_addr = Some(SocketAddr::from(([192, 0, 2, 7], port)));
    e.client_id = Some(id.into());
    e.username = Some(user.into());
    e
}

fn engine(cfg: RulesConfig) -> RuleEngine {
    RuleEngine::new(cfg).unwrap()
}

fn fired<'a>(e: &'a RuleEngine, rule: &str) -> Vec<&'a RuleHit> {
    e.hits().iter().filter(|h| h.rule == rule).collect()
}

#[test]
fn default_config_is_valid_and_bad_values_are_named() {
    assert!(RulesConfig::default().validate().is_empty());
    let bad = RulesConfig {
        auth_failures: 0,
        flood_window_s: 0,
        ..Default::default()
    };
    let errs = bad.validate();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("auth_failures"));
    assert!(RuleEngine::new(bad).is_err());
    let r: Result<RulesConfig, _> = serde_json::from_str(r#"{"auth_failurs": 3}"#);
    assert!(r.is_err(), "unknown fields are refused");
    let r: RulesConfig = serde_json::from_str(r#"{"auth_failures": 3}"#).unwrap();
    assert_eq!(r.auth_failures, 3);
    assert_eq!(r.auth_window_s, 60);
}

#[test]
fn auth_brute_force_per_ip_and_per_user() {
    // 4 failures within 60 s: below the default 5.
    let mut e = engine(RulesConfig::default());
    for i in 0..4 {
        e.on_event(&event(
            i * 10 * S,
            EventKind::AuthFailure,
            4000 + i as u16,
            "x",
            "op",
        ));
    }
    assert!(fired(&e, "auth_brute_force").is_empty());
    // 5 but spread over more than 60 s (0, 15, 30, 45, 60): the first falls out.
    let mut e = engine(RulesConfig::default());
    for i in 0..5 {
        e.on_event(&event(i * 15 * S, EventKind::AuthFailure, 4000, "x", "op"));
    }
    assert!(fired(&e, "auth_brute_force").is_empty());
    // 5 within 60 s, each from a new source port: one hit per IP and one per user.
    let mut e = engine(RulesConfig::default());
    for i in 0..5 {
        e.on_event(&event(
            100 * S + i * S,
            EventKind::AuthFailure,
            4000 + i as u16,
            "x",
            "op",
        ));
    }
    let h = fired(&e, "auth_brute_force");
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].key, "ip:192.0.2.7");
    assert_eq!(h[1].key, "user:op");
    assert_eq!(h[0].first_ts_ns, 100 * S);
    assert_eq!(h[0].ts_ns, 104 * S);
    assert_eq!(h[0].count, 5);
    assert_eq!(h[0].severity, Severity::High);
    // A sixth one while active extends the hit instead of firing again.
    e.on_event(&event(105 * S, EventKind::AuthFailure, 4100, "x", "op"));
    let h = fired(&e, "auth_brute_force");
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].count, 6);
    // Quiet for the cool-down (60 s after the last at 105 s): resolved at 165 s.
    e.tick(200 * S);
    assert_eq!(
        fired(&e, "auth_brute_force")[0].cleared_ts_ns,
        Some(165 * S)
    );
    // And it can fire again afterwards.
    for i in 0..5 {
        e.on_event(&event(
            300 * S + i * S,
            EventKind::AuthFailure,
            4000,
            "x",
            "op",
        ));
    }
    assert_eq!(fired(&e, "auth_brute_force").len(), 4);
}

#[test]
fn acl_denial_burst_per_client() {
    let mut e = engine(RulesConfig::default());
    let kinds = [
        EventKind::SubscribeRefused,
        EventKind::PublishRefused,
        EventKind::AclDenied,
        EventKind::PublishRefused,
    ];
    for (i, k) in kinds.iter().enumerate() {
        e.on_event(&event(i as u64 * S, *k, 4000, "intruder", "u"));
    }
    // Another client's denial does not count towards this one.
    e.on_event(&event(5 * S, EventKind::AclDenied, 4001, "other", "u"));
    assert!(fired(&e, "acl_denial_burst").is_empty());
    e.on_event(&event(6 * S, EventKind::AclDenied, 4000, "intruder", "u"));
    let h = fired(&e, "acl_denial_burst");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].key, "client:intruder");
    assert_eq!(h[0].first_ts_ns, 0);
}

#[test]
fn wildcard_subscription_outside_admin_list() {
    let cfg = RulesConfig {
        admin_clients: vec!["monitor".into()],
        ..Default::default()
    };
    let mut e = engine(cfg);
    let mut w = event(S, EventKind::WildcardSubscribe, 4000, "monitor", "u");
    w.topic = Some("#".into());
    e.on_event(&w);
    assert!(fired(&e, "wildcard_subscription").is_empty());
    let mut w = event(2 * S, EventKind::SysSubscribe, 4001, "curious", "u");
    w.topic = Some("$SYS/#".into());
    e.on_event(&w);
    let h = fired(&e, "wildcard_subscription");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].key, "client:curious");
    assert_eq!(h[0].evidence[0].value, "$SYS/#");
}

#[test]
fn publish_to_dollar_topic() {
    let f = flow(2, 5000);
    let mut e = engine(RulesConfig::default());
    e.on_record(&rec(&f, S, Direction::C2S, connect("dev", 30)));
    e.on_record(&rec(
        &f,
        2 * S,
        Direction::C2S,
        publish("sys/x", b"1", false),
    ));
    // The broker publishing $SYS to a subscriber is normal.
    e.on_record(&rec(
        &f,
        2 * S,
        Direction::S2C,
        publish("$SYS/broker/uptime", b"1", false),
    ));
    assert!(fired(&e, "publish_to_dollar_topic").is_empty());
    e.on_record(&rec(
        &f,
        3 * S,
        Direction::C2S,
        publish("$SYS/fake", b"1", false),
    ));
    let h = fired(&e, "publish_to_dollar_topic");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].key, "client:dev");
}

#[test]
fn takeover_and_reconnect_storm() {
    let mut e = engine(RulesConfig::default());
    e.on_event(&event(S, EventKind::ClientTakeover, 4000, "dev-0000", "u"));
    let h = fired(&e, "client_takeover");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].key, "client:dev-0000");

    // Default: 10 CONNECTs for one id within 60 s. 9 (each on a new flow) do not fire.
    let flows: Vec<FlowMeta> = (0..10).map(|i| flow(10 + i, 6000 + i as u16)).collect();
    let mut e = engine(RulesConfig::default());
    for (i, f) in flows.iter().take(9).enumerate() {
        e.on_record(&rec(f, i as u64 * S, Direction::C2S, connect("flappy", 30)));
    }
    // Empty ids (broker-assigned) are not one identity.
    for (i, f) in flows.iter().enumerate() {
        e.on_record(&rec(f, i as u64 * S, Direction::C2S, connect("", 30)));
    }
    assert!(fired(&e, "reconnect_storm").is_empty());
    e.on_record(&rec(
        &flows[9],
        9 * S,
        Direction::C2S,
        connect("flappy", 30),
    ));
    let h = fired(&e, "reconnect_storm");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].key, "client:flappy");
    assert_eq!(h[0].first_ts_ns, 0);
    assert_eq!(h[0].ts_ns, 9 * S);
}

#[test]
fn slowite_keepalive_and_idle_zero_keepalive() {
    let (a, b, c) = (flow(2, 5000), flow(3, 5001), flow(4, 5002));
    let mut e = engine(RulesConfig::default());
    e.on_record(&rec(&a, S, Direction::C2S, connect("normal", 3599)));
    assert!(fired(&e, "slowite").is_empty());
    e.on_record(&rec(&b, 2 * S, Direction::C2S, connect("slow", 3600)));
    let h = fired(&e, "slowite");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].key, "client:slow");
    // Keepalive 0: flagged only after 600 s of client silence.
    e.on_record(&rec(&c, 10 * S, Direction::C2S, connect("nokeepalive", 0)));
    e.tick(609 * S);
    assert_eq!(fired(&e, "slowite").len(), 1);
    e.tick(610 * S);
    let h = fired(&e, "slowite");
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].key, "client:nokeepalive");
    assert_eq!(h[1].first_ts_ns, 10 * S);
}

#[test]
fn publish_flood_at_rate_over_window() {
    // Limit 10/s over 2 s = 20 PUBLISH in a window.
    let cfg = RulesConfig {
        flood_rate_per_s: 10,
        flood_window_s: 2,
        ..Default::default()
    };
    let f = flow(2, 5000);
    let mut e = engine(cfg.clone());
    e.on_record(&rec(&f, 0, Direction::C2S, connect("chatty", 30)));
    // One every 106 ms: 19 per 2 s window (the 20th opens the next), for 10 s: just below.
    for i in 0..95u64 {
        e.on_record(&rec(
            &f,
            S + i * 106_000_000,
            Direction::C2S,
            publish("a", b"1", false),
        ));
    }
    assert!(fired(&e, "publish_flood").is_empty());
    let mut e = engine(cfg);
    e.on_record(&rec(&f, 0, Direction::C2S, connect("chatty", 30)));
    for i in 0..20u64 {
        e.on_record(&rec(
            &f,
            S + i * 50_000_000,
            Direction::C2S,
            publish("a", b"1", false),
        ));
    }
    let h = fired(&e, "publish_flood");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].key, "client:chatty");
    assert_eq!(h[0].first_ts_ns, S);
    assert_eq!(h[0].ts_ns, S + 19 * 50_000_000);
    // The flood goes on in the next window: the same alert, 20 more PUBLISHes.
    for i in 0..20u64 {
        e.on_record(&rec(
            &f,
            4 * S + i * 50_000_000,
            Direction::C2S,
            publish("a", b"1", false),
        ));
    }
    let h = fired(&e, "publish_flood");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].count, 40);
    assert_eq!(h[0].last_ts_ns, 4 * S + 19 * 50_000_000);
}

#[test]
fn oversized_payload_threshold() {
    let f = flow(2, 5000);
    let small = vec![0u8; 256 * 1024 - 1];
    let big = vec![0u8; 256 * 1024];
    let mut e = engine(RulesConfig::default());
    e.on_record(&rec(&f, S, Direction::C2S, publish("fw", &small, false)));
    assert!(fired(&e, "oversized_payload").is_empty());
    e.on_record(&rec(&f, 2 * S, Direction::C2S, publish("fw", &big, false)));
    let h = fired(&e, "oversized_payload");
    assert_eq!(h.len(), 1);
    // No CONNECT seen: keyed by address.
    assert_eq!(h[0].key, "addr:10.0.0.2:5000");
}

#[test]
fn retained_abuse_distinct_topics_and_large_payload() {
    let cfg = RulesConfig {
        retained_topics: 3,
        ..Default::default()
    };
    let f = flow(2, 5000);
    let mut e = engine(cfg.clone());
    // The same topic again and again, and two distinct ones: 2 distinct < 3.
    for i in 0..10 {
        e.on_record(&rec(&f, S + i, Direction::C2S, publish("s/1", b"on", true)));
    }
    e.on_record(&rec(&f, 2 * S, Direction::C2S, publish("s/2", b"on", true)));
    // Not retained: does not count.
    e.on_record(&rec(
        &f,
        2 * S,
        Direction::C2S,
        publish("s/3", b"on", false),
    ));
    assert!(fired(&e, "retained_abuse").is_empty());
    e.on_record(&rec(&f, 3 * S, Direction::C2S, publish("s/3", b"on", true)));
    assert_eq!(fired(&e, "retained_abuse").len(), 1);

    let g = flow(3, 5001);
    let mut e = engine(cfg);
    let big = vec![1u8; 64 * 1024];
    e.on_record(&rec(&g, S, Direction::C2S, publish("s/1", &big[1..], true)));
    assert!(fired(&e, "retained_abuse").is_empty());
    e.on_record(&rec(&g, S, Direction::C2S, publish("s/1", &big, true)));
    assert_eq!(fired(&e, "retained_abuse").len(), 1);
}

#[test]
fn qos_downgrade_from_suback() {
    let f = flow(2, 5000);
    // Filters "a" (QoS 2) and "b" (QoS 1).
    let raw = [0, 1, b'a', 2, 0, 1, b'b', 1];
    let sub = |pid| {
        Packet::Subscribe(Subscribe {
            packet_id: pid,
            properties: Properties::default(),
            filters_raw: &raw,
        })
    };
    let ack = |pid, codes| {
        Packet::SubAck(SubAck {
            packet_id: pid,
            properties: Properties::default(),
            codes,
        })
    };
    let mut e = engine(RulesConfig::default());
    e.on_record(&rec(&f, S, Direction::C2S, connect("sub", 30)));
    e.on_record(&rec(&f, S, Direction::C2S, sub(7)));
    // Granted as asked, and a refusal (0x80) is not a downgrade.
    e.on_record(&rec(&f, S, Direction::S2C, ack(7, &[2, 0x80])));
    e.on_record(&rec(&f, S, Direction::C2S, sub(8)));
    // A SUBACK for another packet id is not compared.
    e.on_record(&rec(&f, S, Direction::S2C, ack(9, &[0, 0])));
    assert!(fired(&e, "qos_downgrade").is_empty());
    e.on_record(&rec(&f, 2 * S, Direction::S2C, ack(8, &[2, 0])));
    let h = fired(&e, "qos_downgrade");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].evidence[0].value, "requested QoS 1, granted 0");
}

#[test]
fn protocol_violations_per_client() {
    let mut e = engine(RulesConfig::default());
    e.on_event(&event(S, EventKind::Malformed, 4000, "bad", "u"));
    e.on_event(&event(
        2 * S,
        EventKind::ProtocolViolation,
        4000,
        "bad",
        "u",
    ));
    assert!(fired(&e, "protocol_violation").is_empty());
    e.on_event(&event(
        3 * S,
        EventKind::ProtocolViolation,
        4000,
        "bad",
        "u",
    ));
    assert_eq!(fired(&e, "protocol_violation").len(), 1);
}

#[test]
fn tables_are_capped_and_count_evictions() {
    let cfg = RulesConfig {
        max_keys: 4,
        max_hits: 2,
        ..Default::default()
    };
    let mut e = engine(cfg);
    for i in 0..100u16 {
        let mut ev = event(
            u64::from(i),
            EventKind::AuthFailure,
            4000,
            "x",
            &format!("u{i}"),
        );
        ev.client_addr = Some(SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1)));
        e.on_event(&ev);
    }
    let c = e.counters();
    assert_eq!(c.keys_evicted, 2 * 96);
    // Many takeovers, each a new key: the hit list stays at its cap.
    for i in 0..10u64 {
        e.on_event(&event(
            i,
            EventKind::ClientTakeover,
            4000,
            &format!("c{i}"),
            "u",
        ));
    }
    assert_eq!(e.hits().len(), 2);
    assert_eq!(e.counters().hits_dropped, 8);
}

/// A device back from a dead link takes its silent session over: no alert; the same id
/// taken over again and again within the window (two live clients): alert. A takeover of a
/// connection that spoke 300 ms before: alert at once.
#[test]
fn takeover_of_a_silent_connection_alerts_only_when_it_repeats() {
    let mut e = engine(RulesConfig::default());
    let old = flow(1, 5000);
    e.on_record(&rec(&old, 0, Direction::C2S, connect("dev-7", 30)));
    e.on_record(&rec(&old, S, Direction::C2S, publish("t", b"1", false)));
    // Link dead at 1 s; back 6 s later from port 4000 (a new address).
    let newer = flow(2, 4000);
    e.on_record(&rec(&newer, 7 * S, Direction::C2S, connect("dev-7", 30)));
    e.on_event(&event(7 * S, EventKind::ClientTakeover, 4000, "dev-7", "u"));
    assert!(fired(&e, "client_takeover").is_empty());
    // Two clients fighting over the id (each kicked one comes back at once): the third
    // takeover within 60 s fires.
    let third = flow(3, 5001);
    e.on_record(&rec(&third, 9 * S, Direction::C2S, connect("dev-7", 30)));
    e.on_event(&event(9 * S, EventKind::ClientTakeover, 5001, "dev-7", "u"));
    assert!(fired(&e, "client_takeover").is_empty());
    let fourth = flow(4, 4001);
    e.on_record(&rec(&fourth, 11 * S, Direction::C2S, connect("dev-7", 30)));
    e.on_event(&event(
        11 * S,
        EventKind::ClientTakeover,
        4001,
        "dev-7",
        "u",
    ));
    let h = fired(&e, "client_takeover");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].first_ts_ns, 7 * S);
    assert!(
        h[0].summary.contains("3 takeovers within 60s"),
        "{}",
        h[0].summary
    );

    let mut e = engine(RulesConfig::default());
    e.on_record(&rec(&old, 0, Direction::C2S, connect("dev-8", 30)));
    e.on_record(&rec(
        &old,
        4_700_000_000,
        Direction::C2S,
        publish("t", b"1", false),
    ));
    e.on_record(&rec(&newer, 5 * S, Direction::C2S, connect("dev-8", 30)));
    e.on_event(&event(5 * S, EventKind::ClientTakeover, 4000, "dev-8", "u"));
    let h = fired(&e, "client_takeover");
    assert_eq!(h.len(), 1, "an alive connection taken over");
    assert!(
        h[0].summary.contains("active 300 ms before"),
        "{}",
        h[0].summary
    );
}

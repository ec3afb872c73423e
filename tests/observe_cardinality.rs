//! A cardinality attack on the whole observation core: 100 000 clients, each connecting
//! and publishing to 10 topics never seen before (1 000 000 distinct topics), some
//! leaving requests unanswered. State must stay within the budget the defaults promise
//! and every entry that did not get its own slot must be accounted for by a counter.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mqscope::dissect::{FlowMeta, MqttRecord, RecordSink};
use mqscope::mqtt::{
    Connect, Direction, FixedHeader, MqttStr, Packet, Properties, Publish, encode,
};
use mqscope::observe::{ObserveConfig, Observer};

/// Budget for the defaults (see `ObserveConfig`): 96 MiB.
const BUDGET: usize = 96 * 1024 * 1024;

fn header(p: &Packet<'_>) -> FixedHeader {
    let mut v = Vec::new();
    encode::encode(p, 4, &mut v);
    mqscope::mqtt::parse_fixed_header(&v).unwrap().unwrap()
}

#[test]
fn a_million_topics_from_100k_clients_stay_within_budget() {
    let cfg = ObserveConfig::default();
    let mut obs = Observer::new(&cfg).unwrap();
    let broker = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1883);
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut topic = String::new();
    let mut id = String::new();
    let payload = [0u8; 40];
    let clients: u32 = 100_000;
    for c in 0..clients {
        let addr = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + c)),
            40000 + (c % 20000) as u16,
        );
        let flow = FlowMeta {
            id: u64::from(c) + 1,
            client: addr,
            broker,
            from_start: true,
        };
        id.clear();
        id.push_str(&format!("dev-{c:08x}-{:x}", c.wrapping_mul(2_654_435_761)));
        let connect = Packet::Connect(Connect {
            protocol_name: MqttStr(b"MQTT"),
            protocol_level: 4,
            flags: 0,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::default(),
            client_id: MqttStr(id.as_bytes()),
            will: None,
            username: None,
            password: None,
        });
        let h = header(&connect);
        ts += 1_000;
        obs.record(&MqttRecord {
            frame: 0,
            ts_ns: ts,
            flow: &flow,
            dir: Direction::C2S,
            level: 4,
            level_known: true,
            header: h,
            packet: Ok(connect),
            topic: None,
            violation: None,
        });
        for k in 0..10u32 {
            topic.clear();
            topic.push_str(&format!(
                "site{}/line/{:x}-{k}/sensor/temp",
                c % 7,
                c.wrapping_mul(97).wrapping_add(k)
            ));
            // QoS 1 without an answer: leaves pending requests to expire.
            let publish = Packet::Publish(Publish {
                dup: false,
                qos: 1,
                retain: false,
                topic: MqttStr(topic.as_bytes()),
                packet_id: Some(k as u16 + 1),
                properties: Properties::default(),
                payload: &payload,
            });
            let h = header(&publish);
            ts += 1_000;
            let t = MqttStr(topic.as_bytes());
            obs.record(&MqttRecord {
                frame: 0,
                ts_ns: ts,
                flow: &flow,
                dir: Direction::C2S,
                level: 4,
                level_known: true,
                header: h,
                packet: Ok(publish),
                topic: Some(t),
                violation: None,
            });
        }
    }
    obs.finish();
    let mem = obs.mem_bytes();
    let snap = obs.snapshot();
    eprintln!(
        "state after the attack: {:.1} MB; topics {:?}; tables {:?}",
        mem as f64 / 1e6,
        snap.topic_counters,
        snap.tracker.tables
    );
    assert!(mem <= BUDGET, "{mem} bytes > budget {BUDGET}");
    let tc = &snap.topic_counters;
    assert!(tc.exact_groups as usize <= cfg.max_exact_topics);
    assert!(tc.template_groups as usize <= cfg.max_templates);
    // Every topic was new, so each publish either got a new exact group, or was routed
    // to a template or to __other__: nothing unaccounted for.
    assert_eq!(
        tc.exact_admitted + tc.routed_to_template + tc.routed_to_other,
        1_000_000,
        "{tc:?}"
    );
    // Clients and connections over their caps were evicted, and counted.
    let cl = &snap.tracker.clients;
    assert!(cl.tracked <= cfg.max_clients);
    assert_eq!(cl.tracked as u64 + cl.evicted, u64::from(clients));
    let cn = &snap.tracker.connections;
    assert!(cn.open <= cfg.max_connections);
    assert_eq!(cn.open as u64 + cn.evicted, u64::from(clients));
    assert!(snap.tracker.tables.pending_requests <= cfg.max_pending_requests);
}

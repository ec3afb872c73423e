//! EMQX parsers on fixtures written from EMQX's documentation (see
//! `tests/fixtures/emqx/README.md`): no EMQX runs here. Expected values are the fixture
//! lines read by hand.

use mqscope::broker::{BrokerFeed, BrokerKind, SysOutcome, SysState};
use mqscope::observe::{EventKind, EventSource};

const N1: &str = "emqx@10.0.0.1";
const N2: &str = "emqx@10.0.0.2";

fn fixture(name: &str) -> Vec<(String, String)> {
    let p = format!("{}/tests/fixtures/emqx/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            let (t, p) = l.split_once('\t').expect("topic\\tpayload");
            (t.to_string(), p.to_string())
        })
        .collect()
}

#[test]
fn sys_fixture_normalises_per_node() {
    let mut st = SysState::default();
    let mut outcomes = Vec::new();
    for (i, (t, p)) in fixture("sys.tsv").iter().enumerate() {
        outcomes.push(st.on_message(t, p.as_bytes(), (i as u64) * 1_000_000));
    }
    assert_eq!(outcomes.len(), 72);
    assert_eq!(st.kind(), BrokerKind::Emqx);
    assert_eq!(st.nodes().count(), 2);
    assert_eq!(st.stats.unknown_topics, 1);
    assert_eq!(st.stats.unparseable, 2);
    assert_eq!(
        st.stats.unparseable_by_topic,
        vec![
            (format!("$SYS/brokers/{N1}/stats/retained/count"), 1),
            (format!("$SYS/brokers/{N1}/alarms/activate"), 1),
        ]
    );
    assert_eq!(outcomes.last(), Some(&SysOutcome::Unknown));

    let m = st.node(Some(N1)).unwrap();
    assert_eq!(m.kind, BrokerKind::Emqx);
    assert_eq!(m.node.as_deref(), Some(N1));
    assert_eq!(m.version.as_deref(), Some("5.8.0"));
    assert_eq!(m.sysdescr.as_deref(), Some("EMQX"));
    assert_eq!(m.uptime_s, Some(3723), "3723456 ms");
    // live_connections (10) wins over connections (12), whatever the order.
    assert_eq!(m.clients_connected, Some(10));
    assert_eq!(m.clients_maximum, Some(15));
    assert_eq!(m.clients_total, Some(14));
    // retained/count 3, then the bad "three" left it alone.
    assert_eq!(m.retained_messages, Some(3));
    assert_eq!(m.subscriptions, Some(20));
    assert_eq!(m.shared_subscriptions, Some(2));
    assert_eq!(m.bytes_received, Some(123456));
    assert_eq!(m.bytes_sent, Some(654321));
    assert_eq!(m.packets_received, Some(2000));
    assert_eq!(m.packets_sent, Some(2500));
    assert_eq!(m.publish_received, Some(900));
    assert_eq!(m.publish_sent, Some(1100));
    assert_eq!(m.publish_dropped, Some(7));
    assert_eq!(m.dropped_no_subscribers, Some(5));
    assert_eq!(m.publish_auth_denied, Some(1));
    assert_eq!(m.subscribe_auth_denied, Some(2));
    assert_eq!(m.authz_denied, Some(3));
    assert_eq!(m.authn_failed, Some(4));
    assert_eq!(m.client_connected_notices, 2);
    assert_eq!(m.client_disconnected_notices, 1);
    assert_eq!(m.alarms_activated, 2);
    assert_eq!(m.alarms_deactivated, 1);
    assert_eq!(m.alarms_active, 1);
    assert_eq!(m.last_alarm.as_deref(), Some("conn_congestion/c1/u1"));
    // Mosquitto-only fields stay absent.
    assert_eq!(m.heap_current, None);
    assert_eq!(m.load.bytes_sent.m1, None);

    let m2 = st.node(Some(N2)).unwrap();
    assert_eq!(m2.uptime_s, Some(125));
    assert_eq!(
        m2.clients_connected,
        Some(4),
        "no live_connections: connections/count"
    );
    assert_eq!(m2.bytes_received, Some(777));
    assert_eq!(m2.bytes_sent, None);
}

#[test]
fn emqx_nodes_are_bounded() {
    let mut st = SysState::new(mqscope::broker::SysConfig {
        max_nodes: 2,
        ..Default::default()
    });
    for n in ["a", "b", "c"] {
        st.on_message(&format!("$SYS/brokers/{n}/uptime"), b"1000", 0);
    }
    assert_eq!(st.nodes().count(), 2);
    assert_eq!(st.stats.nodes_rejected, 1);
}

#[test]
fn emqx_staleness_and_restart_by_uptime_ms() {
    const S: u64 = 1_000_000_000;
    let mut st = SysState::default();
    let up = |st: &mut SysState, ms: u64, t: u64| {
        st.on_message(
            &format!("$SYS/brokers/{N1}/uptime"),
            ms.to_string().as_bytes(),
            t * S,
        )
    };
    // Heartbeat every 30 s (EMQX's default).
    up(&mut st, 100_000, 100);
    up(&mut st, 130_000, 130);
    up(&mut st, 160_000, 160);
    assert_eq!(st.learned_interval_ms(Some(N1)), Some(30_000));
    assert!(!st.is_stale(250 * S));
    assert!(st.is_stale(251 * S));
    up(&mut st, 5_000, 255);
    assert_eq!(st.stats.restarts, 1);
    assert_eq!(st.node(Some(N1)).unwrap().generation, 1);
}

#[test]
fn events_fixture_becomes_the_documented_events() {
    let mut feed = BrokerFeed::default();
    let events: Vec<_> = fixture("events.tsv")
        .iter()
        .map(|(t, p)| feed.on_message(t, p.as_bytes(), 42))
        .collect();
    assert_eq!(events.len(), 16);
    let s = &feed.events.stats;
    assert_eq!(s.messages, 16);
    assert_eq!(s.events, 8, "{s:?}");
    assert_eq!(s.uneventful, 8);
    assert_eq!(feed.sys.stats.messages, 0, "events are not $SYS");

    let kinds: Vec<Option<EventKind>> = events.iter().map(|e| e.as_ref().map(|e| e.kind)).collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        vec![
            Some(AclDenied),
            None, // authz allow
            Some(AuthFailure),
            None, // authn success
            None, // connected
            Some(ClientTakeover),
            Some(Disconnect),
            None, // normal disconnect
            Some(MessageDropped),
            Some(DeliveryDropped),
            None, // doc example: authz allow
            Some(MessageDropped),
            Some(DeliveryDropped),
            None, // doc example: authn success
            None, // doc example: normal disconnect
            None, // doc example: connected
        ]
    );
    for e in events.iter().flatten() {
        assert_eq!(e.source, EventSource::EmqxEvent);
    }

    let acl = events[0].as_ref().unwrap();
    assert_eq!(acl.ts_ns, 1_719_396_680_123_000_000);
    assert_eq!(acl.client_id.as_deref(), Some("c_emqx"));
    assert_eq!(acl.username.as_deref(), Some("u_emqx"));
    assert_eq!(acl.topic.as_deref(), Some("t/secret"));
    assert_eq!(acl.detail, Some("publish"));
    assert_eq!(acl.code, Some(0x87));
    assert_eq!(acl.client_addr, Some("192.168.0.10:52311".parse().unwrap()));

    let auth = events[2].as_ref().unwrap();
    assert_eq!(auth.username.as_deref(), Some("mallory"));
    assert_eq!(auth.code, Some(0x86));
    assert_eq!(auth.detail, Some("bad_username_or_password"));
    assert_eq!(auth.client_addr, Some("203.0.113.9:40001".parse().unwrap()));

    let take = events[5].as_ref().unwrap();
    assert_eq!(take.detail, Some("takenover"));
    let ka = events[6].as_ref().unwrap();
    assert_eq!(ka.detail, Some("keepalive_timeout"));
    assert_eq!(ka.username, None, "EMQX's \"undefined\" is no username");
    assert_eq!(ka.client_addr, Some("[2001:db8::5]:50000".parse().unwrap()));

    let drop = events[8].as_ref().unwrap();
    assert_eq!(drop.topic.as_deref(), Some("plant/1/temp"));
    assert_eq!(drop.detail, Some("no_subscribers"));
    assert_eq!(drop.client_id.as_deref(), Some("c_pub"));
    let dd = events[9].as_ref().unwrap();
    assert_eq!(dd.detail, Some("queue_full"));
    assert_eq!(
        dd.client_id.as_deref(),
        Some("c_slow"),
        "the receiver whose queue is full"
    );

    // Doc example without `timestamp`: the receive time is used.
    let doc_dd = events[12].as_ref().unwrap();
    assert_eq!(doc_dd.ts_ns, 42);
    assert_eq!(
        events[11].as_ref().unwrap().ts_ns,
        1_645_003_103_004_000_000
    );
}

/// The shipped rule and the parser agree: every `FROM` source is an event the parser
/// names, the republish topic is under the input's default filter, and the loop guard's
/// prefix is that topic's.
#[test]
fn deploy_rule_matches_the_parser_and_the_input_defaults() {
    use mqscope::broker::emqx_events::EmqxEventType;
    use mqscope::input::broker_config::DEFAULT_EVENTS_TOPIC;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/emqx");
    let rule: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/rule.json")).unwrap())
            .unwrap();
    let sql = rule["sql"].as_str().unwrap();
    let sources: Vec<&str> = sql
        .split('"')
        .filter(|s| s.starts_with("$events/"))
        .collect();
    assert_eq!(sources.len(), 6, "{sources:?}");
    for s in &sources {
        let name = s.trim_start_matches("$events/");
        assert!(EmqxEventType::from_name(name).is_some(), "{s}");
    }
    let topic = rule["actions"][0]["args"]["topic"].as_str().unwrap();
    let prefix = DEFAULT_EVENTS_TOPIC.trim_end_matches('#');
    assert_eq!(topic, format!("{prefix}${{event}}"));
    assert!(sql.contains(&format!("substr(topic, 0, {}) != '{prefix}'", prefix.len())));
    assert_eq!(rule["actions"][0]["args"]["payload"], "${.}");
    // The same SQL in the other two forms.
    let sql_file = std::fs::read_to_string(format!("{dir}/mqscope_events.sql")).unwrap();
    let hocon = std::fs::read_to_string(format!("{dir}/rule.hocon")).unwrap();
    for s in &sources {
        assert!(sql_file.contains(s) && hocon.contains(s), "{s}");
    }
    assert!(hocon.contains(topic));
}

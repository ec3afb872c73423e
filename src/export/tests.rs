//! Rendering edge cases that captures rarely show: hostile topic names, colliding
//! broker nodes, absent observer, alerts.

use std::collections::BTreeMap;

use super::hist::{HistCounts, LATENCY_BOUNDS_S, PAYLOAD_BOUNDS_BYTES};
use super::prometheus::{AlertSeries, MetricsInput, render};
use super::series::TopicSeries;
use super::state::MetricsSnapshot;
use super::{MetricsState, PrometheusConfig};
use crate::broker::metrics::{BrokerKind, BrokerMetrics};
use crate::observe::{ObserveConfig, Observer};

fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (k, v) = l.rsplit_once(' ').unwrap();
        assert!(
            m.insert(k.to_string(), v.parse().unwrap()).is_none(),
            "dup {k}"
        );
    }
    m
}

fn types(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect()
}

#[test]
fn hostile_topic_names_are_escaped() {
    let obs = Observer::new(&ObserveConfig::default()).unwrap();
    let snap = MetricsSnapshot::default().with_observer(&obs, &PrometheusConfig::default());
    let (osnap, mut series) = snap.observer.clone().unwrap();
    let mut t = TopicSeries {
        msgs: [3, 4],
        bytes: [30, 40],
        payload: HistCounts::empty(&PAYLOAD_BOUNDS_BYTES),
        latency: vec![("fanout", HistCounts::empty(&LATENCY_BOUNDS_S))],
    };
    t.payload.count = 1;
    series.topics.insert("a\"b\\c\nd".to_string(), t.clone());
    series.topics.insert(String::new(), t);
    let cfg = PrometheusConfig::default();
    let input = MetricsInput {
        observer: Some((&osnap, &series)),
        ..snap.input(&cfg)
    };
    let text = render(&input);
    let s = samples(&text);
    assert_eq!(
        s[r#"mqscope_topic_messages_total{topic="a\"b\\c\nd",direction="out"}"#],
        4.0
    );
    assert_eq!(
        s[r#"mqscope_topic_bytes_total{topic="",direction="in"}"#],
        30.0
    );
    // +Inf bucket is the count even when the buckets say less.
    assert_eq!(
        s[r#"mqscope_payload_size_bytes_bucket{topic="",le="+Inf"}"#],
        1.0
    );
    // No raw newline inside a sample line: every line is a comment or `name{..} value`.
    for l in text.lines() {
        assert!(l.starts_with('#') || l.starts_with("mqscope_"), "{l}");
    }
}

#[test]
fn without_observer_only_pipeline_families() {
    let snap = MetricsSnapshot::default();
    let cfg = PrometheusConfig::default();
    let text = render(&snap.input(&cfg));
    let t = types(&text);
    assert!(t.contains(&"mqscope_mqtt_packets_total"));
    assert!(t.contains(&"mqscope_capture_dropped_total"));
    assert!(!t.iter().any(|n| n.starts_with("mqscope_topic_")));
    assert!(!t.contains(&"mqscope_clients_connected"));
    // Families without series are left out (an empty family is invalid exposition).
    assert!(!t.contains(&"mqscope_alerts_firing"));
    assert!(!t.contains(&"mqscope_decode_errors_total"));
    let mut seen = std::collections::HashSet::new();
    assert!(t.iter().all(|n| seen.insert(*n)), "a family twice: {t:?}");
}

#[test]
fn brokers_alerts_and_client_labels() {
    let mosq = BrokerMetrics {
        kind: BrokerKind::Mosquitto,
        version: Some("2.0.11".into()),
        clients_connected: Some(7),
        publish_received: Some(100),
        ..Default::default()
    };
    let emqx = |node: &str, n: u64| BrokerMetrics {
        kind: BrokerKind::Emqx,
        node: Some(node.into()),
        clients_connected: Some(n),
        ..Default::default()
    };
    let snap = MetricsSnapshot {
        // The second node-less broker would duplicate the first's series: skipped.
        brokers: vec![mosq.clone(), mosq, emqx("emqx@a", 1), emqx("emqx@b", 2)],
        alerts: vec![AlertSeries {
            rule: "auth_burst".into(),
            severity: "critical".into(),
            firing: 1,
        }],
        ..Default::default()
    };
    let cfg = PrometheusConfig::default();
    let text = render(&snap.input(&cfg));
    let s = samples(&text);
    assert_eq!(s["mqscope_broker_clients_connected"], 7.0);
    assert_eq!(s[r#"mqscope_broker_clients_connected{node="emqx@b"}"#], 2.0);
    assert_eq!(s["mqscope_broker_messages_received_total"], 100.0);
    // EMQX published no message counter: absent, not 0.
    assert!(!s.contains_key(r#"mqscope_broker_messages_received_total{node="emqx@a"}"#));
    assert_eq!(
        s[r#"mqscope_broker_info{kind="mosquitto",version="2.0.11"}"#],
        1.0
    );
    assert_eq!(
        s[r#"mqscope_alerts_firing{rule="auth_burst",severity="critical"}"#],
        1.0
    );
    assert!(
        !text.contains("client_id"),
        "per-client labels are off by default"
    );
}

#[test]
fn state_serves_latest_snapshot_and_readiness() {
    let st = MetricsState::new(PrometheusConfig::default());
    assert!(!st.is_ready());
    assert!(st.render().contains("mqscope_capture_packets_total 0"));
    let mut snap = MetricsSnapshot::default();
    snap.dissect.frames = 42;
    st.publish(snap);
    st.set_ready(true);
    assert!(st.is_ready());
    assert!(st.render().contains("mqscope_capture_packets_total 42"));
    let head = super::http::respond(b"GET /readyz HTTP/1.1\r\n\r\n", &st);
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let r = super::http::respond(b"HEAD /metrics HTTP/1.0\r\n\r\n", &st);
    let r = String::from_utf8(r).unwrap();
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\n"),
        "{r}"
    );
    assert!(r.contains("text/plain; version=0.0.4"));
    for (req, code) in [
        (&b"GET /metrics\r\n\r\n"[..], "400"),
        (b"GET /metrics HTTP/2\r\n\r\n", "505"),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", "405"),
        (b"\xff\xfe\r\n\r\n", "400"),
    ] {
        let r = super::http::respond(req, &st);
        assert!(
            r.starts_with(format!("HTTP/1.1 {code}").as_bytes()),
            "{req:?}"
        );
    }
}

//! The whole pure observation and detection core, wired as `mqscope replay` wires it
//! with observation, security rules and anomalies on: arbitrary TCP segments (several
//! client flows to one broker, both directions, SYN/FIN/RST, sequence jumps, payloads
//! from the input) through a `Dissector` into `AnomalySink<RulesSink<ReplaySink>>`,
//! so every record reaches the `Observer` (topics, tracker, events), the `RuleEngine`
//! (records and the observer's events) and, once per bucket, the `AnomalyEngine`.
//! Every cap is deliberately tiny and chosen by the input's first bytes (2..8 exact
//! topics, 1..4 templates, 1..8 pending requests and fan-out entries, 1..10 queued
//! events, 1..4 clients and connections, 2..5 flows, a few anomaly series, topics,
//! clients and hits), and record time moves by milliseconds, seconds, minutes (buckets
//! roll, flows and topic groups go idle and get evicted, requests expire, anomaly
//! catch-up is cut short) and sometimes backwards (reordered captures). At the end it
//! does what replay does: `finish`, `snapshot`, the text and JSON reports, the rule and
//! anomaly snapshots and the Prometheus exposition.
//!
//! Checks: no panic; after every segment and at the end, the topic table never holds
//! more than `max_exact_topics` exact groups, `max_templates` templates and one
//! `__other__` (so at most max_exact + max_templates + 1 groups, and the snapshot lists
//! exactly the groups the counters say are live); the event queues, the tracker's
//! connection, client, pending-request and fan-out tables, and the anomaly engine's
//! series, topics, clients and hit lists stay within their caps; the observer's
//! estimated memory stays below a fixed bound far above what these caps allow; every
//! report serialises.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use mqscope::capture::{FlowLimits, TcpSegment};
use mqscope::detect::anomaly::config::Seasonality;
use mqscope::detect::anomaly::{AnomalyConfig, AnomalyEngine};
use mqscope::detect::rules::{RuleEngine, RulesConfig};
use mqscope::dissect::{DissectConfig, Dissector};
use mqscope::export::{EventTally, MetricsSnapshot, PrometheusConfig, render};
use mqscope::observe::{Event, ObserveConfig, Observer};
use mqscope::replay::anomaly::{self, AnomalySink};
use mqscope::replay::rules::{self, RulesSink};
use mqscope::replay::sink::ReplaySink;
use mqscope::replay::{ReplayReport, report};

/// Header bytes that choose the caps.
const HEADER: usize = 8;
/// Client flows (client index from two flag bits).
const CLIENTS: usize = 4;
/// Start of record time: 2023-11-14 22:13:20 UTC, plus some hours from the input (so
/// seasonal profiles see different times of day).
const BASE_NS: u64 = 1_700_000_000 * 1_000_000_000;
const SEC: u64 = 1_000_000_000;
/// Bound on `Observer::mem_bytes()`. At these caps the topic table is at most 13 slots
/// (~1 KB each plus bounded sketches and a 1 K-entry route cache), the tracker a few
/// connections, clients, pending and fan-out entries (rings of at most 16 slots) and
/// ten bounded sketches: a few hundred KB at worst. Anything near this bound means a
/// table grows with the input rather than with its cap.
const MEM_BOUND: usize = 4 << 20;

/// The caps the invariants are checked against.
struct Caps {
    max_exact: u64,
    max_templates: u64,
    max_events: usize,
    max_clients: usize,
    max_conns: usize,
    max_pending: usize,
    max_fanout: usize,
}

type Sink = AnomalySink<RulesSink<std::io::Sink>>;

fn check_running(an: &mut Sink, caps: &Caps) {
    let rs = &mut an.inner;
    assert!(
        rs.events.len() <= caps.max_events,
        "rules sink event queue over cap"
    );
    let Some(obs) = rs.inner.observer.as_mut() else {
        return;
    };
    assert!(
        obs.events().len() <= caps.max_events,
        "observer event queue over cap"
    );
    let t = obs.topics();
    let c = t.counters();
    assert!(
        c.exact_groups <= caps.max_exact,
        "exact groups {} > {}",
        c.exact_groups,
        caps.max_exact
    );
    assert!(
        c.template_groups <= caps.max_templates,
        "template groups {} > {}",
        c.template_groups,
        caps.max_templates
    );
    assert!(c.other_groups <= 1, "other groups {}", c.other_groups);
    assert!(t.len() as u64 <= caps.max_exact + caps.max_templates + 1);
    let mem = obs.mem_bytes();
    assert!(mem <= MEM_BOUND, "observer mem_bytes {mem} > {MEM_BOUND}");
}

fn pick<T: Copy>(v: &[T], i: u8) -> T {
    v[usize::from(i) % v.len()]
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (h, mut rest) = data.split_at(HEADER);
    let ctl = h[0];

    let ocfg = ObserveConfig {
        bucket_secs: 1 + u32::from(h[4] & 7),
        topic_templates: if ctl & 0x10 != 0 {
            vec!["+/+/temp/#".into(), "site/+/line/+".into()]
        } else {
            Vec::new()
        },
        auto_template: ctl & 0x08 == 0,
        max_exact_topics: 2 + usize::from(h[1] & 0x0f) % 7,
        max_templates: 1 + usize::from((h[1] >> 4) & 3),
        max_clients: 1 + usize::from(h[3] & 3),
        max_connections: 1 + usize::from((h[3] >> 2) & 3),
        max_pending_requests: 1 + usize::from(h[2] & 7),
        unanswered_timeout_secs: pick(&[0.5, 5.0, 30.0, 120.0], (h[4] >> 3) & 3),
        fanout_window_ms: pick(&[1, 100, 2_000, 60_000], (h[4] >> 5) & 3),
        max_fanout_pending: 1 + usize::from((h[2] >> 3) & 7),
        max_events_queued: 1 + 3 * usize::from(h[2] >> 6),
    };
    let caps = Caps {
        max_exact: ocfg.max_exact_topics as u64,
        max_templates: ocfg.max_templates as u64,
        max_events: ocfg.max_events_queued,
        max_clients: ocfg.max_clients,
        max_conns: ocfg.max_connections,
        max_pending: ocfg.max_pending_requests,
        max_fanout: ocfg.max_fanout_pending,
    };

    let acfg = {
        let mut a = AnomalyConfig {
            bucket_secs: 1 + u32::from(h[5] & 7),
            max_catchup_buckets: 1 + u32::from((h[5] >> 3) & 7),
            warmup_s: pick(&[0, 10, 60, 600], h[5] >> 6),
            learn_s: pick(&[0, 20, 120, 900], h[5] >> 6),
            max_series: 1 + usize::from(h[7] & 7),
            max_topics: 1 + usize::from((h[7] >> 3) & 3),
            max_clients: 1 + usize::from((h[7] >> 5) & 3),
            max_known: if h[7] & 0x80 != 0 { 8 } else { 2 },
            idle_evict_s: 60,
            seasonality: pick(
                &[
                    Seasonality::None,
                    Seasonality::Daily,
                    Seasonality::Weekly,
                    Seasonality::Daily,
                ],
                (ctl >> 1) & 3,
            ),
            confirm_buckets: 1,
            clear_buckets: 1,
            max_firing_s: 120,
            cooldown_s: 30,
            max_hits: 4,
            ..AnomalyConfig::default()
        };
        a.rate.spike_min_delta = 1.0;
        a.rate.drop_min_expected = 1.0;
        a.silence.periods = 2.0;
        a.silence.min_gaps = 2;
        a.silence.client_min_gaps = 2;
        a.silence.min_silence_s = 1.0;
        a.payload.min_msgs = 1;
        a.payload.min_delta_bytes = 1.0;
        a.latency.min_samples = 1;
        a.latency.min_delta_ms = 0.1;
        a.fanout.min_expected = 1.0;
        a.unanswered.min_count = 1.0;
        a.new_names.max_per_bucket = 1;
        a.peers.every_buckets = 2;
        a.peers.max_clients = 4;
        a.peers.min_clients = 2;
        a.peers.min_peers = 2;
        a.peers.max_k = 2;
        a
    };
    let (an_max_series, an_max_topics, an_max_clients, an_max_hits) = (
        acfg.max_series,
        acfg.max_topics,
        acfg.max_clients,
        acfg.max_hits,
    );

    let thr = 1 + u32::from(h[6] & 3);
    let rcfg = RulesConfig {
        auth_failures: thr,
        acl_denials: thr,
        reconnects: thr,
        takeovers: thr,
        retained_topics: thr,
        violations: thr,
        takeover_active_ms: 1000,
        flood_rate_per_s: 1 + u32::from((h[6] >> 2) & 3),
        flood_window_s: 1 + u64::from((h[6] >> 4) & 1),
        oversized_bytes: 64,
        retained_large_bytes: 32,
        slowite_keepalive_s: 60,
        slowite_idle_s: if h[6] & 0x20 != 0 { 30 } else { 0 },
        zero_keepalive_idle_s: 60,
        cooldown_s: if h[6] & 0x40 != 0 { 30 } else { 0 },
        // The rules' TLS ports (`--tls-ports`): a plaintext CONNECT to one is a finding.
        tls_ports: if h[6] & 0x80 != 0 {
            vec![1883]
        } else {
            vec![8883]
        },
        admin_clients: vec!["admin".into()],
        max_keys: 2,
        max_hits: 8,
        ..RulesConfig::default()
    };
    let rules_max_hits = rcfg.max_hits;

    let dcfg = DissectConfig {
        // ctl bit 0: broker port known, or content detection only.
        ports: if ctl & 1 == 0 { vec![1883] } else { vec![] },
        max_packet_size: 4096,
        max_pending_total: 8192,
        payload_prefix: 16,
        flow_limits: FlowLimits {
            max_flows: 2 + usize::from((h[3] >> 4) & 3),
            idle_timeout_us: pick(&[5, 30, 120, 300], h[3] >> 6) * 1_000_000,
            max_ooo_bytes_per_direction: 2048,
            max_ooo_bytes_total: 4096,
            max_ooo_segments_per_direction: 16,
        },
        ..DissectConfig::default()
    };

    let Ok(observer) = Observer::new(&ocfg) else {
        return;
    };
    let (Ok(rule_engine), Ok(anomaly_engine)) = (RuleEngine::new(rcfg), AnomalyEngine::new(acfg))
    else {
        panic!("fuzz configuration rejected");
    };
    let inner: ReplaySink<std::io::Sink> = ReplaySink {
        jsonl: None,
        observer: Some(observer),
    };
    let rs = RulesSink::new(inner, rule_engine, ocfg.max_events_queued);
    let mut an = AnomalySink::new(rs, Some(anomaly_engine));
    let mut d = Dissector::new(dcfg);

    let broker = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 1883);
    let clients: [SocketAddr; CLIENTS] = [
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40001),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40002),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 50000),
    ];
    // Per client: [client → broker, broker → client] next sequence numbers.
    let mut seq = [[1000u32, 9000u32]; CLIENTS];
    for (i, s) in seq.iter_mut().enumerate() {
        s[0] = s[0].wrapping_add(0x1000_0000 * i as u32);
        s[1] = s[1].wrapping_add(0x1000_0000 * i as u32);
    }
    let mut ts = BASE_NS + u64::from(ctl >> 5) * 3 * 3600 * SEC;
    let mut last_expiry = 0u64;
    let mut frame = 0u64;

    // Each segment: [flags, seq jump, len, time step, payload...].
    // flags: bit 0 direction (1: broker → client), 1 SYN, 2 FIN, 3 RST, 4 apply the
    // sequence jump, 5 no ACK flag, 6-7 client.
    // time step: 0x00..=0x7f +ms, 0x80..=0xbf +s, 0xc0..=0xef +1..48 min,
    // 0xf0..=0xff back 1..16 s.
    while rest.len() >= 4 {
        let (flags, jump, len, step) = (rest[0], rest[1], usize::from(rest[2]), rest[3]);
        rest = &rest[4..];
        let n = len.min(rest.len());
        let (payload, tail) = rest.split_at(n);
        rest = tail;
        ts = match step {
            0x00..=0x7f => ts + u64::from(step) * 1_000_000,
            0x80..=0xbf => ts + u64::from(step - 0x80) * SEC,
            0xc0..=0xef => ts + u64::from(step - 0xbf) * 60 * SEC,
            _ => ts.saturating_sub(u64::from(step - 0xef) * SEC),
        };
        let ci = usize::from(flags >> 6) % CLIENTS;
        let dir = usize::from(flags & 1);
        let delta = i32::from(jump as i8);
        let s = if flags & 0x10 != 0 {
            seq[ci][dir].wrapping_add_signed(delta)
        } else {
            seq[ci][dir]
        };
        let (src, dst) = if dir == 0 {
            (clients[ci], broker)
        } else {
            (broker, clients[ci])
        };
        let seg = TcpSegment {
            src,
            dst,
            seq: s,
            ack: seq[ci][1 - dir],
            syn: flags & 2 != 0,
            ack_flag: flags & 0x20 == 0,
            fin: flags & 4 != 0,
            rst: flags & 8 != 0,
            payload,
            truncated: false,
            missing: 0,
        };
        seq[ci][dir] = s.wrapping_add(n as u32).wrapping_add(u32::from(seg.syn));
        frame += 1;
        // What `Dissector::on_frame` does before each segment (replay's path).
        if ts >= last_expiry.saturating_add(SEC) {
            last_expiry = ts;
            d.expire(ts, &mut an);
        }
        d.on_segment(frame, ts, &seg, &mut an);
        check_running(&mut an, &caps);
    }
    d.finish(frame, ts, &mut an);
    check_running(&mut an, &caps);

    // From here on, what `mqscope replay` does after the capture.
    let AnomalySink {
        inner: mut rs,
        engine: anomaly_engine,
        ..
    } = an;
    rs.finish();
    let RulesSink {
        inner,
        engine: rule_engine,
        mut events,
    } = rs;
    let Some(mut obs) = inner.observer else {
        return;
    };
    let anomaly_engine = anomaly_engine.expect("anomaly engine present");
    let summary = ReplayReport {
        files: Vec::new(),
        stats: d.stats().clone(),
        capture: d.capture_stats().clone(),
        elapsed: std::time::Duration::ZERO,
    };
    let _ = summary.to_text();
    let _ = serde_json::to_string(&summary.to_json()).expect("summary json");

    obs.finish();
    let mut kept: Vec<Event> = events.drain().collect();
    kept.extend(obs.events().drain());
    assert!(kept.len() <= 2 * caps.max_events);
    let snap = obs.snapshot();

    // Topic groups: never more than the caps allow, and the counters agree with the
    // groups listed.
    let count = |k: &str| snap.topics.iter().filter(|t| t.kind == k).count() as u64;
    let (exact, templ, other) = (count("exact"), count("template"), count("other"));
    assert_eq!(
        exact + templ + other,
        snap.topics.len() as u64,
        "unknown group kind"
    );
    assert!(
        exact <= caps.max_exact,
        "{exact} exact groups > {}",
        caps.max_exact
    );
    assert!(
        templ <= caps.max_templates,
        "{templ} templates > {}",
        caps.max_templates
    );
    assert!(other <= 1, "{other} __other__ groups");
    assert!(snap.topics.len() as u64 <= caps.max_exact + caps.max_templates + 1);
    let c = &snap.topic_counters;
    assert_eq!(
        (c.exact_groups, c.template_groups, c.other_groups),
        (exact, templ, other),
        "topic counters disagree with the live groups"
    );
    // Tracker tables.
    let t = &snap.tracker.tables;
    assert!(t.connections <= caps.max_conns && t.connections_cap == caps.max_conns);
    assert!(t.clients <= caps.max_clients && t.clients_cap == caps.max_clients);
    assert!(t.pending_requests <= caps.max_pending && t.pending_requests_cap == caps.max_pending);
    assert!(
        t.fanout_pending <= caps.max_fanout,
        "fan-out {} > {}",
        t.fanout_pending,
        caps.max_fanout
    );
    assert!(snap.tracker.clients.tracked <= caps.max_clients);
    assert!(obs.mem_bytes() <= MEM_BOUND);
    // Detection state.
    let ac = anomaly_engine.counters();
    assert!(
        ac.series as usize <= an_max_series,
        "anomaly series {} > {an_max_series}",
        ac.series
    );
    assert!(ac.topics_tracked as usize <= an_max_topics);
    assert!(ac.clients_tracked as usize <= an_max_clients);
    assert!(anomaly_engine.hits().len() <= an_max_hits);
    assert!(rule_engine.hits().len() <= rules_max_hits);

    // Reports, as replay writes them.
    let _ = report::to_text(&snap);
    let _ = rules::to_text(rule_engine.hits());
    let _ = anomaly::to_text(anomaly_engine.hits());
    let mut v = report::to_json(&snap, &kept);
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "rules".into(),
            serde_json::to_value(rule_engine.snapshot()).expect("rules json"),
        );
        m.insert(
            "anomalies".into(),
            serde_json::to_value(anomaly_engine.snapshot()).expect("anomalies json"),
        );
    }
    let _ = serde_json::to_string_pretty(&v).expect("report json");
    let _ = serde_json::to_string(&snap).expect("snapshot json");

    // The Prometheus exposition replay writes with --metrics-out.
    let pcfg = PrometheusConfig::default();
    let mut tally = EventTally::default();
    for e in &kept {
        tally.observe(e);
    }
    let mut ms = MetricsSnapshot::new(summary.stats.clone(), summary.capture.clone())
        .with_observer_snapshot(&obs, snap, &pcfg);
    ms.events = Some(tally);
    ms.alerts = anomaly::alert_series(rule_engine.hits().iter().chain(anomaly_engine.hits()));
    let _ = render(&ms.input(&pcfg));
});

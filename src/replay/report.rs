//! The observation part of the replay report, as text: busiest topic groups, latency
//! per exchange, connections and clients, events by kind. Deterministic: the same
//! capture gives the same text.

use std::fmt::Write as _;

use crate::observe::ObserverSnapshot;

/// Topic groups listed in the text report (the JSON report has them all).
const TOP_TOPICS: usize = 15;

fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 1e-3 => format!("{:.1}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.2}ms", s * 1e3),
        Some(s) => format!("{s:.3}s"),
    }
}

fn bytes(v: Option<f64>) -> String {
    v.map_or("-".into(), |b| format!("{b:.0}"))
}

pub fn to_text(s: &ObserverSnapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "mqscope observation report");
    let tc = &s.topic_counters;
    let _ = writeln!(
        o,
        "  topic groups:  {} exact, {} template, {} other",
        tc.exact_groups, tc.template_groups, tc.other_groups
    );
    let mut topics: Vec<_> = s.topics.iter().collect();
    topics.sort_by(|a, b| {
        (b.msgs_in.total + b.msgs_out.total)
            .cmp(&(a.msgs_in.total + a.msgs_out.total))
            .then(a.name.cmp(&b.name))
    });
    if !topics.is_empty() {
        let _ = writeln!(
            o,
            "  {:<48} {:>8} {:>8} {:>10} {:>8} {:>8} {:>5} {:>5} {:>10} {:>10}",
            "topic group",
            "msgs in",
            "msgs out",
            "bytes in",
            "size p50",
            "size max",
            "pubs",
            "subs",
            "period",
            "fanout p50"
        );
    }
    for t in topics.iter().take(TOP_TOPICS) {
        let fanout = t
            .latency
            .iter()
            .find(|l| l.exchange == "fanout")
            .and_then(|l| l.p50_s);
        let mut name = t.name.clone();
        if name.chars().count() > 48 {
            name = name.chars().take(45).collect::<String>() + "...";
        }
        let _ = writeln!(
            o,
            "  {:<48} {:>8} {:>8} {:>10} {:>8} {:>8} {:>5} {:>5} {:>10} {:>10}",
            name,
            t.msgs_in.total,
            t.msgs_out.total,
            t.bytes_in.total,
            bytes(t.payload_in.p50),
            bytes(t.payload_in.max),
            t.publishers,
            t.subscribers,
            secs(t.interarrival.period_s),
            secs(fanout)
        );
    }
    if topics.len() > TOP_TOPICS {
        let _ = writeln!(
            o,
            "  ... {} more topic groups (see --report-json)",
            topics.len() - TOP_TOPICS
        );
    }
    let _ = writeln!(
        o,
        "  {:<14} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency", "count", "p50", "p90", "p99", "max", "unanswered"
    );
    for e in &s.tracker.exchanges {
        if e.count == 0 && e.unanswered == 0 {
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<14} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            e.exchange,
            e.count,
            secs(e.p50),
            secs(e.p90),
            secs(e.p99),
            secs(e.max),
            e.unanswered
        );
    }
    let c = &s.tracker.connections;
    let _ = writeln!(
        o,
        "  connections:   {} opened, {} closed, {} CONNECTs, {} refused ({} auth), {} takeovers",
        c.opened, c.closed, c.connects, c.connacks_refused, c.auth_failures, c.takeovers
    );
    let cl = &s.tracker.clients;
    let _ = writeln!(
        o,
        "  clients:       {} tracked, {} connected at the end",
        cl.tracked, cl.connected
    );
    let events: Vec<String> = s
        .events_by_kind
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        o,
        "  events:        {}",
        if events.is_empty() {
            "none".to_string()
        } else {
            events.join(", ")
        }
    );
    if s.events_dropped > 0 {
        let _ = writeln!(o, "  events dropped (queue full): {}", s.events_dropped);
    }
    o
}

fn ms(v: Option<f64>) -> Option<f64> {
    v.map(|s| s * 1e3)
}

/// The `--report-json` document. At the top, the keys a consumer can rely on (issue #3):
/// `topics` (one flat object per topic group), `latency` (keyed by exchange, in ms),
/// `clients` (the most active, up to the snapshot's list), `events` (the events kept, in
/// time order). Below them the full snapshot (`topic_details`, `tracker`,
/// `topic_counters`, `events_by_kind`, `events_dropped`, `at_ns`) for everything else.
pub fn to_json(s: &ObserverSnapshot, events: &[crate::observe::Event]) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let topics: Vec<Value> = s
        .topics
        .iter()
        .map(|t| {
            json!({
                "topic": t.name,
                "kind": t.kind,
                "messages_in": t.msgs_in.total,
                "messages_out": t.msgs_out.total,
                "bytes_in": t.bytes_in.total,
                "bytes_out": t.bytes_out.total,
                "payload_p50": t.payload_in.p50,
                "payload_p99": t.payload_in.p99,
                "publishers": t.publishers,
                "subscribers": t.subscribers,
            })
        })
        .collect();
    let mut latency = Map::new();
    for e in &s.tracker.exchanges {
        latency.insert(
            e.exchange.to_string(),
            json!({
                "count": e.count,
                "p50_ms": ms(e.p50),
                "p90_ms": ms(e.p90),
                "p99_ms": ms(e.p99),
                "max_ms": ms(e.max),
                "unanswered": e.unanswered,
            }),
        );
    }
    let clients: Vec<Value> = s
        .tracker
        .clients
        .top
        .iter()
        .map(|c| {
            json!({
                "client_id": c.client_id,
                "connects": c.connects,
                "messages_in": c.msgs_in,
                "messages_out": c.msgs_out,
                "username": c.username,
                "protocol_level": c.protocol_level,
            })
        })
        .collect();
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "ts": crate::export::event_log::rfc3339_ms(e.ts_ns),
                "ts_ns": e.ts_ns,
                "kind": e.kind.name(),
                "client_id": e.client_id,
                "username": e.username,
                "client_addr": e.client_addr.map(|a| a.to_string()),
                "topic": e.topic,
                "code": e.code,
                "detail": e.detail,
                "frame": e.frame,
            })
        })
        .collect();
    json!({
        "topics": topics,
        "latency": latency,
        "clients": clients,
        "events": events,
        "topic_details": s.topics,
        "topic_counters": s.topic_counters,
        "tracker": s.tracker,
        "events_by_kind": s.events_by_kind,
        "events_dropped": s.events_dropped,
        "at_ns": s.at_ns,
    })
}

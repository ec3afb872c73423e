//! The normalised broker metrics (`broker::metrics::BrokerMetrics`, from `$SYS`) as
//! `mqscope_broker_*` families: one series per broker node; a value the broker does not
//! publish is left out rather than shown as zero.

use crate::broker::metrics::{BrokerKind, BrokerMetrics};

use super::prometheus::Families;

type BrokerField = fn(&BrokerMetrics) -> Option<u64>;

const BROKER_GAUGES: [(&str, &str, BrokerField); 13] = [
    (
        "mqscope_broker_uptime_seconds",
        "Broker uptime ($SYS).",
        |b| b.uptime_s,
    ),
    (
        "mqscope_broker_clients_connected",
        "Clients connected, as the broker counts them.",
        |b| b.clients_connected,
    ),
    (
        "mqscope_broker_clients_known",
        "Clients known to the broker: connected plus persistent sessions.",
        |b| b.clients_total,
    ),
    (
        "mqscope_broker_clients_disconnected",
        "Persistent clients currently disconnected.",
        |b| b.clients_disconnected,
    ),
    (
        "mqscope_broker_clients_maximum",
        "Highest number of clients connected at once.",
        |b| b.clients_maximum,
    ),
    (
        "mqscope_broker_retained_messages",
        "Retained messages held.",
        |b| b.retained_messages,
    ),
    ("mqscope_broker_subscriptions", "Subscriptions held.", |b| {
        b.subscriptions
    }),
    (
        "mqscope_broker_shared_subscriptions",
        "Shared subscriptions held (EMQX).",
        |b| b.shared_subscriptions,
    ),
    (
        "mqscope_broker_store_messages",
        "Messages held in the store, retained included (Mosquitto).",
        |b| b.store_messages,
    ),
    (
        "mqscope_broker_store_bytes",
        "Bytes of messages held in the store (Mosquitto).",
        |b| b.store_bytes,
    ),
    (
        "mqscope_broker_heap_bytes",
        "Broker heap in use (Mosquitto with memory tracking).",
        |b| b.heap_current,
    ),
    (
        "mqscope_broker_heap_max_bytes",
        "Highest broker heap use (Mosquitto with memory tracking).",
        |b| b.heap_maximum,
    ),
    (
        "mqscope_broker_alarms_active",
        "EMQX alarms active, by mqscope's count of activations and deactivations.",
        |b| Some(b.alarms_active),
    ),
];

const BROKER_COUNTERS: [(&str, &str, BrokerField); 16] = [
    (
        "mqscope_broker_restarts_total",
        "Broker restarts detected (uptime going backwards) since mqscope started.",
        |b| Some(u64::from(b.generation)),
    ),
    (
        "mqscope_broker_clients_expired_total",
        "Persistent sessions expired.",
        |b| b.clients_expired,
    ),
    (
        "mqscope_broker_packets_received_total",
        "MQTT packets of every type received by the broker.",
        |b| b.packets_received,
    ),
    (
        "mqscope_broker_packets_sent_total",
        "MQTT packets of every type sent by the broker.",
        |b| b.packets_sent,
    ),
    (
        "mqscope_broker_messages_received_total",
        "PUBLISH messages received by the broker.",
        |b| b.publish_received,
    ),
    (
        "mqscope_broker_messages_sent_total",
        "PUBLISH messages sent by the broker.",
        |b| b.publish_sent,
    ),
    (
        "mqscope_broker_messages_dropped_total",
        "PUBLISH messages dropped by the broker (meaning differs by broker: docs/metrics.md).",
        |b| b.publish_dropped,
    ),
    (
        "mqscope_broker_messages_dropped_no_subscribers_total",
        "Messages dropped for lack of subscribers (EMQX).",
        |b| b.dropped_no_subscribers,
    ),
    (
        "mqscope_broker_publish_received_bytes_total",
        "PUBLISH bytes received by the broker.",
        |b| b.publish_bytes_received,
    ),
    (
        "mqscope_broker_publish_sent_bytes_total",
        "PUBLISH bytes sent by the broker.",
        |b| b.publish_bytes_sent,
    ),
    (
        "mqscope_broker_received_bytes_total",
        "Bytes received by the broker.",
        |b| b.bytes_received,
    ),
    (
        "mqscope_broker_sent_bytes_total",
        "Bytes sent by the broker.",
        |b| b.bytes_sent,
    ),
    (
        "mqscope_broker_publish_authz_denied_total",
        "PUBLISH refused by authorisation (EMQX).",
        |b| b.publish_auth_denied,
    ),
    (
        "mqscope_broker_subscribe_authz_denied_total",
        "SUBSCRIBE refused by authorisation (EMQX).",
        |b| b.subscribe_auth_denied,
    ),
    (
        "mqscope_broker_authz_denied_total",
        "Authorisation denials (EMQX).",
        |b| b.authz_denied,
    ),
    (
        "mqscope_broker_authn_failures_total",
        "Authentication failures (EMQX).",
        |b| b.authn_failed,
    ),
];

/// One series per broker node (`node` label for EMQX; none for Mosquitto).
pub(super) fn brokers(f: &mut Families, all: &[BrokerMetrics]) {
    // One series per label set: a second broker with the same (or no) node name is
    // skipped rather than emitted as a duplicate, which would void the whole scrape.
    let mut seen = std::collections::HashSet::new();
    let nodes: Vec<(&BrokerMetrics, Vec<(&str, &str)>)> = all
        .iter()
        .filter(|b| seen.insert(b.node.clone()))
        .map(|b| {
            (
                b,
                b.node.as_deref().map(|n| ("node", n)).into_iter().collect(),
            )
        })
        .collect();
    let mut info = f.gauge(
        "mqscope_broker_info",
        "Always 1; labels name the broker kind and version ($SYS).",
    );
    for (b, node) in &nodes {
        let kind = match b.kind {
            BrokerKind::Unknown => "unknown",
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::Emqx => "emqx",
        };
        let mut l = vec![
            ("kind", kind),
            ("version", b.version.as_deref().unwrap_or("")),
        ];
        l.extend(node.iter().copied());
        info.gauge(&l, 1.0);
    }
    f.push(info);
    for (name, help, get) in BROKER_GAUGES {
        let mut g = f.gauge(name, help);
        for (b, node) in &nodes {
            if let Some(v) = get(b) {
                g.gauge(node, v as f64);
            }
        }
        f.push(g);
    }
    for (name, help, get) in BROKER_COUNTERS {
        let mut c = f.counter(name, help);
        for (b, node) in &nodes {
            if let Some(v) = get(b) {
                c.counter(node, v);
            }
        }
        f.push(c);
    }
}

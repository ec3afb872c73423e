//! Prometheus text exposition (format 0.0.4) of everything mqscope counts, rendered from
//! snapshots at scrape time: the analysis core keeps plain counters and sketches and
//! never calls into the `prometheus` crate; here its data model (`proto::MetricFamily`)
//! and `TextEncoder` are used only to format, so names, label escaping and histogram
//! layout follow the crate. The metric set is documented in `docs/metrics.md`; a
//! family with no series is left out (the encoder rejects empty families).

use prometheus::TextEncoder;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use crate::broker::metrics::BrokerMetrics;
use crate::capture::CaptureStats;
use crate::dissect::DissectStats;
use crate::mqtt::PacketType;
use crate::observe::{Exchange, ObserverSnapshot};

use super::config::PrometheusConfig;
use super::hist::{HistCounts, LATENCY_BOUNDS_S, PAYLOAD_BOUNDS_BYTES};
use super::series::ObserverSeries;
use super::tally::{ACL_ACTIONS, AUTH_REASONS, EventTally};

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Direction label values: "in" is client → broker, "out" broker → client.
pub const DIRECTIONS: [&str; 2] = ["in", "out"];

/// Packets the kernel / interface dropped before mqscope saw them (live capture only:
/// libpcap's `ps_drop` and `ps_ifdrop`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelDrops {
    pub kernel: u64,
    pub interface: u64,
}

/// One alerting rule's state for `mqscope_alerts_firing`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertSeries {
    pub rule: String,
    pub severity: String,
    /// Alerts of this rule currently firing.
    pub firing: u64,
}

/// Everything one scrape renders, borrowed from the pipeline's latest snapshots.
pub struct MetricsInput<'a> {
    pub config: &'a PrometheusConfig,
    pub dissect: &'a DissectStats,
    pub capture: &'a CaptureStats,
    pub kernel: Option<KernelDrops>,
    /// Absent when observation is off (`--no-observe`).
    pub observer: Option<(&'a ObserverSnapshot, &'a ObserverSeries)>,
    /// Event counts by reason/action; absent when nobody drains the event queue.
    pub events: Option<&'a EventTally>,
    pub brokers: &'a [BrokerMetrics],
    pub alerts: &'a [AlertSeries],
    /// Alert receivers' and log sinks' counters (live `run` only).
    pub outputs: Option<&'a super::output_metrics::OutputSeries>,
}

/// Renders the exposition text. Pure: same input, same text.
pub fn render(input: &MetricsInput<'_>) -> String {
    let mut f = Families::default();
    build_info(&mut f);
    capture(&mut f, input);
    mqtt(&mut f, input.dissect);
    if let Some((snap, series)) = input.observer {
        topics(&mut f, series);
        latency(&mut f, snap, series);
        connections(&mut f, input, snap);
        tables(&mut f, input, snap);
        if input.config.per_client_labels {
            clients(&mut f, input.config, snap);
        }
    }
    super::broker_metrics::brokers(&mut f, input.brokers);
    let mut a = f.gauge(
        "mqscope_alerts_firing",
        "Alerts currently firing, by rule and severity.",
    );
    for r in input.alerts {
        a.gauge(
            &[("rule", &r.rule), ("severity", &r.severity)],
            r.firing as f64,
        );
    }
    f.push(a);
    if let Some(o) = input.outputs {
        super::output_metrics::outputs(&mut f, o);
    }
    let mut out = String::new();
    // Cannot fail: every family pushed has a name and at least one series.
    let _ = TextEncoder::new().encode_utf8(&f.done, &mut out);
    out
}

#[derive(Default)]
pub(super) struct Families {
    done: Vec<MetricFamily>,
}

pub(super) struct Fam(MetricFamily);

impl Families {
    fn new_fam(name: &str, help: &str, ty: MetricType) -> Fam {
        let mut mf = MetricFamily::default();
        mf.set_name(name.to_string());
        mf.set_help(help.to_string());
        mf.set_field_type(ty);
        Fam(mf)
    }
    pub(super) fn counter(&self, name: &str, help: &str) -> Fam {
        Self::new_fam(name, help, MetricType::COUNTER)
    }
    pub(super) fn gauge(&self, name: &str, help: &str) -> Fam {
        Self::new_fam(name, help, MetricType::GAUGE)
    }
    pub(super) fn histogram(&self, name: &str, help: &str) -> Fam {
        Self::new_fam(name, help, MetricType::HISTOGRAM)
    }
    pub(super) fn push(&mut self, fam: Fam) {
        if !fam.0.get_metric().is_empty() {
            self.done.push(fam.0);
        }
    }
    /// A family with one unlabelled counter.
    fn one_counter(&mut self, name: &str, help: &str, v: u64) {
        let mut c = self.counter(name, help);
        c.counter(&[], v);
        self.push(c);
    }
    fn one_gauge(&mut self, name: &str, help: &str, v: f64) {
        let mut g = self.gauge(name, help);
        g.gauge(&[], v);
        self.push(g);
    }
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut p = LabelPair::default();
            p.set_name((*k).to_string());
            p.set_value((*v).to_string());
            p
        })
        .collect()
}

impl Fam {
    pub(super) fn counter(&mut self, labels: &[(&str, &str)], v: u64) {
        let mut c = Counter::default();
        c.set_value(v as f64);
        let mut m = Metric::from_label(label_pairs(labels));
        m.set_counter(c);
        self.0.mut_metric().push(m);
    }
    pub(super) fn gauge(&mut self, labels: &[(&str, &str)], v: f64) {
        let mut g = Gauge::default();
        g.set_value(v);
        let mut m = Metric::from_label(label_pairs(labels));
        m.set_gauge(g);
        self.0.mut_metric().push(m);
    }
    pub(super) fn histogram(&mut self, labels: &[(&str, &str)], h: &HistCounts, bounds: &[f64]) {
        let mut hist = Histogram::default();
        hist.set_sample_count(h.count);
        hist.set_sample_sum(h.sum);
        hist.set_bucket(
            bounds
                .iter()
                .zip(&h.cumulative)
                .map(|(&b, &n)| {
                    let mut k = Bucket::default();
                    k.set_upper_bound(b);
                    // Never above `_count` (the `+Inf` bucket), whatever the sketch says.
                    k.set_cumulative_count(n.min(h.count));
                    k
                })
                .collect(),
        );
        let mut m = Metric::from_label(label_pairs(labels));
        m.set_histogram(hist);
        self.0.mut_metric().push(m);
    }
}

fn build_info(f: &mut Families) {
    let mut g = f.gauge(
        "mqscope_build_info",
        "Always 1; labels carry the mqscope version.",
    );
    g.gauge(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    f.push(g);
}

fn capture(f: &mut Families, i: &MetricsInput<'_>) {
    let (d, c) = (i.dissect, i.capture);
    f.one_counter(
        "mqscope_capture_packets_total",
        "Link-layer frames read from the capture (interface or file).",
        d.frames,
    );
    f.one_counter(
        "mqscope_capture_bytes_total",
        "Bytes of the frames read, as captured.",
        d.frame_bytes,
    );
    let mut dropped = f.counter(
        "mqscope_capture_dropped_total",
        "Data lost before or during analysis, by stage (see docs/metrics.md for each stage's unit).",
    );
    if let Some(k) = i.kernel {
        dropped.counter(&[("stage", "kernel")], k.kernel);
        dropped.counter(&[("stage", "interface")], k.interface);
    }
    for (stage, v) in [
        ("snaplen", c.truncated_segments),
        ("before_stream_start", c.segments_before_start),
        ("out_of_window", c.segments_out_of_window),
        ("reassembly_limit", c.gaps_by_limit),
        ("stream_gap", d.packets_lost_in_gap),
        ("pending_overflow", d.pending_overflow),
        ("oversized", d.oversized),
    ] {
        dropped.counter(&[("stage", stage)], v);
    }
    f.push(dropped);
    let mut skipped = f.counter(
        "mqscope_capture_frames_skipped_total",
        "Frames not turned into a TCP segment, by reason (not IP, IP fragment, ...).",
    );
    for (k, v) in d.frames_skipped.iter() {
        skipped.counter(&[("reason", k)], v);
    }
    f.push(skipped);
    f.one_counter(
        "mqscope_tcp_segments_total",
        "TCP segments handed to reassembly.",
        c.segments,
    );
    f.one_counter(
        "mqscope_tcp_gaps_total",
        "Holes in reassembled TCP streams (segments the capture never saw).",
        c.gaps,
    );
    f.one_counter(
        "mqscope_tcp_gap_bytes_total",
        "Bytes those holes stand for.",
        c.gap_bytes,
    );
    f.one_counter(
        "mqscope_tcp_retransmitted_segments_total",
        "Segments whose payload had been delivered already.",
        c.retransmitted_segments,
    );
    f.one_counter(
        "mqscope_tcp_out_of_order_segments_total",
        "Segments that arrived ahead of a hole and were buffered.",
        c.out_of_order_segments,
    );
    f.one_counter(
        "mqscope_tcp_overlaps_conflicting_total",
        "Overlapping segments whose bytes differ from the first copy (evasion / injection signal).",
        c.overlaps_conflicting,
    );
    let mut flows = f.counter(
        "mqscope_flows_total",
        "TCP flows classified, by protocol (mqtt, tls: MQTT over TLS not decoded, other).",
    );
    for (p, v) in [
        ("mqtt", d.flows_mqtt),
        ("tls", d.flows_tls),
        ("other", d.flows_not_mqtt),
    ] {
        flows.counter(&[("protocol", p)], v);
    }
    f.push(flows);
}

fn type_label(nibble: usize) -> String {
    PacketType::from_nibble(nibble as u8)
        .map_or("reserved", |t| t.name())
        .to_ascii_lowercase()
}

fn mqtt(f: &mut Families, d: &DissectStats) {
    let mut p = f.counter(
        "mqscope_mqtt_packets_total",
        "MQTT control packets seen, by type and direction (in: client to broker).",
    );
    for (t, by_dir) in d.packets.iter().enumerate() {
        // Reserved type 0 only when seen; the 15 real types always (stable series).
        if t == 0 && by_dir[0] + by_dir[1] == 0 {
            continue;
        }
        let name = type_label(t);
        for (dir, v) in DIRECTIONS.iter().zip(by_dir) {
            p.counter(&[("type", &name), ("direction", dir)], *v);
        }
    }
    f.push(p);
    let mut b = f.counter(
        "mqscope_mqtt_bytes_total",
        "Bytes of MQTT control packets (whole packets), by direction.",
    );
    for (dir, v) in DIRECTIONS.iter().zip(d.mqtt_bytes) {
        b.counter(&[("direction", dir)], v);
    }
    f.push(b);
    let mut e = f.counter(
        "mqscope_decode_errors_total",
        "MQTT packets that could not be decoded, by error kind.",
    );
    for (k, v) in d.decode_errors.iter() {
        e.counter(&[("kind", k)], v);
    }
    f.push(e);
    let mut v = f.counter(
        "mqscope_protocol_violations_total",
        "Decoded MQTT packets that break the protocol, by kind.",
    );
    for (k, n) in d.violations.iter() {
        v.counter(&[("kind", k)], n);
    }
    f.push(v);
    f.one_counter(
        "mqscope_stream_resyncs_total",
        "Times a stream had to find an MQTT packet boundary again (midstream start, gap).",
        d.resyncs,
    );
}

fn topics(f: &mut Families, s: &ObserverSeries) {
    let mut msgs = f.counter(
        "mqscope_topic_messages_total",
        "PUBLISH messages by topic group and direction (in: to the broker, out: to subscribers).",
    );
    let mut bytes = f.counter(
        "mqscope_topic_bytes_total",
        "PUBLISH payload bytes by topic group and direction.",
    );
    let mut size = f.histogram(
        "mqscope_payload_size_bytes",
        "Payload size of PUBLISH messages into the broker, by topic group.",
    );
    let mut lat = f.histogram(
        "mqscope_topic_latency_seconds",
        "Passive latency by exchange (publish_qos1, publish_qos2, fanout) and topic group.",
    );
    for (topic, t) in &s.topics {
        for (i, dir) in DIRECTIONS.iter().enumerate() {
            msgs.counter(&[("topic", topic), ("direction", dir)], t.msgs[i]);
            bytes.counter(&[("topic", topic), ("direction", dir)], t.bytes[i]);
        }
        size.histogram(&[("topic", topic)], &t.payload, &PAYLOAD_BOUNDS_BYTES);
        for (ex, h) in &t.latency {
            lat.histogram(&[("exchange", ex), ("topic", topic)], h, &LATENCY_BOUNDS_S);
        }
    }
    f.push(msgs);
    f.push(bytes);
    f.push(size);
    f.push(lat);
}

fn latency(f: &mut Families, snap: &ObserverSnapshot, s: &ObserverSeries) {
    let mut lat = f.histogram(
        "mqscope_latency_seconds",
        "Passive request/response latency by exchange, measured from the capture.",
    );
    for (ex, h) in &s.exchanges {
        lat.histogram(&[("exchange", ex)], h, &LATENCY_BOUNDS_S);
    }
    f.push(lat);
    let mut un = f.counter(
        "mqscope_unanswered_total",
        "Requests whose answer was not seen within the timeout, by exchange.",
    );
    let mut unmatched = f.counter(
        "mqscope_unmatched_responses_total",
        "Answers seen without their request, by exchange.",
    );
    for e in &snap.tracker.exchanges {
        if e.exchange == Exchange::Fanout.name() {
            continue;
        }
        un.counter(&[("exchange", e.exchange)], e.unanswered);
        unmatched.counter(&[("exchange", e.exchange)], e.unmatched);
    }
    f.push(un);
    f.push(unmatched);
    let fo = &snap.tracker.fanout;
    let mut d = f.counter(
        "mqscope_fanout_messages_total",
        "Inbound PUBLISHes whose fan-out window closed, by copies seen leaving the broker (0, 1, n); untracked: not matched (no copy of its topic seen leaving yet).",
    );
    for (k, v) in [
        ("0", fo.delivered_0),
        ("1", fo.delivered_1),
        ("n", fo.delivered_n),
        ("untracked", fo.untracked),
    ] {
        d.counter(&[("delivered", k)], v);
    }
    f.push(d);
}

fn connections(f: &mut Families, i: &MetricsInput<'_>, snap: &ObserverSnapshot) {
    let t = &snap.tracker;
    f.one_gauge(
        "mqscope_clients_connected",
        "Clients (by client id) with an open MQTT connection.",
        t.clients.connected as f64,
    );
    f.one_gauge(
        "mqscope_connections_open",
        "Open MQTT connections tracked (TCP flows carrying MQTT).",
        t.connections.open as f64,
    );
    // CONNACKs on the wire (exact, from the dissector) split by the tracker's refusal
    // count; unanswered CONNECTs from the latency tracker.
    let connacks = i.dissect.packets.get(2).map_or(0, |p| p[0] + p[1]);
    let refused = t.connections.connacks_refused;
    let unanswered = t
        .exchanges
        .iter()
        .find(|e| e.exchange == Exchange::Connect.name())
        .map_or(0, |e| e.unanswered);
    let mut c = f.counter(
        "mqscope_connections_total",
        "MQTT connection attempts by result: accepted / refused (CONNACK), unanswered (no CONNACK in time).",
    );
    c.counter(&[("result", "accepted")], connacks.saturating_sub(refused));
    c.counter(&[("result", "refused")], refused);
    c.counter(&[("result", "unanswered")], unanswered);
    f.push(c);

    let wire_auth = t.connections.auth_failures;
    let mut a = f.counter(
        "mqscope_auth_failures_total",
        "Authentication failures by reason (CONNACK codes on the wire, EMQX authentication events).",
    );
    match i.events {
        Some(tally) => {
            for (r, v) in AUTH_REASONS.iter().zip(tally.auth_by_reason(wire_auth)) {
                a.counter(&[("reason", r)], v);
            }
        }
        None => a.counter(&[("reason", "unknown")], wire_auth),
    }
    f.push(a);
    if let Some(tally) = i.events {
        let mut acl = f.counter(
            "mqscope_acl_denials_total",
            "Authorisation denials by action (MQTT 5 0x87 PUBACK/SUBACK on the wire, EMQX authz events).",
        );
        for (act, v) in ACL_ACTIONS.iter().zip(tally.acl) {
            acl.counter(&[("action", act)], v);
        }
        f.push(acl);
    }
    let mut ev = f.counter("mqscope_events_total", "Events raised, by kind.");
    for (k, v) in &snap.events_by_kind {
        ev.counter(&[("kind", k)], *v);
    }
    f.push(ev);
    f.one_counter(
        "mqscope_events_dropped_total",
        "Events dropped because the event queue was full (still counted in mqscope_events_total).",
        snap.events_dropped,
    );
}

fn tables(f: &mut Families, i: &MetricsInput<'_>, snap: &ObserverSnapshot) {
    let t = &snap.tracker;
    let tc = &snap.topic_counters;
    let pending_evicted: u64 = t.exchanges.iter().map(|e| e.evicted).sum();
    let mut ev = f.counter(
        "mqscope_evictions_total",
        "Entries pushed out of a bounded table to make room, by table.",
    );
    for (table, v) in [
        ("flows", i.capture.flows_evicted),
        ("connections", t.connections.evicted),
        ("clients", t.clients.evicted),
        ("pending_requests", pending_evicted),
        ("fanout", t.fanout.evicted),
        ("topics", tc.exact_evicted),
        ("topic_templates", tc.template_evicted),
    ] {
        ev.counter(&[("table", table)], v);
    }
    f.push(ev);
    let mut n = f.gauge("mqscope_table_entries", "Entries in a bounded table.");
    let mut cap = f.gauge("mqscope_table_capacity", "Capacity of a bounded table.");
    let tb = &t.tables;
    for (table, len, c) in [
        ("connections", tb.connections, Some(tb.connections_cap)),
        ("clients", tb.clients, Some(tb.clients_cap)),
        (
            "pending_requests",
            tb.pending_requests,
            Some(tb.pending_requests_cap),
        ),
        ("fanout", tb.fanout_pending, None),
    ] {
        n.gauge(&[("table", table)], len as f64);
        if let Some(c) = c {
            cap.gauge(&[("table", table)], c as f64);
        }
    }
    f.push(n);
    f.push(cap);
    let mut g = f.gauge("mqscope_topic_groups", "Live topic groups by kind.");
    for (k, v) in [
        ("exact", tc.exact_groups),
        ("template", tc.template_groups),
        ("other", tc.other_groups),
    ] {
        g.gauge(&[("kind", k)], v as f64);
    }
    f.push(g);
    let mut m = f.gauge(
        "mqscope_memory_bytes",
        "Estimated memory held by the observation state, by component.",
    );
    m.gauge(&[("component", "topics")], tc.mem_bytes as f64);
    m.gauge(&[("component", "tracker")], t.mem_bytes as f64);
    f.push(m);
}

fn clients(f: &mut Families, cfg: &PrometheusConfig, snap: &ObserverSnapshot) {
    let mut msgs = f.counter(
        "mqscope_client_messages_total",
        "PUBLISH messages by client (opt-in: per_client_labels) and direction.",
    );
    let mut bytes = f.counter(
        "mqscope_client_bytes_total",
        "PUBLISH payload bytes by client (opt-in) and direction.",
    );
    let mut up = f.gauge(
        "mqscope_client_connected",
        "1 while the client (opt-in) has an open connection.",
    );
    let mut seen = std::collections::HashSet::new();
    for c in snap.tracker.clients.top.iter().take(cfg.max_client_series) {
        // Client ids are unique in the tracker, but the lossy text of two invalid
        // UTF-8 ids could collide: one series per label value.
        if !seen.insert(c.client_id.as_str()) {
            continue;
        }
        let id = c.client_id.as_str();
        msgs.counter(&[("client_id", id), ("direction", "in")], c.msgs_in);
        msgs.counter(&[("client_id", id), ("direction", "out")], c.msgs_out);
        bytes.counter(&[("client_id", id), ("direction", "in")], c.bytes_in);
        bytes.counter(&[("client_id", id), ("direction", "out")], c.bytes_out);
        up.gauge(&[("client_id", id)], f64::from(u8::from(c.connected)));
    }
    f.push(msgs);
    f.push(bytes);
    f.push(up);
}

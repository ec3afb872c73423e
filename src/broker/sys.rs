//! `$SYS` ingestion: Mosquitto's `$SYS/broker/...` and EMQX's `$SYS/brokers/<node>/...`
//! folded into [`BrokerMetrics`], one per node. Pure: messages and their receive time go
//! in, nothing comes out but state.
//!
//! Staleness is judged by the broker's uptime, never by whether values change: Mosquitto
//! publishes a value only when it changed, so a quiet broker's `clients/connected` may not
//! be republished for hours and is still current. Uptime always changes, so it is
//! published every `sys_interval` (Mosquitto) or heartbeat (EMQX); the interval is learned
//! from the uptime values themselves, and a node is stale when its uptime has not been
//! heard for `stale_intervals` intervals.
//!
//! Sessions and restarts. A new MQTT session to the broker ([`SysState::on_session_start`])
//! clears every value: Mosquitto resends its whole retained `$SYS` tree on subscribe and
//! EMQX republishes every interval, so nothing from before the gap is mixed with what
//! follows. A broker restart shows as uptime going backwards (or, after a long gap, as
//! uptime implying a start more than two intervals later than before); then the node's `generation`
//! is bumped (and its values cleared, unless the session just started and they already
//! were), so rate computations treat it as a counter reset.

use serde::Serialize;

use super::metrics::{BrokerKind, BrokerMetrics, LoadAvg};
use super::parse::{bounded_text, parse_f64, parse_u64, parse_worded_duration_ms, truncate};

/// Caps and knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct SysConfig {
    /// EMQX nodes tracked; `$SYS` from further nodes is counted and dropped.
    pub max_nodes: usize,
    /// A node is stale after this many uptime intervals without an uptime update.
    pub stale_intervals: u32,
    /// Interval assumed before two uptime updates have taught the real one (EMQX's default
    /// heartbeat is 30 s, Mosquitto's `sys_interval` 10 s: the larger, doubled, errs on the
    /// side of not crying wolf).
    pub fallback_interval_ms: u64,
    /// Distinct topics remembered with unparseable payloads.
    pub max_unparseable_topics: usize,
}

impl Default for SysConfig {
    fn default() -> Self {
        SysConfig {
            max_nodes: 16,
            stale_intervals: 3,
            fallback_interval_ms: 60_000,
            max_unparseable_topics: 32,
        }
    }
}

/// What one message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysOutcome {
    /// A value was stored.
    Applied,
    /// A topic we know and deliberately do not map (deprecated aliases, build timestamps,
    /// EMQX statistics without a normalised field).
    Ignored,
    /// A `$SYS` topic we do not know.
    Unknown,
    /// A known topic whose payload did not parse.
    Unparseable,
    /// Not under `$SYS/`.
    NotSys,
    /// From an EMQX node beyond `max_nodes`.
    NodeRejected,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SysStats {
    pub messages: u64,
    pub applied: u64,
    pub ignored: u64,
    pub unknown_topics: u64,
    pub not_sys: u64,
    pub unparseable: u64,
    /// Unparseable payloads by topic (first `max_unparseable_topics` topics).
    pub unparseable_by_topic: Vec<(String, u64)>,
    /// Unparseable payloads on topics beyond that cap.
    pub unparseable_other: u64,
    pub nodes_rejected: u64,
    /// Broker restarts detected (uptime going backwards), all nodes.
    pub restarts: u64,
    pub sessions: u64,
}

/// Uptime deltas remembered to learn the publish interval.
const DELTAS: usize = 4;
/// Longest version / sysdescr / alarm name kept.
const MAX_TEXT: usize = 128;
/// Largest JSON payload parsed (EMQX client and alarm notices are a few hundred bytes).
const MAX_JSON: usize = 64 * 1024;

#[derive(Clone, Debug)]
struct Node {
    m: BrokerMetrics,
    last_uptime_ms: Option<u64>,
    uptime_at_ns: Option<u64>,
    last_seen_ns: u64,
    deltas_ms: [u64; DELTAS],
    n_deltas: usize,
    next_delta: usize,
    /// Set by a new session: the next uptime is compared for restart detection but the
    /// values were already cleared.
    fresh_session: bool,
    /// EMQX: `live_connections/count` seen, so it wins over `connections/count`.
    live_connections_seen: bool,
}

impl Node {
    fn new(kind: BrokerKind, node: Option<&str>, now_ns: u64) -> Node {
        Node {
            m: BrokerMetrics {
                kind,
                node: node.map(|n| truncate(n, MAX_TEXT).to_owned()),
                ..BrokerMetrics::default()
            },
            last_uptime_ms: None,
            uptime_at_ns: None,
            last_seen_ns: now_ns,
            deltas_ms: [0; DELTAS],
            n_deltas: 0,
            next_delta: 0,
            fresh_session: false,
            live_connections_seen: false,
        }
    }

    fn interval_ms(&self, fallback: u64) -> u64 {
        let learned = self.deltas_ms[..self.n_deltas].iter().copied().min();
        // The smallest recent delta is the interval; a lost update doubles one delta but
        // not the minimum. Never below 1 s (the finest `$SYS` granularity).
        learned.map_or(fallback, |d| d.max(1000))
    }

    /// Restart when uptime went backwards, or when the start time it implies (receive
    /// time minus uptime) moved later by more than two intervals: a broker that restarted
    /// during a long gap can already show a larger uptime than before it died.
    fn restarted(&self, last: u64, uptime_ms: u64, now_ns: u64, fallback: u64) -> bool {
        if uptime_ms < last {
            return true;
        }
        let Some(at) = self.uptime_at_ns else {
            return false;
        };
        let elapsed_ms = now_ns.saturating_sub(at) / 1_000_000;
        let tolerance_ms = self.interval_ms(fallback).saturating_mul(2).max(2000);
        uptime_ms.saturating_add(tolerance_ms) < last.saturating_add(elapsed_ms)
    }

    fn on_uptime(&mut self, uptime_ms: u64, now_ns: u64, restarts: &mut u64, fallback: u64) {
        if let Some(last) = self.last_uptime_ms {
            if self.restarted(last, uptime_ms, now_ns, fallback) {
                *restarts += 1;
                if self.fresh_session {
                    self.m.generation = self.m.generation.wrapping_add(1);
                } else {
                    self.m.reset_for_restart();
                    self.live_connections_seen = false;
                }
            } else if uptime_ms > last && !self.fresh_session {
                // Deltas across a session gap are not one interval: not learned from.
                self.deltas_ms[self.next_delta] = uptime_ms - last;
                self.next_delta = (self.next_delta + 1) % DELTAS;
                self.n_deltas = (self.n_deltas + 1).min(DELTAS);
            }
        }
        self.fresh_session = false;
        self.last_uptime_ms = Some(uptime_ms);
        self.uptime_at_ns = Some(now_ns);
        self.m.uptime_s = Some(uptime_ms / 1000);
    }
}

/// The `$SYS` reader: feed it every `$SYS/...` message.
#[derive(Clone, Debug)]
pub struct SysState {
    cfg: SysConfig,
    nodes: Vec<Node>,
    pub stats: SysStats,
}

impl Default for SysState {
    fn default() -> Self {
        SysState::new(SysConfig::default())
    }
}

impl SysState {
    pub fn new(cfg: SysConfig) -> SysState {
        SysState {
            cfg,
            nodes: Vec::new(),
            stats: SysStats::default(),
        }
    }

    /// The broker kind, from the first node that told.
    pub fn kind(&self) -> BrokerKind {
        self.nodes
            .iter()
            .map(|n| n.m.kind)
            .find(|k| *k != BrokerKind::Unknown)
            .unwrap_or(BrokerKind::Unknown)
    }

    /// Metrics of every node heard from (one for Mosquitto).
    pub fn nodes(&self) -> impl Iterator<Item = &BrokerMetrics> {
        self.nodes.iter().map(|n| &n.m)
    }

    /// Metrics of one node: `None` for Mosquitto's single node, the name for EMQX.
    pub fn node(&self, name: Option<&str>) -> Option<&BrokerMetrics> {
        self.nodes
            .iter()
            .find(|n| n.m.node.as_deref() == name)
            .map(|n| &n.m)
    }

    /// The first node's metrics (Mosquitto's only one).
    pub fn primary(&self) -> Option<&BrokerMetrics> {
        self.nodes.first().map(|n| &n.m)
    }

    /// Interval between uptime updates learned for a node, if two have arrived.
    pub fn learned_interval_ms(&self, name: Option<&str>) -> Option<u64> {
        let n = self.nodes.iter().find(|n| n.m.node.as_deref() == name)?;
        (n.n_deltas > 0).then(|| n.interval_ms(self.cfg.fallback_interval_ms))
    }

    /// A new MQTT session to the broker began (after connect or reconnect): clear values
    /// so the resent snapshot is not mixed with values from before the gap.
    pub fn on_session_start(&mut self) {
        self.stats.sessions += 1;
        for n in &mut self.nodes {
            let (kind, node, version, sysdescr, generation) = (
                n.m.kind,
                n.m.node.take(),
                n.m.version.take(),
                n.m.sysdescr.take(),
                n.m.generation,
            );
            n.m = BrokerMetrics {
                kind,
                node,
                version,
                sysdescr,
                generation,
                ..BrokerMetrics::default()
            };
            n.fresh_session = true;
            n.live_connections_seen = false;
        }
    }

    /// True when some node's uptime should have advanced `stale_intervals` times by now
    /// and did not. A node that never sent its uptime is judged by when it was last heard,
    /// against the fallback interval.
    pub fn is_stale(&self, now_ns: u64) -> bool {
        self.nodes.iter().any(|n| self.node_stale(n, now_ns))
    }

    /// Names of the stale nodes (`None` is Mosquitto's node).
    pub fn stale_nodes(&self, now_ns: u64) -> Vec<Option<&str>> {
        self.nodes
            .iter()
            .filter(|n| self.node_stale(n, now_ns))
            .map(|n| n.m.node.as_deref())
            .collect()
    }

    fn node_stale(&self, n: &Node, now_ns: u64) -> bool {
        let since = n.uptime_at_ns.unwrap_or(n.last_seen_ns);
        let limit_ms = n
            .interval_ms(self.cfg.fallback_interval_ms)
            .saturating_mul(u64::from(self.cfg.stale_intervals));
        now_ns.saturating_sub(since) > limit_ms.saturating_mul(1_000_000)
    }

    /// Feeds one message received at `now_ns` (ns since the epoch).
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now_ns: u64) -> SysOutcome {
        self.stats.messages += 1;
        let outcome = self.dispatch(topic, payload, now_ns);
        match outcome {
            SysOutcome::Applied => self.stats.applied += 1,
            SysOutcome::Ignored => self.stats.ignored += 1,
            SysOutcome::Unknown => self.stats.unknown_topics += 1,
            SysOutcome::NotSys => self.stats.not_sys += 1,
            SysOutcome::NodeRejected => self.stats.nodes_rejected += 1,
            SysOutcome::Unparseable => self.count_unparseable(topic),
        }
        outcome
    }

    fn dispatch(&mut self, topic: &str, payload: &[u8], now_ns: u64) -> SysOutcome {
        if let Some(rest) = topic.strip_prefix("$SYS/broker/") {
            let Some(i) = self.node_index(BrokerKind::Unknown, None, now_ns) else {
                return SysOutcome::NodeRejected;
            };
            let restarts = &mut self.stats.restarts;
            let fallback = self.cfg.fallback_interval_ms;
            return mosquitto(
                &mut self.nodes[i],
                rest,
                payload,
                now_ns,
                restarts,
                fallback,
            );
        }
        if topic == "$SYS/brokers" {
            // The cluster's node list ("n1,n2"): proof of EMQX; nodes are created when
            // they publish their own topics.
            for n in &mut self.nodes {
                if n.m.node.is_some() {
                    n.m.kind = BrokerKind::Emqx;
                }
            }
            return SysOutcome::Ignored;
        }
        if let Some(rest) = topic.strip_prefix("$SYS/brokers/") {
            let Some((node, rest)) = rest.split_once('/') else {
                return SysOutcome::Unknown;
            };
            if node.is_empty() {
                return SysOutcome::Unknown;
            }
            let Some(i) = self.node_index(BrokerKind::Emqx, Some(node), now_ns) else {
                return SysOutcome::NodeRejected;
            };
            let restarts = &mut self.stats.restarts;
            let fallback = self.cfg.fallback_interval_ms;
            return emqx(
                &mut self.nodes[i],
                rest,
                payload,
                now_ns,
                restarts,
                fallback,
            );
        }
        if topic.starts_with("$SYS/") {
            SysOutcome::Unknown
        } else {
            SysOutcome::NotSys
        }
    }

    fn node_index(&mut self, kind: BrokerKind, name: Option<&str>, now_ns: u64) -> Option<usize> {
        if let Some(i) = self.nodes.iter().position(|n| n.m.node.as_deref() == name) {
            self.nodes[i].last_seen_ns = now_ns;
            return Some(i);
        }
        if self.nodes.len() >= self.cfg.max_nodes {
            return None;
        }
        self.nodes.push(Node::new(kind, name, now_ns));
        Some(self.nodes.len() - 1)
    }

    fn count_unparseable(&mut self, topic: &str) {
        self.stats.unparseable += 1;
        let by = &mut self.stats.unparseable_by_topic;
        if let Some(e) = by.iter_mut().find(|(t, _)| t == topic) {
            e.1 += 1;
        } else if by.len() < self.cfg.max_unparseable_topics {
            by.push((truncate(topic, 256).to_owned(), 1));
        } else {
            self.stats.unparseable_other += 1;
        }
    }
}

fn set_u64(field: &mut Option<u64>, payload: &[u8]) -> SysOutcome {
    match parse_u64(payload) {
        Some(v) => {
            *field = Some(v);
            SysOutcome::Applied
        }
        None => SysOutcome::Unparseable,
    }
}

/// `$SYS/broker/<rest>` (Mosquitto 1.x/2.x).
fn mosquitto(
    node: &mut Node,
    rest: &str,
    payload: &[u8],
    now_ns: u64,
    restarts: &mut u64,
    fallback: u64,
) -> SysOutcome {
    let m = &mut node.m;
    let field = match rest {
        "version" => {
            let Some(v) = bounded_text(payload, MAX_TEXT) else {
                return SysOutcome::Unparseable;
            };
            match v.strip_prefix("mosquitto version ") {
                Some(num) => {
                    m.kind = BrokerKind::Mosquitto;
                    m.version = Some(num.to_owned());
                }
                // Another broker using Mosquitto's layout: keep its words, kind unknown.
                None => m.version = Some(v),
            }
            return SysOutcome::Applied;
        }
        "uptime" => {
            return match parse_worded_duration_ms(payload) {
                Some(ms) => {
                    node.on_uptime(ms, now_ns, restarts, fallback);
                    SysOutcome::Applied
                }
                None => SysOutcome::Unparseable,
            };
        }
        "clients/connected" => &mut m.clients_connected,
        "clients/total" => &mut m.clients_total,
        "clients/disconnected" => &mut m.clients_disconnected,
        "clients/maximum" => &mut m.clients_maximum,
        "clients/expired" => &mut m.clients_expired,
        "messages/received" => &mut m.packets_received,
        "messages/sent" => &mut m.packets_sent,
        "publish/messages/received" => &mut m.publish_received,
        "publish/messages/sent" => &mut m.publish_sent,
        "publish/messages/dropped" => &mut m.publish_dropped,
        "publish/bytes/received" => &mut m.publish_bytes_received,
        "publish/bytes/sent" => &mut m.publish_bytes_sent,
        "bytes/received" => &mut m.bytes_received,
        "bytes/sent" => &mut m.bytes_sent,
        "retained messages/count" => &mut m.retained_messages,
        "subscriptions/count" => &mut m.subscriptions,
        "shared_subscriptions/count" => &mut m.shared_subscriptions,
        "store/messages/count" => &mut m.store_messages,
        "store/messages/bytes" => &mut m.store_bytes,
        "heap/current" => &mut m.heap_current,
        "heap/maximum" => &mut m.heap_maximum,
        // Deprecated duplicates (`active` = connected, `inactive` = disconnected,
        // `messages/stored` = store count) and build information.
        "clients/active" | "clients/inactive" | "messages/stored" | "timestamp" | "changeset" => {
            return SysOutcome::Ignored;
        }
        _ => {
            if let Some(load) = rest.strip_prefix("load/") {
                return mosquitto_load(m, load, payload);
            }
            // Bridge state (`connection/<name>/state`) and `$SYS/broker/log/...`.
            if rest.starts_with("connection/") || rest.starts_with("log/") {
                return SysOutcome::Ignored;
            }
            return SysOutcome::Unknown;
        }
    };
    set_u64(field, payload)
}

/// `load/<family>/<window>`, e.g. `load/bytes/received/1min`.
fn mosquitto_load(m: &mut BrokerMetrics, load: &str, payload: &[u8]) -> SysOutcome {
    let Some((family, window)) = load.rsplit_once('/') else {
        return SysOutcome::Unknown;
    };
    let l = &mut m.load;
    let avg: &mut LoadAvg = match family {
        "messages/received" => &mut l.messages_received,
        "messages/sent" => &mut l.messages_sent,
        "publish/received" => &mut l.publish_received,
        "publish/sent" => &mut l.publish_sent,
        "publish/dropped" => &mut l.publish_dropped,
        "bytes/received" => &mut l.bytes_received,
        "bytes/sent" => &mut l.bytes_sent,
        "connections" => &mut l.connections,
        "sockets" => &mut l.sockets,
        _ => return SysOutcome::Unknown,
    };
    let slot = match window {
        "1min" => &mut avg.m1,
        "5min" => &mut avg.m5,
        "15min" => &mut avg.m15,
        _ => return SysOutcome::Unknown,
    };
    match parse_f64(payload) {
        Some(v) => {
            *slot = Some(v);
            SysOutcome::Applied
        }
        None => SysOutcome::Unparseable,
    }
}

/// `$SYS/brokers/<node>/<rest>` (EMQX 4 and 5).
fn emqx(
    node: &mut Node,
    rest: &str,
    payload: &[u8],
    now_ns: u64,
    restarts: &mut u64,
    fallback: u64,
) -> SysOutcome {
    node.m.kind = BrokerKind::Emqx;
    match rest {
        "version" | "sysdescr" => {
            let Some(v) = bounded_text(payload, MAX_TEXT) else {
                return SysOutcome::Unparseable;
            };
            if rest == "version" {
                node.m.version = Some(v);
            } else {
                node.m.sysdescr = Some(v);
            }
            return SysOutcome::Applied;
        }
        "uptime" => {
            // EMQX 5: integer milliseconds; EMQX 4: "1 days, 2 hours, ...".
            let ms = parse_u64(payload).or_else(|| parse_worded_duration_ms(payload));
            return match ms {
                Some(ms) => {
                    node.on_uptime(ms, now_ns, restarts, fallback);
                    SysOutcome::Applied
                }
                None => SysOutcome::Unparseable,
            };
        }
        "datetime" => return SysOutcome::Ignored,
        "alarms/activate" | "alarms/deactivate" => {
            return emqx_alarm(&mut node.m, rest == "alarms/activate", payload);
        }
        _ => {}
    }
    if let Some(stat) = rest.strip_prefix("stats/") {
        return emqx_stat(node, stat, payload);
    }
    if let Some(metric) = rest.strip_prefix("metrics/") {
        return emqx_metric(&mut node.m, metric, payload);
    }
    if let Some(client) = rest.strip_prefix("clients/") {
        // The client id may itself contain '/': the action is the last level.
        return match client.rsplit_once('/') {
            Some((id, action)) if !id.is_empty() => emqx_client(&mut node.m, action, payload),
            _ => SysOutcome::Unknown,
        };
    }
    if rest.starts_with("sysmon/") || rest.starts_with("gateway/") {
        return SysOutcome::Ignored;
    }
    SysOutcome::Unknown
}

fn emqx_stat(node: &mut Node, stat: &str, payload: &[u8]) -> SysOutcome {
    let m = &mut node.m;
    let field = match stat {
        "connections/count" => {
            if node.live_connections_seen {
                return SysOutcome::Ignored;
            }
            &mut m.clients_connected
        }
        "live_connections/count" => {
            node.live_connections_seen = true;
            &mut m.clients_connected
        }
        "connections/max" => &mut m.clients_maximum,
        "sessions/count" => &mut m.clients_total,
        "retained/count" => &mut m.retained_messages,
        "subscriptions/count" => &mut m.subscriptions,
        "subscriptions/shared/count" => &mut m.shared_subscriptions,
        // Documented statistics without a normalised field (maxima, topics, routes...).
        _ => return SysOutcome::Ignored,
    };
    set_u64(field, payload)
}

fn emqx_metric(m: &mut BrokerMetrics, metric: &str, payload: &[u8]) -> SysOutcome {
    let field = match metric {
        "bytes/received" => &mut m.bytes_received,
        "bytes/sent" => &mut m.bytes_sent,
        "packets/received" => &mut m.packets_received,
        "packets/sent" => &mut m.packets_sent,
        "messages/received" => &mut m.publish_received,
        "messages/sent" => &mut m.publish_sent,
        "messages/dropped" => &mut m.publish_dropped,
        "messages/dropped/no_subscribers" => &mut m.dropped_no_subscribers,
        "packets/publish/auth_error" => &mut m.publish_auth_denied,
        "packets/subscribe/auth_error" => &mut m.subscribe_auth_denied,
        "authorization/deny" => &mut m.authz_denied,
        "authentication/failure" => &mut m.authn_failed,
        _ => return SysOutcome::Ignored,
    };
    set_u64(field, payload)
}

/// Only checks the JSON is an object with a `clientid`: ids are unbounded, so notices are
/// counted, not kept.
#[derive(serde::Deserialize)]
struct ClientNotice {
    clientid: serde_json::Value,
}

fn emqx_client(m: &mut BrokerMetrics, action: &str, payload: &[u8]) -> SysOutcome {
    let counter = match action {
        "connected" => &mut m.client_connected_notices,
        "disconnected" => &mut m.client_disconnected_notices,
        // Off by default in EMQX (`sys_event_messages`); known, not mapped.
        "subscribed" | "unsubscribed" => return SysOutcome::Ignored,
        _ => return SysOutcome::Unknown,
    };
    if payload.len() > MAX_JSON {
        return SysOutcome::Unparseable;
    }
    match serde_json::from_slice::<ClientNotice>(payload) {
        Ok(n) if n.clientid.is_string() => {
            *counter += 1;
            SysOutcome::Applied
        }
        _ => SysOutcome::Unparseable,
    }
}

#[derive(serde::Deserialize)]
struct AlarmNotice {
    name: String,
}

fn emqx_alarm(m: &mut BrokerMetrics, activate: bool, payload: &[u8]) -> SysOutcome {
    if payload.len() > MAX_JSON {
        return SysOutcome::Unparseable;
    }
    let Ok(a) = serde_json::from_slice::<AlarmNotice>(payload) else {
        return SysOutcome::Unparseable;
    };
    if activate {
        m.alarms_activated += 1;
        m.alarms_active += 1;
        m.last_alarm = Some(truncate(&a.name, MAX_TEXT).to_owned());
    } else {
        m.alarms_deactivated += 1;
        // Saturating: an alarm activated before we subscribed may be deactivated later.
        m.alarms_active = m.alarms_active.saturating_sub(1);
    }
    SysOutcome::Applied
}

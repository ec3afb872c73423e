//! The rule engine: per-key windows fed by events and packets, findings turned into
//! hits by [`Alerts`].

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use serde::Serialize;

use crate::dissect::MqttRecord;
use crate::mqtt::{Direction, Packet};
use crate::observe::{Event, EventKind};

use super::config::RulesConfig;
use super::flow::{FlowState, MAX_PENDING_FILTERS};
use super::hit::{Alerts, Evidence, Finding, RuleHit, Severity};
use super::table::{BoundedTable, CountWindow};

const NS: u64 = 1_000_000_000;
/// Housekeeping period in record time (cool-down expiry, idle-connection checks).
const TICK_NS: u64 = NS;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RuleCounters {
    pub events_seen: u64,
    pub records_seen: u64,
    /// Entries evicted from full per-key tables (all tables together).
    pub keys_evicted: u64,
    pub flows_evicted: u64,
    pub active_evicted: u64,
    pub hits_dropped: u64,
    pub hits: u64,
    pub active: u64,
}

/// Hits and counters, for reports.
#[derive(Clone, Debug, Serialize)]
pub struct RulesSnapshot {
    pub hits: Vec<RuleHit>,
    pub counters: RuleCounters,
}

pub struct RuleEngine {
    cfg: RulesConfig,
    alerts: Alerts,
    flows: BoundedTable<u64, FlowState>,
    auth_by_ip: BoundedTable<IpAddr, CountWindow>,
    auth_by_user: BoundedTable<String, CountWindow>,
    acl_by_client: BoundedTable<String, CountWindow>,
    violations_by_client: BoundedTable<String, CountWindow>,
    connects_by_id: BoundedTable<Vec<u8>, CountWindow>,
    takeovers_by_id: BoundedTable<String, CountWindow>,
    last_tick_ns: u64,
    now_ns: u64,
    events_seen: u64,
    records_seen: u64,
}

fn secs(s: u64) -> u64 {
    s.saturating_mul(NS)
}

fn event_key(e: &Event) -> String {
    match (&e.client_id, e.client_addr) {
        (Some(id), _) if !id.is_empty() => {
            let cut: String = id.chars().take(128).collect();
            format!("client:{cut}")
        }
        (_, Some(a)) => format!("addr:{a}"),
        _ => "unknown".to_string(),
    }
}

fn ev(ts_ns: u64, value: impl Into<String>) -> Evidence {
    Evidence {
        ts_ns,
        value: value.into(),
    }
}

fn times_evidence(w: &CountWindow, what: &str) -> Vec<Evidence> {
    w.times().take(5).map(|t| ev(t, what)).collect()
}

/// Counts one occurrence for `key` in its window; when the window now holds `n` or more,
/// the first counted time and the evidence (the first occurrences' times).
fn crossed<K: Hash + Eq + Clone>(
    table: &mut BoundedTable<K, CountWindow>,
    key: &K,
    ts_ns: u64,
    window_ns: u64,
    n: u32,
    what: &str,
) -> Option<(u64, Vec<Evidence>)> {
    let win = table.entry(key, ts_ns, window_ns, CountWindow::default);
    if win.push(ts_ns, n, window_ns) >= n as usize {
        Some((win.first().unwrap_or(ts_ns), times_evidence(win, what)))
    } else {
        None
    }
}

impl RuleEngine {
    pub fn new(cfg: RulesConfig) -> Result<RuleEngine, Vec<String>> {
        let errs = cfg.validate();
        if !errs.is_empty() {
            return Err(errs);
        }
        let k = cfg.max_keys;
        Ok(RuleEngine {
            alerts: Alerts::new(k, cfg.max_hits, secs(cfg.cooldown_s)),
            flows: BoundedTable::new(k),
            auth_by_ip: BoundedTable::new(k),
            auth_by_user: BoundedTable::new(k),
            acl_by_client: BoundedTable::new(k),
            violations_by_client: BoundedTable::new(k),
            connects_by_id: BoundedTable::new(k),
            takeovers_by_id: BoundedTable::new(k),
            cfg,
            last_tick_ns: 0,
            now_ns: 0,
            events_seen: 0,
            records_seen: 0,
        })
    }

    pub fn config(&self) -> &RulesConfig {
        &self.cfg
    }

    pub fn hits(&self) -> &[RuleHit] {
        self.alerts.hits()
    }

    pub fn counters(&self) -> RuleCounters {
        let hits = self.alerts.hits();
        RuleCounters {
            events_seen: self.events_seen,
            records_seen: self.records_seen,
            keys_evicted: self.auth_by_ip.evicted
                + self.auth_by_user.evicted
                + self.acl_by_client.evicted
                + self.violations_by_client.evicted
                + self.connects_by_id.evicted
                + self.takeovers_by_id.evicted,
            flows_evicted: self.flows.evicted,
            active_evicted: self.alerts.active_evicted(),
            hits_dropped: self.alerts.hits_dropped,
            hits: hits.len() as u64,
            active: hits.iter().filter(|h| h.cleared_ts_ns.is_none()).count() as u64,
        }
    }

    pub fn snapshot(&self) -> RulesSnapshot {
        RulesSnapshot {
            hits: self.hits().to_vec(),
            counters: self.counters(),
        }
    }

    fn advance(&mut self, ts_ns: u64) {
        self.now_ns = self.now_ns.max(ts_ns);
        if self.now_ns >= self.last_tick_ns.saturating_add(TICK_NS) {
            self.tick(self.now_ns);
        }
    }

    /// Housekeeping as of `now_ns`: resolve quiet alerts, flag idle SlowITe connections.
    pub fn tick(&mut self, now_ns: u64) {
        self.last_tick_ns = now_ns;
        self.now_ns = self.now_ns.max(now_ns);
        self.alerts.tick(now_ns);
        let slow_idle = secs(self.cfg.slowite_idle_s);
        let zero_idle = secs(self.cfg.zero_keepalive_idle_s);
        if slow_idle == 0 && zero_idle == 0 {
            return;
        }
        let thr = self.cfg.slowite_keepalive_s;
        let mut found = Vec::new();
        for (_, f) in self.flows.iter_mut() {
            let Some(ka) = f.keepalive else { continue };
            if f.slowite_flagged {
                continue;
            }
            let idle = now_ns.saturating_sub(f.last_c2s_ts);
            let hit = (ka >= thr && slow_idle > 0 && idle >= slow_idle)
                || (ka == 0 && zero_idle > 0 && idle >= zero_idle);
            if hit {
                f.slowite_flagged = true;
                found.push(slowite_finding(f, ka, now_ns, idle));
            }
        }
        for f in found {
            self.alerts.raise(f);
        }
    }

    /// End of input: final housekeeping (alerts still in their cool-down stay active).
    pub fn finish(&mut self) {
        self.tick(self.now_ns);
    }

    pub fn on_flow_closed(&mut self, flow_id: u64, ts_ns: u64) {
        self.flows.remove(&flow_id);
        self.advance(ts_ns);
    }

    pub fn on_event(&mut self, e: &Event) {
        self.events_seen += 1;
        self.advance(e.ts_ns);
        let cfg = &self.cfg;
        match e.kind {
            EventKind::AuthFailure => {
                let w = secs(cfg.auth_window_s);
                let n = cfg.auth_failures;
                let window = cfg.auth_window_s;
                if let Some(a) = e.client_addr {
                    let ip = a.ip();
                    if let Some((first, evidence)) =
                        crossed(&mut self.auth_by_ip, &ip, e.ts_ns, w, n, "auth failure")
                    {
                        self.alerts.raise(Finding {
                            rule: "auth_brute_force",
                            severity: Severity::High,
                            key: format!("ip:{ip}"),
                            first_ts_ns: first,
                            ts_ns: e.ts_ns,
                            count: u64::from(n),
                            more: 1,
                            evidence,
                            summary: format!(
                                "{n} authentication failures from {ip} within {window}s"
                            ),
                        });
                    }
                }
                if let Some(u) = &e.username
                    && let Some((first, evidence)) =
                        crossed(&mut self.auth_by_user, u, e.ts_ns, w, n, "auth failure")
                {
                    let u: String = u.chars().take(128).collect();
                    self.alerts.raise(Finding {
                        rule: "auth_brute_force",
                        severity: Severity::High,
                        key: format!("user:{u}"),
                        first_ts_ns: first,
                        ts_ns: e.ts_ns,
                        count: u64::from(n),
                        more: 1,
                        evidence,
                        summary: format!(
                            "{n} authentication failures for user {u} within {window}s"
                        ),
                    });
                }
            }
            EventKind::SubscribeRefused | EventKind::PublishRefused | EventKind::AclDenied => {
                let (w, n) = (secs(cfg.acl_window_s), cfg.acl_denials);
                let key = event_key(e);
                if let Some((first, evidence)) =
                    crossed(&mut self.acl_by_client, &key, e.ts_ns, w, n, e.kind.name())
                {
                    self.alerts.raise(Finding {
                        rule: "acl_denial_burst",
                        severity: Severity::Medium,
                        first_ts_ns: first,
                        ts_ns: e.ts_ns,
                        count: u64::from(n),
                        more: 1,
                        evidence,
                        summary: format!(
                            "{n} publish/subscribe denials for {key} within {}s",
                            cfg.acl_window_s
                        ),
                        key,
                    });
                }
            }
            EventKind::Malformed | EventKind::ProtocolViolation => {
                let (w, n) = (secs(cfg.violation_window_s), cfg.violations);
                let key = event_key(e);
                let what = e.detail.unwrap_or(e.kind.name());
                if let Some((first, _)) =
                    crossed(&mut self.violations_by_client, &key, e.ts_ns, w, n, what)
                {
                    self.alerts.raise(Finding {
                        rule: "protocol_violation",
                        severity: Severity::Medium,
                        first_ts_ns: first,
                        ts_ns: e.ts_ns,
                        count: u64::from(n),
                        more: 1,
                        evidence: vec![ev(e.ts_ns, what)],
                        summary: format!(
                            "{n} malformed or protocol-violating packets from {key} within {}s",
                            cfg.violation_window_s
                        ),
                        key,
                    });
                }
            }
            EventKind::WildcardSubscribe | EventKind::SysSubscribe => {
                let admin = e
                    .client_id
                    .as_ref()
                    .is_some_and(|id| cfg.admin_clients.iter().any(|a| a == id));
                if !admin {
                    let key = event_key(e);
                    let filter: String = e
                        .topic
                        .as_deref()
                        .unwrap_or("?")
                        .chars()
                        .take(128)
                        .collect();
                    let f = Finding {
                        rule: "wildcard_subscription",
                        severity: Severity::Medium,
                        first_ts_ns: e.ts_ns,
                        ts_ns: e.ts_ns,
                        count: 1,
                        more: 1,
                        evidence: vec![ev(e.ts_ns, filter.clone())],
                        summary: format!("{key} (not an admin client) subscribed to {filter}"),
                        key,
                    };
                    self.alerts.raise(f);
                }
            }
            EventKind::ClientTakeover => {
                let key = event_key(e);
                let from = e.client_addr.map_or("?".to_string(), |a| a.to_string());
                // A device back from a dead (half-open) link takes its own session over:
                // routine on cellular and Wi-Fi, its old connection silent since the link
                // went. Suspicious is a takeover of a connection that was demonstrably
                // alive, or takeovers that repeat (two live clients fighting over an id:
                // a duplicate id or a hijacker and its victim).
                let quiet_ns = self.old_connection_quiet(e);
                let (w, n) = (secs(cfg.takeover_window_s), cfg.takeovers);
                let repeated = crossed(&mut self.takeovers_by_id, &key, e.ts_ns, w, n, "takeover");
                let alive =
                    quiet_ns.is_none_or(|q| q <= cfg.takeover_active_ms.saturating_mul(1_000_000));
                if alive || repeated.is_some() {
                    let why = match (quiet_ns, &repeated) {
                        (_, Some(_)) => format!("{n} takeovers within {}s", cfg.takeover_window_s),
                        (Some(q), None) => {
                            format!("its connection was active {} ms before", q / 1_000_000)
                        }
                        (None, None) => "its earlier connection was not seen".to_string(),
                    };
                    let (first, mut evidence) = repeated.unwrap_or((e.ts_ns, Vec::new()));
                    evidence.push(ev(
                        e.ts_ns,
                        format!("from {from} ({})", e.detail.unwrap_or("")),
                    ));
                    self.alerts.raise(Finding {
                        rule: "client_takeover",
                        severity: Severity::High,
                        first_ts_ns: first,
                        ts_ns: e.ts_ns,
                        count: 1,
                        more: 1,
                        evidence,
                        summary: format!(
                            "{key} connected again from {from} while connected ({why})"
                        ),
                        key,
                    });
                }
            }
            _ => {}
        }
    }

    /// How long the taken-over connection had been silent (client to broker) when `e`
    /// (a takeover) happened: the latest activity of the other flows of the same client
    /// id. `None` when no earlier connection is known (it began before the capture).
    /// A scan of the flow table, which is capped; takeovers are rare events.
    fn old_connection_quiet(&self, e: &Event) -> Option<u64> {
        let id = e.client_id.as_deref()?;
        let id = &id[..id.floor_char_boundary(128)];
        self.flows
            .iter()
            .filter(|(_, f)| {
                f.client_id.as_deref() == Some(id)
                    && f.connect_ts < e.ts_ns
                    && Some(f.client) != e.client_addr
            })
            .map(|(_, f)| f.last_c2s_ts)
            .max()
            .map(|last| e.ts_ns.saturating_sub(last))
    }

    pub fn on_record(&mut self, rec: &MqttRecord<'_>) {
        self.records_seen += 1;
        self.advance(rec.ts_ns);
        let Ok(p) = &rec.packet else { return };
        let ts = rec.ts_ns;
        let fid = rec.flow.id;
        let client = rec.flow.client;
        let flow = self
            .flows
            .entry(&fid, ts, u64::MAX, || FlowState::new(client, ts));
        if rec.dir == Direction::C2S {
            flow.last_c2s_ts = ts;
        }
        let cfg = &self.cfg;
        let mut found: Option<Finding> = None;
        match (rec.dir, p) {
            (Direction::C2S, Packet::Connect(c)) => {
                flow.set_client_id(c.client_id.bytes());
                let port = rec.flow.broker.port();
                if cfg.tls_ports.contains(&port) {
                    // The dissector decodes a TLS-port flow only when its client opened in
                    // clear: the CONNECT (and any password in it) crossed the wire readable.
                    let key = flow.key();
                    let with_pw = if c.password.is_some() {
                        " with a password"
                    } else {
                        ""
                    };
                    self.alerts.raise(Finding {
                        rule: "plain_mqtt_on_tls_port",
                        severity: Severity::High,
                        first_ts_ns: ts,
                        ts_ns: ts,
                        count: 1,
                        more: 1,
                        evidence: vec![ev(ts, format!("plaintext CONNECT to port {port}"))],
                        summary: format!(
                            "{key} sent a plaintext CONNECT{with_pw} to TLS port {port}"
                        ),
                        key,
                    });
                }
                flow.keepalive = Some(c.keep_alive);
                flow.connect_ts = ts;
                flow.slowite_flagged = false;
                if c.keep_alive >= cfg.slowite_keepalive_s && cfg.slowite_idle_s == 0 {
                    flow.slowite_flagged = true;
                    found = Some(slowite_finding(flow, c.keep_alive, ts, 0));
                }
                // An empty id is assigned by the broker: not one identity reconnecting.
                if !c.client_id.is_empty() {
                    let (w, n) = (secs(cfg.reconnect_window_s), cfg.reconnects);
                    let id = c.client_id.bytes();
                    let cut = &id[..id.len().min(128)];
                    let win = self
                        .connects_by_id
                        .entry(&cut.to_vec(), ts, w, CountWindow::default);
                    if win.push(ts, n, w) >= n as usize {
                        let key = flow.key();
                        let storm = Finding {
                            rule: "reconnect_storm",
                            severity: Severity::Medium,
                            first_ts_ns: win.first().unwrap_or(ts),
                            ts_ns: ts,
                            count: u64::from(n),
                            more: 1,
                            evidence: times_evidence(win, "CONNECT"),
                            summary: format!(
                                "{n} CONNECTs for {key} within {}s",
                                cfg.reconnect_window_s
                            ),
                            key,
                        };
                        // Both can fire on one CONNECT: raise the storm now.
                        self.alerts.raise(storm);
                    }
                }
            }
            (Direction::C2S, Packet::Publish(pb)) => {
                let topic = rec.topic.unwrap_or(pb.topic);
                let size = pb.payload.len();
                // publish_flood: tumbling windows from the first PUBLISH.
                let w = secs(cfg.flood_window_s);
                let limit = u64::from(cfg.flood_rate_per_s).saturating_mul(cfg.flood_window_s);
                if flow.flood_count == 0 || ts.saturating_sub(flow.flood_start) >= w {
                    flow.flood_start = ts;
                    flow.flood_count = 0;
                }
                flow.flood_count += 1;
                if flow.flood_count == limit {
                    let key = flow.key();
                    found = Some(Finding {
                        rule: "publish_flood",
                        severity: Severity::High,
                        first_ts_ns: flow.flood_start,
                        ts_ns: ts,
                        count: limit,
                        more: limit,
                        evidence: vec![ev(
                            flow.flood_start,
                            "first PUBLISH of the window".to_string(),
                        )],
                        summary: format!(
                            "{key} sent {limit} PUBLISH in {:.2}s (limit {} /s over {}s)",
                            ts.saturating_sub(flow.flood_start) as f64 / 1e9,
                            cfg.flood_rate_per_s,
                            cfg.flood_window_s
                        ),
                        key,
                    });
                } else if topic.bytes().first() == Some(&b'$') {
                    let key = flow.key();
                    let t: String = topic.to_string_lossy().chars().take(128).collect();
                    found = Some(Finding {
                        rule: "publish_to_dollar_topic",
                        severity: Severity::Medium,
                        first_ts_ns: ts,
                        ts_ns: ts,
                        count: 1,
                        more: 1,
                        evidence: vec![ev(ts, t.clone())],
                        summary: format!("{key} published to reserved topic {t}"),
                        key,
                    });
                } else if size >= cfg.oversized_bytes as usize {
                    let key = flow.key();
                    let t: String = topic.to_string_lossy().chars().take(128).collect();
                    found = Some(Finding {
                        rule: "oversized_payload",
                        severity: Severity::Medium,
                        first_ts_ns: ts,
                        ts_ns: ts,
                        count: 1,
                        more: 1,
                        evidence: vec![ev(ts, format!("{size} bytes to {t}"))],
                        summary: format!(
                            "{key} published {size} bytes (limit {}) to {t}",
                            cfg.oversized_bytes
                        ),
                        key,
                    });
                }
                if pb.retain && !pb.payload.is_empty() && found.is_none() {
                    found = retained_check(flow, cfg, topic.bytes(), size, ts);
                }
            }
            (Direction::C2S, Packet::Subscribe(s)) => {
                let mut req = [0u8; MAX_PENDING_FILTERS];
                let mut n = 0;
                for (_, opts) in s.filters().take(MAX_PENDING_FILTERS) {
                    req[n] = opts & 0x03;
                    n += 1;
                }
                flow.pending_sub = Some((s.packet_id, req, n, ts));
            }
            (Direction::S2C, Packet::SubAck(a)) => {
                if let Some((pid, req, n, sub_ts)) = flow.pending_sub
                    && pid == a.packet_id
                {
                    flow.pending_sub = None;
                    let down = req
                        .iter()
                        .take(n)
                        .zip(a.codes)
                        .find(|&(r, g)| *g < 0x80 && g < r);
                    if let Some((r, g)) = down {
                        let key = flow.key();
                        found = Some(Finding {
                            rule: "qos_downgrade",
                            severity: Severity::Low,
                            first_ts_ns: sub_ts,
                            ts_ns: ts,
                            count: 1,
                            more: 1,
                            evidence: vec![ev(ts, format!("requested QoS {r}, granted {g}"))],
                            summary: format!("{key} requested QoS {r} and was granted QoS {g}"),
                            key,
                        });
                    }
                }
            }
            _ => {}
        }
        if let Some(f) = found {
            self.alerts.raise(f);
        }
    }
}

fn slowite_finding(f: &FlowState, ka: u16, ts: u64, idle_ns: u64) -> Finding {
    let key = f.key();
    let summary = if ka == 0 {
        format!(
            "{key} connected without keepalive and has been silent {:.0}s",
            idle_ns as f64 / 1e9
        )
    } else {
        format!("{key} asked for a {ka}s keepalive (SlowITe: holds a slot while idle)")
    };
    Finding {
        rule: "slowite",
        severity: Severity::High,
        first_ts_ns: f.connect_ts,
        ts_ns: ts,
        count: 1,
        more: 1,
        evidence: vec![ev(f.connect_ts, format!("CONNECT keepalive {ka}s"))],
        summary,
        key,
    }
}

fn retained_check(
    flow: &mut FlowState,
    cfg: &RulesConfig,
    topic: &[u8],
    size: usize,
    ts: u64,
) -> Option<Finding> {
    if size >= cfg.retained_large_bytes as usize {
        let key = flow.key();
        return Some(Finding {
            rule: "retained_abuse",
            severity: Severity::Medium,
            first_ts_ns: ts,
            ts_ns: ts,
            count: 1,
            more: 1,
            evidence: vec![ev(ts, format!("retained payload of {size} bytes"))],
            summary: format!(
                "{key} retained a {size}-byte payload (limit {})",
                cfg.retained_large_bytes
            ),
            key,
        });
    }
    let w = secs(cfg.retained_window_s);
    if flow.retained_topics.is_empty() || ts.saturating_sub(flow.retained_start) >= w {
        flow.retained_start = ts;
        flow.retained_first_ts = ts;
        flow.retained_topics.clear();
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    let h = h.finish();
    let n = cfg.retained_topics as usize;
    // At most `n` hashes are kept: the n-th distinct topic fires, later ones are ignored
    // until the window turns.
    if flow.retained_topics.len() >= n || flow.retained_topics.contains(&h) {
        return None;
    }
    flow.retained_topics.push(h);
    if flow.retained_topics.len() == n {
        let key = flow.key();
        return Some(Finding {
            rule: "retained_abuse",
            severity: Severity::Medium,
            first_ts_ns: flow.retained_first_ts,
            ts_ns: ts,
            count: n as u64,
            more: n as u64,
            evidence: vec![ev(ts, format!("{n} distinct retained topics"))],
            summary: format!(
                "{key} retained messages on {n} distinct topics within {}s",
                cfg.retained_window_s
            ),
            key,
        });
    }
    None
}

//! Owned, serialisable views of the tracker for reports and exporters. Built on
//! demand (not per packet), so they may allocate and sort.

use serde::Serialize;

use super::Tracker;
use super::client::{Client, EndKind};
use super::fanout::FanoutCounters;
use crate::observe::types::Exchange;

/// Clients listed one by one in a snapshot (most active first); the rest are in totals.
pub const TOP_CLIENTS: usize = 50;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExchangeSnapshot {
    pub exchange: &'static str,
    /// Answered requests (latency samples).
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub unanswered: u64,
    /// Forgotten because the pending table was full.
    pub evicted: u64,
    /// Answers with no request seen.
    pub unmatched: u64,
    /// Re-sent requests (dup) that were not timed again.
    pub retransmits: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionCounters {
    pub open: usize,
    pub opened: u64,
    pub closed: u64,
    /// Pushed out of the connection table when it was full.
    pub evicted: u64,
    pub connects: u64,
    pub connects_without_client_id: u64,
    pub second_connects: u64,
    pub packets_before_connect: u64,
    pub connacks_refused: u64,
    pub auth_failures: u64,
    pub takeovers: u64,
    pub packets: u64,
    pub malformed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientSnapshot {
    pub client_id: String,
    pub username: Option<String>,
    pub last_addr: Option<String>,
    pub connected: bool,
    pub connects: u64,
    /// Disconnects by how they ended (`EndKind` names), zero counts left out.
    pub disconnects: Vec<(&'static str, u64)>,
    pub last_disconnect_code: Option<u8>,
    pub session_count: u64,
    pub session_secs_mean: Option<f64>,
    pub session_secs_max: Option<f64>,
    pub keep_alive: u16,
    pub protocol_level: u8,
    pub clean_start: bool,
    pub will_topic: Option<String>,
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
    pub subscriptions_held: u32,
    /// Last CONNACK code.
    pub auth_result: Option<u8>,
    pub takeovers: u64,
    pub connects_last_1m: f64,
    pub connects_last_5m: f64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientsSnapshot {
    pub tracked: usize,
    pub evicted: u64,
    pub connected: usize,
    pub connects: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub disconnects: Vec<(&'static str, u64)>,
    /// The `TOP_CLIENTS` most active clients (messages plus connects), ties by id.
    pub top: Vec<ClientSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableSizes {
    pub connections: usize,
    pub connections_cap: usize,
    pub clients: usize,
    pub clients_cap: usize,
    pub pending_requests: usize,
    pub pending_requests_cap: usize,
    pub fanout_pending: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackerSnapshot {
    pub ts_ns: u64,
    pub exchanges: Vec<ExchangeSnapshot>,
    pub connections: ConnectionCounters,
    pub clients: ClientsSnapshot,
    pub fanout: FanoutCounters,
    pub tables: TableSizes,
    pub mem_bytes: usize,
}

fn ends(d: &[u64; EndKind::COUNT]) -> Vec<(&'static str, u64)> {
    EndKind::ALL
        .iter()
        .zip(d)
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.name(), *n))
        .collect()
}

impl Tracker {
    /// Client statistics including its open connection's live counters.
    fn client_view(&self, id: &[u8], c: &Client, now_ns: u64) -> ClientSnapshot {
        let live = c.open_flow.and_then(|f| self.conns.get(&f));
        let add = |f: fn(&super::conn::Conn) -> u64| live.map_or(0, f);
        ClientSnapshot {
            client_id: String::from_utf8_lossy(id).into_owned(),
            username: c.username.as_deref().map(String::from),
            last_addr: c.last_addr.map(|a| a.to_string()),
            connected: live.is_some(),
            connects: c.connects,
            disconnects: ends(&c.disconnects.map(u64::from)),
            last_disconnect_code: c.last_disconnect_code,
            session_count: c.session_count,
            session_secs_mean: (c.session_count > 0)
                .then(|| c.session_ns_sum as f64 / c.session_count as f64 / 1e9),
            session_secs_max: (c.session_count > 0).then(|| c.session_ns_max as f64 / 1e9),
            keep_alive: c.keep_alive,
            protocol_level: c.level,
            clean_start: c.clean_start,
            will_topic: c.will_topic.as_deref().map(String::from),
            msgs_in: c.msgs_in + add(|k| k.msgs_in),
            bytes_in: c.bytes_in + add(|k| k.bytes_in),
            msgs_out: c.msgs_out + add(|k| k.msgs_out),
            bytes_out: c.bytes_out + add(|k| k.bytes_out),
            subscriptions_held: live.map_or(c.subs_held, |k| k.subs.count()),
            auth_result: c.auth,
            takeovers: c.takeovers,
            connects_last_1m: c.connect_times.last(now_ns, 1),
            connects_last_5m: c.connect_times.last(now_ns, 5),
            first_seen_ns: c.first_seen_ns,
            last_seen_ns: c.last_seen_ns,
        }
    }

    pub fn snapshot(&self, now_ns: u64) -> TrackerSnapshot {
        let exchanges = Exchange::ALL
            .iter()
            .map(|&e| {
                let s = self.lat.stats.get(e.index());
                let sk = if e == Exchange::Fanout {
                    &self.fan.sketch
                } else {
                    match s {
                        Some(s) => &s.sketch,
                        None => &self.fan.sketch,
                    }
                };
                let unanswered = s.map_or(0, |s| s.unanswered);
                ExchangeSnapshot {
                    exchange: e.name(),
                    count: sk.count(),
                    p50: sk.quantile(0.5),
                    p90: sk.quantile(0.9),
                    p99: sk.quantile(0.99),
                    max: sk.max(),
                    unanswered,
                    evicted: s.map_or(0, |s| s.evicted),
                    unmatched: s.map_or(0, |s| s.unmatched),
                    retransmits: s.map_or(0, |s| s.retransmits),
                }
            })
            .collect();

        let mut all: Vec<ClientSnapshot> = self
            .clients
            .iter()
            .map(|(id, c)| self.client_view(id, c, now_ns))
            .collect();
        let mut totals = [0u64; EndKind::COUNT];
        for (_, c) in self.clients.iter() {
            for (t, n) in totals.iter_mut().zip(c.disconnects) {
                *t += u64::from(n);
            }
        }
        let sum = |f: fn(&ClientSnapshot) -> u64| all.iter().map(f).sum::<u64>();
        let clients = ClientsSnapshot {
            tracked: all.len(),
            evicted: self.n.clients_evicted,
            connected: all.iter().filter(|c| c.connected).count(),
            connects: sum(|c| c.connects),
            msgs_in: sum(|c| c.msgs_in),
            msgs_out: sum(|c| c.msgs_out),
            bytes_in: sum(|c| c.bytes_in),
            bytes_out: sum(|c| c.bytes_out),
            disconnects: ends(&totals),
            top: Vec::new(),
        };
        let activity = |c: &ClientSnapshot| c.msgs_in + c.msgs_out + c.connects;
        all.sort_by(|a, b| {
            activity(b)
                .cmp(&activity(a))
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
        all.truncate(TOP_CLIENTS);
        let clients = ClientsSnapshot {
            top: all,
            ..clients
        };

        let n = &self.n;
        TrackerSnapshot {
            ts_ns: now_ns,
            exchanges,
            connections: ConnectionCounters {
                open: self.conns.len(),
                opened: n.conns_opened,
                closed: n.conns_closed,
                evicted: n.conns_evicted,
                connects: n.connects,
                connects_without_client_id: n.connects_without_id,
                second_connects: n.second_connects,
                packets_before_connect: n.packets_before_connect,
                connacks_refused: n.connacks_refused,
                auth_failures: n.auth_failures,
                takeovers: n.takeovers,
                packets: n.packets,
                malformed: n.malformed,
            },
            clients,
            fanout: self.fan.counters,
            tables: TableSizes {
                connections: self.conns.len(),
                connections_cap: self.conns.cap(),
                clients: self.clients.len(),
                clients_cap: self.clients.cap(),
                pending_requests: self.lat.pending.len(),
                pending_requests_cap: self.lat.pending.cap(),
                fanout_pending: self.fan.len(),
            },
            mem_bytes: self.mem_bytes(),
        }
    }
}

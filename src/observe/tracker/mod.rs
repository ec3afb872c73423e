//! Connection and client state, passive request/response latency, broker fan-out and
//! wire events.
//!
//! | file | job |
//! |---|---|
//! | `table` | `OrderedMap`: capped map + recency list (LRU eviction, front-first expiry) |
//! | `fifo` | `FifoMap`: capped map in insertion order (ring buffer + small index) for short-lived entries |
//! | `conn` | one MQTT connection (per flow): identity, counters, subscriptions held |
//! | `client` | per-client-id statistics across connections, reconnect rate |
//! | `latency` | pending requests and per-exchange latency statistics |
//! | `fanout` | inbound → outbound PUBLISH matching by (topic, payload) hash |
//! | `events` | building `Event`s and classifying codes and filters |
//! | `session` | CONNECT / CONNACK / DISCONNECT / close: connection and client lifecycle |
//! | `dispatch` | `on_record`: one match over the packet |
//! | `snapshot` | owned, serialisable views for reports and exporters |
//! | `activity` | allocation-free per-client and per-exchange totals for per-bucket detectors |
//!
//! Common path (QoS 0/1 PUBLISH, PUBACK): a connection lookup, a pending-table insert or
//! removal, a fan-out table insert or lookup, no allocation.

mod activity;
mod client;
mod conn;
mod dispatch;
mod events;
mod fanout;
mod fifo;
mod latency;
mod session;
mod snapshot;
mod table;

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;

use crate::capture::CloseReason;
use crate::dissect::{FlowMeta, MqttRecord};
use crate::observe::config::ObserveConfig;
use crate::observe::event::EventQueue;
use crate::observe::topics::Topics;
use crate::observe::types::{Exchange, GroupId};

pub use activity::{ClientActivity, ExchangeTotals};
pub use client::EndKind;
pub use fanout::{FanoutCounters, message_hash};
pub use snapshot::{
    ClientSnapshot, ClientsSnapshot, ConnectionCounters, ExchangeSnapshot, TableSizes,
    TrackerSnapshot,
};

use client::Client;
use conn::Conn;
use fanout::Fanout;
use latency::Latency;
use table::OrderedMap;

/// One measured latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySample {
    pub exchange: Exchange,
    pub seconds: f64,
    /// Topic group of the PUBLISH concerned (publish and fan-out exchanges).
    pub group: Option<GroupId>,
}

/// Where the tracker puts what it finds. `samples` is drained by the caller after each
/// call and reused, so it stops allocating once warm.
pub struct TrackerOutput<'q> {
    pub samples: Vec<LatencySample>,
    pub events: &'q mut EventQueue,
    /// The topic groups, to name the topic of a refused PUBLISH from its exact group.
    pub topics: Option<&'q Topics>,
}

impl<'q> TrackerOutput<'q> {
    pub fn new(events: &'q mut EventQueue) -> TrackerOutput<'q> {
        TrackerOutput {
            samples: Vec::new(),
            events,
            topics: None,
        }
    }
}

/// Closed flows remembered until the next `tick` drops their pending requests; past
/// this many, they are dropped at once.
const MAX_CLOSED_BEFORE_SWEEP: usize = 4096;

/// Fixed seed for client keys: stable across runs so replays agree.
const KEY_SEED: u64 = 0x636c_6965_6e74_6b65;

/// Plain counters about connections and the tracker's own tables.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    packets: u64,
    malformed: u64,
    conns_opened: u64,
    conns_closed: u64,
    conns_evicted: u64,
    connects: u64,
    connects_without_id: u64,
    second_connects: u64,
    packets_before_connect: u64,
    connacks_refused: u64,
    auth_failures: u64,
    takeovers: u64,
    clients_evicted: u64,
}

pub struct Tracker {
    conns: OrderedMap<u64, Conn>,
    clients: OrderedMap<Box<[u8]>, Client>,
    lat: Latency,
    fan: Fanout,
    /// Flows closed since the last sweep of the pending table.
    closed: HashSet<u64, foldhash::fast::RandomState>,
    n: Counters,
    /// (flow id, client key) of the last record: `client_key` right after `on_record`
    /// (the usual call order) needs no lookup.
    last_key: (u64, u64),
}

impl Tracker {
    pub fn new(cfg: &ObserveConfig) -> Tracker {
        Tracker {
            conns: OrderedMap::new(cfg.max_connections),
            clients: OrderedMap::new(cfg.max_clients),
            lat: Latency::new(cfg.max_pending_requests, cfg.unanswered_timeout_secs),
            fan: Fanout::new(cfg.max_fanout_pending, cfg.fanout_window_ms),
            closed: HashSet::default(),
            n: Counters::default(),
            last_key: (u64::MAX, 0),
        }
    }

    /// Feeds one decoded (or undecodable) packet.
    pub fn on_record(
        &mut self,
        rec: &MqttRecord<'_>,
        group: Option<GroupId>,
        out: &mut TrackerOutput<'_>,
    ) {
        dispatch::on_record(self, rec, group, dispatch::PublishCtx::default(), out)
    }

    /// `on_record` for a PUBLISH whose topic group the caller has routed
    /// (`Topics::group_for_publish`). `exact`: `group` is the PUBLISH's exact topic (so
    /// `out.topics` can name it). `fanout`: `Some(message_hash(topic, payload))` when
    /// the message takes part in fan-out matching (the caller hashes early and calls
    /// `prefetch_fanout`, so the table's line arrives while it does other work);
    /// `None` when it cannot (see `PublishRoute::fanout`): it is only counted.
    pub fn on_record_routed(
        &mut self,
        rec: &MqttRecord<'_>,
        group: GroupId,
        exact: bool,
        fanout: Option<u64>,
        out: &mut TrackerOutput<'_>,
    ) {
        let p = dispatch::PublishCtx {
            exact,
            fanout: match fanout {
                Some(h) => dispatch::FanoutPart::Hashed(h),
                None => dispatch::FanoutPart::Untracked,
            },
        };
        dispatch::on_record(self, rec, Some(group), p, out)
    }

    /// Starts fetching the fan-out table's index line for message hash `h`.
    #[inline]
    pub fn prefetch_fanout(&self, h: u64) {
        self.fan.prefetch(h);
    }

    /// The TCP flow of a connection ended. `why` names the close when no DISCONNECT
    /// did. Its unanswered requests are counted at the next `tick`.
    pub fn on_flow_closed(
        &mut self,
        flow: &FlowMeta,
        ts_ns: u64,
        why: CloseReason,
        _out: &mut TrackerOutput<'_>,
    ) {
        if let Some(c) = self.conns.remove(&flow.id) {
            self.finish_conn(flow.id, c, ts_ns, EndKind::from_close(why));
        }
    }

    /// Periodic housekeeping at time `now_ns`: counts and forgets requests unanswered
    /// for `unanswered_timeout_secs` or whose connection closed, and settles fan-out
    /// entries older than the window. Call it before a final `snapshot` too.
    pub fn tick(&mut self, now_ns: u64, _out: &mut TrackerOutput<'_>) {
        self.sweep_closed();
        self.lat.expire(now_ns);
        self.fan.expire(now_ns);
    }

    /// Stable key for the client of flow `flow_id`: a hash of its client id once known,
    /// else of its address (distinct publishers / subscribers per topic).
    pub fn client_key(&self, flow_id: u64) -> u64 {
        if self.last_key.0 == flow_id {
            return self.last_key.1;
        }
        match self.conns.get(&flow_id) {
            Some(c) => c.key,
            None => hash_with_tag(2, &flow_id.to_le_bytes()),
        }
    }

    /// The latency sketch of one exchange (for exporters that need more than the
    /// snapshot's quantiles, e.g. histogram buckets).
    pub fn latency_sketch(&self, e: Exchange) -> Option<&crate::observe::sketch::Sketch> {
        if e == Exchange::Fanout {
            return Some(&self.fan.sketch);
        }
        self.lat.stats.get(e.index()).map(|s| &s.sketch)
    }

    /// Approximate bytes held by the tracker's tables and sketches.
    pub fn mem_bytes(&self) -> usize {
        self.conns.mem_bytes()
            + self
                .conns
                .iter()
                .map(|(_, c)| c.heap_bytes())
                .sum::<usize>()
            + self.clients.mem_bytes()
            + self
                .clients
                .iter()
                .map(|(k, c)| k.len() + c.heap_bytes())
                .sum::<usize>()
            + self.lat.pending.mem_bytes()
            + self
                .lat
                .pending
                .iter()
                .map(|(_, p)| match &p.extra {
                    latency::Extra::Filters(b) | latency::Extra::Topic(b, _) => b.len(),
                    _ => 0,
                })
                .sum::<usize>()
            + self
                .lat
                .stats
                .iter()
                .map(|s| s.sketch.mem_bytes())
                .sum::<usize>()
            + self.fan.mem_bytes()
            + self.closed.capacity() * 9
    }

    fn sweep_closed(&mut self) {
        if !self.closed.is_empty() {
            self.lat.drop_flows(&self.closed);
            self.closed.clear();
            // A burst of closes should not pin its peak memory (once per tick at most).
            self.closed.shrink_to(256);
        }
    }

    /// Remembers that `flow` is gone so its pending requests get counted.
    fn note_closed(&mut self, flow: u64) {
        if self.lat.pending.is_empty() {
            return;
        }
        self.closed.insert(flow);
        if self.closed.len() >= MAX_CLOSED_BEFORE_SWEEP {
            self.sweep_closed();
        }
    }
}

/// Client key of a client id.
fn id_key(id: &[u8]) -> u64 {
    hash_with_tag(0, id)
}

/// Client key of a client address (no client id known).
fn addr_key(a: SocketAddr) -> u64 {
    let mut b = [0u8; 18];
    match a.ip() {
        std::net::IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        std::net::IpAddr::V6(v6) => b[..16].copy_from_slice(&v6.octets()),
    }
    b[16..].copy_from_slice(&a.port().to_be_bytes());
    hash_with_tag(1, &b)
}

/// Fixed-seed hash with a domain tag, so an id and an address never share a key.
fn hash_with_tag(tag: u8, b: &[u8]) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(KEY_SEED).build_hasher();
    h.write_u8(tag);
    h.write(b);
    h.finish()
}

//! Allocation-free read access to every tracked client and to the per-exchange totals,
//! for consumers that run once per statistics bucket (the anomaly engine). The
//! snapshot (`snapshot.rs`) builds owned views of every client and keeps only the top
//! few; a detector needs all of them, every bucket, without formatting ids.

use super::Tracker;
use super::client::EndKind;
use crate::observe::types::Exchange;

/// One client's counters as of now (closed connections plus its open one).
#[derive(Clone, Copy, Debug)]
pub struct ClientActivity<'a> {
    /// Client id as on the wire (cut to the tracker's id limit).
    pub client_id: &'a [u8],
    pub connected: bool,
    pub connects: u64,
    /// Sessions that ended any other way than a normal DISCONNECT.
    pub abnormal_ends: u64,
    pub takeovers: u64,
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
    pub subscriptions: u32,
    pub keep_alive: u16,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
}

/// Lifetime totals of one exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExchangeTotals {
    /// Answered requests (latency samples) and the sum of their latencies, seconds.
    pub count: u64,
    pub sum_s: f64,
    pub unanswered: u64,
}

impl Tracker {
    /// Visits every tracked client, most recently active last. Allocates nothing.
    pub fn for_each_client(&self, mut f: impl FnMut(&ClientActivity<'_>)) {
        for (id, c) in self.clients.iter() {
            let live = c.open_flow.and_then(|fl| self.conns.get(&fl));
            let add = |g: fn(&super::conn::Conn) -> u64| live.map_or(0, g);
            let normal = c
                .disconnects
                .get(EndKind::Normal as usize)
                .copied()
                .unwrap_or(0);
            let ends: u64 = c.disconnects.iter().map(|&n| u64::from(n)).sum();
            f(&ClientActivity {
                client_id: id,
                connected: live.is_some(),
                connects: c.connects,
                abnormal_ends: ends - u64::from(normal),
                takeovers: c.takeovers,
                msgs_in: c.msgs_in + add(|k| k.msgs_in),
                bytes_in: c.bytes_in + add(|k| k.bytes_in),
                msgs_out: c.msgs_out + add(|k| k.msgs_out),
                bytes_out: c.bytes_out + add(|k| k.bytes_out),
                subscriptions: live.map_or(c.subs_held, |k| k.subs.count()),
                keep_alive: c.keep_alive,
                first_seen_ns: c.first_seen_ns,
                last_seen_ns: c.last_seen_ns,
            });
        }
    }

    /// Totals of one exchange (fan-out included), without building a snapshot.
    pub fn exchange_totals(&self, e: Exchange) -> ExchangeTotals {
        let sk = self.latency_sketch(e);
        let unanswered = self.lat.stats.get(e.index()).map_or(0, |s| s.unanswered);
        ExchangeTotals {
            count: sk.map_or(0, |s| s.count()),
            sum_s: sk.map_or(0.0, |s| s.sum()),
            unanswered: if e == Exchange::Fanout { 0 } else { unanswered },
        }
    }
}

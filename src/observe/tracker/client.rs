//! Per-client statistics (by client id, across connections).

use serde::Serialize;

use crate::capture::CloseReason;

/// How a connection (and so a client's session) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    /// DISCONNECT from the client with no reason or reason 0x00.
    Normal,
    /// DISCONNECT (either side) with a reason code other than 0x00 (MQTT 5).
    WithReason,
    /// Another connection with the same client id took over.
    TakenOver,
    /// TCP closed without DISCONNECT: FIN, RST, idle, the flow table evicted it, its
    /// 4-tuple was reused, or the capture ended.
    TcpFin,
    TcpRst,
    Idle,
    FlowEvicted,
    Reused,
    EndOfCapture,
    /// Our connection table was full and pushed it out.
    TrackerEvicted,
}

impl EndKind {
    pub const COUNT: usize = 10;
    pub const ALL: [EndKind; EndKind::COUNT] = [
        EndKind::Normal,
        EndKind::WithReason,
        EndKind::TakenOver,
        EndKind::TcpFin,
        EndKind::TcpRst,
        EndKind::Idle,
        EndKind::FlowEvicted,
        EndKind::Reused,
        EndKind::EndOfCapture,
        EndKind::TrackerEvicted,
    ];

    pub fn from_close(why: CloseReason) -> EndKind {
        match why {
            CloseReason::Fin => EndKind::TcpFin,
            CloseReason::Rst => EndKind::TcpRst,
            CloseReason::Idle => EndKind::Idle,
            CloseReason::Evicted => EndKind::FlowEvicted,
            CloseReason::Reused => EndKind::Reused,
            CloseReason::Finish => EndKind::EndOfCapture,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EndKind::Normal => "normal",
            EndKind::WithReason => "with_reason",
            EndKind::TakenOver => "taken_over",
            EndKind::TcpFin => "tcp_fin",
            EndKind::TcpRst => "tcp_rst",
            EndKind::Idle => "idle",
            EndKind::FlowEvicted => "flow_evicted",
            EndKind::Reused => "reused",
            EndKind::EndOfCapture => "end_of_capture",
            EndKind::TrackerEvicted => "tracker_evicted",
        }
    }
}

/// Connects per minute for the last few minutes: a ring of (minute, count). The 1- and
/// 5-minute figures are sliding-window estimates (the oldest minute weighted by the part
/// of it still inside the window), the usual rate-limiter approximation: 48 bytes per
/// client instead of a timestamp per connect.
#[derive(Clone, Copy, Debug, Default)]
pub struct MinuteRing {
    /// (minute since the epoch, truncated to 32 bits; connects in it).
    slots: [(u32, u32); 6],
}

const MIN_NS: u64 = 60_000_000_000;

impl MinuteRing {
    pub fn record(&mut self, ts_ns: u64) {
        let m = ts_ns / MIN_NS;
        let s = &mut self.slots[(m % 6) as usize];
        if s.0 != m as u32 {
            *s = (m as u32, 0);
        }
        s.1 = s.1.saturating_add(1);
    }

    fn count_at(&self, m: u64) -> u32 {
        let s = self.slots[(m % 6) as usize];
        if s.0 == m as u32 { s.1 } else { 0 }
    }

    /// Estimated connects in the `minutes` minutes (1..=5) before `now_ns`.
    pub fn last(&self, now_ns: u64, minutes: u64) -> f64 {
        let minutes = minutes.clamp(1, 5);
        let m = now_ns / MIN_NS;
        let frac = (now_ns % MIN_NS) as f64 / MIN_NS as f64;
        let full: u32 = (0..minutes)
            .filter_map(|k| m.checked_sub(k))
            .map(|x| self.count_at(x))
            .sum();
        let oldest = m.checked_sub(minutes).map_or(0, |x| self.count_at(x));
        f64::from(full) + f64::from(oldest) * (1.0 - frac)
    }
}

#[derive(Debug)]
pub struct Client {
    pub connects: u64,
    pub disconnects: [u32; EndKind::COUNT],
    /// Last MQTT 5 DISCONNECT reason code other than 0.
    pub last_disconnect_code: Option<u8>,
    pub session_ns_sum: u64,
    pub session_count: u64,
    pub session_ns_max: u64,
    pub keep_alive: u16,
    pub level: u8,
    pub clean_start: bool,
    pub will_topic: Option<Box<str>>,
    pub username: Option<Box<str>>,
    pub last_addr: Option<std::net::SocketAddr>,
    /// Totals of closed connections (open ones are added in snapshots).
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
    pub subs_held: u32,
    /// Last CONNACK code.
    pub auth: Option<u8>,
    /// The most recent connection of this client, while it is open.
    pub open_flow: Option<u64>,
    pub takeovers: u64,
    pub connect_times: MinuteRing,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
}

impl Client {
    pub fn new(ts_ns: u64) -> Client {
        Client {
            connects: 0,
            disconnects: [0; EndKind::COUNT],
            last_disconnect_code: None,
            session_ns_sum: 0,
            session_count: 0,
            session_ns_max: 0,
            keep_alive: 0,
            level: 0,
            clean_start: false,
            will_topic: None,
            username: None,
            last_addr: None,
            msgs_in: 0,
            bytes_in: 0,
            msgs_out: 0,
            bytes_out: 0,
            subs_held: 0,
            auth: None,
            open_flow: None,
            takeovers: 0,
            connect_times: MinuteRing::default(),
            first_seen_ns: ts_ns,
            last_seen_ns: ts_ns,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.will_topic.as_ref().map_or(0, |b| b.len())
            + self.username.as_ref().map_or(0, |b| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_ring_sliding_estimate() {
        let mut r = MinuteRing::default();
        // 3 connects in minute 10, 2 in minute 12.
        for t in [10 * MIN_NS, 10 * MIN_NS + 1, 10 * MIN_NS + 5] {
            r.record(t);
        }
        r.record(12 * MIN_NS + 7);
        r.record(12 * MIN_NS + 9);
        // At 12.5 min: last minute = minute 12 (2) + minute 11 (0) * 0.5.
        let now = 12 * MIN_NS + MIN_NS / 2;
        assert_eq!(r.last(now, 1), 2.0);
        // Last 5 minutes: minutes 8..=12 fully = 5, plus minute 7 * 0.5 = 0.
        assert_eq!(r.last(now, 5), 5.0);
        // At 13.25 min, last minute: minute 13 (0) + minute 12 (2) * 0.75.
        assert_eq!(r.last(13 * MIN_NS + MIN_NS / 4, 1), 1.5);
        // Minute 16 reuses minute 10's slot: the old count is gone.
        r.record(16 * MIN_NS);
        assert_eq!(r.last(16 * MIN_NS, 5), 1.0 + 2.0);
    }
}

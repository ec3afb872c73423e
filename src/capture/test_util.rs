//! Helpers for the capture unit tests: a recording sink and a terse segment builder.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::event::{Interest, Side, StreamEvent};
use super::flow::{CloseReason, FlowInfo, StreamSink};
use super::link::TcpSegment;

pub const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000);
pub const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 1883);

/// Client port `n` (distinct flows to the same server).
pub fn client(n: u16) -> SocketAddr {
    SocketAddr::new(CLIENT.ip(), 50000 + n)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Data(Vec<u8>),
    Gap(u64),
}

/// Everything a sink was told, per flow id.
#[derive(Debug, Default)]
pub struct Recorder {
    pub opened: Vec<FlowInfo>,
    pub events: BTreeMap<(u64, usize), Vec<Ev>>,
    pub closed: Vec<(FlowInfo, CloseReason)>,
    /// Answer Ignore once a flow has received this many Data/Gap events.
    pub ignore_after: Option<usize>,
    /// Number of `data` calls per flow, to check nothing comes after Ignore.
    pub calls: BTreeMap<u64, usize>,
}

impl Recorder {
    /// Events of `side` of flow `id`, with adjacent Data events merged (segment
    /// boundaries are not part of the contract; order and gaps are).
    pub fn stream(&self, id: u64, side: Side) -> Vec<Ev> {
        let mut out: Vec<Ev> = Vec::new();
        for ev in self.events.get(&(id, side.index())).into_iter().flatten() {
            match (out.last_mut(), ev) {
                (Some(Ev::Data(acc)), Ev::Data(d)) => acc.extend_from_slice(d),
                _ => out.push(ev.clone()),
            }
        }
        out
    }

    pub fn raw(&self, id: u64, side: Side) -> &[Ev] {
        self.events.get(&(id, side.index())).map_or(&[], |v| v)
    }

    pub fn close_reason(&self, id: u64) -> Option<CloseReason> {
        self.closed
            .iter()
            .find(|(f, _)| f.id == id)
            .map(|(_, r)| *r)
    }
}

impl StreamSink for Recorder {
    type State = u64;
    fn open(&mut self, flow: &FlowInfo) -> u64 {
        assert!(self.opened.iter().all(|f| f.id != flow.id));
        self.opened.push(flow.clone());
        flow.id
    }
    fn data(&mut self, flow: &FlowInfo, st: &mut u64, from: Side, ev: StreamEvent<'_>) -> Interest {
        assert_eq!(*st, flow.id);
        assert!(
            self.closed.iter().all(|(f, _)| f.id != flow.id),
            "data after close"
        );
        let n = self.calls.entry(flow.id).or_default();
        *n += 1;
        if let Some(limit) = self.ignore_after {
            assert!(*n <= limit, "data after Ignore");
        }
        let n = *n;
        let e = match ev {
            StreamEvent::Data(d) => Ev::Data(d.to_vec()),
            StreamEvent::Gap { missing } => Ev::Gap(missing),
        };
        self.events
            .entry((flow.id, from.index()))
            .or_default()
            .push(e);
        match self.ignore_after {
            Some(limit) if n >= limit => Interest::Ignore,
            _ => Interest::Continue,
        }
    }
    fn close(&mut self, flow: &FlowInfo, st: u64, why: CloseReason) {
        assert_eq!(st, flow.id);
        assert!(
            self.closed.iter().all(|(f, _)| f.id != flow.id),
            "closed twice"
        );
        self.closed.push((flow.clone(), why));
    }
}

/// A segment from `src` to `dst`. Flags are a string of letters: S=SYN A=ACK F=FIN R=RST.
pub fn seg<'a>(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: &str,
    payload: &'a [u8],
) -> TcpSegment<'a> {
    TcpSegment {
        src,
        dst,
        seq,
        ack,
        syn: flags.contains('S'),
        ack_flag: flags.contains('A'),
        fin: flags.contains('F'),
        rst: flags.contains('R'),
        payload,
        truncated: false,
        missing: 0,
    }
}

/// `n` distinct bytes starting with `from` (so misplaced bytes show in assertions).
pub fn bytes(from: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| from.wrapping_add(i as u8)).collect()
}

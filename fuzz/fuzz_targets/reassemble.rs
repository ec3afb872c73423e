//! Fuzzes the capture layer: `parse_frame` on raw bytes for every link type, and a
//! `FlowTable` with tiny limits fed segments described by the input.
//!
//! Asserted besides "no panic": buffered bytes never exceed the limits, every opened flow
//! is closed exactly once, no event arrives for a closed or unknown flow, and each
//! direction's events (Data + Gap) never go backwards in the stream.
#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use mqscope::capture::{
    CloseReason, FlowInfo, FlowLimits, FlowTable, Interest, LinkType, Side, StreamEvent,
    StreamSink, TcpSegment, parse_frame,
};

#[derive(Default)]
struct Sink {
    open: HashMap<u64, ()>,
    closed: u64,
    opened: u64,
}

struct St {
    id: u64,
    events: u32,
    ignore_after: u32,
    delivered: [u64; 2],
}

impl StreamSink for Sink {
    type State = St;
    fn open(&mut self, flow: &FlowInfo) -> St {
        assert!(self.open.insert(flow.id, ()).is_none(), "flow id reused");
        self.opened += 1;
        St {
            id: flow.id,
            events: 0,
            // Every third flow loses interest after a few events, to exercise Ignore.
            ignore_after: if flow.id % 3 == 2 { 3 } else { u32::MAX },
            delivered: [0; 2],
        }
    }
    fn data(&mut self, flow: &FlowInfo, st: &mut St, from: Side, ev: StreamEvent<'_>) -> Interest {
        assert_eq!(st.id, flow.id);
        assert!(self.open.contains_key(&flow.id), "data for a closed flow");
        let n = match ev {
            StreamEvent::Data(d) => {
                assert!(!d.is_empty(), "empty Data event");
                d.len() as u64
            }
            StreamEvent::Gap { missing } => {
                assert!(missing > 0, "empty Gap event");
                missing
            }
        };
        st.delivered[from.index()] += n;
        st.events += 1;
        if st.events >= st.ignore_after {
            Interest::Ignore
        } else {
            Interest::Continue
        }
    }
    fn close(&mut self, flow: &FlowInfo, st: St, _why: CloseReason) {
        assert_eq!(st.id, flow.id);
        assert!(self.open.remove(&flow.id).is_some(), "double close");
        self.closed += 1;
    }
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + (i & 1))),
        1000 + u16::from(i >> 1),
    )
}

fuzz_target!(|data: &[u8]| {
    for link in LinkType::ALL {
        if let Ok(seg) = parse_frame(link, data) {
            assert!(seg.payload.len() <= data.len());
            assert_eq!(seg.truncated, seg.missing > 0);
        }
    }

    let limits = FlowLimits {
        max_flows: 3,
        idle_timeout_us: 1000,
        max_ooo_bytes_per_direction: 300,
        max_ooo_bytes_total: 700,
        max_ooo_segments_per_direction: 6,
    };
    let mut table: FlowTable<St> = FlowTable::new(limits.clone());
    let mut sink = Sink::default();
    // Per (endpoint-pair, direction) "expected next" sequence, so small deltas make
    // realistic in-order / overlapping / out-of-order traffic.
    let mut cursor: HashMap<(u8, u8), u32> = HashMap::new();
    let mut ts = 0u64;
    let mut payload_buf = [0u8; 256];
    for op in data.chunks_exact(5) {
        let [f, who, delta, len, ack] = [op[0], op[1], op[2], op[3], op[4]];
        // 4 endpoints, any ordered pair (src == dst too: a degenerate but legal key).
        let (s, d) = (who & 3, (who >> 2) & 3);
        let base = cursor
            .entry((s, d))
            .or_insert(u32::from(who).wrapping_mul(0x9e37_79b9));
        let seq = if f & 0x80 != 0 {
            // Rare big jump, wrapping around 2^32 now and then.
            base.wrapping_add(u32::from(delta) << 24)
        } else {
            base.wrapping_add((i32::from(delta as i8) * 7) as u32)
        };
        let plen = usize::from(len & 0x7f);
        for (i, b) in payload_buf.iter_mut().take(plen).enumerate() {
            // Position-derived bytes: retransmissions agree unless bit 6 of `len` asks for
            // a conflicting copy.
            let pos = seq.wrapping_add(i as u32);
            *b = (pos as u8) ^ if len & 0x80 != 0 { 0xff } else { 0 };
        }
        let peer_next = cursor.get(&(d, s)).copied().unwrap_or(0);
        let seg = TcpSegment {
            src: addr(s),
            dst: addr(d),
            seq,
            ack: peer_next.wrapping_add((i32::from(ack as i8) * 5) as u32),
            syn: f & 1 != 0,
            ack_flag: f & 2 != 0,
            fin: f & 4 != 0,
            rst: f & 8 == 8 && f & 0x30 == 0x30,
            payload: &payload_buf[..plen],
            truncated: f & 0x40 != 0,
            missing: if f & 0x40 != 0 {
                u32::from(len & 0x1f) + 1
            } else {
                0
            },
        };
        if f & 1 == 0 && f & 0x80 == 0 {
            *cursor.entry((s, d)).or_default() = seq.wrapping_add(plen as u32);
        }
        ts += u64::from(f & 0x30) * 20;
        table.on_segment(ts, &seg, &mut sink);

        let u = table.buffer_usage();
        assert!(u.total_bytes <= limits.max_ooo_bytes_total, "{u:?}");
        assert!(
            u.max_direction_bytes <= limits.max_ooo_bytes_per_direction,
            "{u:?}"
        );
        assert!(
            u.max_direction_segments <= limits.max_ooo_segments_per_direction,
            "{u:?}"
        );
        assert_eq!(table.stats().ooo_bytes_buffered, u.total_bytes as u64);
        assert!(table.len() <= limits.max_flows);
    }
    table.finish(&mut sink);
    assert!(sink.open.is_empty(), "flows left open after finish");
    assert_eq!(sink.opened, sink.closed);
    assert_eq!(table.stats().ooo_bytes_buffered, 0);
    assert!(table.is_empty());
});

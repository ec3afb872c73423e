//! The whole pure pipeline above the link layer: arbitrary TCP segments (both
//! directions, arbitrary sequence jumps, SYN/FIN/RST, payloads from the input) through a
//! `Dissector` with small limits, every record formatted as jsonl. Exercises flow
//! classification, resynchronisation after gaps and midstream starts, pending-packet
//! buffering and the record writer. Checks: no panic, the pending-byte bound holds.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use mqscope::capture::{FlowLimits, TcpSegment};
use mqscope::dissect::{DissectConfig, Dissector, MqttRecord};
use mqscope::replay::jsonl::format_record;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = DissectConfig {
        // ctl bit 0: broker port known or content detection only.
        ports: if ctl & 1 == 0 { vec![1883] } else { vec![] },
        max_packet_size: 4096,
        max_pending_total: 8192,
        flow_limits: FlowLimits {
            max_flows: 4,
            max_ooo_bytes_per_direction: 2048,
            max_ooo_bytes_total: 4096,
            max_ooo_segments_per_direction: 16,
            ..FlowLimits::default()
        },
        ..DissectConfig::default()
    };
    let max_pending = cfg.max_pending_total as u64;
    let mut d = Dissector::new(cfg);
    let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000 + u16::from(ctl >> 6));
    let broker = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 1883);
    let mut seq = [1000u32, 9000u32];
    let mut out = Vec::new();
    let mut frame = 0u64;
    let mut sink = |r: &MqttRecord<'_>| {
        out.clear();
        format_record(&mut out, r);
    };
    // Each segment: [flags, seq jump, len, payload...].
    while rest.len() >= 3 {
        let (flags, jump, len) = (rest[0], rest[1], usize::from(rest[2]));
        rest = &rest[3..];
        let n = len.min(rest.len());
        let (payload, tail) = rest.split_at(n);
        rest = tail;
        let dir = usize::from(flags & 1);
        // Jumps: mostly in order, sometimes back (retransmission) or ahead (loss).
        let delta = i32::from(jump as i8);
        let s = if flags & 0x10 != 0 { seq[dir].wrapping_add_signed(delta) } else { seq[dir] };
        let (src, dst) = if dir == 0 { (client, broker) } else { (broker, client) };
        let seg = TcpSegment {
            src,
            dst,
            seq: s,
            ack: seq[1 - dir],
            syn: flags & 2 != 0,
            ack_flag: flags & 0x20 == 0,
            fin: flags & 4 != 0,
            rst: flags & 8 != 0,
            payload,
            truncated: false,
            missing: 0,
        };
        seq[dir] = s.wrapping_add(n as u32).wrapping_add(u32::from(seg.syn));
        frame += 1;
        d.on_segment(frame, frame * 1_000_000, &seg, &mut sink);
        assert!(d.stats().pending_bytes <= max_pending);
    }
    d.finish(frame, frame * 1_000_000, &mut sink);
});

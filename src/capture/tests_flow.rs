//! Flow table behaviour: flow identity, creation rules, eviction, idle expiry, Ignore,
//! and that every flow is closed exactly once.

use super::event::Side;
use super::flow::{CloseReason, FlowTable};
use super::limits::FlowLimits;
use super::test_util::{CLIENT, Ev, Recorder, SERVER, client, seg};

const SEC: u64 = 1_000_000;

fn small(max_flows: usize) -> FlowTable<u64> {
    FlowTable::new(FlowLimits {
        max_flows,
        idle_timeout_us: 10 * SEC,
        ..FlowLimits::default()
    })
}

#[test]
fn both_directions_map_to_one_flow() {
    let (mut t, mut r) = (small(10), Recorder::default());
    t.on_segment(1, &seg(SERVER, CLIENT, 9, 1, "A", b"from server"), &mut r);
    t.on_segment(2, &seg(CLIENT, SERVER, 1, 20, "A", b"from client"), &mut r);
    assert_eq!(t.len(), 1);
    let info = &r.opened[0];
    // `a` is whoever sent the first segment seen, here the server.
    assert_eq!((info.a, info.b, info.syn_from), (SERVER, CLIENT, None));
    assert_eq!(
        r.stream(0, Side::A),
        vec![Ev::Data(b"from server".to_vec())]
    );
    assert_eq!(
        r.stream(0, Side::B),
        vec![Ev::Data(b"from client".to_vec())]
    );
}

#[test]
fn stray_control_segments_open_no_flow() {
    let (mut t, mut r) = (small(10), Recorder::default());
    t.on_segment(1, &seg(CLIENT, SERVER, 1, 1, "A", b""), &mut r);
    t.on_segment(2, &seg(CLIENT, SERVER, 1, 1, "AF", b""), &mut r);
    t.on_segment(3, &seg(CLIENT, SERVER, 1, 1, "R", b""), &mut r);
    t.on_segment(4, &seg(CLIENT, SERVER, 1, 1, "AR", b"rst text"), &mut r);
    assert!(r.opened.is_empty());
    assert_eq!(t.stats().segments_without_flow, 4);
    assert_eq!(t.stats().segments, 4);
    // A SYN-ACK does open one (the SYN may have been missed); it is not a client SYN.
    t.on_segment(5, &seg(SERVER, CLIENT, 1, 1, "SA", b""), &mut r);
    assert_eq!(r.opened.len(), 1);
    assert_eq!(r.opened[0].syn_from, None);
}

#[test]
fn ids_increase_and_timestamps_are_tracked() {
    let (mut t, mut r) = (small(10), Recorder::default());
    t.on_segment(100, &seg(client(1), SERVER, 1, 0, "S", b""), &mut r);
    t.on_segment(200, &seg(client(2), SERVER, 1, 0, "S", b""), &mut r);
    t.on_segment(300, &seg(SERVER, client(1), 7, 2, "SA", b""), &mut r);
    t.finish(&mut r);
    let ids: Vec<u64> = r.opened.iter().map(|f| f.id).collect();
    assert_eq!(ids, vec![0, 1]);
    let f0 = &r.closed.iter().find(|(f, _)| f.id == 0).unwrap().0;
    assert_eq!((f0.first_frame_ts, f0.last_frame_ts), (100, 300));
    assert_eq!(f0.syn_from, Some(Side::A));
}

#[test]
fn idle_flows_expire_explicitly_and_on_later_segments() {
    let (mut t, mut r) = (small(10), Recorder::default());
    t.on_segment(0, &seg(client(1), SERVER, 1, 0, "A", b"x"), &mut r);
    t.on_segment(5 * SEC, &seg(client(2), SERVER, 1, 0, "A", b"y"), &mut r);
    t.expire_idle(10 * SEC, &mut r);
    assert!(r.closed.is_empty(), "exactly the timeout is not idle yet");
    t.expire_idle(10 * SEC + 1, &mut r);
    assert_eq!(r.close_reason(0), Some(CloseReason::Idle));
    assert_eq!(t.len(), 1);
    // A segment of another flow far in the future expires flow 1 on the way.
    t.on_segment(100 * SEC, &seg(client(3), SERVER, 1, 0, "A", b"z"), &mut r);
    assert_eq!(r.close_reason(1), Some(CloseReason::Idle));
    assert_eq!(t.stats().flows_closed_idle, 2);
    assert_eq!(t.len(), 1);
}

#[test]
fn idle_expiry_declares_holes() {
    let (mut t, mut r) = (small(10), Recorder::default());
    t.on_segment(0, &seg(CLIENT, SERVER, 100, 0, "A", b"ab"), &mut r);
    t.on_segment(1, &seg(CLIENT, SERVER, 105, 0, "A", b"fg"), &mut r);
    t.expire_idle(60 * SEC, &mut r);
    assert_eq!(
        r.stream(0, Side::A),
        vec![
            Ev::Data(b"ab".to_vec()),
            Ev::Gap(3),
            Ev::Data(b"fg".to_vec())
        ]
    );
    assert_eq!(t.stats().gaps_at_close, 1);
}

#[test]
fn full_table_evicts_least_recently_active() {
    let (mut t, mut r) = (small(2), Recorder::default());
    t.on_segment(1, &seg(client(1), SERVER, 1, 0, "A", b"1"), &mut r);
    t.on_segment(2, &seg(client(2), SERVER, 1, 0, "A", b"2"), &mut r);
    // Flow 0 becomes the most recent again, so flow 1 is the victim.
    t.on_segment(3, &seg(SERVER, client(1), 1, 2, "A", b"r"), &mut r);
    t.on_segment(4, &seg(client(3), SERVER, 1, 0, "A", b"3"), &mut r);
    assert_eq!(r.close_reason(1), Some(CloseReason::Evicted));
    assert_eq!(r.close_reason(0), None);
    assert_eq!(t.len(), 2);
    assert_eq!(t.stats().flows_evicted, 1);
    // The evicted flow's 4-tuple starts over as a new flow.
    t.on_segment(5, &seg(client(2), SERVER, 2, 0, "A", b"again"), &mut r);
    assert_eq!(r.opened.last().unwrap().id, 3);
    assert_eq!(r.close_reason(0), Some(CloseReason::Evicted));
    assert_eq!(t.stats().flows_peak, 2);
}

#[test]
fn ignore_stops_delivery_but_close_still_comes_once() {
    let mut r = Recorder {
        ignore_after: Some(1),
        ..Recorder::default()
    };
    let mut t = small(10);
    t.on_segment(1, &seg(CLIENT, SERVER, 10, 0, "A", b"first"), &mut r);
    t.on_segment(2, &seg(CLIENT, SERVER, 20, 0, "A", b"buffered?"), &mut r);
    t.on_segment(3, &seg(CLIENT, SERVER, 15, 0, "A", b"fills"), &mut r);
    assert_eq!(r.raw(0, Side::A), &[Ev::Data(b"first".to_vec())]);
    assert_eq!(
        t.stats().ooo_bytes_buffered,
        0,
        "ignored flows buffer nothing"
    );
    assert_eq!(t.stats().flows_ignored, 1);
    assert_eq!(t.stats().bytes_ignored, 14);
    // FINs still close it.
    t.on_segment(4, &seg(CLIENT, SERVER, 29, 0, "AF", b""), &mut r);
    t.on_segment(5, &seg(SERVER, CLIENT, 0, 30, "AF", b""), &mut r);
    assert_eq!(r.close_reason(0), Some(CloseReason::Fin));
    t.finish(&mut r);
    assert_eq!(r.closed.len(), 1);
}

#[test]
fn ignore_during_buffered_release_drops_the_rest() {
    let mut r = Recorder {
        ignore_after: Some(2),
        ..Recorder::default()
    };
    let mut t = small(10);
    t.on_segment(1, &seg(CLIENT, SERVER, 0, 0, "S", b""), &mut r);
    for off in [4u32, 8, 12] {
        t.on_segment(2, &seg(CLIENT, SERVER, 1 + off, 0, "A", b"...."), &mut r);
    }
    assert_eq!(t.stats().ooo_bytes_buffered, 12);
    t.on_segment(3, &seg(CLIENT, SERVER, 1, 0, "A", b"head"), &mut r);
    assert_eq!(r.raw(0, Side::A).len(), 2);
    assert_eq!(t.stats().ooo_bytes_buffered, 0);
    t.finish(&mut r);
    assert_eq!(r.close_reason(0), Some(CloseReason::Finish));
}

#[test]
fn new_syn_with_other_isn_reuses_the_tuple() {
    let (mut t, mut r) = (small(10), Recorder::default());
    t.on_segment(1, &seg(CLIENT, SERVER, 100, 0, "S", b""), &mut r);
    t.on_segment(2, &seg(CLIENT, SERVER, 101, 0, "A", b"old"), &mut r);
    // Retransmitted SYN of the same connection: same flow.
    t.on_segment(3, &seg(CLIENT, SERVER, 100, 0, "S", b""), &mut r);
    assert_eq!(r.opened.len(), 1);
    t.on_segment(4, &seg(CLIENT, SERVER, 90_000, 0, "S", b""), &mut r);
    t.on_segment(5, &seg(CLIENT, SERVER, 90_001, 0, "A", b"new"), &mut r);
    assert_eq!(r.close_reason(0), Some(CloseReason::Reused));
    assert_eq!(r.stream(1, Side::A), vec![Ev::Data(b"new".to_vec())]);
    assert_eq!(r.opened[1].syn_from, Some(Side::A));
}

#[test]
fn finish_flushes_and_closes_everything_once() {
    let (mut t, mut r) = (small(10), Recorder::default());
    for n in 0..5u16 {
        t.on_segment(1, &seg(client(n), SERVER, 1_000, 0, "A", b"a"), &mut r);
        t.on_segment(1, &seg(client(n), SERVER, 1_010, 0, "A", b"k"), &mut r);
    }
    t.finish(&mut r);
    assert_eq!(r.closed.len(), 5);
    assert!(r.closed.iter().all(|(_, why)| *why == CloseReason::Finish));
    for id in 0..5 {
        assert_eq!(
            r.stream(id, Side::A),
            vec![Ev::Data(b"a".to_vec()), Ev::Gap(9), Ev::Data(b"k".to_vec())]
        );
    }
    assert!(t.is_empty());
    assert_eq!(t.stats().flows_closed_finish, 5);
    assert_eq!(t.stats().ooo_bytes_buffered, 0);
    t.finish(&mut r);
    assert_eq!(r.closed.len(), 5);
}

#[test]
fn segment_far_beyond_any_window_is_dropped() {
    let (mut t, mut r) = (small(10), Recorder::default());
    t.on_segment(1, &seg(CLIENT, SERVER, 1_000, 0, "A", b"a"), &mut r);
    t.on_segment(
        2,
        &seg(CLIENT, SERVER, 1_001 + (1 << 30) + 1, 0, "A", b"far"),
        &mut r,
    );
    t.finish(&mut r);
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(b"a".to_vec())]);
    assert_eq!(t.stats().segments_out_of_window, 1);
}

#[test]
fn ipv6_and_ipv4_flows_are_distinct() {
    use std::net::{IpAddr, Ipv6Addr, SocketAddr};
    let c6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), CLIENT.port());
    let s6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), SERVER.port());
    let (mut t, mut r) = (small(10), Recorder::default());
    t.on_segment(1, &seg(c6, s6, 1, 0, "A", b"v6"), &mut r);
    t.on_segment(1, &seg(CLIENT, SERVER, 1, 0, "A", b"v4"), &mut r);
    t.on_segment(1, &seg(s6, c6, 1, 0, "A", b"v6 back"), &mut r);
    assert_eq!(t.len(), 2);
    assert_eq!(r.stream(0, Side::B), vec![Ev::Data(b"v6 back".to_vec())]);
}

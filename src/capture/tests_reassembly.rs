//! Reassembly semantics through the flow table: ordering, retransmission, overlap,
//! gaps, wrap-around, midstream start. Expected streams are written out by hand.

use super::event::Side;
use super::flow::{CloseReason, FlowTable};
use super::limits::FlowLimits;
use super::test_util::{Ev, Recorder, SERVER, bytes, client, seg};

const C_ISN: u32 = 1_000;
const S_ISN: u32 = 5_000;

fn table() -> FlowTable<u64> {
    FlowTable::new(FlowLimits::default())
}

/// SYN, SYN-ACK, ACK between client(0) and SERVER with the ISNs above.
fn handshake(t: &mut FlowTable<u64>, r: &mut Recorder) {
    let c = client(0);
    t.on_segment(1, &seg(c, SERVER, C_ISN, 0, "S", b""), r);
    t.on_segment(2, &seg(SERVER, c, S_ISN, C_ISN + 1, "SA", b""), r);
    t.on_segment(3, &seg(c, SERVER, C_ISN + 1, S_ISN + 1, "A", b""), r);
}

/// Client data at stream offset `off` (0 = first byte after the SYN).
fn c_data(t: &mut FlowTable<u64>, r: &mut Recorder, off: u32, data: &[u8]) {
    t.on_segment(
        10,
        &seg(client(0), SERVER, C_ISN + 1 + off, S_ISN + 1, "A", data),
        r,
    );
}

/// Server ACK acknowledging client stream offset `off`.
fn s_ack(t: &mut FlowTable<u64>, r: &mut Recorder, off: u32) {
    t.on_segment(
        11,
        &seg(SERVER, client(0), S_ISN + 1, C_ISN + 1 + off, "A", b""),
        r,
    );
}

#[test]
fn in_order_delivers_each_segment_as_is() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let d = bytes(0, 30);
    c_data(&mut t, &mut r, 0, &d[..10]);
    c_data(&mut t, &mut r, 10, &d[10..30]);
    assert_eq!(
        r.raw(0, Side::A),
        &[Ev::Data(d[..10].to_vec()), Ev::Data(d[10..].to_vec())]
    );
    assert_eq!(r.opened[0].syn_from, Some(Side::A));
    let s = t.stats();
    assert_eq!(
        (s.bytes_delivered, s.out_of_order_segments, s.gaps),
        (30, 0, 0)
    );
}

#[test]
fn out_of_order_is_released_when_the_hole_fills() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let d = bytes(0, 30);
    c_data(&mut t, &mut r, 20, &d[20..30]);
    c_data(&mut t, &mut r, 10, &d[10..20]);
    assert!(
        r.raw(0, Side::A).is_empty(),
        "nothing before the hole is filled"
    );
    assert_eq!(t.stats().ooo_bytes_buffered, 20);
    c_data(&mut t, &mut r, 0, &d[..10]);
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(d.clone())]);
    let s = t.stats();
    assert_eq!(
        (s.out_of_order_segments, s.ooo_bytes_buffered, s.gaps),
        (2, 0, 0)
    );
    assert_eq!(s.ooo_bytes_peak, 20);
}

#[test]
fn duplicate_is_dropped_and_counted() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let d = bytes(0, 10);
    c_data(&mut t, &mut r, 0, &d);
    c_data(&mut t, &mut r, 0, &d);
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(d)]);
    assert_eq!(t.stats().retransmitted_segments, 1);
    assert_eq!(t.stats().retransmitted_bytes, 10);
}

#[test]
fn partial_overlap_with_delivered_data_is_trimmed() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let d = bytes(0, 15);
    c_data(&mut t, &mut r, 0, &d[..10]);
    c_data(&mut t, &mut r, 5, &d[5..15]);
    assert_eq!(r.raw(0, Side::A)[1], Ev::Data(d[10..15].to_vec()));
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(d)]);
    assert_eq!(t.stats().overlaps, 1);
}

#[test]
fn partial_overlap_between_buffered_segments_is_trimmed() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let d = bytes(0, 40);
    c_data(&mut t, &mut r, 10, &d[10..25]);
    c_data(&mut t, &mut r, 20, &d[20..40]);
    c_data(&mut t, &mut r, 0, &d[..10]);
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(d)]);
    assert_eq!(t.stats().overlaps, 1);
    assert_eq!(t.stats().overlaps_conflicting, 0);
}

#[test]
fn conflicting_overlap_first_copy_wins() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let first = b"0123456789".to_vec();
    c_data(&mut t, &mut r, 10, b"ABCDEFGHIJ");
    c_data(&mut t, &mut r, 15, b"xxxxxKLMNO"); // 15..20 conflicts, 20..25 new
    c_data(&mut t, &mut r, 0, &first);
    let mut want = first.clone();
    want.extend_from_slice(b"ABCDEFGHIJKLMNO");
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(want)]);
    assert_eq!(t.stats().overlaps_conflicting, 1);
}

#[test]
fn in_order_segment_conflicting_with_buffered_keeps_buffered_copy() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    c_data(&mut t, &mut r, 5, b"QRST");
    c_data(&mut t, &mut r, 0, b"abcdefghijkl"); // 5..9 would be "fghi"
    assert_eq!(
        r.stream(0, Side::A),
        vec![Ev::Data(b"abcdeQRSTjkl".to_vec())]
    );
    assert_eq!(t.stats().overlaps_conflicting, 1);
    // Same bytes again in the buffer: an overlap, but no conflict.
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    c_data(&mut t, &mut r, 5, b"fghi");
    c_data(&mut t, &mut r, 0, b"abcdefghijkl");
    assert_eq!(
        r.stream(0, Side::A),
        vec![Ev::Data(b"abcdefghijkl".to_vec())]
    );
    assert_eq!(t.stats().overlaps_conflicting, 0);
    assert_eq!(t.stats().overlaps, 1);
}

#[test]
fn gap_declared_when_peer_acks_past_a_hole() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let d = bytes(0, 40);
    c_data(&mut t, &mut r, 0, &d[..10]);
    c_data(&mut t, &mut r, 20, &d[20..30]); // 10..20 lost by the capture
    s_ack(&mut t, &mut r, 10); // ack of what we have: nothing happens
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(d[..10].to_vec())]);
    s_ack(&mut t, &mut r, 30); // the server got 10..20 too
    assert_eq!(
        r.stream(0, Side::A),
        vec![
            Ev::Data(d[..10].to_vec()),
            Ev::Gap(10),
            Ev::Data(d[20..30].to_vec())
        ]
    );
    // And the stream goes on in order afterwards.
    c_data(&mut t, &mut r, 30, &d[30..40]);
    assert_eq!(
        r.stream(0, Side::A).last(),
        Some(&Ev::Data(d[20..40].to_vec()))
    );
    let s = t.stats();
    assert_eq!((s.gaps, s.gap_bytes, s.gaps_by_ack), (1, 10, 1));
}

#[test]
fn peer_ack_past_a_hole_without_queued_data_waits() {
    // Nothing queued: the ACK may simply have been captured before the data it covers.
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    s_ack(&mut t, &mut r, 50);
    c_data(&mut t, &mut r, 0, b"late but fine");
    assert_eq!(
        r.stream(0, Side::A),
        vec![Ev::Data(b"late but fine".to_vec())]
    );
    assert_eq!(t.stats().gaps, 0);
}

#[test]
fn gap_forced_by_per_direction_byte_limit() {
    let limits = FlowLimits {
        max_ooo_bytes_per_direction: 20,
        ..FlowLimits::default()
    };
    let (mut t, mut r) = (FlowTable::new(limits), Recorder::default());
    handshake(&mut t, &mut r);
    let d = bytes(0, 40);
    c_data(&mut t, &mut r, 0, &d[..5]);
    c_data(&mut t, &mut r, 10, &d[10..20]);
    c_data(&mut t, &mut r, 20, &d[20..30]);
    assert_eq!(
        r.stream(0, Side::A).len(),
        1,
        "20 bytes buffered is still within the limit"
    );
    c_data(&mut t, &mut r, 30, &d[30..40]);
    assert_eq!(
        r.stream(0, Side::A),
        vec![
            Ev::Data(d[..5].to_vec()),
            Ev::Gap(5),
            Ev::Data(d[10..40].to_vec())
        ]
    );
    let s = t.stats();
    assert_eq!(
        (s.gaps_by_limit, s.gap_bytes, s.ooo_bytes_buffered),
        (1, 5, 0)
    );
}

#[test]
fn gap_forced_by_segment_count_limit_releases_only_up_to_next_hole() {
    let limits = FlowLimits {
        max_ooo_segments_per_direction: 2,
        ..FlowLimits::default()
    };
    let (mut t, mut r) = (FlowTable::new(limits), Recorder::default());
    handshake(&mut t, &mut r);
    c_data(&mut t, &mut r, 10, b"bb");
    c_data(&mut t, &mut r, 20, b"cc");
    c_data(&mut t, &mut r, 30, b"dd");
    // Three pieces > 2: give up the first hole only; two pieces remain.
    assert_eq!(
        r.stream(0, Side::A),
        vec![Ev::Gap(10), Ev::Data(b"bb".to_vec())]
    );
    assert_eq!(t.buffer_usage().max_direction_segments, 2);
    t.finish(&mut r);
    assert_eq!(
        r.stream(0, Side::A),
        vec![
            Ev::Gap(10),
            Ev::Data(b"bb".to_vec()),
            Ev::Gap(8),
            Ev::Data(b"cc".to_vec()),
            Ev::Gap(8),
            Ev::Data(b"dd".to_vec())
        ]
    );
    assert_eq!(t.stats().gaps_at_close, 2);
}

#[test]
fn gap_forced_by_total_limit_across_flows() {
    let limits = FlowLimits {
        max_ooo_bytes_total: 25,
        ..FlowLimits::default()
    };
    let (mut t, mut r) = (FlowTable::new(limits), Recorder::default());
    // Two midstream flows, each with 15 bytes waiting behind a hole.
    for n in 0..2u16 {
        t.on_segment(1, &seg(client(n), SERVER, 100, 1, "A", b"x"), &mut r);
        t.on_segment(
            1,
            &seg(client(n), SERVER, 111, 1, "A", &bytes(0, 15)),
            &mut r,
        );
    }
    // The second flow pushed the total to 30 > 25 and had to give up its own hole.
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(b"x".to_vec())]);
    assert_eq!(
        r.stream(1, Side::A),
        vec![Ev::Data(b"x".to_vec()), Ev::Gap(10), Ev::Data(bytes(0, 15))]
    );
    assert_eq!(t.stats().ooo_bytes_buffered, 15);
    assert_eq!(t.buffer_usage().total_bytes, 15);
}

#[test]
fn sequence_wraps_around_2_pow_32() {
    let (mut t, mut r) = (table(), Recorder::default());
    let c = client(0);
    let isn = u32::MAX - 5; // first data byte at 2^32 - 5
    t.on_segment(1, &seg(c, SERVER, isn, 0, "S", b""), &mut r);
    let d = bytes(0, 30);
    // 10 bytes straddling the wrap, then 10 after it arriving early.
    t.on_segment(
        2,
        &seg(c, SERVER, isn.wrapping_add(11), 0, "A", &d[10..20]),
        &mut r,
    );
    t.on_segment(
        3,
        &seg(c, SERVER, isn.wrapping_add(1), 0, "A", &d[..10]),
        &mut r,
    );
    t.on_segment(
        4,
        &seg(c, SERVER, isn.wrapping_add(21), 0, "A", &d[20..30]),
        &mut r,
    );
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(d)]);
    // A retransmission from before the wrap is still old data.
    t.on_segment(
        5,
        &seg(c, SERVER, isn.wrapping_add(1), 0, "A", &[0; 8]),
        &mut r,
    );
    assert_eq!(t.stats().retransmitted_segments, 1);
    assert_eq!(t.stats().gaps, 0);
}

#[test]
fn midstream_start_drops_earlier_data() {
    let (mut t, mut r) = (table(), Recorder::default());
    let c = client(0);
    t.on_segment(1, &seg(c, SERVER, 7_000, 1, "A", b"0123456789"), &mut r);
    // Bytes from before the first one we saw: we cannot place them in the stream.
    t.on_segment(2, &seg(c, SERVER, 6_990, 1, "A", b"earlier!!!"), &mut r);
    // Straddling the start: only the new tail counts.
    t.on_segment(
        3,
        &seg(c, SERVER, 6_995, 1, "A", b"EARLY0123456789abc"),
        &mut r,
    );
    assert_eq!(
        r.stream(0, Side::A),
        vec![Ev::Data(b"0123456789abc".to_vec())]
    );
    assert_eq!(r.opened[0].syn_from, None);
    let s = t.stats();
    assert_eq!((s.segments_before_start, s.bytes_before_start), (2, 15));
}

#[test]
fn syn_with_payload_and_fin_with_data() {
    let (mut t, mut r) = (table(), Recorder::default());
    let c = client(0);
    t.on_segment(1, &seg(c, SERVER, C_ISN, 0, "S", b"tfo"), &mut r);
    t.on_segment(2, &seg(SERVER, c, S_ISN, C_ISN + 4, "SA", b""), &mut r);
    t.on_segment(
        3,
        &seg(c, SERVER, C_ISN + 4, S_ISN + 1, "AF", b"bye"),
        &mut r,
    );
    assert_eq!(r.stream(0, Side::A), vec![Ev::Data(b"tfobye".to_vec())]);
    assert!(r.closed.is_empty(), "server has not sent its FIN yet");
    t.on_segment(
        4,
        &seg(SERVER, c, S_ISN + 1, C_ISN + 8, "AF", b"ok"),
        &mut r,
    );
    assert_eq!(r.stream(0, Side::B), vec![Ev::Data(b"ok".to_vec())]);
    assert_eq!(r.close_reason(0), Some(CloseReason::Fin));
    assert_eq!(t.len(), 0);
    // The last ACK belongs to no flow and opens none.
    t.on_segment(5, &seg(c, SERVER, C_ISN + 8, S_ISN + 4, "A", b""), &mut r);
    assert_eq!(t.len(), 0);
    assert_eq!(t.stats().segments_without_flow, 1);
    assert_eq!(t.stats().flows_closed_fin, 1);
}

#[test]
fn fin_waits_for_data_before_it_and_acked_fin_declares_the_hole() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let c = client(0);
    c_data(&mut t, &mut r, 0, b"aaaa");
    // FIN at offset 8 arrives while 4..8 is missing.
    t.on_segment(5, &seg(c, SERVER, C_ISN + 9, S_ISN + 1, "AF", b""), &mut r);
    t.on_segment(6, &seg(SERVER, c, S_ISN + 1, C_ISN + 5, "AF", b""), &mut r);
    assert!(r.closed.is_empty(), "client's FIN is not reached yet");
    // The server acknowledges the FIN (offset 8 + 1): 4..8 was received, just not by us.
    t.on_segment(7, &seg(SERVER, c, S_ISN + 2, C_ISN + 10, "A", b""), &mut r);
    assert_eq!(
        r.stream(0, Side::A),
        vec![Ev::Data(b"aaaa".to_vec()), Ev::Gap(4)]
    );
    assert_eq!(r.close_reason(0), Some(CloseReason::Fin));
}

#[test]
fn rst_closes_and_declares_holes() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    c_data(&mut t, &mut r, 0, b"ab");
    c_data(&mut t, &mut r, 5, b"fg");
    t.on_segment(
        9,
        &seg(SERVER, client(0), S_ISN + 1, 0, "R", b"diag"),
        &mut r,
    );
    assert_eq!(
        r.stream(0, Side::A),
        vec![
            Ev::Data(b"ab".to_vec()),
            Ev::Gap(3),
            Ev::Data(b"fg".to_vec())
        ]
    );
    assert!(
        r.stream(0, Side::B).is_empty(),
        "RST payload is not stream data"
    );
    assert_eq!(r.close_reason(0), Some(CloseReason::Rst));
    assert_eq!(t.stats().ooo_bytes_buffered, 0);
}

#[test]
fn snaplen_truncated_segment_is_data_then_gap() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let mut s = seg(client(0), SERVER, C_ISN + 1, S_ISN + 1, "A", b"head");
    s.truncated = true;
    s.missing = 96;
    t.on_segment(5, &s, &mut r);
    c_data(&mut t, &mut r, 100, b"next");
    assert_eq!(
        r.stream(0, Side::A),
        vec![
            Ev::Data(b"head".to_vec()),
            Ev::Gap(96),
            Ev::Data(b"next".to_vec())
        ]
    );
    assert_eq!(t.stats().gaps_truncated, 1);
    assert_eq!(t.stats().truncated_segments, 1);
}

#[test]
fn truncated_segment_out_of_order_keeps_its_gap() {
    let (mut t, mut r) = (table(), Recorder::default());
    handshake(&mut t, &mut r);
    let mut s = seg(client(0), SERVER, C_ISN + 1 + 4, S_ISN + 1, "A", b"mid");
    s.truncated = true;
    s.missing = 5;
    t.on_segment(5, &s, &mut r);
    c_data(&mut t, &mut r, 0, b"0123");
    c_data(&mut t, &mut r, 12, b"end");
    assert_eq!(
        r.stream(0, Side::A),
        vec![
            Ev::Data(b"0123mid".to_vec()),
            Ev::Gap(5),
            Ev::Data(b"end".to_vec())
        ]
    );
}

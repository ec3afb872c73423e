//! A hole the peer has already acknowledged was lost by the capture, not by the network:
//! TCP will never retransmit it. Data after it must be delivered as soon as it arrives
//! (after a Gap of exactly the hole's size), not held until some later ACK.
//! Scenario taken from suricata-verify's mqtt-events-missing-connect capture: the
//! client's 16-byte CONNECT is missing, the broker ACKs it, then the client's next
//! segment arrives.

use std::net::SocketAddr;

use mqscope::capture::{
    CloseReason, FlowInfo, FlowLimits, FlowTable, Interest, Side, StreamEvent, StreamSink,
    TcpSegment,
};

#[derive(Default)]
struct Log(Vec<String>);

impl StreamSink for Log {
    type State = ();
    fn open(&mut self, _: &FlowInfo) {}
    fn data(&mut self, _: &FlowInfo, _: &mut (), from: Side, ev: StreamEvent<'_>) -> Interest {
        self.0.push(match ev {
            StreamEvent::Data(d) => format!("{from:?} data {}", d.len()),
            StreamEvent::Gap { missing } => format!("{from:?} gap {missing}"),
        });
        Interest::Continue
    }
    fn close(&mut self, _: &FlowInfo, _: (), _: CloseReason) {}
}

fn seg<'a>(
    src: &str,
    dst: &str,
    seq: u32,
    ack: u32,
    syn: bool,
    payload: &'a [u8],
) -> TcpSegment<'a> {
    TcpSegment {
        src: src.parse::<SocketAddr>().unwrap(),
        dst: dst.parse::<SocketAddr>().unwrap(),
        seq,
        ack,
        syn,
        ack_flag: !(syn && ack == 0),
        fin: false,
        rst: false,
        payload,
        truncated: false,
        missing: 0,
    }
}

#[test]
fn data_after_an_acknowledged_hole_is_delivered_at_once() {
    let (c, s) = ("[::1]:60105", "[::1]:1883");
    let mut t = FlowTable::new(FlowLimits::default());
    let mut log = Log::default();
    t.on_segment(1, &seg(c, s, 1000, 0, true, b""), &mut log);
    t.on_segment(2, &seg(s, c, 5000, 1001, true, b""), &mut log);
    t.on_segment(3, &seg(c, s, 1001, 5001, false, b""), &mut log);
    // The client's CONNECT (seq 1001..1017) is not in the capture; the broker ACKs it.
    t.on_segment(4, &seg(s, c, 5001, 1017, false, b""), &mut log);
    assert!(log.0.is_empty());
    // The next client segment: the 16-byte hole before it is gone for good.
    t.on_segment(5, &seg(c, s, 1017, 5001, false, &[0x82; 22]), &mut log);
    assert_eq!(log.0, vec!["A gap 16".to_string(), "A data 22".to_string()]);
}

#[test]
fn an_unacknowledged_hole_still_waits_for_its_data() {
    let (c, s) = ("10.0.0.1:40000", "10.0.0.2:1883");
    let mut t = FlowTable::new(FlowLimits::default());
    let mut log = Log::default();
    t.on_segment(1, &seg(c, s, 1000, 0, true, b""), &mut log);
    t.on_segment(2, &seg(s, c, 5000, 1001, true, b""), &mut log);
    // Reordered: the second segment first. The broker has not ACKed anything yet.
    t.on_segment(3, &seg(c, s, 1011, 5001, false, &[2; 5]), &mut log);
    assert!(log.0.is_empty());
    t.on_segment(4, &seg(c, s, 1001, 5001, false, &[1; 10]), &mut log);
    assert_eq!(log.0, vec!["A data 10".to_string(), "A data 5".to_string()]);
}

//! A stream that stops decoding is a stream that lost its framing: after a run of
//! undecodable packets (or any right after a resynchronisation) the framer looks for a
//! packet boundary again instead of decoding garbage for the rest of the connection.

use std::net::SocketAddr;

use mqscope::capture::TcpSegment;
use mqscope::dissect::{DissectConfig, Dissector, MqttRecord};
use mqscope::mqtt::{Connect, MqttStr, Packet, Properties, encode};

fn seg<'a>(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    syn: bool,
    payload: &'a [u8],
) -> TcpSegment<'a> {
    TcpSegment {
        src,
        dst,
        seq,
        ack: 0,
        syn,
        ack_flag: false,
        fin: false,
        rst: false,
        payload,
        truncated: false,
        missing: 0,
    }
}

#[test]
fn a_run_of_undecodable_packets_drops_sync_and_the_next_real_packet_is_found() {
    let c: SocketAddr = "10.0.0.5:40001".parse().unwrap();
    let s: SocketAddr = "10.0.0.1:1883".parse().unwrap();
    let mut stream = Vec::new();
    let connect = Packet::Connect(Connect {
        protocol_name: MqttStr(b"MQTT"),
        protocol_level: 4,
        flags: 0,
        clean_start: true,
        keep_alive: 30,
        properties: Properties::default(),
        client_id: MqttStr(b"c1"),
        will: None,
        username: None,
        password: None,
    });
    encode::encode(&connect, 4, &mut stream);
    // Ten SUBSCRIBEs with a packet id and no topic filter: well framed by their length,
    // but each is malformed (MQTT-3.8.3-3: at least one filter), as misframed bytes are.
    for _ in 0..10 {
        stream.extend_from_slice(&[0x82, 0x02, 0x00, 0x01]);
    }
    // Then a real PINGREQ and DISCONNECT.
    stream.extend_from_slice(&[0xc0, 0x00, 0xe0, 0x00]);
    let mut d = Dissector::new(DissectConfig::default());
    let mut got: Vec<(Option<&'static str>, Option<&'static str>)> = Vec::new();
    let mut sink =
        |r: &MqttRecord<'_>| got.push((r.header.packet_type().map(|t| t.name()), r.error_kind()));
    d.on_segment(1, 1000, &seg(c, s, 99, true, b""), &mut sink);
    d.on_segment(2, 2000, &seg(c, s, 100, false, &stream), &mut sink);
    let errors = got.iter().filter(|g| g.1.is_some()).count();
    // Three undecodable packets are reported, then framing is abandoned: the other seven
    // are skipped as resynchronisation bytes, and the real packets after them are found.
    assert_eq!(errors, 3, "{got:?}");
    assert_eq!(got.first().unwrap().0, Some("CONNECT"));
    assert_eq!(
        &got[got.len() - 2..],
        &[(Some("PINGREQ"), None), (Some("DISCONNECT"), None)]
    );
    let st = d.stats();
    assert_eq!(st.resyncs_abandoned, 1);
    assert_eq!(st.resync_skipped_bytes, 7 * 4);
}

//! Session tests: level learning and guessing, topic-alias resolution and its bounds.

use super::encode::{encode, properties};
use super::*;

/// Encodes `p` at `level` and returns header + body for `Session::decode`.
fn frame(p: &Packet<'_>, level: ProtocolLevel) -> (FixedHeader, Vec<u8>) {
    let mut out = Vec::new();
    encode(p, level, &mut out);
    let h = parse_fixed_header(&out).unwrap().unwrap();
    (h, out[usize::from(h.header_len)..].to_vec())
}

fn connect(level: u8) -> Vec<u8> {
    let name: &[u8] = if level == 3 { b"MQIsdp" } else { b"MQTT" };
    let mut b = vec![0, name.len() as u8];
    b.extend_from_slice(name);
    b.extend_from_slice(&[level, 0x02, 0, 60]);
    if level == 5 {
        b.push(0);
    }
    b.extend_from_slice(&[0, 1, b'c']);
    b
}

fn hdr(first: u8, len: usize) -> FixedHeader {
    fixed_header::fixed_header_for(first, len as u32)
}

#[test]
fn learns_level_from_connect_and_a_later_connect_changes_it() {
    let mut s = Session::default();
    assert_eq!((s.level(), s.effective_level()), (None, 4));
    let b = connect(5);
    assert!(matches!(
        s.decode(Direction::C2S, &hdr(0x10, b.len()), &b),
        Ok(Packet::Connect(_))
    ));
    assert_eq!(s.level(), Some(5));
    // A v5 PUBACK with reason code now decodes at level 5.
    let a = [0, 1, 0x10];
    let Ok(Packet::PubAck(a)) = s.decode(Direction::S2C, &hdr(0x40, 3), &a) else {
        panic!()
    };
    assert_eq!(a.reason_code, Some(0x10));
    let b = connect(3);
    s.decode(Direction::C2S, &hdr(0x10, b.len()), &b).unwrap();
    assert_eq!(s.level(), Some(3));
    // A 3-byte PUBACK is now an error (3.x acks are exactly 2 bytes).
    assert_eq!(
        s.decode(Direction::S2C, &hdr(0x40, 3), &[0, 1, 0x10]),
        Err(DecodeError::TrailingBytes)
    );
}

#[test]
fn malformed_connect_still_teaches_level() {
    let mut s = Session::default();
    let mut b = connect(5);
    b.truncate(9); // name + level + flags + half the keep-alive
    assert!(s.decode(Direction::C2S, &hdr(0x10, b.len()), &b).is_err());
    assert_eq!(s.level(), Some(5));
    // A CONNECT seen from the server side does not count.
    let mut s = Session::default();
    let b = connect(5);
    let _ = s.decode(Direction::S2C, &hdr(0x10, b.len()), &b);
    assert_eq!(s.level(), None);
}

#[test]
fn midstream_guess_from_connack_and_acks() {
    // v5 CONNACK: flags, code, property length 0 => remaining length 3 => level 5.
    let mut s = Session::default();
    let Ok(Packet::ConnAck(_)) = s.decode(Direction::S2C, &hdr(0x20, 3), &[0, 0, 0]) else {
        panic!()
    };
    assert_eq!((s.level(), s.effective_level()), (None, 5));
    // Now a PUBLISH is decoded at 5: property length 0 consumed, payload "x".
    let b = [0, 1, b't', 0, b'x'];
    let Ok(Packet::Publish(p)) = s.decode(Direction::C2S, &hdr(0x30, 5), &b) else {
        panic!()
    };
    assert_eq!(p.payload, b"x");

    // 3.x CONNACK (2 bytes) => 4.
    let mut s = Session::default();
    s.decode(Direction::S2C, &hdr(0x20, 2), &[0, 0]).unwrap();
    assert_eq!(s.guessed_level(), Some(4));

    // An ack longer than 2 bytes => 5; a DISCONNECT with a reason => 5.
    let mut s = Session::default();
    s.decode(Direction::S2C, &hdr(0x40, 4), &[0, 1, 0x80, 0])
        .unwrap();
    assert_eq!(s.effective_level(), 5);
    let mut s = Session::default();
    s.decode(Direction::C2S, &hdr(0xe0, 1), &[0x04]).unwrap();
    assert_eq!(s.effective_level(), 5);
}

#[test]
fn midstream_publish_ambiguity_prefers_4() {
    // Topic "t", then bytes 00 78: as 3.1.1 the payload is "\0x"; as 5 an empty property
    // block and payload "x". Both parse; without evidence 4 wins and the guess stays unset.
    let mut s = Session::default();
    let b = [0, 1, b't', 0, b'x'];
    let Ok(Packet::Publish(p)) = s.decode(Direction::C2S, &hdr(0x30, 5), &b) else {
        panic!()
    };
    assert_eq!(p.payload, b"\0x");
    assert_eq!(s.guessed_level(), None);
}

#[test]
fn midstream_subscribe_only_valid_at_5_switches_guess() {
    // v5 SUBSCRIBE: id 1, property length 0, filter "a/b" options 1. As 3.1.1 the filter
    // length would be 0x0000 then options 0x03, then "a/" as a length: truncated.
    let b = [0, 1, 0, 0, 3, b'a', b'/', b'b', 1];
    let mut s = Session::default();
    let Ok(Packet::Subscribe(sub)) = s.decode(Direction::C2S, &hdr(0x82, b.len()), &b) else {
        panic!()
    };
    assert_eq!(sub.filters().next().unwrap().0.bytes(), b"a/b");
    assert_eq!(s.guessed_level(), Some(5));
    // Then a 3.x-only shape flips it back and is counted.
    s.decode(Direction::S2C, &hdr(0x20, 2), &[0, 0]).unwrap();
    assert_eq!(s.guessed_level(), Some(4));
    assert_eq!(s.stats().level_guess_changes, 1);
}

fn publish_with<'a>(topic: &'a [u8], props: &'a [u8]) -> Publish<'a> {
    Publish {
        dup: false,
        qos: 0,
        retain: false,
        topic: MqttStr(topic),
        packet_id: None,
        properties: Properties { raw: props },
        payload: b"",
    }
}

fn alias_props(a: u16) -> Vec<u8> {
    let mut v = Vec::new();
    properties(&[Property::TopicAlias(a)], &mut v);
    v
}

#[test]
fn topic_alias_register_lookup_per_direction() {
    let mut s = Session::default();
    let p3 = alias_props(3);
    assert_eq!(
        s.resolve_topic(Direction::C2S, &publish_with(b"a/b", &p3)),
        TopicResolution::AsIs
    );
    assert_eq!(
        s.resolve_topic(Direction::C2S, &publish_with(b"", &p3)),
        TopicResolution::FromAlias(MqttStr(b"a/b"))
    );
    // The other direction has its own alias space.
    assert_eq!(
        s.resolve_topic(Direction::S2C, &publish_with(b"", &p3)),
        TopicResolution::UnknownAlias(3)
    );
    // Re-mapping alias 3.
    s.resolve_topic(Direction::C2S, &publish_with(b"c", &p3));
    assert_eq!(
        s.resolve_topic(Direction::C2S, &publish_with(b"", &p3)),
        TopicResolution::FromAlias(MqttStr(b"c"))
    );
    // No alias: as is.
    assert_eq!(
        s.resolve_topic(Direction::C2S, &publish_with(b"", b"")),
        TopicResolution::AsIs
    );
    let st = *s.stats();
    assert_eq!(
        (
            st.aliases_registered,
            st.aliases_resolved,
            st.unknown_aliases
        ),
        (2, 2, 1)
    );
    assert_eq!(s.alias_bytes(), 1);
    // A new CONNECT starts a new alias space.
    let b = connect(5);
    s.decode(Direction::C2S, &hdr(0x10, b.len()), &b).unwrap();
    assert_eq!(
        s.resolve_topic(Direction::C2S, &publish_with(b"", &p3)),
        TopicResolution::UnknownAlias(3)
    );
}

#[test]
fn topic_alias_caps() {
    let mut s = Session::new(SessionLimits {
        max_aliases: 4,
        max_alias_bytes: 10,
        default_level: 5,
    });
    for a in [0u16, 5, 65535] {
        let p = alias_props(a);
        assert_eq!(
            s.resolve_topic(Direction::C2S, &publish_with(b"t", &p)),
            TopicResolution::AliasRejected(a)
        );
    }
    assert_eq!(s.stats().aliases_rejected, 3);
    // 4 + 4 bytes fit; a third 4-byte topic evicts the oldest (round robin).
    let (p1, p2, p3) = (alias_props(1), alias_props(2), alias_props(3));
    s.resolve_topic(Direction::C2S, &publish_with(b"aaaa", &p1));
    s.resolve_topic(Direction::S2C, &publish_with(b"bbbb", &p2));
    s.resolve_topic(Direction::C2S, &publish_with(b"cccc", &p3));
    assert_eq!(s.stats().alias_evictions, 1);
    assert!(s.alias_bytes() <= 10);
    assert_eq!(
        s.resolve_topic(Direction::C2S, &publish_with(b"", &p1)),
        TopicResolution::UnknownAlias(1)
    );
    assert_eq!(
        s.resolve_topic(Direction::C2S, &publish_with(b"", &p3)),
        TopicResolution::FromAlias(MqttStr(b"cccc"))
    );
    // A topic larger than the whole cap is rejected and clears the old mapping of that alias.
    s.resolve_topic(Direction::C2S, &publish_with(b"0123456789abc", &p3));
    assert_eq!(
        s.resolve_topic(Direction::C2S, &publish_with(b"", &p3)),
        TopicResolution::UnknownAlias(3)
    );
    assert_eq!(s.stats().aliases_rejected, 4);
}

#[test]
fn session_decode_matches_frame_helper() {
    // Sanity for the helper used above: a v5 DISCONNECT framed and decoded.
    let p = Packet::Disconnect(ReasonOnly {
        reason_code: Some(0x8e),
        properties: Properties::EMPTY,
    });
    let (h, b) = frame(&p, 5);
    assert_eq!(b, [0x8e]);
    let mut s = Session::default();
    assert_eq!(s.decode(Direction::S2C, &h, &b), Ok(p));
}

//! Decoder unit tests. Expected values come from the spec's field layouts, bytes
//! written by hand, and real packets whose tshark dissection is in
//! /work/shared/captures (`*.tshark.tsv`).

use super::encode::encode;
use super::*;

/// Test fixture bytes from hex; leaked so decoded packets can outlive the statement.
fn hex(s: &str) -> &'static [u8] {
    let s: String = s.split_whitespace().collect();
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    v.leak()
}

/// Decodes a whole packet, checks it took every byte, and that re-encoding gives the
/// same bytes back (all fixtures here use spec flags and minimal lengths).
fn dec(bytes: &[u8], level: ProtocolLevel) -> Packet<'_> {
    let (p, n) = decode_packet(bytes, level, u32::MAX).unwrap().unwrap();
    assert_eq!(n, bytes.len());
    let mut out = Vec::new();
    encode(&p, level, &mut out);
    assert_eq!(out, bytes, "re-encode of {p:?}");
    p
}

fn err(bytes: &[u8], level: ProtocolLevel) -> DecodeError {
    decode_packet(bytes, level, u32::MAX).unwrap_err()
}

// ---- captures: suricata-verify/mqtt5-pub-mosquittoprops (tshark rows 4, 6, 8, 9, 10)

const MOSQ_CONNECT: &str = "10cc0100044d51545405c6003c3c2700002b672100de110000022b22029a2600097573657270726f703100087573657276616c312600097573657270726f703200087573657276616c3200136d79766f69636569736d7970617373706f72744b03000a6d7977696c6c74797065090007313233343536370200000085019008000f726573706f6e73655f746f706963312600097573657270726f703500087573657276616c3518000000c8000977696c6c746f706963000b77696c6c6d657373616765000475736572000470617373";

#[test]
fn capture_mqtt5_connect() {
    let b: &[u8] = hex(MOSQ_CONNECT);
    let Packet::Connect(c) = dec(b, 4) else {
        panic!()
    };
    // tshark: ver 5, conflags 0xc6, kalive 60, clientid, username "user", willtopic, passwd_len 4.
    assert_eq!(c.protocol_name.bytes(), b"MQTT");
    assert_eq!(c.protocol_level, 5);
    assert_eq!(c.flags, 0xc6);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 60);
    assert_eq!(c.client_id.as_str(), Some("myvoiceismypassport"));
    assert_eq!(c.username.unwrap().as_str(), Some("user"));
    assert_eq!(c.password, Some(&b"pass"[..]));
    let w = c.will.unwrap();
    assert_eq!(w.topic.as_str(), Some("willtopic"));
    assert_eq!(w.payload, b"willmessage");
    assert_eq!((w.qos, w.retain), (0, false));
    // tshark property ids in wire order: CONNECT 0x27 0x21 0x11 0x22 0x26 0x26, will 0x03 0x09 0x02 0x01 0x08 0x26 0x18.
    assert_eq!(
        c.properties.ids().collect::<Vec<_>>(),
        [0x27, 0x21, 0x11, 0x22, 0x26, 0x26]
    );
    assert_eq!(
        w.properties.ids().collect::<Vec<_>>(),
        [0x03, 0x09, 0x02, 0x01, 0x08, 0x26, 0x18]
    );
    assert_eq!(c.properties.maximum_packet_size(), Some(0x2b67));
    assert_eq!(c.properties.receive_maximum(), Some(0xde));
    assert_eq!(c.properties.session_expiry_interval(), Some(0x022b));
    assert_eq!(c.properties.topic_alias_maximum(), Some(0x29a));
    let ups: Vec<_> = c
        .properties
        .user_properties()
        .map(|(k, v)| (k.0, v.0))
        .collect();
    assert_eq!(
        ups,
        [
            (&b"userprop1"[..], &b"userval1"[..]),
            (b"userprop2", b"userval2")
        ]
    );
    assert_eq!(w.properties.content_type().unwrap().0, b"mywilltype");
    assert_eq!(w.properties.correlation_data(), Some(&b"1234567"[..]));
    assert_eq!(w.properties.message_expiry_interval(), Some(0x85));
    assert_eq!(w.properties.payload_format_indicator(), Some(0x90));
    assert_eq!(w.properties.response_topic().unwrap().0, b"response_topic1");
    assert!(
        w.properties
            .iter()
            .any(|p| p == Property::WillDelayInterval(200))
    );
    // The password never reaches Debug output.
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("pass\""), "{dbg}");
    assert!(dbg.contains("password_len"), "{dbg}");
}

#[test]
fn capture_mqtt5_connack_publish_puback_disconnect() {
    let b: &[u8] = hex("200600000322000a");
    let Packet::ConnAck(c) = dec(b, 5) else {
        panic!()
    };
    assert_eq!((c.session_present, c.code), (false, 0));
    assert_eq!(c.properties.topic_alias_maximum(), Some(10));

    let b: &[u8] = hex(
        "325e0006746f706963580001430300066d79747970650900053132333435020000004d015808000f726573706f6e73655f746f706963312300052600097573657270726f703300087573657276616c33626161626161626c61636b7368656570",
    );
    let Packet::Publish(p) = dec(b, 5) else {
        panic!()
    };
    // tshark: topic "topicX", qos 1, msgid 1, len 94, payload 16 bytes, ids 03 09 02 01 08 23 26.
    assert_eq!(p.topic.0, b"topicX");
    assert_eq!((p.qos, p.dup, p.retain), (1, false, false));
    assert_eq!(p.packet_id, Some(1));
    assert_eq!(p.payload, b"baabaablacksheep");
    assert_eq!(
        p.properties.ids().collect::<Vec<_>>(),
        [0x03, 0x09, 0x02, 0x01, 0x08, 0x23, 0x26]
    );
    assert_eq!(p.properties.topic_alias(), Some(5));

    let Packet::PubAck(a) = dec(hex("4003000110"), 5) else {
        panic!()
    };
    assert_eq!((a.packet_id, a.reason_code), (1, Some(0x10)));
    assert!(a.properties.is_empty());

    let b: &[u8] = hex("e01d001b110000007a2600097573657270726f703400087573657276616c34");
    let Packet::Disconnect(d) = dec(b, 5) else {
        panic!()
    };
    assert_eq!(d.reason_code, Some(0));
    assert_eq!(d.properties.ids().collect::<Vec<_>>(), [0x11, 0x26]);
    assert_eq!(d.properties.session_expiry_interval(), Some(122));
}

// ---- hand-encoded, levels 3 and 4

#[test]
fn connect_311_user_pass() {
    // 00 04 "MQTT" 04 | flags C2 (user, password, clean) | keepalive 60 | "abc" | "user" | "pw"
    let b: &[u8] = hex("10 19 0004 4d515454 04 c2 003c 0003 616263 0004 75736572 0002 7077");
    let Packet::Connect(c) = dec(b, 0) else {
        panic!()
    };
    assert_eq!((c.protocol_level, c.flags, c.keep_alive), (4, 0xc2, 60));
    assert_eq!(c.client_id.0, b"abc");
    assert_eq!(c.username.unwrap().0, b"user");
    assert_eq!(c.password.unwrap(), b"pw");
    assert!(c.will.is_none() && c.properties.is_empty());
}

#[test]
fn connect_31_mqisdp_with_will() {
    // "MQIsdp" 03 | flags 2E = will retain(0x20), will qos 1 (0x08), will(0x04), clean(0x02)
    let b: &[u8] = hex("10 19 0006 4d5149736470 03 2e 000a 0001 63 0003 742f77 0003 627965");
    let Packet::Connect(c) = dec(b, 4) else {
        panic!()
    };
    assert_eq!(c.protocol_level, 3);
    assert_eq!(peek_connect_level(&b[2..]), Some(3));
    let w = c.will.unwrap();
    assert_eq!(
        (w.topic.0, w.payload, w.qos, w.retain),
        (&b"t/w"[..], &b"bye"[..], 1, true)
    );
    assert_eq!((c.username, c.password), (None, None));
}

#[test]
fn connect_bridge_bit_and_unknown_protocol() {
    // mosquitto bridge: level 0x84.
    let b: &[u8] = hex("10 0d 0004 4d515454 84 02 003c 0001 63");
    let Packet::Connect(c) = dec(b, 4) else {
        panic!()
    };
    assert_eq!(c.protocol_level, 0x84);
    assert_eq!(peek_connect_level(&b[2..]), Some(4));
    // Name/level mismatch: MQTT with level 3, MQIsdp with 4, MQTT 6.
    assert_eq!(
        err(hex("10 0d 0004 4d515454 03 02 003c 0001 63"), 4),
        DecodeError::UnknownProtocol
    );
    assert_eq!(
        err(hex("10 0f 0006 4d5149736470 04 02 003c 0001 63"), 4),
        DecodeError::UnknownProtocol
    );
    assert_eq!(
        err(hex("10 0d 0004 4d515454 06 02 003c 0001 63"), 4),
        DecodeError::UnknownProtocol
    );
    // Peek still reads a level from a CONNECT truncated after it.
    assert_eq!(peek_connect_level(hex("0004 4d515454 05 02")), Some(5));
    assert_eq!(peek_connect_level(hex("0004 4d515454")), None);
    assert_eq!(peek_connect_level(hex("0004 4d515454 07")), None);
    assert_eq!(
        err(hex("10 08 0004 4d515454 04 02"), 4),
        DecodeError::Truncated
    );
}

#[test]
fn connack_3x() {
    let Packet::ConnAck(c) = dec(hex("20 02 01 05"), 4) else {
        panic!()
    };
    assert!(c.session_present);
    assert_eq!(c.code, 5);
    assert_eq!(err(hex("20 03 00 00 00"), 4), DecodeError::TrailingBytes);
    assert_eq!(err(hex("20 01 00"), 4), DecodeError::Truncated);
}

#[test]
fn publish_qos_levels() {
    // QoS 0: 30 | topic "a/b" | payload "hi"
    let Packet::Publish(p) = dec(hex("30 07 0003 612f62 6869"), 4) else {
        panic!()
    };
    assert_eq!((p.qos, p.packet_id, p.payload), (0, None, &b"hi"[..]));
    // QoS 2, dup, retain: 3D | topic | id 0x1234 | empty payload
    let Packet::Publish(p) = dec(hex("3d 07 0003 612f62 1234"), 4) else {
        panic!()
    };
    assert_eq!(
        (p.qos, p.dup, p.retain, p.packet_id),
        (2, true, true, Some(0x1234))
    );
    assert!(p.payload.is_empty());
    // QoS 3 is decoded as if it had a packet id.
    let b: &[u8] = hex("36 07 0003 612f62 0001");
    let h = parse_fixed_header(b).unwrap().unwrap();
    let Packet::Publish(p) = decode_body(&h, &b[2..], 4).unwrap() else {
        panic!()
    };
    assert_eq!((p.qos, p.packet_id), (3, Some(1)));
    // Topic length past the end; packet id missing.
    assert_eq!(err(hex("30 03 0003 61"), 4), DecodeError::Truncated);
    assert_eq!(err(hex("32 04 0001 61 00"), 4), DecodeError::Truncated);
}

#[test]
fn acks_3x() {
    for (ty, first) in [(4u8, 0x40u8), (5, 0x50), (6, 0x62), (7, 0x70)] {
        let b = [first, 2, 0xab, 0xcd];
        let p = dec(&b, 4);
        assert_eq!(p.packet_type() as u8, ty);
        let (Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a)) = p
        else {
            panic!()
        };
        assert_eq!((a.packet_id, a.reason_code), (0xabcd, None));
        assert_eq!(err(&[first, 3, 0, 1, 0], 4), DecodeError::TrailingBytes);
        assert_eq!(err(&[first, 1, 0], 4), DecodeError::Truncated);
    }
}

#[test]
fn subscribe_unsubscribe_3x() {
    // 82 | id 10 | "a/+" qos1 | "#" qos 2
    let b: &[u8] = hex("82 0c 000a 0003 612f2b 01 0001 23 02");
    let Packet::Subscribe(s) = dec(b, 4) else {
        panic!()
    };
    assert_eq!(s.packet_id, 10);
    let f: Vec<_> = s.filters().map(|(t, o)| (t.0, o)).collect();
    assert_eq!(f, [(&b"a/+"[..], 1), (b"#", 2)]);
    assert_eq!(err(hex("82 02 000a"), 4), DecodeError::EmptyList);
    assert_eq!(
        err(hex("82 07 000a 0003 612f2b"), 4),
        DecodeError::Truncated
    ); // options byte missing
    assert_eq!(err(hex("82 05 000a 0005 61"), 4), DecodeError::Truncated);
    assert_eq!(err(hex("82 03 000a 00"), 4), DecodeError::Truncated);

    let b: &[u8] = hex("a2 0b 0007 0003 612f2b 0002 2f23");
    let Packet::Unsubscribe(u) = dec(b, 3) else {
        panic!()
    };
    assert_eq!(u.packet_id, 7);
    assert_eq!(
        u.filters().map(|t| t.0).collect::<Vec<_>>(),
        [&b"a/+"[..], b"/#"]
    );
    assert_eq!(err(hex("a2 02 0007"), 4), DecodeError::EmptyList);

    let Packet::SubAck(s) = dec(hex("90 04 000a 01 80"), 4) else {
        panic!()
    };
    assert_eq!((s.packet_id, s.codes), (10, &[1u8, 0x80][..]));
    assert_eq!(err(hex("90 02 000a"), 4), DecodeError::EmptyList);
    let Packet::UnsubAck(s) = dec(hex("b0 02 0007"), 4) else {
        panic!()
    };
    assert_eq!((s.packet_id, s.codes), (7, &[][..]));
    assert_eq!(err(hex("b0 03 0007 00"), 4), DecodeError::TrailingBytes);
}

#[test]
fn ping_and_disconnect_3x() {
    assert_eq!(dec(hex("c0 00"), 4), Packet::PingReq);
    assert_eq!(dec(hex("d0 00"), 3), Packet::PingResp);
    assert_eq!(err(hex("c0 01 00"), 4), DecodeError::TrailingBytes);
    let Packet::Disconnect(d) = dec(hex("e0 00"), 4) else {
        panic!()
    };
    assert_eq!(d.reason_code, None);
    assert_eq!(err(hex("e0 01 00"), 4), DecodeError::TrailingBytes);
}

#[test]
fn reserved_type_and_header_errors() {
    assert_eq!(err(hex("00 00"), 4), DecodeError::ReservedType);
    assert_eq!(
        err(hex("30 ff ff ff ff 01"), 4),
        DecodeError::BadRemainingLength
    );
    assert_eq!(decode_packet(hex("30 05 00"), 4, 100), Ok(None));
    assert_eq!(decode_packet(hex("30"), 4, 100), Ok(None));
    // Oversized is reported from the header alone, before the body is there.
    assert_eq!(
        decode_packet(hex("30 e9 07"), 4, 1000),
        Err(DecodeError::Oversized)
    );
    assert_eq!(decode_packet(hex("c0 00"), 4, 0).unwrap().unwrap().1, 2);
}

#[test]
fn reserved_flags_still_decode() {
    // SUBSCRIBE with flags 0 instead of 0b0010; PINGREQ with flags 0xf.
    let Packet::Subscribe(_) = decode_packet(hex("80 06 0001 0001 61 00"), 4, 99)
        .unwrap()
        .unwrap()
        .0
    else {
        panic!()
    };
    assert_eq!(
        decode_packet(hex("cf 00"), 4, 99).unwrap().unwrap().0,
        Packet::PingReq
    );
}

// ---- MQTT 5

#[test]
fn v5_short_acks() {
    // Remaining length 2: no reason code (means success), no properties.
    let Packet::PubRec(a) = dec(hex("50 02 0009"), 5) else {
        panic!()
    };
    assert_eq!((a.packet_id, a.reason_code), (9, None));
    // Reason code without property length (spec 3.4.2.2.1): properties empty.
    let Packet::PubComp(a) = dec(hex("70 03 0009 92"), 5) else {
        panic!()
    };
    assert_eq!(a.reason_code, Some(0x92));
    // Reason + reason string.
    let Packet::PubRel(a) = dec(hex("62 09 0009 92 05 1f 0002 6e6f"), 5) else {
        panic!()
    };
    assert_eq!(a.properties.reason_string().unwrap().0, b"no");
    // Reason + empty property block: decodes with empty properties (encodes shorter).
    let b: &[u8] = hex("40 04 0009 00 00");
    let (Packet::PubAck(a), 6) = decode_packet(b, 5, 99).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!((a.reason_code, a.properties.raw), (Some(0), &[][..]));
    // Not allowed / unknown / too long.
    assert_eq!(
        err(hex("40 07 0009 00 03 23 0001"), 5),
        DecodeError::PropertyNotAllowed
    );
    assert_eq!(
        err(hex("40 06 0009 00 02 7f 00"), 5),
        DecodeError::UnknownProperty
    );
    assert_eq!(
        err(hex("40 06 0009 00 05 1f 00"), 5),
        DecodeError::BadProperties
    );
}

#[test]
fn v5_disconnect_auth() {
    let Packet::Disconnect(d) = dec(hex("e0 00"), 5) else {
        panic!()
    };
    assert_eq!(d.reason_code, None);
    let Packet::Disconnect(d) = dec(hex("e0 01 8e"), 5) else {
        panic!()
    };
    assert_eq!(d.reason_code, Some(0x8e));
    // DISCONNECT may carry Server Reference.
    let Packet::Disconnect(d) = dec(hex("e0 07 9c 05 1c 0002 6869"), 5) else {
        panic!()
    };
    assert_eq!(
        d.properties.iter().next(),
        Some(Property::ServerReference(MqttStr(b"hi")))
    );
    let Packet::Auth(a) = dec(hex("f0 00"), 5) else {
        panic!()
    };
    assert_eq!(a.reason_code, None);
    // AUTH: continue authentication, method "X", data 01 02
    let Packet::Auth(a) = dec(hex("f0 0b 18 09 15 0001 58 16 0002 0102"), 5) else {
        panic!()
    };
    assert_eq!(a.reason_code, Some(0x18));
    assert_eq!(a.properties.authentication_method().unwrap().0, b"X");
    assert!(
        a.properties
            .iter()
            .any(|p| p == Property::AuthenticationData(&[1, 2]))
    );
    // AUTH is decoded with MQTT 5 rules whatever the session level says.
    assert_eq!(
        dec(hex("f0 01 18"), 4),
        Packet::Auth(ReasonOnly {
            reason_code: Some(0x18),
            properties: Properties::EMPTY
        })
    );
    assert_eq!(
        err(hex("f0 04 18 02 23 00"), 5),
        DecodeError::PropertyNotAllowed
    );
}

#[test]
fn v5_connack_all_connack_properties() {
    let mut props = Vec::new();
    let list = [
        Property::SessionExpiryInterval(0xffff_ffff),
        Property::ReceiveMaximum(20),
        Property::MaximumQoS(1),
        Property::RetainAvailable(0),
        Property::MaximumPacketSize(1 << 20),
        Property::AssignedClientIdentifier(MqttStr(b"auto-1")),
        Property::TopicAliasMaximum(16),
        Property::ReasonString(MqttStr(b"ok")),
        Property::UserProperty(MqttStr(b"k"), MqttStr(b"")),
        Property::WildcardSubscriptionAvailable(1),
        Property::SubscriptionIdentifierAvailable(0),
        Property::SharedSubscriptionAvailable(1),
        Property::ServerKeepAlive(30),
        Property::ResponseInformation(MqttStr(b"r/")),
        Property::ServerReference(MqttStr(b"srv")),
        Property::AuthenticationMethod(MqttStr(b"SCRAM")),
        Property::AuthenticationData(b"\x00\xff"),
    ];
    encode::properties(&list, &mut props);
    // Hand-check the encoding of two of them against the spec layout.
    assert_eq!(&props[..5], hex("11 ffffffff"));
    assert_eq!(&props[5..8], hex("21 0014"));
    let mut b = vec![0x20, (3 + props.len()) as u8, 0x01, 0x00, props.len() as u8];
    b.extend_from_slice(&props);
    let Packet::ConnAck(c) = dec(&b, 5) else {
        panic!()
    };
    assert!(c.session_present);
    assert_eq!(c.properties.iter().collect::<Vec<_>>(), list);
    assert_eq!(c.properties.maximum_qos(), Some(1));
    assert_eq!(c.properties.server_keep_alive(), Some(30));
    assert_eq!(
        c.properties.assigned_client_identifier().unwrap().0,
        b"auto-1"
    );
    // Bare 2-byte CONNACK at level 5 is tolerated (properties empty).
    let (Packet::ConnAck(c), 4) = decode_packet(hex("20 02 00 86"), 5, 99).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(c.code, 0x86);
}

#[test]
fn v5_publish_subscription_identifiers_and_alias() {
    // Topic empty + alias 3, two subscription ids (1, 268435455), QoS 0.
    let b: &[u8] = hex("30 0e 0000 0a 0b 01 0b ffffff7f 23 0003 7a");
    let Packet::Publish(p) = dec(b, 5) else {
        panic!()
    };
    assert!(p.topic.is_empty());
    assert_eq!(p.properties.topic_alias(), Some(3));
    assert_eq!(
        p.properties.subscription_identifiers().collect::<Vec<_>>(),
        [1, 268_435_455]
    );
    assert_eq!(p.payload, b"z");
    // Subscription identifier needing a 5th byte.
    assert_eq!(
        err(hex("30 09 0000 06 0b ffffffff 01"), 5),
        DecodeError::BadVarint
    );
    // Subscription identifier cut by the end of the block.
    assert_eq!(
        err(hex("30 05 0000 02 0b 80"), 5),
        DecodeError::BadProperties
    );
    // Property length needing a 5th byte / body ending inside it.
    assert_eq!(err(hex("30 07 0000 ffffffff01"), 5), DecodeError::BadVarint);
    assert_eq!(err(hex("30 03 0000 80"), 5), DecodeError::Truncated);
    // Property length past the end.
    assert_eq!(err(hex("30 04 0000 05 01"), 5), DecodeError::BadProperties);
    // Session Expiry is not allowed in PUBLISH.
    assert_eq!(
        err(hex("30 08 0000 05 11 00000001"), 5),
        DecodeError::PropertyNotAllowed
    );
}

#[test]
fn v5_subscribe_suback_unsubscribe_unsuback() {
    // SUBSCRIBE id 1, sub id 7, user prop, filter "t" options 0x2e (retain handling 2, RAP, NL, QoS 2)
    let b: &[u8] = hex("82 12 0001 0b 0b 07 26 0001 6b 0003 76616c 0001 74 2e");
    let Packet::Subscribe(s) = dec(b, 5) else {
        panic!()
    };
    assert_eq!(
        s.properties.subscription_identifiers().collect::<Vec<_>>(),
        [7]
    );
    assert_eq!(s.filters().collect::<Vec<_>>(), [(MqttStr(b"t"), 0x2e)]);
    // Topic Alias not allowed in SUBSCRIBE.
    assert_eq!(
        err(hex("82 0a 0001 03 23 0001 0001 74 00"), 5),
        DecodeError::PropertyNotAllowed
    );
    assert_eq!(err(hex("82 03 0001 00"), 5), DecodeError::EmptyList);

    let Packet::SubAck(s) = dec(hex("90 06 0001 00 02 80 a2"), 5) else {
        panic!()
    };
    assert_eq!(s.codes, [0x02, 0x80, 0xa2]);
    assert_eq!(err(hex("90 03 0001 00"), 5), DecodeError::EmptyList);

    let Packet::Unsubscribe(u) = dec(hex("a2 06 0002 00 0001 74"), 5) else {
        panic!()
    };
    assert_eq!(u.filters().count(), 1);
    let Packet::UnsubAck(u) = dec(hex("b0 05 0002 00 00 11"), 5) else {
        panic!()
    };
    assert_eq!(u.codes, [0x00, 0x11]);
    // Bare UNSUBACK at level 5 tolerated.
    let (Packet::UnsubAck(u), 4) = decode_packet(hex("b0 02 0002"), 5, 99).unwrap().unwrap() else {
        panic!()
    };
    assert!(u.codes.is_empty());
}

#[test]
fn v5_connect_will_properties_context() {
    // Will Delay Interval (0x18) is allowed in Will properties but not in CONNECT's.
    let bad = hex("10 13 0004 4d515454 05 02 003c 05 18 00000001 0001 63");
    assert_eq!(err(bad, 5), DecodeError::PropertyNotAllowed);
    // And Session Expiry is not allowed in the Will.
    let bad = hex("10 19 0004 4d515454 05 06 003c 00 0001 63 05 11 00000001 0001 74 0000");
    assert_eq!(err(bad, 5), DecodeError::PropertyNotAllowed);
    let ok = hex("10 19 0004 4d515454 05 06 003c 00 0001 63 05 18 00000001 0001 74 0000");
    let Packet::Connect(c) = dec(ok, 5) else {
        panic!()
    };
    assert!(
        c.will
            .unwrap()
            .properties
            .iter()
            .eq([Property::WillDelayInterval(1)])
    );
    // CONNECT-only properties.
    let ok = hex("10 12 0004 4d515454 05 00 0000 04 17 01 19 01 0001 63");
    let Packet::Connect(c) = dec(ok, 4) else {
        panic!()
    };
    assert!(c.properties.iter().eq([
        Property::RequestProblemInformation(1),
        Property::RequestResponseInformation(1)
    ]));
}

#[test]
fn every_property_id_is_checked() {
    // Each defined id decodes somewhere and is refused somewhere else; undefined ids are unknown.
    for id in 0u8..=0xff {
        assert_eq!(
            properties::is_known(id),
            matches!(id, 0x01..=0x03 | 0x08 | 0x09 | 0x0b | 0x11..=0x13 | 0x15..=0x19 | 0x1a | 0x1c | 0x1f | 0x21..=0x2a),
            "{id:#x}"
        );
    }
    // A user property is allowed everywhere.
    for t in PacketType::ALL {
        let ctx = properties::PropContext::packet(t);
        let expect = !matches!(t, PacketType::PingReq | PacketType::PingResp);
        assert_eq!(properties::allowed(0x26, ctx), expect, "{t:?}");
    }
}

#[test]
fn subscribe_filter_iteration_of_hand_built_raw() {
    // A malformed hand-built list stops iteration instead of panicking.
    let s = Subscribe {
        packet_id: 1,
        properties: Properties::EMPTY,
        filters_raw: &[0, 5, b'a'],
    };
    assert_eq!(s.filters().count(), 0);
    let mut raw = Vec::new();
    encode::subscribe_filters(&[(b"a", 1), (b"b/#", 0x14)], &mut raw);
    assert_eq!(raw, hex("0001 61 01 0003 622f23 14"));
    let mut raw = Vec::new();
    encode::unsubscribe_filters(&[b"a", b""], &mut raw);
    assert_eq!(raw, hex("0001 61 0000"));
}

#[test]
fn properties_debug_lists_entries() {
    let raw = hex("23 0005");
    let p = Properties { raw };
    assert_eq!(format!("{p:?}"), "[TopicAlias(5)]");
}

#[test]
fn all_error_kinds_reachable() {
    // Every DecodeError variant is produced by some test input above; collect them here
    // once more so adding a variant without a test fails.
    let cases: [(&str, u8, DecodeError); 11] = [
        ("30 ffffffff01", 4, DecodeError::BadRemainingLength),
        ("00 00", 4, DecodeError::ReservedType),
        ("30 7f", 4, DecodeError::Oversized),
        ("40 01 00", 4, DecodeError::Truncated),
        ("40 03 000100", 4, DecodeError::TrailingBytes),
        (
            "10 0d 0004 4d515454 09 02 003c 0001 63",
            4,
            DecodeError::UnknownProtocol,
        ),
        ("40 06 0009 00 05 1f 00", 5, DecodeError::BadProperties),
        ("40 06 0009 00 02 7f 00", 5, DecodeError::UnknownProperty),
        (
            "40 07 0009 00 03 23 0001",
            5,
            DecodeError::PropertyNotAllowed,
        ),
        ("30 07 0000 ffffffff01", 5, DecodeError::BadVarint),
        ("82 02 000a", 4, DecodeError::EmptyList),
    ];
    for (i, (b, lvl, e)) in cases.iter().enumerate() {
        assert_eq!(e, &DecodeError::ALL[i]);
        assert_eq!(decode_packet(hex(b), *lvl, 100).unwrap_err(), *e, "{b}");
    }
}

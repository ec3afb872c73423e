//! Every capture under `../shared/captures` is replayed by the real binary
//! (`mqscope replay --format jsonl`) and compared packet by packet with TShark 4.0.17's
//! decode of the same file (`<capture>.tshark.tsv`, made independently of mqscope).
//!
//! Where mqscope and TShark differ on purpose, the difference is listed in `EXPECTED`
//! below, one entry per packet and field, with the reason. Anything else is a failure.

mod common;
use common::{Row, find_captures, shared_captures, tshark_rows};

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn replay_jsonl(path: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args(["replay", "--format", "jsonl", "--no-progress"])
        .arg(path)
        .output()
        .expect("run mqscope");
    assert!(
        out.status.success(),
        "mqscope replay {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8 jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad json line {l}: {e}")))
        .collect()
}

/// A documented, per-packet difference: (capture file name suffix, frame, index of the
/// packet inside the frame, field, reason).
struct Expected {
    capture: &'static str,
    frame: u64,
    pdu: usize,
    field: &'static str,
    /// What mqscope reports instead (compared exactly, as a JSON text).
    ours: &'static str,
    why: &'static str,
}

const EXPECTED: &[Expected] = &[
    Expected {
        capture: "mqtt-connect-rules/mqtt5_pub_jpeg.pcap",
        frame: 11,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0: the reason code is omitted and means 0x00 (spec 3.14.2.1); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt-connect-rules-2/mqtt5_pub_jpeg_connack134.pcap",
        frame: 11,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0: the reason code is omitted and means 0x00 (spec 3.14.2.1); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt-pub-rules/mqtt5_pub_jpeg.pcap",
        frame: 11,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0: the reason code is omitted and means 0x00 (spec 3.14.2.1); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-excessiveproplen/input.pcap",
        frame: 9,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0: the reason code is omitted and means 0x00 (spec 3.14.2.1); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-pub-qos1/input.pcap",
        frame: 10,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0: the reason code is omitted and means 0x00 (spec 3.14.2.1); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-pub-qos2/input.pcap",
        frame: 9,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 PUBREC with remaining length 2: the reason code is omitted and means 0x00 Success (spec 3.4.2.1 ff.); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-pub-qos2/input.pcap",
        frame: 10,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 PUBREL with remaining length 2: the reason code is omitted and means 0x00 Success (spec 3.4.2.1 ff.); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-pub-qos2/input.pcap",
        frame: 11,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 PUBCOMP with remaining length 2: the reason code is omitted and means 0x00 Success (spec 3.4.2.1 ff.); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-pub-qos2/input.pcap",
        frame: 12,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0: the reason code is omitted and means 0x00 (spec 3.14.2.1); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-pub-userpass/input.pcap",
        frame: 9,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0: the reason code is omitted and means 0x00 (spec 3.14.2.1); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-pub-userpass-auto-clientid/input.pcap",
        frame: 9,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0: the reason code is omitted and means 0x00 (spec 3.14.2.1); TShark shows no code, mqscope the implied 0",
    },
    Expected {
        capture: "mqtt5-excessiveproplen/input.pcap",
        frame: 4,
        pdu: 0,
        field: "keepalive",
        ours: "",
        why: "malformed CONNECT (property length 65313 exceeds the packet): mqscope reports error bad_properties and no body fields; TShark shows the keepalive it read before the exception",
    },
    Expected {
        capture: "mqtt5-excessiveproplen/input.pcap",
        frame: 4,
        pdu: 0,
        field: "properties",
        ours: "",
        why: "same malformed CONNECT: TShark lists a property id 0x00 read from the bogus block (0x00 is not an MQTT 5 property); mqscope lists none",
    },
    Expected {
        capture: "mqtt-midstream-split/mqtt-midstream-split.pcap",
        frame: 4,
        pdu: 0,
        field: "properties",
        ours: "34|18",
        why: "capture starts midstream (no CONNECT): TShark decodes without a version and shows no properties; mqscope infers MQTT 5 because a 3.1.1 CONNACK is exactly 2 bytes (spec 3.2.1) and this one is 52, and lists its Topic Alias Maximum (0x22) and Assigned Client Identifier (0x12)",
    },
    Expected {
        capture: "mqtt-midstream-split/mqtt-midstream-split.pcap",
        frame: 10,
        pdu: 0,
        field: "payload_len",
        ours: "35758",
        why: "same midstream MQTT 5 connection: TShark, decoding as 3.1.1, counts the empty property block's length byte (0x00) as payload; in MQTT 5 it is the property length, so the payload is one byte shorter",
    },
    Expected {
        capture: "mqtt-midstream-split/mqtt-midstream-split.pcap",
        frame: 12,
        pdu: 0,
        field: "reason_codes",
        ours: "0",
        why: "MQTT 5 DISCONNECT with remaining length 0 on the midstream MQTT 5 connection: implied reason 0x00 (spec 3.14.2.1)",
    },
];

const TYPE_NAMES: [&str; 16] = [
    "",
    "CONNECT",
    "CONNACK",
    "PUBLISH",
    "PUBACK",
    "PUBREC",
    "PUBREL",
    "PUBCOMP",
    "SUBSCRIBE",
    "SUBACK",
    "UNSUBSCRIBE",
    "UNSUBACK",
    "PINGREQ",
    "PINGRESP",
    "DISCONNECT",
    "AUTH",
];

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn joined_nums(v: &Value) -> String {
    match v {
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join("|"),
        _ => String::new(),
    }
}

/// The fields compared, as (name, tshark's value, mqscope's value), both as text.
fn compare_fields(t: &Row, o: &Value) -> Vec<(&'static str, String, String)> {
    let tv = |k: &str| t.get(k).cloned().unwrap_or_default();
    let ty: usize = tv("mqtt.msgtype").parse().expect("msgtype");
    let mut f = Vec::new();
    let our_type = s(&o["type"]);
    f.push(("type", TYPE_NAMES[ty].to_string(), our_type.clone()));
    f.push((
        "remaining_length",
        tv("mqtt.len"),
        s(&o["remaining_length"]),
    ));
    // Direction: the packet's source as TShark saw it must be the side mqscope says sent it.
    let endpoint = |ip: String, port: String| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    let flow = s(&o["flow"]);
    let (client, broker) = flow
        .split_once('-')
        .map(|(c, b)| (c.to_string(), b.to_string()))
        .unwrap_or_default();
    let our_src = if s(&o["dir"]) == "c2s" {
        client
    } else {
        broker
    };
    f.push(("src", endpoint(tv("src"), tv("srcport")), our_src));
    // Version: TShark names it on CONNECT (mqtt.ver) and for later packets of a stream
    // whose CONNECT it saw (stream_ver). Without a CONNECT it says "Unknown version";
    // mqscope's midstream guess has no TShark counterpart then, and is tested on its own.
    if ty == 1 {
        f.push(("version", tv("mqtt.ver"), s(&o["version"])));
    } else if t.contains_key("stream_ver") {
        f.push(("version", tv("stream_ver"), s(&o["version"])));
    }
    match ty {
        1 => {
            f.push(("client_id", tv("mqtt.clientid"), s(&o["client_id"])));
            f.push(("username", tv("mqtt.username"), s(&o["username"])));
            f.push(("password_len", tv("mqtt.passwd_len"), s(&o["password_len"])));
            f.push(("keepalive", tv("mqtt.kalive"), s(&o["keepalive"])));
            f.push(("will_topic", tv("mqtt.willtopic"), s(&o["will_topic"])));
        }
        3 => {
            f.push(("topic", tv("mqtt.topic"), s(&o["topic"])));
            f.push(("qos", tv("mqtt.qos"), s(&o["qos"])));
            f.push(("dup", tv("mqtt.dupflag"), bool01(&o["dup"])));
            f.push(("retain", tv("mqtt.retain"), bool01(&o["retain"])));
            f.push(("payload_len", tv("payload_len"), s(&o["payload_len"])));
        }
        8 => {
            f.push(("sub_topics", tv("mqtt.topic"), joined_str(&o["sub_topics"])));
            let q = t
                .get("mqtt.sub.qos")
                .or(t.get("mqtt.subscription_options_qos"))
                .cloned()
                .unwrap_or_default();
            f.push(("sub_qos", q, joined_nums(&o["sub_qos"])));
        }
        10 => f.push(("sub_topics", tv("mqtt.topic"), joined_str(&o["sub_topics"]))),
        _ => {}
    }
    if matches!(ty, 3..=11) && !(ty == 3 && tv("mqtt.qos") == "0") {
        f.push(("packet_id", tv("mqtt.msgid"), s(&o["packet_id"])));
    }
    let codes_col = match ty {
        2 => Some(if t.contains_key("mqtt.conack.val") {
            "mqtt.conack.val"
        } else {
            "mqtt.connack.reason_code"
        }),
        4 => Some("mqtt.puback.reason_code"),
        5 => Some("mqtt.pubrec.reason_code"),
        6 => Some("mqtt.pubrel.reason_code"),
        7 => Some("mqtt.pubcomp.reason_code"),
        9 => Some(if t.contains_key("mqtt.suback.qos") {
            "mqtt.suback.qos"
        } else {
            "mqtt.suback.reason_code"
        }),
        11 => Some("mqtt.unsuback.reason_code"),
        14 => Some("mqtt.disconnect.reason_code"),
        15 => Some("mqtt.auth.reason_code"),
        _ => None,
    };
    if let Some(col) = codes_col {
        f.push(("reason_codes", tv(col), joined_nums(&o["reason_codes"])));
    }
    let props = t.get("mqtt.property_id").map(|p| {
        p.split('|')
            .map(|h| {
                u8::from_str_radix(h.trim_start_matches("0x"), 16)
                    .expect("hex property id")
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("|")
    });
    f.push((
        "properties",
        props.unwrap_or_default(),
        joined_nums(&o["properties"]),
    ));
    f
}

fn bool01(v: &Value) -> String {
    match v {
        Value::Bool(true) => "1".into(),
        Value::Bool(false) => "0".into(),
        _ => String::new(),
    }
}

fn joined_str(v: &Value) -> String {
    match v {
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join("|"),
        _ => String::new(),
    }
}

#[test]
fn every_shared_capture_agrees_with_tshark() {
    let captures = find_captures(&shared_captures());
    assert!(
        captures.len() >= 40,
        "expected the shared captures, found {} under {}",
        captures.len(),
        shared_captures().display()
    );
    let mut failures = Vec::new();
    let mut used_expectations = vec![false; EXPECTED.len()];
    let mut summary = Vec::new();
    for cap in &captures {
        let rows = tshark_rows(cap);
        let ours = replay_jsonl(cap);
        let name = cap
            .strip_prefix(shared_captures())
            .unwrap_or(cap)
            .display()
            .to_string();
        let mut agree = 0;
        if rows.len() != ours.len() {
            failures.push(format!(
                "{name}: tshark has {} packets, mqscope {}",
                rows.len(),
                ours.len()
            ));
        }
        for (i, (t, o)) in rows.iter().zip(&ours).enumerate() {
            let frame: u64 = t["frame.number"].parse().expect("frame");
            let pdu: usize = t["pdu_index"].parse().expect("pdu_index");
            if o["frame"].as_u64() != Some(frame) {
                failures.push(format!(
                    "{name} packet #{i}: tshark frame {frame}, mqscope frame {}",
                    o["frame"]
                ));
                continue;
            }
            let mut ok = true;
            for (field, theirs, mine) in compare_fields(t, o) {
                if theirs == mine {
                    continue;
                }
                let exp = EXPECTED.iter().position(|e| {
                    name.ends_with(e.capture)
                        && e.frame == frame
                        && e.pdu == pdu
                        && e.field == field
                });
                match exp {
                    Some(k) if EXPECTED[k].ours == mine => used_expectations[k] = true,
                    _ => {
                        ok = false;
                        failures.push(format!("{name} frame {frame}.{pdu} {field}: tshark {theirs:?}, mqscope {mine:?}"));
                    }
                }
            }
            if ok {
                agree += 1;
            }
        }
        summary.push(format!("{name}: {agree}/{} packets agree", rows.len()));
    }
    for (k, used) in used_expectations.iter().enumerate() {
        if !used {
            let e = &EXPECTED[k];
            failures.push(format!(
                "expected difference no longer happens: {} frame {} {} ({})",
                e.capture, e.frame, e.field, e.why
            ));
        }
    }
    eprintln!("{}", summary.join("\n"));
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

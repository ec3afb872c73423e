//! The `replay` command as a user meets it: exit codes, bad input, the jsonl key set.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn mqscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args(args)
        .output()
        .expect("run mqscope")
}

fn demo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/captures")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mqscope-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const KEYS: [&str; 25] = [
    "frame",
    "ts",
    "flow",
    "dir",
    "type",
    "version",
    "topic",
    "topic_alias",
    "qos",
    "dup",
    "retain",
    "packet_id",
    "remaining_length",
    "payload_len",
    "client_id",
    "username",
    "password_len",
    "keepalive",
    "clean_start",
    "will_topic",
    "reason_codes",
    "sub_topics",
    "sub_qos",
    "properties",
    "error",
];

#[test]
fn jsonl_has_exactly_the_documented_keys_and_matches_the_summary() {
    let summary = tmp("summary.json");
    let cap = demo("arkime-mqtt311-session.pcap");
    let out = mqscope(&[
        "replay",
        "--format",
        "jsonl",
        "--summary-json",
        summary.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 23 MQTT packets per the capture's README and its TShark decode.
    assert_eq!(lines.len(), 23);
    for rec in &lines {
        let obj = rec.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
        keys.sort();
        let mut want = KEYS.to_vec();
        want.sort();
        assert_eq!(keys, want);
    }
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["mqtt_packets"], 23);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("MQTT packets:  23"),
        "summary on stderr: {text}"
    );
    // Passwords never appear, only their length (the capture's CONNECT has none; the
    // MQTT 5 demo capture has one: "pass" per its TShark decode, passwd_len 4).
    let cap5 = demo("suricata-mqtt5-properties.pcap");
    let out = mqscope(&["replay", "--format", "jsonl", cap5.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    let connect: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(connect["type"], "CONNECT");
    assert_eq!(connect["password_len"], 4);
}

#[test]
fn a_file_that_is_not_a_capture_is_a_clear_error_not_a_crash() {
    let bad = tmp("garbage.pcap");
    std::fs::write(&bad, b"this is not a capture file at all, just text\n").unwrap();
    let good = demo("arkime-mqtt311-session.pcap");
    let out = mqscope(&["replay", bad.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("garbage.pcap"), "names the file: {err}");
    // The good file after it is still replayed.
    assert!(err.contains("MQTT packets:  23"), "{err}");
}

#[test]
fn a_missing_file_exits_66() {
    let out = mqscope(&["replay", "/nonexistent/definitely-not-here.pcap"]);
    assert_eq!(out.status.code(), Some(66));
}

#[test]
fn a_truncated_capture_reports_what_was_read_and_exits_65() {
    let full = std::fs::read(demo("arkime-mqtt311-session.pcap")).unwrap();
    let cut = tmp("truncated.pcap");
    // Cut in the middle of the last record: libpcap reads every earlier frame, then fails.
    std::fs::write(&cut, &full[..full.len() - 20]).unwrap();
    let out = mqscope(&["replay", "--format", "jsonl", cut.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = String::from_utf8(out.stdout).unwrap().lines().count();
    assert!(
        n > 0 && n <= 23,
        "packets before the damage are reported: {n}"
    );
}

#[test]
fn usage_errors_exit_64() {
    assert_eq!(
        mqscope(&["replay", "--ports", "0", "x.pcap"]).status.code(),
        Some(64)
    );
    assert_eq!(
        mqscope(&["replay", "--ports", "1883", "--tls-ports", "1883", "x.pcap"])
            .status
            .code(),
        Some(64)
    );
    assert_eq!(
        mqscope(&["replay", "--no-such-flag", "x.pcap"])
            .status
            .code(),
        Some(64)
    );
    assert_eq!(mqscope(&["replay"]).status.code(), Some(64));
    assert_eq!(mqscope(&["frobnicate"]).status.code(), Some(64));
    assert_eq!(mqscope(&["--help"]).status.code(), Some(0));
}

/// `--report-json -` prints the report on standard output (the issue's "prints JSON"),
/// the same report as written to a file; with `--format jsonl`, which owns standard
/// output, it is a usage error.
#[test]
fn report_json_dash_prints_the_report() {
    let cap = demo("arkime-mqtt311-session.pcap");
    let file = tmp("dash-report.json");
    let out = mqscope(&[
        "replay",
        "--format",
        "none",
        "--report-json",
        "-",
        cap.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let out = mqscope(&[
        "replay",
        "--format",
        "none",
        "--report-json",
        file.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(printed["topics"], written["topics"]);
    assert_eq!(printed["latency"], written["latency"]);
    assert!(printed["topics"].as_array().is_some_and(|t| !t.is_empty()));
    let out = mqscope(&[
        "replay",
        "--format",
        "jsonl",
        "--report-json",
        "-",
        cap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
}

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/captures")
        .join(rel)
}

fn summary_of(args: &[&str]) -> Value {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = tmp(&format!("summary-{n}.json"));
    let mut all = vec!["replay", "--summary-json", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = mqscope(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn flows_on_other_ports_are_found_by_their_connect() {
    // The arkime session runs on port 1883. Declared broker port 1884: the flow is
    // still MQTT because the client opens with a CONNECT; all 23 packets (TShark) decode.
    let cap = demo("arkime-mqtt311-session.pcap");
    let s = summary_of(&["--ports", "1884", cap.to_str().unwrap()]);
    assert_eq!(s["flows"]["mqtt"], 1);
    assert_eq!(s["flows"]["mqtt_by_content"], 1);
    assert_eq!(s["mqtt_packets"], 23);
    // Without content detection the flow is not MQTT.
    let s = summary_of(&["--ports", "1884", "--no-detect", cap.to_str().unwrap()]);
    assert_eq!(s["flows"]["mqtt"], 0);
    assert_eq!(s["mqtt_packets"], 0);
}

#[test]
fn plaintext_mqtt_on_a_tls_port_is_decoded_and_flagged() {
    // The arkime session is plain MQTT on port 1883. Declared as a TLS port, the flow is
    // not TLS (its client opens with a CONNECT, not a ClientHello): it is decoded, counted
    // as plaintext on a TLS port, and the security rule names the client.
    let cap = demo("arkime-mqtt311-session.pcap");
    let report = tmp("tls-report.json");
    let s = summary_of(&[
        "--ports",
        "1884",
        "--tls-ports",
        "1883",
        "--report-json",
        report.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!(s["flows"]["tls"], 0);
    assert_eq!(s["flows"]["mqtt"], 1);
    assert_eq!(s["flows"]["plaintext_on_tls_port"], 1);
    assert_eq!(s["mqtt_packets"], 23);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let hits = r["rules"]["hits"].as_array().unwrap();
    let hit = hits
        .iter()
        .find(|h| h["rule"] == "plain_mqtt_on_tls_port")
        .expect("rule hit");
    assert_eq!(hit["severity"], "high");
    // And it is a firing alert in the metrics.
    let prom = tmp("tls.prom");
    let out = mqscope(&[
        "replay",
        "--ports",
        "1884",
        "--tls-ports",
        "1883",
        "--metrics-out",
        prom.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&prom).unwrap();
    let want = r#"mqscope_alerts_firing{rule="plain_mqtt_on_tls_port",severity="high"} 1"#;
    assert!(text.lines().any(|l| l == want), "{text}");
    // The same capture with 1883 as a plain MQTT port raises no such finding.
    let report2 = tmp("plain-report.json");
    summary_of(&[
        "--report-json",
        report2.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    let r2: Value = serde_json::from_str(&std::fs::read_to_string(&report2).unwrap()).unwrap();
    assert!(
        r2["rules"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["rule"] != "plain_mqtt_on_tls_port")
    );
}

#[test]
fn a_tls_flow_on_a_tls_port_is_counted_not_decoded() {
    // A flow whose client opens with a TLS ClientHello (handshake record 0x16 0x03 0x01).
    use mqscope::capture::TcpSegment;
    use mqscope::dissect::{DissectConfig, Dissector, MqttRecord};
    let c: std::net::SocketAddr = "10.0.0.9:50000".parse().unwrap();
    let b: std::net::SocketAddr = "10.0.0.1:8883".parse().unwrap();
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03];
    let seg = |src, dst, seq, syn, p: &'static [u8]| TcpSegment {
        src,
        dst,
        seq,
        ack: 0,
        syn,
        ack_flag: false,
        fin: false,
        rst: false,
        payload: p,
        truncated: false,
        missing: 0,
    };
    let hello: &'static [u8] = Box::leak(Box::new(hello));
    let mut d = Dissector::new(DissectConfig::default());
    let mut n = 0;
    let mut sink = |_: &MqttRecord<'_>| n += 1;
    d.on_segment(1, 1, &seg(c, b, 10, true, b""), &mut sink);
    d.on_segment(2, 2, &seg(c, b, 11, false, hello), &mut sink);
    assert_eq!(n, 0);
    assert_eq!(d.stats().flows_tls, 1);
    assert_eq!(d.stats().flows_plaintext_on_tls_port, 0);
}

#[test]
fn oversized_packets_are_skipped_by_length_and_the_stream_stays_in_sync() {
    // mqtt-limit-2 (TShark TSV): 12 packets, two PUBLISHes of remaining length 100007 and
    // 100005, then a 1007-byte PUBLISH, PUBACKs, a 107-byte PUBLISH and DISCONNECT.
    let cap = shared("suricata-verify/mqtt-limit-2/input.pcap");
    let out = mqscope(&[
        "replay",
        "--format",
        "jsonl",
        "--max-packet-size",
        "50000",
        cap.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let recs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 12);
    let oversized: Vec<(u64, u64)> = recs
        .iter()
        .filter(|r| r["error"] == "oversized")
        .map(|r| {
            (
                r["frame"].as_u64().unwrap(),
                r["remaining_length"].as_u64().unwrap(),
            )
        })
        .collect();
    // Reported on the frame whose header announced them (the body is skipped, not awaited).
    assert_eq!(oversized.len(), 2);
    assert_eq!(
        oversized.iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![100007, 100005]
    );
    // Everything after them still decodes: the 1000- and 100-byte payloads, the acks, DISCONNECT.
    let later: Vec<(String, Value)> = recs[recs.len() - 5..]
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_string(),
                r["payload_len"].clone(),
            )
        })
        .collect();
    assert_eq!(
        later,
        vec![
            ("PUBLISH".to_string(), Value::from(1000)),
            ("PUBACK".to_string(), Value::Null),
            ("PUBLISH".to_string(), Value::from(100)),
            ("PUBACK".to_string(), Value::Null),
            ("DISCONNECT".to_string(), Value::Null),
        ]
    );
    assert!(
        recs.iter()
            .all(|r| r["error"].is_null() || r["error"] == "oversized")
    );
}

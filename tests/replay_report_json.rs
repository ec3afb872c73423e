//! `mqscope replay --report-json`: the documented top-level keys (`topics`, `latency`,
//! `clients`, `events`) in their documented shape, checked against TShark's decode of every
//! shared capture: messages per topic and direction, CONNECT counts per client id, and the
//! refused CONNACKs with their codes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{find_captures, shared_captures, tshark_rows};
use serde_json::Value;

fn report(cap: &Path, out: &Path) -> Value {
    let st = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args([
            "replay",
            "--no-progress",
            "--format",
            "none",
            "--report-json",
        ])
        .arg(out)
        .arg(cap)
        .output()
        .unwrap();
    // 65: a capture truncated part way (reported, still written).
    assert!(
        matches!(st.status.code(), Some(0 | 65)),
        "{}: {}",
        cap.display(),
        String::from_utf8_lossy(&st.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

#[test]
fn report_keys_agree_with_tshark_on_every_capture() {
    let dir = std::env::temp_dir().join(format!("mqscope-report-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let caps = find_captures(&shared_captures());
    assert!(caps.len() >= 40);
    let (mut topics_checked, mut refused_checked, mut clients_checked) = (0, 0, 0);
    for (i, cap) in caps.iter().enumerate() {
        let r = report(cap, &dir.join(format!("r{i}.json")));
        let rows = tshark_rows(cap);

        // latency: one object per exchange the issue names, each with its six fields.
        for ex in [
            "connect",
            "publish_qos1",
            "publish_qos2",
            "subscribe",
            "unsubscribe",
            "ping",
            "fanout",
        ] {
            let l = &r["latency"][ex];
            for k in [
                "count",
                "p50_ms",
                "p90_ms",
                "p99_ms",
                "max_ms",
                "unanswered",
            ] {
                assert!(l.get(k).is_some(), "{}: latency.{ex}.{k}", cap.display());
            }
        }
        // PINGREQ→PINGRESP pairs in the TSV: at least as many pings measured as answered
        // requests (TShark does not pair them; a PINGRESP follows its PINGREQ in a stream).
        let pingresp = rows.iter().filter(|r| r["mqtt.msgtype"] == "13").count() as u64;
        assert!(r["latency"]["ping"]["count"].as_u64().unwrap() <= pingresp);

        // topics: messages per exact topic and direction = the TSV's PUBLISH rows.
        let mut want: BTreeMap<(String, bool), u64> = BTreeMap::new();
        for row in rows.iter().filter(|r| r["mqtt.msgtype"] == "3") {
            let topic = row.get("mqtt.topic").cloned().unwrap_or_default();
            if topic.len() > 256 {
                continue; // grouped, not kept exactly (observe_captures.rs checks the total)
            }
            *want.entry((topic, row["dstport"] == "1883")).or_default() += 1;
        }
        let mut got: BTreeMap<(String, bool), u64> = BTreeMap::new();
        for t in r["topics"].as_array().unwrap() {
            for k in [
                "topic",
                "messages_in",
                "messages_out",
                "bytes_in",
                "bytes_out",
                "payload_p50",
                "payload_p99",
                "publishers",
                "subscribers",
            ] {
                assert!(t.get(k).is_some(), "{}: topics[].{k}", cap.display());
            }
            if t["kind"] != "exact" {
                continue;
            }
            let name = t["topic"].as_str().unwrap().to_string();
            for (c2s, k) in [(true, "messages_in"), (false, "messages_out")] {
                let n = t[k].as_u64().unwrap();
                if n > 0 {
                    got.insert((name.clone(), c2s), n);
                }
            }
        }
        assert_eq!(got, want, "{}", cap.display());
        topics_checked += want.len();

        // clients: CONNECTs per client id (the list holds the most active 50).
        let mut connects: BTreeMap<String, u64> = BTreeMap::new();
        for row in rows.iter().filter(|r| r["mqtt.msgtype"] == "1") {
            if let Some(id) = row.get("mqtt.clientid") {
                *connects.entry(id.clone()).or_default() += 1;
            }
        }
        let listed = r["clients"].as_array().unwrap();
        for c in listed {
            for k in ["client_id", "connects", "messages_in", "messages_out"] {
                assert!(c.get(k).is_some(), "{}: clients[].{k}", cap.display());
            }
            let id = c["client_id"].as_str().unwrap();
            if let Some(&n) = connects.get(id) {
                assert_eq!(c["connects"].as_u64(), Some(n), "{}: {id}", cap.display());
                clients_checked += 1;
            }
        }

        // events: every refused CONNACK, with its code, time and fields.
        let mut want_codes: Vec<u64> = rows
            .iter()
            .filter(|r| r["mqtt.msgtype"] == "2")
            .filter_map(|r| {
                r.get("mqtt.conack.val")
                    .or(r.get("mqtt.connack.reason_code"))
            })
            .map(|c| c.parse::<u64>().unwrap())
            .filter(|&c| c != 0)
            .collect();
        let events = r["events"].as_array().unwrap();
        for e in events {
            for k in ["ts", "kind", "client_id", "topic", "code"] {
                assert!(e.get(k).is_some(), "{}: events[].{k}", cap.display());
            }
        }
        let mut got_codes: Vec<u64> = events
            .iter()
            .filter(|e| e["kind"] == "connect_refused")
            .map(|e| e["code"].as_u64().unwrap())
            .collect();
        want_codes.sort_unstable();
        got_codes.sort_unstable();
        assert_eq!(got_codes, want_codes, "{}", cap.display());
        refused_checked += want_codes.len();
    }
    eprintln!(
        "{} captures: {topics_checked} (topic, direction) counts, {clients_checked} client \
         connect counts, {refused_checked} refused CONNACKs agree with TShark",
        caps.len()
    );
    assert!(topics_checked >= 40 && refused_checked >= 2 && clients_checked >= 30);
    let _ = std::fs::remove_dir_all(&dir);
}

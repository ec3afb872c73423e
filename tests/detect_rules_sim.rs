//! End to end: `mqscope simulate` with misbehaviours against a real Mosquitto (password
//! file + ACL), recorded on loopback by TShark, replayed by mqscope: each misbehaviour is
//! flagged by its rule under the right key, with the detection delay (detection time −
//! first offending packet) measured; and normal traffic raises no rule hit.
//! Needs root (or CAP_NET_RAW) for the loopback capture, as CI has.

mod common;
use common::sim::{SimCapture, mqscope, simulate_captured};

use serde_json::Value;

/// Runs the simulator with `extra` arguments against a fresh Mosquitto, captures it,
/// replays the capture and returns the replay's `--report-json` and its text report.
fn simulate_and_replay(name: &str, extra: &[&str]) -> (Value, String) {
    let SimCapture { dir, port, pcap } = simulate_captured(&format!("rules-{name}"), extra);
    let report = dir.join("report.json");
    let out = mqscope()
        .args(["replay", "--no-progress", "--ports", &port.to_string()])
        .arg("--report-json")
        .arg(&report)
        .arg(&pcap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{text}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (r, text)
}

fn hits(r: &Value) -> Vec<(String, String, f64)> {
    r["rules"]["hits"]
        .as_array()
        .expect("rules.hits in the report")
        .iter()
        .map(|h| {
            let delay =
                (h["ts_ns"].as_u64().unwrap() - h["first_ts_ns"].as_u64().unwrap()) as f64 / 1e9;
            (
                h["rule"].as_str().unwrap().to_string(),
                h["key"].as_str().unwrap().to_string(),
                delay,
            )
        })
        .collect()
}

/// The delay of the hit of `rule` under `key`; fails if there is none.
fn delay_of(h: &[(String, String, f64)], rule: &str, key: &str) -> f64 {
    h.iter()
        .find(|(r, k, _)| r == rule && k == key)
        .unwrap_or_else(|| panic!("no {rule} hit for {key}; hits: {h:?}"))
        .2
}

#[test]
fn each_simulated_misbehaviour_is_flagged_by_its_rule() {
    let (r, text) = simulate_and_replay(
        "bad",
        &[
            "--devices",
            "4",
            "--consumers",
            "2",
            "--duration",
            "8",
            "--interval-ms",
            "500",
            "--brute-force",
            "8",
            "--wildcard-subscribe",
            "--flood-rate",
            "500",
            "--oversized-kib",
            "300",
            "--slowite",
            "2",
            "--takeover",
        ],
    );
    eprintln!("{text}");
    let h = hits(&r);
    // Default thresholds. 8 wrong passwords, a few per second: 5 within 60 s from
    // 127.0.0.1 and for user operator.
    let bf_ip = delay_of(&h, "auth_brute_force", "ip:127.0.0.1");
    let bf_user = delay_of(&h, "auth_brute_force", "user:operator");
    // `#` and `$SYS/#` by a client not in the (empty) admin list: one alert, at once.
    let wc = delay_of(&h, "wildcard_subscription", "client:curious-tool");
    // 500/s against 100/s over 5 s: the 500th PUBLISH of the window, about 1 s in.
    let fl = delay_of(&h, "publish_flood", "client:flooder");
    let ov = delay_of(&h, "oversized_payload", "client:big-sender");
    let s0 = delay_of(&h, "slowite", "client:slowite-000");
    let s1 = delay_of(&h, "slowite", "client:slowite-001");
    let tk = delay_of(&h, "client_takeover", "client:dev-0000");
    eprintln!(
        "detection delays (s): auth_brute_force ip {bf_ip:.3}, user {bf_user:.3}; \
         wildcard {wc:.3}; publish_flood {fl:.3}; oversized {ov:.3}; slowite {s0:.3}/{s1:.3}; \
         takeover {tk:.3}"
    );
    // Brute force: the 5th failure comes 4 attempt periods (>= 0.1 s each) after the 1st.
    assert!((0.4..10.0).contains(&bf_ip), "{bf_ip}");
    assert!((0.4..10.0).contains(&bf_user), "{bf_user}");
    // Flood: 500 PUBLISHes at 500/s take about a second (loopback, a loaded machine).
    assert!((0.5..4.0).contains(&fl), "{fl}");
    // Single-packet rules fire on the offending packet itself.
    for d in [wc, ov, s0, s1, tk] {
        assert_eq!(d, 0.0);
    }
    // No hit for a well-behaved device's id other than the taken-over one.
    for (rule, key, _) in &h {
        assert!(
            !["client:dev-0001", "client:dev-0002", "client:dev-0003"].contains(&key.as_str()),
            "{rule} flagged {key}"
        );
        assert!(!key.starts_with("client:historian"), "{rule} flagged {key}");
    }
    assert!(text.contains("auth_brute_force"), "text report lists hits");
}

#[test]
fn normal_simulated_traffic_raises_no_rule_hit() {
    let (r, text) = simulate_and_replay(
        "normal",
        &[
            "--devices",
            "10",
            "--consumers",
            "2",
            "--duration",
            "10",
            "--interval-ms",
            "500",
        ],
    );
    let h = hits(&r);
    assert!(h.is_empty(), "unexpected hits: {h:?}\n{text}");
    assert!(r["rules"]["counters"]["records_seen"].as_u64().unwrap() > 100);
    assert!(text.contains("rule hits:     none"));
}

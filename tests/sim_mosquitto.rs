//! `mqscope simulate` against a real Mosquitto (password file + ACL), recorded on
//! loopback by TShark (an independent capture tool), then replayed by mqscope: the
//! misbehaviours the simulator switched on are what the observation core reports.
//! Needs root (or CAP_NET_RAW) for the loopback capture, as CI has.

mod common;
use common::sim::{SimCapture, mqscope, simulate_captured};

use serde_json::Value;

#[test]
fn simulated_misbehaviours_show_up_in_the_replay_report() {
    let SimCapture { dir, port, pcap } = simulate_captured(
        "sim",
        &[
            "--devices",
            "4",
            "--consumers",
            "2",
            "--duration",
            "4",
            "--interval-ms",
            "500",
            "--brute-force",
            "3",
            "--acl-topic",
            "admin/config",
            "--wildcard-subscribe",
        ],
    );

    let summary = dir.join("summary.json");
    let report = dir.join("report.json");
    let out = mqscope()
        .args(["replay", "--ports", &port.to_string(), "--summary-json"])
        .arg(&summary)
        .arg("--report-json")
        .arg(&report)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let events: std::collections::HashMap<String, u64> = r["events_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_u64().unwrap()))
        .collect();
    eprintln!("packets {}; events {events:?}", s["packets_by_type"]);
    // 4 devices + 2 consumers + 2 intruders (3.1.1 and 5) + 1 wildcard tool + 3 guesses.
    assert_eq!(s["packets_by_type"]["CONNECT"], 12);
    // Every wrong password is refused (MQTT 3.1.1 code 5 / MQTT 5 0x86) and reported.
    assert_eq!(events["auth_failure"], 3);
    assert_eq!(events["connect_refused"], 3);
    assert_eq!(events["wildcard_subscribe"], 1);
    assert_eq!(events["sys_subscribe"], 1);
    // Mosquitto's acl_file refuses the MQTT 5 intruder's QoS 1 and QoS 2 PUBLISHes with
    // PUBACK / PUBREC 0x87, once per round (the simulator probes 6 rounds: src/sim/
    // misbehave.rs ACL_ATTEMPTS); the 3.1.1 one gets plain acks: 3.1.1 cannot say no.
    // SUBSCRIBEs are granted (read access is enforced at delivery).
    assert_eq!(events["publish_refused"], 6 * 2);
    assert_eq!(events["subscribe_refused"], 0);
}

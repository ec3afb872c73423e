//! End to end: `mqscope simulate` with misbehaviours against a real Mosquitto (password
//! file + ACL), recorded on loopback by TShark, replayed by mqscope: each misbehaviour is
//! flagged by its rule under the right key, with the detection delay (detection time −
//! first offending packet) measured and printed as one table; and normal traffic raises
//! no rule hit. The silent device is flagged by the anomaly detectors (`anomaly_silence`)
//! once the replay report has an `anomalies` section; until then it is only reported.
//! Needs root (or CAP_NET_RAW) for the loopback capture, as CI has.

mod common;
use common::sim::{SimCapture, mqscope, simulate_captured};

use serde_json::Value;

/// Runs the simulator with `extra` arguments against a fresh Mosquitto, captures it,
/// replays the capture and returns the replay's `--report-json` and its text report.
fn simulate_and_replay(name: &str, extra: &[&str]) -> (Value, String) {
    simulate_and_replay_with(name, extra, None)
}

/// As `simulate_and_replay`, with an anomaly configuration (JSON) for the replay.
fn simulate_and_replay_with(
    name: &str,
    extra: &[&str],
    anomaly_config: Option<&str>,
) -> (Value, String) {
    let SimCapture { dir, port, pcap } = simulate_captured(&format!("rules-{name}"), extra);
    let report = dir.join("report.json");
    let mut cmd = mqscope();
    cmd.args(["replay", "--no-progress", "--ports", &port.to_string()]);
    if let Some(json) = anomaly_config {
        let f = dir.join("anomaly.json");
        std::fs::write(&f, json).unwrap();
        cmd.arg("--anomaly-config").arg(f);
    }
    let out = cmd
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

/// A hit's detector name, key and detection delay (detection time − first offending
/// packet or event), from `rules.hits` or, same shape, `anomalies.hits`.
#[derive(Clone, Debug)]
struct Hit {
    rule: String,
    key: String,
    first_ts_ns: u64,
    ts_ns: u64,
}

impl Hit {
    fn delay(&self) -> f64 {
        self.ts_ns.saturating_sub(self.first_ts_ns) as f64 / 1e9
    }
}

fn hits_in(section: &Value) -> Vec<Hit> {
    section
        .get("hits")
        .or(Some(section))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no hit list in {section}"))
        .iter()
        .map(|h| Hit {
            rule: h
                .get("rule")
                .or_else(|| h.get("detector"))
                .and_then(Value::as_str)
                .unwrap()
                .to_string(),
            key: h["key"].as_str().unwrap().to_string(),
            first_ts_ns: h["first_ts_ns"].as_u64().unwrap(),
            ts_ns: h["ts_ns"].as_u64().unwrap(),
        })
        .collect()
}

fn hits(r: &Value) -> Vec<Hit> {
    hits_in(r.get("rules").expect("rules in the report"))
}

/// The hit of `rule` under `key`; fails if there is none.
fn hit<'a>(h: &'a [Hit], rule: &str, key: &str) -> &'a Hit {
    h.iter()
        .find(|x| x.rule == rule && x.key == key)
        .unwrap_or_else(|| panic!("no {rule} hit for {key}; hits: {h:?}"))
}

/// One line of the detection-delay table.
struct Row {
    scenario: &'static str,
    detector: String,
    key: String,
    delay: Option<f64>,
    note: String,
}

fn row(scenario: &'static str, h: &Hit, note: &str) -> Row {
    Row {
        scenario,
        detector: h.rule.clone(),
        key: h.key.clone(),
        delay: Some(h.delay()),
        note: note.to_string(),
    }
}

fn print_table(rows: &[Row]) {
    eprintln!(
        "\ndetection delays (detection time - first offending packet):\n  {:<22} {:<24} {:<22} {:>9}  note",
        "scenario", "detector", "key", "delay"
    );
    for r in rows {
        let d = r.delay.map_or("-".to_string(), |d| format!("{d:.3}s"));
        eprintln!(
            "  {:<22} {:<24} {:<22} {:>9}  {}",
            r.scenario, r.detector, r.key, d, r.note
        );
    }
}

/// A topic outside the test broker's ACL (`acme/#` read-write for `operator`).
const ACL_TOPIC: &str = "scada/site-00/valve-07/cmd";

#[test]
fn each_simulated_misbehaviour_is_flagged_by_its_rule() {
    // The silence needs a longer run (a baseline, then the gap): both simulations run
    // side by side, each with its own broker and capture.
    let (bad, quiet) = std::thread::scope(|s| {
        let bad = s.spawn(|| {
            simulate_and_replay(
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
                    "--acl-topic",
                    ACL_TOPIC,
                    "--wildcard-subscribe",
                    "--flood-rate",
                    "500",
                    "--oversized-kib",
                    "300",
                    "--slowite",
                    "2",
                    "--takeover",
                ],
            )
        });
        let quiet = s.spawn(|| {
            // The defaults learn for 30 min; this run has 20 s. Time constants scaled
            // down (1 s buckets, 4 s warm-up), the silence rule as shipped: 5 expected
            // periods missed, with a 2 s floor instead of 30 s.
            simulate_and_replay_with(
                "silence",
                &[
                    "--devices",
                    "4",
                    "--consumers",
                    "1",
                    "--duration",
                    "20",
                    "--interval-ms",
                    "500",
                    "--silent-after",
                    "8",
                ],
                Some(
                    r#"{"bucket_secs": 1, "warmup_s": 4, "learn_s": 4,
                        "silence": {"min_gaps": 4, "min_silence_s": 2.0}}"#,
                ),
            )
        });
        (bad.join().unwrap(), quiet.join().unwrap())
    });
    let (r, text) = bad;
    eprintln!("{text}");
    let h = hits(&r);
    // Default thresholds. 8 wrong passwords, a few per second: 5 within 60 s from
    // 127.0.0.1 and for user operator.
    let bf_ip = hit(&h, "auth_brute_force", "ip:127.0.0.1");
    let bf_user = hit(&h, "auth_brute_force", "user:operator");
    // The MQTT 5 prober's QoS 1 and 2 publishes come back 0x87: the 5th refusal
    // within 60 s, in its third round (rounds 200 ms apart).
    let acl = hit(&h, "acl_denial_burst", "client:intruder-1");
    // `#` and `$SYS/#` by a client not in the (empty) admin list: one alert, at once.
    let wc = hit(&h, "wildcard_subscription", "client:curious-tool");
    // 500/s against 100/s over 5 s: the 500th PUBLISH of the window, about 1 s in.
    let fl = hit(&h, "publish_flood", "client:flooder");
    let ov = hit(&h, "oversized_payload", "client:big-sender");
    let s0 = hit(&h, "slowite", "client:slowite-000");
    let s1 = hit(&h, "slowite", "client:slowite-001");
    let tk = hit(&h, "client_takeover", "client:dev-0000");
    let mut rows = vec![
        row("brute force", bf_ip, "8 wrong passwords, 100 ms apart"),
        row("brute force", bf_user, ""),
        row("ACL-denied topic v5", acl, "PUBACK/PUBREC 0x87, 6 rounds"),
    ];
    // The 3.1.1 prober: Mosquitto's acl_file grants its SUBSCRIBE and acknowledges its
    // PUBLISH as accepted, so nothing on the wire says "denied".
    match h
        .iter()
        .find(|x| x.rule == "acl_denial_burst" && x.key == "client:intruder-0")
    {
        Some(x) => rows.push(row("ACL-denied topic 3.1.1", x, "")),
        None => rows.push(Row {
            scenario: "ACL-denied topic 3.1.1",
            detector: "acl_denial_burst".into(),
            key: "client:intruder-0".into(),
            delay: None,
            note: "not flagged: Mosquitto acl_file gives 3.1.1 clients no wire-visible denial"
                .into(),
        }),
    }
    rows.extend([
        row("wildcard subscribe", wc, "# and $SYS/#"),
        row("publish flood", fl, "500/s, limit 100/s over 5 s"),
        row("oversized payload", ov, "300 KiB"),
        row("SlowITe", s0, "keepalive 65535"),
        row("SlowITe", s1, ""),
        row("client takeover", tk, "dev-0000 from a 2nd socket"),
    ]);

    // Silence: device 0 stops publishing after 8 s of 500 ms telemetry, its connection
    // open. The anomaly detectors flag it as `anomaly_silence`; until they are merged
    // the report has no `anomalies` section and the silence is only reported.
    let (q, qtext) = quiet;
    let qh = hits(&q);
    assert!(
        qh.is_empty(),
        "silence run raised rule hits: {qh:?}\n{qtext}"
    );
    let last_seen = q["tracker"]["clients"]["top"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["client_id"] == "dev-0000"))
        .and_then(|c| c["last_seen_ns"].as_u64());
    match q.get("anomalies") {
        Some(a) => {
            let ah = hits_in(a);
            let sil = ah
                .iter()
                .find(|x| x.rule == "anomaly_silence" && x.key.contains("dev-0000"))
                .unwrap_or_else(|| panic!("no anomaly_silence for dev-0000; anomalies: {ah:?}"));
            // The evidence: how long the topic had been silent when it fired, against
            // the threshold (5 learned periods of 0.5 s, at least the 2 s floor). That
            // silence is the detection delay counted from the last PUBLISH.
            let raw = a["hits"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["rule"] == "anomaly_silence" && x["key"] == sil.key.as_str())
                .unwrap();
            let observed = raw["anomaly"]["observed"].as_f64().unwrap();
            let threshold = raw["anomaly"]["threshold"].as_f64().unwrap();
            assert!((2.0..4.0).contains(&threshold), "{raw}");
            // Evaluated once per 1 s bucket, confirmed over 2: fires within 3 buckets.
            assert!(
                observed >= threshold && observed <= threshold + 3.0,
                "{raw}"
            );
            let _ = last_seen;
            let since = format!(
                "silent {observed:.1}s when flagged (threshold {threshold:.1}s) = delay after the last PUBLISH"
            );
            rows.push(row("silent device", sil, &since));
        }
        None => {
            eprintln!(
                "anomaly_silence: NOT YET COVERED - the replay report has no `anomalies` \
                 section (the anomaly detectors are not merged); device 0 went silent"
            );
            rows.push(Row {
                scenario: "silent device",
                detector: "anomaly_silence".into(),
                key: "client:dev-0000".into(),
                delay: None,
                note: "not yet covered: no `anomalies` in the replay report".into(),
            });
        }
    }
    print_table(&rows);

    // Brute force: the 5th failure comes 4 attempt periods (>= 0.1 s each) after the 1st.
    assert!((0.4..10.0).contains(&bf_ip.delay()), "{bf_ip:?}");
    assert!((0.4..10.0).contains(&bf_user.delay()), "{bf_user:?}");
    // ACL: two rounds of 200 ms before the 5th refusal; a loaded machine adds some.
    assert!((0.3..5.0).contains(&acl.delay()), "{acl:?}");
    // Flood: 500 PUBLISHes at 500/s take about a second (loopback, a loaded machine).
    assert!((0.5..4.0).contains(&fl.delay()), "{fl:?}");
    // Single-packet rules fire on the offending packet itself.
    for x in [wc, ov, s0, s1, tk] {
        assert_eq!(x.delay(), 0.0, "{x:?}");
    }
    // No hit for a well-behaved device's id other than the taken-over one.
    for x in &h {
        assert!(
            !["client:dev-0001", "client:dev-0002", "client:dev-0003"].contains(&x.key.as_str()),
            "{} flagged {}",
            x.rule,
            x.key
        );
        assert!(
            !x.key.starts_with("client:historian"),
            "{} flagged {}",
            x.rule,
            x.key
        );
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

//! `mqscope replay` runs the anomaly engine: a capture whose subscribers stop receiving
//! half-way (two generated files replayed as one capture) is reported as fan-out loss in
//! the text report, the JSON report and `mqscope_alerts_firing`; the first half alone,
//! normal traffic, gives no anomaly; `--no-anomalies` turns it off.

use std::path::PathBuf;
use std::process::{Command, Output};

use mqscope::synth::fanout::{FanoutScenario, write_fanout_capture};
use serde_json::Value;

const NS: u64 = 1_000_000_000;

fn mqscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args(args)
        .output()
        .expect("run mqscope")
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mqscope-replay-anomaly-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One's complement sum update of a checksum for a 16-bit field changing from `m` to
/// `n` (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
fn csum_update(hc: u16, m: u16, n: u16) -> u16 {
    let mut s = u32::from(!hc) + u32::from(!m) + u32::from(n);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Moves the publisher of a generated fan-out capture (client port 40000) to port
/// `port`, fixing the TCP checksum: the generator gives every file the same 4-tuple
/// and sequence numbers, so a second file would otherwise read as retransmissions.
/// Classic pcap, Ethernet + IPv4 (20-byte header) + TCP, as the generator writes.
fn move_publisher(path: &std::path::Path, port: u16) {
    let mut b = std::fs::read(path).unwrap();
    let mut off = 24;
    while off + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        let f = off + 16;
        let tcp = f + 14 + 20;
        for field in [tcp, tcp + 2] {
            let old = u16::from_be_bytes([b[field], b[field + 1]]);
            if old == 40000 {
                b[field..field + 2].copy_from_slice(&port.to_be_bytes());
                let c = tcp + 16;
                let hc = u16::from_be_bytes([b[c], b[c + 1]]);
                b[c..c + 2].copy_from_slice(&csum_update(hc, old, port).to_be_bytes());
            }
        }
        off = f + incl;
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn checksum_update_matches_a_full_recomputation() {
    // Words 0x4500 0x0073 0x0000 0x4000 0x4011 0x0000 0xc0a8 0x0001 0xc0a8 0x00c7: the
    // IPv4 header example of the Wikipedia "Internet checksum" article, sum 0xb861.
    let words = [
        0x4500u16, 0x0073, 0, 0x4000, 0x4011, 0, 0xc0a8, 0x0001, 0xc0a8, 0x00c7,
    ];
    let full = |w: &[u16]| {
        let mut s: u32 = w.iter().map(|&x| u32::from(x)).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    };
    assert_eq!(full(&words), 0xb861);
    let mut changed = words;
    changed[7] = 0x1234;
    assert_eq!(csum_update(0xb861, 0x0001, 0x1234), full(&changed));
}

/// First file: 10 minutes of one message a second delivered to 3 subscribers. Second:
/// 5 more minutes of the same topic from a new connection, nobody receiving.
fn captures(d: &std::path::Path) -> (PathBuf, PathBuf, u64) {
    let a = FanoutScenario {
        messages: 600,
        interval_ns: NS,
        ..FanoutScenario::default()
    };
    let b = FanoutScenario {
        delays_ns: Vec::new(),
        messages: 300,
        interval_ns: NS,
        start_ns: a.start_ns + 601 * NS,
        ..FanoutScenario::default()
    };
    let (pa, pb) = (d.join("a.pcap"), d.join("b.pcap"));
    write_fanout_capture(&pa, &a).unwrap();
    write_fanout_capture(&pb, &b).unwrap();
    move_publisher(&pb, 40500);
    (pa, pb, b.start_ns)
}

#[test]
fn fanout_loss_in_a_capture_is_reported_everywhere() {
    let d = dir();
    let (pa, pb, stop) = captures(&d);
    let cfg = d.join("anomaly.json");
    // Short learning: the capture is 15 minutes long.
    std::fs::write(&cfg, r#"{"warmup_s": 120, "learn_s": 120}"#).unwrap();
    let (report, metrics) = (d.join("report.json"), d.join("metrics.prom"));
    let out = mqscope(&[
        "replay",
        "--no-progress",
        "--anomaly-config",
        cfg.to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
        "--metrics-out",
        metrics.to_str().unwrap(),
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("anomalies:     1"), "{err}");
    assert!(err.contains("anomaly_fanout_loss"), "{err}");

    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let hits = v["anomalies"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let h = &hits[0];
    assert_eq!(h["rule"], "anomaly_fanout_loss");
    assert_eq!(
        h["key"],
        "topic:acme/plant1/area2/line3/cell4/press17/temperature"
    );
    assert_eq!(h["severity"], "high");
    // 10 messages a bucket, 3 copies each expected, none delivered.
    assert_eq!(h["anomaly"]["baseline"].as_f64().unwrap().round(), 30.0);
    assert_eq!(h["anomaly"]["observed"], 0.0);
    // Fired within 3 buckets (confirm 2, plus the straddling bucket) of the stop.
    let ts = h["ts_ns"].as_u64().unwrap();
    assert!(ts > stop && ts <= stop + 30 * NS, "{}", (ts - stop) / NS);
    assert!(h["cleared_ts_ns"].is_null());
    // The rules' report is still there, next to it.
    assert!(v["rules"]["hits"].is_array());

    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.lines()
            .any(|l| l == r#"mqscope_alerts_firing{rule="anomaly_fanout_loss",severity="high"} 1"#),
        "{prom}"
    );
}

#[test]
fn normal_half_gives_no_anomaly_and_the_flag_turns_them_off() {
    let d = dir().join("normal");
    std::fs::create_dir_all(&d).unwrap();
    let (pa, pb, _) = captures(&d);
    let cfg = d.join("anomaly.json");
    std::fs::write(&cfg, r#"{"warmup_s": 120, "learn_s": 120}"#).unwrap();
    let report = d.join("report.json");
    let out = mqscope(&[
        "replay",
        "--no-progress",
        "--anomaly-config",
        cfg.to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
        pa.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("anomalies:     none"), "{err}");
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["anomalies"]["hits"].as_array().unwrap().len(), 0);
    assert!(v["anomalies"]["counters"]["buckets"].as_u64().unwrap() >= 59);

    let out = mqscope(&[
        "replay",
        "--no-progress",
        "--no-anomalies",
        "--report-json",
        report.to_str().unwrap(),
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("anomalies:"), "{err}");
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(v.get("anomalies").is_none());

    // An unknown field is a usage error (64), like the rules' config.
    std::fs::write(&cfg, r#"{"warmup": 120}"#).unwrap();
    let out = mqscope(&[
        "replay",
        "--anomaly-config",
        cfg.to_str().unwrap(),
        pa.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn a_day_long_gap_in_the_capture_is_skipped_not_replayed_bucket_by_bucket() {
    let d = dir().join("gap");
    std::fs::create_dir_all(&d).unwrap();
    let a = FanoutScenario {
        messages: 600,
        interval_ns: NS,
        ..FanoutScenario::default()
    };
    let b = FanoutScenario {
        messages: 300,
        interval_ns: NS,
        start_ns: a.start_ns + 86_400 * NS,
        ..FanoutScenario::default()
    };
    let (pa, pb) = (d.join("a.pcap"), d.join("b.pcap"));
    write_fanout_capture(&pa, &a).unwrap();
    write_fanout_capture(&pb, &b).unwrap();
    move_publisher(&pb, 40500);
    let cfg = d.join("anomaly.json");
    std::fs::write(&cfg, r#"{"max_catchup_buckets": 5}"#).unwrap();
    let report = d.join("report.json");
    let out = mqscope(&[
        "replay",
        "--no-progress",
        "--anomaly-config",
        cfg.to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    // About 60 buckets of the first file, 5 caught up after it, about 30 of the second;
    // the other 8600-odd buckets of the day are skipped.
    let n = v["anomalies"]["counters"]["buckets"].as_u64().unwrap();
    assert!((92..=97).contains(&n), "{n}");
}

//! `/metrics` against the replay's own reports and an independent decoder: replay a
//! shared capture with `--metrics-out`, `--summary-json` and `--report-json`, then check
//! metric values against the JSON reports and the capture's TShark ground truth, and the
//! text against `promtool check metrics` (Debian package `prometheus`). Also the HTTP
//! listener: status codes, readiness, and a silent client not holding up a scrape.

mod prom_common;
use prom_common::promtool_check;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CAPTURES: &str = "/work/shared/captures";

fn capture(rel: &str) -> PathBuf {
    // Like the other capture tests: shared/ sits beside the repository in CI.
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/captures")
        .join(rel);
    if beside.exists() {
        beside
    } else {
        Path::new(CAPTURES).join(rel)
    }
}

struct Replay {
    metrics: String,
    series: BTreeMap<String, f64>,
    summary: Value,
    report: Value,
}

fn replay(cap: &Path, extra: &[&str]) -> Replay {
    // Tests run in parallel, several on the same capture: one directory per call.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "mqscope-export-{}-{n}-{}",
        std::process::id(),
        cap.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (m, s, r) = (dir.join("m.txt"), dir.join("s.json"), dir.join("r.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args(["replay", "--no-progress", "--format", "none"])
        .arg(cap)
        .arg("--metrics-out")
        .arg(&m)
        .arg("--summary-json")
        .arg(&s)
        .arg("--report-json")
        .arg(&r)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = std::fs::read_to_string(&m).unwrap();
    let rep = Replay {
        series: parse(&metrics),
        metrics,
        summary: serde_json::from_str(&std::fs::read_to_string(&s).unwrap()).unwrap(),
        report: serde_json::from_str(&std::fs::read_to_string(&r).unwrap()).unwrap(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    rep
}

/// Sample lines as `series text → value` (label order as written by the exporter).
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (k, v) = line.rsplit_once(' ').expect("sample line");
        let v: f64 = v.parse().expect("sample value");
        assert!(m.insert(k.to_string(), v).is_none(), "duplicate series {k}");
    }
    m
}

fn get(s: &BTreeMap<String, f64>, key: &str) -> f64 {
    *s.get(key).unwrap_or_else(|| panic!("no series {key}"))
}

fn sum_family(s: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// MQTT packet counts by type from the capture's TShark decode (`mqtt.msgtype`).
fn tshark_types(cap: &Path) -> BTreeMap<u8, u64> {
    let tsv = std::fs::read_to_string(format!("{}.tshark.tsv", cap.display())).unwrap();
    let mut lines = tsv.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = head.iter().position(|h| *h == "mqtt.msgtype").unwrap();
    let mut by = BTreeMap::new();
    for l in lines {
        let t: u8 = l.split('\t').nth(col).unwrap().parse().unwrap();
        *by.entry(t).or_default() += 1;
    }
    by
}

const TYPES: [&str; 16] = [
    "reserved",
    "connect",
    "connack",
    "publish",
    "puback",
    "pubrec",
    "pubrel",
    "pubcomp",
    "subscribe",
    "suback",
    "unsubscribe",
    "unsuback",
    "pingreq",
    "pingresp",
    "disconnect",
    "auth",
];

#[test]
fn metrics_agree_with_reports_tshark_and_promtool() {
    let cap = capture("arkime/mqtt_big.pcap");
    let r = replay(&cap, &[]);
    let s = &r.series;

    // Packets: by type against TShark (independent), total against the summary.
    for (t, n) in tshark_types(&cap) {
        let name = TYPES[usize::from(t)];
        let got = sum_family(s, &format!("mqscope_mqtt_packets_total{{type=\"{name}\","));
        assert_eq!(got, n as f64, "{name}");
    }
    assert_eq!(
        sum_family(s, "mqscope_mqtt_packets_total{"),
        r.summary["mqtt_packets"].as_f64().unwrap()
    );
    assert_eq!(sum_family(s, "mqscope_mqtt_packets_total{"), 23.0);
    // Direction: the capture has one PINGREQ from the client and one PINGRESP back.
    assert_eq!(
        get(
            s,
            r#"mqscope_mqtt_packets_total{type="pingreq",direction="in"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            s,
            r#"mqscope_mqtt_packets_total{type="pingresp",direction="out"}"#
        ),
        1.0
    );
    assert_eq!(
        get(s, r#"mqscope_mqtt_bytes_total{direction="in"}"#),
        r.summary["mqtt_bytes"]["c2s"].as_f64().unwrap()
    );
    assert_eq!(
        get(s, "mqscope_capture_packets_total"),
        r.summary["frames"].as_f64().unwrap()
    );
    assert_eq!(get(s, "mqscope_capture_packets_total"), 51.0);

    // Topics: every group of the report, messages and bytes both ways, payload counts.
    let topics = r.report["topics"].as_array().unwrap();
    assert!(topics.len() >= 5);
    for t in topics {
        let name = t["topic"].as_str().unwrap();
        for (dir, key) in [("in", "messages_in"), ("out", "messages_out")] {
            let k = format!("mqscope_topic_messages_total{{topic=\"{name}\",direction=\"{dir}\"}}");
            assert_eq!(get(s, &k), t[key].as_f64().unwrap(), "{k}");
        }
        for (dir, key) in [("in", "bytes_in"), ("out", "bytes_out")] {
            let k = format!("mqscope_topic_bytes_total{{topic=\"{name}\",direction=\"{dir}\"}}");
            assert_eq!(get(s, &k), t[key].as_f64().unwrap(), "{k}");
        }
    }
    let details = r.report["topic_details"].as_array().unwrap();
    assert_eq!(details.len(), topics.len());
    for t in details {
        let name = t["name"].as_str().unwrap();
        let k = format!("mqscope_payload_size_bytes_count{{topic=\"{name}\"}}");
        assert_eq!(
            get(s, &k),
            t["payload_in"]["count"].as_f64().unwrap(),
            "{k}"
        );
    }
    // Hand check from the capture's description: one 12,000-byte PUBLISH on test/bigdata.
    assert_eq!(
        get(s, r#"mqscope_payload_size_bytes_sum{topic="test/bigdata"}"#),
        12000.0
    );
    assert_eq!(
        get(
            s,
            r#"mqscope_payload_size_bytes_bucket{topic="test/bigdata",le="4096"}"#
        ),
        0.0
    );
    assert_eq!(
        get(
            s,
            r#"mqscope_payload_size_bytes_bucket{topic="test/bigdata",le="16384"}"#
        ),
        1.0
    );

    // Latency: count and unanswered per exchange as in the report; the +Inf bucket
    // equals the count and buckets never decrease.
    for e in r.report["tracker"]["exchanges"].as_array().unwrap() {
        let ex = e["exchange"].as_str().unwrap();
        let count = get(
            s,
            &format!("mqscope_latency_seconds_count{{exchange=\"{ex}\"}}"),
        );
        assert_eq!(count, e["count"].as_f64().unwrap(), "{ex}");
        assert_eq!(
            get(
                s,
                &format!("mqscope_latency_seconds_bucket{{exchange=\"{ex}\",le=\"+Inf\"}}")
            ),
            count
        );
        if ex != "fanout" {
            assert_eq!(
                get(s, &format!("mqscope_unanswered_total{{exchange=\"{ex}\"}}")),
                e["unanswered"].as_f64().unwrap(),
                "{ex}"
            );
        }
        // The report's max latency must fall in the first bucket that holds everything.
        if let Some(max) = e["max"].as_f64() {
            let first_full = r
                .metrics
                .lines()
                .filter(|l| {
                    l.starts_with(&format!(
                        "mqscope_latency_seconds_bucket{{exchange=\"{ex}\",le="
                    ))
                })
                .find(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap() == count)
                .unwrap();
            let le: f64 = first_full
                .split("le=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap_or(f64::INFINITY);
            assert!(max <= le * 1.02, "{ex}: max {max} above le {le}");
        }
    }
    // The report's `latency` object (ms) says the same as the tracker's list (s).
    for e in r.report["tracker"]["exchanges"].as_array().unwrap() {
        let l = &r.report["latency"][e["exchange"].as_str().unwrap()];
        assert_eq!(l["count"], e["count"]);
        assert_eq!(l["unanswered"], e["unanswered"]);
        if let Some(max) = e["max"].as_f64() {
            assert!((l["max_ms"].as_f64().unwrap() - max * 1e3).abs() < 1e-9);
        }
    }
    assert_eq!(
        get(s, r#"mqscope_latency_seconds_count{exchange="ping"}"#),
        1.0
    );
    assert_eq!(
        get(s, r#"mqscope_connections_total{result="accepted"}"#),
        1.0
    );
    assert_eq!(
        get(s, r#"mqscope_connections_total{result="refused"}"#),
        0.0
    );
    let tracked = r.report["tracker"]["clients"]["connected"]
        .as_f64()
        .unwrap();
    assert_eq!(get(s, "mqscope_clients_connected"), tracked);
    for (kind, n) in r.report["events_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap()))
    {
        assert_eq!(
            get(s, &format!("mqscope_events_total{{kind=\"{kind}\"}}")),
            n
        );
    }
    assert!(
        s.contains_key(r#"mqscope_build_info{version="0.1.0"}"#)
            || s.keys().any(|k| k.starts_with("mqscope_build_info{"))
    );
    promtool_check(&r.metrics);
}

#[test]
fn auth_failure_reason_from_connack_0x86() {
    // CONNACK with MQTT 5 reason 134 (0x86, bad user name or password): README + TShark.
    let cap = capture("suricata-verify/mqtt-connect-rules-2/mqtt5_pub_jpeg_connack134.pcap");
    let r = replay(&cap, &[]);
    let s = &r.series;
    assert_eq!(
        get(
            s,
            r#"mqscope_auth_failures_total{reason="bad_username_or_password"}"#
        ),
        1.0
    );
    assert_eq!(sum_family(s, "mqscope_auth_failures_total{"), 1.0);
    assert_eq!(
        get(s, r#"mqscope_connections_total{result="refused"}"#),
        1.0
    );
    assert_eq!(
        get(s, r#"mqscope_connections_total{result="accepted"}"#),
        0.0
    );
    assert_eq!(
        r.report["tracker"]["connections"]["auth_failures"].as_f64(),
        Some(1.0)
    );
    // The 35,758-byte JPEG (README) lands between le=16384 and le=65536.
    let topic = r.report["topics"][0]["topic"].as_str().unwrap().to_string();
    let b = |le: &str| {
        get(
            s,
            &format!("mqscope_payload_size_bytes_bucket{{topic=\"{topic}\",le=\"{le}\"}}"),
        )
    };
    assert_eq!((b("16384"), b("65536")), (0.0, 1.0));
    promtool_check(&r.metrics);
}

#[test]
fn topic_series_are_capped_and_the_rest_summed_into_other() {
    let dir = std::env::temp_dir().join(format!("mqscope-export-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("synth.pcap");
    let st = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args(["synth-capture"])
        .arg(&pcap)
        .args(["--packets", "3000", "--connections", "20"])
        .output()
        .unwrap();
    assert!(st.status.success());
    let cfg = dir.join("prom.json");
    std::fs::write(&cfg, r#"{"max_topic_series": 3}"#).unwrap();
    let r = replay(&pcap, &["--metrics-config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let s = &r.series;
    let topics = r.report["topics"].as_array().unwrap();
    assert!(
        topics.len() > 3,
        "synthetic capture should have many topic groups"
    );

    let labels: std::collections::BTreeSet<String> = s
        .keys()
        .filter_map(|k| k.strip_prefix("mqscope_topic_messages_total{topic=\""))
        .map(|k| k.split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(labels.len(), 4, "{labels:?}");
    assert!(labels.contains("__other__"));
    // The three kept are the busiest by messages in + out (ties by name), as in the report.
    let mut ranked: Vec<(u64, &str)> = topics
        .iter()
        .filter(|t| t["topic"] != "__other__")
        .map(|t| {
            (
                t["messages_in"].as_u64().unwrap() + t["messages_out"].as_u64().unwrap(),
                t["topic"].as_str().unwrap(),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    for (_, name) in ranked.iter().take(3) {
        assert!(labels.contains(*name), "{name} missing from {labels:?}");
    }
    // Nothing lost by the cut: label sums equal the report's totals.
    for (dir, key) in [("in", "messages_in"), ("out", "messages_out")] {
        let want: f64 = topics.iter().map(|t| t[key].as_f64().unwrap()).sum();
        let got: f64 = s
            .iter()
            .filter(|(k, _)| {
                k.starts_with("mqscope_topic_messages_total{")
                    && k.ends_with(&format!("direction=\"{dir}\"}}"))
            })
            .map(|(_, v)| v)
            .sum();
        assert_eq!(got, want, "{dir}");
    }
    let want: f64 = r.report["topic_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["payload_in"]["count"].as_f64().unwrap())
        .sum();
    assert_eq!(sum_family(s, "mqscope_payload_size_bytes_count{"), want);
    promtool_check(&r.metrics);
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn http_listener_serves_metrics_health_and_readiness() {
    let cap = capture("arkime/mqtt_big.pcap");
    let dir = std::env::temp_dir().join(format!("mqscope-export-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mfile = dir.join("m.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args([
            "replay",
            "--no-progress",
            "--format",
            "none",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--linger", "20"])
        .arg("--metrics-out")
        .arg(&mfile)
        .arg(&cap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no listen line");
        if let Some(rest) = line
            .trim()
            .strip_prefix("mqscope: serving metrics on http://")
        {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    // Drain stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));

    assert_eq!(http_get(&addr, "/healthz").0, 200);
    let t0 = Instant::now();
    while http_get(&addr, "/readyz").0 != 200 {
        assert!(t0.elapsed() < Duration::from_secs(20), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A client that connects and says nothing must not hold up a scrape.
    let silent = TcpStream::connect(&addr).unwrap();
    let t = Instant::now();
    let (code, body) = http_get(&addr, "/metrics?x=1");
    assert_eq!(code, 200);
    assert!(t.elapsed() < Duration::from_secs(2));
    let file = std::fs::read_to_string(&mfile).unwrap();
    assert_eq!(body, file, "/metrics serves what --metrics-out wrote");
    assert_eq!(http_get(&addr, "/nope").0, 404);
    // Wrong method.
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "POST /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    // Oversized head.
    let mut s = TcpStream::connect(&addr).unwrap();
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(10_000));
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    drop(silent);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn per_client_labels_are_opt_in() {
    let cap = capture("arkime/mqtt_big.pcap");
    let off = replay(&cap, &[]);
    assert!(!off.metrics.contains("client_id="));
    let dir = std::env::temp_dir().join(format!("mqscope-export-pcl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("prom.json");
    std::fs::write(&cfg, r#"{"per_client_labels": true}"#).unwrap();
    let on = replay(&cap, &["--metrics-config", cfg.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let top = &on.report["tracker"]["clients"]["top"][0];
    let id = top["client_id"].as_str().unwrap();
    assert_eq!(
        get(
            &on.series,
            &format!("mqscope_client_messages_total{{client_id=\"{id}\",direction=\"in\"}}")
        ),
        top["msgs_in"].as_f64().unwrap()
    );
    promtool_check(&on.metrics);
}

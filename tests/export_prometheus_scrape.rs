//! A real Prometheus (Debian package `prometheus`, /usr/bin/prometheus) scrapes a running
//! mqscope serving `/metrics` after a replay; a PromQL query over the scraped series
//! must return the replay's packet total. Proves the exposition is accepted by the
//! server that matters, not only by our own parser and promtool.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod prom_common;
use prom_common::*;

fn capture(rel: &str) -> PathBuf {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/captures")
        .join(rel);
    if beside.exists() {
        beside
    } else {
        Path::new("/work/shared/captures").join(rel)
    }
}

#[test]
fn real_prometheus_scrapes_and_promql_returns_the_replay_total() {
    let prom_bin = Path::new("/usr/bin/prometheus");
    assert!(
        prom_bin.exists(),
        "/usr/bin/prometheus missing: install the Debian package `prometheus`"
    );
    let cap = capture("arkime/mqtt_big.pcap");
    let dir = std::env::temp_dir().join(format!("mqscope-prom-scrape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let summary = dir.join("s.json");

    let mut mq = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args([
            "replay",
            "--no-progress",
            "--format",
            "none",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--linger", "90"])
        .arg("--summary-json")
        .arg(&summary)
        .arg(&cap)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(mq.stderr.take().unwrap());
    let mq = Reap(mq);
    let mut line = String::new();
    let target = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no listen line");
        if let Some(rest) = line
            .trim()
            .strip_prefix("mqscope: serving metrics on http://")
        {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    // The summary is written after the replay, before the linger.
    let t0 = Instant::now();
    let want = loop {
        if let Some(v) = std::fs::read_to_string(&summary)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break v["mqtt_packets"].as_f64().unwrap();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "replay did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(want, 23.0, "TShark counts 23 MQTT packets in this capture");

    let port = free_port();
    let prom_addr = format!("127.0.0.1:{port}");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mqscope\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let prom = Command::new(prom_bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let prom = Reap(prom);

    let t0 = Instant::now();
    let mut last = None;
    while t0.elapsed() < Duration::from_secs(30) {
        last = query(&prom_addr, "sum(mqscope_mqtt_packets_total)");
        if last == Some(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let log_text = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    assert_eq!(
        last,
        Some(want),
        "PromQL never returned the replay total; prometheus log:\n{log_text}"
    );
    // The scrape itself was healthy, and histograms are usable by histogram_quantile.
    assert_eq!(query(&prom_addr, r#"up{job="mqscope"}"#), Some(1.0));
    let p50 = query(
        &prom_addr,
        r#"histogram_quantile(0.5, sum by (le) (mqscope_latency_seconds_bucket{exchange="ping"}))"#,
    );
    // The capture's one PINGREQ → PINGRESP took 1 s (see the report); le=1 holds it.
    assert!(
        p50.is_some_and(|v| v > 0.5 && v <= 1.0),
        "ping p50 from buckets: {p50:?}"
    );
    drop(prom);
    drop(mq);
    let _ = std::fs::remove_dir_all(&dir);
}

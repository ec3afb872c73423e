//! A real Prometheus (Debian package `prometheus`, /usr/bin/prometheus) scrapes a running
//! mqscope serving `/metrics` after a replay; a PromQL query over the scraped series
//! must return the replay's packet total. Proves the exposition is accepted by the
//! server that matters, not only by our own parser and promtool.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// Kills the child (by its own pid) when the test ends, pass or fail.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: &str, path_and_query: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    // Prometheus may answer chunked; the JSON body is then between chunk sizes.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut b: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = b.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        b = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(prom: &str, q: &str) -> Option<f64> {
    let (code, body) = http_get(prom, &format!("/api/v1/query?query={}", encode(q)))?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    let r = v["data"]["result"].as_array()?.first()?;
    r["value"][1].as_str()?.parse().ok()
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

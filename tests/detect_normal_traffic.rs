//! Issue #6: 30 minutes of normal plant traffic, replayed by `mqscope replay`, raise no
//! alert. The capture is generated (`synth-capture --scenario plant`) with realistic
//! timing; TShark, an independent dissector, checks that it is valid TCP and MQTT
//! (no malformed packet, no expert warning, and on a shorter capture its per-type
//! counts equal the generator's ground truth).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mqscope::synth::plant::{PlantConfig, PlantSummary, write_plant_capture};
use serde_json::Value;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mqscope-normal-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mqscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqscope"))
}

/// Copies the first `frames` records of a classic pcap file (24-byte file header,
/// 16-byte record headers with the captured length at offset 8).
fn pcap_prefix(src: &Path, dst: &Path, frames: usize) {
    let bytes = std::fs::read(src).unwrap();
    let mut off = 24;
    for _ in 0..frames {
        let Some(h) = bytes.get(off..off + 16) else {
            break;
        };
        let incl = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        off += 16 + incl;
    }
    std::fs::write(dst, &bytes[..off.min(bytes.len())]).unwrap();
}

/// TShark's complaints about `path`: malformed packets and expert infos of severity
/// warning or error (e.g. "previous segment not captured", "ACKed unseen segment").
fn tshark_problems(path: &Path) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.expert.message",
        ])
        .output()
        .expect("tshark must be installed");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// MQTT packets per type as TShark decodes them (one line per frame, comma-joined
/// when a frame completes several packets).
fn tshark_counts(path: &Path) -> [u64; 16] {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-Y",
            "mqtt",
            "-T",
            "fields",
            "-e",
            "mqtt.msgtype",
            "-E",
            "occurrence=a",
        ])
        .output()
        .expect("tshark must be installed");
    assert!(out.status.success());
    let mut counts = [0u64; 16];
    for v in String::from_utf8_lossy(&out.stdout).split(['\n', ',']) {
        let v = v.trim();
        if !v.is_empty() {
            counts[v.parse::<usize>().unwrap()] += 1;
        }
    }
    counts
}

struct Replay {
    report: Value,
    summary: Value,
    metrics: String,
    text: String,
    secs: f64,
}

/// The anomaly detectors as shipped, but learning for 5 minutes instead of 30 (warm-up)
/// and 60 (new names): so 25 of the 30 minutes are judged, not only learned from.
const SHORT_LEARNING: &str = r#"{"warmup_s": 300, "learn_s": 300}"#;

fn replay(dir: &Path, pcap: &Path) -> Replay {
    let anomaly_cfg = dir.join("anomaly.json");
    std::fs::write(&anomaly_cfg, SHORT_LEARNING).unwrap();
    let (report, summary, metrics) = (
        dir.join("report.json"),
        dir.join("summary.json"),
        dir.join("metrics.prom"),
    );
    let t = Instant::now();
    let out = mqscope()
        .args(["replay", "--no-progress"])
        .arg("--anomaly-config")
        .arg(&anomaly_cfg)
        .arg("--report-json")
        .arg(&report)
        .arg("--summary-json")
        .arg(&summary)
        .arg("--metrics-out")
        .arg(&metrics)
        .arg(pcap)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{text}");
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    Replay {
        report: read(&report),
        summary: read(&summary),
        metrics: std::fs::read_to_string(&metrics).unwrap(),
        text,
        secs,
    }
}

/// Every rule and anomaly hit in the report as `detector key`. `rules` must be there;
/// `anomalies` (the anomaly detectors, same hit shape) is checked whenever present.
fn all_hits(r: &Value) -> Vec<String> {
    let rules = r
        .get("rules")
        .expect("the replay report has a `rules` section");
    let mut out = Vec::new();
    for section in [Some(rules), r.get("anomalies")].into_iter().flatten() {
        let hits = section
            .get("hits")
            .or(Some(section))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no hit list in {section}"));
        for h in hits {
            let name = h
                .get("rule")
                .or_else(|| h.get("detector"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let key = h.get("key").and_then(Value::as_str).unwrap_or("?");
            let summary = h.get("summary").and_then(Value::as_str).unwrap_or("");
            out.push(format!("{name} {key}: {summary}"));
        }
    }
    out
}

/// `mqscope_alerts_firing` series in the Prometheus exposition (comments excluded).
fn firing_series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("mqscope_alerts_firing"))
        .collect()
}

fn check_counts(sum: &Value, truth: &PlantSummary) {
    assert_eq!(sum["mqtt_packets"].as_u64(), Some(truth.mqtt_packets));
    for t in mqscope::mqtt::PacketType::ALL {
        let got = sum["packets_by_type"][t.name()].as_u64().unwrap_or(0);
        assert_eq!(got, truth.by_type[t as usize], "{}", t.name());
    }
}

#[test]
fn thirty_minutes_of_plant_traffic_replay_without_alerts() {
    let dir = temp_dir("30min");
    let pcap = dir.join("plant-30min.pcap");
    let cfg = PlantConfig::default();
    assert!(cfg.duration_s >= 1800 && cfg.devices >= 200);
    let t = Instant::now();
    let s = write_plant_capture(&pcap, &cfg).unwrap();
    let gen_s = t.elapsed().as_secs_f64();
    let span_s = (s.last_ts_ns - s.first_ts_ns) as f64 / 1e9;
    assert!(span_s >= 1800.0, "{span_s}");
    assert!(s.file_bytes <= 150_000_000, "{} bytes", s.file_bytes);
    // What makes it a plant and not a benchmark mix: all QoS levels, fan-out, wills
    // after blips, retained deliveries to new subscriptions.
    assert!(s.publish_by_qos.iter().all(|&n| n > 0), "{s:?}");
    assert!(s.forwarded > s.device_publishes, "{s:?}");
    assert!(
        s.reconnects > 0 && s.wills > 0 && s.retained_deliveries > 0,
        "{s:?}"
    );

    // TShark over the first 100 000 frames: every connection's setup, the retained
    // bursts, and minutes of steady traffic (the whole file takes it ~15 s).
    let prefix = dir.join("prefix.pcap");
    pcap_prefix(&pcap, &prefix, 100_000);
    let problems = tshark_problems(&prefix);
    assert!(problems.is_empty(), "tshark: {problems:?}");

    let r = replay(&dir, &pcap);
    check_counts(&r.summary, &s);
    let hits = all_hits(&r.report);
    let firing = firing_series(&r.metrics);
    let clients = r.report["tracker"]["clients"]["tracked"].as_u64().unwrap();
    let topics = r.report["topics"].as_array().unwrap().len();
    eprintln!(
        "plant capture: {:.0} s, {:.1} MB, {} frames, {} MQTT packets ({} PUBLISH), \
         {} connections ({} reconnects, {} wills), {} clients, {} topics; generated in {gen_s:.2} s",
        span_s,
        s.file_bytes as f64 / 1e6,
        s.frames,
        s.mqtt_packets,
        s.by_type[3],
        s.connections,
        s.reconnects,
        s.wills,
        s.clients,
        s.topics,
    );
    eprintln!(
        "replay: {:.2} s, {} clients tracked, {} topic groups, {} hits ({}), {} firing series ({})",
        r.secs,
        clients,
        topics,
        hits.len(),
        if r.report.get("anomalies").is_some() {
            "rules + anomalies"
        } else {
            "rules only: no `anomalies` section yet"
        },
        firing.len(),
        r.text
            .lines()
            .find(|l| l.contains("rule hits:"))
            .unwrap_or("")
            .trim()
    );
    assert!(hits.is_empty(), "normal traffic raised {hits:#?}");
    assert!(firing.is_empty(), "{firing:?}");
    // The detectors did judge the traffic: a bucket every 10 s for 30 min, a series per
    // topic and client, and peer clustering.
    let c = &r.report["anomalies"]["counters"];
    eprintln!("anomaly counters: {c}");
    assert!(c["buckets"].as_u64().unwrap() >= 175, "{c}");
    assert!(c["series"].as_u64().unwrap() >= s.topics, "{c}");
    assert!(c["peer_runs"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(clients, s.clients);
    assert_eq!(topics as u64, s.topics);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A shorter capture with many more blips (a FIN teardown and a will, or, for half of
/// them, a connection left half-open that the device's next CONNECT takes over, as after
/// a cellular address change): TShark agrees with the ground truth packet for packet and
/// the replay still raises nothing (a takeover of a silent connection is an event, not
/// an alert).
#[test]
fn plant_capture_with_frequent_reconnects_is_valid_and_quiet() {
    let dir = temp_dir("blips");
    let pcap = dir.join("plant-blips.pcap");
    let cfg = PlantConfig {
        duration_s: 300,
        devices: 60,
        reconnects_per_hour: 6.0,
        half_open_share: 0.5,
        seed: 11,
        ..PlantConfig::default()
    };
    let s = write_plant_capture(&pcap, &cfg).unwrap();
    assert!(s.reconnects >= 10 && s.wills > 0, "{s:?}");
    let problems = tshark_problems(&pcap);
    assert!(problems.is_empty(), "tshark: {problems:?}");
    assert_eq!(tshark_counts(&pcap), s.by_type, "tshark vs ground truth");
    assert!(s.takeovers >= 2, "{s:?}");
    let r = replay(&dir, &pcap);
    check_counts(&r.summary, &s);
    // Every takeover is seen (an event), none is an alert.
    let takeover_events = r.report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "client_takeover")
        .count() as u64;
    assert_eq!(takeover_events, s.takeovers, "{s:?}");
    let hits = all_hits(&r.report);
    assert!(hits.is_empty(), "normal traffic raised {hits:#?}");
    assert!(firing_series(&r.metrics).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `synth-capture --scenario plant` writes what the library writes for the same seed.
#[test]
fn synth_capture_cli_writes_the_plant_scenario() {
    let dir = temp_dir("cli");
    let cli = dir.join("cli.pcap");
    let st = mqscope()
        .args(["synth-capture", "--scenario", "plant", "--duration", "20"])
        .args(["--devices", "12", "--seed", "5"])
        .arg(&cli)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let lib = dir.join("lib.pcap");
    let cfg = PlantConfig {
        duration_s: 20,
        devices: 12,
        seed: 5,
        ..PlantConfig::default()
    };
    write_plant_capture(&lib, &cfg).unwrap();
    assert!(std::fs::read(&cli).unwrap() == std::fs::read(&lib).unwrap());
    let bad = mqscope()
        .args(["synth-capture", "--scenario", "plant", "--duration", "0"])
        .arg(dir.join("x.pcap"))
        .status()
        .unwrap();
    assert_eq!(bad.code(), Some(64));
    let _ = std::fs::remove_dir_all(&dir);
}

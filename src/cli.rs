//! Command line: parsing and dispatch. Errors from the library are typed; here they
//! become messages and sysexits-style exit codes.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use crate::dissect::DissectConfig;
use crate::export::{EventTally, MetricsSnapshot, MetricsState, PrometheusConfig};
use crate::observe::{ObserveConfig, Observer};
use crate::replay::{self, jsonl::JsonlWriter, progress::Progress, sink::ReplaySink};

/// EX_USAGE: bad command line or configuration.
pub const EXIT_USAGE: u8 = 64;
/// EX_DATAERR: an input file was truncated or corrupt part way (what was read is reported).
pub const EXIT_DATAERR: u8 = 65;
/// EX_NOINPUT: an input file could not be opened or has an unsupported link type; or the
/// capture interface could not be opened.
pub const EXIT_NOINPUT: u8 = 66;
/// EX_NOPERM: live capture lacks the capability (CAP_NET_RAW) to open the interface.
pub const EXIT_NOPERM: u8 = 77;

#[derive(Parser, Debug)]
#[command(
    name = "mqscope",
    version,
    about = "Passive MQTT observability and anomaly detection"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decode MQTT from pcap/pcapng files and report every control packet.
    Replay(ReplayArgs),
    /// Write a synthetic MQTT capture (for benchmarks and demos).
    SynthCapture(SynthArgs),
    /// Drive a real broker with simulated OT devices, consumers and misbehaviours.
    Simulate(SimArgs),
    /// Run the series anomaly detector over a `timestamp,value` CSV (e.g. a NAB file) and
    /// write `timestamp,value,score,alert`.
    DetectSeries(DetectSeriesArgs),
    /// Run the live sidecar: capture on an interface and/or read the broker's $SYS metrics,
    /// until SIGTERM/SIGINT. Flags override the config file; without a file, defaults.
    Run(RunArgs),
    /// Validate a `run` configuration file without opening anything; lists every error.
    CheckConfig(CheckConfigArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// TOML configuration (see deploy/mqscope.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Capture interface (`any`, `lo`, `eth0`, ...).
    #[arg(long, short)]
    interface: Option<String>,
    /// Broker ports carrying plain MQTT, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ports: Option<Vec<u16>>,
    /// Broker ports carrying MQTT over TLS, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tls_ports: Option<Vec<u16>>,
    /// Broker to read $SYS from: `host:port`, `mqtt://host:port`, `mqtts://host:port`.
    #[arg(long)]
    broker: Option<String>,
    /// Ignore the file's [broker] section.
    #[arg(long, conflicts_with = "broker")]
    no_broker: bool,
    /// HTTP endpoint address (`ip:port`, default 0.0.0.0:9883).
    #[arg(long)]
    listen: Option<String>,
    /// Do not capture; run on the broker's $SYS metrics and events alone.
    #[arg(long)]
    no_capture: bool,
    /// Write the final statistics as JSON to this file at shutdown.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

#[derive(clap::Args, Debug)]
struct CheckConfigArgs {
    /// The TOML file to check.
    file: PathBuf,
}

#[derive(clap::Args, Debug)]
struct DetectSeriesArgs {
    /// Input CSV with `timestamp,value` columns (timestamps `YYYY-MM-DD HH:MM:SS` UTC or
    /// epoch seconds).
    file: PathBuf,
    /// Output CSV (default: stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Detector configuration as JSON (fields of `DetectorConfig`; missing ones default).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// pcap or pcapng files, replayed in order as one capture.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// summary: report on stderr only; jsonl: one JSON object per MQTT packet on stdout
    /// (summary on stderr); none: summary only, for timing.
    #[arg(long, value_enum, default_value_t = Format::Summary)]
    format: Format,
    /// Broker ports carrying plain MQTT.
    #[arg(long, value_delimiter = ',', default_value = "1883")]
    ports: Vec<u16>,
    /// Broker ports carrying MQTT over TLS (counted, not decoded).
    #[arg(long, value_delimiter = ',', default_value = "8883")]
    tls_ports: Vec<u16>,
    /// Do not detect MQTT on other ports by a leading CONNECT.
    #[arg(long)]
    no_detect: bool,
    /// Skip (and count) packets whose remaining length exceeds this many bytes.
    #[arg(long, default_value_t = crate::dissect::config::DEFAULT_MAX_PACKET_SIZE)]
    max_packet_size: u32,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Write the observation report (topics, latency, clients, events) as JSON to this
    /// file (`-`: standard output).
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Decode only: skip the observation core (statistics, latency, events).
    #[arg(long)]
    no_observe: bool,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Write the Prometheus exposition (what `/metrics` would serve) to this file.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
    /// Serve `/metrics`, `/healthz`, `/readyz` on this address (port 0: any free port;
    /// the address is printed) during the replay and for `--linger` seconds after it.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Seconds to keep serving after the replay (with `--listen`).
    #[arg(long, requires = "listen", default_value_t = 60)]
    linger: u64,
    /// Prometheus exporter configuration as JSON (fields of `PrometheusConfig`).
    #[arg(long)]
    metrics_config: Option<PathBuf>,
    /// Security rule thresholds and admin client list as JSON (fields of `RulesConfig`;
    /// missing ones default).
    #[arg(long)]
    rules_config: Option<PathBuf>,
    /// Do not run the security rules.
    #[arg(long)]
    no_rules: bool,
    /// Anomaly engine configuration as JSON (fields of `AnomalyConfig`; missing ones
    /// default). With `persist.path` set, baselines are loaded from it before the replay
    /// and saved to it after.
    #[arg(long)]
    anomaly_config: Option<PathBuf>,
    /// Do not run the anomaly detectors.
    #[arg(long)]
    no_anomalies: bool,
}

#[derive(clap::Args, Debug)]
struct SynthArgs {
    /// Output pcap file.
    out: PathBuf,
    /// mix: a packet budget of every MQTT feature (decode benchmark); plant: normal plant
    /// traffic over time, with fan-out, as the broker's capture sees it.
    #[arg(long, value_enum, default_value_t = Scenario::Mix)]
    scenario: Scenario,
    /// mix: number of MQTT control packets to generate (approximately; the summary says exactly).
    #[arg(long, default_value_t = 10_000)]
    packets: u64,
    /// mix: concurrent connections.
    #[arg(long, default_value_t = 200)]
    connections: u32,
    /// plant: capture length in seconds.
    #[arg(long, default_value_t = 1800)]
    duration: u64,
    /// plant: number of devices.
    #[arg(long, default_value_t = 200)]
    devices: u32,
    /// plant: network blips per device and hour (cellular devices 4x).
    #[arg(long)]
    reconnects_per_hour: Option<f64>,
    /// plant: share of blips that leave a half-open connection (the reconnect takes the
    /// session over).
    #[arg(long)]
    half_open_share: Option<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Mix,
    Plant,
}

#[derive(clap::Args, Debug)]
struct SimArgs {
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// Simulated devices (each one connection).
    #[arg(long, default_value_t = 20)]
    devices: u32,
    /// Metrics each device publishes per interval (at most 6).
    #[arg(long, default_value_t = 3)]
    metrics: u32,
    /// Publishing interval of every device, milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Share of clients speaking MQTT 5 (the rest 3.1.1).
    #[arg(long, default_value_t = 0.3)]
    v5_share: f64,
    /// Consumers with wildcard subscriptions.
    #[arg(long, default_value_t = 2)]
    consumers: u32,
    /// Username for every client.
    #[arg(long)]
    username: Option<String>,
    /// File holding the password (else the MQSCOPE_SIM_PASSWORD environment variable).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Misbehaviour: this many connection attempts with wrong passwords.
    #[arg(long, default_value_t = 0)]
    brute_force: u32,
    /// Misbehaviour: publish to and subscribe to this (ACL-denied) topic.
    #[arg(long)]
    acl_topic: Option<String>,
    /// Misbehaviour: subscribe to `#` and `$SYS/#`.
    #[arg(long)]
    wildcard_subscribe: bool,
    /// Misbehaviour: one client publishing this many messages per second.
    #[arg(long, default_value_t = 0)]
    flood_rate: u32,
    /// Misbehaviour: device 0 goes silent after this many seconds.
    #[arg(long)]
    silent_after: Option<u64>,
    /// Misbehaviour: one PUBLISH with a payload of this many KiB.
    #[arg(long, default_value_t = 0)]
    oversized_kib: u32,
    /// Misbehaviour: this many idle connections with a 65535 s keepalive (SlowITe).
    #[arg(long, default_value_t = 0)]
    slowite: u32,
    /// Misbehaviour: device 0's client id connects again from a new connection.
    #[arg(long)]
    takeover: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Summary,
    Jsonl,
    None,
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.cmd {
        Command::Replay(a) => run_replay(a),
        Command::SynthCapture(a) => run_synth(a),
        Command::Simulate(a) => run_simulate(a),
        Command::DetectSeries(a) => run_detect_series(a),
        Command::Run(a) => Ok(run_live(a)),
        Command::CheckConfig(a) => Ok(check_config(&a.file)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mqscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate_replay(a: &ReplayArgs) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if a.ports.contains(&0) || a.tls_ports.contains(&0) {
        errs.push("port 0 is not a valid broker port".to_string());
    }
    if let Some(p) = a.ports.iter().find(|p| a.tls_ports.contains(p)) {
        errs.push(format!("port {p} is listed both as plain MQTT and as TLS"));
    }
    if a.report_json.as_deref() == Some(Path::new("-")) && a.format == Format::Jsonl {
        errs.push(
            "--report-json - and --format jsonl would share standard output; write the report to a file"
                .to_string(),
        );
    }
    if a.max_packet_size == 0 || a.max_packet_size > 268_435_455 {
        errs.push(
            "--max-packet-size must be between 1 and 268435455 (the MQTT maximum)".to_string(),
        );
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn run_replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    if let Err(errs) = validate_replay(&a) {
        for e in errs {
            eprintln!("mqscope: {e}");
        }
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let cfg = DissectConfig {
        ports: a.ports.clone(),
        tls_ports: a.tls_ports.clone(),
        detect_by_content: !a.no_detect,
        max_packet_size: a.max_packet_size,
        ..DissectConfig::default()
    };
    let mcfg = match load_metrics_config(a.metrics_config.as_deref(), a.listen) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let metrics = MetricsState::new(mcfg);
    if let Some(addr) = a.listen {
        let bound = spawn_metrics_server(addr, Arc::clone(&metrics))
            .with_context(|| format!("listening on {addr}"))?;
        eprintln!("mqscope: serving metrics on http://{bound}/metrics");
    }
    let progress = if a.no_progress {
        None
    } else {
        Progress::for_files(&a.files)
    };
    let observer = if a.no_observe {
        None
    } else {
        Some(Observer::new(&ObserveConfig::default())?)
    };
    let jsonl = (a.format == Format::Jsonl)
        .then(|| JsonlWriter::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())));
    let engine = if a.no_rules {
        None
    } else {
        match load_rules_config(a.rules_config.as_deref(), &a.tls_ports) {
            Ok(e) => Some(e),
            Err(code) => return Ok(code),
        }
    };
    // Anomalies read the observer: off with --no-observe.
    let anomaly = if a.no_anomalies || a.no_observe {
        None
    } else {
        match load_anomaly_config(a.anomaly_config.as_deref()) {
            Ok(e) => Some(e),
            Err(code) => return Ok(code),
        }
    };
    let inner = ReplaySink { jsonl, observer };
    let (report, mut sink, mut rules, mut anomaly) = match engine {
        Some(engine) => {
            let cap = ObserveConfig::default().max_events_queued;
            let rs = replay::rules::RulesSink::new(inner, engine, cap);
            let mut an = replay::anomaly::AnomalySink::new(rs, anomaly);
            let report = replay::replay_files(&a.files, cfg, progress.as_ref(), &mut an);
            let replay::anomaly::AnomalySink {
                inner: mut rs,
                engine: anomaly,
                ..
            } = an;
            rs.finish();
            let replay::rules::RulesSink {
                inner,
                engine,
                events,
            } = rs;
            (report, inner, Some((engine, events)), anomaly)
        }
        None => {
            let mut an = replay::anomaly::AnomalySink::new(inner, anomaly);
            let report = replay::replay_files(&a.files, cfg, progress.as_ref(), &mut an);
            (report, an.inner, None, an.engine)
        }
    };
    if let Some(eng) = &mut anomaly
        && eng.config().persist.path.is_some()
    {
        let at = eng.last_bucket_ns().unwrap_or(0);
        if let Err(e) = eng.save_file(at) {
            eprintln!("mqscope: saving anomaly baselines: {e}");
        }
    }
    if let Some(w) = sink.jsonl.take() {
        match w.finish() {
            Ok(_) => {}
            // A closed pipe (`| head`) is the reader's choice, not our failure.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) => return Err(e).context("writing jsonl to stdout"),
        }
    }
    eprint!("{}", report.to_text());
    // The events kept (up to the queue's cap), in time order: with the rules on they were
    // passed through them first. Read by the report and the exporter's tally.
    let mut kept_events: Vec<crate::observe::Event> = Vec::new();
    if let Some(obs) = &mut sink.observer {
        obs.finish();
        if let Some((_, events)) = &mut rules {
            kept_events.extend(events.drain());
        }
        kept_events.extend(obs.events().drain());
        // Built only when someone reads it (a snapshot walks every topic group).
        let want_snapshot = a.format != Format::None || a.report_json.is_some();
        let snap = want_snapshot.then(|| obs.snapshot());
        if let Some(snap) = snap.as_ref().filter(|_| a.format != Format::None) {
            eprint!("{}", replay::report::to_text(snap));
            if let Some((engine, _)) = &rules {
                eprint!("{}", replay::rules::to_text(engine.hits()));
            }
            if let Some(eng) = &anomaly {
                eprint!("{}", replay::anomaly::to_text(eng.hits()));
            }
        }
        if let (Some(path), Some(snap)) = (&a.report_json, &snap) {
            let mut v = replay::report::to_json(snap, &kept_events);
            if let (Some((engine, _)), Some(m)) = (&rules, v.as_object_mut()) {
                m.insert("rules".into(), serde_json::to_value(engine.snapshot())?);
            }
            if let (Some(eng), Some(m)) = (&anomaly, v.as_object_mut()) {
                m.insert("anomalies".into(), serde_json::to_value(eng.snapshot())?);
            }
            let text = serde_json::to_string_pretty(&v)? + "\n";
            if path == Path::new("-") {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .context("writing the report to standard output")?;
            } else {
                std::fs::write(path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    if a.metrics_out.is_some() || a.listen.is_some() {
        let mut snap = MetricsSnapshot::new(report.stats.clone(), report.capture.clone());
        if let Some(obs) = &mut sink.observer {
            // Nothing else consumes events in replay: the tally reads them all (up to
            // the queue's cap; the rest are `reason="unknown"`).
            let mut tally = EventTally::default();
            for e in &kept_events {
                tally.observe(e);
            }
            snap = snap.with_observer(obs, metrics.config());
            snap.events = Some(tally);
        }
        // mqscope_alerts_firing{rule,severity}: rule and anomaly hits still active at the
        // end of the replay, per rule (rules that hit and cleared show 0).
        let rule_hits = rules.as_ref().map_or(&[][..], |(e, _)| e.hits());
        let anomaly_hits = anomaly.as_ref().map_or(&[][..], |e| e.hits());
        snap.alerts = replay::anomaly::alert_series(rule_hits.iter().chain(anomaly_hits));
        metrics.publish(snap);
        // The file first, then readiness: whoever waits for /readyz finds the file written.
        if let Some(path) = &a.metrics_out {
            std::fs::write(path, metrics.render())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        metrics.set_ready(true);
    }
    if let Some(path) = &a.summary_json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    let mut code = ExitCode::SUCCESS;
    for f in &report.files {
        if let Some(e) = &f.error {
            eprintln!("mqscope: {e}");
            code = ExitCode::from(if f.frames == 0 {
                EXIT_NOINPUT
            } else {
                EXIT_DATAERR
            });
        }
    }
    let _ = io::stderr().flush();
    if a.listen.is_some() {
        std::thread::sleep(std::time::Duration::from_secs(a.linger));
    }
    Ok(code)
}

/// A JSON configuration file (`--rules-config`, `--anomaly-config`, `--metrics-config`),
/// or the defaults without one; unreadable or invalid → usage error, already reported.
fn read_json_config<T: serde::de::DeserializeOwned + Default>(
    path: Option<&std::path::Path>,
) -> Result<T, ExitCode> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    std::fs::read_to_string(p)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| {
            eprintln!("mqscope: {}: {e}", p.display());
            ExitCode::from(EXIT_USAGE)
        })
}

/// The security rules from `--rules-config` (defaults otherwise), with the TLS ports
/// taken from `--tls-ports`; invalid → usage error, already reported.
fn load_rules_config(
    path: Option<&std::path::Path>,
    tls_ports: &[u16],
) -> Result<crate::detect::rules::RuleEngine, ExitCode> {
    let mut cfg: crate::detect::rules::RulesConfig = read_json_config(path)?;
    cfg.tls_ports = tls_ports.to_vec();
    crate::detect::rules::RuleEngine::new(cfg).map_err(|errs| {
        for e in errs {
            eprintln!("mqscope: rules config: {e}");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

/// The anomaly engine from `--anomaly-config` (defaults otherwise), with baselines
/// loaded from its `persist.path` when that file exists; invalid → usage error.
fn load_anomaly_config(
    path: Option<&std::path::Path>,
) -> Result<crate::detect::anomaly::AnomalyEngine, ExitCode> {
    let cfg: crate::detect::anomaly::AnomalyConfig = read_json_config(path)?;
    let mut eng = crate::detect::anomaly::AnomalyEngine::new(cfg).map_err(|errs| {
        for e in errs {
            eprintln!("mqscope: anomaly config: {e}");
        }
        ExitCode::from(EXIT_USAGE)
    })?;
    match eng.load_file() {
        Ok(Some(r)) => eprintln!(
            "mqscope: loaded anomaly baselines: {} series, {} topics, {} clients",
            r.series, r.topics, r.clients
        ),
        Ok(None) => {}
        // A baseline file that cannot be used is not fatal: learn from scratch.
        Err(e) => eprintln!("mqscope: anomaly baselines not loaded: {e}"),
    }
    Ok(eng)
}

fn load_metrics_config(
    path: Option<&std::path::Path>,
    listen: Option<std::net::SocketAddr>,
) -> Result<PrometheusConfig, ExitCode> {
    let mut cfg: PrometheusConfig = read_json_config(path)?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    let errs = cfg.validate();
    if errs.is_empty() {
        return Ok(cfg);
    }
    for e in errs {
        eprintln!("mqscope: metrics config: {e}");
    }
    Err(ExitCode::from(EXIT_USAGE))
}

/// Binds now (so the address, and any error, is known before the replay starts) and
/// serves from a thread of its own with a one-thread runtime: the replay never waits
/// on a scrape.
fn spawn_metrics_server(
    addr: std::net::SocketAddr,
    state: Arc<MetricsState>,
) -> io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => crate::export::http::serve(l, state).await,
                    Err(e) => eprintln!("mqscope: metrics listener: {e}"),
                }
            })
        })?;
    Ok(bound)
}

fn run_synth(a: SynthArgs) -> anyhow::Result<ExitCode> {
    if a.scenario == Scenario::Plant {
        return run_synth_plant(&a);
    }
    let cfg = crate::synth::SynthConfig {
        packets: a.packets,
        connections: a.connections,
        seed: a.seed,
        ..Default::default()
    };
    let s = crate::synth::write_capture(&a.out, &cfg)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {}: {:?}", a.out.display(), s);
    Ok(ExitCode::SUCCESS)
}

fn run_synth_plant(a: &SynthArgs) -> anyhow::Result<ExitCode> {
    use crate::synth::plant::{PlantConfig, write_plant_capture};
    let d = PlantConfig::default();
    let cfg = PlantConfig {
        duration_s: a.duration,
        devices: a.devices,
        seed: a.seed,
        reconnects_per_hour: a.reconnects_per_hour.unwrap_or(d.reconnects_per_hour),
        half_open_share: a.half_open_share.unwrap_or(d.half_open_share),
        ..d
    };
    let shares_ok = (0.0..=1.0).contains(&cfg.half_open_share)
        && cfg.reconnects_per_hour.is_finite()
        && cfg.reconnects_per_hour >= 0.0;
    if cfg.duration_s == 0 || cfg.duration_s > 7 * 86_400 || cfg.devices == 0 || !shares_ok {
        eprintln!(
            "mqscope: --duration must be 1..=604800 s, --devices at least 1, \
             --reconnects-per-hour >= 0, --half-open-share in [0, 1]"
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let t = std::time::Instant::now();
    let s = write_plant_capture(&a.out, &cfg)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "wrote {} in {:.2}s: {} frames, {:.1} MB, {} MQTT packets, {} clients, {} topics, \
         {} connections ({} reconnects), {:.0}s",
        a.out.display(),
        t.elapsed().as_secs_f64(),
        s.frames,
        s.file_bytes as f64 / 1e6,
        s.mqtt_packets,
        s.clients,
        s.topics,
        s.connections,
        s.reconnects,
        (s.last_ts_ns - s.first_ts_ns) as f64 / 1e9
    );
    eprintln!("{}", serde_json::to_string(&s)?);
    Ok(ExitCode::SUCCESS)
}

fn run_detect_series(a: DetectSeriesArgs) -> anyhow::Result<ExitCode> {
    use crate::detect::{DetectorConfig, SeriesDetector};
    let cfg: DetectorConfig = match &a.config {
        None => DetectorConfig::default(),
        Some(p) => {
            let text = match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("mqscope: {}: {e}", p.display());
                    return Ok(ExitCode::from(EXIT_NOINPUT));
                }
            };
            match serde_json::from_str(&text) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!(
                        "mqscope: {}: not a detector configuration: {e}",
                        p.display()
                    );
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            }
        }
    };
    let text = match std::fs::read_to_string(&a.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mqscope: {}: {e}", a.file.display());
            return Ok(ExitCode::from(EXIT_NOINPUT));
        }
    };
    let rows = match crate::eval::series::parse_series(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mqscope: {}: {e}", a.file.display());
            return Ok(ExitCode::from(EXIT_DATAERR));
        }
    };
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let mut det = SeriesDetector::new(cfg);
    let mut alerts = 0u64;
    let mut write = || -> io::Result<()> {
        writeln!(out, "timestamp,value,score,alert")?;
        for r in &rows {
            let v = det.update(r.ts_ns, r.value);
            alerts += u64::from(v.alert);
            writeln!(
                out,
                "{},{},{:.6},{}",
                r.raw_ts,
                r.raw_value,
                v.score,
                u8::from(v.alert)
            )?;
        }
        out.flush()
    };
    match write() {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("writing output"),
    }
    eprintln!("mqscope: {} rows, {alerts} alerts", rows.len());
    Ok(ExitCode::SUCCESS)
}

fn run_simulate(a: SimArgs) -> anyhow::Result<ExitCode> {
    let (host, port) = match a
        .broker
        .rsplit_once(':')
        .map(|(h, p)| (h, p.parse::<u16>()))
    {
        Some((h, Ok(p))) if !h.is_empty() && p != 0 => (h.trim_matches(['[', ']']).to_string(), p),
        _ => {
            eprintln!("mqscope: --broker must be host:port, got {:?}", a.broker);
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    if !(0.0..=1.0).contains(&a.v5_share) || a.interval_ms == 0 || a.duration == 0 {
        eprintln!(
            "mqscope: --v5-share must be in [0, 1]; --interval-ms and --duration must be > 0"
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let password = match &a.password_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading {}", f.display()))?
                .trim_end()
                .to_string(),
        ),
        None => std::env::var("MQSCOPE_SIM_PASSWORD").ok(),
    };
    let credentials = match (&a.username, password) {
        (Some(u), Some(p)) => Some((u.clone(), p)),
        (Some(u), None) => Some((u.clone(), String::new())),
        (None, _) => None,
    };
    let cfg = crate::sim::SimConfig {
        host,
        port,
        devices: a.devices,
        metrics_per_device: a.metrics,
        interval_ms: a.interval_ms,
        duration: std::time::Duration::from_secs(a.duration),
        v5_share: a.v5_share,
        consumers: a.consumers,
        credentials,
        misbehave: crate::sim::Misbehaviours {
            brute_force: a.brute_force,
            acl_topic: a.acl_topic,
            wildcard_subscribe: a.wildcard_subscribe,
            flood_rate: a.flood_rate,
            silent_after: a.silent_after.map(std::time::Duration::from_secs),
            oversized_kib: a.oversized_kib,
            slowite: a.slowite,
            takeover: a.takeover,
        },
        ..crate::sim::SimConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let counters = rt.block_on(crate::sim::run(cfg));
    eprintln!("mqscope simulate: {}", counters.summary());
    Ok(ExitCode::SUCCESS)
}

fn overrides(a: &RunArgs) -> crate::config::Overrides {
    crate::config::Overrides {
        interface: a.interface.clone(),
        ports: a.ports.clone(),
        tls_ports: a.tls_ports.clone(),
        broker: a.broker.clone(),
        listen: a.listen.clone(),
        no_capture: a.no_capture,
        no_broker: a.no_broker,
    }
}

fn run_live(a: RunArgs) -> ExitCode {
    use crate::app::{self, AppError};
    use crate::config::Config;
    let _ = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(a.log_level)
        .with_target(false)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .try_init();
    let ov = overrides(&a);
    let loaded = match &a.config {
        Some(p) => Config::load_with(p, &ov),
        None => Config::from_overrides(&ov),
    };
    let cfg = match loaded {
        Ok(c) => c,
        Err(errs) => {
            let file = a.config.as_ref().map(|p| format!("{}: ", p.display()));
            for e in errs.0 {
                eprintln!("mqscope: {}{e}", file.as_deref().unwrap_or(""));
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let opts = app::RunOptions {
        stats_file: a.stats_file,
        ..Default::default()
    };
    match app::run(cfg, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqscope: {e}");
            ExitCode::from(match e {
                AppError::Config(_) | AppError::Broker(_) => EXIT_USAGE,
                AppError::Capture(c) if c.is_permission() => EXIT_NOPERM,
                AppError::Capture(_) => EXIT_NOINPUT,
                AppError::ShutdownTimeout | AppError::Other(_) => 1,
            })
        }
    }
}

/// Prints `ok: <summary>` on stdout, or every error on stderr (one per line, prefixed by
/// the file name) and exits 64. Opens nothing but the file (and checks that files it names
/// exist).
fn check_config(path: &std::path::Path) -> ExitCode {
    match crate::config::Config::load(path) {
        Ok(c) => {
            println!("ok: {}: {}", path.display(), c.summary());
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{}: {e}", path.display());
            }
            eprintln!("{}: {} error(s)", path.display(), errs.0.len());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

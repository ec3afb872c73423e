//! `mqscope run`: wiring and lifecycle of the live sidecar.
//!
//! Threads: the capture thread (`input::capture`) reads frames into batches; one
//! processing thread owns the pure state (`Dissector`, `Observer`, the `$SYS` feed) and is
//! the only one to touch it; the main thread runs a small tokio runtime for the broker
//! connection and the signals. Every second the processing thread publishes an
//! [`AppSnapshot`] into a [`SnapshotSlot`]: that is where the HTTP exporter reads.
//!
//! Shutdown (SIGTERM, SIGINT, or [`StopHandle::stop`]): capture stops and sends what it
//! holds, the processing thread drains the channel, finishes the dissector (flushing
//! partial streams), publishes a last snapshot and writes the stats file; the whole
//! sequence is bounded by [`SHUTDOWN_LIMIT`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::broker::{BrokerFeed, BrokerMetrics, EmqxEventStats, SysConfig, SysStats};
use crate::capture::CaptureStats;
use crate::config::{Config, ConfigError};
use crate::detect::anomaly::AnomalySnapshot;
use crate::detect::rules::{RuleEngine, RulesSnapshot};
use crate::dissect::{DissectStats, Dissector};
use crate::export::MetricsState;
use crate::export::alerts::{AlertBook, Receiver};
use crate::input::capture::{CaptureCountersSnapshot, CaptureError, LiveCapture};
use crate::input::{BrokerInput, BrokerStatus, FeedDriver};
use crate::mqtt::PacketType;
use crate::observe::{Event, Observer, ObserverSnapshot};

mod outputs;
mod pipeline;
mod processor;

use crate::replay::ReplayReport;
use outputs::Outputs;
pub use outputs::{LogSink, LogSinkCounts, OtlpSink, OutputStats};
use pipeline::Pipeline;
use processor::{BrokerLink, Processor};

/// Upper bound on the time from the stop request to the process being ready to exit.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);
/// How often the snapshot is published (and idle housekeeping runs).
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for a batch before looking at the broker input and the clock.
pub(crate) const POLL: Duration = Duration::from_millis(50);
/// Drops are logged at most this often (they can happen on every batch under overload).
pub(crate) const DROP_WARN_EVERY: Duration = Duration::from_secs(10);
/// How many of the latest events the snapshot keeps with all their fields (who, which
/// topic, which code): operators want to see the last denials, not only their counts.
/// Older ones survive only in the counters.
pub const RECENT_EVENTS: usize = 100;

// ---------------------------------------------------------------------------------------
// EXPORTER HOOK. The processing thread replaces the slot's content every second (and once
// more at shutdown, with `final_snapshot = true`). An HTTP exporter (`/metrics`,
// `/healthz`, `/readyz`) holds a clone of the slot and reads the latest `Arc` under the
// lock (a pointer copy; render outside the lock). `RunOptions::snapshot` is the slot; the
// listen address is `Config::http.listen` / `Config::listen_addr()`. Start the server in
// `run` where marked "EXPORTER: start here".
// ---------------------------------------------------------------------------------------

/// The latest published state; `None` until the first publication.
pub type SnapshotSlot = Arc<Mutex<Option<Arc<AppSnapshot>>>>;

pub fn new_snapshot_slot() -> SnapshotSlot {
    Arc::new(Mutex::new(None))
}

/// Everything the live pipeline knows, as owned data.
#[derive(Clone, Debug)]
pub struct AppSnapshot {
    /// Wall clock at publication (ns since the epoch).
    pub at_ns: u64,
    pub started_ns: u64,
    /// Set on the last snapshot, published at shutdown.
    pub final_snapshot: bool,
    /// `None` with `--no-capture`.
    pub capture: Option<CaptureInfo>,
    pub dissect: DissectStats,
    /// TCP layer counters (flows, reassembly).
    pub tcp: CaptureStats,
    pub observer: ObserverSnapshot,
    /// Security rule hits and counters; `None` when the rules are off.
    pub rules: Option<RulesSnapshot>,
    /// Anomaly hits and counters; `None` when anomaly detection is off.
    pub anomalies: Option<AnomalySnapshot>,
    /// Alerts fired / resolved and log records handed to the outputs.
    pub outputs: OutputStats,
    /// `None` without a `[broker]` input.
    pub broker: Option<BrokerSnapshot>,
    /// The last [`RECENT_EVENTS`] events, oldest first.
    pub recent_events: Vec<Event>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaptureInfo {
    pub interface: String,
    pub filter: String,
    pub dlt: i32,
    pub counters: CaptureCountersSnapshot,
}

#[derive(Clone, Debug, Serialize)]
pub struct BrokerSnapshot {
    pub status: BrokerStatus,
    pub messages: u64,
    pub dropped_channel_full: u64,
    pub connects: u64,
    pub failures: u64,
    /// Normalised `$SYS` metrics, one per broker node.
    pub nodes: Vec<BrokerMetrics>,
    pub sys: SysStats,
    /// No uptime update for several intervals: the values are old.
    pub sys_stale: bool,
    pub emqx_events: EmqxEventStats,
}

impl AppSnapshot {
    /// Ready: capture (if configured) is running and the broker input (if configured) is
    /// connected.
    pub fn ready(&self) -> bool {
        !self.final_snapshot
            && self
                .broker
                .as_ref()
                .is_none_or(|b| matches!(b.status, BrokerStatus::Connected { .. }))
    }

    /// MQTT packets by type name and direction `[client→broker, broker→client]`.
    pub fn packets_by_type(&self) -> Vec<(&'static str, [u64; 2])> {
        (0..16u8)
            .filter(|&t| self.dissect.packets[usize::from(t)] != [0, 0])
            .map(|t| {
                let name = PacketType::from_nibble(t).map_or("RESERVED", |p| p.name());
                (name, self.dissect.packets[usize::from(t)])
            })
            .collect()
    }

    /// The stats file's content (`--stats-file`).
    pub fn to_json(&self) -> Value {
        let dissect = ReplayReport {
            files: Vec::new(),
            stats: self.dissect.clone(),
            capture: self.tcp.clone(),
            elapsed: Duration::from_nanos(self.at_ns.saturating_sub(self.started_ns)),
        }
        .to_json();
        let by_dir: serde_json::Map<String, Value> = self
            .packets_by_type()
            .into_iter()
            .map(|(n, [c2s, s2c])| (n.to_string(), json!({"c2s": c2s, "s2c": s2c})))
            .collect();
        json!({
            "at_ns": self.at_ns,
            "started_ns": self.started_ns,
            "final": self.final_snapshot,
            "capture": self.capture,
            "dissect": dissect,
            "packets_by_type_and_direction": by_dir,
            "tcp": self.tcp,
            "observer": self.observer,
            "rules": self.rules,
            "anomalies": self.anomalies,
            "outputs": self.outputs,
            "broker": self.broker,
            "recent_events": self.recent_events,
        })
    }
}

/// Asks a running [`run`] to shut down (as SIGTERM does). For embedding and tests.
#[derive(Clone, Debug, Default)]
pub struct StopHandle(Arc<Notify>);

impl StopHandle {
    pub fn new() -> StopHandle {
        StopHandle::default()
    }

    pub fn stop(&self) {
        // A stored permit: works whether or not `run` is already waiting.
        self.0.notify_one();
    }
}

/// What `run` needs besides the configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Write the final snapshot as JSON here at shutdown.
    pub stats_file: Option<PathBuf>,
    /// Where snapshots are published (the exporter hook); a private one if `None`.
    pub snapshot: Option<SnapshotSlot>,
    pub stop: Option<StopHandle>,
}

/// Why `run` ended other than by a clean shutdown. The command line maps these to exit
/// codes (64 config, 77 capture permission, 66 capture could not open).
#[derive(Debug)]
pub enum AppError {
    Config(Vec<ConfigError>),
    Capture(CaptureError),
    Broker(Vec<String>),
    ShutdownTimeout,
    Other(anyhow::Error),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Config(errs) => {
                for (i, e) in errs.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "config: {e}")?;
                }
                Ok(())
            }
            AppError::Capture(e) => write!(f, "{e}"),
            AppError::Broker(errs) => write!(f, "broker: {}", errs.join("; ")),
            AppError::ShutdownTimeout => write!(
                f,
                "shutdown did not finish within {} s; exiting anyway",
                SHUTDOWN_LIMIT.as_secs()
            ),
            AppError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError::Other(e)
    }
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        AppError::Other(e.into())
    }
}

/// Runs until SIGTERM/SIGINT or `opts.stop`, then shuts down within [`SHUTDOWN_LIMIT`].
/// The configuration is validated before anything is opened.
pub fn run(cfg: Config, opts: RunOptions) -> Result<(), AppError> {
    let errs = cfg.validate();
    if !errs.is_empty() {
        return Err(AppError::Config(errs));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    // SIGTERM and SIGINT are caught from here on, before the slow start-up work: one
    // that arrives meanwhile (a pod deleted while it starts) is acted on as soon as
    // start-up is done, instead of killing the process by the default action before
    // any handler exists, with nothing flushed and no statistics written.
    let mut signals = StopSignals::catch();
    tracing::info!(config = %cfg.summary(), "starting");
    let started_ns = now_ns();
    let slot = opts.snapshot.clone().unwrap_or_else(new_snapshot_slot);
    let observer = Observer::new(&cfg.observe)
        .map_err(|e| anyhow::anyhow!("observe config: {}", e.problems.join("; ")))?;

    // The broker input first: it reads its password and TLS files now but connects only
    // once the runtime runs, so a capture failure below leaves nothing half-open.
    let broker = match &cfg.broker {
        Some(b) => match BrokerInput::start(b.clone()) {
            Ok(mut input) => {
                tracing::info!(url = %b.url, "broker input started");
                // The processing thread consumes the messages; the task stays here (it is
                // aborted when `input` drops, after processing has finished).
                let (_, closed) = mpsc::channel(1);
                let rx = std::mem::replace(&mut input.rx, closed);
                let link = BrokerLink {
                    rx,
                    status: input.status.clone(),
                    stats: input.stats.clone(),
                    driver: FeedDriver::new(BrokerFeed::new(SysConfig::default())),
                };
                Some((input, link))
            }
            Err(errs) => return Err(AppError::Broker(errs)),
        },
        None => None,
    };
    let (broker_input, broker_link) = match broker {
        Some((i, l)) => (Some(i), Some(l)),
        None => (None, None),
    };

    let capture = if cfg.capture.enabled {
        match LiveCapture::start(&cfg.capture) {
            Ok(c) => {
                tracing::info!(
                    interface = %cfg.capture.interface,
                    filter = %c.filter,
                    link_type = c.dlt,
                    snaplen = cfg.capture.snaplen,
                    promiscuous = cfg.capture.promiscuous,
                    "capture started"
                );
                Some(c)
            }
            Err(e) => return Err(AppError::Capture(e)),
        }
    } else {
        tracing::info!("capture disabled: running on the broker input alone");
        None
    };

    // The HTTP endpoint (/metrics, /healthz, /readyz) runs on this thread's runtime while
    // it waits for a stop signal; it only reads snapshots the processing thread publishes.
    // A bind failure ends `run` here, before processing starts.
    let listen = cfg
        .listen_addr()
        .ok_or_else(|| anyhow::anyhow!("http.listen is not ip:port"))?;
    let metrics = MetricsState::new(cfg.http.prometheus(listen));
    let std_listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for /metrics: {e}"))?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    rt.spawn(crate::export::http::serve(listener, metrics.clone()));
    // Huge pages for the observation state where the re-exec could not give them (the
    // image's file capability: see `hugepages`).
    if crate::hugepages::should_advise() {
        rt.spawn(async {
            loop {
                let n = crate::hugepages::advise_heap();
                tracing::debug!(bytes = n, "heap advised for transparent huge pages");
                tokio::time::sleep(crate::hugepages::ADVISE_EVERY).await;
            }
        });
    }
    tracing::info!(listen = %bound, "serving /metrics, /healthz, /readyz");

    // Alert receivers run as tasks on this thread's runtime; the processing thread only
    // queues into them. A receiver that cannot start (spool directory, CA file) ends `run`
    // here, before processing starts: alerts that cannot be kept must not be promised.
    let receivers = start_receivers(&cfg)?;
    let rules = RuleEngine::new(cfg.rules_config())
        .map_err(|e| anyhow::anyhow!("rules: {}", e.join("; ")))?;
    let book = AlertBook::new(cfg.alerts.max_firing).with_generator_url(&cfg.alerts.generator_url);
    let mut logs: Vec<Box<dyn LogSink>> = Vec::new();
    if cfg.otlp.enabled {
        // Started now: its cumulative points count from here, like /metrics.
        let exporter = crate::export::otlp::OtlpExporter::start(&cfg.otlp, metrics.clone())
            .map_err(|e| anyhow::anyhow!("otlp: {e}"))?;
        tracing::info!(endpoint = %cfg.otlp.endpoint, protocol = ?cfg.otlp.protocol, "OTLP export started");
        logs.push(Box::new(OtlpSink {
            exporter,
            logs: cfg.otlp.logs,
        }));
    }
    if cfg.azure_logs.enabled {
        let a = crate::export::azure::AzureLogs::start(&cfg.azure_logs)
            .map_err(|e| anyhow::anyhow!("azure_logs: {e}"))?;
        tracing::info!(endpoint = %cfg.azure_logs.endpoint, stream = %cfg.azure_logs.stream, "Azure Monitor logs ingestion started");
        logs.push(Box::new(a));
    }
    let mut outputs = Outputs::new(book, receivers.clone(), logs);
    if !receivers.is_empty() {
        outputs.restore(
            &cfg.alerts.spool_dir,
            Duration::from_secs(cfg.alerts.restore_grace_s),
            crate::export::alerts::Timestamp::now(),
        );
    }

    let mut pipe = Pipeline::new(observer, Some(rules), outputs);
    if cfg.anomaly.enabled {
        let mut eng = crate::detect::anomaly::AnomalyEngine::new(cfg.anomaly.clone())
            .map_err(|e| anyhow::anyhow!("anomaly: {}", e.join("; ")))?;
        // Baselines from the last run: detection resumes without a new warm-up. A missing
        // or unreadable file only means learning from zero.
        match eng.load_file() {
            Ok(Some(r)) => tracing::info!(
                series = r.series,
                topics = r.topics,
                clients = r.clients,
                dropped = r.series_dropped,
                "anomaly baselines loaded"
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "anomaly baselines not loaded; learning from zero")
            }
        }
        pipe.anomaly = Some(eng);
    }

    let shutdown = Arc::new(AtomicBool::new(false));
    let proc = Processor {
        dissector: Dissector::new(cfg.dissect()),
        pipe,
        capture,
        interface: cfg.capture.interface.clone(),
        broker: broker_link,
        slot: slot.clone(),
        shutdown: shutdown.clone(),
        started_ns,
        frame_no: 0,
        last_ts_ns: 0,
        stats_file: opts.stats_file.clone(),
        metrics,
    };
    let worker: JoinHandle<anyhow::Result<()>> = std::thread::Builder::new()
        .name("mqscope-process".into())
        .spawn(move || proc.run())?;

    let stop = opts.stop.clone().unwrap_or_default();
    let why = rt.block_on(wait_for_stop(&stop, &worker, &mut signals));
    tracing::info!(reason = why, "shutting down");
    // The broker input first: the runtime keeps running below (receivers deliver while
    // processing finishes), and `$SYS` keeps arriving; the capture stops now, so the
    // input must too, or the two would disagree about what was seen.
    drop(broker_input);
    shutdown.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + SHUTDOWN_LIMIT;
    // Driven on the runtime, so receivers keep delivering while processing finishes.
    rt.block_on(async {
        while !worker.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // What the last publication queued gets its chance to go out; the rest waits in
        // the spools for the next start.
        let flush =
            (Instant::now() + Duration::from_secs(cfg.alerts.shutdown_flush_s)).min(deadline);
        while Instant::now() < flush && !receivers.iter().all(Receiver::is_idle) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    for r in receivers.iter() {
        if !r.is_idle() {
            tracing::warn!(
                receiver = r.name(),
                "alerts still undelivered at exit; kept in the spool"
            );
        }
    }
    if !worker.is_finished() {
        return Err(AppError::ShutdownTimeout);
    }
    match worker.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(AppError::Other(e)),
        Err(_) => Err(AppError::Other(anyhow::anyhow!(
            "processing thread panicked"
        ))),
    }
}

fn start_receivers(cfg: &Config) -> Result<Arc<[Receiver]>, AppError> {
    let specs = cfg
        .alerts
        .resolve()
        .map_err(|e| anyhow::anyhow!("alerts: {}", e.join("; ")))?;
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let r = Receiver::start(spec).map_err(|e| anyhow::anyhow!("alerts: {e}"))?;
        tracing::info!(receiver = r.name(), "alert receiver started");
        out.push(r);
    }
    Ok(out.into())
}

/// The signals that stop `run`, registered when it starts (see there).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Must run inside the runtime. A signal received from now on is kept for `next`.
    fn catch() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The next signal (pending forever if none can come).
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = one(&mut self.term) => "SIGTERM",
                _ = one(&mut self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Waits for a signal, the stop handle, or the processing thread ending on its own.
async fn wait_for_stop(
    stop: &StopHandle,
    worker: &JoinHandle<anyhow::Result<()>>,
    signals: &mut StopSignals,
) -> &'static str {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            why = signals.next() => return why,
            _ = stop.0.notified() => return "stop requested",
            _ = tick.tick() => {
                if worker.is_finished() {
                    return "processing ended";
                }
            }
        }
    }
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

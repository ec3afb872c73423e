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

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};

use crate::broker::{BrokerFeed, BrokerMetrics, EmqxEventStats, SysConfig, SysStats};
use crate::capture::CaptureStats;
use crate::config::{Config, ConfigError};
use crate::dissect::{DissectStats, Dissector};
use crate::export::prometheus::KernelDrops;
use crate::export::{EventTally, MetricsSnapshot, MetricsState};
use crate::input::capture::{CaptureCountersSnapshot, CaptureError, LiveCapture};
use crate::input::{BrokerInput, BrokerMsg, BrokerStatus, FeedDriver, InputStats};
use crate::mqtt::PacketType;
use crate::observe::{Event, Observer, ObserverSnapshot};
use crate::replay::ReplayReport;

/// Upper bound on the time from the stop request to the process being ready to exit.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);
/// How often the snapshot is published (and idle housekeeping runs).
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for a batch before looking at the broker input and the clock.
const POLL: Duration = Duration::from_millis(50);
/// Drops are logged at most this often (they can happen on every batch under overload).
const DROP_WARN_EVERY: Duration = Duration::from_secs(10);
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
    tracing::info!(listen = %bound, "serving /metrics, /healthz, /readyz");

    let shutdown = Arc::new(AtomicBool::new(false));
    let proc = Processor {
        dissector: Dissector::new(cfg.dissect()),
        observer,
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
        tally: EventTally::default(),
        recent: VecDeque::with_capacity(RECENT_EVENTS),
    };
    let worker: JoinHandle<anyhow::Result<()>> = std::thread::Builder::new()
        .name("mqscope-process".into())
        .spawn(move || proc.run())?;

    let stop = opts.stop.clone().unwrap_or_default();
    let why = rt.block_on(wait_for_stop(&stop, &worker));
    tracing::info!(reason = why, "shutting down");
    shutdown.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + SHUTDOWN_LIMIT;
    while !worker.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(broker_input);
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

/// Waits for a signal, the stop handle, or the processing thread ending on its own.
async fn wait_for_stop(stop: &StopHandle, worker: &JoinHandle<anyhow::Result<()>>) -> &'static str {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        #[cfg(unix)]
        let sigterm = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let sigterm = std::future::pending::<()>();
        tokio::select! {
            _ = sigterm => return "SIGTERM",
            _ = tokio::signal::ctrl_c() => return "SIGINT",
            _ = stop.0.notified() => return "stop requested",
            _ = tick.tick() => {
                if worker.is_finished() {
                    return "processing ended";
                }
            }
        }
    }
}

struct BrokerLink {
    rx: mpsc::Receiver<BrokerMsg>,
    status: watch::Receiver<BrokerStatus>,
    stats: Arc<InputStats>,
    driver: FeedDriver,
}

/// Owns the pure pipeline; runs on its own thread.
struct Processor {
    dissector: Dissector,
    observer: Observer,
    capture: Option<LiveCapture>,
    interface: String,
    broker: Option<BrokerLink>,
    slot: SnapshotSlot,
    shutdown: Arc<AtomicBool>,
    started_ns: u64,
    frame_no: u64,
    last_ts_ns: u64,
    stats_file: Option<PathBuf>,
    /// What `/metrics` renders from; replaced at every publication.
    metrics: Arc<MetricsState>,
    /// Events by kind/reason for the exporter's breakdowns (auth failure reasons, ACL
    /// actions); fed from the observer's event queue, which is drained at each publication.
    tally: EventTally,
    /// The last [`RECENT_EVENTS`] events drained, oldest first.
    recent: VecDeque<Event>,
}

/// Last values seen by the drop warning.
#[derive(Default)]
struct DropWatch {
    channel: u64,
    kernel: u64,
    broker: u64,
}

impl Processor {
    fn run(mut self) -> anyhow::Result<()> {
        let link = self.capture.as_ref().map(|c| c.link);
        let mut last_publish = Instant::now();
        let mut last_warn = Instant::now();
        let mut warned = DropWatch::default();
        let mut stop_sent = false;
        loop {
            let stopping = self.shutdown.load(Ordering::Relaxed);
            match (&self.capture, link) {
                (Some(cap), Some(link)) => {
                    if stopping && !stop_sent {
                        cap.stop();
                        stop_sent = true;
                    }
                    match cap.recv(POLL) {
                        Ok(batch) => {
                            for (ts_ns, data) in batch.iter() {
                                self.frame_no += 1;
                                self.last_ts_ns = ts_ns;
                                self.dissector.on_frame(
                                    link,
                                    self.frame_no,
                                    ts_ns,
                                    data,
                                    &mut self.observer,
                                );
                            }
                            cap.recycle(batch);
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        // The capture thread has stopped and everything it sent is read.
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                _ => {
                    if stopping {
                        break;
                    }
                    std::thread::sleep(POLL);
                }
            }
            self.drain_broker();
            if last_publish.elapsed() >= PUBLISH_EVERY {
                last_publish = Instant::now();
                let now = now_ns();
                // Idle: nothing captured for a while, so time advances by the wall clock
                // (expiring idle flows and unanswered requests).
                if now.saturating_sub(self.last_ts_ns) >= PUBLISH_EVERY.as_nanos() as u64 {
                    self.dissector.expire(now, &mut self.observer);
                    self.observer.tick(now);
                }
                self.publish(false);
                if last_warn.elapsed() >= DROP_WARN_EVERY {
                    last_warn = Instant::now();
                    self.warn_drops(&mut warned);
                }
            }
        }
        if let Some(mut cap) = self.capture.take() {
            cap.join(Duration::from_secs(1));
            // Counters are final only now; keep them in the last snapshot.
            self.capture = Some(cap);
        }
        self.drain_broker();
        self.dissector
            .finish(self.frame_no, self.last_ts_ns, &mut self.observer);
        self.observer.finish();
        self.warn_drops(&mut warned);
        let snap = self.publish(true);
        tracing::info!(
            frames = snap.dissect.frames,
            mqtt_packets = snap.dissect.total_packets(),
            "processing finished"
        );
        if let Some(path) = &self.stats_file {
            let text = serde_json::to_string_pretty(&snap.to_json())?;
            std::fs::write(path, text + "\n")
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn drain_broker(&mut self) {
        let Some(b) = &mut self.broker else { return };
        // Bounded by the channel's capacity: the task cannot outpace one drain by more.
        while let Ok(msg) = b.rx.try_recv() {
            if let Some(e) = b.driver.on_msg(&msg) {
                self.observer.events().push(e);
            }
        }
    }

    fn publish(&mut self, final_snapshot: bool) -> Arc<AppSnapshot> {
        // Drained before the snapshot is built, so it lists the events up to now.
        self.drain_events();
        let at_ns = now_ns();
        let snap = Arc::new(AppSnapshot {
            at_ns,
            started_ns: self.started_ns,
            final_snapshot,
            capture: self.capture.as_ref().map(|c| CaptureInfo {
                interface: self.interface.clone(),
                filter: c.filter.clone(),
                dlt: c.dlt,
                counters: c.counters.snapshot(),
            }),
            dissect: self.dissector.stats().clone(),
            tcp: self.dissector.capture_stats().clone(),
            observer: self.observer.snapshot(),
            broker: self.broker.as_ref().map(|b| {
                let feed = &b.driver.feed;
                let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                BrokerSnapshot {
                    status: b.status.borrow().clone(),
                    messages: g(&b.stats.messages),
                    dropped_channel_full: g(&b.stats.dropped_channel_full),
                    connects: g(&b.stats.connects),
                    failures: g(&b.stats.failures),
                    nodes: feed.sys.nodes().cloned().collect(),
                    sys: feed.sys.stats.clone(),
                    sys_stale: feed.sys.is_stale(at_ns),
                    emqx_events: feed.events.stats.clone(),
                }
            }),
            recent_events: self.recent.iter().cloned().collect(),
        });
        self.publish_metrics(&snap);
        // A poisoned lock only means a reader panicked; the slot is still usable.
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(snap.clone());
        snap
    }

    /// Takes the observer's queued events: each is tallied for the metrics, logged at
    /// debug (they are also counted by kind in the observer) and kept among the recent.
    fn drain_events(&mut self) {
        for e in self.observer.events().drain() {
            tracing::debug!(kind = e.kind.name(), client_id = ?e.client_id, topic = ?e.topic, code = ?e.code, "event");
            self.tally.observe(&e);
            if self.recent.len() >= RECENT_EVENTS {
                self.recent.pop_front();
            }
            self.recent.push_back(e);
        }
    }

    /// Hand the exporter its snapshot.
    fn publish_metrics(&mut self, snap: &AppSnapshot) {
        let mut m = MetricsSnapshot::new(snap.dissect.clone(), snap.tcp.clone())
            .with_observer(&self.observer, self.metrics.config());
        m.kernel = snap.capture.as_ref().map(|c| KernelDrops {
            kernel: c.counters.pcap_dropped,
            interface: c.counters.pcap_if_dropped,
        });
        m.events = Some(self.tally.clone());
        if let Some(b) = &snap.broker {
            m.brokers = b.nodes.clone();
        }
        self.metrics.publish(m);
        self.metrics.set_ready(true);
    }

    fn warn_drops(&self, w: &mut DropWatch) {
        if let Some(c) = &self.capture {
            let s = c.counters.snapshot();
            if s.frames_dropped > w.channel {
                tracing::warn!(
                    frames = s.frames_dropped - w.channel,
                    total = s.frames_dropped,
                    "processing lags capture: frames dropped"
                );
                w.channel = s.frames_dropped;
            }
            let kernel = s.pcap_dropped + s.pcap_if_dropped;
            if kernel > w.kernel {
                tracing::warn!(
                    frames = kernel - w.kernel,
                    total = kernel,
                    "kernel or interface dropped frames (capture buffer full)"
                );
                w.kernel = kernel;
            }
        }
        if let Some(b) = &self.broker {
            let d = b.stats.dropped_channel_full.load(Ordering::Relaxed);
            if d > w.broker {
                tracing::warn!(
                    messages = d - w.broker,
                    total = d,
                    "broker input messages dropped"
                );
                w.broker = d;
            }
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

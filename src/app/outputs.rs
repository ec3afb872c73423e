//! Where findings leave the live pipeline: detector hit lists become alert edges
//! (fired / resolved, through one `AlertBook`), each edge goes to every receiver's queue;
//! every event and every edge becomes a `LogRecord` for the log sinks. Nothing here
//! blocks: receivers and sinks take what they are given or count a drop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::detect::rules::RuleHit;
use crate::export::LogRecord;
use crate::export::alerts::{Alert, AlertBook, HitAlerts, Receiver, Timestamp, Transition};
use crate::export::azure::AzureLogs;
use crate::export::otlp::{OtlpExporter, OtlpStats};
use crate::export::output_metrics::{OutputSeries, ReceiverSeries, SinkSeries};
use crate::export::prometheus::AlertSeries;
use crate::observe::Event;

/// A log destination (OTLP logs, Azure Logs Ingestion). `push` must never block.
pub trait LogSink: Send {
    fn name(&self) -> &'static str;
    /// False when the record was dropped (the sink counts it).
    fn push(&self, rec: &LogRecord) -> bool;
    /// Records delivered and records lost (queue full, rejected, retries exhausted...).
    fn counts(&self) -> LogSinkCounts;
    /// Sends what is queued, giving up after `timeout` (the rest is counted as dropped).
    fn shutdown(self: Box<Self>, timeout: Duration) -> LogSinkCounts;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogSinkCounts {
    pub sent: u64,
    pub dropped: u64,
    /// Queued, not yet sent.
    pub queued: u64,
}

/// The OTLP exporter as a log sink (its metrics run on their own; with `logs = false`
/// records are simply not for it).
pub struct OtlpSink {
    pub exporter: OtlpExporter,
    pub logs: bool,
}

fn otlp_counts(s: &OtlpStats) -> LogSinkCounts {
    LogSinkCounts {
        sent: s.logs_sent,
        dropped: s.logs_dropped + s.logs_failed,
        queued: s.logs_queued,
    }
}

impl LogSink for OtlpSink {
    fn name(&self) -> &'static str {
        "otlp"
    }

    fn push(&self, rec: &LogRecord) -> bool {
        !self.logs || self.exporter.log(rec)
    }

    fn counts(&self) -> LogSinkCounts {
        otlp_counts(&self.exporter.stats())
    }

    fn shutdown(self: Box<Self>, timeout: Duration) -> LogSinkCounts {
        otlp_counts(&self.exporter.shutdown(timeout))
    }
}

impl LogSink for AzureLogs {
    fn name(&self) -> &'static str {
        "azure_logs"
    }

    fn push(&self, rec: &LogRecord) -> bool {
        AzureLogs::push(self, rec.clone())
    }

    fn counts(&self) -> LogSinkCounts {
        let s = self.stats();
        LogSinkCounts {
            sent: s.rows_sent,
            dropped: s.rows_dropped,
            queued: s.queued,
        }
    }

    fn shutdown(self: Box<Self>, timeout: Duration) -> LogSinkCounts {
        let s = AzureLogs::shutdown(*self, timeout);
        LogSinkCounts {
            sent: s.rows_sent,
            dropped: s.rows_dropped,
            queued: s.queued,
        }
    }
}

pub struct Outputs {
    hits: HitAlerts,
    receivers: Arc<[Receiver]>,
    logs: Vec<Box<dyn LogSink>>,
    /// Where the firing alerts are kept across restarts (with receivers only).
    state_file: Option<PathBuf>,
    /// Something changed since the state file was written.
    dirty: bool,
    pub stats: OutputStats,
}

/// The firing alerts as the last run left them.
const STATE_FILE: &str = "firing-alerts.json";

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OutputStats {
    pub alerts_fired: u64,
    pub alerts_resolved: u64,
    /// Notifications a receiver's queue refused (full); the receiver counts them too.
    pub notify_refused: u64,
    pub log_records: u64,
    pub log_records_dropped: u64,
    /// Alerts taken back from the last run (see [`Outputs::restore`]).
    pub alerts_restored: u64,
    pub state_write_errors: u64,
    /// Per log sink (`azure_logs`, `otlp`): records sent, dropped, queued.
    pub sinks: std::collections::BTreeMap<&'static str, LogSinkCounts>,
}

impl Outputs {
    pub fn new(book: AlertBook, receivers: Arc<[Receiver]>, logs: Vec<Box<dyn LogSink>>) -> Self {
        Outputs {
            hits: HitAlerts::new(book),
            receivers,
            logs,
            state_file: None,
            dirty: false,
            stats: OutputStats::default(),
        }
    }

    /// Keeps the firing alerts in `dir` and takes back those the last run left firing:
    /// each resolves after `grace` unless a detector raises it again, so a restart
    /// neither re-notifies a standing alert nor leaves a cleared one firing forever.
    pub fn restore(&mut self, dir: &Path, grace: std::time::Duration, now: Timestamp) {
        let path = dir.join(STATE_FILE);
        let saved: Vec<Alert> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "firing-alert state unreadable; starting without it");
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read firing-alert state");
                Vec::new()
            }
        };
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let n = self
            .hits
            .restore(saved, Timestamp(now.0.saturating_add(grace_ms)));
        if n > 0 {
            tracing::info!(alerts = n, "alerts firing at the last stop taken back");
        }
        self.stats.alerts_restored = n as u64;
        self.state_file = Some(path);
    }

    /// Writes the firing alerts if they changed (temp file + rename: never half-written).
    pub fn save(&mut self) {
        let Some(path) = &self.state_file else { return };
        if !self.dirty {
            return;
        }
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec(&self.hits.firing()).unwrap_or_default();
        let r = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, path));
        match r {
            Ok(()) => self.dirty = false,
            Err(e) => {
                self.stats.state_write_errors += 1;
                tracing::warn!(file = %path.display(), error = %e, "cannot save firing alerts");
            }
        }
    }

    /// Restored alerts nobody raised again by now resolve.
    pub fn tick(&mut self, now: Timestamp) {
        for t in self.hits.expire_restored(now) {
            self.emit(t);
        }
    }

    fn log(&mut self, rec: &LogRecord) {
        for s in &self.logs {
            self.stats.log_records += 1;
            if !s.push(rec) {
                self.stats.log_records_dropped += 1;
            }
        }
    }

    pub fn on_event(&mut self, e: &Event) {
        if !self.logs.is_empty() {
            self.log(&LogRecord::from_event(e));
        }
    }

    /// Follows a detector's hit list (`source`: `rules`, `anomalies`).
    pub fn on_hits(&mut self, source: &'static str, hits: &[RuleHit]) {
        for t in self.hits.sync(source, hits) {
            self.emit(t);
        }
    }

    fn emit(&mut self, t: Transition) {
        self.dirty = true;
        {
            let a = t.alert();
            let key = a.labels.get("key").map_or("", String::as_str);
            match &t {
                Transition::Fired(_) => {
                    self.stats.alerts_fired += 1;
                    tracing::warn!(alert = a.name(), key, fingerprint = %a.fingerprint(), "alert firing");
                }
                Transition::Resolved(_) => {
                    self.stats.alerts_resolved += 1;
                    tracing::info!(alert = a.name(), key, fingerprint = %a.fingerprint(), "alert resolved");
                }
            }
            for r in self.receivers.iter() {
                if !r.notify(a.clone()) {
                    self.stats.notify_refused += 1;
                }
            }
            if !self.logs.is_empty() {
                self.log(&LogRecord::from_transition(&t));
            }
        }
    }

    pub fn series(&self) -> Vec<AlertSeries> {
        self.hits.series()
    }

    /// Receivers' and log sinks' counters for `/metrics`.
    pub fn metrics(&self) -> OutputSeries {
        let g = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        OutputSeries {
            receivers: self
                .receivers
                .iter()
                .map(|r| {
                    let s = r.stats();
                    ReceiverSeries {
                        receiver: r.name().to_string(),
                        delivered: g(&s.delivered),
                        failed_attempts: g(&s.failed_attempts),
                        rejected: g(&s.rejected),
                        queue_full: g(&s.queue_full),
                        spool_dropped: g(&s.spool_dropped),
                        pending: g(&s.pending),
                    }
                })
                .collect(),
            sinks: self
                .stats
                .sinks
                .iter()
                .map(|(name, c)| SinkSeries {
                    sink: (*name).to_string(),
                    sent: c.sent,
                    dropped: c.dropped,
                    queued: c.queued,
                })
                .collect(),
        }
    }

    /// Reads the log sinks' counters into `stats.sinks`.
    pub fn refresh_sink_counts(&mut self) {
        for s in &self.logs {
            self.stats.sinks.insert(s.name(), s.counts());
        }
    }

    /// Flushes every log sink, all within `timeout`; their final counts stay in
    /// `stats.sinks`.
    pub fn shutdown(&mut self, timeout: Duration) {
        // All at once, each with the whole budget: flushed one after another, a collector
        // that hangs would leave the next sink nothing.
        let sinks = std::mem::take(&mut self.logs);
        let done: Vec<(&'static str, LogSinkCounts)> = std::thread::scope(|scope| {
            let handles: Vec<_> = sinks
                .into_iter()
                .map(|s| {
                    let name = s.name();
                    (name, scope.spawn(move || s.shutdown(timeout)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(name, h)| (name, h.join().unwrap_or_default()))
                .collect()
        });
        for (name, c) in done {
            if c.queued > 0 || c.dropped > 0 {
                tracing::warn!(
                    sink = name,
                    sent = c.sent,
                    dropped = c.dropped,
                    unsent = c.queued,
                    "log sink closed with losses"
                );
            }
            self.stats.sinks.insert(name, c);
        }
    }
}

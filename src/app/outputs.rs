//! Where findings leave the live pipeline: detector hit lists become alert edges
//! (fired / resolved, through one `AlertBook`), each edge goes to every receiver's queue;
//! every event and every edge becomes a `LogRecord` for the log sinks. Nothing here
//! blocks: receivers and sinks take what they are given or count a drop.

use std::sync::Arc;

use crate::detect::rules::RuleHit;
use crate::export::LogRecord;
use crate::export::alerts::{AlertBook, HitAlerts, Receiver, Transition};
use crate::export::prometheus::AlertSeries;
use crate::observe::Event;

/// A log destination (OTLP logs, Azure Logs Ingestion). `push` must never block.
pub trait LogSink: Send {
    /// False when the record was dropped (the sink counts it).
    fn push(&self, rec: &LogRecord) -> bool;
}

pub struct Outputs {
    hits: HitAlerts,
    receivers: Arc<[Receiver]>,
    logs: Vec<Box<dyn LogSink>>,
    pub stats: OutputStats,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OutputStats {
    pub alerts_fired: u64,
    pub alerts_resolved: u64,
    /// Notifications a receiver's queue refused (full); the receiver counts them too.
    pub notify_refused: u64,
    pub log_records: u64,
    pub log_records_dropped: u64,
}

impl Outputs {
    pub fn new(book: AlertBook, receivers: Arc<[Receiver]>, logs: Vec<Box<dyn LogSink>>) -> Self {
        Outputs {
            hits: HitAlerts::new(book),
            receivers,
            logs,
            stats: OutputStats::default(),
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
}

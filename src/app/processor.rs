//! The processing thread: owns the pure pipeline (dissector, observer, `$SYS` feed, rule
//! engine) and is the only one to touch it. Every second it publishes a snapshot for the
//! exporter and hands detector hits to the alert outputs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::dissect::Dissector;
use crate::export::prometheus::KernelDrops;
use crate::export::{MetricsSnapshot, MetricsState};
use crate::input::capture::LiveCapture;
use crate::input::{BrokerMsg, BrokerStatus, FeedDriver, InputStats};

use super::pipeline::Pipeline;
use super::{
    AppSnapshot, BrokerSnapshot, CaptureInfo, DROP_WARN_EVERY, POLL, PUBLISH_EVERY, SnapshotSlot,
    now_ns,
};

pub(super) struct BrokerLink {
    pub(super) rx: mpsc::Receiver<BrokerMsg>,
    pub(super) status: watch::Receiver<BrokerStatus>,
    pub(super) stats: Arc<InputStats>,
    pub(super) driver: FeedDriver,
}

/// Owns the pure pipeline; runs on its own thread.
pub(super) struct Processor {
    pub(super) dissector: Dissector,
    /// Observer, rules, event consumers and alert outputs.
    pub(super) pipe: Pipeline,
    pub(super) capture: Option<LiveCapture>,
    pub(super) interface: String,
    pub(super) broker: Option<BrokerLink>,
    pub(super) slot: SnapshotSlot,
    pub(super) shutdown: Arc<AtomicBool>,
    pub(super) started_ns: u64,
    pub(super) frame_no: u64,
    pub(super) last_ts_ns: u64,
    pub(super) stats_file: Option<PathBuf>,
    /// What `/metrics` renders from; replaced at every publication.
    pub(super) metrics: Arc<MetricsState>,
}

/// At shutdown, how long the log sinks (Azure, OTLP) get to send what they hold; within
/// the whole shutdown bound.
const LOG_FLUSH: Duration = Duration::from_secs(2);

/// Last values seen by the drop warning.
#[derive(Default)]
struct DropWatch {
    channel: u64,
    kernel: u64,
    broker: u64,
}

impl Processor {
    pub(super) fn run(mut self) -> anyhow::Result<()> {
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
                                    &mut self.pipe,
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
                    self.dissector.expire(now, &mut self.pipe);
                    self.pipe.tick(now);
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
            .finish(self.frame_no, self.last_ts_ns, &mut self.pipe);
        self.pipe.finish();
        self.warn_drops(&mut warned);
        // The last publication hands the log sinks the last alert edges and the OTLP
        // exporter its last metrics; then they flush, within the bound.
        let snap = self.publish(true);
        self.pipe.outputs.shutdown(LOG_FLUSH);
        let mut snap = (*snap).clone();
        snap.outputs = self.pipe.outputs.stats.clone();
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
                self.pipe.push_event(e);
            }
        }
    }

    fn publish(&mut self, final_snapshot: bool) -> Arc<AppSnapshot> {
        // Events are passed on as they come; hits are read here, once per publication.
        self.pipe.pass_events();
        let at_ns = now_ns();
        if let Some(b) = &self.broker {
            self.pipe.brokers = b.driver.feed.sys.nodes().cloned().collect();
        }
        self.pipe.sync_alerts(at_ns);
        self.pipe.save_baselines(at_ns, final_snapshot);
        self.pipe.outputs.refresh_sink_counts();
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
            observer: self.pipe.observer.snapshot(),
            rules: self.pipe.rules.as_ref().map(|r| r.snapshot()),
            anomalies: self.pipe.anomaly.as_ref().map(|a| a.snapshot()),
            outputs: self.pipe.outputs.stats.clone(),
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
            recent_events: self.pipe.recent.iter().cloned().collect(),
        });
        self.publish_metrics(&snap);
        // A poisoned lock only means a reader panicked; the slot is still usable.
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(snap.clone());
        snap
    }

    /// Hand the exporter its snapshot.
    fn publish_metrics(&mut self, snap: &AppSnapshot) {
        let mut m = MetricsSnapshot::new(snap.dissect.clone(), snap.tcp.clone())
            .with_observer_snapshot(
                &self.pipe.observer,
                snap.observer.clone(),
                self.metrics.config(),
            );
        m.kernel = snap.capture.as_ref().map(|c| KernelDrops {
            kernel: c.counters.pcap_dropped,
            interface: c.counters.pcap_if_dropped,
        });
        m.events = Some(self.pipe.tally.clone());
        m.alerts = self.pipe.outputs.series();

        m.outputs = Some(self.pipe.outputs.metrics());
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

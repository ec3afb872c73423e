//! OTLP export: the `/metrics` set as OTLP metrics and every event / alert edge
//! ([`LogRecord`]) as an OTLP log record, over gRPC or HTTP/protobuf, to an OpenTelemetry
//! Collector (which forwards to Azure Monitor: `deploy/otel-collector/`).
//!
//! ## Why not the OpenTelemetry SDK (`opentelemetry_sdk` + `opentelemetry-otlp`)
//!
//! mqscope's metrics are aggregated already: cumulative counters and histogram bucket
//! counts read from sketches, published as one snapshot. The SDK (0.33) can only
//! aggregate measurements itself. Counters and gauges would fit its observable
//! instruments, but it has no observable histogram, and its metric data types
//! (`ResourceMetrics`, `HistogramDataPoint`) have crate-private fields and no public
//! constructors, so neither a custom reader nor a hand-fed `opentelemetry-otlp` exporter
//! can carry our buckets. Faking them by recording synthetic observations would change
//! `_sum` and bucket placement. So the requests are built here from the official message
//! types (`opentelemetry-proto`, the crate `opentelemetry-otlp` itself encodes with) and
//! sent over the same transports it uses: tonic's generated OTLP gRPC clients, and
//! protobuf POSTs to `/v1/metrics` and `/v1/logs`. Logs take the same path (rather than
//! the SDK's log pipeline) so both signals share one configuration, one TLS setup, one
//! bounded queue and one set of counters, and `log` can say whether it dropped.
//!
//! ## Threads
//!
//! [`OtlpExporter::start`] spawns one thread, `mqscope-otlp`, with its own current-thread
//! tokio runtime (no `rt-multi-thread` needed): the exporter never depends on the
//! caller's runtime being driven (`app::run` stops driving its own at shutdown, when the
//! last flush happens), and a slow collector cannot delay `/metrics` or the broker input.
//! `start` may be called from inside or outside a runtime.
//!
//! ## Delivery
//!
//! Log records are delivered at least once, never twice because of the exporter's own
//! timing: a batch the collector accepted is never sent again, and a batch on the wire
//! when shutdown begins is finished within the shutdown deadline rather than abandoned
//! and resent (cut off by the deadline, it counts as failed). A batch is sent again
//! only after a failure the exporter saw, a retryable error or `timeout_ms` passing;
//! if the collector had processed it and only its answer was lost or late, those
//! records arrive twice. (The HTTP sender also repeats a request once, uncounted, when
//! a reused keep-alive connection fails under it: the usual sign of a connection the
//! collector closed while idle.) Metrics need no such care: each export carries
//! cumulative values, so a repeat changes nothing.
//!
//! | module | job |
//! |---|---|
//! | `config` | `OtlpConfig` (`[otlp]`), validation, header / resource value sources |
//! | `metrics` | Prometheus exposition → OTLP metrics (names, types, buckets) |
//! | `logs` | `LogRecord` → OTLP log record (severity, attributes) |
//! | `resource` | `service.*` resource attributes, instrumentation scope |
//! | `transport` | gRPC (tonic) and HTTP/1.1 (hyper) senders over one TLS dialer |
//! | `worker` | the loop: interval, batches, backoff, counters, final flush |

pub mod config;
pub mod logs;
pub mod metrics;
pub mod resource;
mod transport;
mod worker;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::{LogRecord, MetricsState};

pub use config::{OtlpConfig, OtlpTls, Protocol, SecretFrom, ValueFrom};

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("otlp is not enabled")]
    Disabled,
    #[error("otlp: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("otlp: {0}")]
    Setup(String),
    #[error("otlp: cannot start the exporter thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What the exporter has done so far: monotonic counters, and `logs_queued`.
///
/// Every record [`OtlpExporter::log`] accepts ends in exactly one of `logs_sent` and
/// `logs_failed`; until then it is queued (in the channel, in the batch being built,
/// waiting for a retry or on the wire), so `logs_queued = logs_accepted - logs_sent -
/// logs_failed`. After `shutdown` has returned it is 0, unless the exporter thread
/// outlived the timeout (it still counts what it gives up on, within its own deadline).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OtlpStats {
    /// Log records [`OtlpExporter::log`] took (returned `true` for).
    pub logs_accepted: u64,
    /// Accepted log records not yet sent or given up on (a gauge).
    pub logs_queued: u64,
    /// Log records the collector accepted.
    pub logs_sent: u64,
    /// Log records refused by [`OtlpExporter::log`] because the queue was full.
    pub logs_dropped: u64,
    /// Log records given up on: failed export after retries, refused by the collector
    /// (partial success), or still queued when shutdown's time ran out.
    pub logs_failed: u64,
    /// Failed export requests (metrics and logs; each retry counts).
    pub export_errors: u64,
    /// Metric export requests the collector accepted.
    pub metric_exports: u64,
}

pub struct OtlpExporter {
    tx: Option<mpsc::Sender<LogRecord>>,
    stop: Option<oneshot::Sender<tokio::time::Instant>>,
    done: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<worker::Shared>,
    logs: bool,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// Validates `cfg`, reads header and resource values, loads the TLS files and starts
    /// the exporter thread. Nothing connects yet: a collector that is down shows up as
    /// export errors, never as a start failure.
    pub fn start(cfg: &OtlpConfig, state: Arc<MetricsState>) -> Result<OtlpExporter, OtlpError> {
        if !cfg.enabled {
            return Err(OtlpError::Disabled);
        }
        let errs = cfg.validate();
        if !errs.is_empty() {
            return Err(OtlpError::Config(errs));
        }
        let prepared = transport::Prepared::new(cfg).map_err(OtlpError::Setup)?;
        prepared.check().map_err(OtlpError::Setup)?;
        let resource = resource::resource(cfg).map_err(OtlpError::Setup)?;
        let (tx, rx) = mpsc::channel(cfg.max_queued_logs);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let shared = Arc::new(worker::Shared::default());
        let w_shared = Arc::clone(&shared);
        let (metrics, interval, max_batch) =
            (cfg.metrics, cfg.export_interval(), cfg.max_batch_logs);
        let start_ns = worker::now_ns();
        let thread = std::thread::Builder::new()
            .name("mqscope-otlp".into())
            .spawn(move || {
                // The runtime is built and dropped on this thread: dropping one inside
                // the caller's async context would panic.
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let transport = match prepared.connect() {
                        Ok(t) => t,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    worker::Worker {
                        transport,
                        state,
                        shared: w_shared,
                        rx,
                        resource,
                        scope: resource::scope(),
                        metrics,
                        interval,
                        max_batch,
                        start_ns,
                    }
                    .run(stop_rx)
                    .await;
                });
                let _ = done_tx.send(());
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(OtlpError::Setup(e));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(OtlpError::Setup("exporter thread ended at start".into()));
            }
        }
        tracing::info!(
            endpoint = %cfg.endpoint,
            protocol = ?cfg.protocol,
            metrics = cfg.metrics,
            logs = cfg.logs,
            "OTLP export started"
        );
        Ok(OtlpExporter {
            tx: Some(tx),
            stop: Some(stop_tx),
            done: done_rx,
            thread: Some(thread),
            shared,
            logs: cfg.logs,
        })
    }

    /// Queues one record for export. Never blocks: `false` when the queue is full (the
    /// record is dropped and counted in `logs_dropped`), and also, uncounted, when log
    /// export is off or the exporter is shutting down.
    pub fn log(&self, rec: &LogRecord) -> bool {
        if !self.logs {
            return false;
        }
        let Some(tx) = &self.tx else {
            return false;
        };
        // Counted before the record can reach the worker, so `stats` never sees it sent
        // or failed without having been accepted (taken back if the queue refuses it).
        let accepted = &self.shared.logs_accepted;
        accepted.fetch_add(1, Ordering::Release);
        match tx.try_send(rec.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                accepted.fetch_sub(1, Ordering::Release);
                self.shared.logs_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                accepted.fetch_sub(1, Ordering::Release);
                false
            }
        }
    }

    pub fn stats(&self) -> OtlpStats {
        let s = &self.shared;
        // Outcomes first, then `accepted` (see `worker::Shared`): queued stays >= 0.
        let logs_sent = s.logs_sent.load(Ordering::Acquire);
        let logs_failed = s.logs_failed.load(Ordering::Acquire);
        let logs_accepted = s.logs_accepted.load(Ordering::Acquire);
        OtlpStats {
            logs_accepted,
            logs_queued: logs_accepted.saturating_sub(logs_sent + logs_failed),
            logs_sent,
            logs_dropped: s.logs_dropped.load(Ordering::Relaxed),
            logs_failed,
            export_errors: s.export_errors.load(Ordering::Relaxed),
            metric_exports: s.metric_exports.load(Ordering::Relaxed),
        }
    }

    /// Sends what is queued and a last metrics export, returning within `timeout`
    /// whatever the collector does. A thread still busy then is left to end on its own
    /// (its work is bounded by the same deadline). Returns the final counters.
    pub fn shutdown(mut self, timeout: Duration) -> OtlpStats {
        let started = Instant::now();
        // Leave the worker a little of the budget to report and end. The deadline goes
        // first: the worker closes the queue itself (seeing it closed before the deadline
        // arrived, it would pick a deadline of its own).
        let margin = (timeout / 10).min(Duration::from_millis(100));
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(tokio::time::Instant::now() + timeout.saturating_sub(margin));
        }
        self.tx = None;
        let left = timeout.saturating_sub(started.elapsed());
        match self.done.recv_timeout(left) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!("OTLP exporter did not finish within {timeout:?}; leaving it");
            }
        }
        let s = self.stats();
        tracing::info!(
            logs_sent = s.logs_sent,
            logs_queued = s.logs_queued,
            logs_dropped = s.logs_dropped,
            logs_failed = s.logs_failed,
            export_errors = s.export_errors,
            metric_exports = s.metric_exports,
            "OTLP export stopped"
        );
        s
    }
}

impl Drop for OtlpExporter {
    /// Without `shutdown`: the thread is told to stop and flushes in the background
    /// (about a second); nothing waits for it.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(tokio::time::Instant::now() + Duration::from_secs(1));
        }
        self.tx = None;
    }
}

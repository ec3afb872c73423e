//! The exporter's loop, on its own thread and current-thread runtime: every interval it
//! renders the latest snapshot and sends it as OTLP metrics; log records arrive over a
//! bounded channel and leave in batches (when `max_batch_logs` are waiting, or a short
//! delay after the first). A failed log batch is retried with backoff (and dropped,
//! counted, after a few tries or a final error); metrics are not retried, the next
//! interval carries the same cumulative values. While a batch waits, records pile up in
//! the channel until it is full: then `OtlpExporter::log` drops and counts. Nothing here
//! blocks the caller; failures are counted and logged at most once a minute.
//!
//! A log export that is under way when shutdown asks to stop is finished (within the
//! shutdown deadline), never abandoned and sent again: the collector may already hold
//! those records with only its answer still on the way, and a second copy would
//! duplicate them. A batch is sent again only after a failure the exporter saw (an error
//! answer, a broken connection, `timeout_ms` passing), which is the one way a record can
//! arrive twice (at-least-once delivery, as in every OTLP exporter). A batch the
//! collector accepted is never sent again. Metrics exports, by contrast, may be
//! abandoned for a stop: the final export carries the same cumulative values.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::export::{LogRecord, MetricsState};

use super::transport::{Accepted, ExportError, Transport};

/// Longest wait between a record's arrival and its batch leaving.
const LOG_FLUSH_DELAY: Duration = Duration::from_secs(1);
/// Tries for one log batch before it is dropped.
const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Export failures are logged at most this often (a collector that is down fails every
/// interval).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Counters shared with `OtlpExporter::stats`. Every record `log` accepts ends up in
/// exactly one of `logs_sent` and `logs_failed`, so the difference is what is queued.
/// The outcome counters are written with `Release` and read with `Acquire` *before*
/// `logs_accepted`: a record counted as sent or failed was counted as accepted first, so
/// the difference read by `stats` never goes below zero.
#[derive(Default)]
pub(super) struct Shared {
    /// Records `OtlpExporter::log` put on the queue.
    pub logs_accepted: AtomicU64,
    pub logs_sent: AtomicU64,
    pub logs_dropped: AtomicU64,
    pub logs_failed: AtomicU64,
    pub export_errors: AtomicU64,
    pub metric_exports: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Release);
}

pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

struct WarnLimiter {
    next: Option<Instant>,
    suppressed: u64,
    failing: bool,
}

impl WarnLimiter {
    fn failed(&mut self, what: &str, e: &ExportError) {
        self.failing = true;
        let now = Instant::now();
        if self.next.is_none_or(|n| now >= n) {
            tracing::warn!(
                suppressed = self.suppressed,
                retryable = e.retryable,
                "OTLP {what} export failed: {}",
                e.message
            );
            self.suppressed = 0;
            self.next = Some(now + WARN_EVERY);
        } else {
            self.suppressed += 1;
        }
    }

    fn ok(&mut self) {
        if self.failing {
            tracing::info!("OTLP export succeeded again");
            self.failing = false;
        }
    }
}

pub(super) struct Worker {
    pub transport: Transport,
    pub state: Arc<MetricsState>,
    pub shared: Arc<Shared>,
    pub rx: mpsc::Receiver<LogRecord>,
    pub resource: Resource,
    pub scope: InstrumentationScope,
    pub metrics: bool,
    pub interval: Duration,
    pub max_batch: usize,
    /// Start of the cumulative metric streams (ns since the epoch).
    pub start_ns: u64,
}

struct Batch {
    records: Vec<LogRecord>,
    /// When to send it; `None` while empty.
    due: Option<Instant>,
    attempts: u32,
}

impl Worker {
    /// Runs until `stop` says by when to be done (or its sender is dropped), then sends
    /// what is queued and a last metrics export within that deadline.
    pub async fn run(mut self, mut stop: oneshot::Receiver<Instant>) {
        let mut tick = tokio::time::interval_at(Instant::now() + self.interval, self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let flush_delay = LOG_FLUSH_DELAY.min(self.interval);
        let mut warn = WarnLimiter {
            next: None,
            suppressed: 0,
            failing: false,
        };
        let mut batch = Batch {
            records: Vec::with_capacity(self.max_batch.min(1024)),
            due: None,
            attempts: 0,
        };
        let deadline = loop {
            let room = batch.records.len() < self.max_batch;
            let due = batch.due;
            tokio::select! {
                biased;
                r = &mut stop => break stop_at(r),
                // A metrics export in flight gives way to a stop request: the final
                // export sends the same cumulative values again within the deadline.
                _ = tick.tick(), if self.metrics => {
                    tokio::select! {
                        biased;
                        r = &mut stop => break stop_at(r),
                        _ = self.export_metrics(&mut warn, None) => {}
                    }
                }
                // A log export in flight does not: see the module comment.
                _ = sleep_until_opt(due), if due.is_some() => {
                    let stopped = self
                        .flush(&mut batch, &mut warn, None, Some(&mut stop))
                        .await;
                    if let Some(d) = stopped {
                        break d;
                    }
                }
                r = self.rx.recv(), if room => match r {
                    Some(rec) => {
                        batch.records.push(rec);
                        if batch.due.is_none() {
                            batch.due = Some(Instant::now() + flush_delay);
                        }
                        // Full: send now, unless a retry is waiting for its backoff.
                        if batch.records.len() >= self.max_batch && batch.attempts == 0 {
                            batch.due = Some(Instant::now());
                        }
                    }
                    // Every sender is gone: the exporter was dropped without shutdown.
                    None => break Instant::now() + Duration::from_secs(1),
                },
            }
        };
        self.finish(batch, &mut warn, deadline).await;
    }

    /// Final flush: queued records in batches, then one metrics export, all before
    /// `deadline`; what does not fit is counted as failed.
    async fn finish(&mut self, mut batch: Batch, warn: &mut WarnLimiter, deadline: Instant) {
        self.rx.close();
        loop {
            while batch.records.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(r) => batch.records.push(r),
                    Err(_) => break,
                }
            }
            if batch.records.is_empty() || Instant::now() >= deadline {
                break;
            }
            // No retries now: one try each, within what is left of the deadline.
            batch.attempts = MAX_ATTEMPTS;
            self.flush(&mut batch, warn, Some(deadline), None).await;
            if !batch.records.is_empty() {
                break;
            }
        }
        let mut left = batch.records.len() as u64;
        while self.rx.try_recv().is_ok() {
            left += 1;
        }
        add(&self.shared.logs_failed, left);
        if self.metrics && Instant::now() < deadline {
            self.export_metrics(warn, Some(deadline)).await;
        }
    }

    async fn export_metrics(&mut self, warn: &mut WarnLimiter, deadline: Option<Instant>) {
        let text = self.state.render();
        let metrics = super::metrics::from_exposition(&text, self.start_ns, now_ns());
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(self.scope.clone()),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        match bounded(deadline, self.transport.metrics(req)).await {
            Ok(acc) => {
                add(&self.shared.metric_exports, 1);
                if acc.rejected > 0 {
                    add(&self.shared.export_errors, 1);
                    let e = ExportError {
                        retryable: false,
                        retry_after: None,
                        message: format!(
                            "collector refused {} data points: {}",
                            acc.rejected, acc.message
                        ),
                    };
                    warn.failed("metrics", &e);
                } else {
                    warn.ok();
                }
            }
            Err(e) => {
                add(&self.shared.export_errors, 1);
                warn.failed("metrics", &e);
            }
        }
    }

    /// Sends the batch. On success or a final failure it is emptied (counted as sent or
    /// failed); on a retryable failure it stays, due again after a backoff.
    ///
    /// With `stop`, a stop request arriving while the export is under way does not
    /// abandon it (the collector may have the records already): the export goes on until
    /// it ends or the stop deadline passes, and that deadline is returned. An export cut
    /// off by the deadline is settled as a final failure, so it is never sent again.
    async fn flush(
        &mut self,
        b: &mut Batch,
        warn: &mut WarnLimiter,
        deadline: Option<Instant>,
        stop: Option<&mut oneshot::Receiver<Instant>>,
    ) -> Option<Instant> {
        if b.records.is_empty() {
            b.due = None;
            return None;
        }
        let req = self.logs_request(&b.records);
        let mut stopped = None;
        let result = {
            let send = bounded(deadline, self.transport.logs(req));
            tokio::pin!(send);
            match stop {
                None => send.await,
                Some(stop) => tokio::select! {
                    biased;
                    r = &mut send => r,
                    r = stop => {
                        let d = stop_at(r);
                        stopped = Some(d);
                        bounded(Some(d), send).await
                    }
                },
            }
        };
        settle(&self.shared, b, result, warn);
        stopped
    }

    fn logs_request(&self, records: &[LogRecord]) -> ExportLogsServiceRequest {
        let observed = now_ns();
        let log_records = records
            .iter()
            .map(|r| super::logs::to_otlp(r, observed))
            .collect();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(self.resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(self.scope.clone()),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

/// Counts the outcome of one export of `b` and empties it, or, after a retryable
/// failure with tries left, keeps it due again after a backoff.
fn settle(
    shared: &Shared,
    b: &mut Batch,
    result: Result<Accepted, ExportError>,
    warn: &mut WarnLimiter,
) {
    let n = b.records.len() as u64;
    match result {
        Ok(acc) => {
            let rejected = acc.rejected.min(n);
            add(&shared.logs_sent, n - rejected);
            if rejected > 0 {
                add(&shared.logs_failed, rejected);
                add(&shared.export_errors, 1);
                let e = ExportError {
                    retryable: false,
                    retry_after: None,
                    message: format!("collector refused {rejected} log records: {}", acc.message),
                };
                warn.failed("logs", &e);
            } else {
                warn.ok();
            }
        }
        Err(e) => {
            add(&shared.export_errors, 1);
            warn.failed("logs", &e);
            b.attempts += 1;
            if e.retryable && b.attempts < MAX_ATTEMPTS {
                let backoff = BACKOFF_FIRST
                    .saturating_mul(1 << (b.attempts - 1).min(10))
                    .min(BACKOFF_MAX);
                let wait = e
                    .retry_after
                    .map_or(backoff, |r| r.clamp(backoff, BACKOFF_MAX));
                b.due = Some(Instant::now() + wait);
                return;
            }
            add(&shared.logs_failed, n);
        }
    }
    b.records.clear();
    b.due = None;
    b.attempts = 0;
}

/// The deadline from `OtlpExporter::shutdown`, or a second from now when the exporter
/// was dropped without it.
fn stop_at(r: Result<Instant, oneshot::error::RecvError>) -> Instant {
    r.unwrap_or_else(|_| Instant::now() + Duration::from_secs(1))
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `f`, cut off at `deadline` when there is one.
async fn bounded<T>(
    deadline: Option<Instant>,
    f: impl Future<Output = Result<T, ExportError>>,
) -> Result<T, ExportError> {
    match deadline {
        None => f.await,
        Some(d) => match tokio::time::timeout_at(d, f).await {
            Ok(r) => r,
            Err(_) => Err(ExportError {
                retryable: false,
                retry_after: None,
                message: "shutdown deadline reached".into(),
            }),
        },
    }
}

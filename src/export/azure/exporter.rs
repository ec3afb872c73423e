//! `AzureLogs`: `LogRecord`s to the Logs Ingestion API, batched, gzip-compressed,
//! retried.
//!
//! * **Own thread.** The exporter runs a current-thread tokio runtime on its own thread
//!   (`mqscope-azure`). `push` is a lock-free channel send; `shutdown` is a plain blocking
//!   call with a time bound. It therefore works the same whether or not the caller has a
//!   runtime, and whether or not that runtime is being driven at shutdown (`app::run`'s is
//!   not once its `block_on` returns).
//! * **Bounded.** Rows accepted but not yet delivered or given up are counted; past
//!   `max_queued_records` new rows are refused (`push` returns `false`) and counted.
//! * **Batches.** A request is sent when a full batch is waiting or the oldest row has
//!   waited `flush_interval_ms` (see `batch` for how it is cut).
//! * **Retries.** 408, 429, 5xx, timeouts and connection errors are retried with
//!   exponential backoff and jitter; `Retry-After` (seconds) is a minimum wait. 401
//!   drops the cached token and retries at once, once per batch (later 401s back off:
//!   a new role assignment can take minutes to apply). Other 4xx can never succeed: the
//!   batch is dropped, counted and logged. A batch still failing `max_retry_secs` after
//!   its first attempt is dropped and counted.
//! * **Exactly once** as far as HTTP allows: a batch is retried with the same rows, and
//!   rows leave the queue only after a 2xx. (A 2xx lost on the way back — a timeout after
//!   the service accepted — causes a resend; the API has no idempotency key.)
//! * **Shutdown** sends what it can until the deadline (every request bounded by what is
//!   left of it), then counts the rest as dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::export::LogRecord;
use crate::export::alerts::client::{self, HttpTarget, PostRequest};
use crate::export::alerts::deliver::MAX_RETRY_AFTER;

use super::batch::{Batch, Cut, RowQueue, row_fits};
use super::config::AzureLogsConfig;
use super::token::TokenSource;

/// Waiting for the worker thread beyond the shutdown bound, for its final bookkeeping.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    #[error("azure_logs is not enabled")]
    Disabled,
    #[error("azure_logs: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("azure_logs: TLS: {0}")]
    Tls(String),
    #[error("azure_logs: cannot start the exporter thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What went wrong last (for logs and metrics labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AzureErrorKind {
    /// Connection refused, reset, DNS, TLS handshake.
    Connect,
    Timeout,
    /// 429.
    Throttled,
    /// 5xx or 408.
    Server,
    /// 401 from the ingestion endpoint.
    Unauthorized,
    /// Another 4xx: the batch was dropped.
    Rejected,
    /// No token from Entra ID (unreachable, refused, or the credential file unreadable).
    Token,
}

impl AzureErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AzureErrorKind::Connect => "connect",
            AzureErrorKind::Timeout => "timeout",
            AzureErrorKind::Throttled => "throttled",
            AzureErrorKind::Server => "server",
            AzureErrorKind::Unauthorized => "unauthorized",
            AzureErrorKind::Rejected => "rejected",
            AzureErrorKind::Token => "token",
        }
    }

    const ALL: [AzureErrorKind; 7] = [
        AzureErrorKind::Connect,
        AzureErrorKind::Timeout,
        AzureErrorKind::Throttled,
        AzureErrorKind::Server,
        AzureErrorKind::Unauthorized,
        AzureErrorKind::Rejected,
        AzureErrorKind::Token,
    ];

    fn code(self) -> u8 {
        Self::ALL
            .iter()
            .position(|k| *k == self)
            .map_or(0, |i| i as u8 + 1)
    }

    fn from_code(c: u8) -> Option<AzureErrorKind> {
        Self::ALL.get(usize::from(c).checked_sub(1)?).copied()
    }
}

/// A snapshot of the exporter's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AzureStats {
    /// Rows the service accepted (2xx).
    pub rows_sent: u64,
    /// Requests the service accepted.
    pub batches_sent: u64,
    /// All rows dropped, for whatever reason (the sum of the five below).
    pub rows_dropped: u64,
    /// `push` refused: `max_queued_records` rows were waiting.
    pub dropped_queue_full: u64,
    /// A row larger than a request may be.
    pub dropped_oversize: u64,
    /// In a batch the service refused with a 4xx other than 401/408/429.
    pub dropped_rejected: u64,
    /// In a batch that kept failing for `max_retry_secs`.
    pub dropped_retry_exhausted: u64,
    /// Still queued when shutdown's time was up (or pushed after it).
    pub dropped_shutdown: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Requests to the token endpoint.
    pub token_requests: u64,
    /// Rows accepted and not yet delivered or dropped.
    pub queued: u64,
    pub last_error: Option<AzureErrorKind>,
}

#[derive(Debug, Default)]
struct Shared {
    max_queued: u64,
    queued: AtomicU64,
    rows_sent: AtomicU64,
    batches_sent: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_oversize: AtomicU64,
    dropped_rejected: AtomicU64,
    dropped_retry_exhausted: AtomicU64,
    dropped_shutdown: AtomicU64,
    retries: AtomicU64,
    token_requests: AtomicU64,
    last_error: AtomicU8,
}

impl Shared {
    fn snapshot(&self) -> AzureStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = AzureStats {
            rows_sent: g(&self.rows_sent),
            batches_sent: g(&self.batches_sent),
            rows_dropped: 0,
            dropped_queue_full: g(&self.dropped_queue_full),
            dropped_oversize: g(&self.dropped_oversize),
            dropped_rejected: g(&self.dropped_rejected),
            dropped_retry_exhausted: g(&self.dropped_retry_exhausted),
            dropped_shutdown: g(&self.dropped_shutdown),
            retries: g(&self.retries),
            token_requests: g(&self.token_requests),
            queued: g(&self.queued),
            last_error: AzureErrorKind::from_code(self.last_error.load(Ordering::Relaxed)),
        };
        s.rows_dropped = s.dropped_queue_full
            + s.dropped_oversize
            + s.dropped_rejected
            + s.dropped_retry_exhausted
            + s.dropped_shutdown;
        s
    }

    /// `n` queued rows are done with: delivered (`into` = rows_sent) or dropped.
    fn settle(&self, n: usize, into: &AtomicU64) {
        into.fetch_add(n as u64, Ordering::Relaxed);
        self.queued.fetch_sub(n as u64, Ordering::Relaxed);
    }

    fn error(&self, k: AzureErrorKind) {
        self.last_error.store(k.code(), Ordering::Relaxed);
    }
}

/// Handle to the running exporter. Dropping it without [`shutdown`](Self::shutdown)
/// stops the worker at once, dropping what is queued.
#[derive(Debug)]
pub struct AzureLogs {
    tx: mpsc::UnboundedSender<LogRecord>,
    stop: oneshot::Sender<Instant>,
    thread: thread::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl AzureLogs {
    /// Validates `cfg`, reads identity defaults from the environment and starts the
    /// exporter thread. Nothing is sent until the first rows arrive.
    pub fn start(cfg: &AzureLogsConfig) -> Result<AzureLogs, AzureError> {
        AzureLogs::start_with(cfg, &|k| std::env::var(k).ok())
    }

    /// [`start`](Self::start) with an explicit environment.
    pub fn start_with(
        cfg: &AzureLogsConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AzureLogs, AzureError> {
        if !cfg.enabled {
            return Err(AzureError::Disabled);
        }
        let identity = cfg.resolve_identity(env).map_err(AzureError::Config)?;
        let target = HttpTarget::parse(&cfg.ingestion_url())
            .map_err(|e| AzureError::Config(vec![format!("endpoint: {e}")]))?;
        let token_tls = identity.authority_host.len() >= 8
            && identity.authority_host[..8].eq_ignore_ascii_case("https://");
        let tls = if target.is_tls() || token_tls {
            Some(client::tls_config(cfg.ca_file.as_deref()).map_err(AzureError::Tls)?)
        } else {
            None
        };
        let tokens = TokenSource::new(identity, cfg.scope.clone(), tls.clone(), env)
            .map_err(|e| AzureError::Config(vec![e]))?;
        let shared = Arc::new(Shared {
            max_queued: cfg.max_queued_records as u64,
            ..Shared::default()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let worker = Worker {
            limit: cfg.max_batch_bytes,
            flush_interval: cfg.flush_interval(),
            request_timeout: cfg.request_timeout(),
            max_retry: cfg.max_retry(),
            backoff_initial: Duration::from_millis(cfg.backoff_initial_ms),
            backoff_max: Duration::from_millis(cfg.backoff_max_ms),
            backoff: Duration::from_millis(cfg.backoff_initial_ms),
            target,
            tls,
            tokens,
            queue: RowQueue::default(),
            inflight: None,
            shared: Arc::clone(&shared),
            failing: false,
            rng: seed(),
        };
        let thread = thread::Builder::new()
            .name("mqscope-azure".into())
            .spawn(move || rt.block_on(worker.run(rx, stop_rx)))?;
        tracing::info!(stream = %cfg.stream, "azure logs ingestion exporter started");
        Ok(AzureLogs {
            tx,
            stop,
            thread,
            shared,
        })
    }

    /// Queues a row. Never blocks; `false` when `max_queued_records` rows are waiting (or
    /// the exporter has stopped): the row is dropped and counted.
    pub fn push(&self, rec: LogRecord) -> bool {
        let s = &self.shared;
        if s.queued.fetch_add(1, Ordering::Relaxed) >= s.max_queued {
            s.queued.fetch_sub(1, Ordering::Relaxed);
            s.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.tx.send(rec).is_err() {
            s.settle(1, &s.dropped_shutdown);
            return false;
        }
        true
    }

    pub fn stats(&self) -> AzureStats {
        self.shared.snapshot()
    }

    /// Sends what is queued for at most `timeout`, stops the worker and returns the final
    /// counters (rows left unsent are in `dropped_shutdown`). Blocks the calling thread.
    pub fn shutdown(self, timeout: Duration) -> AzureStats {
        let AzureLogs {
            tx,
            stop,
            thread,
            shared,
        } = self;
        let _ = stop.send(Instant::now() + timeout);
        drop(tx);
        // The worker honours the deadline itself; polling keeps this handle `Sync` (no
        // std receiver) and costs nothing that matters at shutdown.
        let give_up = std::time::Instant::now() + timeout + SHUTDOWN_GRACE;
        while !thread.is_finished() && std::time::Instant::now() < give_up {
            thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            // It ends on its own at its next await; not waited for.
            tracing::warn!("azure logs exporter did not stop in time");
        }
        shared.snapshot()
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ u64::from(std::process::id()).rotate_left(32)) | 1
}

struct InFlight {
    batch: Batch,
    first_attempt: Option<Instant>,
    next_attempt: Instant,
    /// The one immediate retry after a 401 has been used.
    reauthenticated: bool,
}

enum Outcome {
    Sent,
    Reauthenticate,
    Retry(AzureErrorKind, Option<Duration>),
    Reject(u16),
}

struct Worker {
    limit: usize,
    flush_interval: Duration,
    request_timeout: Duration,
    max_retry: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    backoff: Duration,
    target: HttpTarget,
    tls: Option<Arc<rustls::ClientConfig>>,
    tokens: TokenSource,
    queue: RowQueue,
    inflight: Option<InFlight>,
    shared: Arc<Shared>,
    failing: bool,
    rng: u64,
}

impl Worker {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<LogRecord>,
        mut stop: oneshot::Receiver<Instant>,
    ) {
        let mut deadline: Option<Instant> = None;
        loop {
            while let Ok(r) = rx.try_recv() {
                self.admit(r);
            }
            let now = Instant::now();
            if let Some(d) = deadline
                && (now >= d || self.queue.is_empty())
            {
                break;
            }
            self.prepare(now, deadline.is_some());
            if let Some(f) = &self.inflight
                && f.next_attempt <= now
            {
                let attempt = self.attempt(deadline);
                tokio::pin!(attempt);
                let stopped = tokio::select! {
                    _ = &mut attempt => None,
                    d = &mut stop, if deadline.is_none() => Some(d.unwrap_or(now)),
                };
                if let Some(d) = stopped {
                    // Let the request in progress finish, within the shutdown bound.
                    deadline = Some(d);
                    let _ = tokio::time::timeout_at(d, attempt).await;
                }
                continue;
            }
            let mut wake = match (&self.inflight, self.queue.oldest()) {
                (Some(f), _) => f.next_attempt,
                (None, Some(t)) => t + self.flush_interval,
                (None, None) => now + Duration::from_secs(3600),
            };
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            tokio::select! {
                r = rx.recv(), if deadline.is_none() => match r {
                    Some(r) => self.admit(r),
                    // The handle is gone: shutdown (its deadline may already be waiting)
                    // or a plain drop (stop now).
                    None => deadline = Some(stop.try_recv().unwrap_or(now)),
                },
                d = &mut stop, if deadline.is_none() => deadline = Some(d.unwrap_or(now)),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        rx.close();
        let mut left = self.queue.len();
        while rx.try_recv().is_ok() {
            left += 1;
        }
        if left > 0 {
            tracing::warn!(
                rows = left,
                "azure logs: rows not sent before shutdown, dropped"
            );
        }
        self.shared.settle(left, &self.shared.dropped_shutdown);
    }

    fn admit(&mut self, rec: LogRecord) {
        match serde_json::to_vec(&rec) {
            Ok(json) if row_fits(json.len(), self.limit) => self.queue.push(json, Instant::now()),
            _ => self.drop_oversize(),
        }
    }

    /// Counts a row too large for any request; logs the 1st, 2nd, 4th, 8th, ... so a
    /// flood of them cannot flood the log.
    fn drop_oversize(&self) {
        self.shared.settle(1, &self.shared.dropped_oversize);
        let n = self.shared.dropped_oversize.load(Ordering::Relaxed);
        if n.is_power_of_two() {
            tracing::warn!(
                dropped = n,
                limit = self.limit,
                "azure logs: row larger than max_batch_bytes, dropped"
            );
        }
    }

    /// Cuts the next batch when one is due.
    fn prepare(&mut self, now: Instant, stopping: bool) {
        while self.inflight.is_none() {
            let due = match self.queue.oldest() {
                None => false,
                Some(t) => {
                    stopping || self.queue.full(self.limit) || t + self.flush_interval <= now
                }
            };
            if !due {
                return;
            }
            match self.queue.cut(self.limit) {
                Ok(Cut::Batch(batch)) => {
                    self.inflight = Some(InFlight {
                        batch,
                        first_attempt: None,
                        next_attempt: now,
                        reauthenticated: false,
                    })
                }
                Ok(Cut::Empty) => return,
                Ok(Cut::FrontTooLarge) | Err(_) => {
                    self.queue.pop(1);
                    self.drop_oversize();
                }
            }
        }
    }

    async fn attempt(&mut self, deadline: Option<Instant>) {
        let now = Instant::now();
        let timeout = match deadline {
            Some(d) => self.request_timeout.min(d.saturating_duration_since(now)),
            None => self.request_timeout,
        };
        let outcome = self.send(timeout).await;
        self.shared
            .token_requests
            .store(self.tokens.requests, Ordering::Relaxed);
        let Some(f) = self.inflight.as_mut() else {
            return;
        };
        f.first_attempt.get_or_insert(now);
        let rows = f.batch.rows;
        match outcome {
            Outcome::Sent => {
                let n = self.queue.pop(rows);
                self.inflight = None;
                self.shared.settle(n, &self.shared.rows_sent);
                self.shared.batches_sent.fetch_add(1, Ordering::Relaxed);
                self.backoff = self.backoff_initial;
                if self.failing {
                    self.failing = false;
                    tracing::info!("azure logs ingestion reachable again");
                }
            }
            Outcome::Reauthenticate if !f.reauthenticated => {
                f.reauthenticated = true;
                f.next_attempt = Instant::now();
                self.shared.retries.fetch_add(1, Ordering::Relaxed);
                self.shared.error(AzureErrorKind::Unauthorized);
            }
            Outcome::Reauthenticate => self.retry(AzureErrorKind::Unauthorized, None),
            Outcome::Retry(kind, after) => self.retry(kind, after),
            Outcome::Reject(status) => {
                let n = self.queue.pop(rows);
                self.inflight = None;
                self.shared.settle(n, &self.shared.dropped_rejected);
                self.shared.error(AzureErrorKind::Rejected);
                tracing::warn!(status, rows = n, "azure logs: batch rejected, dropped");
            }
        }
    }

    /// One POST of the batch in flight, with a token.
    async fn send(&mut self, timeout: Duration) -> Outcome {
        let token = match self.tokens.token(timeout).await {
            Ok(t) => t,
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "azure logs: no access token, retrying with backoff");
                }
                return Outcome::Retry(AzureErrorKind::Token, e.retry_after());
            }
        };
        let Some(f) = &self.inflight else {
            return Outcome::Sent;
        };
        let auth = format!("Bearer {}", token.expose());
        let req = PostRequest {
            content_type: "application/json",
            headers: &[("Content-Encoding", "gzip"), ("Authorization", &auth)],
            body: &f.batch.body,
            // Head only: a 2xx must never wait on a body (a timeout there would resend
            // delivered rows); errors name themselves in `x-ms-error-code`.
            max_response_body: 0,
        };
        match client::post(&self.target, &req, timeout, self.tls.as_ref()).await {
            Ok(r) if (200..300).contains(&r.status) => Outcome::Sent,
            Ok(r) if r.status == 401 => {
                self.tokens.invalidate();
                Outcome::Reauthenticate
            }
            Ok(r) if r.status == 429 => Outcome::Retry(AzureErrorKind::Throttled, r.retry_after),
            Ok(r) if r.status == 408 || r.status >= 500 => {
                Outcome::Retry(AzureErrorKind::Server, r.retry_after)
            }
            Ok(r) => {
                let code = printable(r.header("x-ms-error-code").unwrap_or(""));
                tracing::warn!(status = r.status, code = %code, "azure logs: request refused");
                Outcome::Reject(r.status)
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Outcome::Retry(AzureErrorKind::Timeout, None)
            }
            Err(_) => Outcome::Retry(AzureErrorKind::Connect, None),
        }
    }

    fn retry(&mut self, kind: AzureErrorKind, after: Option<Duration>) {
        self.shared.error(kind);
        let mut wait = self.jitter(self.backoff);
        if let Some(a) = after {
            wait = wait.max(a.min(MAX_RETRY_AFTER));
        }
        self.backoff = (self.backoff * 2).min(self.backoff_max);
        let now = Instant::now();
        let Some(f) = self.inflight.as_mut() else {
            return;
        };
        let first = *f.first_attempt.get_or_insert(now);
        if (now + wait).saturating_duration_since(first) > self.max_retry {
            let n = self.queue.pop(f.batch.rows);
            self.inflight = None;
            self.shared.settle(n, &self.shared.dropped_retry_exhausted);
            tracing::warn!(
                rows = n,
                error = kind.as_str(),
                "azure logs: batch still failing after max_retry_secs, dropped"
            );
            return;
        }
        f.next_attempt = now + wait;
        self.shared.retries.fetch_add(1, Ordering::Relaxed);
        if !self.failing {
            self.failing = true;
            tracing::warn!(
                error = kind.as_str(),
                "azure logs ingestion failing, retrying with backoff"
            );
        }
    }

    /// Uniform in [d/2, d] (xorshift64: jitter needs spread, not cryptographic quality).
    fn jitter(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = d / 2;
        half + half.mul_f64((self.rng >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// A header value fit for a log line: letters, digits and `_`, bounded.
fn printable(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_roundtrip_their_codes() {
        assert_eq!(AzureErrorKind::from_code(0), None);
        for k in AzureErrorKind::ALL {
            assert_eq!(AzureErrorKind::from_code(k.code()), Some(k));
        }
        assert_eq!(AzureErrorKind::from_code(8), None);
    }

    #[test]
    fn handle_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<AzureLogs>();
    }

    #[test]
    fn header_values_are_cleaned_for_logs() {
        assert_eq!(printable("InvalidStream"), "InvalidStream");
        assert_eq!(printable("a\r\nb c"), "abc");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
    }
}

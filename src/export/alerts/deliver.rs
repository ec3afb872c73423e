//! Delivery to one receiver: a bounded in-memory queue feeding a tokio task that owns the
//! receiver's spool (see `spool`) and POSTs one notification at a time, oldest first.
//!
//! * **Dedup** by (fingerprint, state): a notification whose state equals the latest
//!   state already queued or delivered for that fingerprint is dropped (counted).
//! * **Repeat**: a firing alert last delivered `repeat_interval` ago is sent again (for
//!   Alertmanager this keeps it from expiring at its `resolve_timeout`).
//! * **Retries**: connection errors, timeouts, 408, 429 and 5xx are retried with
//!   exponential backoff (doubling from `backoff_initial` to `backoff_max`) with jitter
//!   (each wait is uniform in [½, 1] × backoff); `Retry-After` (seconds) is honoured as
//!   a minimum wait, up to [`MAX_RETRY_AFTER`] so a broken server cannot park us. Other 4xx are permanent: the entry is dropped and counted.
//! * **Restart**: the spool holds what is not yet delivered; a ledger file
//!   (`<receiver>.ledger.json`, rewritten atomically after each delivery) holds the last
//!   delivered state per fingerprint, so after a restart dedup and repeats continue and a
//!   detector re-raising a still-firing alert does not notify twice.
//! * **Secrets**: URLs and routing keys are `Secret`s; logs name the receiver and the
//!   status, never the URL.
//!
//! `https://` uses rustls (ring) with the system roots, or `ca_file` when set.
//!
//! Spool and ledger use blocking `std::fs` inside the task: files are small and written
//! once per notification, which is rare compared with packets.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::{self, HttpTarget, UrlError};
use super::model::{Alert, AlertState, Fingerprint};
use super::payload;
use super::secret::Secret;
use super::spool::{Spool, file_stem};
use super::time::Timestamp;

/// Longest `Retry-After` obeyed.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub enum ReceiverKind {
    /// Alertmanager base URL (e.g. `http://am:9093`); `/api/v2/alerts` is appended.
    Alertmanager {
        url: Secret,
    },
    /// Generic webhook receiving Alertmanager's webhook message v4.
    Webhook {
        url: Secret,
        external_url: String,
        group_by: Vec<String>,
    },
    Slack {
        url: Secret,
    },
    Teams {
        url: Secret,
    },
    PagerDuty {
        url: Secret,
        routing_key: Secret,
        source: String,
    },
}

impl ReceiverKind {
    fn url(&self) -> &Secret {
        match self {
            ReceiverKind::Alertmanager { url }
            | ReceiverKind::Webhook { url, .. }
            | ReceiverKind::Slack { url }
            | ReceiverKind::Teams { url }
            | ReceiverKind::PagerDuty { url, .. } => url,
        }
    }

    fn target(&self) -> Result<HttpTarget, UrlError> {
        let t = HttpTarget::parse(self.url().expose())?;
        Ok(match self {
            ReceiverKind::Alertmanager { .. } => t.join("/api/v2/alerts"),
            _ => t,
        })
    }

    /// The request body for one notification.
    pub fn body(&self, receiver: &str, alert: &Alert) -> Value {
        let one = std::slice::from_ref(alert);
        match self {
            ReceiverKind::Alertmanager { .. } => payload::alertmanager_v2(one),
            ReceiverKind::Webhook {
                external_url,
                group_by,
                ..
            } => payload::webhook_v4(receiver, external_url, group_by, one),
            ReceiverKind::Slack { .. } => payload::slack(alert),
            ReceiverKind::Teams { .. } => payload::teams(alert),
            ReceiverKind::PagerDuty {
                routing_key,
                source,
                ..
            } => payload::pagerduty(routing_key.expose(), source, alert),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Unique per receiver: names the spool and ledger files and appears in logs.
    pub name: String,
    pub kind: ReceiverKind,
    pub spool_dir: PathBuf,
    /// In-memory queue between detectors and the delivery task.
    pub queue_capacity: usize,
    pub spool_max_bytes: usize,
    pub repeat_interval: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub request_timeout: Duration,
    /// Fingerprints remembered for dedup / repeat; resolved ones are forgotten first.
    pub max_tracked: usize,
    /// PEM CA certificates for `https://` instead of the system roots.
    pub ca_file: Option<PathBuf>,
}

impl ReceiverConfig {
    /// Defaults: Alertmanager repeats every minute (below its default 5 m
    /// `resolve_timeout`), other receivers every 4 h (Alertmanager's default
    /// `repeat_interval`).
    pub fn new(name: impl Into<String>, kind: ReceiverKind, spool_dir: PathBuf) -> Self {
        let repeat_interval = match kind {
            ReceiverKind::Alertmanager { .. } => Duration::from_secs(60),
            _ => Duration::from_secs(4 * 3600),
        };
        ReceiverConfig {
            name: name.into(),
            kind,
            spool_dir,
            queue_capacity: 1024,
            spool_max_bytes: 4 << 20,
            repeat_interval,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_tracked: 10_000,
            ca_file: None,
        }
    }
}

/// Counters, readable while the task runs.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    pub queue_full: AtomicU64,
    pub deduplicated: AtomicU64,
    pub delivered: AtomicU64,
    pub repeats: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub rejected: AtomicU64,
    pub spool_dropped: AtomicU64,
    pub spool_errors: AtomicU64,
    pub pending: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("receiver {name}: {source}")]
    Url { name: String, source: UrlError },
    #[error("receiver {name}: {reason}")]
    Tls { name: String, reason: String },
    #[error("receiver {name}: spool: {source}")]
    Spool { name: String, source: io::Error },
}

/// Handle to a running receiver. Dropping it stops the task; whatever was not yet
/// delivered stays in the spool for the next start.
#[derive(Debug)]
pub struct Receiver {
    name: String,
    tx: mpsc::Sender<Alert>,
    stats: Arc<ReceiverStats>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Opens the spool and ledger and starts the delivery task on the current runtime.
    pub fn start(cfg: ReceiverConfig) -> Result<Receiver, StartError> {
        let target = cfg.kind.target().map_err(|source| StartError::Url {
            name: cfg.name.clone(),
            source,
        })?;
        let tls = if target.is_tls() {
            Some(
                client::tls_config(cfg.ca_file.as_deref()).map_err(|reason| StartError::Tls {
                    name: cfg.name.clone(),
                    reason,
                })?,
            )
        } else {
            None
        };
        let spool =
            Spool::open(&cfg.spool_dir, &cfg.name, cfg.spool_max_bytes).map_err(|source| {
                StartError::Spool {
                    name: cfg.name.clone(),
                    source,
                }
            })?;
        let stats = Arc::new(ReceiverStats::default());
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let name = cfg.name.clone();
        let worker = Worker::new(cfg, target, tls, spool, Arc::clone(&stats));
        let task = tokio::spawn(worker.run(rx));
        Ok(Receiver {
            name,
            tx,
            stats,
            task,
        })
    }

    /// Queues a notification (a `Transition`'s alert). Never blocks; `false` when the
    /// queue is full (counted in `queue_full`).
    pub fn notify(&self, alert: Alert) -> bool {
        if self.tx.try_send(alert).is_ok() {
            true
        } else {
            self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// Nothing queued in memory and nothing waiting in the spool.
    pub fn is_idle(&self) -> bool {
        self.tx.capacity() == self.tx.max_capacity()
            && self.stats.pending.load(Ordering::Relaxed) == 0
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What this receiver knows about one fingerprint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Known {
    /// Latest alert admitted (queued or delivered).
    alert: Alert,
    /// Last delivery of any notification for it (wall clock, survives restarts).
    sent_at: Option<Timestamp>,
    /// State last delivered.
    delivered: Option<AlertState>,
    #[serde(skip)]
    pending: u32,
}

struct Worker {
    cfg: ReceiverConfig,
    target: HttpTarget,
    tls: Option<Arc<rustls::ClientConfig>>,
    spool: Spool,
    stats: Arc<ReceiverStats>,
    known: HashMap<Fingerprint, Known>,
    ledger_path: PathBuf,
    backoff: Duration,
    next_attempt: Instant,
    failing: bool,
    rng: u64,
}

enum Outcome {
    Delivered,
    Rejected(u16),
    Retry(Option<Duration>),
}

impl Worker {
    fn new(
        cfg: ReceiverConfig,
        target: HttpTarget,
        tls: Option<Arc<rustls::ClientConfig>>,
        spool: Spool,
        stats: Arc<ReceiverStats>,
    ) -> Self {
        let ledger_path = cfg
            .spool_dir
            .join(format!("{}.ledger.json", file_stem(&cfg.name)));
        let mut known: HashMap<Fingerprint, Known> = fs::read(&ledger_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Known>>(&b).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|k| (k.alert.fingerprint(), k))
            .collect();
        // Pending spool entries are newer than anything delivered.
        for a in spool.iter() {
            let k = known.entry(a.fingerprint()).or_insert_with(|| Known {
                alert: a.clone(),
                sent_at: None,
                delivered: None,
                pending: 0,
            });
            k.alert = a.clone();
            k.pending += 1;
        }
        stats.pending.store(spool.len() as u64, Ordering::Relaxed);
        let seed = Timestamp::now().millis() as u64 ^ payload_hash(cfg.name.as_bytes());
        Worker {
            backoff: cfg.backoff_initial,
            cfg,
            target,
            tls,
            spool,
            stats,
            known,
            ledger_path,
            next_attempt: Instant::now(),
            failing: false,
            rng: seed | 1,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Alert>) {
        loop {
            while let Ok(a) = rx.try_recv() {
                self.admit(a);
            }
            self.schedule_repeats();
            let now = Instant::now();
            if !self.spool.is_empty() && now >= self.next_attempt {
                self.attempt().await;
                continue;
            }
            let wake = if self.spool.is_empty() {
                now + self.cfg.repeat_interval.min(Duration::from_secs(60))
            } else {
                self.next_attempt
            };
            tokio::select! {
                got = rx.recv() => match got {
                    Some(a) => self.admit(a),
                    // All senders gone: keep delivering what is spooled, then stop.
                    None if self.spool.is_empty() => return,
                    None => tokio::time::sleep_until(wake).await,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn admit(&mut self, alert: Alert) {
        let fp = alert.fingerprint();
        let state = alert.state();
        if let Some(k) = self.known.get(&fp)
            && k.alert.state() == state
        {
            self.stats.deduplicated.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.enqueue(alert);
    }

    fn enqueue(&mut self, alert: Alert) {
        let fp = alert.fingerprint();
        match self.spool.push(&alert) {
            Ok(dropped) => {
                if dropped > 0 {
                    self.stats
                        .spool_dropped
                        .fetch_add(dropped, Ordering::Relaxed);
                    self.recount_pending();
                }
            }
            Err(e) => {
                self.stats.spool_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(receiver = %self.cfg.name, error = %e, "alert spool write failed");
            }
        }
        let k = self.known.entry(fp).or_insert_with(|| Known {
            alert: alert.clone(),
            sent_at: None,
            delivered: None,
            pending: 0,
        });
        k.alert = alert;
        k.pending += 1;
        self.stats
            .pending
            .store(self.spool.len() as u64, Ordering::Relaxed);
        self.forget_excess();
    }

    /// After the spool dropped entries, pending counts are rebuilt from what is left.
    /// A fingerprint whose latest admitted state was dropped before delivery is
    /// forgotten, so the next notification for it is not mistaken for a duplicate.
    fn recount_pending(&mut self) {
        for k in self.known.values_mut() {
            k.pending = 0;
        }
        for a in self.spool.iter() {
            if let Some(k) = self.known.get_mut(&a.fingerprint()) {
                k.pending += 1;
            }
        }
        self.known
            .retain(|_, k| k.pending > 0 || k.delivered == Some(k.alert.state()));
    }

    /// Bounds `known`: forgets delivered resolved alerts first.
    fn forget_excess(&mut self) {
        if self.known.len() <= self.cfg.max_tracked {
            return;
        }
        self.known
            .retain(|_, k| !(k.pending == 0 && k.alert.state() == AlertState::Resolved));
    }

    fn schedule_repeats(&mut self) {
        let now = Timestamp::now();
        let every = i64::try_from(self.cfg.repeat_interval.as_millis()).unwrap_or(i64::MAX);
        let due: Vec<Alert> = self
            .known
            .values()
            .filter(|k| {
                k.pending == 0
                    && k.alert.state() == AlertState::Firing
                    && k.sent_at
                        .is_some_and(|t| now.millis().saturating_sub(t.millis()) >= every)
            })
            .map(|k| k.alert.clone())
            .collect();
        for a in due {
            self.stats.repeats.fetch_add(1, Ordering::Relaxed);
            self.enqueue(a);
        }
    }

    async fn attempt(&mut self) {
        let Some(alert) = self.spool.front().cloned() else {
            return;
        };
        let body = match serde_json::to_vec(&self.cfg.kind.body(&self.cfg.name, &alert)) {
            Ok(b) => b,
            Err(_) => {
                self.finish(&alert, false);
                return;
            }
        };
        let outcome = match client::post_json(
            &self.target,
            &body,
            self.cfg.request_timeout,
            self.tls.as_ref(),
        )
        .await
        {
            Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered,
            Ok(r) if r.status == 408 || r.status == 429 || r.status >= 500 => {
                Outcome::Retry(r.retry_after)
            }
            Ok(r) => Outcome::Rejected(r.status),
            Err(_) => Outcome::Retry(None),
        };
        match outcome {
            Outcome::Delivered => {
                if self.failing {
                    tracing::info!(receiver = %self.cfg.name, "alert receiver reachable again");
                    self.failing = false;
                }
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                self.backoff = self.cfg.backoff_initial;
                self.finish(&alert, true);
            }
            Outcome::Rejected(status) => {
                tracing::warn!(receiver = %self.cfg.name, status, "alert rejected by receiver, dropped");
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                self.finish(&alert, false);
            }
            Outcome::Retry(after) => {
                if !self.failing {
                    tracing::warn!(receiver = %self.cfg.name, "alert delivery failing, retrying with backoff");
                    self.failing = true;
                }
                self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                let wait = after
                    .map(|d| d.min(MAX_RETRY_AFTER).max(self.jitter(self.backoff)))
                    .unwrap_or_else(|| self.jitter(self.backoff));
                self.next_attempt = Instant::now() + wait;
                self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
            }
        }
    }

    /// Head entry done (delivered or given up): compact the spool, update the ledger.
    fn finish(&mut self, alert: &Alert, delivered: bool) {
        if let Err(e) = self.spool.pop_front() {
            self.stats.spool_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(receiver = %self.cfg.name, error = %e, "alert spool compaction failed");
        }
        self.stats
            .pending
            .store(self.spool.len() as u64, Ordering::Relaxed);
        if let Some(k) = self.known.get_mut(&alert.fingerprint()) {
            k.pending = k.pending.saturating_sub(1);
            if delivered {
                k.sent_at = Some(Timestamp::now());
                k.delivered = Some(alert.state());
            }
        }
        if delivered {
            self.save_ledger();
        }
    }

    fn save_ledger(&mut self) {
        let entries: Vec<&Known> = self
            .known
            .values()
            .filter(|k| k.delivered.is_some())
            .collect();
        let res = serde_json::to_vec(&entries)
            .map_err(io::Error::other)
            .and_then(|bytes| {
                let tmp = self.ledger_path.with_extension("json.tmp");
                fs::write(&tmp, bytes)?;
                fs::rename(&tmp, &self.ledger_path)
            });
        if let Err(e) = res {
            self.stats.spool_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(receiver = %self.cfg.name, error = %e, "alert ledger write failed");
        }
    }

    /// Uniform in [d/2, d] (xorshift64; jitter needs spread, not cryptographic quality).
    fn jitter(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = d / 2;
        let frac = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(frac)
    }
}

fn payload_hash(b: &[u8]) -> u64 {
    super::model::fingerprint(&[(String::from_utf8_lossy(b).into_owned(), String::new())].into()).0
}

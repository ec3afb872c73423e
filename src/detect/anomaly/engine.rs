//! `AnomalyEngine`: once per bucket (record time, no clock), reads the observer's
//! totals, turns them into per-bucket series and runs every check; hits go through the
//! same [`Alerts`] life cycle as the security rules.
//!
//! State is keyed by wire data (topic names, client ids, broker node names): every map
//! has a cap. Entities (topics, clients) are forgotten after `idle_evict_s` without
//! activity; series detectors are capped by `max_series`, and at the cap a new series is
//! refused rather than evicting an active one (a flood of new names must not wipe the
//! baselines that matter). Both are counted.

use std::collections::HashMap;

use serde::Serialize;

use crate::broker::BrokerMetrics;
use crate::detect::DetectorConfig;
use crate::detect::rules::hit::{Alerts, RuleHit};
use crate::observe::{Exchange, Observer};

use super::broker::{ExchangeState, MetricState};
use super::clients::ClientState;
use super::config::{AnomalyConfig, Seasonality};
use super::known::Known;
use super::topics::TopicState;
use super::track::{StepParams, Track};

/// Maps keyed by wire data: randomly seeded (a sender cannot aim for collisions), and
/// fast. Nothing depends on their iteration order.
pub type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Detectors held and what happened at the cap.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    pub live: usize,
    pub cap: usize,
    pub created: u64,
    pub refused: u64,
    pub evicted: u64,
}

impl Budget {
    pub fn take(&mut self) -> bool {
        if self.live < self.cap {
            self.live += 1;
            self.created += 1;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    pub fn release(&mut self, n: usize, evicted: bool) {
        self.live = self.live.saturating_sub(n);
        if evicted {
            self.evicted += n as u64;
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct AnomalyCounters {
    pub buckets: u64,
    /// Calls with a time not after the previous bucket (ignored).
    pub buckets_out_of_order: u64,
    pub series: u64,
    pub series_created: u64,
    /// Series dropped with their idle entity.
    pub series_evicted: u64,
    /// Series creations refused because `max_series` was reached (attempts: an entity
    /// without its series asks again every bucket).
    pub series_refused: u64,
    pub topics_tracked: u64,
    pub clients_tracked: u64,
    pub topics_evicted: u64,
    pub clients_evicted: u64,
    /// Topics / clients not tracked because their table was full.
    pub entities_refused: u64,
    pub known_names: u64,
    /// New names not remembered because `max_known` was reached.
    pub known_full: u64,
    pub peer_runs: u64,
    /// Clients scored in the last peer run, the k chosen and the peer groups found.
    pub peer_clients: u64,
    pub peer_k: u64,
    pub peer_groups: u64,
    pub hits: u64,
    pub active: u64,
    pub hits_dropped: u64,
    pub active_evicted: u64,
}

/// Hits and counters, for reports.
#[derive(Clone, Debug, Serialize)]
pub struct AnomalySnapshot {
    pub hits: Vec<RuleHit>,
    pub counters: AnomalyCounters,
}

/// Per-bucket bookkeeping shared by the passes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// First bucket ever (kept across restarts through the saved state).
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub buckets: u64,
    /// Buckets since the last peer run.
    pub since_peer: u32,
    pub last_peer_ns: Option<u64>,
}

pub struct AnomalyEngine {
    pub(super) cfg: AnomalyConfig,
    pub(super) dcfg: DetectorConfig,
    pub(super) alerts: Alerts,
    pub(super) topics: Map<Box<str>, TopicState>,
    pub(super) clients: Map<Box<[u8]>, ClientState>,
    pub(super) exchanges: Vec<ExchangeState>,
    pub(super) metrics: Map<String, MetricState>,
    pub(super) known_topics: Known,
    pub(super) known_templates: Known,
    pub(super) known_clients: Known,
    pub(super) budget: Budget,
    pub(super) clock: Clock,
    pub(super) c: AnomalyCounters,
    /// New names alerted one by one in this bucket (per kind).
    pub(super) new_this_bucket: [u32; 2],
    pub(super) last_saved_ns: Option<u64>,
}

/// Most `$SYS` series kept (nodes x metrics); broker node names come from the wire.
pub const MAX_METRIC_SERIES: usize = 1024;

impl AnomalyEngine {
    pub fn new(cfg: AnomalyConfig) -> Result<AnomalyEngine, Vec<String>> {
        let errs = cfg.validate();
        if !errs.is_empty() {
            return Err(errs);
        }
        let dcfg = detector_config(&cfg);
        // Condition-like hits are kept alive every bucket while they hold; the cool-down
        // must outlast a bucket or they would flicker.
        let cooldown = cfg.cooldown_s.max(3 * u64::from(cfg.bucket_secs));
        Ok(AnomalyEngine {
            alerts: Alerts::new(
                cfg.max_topics.saturating_add(cfg.max_clients).min(100_000),
                cfg.max_hits,
                cooldown.saturating_mul(1_000_000_000),
            ),
            topics: Map::default(),
            clients: Map::default(),
            exchanges: Exchange::ALL
                .iter()
                .map(|_| ExchangeState::default())
                .collect(),
            metrics: Map::default(),
            known_topics: Known::default(),
            known_templates: Known::default(),
            known_clients: Known::default(),
            budget: Budget {
                cap: cfg.max_series,
                ..Budget::default()
            },
            clock: Clock::default(),
            c: AnomalyCounters::default(),
            new_this_bucket: [0; 2],
            last_saved_ns: None,
            dcfg,
            cfg,
        })
    }

    pub fn config(&self) -> &AnomalyConfig {
        &self.cfg
    }

    /// End of the last bucket evaluated.
    pub fn last_bucket_ns(&self) -> Option<u64> {
        self.clock.last_ns
    }

    pub fn hits(&self) -> &[RuleHit] {
        self.alerts.hits()
    }

    pub fn counters(&self) -> AnomalyCounters {
        let hits = self.alerts.hits();
        AnomalyCounters {
            series: self.budget.live as u64,
            series_created: self.budget.created,
            series_evicted: self.budget.evicted,
            series_refused: self.budget.refused,
            topics_tracked: self.topics.len() as u64,
            clients_tracked: self.clients.len() as u64,
            known_names: (self.known_topics.count()
                + self.known_templates.count()
                + self.known_clients.count()) as u64,
            known_full: self.known_topics.full
                + self.known_templates.full
                + self.known_clients.full,
            hits: hits.len() as u64,
            active: hits.iter().filter(|h| h.cleared_ts_ns.is_none()).count() as u64,
            hits_dropped: self.alerts.hits_dropped,
            active_evicted: self.alerts.active_evicted(),
            ..self.c.clone()
        }
    }

    pub fn snapshot(&self) -> AnomalySnapshot {
        AnomalySnapshot {
            hits: self.hits().to_vec(),
            counters: self.counters(),
        }
    }

    /// Whether the learning period (for new names and peer acceptance) is over at `now`.
    pub(super) fn learned(&self, now: u64) -> bool {
        self.clock.first_ns.is_some_and(|f| {
            now.saturating_sub(f) >= self.cfg.learn_s.saturating_mul(1_000_000_000)
        })
    }

    pub(super) fn params(&self, halflife: f64, unit: f64) -> StepParams {
        StepParams {
            warmup: self.cfg.warmup_buckets(),
            confirm: self.cfg.confirm_buckets,
            clear: self.cfg.clear_buckets,
            max_firing_ns: self.cfg.max_firing_s.saturating_mul(1_000_000_000),
            halflife,
            unit,
        }
    }

    /// A new detector if the budget allows.
    pub(super) fn new_track(
        budget: &mut Budget,
        dcfg: &DetectorConfig,
        weekly: bool,
        now: u64,
    ) -> Option<Track> {
        budget.take().then(|| Track::new(dcfg, weekly, now))
    }

    pub(super) fn weekly(&self) -> bool {
        self.cfg.seasonality == Seasonality::Weekly
    }

    /// One evaluation bucket ending at `now_ns` (record time). Call it every
    /// `bucket_secs`, after the records up to `now_ns` went to `obs`. `brokers`: the
    /// `$SYS` metrics of each broker node currently known fresh (empty in replay).
    pub fn on_bucket(&mut self, obs: &Observer, brokers: &[BrokerMetrics], now_ns: u64) {
        if !self.cfg.enabled {
            return;
        }
        if self.clock.last_ns.is_some_and(|l| now_ns <= l) {
            self.c.buckets_out_of_order += 1;
            return;
        }
        self.c.buckets += 1;
        self.clock.buckets += 1;
        if self.clock.first_ns.is_none() {
            self.clock.first_ns = Some(now_ns);
        }
        let elapsed = self
            .clock
            .last_ns
            .map_or(self.cfg.bucket_ns(), |l| now_ns - l);
        self.new_this_bucket = [0; 2];
        self.topics_pass(obs, now_ns, elapsed);
        self.clients_pass(obs, now_ns, elapsed);
        self.exchanges_pass(obs, now_ns);
        if self.cfg.broker.enabled {
            self.metrics_pass(brokers, now_ns);
        }
        // Idle sweep once a minute of buckets, or at once when the cap turned someone away.
        if self.clock.buckets.is_multiple_of(60) || self.budget.refused > self.c.series_refused {
            self.sweep(now_ns);
        }
        self.c.series_refused = self.budget.refused;
        self.alerts.tick(now_ns);
        self.clock.last_ns = Some(now_ns);
    }

    /// Forgets entities idle for `idle_evict_s`, releasing their series; their firing
    /// alerts resolve now (nothing will keep them up to date).
    fn sweep(&mut self, now: u64) {
        let idle = self.cfg.idle_evict_s.saturating_mul(1_000_000_000);
        let stale = |t: u64| now.saturating_sub(t) >= idle;
        let mut released = 0usize;
        let mut gone_keys: Vec<String> = Vec::new();
        let before = self.topics.len();
        self.topics.retain(|name, t| {
            if stale(t.last_active_ns) {
                released += t.series();
                if t.any_firing() {
                    gone_keys.push(format!("topic:{name}"));
                }
                false
            } else {
                true
            }
        });
        self.c.topics_evicted += (before - self.topics.len()) as u64;
        let before = self.clients.len();
        self.clients.retain(|id, c| {
            if stale(c.last_active_ns) {
                released += c.series();
                if c.any_firing() {
                    gone_keys.push(format!("client:{}", super::clients::id_text(id)));
                }
                false
            } else {
                true
            }
        });
        self.c.clients_evicted += (before - self.clients.len()) as u64;
        self.metrics.retain(|k, m| {
            if stale(m.last_ns) {
                released += usize::from(m.track.is_some());
                if m.track.as_ref().is_some_and(Track::is_firing) {
                    gone_keys.push(k.clone());
                }
                false
            } else {
                true
            }
        });
        self.budget.release(released, true);
        for k in gone_keys {
            for rule in super::RULES {
                self.alerts.clear(rule, &k, now);
            }
        }
    }

    /// Whether baselines are due to be saved at `now_ns` (a path is configured and the
    /// interval has passed since the last save, or nothing was saved yet).
    pub fn persist_due(&self, now_ns: u64) -> bool {
        self.cfg.persist.path.is_some()
            && self.last_saved_ns.is_none_or(|t| {
                now_ns.saturating_sub(t)
                    >= self.cfg.persist.interval_s.saturating_mul(1_000_000_000)
            })
    }
}

/// The detector settings every series uses, from the engine's.
pub fn detector_config(cfg: &AnomalyConfig) -> DetectorConfig {
    let mut d = DetectorConfig {
        warmup: cfg.warmup_buckets(),
        alert_probability: cfg.alert_probability,
        season_buckets: match cfg.seasonality {
            Seasonality::None => 0,
            _ => cfg.season_buckets,
        },
        ..DetectorConfig::default()
    };
    // Memory and file size: the peak ring is most of a detector's state (8 bytes per
    // peak, four tails). 48 peaks at a 2 % peak rate span ~2400 buckets (6.7 h at 10 s).
    d.spot.capacity = 48;
    d.spot.min_peaks = 24;
    d
}

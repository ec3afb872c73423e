//! Every knob of the anomaly engine. The defaults aim at silence on ordinary traffic:
//! a warm-up before any alert, a learning period before "new" alerts, and practical
//! floors on every check, so a statistically rare but tiny deviation (one message more
//! on a quiet topic) is not an alert.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the per-series detectors handle time-of-day and day-of-week effects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// One level for all hours.
    None,
    /// A time-of-day profile (`season_buckets` per day).
    Daily,
    /// Two time-of-day profiles, one for weekdays and one for weekends (UTC): two
    /// detectors per series, so twice the memory.
    Weekly,
}

/// Rate spikes and drops (messages per bucket; `$SYS` rates and levels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    pub enabled: bool,
    /// A spike is at least this many times the baseline...
    pub spike_ratio: f64,
    /// ...and at least this many messages per bucket above it...
    pub spike_min_delta: f64,
    /// ...and at least `z` Poisson standard deviations above it (sqrt of the baseline).
    pub z: f64,
    /// A drop is at most this fraction of the baseline...
    pub drop_ratio: f64,
    /// ...of a baseline of at least this many messages per bucket (a drop from 3 to 0
    /// messages is noise, from 300 to 0 it is not).
    pub drop_min_expected: f64,
    /// Check every client's publish rate too (one more series per publishing client).
    pub per_client: bool,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            enabled: true,
            spike_ratio: 3.0,
            spike_min_delta: 10.0,
            z: 5.0,
            drop_ratio: 0.3,
            drop_min_expected: 20.0,
            per_client: true,
        }
    }
}

/// Silence of a normally periodic topic or device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceConfig {
    pub enabled: bool,
    /// Expected periods missed before a topic or client counts as silent.
    pub periods: f64,
    /// Gaps measured before a period is trusted.
    pub min_gaps: u64,
    /// Never call a silence shorter than this (a 1 s telemetry topic pausing 5 s is a
    /// hiccup, not an outage).
    pub min_silence_s: f64,
    /// Clients: active buckets (with a PUBLISH) needed before a client's period counts,
    /// and the largest relative jitter of its gaps for it to count as periodic.
    pub client_min_gaps: u64,
    pub client_max_jitter: f64,
}

impl Default for SilenceConfig {
    fn default() -> Self {
        SilenceConfig {
            enabled: true,
            periods: 5.0,
            min_gaps: 10,
            min_silence_s: 30.0,
            client_min_gaps: 20,
            client_max_jitter: 0.5,
        }
    }
}

/// Shift of the mean inbound payload size of a topic group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayloadConfig {
    pub enabled: bool,
    /// Relative change of the bucket's mean size...
    pub ratio: f64,
    /// ...and absolute change, bytes.
    pub min_delta_bytes: f64,
    /// Messages in a bucket before its mean size is a sample.
    pub min_msgs: u64,
}

impl Default for PayloadConfig {
    fn default() -> Self {
        PayloadConfig {
            enabled: true,
            ratio: 0.5,
            min_delta_bytes: 32.0,
            min_msgs: 3,
        }
    }
}

/// Latency regression: per exchange (broker-wide) and fan-out latency per topic group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyConfig {
    pub enabled: bool,
    /// The bucket's mean latency is at least this many times the baseline...
    pub ratio: f64,
    /// ...and this many milliseconds above it.
    pub min_delta_ms: f64,
    /// Samples in a bucket before its mean is a sample of the series.
    pub min_samples: u64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            enabled: true,
            ratio: 3.0,
            min_delta_ms: 5.0,
            min_samples: 5,
        }
    }
}

/// Fan-out loss: a topic group whose messages used to reach subscribers stops
/// delivering them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FanoutConfig {
    pub enabled: bool,
    /// Learned copies out per message in (out/in) needed for the group to count as
    /// delivered-to.
    pub min_ratio: f64,
    /// Loss: copies out at most this fraction of the expected...
    pub loss_fraction: f64,
    /// ...of at least this many expected copies in the bucket.
    pub min_expected: f64,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            enabled: true,
            min_ratio: 0.5,
            loss_fraction: 0.2,
            min_expected: 10.0,
        }
    }
}

/// Requests left unanswered (PUBACK, PUBREC, ..., CONNACK, SUBACK, PINGRESP missing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnansweredConfig {
    pub enabled: bool,
    /// Unanswered requests in a bucket needed at the least.
    pub min_count: f64,
    /// ...and this many times the baseline.
    pub ratio: f64,
}

impl Default for UnansweredConfig {
    fn default() -> Self {
        UnansweredConfig {
            enabled: true,
            min_count: 10.0,
            ratio: 3.0,
        }
    }
}

/// New topics (templates) and clients, after the learning period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewNamesConfig {
    pub topics: bool,
    pub clients: bool,
    /// New names alerted one by one per bucket and kind; more are folded into one
    /// aggregate hit (`topic:*` / `client:*`).
    pub max_per_bucket: u32,
}

impl Default for NewNamesConfig {
    fn default() -> Self {
        NewNamesConfig {
            topics: true,
            clients: true,
            max_per_bucket: 5,
        }
    }
}

/// Clients whose behaviour differs from their peers (k-means on per-client features).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerConfig {
    pub enabled: bool,
    /// Clustering runs every this many buckets, on the features of that span.
    pub every_buckets: u32,
    /// Clients clustered at most (a deterministic hash sample beyond); every active
    /// client is then scored against the clusters.
    pub max_clients: usize,
    /// Active clients needed before clustering means anything.
    pub min_clients: usize,
    /// A cluster needs this many members to count as a peer group.
    pub min_peers: usize,
    /// Largest k tried (k chosen by silhouette).
    pub max_k: usize,
    /// Outlier: farther than this from every peer group's centre, in robust standard
    /// units scaled by the group's own spread.
    pub distance: f64,
    /// Smallest robust scale of a (log) feature: a 2x difference is ln 2 / 0.5 = 1.4
    /// units, a 50x one 7.8.
    pub scale_floor: f64,
    pub seed: u64,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            enabled: true,
            every_buckets: 30,
            max_clients: 2_000,
            min_clients: 10,
            min_peers: 3,
            max_k: 6,
            distance: 5.0,
            scale_floor: 0.5,
            seed: 0x6d71_7363_6f70_6531,
        }
    }
}

/// `$SYS` broker metrics (rates of counters, levels of gauges).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub enabled: bool,
    /// Spike: at least this many times the baseline and `min_delta` above it.
    pub spike_ratio: f64,
    pub min_delta: f64,
    /// Drop: at most this fraction of a baseline of at least `drop_min_expected`.
    pub drop_ratio: f64,
    pub drop_min_expected: f64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            enabled: true,
            spike_ratio: 3.0,
            min_delta: 10.0,
            drop_ratio: 0.3,
            drop_min_expected: 10.0,
        }
    }
}

/// Where baselines are saved; nothing is written without a path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistConfig {
    pub path: Option<PathBuf>,
    /// Seconds between saves (`persist_due`).
    pub interval_s: u64,
}

impl Default for PersistConfig {
    fn default() -> Self {
        PersistConfig {
            path: None,
            interval_s: 900,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    pub enabled: bool,
    /// Width of one evaluation bucket (the caller calls `on_bucket` this often).
    pub bucket_secs: u32,
    /// Record time a series needs before it may alert (its detector's warm-up).
    pub warmup_s: u64,
    /// Record time before new topics and clients are alerted (everything seen before
    /// is the known population).
    pub learn_s: u64,
    /// Series detectors held at most (each a few KB); at the cap, idle series are
    /// evicted and new ones refused (counted), so established baselines are never
    /// pushed out by a flood of new names.
    pub max_series: usize,
    /// Topic groups and clients tracked (small state each; no detector needed).
    pub max_topics: usize,
    pub max_clients: usize,
    /// Known topic, template and client names remembered (8-byte hashes).
    pub max_known: usize,
    /// Entities with no activity for this long are forgotten (and their series).
    pub idle_evict_s: u64,
    pub seasonality: Seasonality,
    /// Time-of-day buckets of the seasonal profile.
    pub season_buckets: u16,
    /// Tail probability at which a detector's score reaches 0.5 (its alert level).
    pub alert_probability: f64,
    /// Consecutive anomalous buckets before an alert fires, and normal ones before it
    /// resolves.
    pub confirm_buckets: u32,
    pub clear_buckets: u32,
    /// A shift that lasts this long becomes the new baseline (the alert resolves).
    pub max_firing_s: u64,
    /// Event-like hits (new names, aggregates) resolve after this long without recurring.
    pub cooldown_s: u64,
    /// Hits kept for reports.
    pub max_hits: usize,
    /// Buckets caught up at most when time jumps (a gap in a capture); the rest are
    /// skipped and counted.
    pub max_catchup_buckets: u32,
    pub rate: RateConfig,
    pub silence: SilenceConfig,
    pub payload: PayloadConfig,
    pub latency: LatencyConfig,
    pub fanout: FanoutConfig,
    pub unanswered: UnansweredConfig,
    pub new_names: NewNamesConfig,
    pub peers: PeerConfig,
    pub broker: BrokerConfig,
    pub persist: PersistConfig,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            bucket_secs: 10,
            warmup_s: 1800,
            learn_s: 3600,
            max_series: 20_000,
            max_topics: 20_000,
            max_clients: 50_000,
            max_known: 200_000,
            idle_evict_s: 6 * 3600,
            seasonality: Seasonality::Daily,
            season_buckets: 24,
            alert_probability: 1e-3,
            confirm_buckets: 2,
            clear_buckets: 3,
            max_firing_s: 3600,
            cooldown_s: 600,
            max_hits: 1000,
            max_catchup_buckets: 360,
            rate: RateConfig::default(),
            silence: SilenceConfig::default(),
            payload: PayloadConfig::default(),
            latency: LatencyConfig::default(),
            fanout: FanoutConfig::default(),
            unanswered: UnansweredConfig::default(),
            new_names: NewNamesConfig::default(),
            peers: PeerConfig::default(),
            broker: BrokerConfig::default(),
            persist: PersistConfig::default(),
        }
    }
}

fn finite_pos(errs: &mut Vec<String>, name: &str, v: f64) {
    if !(v.is_finite() && v > 0.0) {
        errs.push(format!("anomaly.{name} must be a positive number, not {v}"));
    }
}

fn fraction(errs: &mut Vec<String>, name: &str, v: f64) {
    if !(v.is_finite() && v > 0.0 && v < 1.0) {
        errs.push(format!(
            "anomaly.{name} must be between 0 and 1 (exclusive), not {v}"
        ));
    }
}

fn range(errs: &mut Vec<String>, name: &str, v: u64, lo: u64, hi: u64) {
    if v < lo || v > hi {
        errs.push(format!(
            "anomaly.{name} must be between {lo} and {hi}, not {v}"
        ));
    }
}

impl AnomalyConfig {
    /// Every problem found, as a sentence naming the field.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        range(&mut e, "bucket_secs", u64::from(self.bucket_secs), 1, 3600);
        range(&mut e, "warmup_s", self.warmup_s, 0, 30 * 86_400);
        range(&mut e, "learn_s", self.learn_s, 0, 365 * 86_400);
        range(&mut e, "max_series", self.max_series as u64, 1, 10_000_000);
        range(&mut e, "max_topics", self.max_topics as u64, 1, 10_000_000);
        range(
            &mut e,
            "max_clients",
            self.max_clients as u64,
            1,
            10_000_000,
        );
        range(&mut e, "max_known", self.max_known as u64, 1, 100_000_000);
        range(&mut e, "idle_evict_s", self.idle_evict_s, 60, 365 * 86_400);
        range(
            &mut e,
            "season_buckets",
            u64::from(self.season_buckets),
            0,
            1440,
        );
        fraction(&mut e, "alert_probability", self.alert_probability);
        range(
            &mut e,
            "confirm_buckets",
            u64::from(self.confirm_buckets),
            1,
            1000,
        );
        range(
            &mut e,
            "clear_buckets",
            u64::from(self.clear_buckets),
            1,
            1000,
        );
        range(&mut e, "max_firing_s", self.max_firing_s, 1, 365 * 86_400);
        range(&mut e, "cooldown_s", self.cooldown_s, 0, 86_400);
        range(&mut e, "max_hits", self.max_hits as u64, 1, 1_000_000);
        range(
            &mut e,
            "max_catchup_buckets",
            u64::from(self.max_catchup_buckets),
            1,
            100_000,
        );
        let r = &self.rate;
        finite_pos(&mut e, "rate.spike_ratio", r.spike_ratio - 1.0);
        finite_pos(&mut e, "rate.spike_min_delta", r.spike_min_delta);
        finite_pos(&mut e, "rate.z", r.z);
        fraction(&mut e, "rate.drop_ratio", r.drop_ratio);
        finite_pos(&mut e, "rate.drop_min_expected", r.drop_min_expected);
        let s = &self.silence;
        finite_pos(&mut e, "silence.periods", s.periods);
        finite_pos(&mut e, "silence.min_silence_s", s.min_silence_s);
        range(&mut e, "silence.min_gaps", s.min_gaps, 2, 1_000_000);
        range(
            &mut e,
            "silence.client_min_gaps",
            s.client_min_gaps,
            2,
            1_000_000,
        );
        finite_pos(&mut e, "silence.client_max_jitter", s.client_max_jitter);
        finite_pos(&mut e, "payload.ratio", self.payload.ratio);
        finite_pos(
            &mut e,
            "payload.min_delta_bytes",
            self.payload.min_delta_bytes,
        );
        range(
            &mut e,
            "payload.min_msgs",
            self.payload.min_msgs,
            1,
            1_000_000,
        );
        finite_pos(&mut e, "latency.ratio", self.latency.ratio - 1.0);
        finite_pos(&mut e, "latency.min_delta_ms", self.latency.min_delta_ms);
        range(
            &mut e,
            "latency.min_samples",
            self.latency.min_samples,
            1,
            1_000_000,
        );
        finite_pos(&mut e, "fanout.min_ratio", self.fanout.min_ratio);
        fraction(&mut e, "fanout.loss_fraction", self.fanout.loss_fraction);
        finite_pos(&mut e, "fanout.min_expected", self.fanout.min_expected);
        finite_pos(&mut e, "unanswered.min_count", self.unanswered.min_count);
        finite_pos(&mut e, "unanswered.ratio", self.unanswered.ratio - 1.0);
        range(
            &mut e,
            "new_names.max_per_bucket",
            u64::from(self.new_names.max_per_bucket),
            0,
            10_000,
        );
        let p = &self.peers;
        range(
            &mut e,
            "peers.every_buckets",
            u64::from(p.every_buckets),
            1,
            100_000,
        );
        range(
            &mut e,
            "peers.max_clients",
            p.max_clients as u64,
            2,
            100_000,
        );
        range(
            &mut e,
            "peers.min_clients",
            p.min_clients as u64,
            2,
            100_000,
        );
        range(&mut e, "peers.min_peers", p.min_peers as u64, 2, 100_000);
        range(&mut e, "peers.max_k", p.max_k as u64, 1, 32);
        finite_pos(&mut e, "peers.distance", p.distance);
        finite_pos(&mut e, "peers.scale_floor", p.scale_floor);
        let b = &self.broker;
        finite_pos(&mut e, "broker.spike_ratio", b.spike_ratio - 1.0);
        finite_pos(&mut e, "broker.min_delta", b.min_delta);
        fraction(&mut e, "broker.drop_ratio", b.drop_ratio);
        finite_pos(&mut e, "broker.drop_min_expected", b.drop_min_expected);
        if self.persist.path.is_some() {
            range(
                &mut e,
                "persist.interval_s",
                self.persist.interval_s,
                10,
                86_400,
            );
        }
        e
    }

    /// Buckets of warm-up (at least 1 sample to have a baseline at all).
    pub fn warmup_buckets(&self) -> u64 {
        (self.warmup_s / u64::from(self.bucket_secs.max(1))).max(2)
    }

    pub fn bucket_ns(&self) -> u64 {
        u64::from(self.bucket_secs.max(1)) * 1_000_000_000
    }
}

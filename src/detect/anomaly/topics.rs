//! Per topic group: message rate (spike, drop), mean payload size (shift), fan-out
//! latency (regression), fan-out loss, silence of a periodic topic, and new topics.
//!
//! Values are deltas of the observer's lifetime totals between two buckets. A group
//! whose totals went backwards (evicted and re-created) or that absorbed an evicted
//! topic's totals (`folded_topics` changed) gives no sample that bucket: the delta would
//! not be this bucket's traffic.

use std::cell::OnceCell;

use serde::{Deserialize, Serialize};

use crate::detect::rules::hit::{AnomalyDetail, Severity};
use crate::observe::topics::{GroupBrief, auto_template};
use crate::observe::{Exchange, GroupKind, Observer};

use super::emit::{Alarm, Ctx, num};
use super::engine::AnomalyEngine;
use super::known::{Seen, name_hash};
use super::track::{self, Track};

/// Half-life of the plain baselines, in buckets (5 minutes at 10 s): follows daily
/// swings, while a bucket-scale spike barely moves it.
pub const BASELINE_HALFLIFE: f64 = 30.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TopicTotals {
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub pay_n: u64,
    pub pay_sum: f64,
    pub fan_n: u64,
    pub fan_sum: f64,
    pub folded: u64,
}

/// Copies out per message in, learned while normal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FanState {
    pub ratio: f64,
    pub n: u64,
    pub streak: u32,
    pub calm: u32,
    pub since_ns: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    #[serde(skip)]
    pub prev: Option<TopicTotals>,
    pub rate: Option<Track>,
    pub payload: Option<Track>,
    pub latency: Option<Track>,
    pub fan: FanState,
    /// Silence firing: the last message time it was declared on.
    pub silent_since: Option<u64>,
    pub last_active_ns: u64,
    /// Bucket count when last seen in the observer.
    #[serde(skip)]
    pub seen_bucket: u64,
}

impl TopicState {
    pub fn series(&self) -> usize {
        usize::from(self.rate.is_some())
            + usize::from(self.payload.is_some())
            + usize::from(self.latency.is_some())
    }

    pub fn any_firing(&self) -> bool {
        [&self.rate, &self.payload, &self.latency]
            .iter()
            .any(|t| t.as_ref().is_some_and(Track::is_firing))
            || self.fan.since_ns.is_some()
            || self.silent_since.is_some()
    }
}

const RATE: &str = "msgs_in per bucket";
const PAYLOAD: &str = "mean payload bytes";
const FANOUT_LAT: &str = "mean fan-out latency s";
const FANOUT: &str = "copies out per bucket";
const SILENCE: &str = "seconds since last message";

fn totals(s: &GroupBrief, stats: &crate::observe::topics::GroupStats) -> TopicTotals {
    let pay = stats.payload_sketch();
    let fan = stats.latency_sketch(Exchange::Fanout);
    TopicTotals {
        msgs_in: s.msgs_in,
        msgs_out: s.msgs_out,
        pay_n: pay.count(),
        pay_sum: pay.sum(),
        fan_n: fan.map_or(0, |f| f.count()),
        fan_sum: fan.map_or(0.0, |f| f.sum()),
        folded: s.folded_topics,
    }
}

impl AnomalyEngine {
    pub(super) fn topics_pass(&mut self, obs: &Observer, now: u64, elapsed: u64) {
        let bucket_ns = self.cfg.bucket_ns();
        // Counts are per bucket; a longer interval (a skipped bucket) is scaled down.
        let per_bucket = bucket_ns as f64 / elapsed.max(1) as f64;
        let bucket_no = self.clock.buckets;
        obs.topics().for_each_group(|name, kind, stats| {
            let snap = stats.brief();
            let tot = totals(&snap, stats);
            self.on_topic(name, kind, &snap, tot, now, per_bucket, bucket_no);
        });
        // Silent topics the observer has let go of stay silent until we forget them.
        let mut keep: Vec<String> = Vec::new();
        for (name, t) in &self.topics {
            if t.seen_bucket != bucket_no && t.silent_since.is_some() {
                keep.push(format!("topic:{name}"));
            }
        }
        let mut ctx = Ctx {
            alerts: &mut self.alerts,
            now,
            bucket_ns,
        };
        for k in keep {
            ctx.keep("anomaly_silence", &k, None, None);
        }
    }

    /// New topic check: a topic is new when neither it nor its template was seen; a
    /// new instance of a known template (one more device of a known kind) is not.
    fn check_new_topic(&mut self, name: &str, kind: GroupKind, now: u64, last_seen: Option<u64>) {
        if kind == GroupKind::Other {
            return;
        }
        let cap = self.cfg.max_known;
        let seen = self.known_topics.see(name_hash(b't', name.as_bytes()), cap);
        let mut tmpl = Vec::new();
        match kind {
            GroupKind::Template => tmpl.extend_from_slice(name.as_bytes()),
            _ => {
                auto_template(name.as_bytes(), &mut tmpl);
            }
        }
        let tseen = self.known_templates.see(name_hash(b'p', &tmpl), cap);
        if seen != Seen::New || tseen != Seen::New {
            return;
        }
        if !self.cfg.new_names.topics || !self.learned(now) {
            return;
        }
        let template = String::from_utf8_lossy(&tmpl).into_owned();
        self.new_name(0, format!("topic:{name}"), now, last_seen, || {
            format!("new topic {name} (template {template} not seen before)")
        });
    }

    /// Raises a new-name hit, or folds it into the kind's aggregate hit beyond
    /// `max_per_bucket` in this bucket.
    pub(super) fn new_name(
        &mut self,
        kind: usize,
        key: String,
        now: u64,
        ts: Option<u64>,
        summary: impl FnOnce() -> String,
    ) {
        let (rule, agg, what) = if kind == 0 {
            ("anomaly_new_topic", "topic:*", "topics")
        } else {
            ("anomaly_new_client", "client:*", "clients")
        };
        let n = self.new_this_bucket.get(kind).copied().unwrap_or(0);
        let detail = AnomalyDetail {
            series: format!("new {what}"),
            baseline: 0.0,
            observed: 1.0,
            threshold: 1.0,
            score: 0.0,
        };
        let mut ctx = Ctx {
            alerts: &mut self.alerts,
            now,
            bucket_ns: self.cfg.bucket_ns(),
        };
        if n < self.cfg.new_names.max_per_bucket {
            if let Some(c) = self.new_this_bucket.get_mut(kind) {
                *c += 1;
            }
            ctx.fire(rule, Severity::Low, &key, detail, ts, summary());
        } else if ctx.alerts.is_active(rule, agg) {
            ctx.keep(rule, agg, Some(key), ts);
        } else {
            let s = format!(
                "more than {} new {what} in one bucket (first beyond: {key})",
                self.cfg.new_names.max_per_bucket
            );
            ctx.fire(rule, Severity::Low, agg, detail, ts, s);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_topic(
        &mut self,
        name: &str,
        kind: GroupKind,
        snap: &GroupBrief,
        tot: TopicTotals,
        now: u64,
        per_bucket: f64,
        bucket_no: u64,
    ) {
        if !self.topics.contains_key(name) {
            self.check_new_topic(name, kind, now, snap.last_seen_ns);
            if self.topics.len() >= self.cfg.max_topics {
                self.c.entities_refused += 1;
                return;
            }
            self.topics.insert(
                name.into(),
                TopicState {
                    last_active_ns: now,
                    ..TopicState::default()
                },
            );
        }
        let weekly = self.weekly();
        let rate_p = self.params(BASELINE_HALFLIFE, 1.0);
        let byte_p = self.params(BASELINE_HALFLIFE, 1.0);
        let lat_p = self.params(BASELINE_HALFLIFE, 1e-3);
        let warm_ns = self.cfg.warmup_s.saturating_mul(1_000_000_000);
        let engine_warm = self
            .clock
            .first_ns
            .is_some_and(|f| now.saturating_sub(f) >= warm_ns);
        let bucket_ns = self.cfg.bucket_ns();
        let cfg = &self.cfg;
        let Some(st) = self.topics.get_mut(name) else {
            return;
        };
        st.seen_bucket = bucket_no;
        let mut ctx = Ctx {
            alerts: &mut self.alerts,
            now,
            bucket_ns,
        };
        let kc: OnceCell<String> = OnceCell::new();
        let last_seen = snap.last_seen_ns;

        // Silence first: a periodic topic that stopped is a silence, not a rate drop.
        let period = snap.period_s;
        let periodic = period.is_some() && snap.gaps >= cfg.silence.min_gaps;
        if let Some(since) = st.silent_since {
            if last_seen.is_some_and(|l| l > since) {
                st.silent_since = None;
                ctx.clear("anomaly_silence", k(&kc, name));
            } else {
                ctx.keep("anomaly_silence", k(&kc, name), None, None);
            }
        } else if cfg.silence.enabled
            && periodic
            && engine_warm
            && let (Some(p), Some(last)) = (period, last_seen)
        {
            let silent_s = now.saturating_sub(last) as f64 * 1e-9;
            let limit = (cfg.silence.periods * p).max(cfg.silence.min_silence_s);
            if silent_s >= limit && learned_enough(st, cfg.warmup_buckets()) {
                st.silent_since = Some(last);
                let detail = AnomalyDetail {
                    series: SILENCE.into(),
                    baseline: p,
                    observed: silent_s,
                    threshold: limit,
                    score: 0.0,
                };
                let s = format!(
                    "{name} silent for {}s; it normally publishes every {}s ({} periods missed)",
                    num(silent_s.round()),
                    num(p),
                    num((silent_s / p).floor())
                );
                ctx.fire(
                    "anomaly_silence",
                    Severity::Medium,
                    k(&kc, name),
                    detail,
                    Some(last),
                    s,
                );
            }
        }

        let prev = st.prev.replace(tot);
        let Some(prev) = prev else { return };
        if tot.folded != prev.folded
            || tot.msgs_in < prev.msgs_in
            || tot.msgs_out < prev.msgs_out
            || tot.pay_n < prev.pay_n
            || tot.fan_n < prev.fan_n
        {
            return;
        }
        let d_in = (tot.msgs_in - prev.msgs_in) as f64 * per_bucket;
        let d_out = (tot.msgs_out - prev.msgs_out) as f64 * per_bucket;
        if d_in > 0.0 || d_out > 0.0 {
            st.last_active_ns = now;
        }

        // Message rate in.
        if cfg.rate.enabled {
            if st.rate.is_none() {
                st.rate = AnomalyEngine::new_track(&mut self.budget, &self.dcfg, weekly, now);
            }
            if let Some(t) = st.rate.as_mut() {
                let rc = &cfg.rate;
                let step = t.step(now, d_in, &rate_p, |e, x| {
                    // A periodic topic stopping is the silence check's to report.
                    if periodic && x == 0.0 {
                        return track::count_spike(e, x, rc.spike_ratio, rc.spike_min_delta, rc.z);
                    }
                    track::count_change(e, x, rc)
                });
                if step != track::Step::Quiet {
                    let a = Alarm {
                        up_rule: "anomaly_rate_spike",
                        down_rule: "anomaly_rate_drop",
                        severity: Severity::Medium,
                        key: k(&kc, name),
                        series: RATE,
                        x: d_in,
                        sample_ts: last_seen,
                    };
                    ctx.apply(step, &a, |up, e, thr| {
                        format!(
                            "{name}: {} messages in one bucket, baseline {} ({} {})",
                            num(d_in),
                            num(e),
                            if up { "spike above" } else { "drop below" },
                            num(thr)
                        )
                    });
                }
            }
        }

        // Mean payload size.
        let dn = tot.pay_n - prev.pay_n;
        if cfg.payload.enabled && dn >= cfg.payload.min_msgs {
            let mean = (tot.pay_sum - prev.pay_sum) / dn as f64;
            if st.payload.is_none() {
                st.payload = AnomalyEngine::new_track(&mut self.budget, &self.dcfg, weekly, now);
            }
            if let Some(t) = st.payload.as_mut() {
                let pc = &cfg.payload;
                let step = t.step(now, mean, &byte_p, |e, x| {
                    track::shift(e, x, pc.ratio, pc.min_delta_bytes)
                });
                if step != track::Step::Quiet {
                    let a = Alarm {
                        up_rule: "anomaly_payload_shift",
                        down_rule: "anomaly_payload_shift",
                        severity: Severity::Low,
                        key: k(&kc, name),
                        series: PAYLOAD,
                        x: mean,
                        sample_ts: last_seen,
                    };
                    ctx.apply(step, &a, |up, e, _| {
                        format!(
                            "{name}: mean payload {} bytes, usually {} ({})",
                            num(mean.round()),
                            num(e.round()),
                            if up { "larger" } else { "smaller" }
                        )
                    });
                }
            }
        }

        // Fan-out latency.
        let fnn = tot.fan_n - prev.fan_n;
        if cfg.latency.enabled && fnn >= cfg.latency.min_samples {
            let mean = (tot.fan_sum - prev.fan_sum) / fnn as f64;
            if st.latency.is_none() {
                st.latency = AnomalyEngine::new_track(&mut self.budget, &self.dcfg, weekly, now);
            }
            if let Some(t) = st.latency.as_mut() {
                let lc = &cfg.latency;
                let step = t.step(now, mean, &lat_p, |e, x| {
                    track::rise(e, x, lc.ratio, lc.min_delta_ms * 1e-3)
                });
                if step != track::Step::Quiet {
                    let a = Alarm {
                        up_rule: "anomaly_latency_regression",
                        down_rule: "anomaly_latency_regression",
                        severity: Severity::Medium,
                        key: k(&kc, name),
                        series: FANOUT_LAT,
                        x: mean,
                        sample_ts: last_seen,
                    };
                    ctx.apply(step, &a, |_, e, _| {
                        format!(
                            "{name}: broker fan-out takes {:.1} ms on average, usually {:.1} ms",
                            mean * 1e3,
                            e * 1e3
                        )
                    });
                }
            }
        }

        // Fan-out loss.
        if cfg.fanout.enabled {
            let fc = &cfg.fanout;
            let f = &mut st.fan;
            let expected = f.ratio * d_in;
            let loss = f.ratio >= fc.min_ratio
                && expected >= fc.min_expected
                && d_out <= fc.loss_fraction * expected;
            if let Some(since) = f.since_ns {
                if now.saturating_sub(since) >= cfg.max_firing_s.saturating_mul(1_000_000_000) {
                    // Lasting this long, it is how the topic is used now.
                    f.since_ns = None;
                    f.calm = 0;
                    f.ratio = if d_in > 0.0 { d_out / d_in } else { 0.0 };
                    ctx.clear("anomaly_fanout_loss", k(&kc, name));
                } else if loss || d_in < 1.0 {
                    f.calm = 0;
                    ctx.keep(
                        "anomaly_fanout_loss",
                        k(&kc, name),
                        Some(format!("{FANOUT} = {}", num(d_out))),
                        last_seen,
                    );
                } else {
                    f.calm += 1;
                    if f.calm >= cfg.clear_buckets {
                        f.since_ns = None;
                        f.calm = 0;
                        ctx.clear("anomaly_fanout_loss", k(&kc, name));
                    }
                }
            } else if loss && f.n >= cfg.warmup_buckets() {
                f.streak += 1;
                if f.streak >= cfg.confirm_buckets {
                    f.streak = 0;
                    f.since_ns = Some(now);
                    let detail = AnomalyDetail {
                        series: FANOUT.into(),
                        baseline: expected,
                        observed: d_out,
                        threshold: fc.loss_fraction * expected,
                        score: 0.0,
                    };
                    let s = format!(
                        "{name}: {} messages published, {} delivered to subscribers (usually {} copies each)",
                        num(d_in),
                        num(d_out),
                        num(f.ratio)
                    );
                    ctx.fire(
                        "anomaly_fanout_loss",
                        Severity::High,
                        k(&kc, name),
                        detail,
                        last_seen,
                        s,
                    );
                }
            } else {
                f.streak = 0;
                if d_in >= 1.0 {
                    f.n += 1;
                    let r = (d_out / d_in).min(1e4);
                    let a = (1.0 - 0.5f64.powf(1.0 / BASELINE_HALFLIFE)).max(1.0 / f.n as f64);
                    f.ratio += a * (r - f.ratio);
                }
            }
        }
    }
}

/// The alert key of a topic, formatted only when an alert needs it.
fn k<'a>(c: &'a OnceCell<String>, name: &str) -> &'a str {
    c.get_or_init(|| format!("topic:{name}"))
}

/// A topic's silence is judged only once its rate baseline is past warm-up (or, with
/// no rate series, once the topic has been around that long).
fn learned_enough(st: &TopicState, warmup: u64) -> bool {
    st.rate.as_ref().is_none_or(|t| t.samples() >= warmup)
}

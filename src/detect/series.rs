//! `SeriesDetector`: the streaming detector for one univariate series (a topic's message
//! rate, a client's payload size quantile, a `$SYS` metric, or any `timestamp,value` CSV).
//!
//! Per sample, O(1) time and memory:
//! 1. a daily profile (`season_buckets` time-of-day buckets, each a time-weighted mean of
//!    the value's offset from the slow level, read with its mean removed; see
//!    [`super::season`]) is subtracted from the value;
//! 2. two robust baselines of the deseasonalised value: a fast EWMA level (catches
//!    spikes and sudden shifts) and a slow one (catches drifts and days that do not look
//!    like the usual day). Each residual is divided by a scale: its exponentially
//!    weighted mean absolute deviation, learned from winsorised residuals so outliers
//!    barely move it, but never below a fraction of a slower, barely clipped mean
//!    absolute residual (so a series of exact zeros with routine spikes keeps a scale),
//!    and multiplied by the time of day's relative noise level;
//! 3. each scaled residual feeds two tails (spikes and drops), peaks over a fixed
//!    threshold with a generalised Pareto fit ([`super::spot`]), that say how unlikely it
//!    is;
//! 4. the smallest tail probability `p` becomes the score `L/(L + L0)` with `L = -log10 p`
//!    and `L0 = -log10 alert_probability`: monotone in `p`, in [0, 1), and 0.5 exactly at
//!    the alert level;
//! 5. an alert needs `p < alert_probability`, the warm-up to be over, and `L` above a bar
//!    that each alert raises to its own `L + escalation` and that then decays back with
//!    half-life `bar_halflife`: one alert per incident, yet a clearly worse event (or a
//!    new one, once the bar has come down) alerts at once. A fixed cooldown instead both
//!    repeats alerts for a long incident and swallows a real anomaly that follows a
//!    false alarm (on NAB the score fell from 55 to 27 between cooldowns of 500 and 800
//!    samples).

use serde::{Deserialize, Serialize};

use super::season::{DailyProfile, NS_PER_DAY};
use super::spot::{SpotConfig, SpotTail};

/// Mean absolute deviation of a normal variable is sigma * sqrt(2/pi); dividing by this
/// makes scaled residuals read as "sigmas" for Gaussian noise.
const MEAN_ABS_DEV_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

/// Residuals beyond this many spreads are clipped when updating the spread: it should see
/// routine spikes, not let one absurd value blind the detector for long.
const SPREAD_CLIP: f64 = 100.0;

/// Samples whose scaled residuals do not teach the tails: the scale is a mean of fewer
/// than this many absolute residuals (relative error of order 1/sqrt(n)).
const SCALE_BURN_IN: u64 = 30;

/// Fixed parameters. The defaults are the one parameter set used for every series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorConfig {
    /// Samples before any alert may be raised.
    pub warmup: u64,
    /// Half-life, in samples, of the fast level.
    pub fast_halflife: f64,
    /// Half-life, in samples, of the slow level.
    pub slow_halflife: f64,
    /// Half-life, in samples, of the scale (mean absolute deviation) estimates.
    pub scale_halflife: f64,
    /// Residuals beyond this many scales are clipped before updating levels and scales.
    pub winsor: f64,
    /// The scale never drops below this fraction of the slow, barely clipped mean
    /// absolute residual (0 turns the floor off). Sparse series (mostly exact repeats,
    /// occasional spikes) otherwise see their winsorised scale decay toward zero and
    /// every routine spike look ever more extreme.
    pub spread_weight: f64,
    /// Half-life, in samples, of that slow mean absolute residual.
    pub spread_halflife: f64,
    /// Time-of-day buckets for daily seasonality; 0 turns seasonality off.
    pub season_buckets: u16,
    /// Half-life of the daily profile, in days.
    pub season_halflife_days: f64,
    /// Weight of the time-of-day noise level in the residual scale, in [0, 1]: 0 uses
    /// one scale for the whole day; 1 uses each bucket's own noise level. Many daily
    /// series are much noisier at their busy hours than at night.
    pub season_scale_weight: f64,
    /// Tail probability below which a sample is anomalous. Per *sample*: on white
    /// Gaussian noise the detector alerts on about 1e-3 of samples at the default
    /// (four tails, and exponential tails are conservative for Gaussian noise but not
    /// by that much), which is a few false alerts a month at NAB's 5-minute cadence
    /// but about 8 a day at a 10 s cadence; 1e-5 gave none in a week of 10 s white
    /// noise. The default is the one NAB measured best (it also gives 62.8-64.3 at
    /// 4e-4 and 6e-4).
    pub alert_probability: f64,
    /// After an alert, the next one needs a surprise (`-log10 p`) this many decades
    /// above the alert's own.
    pub escalation: f64,
    /// Half-life, in samples, of that raised bar's decay back to the alert level.
    pub bar_halflife: f64,
    pub spot: SpotConfig,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            warmup: 300,
            fast_halflife: 1.0,
            slow_halflife: 200.0,
            scale_halflife: 200.0,
            winsor: 6.0,
            spread_weight: 0.5,
            spread_halflife: 1000.0,
            season_buckets: 48,
            season_halflife_days: 3.0,
            season_scale_weight: 0.5,
            alert_probability: 5e-4,
            escalation: 2.0,
            bar_halflife: 100.0,
            spot: SpotConfig::default(),
        }
    }
}

/// The detector's answer for one sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Anomaly score in [0, 1): a monotone map of the smallest tail probability, 0.5 at
    /// `alert_probability`.
    pub score: f64,
    /// Whether a deployed mqscope raises an alert on this sample.
    pub alert: bool,
    /// The smallest tail probability (1 during warm-up).
    pub probability: f64,
    /// What the detector expected: the slow level plus the time of day's offset, in the
    /// series' units (the value itself on the first sample).
    pub expected: f64,
}

/// One baseline: a level, a scale and the two tails of its scaled residual.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Baseline {
    level: f64,
    /// Exponentially weighted mean absolute residual (winsorised).
    mad: f64,
    /// Slower mean absolute residual, clipped only far out: the scale's floor.
    spread: f64,
    up: SpotTail,
    down: SpotTail,
}

/// The EWMA weights of one update, computed once per sample by the caller.
#[derive(Clone, Copy)]
struct Weights {
    level: f64,
    scale: f64,
    spread: f64,
}

impl Baseline {
    fn new(x: f64) -> Baseline {
        Baseline {
            level: x,
            mad: 0.0,
            spread: 0.0,
            up: SpotTail::new(),
            down: SpotTail::new(),
        }
    }

    /// The residual scale in sigma-like units, before the time-of-day factor.
    fn scale(&self, spread_weight: f64) -> f64 {
        self.mad.max(spread_weight * self.spread) * MEAN_ABS_DEV_TO_SIGMA
    }

    /// Residual in sigma-like units; a floor relative to the level keeps a flat series
    /// from turning rounding noise into infinite scores.
    /// `f` is the time-of-day scale factor (1 without seasonality).
    fn z(&self, d: f64, f: f64, spread_weight: f64) -> f64 {
        let floor = 1e-9 * (1.0 + self.level.abs());
        (d - self.level) / (self.scale(spread_weight) * f).max(floor)
    }

    fn probability(&self, z: f64, cfg: &SpotConfig) -> f64 {
        self.up
            .tail_probability(z, cfg)
            .min(self.down.tail_probability(-z, cfg))
    }

    /// `tails`: whether the scale has formed enough for `z` to teach the tails.
    #[allow(clippy::too_many_arguments)]
    fn learn(
        &mut self,
        d: f64,
        z: f64,
        flagged: bool,
        tails: bool,
        w: Weights,
        f: f64,
        cfg: &DetectorConfig,
    ) {
        if tails {
            self.up.learn(z.max(0.0), flagged, &cfg.spot);
            self.down.learn((-z).max(0.0), flagged, &cfg.spot);
        }
        // The scale is learned in time-of-day-normalised units.
        let r = (d - self.level) / f;
        // Winsorise: beyond `winsor` scales, move as if the residual were at the limit.
        let lim = cfg.winsor * self.mad * MEAN_ABS_DEV_TO_SIGMA;
        let rc = if self.mad > 0.0 {
            r.clamp(-lim, lim)
        } else {
            r
        };
        self.level += w.level * rc * f;
        self.mad += w.scale * (rc.abs() - self.mad);
        let lim = SPREAD_CLIP * self.spread.max(self.mad);
        let rs = if lim > 0.0 { r.abs().min(lim) } else { r.abs() };
        self.spread += w.spread * (rs - self.spread);
    }
}

/// Version of the saved state; bumped whenever the meaning of a field changes, so a
/// state saved by an older mqscope is refused (and the detector starts afresh) instead
/// of being misread. Version 1 is the unversioned state before it.
pub const STATE_VERSION: u32 = 2;

fn check_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v == STATE_VERSION {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "detector state version {v}, this mqscope reads {STATE_VERSION}"
        )))
    }
}

/// Streaming detector state for one series; serialisable so baselines survive restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesDetector {
    #[serde(deserialize_with = "check_version")]
    version: u32,
    cfg: DetectorConfig,
    n: u64,
    first_ts: u64,
    /// Surprise above the alert level that the next alert needs (decays).
    bar: f64,
    /// Whether the daily profile is being removed (a day has been seen).
    seasonal: bool,

    fast: Option<Baseline>,
    slow: Option<Baseline>,
    /// Daily profile of offsets from the slow level.
    season: DailyProfile,
    /// Daily profile of the absolute slow residual (time-of-day noise level); empty
    /// when `season_scale_weight` is 0.
    noise: DailyProfile,
    #[serde(skip)]
    k: Consts,
}

/// EWMA weight per sample for a half-life in samples.
fn weight_of(halflife: f64) -> f64 {
    1.0 - 0.5f64.powf(1.0 / halflife.max(1e-9))
}

/// EWMA weight `a` (from `weight_of`), with a 1/n start so early estimates are plain
/// means instead of being dominated by the first sample.
fn alpha(a: f64, n: u64) -> f64 {
    a.max(1.0 / n.max(1) as f64)
}

/// The per-sample constants of a `DetectorConfig`: five powers and a logarithm that
/// `update` computed on every sample (a third of its instructions, with 10 000 topic
/// series updated every bucket). Derived from `cfg`, so neither persisted nor compared.
#[derive(Clone, Copy, Debug, Default)]
struct Consts {
    ready: bool,
    scale: f64,
    spread: f64,
    fast: f64,
    slow: f64,
    bar_decay: f64,
    /// `-log10 alert_probability`.
    l0: f64,
}

impl Consts {
    fn of(cfg: &DetectorConfig) -> Consts {
        Consts {
            ready: true,
            scale: weight_of(cfg.scale_halflife),
            spread: weight_of(cfg.spread_halflife),
            fast: weight_of(cfg.fast_halflife),
            slow: weight_of(cfg.slow_halflife),
            bar_decay: 0.5f64.powf(1.0 / cfg.bar_halflife.max(1e-9)),
            l0: -cfg.alert_probability.clamp(1e-300, 0.5).log10(),
        }
    }
}

impl PartialEq for Consts {
    /// Always equal: the constants follow from the (compared) config.
    fn eq(&self, _: &Consts) -> bool {
        true
    }
}

impl SeriesDetector {
    pub fn new(cfg: DetectorConfig) -> SeriesDetector {
        SeriesDetector {
            version: STATE_VERSION,
            n: 0,
            first_ts: 0,
            bar: 0.0,
            seasonal: false,
            fast: None,
            slow: None,
            season: DailyProfile::new(cfg.season_buckets),
            noise: DailyProfile::new(if cfg.season_scale_weight > 0.0 {
                cfg.season_buckets
            } else {
                0
            }),
            k: Consts::of(&cfg),
            cfg,
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Samples seen so far.
    pub fn samples(&self) -> u64 {
        self.n
    }

    /// Bytes of memory this detector holds (struct and heap). Bounded: the daily
    /// profiles are sized at construction and each of the four tails keeps at most
    /// `spot.capacity` peaks.
    pub fn memory_bytes(&self) -> usize {
        let tails: usize = [self.fast.as_ref(), self.slow.as_ref()]
            .into_iter()
            .flatten()
            .map(|b| b.up.heap_bytes() + b.down.heap_bytes())
            .sum();
        std::mem::size_of::<Self>() + self.season.heap_bytes() + self.noise.heap_bytes() + tails
    }

    /// Feeds one sample. Non-finite values are ignored (score 0, no alert, no learning).
    pub fn update(&mut self, ts_ns: u64, value: f64) -> Verdict {
        let mut verdict = Verdict {
            score: 0.0,
            alert: false,
            probability: 1.0,
            expected: value,
        };
        if !value.is_finite() {
            return verdict;
        }
        self.n += 1;
        let pos = self.season.position(ts_ns);
        // Seasonal offsets are only applied once a whole day has been seen; before that
        // a bucket's estimate is a single visit.
        if self.n == 1 {
            self.first_ts = ts_ns;
        }
        let day_seen = ts_ns.saturating_sub(self.first_ts) >= NS_PER_DAY;
        if day_seen && !self.seasonal && pos.is_some() {
            // The residuals change character once the profile is removed (a square daily
            // wave's edges were 40-scale residuals, now they are noise); tails learned
            // from the first day would keep those peaks in their ring for weeks and
            // call every later anomaly ordinary. Start them again.
            self.seasonal = true;
            for b in [self.fast.as_mut(), self.slow.as_mut()]
                .into_iter()
                .flatten()
            {
                b.up = SpotTail::new();
                b.down = SpotTail::new();
            }
        }
        let offset = match pos {
            Some(p) if day_seen => self.season.offset(p),
            _ => 0.0,
        };
        let d = value - offset;
        let f = match pos {
            Some(p) if day_seen && self.cfg.season_scale_weight > 0.0 => self.scale_factor(p),
            _ => 1.0,
        };
        let (Some(fast), Some(slow)) = (self.fast.as_mut(), self.slow.as_mut()) else {
            self.fast = Some(Baseline::new(d));
            self.slow = Some(Baseline::new(d));
            self.learn_season(pos, ts_ns, value, d, 0.0);
            return verdict;
        };
        if !self.k.ready {
            // Restored from disk: the constants are not persisted.
            self.k = Consts::of(&self.cfg);
        }
        let (cfg, k) = (&self.cfg, self.k);
        verdict.expected = slow.level + offset;
        let zf = fast.z(d, f, cfg.spread_weight);
        let zs = slow.z(d, f, cfg.spread_weight);
        // The slow residual, winsorised, feeds the time-of-day noise level.
        let res = (d - slow.level)
            .abs()
            .min(cfg.winsor * slow.scale(cfg.spread_weight) * f);
        let pf = fast.probability(zf, &cfg.spot);
        let ps = slow.probability(zs, &cfg.spot);
        let p = pf.min(ps);
        let l0 = k.l0;
        let surprise = -p.max(1e-300).log10();
        self.bar *= k.bar_decay;
        // During warm-up the scales are still forming (the second sample has no scale at
        // all), so the score would be noise: report 0.
        if self.n > cfg.warmup {
            verdict.probability = p;
            // `score_of(p, alert_probability)`, from the logarithms already taken.
            verdict.score = if surprise <= 0.0 {
                0.0
            } else {
                surprise / (surprise + l0)
            };
            verdict.alert = p < cfg.alert_probability && surprise > l0 + self.bar;
            if verdict.alert {
                self.bar = surprise - l0 + cfg.escalation;
            }
        }
        let n = self.n;
        let scale = alpha(k.scale, n);
        let spread = alpha(k.spread, n);
        let wf = Weights {
            level: alpha(k.fast, n),
            scale,
            spread,
        };
        let ws = Weights {
            level: alpha(k.slow, n),
            scale,
            spread,
        };
        // The first residuals are scaled by a scale made of a handful of samples (the
        // second sample's scale is 0, and its z about 1e9); kept as peaks, they stayed in
        // the ring for thousands of samples and made every fitted tail heavy.
        let tails = n > SCALE_BURN_IN;
        fast.learn(d, zf, pf < cfg.alert_probability, tails, wf, f, cfg);
        slow.learn(d, zs, ps < cfg.alert_probability, tails, ws, f, cfg);
        let level = slow.level;
        self.learn_season(pos, ts_ns, value, level, res);
        verdict
    }

    /// Moves the profile toward `value - level` (the slow level, so the profile
    /// describes the shape of a day, not its mean), and the noise profile toward the
    /// slow residual `res`.
    fn learn_season(&mut self, pos: Option<usize>, ts_ns: u64, value: f64, level: f64, res: f64) {
        let Some(p) = pos else { return };
        let h = self.cfg.season_halflife_days * NS_PER_DAY as f64;
        self.season.learn(p, value - level, ts_ns, h);
        if self.noise.buckets() > 0 {
            self.noise.learn(p, res, ts_ns, h);
        }
    }

    /// This time of day's noise level relative to the day's average, shrunk toward 1
    /// (partial pooling: a bucket's estimate rests on few visits, and a bucket that
    /// happened to be noiseless must not make every later deviation there infinitely
    /// rare; the factor never drops below `1 - season_scale_weight`).
    fn scale_factor(&self, pos: usize) -> f64 {
        let mean = self.noise.centre();
        match self.noise.value(pos) {
            Some(m) if mean > 0.0 && m.is_finite() => {
                let w = self.cfg.season_scale_weight.clamp(0.0, 1.0);
                (1.0 - w) + w * m / mean
            }
            _ => 1.0,
        }
    }
}

/// Score from a tail probability: `L/(L + L0)`, `L = -log10 p`, `L0 = -log10 p_alert`.
pub fn score_of(p: f64, alert_probability: f64) -> f64 {
    let l = -p.max(1e-300).log10();
    let l0 = -alert_probability.clamp(1e-300, 0.5).log10();
    if l <= 0.0 { 0.0 } else { l / (l + l0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values from python3, independently of this code:
    /// ```text
    /// k=1.2533141373155003; lvl,mad,spread=10.0,0.0,0.0
    /// for d in (12,8,30,10,10):
    ///     r=d-lvl; lim=6*mad*k; rc=max(-lim,min(lim,r)) if mad>0 else r
    ///     lvl+=0.5*rc; mad+=0.25*(abs(rc)-mad)
    ///     lims=100*max(spread,mad); rs=min(abs(r),lims) if lims>0 else abs(r)
    ///     spread+=0.25*(rs-spread); print(lvl,mad,spread)
    /// print((20-lvl)/(mad*k), (20-lvl)/(max(mad,1.0*spread)*k))
    /// ```
    /// The 30 is clipped at 6 scales for the level and the MAD, not for the spread.
    #[test]
    fn baseline_ewma_winsorised_mad_and_spread() {
        let cfg = DetectorConfig::default();
        assert_eq!(cfg.winsor, 6.0);
        let mut b = Baseline::new(10.0);
        let want = [
            (11.0, 0.5, 0.5),
            (9.5, 1.125, 1.125),
            (13.729935213439813, 2.958717606719907, 5.96875),
            (11.864967606719906, 3.1515220083998834, 5.409046303359953),
            (10.932483803359954, 2.829883407979889, 4.523026629199942),
        ];
        let w = Weights {
            level: 0.5,
            scale: 0.25,
            spread: 0.25,
        };
        for (d, (lvl, mad, spread)) in [12.0, 8.0, 30.0, 10.0, 10.0].into_iter().zip(want) {
            let z = b.z(d, 1.0, 0.0);
            b.learn(d, z, false, true, w, 1.0, &cfg);
            assert!((b.level - lvl).abs() < 1e-12, "{} vs {lvl}", b.level);
            assert!((b.mad - mad).abs() < 1e-12, "{} vs {mad}", b.mad);
            assert!(
                (b.spread - spread).abs() < 1e-12,
                "{} vs {spread}",
                b.spread
            );
        }
        // Without the floor the MAD scales the residual; with weight 1 the larger spread.
        let plain = b.z(20.0, 1.0, 0.0);
        assert!((plain - 2.5565827757171067).abs() < 1e-12, "{plain}");
        let floored = b.z(20.0, 1.0, 1.0);
        assert!((floored - 1.5995552914550821).abs() < 1e-12, "{floored}");
        // The time-of-day factor divides the residual.
        assert!((b.z(20.0, 2.0, 0.0) - plain / 2.0).abs() < 1e-12);
    }

    #[test]
    fn alpha_from_half_life() {
        // After h steps of weight a, a sample's weight has halved: (1-a)^h = 1/2.
        let a = alpha(weight_of(10.0), 1_000);
        assert!(((1.0 - a).powi(10) - 0.5).abs() < 1e-12);
        // Early on, 1/n (a running mean) dominates.
        assert_eq!(alpha(weight_of(10.0), 2), 0.5);
        assert_eq!(alpha(weight_of(200.0), 1), 1.0);
    }

    #[test]
    fn score_is_half_at_the_alert_probability() {
        assert!((score_of(1e-3, 1e-3) - 0.5).abs() < 1e-12);
        assert_eq!(score_of(1.0, 1e-3), 0.0);
        // p = 1e-6: L = 6, L0 = 3, score 2/3.
        assert!((score_of(1e-6, 1e-3) - 2.0 / 3.0).abs() < 1e-12);
        assert!(score_of(0.0, 1e-3) < 1.0);
    }
}

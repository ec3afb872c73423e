//! `SeriesDetector`: the streaming detector for one univariate series (a topic's message
//! rate, a client's payload size quantile, a `$SYS` metric, or any `timestamp,value` CSV).
//!
//! Per sample, O(1) time and memory:
//! 1. a daily seasonal profile (`season_buckets` time-of-day buckets, each an EWMA of the
//!    value's offset from the slow level) is removed from the value;
//! 2. two robust baselines of the deseasonalised value: a fast EWMA level (catches
//!    spikes and sudden shifts) and a slow one (catches drifts and days that do not look
//!    like the usual day); each residual is scaled by its own exponentially weighted mean
//!    absolute deviation, updated with winsorised residuals so outliers barely move it;
//! 3. each scaled residual feeds two SPOT tails (spikes and drops) that estimate how
//!    unlikely it is: a generalised Pareto fit to recent peaks over an adaptive threshold;
//! 4. the smallest tail probability `p` becomes the score `L/(L + L0)` with `L = -log10 p`
//!    and `L0 = -log10 alert_probability`: monotone in `p`, in [0, 1), and 0.5 exactly at
//!    the alert level. An alert needs `p < alert_probability`, the warm-up to be over and
//!    no alert in the last `refractory` samples (one incident, one alert).

use serde::{Deserialize, Serialize};

use super::spot::{SpotConfig, SpotTail};

const NS_PER_DAY: u64 = 86_400_000_000_000;
/// Mean absolute deviation of a normal variable is sigma * sqrt(2/pi); dividing by this
/// makes scaled residuals read as "sigmas" for Gaussian noise.
const MEAN_ABS_DEV_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

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
    /// Time-of-day buckets for daily seasonality; 0 turns seasonality off.
    pub season_buckets: u16,
    /// Half-life of each seasonal bucket, in visits to that bucket.
    pub season_halflife: f64,
    /// Tail probability below which a sample is anomalous.
    pub alert_probability: f64,
    /// Samples after an alert during which no new alert is raised.
    pub refractory: u64,
    /// Weight of the time-of-day noise level in the residual scale, in [0, 1]: 0 uses
    /// one scale for the whole day; 1 uses each bucket's own noise level. Many daily
    /// series are much noisier at their busy hours than at night.
    pub season_scale_weight: f64,
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
            season_buckets: 48,
            season_halflife: 20.0,
            alert_probability: 1e-3,
            refractory: 500,
            season_scale_weight: 0.0,
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
}

/// One baseline: a level, a scale and the two tails of its scaled residual.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Baseline {
    level: f64,
    /// Exponentially weighted mean absolute residual.
    mad: f64,
    up: SpotTail,
    down: SpotTail,
}

impl Baseline {
    fn new(x: f64) -> Baseline {
        Baseline {
            level: x,
            mad: 0.0,
            up: SpotTail::new(2.0),
            down: SpotTail::new(2.0),
        }
    }

    /// Residual in sigma-like units; a floor relative to the level keeps a flat series
    /// from turning rounding noise into infinite scores.
    /// `f` is the time-of-day scale factor (1 without seasonality): the residual is
    /// judged against `mad * f`.
    fn z(&self, d: f64, f: f64) -> f64 {
        let floor = 1e-9 * (1.0 + self.level.abs());
        (d - self.level) / (self.mad * MEAN_ABS_DEV_TO_SIGMA * f).max(floor)
    }

    fn probability(&self, z: f64, cfg: &SpotConfig) -> f64 {
        self.up
            .tail_probability(z, cfg)
            .min(self.down.tail_probability(-z, cfg))
    }

    // One call per sample on the hot path; the weights are computed once by the caller.
    #[allow(clippy::too_many_arguments)]
    fn learn(
        &mut self,
        d: f64,
        z: f64,
        flagged: bool,
        a_level: f64,
        a_scale: f64,
        f: f64,
        cfg: &DetectorConfig,
    ) {
        self.up.learn(z.max(0.0), flagged, &cfg.spot);
        self.down.learn((-z).max(0.0), flagged, &cfg.spot);
        // The scale is learned in time-of-day-normalised units.
        let r = (d - self.level) / f;
        // Winsorise: beyond `winsor` scales, move as if the residual were at the limit.
        let lim = cfg.winsor * self.mad * MEAN_ABS_DEV_TO_SIGMA;
        let rc = if self.mad > 0.0 {
            r.clamp(-lim, lim)
        } else {
            r
        };
        self.level += a_level * rc * f;
        self.mad += a_scale * (rc.abs() - self.mad);
    }
}

/// Streaming detector state for one series; serialisable so baselines survive restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesDetector {
    cfg: DetectorConfig,
    n: u64,
    first_ts: u64,
    since_alert: u64,
    fast: Option<Baseline>,
    slow: Option<Baseline>,
    /// Seasonal offsets and their visit counts (empty when seasonality is off).
    season: Vec<f64>,
    visits: Vec<u32>,
    /// Per-bucket mean absolute residual (time-of-day noise level) and their sum.
    #[serde(default)]
    season_mad: Vec<f64>,
    #[serde(default)]
    season_mad_sum: f64,
}

/// EWMA weight for a half-life in samples, with a 1/n start so early estimates are
/// plain means instead of being dominated by the first sample.
fn alpha(halflife: f64, n: u64) -> f64 {
    let a = 1.0 - 0.5f64.powf(1.0 / halflife.max(1e-9));
    a.max(1.0 / n.max(1) as f64)
}

impl SeriesDetector {
    pub fn new(cfg: DetectorConfig) -> SeriesDetector {
        let b = usize::from(cfg.season_buckets);
        SeriesDetector {
            n: 0,
            first_ts: 0,
            since_alert: u64::MAX,
            fast: None,
            slow: None,
            season: vec![0.0; b],
            visits: vec![0; b],
            season_mad: vec![0.0; b],
            season_mad_sum: 0.0,
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

    fn bucket(&self, ts_ns: u64) -> Option<usize> {
        let b = self.season.len();
        if b == 0 {
            return None;
        }
        let tod = ts_ns % NS_PER_DAY;
        Some(((u128::from(tod) * b as u128) / u128::from(NS_PER_DAY)) as usize)
    }

    /// Feeds one sample. Non-finite values are ignored (score 0, no alert, no learning).
    pub fn update(&mut self, ts_ns: u64, value: f64) -> Verdict {
        let quiet = Verdict {
            score: 0.0,
            alert: false,
        };
        if !value.is_finite() {
            return quiet;
        }
        self.n += 1;
        self.since_alert = self.since_alert.saturating_add(1);
        let bucket = self.bucket(ts_ns);
        // Seasonal offsets are only applied once a whole day has been seen; before that
        // a bucket's estimate is a single visit.
        if self.n == 1 {
            self.first_ts = ts_ns;
        }
        let day_seen = ts_ns.saturating_sub(self.first_ts) >= NS_PER_DAY;
        let offset = match bucket {
            Some(b) if day_seen => self.season.get(b).copied().unwrap_or(0.0),
            _ => 0.0,
        };
        let d = value - offset;
        let f = match bucket {
            Some(b) if day_seen && self.cfg.season_scale_weight > 0.0 => self.scale_factor(b),
            _ => 1.0,
        };
        let (Some(fast), Some(slow)) = (self.fast.as_mut(), self.slow.as_mut()) else {
            self.fast = Some(Baseline::new(d));
            self.slow = Some(Baseline::new(d));
            self.learn_season(bucket, value, d, 0.0);
            return quiet;
        };
        let cfg = &self.cfg;
        let zf = fast.z(d, f);
        let zs = slow.z(d, f);
        // The slow residual, winsorised, feeds the time-of-day noise level.
        let res = (d - slow.level)
            .abs()
            .min(cfg.winsor * slow.mad * MEAN_ABS_DEV_TO_SIGMA * f);
        let pf = fast.probability(zf, &cfg.spot);
        let ps = slow.probability(zs, &cfg.spot);
        let p = pf.min(ps);
        // During warm-up the scales are still forming (the second sample has no scale at
        // all), so the score would be noise: report 0.
        let score = if self.n > cfg.warmup {
            score_of(p, cfg.alert_probability)
        } else {
            0.0
        };
        let alert =
            self.n > cfg.warmup && p < cfg.alert_probability && self.since_alert > cfg.refractory;
        if alert {
            self.since_alert = 0;
        }
        let n = self.n;
        fast.learn(
            d,
            zf,
            pf < cfg.alert_probability,
            alpha(cfg.fast_halflife, n),
            alpha(cfg.scale_halflife, n),
            f,
            cfg,
        );
        slow.learn(
            d,
            zs,
            ps < cfg.alert_probability,
            alpha(cfg.slow_halflife, n),
            alpha(cfg.scale_halflife, n),
            f,
            cfg,
        );
        let level = slow.level;
        self.learn_season(bucket, value, level, res);
        Verdict { score, alert }
    }

    /// Moves the bucket's offset toward `value - level` (the slow level, so the profile
    /// describes the shape of a day, not its mean).
    fn learn_season(&mut self, bucket: Option<usize>, value: f64, level: f64, res: f64) {
        let Some(b) = bucket else { return };
        let (Some(s), Some(v), Some(m)) = (
            self.season.get_mut(b),
            self.visits.get_mut(b),
            self.season_mad.get_mut(b),
        ) else {
            return;
        };
        *v = v.saturating_add(1);
        let a = alpha(self.cfg.season_halflife, u64::from(*v));
        *s += a * ((value - level) - *s);
        let dm = a * (res - *m);
        *m += dm;
        self.season_mad_sum += dm;
    }

    /// This bucket's noise level relative to the day's average, shrunk toward 1 (partial
    /// pooling: a bucket's estimate rests on few visits, and a bucket that happened to be
    /// noiseless must not make every later deviation there infinitely rare; the factor
    /// never drops below `1 - season_scale_weight`).
    fn scale_factor(&self, b: usize) -> f64 {
        let n = self.season_mad.len();
        let mean = self.season_mad_sum / n.max(1) as f64;
        // A bucket's noise level needs a half-life of visits before it means anything.
        let seasoned = self
            .visits
            .get(b)
            .is_some_and(|&v| f64::from(v) >= self.cfg.season_halflife);
        match self.season_mad.get(b) {
            Some(&m) if seasoned && mean > 0.0 && m.is_finite() => {
                let w = self.cfg.season_scale_weight;
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
    /// k=1.2533141373155003; lvl,mad=10.0,0.0
    /// for d in (12,8,30):
    ///     r=d-lvl; lim=6*mad*k; rc=max(-lim,min(lim,r)) if mad>0 else r
    ///     lvl+=0.5*rc; mad+=0.25*(abs(rc)-mad); print(lvl,mad)
    /// ```
    #[test]
    fn baseline_ewma_and_winsorised_mad() {
        let cfg = DetectorConfig::default();
        assert_eq!(cfg.winsor, 6.0);
        let mut b = Baseline::new(10.0);
        let want = [
            (11.0, 0.5),
            (9.5, 1.125),
            (13.729935213439813, 2.958717606719907),
        ];
        for (d, (lvl, mad)) in [12.0, 8.0, 30.0].into_iter().zip(want) {
            let z = b.z(d, 1.0);
            b.learn(d, z, false, 0.5, 0.25, 1.0, &cfg);
            assert!((b.level - lvl).abs() < 1e-12, "{} vs {lvl}", b.level);
            assert!((b.mad - mad).abs() < 1e-12, "{} vs {mad}", b.mad);
        }
        // z = (20 - 13.729935213439813) / (2.958717606719907 * k) = 1.6908635947775619
        assert!(
            (b.z(20.0, 1.0) - 1.6908635947775619).abs() < 1e-9,
            "{}",
            b.z(20.0, 1.0)
        );
    }

    #[test]
    fn alpha_from_half_life() {
        // After h steps of weight a, a sample's weight has halved: (1-a)^h = 1/2.
        let a = alpha(10.0, 1_000);
        assert!(((1.0 - a).powi(10) - 0.5).abs() < 1e-12);
        // Early on, 1/n (a running mean) dominates.
        assert_eq!(alpha(10.0, 2), 0.5);
        assert_eq!(alpha(200.0, 1), 1.0);
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

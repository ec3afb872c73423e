//! One tail of a peaks-over-threshold model (after SPOT, Siffer et al. 2017), O(1) state.
//!
//! `P(X > x) = zeta * S(x - u)` above a threshold `u`, where `zeta` is the fraction of
//! observations above `u` and `S` the survival function of a generalised Pareto
//! distribution fitted to the excesses. Differences from the paper, all to keep memory
//! bounded, the code streaming and the probabilities usable at a fixed alert level:
//! - `u` is fixed (the statistic is already a scaled residual, so "2 scales" means the
//!   same on every series) and `zeta` is estimated (an EWMA of "above `u`"). SPOT instead
//!   tracks the quantile of a fixed `zeta`; a multiplicative tracker of a 98 % quantile
//!   moves down about fifty times more slowly than up, so on a series of a few thousand
//!   samples it mostly never settled (and the NAB score swung by ±10 with its step);
//! - peaks are kept in a fixed ring of the most recent `capacity` values (the paper keeps
//!   them all), refitted with [`gpd::fit_mle`] every few new peaks;
//! - the GPD is fitted to the largest `top_fraction` of the peaks only (at least
//!   `min_peaks`), above a "knee"; between `u` and the knee the tail is log-linear. A
//!   sparse series (idle topic, routine bursts) has peaks of two kinds, the noise floor
//!   just above `u` and the bursts far above; one GPD over both fitted the floor and
//!   called every routine burst extreme (an alert every third burst). On NAB this costs
//!   2.4 points (67.3 to 64.9), kept because such series are common on a broker;
//! - a bounded fit (`xi < 0`) is replaced by the exponential tail, and `xi` is capped at
//!   `max_xi`;
//! - before `min_peaks` peaks, an exponential tail fitted to the peaks so far;
//! - values flagged as anomalous are kept as peaks by default (`keep_flagged`):
//!   excluding them truncates the fitted tail at the alert level, the fit then looks
//!   lighter, the alert level drops and ever more values are excluded (measured on NAB:
//!   92 false positives instead of about 40). The bounded ring makes an incident's peaks
//!   age out instead.

use serde::{Deserialize, Serialize};

use super::gpd::{self, Gpd};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpotTail {
    /// Most recent peaks (values above `u` when seen), ring buffer.
    peaks: Vec<f64>,
    next: usize,
    /// Peaks added since the last fit.
    since_fit: u32,
    fit: Option<Gpd>,
    /// Fraction of observations above `u` (EWMA with a 1/n start).
    zeta: f64,
    /// Observations seen.
    n: u64,
    /// Excess over the threshold above which the GPD is fitted (0: all peaks).
    knee: f64,
    /// Fraction of peaks above the knee.
    knee_rate: f64,
}

/// Fixed tail parameters, shared by all tails of a detector.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpotConfig {
    /// The peak threshold `u`, in the units of the statistic (scaled residuals).
    pub threshold: f64,
    /// Half-life, in observations, of the estimate of the fraction above `u`.
    pub zeta_halflife: f64,
    /// Ring capacity for peaks.
    pub capacity: usize,
    /// Peaks needed before a GPD shape is fitted.
    pub min_peaks: usize,
    /// Refit after this many new peaks.
    pub refit_every: u32,
    /// Keep flagged values as peaks too.
    pub keep_flagged: bool,
    /// Largest shape (xi) a fit may have.
    pub max_xi: f64,
    /// Fraction of the peaks (the largest ones, at least `min_peaks`) the GPD is fitted
    /// to; below them the tail is log-linear.
    pub top_fraction: f64,
}

impl Default for SpotConfig {
    fn default() -> Self {
        SpotConfig {
            threshold: 2.0,
            zeta_halflife: 1000.0,
            capacity: 256,
            min_peaks: 32,
            refit_every: 4,
            keep_flagged: true,
            max_xi: 0.3,
            top_fraction: 0.25,
        }
    }
}

impl Default for SpotTail {
    fn default() -> Self {
        Self::new()
    }
}

impl SpotTail {
    pub fn new() -> SpotTail {
        SpotTail {
            peaks: Vec::new(),
            next: 0,
            since_fit: 0,
            fit: None,
            zeta: 0.0,
            n: 0,
            knee: 0.0,
            knee_rate: 1.0,
        }
    }

    pub fn gpd(&self) -> Option<Gpd> {
        self.fit
    }

    /// Heap bytes held: the peak ring, at most `capacity` values.
    pub fn heap_bytes(&self) -> usize {
        self.peaks.capacity() * std::mem::size_of::<f64>()
    }

    /// The estimated fraction of observations above the threshold, never below one in
    /// the observations seen (or in the estimate's memory): a threshold never crossed
    /// yet has shown a small rate, not a zero one.
    pub fn exceedance_rate(&self, cfg: &SpotConfig) -> f64 {
        let n_eff = (self.n as f64)
            .min(1.0 / ewma_weight(cfg.zeta_halflife))
            .max(1.0);
        self.zeta.max(1.0 / n_eff).min(1.0)
    }

    /// Estimated `P(X > x)` under the current model (before learning from `x`).
    /// Above `u`: `zeta * GPD survival(x - u)`. Below: log-linear between `P = 1` at 0
    /// and `zeta` at `u`, so the probability is monotone and continuous.
    pub fn tail_probability(&self, x: f64, cfg: &SpotConfig) -> f64 {
        if x.is_nan() || x <= 0.0 {
            return 1.0;
        }
        let u = cfg.threshold.max(1e-12);
        let zeta = self.exceedance_rate(cfg);
        if x <= u {
            return zeta.powf(x / u);
        }
        // Before any peak, an exponential tail with the scale of u itself: a
        // conservative guess that says "twice the usual extreme is rare".
        let g = self.fit.unwrap_or(Gpd {
            xi: 0.0,
            sigma: u / 2.0,
        });
        let y = x - u;
        if self.knee > 0.0 && y <= self.knee {
            // Between the threshold and the knee: log-linear from 1 to the fraction of
            // peaks above the knee (exact for an exponential tail).
            return zeta * self.knee_rate.powf(y / self.knee);
        }
        let (base, rate) = if self.knee > 0.0 {
            (self.knee, self.knee_rate)
        } else {
            (0.0, 1.0)
        };
        zeta * rate * g.survival(y - base)
    }

    /// Learns from an observation `x >= 0` of this tail's statistic. `flagged` values
    /// (alarms) count toward `zeta` but are kept as peaks only with `keep_flagged`.
    pub fn learn(&mut self, x: f64, flagged: bool, cfg: &SpotConfig) {
        if !x.is_finite() {
            return;
        }
        let above = x > cfg.threshold;
        self.n += 1;
        let a = ewma_weight(cfg.zeta_halflife).max(1.0 / self.n as f64);
        self.zeta += a * (f64::from(u8::from(above)) - self.zeta);
        if above && (!flagged || cfg.keep_flagged) {
            let cap = cfg.capacity.max(1);
            if self.peaks.len() < cap {
                self.peaks.push(x);
            } else if let Some(slot) = self.peaks.get_mut(self.next) {
                *slot = x;
            }
            self.next = (self.next + 1) % cap;
            self.since_fit += 1;
            // While the shape is not fitted yet, every peak refines the provisional tail.
            if self.since_fit >= cfg.refit_every || self.peaks.len() < cfg.min_peaks {
                self.refit(cfg);
            }
        }
    }

    fn refit(&mut self, cfg: &SpotConfig) {
        self.since_fit = 0;
        let ys: Vec<f64> = self
            .peaks
            .iter()
            .map(|&p| p - cfg.threshold)
            .filter(|&y| y > 0.0)
            .collect();
        if ys.is_empty() {
            return;
        }
        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
        // The exponential tail's MLE: sigma = mean excess.
        let exponential = Gpd {
            xi: 0.0,
            sigma: mean,
        };
        if ys.len() < cfg.min_peaks {
            // Too few peaks for a shape: the exponential tail of the peaks so far, never
            // lighter than the default guess. Sparse series (rare spikes over exact
            // zeros) otherwise judge every early spike by the default alone and find it
            // extreme.
            self.fit = Some(Gpd {
                xi: 0.0,
                sigma: mean.max(cfg.threshold / 2.0),
            });
            return;
        }
        let mut ys = ys;
        let mut exponential = exponential;
        self.knee = 0.0;
        self.knee_rate = 1.0;
        let n = ys.len();
        let k = ((cfg.top_fraction * n as f64).ceil() as usize)
            .max(cfg.min_peaks)
            .min(n);
        if k < n {
            ys.sort_by(|a, b| b.total_cmp(a));
            let knee = ys[k];
            let top: Vec<f64> = ys[..k]
                .iter()
                .map(|&y| y - knee)
                .filter(|&y| y > 0.0)
                .collect();
            if top.len() >= 3 && knee > 0.0 {
                self.knee = knee;
                self.knee_rate = top.len() as f64 / n as f64;
                exponential = Gpd {
                    xi: 0.0,
                    sigma: top.iter().sum::<f64>() / top.len() as f64,
                };
                ys = top;
            }
        }
        if let Some(g) = gpd::fit_mle(&ys) {
            self.fit = Some(if g.xi < 0.0 {
                // A bounded fit puts an end point just past the largest peak seen, and
                // anything beyond it gets probability 0: on a deterministic or bounded
                // series every new maximum, however slight, would be "infinitely" rare
                // (a clean daily sine alerted with score 0.99). The exponential tail is
                // the conservative choice a finite sample can support.
                exponential
            } else {
                // Very heavy fitted tails (xi >= 1, no mean) come from a handful of wild
                // peaks; capping keeps one incident from silencing the detector.
                Gpd {
                    xi: g.xi.min(cfg.max_xi),
                    sigma: g.sigma,
                }
            });
        }
    }
}

/// EWMA weight for a half-life in observations.
fn ewma_weight(halflife: f64) -> f64 {
    1.0 - 0.5f64.powf(1.0 / halflife.max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand computation with the defaults (threshold 2): zeta is a running mean at
    /// first (weights 1, 1/2, 1/3, 1/4): 0, 1/2, 1/3, 1/2. Peaks 3 and 5 are excesses
    /// 1 and 3; the provisional tail is exponential with their mean, 2.
    #[test]
    fn probabilities_from_the_exceedance_rate_and_the_tail() {
        let cfg = SpotConfig::default();
        let mut t = SpotTail::new();
        // Nothing learned: rate floored at 1, default exponential tail with scale u/2:
        // P(X > 5) = exp(-(5 - 2) / 1) (python3: math.exp(-3)).
        assert_eq!(t.tail_probability(1.5, &cfg), 1.0);
        assert!((t.tail_probability(5.0, &cfg) - 0.049787068367863944).abs() < 1e-15);
        for x in [1.0, 3.0, 0.5, 5.0] {
            t.learn(x, false, &cfg);
        }
        assert!((t.zeta - 0.5).abs() < 1e-15, "{}", t.zeta);
        assert_eq!(
            t.gpd(),
            Some(Gpd {
                xi: 0.0,
                sigma: 2.0
            })
        );
        // Below u: zeta^(x/u) = 0.5^0.5; above: zeta * exp(-(x - u)/sigma) = 0.5/e.
        let half = std::f64::consts::FRAC_1_SQRT_2;
        assert!((t.tail_probability(1.0, &cfg) - half).abs() < 1e-15);
        assert!((t.tail_probability(4.0, &cfg) - 0.18393972058572117).abs() < 1e-15);
        assert_eq!(t.tail_probability(0.0, &cfg), 1.0);
        assert_eq!(t.tail_probability(f64::NAN, &cfg), 1.0);
        // Monotone across the threshold.
        let below = t.tail_probability(1.999_999, &cfg);
        let above = t.tail_probability(2.000_001, &cfg);
        assert!(below > above && (below - above) < 1e-6);
    }

    /// A bounded tail (uniform excesses: xi = -1) must not get an end point: beyond the
    /// largest peak the probability stays positive, from the exponential tail with the
    /// mean excess (1/2 for excesses (k + 1/2)/35, k < 35; the 35th peak triggers the
    /// refit: fits every 4 peaks from the 32nd on, the count since the last one starts
    /// at the 31st provisional fit). All peaks are fitted here (`top_fraction` 1).
    #[test]
    fn bounded_fits_become_exponential() {
        let cfg = SpotConfig {
            top_fraction: 1.0,
            ..SpotConfig::default()
        };
        let mut t = SpotTail::new();
        for k in 0..35 {
            t.learn(2.0 + (k as f64 + 0.5) / 35.0, false, &cfg);
            for _ in 0..24 {
                t.learn(0.0, false, &cfg);
            }
        }
        let g = t.gpd().expect("fitted");
        assert_eq!(g.xi, 0.0);
        assert!((g.sigma - 0.5).abs() < 1e-12, "{g:?}");
        assert_eq!(t.knee, 0.0);
        assert!(t.tail_probability(10.0, &cfg) > 0.0);
    }

    /// Peaks of two kinds: 47 small excesses (0.01 to 0.47, the noise floor of a sparse
    /// series) and 16 spikes (excesses 50 to 57.5). Fitted to all peaks, one GPD cannot
    /// hold both and every routine spike looked extreme. The largest quarter (16 of 63,
    /// at least `min_peaks` = 8 here) is fitted above the knee, the largest small excess
    /// 0.47: fraction above it 16/63; the spikes' excesses over it are evenly spread (a
    /// bounded fit, so exponential) with mean 53.75 - 0.47 = 53.28. Below the knee the
    /// tail is log-linear: at half the knee, (16/63)^0.5 = 0.5039526306789697 (python3).
    /// The last refit is at the 63rd peak (every 4 from the 11th).
    #[test]
    fn the_gpd_is_fitted_above_a_knee() {
        let cfg = SpotConfig {
            min_peaks: 8,
            ..SpotConfig::default()
        };
        let mut t = SpotTail::new();
        for i in 0..47 {
            t.learn(2.0 + 0.01 * (i + 1) as f64, false, &cfg);
        }
        for j in 0..16 {
            t.learn(2.0 + 50.0 + 0.5 * j as f64, false, &cfg);
        }
        assert!((t.knee - 0.47).abs() < 1e-12, "{}", t.knee);
        assert!((t.knee_rate - 16.0 / 63.0).abs() < 1e-15);
        let g = t.gpd().expect("fitted");
        assert_eq!(g.xi, 0.0);
        assert!((g.sigma - 53.28).abs() < 1e-9, "{g:?}");
        // Every observation was a peak: zeta is 1.
        let p = t.tail_probability(2.0 + 0.235, &cfg);
        assert!((p - 0.5039526306789697).abs() < 1e-12, "{p}");
        // Above the knee: (16/63) exp(-(y - 0.47)/53.28). A routine spike (y = 55) is
        // not rare, 0.0913; one ten times as large is, 2.2e-5 (python3).
        let routine = t.tail_probability(2.0 + 55.0, &cfg);
        assert!((routine - 0.09126326154194227).abs() < 1e-12, "{routine}");
        let big = t.tail_probability(2.0 + 500.0, &cfg);
        assert!((big - 2.1529013504505853e-05).abs() < 1e-15, "{big}");
    }

    /// Excesses from a GPD with xi = 0.8 (inverse CDF on an even grid of
    /// probabilities): the fit is heavy, and capped at `max_xi`.
    #[test]
    fn heavy_fits_are_capped() {
        let cfg = SpotConfig::default();
        let mut t = SpotTail::new();
        for k in 0..64 {
            let u = (k as f64 + 0.5) / 64.0;
            t.learn(2.0 + ((1.0 - u).powf(-0.8) - 1.0) / 0.8, false, &cfg);
        }
        assert_eq!(t.gpd().map(|g| g.xi), Some(cfg.max_xi));
    }

    #[test]
    fn the_peak_ring_is_bounded() {
        let cfg = SpotConfig::default();
        let mut t = SpotTail::new();
        for k in 0..10 * cfg.capacity {
            t.learn(3.0 + (k % 7) as f64, false, &cfg);
        }
        assert_eq!(t.peaks.len(), cfg.capacity);
        assert!(t.heap_bytes() <= cfg.capacity * 8);
    }
}

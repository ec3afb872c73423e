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
//! - a bounded fit (`xi < 0`) is replaced by the exponential tail, and `xi` is capped at
//!   `max_xi` (see [`SpotTail::refit`]);
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
        zeta * g.survival(x - u)
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

//! One tail of SPOT (streaming peaks over threshold, Siffer et al. 2017) with O(1) state.
//!
//! Differences from the paper, all to keep memory bounded and the code streaming:
//! - the initial threshold `u` is not a batch quantile of a calibration set but a
//!   stochastic-approximation tracker of the `1 - peak_rate` quantile (multiplicative
//!   steps, so it adapts to any scale);
//! - peaks are kept in a fixed ring of the most recent `capacity` values (the paper keeps
//!   them all), refitted with [`gpd::fit_mle`] every few new peaks;
//! - unlike SPOT, values flagged as anomalous are kept as peaks by default
//!   (`keep_flagged`): excluding them truncates the fitted tail at the alert level, the
//!   fit then looks lighter, the alert level drops and ever more values are excluded
//!   (measured on NAB: 92 false positives instead of about 40). The bounded ring makes an
//!   incident's peaks age out instead.

use serde::{Deserialize, Serialize};

use super::gpd::{self, Gpd};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpotTail {
    /// Current peak threshold (in the units of the observed statistic, >= 0).
    u: f64,
    /// Most recent peaks (values above `u` when seen), ring buffer.
    peaks: Vec<f64>,
    next: usize,
    /// Peaks added since the last fit.
    since_fit: u32,
    fit: Option<Gpd>,
}

/// Fixed SPOT parameters, shared by all tails of a detector.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpotConfig {
    /// Target fraction of observations above the peak threshold `u` (SPOT's initial
    /// quantile level is 1 - this).
    pub peak_rate: f64,
    /// Multiplicative step of the threshold tracker.
    pub step: f64,
    /// Ring capacity for peaks.
    pub capacity: usize,
    /// Peaks needed before a GPD fit is trusted.
    pub min_peaks: usize,
    /// Refit after this many new peaks.
    pub refit_every: u32,
    /// Keep flagged values as peaks too.
    pub keep_flagged: bool,
}

impl Default for SpotConfig {
    fn default() -> Self {
        SpotConfig {
            peak_rate: 0.02,
            step: 0.005,
            capacity: 256,
            min_peaks: 32,
            refit_every: 4,
            keep_flagged: true,
        }
    }
}

impl SpotTail {
    pub fn new(initial_u: f64) -> SpotTail {
        SpotTail {
            u: initial_u,
            peaks: Vec::new(),
            next: 0,
            since_fit: 0,
            fit: None,
        }
    }

    pub fn threshold(&self) -> f64 {
        self.u
    }

    pub fn gpd(&self) -> Option<Gpd> {
        self.fit
    }

    /// Estimated `P(X > x)` under the current model (before learning from `x`).
    /// Above `u`: `peak_rate * GPD survival(x - u)`. Below: log-linear between
    /// `P = 1` at 0 and `peak_rate` at `u`, so the score is monotone and continuous.
    pub fn tail_probability(&self, x: f64, cfg: &SpotConfig) -> f64 {
        if x.is_nan() || x <= 0.0 {
            return 1.0;
        }
        let u = self.u.max(1e-12);
        if x <= u {
            return cfg.peak_rate.powf(x / u);
        }
        // Without enough peaks, an exponential tail with the scale of u itself: a
        // conservative guess that says "twice the usual extreme is rare".
        let g = self.fit.unwrap_or(Gpd {
            xi: 0.0,
            sigma: u / 2.0,
        });
        cfg.peak_rate * g.survival(x - u)
    }

    /// Learns from an observation `x >= 0` of this tail's statistic. `flagged` values
    /// (alarms) move the threshold tracker but are not kept as peaks.
    pub fn learn(&mut self, x: f64, flagged: bool, cfg: &SpotConfig) {
        if !x.is_finite() {
            return;
        }
        let above = x > self.u;
        // Equilibrium where P(x > u) = peak_rate: up by (1 - r) when above, down by r.
        let g = if above {
            1.0 - cfg.peak_rate
        } else {
            -cfg.peak_rate
        };
        self.u = (self.u * (cfg.step * g).exp()).max(1e-12);
        if above && (!flagged || cfg.keep_flagged) {
            if self.peaks.len() < cfg.capacity {
                self.peaks.push(x);
            } else if let Some(slot) = self.peaks.get_mut(self.next) {
                *slot = x;
            }
            self.next = (self.next + 1) % cfg.capacity.max(1);
            self.since_fit += 1;
            if self.since_fit >= cfg.refit_every {
                self.refit(cfg);
            }
        }
    }

    fn refit(&mut self, cfg: &SpotConfig) {
        self.since_fit = 0;
        // Excesses over the current threshold; peaks recorded under an older, lower
        // threshold that are no longer above it are left out.
        let ys: Vec<f64> = self
            .peaks
            .iter()
            .map(|&p| p - self.u)
            .filter(|&y| y > 0.0)
            .collect();
        if ys.len() < cfg.min_peaks {
            return;
        }
        if let Some(g) = gpd::fit_mle(&ys) {
            // Very heavy fitted tails (xi >= 1, no mean) come from a handful of wild
            // peaks; capping keeps one incident from silencing the detector.
            self.fit = Some(Gpd {
                xi: g.xi.min(0.5),
                sigma: g.sigma,
            });
        }
    }
}

//! The generalised Pareto distribution (GPD) and its fit to peaks over a threshold.
//!
//! Excesses `y = x - u > 0` over a high threshold `u` follow approximately
//! `P(Y > y) = (1 + xi*y/sigma)^(-1/xi)` (Pickands–Balkema–de Haan), `exp(-y/sigma)` at
//! xi = 0. Two estimators, both written from the papers:
//! - maximum likelihood by Grimshaw's reduction (Grimshaw 1993, as used by SPOT,
//!   Siffer et al. 2017): the MLE solves a one-dimensional equation in theta = xi/sigma;
//! - probability-weighted moments (Hosking & Wallis 1987), used as a fallback and
//!   when the likelihood has no interior maximum.

use serde::{Deserialize, Serialize};

/// GPD parameters: shape `xi` and scale `sigma > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpd {
    pub xi: f64,
    pub sigma: f64,
}

impl Gpd {
    /// `P(Y > y)` for an excess `y >= 0`.
    pub fn survival(&self, y: f64) -> f64 {
        if y <= 0.0 {
            return 1.0;
        }
        if self.xi.abs() < 1e-9 {
            return (-y / self.sigma).exp();
        }
        let t = 1.0 + self.xi * y / self.sigma;
        if t <= 0.0 {
            // Beyond the upper end point of a bounded (xi < 0) tail.
            return 0.0;
        }
        t.powf(-1.0 / self.xi)
    }

    /// The excess `y` with `P(Y > y) = p` (0 < p <= 1).
    pub fn quantile(&self, p: f64) -> f64 {
        if self.xi.abs() < 1e-9 {
            -self.sigma * p.ln()
        } else {
            self.sigma / self.xi * (p.powf(-self.xi) - 1.0)
        }
    }

    /// Log-likelihood of excesses (all > 0); -inf where a point is outside the support.
    pub fn log_likelihood(&self, ys: &[f64]) -> f64 {
        let n = ys.len() as f64;
        if self.sigma <= 0.0 {
            return f64::NEG_INFINITY;
        }
        if self.xi.abs() < 1e-9 {
            return -n * self.sigma.ln() - ys.iter().sum::<f64>() / self.sigma;
        }
        let mut s = 0.0;
        for &y in ys {
            let t = 1.0 + self.xi * y / self.sigma;
            if t <= 0.0 {
                return f64::NEG_INFINITY;
            }
            s += t.ln();
        }
        -n * self.sigma.ln() - (1.0 + 1.0 / self.xi) * s
    }
}

/// Probability-weighted-moments estimate (needs at least 2 excesses). `ys` is sorted in
/// place (ascending) because the estimator works on order statistics.
pub fn fit_pwm(ys: &mut [f64]) -> Option<Gpd> {
    let n = ys.len();
    if n < 2 {
        return None;
    }
    ys.sort_by(f64::total_cmp);
    let nf = n as f64;
    let a0 = ys.iter().sum::<f64>() / nf;
    // a1 estimates E[Y (1 - F(Y))] with plotting positions p_i = (i - 0.35)/n.
    let a1 = ys
        .iter()
        .enumerate()
        .map(|(i, &y)| (1.0 - ((i + 1) as f64 - 0.35) / nf) * y)
        .sum::<f64>()
        / nf;
    let d = a0 - 2.0 * a1;
    // (also rejects NaN)
    if d.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        || a0.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
    {
        return None;
    }
    // Hosking's k = -xi: alpha_0 = sigma/(1+k), alpha_1 = sigma/(2(2+k)).
    let xi = 2.0 - a0 / d;
    let sigma = 2.0 * a0 * a1 / d;
    (sigma > 0.0 && xi.is_finite()).then_some(Gpd { xi, sigma })
}

/// Maximum-likelihood fit by Grimshaw's method. With theta = xi/sigma, the likelihood
/// equations reduce to `u(theta) * v(theta) = 1` where
/// `u = mean(1/(1 + theta*y))`, `v = 1 + mean(ln(1 + theta*y))`; then `xi = v - 1` and
/// `sigma = xi/theta`. Roots lie in `(-1/y_max, 0)` or `(0, 2(mean - min)/min^2)`; every
/// root found on a grid (geometric in `|theta|`) plus bisection is a candidate, together with the exponential
/// (theta -> 0) and the PWM estimate; the one with the largest likelihood wins.
pub fn fit_mle(ys: &[f64]) -> Option<Gpd> {
    let n = ys.len();
    if n < 3 || ys.iter().any(|&y| y.is_nan() || y <= 0.0 || !y.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let mean = ys.iter().sum::<f64>() / nf;
    let (mut ymin, mut ymax) = (f64::INFINITY, 0.0f64);
    for &y in ys {
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    let w = |theta: f64| -> f64 {
        let (mut u, mut v) = (0.0, 0.0);
        for &y in ys {
            let t = 1.0 + theta * y;
            u += 1.0 / t;
            v += t.ln();
        }
        (u / nf) * (1.0 + v / nf) - 1.0
    };
    let from_theta = |theta: f64| -> Option<Gpd> {
        let v = 1.0 + ys.iter().map(|&y| (1.0 + theta * y).ln()).sum::<f64>() / nf;
        let xi = v - 1.0;
        let sigma = xi / theta;
        (sigma > 0.0 && sigma.is_finite()).then_some(Gpd { xi, sigma })
    };
    let mut candidates: Vec<Gpd> = vec![Gpd {
        xi: 0.0,
        sigma: mean,
    }];
    let eps = 1e-8 / mean;
    // (sign, smallest and largest |theta|) of the two intervals. The grid is geometric
    // in |theta|: the upper end of the positive interval is 2(mean - min)/min^2, which
    // for a tiny smallest excess is many orders of magnitude above the root; an evenly
    // spaced grid put the root and theta -> 0 (where w also vanishes) in one cell, saw
    // no sign change and fell back to the PWM estimate (found against scipy's MLE).
    let intervals = [
        (-1.0, eps, 1.0 / ymax - eps),
        (1.0, eps, 2.0 * (mean - ymin) / (ymin * ymin)),
    ];
    const GRID: usize = 48;
    for (sign, lo, hi) in intervals {
        if hi.is_nan() || hi <= lo || !hi.is_finite() {
            continue;
        }
        let ratio = (hi / lo).ln();
        let mut prev: Option<(f64, f64)> = None;
        for k in 0..=GRID {
            let theta = sign * lo * (ratio * k as f64 / GRID as f64).exp();
            let val = w(theta);
            if let Some((pt, pv)) = prev
                && pv.is_finite()
                && val.is_finite()
                && (pv < 0.0) != (val < 0.0)
            {
                let root = bisect(&w, pt, theta, pv);
                if let Some(g) = from_theta(root) {
                    candidates.push(g);
                }
            }
            prev = Some((theta, val));
        }
    }
    let mut sorted = ys.to_vec();
    if let Some(g) = fit_pwm(&mut sorted) {
        candidates.push(g);
    }
    candidates
        .into_iter()
        .map(|g| (g.log_likelihood(ys), g))
        .filter(|(l, _)| l.is_finite())
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, g)| g)
}

fn bisect(f: &impl Fn(f64) -> f64, mut a: f64, mut b: f64, mut fa: f64) -> f64 {
    for _ in 0..60 {
        let m = 0.5 * (a + b);
        let fm = f(m);
        if (fm < 0.0) == (fa < 0.0) {
            a = m;
            fa = fm;
        } else {
            b = m;
        }
        if (b - a).abs() <= 1e-12 * (1.0 + a.abs()) {
            break;
        }
    }
    0.5 * (a + b)
}

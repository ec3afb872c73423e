//! `Track`: one monitored series. A [`SeriesDetector`] says whether a value is
//! statistically rare (robust baselines, seasonality, SPOT tails); a gate on a plain
//! baseline of our own says whether the deviation matters in practice and in which
//! direction, and gives the numbers an alert shows (baseline, threshold). An alert fires
//! after `confirm` consecutive rare-and-relevant buckets, stays firing while the gate
//! holds against the baseline frozen at firing time, and resolves after `clear` normal
//! buckets, or once the shift has lasted `max_firing` (it is then the new normal).
//!
//! Why two baselines: the detector's state is its own (another module tunes it) and it
//! keeps learning during an incident by design, so "is it still anomalous?" and "what
//! was normal?" are answered by a frozen EWMA, while the decision to fire keeps the
//! detector's adaptive tail threshold. O(1) state either way.

use serde::{Deserialize, Serialize};

use crate::detect::{DetectorConfig, SeriesDetector};

const NS_PER_DAY: u64 = 86_400_000_000_000;

/// What the gate found for one value against the expected one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Check {
    /// Above the baseline (spike) or below (drop).
    pub up: bool,
    /// The value the observation crossed.
    pub threshold: f64,
}

/// Fixed parameters of a step.
#[derive(Clone, Copy, Debug)]
pub struct StepParams {
    pub warmup: u64,
    pub confirm: u32,
    pub clear: u32,
    pub max_firing_ns: u64,
    /// Half-life of our baseline, in samples.
    pub halflife: f64,
    /// Smallest meaningful change in the series' unit (winsorising floor).
    pub unit: f64,
}

/// Outcome of one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Nothing to report.
    Quiet,
    /// An alert starts now.
    Fire {
        up: bool,
        expected: f64,
        threshold: f64,
        score: f64,
    },
    /// Still firing (or waiting out `clear` normal buckets): keep the alert active.
    Firing { up: bool },
    /// The alert resolves now; `adapted`: because the shift lasted `max_firing`.
    Clear { up: bool, adapted: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Firing {
    up: bool,
    since_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// One detector, or two (weekdays, weekends) with weekly seasonality.
    dets: Vec<SeriesDetector>,
    level: f64,
    /// Exponentially weighted mean absolute deviation from `level`.
    dev: f64,
    n: u64,
    streak: u32,
    streak_up: bool,
    calm: u32,
    firing: Option<Firing>,
    /// While a candidate streak runs: the detector (and its index) as it was before the
    /// streak's first bucket, so every confirm bucket is judged against what was normal
    /// then. The live detector learns each bucket (its design: an incident's own peaks
    /// enter its tails), and after one 30-scale bucket it calls an identical second one
    /// ordinary: with no peaks yet its tail is an exponential fitted to that one peak.
    /// Not saved: a restart mid-streak falls back to the live detector.
    #[serde(skip)]
    before: Option<(usize, SeriesDetector)>,
    /// Last time the series had activity (engine's eviction clock).
    pub last_active_ns: u64,
}

fn alpha(halflife: f64, n: u64) -> f64 {
    let a = 1.0 - 0.5f64.powf(1.0 / halflife.max(1e-9));
    a.max(1.0 / n.max(1) as f64)
}

/// Saturday or Sunday (UTC). 1970-01-01 was a Thursday.
fn weekend(ts_ns: u64) -> bool {
    (ts_ns / NS_PER_DAY + 3) % 7 >= 5
}

impl Track {
    pub fn new(cfg: &DetectorConfig, weekly: bool, now_ns: u64) -> Track {
        let n = if weekly { 2 } else { 1 };
        Track {
            dets: (0..n).map(|_| SeriesDetector::new(cfg.clone())).collect(),
            level: 0.0,
            dev: 0.0,
            n: 0,
            streak: 0,
            streak_up: false,
            calm: 0,
            firing: None,
            before: None,
            last_active_ns: now_ns,
        }
    }

    /// Our baseline (the expected value) and the samples it rests on.
    pub fn baseline(&self) -> f64 {
        self.level
    }

    pub fn samples(&self) -> u64 {
        self.n
    }

    /// Detectors behind the series (2 with weekly seasonality).
    pub fn detectors(&self) -> usize {
        self.dets.len()
    }

    pub fn is_firing(&self) -> bool {
        self.firing.is_some()
    }

    fn learn(&mut self, x: f64, p: &StepParams) {
        self.n += 1;
        if self.n == 1 {
            self.level = x;
            return;
        }
        let a = alpha(p.halflife, self.n);
        // Winsorise so one wild bucket moves the baseline by a bounded amount.
        let lim = (4.0 * self.dev).max(0.25 * self.level.abs()).max(p.unit);
        let rc = (x - self.level).clamp(-lim, lim);
        self.level += a * rc;
        self.dev += a * (rc.abs() - self.dev);
    }

    /// Feeds one sample `x` at `ts_ns`. `gate(expected, x)` says whether `x` deviates
    /// enough from `expected` to matter.
    pub fn step(
        &mut self,
        ts_ns: u64,
        x: f64,
        p: &StepParams,
        gate: impl Fn(f64, f64) -> Option<Check>,
    ) -> Step {
        let step = self.step_inner(ts_ns, x, p, gate);
        // Outside a streak the snapshot is of no use: at most one extra detector, and
        // only while a candidate is being confirmed.
        if self.streak == 0 {
            self.before = None;
        }
        step
    }

    fn step_inner(
        &mut self,
        ts_ns: u64,
        x: f64,
        p: &StepParams,
        gate: impl Fn(f64, f64) -> Option<Check>,
    ) -> Step {
        if !x.is_finite() {
            return match self.firing {
                Some(f) => Step::Firing { up: f.up },
                None => Step::Quiet,
            };
        }
        let i = usize::from(self.dets.len() > 1 && weekend(ts_ns));
        let expected = self.level;
        let g = if self.n == 0 { None } else { gate(expected, x) };
        // A bucket that may start a streak: keep the detector's state from before it
        // (only when the gate holds, which normal buckets rarely do).
        let opening = self.firing.is_none() && self.streak == 0 && g.is_some();
        let snapshot = if opening {
            self.dets.get(i).map(|d| (i, d.clone()))
        } else {
            None
        };
        let live = self
            .dets
            .get_mut(i)
            .map_or(0.0, |d| d.update(ts_ns, x).score);
        // Later buckets of a streak: scored by a copy of the pre-streak detector.
        let score = match &self.before {
            Some((j, d)) if *j == i && self.streak > 0 && self.firing.is_none() => {
                d.clone().update(ts_ns, x).score
            }
            _ => live,
        };
        if snapshot.is_some() {
            self.before = snapshot;
        }
        if self.n == 0 {
            self.learn(x, p);
            return Step::Quiet;
        }
        if let Some(f) = self.firing {
            if ts_ns.saturating_sub(f.since_ns) >= p.max_firing_ns {
                // A shift this long is the new normal: restart our baseline there.
                self.firing = None;
                self.calm = 0;
                self.streak = 0;
                self.level = x;
                self.dev = 0.0;
                return Step::Clear {
                    up: f.up,
                    adapted: true,
                };
            }
            if g.is_some_and(|c| c.up == f.up) {
                self.calm = 0;
                return Step::Firing { up: f.up };
            }
            self.calm += 1;
            if self.calm >= p.clear {
                self.firing = None;
                self.calm = 0;
                self.streak = 0;
                self.learn(x, p);
                return Step::Clear {
                    up: f.up,
                    adapted: false,
                };
            }
            return Step::Firing { up: f.up };
        }
        let warm = self.n >= p.warmup;
        match g {
            Some(c) if warm && score >= 0.5 => {
                if self.streak > 0 && self.streak_up != c.up {
                    self.streak = 0;
                }
                self.streak += 1;
                self.streak_up = c.up;
                if self.streak >= p.confirm {
                    self.streak = 0;
                    self.firing = Some(Firing {
                        up: c.up,
                        since_ns: ts_ns,
                    });
                    return Step::Fire {
                        up: c.up,
                        expected,
                        threshold: c.threshold,
                        score,
                    };
                }
                // Candidate: not learned, so a real shift does not hide itself.
                Step::Quiet
            }
            _ => {
                self.streak = 0;
                self.learn(x, p);
                Step::Quiet
            }
        }
    }

    /// Forgets a firing state without learning (the series was reset, e.g. a counter
    /// restart): the engine clears the alert itself.
    pub fn reset_firing(&mut self) -> bool {
        self.streak = 0;
        self.before = None;
        self.calm = 0;
        self.firing.take().is_some()
    }
}

/// Counts (messages, requests): a spike is `ratio`x the expected, `min_delta` above it
/// and `z` Poisson deviations above it.
pub fn count_spike(e: f64, x: f64, ratio: f64, min_delta: f64, z: f64) -> Option<Check> {
    let e = e.max(0.0);
    let thr = (e * ratio)
        .max(e + min_delta)
        .max(e + z * e.max(1.0).sqrt());
    (x >= thr).then_some(Check {
        up: true,
        threshold: thr,
    })
}

/// Counts: a drop is at most `ratio` of an expected count of at least `min_expected`,
/// `z` Poisson deviations below it.
pub fn count_drop(e: f64, x: f64, ratio: f64, min_expected: f64, z: f64) -> Option<Check> {
    if e < min_expected {
        return None;
    }
    let thr = (e * ratio).min(e - z * e.sqrt());
    (x <= thr).then_some(Check {
        up: false,
        threshold: thr,
    })
}

/// Either of the two count checks.
pub fn count_change(e: f64, x: f64, c: &super::config::RateConfig) -> Option<Check> {
    count_spike(e, x, c.spike_ratio, c.spike_min_delta, c.z)
        .or_else(|| count_drop(e, x, c.drop_ratio, c.drop_min_expected, c.z))
}

/// A level shift either way: `|x - e| >= max(ratio * |e|, min_delta)`.
pub fn shift(e: f64, x: f64, ratio: f64, min_delta: f64) -> Option<Check> {
    let d = (ratio * e.abs()).max(min_delta);
    if x >= e + d {
        Some(Check {
            up: true,
            threshold: e + d,
        })
    } else if x <= e - d {
        Some(Check {
            up: false,
            threshold: e - d,
        })
    } else {
        None
    }
}

/// Upward only: `x >= max(ratio * e, e + min_delta)`.
pub fn rise(e: f64, x: f64, ratio: f64, min_delta: f64) -> Option<Check> {
    let thr = (e * ratio).max(e + min_delta);
    (x >= thr).then_some(Check {
        up: true,
        threshold: thr,
    })
}

/// Rates and levels of broker metrics: relative with an absolute floor, both ways.
pub fn metric_change(e: f64, x: f64, c: &super::config::BrokerConfig) -> Option<Check> {
    let up = (e * c.spike_ratio).max(e + c.min_delta);
    if x >= up {
        return Some(Check {
            up: true,
            threshold: up,
        });
    }
    if e >= c.drop_min_expected && x <= e * c.drop_ratio {
        return Some(Check {
            up: false,
            threshold: e * c.drop_ratio,
        });
    }
    None
}

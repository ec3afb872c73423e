//! The Numenta Anomaly Benchmark's scoring, as pure functions over row indices.
//!
//! Follows NAB v1.1 (`nab/sweeper.py`): every row after the probationary period gets a
//! "sweep score" that it would earn if it were a detection (a scaled sigmoid of its
//! position relative to the current or preceding window); a window is worth its best
//! (earliest) detection or `-A_FN` if none; detections outside windows add up.
//! The threshold sweep walks the rows of all files in descending anomaly-score order,
//! so a threshold `t` means "detect every row with score >= t", exactly as NAB does.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Weights of one scoring profile (`config/profiles.json`).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct CostMatrix {
    #[serde(rename = "tpWeight")]
    pub tp_weight: f64,
    #[serde(rename = "fpWeight")]
    pub fp_weight: f64,
    #[serde(rename = "fnWeight")]
    pub fn_weight: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    pub cost: CostMatrix,
}

/// The profile names in the order NAB reports them.
pub const PROFILE_NAMES: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

#[derive(Deserialize)]
struct ProfileJson {
    #[serde(rename = "CostMatrix")]
    cost: CostMatrix,
}

/// Parses `profiles.json`; returns the three standard profiles in [`PROFILE_NAMES`] order.
pub fn parse_profiles(json: &str) -> Result<Vec<Profile>, String> {
    let map: BTreeMap<String, ProfileJson> =
        serde_json::from_str(json).map_err(|e| format!("profiles.json: {e}"))?;
    PROFILE_NAMES
        .iter()
        .map(|name| {
            map.get(*name)
                .map(|p| Profile {
                    name: (*name).to_string(),
                    cost: p.cost,
                })
                .ok_or_else(|| format!("profiles.json: no profile {name:?}"))
        })
        .collect()
}

/// NAB's scaled sigmoid: `2/(1+e^{5y}) - 1`, clamped to -1 beyond y = 3.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Rows at the start of a file whose detections are ignored: min(floor(0.15 n), 750).
pub fn probationary_length(rows: usize) -> usize {
    (rows * 15 / 100).min(750)
}

/// A file's labels as row indices: `windows` are inclusive `[first, last]` row ranges,
/// sorted and disjoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLabels {
    pub rows: usize,
    pub windows: Vec<(usize, usize)>,
}

impl FileLabels {
    /// Converts windows given as timestamps (as in `combined_windows.json`) to rows the way
    /// NAB does: a window opens at the first row whose timestamp equals its start and
    /// closes at the first later row whose timestamp equals its end. NAB's windows are
    /// built from the data's own timestamps; for other limits the nearest rows inside the
    /// limits are used. Timestamps need not be monotonic (some NAB files step back).
    /// Windows that hold no row are dropped (NAB would never enter them either).
    pub fn from_timestamps(timestamps: &[u64], windows: &[(u64, u64)]) -> FileLabels {
        let mut rows: Vec<(usize, usize)> = windows
            .iter()
            .filter_map(|&(a, b)| {
                let first = timestamps
                    .iter()
                    .position(|&t| t == a)
                    .or_else(|| timestamps.iter().position(|&t| t >= a && t <= b))?;
                let rest = timestamps.get(first..)?;
                let last = rest
                    .iter()
                    .position(|&t| t == b)
                    .or_else(|| rest.iter().rposition(|&t| t >= a && t <= b))?;
                Some((first, first + last))
            })
            .collect();
        rows.sort_unstable();
        FileLabels {
            rows: timestamps.len(),
            windows: rows,
        }
    }
}

/// What a detection at one row would be, independent of the profile's weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowRole {
    /// In the probationary period: never scored.
    Probation,
    /// Inside window `window`; `sigmoid` is the unweighted true-positive value in (0, 1].
    InWindow { window: usize, sigmoid: f64 },
    /// Outside every window; `sigmoid` is in [-1, 0): the unweighted false-positive value.
    Outside { sigmoid: f64 },
}

impl RowRole {
    /// This row's contribution if it is a detection, under `cost` (before "first in a
    /// window counts"): `A_TP * sigma(..)/sigma(-1)` or `A_FP * sigma(..)`.
    pub fn weighted(self, cost: &CostMatrix) -> f64 {
        match self {
            RowRole::Probation => 0.0,
            RowRole::InWindow { sigmoid, .. } => sigmoid * cost.tp_weight,
            RowRole::Outside { sigmoid } => sigmoid * cost.fp_weight,
        }
    }
}

/// The role of every row of a file (what NAB's `calcSweepScore` computes).
pub fn row_roles(labels: &FileLabels) -> Vec<RowRole> {
    let max_tp = scaled_sigmoid(-1.0);
    let probation = probationary_length(labels.rows);
    let mut roles = Vec::with_capacity(labels.rows);
    let mut next = 0usize; // index of the first window not yet finished
    // (last row, width) of the most recent finished window
    let mut prev: Option<(usize, usize)> = None;
    for i in 0..labels.rows {
        while let Some(&(_, b)) = labels.windows.get(next) {
            if b < i {
                let (a, b) = labels.windows[next];
                prev = Some((b, b - a + 1));
                next += 1;
            } else {
                break;
            }
        }
        let role = match labels.windows.get(next) {
            Some(&(a, b)) if a <= i => {
                let width = (b - a + 1) as f64;
                let pos = -((b - i + 1) as f64) / width;
                RowRole::InWindow {
                    window: next,
                    sigmoid: scaled_sigmoid(pos) / max_tp,
                }
            }
            _ => match prev {
                None => RowRole::Outside { sigmoid: -1.0 },
                // A one-row window has no width to scale by (NAB divides by zero there);
                // treat a detection after it as far away.
                Some((_, 1)) => RowRole::Outside { sigmoid: -1.0 },
                Some((r, w)) => RowRole::Outside {
                    sigmoid: scaled_sigmoid((i - r) as f64 / (w - 1) as f64),
                },
            },
        };
        roles.push(if i < probation {
            RowRole::Probation
        } else {
            role
        });
    }
    roles
}

/// Windows that can be scored: those with at least one row after the probationary
/// period (NAB only charges a miss for windows that appear among the scorable rows).
pub fn scorable_windows(roles: &[RowRole]) -> usize {
    let mut seen: Vec<usize> = roles
        .iter()
        .filter_map(|r| match r {
            RowRole::InWindow { window, .. } => Some(*window),
            _ => None,
        })
        .collect();
    seen.dedup();
    seen.len()
}

/// One file's score for a fixed set of detections.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FileScore {
    /// The raw (unnormalised) NAB score.
    pub raw: f64,
    /// Windows with at least one scored detection.
    pub tp: usize,
    /// Windows without.
    pub fn_: usize,
    /// Scored detections outside every window.
    pub fp: usize,
}

/// Scores one file: `detected(i)` says whether row `i` is a detection.
pub fn score_file(
    roles: &[RowRole],
    cost: &CostMatrix,
    detected: impl Fn(usize) -> bool,
) -> FileScore {
    let windows = roles
        .iter()
        .filter_map(|r| match r {
            RowRole::InWindow { window, .. } => Some(*window + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut best: Vec<Option<f64>> = vec![None; windows];
    let mut present = vec![false; windows];
    let mut s = FileScore::default();
    let mut fp_sum = 0.0;
    for (i, role) in roles.iter().enumerate() {
        if let RowRole::InWindow { window, .. } = role {
            present[*window] = true;
        }
        if !detected(i) {
            continue;
        }
        match role {
            RowRole::Probation => {}
            RowRole::InWindow { window, .. } => {
                // Only the first detection counts; the sigmoid falls along the window,
                // so the first is also the largest (NAB keeps the max).
                let v = role.weighted(cost);
                let b = &mut best[*window];
                *b = Some(b.map_or(v, |old: f64| old.max(v)));
            }
            RowRole::Outside { .. } => {
                s.fp += 1;
                fp_sum += role.weighted(cost);
            }
        }
    }
    let mut raw = fp_sum;
    for (b, p) in best.iter().zip(&present) {
        match (b, p) {
            (Some(v), _) => {
                s.tp += 1;
                raw += v;
            }
            (None, true) => {
                s.fn_ += 1;
                raw -= cost.fn_weight;
            }
            (None, false) => {}
        }
    }
    s.raw = raw;
    s
}

/// Raw scores of the null detector (no detections) and the perfect one (each window
/// detected at its first row) over files with `windows` scorable windows in total.
pub fn null_and_perfect(windows: usize, cost: &CostMatrix) -> (f64, f64) {
    let w = windows as f64;
    (-cost.fn_weight * w, cost.tp_weight * w)
}

/// NAB's normalisation: null detector 0, perfect 100.
pub fn normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    100.0 * (raw - null) / (perfect - null)
}

/// The best threshold found by [`sweep`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepResult {
    /// Detect rows with score >= this (`f64::INFINITY` when detecting nothing is best).
    pub threshold: f64,
    /// Raw score summed over the files at that threshold.
    pub raw: f64,
}

/// NAB's threshold optimisation over a corpus: tries every distinct score as the
/// threshold (plus "no detections") and returns the best total raw score.
///
/// Exact and O(N log N): sort all scorable rows once by descending score; lowering the
/// threshold past a score adds that row, which changes the total by its FP value or by
/// the rise of its window's best value, so the running total is updated in O(1).
/// `files` pairs each file's [`row_roles`] with its per-row anomaly scores (NaN = never).
pub fn sweep(files: &[(&[RowRole], &[f64])], cost: &CostMatrix) -> SweepResult {
    // (score, global window id or usize::MAX, weighted value)
    let mut pts: Vec<(f64, usize, f64)> = Vec::new();
    let mut window_base = 0usize;
    let mut total_windows = 0usize;
    for (roles, scores) in files {
        let mut max_w = 0usize;
        for (role, &score) in roles.iter().zip(scores.iter()) {
            match role {
                RowRole::Probation => {}
                RowRole::InWindow { window, .. } => {
                    max_w = max_w.max(window + 1);
                    if !score.is_nan() {
                        pts.push((score, window_base + window, role.weighted(cost)));
                    }
                }
                RowRole::Outside { .. } => {
                    if !score.is_nan() {
                        pts.push((score, usize::MAX, role.weighted(cost)));
                    }
                }
            }
        }
        total_windows += scorable_windows(roles);
        window_base += max_w;
    }
    pts.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Each window starts at its miss cost, as NAB's `scoreParts` does.
    let mut best_in: Vec<f64> = vec![-cost.fn_weight; window_base];
    let mut total = -cost.fn_weight * total_windows as f64;
    let mut best = SweepResult {
        threshold: f64::INFINITY,
        raw: total,
    };
    let mut i = 0;
    while i < pts.len() {
        let t = pts[i].0;
        // All rows with this exact score join together: the threshold is inclusive.
        while i < pts.len() && pts[i].0 == t {
            let (_, w, v) = pts[i];
            if w == usize::MAX {
                total += v;
            } else if let Some(b) = best_in.get_mut(w)
                && v > *b
            {
                total += v - *b;
                *b = v;
            }
            i += 1;
        }
        if total > best.raw {
            best = SweepResult {
                threshold: t,
                raw: total,
            };
        }
    }
    best
}

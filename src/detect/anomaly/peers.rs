//! Peer clustering: clients whose behaviour differs from every group of similar clients.
//!
//! Choices, and why:
//! - Features are `ln(1 + x)` of rates, sizes and counts: client activity spans orders of
//!   magnitude (a sensor at 1 msg/min, a gateway at 1000/s), and ratios, not
//!   differences, are what make two clients alike.
//! - Robust standardisation (median, MAD with a floor): the outlier we look for must not
//!   set the scale it is judged by, and a fleet of identical devices (MAD 0) must not make
//!   a 10 % difference look infinite. The floor (`scale_floor`, 0.5 in log units) makes
//!   a 2x difference 1.4 units and a 50x one 7.8.
//! - k-means (linfa) with k chosen by silhouette, rather than DBSCAN: DBSCAN's `eps`
//!   would be a density threshold in these units that differs per site, and its "noise"
//!   label marks every sparsely populated but legitimate corner (one historian, two
//!   dashboards) as an outlier. With k-means the decision is a distance to a centre
//!   relative to that cluster's own spread, which we control. k = 1 when no k >= 2 has a
//!   silhouette of at least `MIN_SILHOUETTE` (no real structure).
//! - A cluster is a peer group only with `min_peers` members; a client is an outlier
//!   when it is farther than `distance` x max(1, spread) from every peer group's centre
//!   (spread: the median member distance). So a lone client that forms its own cluster
//!   is still flagged, and one that k-means absorbed into a big cluster is too.
//! - Deterministic: fixed seed, k-means++ init, input sorted by the caller; fitted on a
//!   bounded sample, then every client is scored (a prediction is n x k x d).

use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, ArrayView1, Axis};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;

use super::config::PeerConfig;

/// Per-client features, in this order.
pub const FEATURES: [&str; 7] = [
    "msgs_in_per_min",
    "msgs_out_per_min",
    "bytes_per_msg_in",
    "bytes_per_msg_out",
    "connects",
    "subscriptions",
    "keep_alive_s",
];
pub const NF: usize = FEATURES.len();

/// Silhouette needed to prefer k >= 2 clusters over one.
const MIN_SILHOUETTE: f64 = 0.35;
/// A smaller k is preferred while its silhouette is within this of the best.
const SILHOUETTE_SLACK: f64 = 0.1;
/// Points used to compute a silhouette (it is quadratic).
const SILHOUETTE_SAMPLE: usize = 300;

/// One client found far from every peer group.
#[derive(Clone, Debug, PartialEq)]
pub struct Outlier {
    /// Index into the scored rows.
    pub index: usize,
    /// Scaled distance to the nearest peer group and the limit it crossed.
    pub distance: f64,
    pub limit: f64,
    /// The feature that differs most from that group, its value and the group's
    /// typical value (both in the feature's own units).
    pub feature: &'static str,
    pub value: f64,
    pub typical: f64,
}

/// Result of one clustering run.
#[derive(Clone, Debug, Default)]
pub struct PeerRun {
    pub k: usize,
    pub peer_groups: usize,
    /// Per scored row: whether it is an outlier (outliers also listed with details).
    pub is_outlier: Vec<bool>,
    pub outliers: Vec<Outlier>,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn dist(a: ArrayView1<'_, f64>, b: ArrayView1<'_, f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Mean silhouette of `labels` over (at most `SILHOUETTE_SAMPLE`) evenly spaced points.
fn silhouette(x: &Array2<f64>, labels: &[usize], k: usize) -> f64 {
    let n = x.nrows();
    let step = n.div_ceil(SILHOUETTE_SAMPLE).max(1);
    let idx: Vec<usize> = (0..n).step_by(step).collect();
    let mut total = 0.0;
    let mut counted = 0usize;
    let mut sums = vec![0.0; k];
    let mut counts = vec![0usize; k];
    for &i in &idx {
        sums.iter_mut().for_each(|s| *s = 0.0);
        counts.iter_mut().for_each(|c| *c = 0);
        for &j in &idx {
            if i == j {
                continue;
            }
            let Some(&lj) = labels.get(j) else { continue };
            if let (Some(s), Some(c)) = (sums.get_mut(lj), counts.get_mut(lj)) {
                *s += dist(x.row(i), x.row(j));
                *c += 1;
            }
        }
        let Some(&li) = labels.get(i) else { continue };
        let own = counts.get(li).copied().unwrap_or(0);
        if own == 0 {
            // A singleton's silhouette is 0 by convention.
            counted += 1;
            continue;
        }
        let a = sums.get(li).copied().unwrap_or(0.0) / own as f64;
        let b = sums
            .iter()
            .zip(&counts)
            .enumerate()
            .filter(|&(c, (_, &n))| c != li && n > 0)
            .map(|(_, (s, &n))| s / n as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            let m = a.max(b);
            total += if m > 0.0 { (b - a) / m } else { 0.0 };
        }
        counted += 1;
    }
    if counted == 0 {
        0.0
    } else {
        total / counted as f64
    }
}

/// k, silhouette, centroids, labels.
type Fitted = (usize, f64, Array2<f64>, Vec<usize>);

/// Fits k-means; `None` if linfa refuses (e.g. fewer distinct points than k).
fn kmeans(x: &Array2<f64>, k: usize, seed: u64) -> Option<(Array2<f64>, Vec<usize>)> {
    let ds = DatasetBase::from(x.clone());
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .init_method(KMeansInit::KMeansPlusPlus)
        .n_runs(3)
        .max_n_iterations(100)
        .tolerance(1e-4)
        .fit(&ds)
        .ok()?;
    let labels = model.predict(x);
    Some((model.centroids().clone(), labels.to_vec()))
}

/// Clusters the rows of `fit` (raw features, see [`FEATURES`]) and scores every row of
/// `score` against the peer groups found. Rows must be in a deterministic order.
pub fn run(fit: &[[f64; NF]], score: &[[f64; NF]], cfg: &PeerConfig) -> PeerRun {
    let mut out = PeerRun {
        is_outlier: vec![false; score.len()],
        ..PeerRun::default()
    };
    let n = fit.len();
    if n < cfg.min_clients.max(2) {
        return out;
    }
    // Counters give finite values; anything else would poison the whole fit.
    let logf = |r: &[f64; NF]| {
        r.map(|v| {
            if v.is_finite() {
                v.max(0.0).ln_1p()
            } else {
                0.0
            }
        })
    };
    let lf: Vec<[f64; NF]> = fit.iter().map(logf).collect();
    // Robust centre and scale per feature.
    let mut center = [0.0; NF];
    let mut scale = [0.0; NF];
    let mut col = Vec::with_capacity(n);
    for j in 0..NF {
        col.clear();
        col.extend(lf.iter().map(|r| r[j]));
        let m = median(&mut col);
        let mut dev: Vec<f64> = col.iter().map(|v| (v - m).abs()).collect();
        let mad = median(&mut dev);
        center[j] = m;
        scale[j] = (1.4826 * mad).max(cfg.scale_floor);
    }
    let z = |r: &[f64; NF]| -> [f64; NF] {
        let l = logf(r);
        std::array::from_fn(|j| (l[j] - center[j]) / scale[j])
    };
    let mut x = Array2::<f64>::zeros((n, NF));
    for (i, r) in fit.iter().enumerate() {
        for (j, v) in z(r).into_iter().enumerate() {
            x[[i, j]] = v;
        }
    }
    // k by silhouette; k = 1 is the coordinate-wise mean.
    let max_k = cfg.max_k.min(n / cfg.min_peers.max(1)).max(1);
    let mut best: Fitted = {
        let c = x
            .mean_axis(Axis(0))
            .unwrap_or_else(|| ndarray::Array1::zeros(NF));
        (1, MIN_SILHOUETTE, c.insert_axis(Axis(0)), vec![0; n])
    };
    let mut fits = Vec::new();
    for k in 2..=max_k {
        // A third-party numeric routine on the processing thread: should it ever panic
        // on some degenerate input, lose this k, not the sidecar.
        let fitted = std::panic::catch_unwind(|| kmeans(&x, k, cfg.seed));
        let Ok(Some((c, labels))) = fitted else {
            continue;
        };
        let s = silhouette(&x, &labels, k);
        fits.push((k, s, c, labels));
    }
    // Parsimony: the smallest k within `SILHOUETTE_SLACK` of the best silhouette. Counts
    // are discrete, so identical clients split into ever finer "perfect" clusters; the
    // extra clusters describe nothing new.
    let top = fits.iter().map(|f| f.1).fold(f64::NEG_INFINITY, f64::max);
    if let Some(f) = fits
        .into_iter()
        .find(|f| f.1 >= MIN_SILHOUETTE && f.1 >= top - SILHOUETTE_SLACK)
    {
        best = f;
    }
    let (k, _, centroids, labels) = best;
    out.k = k;
    // Peer groups: clusters with enough members, with their spread.
    let mut groups: Vec<(usize, f64)> = Vec::new();
    for c in 0..centroids.nrows() {
        let mut d: Vec<f64> = labels
            .iter()
            .enumerate()
            .filter(|&(_, &l)| l == c)
            .map(|(i, _)| dist(x.row(i), centroids.row(c)))
            .collect();
        if d.len() >= cfg.min_peers {
            groups.push((c, median(&mut d)));
        }
    }
    out.peer_groups = groups.len();
    if groups.is_empty() {
        return out;
    }
    for (i, r) in score.iter().enumerate() {
        let zr = ndarray::Array1::from(z(r).to_vec());
        // Nearest peer group relative to its spread.
        let mut nearest: Option<(f64, f64, usize)> = None;
        for &(c, spread) in &groups {
            let lim = cfg.distance * spread.max(1.0);
            let d = dist(zr.view(), centroids.row(c));
            if nearest.is_none_or(|(nd, nl, _)| d / lim < nd / nl) {
                nearest = Some((d, lim, c));
            }
        }
        let Some((d, lim, c)) = nearest else { continue };
        if d <= lim {
            continue;
        }
        if let Some(o) = out.is_outlier.get_mut(i) {
            *o = true;
        }
        // The feature farthest from the group's centre, back in its own units.
        let cen = centroids.row(c);
        let (j, _) = (0..NF)
            .map(|j| (j, (zr[j] - cen[j]).abs()))
            .fold((0, -1.0), |a, b| if b.1 > a.1 { b } else { a });
        let typical = (cen[j] * scale[j] + center[j]).exp_m1().max(0.0);
        out.outliers.push(Outlier {
            index: i,
            distance: d,
            limit: lim,
            feature: FEATURES[j],
            value: r[j],
            typical,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PeerConfig {
        PeerConfig::default()
    }

    #[test]
    fn one_client_at_fifty_times_its_peers_is_the_only_outlier() {
        // 30 devices at 60 msgs/min (+-5 %), 100-byte messages, keepalive 30; one at 3000.
        let mut rows: Vec<[f64; NF]> = (0..30)
            .map(|i| [57.0 + f64::from(i % 7), 0.0, 100.0, 0.0, 0.0, 0.0, 30.0])
            .collect();
        rows.push([3000.0, 0.0, 100.0, 0.0, 0.0, 0.0, 30.0]);
        let r = run(&rows, &rows, &cfg());
        let flagged: Vec<usize> = r.outliers.iter().map(|o| o.index).collect();
        assert_eq!(flagged, vec![30]);
        let o = &r.outliers[0];
        assert_eq!(o.feature, "msgs_in_per_min");
        assert_eq!(o.value, 3000.0);
        // ln(3001) - ln(61) = 3.90 log units; scale floor 0.5 -> about 7.8 units > 5.
        assert!(o.distance > 7.0 && o.distance < 8.5, "{}", o.distance);
        assert!((o.typical - 60.0).abs() < 5.0, "{}", o.typical);
    }

    #[test]
    fn two_populations_are_two_peer_groups_and_nobody_is_flagged() {
        // 20 sensors (publish only) and 10 dashboards (subscribe, receive a lot).
        let mut rows: Vec<[f64; NF]> = (0..20)
            .map(|i| [6.0 + f64::from(i % 3), 0.0, 80.0, 0.0, 0.0, 0.0, 60.0])
            .collect();
        rows.extend((0..10).map(|i| [0.0, 600.0 + f64::from(i * 10), 0.0, 90.0, 0.0, 3.0, 30.0]));
        let r = run(&rows, &rows, &cfg());
        assert_eq!(r.k, 2);
        assert_eq!(r.peer_groups, 2);
        assert!(r.outliers.is_empty(), "{:?}", r.outliers);
    }

    #[test]
    fn identical_clients_are_one_group_without_outliers() {
        // Degenerate input for k-means++ (every distance 0): no panic, k = 1.
        let rows = vec![[60.0, 0.0, 100.0, 0.0, 1.0, 0.0, 30.0]; 40];
        let r = run(&rows, &rows, &cfg());
        assert_eq!(r.k, 1);
        assert_eq!(r.peer_groups, 1);
        assert!(r.outliers.is_empty());
        // Two distinct values only: k above 2 cannot be fitted meaningfully.
        let mut rows2 = rows.clone();
        rows2.extend(vec![[0.0, 600.0, 0.0, 90.0, 1.0, 3.0, 30.0]; 10]);
        let r = run(&rows2, &rows2, &cfg());
        assert_eq!((r.k, r.peer_groups), (2, 2));
        assert!(r.outliers.is_empty());
    }

    #[test]
    fn too_few_clients_is_no_run() {
        let rows = vec![[1.0; NF]; 5];
        let r = run(&rows, &rows, &cfg());
        assert_eq!(r.k, 0);
        assert!(r.outliers.is_empty());
    }
}

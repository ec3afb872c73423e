//! A daily profile: the usual offset of a series from its level at each time of day.
//!
//! The day is cut into `B` buckets; each bucket holds a time-weighted mean of
//! `value - level`, forgetting with a half-life in *days* rather than in samples, so the
//! profile means the same at a 10 s and at a 1 h cadence (the old per-visit EWMA with a
//! half-life of 20 visits remembered 3 days at a 5 min cadence but 10 minutes at 10 s).
//!
//! Offsets are read with the profile's mean removed. Level and profile are learned from
//! each other, so a constant can move freely between them; bucket 0 is learned at the
//! start of a day and bucket `B-1` at its end, so such a drift showed up as a step between
//! the two, and a clean daily sine raised false alerts at 00:00 every few days. With the
//! mean removed the level carries the constant alone.
//!
//! (Reading the profile by linear interpolation between bucket centres was tried as well:
//! it smears the sharp daily edges of the NAB artificial series over two buckets and cost
//! 14 points there, while the centring alone removed the midnight alerts.)

use serde::{Deserialize, Serialize};

pub const NS_PER_DAY: u64 = 86_400_000_000_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyProfile {
    /// Per bucket: time-weighted mean.
    mean: Vec<f64>,
    /// Per bucket: sum of the weights behind `mean`, decayed to `at`.
    weight: Vec<f64>,
    /// Per bucket: time of the last update (ns).
    at: Vec<u64>,
}

impl DailyProfile {
    pub fn new(buckets: u16) -> DailyProfile {
        let b = usize::from(buckets);
        DailyProfile {
            mean: vec![0.0; b],
            weight: vec![0.0; b],
            at: vec![0; b],
        }
    }

    pub fn buckets(&self) -> usize {
        self.mean.len()
    }

    /// Heap bytes held (the vectors are sized once, at construction).
    pub fn heap_bytes(&self) -> usize {
        self.mean.capacity() * 8 + self.weight.capacity() * 8 + self.at.capacity() * 8
    }

    /// The bucket holding a time of day (UTC); `None` without buckets.
    pub fn position(&self, ts_ns: u64) -> Option<usize> {
        let b = self.mean.len();
        if b == 0 {
            return None;
        }
        let tod = u128::from(ts_ns % NS_PER_DAY);
        Some(((tod * b as u128) / u128::from(NS_PER_DAY)) as usize)
    }

    /// Mean of the learned buckets (buckets never visited do not count).
    pub fn centre(&self) -> f64 {
        let (mut s, mut c) = (0.0, 0usize);
        for (m, w) in self.mean.iter().zip(&self.weight) {
            if *w > 0.0 {
                s += m;
                c += 1;
            }
        }
        if c == 0 { 0.0 } else { s / c as f64 }
    }

    /// The bucket's mean; `None` before its first visit.
    pub fn value(&self, k: usize) -> Option<f64> {
        match (self.mean.get(k), self.weight.get(k)) {
            (Some(&m), Some(&w)) if w > 0.0 => Some(m),
            _ => None,
        }
    }

    /// The bucket's offset with the profile's mean removed (0 before its first visit).
    pub fn offset(&self, k: usize) -> f64 {
        self.value(k).map_or(0.0, |v| v - self.centre())
    }

    /// Moves bucket `k` toward `target`, forgetting with half-life `halflife_ns`: each
    /// earlier observation's weight halves every half-life of elapsed time, so the
    /// first visits give a plain mean.
    pub fn learn(&mut self, k: usize, target: f64, ts_ns: u64, halflife_ns: f64) {
        let (Some(m), Some(wt), Some(at)) = (
            self.mean.get_mut(k),
            self.weight.get_mut(k),
            self.at.get_mut(k),
        ) else {
            return;
        };
        let age = ts_ns.saturating_sub(*at) as f64;
        let decay = if *wt > 0.0 && halflife_ns > 0.0 {
            0.5f64.powf(age / halflife_ns)
        } else {
            1.0
        };
        let total = *wt * decay + 1.0;
        *m += (target - *m) / total;
        *wt = total;
        *at = (*at).max(ts_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000_000_000;

    #[test]
    fn buckets_of_the_day() {
        let p = DailyProfile::new(48);
        assert_eq!(p.position(0), Some(0));
        assert_eq!(p.position(H / 2 - 1), Some(0));
        assert_eq!(p.position(H / 2), Some(1));
        assert_eq!(p.position(24 * H - 1), Some(47));
        assert_eq!(p.position(24 * H), Some(0));
        assert!(DailyProfile::new(0).position(0).is_none());
    }

    /// Hand computation: two visits a day apart with a one-day half-life; the first
    /// value's weight has halved to 1/2, the new one has weight 1, so the mean is
    /// (0.5 * 10 + 1 * 40) / 1.5 = 30 and the weight 1.5.
    #[test]
    fn weighted_mean_forgets_by_time() {
        let mut p = DailyProfile::new(2);
        let day = 24.0 * H as f64;
        p.learn(0, 10.0, 0, day);
        p.learn(0, 40.0, 24 * H, day);
        assert!((p.mean[0] - 30.0).abs() < 1e-12, "{}", p.mean[0]);
        assert!((p.weight[0] - 1.5).abs() < 1e-12);
        // Half a day later a third visit: weight 1.5 * 2^-0.5 = 1.0606601717798212,
        // total 2.0606601717798212, mean 30 + (0 - 30) / 2.0606601717798212
        // = 15.441558772842555 (python3).
        p.learn(0, 0.0, 36 * H, day);
        assert!(
            (p.mean[0] - 15.441558772842555).abs() < 1e-12,
            "{}",
            p.mean[0]
        );
    }

    #[test]
    fn offsets_are_read_around_the_profile_mean() {
        let mut p = DailyProfile::new(4);
        // Only bucket 0 visited: its offset from the profile mean is 0.
        p.learn(0, 30.0, 0, 1e18);
        assert_eq!(p.offset(0), 0.0);
        // Never-visited buckets count neither in the mean nor as an offset.
        assert_eq!(p.offset(2), 0.0);
        assert_eq!(p.value(2), None);
        p.learn(1, 0.0, 7 * H, 1e18);
        assert!((p.offset(0) - 15.0).abs() < 1e-12);
        assert!((p.offset(1) + 15.0).abs() < 1e-12);
        // Out-of-range buckets are ignored, not a panic.
        p.learn(9, 1.0, 0, 1e18);
        assert_eq!(p.value(9), None);
    }
}

//! Mergeable quantile sketch for non-negative values (payload bytes, latencies in
//! seconds) with a relative-error guarantee, in the spirit of DDSketch: values fall into
//! logarithmically spaced buckets, so any quantile is answered within 1 % of the true
//! value of that rank, whatever the distribution.
//!
//! Bucket index. A true logarithm costs a libm call per record; instead the index is
//! built from the float's bits: `L(x) = e + g(s)` where `x = (1 + s) * 2^e` and
//! `g(s) = C*s + B*s^2` (C = 4/3, B = -1/3) is a monotone quadratic stand-in for
//! `log2(1 + s)` with `g(0) = 0`, `g(1) = 1`, so `L` is continuous and increasing. A
//! bucket is one step of `1/K` in `L`. Its width in `ln x` is `(1/K) / (dL/dln x)`, and
//! `dL/dln x = (C + 2*B*s) * (1 + s)` is at least 4/3 on `[0, 1)` (both ends; the middle
//! is larger), so every bucket spans at most `ln r = 3 / (4K)`. With K = 39 that is
//! r = 1.01942; answering the bucket's "harmonic middle" `2*lo*hi/(lo+hi)` is then within
//! `(r-1)/(r+1) = 0.962 %` of any value in it. The test `every_value_maps_within_one_percent`
//! checks this over the whole range.
//!
//! Memory. Counts live in one dense `Vec<u32>` covering the occupied index range only
//! (a sketch of values within a factor 2 holds ~39 counters). The range is capped at
//! `max_bins`; when a new value would widen it beyond the cap, the lowest buckets are
//! collapsed into one (DDSketch's policy), so high quantiles stay exact-to-1 % and only
//! quantiles inside the collapsed low tail lose precision (`collapsed()` says if that
//! happened). The default cap, 1536 buckets (6 KB), spans a factor 2^39 ≈ 6e11, i.e.
//! latencies from 1e-7 s to 1e4 s without any collapse.
//!
//! A bucket counter about to overflow `u32` halves every bucket instead (the shape of the
//! distribution is kept; `count()` stays exact because it is kept separately).

use serde::Serialize;

/// Buckets per power of two (see the module doc for why 39 gives < 1 %).
const K: f64 = 39.0;
const C: f64 = 4.0 / 3.0;
const B: f64 = -1.0 / 3.0;
/// Values below this are counted in the zero bucket: far below anything measured here
/// (1e-7 s is the smallest latency of interest) and clear of subnormal floats.
const MIN_INDEXED: f64 = 1e-12;
/// Default cap on buckets per sketch.
pub const DEFAULT_MAX_BINS: usize = 1536;
/// Extra buckets allocated beyond a new value when the range grows, so that a drifting
/// distribution does not reallocate on every new bucket: at least this many, and half
/// the current range (geometric growth: a range reached by small steps costs a
/// logarithmic number of reallocations). Capacity is reserved exactly, so memory is the
/// range plus this slack, never more than `max_bins`.
const GROW_SLACK: usize = 8;
/// Buckets allocated with the first value (its own and a few around it).
const FIRST_BINS: usize = 8;

fn slack(len: usize) -> i64 {
    GROW_SLACK.max(len / 2) as i64
}

/// Field order is fixed (`repr(C)`): what `record` touches comes first, so a sketch
/// embedded in a larger struct costs as few cache lines as possible per value.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Sketch {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// `bins[i]` counts values whose index is `offset + i`.
    bins: Vec<u32>,
    offset: i32,
    max_bins: u32,
    zero: u64,
    /// Negative inputs (recorded as 0) and non-finite inputs (ignored).
    negatives: u32,
    rejected: u32,
    /// Lowest buckets were merged together to respect `max_bins`.
    collapsed: bool,
    /// Buckets were halved once (a counter was full): they no longer add up to `count`.
    halved: bool,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::new()
    }
}

/// `L(x) * K`, floored: the bucket index of a positive, normal `x`.
#[inline]
fn index_of(x: f64) -> i32 {
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let s = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000) - 1.0;
    let x = (e as f64 + s * (C + B * s)) * K;
    // Floor without `f64::floor`, which is a libm call on baseline x86-64.
    let t = x as i32;
    if f64::from(t) > x { t - 1 } else { t }
}

/// Inverse of `L`: the `x` with `L(x) = t`.
fn value_at(t: f64) -> f64 {
    // `floor` and `exp2` without libm calls (reports evaluate this for every bucket
    // they cross); both exact, so results equal `t.floor()` and `e.exp2()`.
    let e = {
        let i = t as i64;
        let f = i as f64;
        if f > t { f - 1.0 } else { f }
    };
    let f = t - e;
    // Solve B*s^2 + C*s - f = 0 for the root in [0, 1].
    let disc = (C * C + 4.0 * B * f).max(0.0);
    let s = (-C + disc.sqrt()) / (2.0 * B);
    let k = e as i64;
    let p = if (-1022..=1023).contains(&k) {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        e.exp2()
    };
    (1.0 + s) * p
}

/// The value reported for bucket `i`: within r of both ends, so within 1 % of any member.
fn representative(i: i32) -> f64 {
    let lo = value_at(i as f64 / K);
    let hi = value_at((i as f64 + 1.0) / K);
    2.0 * lo * hi / (lo + hi)
}

impl Sketch {
    pub fn new() -> Sketch {
        Sketch::with_max_bins(DEFAULT_MAX_BINS)
    }

    /// A sketch holding at most `max_bins` buckets (at least 2): `4 * max_bins` bytes
    /// worst case. 39 buckets cover one factor of two.
    pub fn with_max_bins(max_bins: usize) -> Sketch {
        Sketch {
            bins: Vec::new(),
            offset: 0,
            max_bins: max_bins.clamp(2, 1 << 20) as u32,
            collapsed: false,
            halved: false,
            zero: 0,
            count: 0,
            negatives: 0,
            rejected: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Records `v` once (see `record_n`). The common case (a finite value in the
    /// occupied range, bucket counter not full) is inline and branch-light.
    #[inline]
    pub fn record(&mut self, v: f64) {
        if (MIN_INDEXED..=f64::MAX).contains(&v) {
            let idx = index_of(v);
            let rel = i64::from(idx) - i64::from(self.offset);
            if let Some(c) = usize::try_from(rel).ok().and_then(|r| self.bins.get_mut(r))
                && *c < u32::MAX
            {
                *c += 1;
                self.count = self.count.saturating_add(1);
                self.sum += v;
                self.min = self.min.min(v);
                self.max = self.max.max(v);
                return;
            }
        }
        self.record_n(v, 1);
    }

    /// Address of the bucket counter `record(v)` would update, if it exists now (for
    /// prefetching; reads only the sketch's own fields).
    #[inline]
    pub fn bin_addr(&self, v: f64) -> Option<*const u8> {
        if !(MIN_INDEXED..=f64::MAX).contains(&v) {
            return None;
        }
        let rel = i64::from(index_of(v)) - i64::from(self.offset);
        let c = self.bins.get(usize::try_from(rel).ok()?)?;
        Some((c as *const u32).cast())
    }

    /// Records `v` `n` times. Negative values count as 0 (and in `negatives()`);
    /// NaN and infinities are ignored (counted in `rejected()`).
    pub fn record_n(&mut self, v: f64, n: u64) {
        if n == 0 {
            return;
        }
        if !v.is_finite() {
            self.rejected = self.rejected.saturating_add(1);
            return;
        }
        let v = if v < 0.0 {
            self.negatives = self.negatives.saturating_add(1);
            0.0
        } else {
            v
        };
        self.count = self.count.saturating_add(n);
        self.sum += v * n as f64;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if v < MIN_INDEXED {
            self.zero = self.zero.saturating_add(n);
        } else {
            self.add_to_bin(index_of(v), n);
        }
    }

    #[inline]
    fn add_to_bin(&mut self, idx: i32, n: u64) {
        let slot = self.slot_for(idx);
        let mut n = n;
        loop {
            let Some(c) = self.bins.get_mut(slot) else {
                return;
            };
            let room = u64::from(u32::MAX - *c);
            if n <= room {
                *c += n as u32;
                return;
            }
            *c = u32::MAX;
            n -= room;
            self.halve();
        }
    }

    /// Divides every bucket by two (rounding up so no occupied bucket empties).
    fn halve(&mut self) {
        self.halved = true;
        for c in &mut self.bins {
            *c = c.div_ceil(2);
        }
    }

    /// Position in `bins` for index `idx`, growing (or collapsing) the range as needed.
    #[inline]
    fn slot_for(&mut self, idx: i32) -> usize {
        let len = self.bins.len() as i64;
        let rel = i64::from(idx) - i64::from(self.offset);
        if len > 0 && rel >= 0 && rel < len {
            return rel as usize;
        }
        self.grow_to(idx)
    }

    #[cold]
    fn grow_to(&mut self, idx: i32) -> usize {
        let max = i64::from(self.max_bins);
        let idx64 = i64::from(idx);
        if self.bins.is_empty() {
            // First value: a few buckets around it (values alike are the common case;
            // small neighbours save the first regrowths).
            let below = (FIRST_BINS as i64 / 2 - 1).min(max - 1).max(0);
            let n = (FIRST_BINS as i64).min(max);
            self.reshape(idx64 - below, idx64 - below + n - 1);
            return below as usize;
        }
        let lo = i64::from(self.offset);
        let len = self.bins.len();
        let hi = lo + len as i64 - 1;
        let slack = slack(len);
        // Common case: the range plus slack stays within the cap; grow in place.
        if idx64 < lo && hi - (idx64 - slack) < max {
            let extra = (lo - (idx64 - slack)) as usize;
            self.bins.reserve_exact(extra);
            self.bins.resize(len + extra, 0);
            self.bins.copy_within(0..len, extra);
            if let Some(head) = self.bins.get_mut(..extra) {
                head.fill(0);
            }
            self.offset = (idx64 - slack) as i32;
            return slack as usize;
        }
        if idx64 > hi && idx64 + slack - lo < max {
            let new_len = (idx64 + slack - lo + 1) as usize;
            self.bins.reserve_exact(new_len - len);
            self.bins.resize(new_len, 0);
            return (idx64 - lo) as usize;
        }
        // The occupied part: slack buckets are empty and may be given up to stay
        // within `max_bins`, occupied ones only by collapsing.
        let first = self
            .bins
            .iter()
            .position(|&c| c > 0)
            .map_or(idx64, |p| lo + p as i64);
        let last = self
            .bins
            .iter()
            .rposition(|&c| c > 0)
            .map_or(idx64, |p| lo + p as i64);
        let (new_lo, new_hi) = if idx64 < lo {
            // Keep `last`; a value below what then fits is counted in the lowest bucket.
            let new_lo = (idx64 - slack).max(last - max + 1);
            (new_lo, hi.min(new_lo + max - 1))
        } else if idx64 - first + 1 > max {
            // Cap reached: collapse the lowest buckets so that `idx` becomes the top.
            (idx64 - max + 1, idx64)
        } else {
            let new_hi = (idx64 + slack).min(first + max - 1);
            (lo.max(new_hi - max + 1), new_hi)
        };
        self.reshape(new_lo, new_hi);
        if idx64 < new_lo {
            // Below the capped range: belongs to the (collapsed) lowest bucket.
            self.collapsed = true;
            return 0;
        }
        (idx64 - new_lo) as usize
    }

    /// Makes `new_lo ..= new_hi` the bucket range (capacity exactly its length): counts
    /// below `new_lo` are folded into it (marking the sketch collapsed), counts above
    /// `new_hi` into the top bucket (callers keep the occupied top in range).
    fn reshape(&mut self, new_lo: i64, new_hi: i64) {
        let n = usize::try_from(new_hi - new_lo + 1).unwrap_or(1).max(1);
        let mut bins: Vec<u32> = vec![0; n];
        let lo = i64::from(self.offset);
        let mut below = 0u64;
        let mut above = 0u64;
        for (i, &c) in self.bins.iter().enumerate() {
            let b = lo + i as i64;
            if b < new_lo {
                below += u64::from(c);
            } else if b > new_hi {
                above += u64::from(c);
            } else if let Some(d) = bins.get_mut((b - new_lo) as usize) {
                *d = c;
            }
        }
        self.bins = bins;
        self.offset = new_lo as i32;
        if below > 0 {
            self.collapsed = true;
            self.add_to_bin(new_lo as i32, below);
        }
        if above > 0 {
            self.collapsed = true;
            self.add_to_bin(new_hi as i32, above);
        }
    }

    /// Adds everything `other` recorded. Equivalent to recording all of `other`'s values
    /// here (exactly, while neither side had to collapse).
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 && other.negatives == 0 && other.rejected == 0 {
            return;
        }
        self.count = self.count.saturating_add(other.count);
        self.zero = self.zero.saturating_add(other.zero);
        self.negatives = self.negatives.saturating_add(other.negatives);
        self.rejected = self.rejected.saturating_add(other.rejected);
        self.collapsed |= other.collapsed;
        self.halved |= other.halved;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        // Highest first: it fixes the top of the range once, so any collapsing happens
        // in one place instead of repeatedly.
        for (i, &c) in other.bins.iter().enumerate().rev() {
            if c > 0 {
                self.add_to_bin(other.offset + i as i32, u64::from(c));
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Values the buckets hold: `count` until a halving (then their sum).
    fn held(&self) -> u64 {
        if !self.halved && self.count < u64::MAX {
            self.count
        } else {
            self.zero + self.bins.iter().map(|&c| u64::from(c)).sum::<u64>()
        }
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Negative inputs seen (each recorded as 0).
    pub fn negatives(&self) -> u32 {
        self.negatives
    }

    /// NaN or infinite inputs seen (not recorded).
    pub fn rejected(&self) -> u32 {
        self.rejected
    }

    /// The low tail was merged to keep within `max_bins`; low quantiles are coarse.
    pub fn collapsed(&self) -> bool {
        self.collapsed
    }

    /// The value at quantile `q` (0 = min, 1 = max), i.e. the element of rank
    /// `floor(q * (count - 1))` in sorted order, within 1 % relative. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || q.is_nan() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        // Ranks are taken against what the buckets hold (it differs from `count` only
        // after a halving).
        let held = self.held();
        if held == 0 {
            return None;
        }
        let rank = (q * (held - 1) as f64).floor() as u64;
        if rank < self.zero {
            return Some(0.0f64.clamp(self.min, self.max));
        }
        let mut seen = self.zero;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += u64::from(c);
            if seen > rank {
                let v = representative(self.offset + i as i32);
                return Some(v.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Cumulative counts for ascending upper `bounds`: `out[i]` ≈ number of values
    /// `<= bounds[i]` (Prometheus `le` buckets). A bound inside a bucket counts that whole
    /// bucket, so a value up to one bucket (< 2 %) above the bound may be counted in it;
    /// bounds below `min` give 0 and bounds at or above `max` give `count()` exactly.
    /// After a halving (bucket overflow) the shape is scaled back to `count()`. One pass.
    pub fn cumulative_counts(&self, bounds: &[f64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds.len());
        let held = self.held();
        if self.count == 0 || held == 0 {
            out.resize(bounds.len(), 0);
            return out;
        }
        let scale = |n: u64| -> u64 {
            if held == self.count {
                n
            } else {
                ((n as f64) * (self.count as f64) / (held as f64)).round() as u64
            }
        };
        let (mut i, mut seen) = (0usize, self.zero);
        for &b in bounds {
            let n = if b.is_nan() || b < self.min {
                0
            } else if b >= self.max {
                self.count
            } else if b < MIN_INDEXED {
                scale(self.zero)
            } else {
                let last = i64::from(index_of(b)) - i64::from(self.offset);
                while (i as i64) <= last {
                    let Some(&c) = self.bins.get(i) else { break };
                    seen += u64::from(c);
                    i += 1;
                }
                scale(seen).min(self.count)
            };
            out.push(n);
        }
        // Monotone even if `bounds` were not sorted (keeps the exposition valid).
        for k in 1..out.len() {
            if out[k] < out[k - 1] {
                out[k] = out[k - 1];
            }
        }
        out
    }

    /// `quantile` of each of `qs` (ascending), in one pass over the buckets: reports ask
    /// for p50/p90/p99 of thousands of sketches at once.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [Option<f64>; N] {
        let mut out = [None; N];
        if self.count == 0 || !qs.is_sorted_by(|a, b| a <= b) {
            for (o, &q) in out.iter_mut().zip(qs.iter()) {
                *o = self.quantile(q);
            }
            return out;
        }
        let held = self.held();
        if held == 0 {
            return out;
        }
        let ranks = qs.map(|q| (q.clamp(0.0, 1.0) * (held - 1) as f64).floor() as u64);
        let mut k = 0;
        while let Some(&r) = ranks.get(k) {
            if r >= self.zero {
                break;
            }
            if let Some(o) = out.get_mut(k) {
                *o = Some(0.0f64.clamp(self.min, self.max));
            }
            k += 1;
        }
        let mut seen = self.zero;
        let mut next = ranks.get(k).copied().unwrap_or(u64::MAX);
        for (i, &c) in self.bins.iter().enumerate() {
            seen += u64::from(c);
            if seen <= next {
                continue;
            }
            let v = representative(self.offset + i as i32).clamp(self.min, self.max);
            while let Some(&r) = ranks.get(k) {
                if seen <= r {
                    break;
                }
                if let Some(o) = out.get_mut(k) {
                    *o = Some(v);
                }
                k += 1;
            }
            if k >= N {
                return out;
            }
            next = ranks.get(k).copied().unwrap_or(u64::MAX);
        }
        for o in out.iter_mut().skip(k) {
            *o = Some(self.max);
        }
        out
    }

    pub fn clear(&mut self) {
        self.bins.clear();
        self.offset = 0;
        self.collapsed = false;
        self.halved = false;
        self.zero = 0;
        self.count = 0;
        self.negatives = 0;
        self.rejected = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
    }

    /// Bytes used: the struct plus the bucket array's capacity.
    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.bins.capacity() * std::mem::size_of::<u32>()
    }

    /// p50/p90/p99/max summary for reports.
    pub fn summary(&self) -> QuantileSummary {
        let [p50, p90, p99] = self.quantiles([0.5, 0.9, 0.99]);
        QuantileSummary {
            count: self.count,
            p50,
            p90,
            p99,
            max: self.max(),
        }
    }
}

/// Owned summary of a sketch for reports and exporters.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QuantileSummary {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small deterministic generator (xorshift64*), so tests need no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in (0, 1].
        fn unit(&mut self) -> f64 {
            ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
        }
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn rel_err(got: f64, want: f64) -> f64 {
        if want == 0.0 {
            got.abs()
        } else {
            (got - want).abs() / want
        }
    }

    const QS: [f64; 11] = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0];

    fn check_against_exact(values: &[f64], what: &str) {
        let mut s = Sketch::new();
        for &v in values {
            s.record(v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(s.count(), values.len() as u64);
        for q in QS {
            let want = exact_quantile(&sorted, q);
            let got = s.quantile(q).unwrap();
            assert!(
                rel_err(got, want) <= 0.01,
                "{what}: q={q} got {got} want {want} err {}",
                rel_err(got, want)
            );
        }
        assert_eq!(s.min(), Some(sorted[0]));
        assert_eq!(s.max(), Some(sorted[sorted.len() - 1]));
        let sum: f64 = values.iter().sum();
        assert!(rel_err(s.sum(), sum) < 1e-9);
    }

    #[test]
    fn one_pass_quantiles_equal_single_quantiles() {
        let mut r = Rng(77);
        let qs = [0.0, 0.01, 0.5, 0.9, 0.99, 1.0];
        for n in [0usize, 1, 2, 7, 1000] {
            let mut s = Sketch::with_max_bins(64);
            for i in 0..n {
                // A third zeros, the rest spread over six decades (collapses at 64 bins).
                let v = if i % 3 == 0 {
                    0.0
                } else {
                    (r.next() % 1_000_000) as f64
                };
                s.record(v);
            }
            let one = s.quantiles(qs);
            let each = qs.map(|q| s.quantile(q));
            assert_eq!(one, each, "n {n}");
            // Not ascending: falls back to one query each.
            assert_eq!(s.quantiles([0.9, 0.5]), [s.quantile(0.9), s.quantile(0.5)]);
        }
    }

    #[test]
    fn every_value_maps_within_one_percent() {
        // Log-spaced sweep over 1e-12 .. 1e12 plus the extremes of each binade.
        let mut worst: f64 = 0.0;
        let steps = 200_000;
        for k in 0..=steps {
            let v = 10f64.powf(-12.0 + 24.0 * k as f64 / steps as f64);
            worst = worst.max(rel_err(representative(index_of(v)), v));
        }
        for e in -39..39 {
            for v in [2f64.powi(e), f64::from_bits(2f64.powi(e + 1).to_bits() - 1)] {
                worst = worst.max(rel_err(representative(index_of(v)), v));
            }
        }
        assert!(worst <= 0.00963, "worst relative error {worst}");
    }

    #[test]
    fn index_is_monotone_and_continuous_across_binades() {
        let mut prev = index_of(1e-9);
        let mut v = 1e-9;
        while v < 1e9 {
            v *= 1.001;
            let i = index_of(v);
            assert!(i == prev || i == prev + 1, "jump at {v}: {prev} -> {i}");
            prev = i;
        }
        // One power of two is K buckets.
        assert_eq!(index_of(2.0) - index_of(1.0), 39);
        assert_eq!(index_of(1.0), 0);
    }

    #[test]
    fn uniform_distribution() {
        let mut r = Rng(1);
        let v: Vec<f64> = (0..20_000).map(|_| r.unit() * 1000.0).collect();
        check_against_exact(&v, "uniform");
    }

    #[test]
    fn exponential_latencies() {
        let mut r = Rng(2);
        let v: Vec<f64> = (0..20_000).map(|_| -r.unit().ln() * 0.003).collect();
        check_against_exact(&v, "exponential");
    }

    #[test]
    fn lognormal_wide_range() {
        // Box-Muller normal, exp() of it with sigma 4: spans ~1e-7 .. 1e4 around 1 ms.
        let mut r = Rng(3);
        let v: Vec<f64> = (0..20_000)
            .map(|_| {
                let z = (-2.0 * r.unit().ln()).sqrt() * (std::f64::consts::TAU * r.unit()).cos();
                (0.001f64.ln() + 2.6 * z).exp()
            })
            .collect();
        check_against_exact(&v, "lognormal");
    }

    #[test]
    fn payload_sizes_with_zeros_and_spikes() {
        let mut r = Rng(4);
        let v: Vec<f64> = (0..10_000)
            .map(|i| match i % 10 {
                0 => 0.0,
                1 => 65_536.0 + (r.next() % 1000) as f64,
                _ => 20.0 + (r.next() % 200) as f64,
            })
            .collect();
        check_against_exact(&v, "payload");
    }

    #[test]
    fn extreme_latency_range_without_collapse() {
        let mut s = Sketch::new();
        s.record(1e-7);
        s.record(1e4);
        assert!(!s.collapsed());
        assert!(rel_err(s.quantile(0.0).unwrap(), 1e-7) <= 0.01);
        assert!(rel_err(s.quantile(1.0).unwrap(), 1e4) <= 0.01);
        // 1e11 is ~36.5 powers of two: ~1424 buckets of 4 bytes.
        assert!(s.mem_bytes() <= std::mem::size_of::<Sketch>() + DEFAULT_MAX_BINS * 4);
    }

    #[test]
    fn merge_equals_recording_everything() {
        let mut r = Rng(5);
        let a_vals: Vec<f64> = (0..5000).map(|_| r.unit() * 10.0).collect();
        let b_vals: Vec<f64> = (0..5000).map(|_| r.unit() * 1e-3).collect();
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for &v in &a_vals {
            a.record(v);
            all.record(v);
        }
        for &v in &b_vals {
            b.record(v);
            all.record(v);
        }
        b.record(0.0);
        all.record(0.0);
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert_eq!(a.min(), all.min());
        assert_eq!(a.max(), all.max());
        assert!(rel_err(a.sum(), all.sum()) < 1e-12);
        for q in QS {
            assert_eq!(a.quantile(q), all.quantile(q), "q={q}");
        }
        // Merging into an empty sketch copies.
        let mut e = Sketch::new();
        e.merge(&all);
        assert_eq!(e.quantile(0.5), all.quantile(0.5));
    }

    #[test]
    fn empty_zero_negative_and_non_finite() {
        let mut s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.min(), None);
        s.record(0.0);
        s.record(-5.0);
        s.record(f64::NAN);
        s.record(f64::INFINITY);
        assert_eq!(s.count(), 2);
        assert_eq!(s.negatives(), 1);
        assert_eq!(s.rejected(), 2);
        assert_eq!(s.quantile(1.0), Some(0.0));
        assert_eq!(s.min(), Some(0.0));
        s.record(100.0);
        assert!(rel_err(s.quantile(1.0).unwrap(), 100.0) <= 0.01);
        assert_eq!(s.quantile(0.0), Some(0.0));
        s.clear();
        assert_eq!(s.count(), 0);
        assert_eq!(s.quantile(0.5), None);
    }

    #[test]
    fn record_n_matches_repeated_record() {
        let (mut a, mut b) = (Sketch::new(), Sketch::new());
        a.record_n(3.5, 1000);
        a.record_n(7.0, 10);
        for _ in 0..1000 {
            b.record(3.5);
        }
        for _ in 0..10 {
            b.record(7.0);
        }
        for q in QS {
            assert_eq!(a.quantile(q), b.quantile(q));
        }
        assert_eq!(a.count(), 1010);
        assert!(rel_err(a.sum(), 3570.0) < 1e-12);
    }

    #[test]
    fn small_state_is_small_and_cap_holds() {
        let mut s = Sketch::new();
        for _ in 0..1000 {
            s.record(120.0);
        }
        // One occupied bucket: the struct and a tiny array.
        assert!(s.mem_bytes() <= 128, "{}", s.mem_bytes());

        let mut capped = Sketch::with_max_bins(100);
        let mut r = Rng(6);
        for _ in 0..10_000 {
            capped.record(r.unit() * 1e6);
        }
        for v in [1e-9, 1e-3, 1e9, 1e12] {
            capped.record(v);
        }
        assert!(capped.collapsed());
        assert!(capped.bins.len() <= 100);
        assert!(capped.mem_bytes() <= std::mem::size_of::<Sketch>() + 4 * 128);
        // The top keeps its precision.
        assert!(rel_err(capped.quantile(1.0).unwrap(), 1e12) <= 0.01);
        assert_eq!(capped.count(), 10_004);
    }

    #[test]
    fn high_quantiles_survive_collapse() {
        let mut r = Rng(7);
        let vals: Vec<f64> = (0..20_000)
            .map(|_| 10f64.powf(-6.0 + 8.0 * r.unit()))
            .collect();
        // 100 buckets span a factor 2^(100/39) ≈ 5.9, so only the top is precise.
        let mut s = Sketch::with_max_bins(100);
        for &v in &vals {
            s.record(v);
        }
        let mut sorted = vals.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.99, 0.999, 1.0] {
            let want = exact_quantile(&sorted, q);
            assert!(rel_err(s.quantile(q).unwrap(), want) <= 0.01, "q={q}");
        }
    }

    #[test]
    fn counter_overflow_halves_and_keeps_shape() {
        let mut s = Sketch::new();
        s.record_n(1.0, u64::from(u32::MAX) - 10);
        s.record_n(1000.0, 1_000_000);
        s.record_n(1.0, 100);
        assert_eq!(s.count(), u64::from(u32::MAX) - 10 + 1_000_100);
        assert!(rel_err(s.quantile(0.5).unwrap(), 1.0) <= 0.01);
        assert!(rel_err(s.quantile(1.0).unwrap(), 1000.0) <= 0.01);
    }
}

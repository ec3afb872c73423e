//! Prometheus histograms from the observation core's quantile sketches.
//!
//! The core keeps log-bucketed sketches (1 % relative error, any range); Prometheus
//! wants cumulative counts at fixed `le` bounds. At scrape time each sketch is read once
//! at the bounds below (`Sketch::cumulative_counts`). A bound that falls inside a sketch
//! bucket counts that whole bucket, so an observation up to ~2 % above a bound can land
//! in it; `_count` and `_sum` are exact.

use crate::observe::sketch::Sketch;

/// Latency bucket bounds, seconds: 100 µs to 30 s in 1-2.5-5 steps. A LAN broker answers
/// in 100 µs–10 ms; seconds mean overload or a stalled client.
pub const LATENCY_BOUNDS_S: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Payload size bucket bounds, bytes: 16 B to 1 MiB in powers of 4.
pub const PAYLOAD_BOUNDS_BYTES: [f64; 9] = [
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
];

/// One histogram's values: `cumulative[i]` counts observations `<= bounds[i]`; the
/// `+Inf` bucket is `count`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistCounts {
    pub count: u64,
    pub sum: f64,
    pub cumulative: Vec<u64>,
}

impl HistCounts {
    pub fn empty(bounds: &[f64]) -> HistCounts {
        HistCounts {
            count: 0,
            sum: 0.0,
            cumulative: vec![0; bounds.len()],
        }
    }

    pub fn from_sketch(s: &Sketch, bounds: &[f64]) -> HistCounts {
        HistCounts {
            count: s.count(),
            sum: s.sum(),
            cumulative: s.cumulative_counts(bounds),
        }
    }

    /// Adds another histogram over the same bounds (aggregation into `__other__`).
    pub fn add(&mut self, o: &HistCounts) {
        self.count += o.count;
        self.sum += o.sum;
        if self.cumulative.len() < o.cumulative.len() {
            self.cumulative.resize(o.cumulative.len(), 0);
        }
        for (a, b) in self.cumulative.iter_mut().zip(&o.cumulative) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counts_match_exact_counts_away_from_bounds() {
        // Values chosen at least 5 % away from every bound, so the ~2 % bucket
        // tolerance cannot move them: expected counts are exact by hand.
        let vals = [
            0.00005, 0.0002, 0.0002, 0.0009, 0.004, 0.02, 0.02, 0.02, 0.3, 7.0, 45.0,
        ];
        let mut s = Sketch::new();
        for v in vals {
            s.record(v);
        }
        let h = HistCounts::from_sketch(&s, &LATENCY_BOUNDS_S);
        let want: Vec<u64> = LATENCY_BOUNDS_S
            .iter()
            .map(|&b| vals.iter().filter(|&&v| v <= b).count() as u64)
            .collect();
        assert_eq!(h.cumulative, want);
        assert_eq!(h.count, 11);
        assert!((h.sum - vals.iter().sum::<f64>()).abs() < 1e-12);
    }

    #[test]
    fn values_exactly_on_a_bound_are_inside_it() {
        // Prometheus `le` is inclusive: a 1024-byte payload belongs to le="1024".
        let mut s = Sketch::new();
        for v in [16.0, 1024.0, 1024.0, 1_048_576.0, 2_000_000.0] {
            s.record(v);
        }
        let h = HistCounts::from_sketch(&s, &PAYLOAD_BOUNDS_BYTES);
        assert_eq!(h.cumulative, vec![1, 1, 1, 3, 3, 3, 3, 3, 4]);
        assert_eq!(h.count, 5);
    }

    #[test]
    fn empty_and_zero_values() {
        let s = Sketch::new();
        let h = HistCounts::from_sketch(&s, &PAYLOAD_BOUNDS_BYTES);
        assert_eq!(h, HistCounts::empty(&PAYLOAD_BOUNDS_BYTES));
        let mut s = Sketch::new();
        s.record(0.0);
        s.record(0.0);
        s.record(100.0);
        let h = HistCounts::from_sketch(&s, &PAYLOAD_BOUNDS_BYTES);
        assert_eq!(h.cumulative, vec![2, 2, 3, 3, 3, 3, 3, 3, 3]);
    }

    #[test]
    fn many_random_values_stay_monotone_and_close() {
        // xorshift: log-uniform latencies over 10 µs .. 100 s.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut vals = Vec::new();
        let mut s = Sketch::new();
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let v = 10f64.powf(-5.0 + 7.0 * u);
            vals.push(v);
            s.record(v);
        }
        let h = HistCounts::from_sketch(&s, &LATENCY_BOUNDS_S);
        assert!(h.cumulative.windows(2).all(|w| w[0] <= w[1]));
        for (b, got) in LATENCY_BOUNDS_S.iter().zip(&h.cumulative) {
            // Exact counts at the bound and 2 % above bracket the answer.
            let lo = vals.iter().filter(|&&v| v <= *b).count() as u64;
            let hi = vals.iter().filter(|&&v| v <= *b * 1.02).count() as u64;
            assert!(lo <= *got && *got <= hi, "le={b}: {lo} <= {got} <= {hi}");
        }
    }

    #[test]
    fn add_sums_bucketwise() {
        let mut a = HistCounts {
            count: 3,
            sum: 1.5,
            cumulative: vec![1, 2, 3],
        };
        a.add(&HistCounts {
            count: 2,
            sum: 0.5,
            cumulative: vec![0, 2, 2],
        });
        assert_eq!(a.cumulative, vec![1, 4, 5]);
        assert_eq!((a.count, a.sum), (5, 2.0));
    }
}

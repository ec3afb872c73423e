//! Inter-arrival statistics of a group's inbound messages, and its learned period.
//!
//! - `mean` and `jitter`: lifetime mean and population standard deviation of the gaps
//!   between consecutive inbound PUBLISHes (Welford's running algorithm, seconds).
//! - `period`: periodic telemetry has one. An exponentially weighted mean of the gap
//!   (weight 1/8, ~8 samples of memory) and of its absolute deviation from that mean are
//!   kept; the period is the weighted mean once at least 8 gaps were seen and the
//!   deviation is at most 10 % of it (and the gap is at least 1 ms: bursts are not a
//!   period). It adapts to a new rate after a few dozen messages and stays put while the
//!   topic is silent, which is what a silence detector compares the elapsed time with.
//!
//! Retransmissions (DUP) are not arrivals and are not fed in. A message older than the
//! previous one (reordered capture) is skipped. A topic with several publishers
//! interleaving has irregular gaps and, rightly, no single period.

const WEIGHT: f64 = 1.0 / 8.0;
const MIN_GAPS: u64 = 8;
const TOLERANCE: f64 = 0.10;
const MIN_PERIOD_S: f64 = 1e-3;

/// 48 bytes: `last_ns` uses a sentinel instead of `Option` so the whole state fits in
/// one cache line of the group's hot statistics.
#[derive(Clone, Debug)]
pub struct Arrivals {
    /// Time of the last arrival; `NONE` before the first.
    last_ns: u64,
    gaps: u64,
    mean: f64,
    m2: f64,
    ewma: f64,
    ewma_dev: f64,
}

/// `last_ns` before the first arrival (no capture timestamp reaches it: pcap seconds
/// are 32-bit, 2106 is 4.3e18 ns).
const NONE: u64 = u64::MAX;

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals {
            last_ns: NONE,
            gaps: 0,
            mean: 0.0,
            m2: 0.0,
            ewma: 0.0,
            ewma_dev: 0.0,
        }
    }
}

impl Arrivals {
    #[inline]
    pub fn on_arrival(&mut self, ts_ns: u64) {
        let last = self.last_ns;
        if last == NONE {
            self.last_ns = ts_ns;
            return;
        }
        if ts_ns < last {
            return;
        }
        self.last_ns = ts_ns;
        let gap = (ts_ns - last) as f64 * 1e-9;
        self.gaps += 1;
        let d = gap - self.mean;
        self.mean += d / self.gaps as f64;
        self.m2 += d * (gap - self.mean);
        if self.gaps == 1 {
            self.ewma = gap;
            self.ewma_dev = 0.0;
        } else {
            self.ewma_dev += WEIGHT * ((gap - self.ewma).abs() - self.ewma_dev);
            self.ewma += WEIGHT * (gap - self.ewma);
        }
    }

    /// Gaps seen.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    pub fn mean_s(&self) -> Option<f64> {
        (self.gaps > 0).then_some(self.mean)
    }

    pub fn jitter_s(&self) -> Option<f64> {
        (self.gaps > 0).then(|| (self.m2 / self.gaps as f64).max(0.0).sqrt())
    }

    pub fn period_s(&self) -> Option<f64> {
        (self.gaps >= MIN_GAPS
            && self.ewma >= MIN_PERIOD_S
            && self.ewma_dev <= TOLERANCE * self.ewma)
            .then_some(self.ewma)
    }

    pub fn last_ns(&self) -> Option<u64> {
        (self.last_ns != NONE).then_some(self.last_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn feed(times_s: &[f64]) -> Arrivals {
        let mut a = Arrivals::default();
        for &t in times_s {
            a.on_arrival((t * S as f64).round() as u64);
        }
        a
    }

    #[test]
    fn mean_and_jitter_by_hand() {
        // Gaps 1, 2, 3: mean 2, population variance (1 + 0 + 1) / 3.
        let a = feed(&[0.0, 1.0, 3.0, 6.0]);
        assert_eq!(a.gaps(), 3);
        assert!((a.mean_s().unwrap() - 2.0).abs() < 1e-12);
        assert!((a.jitter_s().unwrap() - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // Too few gaps and irregular: no period.
        assert_eq!(a.period_s(), None);
        assert_eq!(Arrivals::default().mean_s(), None);
        assert_eq!(feed(&[5.0]).jitter_s(), None);
    }

    #[test]
    fn steady_period_is_learned_after_eight_gaps() {
        let times: Vec<f64> = (0..8).map(|i| 10.0 * i as f64).collect();
        assert_eq!(feed(&times).period_s(), None, "7 gaps");
        let times: Vec<f64> = (0..9).map(|i| 10.0 * i as f64).collect();
        let a = feed(&times);
        assert!((a.period_s().unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(a.jitter_s(), Some(0.0));
    }

    #[test]
    fn small_jitter_keeps_a_period_large_jitter_does_not() {
        // Gaps alternate 9.5 and 10.5 s: mean 10, deviation 0.5 (5 %).
        let mut t = 0.0;
        let mut times = vec![t];
        for i in 0..40 {
            t += if i % 2 == 0 { 9.5 } else { 10.5 };
            times.push(t);
        }
        let a = feed(&times);
        let p = a.period_s().expect("periodic");
        assert!((p - 10.0).abs() < 0.5, "{p}");
        assert!((a.jitter_s().unwrap() - 0.5).abs() < 1e-9);
        // Gaps alternate 3 and 17 s: mean 10, deviation 7 (70 %): not periodic.
        let mut t = 0.0;
        let mut times = vec![t];
        for i in 0..40 {
            t += if i % 2 == 0 { 3.0 } else { 17.0 };
            times.push(t);
        }
        assert_eq!(feed(&times).period_s(), None);
    }

    #[test]
    fn period_adapts_to_a_new_rate() {
        let mut times: Vec<f64> = (0..20).map(|i| 10.0 * i as f64).collect();
        let start = 190.0;
        times.extend((1..=60).map(|i| start + 60.0 * i as f64));
        let p = feed(&times).period_s().expect("periodic again");
        assert!((p - 60.0).abs() < 0.6, "{p}");
    }

    #[test]
    fn reordered_and_bursts() {
        let a = feed(&[10.0, 5.0, 20.0]);
        assert_eq!(a.gaps(), 1);
        assert_eq!(a.mean_s(), Some(10.0));
        // Twenty messages in the same nanosecond: gaps of 0 are no period.
        let a = feed(&[1.0; 20]);
        assert_eq!(a.period_s(), None);
    }
}

//! Counters in fixed-width time buckets over a recent span (15 minutes by default), for
//! "last 1 / 5 / 15 minutes" views. Time comes from the caller (packet timestamps).
//!
//! A ring of `span / width` buckets, each holding `L` counters ("lanes": e.g. messages
//! in, messages out, bytes in, bytes out of one topic, so one ring and one allocation
//! serve them all). Moving to a newer bucket clears the buckets skipped over; an event
//! older than the ring (or reordered by more than the span) is counted in the lifetime
//! total only. The storage is allocated once, in `new`.
//!
//! A view of the last `s` seconds sums the `ceil(s / width)` most recent buckets up to
//! and including the one `now` falls in, so it covers between `s - width` and `s`
//! seconds of history (the current bucket is partial).
//!
//! The newest bucket's counters are kept inline (`cur`) and written to the ring only when
//! a newer bucket begins: an event in the current bucket, the common case, touches only
//! the inline part (one or two cache lines with the totals), not the ring storage.
//!
//! Bucket counters are `u32` and saturate: 4.29e9 per bucket and lane (for bytes, 4 GB
//! per 10 s bucket on one topic group, i.e. 3.4 Gbit/s) is far beyond one broker's
//! topic. Lifetime totals are `u64`.

/// `L` counters per time bucket. Field order is fixed (`repr(C)`): what an event in the
/// current bucket touches comes first.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct BucketRing<const L: usize> {
    /// Start time of bucket `head` (fast path for the common "same bucket").
    head_start_ns: u64,
    width_ns: u64,
    /// Counters of bucket `head` (its ring slot is written when a newer bucket starts).
    cur: [u32; L],
    totals: [u64; L],
    /// Bucket number (`ts_ns / width_ns`) of the newest bucket; the ring holds buckets
    /// `head - len + 1 ..= head`, slot `b % len`.
    head: u64,
    /// Slot of bucket `head`.
    head_slot: usize,
    slots: Box<[[u32; L]]>,
    /// Events that arrived too late for the ring (still in `totals`).
    too_old: u64,
}

/// The default span: the longest view asked for is 15 minutes.
pub const SPAN_SECS: u32 = 15 * 60;

impl<const L: usize> BucketRing<L> {
    /// A ring of `span_secs / bucket_secs` buckets (rounded up; at least one).
    pub fn new(bucket_secs: u32, span_secs: u32) -> Self {
        let width = bucket_secs.max(1);
        let len = span_secs.max(1).div_ceil(width).max(1) as usize;
        BucketRing {
            width_ns: u64::from(width) * 1_000_000_000,
            head: 0,
            head_slot: 0,
            head_start_ns: 0,
            cur: [0; L],
            slots: vec![[0u32; L]; len].into_boxed_slice(),
            totals: [0; L],
            too_old: 0,
        }
    }

    fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Adds `n` to lane `lane` at time `ts_ns`. Out-of-range lanes are ignored.
    #[inline]
    pub fn add(&mut self, ts_ns: u64, lane: usize, n: u64) {
        self.add_pair(ts_ns, lane, n, L, 0);
    }

    /// Adds `a` to lane `lane_a` and `b` to lane `lane_b` at `ts_ns`, finding the bucket
    /// once (messages and bytes of one PUBLISH). Out-of-range lanes are ignored.
    #[inline]
    pub fn add_pair(&mut self, ts_ns: u64, lane_a: usize, a: u64, lane_b: usize, b: u64) {
        if let Some(t) = self.totals.get_mut(lane_a) {
            *t = t.saturating_add(a);
        }
        if let Some(t) = self.totals.get_mut(lane_b) {
            *t = t.saturating_add(b);
        }
        let head = ts_ns >= self.head_start_ns && ts_ns - self.head_start_ns < self.width_ns;
        let s = if head {
            &mut self.cur
        } else {
            let Some(slot) = self.slot_at(ts_ns) else {
                self.too_old += 1;
                return;
            };
            if slot == self.head_slot {
                // `slot_at` just made this the newest bucket (an older bucket in the
                // ring never shares the head's slot).
                &mut self.cur
            } else {
                match self.slots.get_mut(slot) {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        if let Some(c) = s.get_mut(lane_a) {
            *c = c.saturating_add(u32::try_from(a).unwrap_or(u32::MAX));
        }
        if let Some(c) = s.get_mut(lane_b) {
            *c = c.saturating_add(u32::try_from(b).unwrap_or(u32::MAX));
        }
    }

    /// Slot of the bucket holding `ts_ns`, advancing the ring if `ts_ns` is newer; `None`
    /// if it is older than the ring. The newest bucket is found without a division.
    #[inline]
    fn slot_at(&mut self, ts_ns: u64) -> Option<usize> {
        if ts_ns >= self.head_start_ns && ts_ns - self.head_start_ns < self.width_ns {
            return Some(self.head_slot);
        }
        let b = ts_ns / self.width_ns;
        if b > self.head {
            self.advance(b);
            return Some(self.head_slot);
        }
        if self.head - b >= self.len() {
            return None;
        }
        Some((b % self.len()) as usize)
    }

    /// Makes `b` the newest bucket, clearing the buckets between (at most the whole ring).
    fn advance(&mut self, b: u64) {
        if let Some(s) = self.slots.get_mut(self.head_slot) {
            *s = std::mem::replace(&mut self.cur, [0; L]);
        }
        let gap = (b - self.head).min(self.len());
        for k in 0..gap {
            let slot = ((b - k) % self.len()) as usize;
            if let Some(s) = self.slots.get_mut(slot) {
                *s = [0; L];
            }
        }
        self.head = b;
        self.head_slot = (b % self.len()) as usize;
        self.head_start_ns = b.saturating_mul(self.width_ns);
    }

    /// Sum of lane `lane` over the last `secs` seconds ending at `now_ns` (see the module
    /// doc for the bucket granularity). Views longer than the ring are cut to the ring.
    pub fn sum_last(&self, now_ns: u64, secs: u32, lane: usize) -> u64 {
        if lane >= L {
            return 0;
        }
        let width_s = self.width_ns / 1_000_000_000;
        let k = u64::from(secs)
            .div_ceil(width_s.max(1))
            .clamp(1, self.len());
        let now_b = now_ns / self.width_ns;
        // Buckets now_b-k+1 ..= now_b, intersected with what the ring holds.
        let first = (now_b + 1).saturating_sub(k);
        let oldest_held = (self.head + 1).saturating_sub(self.len());
        let lo = first.max(oldest_held);
        let hi = now_b.min(self.head);
        let mut sum = 0u64;
        let mut b = lo;
        while b <= hi {
            if b == self.head {
                sum += u64::from(self.cur[lane]);
            } else if let Some(s) = self.slots.get((b % self.len()) as usize) {
                sum += u64::from(s[lane]);
            }
            b += 1;
        }
        sum
    }

    /// `sum_last(now_ns, secs[v], lane)` for every view `v` and lane, in one pass over
    /// the ring without divisions: reports ask this of thousands of rings at once.
    pub fn sums_last<const N: usize>(&self, now_ns: u64, secs: [u32; N]) -> [[u64; N]; L] {
        let mut out = [[0u64; N]; L];
        let width_s = self.width_ns / 1_000_000_000;
        let now_b = now_ns / self.width_ns;
        let oldest_held = (self.head + 1).saturating_sub(self.len());
        let hi = now_b.min(self.head);
        // View v covers buckets lo[v] ..= hi.
        let lo = secs.map(|s| {
            let k = u64::from(s).div_ceil(width_s.max(1)).clamp(1, self.len());
            (now_b + 1).saturating_sub(k).max(oldest_held)
        });
        let Some(&start) = lo.iter().min() else {
            return out;
        };
        if start > hi {
            return out;
        }
        // Walk from `hi` down; bucket `head` is `cur`, older ones are ring slots.
        let len = self.slots.len();
        let mut slot = (hi % self.len()) as usize;
        let mut b = hi;
        let mut acc = [0u64; L];
        loop {
            let counts = if b == self.head {
                Some(&self.cur)
            } else {
                self.slots.get(slot)
            };
            if let Some(c) = counts {
                for (a, &n) in acc.iter_mut().zip(c.iter()) {
                    *a += u64::from(n);
                }
            }
            // Views are nested: a view's sum is the running sum at its oldest bucket.
            for (v, &l) in lo.iter().enumerate() {
                if l == b {
                    for (o, &a) in out.iter_mut().zip(acc.iter()) {
                        if let Some(ov) = o.get_mut(v) {
                            *ov = a;
                        }
                    }
                }
            }
            if b == start {
                break;
            }
            b -= 1;
            slot = if slot == 0 { len - 1 } else { slot - 1 };
        }
        out
    }

    /// Adds to the lifetime total of `lane` only (statistics folded in from elsewhere).
    pub fn add_total(&mut self, lane: usize, n: u64) {
        if let Some(t) = self.totals.get_mut(lane) {
            *t = t.saturating_add(n);
        }
    }

    /// Lifetime total of lane `lane`.
    pub fn total(&self, lane: usize) -> u64 {
        self.totals.get(lane).copied().unwrap_or(0)
    }

    /// Events older than the ring when they arrived (counted in totals only).
    pub fn too_old(&self) -> u64 {
        self.too_old
    }

    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.slots.len() * std::mem::size_of::<[u32; L]>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn views_sum_the_right_buckets() {
        let mut r: BucketRing<2> = BucketRing::new(10, SPAN_SECS);
        // One message per second for 20 minutes, starting at t = 1000 s.
        for t in 1000..2200u64 {
            r.add(t * S, 0, 1);
            r.add(t * S, 1, 100);
        }
        let now = 2199 * S + S / 2;
        // Bucket of 2199 s is [2190, 2200): 10 events. 1 min = 6 buckets = 60 s fully
        // populated (2140..2200).
        assert_eq!(r.sum_last(now, 60, 0), 60);
        assert_eq!(r.sum_last(now, 300, 0), 300);
        assert_eq!(r.sum_last(now, 900, 0), 900);
        assert_eq!(r.sum_last(now, 900, 1), 90_000);
        // Longer than the ring: cut to 15 minutes.
        assert_eq!(r.sum_last(now, 3600, 0), 900);
        assert_eq!(r.total(0), 1200);
        assert_eq!(r.total(1), 120_000);
    }

    #[test]
    fn one_pass_views_equal_single_views() {
        let mut r: BucketRing<2> = BucketRing::new(10, SPAN_SECS);
        for t in (1000..2500u64).step_by(3) {
            r.add(t * S, 0, t % 7);
            r.add(t * S, 1, 1);
        }
        for now in [0, 1000 * S, 1500 * S + 3, 2499 * S, 2600 * S, 4000 * S] {
            let v = r.sums_last(now, [60, 300, 900, 3600, 5]);
            for (lane, got) in v.iter().enumerate() {
                let w = [60, 300, 900, 3600, 5].map(|s| r.sum_last(now, s, lane));
                assert_eq!(*got, w, "now {now} lane {lane}");
            }
        }
    }

    #[test]
    fn old_buckets_roll_off_as_time_passes() {
        let mut r: BucketRing<1> = BucketRing::new(10, SPAN_SECS);
        r.add(100 * S, 0, 5);
        assert_eq!(r.sum_last(105 * S, 60, 0), 5);
        // 70 s later the 1-minute view no longer covers bucket [100, 110).
        assert_eq!(r.sum_last(170 * S, 60, 0), 0);
        assert_eq!(r.sum_last(170 * S, 300, 0), 5);
        // A new event 20 minutes later: the ring wraps and the old bucket is cleared.
        r.add(1300 * S, 0, 1);
        assert_eq!(r.sum_last(1300 * S, 900, 0), 1);
        // Without any add, a late query sees nothing stale.
        assert_eq!(r.sum_last(5000 * S, 900, 0), 0);
        assert_eq!(r.total(0), 6);
    }

    #[test]
    fn wrap_around_exactly_one_ring_clears_the_reused_slot() {
        let mut r: BucketRing<1> = BucketRing::new(10, 900);
        r.add(0, 0, 7);
        // Bucket 90 reuses slot 0; bucket 0 must not leak into it.
        r.add(900 * S, 0, 1);
        assert_eq!(r.sum_last(900 * S, 900, 0), 1);
        assert_eq!(r.sum_last(900 * S, 10, 0), 1);
    }

    #[test]
    fn late_events_within_and_beyond_the_ring() {
        let mut r: BucketRing<1> = BucketRing::new(10, 900);
        r.add(1000 * S, 0, 1);
        // 50 s late: still in the ring.
        r.add(950 * S, 0, 1);
        assert_eq!(r.sum_last(1000 * S, 60, 0), 2);
        // 20 minutes late: totals only.
        r.add(0, 0, 1);
        assert_eq!(r.sum_last(1000 * S, 900, 0), 2);
        assert_eq!(r.total(0), 3);
        assert_eq!(r.too_old(), 1);
    }

    #[test]
    fn odd_bucket_width_and_saturation() {
        // 7 s buckets: a 60 s view is ceil(60/7) = 9 buckets = 63 s.
        let mut r: BucketRing<1> = BucketRing::new(7, 900);
        for t in 0..200u64 {
            r.add(t * S, 0, 1);
        }
        // now = 199 s: bucket 28 = [196, 203) holds 196..=199 (4); 8 more full buckets (56).
        assert_eq!(r.sum_last(199 * S, 60, 0), 60);
        r.add(199 * S, 0, u64::MAX);
        assert_eq!(r.sum_last(199 * S, 7, 0), u64::from(u32::MAX));
        assert_eq!(r.total(0), u64::MAX);
        // Lanes out of range are ignored, not a panic.
        r.add(0, 3, 1);
        assert_eq!(r.sum_last(0, 60, 3), 0);
        // Bucket width 0 is treated as 1 s.
        let mut z: BucketRing<1> = BucketRing::new(0, 60);
        z.add(5 * S, 0, 1);
        assert_eq!(z.sum_last(5 * S, 1, 0), 1);
    }
}

//! Counters in fixed-width time buckets over a recent span (15 minutes by default), for
//! "last 1 / 5 / 15 minutes" views. Time comes from the caller (packet timestamps).
//!
//! A ring of `span / width` buckets, each holding `L` counters ("lanes": e.g. messages
//! in, messages out, bytes in, bytes out of one topic, so one ring and one allocation
//! serve them all). Moving to a newer bucket clears the buckets skipped over; an event
//! older than the ring (or reordered by more than the span) is counted in the lifetime
//! total only.
//!
//! Storage grows with the history it holds: ring positions are counted from the first
//! bucket written (`origin`), and only the positions written so far are allocated
//! (doubling, up to the whole ring); the rest read as zero. A group that lives a
//! minute holds 6 buckets, not 90 (in a short replay with 10 000 topics that is most
//! of the observer's memory, and its first-touch page clearing); a group active for
//! the whole span ends up with the whole ring.
//!
//! A view of the last `s` seconds sums the `ceil(s / width)` most recent buckets up to
//! and including the one `now` falls in, so it covers between `s - width` and `s`
//! seconds of history (the current bucket is partial).
//!
//! Two parts. The newest bucket's counters live in a small `RingHead` (its time range
//! and one `u32` per lane, 32 bytes for 4 lanes); everything else (ring storage, lifetime
//! totals) in a `RingStore`. An event in the current bucket, the common case, touches
//! only the head, so a caller can keep the head on its hottest cache line and the store
//! elsewhere (topic statistics do); `BucketRing` keeps both together. The head's counts
//! are not yet in the lifetime totals: `total` adds them, and they move to the totals
//! (and the ring slot) when a newer bucket begins, or when a lane would overflow `u32`.
//!
//! Bucket counters in the ring are `u32` and saturate: 4.29e9 per bucket and lane (for
//! bytes, 4 GB per 10 s bucket on one topic group, i.e. 3.4 Gbit/s) is far beyond one
//! broker's topic. Lifetime totals are `u64` and exact (saturating at `u64::MAX`).

/// The newest bucket: what an event in the current bucket touches.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct RingHead<const L: usize> {
    /// Time range `[start_ns, end_ns)` of the newest bucket.
    start_ns: u64,
    end_ns: u64,
    /// Counts in the newest bucket not yet added to the store's totals.
    cur: [u32; L],
}

/// Ring storage and lifetime totals (see the module doc).
#[derive(Clone, Debug)]
pub struct RingStore<const L: usize> {
    width_ns: u64,
    /// Bucket number (`ts_ns / width_ns`) of the newest bucket; the ring holds buckets
    /// `head - len + 1 ..= head`, bucket `b` at position `slot_of(b)`.
    head: u64,
    /// Buckets in the ring (0: a store without a ring).
    len: u32,
    /// `origin % len`, `origin` being the first bucket written: bucket `b` is at
    /// position `(b - origin) mod len`, so positions fill from 0 upwards.
    origin_mod: u32,
    /// Positions `0..slots.len()` (the rest are zero, not allocated yet).
    slots: Vec<[u32; L]>,
    /// Counts of the newest bucket already added to `totals` (after a `u32` overflow of
    /// the head's counter); the bucket holds `base + cur`.
    base: [u64; L],
    /// Lifetime totals, except the head's `cur`.
    totals: [u64; L],
    /// Events that arrived too late for the ring (still in `totals`).
    too_old: u64,
    /// Oldest bucket ever written to a ring slot (`u64::MAX`: none): slots of older
    /// buckets are zero, so views of a young ring read only what it holds, and moving
    /// to a newer bucket clears nothing until something was written.
    first_b: u64,
}

/// `L` counters per time bucket: a `RingHead` and its `RingStore` together.
#[derive(Clone, Debug)]
pub struct BucketRing<const L: usize> {
    head: RingHead<L>,
    store: RingStore<L>,
}

/// Ring positions allocated at the first write (then doubled as needed).
const MIN_ALLOC: usize = 4;

/// The default span: the longest view asked for is 15 minutes.
pub const SPAN_SECS: u32 = 15 * 60;

fn sat32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<const L: usize> RingHead<L> {
    /// `try_add` of two lanes at once (messages and bytes of one PUBLISH): both or
    /// neither are added.
    #[inline]
    pub fn try_add_pair(
        &mut self,
        ts_ns: u64,
        lane_a: usize,
        a: u64,
        lane_b: usize,
        b: u64,
    ) -> bool {
        if ts_ns < self.start_ns || ts_ns >= self.end_ns || lane_a == lane_b {
            return false;
        }
        let (Some(&ca), Some(&cb)) = (self.cur.get(lane_a), self.cur.get(lane_b)) else {
            return false;
        };
        let add = |c: u32, n: u64| u32::try_from(n).ok().and_then(|n| c.checked_add(n));
        let (Some(va), Some(vb)) = (add(ca, a), add(cb, b)) else {
            return false;
        };
        if let Some(c) = self.cur.get_mut(lane_a) {
            *c = va;
        }
        if let Some(c) = self.cur.get_mut(lane_b) {
            *c = vb;
        }
        true
    }

    /// Adds `n` to `lane` if `ts_ns` falls in the newest bucket and the lane's counter
    /// has room; false otherwise (the caller then goes through `RingStore::add`).
    #[inline]
    pub fn try_add(&mut self, ts_ns: u64, lane: usize, n: u64) -> bool {
        if ts_ns < self.start_ns || ts_ns >= self.end_ns {
            return false;
        }
        match self.cur.get_mut(lane) {
            Some(c) => match u32::try_from(n).ok().and_then(|n| c.checked_add(n)) {
                Some(v) => {
                    *c = v;
                    true
                }
                None => false,
            },
            // Out-of-range lanes are ignored.
            None => true,
        }
    }
}

impl<const L: usize> RingStore<L> {
    /// A ring of `span_secs / bucket_secs` buckets (rounded up; at least one), with its
    /// head.
    pub fn new(bucket_secs: u32, span_secs: u32) -> (RingHead<L>, Self) {
        let width = bucket_secs.max(1);
        let len = span_secs.max(1).div_ceil(width).max(1) as usize;
        let width_ns = u64::from(width) * 1_000_000_000;
        let head = RingHead {
            start_ns: 0,
            end_ns: width_ns,
            cur: [0; L],
        };
        let store = RingStore {
            width_ns,
            head: 0,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            origin_mod: 0,
            slots: Vec::new(),
            base: [0; L],
            totals: [0; L],
            too_old: 0,
            first_b: u64::MAX,
        };
        (head, store)
    }

    /// A store without ring storage (nothing allocated), for a slot that holds no group.
    pub fn empty() -> (RingHead<L>, Self) {
        let head = RingHead {
            start_ns: 0,
            end_ns: 0,
            cur: [0; L],
        };
        let store = RingStore {
            width_ns: 1,
            head: 0,
            len: 0,
            origin_mod: 0,
            slots: Vec::new(),
            base: [0; L],
            totals: [0; L],
            too_old: 0,
            first_b: u64::MAX,
        };
        (head, store)
    }

    fn len(&self) -> u64 {
        u64::from(self.len)
    }

    /// Ring position of bucket `b` (`len` must not be 0).
    #[inline]
    fn slot_of(&self, b: u64) -> usize {
        let len = self.len();
        (((b % len) + len - u64::from(self.origin_mod)) % len) as usize
    }

    /// Bucket `b`'s counters for writing. The first bucket written becomes the origin
    /// (position 0; every position is still zero then, so this moves nothing), and the
    /// positions up to `b`'s are allocated (at least doubling what is, never beyond
    /// the ring).
    fn bucket_mut(&mut self, b: u64) -> Option<&mut [u32; L]> {
        if self.first_b == u64::MAX {
            self.origin_mod = (b % self.len()) as u32;
        }
        let i = self.slot_of(b);
        let have = self.slots.len();
        if i >= have {
            let want = (i + 1).max(have * 2).max(MIN_ALLOC).min(self.len as usize);
            self.slots.reserve_exact(want.saturating_sub(have));
            self.slots.resize(want, [0; L]);
        }
        self.slots.get_mut(i)
    }

    /// Adds `n` to lane `lane` at time `ts_ns`: the slow path of `RingHead::try_add`
    /// (another bucket, or a head counter about to overflow). Returns true when a newer
    /// bucket began. Out-of-range lanes are ignored.
    pub fn add(&mut self, h: &mut RingHead<L>, ts_ns: u64, lane: usize, n: u64) -> bool {
        if lane >= L || self.len == 0 {
            return false;
        }
        let b = ts_ns / self.width_ns;
        let advanced = b > self.head;
        if advanced {
            self.advance(h, b);
        }
        if b == self.head {
            if let Some(c) = h.cur.get_mut(lane) {
                match u32::try_from(n).ok().and_then(|n| c.checked_add(n)) {
                    Some(v) => *c = v,
                    None => {
                        // The head's counter would overflow: count in base and totals.
                        let moved = u64::from(std::mem::take(c));
                        if let (Some(b), Some(t)) =
                            (self.base.get_mut(lane), self.totals.get_mut(lane))
                        {
                            *b = b.saturating_add(moved).saturating_add(n);
                            *t = t.saturating_add(moved).saturating_add(n);
                        }
                    }
                }
            }
            return advanced;
        }
        if let Some(t) = self.totals.get_mut(lane) {
            *t = t.saturating_add(n);
        }
        // Older than the head bucket: in the ring, or too old for it.
        if self.head - b >= self.len() {
            self.too_old += 1;
            return advanced;
        }
        if let Some(c) = self.bucket_mut(b).and_then(|s| s.get_mut(lane)) {
            *c = c.saturating_add(sat32(n));
            self.first_b = self.first_b.min(b);
        }
        advanced
    }

    /// Makes `b` the newest bucket: the head's counts go to the totals and its ring
    /// slot, the buckets in between are cleared (at most the whole ring).
    fn advance(&mut self, h: &mut RingHead<L>, b: u64) {
        let mut bucket = [0u32; L];
        for (((o, t), base), c) in bucket
            .iter_mut()
            .zip(self.totals.iter_mut())
            .zip(self.base.iter_mut())
            .zip(h.cur.iter_mut())
        {
            let c = u64::from(std::mem::take(c));
            *t = t.saturating_add(c);
            *o = sat32(std::mem::take(base).saturating_add(c));
        }
        if bucket != [0; L] || self.first_b != u64::MAX {
            if let Some(s) = self.bucket_mut(self.head) {
                *s = bucket;
            }
            self.first_b = self.first_b.min(self.head);
        }
        let written = self.first_b != u64::MAX;
        // Clear the buckets after the old head up to `b` (the whole ring if it wrapped),
        // unless nothing was ever written (positions not allocated are zero already).
        let len = self.len as usize;
        let gap = (b - self.head).min(self.len()) as usize;
        if !written {
            // Every slot is still zero.
        } else if gap >= len {
            self.slots.fill([0; L]);
        } else {
            let mut slot = self.slot_of(self.head);
            for _ in 0..gap {
                slot = if slot + 1 == len { 0 } else { slot + 1 };
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = [0; L];
                }
            }
        }
        self.head = b;
        h.start_ns = b.saturating_mul(self.width_ns);
        h.end_ns = h.start_ns.saturating_add(self.width_ns);
    }

    /// Counts of bucket `head` (saturated to `u32` like the ring's).
    fn head_counts(&self, h: &RingHead<L>) -> [u32; L] {
        let mut out = [0u32; L];
        for ((o, &b), &c) in out.iter_mut().zip(self.base.iter()).zip(h.cur.iter()) {
            *o = sat32(b.saturating_add(u64::from(c)));
        }
        out
    }

    /// Sum of lane `lane` over the last `secs` seconds ending at `now_ns` (see the module
    /// doc for the bucket granularity). Views longer than the ring are cut to the ring.
    pub fn sum_last(&self, h: &RingHead<L>, now_ns: u64, secs: u32, lane: usize) -> u64 {
        if lane >= L || self.len == 0 {
            return 0;
        }
        // Bucket by bucket (the plain definition; `sums_last` is the fast one).
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
        let head = self.head_counts(h);
        let mut sum = 0u64;
        let mut b = lo;
        while b <= hi {
            if b == self.head {
                sum += head.get(lane).map_or(0, |&c| u64::from(c));
            } else if let Some(s) = self.slots.get(self.slot_of(b)) {
                sum += s.get(lane).map_or(0, |&c| u64::from(c));
            }
            b += 1;
        }
        sum
    }

    /// `sum_last(now_ns, secs[v], lane)` for every view `v` and lane: views are nested
    /// (all end at the newest bucket), so each bucket is added once, in runs of
    /// contiguous slots: reports ask this of thousands of rings at once.
    pub fn sums_last<const N: usize>(
        &self,
        h: &RingHead<L>,
        now_ns: u64,
        secs: [u32; N],
    ) -> [[u64; N]; L] {
        let mut out = [[0u64; N]; L];
        if self.len == 0 {
            return out;
        }
        let width_s = self.width_ns / 1_000_000_000;
        let now_b = now_ns / self.width_ns;
        let oldest_held = (self.head + 1).saturating_sub(self.len());
        let hi = now_b.min(self.head);
        // View v covers buckets lo[v] ..= hi.
        let lo = secs.map(|s| {
            let k = u64::from(s).div_ceil(width_s.max(1)).clamp(1, self.len());
            (now_b + 1).saturating_sub(k).max(oldest_held)
        });
        // Ring slots before `first_b` (and all of them if none was written) are zero.
        let nonzero_from = self.first_b.min(self.head);
        let mut order: [usize; N] = std::array::from_fn(|i| i);
        order.sort_unstable_by_key(|&v| std::cmp::Reverse(lo[v]));
        let mut acc = [0u64; L];
        // Buckets above `next` are summed into `acc`.
        let mut next = hi + 1;
        for &v in &order {
            let l = lo[v];
            if l > hi {
                continue;
            }
            if l < next {
                if next == self.head + 1 {
                    // The newest bucket is the head's.
                    for (a, n) in acc.iter_mut().zip(self.head_counts(h)) {
                        *a += u64::from(n);
                    }
                    next = self.head;
                }
                if l < next {
                    let from = l.max(nonzero_from);
                    if from < next {
                        self.add_buckets(from, next - 1, &mut acc);
                    }
                    next = l;
                }
            }
            for (o, &a) in out.iter_mut().zip(acc.iter()) {
                if let Some(ov) = o.get_mut(v) {
                    *ov = a;
                }
            }
        }
        out
    }

    /// Adds ring buckets `from ..= to` (all older than the head, at most the ring) to
    /// `acc`: one or two contiguous runs of slots.
    fn add_buckets(&self, from: u64, to: u64, acc: &mut [u64; L]) {
        let len = self.len as usize;
        let n = ((to - from + 1) as usize).min(len);
        let start = self.slot_of(from);
        let (first, second) = if start + n <= len {
            (start..start + n, 0..0)
        } else {
            (start..len, 0..start + n - len)
        };
        // Positions beyond the allocated ones are zero.
        let have = self.slots.len();
        for run in [first, second] {
            let run = run.start.min(have)..run.end.min(have);
            for s in self.slots.get(run).unwrap_or(&[]) {
                for (a, &c) in acc.iter_mut().zip(s.iter()) {
                    *a += u64::from(c);
                }
            }
        }
    }

    /// Adds to the lifetime total of `lane` only (statistics folded in from elsewhere).
    pub fn add_total(&mut self, lane: usize, n: u64) {
        if let Some(t) = self.totals.get_mut(lane) {
            *t = t.saturating_add(n);
        }
    }

    /// Lifetime total of lane `lane`.
    pub fn total(&self, h: &RingHead<L>, lane: usize) -> u64 {
        let c = h.cur.get(lane).map_or(0, |&c| u64::from(c));
        self.totals.get(lane).map_or(0, |&t| t.saturating_add(c))
    }

    /// Events older than the ring when they arrived (counted in totals only).
    pub fn too_old(&self) -> u64 {
        self.too_old
    }

    /// Heap bytes (the ring positions allocated so far).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<[u32; L]>()
    }
}

impl<const L: usize> BucketRing<L> {
    /// A ring of `span_secs / bucket_secs` buckets (rounded up; at least one).
    pub fn new(bucket_secs: u32, span_secs: u32) -> Self {
        let (head, store) = RingStore::new(bucket_secs, span_secs);
        BucketRing { head, store }
    }

    /// Adds `n` to lane `lane` at time `ts_ns`. Out-of-range lanes are ignored.
    #[inline]
    pub fn add(&mut self, ts_ns: u64, lane: usize, n: u64) {
        if !self.head.try_add(ts_ns, lane, n) {
            self.store.add(&mut self.head, ts_ns, lane, n);
        }
    }

    /// Adds `a` to lane `lane_a` and `b` to lane `lane_b` at `ts_ns` (messages and
    /// bytes of one PUBLISH). Out-of-range lanes are ignored.
    #[inline]
    pub fn add_pair(&mut self, ts_ns: u64, lane_a: usize, a: u64, lane_b: usize, b: u64) {
        self.add(ts_ns, lane_a, a);
        self.add(ts_ns, lane_b, b);
    }

    /// Sum of lane `lane` over the last `secs` seconds ending at `now_ns` (see the module
    /// doc for the bucket granularity). Views longer than the ring are cut to the ring.
    pub fn sum_last(&self, now_ns: u64, secs: u32, lane: usize) -> u64 {
        self.store.sum_last(&self.head, now_ns, secs, lane)
    }

    /// `sum_last(now_ns, secs[v], lane)` for every view `v` and lane, in one pass.
    pub fn sums_last<const N: usize>(&self, now_ns: u64, secs: [u32; N]) -> [[u64; N]; L] {
        self.store.sums_last(&self.head, now_ns, secs)
    }

    /// Adds to the lifetime total of `lane` only (statistics folded in from elsewhere).
    pub fn add_total(&mut self, lane: usize, n: u64) {
        self.store.add_total(lane, n);
    }

    /// Lifetime total of lane `lane`.
    pub fn total(&self, lane: usize) -> u64 {
        self.store.total(&self.head, lane)
    }

    /// Events older than the ring when they arrived (counted in totals only).
    pub fn too_old(&self) -> u64 {
        self.store.too_old()
    }

    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.store.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Against a plain model (every event the ring accepted, kept as is), through random
    /// times with small steps, jumps beyond the ring and late events: every view agrees.
    #[test]
    fn agrees_with_a_plain_model() {
        const LEN: u64 = 30;
        let width = 10 * S;
        for seed in 1..30u64 {
            let mut r: BucketRing<2> = BucketRing::new(10, 300);
            // (bucket, lane, n) of events that went into the ring.
            let mut kept: Vec<(u64, usize, u64)> = Vec::new();
            let mut head = 0u64;
            let mut t = 1000 * S;
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            for step in 0..1500u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t = match x % 100 {
                    0 => t + 400 * S,                  // beyond the ring
                    1..=3 => t.saturating_sub(60 * S), // late, within the ring
                    4 => t.saturating_sub(500 * S),    // late, beyond it
                    _ => t + (x >> 20) % (3 * S),
                };
                let (lane, n) = (((x >> 8) & 1) as usize, (x >> 40) % 100);
                r.add(t, lane, n);
                let b = t / width;
                head = head.max(b);
                if head - b < LEN {
                    kept.push((b, lane, n));
                }
                if step % 25 != 0 {
                    continue;
                }
                for now in [t, t + 35 * S, head * width + 5 * S, t + 400 * S] {
                    let views = r.sums_last(now, [10, 60, 120, 300, 1000]);
                    for (v, secs) in [10u64, 60, 120, 300, 1000].into_iter().enumerate() {
                        let k = secs.div_ceil(10).clamp(1, LEN);
                        let now_b = now / width;
                        let lo = (now_b + 1)
                            .saturating_sub(k)
                            .max((head + 1).saturating_sub(LEN));
                        let hi = now_b.min(head);
                        for (lane, view) in views.iter().enumerate() {
                            let want: u64 = kept
                                .iter()
                                .filter(|e| e.1 == lane && e.0 >= lo && e.0 <= hi)
                                .map(|e| e.2)
                                .sum();
                            let got = r.sum_last(now, secs as u32, lane);
                            assert_eq!(got, want, "seed {seed} step {step} now {now} secs {secs}");
                            assert_eq!(view[v], want, "seed {seed} step {step} (one pass)");
                        }
                    }
                }
            }
        }
    }

    /// The storage holds what the history needs: a young ring a few buckets, one that
    /// saw the whole span all of them.
    #[test]
    fn storage_grows_with_the_history() {
        let mut r: BucketRing<4> = BucketRing::new(10, SPAN_SECS);
        let fixed = std::mem::size_of::<BucketRing<4>>();
        assert_eq!(
            r.mem_bytes(),
            fixed,
            "nothing allocated before a bucket is written"
        );
        for t in 0..60u64 {
            r.add(1000 * S + t * S, 0, 1);
        }
        // Six buckets of 10 s: 8 positions of 16 bytes.
        assert_eq!(r.mem_bytes(), fixed + 8 * 16);
        for t in 60..1200u64 {
            r.add(1000 * S + t * S, 0, 1);
        }
        assert_eq!(r.mem_bytes(), fixed + 90 * 16);
        assert_eq!(r.sum_last(2199 * S, 900, 0), 900);
    }

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

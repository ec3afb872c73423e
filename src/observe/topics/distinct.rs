//! Distinct-count estimate of client keys (publishers or subscribers of a group) in
//! bounded memory: exact while at most `SMALL` keys were seen, then a HyperLogLog with
//! 2^P one-byte registers (256 bytes; standard error 1.04/sqrt(256) ≈ 6.5 %).

const SMALL: usize = 8;
const P: u32 = 8;
const M: usize = 1 << P;

#[derive(Clone, Debug)]
pub enum Distinct {
    Small { len: u8, keys: [u64; SMALL] },
    Hll(Box<[u8; M]>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Small {
            len: 0,
            keys: [0; SMALL],
        }
    }
}

/// SplitMix64 finaliser: client keys may be small sequential numbers, HLL needs
/// well-spread bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hll_add(regs: &mut [u8; M], key: u64) {
    let h = mix(key);
    let idx = (h >> (64 - P)) as usize;
    // Rank of the first set bit in the remaining 64 - P bits (1-based), capped.
    let rest = h << P;
    let rank = (rest.leading_zeros() + 1).min(64 - P + 1) as u8;
    if let Some(r) = regs.get_mut(idx)
        && rank > *r
    {
        *r = rank;
    }
}

impl Distinct {
    #[inline]
    pub fn add(&mut self, key: u64) {
        match self {
            Distinct::Small { len, keys } => {
                let n = usize::from(*len);
                if keys.iter().take(n).any(|&k| k == key) {
                    return;
                }
                if n < SMALL {
                    if let Some(slot) = keys.get_mut(n) {
                        *slot = key;
                    }
                    *len += 1;
                    return;
                }
                let mut regs = Box::new([0u8; M]);
                for &k in keys.iter() {
                    hll_add(&mut regs, k);
                }
                hll_add(&mut regs, key);
                *self = Distinct::Hll(regs);
            }
            Distinct::Hll(regs) => hll_add(regs, key),
        }
    }

    /// Exact count while small, otherwise the HyperLogLog estimate (with the linear
    /// counting correction for small cardinalities).
    pub fn estimate(&self) -> u64 {
        match self {
            Distinct::Small { len, .. } => u64::from(*len),
            Distinct::Hll(regs) => {
                let m = M as f64;
                let mut zeros = 0usize;
                let mut inv_sum = 0.0;
                for &r in regs.iter() {
                    if r == 0 {
                        zeros += 1;
                    }
                    inv_sum += (-(f64::from(r))).exp2();
                }
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let raw = alpha * m * m / inv_sum;
                let est = if raw <= 2.5 * m && zeros > 0 {
                    m * (m / zeros as f64).ln()
                } else {
                    raw
                };
                est.round() as u64
            }
        }
    }

    pub fn merge(&mut self, other: &Distinct) {
        match other {
            Distinct::Small { len, keys } => {
                for &k in keys.iter().take(usize::from(*len)) {
                    self.add(k);
                }
            }
            Distinct::Hll(o) => {
                if let Distinct::Small { len, keys } = self {
                    let mut regs = Box::new([0u8; M]);
                    for &k in keys.iter().take(usize::from(*len)) {
                        hll_add(&mut regs, k);
                    }
                    *self = Distinct::Hll(regs);
                }
                if let Distinct::Hll(regs) = self {
                    for (r, &x) in regs.iter_mut().zip(o.iter()) {
                        *r = (*r).max(x);
                    }
                }
            }
        }
    }

    /// Heap bytes beyond the inline enum.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Distinct::Small { .. } => 0,
            Distinct::Hll(_) => M,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_while_small() {
        let mut d = Distinct::default();
        for k in [5, 9, 5, 5, 1, 9] {
            d.add(k);
        }
        assert_eq!(d.estimate(), 3);
        for k in 100..105 {
            d.add(k);
        }
        assert_eq!(d.estimate(), 8);
        assert_eq!(d.heap_bytes(), 0);
    }

    #[test]
    fn estimates_within_a_few_standard_errors() {
        // 6.5 % standard error: allow 20 % (3 sigma) at each size.
        for n in [9u64, 50, 300, 5_000, 100_000] {
            let mut d = Distinct::default();
            // Every key three times: repeats must not count.
            for _ in 0..3 {
                for k in 0..n {
                    d.add(k * 7919);
                }
            }
            let e = d.estimate() as f64;
            let err = (e - n as f64).abs() / n as f64;
            assert!(err <= 0.20, "n={n} estimate={e}");
        }
    }

    #[test]
    fn merge_is_union() {
        let (mut a, mut b) = (Distinct::default(), Distinct::default());
        for k in 0..3000u64 {
            a.add(k);
        }
        for k in 2000..6000u64 {
            b.add(k);
        }
        let mut small = Distinct::default();
        small.add(1);
        small.add(2);
        a.merge(&b);
        a.merge(&small);
        let e = a.estimate() as f64;
        assert!((e - 6000.0).abs() / 6000.0 <= 0.2, "{e}");
        // Small into small stays exact.
        let mut s2 = Distinct::default();
        s2.add(2);
        s2.add(3);
        s2.merge(&small);
        assert_eq!(s2.estimate(), 3);
        // HLL into small converts.
        let mut s3 = Distinct::default();
        s3.add(1);
        s3.merge(&b);
        let e = s3.estimate() as f64;
        assert!((e - 4001.0).abs() / 4001.0 <= 0.2, "{e}");
    }
}

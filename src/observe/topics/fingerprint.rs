//! `Fingerprinter`: the two 64-bit hashes of a topic (`TopicKey`) in one pass over
//! its bytes.
//!
//! Why not two general hashers (this was foldhash `fast` and `quality` with their own
//! seeds): each ran the `Hasher` protocol (a length prefix, a sponge, a finaliser) and
//! read the bytes again, ~160 instructions per PUBLISH topic of ~50 bytes, the largest
//! single cost of routing a PUBLISH to its group. Here each 16-byte block is loaded
//! once and folded into two lanes with independent secret keys.
//!
//! Construction (the folded multiply of foldhash and wyhash): a lane absorbs a block
//! `(x, y)` as `fold(lane ^ x, key ^ y)`, where `fold(a, b)` is the xor of the high and
//! low halves of the 128-bit product. Lane 1 multiplies by `y` under key 2, lane 2 by `x`
//! under key 3, so the lanes are different functions of the same bytes. Each lane starts
//! from a fold of the length with its keys, so neither the zero padding of the last
//! block nor data xored onto the state can make two lengths agree. Keys come from the process's random source: senders cannot aim at
//! a collision without them (see the module doc of `topics` for the bits kept).

use std::hash::{BuildHasher, Hasher};

/// Odd constants (fractional digits of pi) that keep the finalisers apart from the
/// block keys.
const FIN1: u64 = 0x243f_6a88_85a3_08d3;
const FIN2: u64 = 0x1319_8a2e_0370_7345;

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

#[inline(always)]
fn half(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u64::from(u32::from_le_bytes(w))
}

/// The last 0..=15 bytes as two words (overlapping reads; the length, mixed in
/// beforehand, tells the cases apart).
#[inline(always)]
fn tail(b: &[u8]) -> (u64, u64) {
    let n = b.len();
    if n >= 8 {
        (word(b, 0), word(b, n - 8))
    } else if n >= 4 {
        (half(b, 0) | (half(b, n - 4) << 32), 0)
    } else if n > 0 {
        let at = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
        (at(0) | (at(n / 2) << 8) | (at(n - 1) << 16), 0)
    } else {
        (0, 0)
    }
}

#[derive(Clone, Debug)]
pub(super) struct Fingerprinter {
    k: [u64; 4],
}

impl Fingerprinter {
    /// Keys drawn from the process's random source.
    pub fn new() -> Fingerprinter {
        let rs = std::collections::hash_map::RandomState::new();
        let mut k = [0u64; 4];
        for (i, x) in k.iter_mut().enumerate() {
            let mut h = rs.build_hasher();
            h.write_usize(i);
            *x = h.finish();
        }
        Fingerprinter::with_keys(k)
    }

    /// Fixed keys (tests).
    pub fn with_keys(k: [u64; 4]) -> Fingerprinter {
        Fingerprinter { k }
    }

    /// The two hashes of `t`.
    #[inline]
    pub fn hashes(&self, t: &[u8]) -> (u64, u64) {
        let [k0, k1, k2, k3] = self.k;
        let len = t.len() as u64;
        // The length goes in through a multiply: xored in plainly, a tail could cancel it
        // (`[1, 0]` against `[0, 0, 0]`).
        let mut a = fold(k0 ^ len, k2);
        let mut b = fold(k1 ^ len, k3);
        let mut blocks = t.chunks_exact(16);
        for c in &mut blocks {
            // Lengths known to the compiler: no checks, no fallback taken.
            let x = u64::from_le_bytes(c[..8].try_into().unwrap_or([0; 8]));
            let y = u64::from_le_bytes(c[8..].try_into().unwrap_or([0; 8]));
            a = fold(a ^ x, k2 ^ y);
            b = fold(b ^ y, k3 ^ x);
        }
        let (x, y) = tail(blocks.remainder());
        a = fold(a ^ x, k2 ^ y);
        b = fold(b ^ y, k3 ^ x);
        (fold(a, k1 ^ FIN1), fold(b, k0 ^ FIN2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fp() -> Fingerprinter {
        Fingerprinter::with_keys([
            0x0123_4567_89ab_cdef,
            0xfedc_ba98_7654_3210,
            0x0f1e_2d3c_4b5a_6978,
            0x8796_a5b4_c3d2_e1f0,
        ])
    }

    /// Every byte string up to 3 bytes over a small alphabet, zero bytes and lengths
    /// that pad alike included: no two share either hash.
    #[test]
    fn short_inputs_and_padding_do_not_collide() {
        let f = fp();
        let alphabet = [0u8, 1, b'a', b'/', 0xff];
        let mut inputs: Vec<Vec<u8>> = vec![vec![]];
        for len in 1..=3 {
            let mut next = Vec::new();
            for v in inputs.iter().filter(|v| v.len() == len - 1) {
                for &c in &alphabet {
                    let mut w = v.clone();
                    w.push(c);
                    next.push(w);
                }
            }
            inputs.extend(next);
        }
        // Lengths 4..=40 of zero bytes: only the length tells them apart.
        inputs.extend((4..=40).map(|n| vec![0u8; n]));
        let (mut s1, mut s2) = (HashSet::new(), HashSet::new());
        for v in &inputs {
            let (a, b) = f.hashes(v);
            assert!(s1.insert(a), "first hash collides for {v:?}");
            assert!(s2.insert(b), "second hash collides for {v:?}");
        }
    }

    /// Topics that differ in one byte anywhere (the shape of an identifier-heavy
    /// fleet): 200 000 of them, lengths 1..=90, no collision of either hash, and the
    /// lanes are not the same function.
    #[test]
    fn one_byte_differences_do_not_collide() {
        let f = fp();
        let base: Vec<u8> =
            b"acme/site-03/area-2/line-07/cell-4/dev-0123/temperature/extra/levels/to/ninety/bytes"
                .to_vec();
        let (mut s1, mut s2) = (HashSet::new(), HashSet::new());
        let mut n = 0;
        for len in 1..=base.len() {
            for pos in 0..len {
                for delta in 1..=24u8 {
                    let mut t = base[..len].to_vec();
                    t[pos] = t[pos].wrapping_add(delta);
                    let (a, b) = f.hashes(&t);
                    assert_ne!(a, b);
                    s1.insert(a);
                    s2.insert(b);
                    n += 1;
                }
            }
        }
        assert!(n > 80_000, "{n}");
        // Distinct inputs are not guaranteed distinct here (the same string can come
        // from two edits); count the distinct strings instead of assuming n.
        let mut distinct = HashSet::new();
        for len in 1..=base.len() {
            for pos in 0..len {
                for delta in 1..=24u8 {
                    let mut t = base[..len].to_vec();
                    t[pos] = t[pos].wrapping_add(delta);
                    distinct.insert(t);
                }
            }
        }
        assert_eq!(s1.len(), distinct.len());
        assert_eq!(s2.len(), distinct.len());
    }

    /// Each output bit flips for about half of one-bit input changes (a weak mixer
    /// would leave bits stuck and the index's home slots clustered).
    #[test]
    fn output_bits_avalanche() {
        let f = fp();
        let t = b"plant/line-4/press-17/hydraulics/pressure".to_vec();
        let (a0, b0) = f.hashes(&t);
        let mut flips = [[0u32; 64]; 2];
        let mut trials = 0;
        for byte in 0..t.len() {
            for bit in 0..8 {
                let mut u = t.clone();
                u[byte] ^= 1 << bit;
                let (a, b) = f.hashes(&u);
                for (lane, d) in flips.iter_mut().zip([a ^ a0, b ^ b0]) {
                    for (i, n) in lane.iter_mut().enumerate() {
                        *n += (d >> i & 1) as u32;
                    }
                }
                trials += 1;
            }
        }
        for lane in flips {
            for (i, n) in lane.iter().enumerate() {
                let share = f64::from(*n) / f64::from(trials);
                assert!((0.3..0.7).contains(&share), "bit {i}: {share}");
            }
        }
    }

    #[test]
    fn keys_change_the_hashes() {
        let t = b"a/b/c";
        let other = Fingerprinter::with_keys([1, 2, 3, 4]);
        assert_ne!(fp().hashes(t), other.hashes(t));
        let (r1, r2) = (Fingerprinter::new(), Fingerprinter::new());
        assert_ne!(r1.hashes(t), r2.hashes(t));
    }
}

//! Names seen before (topics, templates, clients), as 8-byte hashes in a capped set.
//! The hash is FNV-1a with a domain tag: stable across runs and versions, so a saved set
//! still means the same after a restart or an upgrade (a seeded hash would make every
//! name look new after a restart). Collisions only hide a new name (1 in 2^64 per pair).
//! The set itself is a std `HashSet` with its random seed, so chosen names cannot
//! degrade it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub fn name_hash(tag: u8, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&tag).chain(bytes) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Known {
    set: HashSet<u64>,
    /// Names not remembered because the set was full (never alerted as new either).
    #[serde(default)]
    pub full: u64,
}

/// Whether a name was new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Known,
    New,
    /// Unknown, but the set is full: not remembered, not reported.
    Unremembered,
}

impl Known {
    /// Names remembered.
    pub fn count(&self) -> usize {
        self.set.len()
    }

    pub fn see(&mut self, h: u64, cap: usize) -> Seen {
        if self.set.contains(&h) {
            Seen::Known
        } else if self.set.len() < cap {
            self.set.insert(h);
            Seen::New
        } else {
            self.full += 1;
            Seen::Unremembered
        }
    }

    /// Sorted, for a deterministic file.
    pub fn sorted(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.set.iter().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn from_vec(v: Vec<u64>, cap: usize) -> Known {
        Known {
            set: v.into_iter().take(cap).collect(),
            full: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (reference test vectors of the FNV
        // authors); with our tag byte prepended the input is "\x61" + "" here.
        assert_eq!(name_hash(b'a', b""), 0xaf63_dc4c_8601_ec8c);
        // "foobar" -> 0x85944171f73967e8 (same reference): tag 'f' + "oobar".
        assert_eq!(name_hash(b'f', b"oobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn capped_set_stops_remembering() {
        let mut k = Known::default();
        assert_eq!(k.see(1, 2), Seen::New);
        assert_eq!(k.see(1, 2), Seen::Known);
        assert_eq!(k.see(2, 2), Seen::New);
        assert_eq!(k.see(3, 2), Seen::Unremembered);
        assert_eq!(k.full, 1);
        assert_eq!(k.count(), 2);
    }
}

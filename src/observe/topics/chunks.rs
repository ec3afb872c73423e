//! `ChunkVec`: a growable vector of large elements (topic slots, ~700 bytes each) kept
//! in chunks of `CHUNK` that never move. A plain `Vec` doubling its capacity copies
//! every slot at each step (megabytes at the default caps, each copy a cache miss on
//! both ends) and briefly holds old and new buffers; here growth adds a chunk and the
//! only reallocation is of the first chunk while it is small (so a table of a few
//! groups stays a few slots). An index costs one extra load from the small chunk table.

const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;

pub struct ChunkVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
    /// The most elements that will ever be pushed (the last chunk is sized to it).
    most: usize,
}

impl<T> ChunkVec<T> {
    pub fn new(most: usize) -> Self {
        ChunkVec {
            chunks: Vec::new(),
            len: 0,
            most: most.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }

    /// Appends `x`, returning its index.
    pub fn push(&mut self, x: T) -> usize {
        if self.len == self.chunks.len() * CHUNK {
            // All chunks full: a new one, small if it is the first (it grows), else
            // a whole chunk (or what is left up to `most`).
            let cap = if self.chunks.is_empty() {
                1
            } else {
                CHUNK.min(self.most.saturating_sub(self.len)).max(1)
            };
            self.chunks.push(Vec::with_capacity(cap));
        }
        let most = self.most;
        if let Some(c) = self.chunks.last_mut() {
            if c.len() == c.capacity() {
                // Only the first chunk gets here: doubling, never past a chunk or `most`.
                let room = CHUNK.min(most).saturating_sub(c.len()).max(1);
                c.reserve_exact(c.len().max(1).min(room));
            }
            c.push(x);
        }
        self.len += 1;
        self.len - 1
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }

    /// Elements allocated room for.
    pub fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_across_chunks_and_bounds_capacity() {
        let n = 3 * CHUNK + 5;
        let mut v = ChunkVec::new(n);
        for i in 0..n {
            assert_eq!(v.push(i), i);
            // Never more room than twice what is used (first chunk) or a chunk ahead.
            assert!(v.capacity() <= (2 * v.len()).max(v.len() + CHUNK));
        }
        assert_eq!(v.len(), n);
        assert_eq!(v.capacity(), n, "sized to `most` exactly");
        for i in 0..n {
            assert_eq!(v.get(i), Some(&i));
        }
        assert_eq!(v.get(n), None);
        *v.get_mut(CHUNK).unwrap() = 7;
        assert_eq!(v.iter().copied().nth(CHUNK), Some(7));
        assert_eq!(v.iter().count(), n);
    }
}

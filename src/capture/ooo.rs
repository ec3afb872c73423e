//! Out-of-order buffer of one direction: non-overlapping pieces keyed by stream offset.
//!
//! Invariants: pieces never overlap, and every key is at or after the direction's next
//! expected offset. A piece may end in a run of bytes that were sent but not captured
//! (snaplen truncation), which still occupies sequence space.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

/// One buffered piece: `data` followed by `missing` uncaptured bytes.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub data: Box<[u8]>,
    pub missing: u64,
}

impl Chunk {
    /// Sequence space this piece covers.
    pub fn cover(&self) -> u64 {
        self.data.len() as u64 + self.missing
    }
}

/// What inserting a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct InsertOutcome {
    /// Some of the segment was already buffered.
    pub overlapped: bool,
    /// Some already-buffered byte differs from the new copy (the old one is kept).
    pub conflicting: bool,
    /// Data bytes newly copied into the buffer.
    pub added_bytes: usize,
}

#[derive(Debug, Default)]
pub(crate) struct OooBuffer {
    pieces: BTreeMap<u64, Chunk>,
    bytes: usize,
}

/// A segment as seen by the buffer: `data` then `missing` bytes, starting at `start`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span<'a> {
    pub start: u64,
    pub data: &'a [u8],
    pub missing: u64,
}

impl<'a> Span<'a> {
    pub fn end(&self) -> u64 {
        self.start + self.data.len() as u64 + self.missing
    }

    /// The part of this span inside `[from, to)`, as (captured bytes, uncaptured count).
    /// Callers keep `start <= from <= to <= end`.
    pub fn piece(&self, from: u64, to: u64) -> (&'a [u8], u64) {
        let data_end = self.start + self.data.len() as u64;
        let a = from.min(data_end).saturating_sub(self.start) as usize;
        let b = to.min(data_end).saturating_sub(self.start) as usize;
        let bytes = self.data.get(a..b).unwrap_or(&[]);
        let missing = to.saturating_sub(from.max(data_end));
        (bytes, missing)
    }
}

impl OooBuffer {
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Captured bytes held (the memory that the limits bound).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn first_offset(&self) -> Option<u64> {
        self.pieces.first_key_value().map(|(&k, _)| k)
    }

    /// Removes and returns the first piece if it starts at or before `at`.
    pub fn pop_at(&mut self, at: u64) -> Option<(u64, Chunk)> {
        match self.pieces.first_key_value() {
            Some((&k, _)) if k <= at => {
                let (k, c) = self.pieces.pop_first()?;
                self.bytes -= c.data.len();
                Some((k, c))
            }
            _ => None,
        }
    }

    /// Drops everything; returns the bytes freed.
    pub fn clear(&mut self) -> usize {
        self.pieces.clear();
        std::mem::take(&mut self.bytes)
    }

    /// Copies the parts of `seg` that fill holes; where a piece is already buffered the
    /// first copy wins (so a later injected segment cannot rewrite what a parser will see).
    pub fn insert(&mut self, seg: Span<'_>) -> InsertOutcome {
        let mut out = InsertOutcome::default();
        let end = seg.end();
        let mut pos = seg.start;
        while pos < end {
            // A piece starting at or before `pos` that reaches past it?
            if let Some((&k, c)) = self.pieces.range(..=pos).next_back() {
                let c_end = k + c.cover();
                if c_end > pos {
                    let o_end = c_end.min(end);
                    out.overlapped = true;
                    if !same_captured_bytes(k, c, &seg, pos, o_end) {
                        out.conflicting = true;
                    }
                    pos = o_end;
                    continue;
                }
            }
            let next = self
                .pieces
                .range((Excluded(pos), Unbounded))
                .next()
                .map(|(&k, _)| k);
            let to = next.map_or(end, |k| k.min(end));
            let (bytes, missing) = seg.piece(pos, to);
            self.bytes += bytes.len();
            out.added_bytes += bytes.len();
            self.pieces.insert(
                pos,
                Chunk {
                    data: bytes.into(),
                    missing,
                },
            );
            pos = to;
        }
        out
    }
}

/// Compares the bytes both copies actually hold inside `[from, to)`; uncaptured bytes
/// cannot conflict.
fn same_captured_bytes(k: u64, c: &Chunk, seg: &Span<'_>, from: u64, to: u64) -> bool {
    let a = from.max(seg.start).max(k);
    let b = to
        .min(seg.start + seg.data.len() as u64)
        .min(k + c.data.len() as u64);
    if a >= b {
        return true;
    }
    let old = c.data.get((a - k) as usize..(b - k) as usize);
    let new = seg
        .data
        .get((a - seg.start) as usize..(b - seg.start) as usize);
    old == new
}

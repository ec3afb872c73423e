//! Per-direction TCP reassembly: sequence numbers in, ordered [`StreamEvent`]s out.
//!
//! Positions are kept as a `u64` offset from the first stream byte (ISN+1 after a SYN,
//! else the first data segment's sequence). A segment's position is found from the
//! signed 32-bit distance between its sequence number and the next expected one, so
//! wrap-around at 2^32 needs no special case.
//!
//! In order and nothing buffered (the common case) the payload is passed on borrowed from
//! the frame. Anything ahead of a hole is copied into a bounded [`OooBuffer`] and released,
//! in order, as soon as the hole is filled, or after a `Gap` when the hole is declared
//! lost: the peer acknowledged past it, a buffer limit was hit, or the flow ended.

use super::event::{Interest, StreamEvent};
use super::limits::FlowLimits;
use super::ooo::{Chunk, OooBuffer, Span};
use super::stats::CaptureStats;

/// The largest TCP window (65535 << 14, about 1 GiB). A segment further ahead than this
/// cannot belong to the connection's current window, and buffering it would let one
/// forged sequence number open a gigabyte-sized hole.
const MAX_AHEAD: i64 = 1 << 30;

/// Why a gap is declared, for the per-cause counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GapCause {
    Ack,
    Limit,
    Close,
    Truncated,
}

/// Reassembly state of one direction of one TCP connection.
#[derive(Debug, Default)]
pub struct Reassembler {
    started: bool,
    /// Sequence number of stream offset 0.
    base: u32,
    /// Offset of the next byte to deliver; everything before it was delivered or gapped.
    next_off: u64,
    /// Offset at which the sender's FIN sits, once seen.
    fin_off: Option<u64>,
    /// Highest offset the peer acknowledged. Bytes below it that we never saw were lost
    /// by the capture, not by the network: they will never be retransmitted, so a later
    /// segment beyond them must not wait for them.
    acked_off: u64,
    ooo: OooBuffer,
}

/// Calls the consumer and returns early from the enclosing function on `Ignore`.
macro_rules! deliver {
    ($emit:expr, $ev:expr) => {
        if $emit($ev) == Interest::Ignore {
            return Interest::Ignore;
        }
    };
}

/// Returns early from the enclosing function when a nested step reported `Ignore`.
macro_rules! check {
    ($step:expr) => {
        if $step == Interest::Ignore {
            return Interest::Ignore;
        }
    };
}

/// Keeps the global buffered-bytes gauge in step with what a buffer frees or adds.
fn gauge_sub(stats: &mut CaptureStats, n: usize) {
    stats.ooo_bytes_buffered = stats.ooo_bytes_buffered.saturating_sub(n as u64);
}

fn gauge_add(stats: &mut CaptureStats, n: usize) {
    stats.ooo_bytes_buffered += n as u64;
    stats.ooo_bytes_peak = stats.ooo_bytes_peak.max(stats.ooo_bytes_buffered);
}

impl Reassembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once the stream's first byte position is known.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Sequence number of the next byte expected.
    pub fn next_seq(&self) -> u32 {
        // Truncation is the point: sequence space is modulo 2^32.
        self.base.wrapping_add(self.next_off as u32)
    }

    /// Stream bytes accounted for so far (delivered plus declared gaps).
    pub fn offset(&self) -> u64 {
        self.next_off
    }

    /// Sequence number of stream offset 0.
    pub fn base_seq(&self) -> u32 {
        self.base
    }

    /// Captured bytes waiting in the out-of-order buffer.
    pub fn buffered_bytes(&self) -> usize {
        self.ooo.bytes()
    }

    /// Pieces waiting in the out-of-order buffer.
    pub fn buffered_segments(&self) -> usize {
        self.ooo.len()
    }

    pub fn fin_seen(&self) -> bool {
        self.fin_off.is_some()
    }

    /// The sender's FIN was seen and every byte before it was delivered or gapped.
    pub fn is_done(&self) -> bool {
        matches!(self.fin_off, Some(f) if self.next_off >= f)
    }

    /// A SYN fixes the stream start at ISN+1, unless the direction already started.
    pub fn start_at_syn(&mut self, isn: u32) {
        if !self.started {
            self.started = true;
            self.base = isn.wrapping_add(1);
        }
    }

    /// Feeds one segment's payload. `seq` is the sequence number of the first payload
    /// byte (the caller adds 1 for a SYN); `missing` bytes follow `payload` uncaptured.
    #[allow(clippy::too_many_arguments)]
    pub fn segment<F>(
        &mut self,
        seq: u32,
        payload: &[u8],
        missing: u32,
        fin: bool,
        stats: &mut CaptureStats,
        limits: &FlowLimits,
        emit: &mut F,
    ) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        let mut missing = u64::from(missing);
        let len = payload.len() as u64 + missing;
        if !self.started {
            if len == 0 && !fin {
                return Interest::Continue;
            }
            // Midstream: the first segment with something in it defines offset 0.
            self.started = true;
            self.base = seq;
        }
        let dist = i64::from(seq.wrapping_sub(self.next_seq()) as i32);
        if dist > MAX_AHEAD {
            stats.segments_out_of_window += 1;
            return Interest::Continue;
        }
        let mut start = self.next_off as i64 + dist;
        if fin && self.fin_off.is_none() {
            // A FIN "before" what we already delivered is bogus; pin it where we are.
            let at = (start + len as i64).max(0) as u64;
            self.fin_off = Some(at.max(self.next_off));
        }
        if len == 0 {
            return Interest::Continue;
        }
        let mut payload = payload;
        if start < 0 {
            let cut = start.unsigned_abs();
            stats.segments_before_start += 1;
            stats.bytes_before_start += cut.min(len);
            if cut >= len {
                return Interest::Continue;
            }
            (payload, missing) = trim_front(payload, missing, cut);
            start = 0;
        }
        let start = start as u64;
        let end = start + payload.len() as u64 + missing;
        if end <= self.next_off {
            stats.retransmitted_segments += 1;
            stats.retransmitted_bytes += payload.len() as u64;
            return Interest::Continue;
        }
        let span = if start < self.next_off {
            // Partial retransmission: the old copy was already delivered (and is gone), so
            // only count the overlap, the new bytes beyond it are genuinely new.
            stats.overlaps += 1;
            let (p, m) = trim_front(payload, missing, self.next_off - start);
            Span {
                start: self.next_off,
                data: p,
                missing: m,
            }
        } else {
            Span {
                start,
                data: payload,
                missing,
            }
        };
        if span.start == self.next_off {
            if self.ooo.is_empty() {
                // Fast path: in order, nothing buffered. No copy, no allocation.
                if !span.data.is_empty() {
                    stats.bytes_delivered += span.data.len() as u64;
                    self.next_off += span.data.len() as u64;
                    deliver!(emit, StreamEvent::Data(span.data));
                }
                if span.missing > 0 {
                    return self.gap(span.missing, GapCause::Truncated, stats, emit);
                }
                return Interest::Continue;
            }
            return self.in_order_with_buffer(span, stats, emit);
        }
        stats.out_of_order_segments += 1;
        let out = self.ooo.insert(span);
        gauge_add(stats, out.added_bytes);
        if out.overlapped {
            stats.overlaps += 1;
        }
        if out.conflicting {
            stats.overlaps_conflicting += 1;
        }
        if self.acked_off > self.next_off {
            // The hole before this segment was already acknowledged by the peer.
            check!(self.release_acked(stats, emit));
        }
        self.enforce_limits(stats, limits, emit)
    }

    /// The peer acknowledged up to `ack`. If that is past our next expected byte while we
    /// hold later data (or a FIN), the capture lost bytes the receiver got: they will not
    /// be retransmitted, so declare them a gap and release what follows.
    pub fn peer_ack<F>(&mut self, ack: u32, stats: &mut CaptureStats, emit: &mut F) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        if !self.started {
            return Interest::Continue;
        }
        let dist = i64::from(ack.wrapping_sub(self.next_seq()) as i32);
        if dist <= 0 || dist > MAX_AHEAD {
            return Interest::Continue;
        }
        let mut target = self.next_off + dist as u64;
        if let Some(f) = self.fin_off {
            // The FIN takes one sequence number that is not a stream byte.
            target = target.min(f);
        }
        self.acked_off = self.acked_off.max(target);
        let fin_pending = matches!(self.fin_off, Some(f) if f > self.next_off);
        if self.ooo.is_empty() && !fin_pending {
            // Nothing is waiting: the gap is declared when the next data arrives.
            return Interest::Continue;
        }
        self.release_acked(stats, emit)
    }

    /// Declare the holes below `acked_off` lost and deliver the data after each.
    fn release_acked<F>(&mut self, stats: &mut CaptureStats, emit: &mut F) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        let target = self.acked_off;
        while self.next_off < target {
            let to = self.ooo.first_offset().map_or(target, |k| k.min(target));
            if to > self.next_off {
                let n = to - self.next_off;
                if self.gap(n, GapCause::Ack, stats, emit) == Interest::Ignore {
                    return Interest::Ignore;
                }
            }
            check!(self.drain(stats, emit));
        }
        Interest::Continue
    }

    /// End of the flow: declare every remaining hole (including one before a FIN) a gap
    /// and deliver everything buffered.
    pub fn flush<F>(&mut self, stats: &mut CaptureStats, emit: &mut F) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        while let Some(k) = self.ooo.first_offset() {
            if k > self.next_off {
                let n = k - self.next_off;
                check!(self.gap(n, GapCause::Close, stats, emit));
            }
            check!(self.drain(stats, emit));
        }
        if let Some(f) = self.fin_off
            && f > self.next_off
        {
            let n = f - self.next_off;
            return self.gap(n, GapCause::Close, stats, emit);
        }
        Interest::Continue
    }

    /// Drops all buffered data (the consumer is no longer interested, or the flow is gone).
    pub fn clear(&mut self, stats: &mut CaptureStats) {
        let freed = self.ooo.clear();
        gauge_sub(stats, freed);
    }

    /// In-order segment while pieces are buffered: deliver it up to the next buffered piece,
    /// then that piece (first copy wins), and so on, still borrowing the segment's bytes.
    fn in_order_with_buffer<F>(
        &mut self,
        seg: Span<'_>,
        stats: &mut CaptureStats,
        emit: &mut F,
    ) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        let seg_end = seg.end();
        let mut overlapped = false;
        let mut conflicting = false;
        while self.next_off < seg_end {
            if let Some((k, chunk)) = self.ooo.pop_at(self.next_off) {
                gauge_sub(stats, chunk.data.len());
                overlapped = true;
                let o_end = (k + chunk.cover()).min(seg_end);
                let (new_bytes, _) = seg.piece(k, o_end);
                let old_len = new_bytes.len().min(chunk.data.len());
                if chunk.data.get(..old_len) != new_bytes.get(..old_len) {
                    conflicting = true;
                }
                if self.emit_chunk(chunk, stats, emit) == Interest::Ignore {
                    return Interest::Ignore;
                }
                continue;
            }
            let to = self.ooo.first_offset().map_or(seg_end, |k| k.min(seg_end));
            let (bytes, gap) = seg.piece(self.next_off, to);
            if !bytes.is_empty() {
                stats.bytes_delivered += bytes.len() as u64;
                self.next_off += bytes.len() as u64;
                deliver!(emit, StreamEvent::Data(bytes));
            }
            if gap > 0 {
                check!(self.gap(gap, GapCause::Truncated, stats, emit));
            }
        }
        if overlapped {
            stats.overlaps += 1;
        }
        if conflicting {
            stats.overlaps_conflicting += 1;
        }
        self.drain(stats, emit)
    }

    /// Delivers buffered pieces that now start at the next expected offset.
    fn drain<F>(&mut self, stats: &mut CaptureStats, emit: &mut F) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        while let Some((_, chunk)) = self.ooo.pop_at(self.next_off) {
            gauge_sub(stats, chunk.data.len());
            check!(self.emit_chunk(chunk, stats, emit));
        }
        Interest::Continue
    }

    fn emit_chunk<F>(&mut self, chunk: Chunk, stats: &mut CaptureStats, emit: &mut F) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        if !chunk.data.is_empty() {
            stats.bytes_delivered += chunk.data.len() as u64;
            self.next_off += chunk.data.len() as u64;
            deliver!(emit, StreamEvent::Data(&chunk.data));
        }
        if chunk.missing > 0 {
            return self.gap(chunk.missing, GapCause::Truncated, stats, emit);
        }
        Interest::Continue
    }

    fn gap<F>(&mut self, n: u64, why: GapCause, stats: &mut CaptureStats, emit: &mut F) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        stats.gaps += 1;
        stats.gap_bytes += n;
        match why {
            GapCause::Ack => stats.gaps_by_ack += 1,
            GapCause::Limit => stats.gaps_by_limit += 1,
            GapCause::Close => stats.gaps_at_close += 1,
            GapCause::Truncated => stats.gaps_truncated += 1,
        }
        self.next_off += n;
        emit(StreamEvent::Gap { missing: n })
    }

    /// While over a limit, give up on the first hole: gap it and release what follows.
    /// Each round removes at least one piece, so this ends; afterwards the limits hold
    /// again (the total one too, since it held before this segment was added).
    fn enforce_limits<F>(
        &mut self,
        stats: &mut CaptureStats,
        limits: &FlowLimits,
        emit: &mut F,
    ) -> Interest
    where
        F: FnMut(StreamEvent<'_>) -> Interest,
    {
        loop {
            let over = self.ooo.bytes() > limits.max_ooo_bytes_per_direction
                || self.ooo.len() > limits.max_ooo_segments_per_direction
                || stats.ooo_bytes_buffered > limits.max_ooo_bytes_total as u64;
            let Some(k) = self.ooo.first_offset().filter(|_| over) else {
                return Interest::Continue;
            };
            if k > self.next_off {
                let n = k - self.next_off;
                check!(self.gap(n, GapCause::Limit, stats, emit));
            }
            check!(self.drain(stats, emit));
        }
    }
}

/// Drops the first `cut` sequence positions of a (bytes, missing) span.
fn trim_front(payload: &[u8], missing: u64, cut: u64) -> (&[u8], u64) {
    let plen = payload.len() as u64;
    if cut <= plen {
        (payload.get(cut as usize..).unwrap_or(&[]), missing)
    } else {
        (&[], missing.saturating_sub(cut - plen))
    }
}

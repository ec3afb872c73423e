//! One TCP connection as the broker's capture sees it.
//!
//! Time is capture time at the broker: a client's segment is stamped when it reaches the
//! broker, a broker's segment when it leaves. So the broker's own reactions follow the
//! client's packet after its processing time only, while anything the client does in
//! answer to the broker appears one round trip later. In `Side` terms: the client side's
//! one-way delay is 0 and the broker side's is the whole RTT.
//!
//! MQTT packets are encoded into the sending side's buffer, each with what its receiver
//! must do once it has fully arrived (`T`); `flush` sends what is buffered, cut at the
//! MSS and ACK-clocked (at most `BURST` segments per round trip), and hands back the
//! receiver's due reactions with their arrival time.

use std::collections::VecDeque;
use std::io::{self, Write};

use crate::mqtt::{Packet, encode};
use crate::synth::frame::{self, FlowAddrs};
use crate::synth::tcp::{FrameOut, Side};

pub const CLIENT: usize = 0;
pub const BROKER: usize = 1;
/// Segments per round trip (Linux initial congestion window).
const BURST: usize = 10;

pub struct Link<T> {
    pub addrs: FlowAddrs,
    pub mss: usize,
    pub rtt_ns: u64,
    sides: [Side; 2],
    /// Per sending side: (end offset in its stream, what the receiver then does).
    owed: [VecDeque<(u64, T)>; 2],
    /// Per receiving side: a delayed ACK is scheduled.
    pub delack: [bool; 2],
    /// Per sending side: a burst waits for the ACK clock; new data just queues.
    pub clocked: [bool; 2],
}

/// What one `flush` sent.
pub struct Flushed {
    pub segments: usize,
    /// Capture time after the last segment.
    pub t_end: u64,
    /// Capture time at which the receiver has it all (and may react).
    pub arrival: u64,
    /// Bytes remain for the next round trip.
    pub more: bool,
}

impl<T: Copy> Link<T> {
    pub fn new(addrs: FlowAddrs, mss: usize, rtt_ns: u64, isn: [u32; 2], ip_id: [u16; 2]) -> Self {
        Link {
            addrs,
            mss,
            rtt_ns,
            sides: [
                Side::new(isn[0], ip_id[0], 0),
                Side::new(isn[1], ip_id[1], rtt_ns),
            ],
            owed: [VecDeque::new(), VecDeque::new()],
            delack: [false; 2],
            clocked: [false; 2],
        }
    }

    /// Capture-time delay between side `i` sending and its peer being able to react.
    pub fn lag(&self, i: usize) -> u64 {
        if i == CLIENT { 0 } else { self.rtt_ns }
    }

    /// The cumulative ACK side `by` sends at `now`: the peer's bytes arrived by then.
    fn ack_now(&mut self, by: usize, now: u64) -> u32 {
        let [c, b] = &mut self.sides;
        let (me, peer) = if by == CLIENT { (c, b) } else { (b, c) };
        while let Some(&(arrival, seq)) = peer.in_flight.front() {
            if arrival > now {
                break;
            }
            me.rcv_nxt = seq;
            peer.in_flight.pop_front();
        }
        me.rcv_nxt
    }

    /// Encodes `p` at the end of side `i`'s buffer; `then` is what the receiver does
    /// once it has the whole packet. Returns the encoded length.
    pub fn push(&mut self, i: usize, level: u8, p: &Packet<'_>, then: Option<T>) -> usize {
        let side = &mut self.sides[i];
        let before = side.buf.len();
        encode::encode(p, level, &mut side.buf);
        let len = side.buf.len() - before;
        // Fixed header = type byte + remaining-length varint (continuation bit 0x80);
        // segmentation keeps it in one segment.
        let mut hdr_len = 2u8;
        while hdr_len < 5
            && side
                .buf
                .get(before + usize::from(hdr_len) - 1)
                .is_some_and(|b| b & 0x80 != 0)
        {
            hdr_len += 1;
        }
        side.headers.push_back((side.base + before as u64, hdr_len));
        if let Some(t) = then {
            let end = side.written_end();
            self.owed[i].push_back((end, t));
        }
        len
    }

    /// Nothing buffered either way and no reaction owed for bytes not yet sent.
    pub fn idle(&self) -> bool {
        self.sides.iter().all(|s| s.unsent() == 0) && self.owed.iter().all(|o| o.is_empty())
    }

    /// Sends up to one burst of side `i`'s buffered bytes at `now`; the reactions that
    /// became due (their packet is now wholly sent) are appended to `due`.
    pub fn flush<W: Write>(
        &mut self,
        out: &mut FrameOut<'_, W>,
        now: u64,
        i: usize,
        due: &mut Vec<T>,
    ) -> io::Result<Option<Flushed>> {
        let ack = self.ack_now(i, now);
        let addrs = self.addrs;
        let side = &mut self.sides[i];
        let (n, t_end) = out.data(now, &addrs, i == CLIENT, side, ack, self.mss, BURST)?;
        if n == 0 {
            return Ok(None);
        }
        let sent_end = side.sent_end();
        let more = side.unsent() > 0;
        while let Some(&(end, t)) = self.owed[i].front() {
            if end > sent_end {
                break;
            }
            self.owed[i].pop_front();
            due.push(t);
        }
        Ok(Some(Flushed {
            segments: n,
            t_end,
            arrival: t_end + self.lag(i),
            more,
        }))
    }

    /// A segment without payload from side `i` (SYN, SYN/ACK, FIN, the last ACK).
    pub fn control<W: Write>(
        &mut self,
        out: &mut FrameOut<'_, W>,
        now: u64,
        i: usize,
        flags: u8,
    ) -> io::Result<()> {
        let ack = if flags & frame::ACK != 0 {
            self.ack_now(i, now)
        } else {
            0
        };
        let mss = self.mss.min(usize::from(u16::MAX)) as u16;
        let addrs = self.addrs;
        out.control(
            now,
            &addrs,
            i == CLIENT,
            &mut self.sides[i],
            ack,
            flags,
            mss,
        )
    }

    /// A pure ACK from side `by`, only if it acknowledges something new (a real stack
    /// does not repeat an ACK it already sent or piggybacked).
    pub fn pure_ack<W: Write>(
        &mut self,
        out: &mut FrameOut<'_, W>,
        now: u64,
        by: usize,
    ) -> io::Result<bool> {
        let ack = self.ack_now(by, now);
        if !self.sides[by].ack_is_new(ack) {
            return Ok(false);
        }
        self.control(out, now, by, frame::ACK)?;
        Ok(true)
    }
}

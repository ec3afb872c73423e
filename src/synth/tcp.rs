//! One direction of a synthetic TCP connection: sequence numbers, IP id and the send
//! buffer that MQTT packets are encoded into before being cut into segments.
//!
//! Encoding into a buffer first and segmenting later is what makes coalescing and
//! splitting come out like a real stack: whatever was written between two flushes
//! goes out together, cut at the MSS.

use super::frame::{self, FlowAddrs, TcpFields};
use super::pcap_writer::PcapWriter;
use std::collections::VecDeque;
use std::io::{self, Write};

/// Window scale announced in the SYN options below (shift 7).
const WSCALE: u8 = 7;
/// Advertised window before scaling: 2048 << 7 = 256 KiB, so a 64 KB PUBLISH fits.
pub const WINDOW: u16 = 2048;
/// Serialization delay per byte at 1 Gbit/s, in ns (8 ns/byte).
const NS_PER_BYTE: u64 = 8;

#[derive(Debug)]
pub struct Side {
    /// Next sequence number this side will send.
    pub seq: u32,
    pub ip_id: u16,
    /// Encoded but not yet fully sent stream bytes.
    pub buf: Vec<u8>,
    /// Bytes of `buf` already sent.
    pub sent: usize,
    /// Absolute stream offset of `buf[0]`.
    pub base: u64,
    /// Last ACK number this side sent: a pure ACK that would repeat it is suppressed
    /// (a real stack does not re-ACK what it piggybacked; tshark would flag a dup ACK).
    pub acked: u32,
    /// (arrival time at the peer, sequence number just past the segment) for sent
    /// segments the peer has not yet seen; lets the peer ACK only what has arrived.
    pub in_flight: VecDeque<(u64, u32)>,
    /// Next sequence number expected from the peer (what this side ACKs).
    pub rcv_nxt: u32,
    pub one_way_ns: u64,
    /// (absolute offset, length) of the fixed headers of packets not yet fully sent,
    /// so segmentation can tell whether a cut falls inside one.
    pub headers: VecDeque<(u64, u8)>,
}

impl Side {
    pub fn new(isn: u32, ip_id: u16, one_way_ns: u64) -> Side {
        Side {
            in_flight: VecDeque::new(),
            rcv_nxt: 0,
            one_way_ns,
            headers: VecDeque::new(),
            seq: isn,
            ip_id,
            buf: Vec::new(),
            sent: 0,
            base: 0,
            acked: 0,
        }
    }

    /// Absolute stream offset just past the last byte encoded so far.
    pub fn written_end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Absolute stream offset just past the last byte sent.
    pub fn sent_end(&self) -> u64 {
        self.base + self.sent as u64
    }

    pub fn unsent(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Would a pure ACK with `ack` tell the peer anything new?
    pub fn ack_is_new(&self, ack: u32) -> bool {
        (ack.wrapping_sub(self.acked) as i32) > 0
    }
}

/// Writes frames of one connection; owns nothing but the header scratch buffer.
pub struct FrameOut<'w, W: Write> {
    pub w: &'w mut PcapWriter<W>,
    pub hdr: [u8; frame::MAX_HDR],
    /// Last timestamp written: keeps the file's time monotonic when a burst of
    /// back-to-back segments runs past the next scheduled event.
    pub last_ts: u64,
    /// Cut segments anywhere, even inside an MQTT fixed header (as a real stack does).
    /// When false, a cut that would fall inside a fixed header is moved to its start.
    pub split_headers: bool,
    /// Fixed headers that straddle two segments (only with `split_headers`).
    pub straddled_headers: u64,
}

impl<W: Write> FrameOut<'_, W> {
    fn write(
        &mut self,
        ts: u64,
        addrs: &FlowAddrs,
        t: &TcpFields<'_>,
        payload: &[u8],
    ) -> io::Result<()> {
        let ts = ts.max(self.last_ts);
        let n = frame::build_headers(&mut self.hdr, addrs, t, payload);
        self.w.write_frame(ts, &[&self.hdr[..n], payload])?;
        self.last_ts = ts;
        Ok(())
    }

    /// A segment without payload (SYN, pure ACK, FIN) from `from` to its peer.
    #[allow(clippy::too_many_arguments)]
    pub fn control(
        &mut self,
        ts: u64,
        addrs: &FlowAddrs,
        c2s: bool,
        from: &mut Side,
        ack: u32,
        flags: u8,
        mss: u16,
    ) -> io::Result<()> {
        // SYNs carry MSS, SACK-permitted and window-scale as Linux does; the scale makes
        // tshark (and any reassembler) see a window large enough for 64 KB messages.
        let m = mss.to_be_bytes();
        let syn_opts = [2, 4, m[0], m[1], 4, 2, 1, 1, 1, 3, 3, WSCALE];
        let options: &[u8] = if flags & frame::SYN != 0 {
            &syn_opts
        } else {
            &[]
        };
        let window = if flags & frame::SYN != 0 {
            64_240
        } else {
            WINDOW
        };
        let t = TcpFields {
            c2s,
            seq: from.seq,
            ack,
            flags,
            window,
            ip_id: from.ip_id,
            options,
        };
        // Arrival is computed from the planned time, not the (possibly clamped) file
        // timestamp, so a reply scheduled one-way later always sees the segment.
        self.write(ts, addrs, &t, &[])?;
        if flags & frame::ACK != 0 {
            from.acked = ack;
        }
        from.ip_id = from.ip_id.wrapping_add(1);
        if flags & (frame::SYN | frame::FIN) != 0 {
            // SYN and FIN each consume one sequence number.
            from.seq = from.seq.wrapping_add(1);
            from.in_flight.push_back((ts + from.one_way_ns, from.seq));
        }
        Ok(())
    }

    /// Sends up to `max_segs` MSS-sized segments of `from`'s unsent bytes. Returns the
    /// number of segments and the timestamp after the last one. The buffer is
    /// compacted once everything is sent.
    #[allow(clippy::too_many_arguments)]
    pub fn data(
        &mut self,
        ts: u64,
        addrs: &FlowAddrs,
        c2s: bool,
        from: &mut Side,
        ack: u32,
        mss: usize,
        max_segs: usize,
    ) -> io::Result<(usize, u64)> {
        let mut ts = ts;
        let mut n = 0;
        while from.sent < from.buf.len() && n < max_segs {
            let mut len = (from.buf.len() - from.sent).min(mss);
            let seg_start = from.sent_end();
            let cut = seg_start + len as u64;
            while let Some(&(h_start, h_len)) = from.headers.front() {
                let h_end = h_start + u64::from(h_len);
                if h_end <= cut {
                    from.headers.pop_front(); // wholly in this or an earlier segment
                    continue;
                }
                if h_start < cut {
                    // The cut falls inside this header.
                    if self.split_headers || h_start <= seg_start {
                        self.straddled_headers += 1;
                    } else {
                        len = (h_start - seg_start) as usize;
                    }
                }
                break;
            }
            let end = from.sent + len;
            // PSH marks the end of what the application handed over, as Linux does.
            let psh = if end == from.buf.len() { frame::PSH } else { 0 };
            let t = TcpFields {
                c2s,
                seq: from.seq,
                ack,
                flags: frame::ACK | psh,
                window: WINDOW,
                ip_id: from.ip_id,
                options: &[],
            };
            let payload = &from.buf[from.sent..end];
            self.write(ts, addrs, &t, payload)?;
            from.ip_id = from.ip_id.wrapping_add(1);
            from.acked = ack;
            from.seq = from.seq.wrapping_add(len as u32);
            from.in_flight.push_back((ts + from.one_way_ns, from.seq));
            ts += (len as u64 + 54) * NS_PER_BYTE;
            from.sent = end;
            n += 1;
        }
        if from.sent == from.buf.len() {
            from.base += from.buf.len() as u64;
            from.buf.clear();
            from.sent = 0;
        }
        Ok((n, ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::frame::IpPair;
    use crate::synth::pcap_writer::TsResolution;

    fn addrs() -> FlowAddrs {
        FlowAddrs {
            client_mac: [2, 0, 0, 0, 0, 1],
            server_mac: [2, 0, 0, 0, 0, 2],
            ip: IpPair::V4 {
                client: [10, 0, 0, 2],
                server: [10, 0, 0, 1],
            },
            client_port: 40_000,
            server_port: 1883,
        }
    }

    /// Two packets: the second one's 3-byte fixed header starts 1 byte before the MSS.
    /// Returns the TCP payload lengths of the segments and the straddle count.
    fn cut(split_headers: bool) -> (Vec<usize>, u64) {
        let mut w = PcapWriter::new(Vec::new(), TsResolution::Micros).unwrap();
        let mut out = FrameOut {
            w: &mut w,
            hdr: [0; frame::MAX_HDR],
            last_ts: 0,
            split_headers,
            straddled_headers: 0,
        };
        let mut side = Side::new(1000, 1, 0);
        side.buf = vec![0u8; 1459 + 300];
        side.headers.push_back((0, 3));
        side.headers.push_back((1459, 3));
        let (n, _) = out.data(0, &addrs(), true, &mut side, 1, 1460, 10).unwrap();
        let straddled = out.straddled_headers;
        let bytes = w.finish().unwrap();
        // Walk the records: 16-byte record header, 14 Ethernet + 20 IP + 20 TCP.
        let mut lens = Vec::new();
        let mut off = 24;
        while off + 16 <= bytes.len() {
            let incl = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
            lens.push(incl - 54);
            off += 16 + incl;
        }
        assert_eq!(lens.len(), n);
        assert_eq!(side.seq, 1000 + 1759, "every byte sent exactly once");
        (lens, straddled)
    }

    #[test]
    fn cut_moves_to_header_start_unless_splitting_is_allowed() {
        assert_eq!(cut(false), (vec![1459, 300], 0));
        assert_eq!(cut(true), (vec![1460, 299], 1));
    }
}

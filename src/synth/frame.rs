//! Ethernet + IPv4/IPv6 + TCP header construction with correct lengths and checksums.
//!
//! Hand-built into a fixed stack buffer instead of etherparse's `PacketBuilder`: the
//! payload (up to 64 KB) is then never copied, only checksummed, and the generator
//! stays allocation-free per frame.

/// TCP flag bits.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// Max header bytes: Ethernet 14 + IPv6 40 + TCP 20 + 20 option bytes.
pub const MAX_HDR: usize = 94;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpPair {
    V4 { client: [u8; 4], server: [u8; 4] },
    V6 { client: [u8; 16], server: [u8; 16] },
}

/// Addresses of one TCP connection; "client" is the MQTT client side.
#[derive(Clone, Copy, Debug)]
pub struct FlowAddrs {
    pub client_mac: [u8; 6],
    pub server_mac: [u8; 6],
    pub ip: IpPair,
    pub client_port: u16,
    pub server_port: u16,
}

/// Per-segment TCP fields.
#[derive(Clone, Copy, Debug)]
pub struct TcpFields<'a> {
    /// true = client to server.
    pub c2s: bool,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// IPv4 identification (ignored for IPv6).
    pub ip_id: u16,
    /// TCP options, already padded to a multiple of 4 bytes (at most 20).
    pub options: &'a [u8],
}

/// Writes the headers for `payload` into `buf` and returns their length.
pub fn build_headers(
    buf: &mut [u8; MAX_HDR],
    f: &FlowAddrs,
    t: &TcpFields<'_>,
    payload: &[u8],
) -> usize {
    let (src_mac, dst_mac) = if t.c2s {
        (f.client_mac, f.server_mac)
    } else {
        (f.server_mac, f.client_mac)
    };
    let (sport, dport) = if t.c2s {
        (f.client_port, f.server_port)
    } else {
        (f.server_port, f.client_port)
    };
    buf[0..6].copy_from_slice(&dst_mac);
    buf[6..12].copy_from_slice(&src_mac);
    let opt_len = t.options.len().min(20) & !3;
    let tcp_len = 20 + opt_len;
    let seg_len = tcp_len + payload.len();

    let (ip_len, pseudo_sum) = match f.ip {
        IpPair::V4 { client, server } => {
            let (src, dst) = if t.c2s {
                (client, server)
            } else {
                (server, client)
            };
            buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut buf[14..34];
            ip[0] = 0x45; // version 4, IHL 5
            ip[1] = 0;
            ip[2..4].copy_from_slice(&((20 + seg_len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&t.ip_id.to_be_bytes());
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF, as Linux sets on TCP
            ip[8] = 64; // TTL
            ip[9] = 6; // TCP
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&src);
            ip[16..20].copy_from_slice(&dst);
            let c = fold(sum_bytes(0, ip));
            ip[10..12].copy_from_slice(&(!c).to_be_bytes());
            let mut ps = sum_bytes(0, &src);
            ps = sum_bytes(ps, &dst);
            ps += 6 + seg_len as u64;
            (20, ps)
        }
        IpPair::V6 { client, server } => {
            let (src, dst) = if t.c2s {
                (client, server)
            } else {
                (server, client)
            };
            buf[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let ip = &mut buf[14..54];
            ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes()); // version 6, no class/label
            ip[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
            ip[6] = 6; // next header TCP
            ip[7] = 64; // hop limit
            ip[8..24].copy_from_slice(&src);
            ip[24..40].copy_from_slice(&dst);
            let mut ps = sum_bytes(0, &src);
            ps = sum_bytes(ps, &dst);
            ps += 6 + seg_len as u64;
            (40, ps)
        }
    };

    let start = 14 + ip_len;
    let tcp = &mut buf[start..start + tcp_len];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&t.seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&t.ack.to_be_bytes());
    tcp[12] = ((tcp_len / 4) as u8) << 4;
    tcp[13] = t.flags;
    tcp[14..16].copy_from_slice(&t.window.to_be_bytes());
    tcp[16..18].copy_from_slice(&[0, 0]);
    tcp[18..20].copy_from_slice(&[0, 0]); // urgent pointer
    tcp[20..].copy_from_slice(&t.options[..opt_len]);
    let mut s = sum_bytes(pseudo_sum, tcp);
    s = sum_bytes(s, payload);
    let c = !fold(s);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    start + tcp_len
}

/// Ones-complement accumulation (RFC 1071) over big-endian 16-bit words, done 32 bits at
/// a time: folding later gives the same result because 2^16 = 1 (mod 0xffff). An odd
/// trailing byte is padded with zero, so only the last slice of a chain may be odd.
fn sum_bytes(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn flow(ip: IpPair) -> FlowAddrs {
        FlowAddrs {
            client_mac: [2, 0, 0, 0, 0, 1],
            server_mac: [2, 0, 0, 0, 0, 2],
            ip,
            client_port: 40000,
            server_port: 1883,
        }
    }

    /// Cross-check against etherparse, an independent implementation of the checksums.
    fn check(ip: IpPair, payload: &[u8]) {
        let f = flow(ip);
        let t = TcpFields {
            c2s: false,
            seq: 0xdead_beef,
            ack: 17,
            flags: ACK | PSH,
            window: 502,
            ip_id: 99,
            options: &[2, 4, 5, 0xb4, 1, 3, 3, 7],
        };
        let mut hb = [0u8; MAX_HDR];
        let n = build_headers(&mut hb, &f, &t, payload);
        let mut frame = hb[..n].to_vec();
        frame.extend_from_slice(payload);
        let p = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("no tcp")
        };
        assert_eq!(tcp.source_port(), 1883);
        assert_eq!(tcp.destination_port(), 40000);
        assert_eq!(tcp.sequence_number(), 0xdead_beef);
        assert_eq!(tcp.payload(), payload);
        let want = match p.net {
            Some(NetSlice::Ipv4(v4)) => {
                let h = v4.header();
                assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap()
            }
            Some(NetSlice::Ipv6(v6)) => {
                let h = v6.header();
                tcp.calc_checksum_ipv6(h.source(), h.destination()).unwrap()
            }
            _ => panic!("no ip"),
        };
        assert_eq!(tcp.checksum(), want);
    }

    #[test]
    fn ipv4_checksums_agree_with_etherparse() {
        let ip = IpPair::V4 {
            client: [10, 1, 2, 3],
            server: [10, 0, 0, 1],
        };
        check(ip, b"");
        check(ip, b"odd");
        check(ip, &[0xff; 1461]);
    }

    #[test]
    fn ipv6_checksums_agree_with_etherparse() {
        let mut c = [0u8; 16];
        c[0] = 0xfd;
        c[15] = 7;
        let mut s = [0u8; 16];
        s[0] = 0xfd;
        s[15] = 1;
        let ip = IpPair::V6 {
            client: c,
            server: s,
        };
        check(ip, b"");
        check(ip, b"x");
        check(ip, &[0xab; 9001]);
    }
}

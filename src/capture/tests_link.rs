//! parse_frame on hand-built frames of every link type. Expected values are the ones
//! written into the frames, never read back from the parser's earlier output.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use etherparse::{PacketBuilder, VlanId};

use super::link::{LinkType, SkipReason, parse_frame};

const PAYLOAD: &[u8] = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c";
const V4_SRC: [u8; 4] = [192, 168, 1, 10];
const V4_DST: [u8; 4] = [10, 0, 0, 100];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn v4(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

fn v6(ip: [u8; 16], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
}

/// IPv4 + TCP (seq 1000, ack 2000, PSH|ACK) + payload, built by hand.
fn raw_v4_tcp(payload: &[u8], ip_opts: &[u8], tcp_opts: &[u8], frag: u16) -> Vec<u8> {
    assert!(ip_opts.len().is_multiple_of(4) && tcp_opts.len().is_multiple_of(4));
    let ihl = 20 + ip_opts.len();
    let thl = 20 + tcp_opts.len();
    let total = (ihl + thl + payload.len()) as u16;
    let mut p = vec![0x40 | (ihl / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, 6, 0, 0]);
    p.extend_from_slice(&V4_SRC);
    p.extend_from_slice(&V4_DST);
    p.extend_from_slice(ip_opts);
    p.extend_from_slice(&tcp_header(54321, 1883, 1000, 2000, 0x18, tcp_opts));
    p.extend_from_slice(payload);
    p
}

fn tcp_header(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, opts: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push((((20 + opts.len()) / 4) as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t
}

/// IPv6 + hop-by-hop options header + destination options header + TCP, by hand.
fn raw_v6_ext_tcp(payload: &[u8]) -> Vec<u8> {
    let tcp = tcp_header(40000, 8883, 0xffff_fff0, 7, 0x10, &[]);
    let hbh = [60u8, 0, 1, 4, 0, 0, 0, 0]; // next: dest opts; PadN
    let dst = [6u8, 0, 1, 4, 0, 0, 0, 0]; // next: TCP; PadN
    let plen = (hbh.len() + dst.len() + tcp.len() + payload.len()) as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[0, 64]); // next header: hop-by-hop
    p.extend_from_slice(&V6_SRC);
    p.extend_from_slice(&V6_DST);
    p.extend_from_slice(&hbh);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&tcp);
    p.extend_from_slice(payload);
    p
}

fn eth_header(ether_type: u16) -> Vec<u8> {
    let mut e = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    e.extend_from_slice(&ether_type.to_be_bytes());
    e
}

fn check_v4(link: LinkType, frame: &[u8]) {
    let s = parse_frame(link, frame).expect("tcp segment");
    assert_eq!(s.src, v4(V4_SRC, 54321));
    assert_eq!(s.dst, v4(V4_DST, 1883));
    assert_eq!((s.seq, s.ack), (1000, 2000));
    assert!(s.ack_flag && !s.syn && !s.fin && !s.rst);
    assert_eq!(s.payload, PAYLOAD);
    assert!(!s.truncated);
    assert_eq!(s.missing, 0);
}

#[test]
fn from_dlt_numbers() {
    use LinkType::*;
    let cases = [
        (1, Ethernet),
        (113, LinuxSll),
        (276, LinuxSll2),
        (0, Null),
        (108, Loop),
        (101, RawIp),
        (12, RawIp),
        (14, RawIp),
        (228, Ipv4),
        (229, Ipv6),
    ];
    for (dlt, lt) in cases {
        assert_eq!(LinkType::from_dlt(dlt), Some(lt), "dlt {dlt}");
    }
    for dlt in [-1, 2, 9, 105, 127, 147, 1000] {
        assert_eq!(LinkType::from_dlt(dlt), None, "dlt {dlt}");
    }
}

#[test]
fn ethernet_built_with_packet_builder() {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(V4_SRC, V4_DST, 64)
        .tcp(54321, 1883, 1000, 65535)
        .psh()
        .ack(2000);
    let mut f = Vec::new();
    b.write(&mut f, PAYLOAD).unwrap();
    check_v4(LinkType::Ethernet, &f);
}

#[test]
fn ethernet_single_vlan() {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .single_vlan(VlanId::try_new(42).unwrap())
        .ipv4(V4_SRC, V4_DST, 64)
        .tcp(54321, 1883, 1000, 65535)
        .ack(2000);
    let mut f = Vec::new();
    b.write(&mut f, PAYLOAD).unwrap();
    assert_eq!(&f[12..14], &[0x81, 0x00], "builder wrote an 802.1Q tag");
    check_v4(LinkType::Ethernet, &f);
}

#[test]
fn ethernet_qinq_by_hand() {
    // 802.1ad outer tag, 802.1Q inner tag, then IPv4.
    let mut f = eth_header(0x88a8);
    f.extend_from_slice(&[0x00, 0x64, 0x81, 0x00]); // outer: vid 100, next 802.1Q
    f.extend_from_slice(&[0x00, 0x0a, 0x08, 0x00]); // inner: vid 10, next IPv4
    f.extend_from_slice(&raw_v4_tcp(PAYLOAD, &[], &[], 0));
    check_v4(LinkType::Ethernet, &f);
}

#[test]
fn ethernet_too_many_vlan_tags() {
    let mut f = eth_header(0x8100);
    for _ in 0..8 {
        f.extend_from_slice(&[0x00, 0x01, 0x81, 0x00]);
    }
    f.extend_from_slice(&raw_v4_tcp(PAYLOAD, &[], &[], 0));
    assert_eq!(
        parse_frame(LinkType::Ethernet, &f),
        Err(SkipReason::TooManyVlanTags)
    );
}

#[test]
fn ethernet_padding_is_not_payload() {
    // A pure ACK is 54 bytes; Ethernet pads it to 60. The 6 pad bytes must not appear.
    let mut f = eth_header(0x0800);
    f.extend_from_slice(&raw_v4_tcp(&[], &[], &[], 0));
    assert_eq!(f.len(), 54);
    f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0]);
    let s = parse_frame(LinkType::Ethernet, &f).unwrap();
    assert_eq!(s.payload, b"");
    assert!(!s.truncated);
    // Same with a 2-byte payload (56 bytes + 4 pad).
    let mut f = eth_header(0x0800);
    f.extend_from_slice(&raw_v4_tcp(b"\xc0\x00", &[], &[], 0));
    f.extend_from_slice(&[0, 0, 0, 0]);
    let s = parse_frame(LinkType::Ethernet, &f).unwrap();
    assert_eq!(s.payload, b"\xc0\x00");
}

#[test]
fn ipv4_and_tcp_options() {
    // IPv4: NOP NOP NOP EOL; TCP: MSS 1460, NOP NOP, timestamps.
    let ip_opts = [1, 1, 1, 0];
    let tcp_opts = [2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let mut f = eth_header(0x0800);
    f.extend_from_slice(&raw_v4_tcp(PAYLOAD, &ip_opts, &tcp_opts, 0));
    check_v4(LinkType::Ethernet, &f);
}

#[test]
fn linux_sll() {
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    assert_eq!(f.len(), 16);
    f.extend_from_slice(&raw_v4_tcp(PAYLOAD, &[], &[], 0));
    check_v4(LinkType::LinuxSll, &f);
    // The same header announcing ARP is not IP.
    f[14..16].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(parse_frame(LinkType::LinuxSll, &f), Err(SkipReason::NotIp));
}

#[test]
fn linux_sll2() {
    // protocol, reserved, ifindex, ARPHRD_ETHER, packet type, addr len, addr[8]
    let mut f = vec![
        0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0,
    ];
    assert_eq!(f.len(), 20);
    f.extend_from_slice(&raw_v6_ext_tcp(PAYLOAD));
    let s = parse_frame(LinkType::LinuxSll2, &f).unwrap();
    assert_eq!(s.src, v6(V6_SRC, 40000));
    assert_eq!(s.payload, PAYLOAD);
}

#[test]
fn bsd_null_ipv4_both_byte_orders() {
    let ip = raw_v4_tcp(PAYLOAD, &[], &[], 0);
    for hdr in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
        let mut f = hdr.to_vec();
        f.extend_from_slice(&ip);
        check_v4(LinkType::Null, &f);
    }
}

#[test]
fn bsd_null_ipv6_family_values() {
    let ip = raw_v6_ext_tcp(PAYLOAD);
    // 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS; little- and big-endian writers.
    for fam in [24u32, 28, 30] {
        for hdr in [fam.to_le_bytes(), fam.to_be_bytes()] {
            let mut f = hdr.to_vec();
            f.extend_from_slice(&ip);
            let s = parse_frame(LinkType::Null, &f).unwrap();
            assert_eq!(s.dst, v6(V6_DST, 8883), "family {fam}");
            assert_eq!(s.payload, PAYLOAD);
        }
    }
    // Linux's AF_INET6 (10) never appears on a BSD NULL link; unknown families are not IP.
    let mut f = 99u32.to_le_bytes().to_vec();
    f.extend_from_slice(&ip);
    assert_eq!(parse_frame(LinkType::Null, &f), Err(SkipReason::NotIp));
}

#[test]
fn bsd_loop_is_network_order() {
    let mut f = vec![0, 0, 0, 2];
    f.extend_from_slice(&raw_v4_tcp(PAYLOAD, &[], &[], 0));
    check_v4(LinkType::Loop, &f);
    let mut f = vec![0, 0, 0, 24];
    f.extend_from_slice(&raw_v6_ext_tcp(PAYLOAD));
    assert_eq!(parse_frame(LinkType::Loop, &f).unwrap().payload, PAYLOAD);
}

#[test]
fn raw_ipv4_and_link_specific_raw_types() {
    let f = raw_v4_tcp(PAYLOAD, &[], &[], 0);
    check_v4(LinkType::RawIp, &f);
    check_v4(LinkType::Ipv4, &f);
    assert_eq!(parse_frame(LinkType::Ipv6, &f), Err(SkipReason::NotIp));
}

#[test]
fn raw_ipv6_with_extension_headers() {
    let f = raw_v6_ext_tcp(PAYLOAD);
    for link in [LinkType::RawIp, LinkType::Ipv6] {
        let s = parse_frame(link, &f).unwrap();
        assert_eq!(s.src, v6(V6_SRC, 40000));
        assert_eq!(s.dst, v6(V6_DST, 8883));
        assert_eq!((s.seq, s.ack), (0xffff_fff0, 7));
        assert!(s.ack_flag && !s.syn);
        assert_eq!(s.payload, PAYLOAD);
    }
    assert_eq!(parse_frame(LinkType::Ipv4, &f), Err(SkipReason::NotIp));
}

#[test]
fn ipv6_built_with_packet_builder_syn() {
    let b = PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
        .tcp(40000, 1883, 77, 1024)
        .syn();
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    let s = parse_frame(LinkType::RawIp, &f).unwrap();
    assert!(s.syn && !s.ack_flag);
    assert_eq!(s.seq, 77);
    assert!(s.payload.is_empty());
}

#[test]
fn ipv4_fragments_are_skipped() {
    // More-fragments set, offset 0: the first fragment.
    let first = raw_v4_tcp(PAYLOAD, &[], &[], 0x2000);
    assert_eq!(
        parse_frame(LinkType::RawIp, &first),
        Err(SkipReason::IpFragment)
    );
    // Offset 185 (x8 = 1480 bytes), MF clear: the last fragment.
    let last = raw_v4_tcp(PAYLOAD, &[], &[], 185);
    assert_eq!(
        parse_frame(LinkType::RawIp, &last),
        Err(SkipReason::IpFragment)
    );
    // Don't-fragment alone is an ordinary packet.
    check_v4(LinkType::RawIp, &raw_v4_tcp(PAYLOAD, &[], &[], 0x4000));
}

#[test]
fn ipv6_fragment_header_is_skipped() {
    let tcp = tcp_header(1, 2, 3, 4, 0x10, &[]);
    let frag = [6u8, 0, 0x00, 0x01, 0, 0, 0, 9]; // next TCP, offset 0, M=1
    let plen = (frag.len() + tcp.len()) as u16;
    let mut f = vec![0x60, 0, 0, 0];
    f.extend_from_slice(&plen.to_be_bytes());
    f.extend_from_slice(&[44, 64]);
    f.extend_from_slice(&V6_SRC);
    f.extend_from_slice(&V6_DST);
    f.extend_from_slice(&frag);
    f.extend_from_slice(&tcp);
    assert_eq!(
        parse_frame(LinkType::RawIp, &f),
        Err(SkipReason::IpFragment)
    );
}

#[test]
fn snaplen_truncated_payload_is_kept_and_flagged() {
    let mut f = eth_header(0x0800);
    f.extend_from_slice(&raw_v4_tcp(PAYLOAD, &[], &[], 0));
    // Keep 14 + 20 + 20 + 5 bytes: 5 of the 12 payload bytes.
    f.truncate(59);
    let s = parse_frame(LinkType::Ethernet, &f).unwrap();
    assert_eq!(s.payload, &PAYLOAD[..5]);
    assert!(s.truncated);
    assert_eq!(s.missing, 7);
    assert_eq!(s.seq_len(), 12);

    let mut f = raw_v6_ext_tcp(PAYLOAD);
    let keep = f.len() - 10;
    f.truncate(keep);
    let s = parse_frame(LinkType::RawIp, &f).unwrap();
    assert_eq!(s.payload, &PAYLOAD[..2]);
    assert_eq!(s.missing, 10);
}

#[test]
fn truncated_headers() {
    let mut f = eth_header(0x0800);
    f.extend_from_slice(&raw_v4_tcp(PAYLOAD, &[], &[], 0));
    // Inside the TCP header, the IP header, and the Ethernet header.
    for keep in [14 + 20 + 10, 14 + 10, 14, 6, 0] {
        assert_eq!(
            parse_frame(LinkType::Ethernet, &f[..keep]),
            Err(SkipReason::Truncated),
            "keep {keep}"
        );
    }
    assert_eq!(
        parse_frame(LinkType::LinuxSll, &[0; 15]),
        Err(SkipReason::Truncated)
    );
    assert_eq!(
        parse_frame(LinkType::LinuxSll2, &[0; 19]),
        Err(SkipReason::Truncated)
    );
    assert_eq!(
        parse_frame(LinkType::Null, &[2, 0, 0]),
        Err(SkipReason::Truncated)
    );
    assert_eq!(
        parse_frame(LinkType::Null, &[2, 0, 0, 0]),
        Err(SkipReason::Truncated)
    );
    assert_eq!(
        parse_frame(LinkType::RawIp, &[]),
        Err(SkipReason::Truncated)
    );
}

#[test]
fn not_tcp_and_not_ip() {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(V4_SRC, V4_DST, 1)
        .udp(1, 2);
    let mut f = Vec::new();
    b.write(&mut f, b"x").unwrap();
    assert_eq!(parse_frame(LinkType::Ethernet, &f), Err(SkipReason::NotTcp));
    let mut arp = eth_header(0x0806);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(
        parse_frame(LinkType::Ethernet, &arp),
        Err(SkipReason::NotIp)
    );
    // 802.3 frame: a length, not an EtherType, in bytes 12..14.
    let mut llc = eth_header(0x0040);
    llc.extend_from_slice(&[0xaa; 64]);
    assert_eq!(
        parse_frame(LinkType::Ethernet, &llc),
        Err(SkipReason::NotIp)
    );
}

#[test]
fn malformed_headers() {
    // IHL 4 (< 5 words).
    let mut f = raw_v4_tcp(PAYLOAD, &[], &[], 0);
    f[0] = 0x44;
    assert_eq!(parse_frame(LinkType::RawIp, &f), Err(SkipReason::Malformed));
    // TCP data offset 4 (< 5 words).
    let mut f = raw_v4_tcp(PAYLOAD, &[], &[], 0);
    f[20 + 12] = 0x40;
    assert_eq!(parse_frame(LinkType::RawIp, &f), Err(SkipReason::Malformed));
    // IP total length ends inside the TCP header although more bytes were captured.
    let mut f = raw_v4_tcp(PAYLOAD, &[], &[], 0);
    f[2..4].copy_from_slice(&30u16.to_be_bytes());
    assert_eq!(parse_frame(LinkType::RawIp, &f), Err(SkipReason::Malformed));
    // Version 5 on a raw link.
    assert_eq!(
        parse_frame(LinkType::RawIp, &[0x50; 40]),
        Err(SkipReason::NotIp)
    );
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random frames of every length up to 200, for every link type.
    let mut x: u32 = 0x1234_5678;
    let mut buf = Vec::new();
    for len in 0..200 {
        buf.clear();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf.push(x as u8);
        }
        for link in LinkType::ALL {
            if let Ok(s) = parse_frame(link, &buf) {
                assert!(s.payload.len() <= buf.len());
            }
        }
    }
}

#[test]
fn skip_reason_names_are_unique() {
    let mut names: Vec<_> = SkipReason::ALL.iter().map(|r| r.kind()).collect();
    for (i, r) in SkipReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), SkipReason::ALL.len());
}

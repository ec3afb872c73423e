//! Link layer: strips the capture's link header and hands the IP packet to [`parse_ip`].
//!
//! Ethernet and its VLAN tags are sliced by etherparse; the small fixed headers of
//! Linux cooked capture (SLL/SLL2) and BSD loopback (NULL/LOOP) are read here because
//! they are a couple of bytes at a known offset.

use etherparse::{EtherType, Ethernet2Slice, SingleVlanSlice, ether_type};

use super::ip::parse_ip;
pub use super::segment::{SkipReason, TcpSegment};

/// Link-layer header types we can decode, named after libpcap's LINKTYPE_* values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1), with any number of 802.1Q / 802.1ad tags up to a small cap.
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113): Linux "any" device, 16-byte cooked header.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276): 20-byte cooked header with interface index.
    LinuxSll2,
    /// LINKTYPE_NULL (0): BSD loopback, 4-byte address family in the *capturing host's* byte order.
    Null,
    /// LINKTYPE_LOOP (108): OpenBSD loopback, 4-byte address family in network byte order.
    Loop,
    /// LINKTYPE_RAW (101, also DLT 12/14 on some systems): IPv4 or IPv6 by version nibble.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
}

impl LinkType {
    /// Maps a pcap DLT / LINKTYPE number (as `pcap::Capture::get_datalink().0` returns it).
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            // 12 is DLT_RAW on most systems, 14 on OpenBSD; 101 is the portable LINKTYPE_RAW.
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            _ => return None,
        })
    }

    /// Every variant, for tests and for fuzzing all decoders with the same input.
    pub const ALL: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Null,
        LinkType::Loop,
        LinkType::RawIp,
        LinkType::Ipv4,
        LinkType::Ipv6,
    ];
}

/// How many stacked VLAN tags we peel before giving up (QinQ is 2; 4 leaves slack).
const MAX_VLAN_TAGS: usize = 4;
const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;
const NULL_LEN: usize = 4;

/// Decodes one captured frame down to its TCP segment.
///
/// Never panics on any input; everything that is not a complete-enough IPv4/IPv6 TCP
/// header comes back as a [`SkipReason`].
pub fn parse_frame(link: LinkType, frame: &[u8]) -> Result<TcpSegment<'_>, SkipReason> {
    match link {
        LinkType::Ethernet => {
            let eth =
                Ethernet2Slice::from_slice_without_fcs(frame).map_err(|_| SkipReason::Truncated)?;
            parse_ether_payload(eth.ether_type(), eth.payload_slice())
        }
        LinkType::LinuxSll => {
            // packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
            let (hdr, rest) = frame
                .split_at_checked(SLL_LEN)
                .ok_or(SkipReason::Truncated)?;
            parse_ether_payload(be16(hdr, 14), rest)
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
            let (hdr, rest) = frame
                .split_at_checked(SLL2_LEN)
                .ok_or(SkipReason::Truncated)?;
            parse_ether_payload(be16(hdr, 0), rest)
        }
        LinkType::Null => {
            let (hdr, rest) = frame
                .split_at_checked(NULL_LEN)
                .ok_or(SkipReason::Truncated)?;
            let bytes = [hdr[0], hdr[1], hdr[2], hdr[3]];
            // Host byte order of the machine that captured, which we do not know. A family
            // is a small number, so whichever reading fits in 16 bits is the right one.
            let le = u32::from_le_bytes(bytes);
            let family = if le <= 0xffff {
                le
            } else {
                u32::from_be_bytes(bytes)
            };
            parse_bsd_family(family, rest)
        }
        LinkType::Loop => {
            let (hdr, rest) = frame
                .split_at_checked(NULL_LEN)
                .ok_or(SkipReason::Truncated)?;
            parse_bsd_family(u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]), rest)
        }
        LinkType::RawIp => match frame.first().map(|b| b >> 4) {
            Some(4 | 6) => parse_ip(frame),
            Some(_) => Err(SkipReason::NotIp),
            None => Err(SkipReason::Truncated),
        },
        LinkType::Ipv4 => match frame.first().map(|b| b >> 4) {
            Some(4) => parse_ip(frame),
            Some(_) => Err(SkipReason::NotIp),
            None => Err(SkipReason::Truncated),
        },
        LinkType::Ipv6 => match frame.first().map(|b| b >> 4) {
            Some(6) => parse_ip(frame),
            Some(_) => Err(SkipReason::NotIp),
            None => Err(SkipReason::Truncated),
        },
    }
}

/// Big-endian u16 at `at`; callers pass a header slice of known length.
fn be16(hdr: &[u8], at: usize) -> EtherType {
    let hi = hdr.get(at).copied().unwrap_or(0);
    let lo = hdr.get(at + 1).copied().unwrap_or(0);
    EtherType(u16::from_be_bytes([hi, lo]))
}

/// Follows an EtherType through VLAN tags to IPv4/IPv6.
fn parse_ether_payload(mut et: EtherType, mut rest: &[u8]) -> Result<TcpSegment<'_>, SkipReason> {
    for _ in 0..=MAX_VLAN_TAGS {
        match et {
            ether_type::IPV4 | ether_type::IPV6 => return parse_ip(rest),
            ether_type::VLAN_TAGGED_FRAME
            | ether_type::PROVIDER_BRIDGING
            | ether_type::VLAN_DOUBLE_TAGGED_FRAME => {
                let vlan = SingleVlanSlice::from_slice(rest).map_err(|_| SkipReason::Truncated)?;
                et = vlan.ether_type();
                rest = vlan.payload_slice();
            }
            _ => return Err(SkipReason::NotIp),
        }
    }
    Err(SkipReason::TooManyVlanTags)
}

/// BSD `AF_*` values: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD/OpenBSD),
/// 28 (FreeBSD) or 30 (macOS), depending on the capturing OS.
fn parse_bsd_family(family: u32, rest: &[u8]) -> Result<TcpSegment<'_>, SkipReason> {
    match family {
        2 => match rest.first().map(|b| b >> 4) {
            Some(4) => parse_ip(rest),
            Some(_) => Err(SkipReason::Malformed),
            None => Err(SkipReason::Truncated),
        },
        24 | 28 | 30 => match rest.first().map(|b| b >> 4) {
            Some(6) => parse_ip(rest),
            Some(_) => Err(SkipReason::Malformed),
            None => Err(SkipReason::Truncated),
        },
        _ => Err(SkipReason::NotIp),
    }
}

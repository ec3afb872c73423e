//! What `parse_frame` produces: one TCP segment borrowed from the frame, or why the
//! frame was skipped.

use std::net::SocketAddr;

/// One TCP segment, borrowing its payload from the captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    /// The ACK flag (the `ack` field is only meaningful when it is set).
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    /// Payload as far as it was captured. Its length comes from the IP length fields,
    /// so Ethernet padding is never part of it.
    pub payload: &'a [u8],
    /// True when the capture's snaplen cut the payload short; `missing` says by how much.
    pub truncated: bool,
    /// Payload bytes the sender sent but the capture did not keep (0 unless `truncated`).
    /// They still occupy sequence space, so the stream reports them as a gap.
    pub missing: u32,
}

impl TcpSegment<'_> {
    /// Sequence space taken by the payload (captured plus cut-off part), without SYN/FIN.
    pub fn seq_len(&self) -> u64 {
        self.payload.len() as u64 + u64::from(self.missing)
    }
}

/// Why a frame did not yield a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Link-layer protocol is not IPv4/IPv6 (ARP, LLDP, 802.3 length frames, ...).
    NotIp,
    /// IP packet that does not carry TCP (UDP, ICMP, ESP, ...).
    NotTcp,
    /// IP fragment (MF set or offset > 0); TCP inside fragments is not reassembled.
    IpFragment,
    /// The capture ends before the link, IP or TCP header does.
    Truncated,
    /// A header is present but inconsistent (bad IP version/IHL, TCP data offset < 5, ...).
    Malformed,
    /// More VLAN tags than we are willing to peel (a loop guard, not a real-world case).
    TooManyVlanTags,
}

impl SkipReason {
    /// Every variant, for summaries that print all counters including zeros.
    pub const ALL: [SkipReason; 6] = [
        SkipReason::NotIp,
        SkipReason::NotTcp,
        SkipReason::IpFragment,
        SkipReason::Truncated,
        SkipReason::Malformed,
        SkipReason::TooManyVlanTags,
    ];

    /// Stable snake_case name for counters and json output.
    pub fn kind(self) -> &'static str {
        match self {
            SkipReason::NotIp => "not_ip",
            SkipReason::NotTcp => "not_tcp",
            SkipReason::IpFragment => "ip_fragment",
            SkipReason::Truncated => "truncated",
            SkipReason::Malformed => "malformed",
            SkipReason::TooManyVlanTags => "too_many_vlan_tags",
        }
    }

    /// Position in [`SkipReason::ALL`], for counter arrays indexed by reason.
    pub fn index(self) -> usize {
        self as usize
    }
}

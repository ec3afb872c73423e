//! IPv4/IPv6 (with options and extension headers) and TCP, via etherparse's lax slicers.
//!
//! The lax variants are used on purpose: they accept packets whose capture is shorter
//! than the IP length fields say (snaplen), which the strict ones reject. We then work
//! out ourselves how many payload bytes are missing, so reassembly can report a gap of
//! the right size instead of silently shifting the stream.

use std::net::{IpAddr, SocketAddr};

use etherparse::{LaxIpSlice, LenSource, TcpSlice, ip_number};

use super::segment::{SkipReason, TcpSegment};

/// Parses an IP packet that starts at `ip[0]` and must carry a TCP segment.
pub(crate) fn parse_ip(ip: &[u8]) -> Result<TcpSegment<'_>, SkipReason> {
    use etherparse::err::ip::LaxHeaderSliceError as E;
    let (slice, ext_err) = LaxIpSlice::from_slice(ip).map_err(|e| match e {
        E::Len(_) => SkipReason::Truncated,
        E::Content(etherparse::err::ip::HeaderError::UnsupportedIpVersion { .. }) => {
            SkipReason::NotIp
        }
        E::Content(_) => SkipReason::Malformed,
    })?;
    let payload = slice.payload();
    // Fragments first: even a non-first fragment "carries TCP" by its protocol number,
    // but its bytes are not a TCP header.
    if payload.fragmented {
        return Err(SkipReason::IpFragment);
    }
    if let Some((err, _)) = ext_err {
        use etherparse::err::ipv6_exts::HeaderSliceError as X;
        return Err(match err {
            X::Len(_) => SkipReason::Truncated,
            X::Content(_) => SkipReason::Malformed,
        });
    }
    if payload.ip_number != ip_number::TCP {
        return Err(SkipReason::NotTcp);
    }
    // Only when the length field promised more than was captured do we know the size of
    // the cut-off part. With a zero/too-small length field (TSO captures) the slice length
    // is all we have and nothing counts as missing.
    let missing = if payload.incomplete {
        let promised = match &slice {
            LaxIpSlice::Ipv4(v4) => usize::from(v4.header().total_len()),
            LaxIpSlice::Ipv6(v6) => 40 + usize::from(v6.header().payload_length()),
        };
        promised.saturating_sub(ip.len())
    } else {
        0
    };
    let tcp = TcpSlice::from_slice(payload.payload).map_err(|e| {
        use etherparse::err::tcp::HeaderSliceError as T;
        match e {
            T::Len(_) if payload.len_source == LenSource::Slice => SkipReason::Truncated,
            // The IP length says the packet ended, yet the TCP header claims more.
            T::Len(_) | T::Content(_) => SkipReason::Malformed,
        }
    })?;
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
    };
    Ok(TcpSegment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        syn: tcp.syn(),
        ack_flag: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
        truncated: missing > 0,
        // A TCP payload can never exceed 65535 bytes, so this only saturates on garbage.
        missing: u32::try_from(missing).unwrap_or(u32::MAX),
    })
}

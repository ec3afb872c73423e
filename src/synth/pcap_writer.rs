//! Classic libpcap file writer (the 24-byte global header + 16-byte record headers).
//!
//! Written by hand because the format is tiny and the `pcap` crate's writer needs a live
//! libpcap handle. Always little-endian, always LINKTYPE_ETHERNET.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// LINKTYPE_ETHERNET from the tcpdump.org link-layer header type registry.
const LINKTYPE_ETHERNET: u32 = 1;
/// Microsecond-resolution magic.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Nanosecond-resolution magic (libpcap >= 1.5).
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Large enough for loopback-sized (64 KB) TCP segments plus headers.
pub const SNAPLEN: u32 = 262_144;
/// Big buffer: a capture is hundreds of MB written strictly sequentially.
const BUF_SIZE: usize = 4 << 20;

/// Timestamp resolution of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum TsResolution {
    #[default]
    Micros,
    Nanos,
}

pub struct PcapWriter<W: Write> {
    out: W,
    res: TsResolution,
    frames: u64,
    bytes: u64,
}

impl PcapWriter<BufWriter<File>> {
    pub fn create(path: &Path, res: TsResolution) -> io::Result<Self> {
        let f = File::create(path)?;
        PcapWriter::new(BufWriter::with_capacity(BUF_SIZE, f), res)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header immediately.
    pub fn new(mut out: W, res: TsResolution) -> io::Result<Self> {
        let magic = match res {
            TsResolution::Micros => MAGIC_MICROS,
            TsResolution::Nanos => MAGIC_NANOS,
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version major
        h[6..8].copy_from_slice(&4u16.to_le_bytes()); // version minor
        // thiszone (8..12) and sigfigs (12..16) stay 0 as every modern writer does.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            res,
            frames: 0,
            bytes: 24,
        })
    }

    /// Writes one frame given as several slices (headers, then payload) so callers never
    /// have to copy a payload into a contiguous frame buffer. `ts_ns` is Unix time in ns.
    pub fn write_frame(&mut self, ts_ns: u64, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| l <= SNAPLEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame exceeds snaplen"))?;
        let secs = ts_ns / 1_000_000_000;
        let sub = ts_ns % 1_000_000_000;
        let frac = match self.res {
            TsResolution::Micros => sub / 1_000,
            TsResolution::Nanos => sub,
        };
        let mut rec = [0u8; 16];
        // The classic format has 32-bit seconds; the synthetic clock stays far below 2106.
        rec[0..4].copy_from_slice(&(secs as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&(frac as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes()); // captured length
        rec[12..16].copy_from_slice(&len.to_le_bytes()); // original length: never truncated
        self.out.write_all(&rec)?;
        for p in parts {
            self.out.write_all(p)?;
        }
        self.frames += 1;
        self.bytes += 16 + u64::from(len);
        Ok(())
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written so far including the global header (= final file size).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_and_record_headers_match_the_libpcap_layout() {
        let mut w = PcapWriter::new(Vec::new(), TsResolution::Micros).unwrap();
        w.write_frame(1_700_000_000_123_456_789, &[&[1, 2], &[3]])
            .unwrap();
        let b = w.finish().unwrap();
        // Hand-written expectation from the libpcap file format description.
        assert_eq!(&b[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&b[4..8], &[2, 0, 4, 0]);
        assert_eq!(&b[16..20], &[0x00, 0x00, 0x04, 0x00]); // 262144
        assert_eq!(&b[20..24], &[1, 0, 0, 0]);
        assert_eq!(&b[24..28], &1_700_000_000u32.to_le_bytes());
        assert_eq!(&b[28..32], &123_456u32.to_le_bytes());
        assert_eq!(&b[32..36], &[3, 0, 0, 0]);
        assert_eq!(&b[36..40], &[3, 0, 0, 0]);
        assert_eq!(&b[40..], &[1, 2, 3]);
    }

    #[test]
    fn nanosecond_magic_keeps_full_fraction() {
        let mut w = PcapWriter::new(Vec::new(), TsResolution::Nanos).unwrap();
        w.write_frame(5_000_000_007, &[&[0]]).unwrap();
        let b = w.finish().unwrap();
        assert_eq!(&b[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&b[24..28], &5u32.to_le_bytes());
        assert_eq!(&b[28..32], &7u32.to_le_bytes());
    }

    #[test]
    fn oversized_frame_is_an_error_not_a_corrupt_file() {
        let mut w = PcapWriter::new(Vec::new(), TsResolution::Micros).unwrap();
        let big = vec![0u8; SNAPLEN as usize + 1];
        assert!(w.write_frame(0, &[&big]).is_err());
        assert_eq!(w.frames(), 0);
    }
}

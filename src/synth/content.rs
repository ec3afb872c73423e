//! What the synthetic devices talk about: ISA-95-shaped topic names
//! (`enterprise/site/area/line/cell/device/metric`) and payload bytes.
//!
//! Payloads are slices of two pools built once per capture, so a publish costs no
//! allocation or formatting: a JSON-ish text pool for telemetry and a pseudo-random
//! binary pool for large blobs (firmware chunks, images).

use super::rng::Rng;
use std::fmt::Write as _;

pub const METRICS: [&str; 10] = [
    "temperature",
    "pressure",
    "vibration",
    "current",
    "voltage",
    "rpm",
    "humidity",
    "flow",
    "state",
    "count",
];

const ENTERPRISES: [&str; 3] = ["acme", "globex", "initech"];

/// Size of the binary pool; payloads larger than this are capped to it.
pub const BLOB_POOL: usize = 65_536;
const TEXT_POOL: usize = 256 * 1024;

pub struct Pools {
    text: Vec<u8>,
    blob: Vec<u8>,
}

impl Pools {
    pub fn new(rng: &mut Rng) -> Pools {
        let mut text = String::with_capacity(TEXT_POOL + 128);
        let mut ts = 1_704_067_200_000u64;
        while text.len() < TEXT_POOL {
            ts += rng.range(1, 2000);
            let v = rng.below(100_000) as f64 / 100.0;
            let q = ["good", "uncertain", "bad"][rng.below(3) as usize];
            let _ = write!(
                text,
                "{{\"ts\":{ts},\"v\":{v:.2},\"q\":\"{q}\",\"seq\":{}}}",
                rng.below(1 << 20)
            );
        }
        let mut blob = vec![0u8; BLOB_POOL];
        for chunk in blob.chunks_mut(8) {
            let r = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        Pools {
            text: text.into_bytes(),
            blob,
        }
    }

    /// `len` bytes of telemetry-looking text (capped at the pool size).
    pub fn text(&self, rng: &mut Rng, len: usize) -> &[u8] {
        let len = len.min(self.text.len());
        let start = rng.below((self.text.len() - len + 1) as u64) as usize;
        &self.text[start..start + len]
    }

    /// `len` bytes of binary data (capped at `BLOB_POOL`).
    pub fn blob(&self, rng: &mut Rng, len: usize) -> &[u8] {
        let len = len.min(self.blob.len());
        let start = rng.below((self.blob.len() - len + 1) as u64) as usize;
        &self.blob[start..start + len]
    }
}

/// The topic prefix of one device, e.g. `acme/site-03/area-2/line-07/cell-4/dev-0123`.
pub fn device_prefix(device: u32) -> String {
    // Derive the hierarchy from the device number so a device keeps its place in the
    // plant across reconnects.
    let d = device as usize;
    format!(
        "{}/site-{:02}/area-{}/line-{:02}/cell-{}/dev-{:04}",
        ENTERPRISES[d % ENTERPRISES.len()],
        (d / 3) % 12,
        (d / 7) % 6,
        (d / 11) % 20,
        (d / 5) % 8,
        d
    )
}

/// A subscription filter derived from a device prefix: exact, single-level or
/// multi-level wildcard, as dashboards and historians subscribe.
pub fn filter_into(out: &mut Vec<u8>, prefix: &str, rng: &mut Rng) {
    out.clear();
    let levels: Vec<&str> = prefix.split('/').collect();
    match rng.below(4) {
        0 => {
            // Whole cell: enterprise/site/area/line/cell/#
            out.extend_from_slice(levels[..5].join("/").as_bytes());
            out.extend_from_slice(b"/#");
        }
        1 => {
            // One metric across a line: enterprise/site/area/line/+/+/metric
            out.extend_from_slice(levels[..4].join("/").as_bytes());
            out.extend_from_slice(b"/+/+/");
            out.extend_from_slice(METRICS[rng.below(METRICS.len() as u64) as usize].as_bytes());
        }
        2 => {
            // Machine state across a site: enterprise/site/+/+/+/+/state
            out.extend_from_slice(levels[..2].join("/").as_bytes());
            out.extend_from_slice(b"/+/+/+/+/state");
        }
        _ => {
            out.extend_from_slice(prefix.as_bytes());
            out.push(b'/');
            out.extend_from_slice(METRICS[rng.below(METRICS.len() as u64) as usize].as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_has_six_isa95_levels() {
        let p = device_prefix(123);
        assert_eq!(p.split('/').count(), 6);
        assert_eq!(p, "acme/site-05/area-5/line-11/cell-0/dev-0123");
    }

    #[test]
    fn pools_give_exact_lengths() {
        let mut r = Rng::new(1);
        let p = Pools::new(&mut r);
        assert_eq!(p.text(&mut r, 0).len(), 0);
        assert_eq!(p.text(&mut r, 300).len(), 300);
        assert_eq!(p.blob(&mut r, 65_536).len(), 65_536);
        assert_eq!(p.blob(&mut r, 70_000).len(), 65_536);
    }
}

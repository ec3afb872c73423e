//! Helpers shared by the integration tests that read `../shared/captures`: where the
//! captures are, which files they are, and TShark's decode of each (`.tshark.tsv`).
#![allow(dead_code)]

pub mod sim;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `../shared/captures` beside the project root (or `$MQSCOPE_SHARED/captures`).
pub fn shared_captures() -> PathBuf {
    if let Ok(p) = std::env::var("MQSCOPE_SHARED") {
        return PathBuf::from(p).join("captures");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures")
}

/// Every pcap/pcapng file under `dir`, in a stable order.
pub fn find_captures(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng")
        ) {
            out.push(p);
        }
    }
}

/// One TSV row: column name -> value (empty cells dropped).
pub type Row = BTreeMap<String, String>;

/// TShark's decode of `capture` (`<capture>.tshark.tsv`).
pub fn tshark_rows(capture: &Path) -> Vec<Row> {
    let path = PathBuf::from(format!("{}.tshark.tsv", capture.display()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("tsv header").split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

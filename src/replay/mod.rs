//! Offline replay: pcap and pcapng files read through libpcap (the `pcap` crate's
//! offline mode, the same library live capture uses), fed frame by frame into one
//! `Dissector`. Several files are one capture in sequence (rotated files): flows carry
//! over, frame numbers restart per file.

pub mod anomaly;
pub mod jsonl;
pub mod progress;
pub mod report;
pub mod rules;
pub mod sink;
pub mod summary;

use std::path::{Path, PathBuf};

use crate::capture::link::LinkType;
use crate::dissect::{DissectConfig, Dissector, RecordSink};

pub use summary::ReplayReport;

/// What happened to one input file.
#[derive(Clone, Debug, Default)]
pub struct FileReport {
    pub path: PathBuf,
    pub frames: u64,
    /// pcap data link type number.
    pub linktype: Option<i32>,
    /// Why the file could not be read (entirely or from some frame on).
    pub error: Option<String>,
}

/// Replay `files` in order through one dissector; every MQTT packet goes to `sink`.
/// Unreadable files are reported, not fatal: the rest are still replayed.
pub fn replay_files<S: RecordSink>(
    files: &[PathBuf],
    cfg: DissectConfig,
    progress: Option<&progress::Progress>,
    sink: &mut S,
) -> ReplayReport {
    let started = std::time::Instant::now();
    let mut dissector = Dissector::new(cfg);
    let mut reports = Vec::with_capacity(files.len());
    let (mut last_frame, mut last_ts) = (0, 0);
    for path in files {
        let rep = replay_one(path, &mut dissector, progress, sink, &mut last_ts);
        last_frame = rep.frames;
        reports.push(rep);
    }
    dissector.finish(last_frame, last_ts, sink);
    if let Some(p) = progress {
        p.finish();
    }
    ReplayReport {
        files: reports,
        stats: dissector.stats().clone(),
        capture: dissector.capture_stats().clone(),
        elapsed: started.elapsed(),
    }
}

fn replay_one<S: RecordSink>(
    path: &Path,
    dissector: &mut Dissector,
    progress: Option<&progress::Progress>,
    sink: &mut S,
    last_ts: &mut u64,
) -> FileReport {
    let mut rep = FileReport {
        path: path.to_path_buf(),
        ..Default::default()
    };
    // Nanosecond precision: libpcap scales microsecond files up, so both kinds of file
    // (and pcapng with any if_tsresol) give exact timestamps.
    let mut cap = match pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano) {
        Ok(c) => c,
        Err(e) => {
            rep.error = Some(format!("cannot read {}: {e}", path.display()));
            return rep;
        }
    };
    let dlt = cap.get_datalink().0;
    rep.linktype = Some(dlt);
    let Some(link) = LinkType::from_dlt(dlt) else {
        rep.error = Some(format!("{}: unsupported link type {dlt}", path.display()));
        return rep;
    };
    if let Some(p) = progress {
        p.start_file(path);
    }
    loop {
        let pkt = match cap.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                // A truncated or corrupt file: keep what was read so far.
                rep.error = Some(format!(
                    "{}: stopped after frame {}: {e}",
                    path.display(),
                    rep.frames
                ));
                break;
            }
        };
        rep.frames += 1;
        let ts = &pkt.header.ts;
        // With Precision::Nano the tv_usec field carries nanoseconds.
        let ts_ns = (ts.tv_sec.max(0) as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_usec.max(0) as u64);
        *last_ts = ts_ns;
        dissector.on_frame(link, rep.frames, ts_ns, pkt.data, sink);
        if let Some(p) = progress {
            p.advance(pkt.header.caplen as u64 + 16);
        }
    }
    rep
}

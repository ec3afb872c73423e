//! A progress bar for long replays, shown only when stderr is a terminal. libpcap does
//! not expose its file offset, so progress is estimated from record sizes (caplen plus
//! the 16-byte pcap record header) against the total size of the input files.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
}

/// Below this total input size a bar would only flicker.
const MIN_BYTES_FOR_BAR: u64 = 32 * 1024 * 1024;

impl Progress {
    /// A bar if stderr is a terminal and the input is large enough to need one.
    pub fn for_files(files: &[PathBuf]) -> Option<Progress> {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let total: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        if total < MIN_BYTES_FOR_BAR {
            return None;
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {wide_msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Some(Progress { bar })
    }

    pub fn start_file(&self, path: &Path) {
        self.bar.set_message(path.display().to_string());
    }

    /// Cheap enough to call per frame: indicatif rate-limits redraws itself.
    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

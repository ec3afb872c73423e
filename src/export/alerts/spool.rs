//! The on-disk queue of one receiver: pending notifications as JSON lines in
//! `<dir>/<receiver>.spool.jsonl`, oldest first. New entries are appended (and synced),
//! so a notification accepted before a crash or restart is still there afterwards. When
//! the head is delivered the file is compacted: rewritten without it to a temporary file
//! and renamed over the old one (atomic on POSIX), so a crash mid-compaction leaves
//! either the old or the new file, never a torn one.
//!
//! Bounded by `max_bytes`: appending past it drops the oldest entries, counted in
//! `dropped`. Unparsable lines (e.g. a torn final line after power loss) are skipped and
//! counted in `corrupt`.
//!
//! Delivery is at-least-once across a crash: a crash between a successful POST and the
//! compaction re-sends that one entry on start.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::model::Alert;

#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    max_bytes: usize,
    /// Entry and its serialised line length (with the newline).
    entries: VecDeque<(Alert, usize)>,
    bytes: usize,
    file: File,
    dropped: u64,
    corrupt: u64,
}

impl Spool {
    /// Opens (creating `dir` if needed) and loads pending entries.
    pub fn open(dir: &Path, receiver: &str, max_bytes: usize) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.spool.jsonl", file_stem(receiver)));
        let mut entries = VecDeque::new();
        let mut bytes = 0;
        let mut corrupt = 0;
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Alert>(&line) {
                    Ok(a) => {
                        bytes += line.len() + 1;
                        entries.push_back((a, line.len() + 1));
                    }
                    Err(_) => corrupt += 1,
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut spool = Spool {
            path,
            max_bytes,
            entries,
            bytes,
            file,
            dropped: 0,
            corrupt,
        };
        // A torn or corrupt line, or a smaller cap than last run: rewrite clean.
        if spool.corrupt > 0 || spool.trim() {
            spool.rewrite()?;
        }
        Ok(spool)
    }

    /// Appends one notification. Returns how many old entries were dropped for room.
    pub fn push(&mut self, alert: &Alert) -> io::Result<u64> {
        let mut line = serde_json::to_vec(alert).map_err(io::Error::other)?;
        line.push(b'\n');
        self.entries.push_back((alert.clone(), line.len()));
        self.bytes += line.len();
        let before = self.dropped;
        if self.trim() {
            self.rewrite()?;
        } else {
            self.file.write_all(&line)?;
            self.file.sync_data()?;
        }
        Ok(self.dropped - before)
    }

    /// Drops oldest entries while over the cap (always keeps the newest one).
    fn trim(&mut self) -> bool {
        let mut trimmed = false;
        while self.bytes > self.max_bytes && self.entries.len() > 1 {
            if let Some((_, len)) = self.entries.pop_front() {
                self.bytes -= len;
                self.dropped += 1;
                trimmed = true;
            }
        }
        trimmed
    }

    pub fn front(&self) -> Option<&Alert> {
        self.entries.front().map(|(a, _)| a)
    }

    /// Removes the head (delivered or given up) and compacts the file.
    pub fn pop_front(&mut self) -> io::Result<Option<Alert>> {
        let Some((a, len)) = self.entries.pop_front() else {
            return Ok(None);
        };
        self.bytes -= len;
        self.rewrite()?;
        Ok(Some(a))
    }

    fn rewrite(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("jsonl.tmp");
        {
            let mut f = File::create(&tmp)?;
            let mut buf = Vec::with_capacity(self.bytes);
            for (a, _) in &self.entries {
                serde_json::to_writer(&mut buf, a).map_err(io::Error::other)?;
                buf.push(b'\n');
            }
            f.write_all(&buf)?;
            f.sync_data()?;
        }
        fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.entries.iter().map(|(a, _)| a)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries dropped for room since open.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Unparsable lines skipped at open.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }
}

/// Receiver names become file names: keep `[A-Za-z0-9_-]`, replace the rest.
pub fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "receiver".into() } else { s }
}

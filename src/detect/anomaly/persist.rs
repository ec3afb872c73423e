//! Saving and reloading baselines, so a restart does not relearn from zero. JSON with a
//! format name and version; the file holds at most `max_series` detectors (each of
//! bounded size), the tracked topics and clients, and the known-name hashes, so its size
//! is bounded by the caps. Totals of the previous bucket are not saved: a restarted
//! observer counts from zero, so the first bucket after a load only sets them.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::broker::{ExchangeState, MetricState};
use super::clients::{ClientState, id_text};
use super::config::Seasonality;
use super::engine::AnomalyEngine;
use super::known::Known;
use super::topics::TopicState;
use super::track::Track;
use crate::observe::Exchange;

pub const FORMAT: &str = "mqscope-anomaly-baselines";
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct SavedRef<'a> {
    format: &'static str,
    version: u32,
    bucket_secs: u32,
    seasonality: Seasonality,
    first_ns: Option<u64>,
    topics: Vec<(&'a str, &'a TopicState)>,
    clients: Vec<(String, &'a ClientState)>,
    exchanges: Vec<(&'static str, &'a ExchangeState)>,
    metrics: Vec<(&'a str, &'a MetricState)>,
    known_topics: Vec<u64>,
    known_templates: Vec<u64>,
    known_clients: Vec<u64>,
}

#[derive(Deserialize)]
struct Saved {
    format: String,
    version: u32,
    bucket_secs: u32,
    seasonality: Seasonality,
    first_ns: Option<u64>,
    topics: Vec<(String, TopicState)>,
    clients: Vec<(String, ClientState)>,
    exchanges: Vec<(String, ExchangeState)>,
    metrics: Vec<(String, MetricState)>,
    known_topics: Vec<u64>,
    known_templates: Vec<u64>,
    known_clients: Vec<u64>,
}

/// What a load brought back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    pub topics: usize,
    pub clients: usize,
    pub series: usize,
    /// Series left out: over `max_series`, or made for another seasonality.
    pub series_dropped: usize,
}

/// Keeps `t` if it fits the engine (detector count for the seasonality, budget).
fn admit(t: &mut Option<Track>, dets: usize, live: &mut usize, cap: usize, dropped: &mut usize) {
    if let Some(tr) = t {
        if tr.detectors() != dets || *live >= cap {
            *t = None;
            *dropped += 1;
        } else {
            *live += 1;
        }
    }
}

impl AnomalyEngine {
    /// Writes every baseline as one JSON document (sorted, so equal state gives equal
    /// bytes).
    pub fn save<W: Write>(&self, w: W) -> std::io::Result<()> {
        let mut topics: Vec<(&str, &TopicState)> =
            self.topics.iter().map(|(k, v)| (&**k, v)).collect();
        topics.sort_by(|a, b| a.0.cmp(b.0));
        let mut clients: Vec<(String, &ClientState)> =
            self.clients.iter().map(|(k, v)| (id_text(k), v)).collect();
        clients.sort_by(|a, b| a.0.cmp(&b.0));
        let mut metrics: Vec<(&str, &MetricState)> =
            self.metrics.iter().map(|(k, v)| (k.as_str(), v)).collect();
        metrics.sort_by(|a, b| a.0.cmp(b.0));
        let s = SavedRef {
            format: FORMAT,
            version: VERSION,
            bucket_secs: self.cfg.bucket_secs,
            seasonality: self.cfg.seasonality,
            first_ns: self.clock.first_ns,
            topics,
            clients,
            exchanges: Exchange::ALL
                .iter()
                .map(|e| e.name())
                .zip(self.exchanges.iter())
                .collect(),
            metrics,
            known_topics: self.known_topics.sorted(),
            known_templates: self.known_templates.sorted(),
            known_clients: self.known_clients.sorted(),
        };
        serde_json::to_writer(w, &s).map_err(std::io::Error::other)
    }

    /// Replaces the engine's state with saved baselines. Refuses a file of another
    /// format, version or bucket width (its series would mean something else).
    pub fn load<R: Read>(&mut self, r: R) -> Result<LoadReport, String> {
        let s: Saved = serde_json::from_reader(r).map_err(|e| e.to_string())?;
        if s.format != FORMAT || s.version != VERSION {
            return Err(format!(
                "not mqscope anomaly baselines of version {VERSION} (format {:?}, version {})",
                s.format, s.version
            ));
        }
        if s.bucket_secs != self.cfg.bucket_secs {
            return Err(format!(
                "baselines were learned with {} s buckets, the engine uses {} s",
                s.bucket_secs, self.cfg.bucket_secs
            ));
        }
        let dets = if self.weekly() { 2 } else { 1 };
        // A profile learned without seasonality (or with another one) is not reusable.
        let season_ok = s.seasonality == self.cfg.seasonality;
        let cap = self.cfg.max_series;
        let mut live = 0usize;
        let mut rep = LoadReport::default();
        let mut dropped = 0usize;
        let mut fix = |t: &mut Option<Track>| {
            if !season_ok && t.is_some() {
                *t = None;
                dropped += 1;
            } else {
                admit(t, dets, &mut live, cap, &mut dropped);
            }
        };
        self.topics.clear();
        for (name, mut t) in s.topics.into_iter().take(self.cfg.max_topics) {
            fix(&mut t.rate);
            fix(&mut t.payload);
            fix(&mut t.latency);
            self.topics.insert(name.into_boxed_str(), t);
        }
        self.clients.clear();
        for (id, mut c) in s.clients.into_iter().take(self.cfg.max_clients) {
            fix(&mut c.rate);
            self.clients.insert(id.into_bytes().into_boxed_slice(), c);
        }
        for (name, mut st) in s.exchanges {
            if let Some(i) = Exchange::ALL.iter().position(|e| e.name() == name)
                && let Some(slot) = self.exchanges.get_mut(i)
            {
                fix(&mut st.latency);
                fix(&mut st.unanswered);
                *slot = st;
            }
        }
        self.metrics.clear();
        for (k, mut m) in s.metrics.into_iter().take(super::engine::MAX_METRIC_SERIES) {
            fix(&mut m.track);
            self.metrics.insert(k, m);
        }
        let kcap = self.cfg.max_known;
        self.known_topics = Known::from_vec(s.known_topics, kcap);
        self.known_templates = Known::from_vec(s.known_templates, kcap);
        self.known_clients = Known::from_vec(s.known_clients, kcap);
        self.clock.first_ns = s.first_ns;
        self.budget.live = live;
        rep.topics = self.topics.len();
        rep.clients = self.clients.len();
        rep.series = live;
        rep.series_dropped = dropped;
        Ok(rep)
    }

    /// Saves to the configured path (atomically: written beside it, then renamed) and
    /// remembers `now_ns` for `persist_due`. No path configured: nothing happens.
    pub fn save_file(&mut self, now_ns: u64) -> std::io::Result<()> {
        let Some(path) = self.cfg.persist.path.clone() else {
            return Ok(());
        };
        let mut buf = Vec::new();
        self.save(&mut buf)?;
        write_atomic(&path, &buf)?;
        self.last_saved_ns = Some(now_ns);
        Ok(())
    }

    /// Loads from the configured path; `Ok(None)` when there is no path or no file yet.
    pub fn load_file(&mut self) -> Result<Option<LoadReport>, String> {
        let Some(path) = self.cfg.persist.path.clone() else {
            return Ok(None);
        };
        match std::fs::File::open(&path) {
            Ok(f) => self
                .load(std::io::BufReader::new(f))
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

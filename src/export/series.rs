//! What the exporter needs from the observer beyond `ObserverSnapshot`: topic groups cut
//! down to `max_topic_series` labels (the rest summed into `__other__`), and histogram
//! buckets read from the sketches. Built by the pipeline next to the snapshot, from the
//! same observer state; rendering then needs no access to the observer.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::observe::topics::OTHER_NAME;
use crate::observe::{Exchange, Observer, ObserverSnapshot};

use super::config::PrometheusConfig;
use super::hist::{HistCounts, LATENCY_BOUNDS_S, PAYLOAD_BOUNDS_BYTES};

/// Exchanges that also have per-topic latency.
pub const TOPIC_LATENCY_EXCHANGES: [Exchange; 3] = [
    Exchange::PublishQos1,
    Exchange::PublishQos2,
    Exchange::Fanout,
];

/// One `topic` label value's series. Index 0 is "in" (client → broker), 1 "out".
#[derive(Clone, Debug, PartialEq)]
pub struct TopicSeries {
    pub msgs: [u64; 2],
    /// Payload bytes.
    pub bytes: [u64; 2],
    /// Inbound payload sizes.
    pub payload: HistCounts,
    /// Per exchange of `TOPIC_LATENCY_EXCHANGES` with samples.
    pub latency: Vec<(&'static str, HistCounts)>,
}

impl TopicSeries {
    fn new() -> TopicSeries {
        TopicSeries {
            msgs: [0; 2],
            bytes: [0; 2],
            payload: HistCounts::empty(&PAYLOAD_BOUNDS_BYTES),
            latency: Vec::new(),
        }
    }

    fn add_latency(&mut self, ex: &'static str, h: &HistCounts) {
        match self.latency.iter_mut().find(|(e, _)| *e == ex) {
            Some((_, mine)) => mine.add(h),
            None => self.latency.push((ex, h.clone())),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObserverSeries {
    /// By label value; unique by construction (groups whose display names collide, e.g.
    /// two non-UTF-8 topics with the same lossy text, are summed).
    pub topics: BTreeMap<String, TopicSeries>,
    /// Latency histogram of every exchange (`Exchange::ALL` order).
    pub exchanges: Vec<(&'static str, HistCounts)>,
}

/// The label values of the `n` busiest groups by messages in + out (ties by name). The
/// observer's own `__other__` group is never among them.
pub fn select_topics(snap: &ObserverSnapshot, n: usize) -> HashSet<String> {
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for t in &snap.topics {
        if t.name != OTHER_NAME {
            *totals.entry(t.name.as_str()).or_default() += t.msgs_in.total + t.msgs_out.total;
        }
    }
    let mut ranked: Vec<(&str, u64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(n)
        .map(|(name, _)| name.to_string())
        .collect()
}

impl ObserverSeries {
    /// `snap` must be `obs.snapshot()` taken with no record in between (it supplies
    /// the totals the selection ranks by; the sketches come from `obs`).
    pub fn build(obs: &Observer, snap: &ObserverSnapshot, cfg: &PrometheusConfig) -> Self {
        let keep = select_topics(snap, cfg.max_topic_series);
        let label = |name: &str| -> String {
            if keep.contains(name) {
                name.to_string()
            } else {
                OTHER_NAME.to_string()
            }
        };
        let mut topics: BTreeMap<String, TopicSeries> = BTreeMap::new();
        for t in &snap.topics {
            let s = topics
                .entry(label(&t.name))
                .or_insert_with(TopicSeries::new);
            s.msgs[0] += t.msgs_in.total;
            s.msgs[1] += t.msgs_out.total;
            s.bytes[0] += t.bytes_in.total;
            s.bytes[1] += t.bytes_out.total;
        }
        obs.topics().for_each_group(|name, _, stats| {
            let s = topics.entry(label(name)).or_insert_with(TopicSeries::new);
            s.payload.add(&HistCounts::from_sketch(
                stats.payload_sketch(),
                &PAYLOAD_BOUNDS_BYTES,
            ));
            if cfg.topic_latency {
                for ex in TOPIC_LATENCY_EXCHANGES {
                    if let Some(sk) = stats.latency_sketch(ex).filter(|s| s.count() > 0) {
                        s.add_latency(ex.name(), &HistCounts::from_sketch(sk, &LATENCY_BOUNDS_S));
                    }
                }
            }
        });
        let exchanges = Exchange::ALL
            .iter()
            .map(|&e| {
                let h = obs.tracker().latency_sketch(e).map_or_else(
                    || HistCounts::empty(&LATENCY_BOUNDS_S),
                    |s| HistCounts::from_sketch(s, &LATENCY_BOUNDS_S),
                );
                (e.name(), h)
            })
            .collect();
        ObserverSeries { topics, exchanges }
    }
}

//! `Observer`: the one entry point of the observation core. A `RecordSink`, so the
//! dissector feeds it directly; everything it knows comes from the records and the
//! times they carry.

use serde::Serialize;

use crate::capture::CloseReason;
use crate::dissect::{FlowMeta, MqttRecord, RecordSink};
use crate::mqtt::Packet;

use super::topics::{TopicCounters, TopicKey, TopicSnapshot, Topics, TopicsConfigError};
use super::tracker::{LatencySample, Tracker, TrackerOutput, TrackerSnapshot, message_hash};
use super::{EventQueue, ObserveConfig};

/// How often (in record time) housekeeping runs: expiry of unanswered requests and
/// fan-out entries, idle topic eviction.
const TICK_NS: u64 = 1_000_000_000;

pub struct Observer {
    topics: Topics,
    tracker: Tracker,
    events: EventQueue,
    /// Latency samples produced by the tracker for the current record; kept to reuse
    /// the allocation. The tracker keeps the per-exchange sketches itself; per topic
    /// group they go to `topics`.
    samples: Vec<LatencySample>,
    last_tick_ns: u64,
    /// Optional copy of latency samples (exact values), up to a bound: for tests and
    /// offline analysis; off by default.
    sample_log: Option<(Vec<LatencySample>, usize)>,
    /// Latest time seen (records are in capture order, so this only moves forward
    /// except for the rare reordered capture).
    now_ns: u64,
    /// The fingerprint of the topic `publish_ahead` announced, with the address (a
    /// number, only compared, never read) and length of the bytes it came from. Valid
    /// for the next record only: every `record` takes it, so a stale one never meets a
    /// later topic that happens to sit at the same address in a reused buffer.
    ahead: Option<(usize, usize, TopicKey)>,
}

/// Everything the observer knows, as owned data for reports and exporters.
#[derive(Clone, Debug, Serialize)]
pub struct ObserverSnapshot {
    pub at_ns: u64,
    pub topics: Vec<TopicSnapshot>,
    pub topic_counters: TopicCounters,
    pub tracker: TrackerSnapshot,
    pub events_by_kind: Vec<(&'static str, u64)>,
    pub events_dropped: u64,
}

impl Observer {
    pub fn new(cfg: &ObserveConfig) -> Result<Observer, TopicsConfigError> {
        Ok(Observer {
            topics: Topics::new(cfg)?,
            tracker: Tracker::new(cfg),
            events: EventQueue::new(cfg.max_events_queued),
            samples: Vec::with_capacity(16),
            last_tick_ns: 0,
            sample_log: None,
            now_ns: 0,
            ahead: None,
        })
    }

    pub fn events(&mut self) -> &mut EventQueue {
        &mut self.events
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Housekeeping as of `now_ns` (also called from `record` as time advances).
    pub fn tick(&mut self, now_ns: u64) {
        self.last_tick_ns = now_ns;
        self.topics.tick(now_ns);
        let mut out = TrackerOutput {
            samples: std::mem::take(&mut self.samples),
            events: &mut self.events,
            topics: Some(&self.topics),
        };
        self.tracker.tick(now_ns, &mut out);
        self.samples = out.samples;
        self.flush_samples();
    }

    /// Per-group latency goes to the topic statistics (the tracker already recorded
    /// the sample in its per-exchange sketch).
    fn flush_samples(&mut self) {
        if let Some((log, cap)) = &mut self.sample_log {
            let room = cap.saturating_sub(log.len());
            log.extend(self.samples.iter().take(room).copied());
        }
        for s in self.samples.drain(..) {
            if let Some(g) = s.group {
                self.topics.record_latency(g, s.exchange, s.seconds);
            }
        }
    }

    /// Estimated heap use of all observation state (topics, tracker, queued events).
    pub fn mem_bytes(&self) -> usize {
        self.topics.mem_bytes()
            + self.tracker.mem_bytes()
            + self.events.len() * std::mem::size_of::<super::Event>()
    }

    /// Keep a copy of the next `cap` latency samples (exact, unsketched).
    pub fn log_samples(&mut self, cap: usize) {
        self.sample_log = Some((Vec::new(), cap));
    }

    /// The samples kept since `log_samples`.
    pub fn logged_samples(&self) -> &[LatencySample] {
        self.sample_log.as_ref().map_or(&[], |(v, _)| v.as_slice())
    }

    /// End of input: final housekeeping so the snapshot reflects expired requests.
    pub fn finish(&mut self) {
        self.tick(self.now_ns);
    }

    pub fn snapshot(&self) -> ObserverSnapshot {
        let now = self.now_ns;
        ObserverSnapshot {
            at_ns: now,
            topics: self.topics.snapshot(now),
            topic_counters: self.topics.counters(),
            tracker: self.tracker.snapshot(now),
            events_by_kind: super::event::ALL_KINDS
                .iter()
                .map(|k| (k.name(), self.events.count(*k)))
                .collect(),
            events_dropped: self.events.dropped,
        }
    }
}

impl RecordSink for Observer {
    fn record(&mut self, rec: &MqttRecord<'_>) {
        self.now_ns = self.now_ns.max(rec.ts_ns);
        if rec.ts_ns >= self.last_tick_ns.saturating_add(TICK_NS) {
            self.tick(rec.ts_ns);
        }
        // A PUBLISH's group comes from the topic map alone; its statistics are updated
        // through the topics' queue (see `topics::queue`). The same index entry says
        // whether the message takes part in fan-out matching: only then is it hashed
        // (payloads run to 64 KB; most topics of a telemetry fleet have no subscriber
        // on this broker, their data leaves through rules and bridges).
        let ahead = self.ahead.take();
        let (group, exact, fanout) = match (&rec.packet, rec.topic) {
            (Ok(Packet::Publish(p)), Some(t)) => {
                // The same bytes `publish_ahead` hashed (not an alias's topic), or hash now.
                let k = match ahead {
                    Some((at, len, k))
                        if at == t.bytes().as_ptr() as usize && len == t.bytes().len() =>
                    {
                        k
                    }
                    _ => self.topics.key_prefetched(t.bytes()),
                };
                let r = self
                    .topics
                    .group_for_publish(t.bytes(), k, rec.dir, rec.ts_ns);
                let h = r.fanout.then(|| {
                    let h = message_hash(t.bytes(), p.payload);
                    self.tracker.prefetch_fanout(h);
                    h
                });
                (Some(r.g), r.exact, h)
            }
            _ => (None, false, None),
        };
        let mut out = TrackerOutput {
            samples: std::mem::take(&mut self.samples),
            events: &mut self.events,
            topics: Some(&self.topics),
        };
        match group {
            Some(g) => self
                .tracker
                .on_record_routed(rec, g, exact, fanout, &mut out),
            None => self.tracker.on_record(rec, None, &mut out),
        }
        self.samples = out.samples;
        if let (Ok(Packet::Publish(p)), Some(g)) = (&rec.packet, group) {
            let client = self.tracker.client_key(rec.flow.id);
            self.topics.record_publish(
                g,
                rec.dir,
                client,
                p.qos,
                p.retain,
                p.dup,
                p.payload.len(),
                rec.ts_ns,
            );
        }
        if !self.samples.is_empty() {
            self.flush_samples();
        }
    }

    #[inline]
    fn publish_ahead(&mut self, topic: &[u8]) {
        let k = self.topics.key_prefetched(topic);
        self.ahead = Some((topic.as_ptr() as usize, topic.len(), k));
    }

    fn flow_closed(&mut self, flow: &FlowMeta, ts_ns: u64, why: CloseReason) {
        let mut out = TrackerOutput {
            samples: std::mem::take(&mut self.samples),
            events: &mut self.events,
            topics: Some(&self.topics),
        };
        self.tracker.on_flow_closed(flow, ts_ns, why, &mut out);
        self.samples = out.samples;
        self.flush_samples();
    }
}

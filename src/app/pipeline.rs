//! The live record sink: every MQTT record goes to the security rules and the observer,
//! and every event the observer (or the broker input) raises is passed on at once, in
//! order: to the rules (which count them in windows), the exporter's tally, the recent
//! list and the log sinks. Detection therefore does not wait for the next publication.

use std::collections::VecDeque;

use crate::broker::BrokerMetrics;
use crate::capture::CloseReason;
use crate::detect::anomaly::AnomalyEngine;
use crate::detect::rules::RuleEngine;
use crate::dissect::{FlowMeta, MqttRecord, RecordSink};
use crate::export::EventTally;
use crate::export::alerts::Timestamp;
use crate::observe::{Event, Observer};

use super::RECENT_EVENTS;
use super::outputs::Outputs;

pub struct Pipeline {
    pub observer: Observer,
    /// `None` when the rules are off.
    pub rules: Option<RuleEngine>,
    /// Events by kind/reason for the exporter's breakdowns (auth failure reasons, ACL
    /// actions).
    pub tally: EventTally,
    /// The last [`RECENT_EVENTS`] events, oldest first.
    pub recent: VecDeque<Event>,
    pub outputs: Outputs,
    /// `None` when anomaly detection is off.
    pub anomaly: Option<AnomalyEngine>,
    /// End of the anomaly bucket in progress (epoch-aligned, as in replay).
    next_bucket_ns: Option<u64>,
    /// The broker's latest `$SYS` metrics, for the broker series.
    pub brokers: Vec<BrokerMetrics>,
}

impl Pipeline {
    pub fn new(observer: Observer, rules: Option<RuleEngine>, outputs: Outputs) -> Pipeline {
        Pipeline {
            observer,
            rules,
            tally: EventTally::default(),
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            outputs,
            anomaly: None,
            next_bucket_ns: None,
            brokers: Vec::new(),
        }
    }

    /// Evaluates every anomaly bucket that ended at or before `ts_ns`, before the record
    /// at `ts_ns` reaches the observer (the same cut as `replay`, so both agree). After a
    /// long pause (a stalled capture), at most `max_catchup_buckets` are evaluated.
    fn advance_buckets(&mut self, ts_ns: u64) {
        let Some(eng) = &mut self.anomaly else { return };
        let b = eng.config().bucket_ns();
        let Some(mut next) = self.next_bucket_ns else {
            self.next_bucket_ns = Some((ts_ns / b).saturating_add(1).saturating_mul(b));
            return;
        };
        let catchup = u64::from(eng.config().max_catchup_buckets);
        let mut done = 0u64;
        while ts_ns >= next {
            if done >= catchup {
                next = (ts_ns / b).saturating_add(1).saturating_mul(b);
                break;
            }
            eng.on_bucket(&self.observer, &self.brokers, next);
            done += 1;
            next = next.saturating_add(b);
        }
        self.next_bucket_ns = Some(next);
    }

    /// An event from outside the wire (the broker input): handled like the observer's.
    pub fn push_event(&mut self, e: Event) {
        self.observer.events().push(e);
        self.pass_events();
    }

    /// Takes the observer's queued events and hands each to every consumer.
    pub fn pass_events(&mut self) {
        if self.observer.events().is_empty() {
            return;
        }
        for e in self.observer.events().drain() {
            tracing::debug!(kind = e.kind.name(), client_id = ?e.client_id, topic = ?e.topic, code = ?e.code, "event");
            if let Some(r) = &mut self.rules {
                r.on_event(&e);
            }
            self.tally.observe(&e);
            self.outputs.on_event(&e);
            if self.recent.len() >= RECENT_EVENTS {
                self.recent.pop_front();
            }
            self.recent.push_back(e);
        }
    }

    /// Housekeeping by the clock when no traffic advances record time: unanswered
    /// requests expire, quiet alerts clear, idle SlowITe connections are found.
    pub fn tick(&mut self, now_ns: u64) {
        self.advance_buckets(now_ns);
        self.observer.tick(now_ns);
        self.pass_events();
        if let Some(r) = &mut self.rules {
            r.tick(now_ns);
        }
    }

    /// Saves the anomaly baselines when their interval has passed (or `force`), so a
    /// restart does not learn from zero. Errors are logged; detection goes on.
    pub fn save_baselines(&mut self, now_ns: u64, force: bool) {
        let Some(eng) = &mut self.anomaly else { return };
        if eng.config().persist.path.is_none() || !(force || eng.persist_due(now_ns)) {
            return;
        }
        if let Err(e) = eng.save_file(now_ns) {
            tracing::warn!(error = %e, "cannot save anomaly baselines");
        }
    }

    /// End of input.
    pub fn finish(&mut self) {
        self.observer.finish();
        self.pass_events();
        if let Some(r) = &mut self.rules {
            r.finish();
        }
    }

    /// Hands the detectors' new hits and clearings to the outputs; `now_ns` (wall clock)
    /// ends the grace of alerts restored from the last run.
    pub fn sync_alerts(&mut self, now_ns: u64) {
        if let Some(r) = &self.rules {
            self.outputs.on_hits("rules", r.hits());
        }
        if let Some(a) = &self.anomaly {
            self.outputs.on_hits("anomalies", a.hits());
        }
        self.outputs.tick(Timestamp(
            i64::try_from(now_ns / 1_000_000).unwrap_or(i64::MAX),
        ));
        self.outputs.save();
    }
}

impl RecordSink for Pipeline {
    fn record(&mut self, rec: &MqttRecord<'_>) {
        self.advance_buckets(rec.ts_ns);
        if let Some(r) = &mut self.rules {
            r.on_record(rec);
        }
        self.observer.record(rec);
        self.pass_events();
    }

    #[inline]
    fn publish_ahead(&mut self, topic: &[u8]) {
        self.observer.publish_ahead(topic);
    }

    fn flow_closed(&mut self, flow: &FlowMeta, ts_ns: u64, why: CloseReason) {
        self.advance_buckets(ts_ns);
        self.observer.flow_closed(flow, ts_ns, why);
        self.pass_events();
        if let Some(r) = &mut self.rules {
            r.on_flow_closed(flow.id, ts_ns);
        }
    }
}

//! The live record sink: every MQTT record goes to the security rules and the observer,
//! and every event the observer (or the broker input) raises is passed on at once, in
//! order: to the rules (which count them in windows), the exporter's tally, the recent
//! list and the log sinks. Detection therefore does not wait for the next publication.

use std::collections::VecDeque;

use crate::capture::CloseReason;
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
}

impl Pipeline {
    pub fn new(observer: Observer, rules: Option<RuleEngine>, outputs: Outputs) -> Pipeline {
        Pipeline {
            observer,
            rules,
            tally: EventTally::default(),
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            outputs,
        }
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
        self.observer.tick(now_ns);
        self.pass_events();
        if let Some(r) = &mut self.rules {
            r.tick(now_ns);
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
        self.outputs.tick(Timestamp(
            i64::try_from(now_ns / 1_000_000).unwrap_or(i64::MAX),
        ));
        self.outputs.save();
    }
}

impl RecordSink for Pipeline {
    fn record(&mut self, rec: &MqttRecord<'_>) {
        if let Some(r) = &mut self.rules {
            r.on_record(rec);
        }
        self.observer.record(rec);
        self.pass_events();
    }

    fn flow_closed(&mut self, flow: &FlowMeta, ts_ns: u64, why: CloseReason) {
        self.observer.flow_closed(flow, ts_ns, why);
        self.pass_events();
        if let Some(r) = &mut self.rules {
            r.on_flow_closed(flow.id, ts_ns);
        }
    }
}

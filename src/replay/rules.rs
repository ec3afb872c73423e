//! Security rules during replay: wraps the [`ReplaySink`] so the rule engine sees every
//! record and every event the observer raises for it, in capture order; so any capture
//! can be checked offline. The observer's events are moved to `events` (same cap) for
//! whoever reads them after the replay.

use std::fmt::Write as _;
use std::io::Write;

use crate::capture::CloseReason;
use crate::detect::rules::{RuleEngine, RuleHit};
use crate::dissect::{FlowMeta, MqttRecord, RecordSink};
use crate::observe::EventQueue;

use super::sink::ReplaySink;

pub struct RulesSink<W: Write> {
    pub inner: ReplaySink<W>,
    pub engine: RuleEngine,
    /// Events taken from the observer after the engine saw them.
    pub events: EventQueue,
}

impl<W: Write> RulesSink<W> {
    pub fn new(inner: ReplaySink<W>, engine: RuleEngine, events_cap: usize) -> Self {
        RulesSink {
            inner,
            engine,
            events: EventQueue::new(events_cap),
        }
    }

    fn pass_events(&mut self) {
        let Some(o) = &mut self.inner.observer else {
            return;
        };
        if o.events().is_empty() {
            return;
        }
        for e in o.events().drain() {
            self.engine.on_event(&e);
            self.events.push(e);
        }
    }

    /// End of input: the observer's last housekeeping may raise events too.
    pub fn finish(&mut self) {
        if let Some(o) = &mut self.inner.observer {
            o.finish();
        }
        self.pass_events();
        self.engine.finish();
    }
}

impl<W: Write> RecordSink for RulesSink<W> {
    fn record(&mut self, rec: &MqttRecord<'_>) {
        self.engine.on_record(rec);
        self.inner.record(rec);
        self.pass_events();
    }

    #[inline]
    fn publish_ahead(&mut self, topic: &[u8]) {
        self.inner.publish_ahead(topic);
    }

    fn flow_closed(&mut self, flow: &FlowMeta, ts_ns: u64, why: CloseReason) {
        self.inner.flow_closed(flow, ts_ns, why);
        self.pass_events();
        self.engine.on_flow_closed(flow.id, ts_ns);
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` UTC from ns since the epoch.
pub fn utc(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let ms = ts_ns % 1_000_000_000 / 1_000_000;
    let days = (secs / 86_400) as i64;
    let tod = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian, era-based).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03}",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

/// The rule hits as text for the replay report.
pub fn to_text(hits: &[RuleHit]) -> String {
    let mut o = String::new();
    if hits.is_empty() {
        let _ = writeln!(o, "  rule hits:     none");
        return o;
    }
    let _ = writeln!(o, "  rule hits:     {}", hits.len());
    let _ = writeln!(
        o,
        "  {:<24} {:<8} {:<32} {:<23} {:>9} {:>6} {:<8} summary",
        "rule", "severity", "key", "first", "delay", "count", "state"
    );
    for h in hits {
        let mut key = h.key.clone();
        if key.chars().count() > 32 {
            key = key.chars().take(29).collect::<String>() + "...";
        }
        let delay = h.ts_ns.saturating_sub(h.first_ts_ns) as f64 / 1e9;
        let state = if h.cleared_ts_ns.is_some() {
            "cleared"
        } else {
            "active"
        };
        let _ = writeln!(
            o,
            "  {:<24} {:<8} {:<32} {:<23} {:>8.3}s {:>6} {:<8} {}",
            h.rule,
            h.severity.name(),
            key,
            utc(h.first_ts_ns),
            delay,
            h.count,
            state,
            h.summary
        );
    }
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_matches_known_dates() {
        // 2024-02-29 12:34:56.789 UTC = 1709210096.789 s (leap day; checked with `date -u -d @1709210096`).
        assert_eq!(
            super::utc(1_709_210_096_789_000_000),
            "2024-02-29 12:34:56.789"
        );
        assert_eq!(super::utc(0), "1970-01-01 00:00:00.000");
    }
}

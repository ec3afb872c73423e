//! Anomaly detection during replay: wraps the replay sink (with or without the rules)
//! and runs the anomaly engine once per bucket of record time, before the first record
//! of the next bucket reaches the observer; so any capture can be checked offline, and
//! the same capture always gives the same anomalies. The last, partial bucket is not
//! evaluated (it would look like a drop).

use std::fmt::Write as _;
use std::io::Write;

use crate::capture::CloseReason;
use crate::detect::anomaly::AnomalyEngine;
use crate::detect::rules::RuleHit;
use crate::dissect::{FlowMeta, MqttRecord, RecordSink};
use crate::export::prometheus::AlertSeries;
use crate::observe::Observer;

use super::rules::{RulesSink, utc};
use super::sink::ReplaySink;

/// A sink that holds the observer the engine reads.
pub trait HasObserver {
    fn observer(&self) -> Option<&Observer>;
}

impl<W: Write> HasObserver for ReplaySink<W> {
    fn observer(&self) -> Option<&Observer> {
        self.observer.as_ref()
    }
}

impl<W: Write> HasObserver for RulesSink<W> {
    fn observer(&self) -> Option<&Observer> {
        self.inner.observer.as_ref()
    }
}

pub struct AnomalySink<S> {
    pub inner: S,
    /// `None`: anomalies off, records pass straight through.
    pub engine: Option<AnomalyEngine>,
    /// End of the bucket in progress.
    next_ns: Option<u64>,
    /// Buckets not evaluated because time jumped past `max_catchup_buckets`.
    pub buckets_skipped: u64,
}

impl<S: RecordSink + HasObserver> AnomalySink<S> {
    pub fn new(inner: S, engine: Option<AnomalyEngine>) -> Self {
        AnomalySink {
            inner,
            engine,
            next_ns: None,
            buckets_skipped: 0,
        }
    }

    /// Evaluates every bucket that ended at or before `ts_ns`.
    fn advance(&mut self, ts_ns: u64) {
        let Some(eng) = &mut self.engine else { return };
        let b = eng.config().bucket_ns();
        let Some(mut next) = self.next_ns else {
            // Buckets are aligned to the epoch, so live and replay agree on them.
            self.next_ns = Some((ts_ns / b).saturating_add(1).saturating_mul(b));
            return;
        };
        if ts_ns < next {
            return;
        }
        let catchup = u64::from(eng.config().max_catchup_buckets);
        let Some(obs) = self.inner.observer() else {
            return;
        };
        let mut done = 0u64;
        while ts_ns >= next {
            if done >= catchup {
                // A gap in the capture: skip to the bucket holding `ts_ns` in O(1).
                let to = (ts_ns / b).saturating_add(1).saturating_mul(b);
                self.buckets_skipped += to.saturating_sub(next) / b;
                next = to;
                break;
            }
            eng.on_bucket(obs, &[], next);
            done += 1;
            next = next.saturating_add(b);
        }
        self.next_ns = Some(next);
    }
}

impl<S: RecordSink + HasObserver> RecordSink for AnomalySink<S> {
    fn record(&mut self, rec: &MqttRecord<'_>) {
        self.advance(rec.ts_ns);
        self.inner.record(rec);
    }

    #[inline]
    fn publish_ahead(&mut self, topic: &[u8]) {
        self.inner.publish_ahead(topic);
    }

    fn flow_closed(&mut self, flow: &FlowMeta, ts_ns: u64, why: CloseReason) {
        self.advance(ts_ns);
        self.inner.flow_closed(flow, ts_ns, why);
    }
}

/// `mqscope_alerts_firing{rule,severity}` from hits: hits still active, per rule and
/// severity (rules that hit and cleared show 0). First-seen order.
pub fn alert_series<'a>(hits: impl IntoIterator<Item = &'a RuleHit>) -> Vec<AlertSeries> {
    let mut series: Vec<AlertSeries> = Vec::new();
    for h in hits {
        let firing = u64::from(h.cleared_ts_ns.is_none());
        match series
            .iter_mut()
            .find(|s| s.rule == h.rule && s.severity == h.severity.name())
        {
            Some(s) => s.firing += firing,
            None => series.push(AlertSeries {
                rule: h.rule.to_string(),
                severity: h.severity.name().to_string(),
                firing,
            }),
        }
    }
    series
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        s.chars().take(n - 3).collect::<String>() + "..."
    } else {
        s.to_string()
    }
}

fn val(v: f64) -> String {
    if v.abs() >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The anomaly hits as text for the replay report.
pub fn to_text(hits: &[RuleHit]) -> String {
    let mut o = String::new();
    if hits.is_empty() {
        let _ = writeln!(o, "  anomalies:     none");
        return o;
    }
    let _ = writeln!(o, "  anomalies:     {}", hits.len());
    let _ = writeln!(
        o,
        "  {:<26} {:<40} {:<23} {:<8} {:>10} {:>10} {:>10}  summary",
        "anomaly", "key", "fired", "state", "baseline", "observed", "threshold"
    );
    for h in hits {
        let state = if h.cleared_ts_ns.is_some() {
            "cleared"
        } else {
            "active"
        };
        let (b, x, t) = h
            .anomaly
            .as_ref()
            .map_or(("-".into(), "-".into(), "-".into()), |a| {
                (val(a.baseline), val(a.observed), val(a.threshold))
            });
        let _ = writeln!(
            o,
            "  {:<26} {:<40} {:<23} {:<8} {:>10} {:>10} {:>10}  {}",
            h.rule,
            short(&h.key, 40),
            utc(h.ts_ns),
            state,
            b,
            x,
            t,
            h.summary
        );
    }
    o
}

//! Turning track steps into hits: one place that builds findings, keys' evidence and
//! details, so every anomaly kind reads the same in reports and alerts.

use crate::detect::rules::hit::{Alerts, AnomalyDetail, Evidence, Finding, Severity};

use super::track::Step;

/// Where hits go during one bucket.
pub struct Ctx<'a> {
    pub alerts: &'a mut Alerts,
    pub now: u64,
    pub bucket_ns: u64,
}

/// What a series is, for the hit.
pub struct Alarm<'s> {
    pub up_rule: &'static str,
    pub down_rule: &'static str,
    pub severity: Severity,
    pub key: &'s str,
    pub series: &'s str,
    /// The bucket's value.
    pub x: f64,
    /// Time of a packet behind the value (the last one seen), if known.
    pub sample_ts: Option<u64>,
}

/// Short number for summaries: integers as integers, else 3 significant decimals.
pub fn num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl Ctx<'_> {
    fn evidence(&self, ts: Option<u64>, value: String) -> Evidence {
        Evidence {
            ts_ns: ts.unwrap_or(self.now),
            value,
        }
    }

    /// A new alert with its detail.
    pub fn fire(
        &mut self,
        rule: &'static str,
        severity: Severity,
        key: &str,
        detail: AnomalyDetail,
        sample_ts: Option<u64>,
        summary: String,
    ) {
        let ev = self.evidence(
            sample_ts,
            format!("{} = {}", detail.series, num(detail.observed)),
        );
        let f = Finding {
            rule,
            severity,
            key: key.to_string(),
            first_ts_ns: self.now.saturating_sub(self.bucket_ns),
            ts_ns: self.now,
            count: 1,
            more: 1,
            evidence: vec![ev],
            summary,
        };
        self.alerts.raise_anomaly(f, detail);
    }

    /// One more anomalous bucket of an active alert (keeps it from the cool-down).
    pub fn keep(&mut self, rule: &'static str, key: &str, value: Option<String>, ts: Option<u64>) {
        if !self.alerts.is_active(rule, key) {
            return;
        }
        let evidence = value.map(|v| self.evidence(ts, v)).into_iter().collect();
        self.alerts.raise(Finding {
            rule,
            severity: Severity::Low,
            key: key.to_string(),
            first_ts_ns: self.now,
            ts_ns: self.now,
            count: 1,
            more: 1,
            evidence,
            summary: String::new(),
        });
    }

    pub fn clear(&mut self, rule: &'static str, key: &str) {
        self.alerts.clear(rule, key, self.now);
    }

    /// Applies a track step: fire with the detail, keep, or clear. `describe(up,
    /// expected, threshold)` writes the summary of a new alert.
    pub fn apply(
        &mut self,
        step: Step,
        a: &Alarm<'_>,
        describe: impl FnOnce(bool, f64, f64) -> String,
    ) {
        let rule = |up: bool| if up { a.up_rule } else { a.down_rule };
        match step {
            Step::Quiet => {}
            Step::Fire {
                up,
                expected,
                threshold,
                score,
            } => {
                let detail = AnomalyDetail {
                    series: a.series.to_string(),
                    baseline: expected,
                    observed: a.x,
                    threshold,
                    score,
                };
                let s = describe(up, expected, threshold);
                self.fire(rule(up), a.severity, a.key, detail, a.sample_ts, s);
            }
            Step::Firing { up } => {
                let v = format!("{} = {}", a.series, num(a.x));
                self.keep(rule(up), a.key, Some(v), a.sample_ts);
            }
            Step::Clear { up, .. } => self.clear(rule(up), a.key),
        }
    }
}

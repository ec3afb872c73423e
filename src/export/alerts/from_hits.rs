//! Detector hits → alert edges. The rule engine (and the anomaly engine) keep a list of
//! hits, each active until it clears; [`HitAlerts`] follows those lists and turns every
//! new hit into a `Fired` transition and every clearing into a `Resolved` one, through
//! one [`AlertBook`]. Pure: time comes from the hits themselves (record time).
//!
//! Labels are the alert's identity, so only stable things go there: the rule, its
//! severity, the key it counts per (`ip:…`, `client:…`, `topic:…`) and that key split into
//! the label an operator filters on (`client_id`, `client_address`, `username`, `topic`).
//! What changes while it fires (counts, evidence) goes into annotations.

use std::collections::BTreeMap;

use crate::detect::rules::RuleHit;
use crate::export::prometheus::AlertSeries;

use super::book::{AlertBook, Transition};
use super::model::{Alert, Fingerprint, LabelSet, fingerprint};
use super::time::Timestamp;

/// One followed hit list (rules, anomalies): how far it has been read and which of its
/// hits are firing.
#[derive(Debug, Default)]
struct Cursor {
    seen: usize,
    open: Vec<usize>,
}

#[derive(Debug)]
pub struct HitAlerts {
    book: AlertBook,
    cursors: BTreeMap<&'static str, Cursor>,
    /// (rule, severity) of every alert ever fired: their series stay at 0 once quiet.
    /// Bounded by the number of rule names (labels are code constants, not wire data).
    ever: BTreeMap<(String, String), ()>,
    /// Alerts restored after a restart that no detector has raised again yet, with the
    /// time by which one must, else they resolve. Bounded by the book's cap.
    orphans: BTreeMap<Fingerprint, Timestamp>,
}

fn ms(ts_ns: u64) -> Timestamp {
    Timestamp(i64::try_from(ts_ns / 1_000_000).unwrap_or(i64::MAX))
}

/// The alert's labels for a hit (see the module docs).
pub fn labels_of(source: &str, h: &RuleHit) -> LabelSet {
    let mut l = LabelSet::new();
    l.insert("alertname".into(), h.rule.to_string());
    l.insert("severity".into(), h.severity.name().to_string());
    l.insert("key".into(), h.key.clone());
    l.insert("source".into(), source.to_string());
    l.insert("service".into(), "mqscope".into());
    if let Some((kind, value)) = h.key.split_once(':') {
        let name = match kind {
            "client" => Some("client_id"),
            "ip" | "addr" => Some("client_address"),
            "user" => Some("username"),
            "topic" => Some("topic"),
            _ => None,
        };
        if let Some(n) = name {
            l.insert(n.into(), value.to_string());
        }
    }
    l
}

fn annotations_of(h: &RuleHit) -> LabelSet {
    let mut a = LabelSet::new();
    a.insert("summary".into(), h.summary.clone());
    a.insert("first_seen".into(), ms(h.first_ts_ns).to_rfc3339());
    a.insert("occurrences".into(), h.count.to_string());
    if !h.evidence.is_empty() {
        let ev: Vec<String> = h
            .evidence
            .iter()
            .map(|e| format!("{} {}", ms(e.ts_ns).to_rfc3339(), e.value))
            .collect();
        a.insert("evidence".into(), ev.join("; "));
    }
    a
}

/// Resolves the open hits that have cleared, in list order.
fn resolve_cleared(
    book: &mut AlertBook,
    source: &str,
    hits: &[RuleHit],
    open: &mut Vec<usize>,
    out: &mut Vec<Transition>,
) {
    open.retain(|&i| {
        let Some(h) = hits.get(i) else { return false };
        let Some(end) = h.cleared_ts_ns else {
            return true;
        };
        if let Some(t) = book.deactivate(&labels_of(source, h), ms(end)) {
            out.push(t);
        }
        false
    });
}

impl HitAlerts {
    pub fn new(book: AlertBook) -> HitAlerts {
        HitAlerts {
            book,
            cursors: BTreeMap::new(),
            ever: BTreeMap::new(),
            orphans: BTreeMap::new(),
        }
    }

    /// Reads `hits` (the whole list of the detector named `source`; it only grows) and
    /// returns the edges since the last call, in order: resolutions of hits that were
    /// firing, then new hits (and the resolution of new hits that already cleared). A
    /// resolution comes before a new hit of the same rule and key, which the detector
    /// only raises after the old one cleared.
    pub fn sync(&mut self, source: &'static str, hits: &[RuleHit]) -> Vec<Transition> {
        let cur = self.cursors.entry(source).or_default();
        let mut out = Vec::new();
        resolve_cleared(&mut self.book, source, hits, &mut cur.open, &mut out);
        let start = cur.seen.min(hits.len());
        for (i, h) in hits.iter().enumerate().skip(start) {
            let labels = labels_of(source, h);
            // Raised again after a restart: the restored alert is this hit's now.
            self.orphans
                .remove(&fingerprint(&super::model::bound(labels.clone())));
            self.ever
                .insert((h.rule.to_string(), h.severity.name().to_string()), ());
            if let Some(t) = self.book.activate(labels, annotations_of(h), ms(h.ts_ns)) {
                out.push(t);
            }
            // Followed even when the book said nothing (already firing: restored), so its
            // clearing resolves the alert.
            cur.open.push(i);
        }
        cur.seen = hits.len();
        resolve_cleared(&mut self.book, source, hits, &mut cur.open, &mut out);
        out
    }

    /// Alerts that were firing when the last run stopped. Each resolves at `grace_until`
    /// unless a detector raises it again before (then it is that hit's alert, with no
    /// second "firing" notification). Returns how many were taken back.
    pub fn restore(&mut self, alerts: Vec<Alert>, grace_until: Timestamp) -> usize {
        let mut n = 0;
        for a in alerts {
            let fp = a.fingerprint();
            let rule = a.name().to_string();
            let sev = a.labels.get("severity").cloned().unwrap_or_default();
            if self.book.restore(a) {
                self.orphans.insert(fp, grace_until);
                self.ever.insert((rule, sev), ());
                n += 1;
            }
        }
        n
    }

    /// Resolves restored alerts nobody raised again by their deadline (as of `now`).
    pub fn expire_restored(&mut self, now: Timestamp) -> Vec<Transition> {
        let due: Vec<Fingerprint> = self
            .orphans
            .iter()
            .filter(|&(_, &t)| t <= now)
            .map(|(&fp, _)| fp)
            .collect();
        let mut out = Vec::new();
        for fp in due {
            self.orphans.remove(&fp);
            let labels = self
                .book
                .firing()
                .find(|a| a.fingerprint() == fp)
                .map(|a| a.labels.clone());
            if let Some(t) = labels.and_then(|l| self.book.deactivate(&l, now)) {
                out.push(t);
            }
        }
        out
    }

    /// What is firing now, to be saved for the next start.
    pub fn firing(&self) -> Vec<Alert> {
        self.book.firing().cloned().collect()
    }

    /// `mqscope_alerts_firing{rule,severity}`: firing alerts per rule, plus a 0 for every
    /// rule that fired once and is quiet now (so the series does not vanish).
    pub fn series(&self) -> Vec<AlertSeries> {
        let mut counts: BTreeMap<(String, String), u64> =
            self.ever.keys().map(|k| (k.clone(), 0)).collect();
        for a in self.book.firing() {
            let rule = a.name().to_string();
            let sev = a.labels.get("severity").cloned().unwrap_or_default();
            *counts.entry((rule, sev)).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((rule, severity), firing)| AlertSeries {
                rule,
                severity,
                firing,
            })
            .collect()
    }

    pub fn book(&self) -> &AlertBook {
        &self.book
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rules::{RuleHit, Severity};

    fn hit(rule: &'static str, key: &str, ts_s: u64, cleared_s: Option<u64>) -> RuleHit {
        RuleHit {
            rule,
            severity: Severity::High,
            key: key.into(),
            first_ts_ns: ts_s * 1_000_000_000,
            ts_ns: ts_s * 1_000_000_000,
            count: 5,
            evidence: Vec::new(),
            summary: format!("{rule} {key}"),
            last_ts_ns: ts_s * 1_000_000_000,
            cleared_ts_ns: cleared_s.map(|s| s * 1_000_000_000),
            anomaly: None,
        }
    }

    #[test]
    fn fire_then_resolve_then_fire_again() {
        let mut ha = HitAlerts::new(AlertBook::new(10));
        let mut hits = vec![hit("auth_brute_force", "ip:10.0.0.9", 100, None)];
        let t = ha.sync("rules", &hits);
        assert_eq!(t.len(), 1);
        let Transition::Fired(a) = &t[0] else {
            panic!("{t:?}")
        };
        assert_eq!(a.labels["client_address"], "10.0.0.9");
        assert_eq!(a.starts_at, Timestamp(100_000));
        // Nothing new: nothing to say.
        assert!(ha.sync("rules", &hits).is_empty());
        // It cleared, and the same key fired again later: resolved first, then fired.
        hits[0].cleared_ts_ns = Some(160_000_000_000);
        hits.push(hit("auth_brute_force", "ip:10.0.0.9", 200, None));
        let t = ha.sync("rules", &hits);
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(matches!(&t[0], Transition::Resolved(a) if a.ends_at == Some(Timestamp(160_000))));
        assert!(matches!(&t[1], Transition::Fired(a) if a.starts_at == Timestamp(200_000)));
        let s = ha.series();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].firing, 1);
    }

    #[test]
    fn a_hit_that_cleared_before_it_was_read_fires_and_resolves() {
        let mut ha = HitAlerts::new(AlertBook::new(10));
        let hits = vec![hit("oversized_payload", "client:big", 5, Some(65))];
        let t = ha.sync("rules", &hits);
        assert_eq!(t.len(), 2);
        assert!(matches!(&t[0], Transition::Fired(_)));
        assert!(matches!(&t[1], Transition::Resolved(_)));
        let s = ha.series();
        assert_eq!((s[0].rule.as_str(), s[0].firing), ("oversized_payload", 0));
    }

    #[test]
    fn restored_alert_resolves_after_grace_unless_raised_again() {
        let mut before = HitAlerts::new(AlertBook::new(10));
        let hits = vec![
            hit("auth_brute_force", "ip:10.0.0.9", 100, None),
            hit("publish_flood", "client:f", 100, None),
        ];
        assert_eq!(before.sync("rules", &hits).len(), 2);
        let saved = before.firing();
        // Restart: nothing raised yet.
        let mut after = HitAlerts::new(AlertBook::new(10));
        assert_eq!(after.restore(saved, Timestamp(500_000)), 2);
        assert!(after.expire_restored(Timestamp(499_999)).is_empty());
        // The flood goes on: raised again, no second "firing".
        let again = vec![hit("publish_flood", "client:f", 450, None)];
        assert!(after.sync("rules", &again).is_empty());
        // The brute force did not recur: resolved at the deadline, with its old start.
        let t = after.expire_restored(Timestamp(500_000));
        assert_eq!(t.len(), 1, "{t:?}");
        let Transition::Resolved(a) = &t[0] else {
            panic!("{t:?}")
        };
        assert_eq!(a.name(), "auth_brute_force");
        assert_eq!(a.starts_at, Timestamp(100_000));
        assert_eq!(a.ends_at, Some(Timestamp(500_000)));
        // The flood's clearing resolves the restored alert.
        let mut cleared = again.clone();
        cleared[0].cleared_ts_ns = Some(600_000_000_000);
        let t = after.sync("rules", &cleared);
        assert!(
            matches!(&t[..], [Transition::Resolved(a)] if a.name() == "publish_flood"),
            "{t:?}"
        );
        assert_eq!(after.book().firing_count(), 0);
    }

    #[test]
    fn sources_are_followed_separately() {
        let mut ha = HitAlerts::new(AlertBook::new(10));
        let r = vec![hit("publish_flood", "client:a", 1, None)];
        let a = vec![hit("anomaly_rate_spike", "topic:x/+", 2, None)];
        assert_eq!(ha.sync("rules", &r).len(), 1);
        assert_eq!(ha.sync("anomalies", &a).len(), 1);
        assert_eq!(ha.book().firing_count(), 2);
    }
}

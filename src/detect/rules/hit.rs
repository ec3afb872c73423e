//! Rule hits and their life cycle: a condition that keeps recurring is one alert, active
//! until it has been quiet for the cool-down, then cleared; so alerts fire once and
//! resolve instead of repeating per packet.

use serde::Serialize;

use super::table::BoundedTable;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One offending packet or event: when, and what about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub ts_ns: u64,
    pub value: String,
}

/// What a statistical detector compared when it raised an anomaly hit: the series, its
/// learned baseline, the value that crossed and the threshold it crossed. Rules leave
/// this out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnomalyDetail {
    /// Which series of the key (`msgs_in per 10s bucket`, `mean payload bytes`, ...).
    pub series: String,
    pub baseline: f64,
    pub observed: f64,
    pub threshold: f64,
    /// Detector score in [0, 1), 0.5 at the alert probability (0 when the check is not
    /// a series detector, e.g. silence or a new name).
    pub score: f64,
}

/// Evidence kept per hit (the first occurrences).
pub const MAX_EVIDENCE: usize = 5;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleHit {
    pub rule: &'static str,
    pub severity: Severity,
    /// What the rule counts per: `ip:..`, `user:..`, `client:..`.
    pub key: String,
    /// First offending packet or event counted towards the detection.
    pub first_ts_ns: u64,
    /// When the rule fired (time of the packet or event that crossed the threshold).
    pub ts_ns: u64,
    /// Offending occurrences: those that crossed the threshold plus later ones while active.
    pub count: u64,
    pub evidence: Vec<Evidence>,
    pub summary: String,
    /// Last occurrence while active.
    pub last_ts_ns: u64,
    /// When it resolved (last occurrence + cool-down, or when an anomaly's series was
    /// normal again); None: still active at the end.
    pub cleared_ts_ns: Option<u64>,
    /// Anomaly hits only: baseline, observed value and threshold when it fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalyDetail>,
}

/// What a rule found, before it becomes (or extends) a hit.
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub key: String,
    pub first_ts_ns: u64,
    pub ts_ns: u64,
    /// Occurrences counted for a new hit.
    pub count: u64,
    /// Occurrences this finding adds to an already active hit (1 for one more failure;
    /// a whole window's PUBLISHes for a flood).
    pub more: u64,
    pub evidence: Vec<Evidence>,
    pub summary: String,
}

pub struct Alerts {
    active: BoundedTable<(&'static str, String), Option<usize>>,
    hits: Vec<RuleHit>,
    max_hits: usize,
    cooldown_ns: u64,
    /// Hits not kept because the hit list was full.
    pub hits_dropped: u64,
}

impl Alerts {
    pub fn new(max_keys: usize, max_hits: usize, cooldown_ns: u64) -> Alerts {
        Alerts {
            active: BoundedTable::new(max_keys),
            hits: Vec::new(),
            max_hits,
            cooldown_ns,
            hits_dropped: 0,
        }
    }

    pub fn hits(&self) -> &[RuleHit] {
        &self.hits
    }

    pub fn active_evicted(&self) -> u64 {
        self.active.evicted
    }

    /// A new hit, or one more occurrence of an active one. Returns true if it is new.
    pub fn raise(&mut self, f: Finding) -> bool {
        let k = (f.rule, f.key);
        if let Some(slot) = self.active.get_mut(&k) {
            let slot = *slot;
            // Touch the entry (its time is the last occurrence).
            self.active.entry(&k, f.ts_ns, self.cooldown_ns, || slot);
            if let Some(h) = slot.and_then(|i| self.hits.get_mut(i)) {
                h.count += f.more;
                h.last_ts_ns = h.last_ts_ns.max(f.ts_ns);
                for e in f.evidence {
                    if h.evidence.len() >= MAX_EVIDENCE {
                        break;
                    }
                    h.evidence.push(e);
                }
            }
            return false;
        }
        let idx = if self.hits.len() < self.max_hits {
            let mut evidence = f.evidence;
            evidence.truncate(MAX_EVIDENCE);
            self.hits.push(RuleHit {
                rule: f.rule,
                severity: f.severity,
                key: k.1.clone(),
                first_ts_ns: f.first_ts_ns,
                ts_ns: f.ts_ns,
                count: f.count,
                evidence,
                summary: f.summary,
                last_ts_ns: f.ts_ns,
                cleared_ts_ns: None,
                anomaly: None,
            });
            Some(self.hits.len() - 1)
        } else {
            self.hits_dropped += 1;
            None
        };
        self.active.entry(&k, f.ts_ns, self.cooldown_ns, || idx);
        true
    }

    /// Like `raise`, for an anomaly: a new hit carries `detail` (an active one keeps the
    /// detail it fired with). Returns true if it is new.
    pub fn raise_anomaly(&mut self, f: Finding, detail: AnomalyDetail) -> bool {
        let k = (f.rule, f.key.clone());
        let new = self.raise(f);
        if new
            && let Some(Some(i)) = self.active.get_mut(&k).copied()
            && let Some(h) = self.hits.get_mut(i)
        {
            h.anomaly = Some(detail);
        }
        new
    }

    /// Whether `(rule, key)` is active.
    pub fn is_active(&self, rule: &'static str, key: &str) -> bool {
        self.active.contains(&(rule, key.to_string()))
    }

    /// Resolves the active hit `(rule, key)` at `now_ns` (its condition cleared), without
    /// waiting for the cool-down. Returns true if one was active.
    pub fn clear(&mut self, rule: &'static str, key: &str, now_ns: u64) -> bool {
        let Some(slot) = self.active.remove(&(rule, key.to_string())) else {
            return false;
        };
        if let Some(h) = slot.and_then(|i| self.hits.get_mut(i)) {
            h.cleared_ts_ns = Some(now_ns.max(h.last_ts_ns));
        }
        true
    }

    /// Resolve alerts quiet for the cool-down as of `now_ns`.
    pub fn tick(&mut self, now_ns: u64) {
        let cd = self.cooldown_ns;
        let hits = &mut self.hits;
        self.active.retain(|_, slot| {
            let Some(h) = slot.and_then(|i| hits.get_mut(i)) else {
                return false;
            };
            let end = h.last_ts_ns.saturating_add(cd);
            if now_ns >= end {
                h.cleared_ts_ns = Some(end);
                false
            } else {
                true
            }
        });
    }
}

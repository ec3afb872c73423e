//! The alert model, shaped like Alertmanager's so every receiver can be fed from it
//! without translation: a label set (identity), annotations (free text), `starts_at`,
//! `ends_at` (set only once resolved) and a generator URL.
//!
//! Identity is the label set alone. [`fingerprint`] hashes it exactly like Alertmanager
//! (`prometheus/common` `LabelSet.Fingerprint`): FNV-1a 64 over the labels sorted by
//! name, each as `name 0xFF value 0xFF`, printed as 16 lower-case hex digits. So the
//! fingerprint mqscope reports, the PagerDuty `dedup_key` and the `fingerprint` that
//! Alertmanager puts in its own webhooks are the same string.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// Labels and annotations: sorted maps, so serialisation and hashing are canonical.
pub type LabelSet = BTreeMap<String, String>;

/// Longest label / annotation value kept; longer values (they may carry wire data such as
/// topics or client ids) are cut at a char boundary so one alert stays small.
pub const MAX_VALUE_LEN: usize = 1024;
/// Most labels or annotations kept per alert; the rest are dropped (names sort first).
pub const MAX_PAIRS: usize = 32;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SEPARATOR: u8 = 0xFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Alertmanager's label-set fingerprint (see the module docs). An empty set hashes to the
/// FNV offset basis, as in Alertmanager.
pub fn fingerprint(labels: &LabelSet) -> Fingerprint {
    let mut h = FNV_OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[SEPARATOR]);
        add(v.as_bytes());
        add(&[SEPARATOR]);
    }
    Fingerprint(h)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: Timestamp,
    /// `None` while firing; the resolution time once resolved.
    pub ends_at: Option<Timestamp>,
    pub generator_url: String,
}

impl Alert {
    /// A firing alert; labels and annotations are bounded (see [`MAX_PAIRS`],
    /// [`MAX_VALUE_LEN`]) before the fingerprint is taken, so identity is stable.
    pub fn firing(labels: LabelSet, annotations: LabelSet, starts_at: Timestamp) -> Alert {
        Alert {
            labels: bound(labels),
            annotations: bound(annotations),
            starts_at,
            ends_at: None,
            generator_url: String::new(),
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.labels)
    }

    pub fn state(&self) -> AlertState {
        if self.ends_at.is_some() {
            AlertState::Resolved
        } else {
            AlertState::Firing
        }
    }

    /// `alertname` label, or "" (Alertmanager's convention for the alert's title).
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// Keeps at most [`MAX_PAIRS`] pairs, each name and value at most [`MAX_VALUE_LEN`] bytes.
pub fn bound(set: LabelSet) -> LabelSet {
    set.into_iter()
        .take(MAX_PAIRS)
        .map(|(k, v)| (truncate(k), truncate(v)))
        .collect()
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_VALUE_LEN {
        let mut cut = MAX_VALUE_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

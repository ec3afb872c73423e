//! `AlertBook`: what detectors call. A detector reports "condition active / inactive for
//! label set X at time t"; the book turns that level signal into edges (fired, resolved)
//! and remembers what is firing. Pure: no clock, no I/O; time is passed in.
//!
//! Label sets can carry wire data (topics, client ids), so the set of firing alerts is
//! capped; a new alert beyond the cap is refused and counted rather than evicting a
//! firing one (evicting would silently lose its resolution).

use std::collections::HashMap;

use super::model::{Alert, Fingerprint, LabelSet};
use super::time::Timestamp;

/// An edge to notify receivers about. Both carry the whole alert; `Resolved` has
/// `ends_at` set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Fired(Alert),
    Resolved(Alert),
}

impl Transition {
    pub fn alert(&self) -> &Alert {
        match self {
            Transition::Fired(a) | Transition::Resolved(a) => a,
        }
    }

    pub fn into_alert(self) -> Alert {
        match self {
            Transition::Fired(a) | Transition::Resolved(a) => a,
        }
    }
}

#[derive(Debug)]
pub struct AlertBook {
    firing: HashMap<Fingerprint, Alert>,
    max_firing: usize,
    generator_url: String,
    refused_over_cap: u64,
}

impl AlertBook {
    pub fn new(max_firing: usize) -> AlertBook {
        AlertBook {
            firing: HashMap::new(),
            max_firing,
            generator_url: String::new(),
            refused_over_cap: 0,
        }
    }

    /// Put on every alert this book raises (e.g. mqscope's own URL).
    pub fn with_generator_url(mut self, url: impl Into<String>) -> AlertBook {
        self.generator_url = url.into();
        self
    }

    /// Condition holds at `now`. Returns `Fired` the first time; while already firing,
    /// annotations are refreshed silently and `None` is returned.
    pub fn activate(
        &mut self,
        labels: LabelSet,
        annotations: LabelSet,
        now: Timestamp,
    ) -> Option<Transition> {
        let mut alert = Alert::firing(labels, annotations, now);
        let fp = alert.fingerprint();
        if let Some(existing) = self.firing.get_mut(&fp) {
            existing.annotations = alert.annotations;
            return None;
        }
        if self.firing.len() >= self.max_firing {
            self.refused_over_cap += 1;
            return None;
        }
        alert.generator_url.clone_from(&self.generator_url);
        self.firing.insert(fp, alert.clone());
        Some(Transition::Fired(alert))
    }

    /// Condition no longer holds at `now`. Returns `Resolved` if it was firing.
    /// `labels` must be the same set given to `activate` (after bounding, which is
    /// idempotent, so passing the original set works).
    pub fn deactivate(&mut self, labels: &LabelSet, now: Timestamp) -> Option<Transition> {
        let fp = super::model::fingerprint(&super::model::bound(labels.clone()));
        let mut alert = self.firing.remove(&fp)?;
        // An alert cannot end before it started, whatever clock skew the caller has.
        alert.ends_at = Some(now.max(alert.starts_at));
        Some(Transition::Resolved(alert))
    }

    /// Level-to-edge in one call: `active` true → `activate`, false → `deactivate`.
    pub fn set(
        &mut self,
        active: bool,
        labels: LabelSet,
        annotations: LabelSet,
        now: Timestamp,
    ) -> Option<Transition> {
        if active {
            self.activate(labels, annotations, now)
        } else {
            self.deactivate(&labels, now)
        }
    }

    /// Takes back an alert that was firing before a restart (its `starts_at` kept), so
    /// that its resolution can still be sent. Refused (false) when the cap is reached or
    /// the alert is not firing.
    pub fn restore(&mut self, alert: Alert) -> bool {
        if alert.ends_at.is_some() || self.firing.len() >= self.max_firing {
            return false;
        }
        self.firing.entry(alert.fingerprint()).or_insert(alert);
        true
    }

    pub fn is_firing(&self, fp: Fingerprint) -> bool {
        self.firing.contains_key(&fp)
    }

    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.firing.values()
    }

    pub fn firing_count(&self) -> usize {
        self.firing.len()
    }

    /// New alerts refused because `max_firing` alerts were already firing.
    pub fn refused_over_cap(&self) -> u64 {
        self.refused_over_cap
    }
}

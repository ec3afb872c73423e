//! The state shared between the pipeline and the HTTP listener: the latest owned
//! snapshot behind an `Arc`, swapped in by the pipeline and rendered by scrapes. The
//! lock is held only to swap or clone the `Arc` (no rendering, no I/O under it), so a
//! slow or hung scrape can never hold up the analysis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::broker::metrics::BrokerMetrics;
use crate::capture::CaptureStats;
use crate::dissect::DissectStats;
use crate::observe::{Observer, ObserverSnapshot};

use super::config::PrometheusConfig;
use super::output_metrics::OutputSeries;
use super::prometheus::{AlertSeries, KernelDrops, MetricsInput, render};
use super::series::ObserverSeries;
use super::tally::EventTally;

/// Everything one scrape shows, owned (see `MetricsInput` for the fields' meaning).
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    pub dissect: DissectStats,
    pub capture: CaptureStats,
    pub kernel: Option<KernelDrops>,
    pub observer: Option<(ObserverSnapshot, ObserverSeries)>,
    pub events: Option<EventTally>,
    pub brokers: Vec<BrokerMetrics>,
    pub alerts: Vec<AlertSeries>,
    pub outputs: Option<OutputSeries>,
}

impl MetricsSnapshot {
    pub fn new(dissect: DissectStats, capture: CaptureStats) -> MetricsSnapshot {
        MetricsSnapshot {
            dissect,
            capture,
            ..Default::default()
        }
    }

    /// Adds the observer's state: its snapshot plus the histogram buckets and topic
    /// selection the exporter needs (read from `obs` now, so call it between records).
    pub fn with_observer(self, obs: &Observer, cfg: &PrometheusConfig) -> MetricsSnapshot {
        let snap = obs.snapshot();
        self.with_observer_snapshot(obs, snap, cfg)
    }

    /// As [`Self::with_observer`], with the observer's snapshot already taken now (the
    /// live pipeline builds one per publication for its own use too).
    pub fn with_observer_snapshot(
        mut self,
        obs: &Observer,
        snap: ObserverSnapshot,
        cfg: &PrometheusConfig,
    ) -> MetricsSnapshot {
        let series = ObserverSeries::build(obs, &snap, cfg);
        self.observer = Some((snap, series));
        self
    }

    pub fn input<'a>(&'a self, config: &'a PrometheusConfig) -> MetricsInput<'a> {
        MetricsInput {
            config,
            dissect: &self.dissect,
            capture: &self.capture,
            kernel: self.kernel,
            observer: self.observer.as_ref().map(|(s, x)| (s, x)),
            events: self.events.as_ref(),
            brokers: &self.brokers,
            alerts: &self.alerts,
            outputs: self.outputs.as_ref(),
        }
    }
}

pub struct MetricsState {
    config: PrometheusConfig,
    latest: RwLock<Arc<MetricsSnapshot>>,
    ready: AtomicBool,
}

impl MetricsState {
    /// Starts with an empty snapshot (so `/metrics` answers from the first moment) and
    /// not ready.
    pub fn new(config: PrometheusConfig) -> Arc<MetricsState> {
        Arc::new(MetricsState {
            config,
            latest: RwLock::new(Arc::new(MetricsSnapshot::default())),
            ready: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &PrometheusConfig {
        &self.config
    }

    /// Replaces the snapshot scrapes render.
    pub fn publish(&self, snap: MetricsSnapshot) {
        let snap = Arc::new(snap);
        // A poisoned lock only means a scrape panicked while cloning an Arc: the value
        // inside is still whole.
        match self.latest.write() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
    }

    pub fn latest(&self) -> Arc<MetricsSnapshot> {
        match self.latest.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// `/readyz` answers 200 once the pipeline has said it runs.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The exposition of the latest snapshot (rendered outside the lock).
    pub fn render(&self) -> String {
        let snap = self.latest();
        render(&snap.input(&self.config))
    }
}

//! Broker-wide series: latency and unanswered requests per exchange (from the wire),
//! and the broker's own `$SYS` metrics (rates of its counters, levels of its gauges).

use serde::{Deserialize, Serialize};

use crate::broker::BrokerMetrics;
use crate::detect::rules::hit::Severity;
use crate::observe::tracker::ExchangeTotals;
use crate::observe::{Exchange, Observer};

use super::emit::{Alarm, Ctx, num};
use super::engine::{AnomalyEngine, MAX_METRIC_SERIES};
use super::topics::BASELINE_HALFLIFE;
use super::track::{self, Step, Track};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExchangeState {
    #[serde(skip)]
    pub prev: Option<ExchangeTotals>,
    pub latency: Option<Track>,
    pub unanswered: Option<Track>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricState {
    /// Last counter value, when it last changed, and the broker generation.
    #[serde(skip)]
    pub prev: Option<(u64, u64, u32)>,
    pub track: Option<Track>,
    pub last_ns: u64,
}

/// A counter feeds its rate per second, a gauge its level.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// A counter unchanged this long has stopped (rate 0), not just not republished.
const COUNTER_STALL_NS: u64 = 60_000_000_000;

fn metric_list(m: &BrokerMetrics) -> [(&'static str, Option<u64>, Kind); 15] {
    use Kind::{Counter, Gauge};
    [
        ("packets_received", m.packets_received, Counter),
        ("packets_sent", m.packets_sent, Counter),
        ("publish_received", m.publish_received, Counter),
        ("publish_sent", m.publish_sent, Counter),
        ("publish_dropped", m.publish_dropped, Counter),
        ("bytes_received", m.bytes_received, Counter),
        ("bytes_sent", m.bytes_sent, Counter),
        ("dropped_no_subscribers", m.dropped_no_subscribers, Counter),
        ("authn_failed", m.authn_failed, Counter),
        ("authz_denied", m.authz_denied, Counter),
        ("clients_connected", m.clients_connected, Gauge),
        ("subscriptions", m.subscriptions, Gauge),
        ("retained_messages", m.retained_messages, Gauge),
        ("store_messages", m.store_messages, Gauge),
        ("heap_current", m.heap_current, Gauge),
    ]
}

impl AnomalyEngine {
    pub(super) fn exchanges_pass(&mut self, obs: &Observer, now: u64) {
        let weekly = self.weekly();
        let lat_p = self.params(BASELINE_HALFLIFE, 1e-3);
        let cnt_p = self.params(BASELINE_HALFLIFE, 1.0);
        let bucket_ns = self.cfg.bucket_ns();
        let cfg = &self.cfg;
        let mut ctx = Ctx {
            alerts: &mut self.alerts,
            now,
            bucket_ns,
        };
        for (st, &ex) in self.exchanges.iter_mut().zip(Exchange::ALL.iter()) {
            let tot = obs.tracker().exchange_totals(ex);
            let Some(prev) = st.prev.replace(tot) else {
                continue;
            };
            if tot.count < prev.count || tot.unanswered < prev.unanswered {
                continue;
            }
            let n = tot.count - prev.count;
            if cfg.latency.enabled && n >= cfg.latency.min_samples {
                let mean = (tot.sum_s - prev.sum_s) / n as f64;
                if st.latency.is_none() {
                    st.latency =
                        AnomalyEngine::new_track(&mut self.budget, &self.dcfg, weekly, now);
                }
                if let Some(t) = st.latency.as_mut() {
                    let lc = &cfg.latency;
                    let step = t.step(now, mean, &lat_p, |e, x| {
                        track::rise(e, x, lc.ratio, lc.min_delta_ms * 1e-3)
                    });
                    if step != Step::Quiet {
                        let key = format!("broker:latency_{}", ex.name());
                        let series = format!("mean {} latency s", ex.name());
                        let a = Alarm {
                            up_rule: "anomaly_latency_regression",
                            down_rule: "anomaly_latency_regression",
                            severity: Severity::Medium,
                            key: &key,
                            series: &series,
                            x: mean,
                            sample_ts: None,
                        };
                        ctx.apply(step, &a, |_, e, _| {
                            format!(
                                "{} latency {:.1} ms on average over the bucket, usually {:.1} ms",
                                ex.name(),
                                mean * 1e3,
                                e * 1e3
                            )
                        });
                    }
                }
            }
            if ex == Exchange::Fanout || !cfg.unanswered.enabled {
                continue;
            }
            let u = (tot.unanswered - prev.unanswered) as f64;
            if st.unanswered.is_none() && u == 0.0 {
                continue;
            }
            if st.unanswered.is_none() {
                st.unanswered = AnomalyEngine::new_track(&mut self.budget, &self.dcfg, weekly, now);
            }
            if let Some(t) = st.unanswered.as_mut() {
                let uc = &cfg.unanswered;
                let z = cfg.rate.z;
                let step = t.step(now, u, &cnt_p, |e, x| {
                    track::count_spike(e, x, uc.ratio, uc.min_count, z)
                        .filter(|_| x >= uc.min_count)
                });
                if step != Step::Quiet {
                    let key = format!("broker:unanswered_{}", ex.name());
                    let series = format!("unanswered {} per bucket", ex.name());
                    let a = Alarm {
                        up_rule: "anomaly_unanswered",
                        down_rule: "anomaly_unanswered",
                        severity: Severity::Medium,
                        key: &key,
                        series: &series,
                        x: u,
                        sample_ts: None,
                    };
                    ctx.apply(step, &a, |_, e, _| {
                        format!(
                            "{} {} requests went unanswered in one bucket, usually {}",
                            num(u),
                            ex.name(),
                            num(e)
                        )
                    });
                }
            }
        }
    }

    pub(super) fn metrics_pass(&mut self, brokers: &[BrokerMetrics], now: u64) {
        let weekly = self.weekly();
        let p = self.params(BASELINE_HALFLIFE, 1.0);
        let bucket_ns = self.cfg.bucket_ns();
        for m in brokers {
            let node: Option<String> = m.node.as_deref().map(|n| n.chars().take(64).collect());
            for (name, value, kind) in metric_list(m) {
                let Some(v) = value else { continue };
                let key = match &node {
                    None => format!("broker:{name}"),
                    Some(n) => format!("broker:{name}@{n}"),
                };
                if !self.metrics.contains_key(&key) {
                    if self.metrics.len() >= MAX_METRIC_SERIES {
                        self.c.entities_refused += 1;
                        continue;
                    }
                    self.metrics.insert(key.clone(), MetricState::default());
                }
                let Some(st) = self.metrics.get_mut(&key) else {
                    continue;
                };
                st.last_ns = now;
                let x = match kind {
                    Kind::Gauge => Some(v as f64),
                    Kind::Counter => match st.prev {
                        Some((pv, pt, g)) if g == m.generation && v >= pv => {
                            if v > pv {
                                st.prev = Some((v, now, g));
                                Some(
                                    (v - pv) as f64 / (now.saturating_sub(pt).max(1) as f64 * 1e-9),
                                )
                            } else if now.saturating_sub(pt) >= COUNTER_STALL_NS {
                                Some(0.0)
                            } else {
                                None
                            }
                        }
                        _ => {
                            // First value, a broker restart or a counter reset.
                            st.prev = Some((v, now, m.generation));
                            None
                        }
                    },
                };
                let Some(x) = x else { continue };
                if st.track.is_none() {
                    st.track = AnomalyEngine::new_track(&mut self.budget, &self.dcfg, weekly, now);
                }
                let Some(t) = st.track.as_mut() else { continue };
                let bc = &self.cfg.broker;
                let step = t.step(now, x, &p, |e, x| track::metric_change(e, x, bc));
                if step == Step::Quiet {
                    continue;
                }
                let unit = if kind == Kind::Counter {
                    " per second"
                } else {
                    ""
                };
                let series = format!("{name}{unit}");
                let a = Alarm {
                    up_rule: "anomaly_rate_spike",
                    down_rule: "anomaly_rate_drop",
                    severity: Severity::Medium,
                    key: &key,
                    series: &series,
                    x,
                    sample_ts: None,
                };
                let mut ctx = Ctx {
                    alerts: &mut self.alerts,
                    now,
                    bucket_ns,
                };
                ctx.apply(step, &a, |up, e, _| {
                    format!(
                        "broker {name}{unit} {} (usually {}): {}",
                        num(x),
                        num(e),
                        if up { "far above" } else { "far below" }
                    )
                });
            }
        }
    }
}

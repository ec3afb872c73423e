//! `mqscope simulate`: drives a real broker with realistic OT traffic, and with the
//! misbehaviours the detectors must catch, switched on one by one. It is a load and
//! scenario tool, not part of the sidecar: it opens client connections, nothing else.
//!
//! Normal traffic: devices under an ISA-95 namespace
//! (`enterprise/site/area/line/cell/device/metric`) publish periodic JSON telemetry
//! (QoS 0/1/2 by device), keep a retained `state` topic with a will, and consumers
//! subscribe with wildcards. A share of clients speaks MQTT 5, the rest 3.1.1.

mod client;
mod misbehave;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use client::{ClientSpec, start};

/// Metrics each device publishes (a device publishes `metrics_per_device` of them).
const METRICS: [&str; 6] = [
    "temperature",
    "pressure",
    "vibration",
    "current",
    "flow",
    "state_code",
];

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub host: String,
    pub port: u16,
    pub devices: u32,
    pub metrics_per_device: u32,
    pub interval_ms: u64,
    pub duration: Duration,
    /// Share of clients speaking MQTT 5 (the rest MQTT 3.1.1).
    pub v5_share: f64,
    pub consumers: u32,
    pub credentials: Option<(String, String)>,
    pub enterprise: String,
    pub misbehave: Misbehaviours,
}

/// Each is off unless set.
#[derive(Clone, Debug, Default)]
pub struct Misbehaviours {
    /// Connection attempts with a wrong password.
    pub brute_force: u32,
    /// Publish to and subscribe to this topic (one the broker's ACL denies).
    pub acl_topic: Option<String>,
    /// Subscribe to `#` and `$SYS/#`.
    pub wildcard_subscribe: bool,
    /// A client publishing this many messages per second (QoS 0).
    pub flood_rate: u32,
    /// Device 0 stops publishing after this long (its connection stays open).
    pub silent_after: Option<Duration>,
    /// One PUBLISH with a payload of this many KiB.
    pub oversized_kib: u32,
    /// Idle connections with a keepalive of 65535 s (SlowITe).
    pub slowite: u32,
    /// Device 0's client id connects again from another connection.
    pub takeover: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            host: "127.0.0.1".into(),
            port: 1883,
            devices: 20,
            metrics_per_device: 3,
            interval_ms: 1000,
            duration: Duration::from_secs(30),
            v5_share: 0.3,
            consumers: 2,
            credentials: None,
            enterprise: "acme".into(),
            misbehave: Misbehaviours::default(),
        }
    }
}

/// What the simulator did (requests queued; the broker's answers are in its logs and
/// in what mqscope observed).
#[derive(Debug, Default)]
pub struct SimCounters {
    pub publishes: AtomicU64,
    pub subscribes: AtomicU64,
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub brute_force_attempts: AtomicU64,
    pub flood_publishes: AtomicU64,
}

impl SimCounters {
    pub fn summary(&self) -> String {
        format!(
            "connections {}, refused {}, publishes {}, subscribes {}, brute-force attempts {}, flood publishes {}",
            self.connections.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.publishes.load(Ordering::Relaxed),
            self.subscribes.load(Ordering::Relaxed),
            self.brute_force_attempts.load(Ordering::Relaxed),
            self.flood_publishes.load(Ordering::Relaxed),
        )
    }
}

/// `enterprise/site-SS/area-A/line-LL/cell-C/dev-DDDD`: stable per device index.
pub fn device_prefix(enterprise: &str, d: u32) -> String {
    format!(
        "{enterprise}/site-{:02}/area-{}/line-{:02}/cell-{}/dev-{d:04}",
        d / 40 % 4,
        d / 10 % 4,
        d / 5 % 8,
        d % 5
    )
}

fn spec(cfg: &SimConfig, client_id: String, v5: bool) -> ClientSpec {
    ClientSpec {
        host: cfg.host.clone(),
        port: cfg.port,
        client_id,
        v5,
        keep_alive_secs: 30,
        credentials: cfg.credentials.clone(),
        will: None,
    }
}

/// Deterministic per-device choices (no RNG needed: the index spreads them).
fn device_is_v5(cfg: &SimConfig, d: u32) -> bool {
    (f64::from(d % 100) + 0.5) / 100.0 < cfg.v5_share
}

fn device_qos(d: u32) -> u8 {
    match d % 10 {
        0..=5 => 0,
        6..=8 => 1,
        _ => 2,
    }
}

async fn device(cfg: Arc<SimConfig>, d: u32, counters: Arc<SimCounters>, deadline: Instant) {
    let prefix = device_prefix(&cfg.enterprise, d);
    let mut s = spec(&cfg, format!("dev-{d:04}"), device_is_v5(&cfg, d));
    s.will = Some((format!("{prefix}/state"), b"offline".to_vec()));
    let (client, task) = start(&s, true);
    counters.connections.fetch_add(1, Ordering::Relaxed);
    if client
        .publish(&format!("{prefix}/state"), 1, true, b"online".to_vec())
        .await
    {
        counters.publishes.fetch_add(1, Ordering::Relaxed);
    }
    let qos = device_qos(d);
    // Spread devices over the interval so the broker sees a steady stream.
    let offset = cfg.interval_ms * u64::from(d) / u64::from(cfg.devices.max(1));
    tokio::time::sleep(Duration::from_millis(offset)).await;
    let started = Instant::now();
    let mut seq: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms.max(1)));
    while Instant::now() < deadline {
        tick.tick().await;
        let silent = d == 0
            && cfg
                .misbehave
                .silent_after
                .is_some_and(|s| started.elapsed() >= s);
        if silent {
            continue;
        }
        for m in 0..cfg.metrics_per_device.min(METRICS.len() as u32) {
            let metric = METRICS[((d + m) as usize) % METRICS.len()];
            // A smooth signal with a little structure, like a real sensor.
            let value = 20.0 + f64::from(d % 17) + ((seq as f64) / 10.0 + f64::from(m)).sin() * 2.5;
            let payload = format!(
                "{{\"seq\":{seq},\"value\":{value:.3},\"unit\":\"{}\",\"quality\":\"good\"}}",
                unit(metric)
            );
            if client
                .publish(
                    &format!("{prefix}/{metric}"),
                    qos,
                    false,
                    payload.into_bytes(),
                )
                .await
            {
                counters.publishes.fetch_add(1, Ordering::Relaxed);
            }
        }
        seq += 1;
    }
    client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
}

fn unit(metric: &str) -> &'static str {
    match metric {
        "temperature" => "degC",
        "pressure" => "bar",
        "vibration" => "mm/s",
        "current" => "A",
        "flow" => "m3/h",
        _ => "",
    }
}

async fn consumer(cfg: Arc<SimConfig>, k: u32, counters: Arc<SimCounters>, deadline: Instant) {
    let (client, task) = start(&spec(&cfg, format!("historian-{k}"), k % 2 == 1), true);
    counters.connections.fetch_add(1, Ordering::Relaxed);
    // A historian takes a whole site; a dashboard one metric across the plant.
    let filter = if k.is_multiple_of(2) {
        format!("{}/site-00/#", cfg.enterprise)
    } else {
        "+/+/+/+/+/+/temperature".to_string()
    };
    if client.subscribe(&filter, 1).await {
        counters.subscribes.fetch_add(1, Ordering::Relaxed);
    }
    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
    client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
}

/// Run the simulation until `cfg.duration` has passed; returns the counters.
pub async fn run(cfg: SimConfig) -> Arc<SimCounters> {
    let cfg = Arc::new(cfg);
    let counters = Arc::new(SimCounters::default());
    let deadline = Instant::now() + cfg.duration;
    let mut tasks = Vec::new();
    for k in 0..cfg.consumers {
        tasks.push(tokio::spawn(consumer(
            cfg.clone(),
            k,
            counters.clone(),
            deadline,
        )));
    }
    for d in 0..cfg.devices {
        tasks.push(tokio::spawn(device(
            cfg.clone(),
            d,
            counters.clone(),
            deadline,
        )));
    }
    tasks.extend(misbehave::spawn_all(
        cfg.clone(),
        counters.clone(),
        deadline,
    ));
    for t in tasks {
        let _ = t.await;
    }
    counters
}

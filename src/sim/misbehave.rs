//! The misbehaviours, each a task that runs beside the normal traffic. They use the
//! same client code as devices, so what reaches the broker is a real client's bytes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::client::{ClientSpec, start};
use super::{SimConfig, SimCounters};

/// Rounds of SUBSCRIBE + QoS 1 PUBLISH + QoS 2 PUBLISH on the ACL-denied topic (200 ms
/// apart): 12 refused publishes from the MQTT 5 client, over twice the default
/// `acl_denials` threshold of 5 in 60 s.
const ACL_ATTEMPTS: u32 = 6;

fn spec(cfg: &SimConfig, id: String, v5: bool, keep_alive_secs: u64) -> ClientSpec {
    ClientSpec {
        host: cfg.host.clone(),
        port: cfg.port,
        client_id: id,
        v5,
        keep_alive_secs,
        credentials: cfg.credentials.clone(),
        will: None,
    }
}

/// Give a one-shot client time to connect, then report whether the broker refused it.
async fn settle(task: JoinHandle<super::client::LoopOutcome>, wait: Duration) -> bool {
    match tokio::time::timeout(wait, task).await {
        // The loop ended on its own: the connection failed or was refused.
        Ok(Ok(o)) => o.refused || !o.connected,
        // Still running after `wait`: connected and alive.
        Err(_) => false,
        Ok(Err(_)) => true,
    }
}

pub(super) fn spawn_all(
    cfg: Arc<SimConfig>,
    counters: Arc<SimCounters>,
    deadline: Instant,
) -> Vec<JoinHandle<()>> {
    let m = cfg.misbehave.clone();
    let mut tasks = Vec::new();
    if m.brute_force > 0 {
        let (cfg, counters) = (cfg.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            let user = cfg
                .credentials
                .as_ref()
                .map_or("operator".to_string(), |(u, _)| u.clone());
            for i in 0..m.brute_force {
                let mut s = spec(&cfg, format!("bf-{i:05}"), i % 2 == 1, 30);
                s.credentials = Some((user.clone(), format!("guess-{i:05}")));
                let (client, task) = start(&s, false);
                counters
                    .brute_force_attempts
                    .fetch_add(1, Ordering::Relaxed);
                if settle(task, Duration::from_millis(300)).await {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                }
                drop(client);
                // A guessing script, not a DoS: a few attempts per second.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    if let Some(topic) = m.acl_topic.clone() {
        let (cfg, counters) = (cfg.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            // One 3.1.1 and one MQTT 5 client, side by side, probe the topic the way a
            // script looking for access does: again and again. What the wire shows
            // differs by broker and version. Mosquitto's acl_file does not check
            // subscriptions at all (SUBACK grants; delivery is what it filters) and
            // acknowledges a denied 3.1.1 PUBLISH as if accepted, so only the MQTT 5
            // client's QoS 1/2 publishes come back refused (PUBACK/PUBREC 0x87). EMQX
            // also refuses the SUBSCRIBE (3.1.1 0x80, MQTT 5 0x87). Repeating is what
            // makes it a burst for `acl_denial_burst`, not a typo.
            let mut probes = Vec::new();
            for v5 in [false, true] {
                let (cfg, counters, topic) = (cfg.clone(), counters.clone(), topic.clone());
                probes.push(tokio::spawn(async move {
                    let id = format!("intruder-{}", u8::from(v5));
                    let (client, task) = start(&spec(&cfg, id, v5, 30), true);
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    for _ in 0..ACL_ATTEMPTS {
                        if client.subscribe(&topic, 1).await {
                            counters.subscribes.fetch_add(1, Ordering::Relaxed);
                        }
                        for qos in [1, 2] {
                            let cmd = b"{\"cmd\":\"open-valve\"}".to_vec();
                            if client.publish(&topic, qos, false, cmd).await {
                                counters.publishes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    client.disconnect().await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    task.abort();
                }));
            }
            for p in probes {
                let _ = p.await;
            }
        }));
    }
    if m.wildcard_subscribe {
        let (cfg, counters) = (cfg.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            let (client, task) = start(&spec(&cfg, "curious-tool".into(), false, 30), true);
            counters.connections.fetch_add(1, Ordering::Relaxed);
            for f in ["#", "$SYS/#"] {
                if client.subscribe(f, 0).await {
                    counters.subscribes.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
            client.disconnect().await;
            task.abort();
        }));
    }
    if m.flood_rate > 0 {
        let (cfg, counters) = (cfg.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            let (client, task) = start(&spec(&cfg, "flooder".into(), false, 30), true);
            counters.connections.fetch_add(1, Ordering::Relaxed);
            let topic = format!(
                "{}/site-00/area-0/line-00/cell-0/flooder/temperature",
                cfg.enterprise
            );
            let period = Duration::from_secs_f64(1.0 / f64::from(m.flood_rate));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while Instant::now() < deadline {
                tick.tick().await;
                if client
                    .publish(&topic, 0, false, b"{\"value\":1}".to_vec())
                    .await
                {
                    counters.flood_publishes.fetch_add(1, Ordering::Relaxed);
                }
            }
            client.disconnect().await;
            task.abort();
        }));
    }
    if m.oversized_kib > 0 {
        let (cfg, counters) = (cfg.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            let (client, task) = start(&spec(&cfg, "big-sender".into(), true, 30), true);
            counters.connections.fetch_add(1, Ordering::Relaxed);
            let topic = format!(
                "{}/site-00/area-0/line-00/cell-0/dev-0000/firmware",
                cfg.enterprise
            );
            if client
                .publish(
                    &topic,
                    1,
                    false,
                    vec![0x5a; m.oversized_kib as usize * 1024],
                )
                .await
            {
                counters.publishes.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            client.disconnect().await;
            task.abort();
        }));
    }
    for i in 0..m.slowite {
        let (cfg, counters) = (cfg.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            // SlowITe: hold a broker slot with the largest keepalive and never speak.
            let (client, task) = start(&spec(&cfg, format!("slowite-{i:03}"), false, 65_535), true);
            counters.connections.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
            drop(client);
            task.abort();
        }));
    }
    if m.takeover {
        let (cfg, counters) = (cfg.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            // A third of the way in, device 0's client id connects from a new socket.
            let wait = deadline.saturating_duration_since(Instant::now()) / 3;
            tokio::time::sleep(wait).await;
            let (client, task) = start(&spec(&cfg, "dev-0000".into(), false, 30), true);
            counters.connections.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(2)).await;
            client.disconnect().await;
            task.abort();
        }));
    }
    tasks
}

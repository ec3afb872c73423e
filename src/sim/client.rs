//! One simulated MQTT client over rumqttc, MQTT 3.1.1 or 5 behind one type, so device
//! and misbehaviour code is written once. The event loop runs in its own task; the
//! handle only publishes and subscribes.

use std::time::Duration;

use rumqttc::v5;
use tokio::task::JoinHandle;

/// Connection settings of one simulated client.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub v5: bool,
    pub keep_alive_secs: u64,
    pub credentials: Option<(String, String)>,
    /// Last will: (topic, payload), retained, QoS 1.
    pub will: Option<(String, Vec<u8>)>,
}

/// What the event loop saw, for the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopOutcome {
    pub connected: bool,
    pub refused: bool,
    pub errors: u64,
}

pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> v5::mqttbytes::QoS {
    match q {
        0 => v5::mqttbytes::QoS::AtMostOnce,
        1 => v5::mqttbytes::QoS::AtLeastOnce,
        _ => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// Connect and start the event loop task. `reconnect`: keep polling after errors
/// (devices), or stop at the first error (brute-force attempts, probes).
pub fn start(spec: &ClientSpec, reconnect: bool) -> (Client, JoinHandle<LoopOutcome>) {
    if spec.v5 {
        let mut o = v5::MqttOptions::new(&spec.client_id, &spec.host, spec.port);
        o.set_keep_alive(Duration::from_secs(spec.keep_alive_secs));
        o.set_max_packet_size(Some(16 * 1024 * 1024));
        if let Some((u, p)) = &spec.credentials {
            o.set_credentials(u, p);
        }
        if let Some((t, m)) = &spec.will {
            o.set_last_will(v5::mqttbytes::v5::LastWill::new(
                t,
                m.clone(),
                qos5(1),
                true,
                None,
            ));
        }
        let (c, mut el) = v5::AsyncClient::new(o, 256);
        let task = tokio::spawn(async move {
            let mut out = LoopOutcome::default();
            loop {
                match el.poll().await {
                    Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::ConnAck(ack))) => {
                        out.connected = ack.code == v5::mqttbytes::v5::ConnectReturnCode::Success;
                        out.refused |= !out.connected;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        out.errors += 1;
                        if !reconnect {
                            return out;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        (Client::V5(c), task)
    } else {
        let mut o = rumqttc::MqttOptions::new(&spec.client_id, &spec.host, spec.port);
        o.set_keep_alive(Duration::from_secs(spec.keep_alive_secs));
        o.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        if let Some((u, p)) = &spec.credentials {
            o.set_credentials(u, p);
        }
        if let Some((t, m)) = &spec.will {
            o.set_last_will(rumqttc::LastWill::new(t, m.clone(), qos4(1), true));
        }
        let (c, mut el) = rumqttc::AsyncClient::new(o, 256);
        let task = tokio::spawn(async move {
            let mut out = LoopOutcome::default();
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                        out.connected = ack.code == rumqttc::ConnectReturnCode::Success;
                        out.refused |= !out.connected;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        out.errors += 1;
                        if !reconnect {
                            return out;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        (Client::V4(c), task)
    }
}

/// Longest wait for room in a client's request queue. The queue only drains while the
/// client is connected: without a bound, a client whose broker is unreachable (or a
/// flooder that filled its queue) waited forever and `simulate` never reached its
/// `--duration` (seen with `--flood-rate` against a closed port). A request that times
/// out was not sent and is not counted.
const QUEUE_WAIT: Duration = Duration::from_millis(500);

impl Client {
    /// Queue a PUBLISH; false if the client's request queue is closed or stayed full.
    pub async fn publish(&self, topic: &str, qos: u8, retain: bool, payload: Vec<u8>) -> bool {
        let sent = async {
            match self {
                Client::V4(c) => c.publish(topic, qos4(qos), retain, payload).await.is_ok(),
                Client::V5(c) => c.publish(topic, qos5(qos), retain, payload).await.is_ok(),
            }
        };
        tokio::time::timeout(QUEUE_WAIT, sent)
            .await
            .unwrap_or(false)
    }

    pub async fn subscribe(&self, filter: &str, qos: u8) -> bool {
        let sent = async {
            match self {
                Client::V4(c) => c.subscribe(filter, qos4(qos)).await.is_ok(),
                Client::V5(c) => c.subscribe(filter, qos5(qos)).await.is_ok(),
            }
        };
        tokio::time::timeout(QUEUE_WAIT, sent)
            .await
            .unwrap_or(false)
    }

    pub async fn disconnect(&self) {
        let sent = async {
            match self {
                Client::V4(c) => c.disconnect().await.is_ok(),
                Client::V5(c) => c.disconnect().await.is_ok(),
            }
        };
        let _ = tokio::time::timeout(QUEUE_WAIT, sent).await;
    }
}

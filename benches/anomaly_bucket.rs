//! Cost of one `AnomalyEngine::on_bucket` on the live processing thread: an observer
//! holding 10 000 topic groups and 5 000 clients (each client publishes to two topics
//! every bucket, one consumer receives everything), 40 buckets of 10 s, so the peer
//! clustering (every 30 buckets) runs once. Prints the median and worst bucket without
//! clustering, the clustering bucket, and the detectors held.
//! `cargo bench --bench anomaly_bucket`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mqscope::detect::anomaly::{AnomalyConfig, AnomalyEngine};
use mqscope::dissect::{FlowMeta, MqttRecord, RecordSink};
use mqscope::mqtt::encode::encode;
use mqscope::mqtt::{Connect, Direction, MqttStr, Packet, Publish, parse_fixed_header};
use mqscope::observe::{ObserveConfig, Observer};

const NS: u64 = 1_000_000_000;
const T0: u64 = 1_704_240_000 * NS;
const TOPICS: usize = 10_000;
const CLIENTS: usize = 5_000;

fn flow(id: u64) -> FlowMeta {
    let client: SocketAddr = format!(
        "10.{}.{}.{}:{}",
        id / 62_500,
        id / 250 % 250,
        id % 250 + 1,
        40000 + id % 20000
    )
    .parse()
    .unwrap();
    FlowMeta {
        id,
        client,
        broker: "10.255.0.1:1883".parse().unwrap(),
        from_start: true,
    }
}

fn feed(obs: &mut Observer, f: &FlowMeta, ts: u64, dir: Direction, p: Packet<'_>) {
    let mut v = Vec::new();
    encode(&p, 4, &mut v);
    let header = parse_fixed_header(&v).unwrap().unwrap();
    let topic = match &p {
        Packet::Publish(pb) => Some(pb.topic),
        _ => None,
    };
    obs.record(&MqttRecord {
        frame: 1,
        ts_ns: ts,
        flow: f,
        dir,
        level: 4,
        level_known: true,
        header,
        packet: Ok(p),
        topic,
        violation: None,
    });
}

fn main() {
    let mut obs = Observer::new(&ObserveConfig::default()).unwrap();
    let cfg = AnomalyConfig {
        warmup_s: 60,
        learn_s: 600,
        ..AnomalyConfig::default()
    };
    let mut eng = AnomalyEngine::new(cfg).unwrap();
    let flows: Vec<FlowMeta> = (0..=CLIENTS as u64).map(flow).collect();
    let ids: Vec<String> = (0..=CLIENTS).map(|i| format!("dev-{i:05}")).collect();
    let topics: Vec<String> = (0..TOPICS)
        .map(|i| {
            format!(
                "acme/site{}/line{}/machine{i:05}/temperature",
                i % 7,
                i % 13
            )
        })
        .collect();
    for (f, id) in flows.iter().zip(&ids) {
        let c = Packet::Connect(Connect {
            protocol_name: MqttStr(b"MQTT"),
            protocol_level: 4,
            flags: 0,
            clean_start: true,
            keep_alive: 30,
            properties: Default::default(),
            client_id: MqttStr(id.as_bytes()),
            will: None,
            username: None,
            password: None,
        });
        feed(&mut obs, f, T0, Direction::C2S, c);
    }
    let consumer = &flows[CLIENTS];
    let mut normal = Vec::new();
    let mut peer = Duration::ZERO;
    let payload = [b'7'; 64];
    for b in 0..40u64 {
        let start = T0 + b * 10 * NS;
        for i in 0..TOPICS {
            let ts = start + (i as u64 * 997) % (10 * NS - 10_000_000);
            let p = Publish {
                dup: false,
                qos: 0,
                retain: false,
                topic: MqttStr(topics[i].as_bytes()),
                packet_id: None,
                properties: Default::default(),
                payload: &payload,
            };
            feed(
                &mut obs,
                &flows[i % CLIENTS],
                ts,
                Direction::C2S,
                Packet::Publish(p),
            );
            feed(
                &mut obs,
                consumer,
                ts + 1_000_000,
                Direction::S2C,
                Packet::Publish(p),
            );
        }
        let t = Instant::now();
        eng.on_bucket(&obs, &[], start + 10 * NS);
        let dt = t.elapsed();
        if (b + 1) % 30 == 0 {
            peer = dt;
        } else if b > 0 {
            normal.push(dt);
        }
    }
    normal.sort();
    let c = eng.counters();
    println!(
        "on_bucket with {} topic groups, {} clients: median {:.1} ms, worst {:.1} ms; with peer clustering of {} clients (k = {}): {:.1} ms; {} series held",
        c.topics_tracked,
        c.clients_tracked,
        normal[normal.len() / 2].as_secs_f64() * 1e3,
        normal.last().unwrap().as_secs_f64() * 1e3,
        c.peer_clients,
        c.peer_k,
        peer.as_secs_f64() * 1e3,
        c.series
    );
    let mut buf = Vec::new();
    eng.save(&mut buf).unwrap();
    println!(
        "saved baselines: {} bytes ({} per series)",
        buf.len(),
        buf.len() as u64 / c.series.max(1)
    );
    assert_eq!(c.hits, 0, "{:?}", eng.hits().first());
}

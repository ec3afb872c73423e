//! The anomaly engine on a synthetic plant fed through the real observer: devices
//! publishing periodically, consumers receiving every message (broker fan-out), and one
//! known change at a known time per test. Expected times come from the scenario's own
//! parameters (periods, the change time, the engine's bucket width and confirm/clear
//! counts), not from the engine's output.

use std::net::SocketAddr;

use mqscope::detect::anomaly::{AnomalyConfig, AnomalyEngine};
use mqscope::detect::rules::RuleHit;
use mqscope::dissect::{FlowMeta, MqttRecord, RecordSink};
use mqscope::mqtt::encode::encode;
use mqscope::mqtt::{Connect, Direction, MqttStr, Packet, Publish, parse_fixed_header};
use mqscope::observe::{ObserveConfig, Observer};

const NS: u64 = 1_000_000_000;
/// 2024-01-03 00:00:00 UTC, a Wednesday (weekday profile).
const T0: u64 = 1_704_240_000 * NS;
const BUCKET: u64 = 10 * NS;

/// SplitMix64: deterministic noise for the scenario.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Dev {
    flow: FlowMeta,
    topic: String,
    period_ns: u64,
    /// Messages per period (1 normally; a spike multiplies it).
    mult: u64,
    payload: usize,
    next_ns: u64,
    on: bool,
    /// Relative jitter of the period.
    jitter: f64,
}

struct Consumer {
    flow: FlowMeta,
    on: bool,
    delay_ns: u64,
}

struct Msg {
    ts: u64,
    /// Index into devices (c2s) or consumers (s2c).
    who: usize,
    s2c: bool,
    topic: String,
    payload: Vec<u8>,
}

struct World {
    obs: Observer,
    eng: AnomalyEngine,
    devs: Vec<Dev>,
    cons: Vec<Consumer>,
    /// End of the last bucket evaluated.
    t: u64,
    carry: Vec<Msg>,
    seq: u64,
    rng: Rng,
    flows: u64,
}

fn flow(id: u64) -> FlowMeta {
    let client: SocketAddr = format!("10.1.{}.{}:{}", id / 250, id % 250 + 1, 40000 + id)
        .parse()
        .unwrap();
    FlowMeta {
        id,
        client,
        broker: "10.9.9.9:1883".parse().unwrap(),
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

fn connect_packet(id: &str) -> Packet<'_> {
    Packet::Connect(Connect {
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
    })
}

impl World {
    fn new(cfg: AnomalyConfig) -> World {
        World {
            obs: Observer::new(&ObserveConfig::default()).unwrap(),
            eng: AnomalyEngine::new(cfg).unwrap(),
            devs: Vec::new(),
            cons: Vec::new(),
            t: T0,
            carry: Vec::new(),
            seq: 0,
            rng: Rng(7),
            flows: 0,
        }
    }

    /// A device (its own connection, CONNECT now) publishing `topic` every `period_s`.
    fn device(&mut self, id: &str, topic: &str, period_s: f64, payload: usize) -> usize {
        self.flows += 1;
        let f = flow(self.flows);
        feed(
            &mut self.obs,
            &f,
            self.t,
            Direction::C2S,
            connect_packet(id),
        );
        let period_ns = (period_s * 1e9) as u64;
        // Spread first messages over the period so devices do not publish in lockstep.
        let phase = (self.rng.unit() * period_ns as f64) as u64;
        self.devs.push(Dev {
            flow: f,
            topic: topic.to_string(),
            period_ns,
            mult: 1,
            payload,
            next_ns: self.t + phase + 1,
            on: true,
            jitter: 0.02,
        });
        self.devs.len() - 1
    }

    /// A consumer receiving a copy of every device message `delay_ms` after it.
    fn consumer(&mut self, id: &str, delay_ms: f64) -> usize {
        self.flows += 1;
        let f = flow(self.flows);
        feed(
            &mut self.obs,
            &f,
            self.t,
            Direction::C2S,
            connect_packet(id),
        );
        self.cons.push(Consumer {
            flow: f,
            on: true,
            delay_ns: (delay_ms * 1e6) as u64,
        });
        self.cons.len() - 1
    }

    /// Runs whole buckets until `end` (record time), evaluating the engine at each end.
    fn run_until(&mut self, end: u64) {
        while self.t + BUCKET <= end {
            let b_end = self.t + BUCKET;
            let mut msgs: Vec<Msg> = std::mem::take(&mut self.carry);
            for (i, d) in self.devs.iter_mut().enumerate() {
                while d.next_ns < b_end {
                    let ts = d.next_ns;
                    let j = 1.0 + d.jitter * (2.0 * self.rng.unit() - 1.0);
                    d.next_ns += ((d.period_ns / d.mult.max(1)) as f64 * j) as u64;
                    if !d.on {
                        continue;
                    }
                    self.seq += 1;
                    // Sizes vary +-5 % around the device's size; distinct per message.
                    let size = ((d.payload as f64) * (0.95 + 0.1 * self.rng.unit())) as usize;
                    let mut payload = format!("{{\"seq\":{},\"v\":", self.seq).into_bytes();
                    payload.resize(size.max(payload.len()), b'7');
                    for (k, c) in self.cons.iter().enumerate() {
                        if c.on {
                            msgs.push(Msg {
                                ts: ts + c.delay_ns,
                                who: k,
                                s2c: true,
                                topic: d.topic.clone(),
                                payload: payload.clone(),
                            });
                        }
                    }
                    msgs.push(Msg {
                        ts,
                        who: i,
                        s2c: false,
                        topic: d.topic.clone(),
                        payload,
                    });
                }
            }
            msgs.sort_by_key(|m| (m.ts, m.s2c, m.who));
            let (now, later): (Vec<Msg>, Vec<Msg>) = msgs.into_iter().partition(|m| m.ts < b_end);
            self.carry = later;
            for m in &now {
                let (f, dir) = if m.s2c {
                    (&self.cons[m.who].flow, Direction::S2C)
                } else {
                    (&self.devs[m.who].flow, Direction::C2S)
                };
                let p = Packet::Publish(Publish {
                    dup: false,
                    qos: 0,
                    retain: false,
                    topic: MqttStr(m.topic.as_bytes()),
                    packet_id: None,
                    properties: Default::default(),
                    payload: &m.payload,
                });
                feed(&mut self.obs, f, m.ts, dir, p);
            }
            self.eng.on_bucket(&self.obs, &[], b_end);
            self.t = b_end;
        }
    }

    fn hits(&self) -> Vec<RuleHit> {
        self.eng.hits().to_vec()
    }
}

/// 20 devices (`dev-00`..) each on its own topic every 5 s, 2 consumers receiving all.
fn plant(cfg: AnomalyConfig) -> World {
    let mut w = World::new(cfg);
    for i in 0..20 {
        w.device(
            &format!("dev-{i:02}"),
            &format!("acme/site1/line{}/press{i:02}/temperature", i % 4),
            5.0,
            60,
        );
    }
    w.consumer("historian", 2.0);
    w.consumer("dashboard", 3.0);
    w
}

/// Short learning so tests stay fast: 10 min warm-up, 15 min before "new" alerts.
fn cfg() -> AnomalyConfig {
    AnomalyConfig {
        warmup_s: 600,
        learn_s: 900,
        ..AnomalyConfig::default()
    }
}

fn find<'a>(hits: &'a [RuleHit], rule: &str, key: &str) -> Vec<&'a RuleHit> {
    hits.iter()
        .filter(|h| h.rule == rule && h.key == key)
        .collect()
}

fn describe(hits: &[RuleHit]) -> String {
    hits.iter()
        .map(|h| {
            format!(
                "{} {} @{}s: {}",
                h.rule,
                h.key,
                (h.ts_ns - T0) / NS,
                h.summary
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn stationary_plant_for_three_hours_raises_nothing() {
    let mut w = plant(cfg());
    // Plus a bursty topic: a gateway forwarding a random number of readings per second.
    let g = w.device("gateway-1", "acme/site1/gateway/batch", 0.25, 200);
    w.devs[g].jitter = 0.9;
    w.run_until(T0 + 3 * 3600 * NS);
    let hits = w.hits();
    assert!(hits.is_empty(), "{}", describe(&hits));
    let c = w.eng.counters();
    // A rate series per topic (21) and per publishing client (21), the gateway's
    // payload (it has 40 messages a bucket), the fan-out exchange's latency.
    assert!(c.series >= 21 + 21 + 2, "{c:?}");
    assert_eq!(c.topics_tracked, 21);
    assert_eq!(c.clients_tracked, 23);
    assert_eq!(c.series_refused, 0);
    assert!(c.peer_runs >= 30, "{c:?}");
    assert_eq!(c.buckets, 3 * 360);
}

#[test]
fn topic_rate_times_ten_is_a_spike_that_resolves_when_it_ends() {
    let mut w = plant(cfg());
    let start = T0 + 1800 * NS;
    w.run_until(start);
    let d = 3;
    w.devs[d].mult = 10;
    let end = start + 300 * NS;
    w.run_until(end);
    w.devs[d].mult = 1;
    w.run_until(end + 600 * NS);
    let hits = w.hits();
    let key = format!("topic:{}", w.devs[d].topic);
    let spikes = find(&hits, "anomaly_rate_spike", &key);
    assert_eq!(spikes.len(), 1, "{}", describe(&hits));
    let h = spikes[0];
    // Within 3 buckets of the change (confirm_buckets = 2).
    assert!(
        h.ts_ns > start && h.ts_ns <= start + 3 * BUCKET,
        "{}",
        describe(&hits)
    );
    // Resolved after the spike ends: clear_buckets (3) normal buckets, plus the bucket
    // that straddles the end.
    let cleared = h.cleared_ts_ns.expect("resolved");
    assert!(
        cleared > end && cleared <= end + 5 * BUCKET,
        "cleared {}s after the end",
        (cleared - end) / NS
    );
    let a = h.anomaly.as_ref().unwrap();
    // 1 message per 5 s = 2 per bucket normally, 20 during the spike.
    assert!((a.baseline - 2.0).abs() < 0.5, "{a:?}");
    assert!(a.observed >= 15.0 && a.observed <= 25.0, "{a:?}");
    assert!(
        a.threshold > a.baseline && a.threshold <= a.observed,
        "{a:?}"
    );
    // Nothing else about other devices' topics.
    assert!(
        hits.iter()
            .all(|h| h.key.contains("press03") || h.key.contains("dev-03")),
        "{}",
        describe(&hits)
    );
}

#[test]
fn a_periodic_device_that_stops_is_silent_after_n_periods() {
    let mut c = cfg();
    c.silence.min_silence_s = 30.0;
    let mut w = World::new(c);
    for i in 0..10 {
        w.device(
            &format!("dev-{i:02}"),
            &format!("acme/site1/cell/dev{i:02}/temp"),
            20.0,
            60,
        );
    }
    w.consumer("historian", 2.0);
    let stop = T0 + 1800 * NS;
    w.run_until(stop);
    let d = 4;
    w.devs[d].jitter = 0.0;
    w.devs[d].on = false;
    // The device's last message was at most one period before `stop`.
    w.run_until(stop + 600 * NS);
    let hits = w.hits();
    let key = format!("topic:{}", w.devs[d].topic);
    let s = find(&hits, "anomaly_silence", &key);
    assert_eq!(s.len(), 1, "{}", describe(&hits));
    let a = s[0].anomaly.as_ref().unwrap();
    // The learned period is the device's (20 s +-2 % jitter) ...
    assert!((a.baseline - 20.0).abs() < 1.0, "{a:?}");
    // ... and it fires once 5 periods (100 s) have passed since the last message, at the
    // first bucket boundary after that: 100 s <= silence < 110 s.
    assert!((a.threshold - 100.0).abs() < 5.0, "{a:?}");
    assert!(
        a.observed >= a.threshold && a.observed < a.threshold + 10.0,
        "{a:?}"
    );
    let last = s[0].evidence[0].ts_ns;
    assert!(
        last <= stop && last + 21 * NS > stop,
        "last message {}s before stop",
        (stop - last) / NS
    );
    assert!(s[0].cleared_ts_ns.is_none());
}

#[test]
fn payload_size_jump_is_a_payload_shift() {
    let mut w = plant(cfg());
    // A device publishing every second: 10 messages per bucket (min_msgs is 3).
    let d = w.device("dev-fast", "acme/site1/line0/mixer/torque", 1.0, 60);
    let start = T0 + 1800 * NS;
    w.run_until(start);
    w.devs[d].payload = 600;
    w.run_until(start + 300 * NS);
    let hits = w.hits();
    let key = "topic:acme/site1/line0/mixer/torque";
    let p = find(&hits, "anomaly_payload_shift", key);
    assert_eq!(p.len(), 1, "{}", describe(&hits));
    assert!(
        p[0].ts_ns > start && p[0].ts_ns <= start + 3 * BUCKET,
        "{}",
        describe(&hits)
    );
    let a = p[0].anomaly.as_ref().unwrap();
    // Sizes are 60 bytes +-5 % before, 600 +-5 % after.
    assert!(
        (a.baseline - 60.0).abs() < 6.0 && a.observed > 560.0,
        "{a:?}"
    );
    // Still firing at the end (the new size lasts less than max_firing_s).
    assert!(p[0].cleared_ts_ns.is_none());
    assert!(hits.iter().all(|h| h.key == key), "{}", describe(&hits));
}

#[test]
fn subscribers_that_stop_receiving_are_fanout_loss() {
    let mut w = plant(cfg());
    // Two messages a second: 20 in, 40 copies out per bucket.
    let d = w.device("dev-fast", "acme/site1/line0/mixer/torque", 0.5, 60);
    let start = T0 + 1800 * NS;
    w.run_until(start);
    for c in &mut w.cons {
        c.on = false;
    }
    w.run_until(start + 300 * NS);
    for c in &mut w.cons {
        c.on = true;
    }
    w.run_until(start + 900 * NS);
    let hits = w.hits();
    // Only the busy topic: the presses' 2 messages x 2 copies per bucket are below
    // min_expected (10 copies), too little evidence to call a loss.
    let loss: Vec<&RuleHit> = hits
        .iter()
        .filter(|h| h.rule == "anomaly_fanout_loss")
        .collect();
    assert_eq!(loss.len(), 1, "{}", describe(&hits));
    let h = loss[0];
    assert_eq!(h.key, format!("topic:{}", w.devs[d].topic));
    assert!(
        h.ts_ns > start && h.ts_ns <= start + 3 * BUCKET,
        "{}",
        describe(&hits)
    );
    let cleared = h.cleared_ts_ns.expect("resolved once delivery resumed");
    let back = start + 300 * NS;
    assert!(
        cleared > back && cleared <= back + 5 * BUCKET,
        "{}",
        describe(&hits)
    );
    let a = h.anomaly.as_ref().unwrap();
    assert!(
        (a.baseline - 40.0).abs() < 6.0 && a.observed == 0.0,
        "{a:?}"
    );
}

#[test]
fn a_new_client_after_learning_is_reported_and_one_before_is_not() {
    let mut w = plant(cfg());
    w.run_until(T0 + 300 * NS);
    w.device(
        "early-bird",
        "acme/site1/line0/press99/temperature",
        5.0,
        60,
    );
    w.run_until(T0 + 1200 * NS);
    let t_new = w.t;
    w.device("intruder", "acme/site1/line1/press98/temperature", 5.0, 60);
    w.run_until(T0 + 1500 * NS);
    let hits = w.hits();
    assert!(find(&hits, "anomaly_new_client", "client:early-bird").is_empty());
    let n = find(&hits, "anomaly_new_client", "client:intruder");
    assert_eq!(n.len(), 1, "{}", describe(&hits));
    assert!(n[0].ts_ns > t_new && n[0].ts_ns <= t_new + BUCKET);
    // Its topic is a new instance of a known template (`acme/+/+/+/temperature`): not
    // a new topic.
    assert!(
        hits.iter().all(|h| h.rule != "anomaly_new_topic"),
        "{}",
        describe(&hits)
    );
}

#[test]
fn one_client_publishing_fifty_times_its_peers_is_a_peer_outlier() {
    let mut w = plant(cfg());
    for i in 20..30 {
        w.device(
            &format!("dev-{i:02}"),
            &format!("acme/site1/line{}/press{i:02}/temperature", i % 4),
            5.0,
            60,
        );
    }
    let start = T0 + 1800 * NS;
    w.run_until(start);
    w.devs[11].mult = 50;
    // And a newcomer that is an outlier from its first comparison.
    w.device("dev-new", "acme/site1/line0/press77/temperature", 0.1, 60);
    w.run_until(start + 900 * NS);
    let hits = w.hits();
    let n = find(&hits, "anomaly_peer_outlier", "client:dev-new");
    assert_eq!(n.len(), 1, "{}", describe(&hits));
    let p = find(&hits, "anomaly_peer_outlier", "client:dev-11");
    assert_eq!(p.len(), 1, "{}", describe(&hits));
    // Peer runs every 30 buckets (5 min): the first run after the change sees part of
    // the 50x traffic, the second sees it all.
    assert!(
        p[0].ts_ns > start && p[0].ts_ns <= start + 600 * NS + BUCKET,
        "{}",
        describe(&hits)
    );
    assert!(p[0].summary.contains("msgs_in_per_min"), "{}", p[0].summary);
    // The two consumers differ from the devices but were there while learning.
    assert!(find(&hits, "anomaly_peer_outlier", "client:historian").is_empty());
    assert!(
        hits.iter()
            .filter(|h| h.rule == "anomaly_peer_outlier")
            .count()
            == 2,
        "{}",
        describe(&hits)
    );
}

#[test]
fn saved_baselines_alert_without_a_new_warm_up_and_a_fresh_engine_does_not() {
    let mut w = plant(cfg());
    w.run_until(T0 + 1800 * NS);
    assert!(w.hits().is_empty(), "{}", describe(&w.hits()));
    let mut saved = Vec::new();
    w.eng.save(&mut saved).unwrap();

    // Restart: new observer, engine with loaded baselines; a spike 3 buckets in.
    let restart = |load: bool| {
        let mut r = plant(cfg());
        r.t = T0 + 2000 * NS;
        for d in &mut r.devs {
            d.next_ns += 2000 * NS;
        }
        if load {
            let rep = r.eng.load(&saved[..]).unwrap();
            assert_eq!(rep.topics, 20);
            // At least a rate series per topic and per publishing client.
            assert!(rep.series >= 40, "{rep:?}");
            assert_eq!(rep.series_dropped, 0);
        }
        let start = r.t + 3 * BUCKET;
        r.run_until(start);
        r.devs[3].mult = 10;
        r.run_until(start + 120 * NS);
        (r.hits(), start)
    };
    let (hits, start) = restart(true);
    let key = "topic:acme/site1/line3/press03/temperature";
    let s = find(&hits, "anomaly_rate_spike", key);
    assert_eq!(s.len(), 1, "{}", describe(&hits));
    assert!(s[0].ts_ns > start && s[0].ts_ns <= start + 3 * BUCKET);
    let (fresh, _) = restart(false);
    assert!(fresh.is_empty(), "{}", describe(&fresh));
}

#[test]
fn series_beyond_the_cap_are_refused_not_swapped_in() {
    let mut c = cfg();
    c.max_series = 10;
    let mut w = plant(c);
    w.run_until(T0 + 600 * NS);
    let k = w.eng.counters();
    assert_eq!(k.series, 10);
    // 20 topic rates and 20 client rates wanted, 10 held: 30 refused at the first
    // bucket with deltas, refused again every bucket after.
    assert!(k.series_refused >= 30, "{k:?}");
    assert_eq!(k.series_created, 10);
    assert_eq!(k.series_evicted, 0);
}

#[test]
fn slower_broker_delivery_is_a_fanout_latency_regression() {
    let mut w = plant(cfg());
    let start = T0 + 1800 * NS;
    w.run_until(start);
    // Copies leave the broker 50 ms after the message came in instead of 2-3 ms.
    for c in &mut w.cons {
        c.delay_ns = 50_000_000;
    }
    w.run_until(start + 300 * NS);
    let hits = w.hits();
    let l = find(&hits, "anomaly_latency_regression", "broker:latency_fanout");
    assert_eq!(l.len(), 1, "{}", describe(&hits));
    assert!(
        l[0].ts_ns > start && l[0].ts_ns <= start + 3 * BUCKET,
        "{}",
        describe(&hits)
    );
    let a = l[0].anomaly.as_ref().unwrap();
    // Mean of the two consumers' delays: 2.5 ms before, 50 ms after (the bucket of the
    // change mixes both).
    assert!((a.baseline - 0.0025).abs() < 0.0005, "{a:?}");
    assert!(a.observed > 0.040 && a.observed <= 0.050 + 1e-6, "{a:?}");
    // Per topic there are only 4 copies a bucket (< min_samples 5): no per-topic series.
    assert!(
        hits.iter().all(|h| h.rule == "anomaly_latency_regression"),
        "{}",
        describe(&hits)
    );
}

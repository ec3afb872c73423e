//! Who is in the plant: devices (what each measures, how often, at which QoS, over which
//! network), the consumers (historians, SCADA, the Event Hubs bridge, a dashboard) and
//! their subscriptions, and, fixed once, which consumer receives which device topic.
//!
//! Everything is decided here from the seed before the first frame, so the event loop
//! only looks things up.

use super::PlantConfig;
use super::payload::Shape;
use crate::synth::rng::Rng;

pub const ENTERPRISE: &str = "acme";
pub const AREAS: u32 = 3;
const LINES: u32 = 4;
const CELLS: u32 = 3;
const NS: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const US: u64 = 1_000;

/// Who receives a message: consumer index or device index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Cons(u32),
    Dev(u32),
}

/// One delivery target with the QoS the broker granted it.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub sub: Sub,
    pub granted: u8,
}

pub struct Metric {
    pub shape: Shape,
    pub unit: &'static str,
    pub qos: u8,
    pub retain: bool,
    pub topic: Vec<u8>,
    pub routes: Vec<Route>,
}

/// Metrics published together on one timer (a PLC reads its tags every cycle and
/// publishes them back to back).
pub struct Group {
    pub period_ns: u64,
    /// Offset of the first tick after the capture start.
    pub phase_ns: u64,
    pub metrics: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Plc,
    Vibration,
    Energy,
    Environment,
}

pub struct Device {
    pub id: String,
    pub prefix: String,
    pub site: u32,
    pub area: u32,
    pub level: u8,
    pub keepalive_s: u16,
    pub cellular: bool,
    pub rtt_ns: u64,
    /// Site LAN address (cellular devices get a new carrier address per connection).
    pub ip: [u8; 4],
    pub mss: usize,
    /// Persistent session (clean start 0, MQTT 5 session expiry 1 h).
    pub persistent: bool,
    /// MQTT 5 Will Delay Interval in seconds (0: the will is published at once).
    pub will_delay_s: u32,
    /// MQTT 5 device that replaces repeated topics with topic aliases.
    pub aliases: bool,
    /// MQTT 5 device that marks payloads as UTF-8 JSON (format indicator, content type).
    pub json_props: bool,
    /// Firmware that adds identification fields to every payload.
    pub verbose: bool,
    /// Largest per-tick lateness of its publishing loop (scheduler, modem).
    pub jitter_ns: u64,
    /// Its crystal's rate error: periods are stretched by (1 + drift).
    pub drift: f64,
    pub metrics: Vec<Metric>,
    pub groups: Vec<Group>,
    pub status_topic: Vec<u8>,
    pub status_routes: Vec<Route>,
    pub cmd_filter: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Historian,
    Scada { site: u32, area: u32 },
    Bridge,
    Dashboard,
}

pub struct Consumer {
    pub id: String,
    pub role: Role,
    pub level: u8,
    pub keepalive_s: u16,
    pub filters: Vec<(Vec<u8>, u8)>,
    /// MQTT 5 Subscription Identifier sent with its SUBSCRIBE and echoed on deliveries.
    pub sub_id: Option<u32>,
    pub persistent: bool,
    pub ip: [u8; 4],
    pub rtt_ns: u64,
}

pub struct Plant {
    pub devices: Vec<Device>,
    pub consumers: Vec<Consumer>,
}

/// MQTT topic filter match (MQTT 3.1.1 section 4.7; no `$` topics occur here).
/// Written here rather than taken from `observe` so the generator's truth about who
/// receives what does not depend on the code it is used to test.
pub fn matches(filter: &[u8], topic: &[u8]) -> bool {
    let mut f = filter.split(|&b| b == b'/');
    let mut t = topic.split(|&b| b == b'/');
    loop {
        match (f.next(), t.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The consumers that receive `topic`, each once with the QoS of its first matching
/// filter (the filters of one consumer never overlap).
pub fn consumer_routes(consumers: &[Consumer], topic: &[u8], out: &mut Vec<Route>) {
    for (k, c) in consumers.iter().enumerate() {
        if let Some((_, q)) = c.filters.iter().find(|(f, _)| matches(f, topic)) {
            out.push(Route {
                sub: Sub::Cons(k as u32),
                granted: *q,
            });
        }
    }
}

fn site_name(s: u32) -> String {
    format!("site-{:02}", s + 1)
}

/// One metric template: name, payload shape, unit, period in seconds, QoS, retained.
type Spec = (&'static str, Shape, &'static str, u64, u8, bool);

fn specs(kind: Kind, rng: &mut Rng) -> Vec<Spec> {
    match kind {
        Kind::Plc => {
            // Production counts must not be lost or doubled: some lines use QoS 2.
            let count_qos = if rng.chance(0.3) { 2 } else { 1 };
            vec![
                ("temperature", Shape::Analog, "degC", 5, 0, false),
                ("pressure", Shape::Analog, "bar", 5, 0, false),
                ("count", Shape::Counter, "", 10, count_qos, false),
                ("state", Shape::State, "", 60, 1, true),
            ]
        }
        Kind::Vibration => vec![
            ("vibration", Shape::Vibration, "mm/s", 1, 0, false),
            ("temperature", Shape::Analog, "degC", 10, 0, false),
        ],
        Kind::Energy => vec![
            ("power", Shape::Power, "kW", 5, 0, false),
            ("voltage", Shape::Analog, "V", 15, 0, false),
            ("energy", Shape::Energy, "kWh", 60, 1, false),
        ],
        Kind::Environment => vec![
            ("temperature", Shape::Analog, "degC", 30, 0, false),
            ("humidity", Shape::Analog, "%RH", 30, 0, false),
        ],
    }
}

fn consumers(cfg: &PlantConfig, rng: &mut Rng) -> Vec<Consumer> {
    let mut out = Vec::new();
    let cluster = |rng: &mut Rng, n: u8| {
        (
            [10, 244, 2 + rng.below(6) as u8, 10 + n],
            rng.range(120 * US, 450 * US),
        )
    };
    for s in 0..cfg.sites {
        let (ip, rtt_ns) = cluster(rng, s as u8);
        out.push(Consumer {
            id: format!("historian-{}", site_name(s)),
            role: Role::Historian,
            level: 5,
            keepalive_s: 60,
            filters: vec![(format!("{ENTERPRISE}/{}/#", site_name(s)).into_bytes(), 1)],
            sub_id: Some(1),
            persistent: true,
            ip,
            rtt_ns,
        });
    }
    for s in 0..cfg.sites {
        // SCADA servers sit on the plant network, as far from the cluster as the devices.
        let rtt_ns = rng.range(8 * MS, 22 * MS);
        for a in 0..AREAS {
            out.push(Consumer {
                id: format!("scada-s{:02}-a{}", s + 1, a + 1),
                role: Role::Scada { site: s, area: a },
                level: 4,
                keepalive_s: 30,
                filters: vec![(
                    format!("{ENTERPRISE}/{}/area-{}/#", site_name(s), a + 1).into_bytes(),
                    0,
                )],
                sub_id: None,
                persistent: false,
                ip: [10, 30 + s as u8, 0, 10 + a as u8],
                rtt_ns,
            });
        }
    }
    let (ip, rtt_ns) = cluster(rng, 100);
    // Business figures go to Azure Event Hubs; production counts exactly once.
    out.push(Consumer {
        id: "eventhubs-bridge".into(),
        role: Role::Bridge,
        level: 5,
        keepalive_s: 60,
        filters: vec![
            (format!("{ENTERPRISE}/+/+/+/+/+/energy").into_bytes(), 1),
            (format!("{ENTERPRISE}/+/+/+/+/+/count").into_bytes(), 2),
            (format!("{ENTERPRISE}/+/+/+/+/+/state").into_bytes(), 1),
        ],
        sub_id: Some(7),
        persistent: true,
        ip,
        rtt_ns,
    });
    let (ip, rtt_ns) = cluster(rng, 101);
    out.push(Consumer {
        id: "ops-dashboard".into(),
        role: Role::Dashboard,
        level: 4,
        keepalive_s: 30,
        filters: vec![(format!("{ENTERPRISE}/+/+/+/+/+/status").into_bytes(), 1)],
        sub_id: None,
        persistent: false,
        ip,
        rtt_ns,
    });
    out
}

fn device(cfg: &PlantConfig, d: u32, rng: &mut Rng, cons: &[Consumer]) -> Device {
    let site = d % cfg.sites.max(1);
    let r = d / cfg.sites.max(1);
    let area = r % AREAS;
    let line = (r / AREAS) % LINES;
    let cell = (r / (AREAS * LINES)) % CELLS;
    let id = format!("dev-{d:04}");
    let prefix = format!(
        "{ENTERPRISE}/{}/area-{}/line-{:02}/cell-{}/{id}",
        site_name(site),
        area + 1,
        line + 1,
        cell + 1
    );
    let u = rng.unit();
    let kind = if u < 0.35 {
        Kind::Plc
    } else if u < 0.45 {
        Kind::Vibration
    } else if u < 0.70 {
        Kind::Energy
    } else {
        Kind::Environment
    };
    let level = if rng.chance(cfg.v5_share) { 5 } else { 4 };
    let cellular = rng.chance(cfg.cellular_share);
    // Sites reach the cluster over a VPN / ExpressRoute; cellular gateways over LTE.
    let rtt_ns = if cellular {
        rng.range(60 * MS, 180 * MS)
    } else {
        rng.range(6 * MS, 25 * MS)
    };
    let keepalive_s = if cellular {
        120
    } else {
        [30u16, 60, 60, 60, 120][rng.below(5) as usize]
    };
    let mut metrics = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut scratch = Vec::new();
    for (name, shape, unit, period_s, qos, retain) in specs(kind, rng) {
        let topic = format!("{prefix}/{name}").into_bytes();
        scratch.clear();
        consumer_routes(cons, &topic, &mut scratch);
        let idx = metrics.len();
        metrics.push(Metric {
            shape,
            unit,
            qos,
            retain,
            topic,
            routes: scratch.clone(),
        });
        let period_ns = period_s * NS;
        match groups.iter_mut().find(|g| g.period_ns == period_ns) {
            Some(g) => g.metrics.push(idx),
            None => groups.push(Group {
                period_ns,
                phase_ns: rng.below(period_ns),
                metrics: vec![idx],
            }),
        }
    }
    let status_topic = format!("{prefix}/status").into_bytes();
    let mut status_routes = Vec::new();
    consumer_routes(cons, &status_topic, &mut status_routes);
    let v5 = level == 5;
    Device {
        ip: [10, 20 + site as u8, (d / 250) as u8, (d % 250 + 2) as u8],
        mss: if cellular { 1380 } else { 1460 },
        persistent: rng.chance(0.5),
        will_delay_s: if v5 && rng.chance(0.5) { 5 } else { 0 },
        aliases: v5 && rng.chance(0.5),
        json_props: v5 && rng.chance(0.4),
        verbose: rng.chance(0.3),
        jitter_ns: if cellular { 40 * MS } else { 3 * MS },
        drift: (rng.unit() - 0.5) * 1e-4,
        cmd_filter: format!("{prefix}/cmd/#").into_bytes(),
        id,
        prefix,
        site,
        area,
        level,
        keepalive_s,
        cellular,
        rtt_ns,
        metrics,
        groups,
        status_topic,
        status_routes,
    }
}

pub fn build(cfg: &PlantConfig, rng: &mut Rng) -> Plant {
    let consumers = consumers(cfg, rng);
    let devices = (0..cfg.devices)
        .map(|d| device(cfg, d, rng, &consumers))
        .collect();
    Plant { devices, consumers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_matching_follows_the_spec_examples() {
        // MQTT 3.1.1 section 4.7.1.2 / 4.7.1.3 examples.
        assert!(matches(b"sport/tennis/player1/#", b"sport/tennis/player1"));
        assert!(matches(
            b"sport/tennis/player1/#",
            b"sport/tennis/player1/score/wimbledon"
        ));
        assert!(matches(b"sport/#", b"sport"));
        assert!(matches(b"sport/tennis/+", b"sport/tennis/player1"));
        assert!(!matches(b"sport/tennis/+", b"sport/tennis/player1/ranking"));
        assert!(matches(b"+/+", b"/finance"));
        assert!(matches(b"/+", b"/finance"));
        assert!(!matches(b"+", b"/finance"));
        assert!(!matches(b"a/b", b"a/b/c"));
    }

    #[test]
    fn every_device_topic_reaches_its_historian_and_scada() {
        let cfg = PlantConfig {
            devices: 40,
            ..PlantConfig::default()
        };
        let mut rng = Rng::new(3);
        let p = build(&cfg, &mut rng);
        for d in &p.devices {
            for m in &d.metrics {
                let roles: Vec<Role> = m
                    .routes
                    .iter()
                    .map(|r| match r.sub {
                        Sub::Cons(k) => p.consumers[k as usize].role,
                        Sub::Dev(_) => panic!("device route"),
                    })
                    .collect();
                assert!(roles.contains(&Role::Historian));
                assert!(roles.contains(&Role::Scada {
                    site: d.site,
                    area: d.area
                }));
                assert_eq!(roles.len(), 2 + usize::from(roles.contains(&Role::Bridge)));
            }
            let status: Vec<_> = d.status_routes.iter().map(|r| r.sub).collect();
            assert_eq!(status.len(), 3, "historian, scada, dashboard");
            assert_eq!(d.prefix.split('/').count(), 6);
        }
    }
}

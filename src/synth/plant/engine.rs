//! The plant's event loop: one global time-ordered queue of `Ev`, connection setup and
//! teardown, the TCP ACK behaviour around every flush, and the exact tally of what was
//! written. The MQTT behaviour of the broker and the clients is in `broker` and `client`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::io::{self, Write};

use super::conn::{Conn, Ev, Owner, React, St};
use super::link::{BROKER, CLIENT, Flushed, Link};
use super::payload::{self, Signal};
use super::topology::{self, Plant, Route};
use super::{PlantConfig, PlantSummary};
use crate::mqtt::{Packet, PacketType};
use crate::synth::frame::{self, FlowAddrs, IpPair};
use crate::synth::pcap_writer::PcapWriter;
use crate::synth::rng::Rng;
use crate::synth::tcp::FrameOut;

pub const US: u64 = 1_000;
pub const MS: u64 = 1_000_000;
pub const NS: u64 = 1_000_000_000;
/// Linux delayed-ACK timer (TCP_ATO_MIN, 40 ms) plus jiffy rounding.
const DELACK_MIN: u64 = 40 * MS;
const DELACK_MAX: u64 = 44 * MS;
/// Broker and gateway MACs as a pod's capture shows them (the peer is the node's bridge).
const BROKER_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0xf4, 0x01, 0x11];
const GATEWAY_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0xf4, 0x01, 0x01];
pub const BROKER_IP: [u8; 4] = [10, 244, 1, 17];

struct Item {
    t: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    /// Reversed: the heap pops the earliest, and among equals the first scheduled.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

/// A message the broker holds while it routes it.
pub struct Msg {
    pub topic: Vec<u8>,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// Published with payload format indicator 1 and content type JSON (MQTT 5).
    pub json: bool,
    /// Deliveries still to write.
    pub refs: u32,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug)]
pub enum Origin {
    Metric(u32, u16),
    Status(u32),
    Cmd(u32),
    /// A retained message sent because of a new subscription (not routed again).
    Retained,
}

pub struct Retained {
    pub payload: Vec<u8>,
    pub qos: u8,
    pub json: bool,
}

/// Exact counts of what was encoded.
#[derive(Default)]
pub struct Tally {
    pub packets: u64,
    pub by_type: [[u64; 16]; 2],
    pub publish_by_qos: [u64; 3],
    pub topics: HashSet<Vec<u8>>,
}

impl Tally {
    pub fn count(&mut self, p: &Packet<'_>, side: usize, full_topic: Option<&[u8]>) {
        self.packets += 1;
        self.by_type[side][p.packet_type() as usize] += 1;
        if let Packet::Publish(pb) = p {
            self.publish_by_qos[usize::from(pb.qos.min(2))] += 1;
            if let Some(t) = full_topic
                && !self.topics.contains(t)
            {
                self.topics.insert(t.to_vec());
            }
        }
    }
}

/// Per-device runtime state.
pub struct DevRt {
    pub conn: Option<u32>,
    pub signals: Vec<Signal>,
    pub ka_started: bool,
}

pub struct Sim<'w, W: Write> {
    pub cfg: PlantConfig,
    pub plant: Plant,
    pub rng: Rng,
    pub out: FrameOut<'w, W>,
    q: BinaryHeap<Item>,
    seq: u64,
    pub conns: Vec<Conn>,
    pub devs: Vec<DevRt>,
    pub cons_conn: Vec<Option<u32>>,
    pub cons_ka_started: Vec<bool>,
    pub msgs: Vec<Option<Msg>>,
    free_msgs: Vec<u32>,
    pub retained: BTreeMap<Vec<u8>, Retained>,
    pub tally: Tally,
    pub payload: Vec<u8>,
    pub props: Vec<u8>,
    pub filters: Vec<u8>,
    pub due: Vec<React>,
    pub routes: Vec<Route>,
    used_ports: HashSet<([u8; 4], u16)>,
    pub t0: u64,
    pub end: u64,
    pub s: PlantSummary,
}

pub(super) fn run<W: Write>(cfg: &PlantConfig, w: &mut PcapWriter<W>) -> io::Result<PlantSummary> {
    let mut rng = Rng::new(cfg.seed);
    let plant = topology::build(cfg, &mut rng);
    let t0 = cfg.start_unix_ns;
    let end = t0 + cfg.duration_s.saturating_mul(NS);
    let devs = plant
        .devices
        .iter()
        .map(|d| DevRt {
            conn: None,
            signals: d
                .metrics
                .iter()
                .map(|m| Signal::new(m.shape, m.unit, &mut rng))
                .collect(),
            ka_started: false,
        })
        .collect();
    let n_cons = plant.consumers.len();
    let mut sim = Sim {
        cfg: cfg.clone(),
        plant,
        rng,
        out: FrameOut {
            w,
            hdr: [0; frame::MAX_HDR],
            last_ts: 0,
            split_headers: false,
            straddled_headers: 0,
        },
        q: BinaryHeap::new(),
        seq: 0,
        conns: Vec::new(),
        devs,
        cons_conn: vec![None; n_cons],
        cons_ka_started: vec![false; n_cons],
        msgs: Vec::new(),
        free_msgs: Vec::new(),
        retained: BTreeMap::new(),
        tally: Tally::default(),
        payload: Vec::with_capacity(512),
        props: Vec::with_capacity(64),
        filters: Vec::with_capacity(256),
        due: Vec::new(),
        routes: Vec::new(),
        used_ports: HashSet::new(),
        t0,
        end,
        s: PlantSummary::default(),
    };
    sim.start();
    sim.run_loop()?;
    let mut s = std::mem::take(&mut sim.s);
    let t = &sim.tally;
    s.mqtt_packets = t.packets;
    for k in 1..16 {
        s.by_type_c2s[k] = t.by_type[CLIENT][k];
        s.by_type_s2c[k] = t.by_type[BROKER][k];
        s.by_type[k] = s.by_type_c2s[k] + s.by_type_s2c[k];
    }
    s.publish_by_qos = t.publish_by_qos;
    s.topics = t.topics.len() as u64;
    s.devices = sim.plant.devices.len() as u64;
    s.consumers = n_cons as u64;
    s.clients = s.devices + s.consumers;
    s.first_ts_ns = t0;
    s.last_ts_ns = sim.out.last_ts;
    Ok(s)
}

impl<W: Write> Sim<'_, W> {
    pub fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.q.push(Item {
            t,
            seq: self.seq,
            ev,
        });
    }

    /// Schedules a recurring happening only while the capture lasts.
    pub fn at_before_end(&mut self, t: u64, ev: Ev) {
        if t <= self.end {
            self.at(t, ev);
        }
    }

    fn start(&mut self) {
        let t0 = self.t0;
        // The broker kept its retained messages across the restart that starts the
        // capture (the sidecar starts with the broker pod): every device's last birth
        // message and the PLCs' machine states.
        for d in 0..self.plant.devices.len() {
            let ts_ms = (t0 - self.rng.range(3_600, 259_200) * NS) / MS;
            payload::online(ts_ms, &mut self.payload);
            let dev = &self.plant.devices[d];
            let topic = dev.status_topic.clone();
            let payload = self.payload.clone();
            self.retained.insert(
                topic,
                Retained {
                    payload,
                    qos: 1,
                    json: false,
                },
            );
            for (m, metric) in dev.metrics.iter().enumerate() {
                if metric.retain {
                    self.devs[d].signals[m].sample(
                        metric.shape,
                        metric.unit,
                        ts_ms,
                        None,
                        &mut self.rng,
                        &mut self.payload,
                    );
                    self.retained.insert(
                        metric.topic.clone(),
                        Retained {
                            payload: self.payload.clone(),
                            qos: metric.qos,
                            json: dev.json_props,
                        },
                    );
                }
            }
        }
        // Consumers (in the cluster and at the sites) reconnect first, devices over
        // the next minute as their back-off timers expire.
        for k in 0..self.plant.consumers.len() {
            let at = t0 + self.rng.range(50 * MS, 1_500 * MS);
            self.spawn(Owner::Cons(k as u32), at);
            if matches!(self.plant.consumers[k].role, topology::Role::Scada { .. }) {
                let at = t0 + self.rng.range(60, 240) * NS;
                self.at_before_end(at, Ev::Command(k as u32));
            }
        }
        for d in 0..self.plant.devices.len() {
            let at = t0 + self.rng.range(2 * NS, 60 * NS);
            self.spawn(Owner::Dev(d as u32), at);
            for g in 0..self.plant.devices[d].groups.len() {
                let at = self.tick_time(d as u32, g, 0);
                self.at_before_end(
                    at,
                    Ev::Tick {
                        dev: d as u32,
                        group: g as u8,
                        k: 0,
                    },
                );
            }
            self.schedule_drop(d as u32, t0);
        }
    }

    /// Nominal time of cycle `k` of a metric group on the device's drifting clock,
    /// plus this cycle's lateness (usually a few ms, rarely a busy moment).
    pub fn tick_time(&mut self, dev: u32, g: usize, k: u32) -> u64 {
        let d = &self.plant.devices[dev as usize];
        let grp = &d.groups[g];
        let period = grp.period_ns as f64 * (1.0 + d.drift);
        let nominal = self.t0 + grp.phase_ns + (f64::from(k) * period) as u64;
        let mut late = self.rng.below(d.jitter_ns);
        if self.rng.chance(0.003) {
            late += self.rng.range(100 * MS, 800 * MS);
        }
        nominal + late
    }

    /// Network blips are rare: Poisson at `reconnects_per_hour` (cellular sites 4x),
    /// never in the last minute so every one completes inside the capture.
    pub fn schedule_drop(&mut self, dev: u32, from: u64) {
        let cellular = self.plant.devices[dev as usize].cellular;
        let rate = self.cfg.reconnects_per_hour * if cellular { 4.0 } else { 1.0 } / 3600.0;
        if rate <= 0.0 {
            return;
        }
        let wait_s = -(1.0 - self.rng.unit()).ln() / rate;
        let at = from.saturating_add((wait_s * 1e9) as u64);
        if at + 60 * NS <= self.end {
            self.at(at, Ev::Drop(dev));
        }
    }

    /// A new TCP connection for `owner`, its SYN at `at`.
    pub fn spawn(&mut self, owner: Owner, at: u64) -> u32 {
        let r = &mut self.rng;
        let (mut ip, rtt_ns, mss, level) = match owner {
            Owner::Dev(d) => {
                let dev = &self.plant.devices[d as usize];
                (dev.ip, dev.rtt_ns, dev.mss, dev.level)
            }
            Owner::Cons(k) => {
                let c = &self.plant.consumers[k as usize];
                (c.ip, c.rtt_ns, 1460, c.level)
            }
        };
        if let Owner::Dev(d) = owner
            && self.plant.devices[d as usize].cellular
        {
            // Carrier-grade NAT: a new public address for every new connection.
            ip = [
                100,
                64 + r.below(64) as u8,
                r.below(256) as u8,
                1 + r.below(254) as u8,
            ];
        }
        // Linux default ephemeral range 32768..=60999; a 4-tuple is never reused.
        let mut port = 0;
        for _ in 0..256 {
            port = r.range(32_768, 60_999) as u16;
            if self.used_ports.insert((ip, port)) {
                break;
            }
        }
        let addrs = FlowAddrs {
            client_mac: GATEWAY_MAC,
            server_mac: BROKER_MAC,
            ip: IpPair::V4 {
                client: ip,
                server: BROKER_IP,
            },
            client_port: port,
            server_port: 1883,
        };
        let isn = [r.next_u32(), r.next_u32()];
        let ip_id = [r.next_u32() as u16, r.next_u32() as u16];
        let link = Link::new(addrs, mss, rtt_ns, isn, ip_id);
        let reconnect = match owner {
            Owner::Dev(d) => self.devs[d as usize].conn.is_some(),
            Owner::Cons(k) => self.cons_conn[k as usize].is_some(),
        };
        let id = self.conns.len() as u32;
        self.conns
            .push(Conn::new(link, owner, level, reconnect, at));
        match owner {
            Owner::Dev(d) => self.devs[d as usize].conn = Some(id),
            Owner::Cons(k) => self.cons_conn[k as usize] = Some(id),
        }
        self.s.connections += 1;
        self.at(at, Ev::Syn(id));
        id
    }

    fn run_loop(&mut self) -> io::Result<()> {
        while let Some(Item { t, ev, .. }) = self.q.pop() {
            self.exec(t, ev)?;
        }
        Ok(())
    }

    fn exec(&mut self, now: u64, ev: Ev) -> io::Result<()> {
        match ev {
            Ev::Syn(c) => {
                self.conns[c as usize]
                    .link
                    .control(&mut self.out, now, CLIENT, frame::SYN)?;
                let at = now + self.rng.range(8 * US, 30 * US);
                self.at(at, Ev::SynAck(c));
            }
            Ev::SynAck(c) => {
                let conn = &mut self.conns[c as usize];
                conn.link
                    .control(&mut self.out, now, BROKER, frame::SYN | frame::ACK)?;
                let at = now + conn.link.rtt_ns + self.rng.range(5 * US, 30 * US);
                self.at(at, Ev::HsAck(c));
            }
            Ev::HsAck(c) => {
                self.conns[c as usize]
                    .link
                    .control(&mut self.out, now, CLIENT, frame::ACK)?;
                let at = now + self.rng.range(20 * US, 400 * US);
                self.at(at, Ev::Connect(c));
            }
            Ev::Connect(c) => self.send_connect(c, now)?,
            Ev::React { conn, by, r } => {
                let cn = &mut self.conns[conn as usize];
                cn.pending = cn.pending.saturating_sub(1);
                if cn.can_act(usize::from(by)) {
                    self.react(conn, usize::from(by), r, now)?;
                } else if let React::PubIn { msg, .. } = r {
                    self.release(msg);
                }
            }
            Ev::Flush { conn, side } => {
                let i = usize::from(side);
                let cn = &mut self.conns[conn as usize];
                cn.link.clocked[i] = false;
                if cn.can_act(i) {
                    self.flush(conn, i, now)?;
                }
            }
            Ev::PureAck { conn, by } => {
                let by = usize::from(by);
                let cn = &mut self.conns[conn as usize];
                if cn.can_act(by) {
                    cn.link.pure_ack(&mut self.out, now, by)?;
                }
            }
            Ev::DelAck { conn, by } => {
                let by = usize::from(by);
                let cn = &mut self.conns[conn as usize];
                cn.link.delack[by] = false;
                if cn.can_act(by) {
                    cn.link.pure_ack(&mut self.out, now, by)?;
                }
            }
            Ev::Tick { dev, group, k } => self.tick(dev, usize::from(group), k, now)?,
            Ev::KeepAlive(owner) => self.keepalive(owner, now)?,
            Ev::Forward { msg, conn, qos } => self.forward(msg, conn, qos, now)?,
            Ev::Drop(d) => self.drop_link(d, now)?,
            Ev::FinBroker(c) => {
                let conn = &mut self.conns[c as usize];
                conn.link
                    .control(&mut self.out, now, BROKER, frame::FIN | frame::ACK)?;
                let at = now + conn.link.rtt_ns + self.rng.range(5 * US, 20 * US);
                self.at(at, Ev::FinLast(c));
                // The broker learns the client is gone: its will, now or after its delay.
                if let super::conn::Owner::Dev(d) = self.conns[c as usize].owner {
                    let delay = self.plant.devices[d as usize].will_delay_s;
                    if delay == 0 {
                        let at = now + self.rng.range(50 * US, 200 * US);
                        self.publish_will(d, at);
                    } else {
                        self.at(
                            now + u64::from(delay) * NS,
                            Ev::WillFire { dev: d, conn: c },
                        );
                    }
                }
            }
            Ev::FinLast(c) => {
                let conn = &mut self.conns[c as usize];
                conn.link.control(&mut self.out, now, CLIENT, frame::ACK)?;
                conn.st = St::Closed;
            }
            Ev::Reconnect(d) => {
                self.spawn(Owner::Dev(d), now);
                self.schedule_drop(d, now);
            }
            Ev::WillFire { dev, conn } => {
                // MQTT 5: a will is not sent if the client came back within the delay.
                let back = self.devs[dev as usize]
                    .conn
                    .is_some_and(|c| c != conn && self.conns[c as usize].accepted);
                if !back {
                    self.publish_will(dev, now);
                }
            }
            Ev::Command(k) => self.command(k, now)?,
        }
        Ok(())
    }

    /// A device's link goes. Usually its client notices (the Wi-Fi or modem driver
    /// reports the loss) and closes the socket, so the broker sees a FIN and no
    /// DISCONNECT and publishes the will; with `half_open_share` it just vanishes and
    /// its next CONNECT takes the session over.
    fn drop_link(&mut self, d: u32, now: u64) -> io::Result<()> {
        let Some(c) = self.devs[d as usize].conn else {
            return Ok(());
        };
        let conn = &mut self.conns[c as usize];
        if conn.st != St::Up {
            return Ok(());
        }
        if !conn.quiet() {
            // Bounded by the capture end: a connection that never goes quiet is not dropped.
            self.at_before_end(now + 30 * MS, Ev::Drop(d));
            return Ok(());
        }
        let cellular = self.plant.devices[d as usize].cellular;
        let gap = if cellular {
            self.rng.range(5 * NS, 20 * NS)
        } else {
            self.rng.range(2 * NS, 8 * NS)
        };
        self.s.reconnects += 1;
        if self.rng.chance(self.cfg.half_open_share) {
            self.conns[c as usize].st = St::Dead;
        } else {
            let conn = &mut self.conns[c as usize];
            conn.st = St::Closing;
            conn.link
                .control(&mut self.out, now, CLIENT, frame::FIN | frame::ACK)?;
            let at = now + self.rng.range(30 * US, 150 * US);
            self.at(at, Ev::FinBroker(c));
        }
        self.at(now + gap, Ev::Reconnect(d));
        Ok(())
    }

    /// Encodes `p` on side `i` of `conn` and counts it. `topic` is the full topic of a
    /// PUBLISH (also when only its alias is on the wire).
    pub fn push(
        &mut self,
        conn: u32,
        i: usize,
        p: &Packet<'_>,
        then: Option<React>,
        topic: Option<&[u8]>,
    ) {
        let cn = &mut self.conns[conn as usize];
        let level = cn.level;
        cn.link.push(i, level, p, then);
        self.tally.count(p, i, topic);
        if p.packet_type() == PacketType::Publish {
            if i == CLIENT {
                self.s.client_publishes += 1;
            } else {
                self.s.broker_publishes += 1;
            }
        }
    }

    /// Sends side `i`'s buffered bytes (one burst), then schedules what follows: the
    /// receiver's reactions in packet order, its ACKs (at once for a multi-segment
    /// burst, else by the delayed-ACK timer unless a reply carries the ACK first),
    /// and the next burst one round trip later.
    pub fn flush(&mut self, conn: u32, i: usize, now: u64) -> io::Result<()> {
        let cn = &mut self.conns[conn as usize];
        if cn.link.clocked[i] {
            return Ok(());
        }
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        let f = cn.link.flush(&mut self.out, now, i, &mut due)?;
        let Some(Flushed {
            segments,
            t_end,
            arrival,
            more,
        }) = f
        else {
            self.due = due;
            return Ok(());
        };
        if i == CLIENT {
            cn.last_out = now;
        } else {
            cn.last_in = cn.last_in.max(arrival);
        }
        let by = 1 - i;
        let device = matches!(cn.owner, Owner::Dev(_));
        for &r in &due {
            let proc = proc_ns(&mut self.rng, by, device, r);
            let cn = &mut self.conns[conn as usize];
            let t = (arrival + proc).max(cn.busy[by] + 2 * US);
            cn.busy[by] = t;
            cn.pending += 1;
            self.at(
                t,
                Ev::React {
                    conn,
                    by: by as u8,
                    r,
                },
            );
        }
        self.due = due;
        let rtt = self.conns[conn as usize].link.rtt_ns;
        if segments >= 2 {
            self.at(arrival + 10 * US, Ev::PureAck { conn, by: by as u8 });
        }
        let cn = &mut self.conns[conn as usize];
        if !cn.link.delack[by] {
            cn.link.delack[by] = true;
            let at = arrival + self.rng.range(DELACK_MIN, DELACK_MAX);
            self.at(at, Ev::DelAck { conn, by: by as u8 });
        }
        if more {
            let cn = &mut self.conns[conn as usize];
            cn.link.clocked[i] = true;
            self.at(
                t_end + rtt + 10 * US,
                Ev::Flush {
                    conn,
                    side: i as u8,
                },
            );
        }
        Ok(())
    }

    pub fn new_msg(&mut self, m: Msg) -> u32 {
        match self.free_msgs.pop() {
            Some(i) => {
                self.msgs[i as usize] = Some(m);
                i
            }
            None => {
                self.msgs.push(Some(m));
                (self.msgs.len() - 1) as u32
            }
        }
    }

    /// One reference to `msg` is done with; the slot is reused once none is left.
    pub fn release(&mut self, msg: u32) {
        let Some(Some(m)) = self.msgs.get_mut(msg as usize) else {
            return;
        };
        m.refs = m.refs.saturating_sub(1);
        if m.refs == 0 {
            self.msgs[msg as usize] = None;
            self.free_msgs.push(msg);
        }
    }
}

/// How long the actor takes before its reply: the broker (EMQX on a cluster node)
/// tens to hundreds of µs, CONNECT with authentication longer; devices (embedded
/// stacks) up to a few ms; consumers (servers) fractions of a ms.
fn proc_ns(rng: &mut Rng, by: usize, device: bool, r: React) -> u64 {
    if by == BROKER {
        return match r {
            React::ConnAck => rng.range(300 * US, 2_500 * US),
            React::SubAck { .. } => rng.range(100 * US, 600 * US),
            React::PubIn { .. } => rng.range(40 * US, 250 * US),
            React::Ping => rng.range(15 * US, 60 * US),
            _ => rng.range(30 * US, 150 * US),
        };
    }
    if device {
        rng.range(200 * US, 2_000 * US)
    } else {
        rng.range(30 * US, 300 * US)
    }
}

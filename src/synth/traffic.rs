//! The traffic simulation: opens connections, runs each one's TCP + MQTT life as
//! scheduled actions, and writes every frame as its time comes.
//!
//! TCP behaviour modelled (enough to look like a Linux stack to a reassembler):
//! 3-way handshake with MSS/SACK/window-scale options; data cut at the flow's MSS,
//! sent in bursts of up to `BURST` segments and ACK-clocked (the next burst waits one
//! RTT); the receiver ACKs every second segment, or piggybacks the ACK on its MQTT
//! reply; PSH on the last segment of what was handed over; FIN/FIN/ACK teardown.

use super::behave::{self, Gen};
use super::conn::{Action, Conn, Phase};
use super::content::{self, METRICS, Pools};
use super::frame::{self, FlowAddrs, IpPair};
use super::pcap_writer::PcapWriter;
use super::rng::Rng;
use super::sched::{Agenda, Clock};
use super::tcp::{FrameOut, Side};
use super::{SynthConfig, SynthSummary};
use std::collections::{HashSet, VecDeque};
use std::io::{self, Write};

/// Segments per burst (Linux initial congestion window).
const BURST: usize = 10;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
/// Broker/device processing time before a reply, 20..200 µs.
const PROC_MIN: u64 = 20 * US;
const PROC_MAX: u64 = 200 * US;

pub(super) fn run<W: Write>(cfg: &SynthConfig, w: &mut PcapWriter<W>) -> io::Result<SynthSummary> {
    let mut rng = Rng::new(cfg.seed);
    let pools = Pools::new(&mut rng);
    let mut sim = Sim {
        cfg,
        rng,
        g: Gen {
            pools,
            props: Vec::with_capacity(256),
            topic: Vec::with_capacity(256),
            list: Vec::with_capacity(256),
            tally: Default::default(),
            max_payload: cfg.max_payload.min(content::BLOB_POOL),
            large_share: cfg.large_share.clamp(0.0, 0.9),
        },
        out: FrameOut {
            w,
            hdr: [0; frame::MAX_HDR],
            last_ts: 0,
            split_headers: cfg.split_headers,
            straddled_headers: 0,
        },
        clock: Clock::default(),
        slots: Vec::new(),
        free: Vec::new(),
        used_tuples: HashSet::new(),
        summary: SynthSummary::default(),
    };
    // Small captures get fewer connections so the opening and closing exchanges of
    // every connection do not swamp the packet budget.
    let conns = u64::from(cfg.connections.max(1)).min((cfg.packets / 100).max(1));
    let t0 = cfg.start_unix_ns;
    for _ in 0..conns {
        let at = t0 + sim.rng.below(2_000 * MS);
        sim.spawn(at);
    }
    sim.run_loop()?;
    let mut s = sim.summary;
    let tally = sim.g.tally;
    s.mqtt_packets = tally.packets;
    for t in 1..16 {
        s.by_type_c2s[t] = tally.by_type[0][t];
        s.by_type_s2c[t] = tally.by_type[1][t];
        s.by_type[t] = tally.by_type[0][t] + tally.by_type[1][t];
    }
    s.mqtt_bytes_c2s = tally.bytes[0];
    s.mqtt_bytes_s2c = tally.bytes[1];
    s.publish_by_qos = tally.publish_by_qos;
    s.alias_only_publishes = tally.alias_only_publishes;
    s.largest_payload = tally.largest_payload;
    s.last_ts_ns = sim.out.last_ts;
    s.straddled_headers = sim.out.straddled_headers;
    Ok(s)
}

struct Sim<'c, 'w, W: Write> {
    cfg: &'c SynthConfig,
    rng: Rng,
    g: Gen,
    out: FrameOut<'w, W>,
    clock: Clock,
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    /// Every (client address, port) ever used: a 4-tuple is never reused, so no
    /// reassembler can confuse two connections.
    used_tuples: HashSet<([u8; 16], u16)>,
    summary: SynthSummary,
}

impl<W: Write> Sim<'_, '_, W> {
    fn budget_left(&self) -> bool {
        self.g.tally.packets < self.cfg.packets
    }

    fn run_loop(&mut self) -> io::Result<()> {
        while let Some((_, slot, generation)) = self.clock.pop() {
            let Some(Some(c)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            if c.generation != generation {
                continue;
            }
            let Some((now, action)) = c.agenda.pop() else {
                continue;
            };
            self.exec(slot, now, action)?;
            let Some(Some(c)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            if let Some(next) = c.agenda.next_time() {
                c.generation = c.generation.wrapping_add(1);
                self.clock.push(next, slot, c.generation);
            } else {
                // Only a finished connection runs out of actions.
                self.slots[slot as usize] = None;
                self.free.push(slot);
                if self.budget_left() {
                    let at = now + self.rng.range(10 * MS, 2_000 * MS);
                    self.spawn(at);
                }
            }
        }
        Ok(())
    }

    fn spawn(&mut self, at: u64) {
        let cfg = self.cfg;
        let r = &mut self.rng;
        let mut rng = r.fork();
        let u = rng.unit();
        let level = if u < cfg.v31_share {
            3
        } else if u < cfg.v31_share + cfg.v5_share {
            5
        } else {
            4
        };
        let device = rng.below(u64::from(cfg.devices.max(1))) as u32;
        let v6 = rng.chance(cfg.ipv6_share);
        let loopback = rng.chance(cfg.loopback_share);
        let jumbo = !loopback && rng.chance(cfg.jumbo_share);
        let d = device.to_be_bytes();
        let ip = match (v6, loopback) {
            (false, false) => IpPair::V4 {
                client: [10, 1 + d[1], d[2], d[3]],
                server: [10, 0, 0, 1],
            },
            (false, true) => IpPair::V4 {
                client: [127, 0, 0, 1],
                server: [127, 0, 0, 1],
            },
            (true, false) => {
                let mut client = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                client[8] = 0x02;
                client[12..].copy_from_slice(&d);
                let mut server = [0u8; 16];
                server[0] = 0xfd;
                server[15] = 1;
                IpPair::V6 { client, server }
            }
            (true, true) => {
                let mut one = [0u8; 16];
                one[15] = 1;
                IpPair::V6 {
                    client: one,
                    server: one,
                }
            }
        };
        let key = match ip {
            IpPair::V4 { client, .. } => {
                let mut k = [0u8; 16];
                k[12..].copy_from_slice(&client);
                k
            }
            IpPair::V6 { client, .. } => client,
        };
        // Linux default ephemeral range 32768..=60999.
        let mut port = 0;
        for _ in 0..256 {
            port = rng.range(32_768, 60_999) as u16;
            if self.used_tuples.insert((key, port)) {
                break;
            }
        }
        let mss = match (v6, loopback, jumbo) {
            (false, true, _) => 65_483, // loopback MTU 65536 - 40 - 13 bytes of options room
            (true, true, _) => 65_476,
            (false, false, true) => 8_960,
            (true, false, true) => 8_940,
            (false, false, false) => 1_460,
            (true, false, false) => 1_440,
        };
        let (client_mac, server_mac) = if loopback {
            ([0; 6], [0; 6]) // Linux loopback captures carry zero MACs
        } else {
            (
                [0x02, 0x42, d[0], d[1], d[2], d[3]],
                [0x02, 0x42, 0xac, 0x11, 0, 0x02],
            )
        };
        let rtt_ns = if loopback {
            rng.range(20 * US, 60 * US)
        } else if rng.chance(0.85) {
            rng.range(200 * US, 3 * MS)
        } else {
            rng.range(20 * MS, 80 * MS) // cellular / WAN devices
        };
        let think_ns = log_uniform(&mut rng, 20 * MS, 3_000 * MS);
        let activities_left = log_uniform(&mut rng, 20, 4_000) as u32;
        let aliases = level == 5 && rng.chance(cfg.alias_share);
        let alias_max_c2s = if aliases { rng.range(8, 32) as u16 } else { 0 };
        let alias_max_s2c = if aliases && rng.chance(0.5) {
            rng.range(4, 16) as u16
        } else {
            0
        };
        let client_id_assigned = level == 5 && rng.chance(0.03);
        let client = Side::new(rng.next_u32(), rng.next_u32() as u16, rtt_ns / 2);
        let broker = Side::new(rng.next_u32(), rng.next_u32() as u16, rtt_ns / 2);

        let s = &mut self.summary;
        s.connections += 1;
        s.connections_by_level[usize::from(level)] += 1;
        s.ipv6_connections += u64::from(v6);
        s.loopback_connections += u64::from(loopback);
        s.jumbo_connections += u64::from(jumbo);
        s.alias_connections += u64::from(aliases);

        let mut agenda = Agenda::default();
        agenda.push(at, Action::Syn);
        let conn = Conn {
            addrs: FlowAddrs {
                client_mac,
                server_mac,
                ip,
                client_port: port,
                server_port: 1883,
            },
            mss,
            level,
            rng,
            client,
            broker,
            agenda,
            generation: 0,
            owed_by_client: VecDeque::new(),
            owed_by_broker: VecDeque::new(),
            rtt_ns,
            think_ns,
            phase: Phase::Opening,
            activities_left,
            prefix: content::device_prefix(device),
            client_id: format!("dev-{device:05}-{:x}", self.summary.connections),
            client_id_assigned,
            pid_client: 0,
            pid_broker: 0,
            subs: Vec::new(),
            alias_max_c2s,
            alias_max_s2c,
            aliases_c2s: [0; METRICS.len()],
            aliases_s2c: [0; METRICS.len()],
            next_alias_c2s: 1,
            next_alias_s2c: 1,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(conn);
                s
            }
            None => {
                self.slots.push(Some(conn));
                (self.slots.len() - 1) as u32
            }
        };
        self.clock.push(at, slot, 0);
    }

    fn exec(&mut self, slot: u32, now: u64, action: Action) -> io::Result<()> {
        let budget_left = self.budget_left();
        let Some(Some(c)) = self.slots.get_mut(slot as usize) else {
            return Ok(());
        };
        let out = &mut self.out;
        let g = &mut self.g;
        let half = c.rtt_ns / 2;
        let mss16 = c.mss.min(usize::from(u16::MAX)) as u16;
        match action {
            Action::Syn => {
                out.control(now, &c.addrs, true, &mut c.client, 0, frame::SYN, mss16)?;
                c.agenda.push(now + half, Action::SynAck);
            }
            Action::SynAck => {
                let ack = c.ack_now(false, now);
                out.control(
                    now,
                    &c.addrs,
                    false,
                    &mut c.broker,
                    ack,
                    frame::SYN | frame::ACK,
                    mss16,
                )?;
                c.agenda.push(now + half, Action::HandshakeAck);
            }
            Action::HandshakeAck => {
                let ack = c.ack_now(true, now);
                out.control(now, &c.addrs, true, &mut c.client, ack, frame::ACK, mss16)?;
                let at = now + c.rng.range(20 * US, 300 * US);
                c.agenda.push(at, Action::Connect);
            }
            Action::Connect => {
                behave::connect(g, c);
                flush(out, c, true, now)?;
            }
            Action::Activity => {
                if c.phase != Phase::Open {
                    return Ok(());
                }
                if !budget_left || c.activities_left == 0 {
                    c.agenda.push(now, Action::Disconnect);
                    return Ok(());
                }
                c.activities_left -= 1;
                activity(out, g, c, now)?;
                let next = now + c.think_ns / 2 + c.rng.below(c.think_ns);
                c.agenda.push(next, Action::Activity);
            }
            Action::Disconnect => {
                if !c.quiet() {
                    c.agenda.push(now + c.rtt_ns, Action::Disconnect);
                    return Ok(());
                }
                c.phase = Phase::Closing;
                behave::disconnect(g, c);
                flush(out, c, true, now)?;
                let at = now + c.rng.range(50 * US, 1_000 * US);
                c.agenda.push(at, Action::FinClient);
            }
            Action::Flush { c2s } => flush(out, c, c2s, now)?,
            Action::PureAck { by_c2s } => {
                let ack = c.ack_now(by_c2s, now);
                let addrs = c.addrs;
                let side = c.side(by_c2s);
                if side.ack_is_new(ack) {
                    out.control(now, &addrs, by_c2s, side, ack, frame::ACK, mss16)?;
                }
            }
            Action::Respond { by_c2s, upto } => {
                let was_opening = c.phase == Phase::Opening;
                loop {
                    let owed = if by_c2s {
                        &mut c.owed_by_client
                    } else {
                        &mut c.owed_by_broker
                    };
                    match owed.front() {
                        Some(&(end, r)) if end <= upto => {
                            owed.pop_front();
                            behave::reply(g, c, by_c2s, r);
                        }
                        _ => break,
                    }
                }
                if c.side(by_c2s).unsent() > 0 {
                    flush(out, c, by_c2s, now)?;
                } else {
                    let ack = c.ack_now(by_c2s, now);
                    let addrs = c.addrs;
                    let side = c.side(by_c2s);
                    if side.ack_is_new(ack) {
                        out.control(now, &addrs, by_c2s, side, ack, frame::ACK, mss16)?;
                    }
                }
                if was_opening && c.phase == Phase::Open {
                    let at = now + c.rng.below(c.think_ns);
                    c.agenda.push(at, Action::Activity);
                }
            }
            Action::FinClient => {
                let ack = c.ack_now(true, now);
                out.control(
                    now,
                    &c.addrs,
                    true,
                    &mut c.client,
                    ack,
                    frame::FIN | frame::ACK,
                    mss16,
                )?;
                c.agenda.push(now + half, Action::FinServer);
            }
            Action::FinServer => {
                let ack = c.ack_now(false, now);
                out.control(
                    now,
                    &c.addrs,
                    false,
                    &mut c.broker,
                    ack,
                    frame::FIN | frame::ACK,
                    mss16,
                )?;
                c.agenda.push(now + half, Action::FinLast);
            }
            Action::FinLast => {
                let ack = c.ack_now(true, now);
                out.control(now, &c.addrs, true, &mut c.client, ack, frame::ACK, mss16)?;
            }
        }
        self.summary.frames = self.out.w.frames();
        Ok(())
    }
}

/// One unit of steady-state traffic.
fn activity<W: Write>(
    out: &mut FrameOut<'_, W>,
    g: &mut Gen,
    c: &mut Conn,
    now: u64,
) -> io::Result<()> {
    let u = c.rng.unit();
    if u < 0.25 {
        // Broker delivers 1-3 commands/updates; several go out coalesced.
        for _ in 0..burst_len(&mut c.rng, 3) {
            behave::publish(g, c, false);
        }
        return flush(out, c, false, now);
    }
    if u < 0.32 {
        behave::ping(g, c);
    } else if u < 0.36 {
        if !behave::unsubscribe(g, c) && !behave::subscribe(g, c, false) {
            behave::publish(g, c, true);
        }
    } else if u < 0.39 {
        if !behave::subscribe(g, c, false) {
            behave::publish(g, c, true);
        }
    } else {
        // Telemetry: a device reports 1-4 metrics in one go, which the stack coalesces.
        for _ in 0..burst_len(&mut c.rng, 4) {
            behave::publish(g, c, true);
        }
    }
    flush(out, c, true, now)
}

/// 1 half of the time, otherwise uniform in 2..=max.
fn burst_len(rng: &mut Rng, max: u64) -> u64 {
    if rng.chance(0.5) {
        1
    } else {
        rng.range(2, max)
    }
}

fn log_uniform(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    let (l, h) = ((lo.max(1)) as f64, (hi.max(lo.max(1))) as f64);
    (l * (h / l).powf(rng.unit())) as u64
}

/// Sends one burst of direction `c2s` and schedules the receiver's ACKs (every
/// second segment), its MQTT reply when a complete packet that needs one arrived, and
/// the next burst one RTT later if data remains.
fn flush<W: Write>(out: &mut FrameOut<'_, W>, c: &mut Conn, c2s: bool, now: u64) -> io::Result<()> {
    let ack = c.ack_now(c2s, now);
    let mss = c.mss;
    let addrs = c.addrs;
    let side = c.side(c2s);
    let seq0 = side.seq;
    let (n, t_end) = out.data(now, &addrs, c2s, side, ack, mss, BURST)?;
    if n == 0 {
        return Ok(());
    }
    let sent_end = side.sent_end();
    let sent = side.seq.wrapping_sub(seq0) as u64;
    let more = side.unsent() > 0;
    let half = c.rtt_ns / 2;
    let owes = c
        .owed_by_receiver_of(c2s)
        .front()
        .is_some_and(|&(end, _)| end <= sent_end);
    let pairs = n.div_ceil(2);
    let span = t_end - now.min(t_end);
    for i in 0..pairs {
        let covered = ((2 * (i + 1) * mss) as u64).min(sent);
        let at = now + span * covered / sent.max(1) + half;
        if i + 1 == pairs && owes {
            let proc_ns = c.rng.range(PROC_MIN, PROC_MAX);
            c.agenda.push(
                at + proc_ns,
                Action::Respond {
                    by_c2s: !c2s,
                    upto: sent_end,
                },
            );
        } else {
            c.agenda.push(at, Action::PureAck { by_c2s: !c2s });
        }
    }
    if more {
        c.agenda.push(t_end + c.rtt_ns, Action::Flush { c2s });
    }
    Ok(())
}

//! A capture with a known broker fan-out delay: one publisher, one broker, N
//! subscribers. Each message enters the broker at a chosen time and leaves toward each
//! subscriber after a delay the scenario sets, so a measurement of fan-out latency can be
//! checked against the truth to the nanosecond (the file has nanosecond timestamps).
//!
//! Deliberately simple TCP (one MQTT packet per segment, every segment ACKed) and
//! independent of the main traffic generator: what is under test is the latency
//! matching, not reassembly.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use etherparse::PacketBuilder;

use crate::mqtt::{
    Ack, ConnAck, Connect, MqttStr, Packet, Properties, Publish, SubAck, Subscribe, encode,
};

use super::pcap_writer::{PcapWriter, TsResolution};

/// What to generate.
#[derive(Clone, Debug)]
pub struct FanoutScenario {
    /// Delay from the PUBLISH entering the broker to the copy leaving toward subscriber i.
    pub delays_ns: Vec<u64>,
    /// Messages published.
    pub messages: u32,
    /// Time between messages.
    pub interval_ns: u64,
    /// QoS of the publisher's PUBLISH (the broker forwards with the same QoS; packet ids
    /// differ per hop, as with a real broker).
    pub qos: u8,
    pub topic: String,
    pub start_ns: u64,
}

impl Default for FanoutScenario {
    fn default() -> Self {
        FanoutScenario {
            delays_ns: vec![150_000, 420_500, 1_250_003],
            messages: 50,
            interval_ns: 100_000_000,
            qos: 1,
            topic: "acme/plant1/area2/line3/cell4/press17/temperature".to_string(),
            start_ns: 1_700_000_000_000_000_000,
        }
    }
}

/// One delivery as generated: message index, subscriber index, the two frame times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub message: u32,
    pub subscriber: usize,
    pub in_ns: u64,
    pub out_ns: u64,
}

const BROKER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

struct Tcp {
    client: SocketAddrV4,
    broker: SocketAddrV4,
    /// Next sequence number: client side, broker side.
    seq: [u32; 2],
}

impl Tcp {
    fn new(i: u16) -> Tcp {
        Tcp {
            client: SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, (i + 10) as u8), 40000 + i),
            broker: SocketAddrV4::new(BROKER, 1883),
            seq: [
                1000 + u32::from(i) * 100_000,
                9_000_000 + u32::from(i) * 100_000,
            ],
        }
    }

    /// One segment from the client (`c2s`) or the broker, with SYN/ACK flags as given.
    fn frame(&mut self, c2s: bool, syn: bool, ack: bool, payload: &[u8]) -> Vec<u8> {
        let (src, dst, me, peer) = if c2s {
            (self.client, self.broker, 0, 1)
        } else {
            (self.broker, self.client, 1, 0)
        };
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.ip().octets(), dst.ip().octets(), 64)
            .tcp(src.port(), dst.port(), self.seq[me], 65535);
        if syn {
            b = b.syn();
        }
        let b = if ack { b.ack(self.seq[peer]) } else { b };
        let mut out = Vec::with_capacity(b.size(payload.len()));
        // Writing into a Vec cannot fail.
        let _ = b.write(&mut out, payload);
        self.seq[me] = self.seq[me].wrapping_add(payload.len() as u32 + u32::from(syn));
        out
    }
}

fn enc(p: &Packet<'_>, level: u8) -> Vec<u8> {
    let mut v = Vec::new();
    encode::encode(p, level, &mut v);
    v
}

/// Writes the scenario as a nanosecond pcap and returns every delivery it contains.
pub fn write_fanout_capture(path: &Path, s: &FanoutScenario) -> io::Result<Vec<Delivery>> {
    let mut w = PcapWriter::create(path, TsResolution::Nanos)?;
    let mut t = s.start_ns;
    let n = s.delays_ns.len();
    // Connection 0 is the publisher, 1..=n the subscribers.
    let mut conns: Vec<Tcp> = (0..=n as u16).map(Tcp::new).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let id = format!("{}-{i}", if i == 0 { "publisher" } else { "subscriber" });
        for (c2s, syn, ack) in [
            (true, true, false),
            (false, true, true),
            (true, false, true),
        ] {
            let f = c.frame(c2s, syn, ack, &[]);
            w.write_frame(t, &[&f])?;
            t += 10_000;
        }
        let connect = Packet::Connect(Connect {
            protocol_name: MqttStr(b"MQTT"),
            protocol_level: 4,
            flags: 0,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::default(),
            client_id: MqttStr(id.as_bytes()),
            will: None,
            username: None,
            password: None,
        });
        let f = c.frame(true, false, true, &enc(&connect, 4));
        w.write_frame(t, &[&f])?;
        t += 10_000;
        let connack = Packet::ConnAck(ConnAck {
            session_present: false,
            code: 0,
            properties: Properties::default(),
        });
        let f = c.frame(false, false, true, &enc(&connack, 4));
        w.write_frame(t, &[&f])?;
        t += 10_000;
        if i > 0 {
            let mut filters = Vec::new();
            encode::subscribe_filters(&[(b"acme/#".as_slice(), s.qos)], &mut filters);
            let sub = Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: Properties::default(),
                filters_raw: &filters,
            });
            let f = c.frame(true, false, true, &enc(&sub, 4));
            w.write_frame(t, &[&f])?;
            t += 10_000;
            let codes = [s.qos];
            let suback = Packet::SubAck(SubAck {
                packet_id: 1,
                properties: Properties::default(),
                codes: &codes,
            });
            let f = c.frame(false, false, true, &enc(&suback, 4));
            w.write_frame(t, &[&f])?;
            t += 10_000;
        }
    }
    let mut deliveries = Vec::new();
    // (time, frame), built in per-connection order, written in time order.
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    t += 1_000_000;
    for m in 0..s.messages {
        let t_in = t + u64::from(m) * s.interval_ns;
        // Payloads differ per message so fan-out matching by payload hash is exercised.
        let payload = format!(
            "{{\"seq\":{m},\"temperature\":{:.2}}}",
            20.0 + f64::from(m) * 0.37
        );
        let publish = |pid: u16| {
            Packet::Publish(Publish {
                dup: false,
                qos: s.qos,
                retain: false,
                topic: MqttStr(s.topic.as_bytes()),
                packet_id: (s.qos > 0).then_some(pid),
                properties: Properties::default(),
                payload: payload.as_bytes(),
            })
        };
        let mut hop = |conn: usize, at: u64, pid: u16, frames: &mut Vec<(u64, Vec<u8>)>| {
            let c2s = conn == 0;
            let f = conns[conn].frame(c2s, false, true, &enc(&publish(pid), 4));
            frames.push((at, f));
            if s.qos == 1 {
                // The receiver acknowledges 50 µs later (its own latency, not fan-out).
                let ack = Packet::PubAck(Ack {
                    packet_id: pid,
                    reason_code: None,
                    properties: Properties::default(),
                });
                let f = conns[conn].frame(!c2s, false, true, &enc(&ack, 4));
                frames.push((at + 50_000, f));
            }
        };
        hop(0, t_in, (m % 60_000 + 1) as u16, &mut frames);
        for (k, d) in s.delays_ns.iter().enumerate() {
            // The broker numbers packets per session: another id on every hop.
            let pid_out = ((m + 7 * (k as u32 + 1)) % 60_000 + 1) as u16;
            hop(k + 1, t_in + d, pid_out, &mut frames);
            deliveries.push(Delivery {
                message: m,
                subscriber: k,
                in_ns: t_in,
                out_ns: t_in + d,
            });
        }
    }
    frames.sort_by_key(|f| f.0);
    for (ts, f) in &frames {
        w.write_frame(*ts, &[f])?;
    }
    w.finish()?;
    Ok(deliveries)
}

//! Whole-pipeline property: however TCP cuts, reorders and repeats the segments of a
//! valid MQTT conversation, the dissector reports exactly the packets that were encoded,
//! in order per direction, each on the frame that completed it.
//!
//! The truth is what the test encoded (not what the decoder said earlier), and the
//! completing frame is computed here from the segment layout.

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::PacketBuilder;
use mqscope::capture::link::LinkType;
use mqscope::dissect::{DissectConfig, Dissector, MqttRecord};
use mqscope::mqtt::{
    self, Ack, ConnAck, Connect, Direction, MqttStr, Packet, Properties, Publish, ReasonOnly,
    encode,
};
use proptest::prelude::*;

/// Tiny deterministic RNG so one proptest seed drives the whole scenario.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Expect {
    dir: Direction,
    ptype: &'static str,
    remaining_length: u32,
    topic: Option<String>,
    payload_len: Option<usize>,
    /// Byte offset in its direction's stream just past the packet.
    end: u64,
}

/// Encode a random but valid conversation; returns (c2s bytes, s2c bytes, expectations).
fn conversation(rng: &mut Rng, level: u8, max_payload: usize) -> (Vec<u8>, Vec<u8>, Vec<Expect>) {
    let mut c2s = Vec::new();
    let mut s2c = Vec::new();
    let mut exp = Vec::new();
    let push = |dir: Direction, p: &Packet<'_>, buf: &mut Vec<u8>, exp: &mut Vec<Expect>| {
        let start = buf.len();
        encode::encode(p, level, buf);
        let h = mqtt::parse_fixed_header(&buf[start..]).unwrap().unwrap();
        let (topic, payload_len) = match p {
            Packet::Publish(x) => (
                Some(String::from_utf8(x.topic.0.to_vec()).unwrap()),
                Some(x.payload.len()),
            ),
            _ => (None, None),
        };
        exp.push(Expect {
            dir,
            ptype: p.packet_type().name(),
            remaining_length: h.remaining_length,
            topic,
            payload_len,
            end: buf.len() as u64,
        });
    };
    let connect = Packet::Connect(Connect {
        protocol_name: MqttStr(b"MQTT"),
        protocol_level: level,
        flags: 0,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::default(),
        client_id: MqttStr(b"device-17"),
        will: None,
        username: None,
        password: None,
    });
    push(Direction::C2S, &connect, &mut c2s, &mut exp);
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        code: 0,
        properties: Properties::default(),
    });
    push(Direction::S2C, &connack, &mut s2c, &mut exp);
    let payload = vec![0x5a; max_payload];
    let n = 5 + rng.below(40);
    for i in 0..n {
        let topic = format!("plant/area{}/line{}/temp", i % 3, rng.below(5));
        // Mostly small telemetry, sometimes a payload spanning many segments.
        let len = if rng.below(8) == 0 {
            rng.below(payload.len() as u64)
        } else {
            rng.below(300)
        } as usize;
        let qos = rng.below(3) as u8;
        let pid = (i + 1) as u16;
        let publish = Packet::Publish(Publish {
            dup: false,
            qos,
            retain: rng.below(10) == 0,
            topic: MqttStr(topic.as_bytes()),
            packet_id: (qos > 0).then_some(pid),
            properties: Properties::default(),
            payload: &payload[..len],
        });
        let (dir, buf, back) = if rng.below(2) == 0 {
            (Direction::C2S, &mut c2s, &mut s2c)
        } else {
            (Direction::S2C, &mut s2c, &mut c2s)
        };
        push(dir, &publish, buf, &mut exp);
        let other = if dir == Direction::C2S {
            Direction::S2C
        } else {
            Direction::C2S
        };
        let ack = Ack {
            packet_id: pid,
            reason_code: None,
            properties: Properties::default(),
        };
        match qos {
            1 => push(other, &Packet::PubAck(ack), back, &mut exp),
            2 => push(other, &Packet::PubRec(ack), back, &mut exp),
            _ => {}
        }
    }
    push(Direction::C2S, &Packet::PingReq, &mut c2s, &mut exp);
    push(Direction::S2C, &Packet::PingResp, &mut s2c, &mut exp);
    let disc = Packet::Disconnect(ReasonOnly {
        reason_code: None,
        properties: Properties::default(),
    });
    push(Direction::C2S, &disc, &mut c2s, &mut exp);
    (c2s, s2c, exp)
}

/// (frame, direction, type, remaining length, topic, payload length, error kind)
type Got = (
    u64,
    Direction,
    String,
    u32,
    Option<String>,
    Option<usize>,
    Option<&'static str>,
);

const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 50123);
const BROKER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 9, 8, 7), 1883);
const ISN_C: u32 = 0xffff_f000; // close to wrap-around on purpose
const ISN_S: u32 = 77;

struct Seg {
    dir: Direction,
    /// Offset in the direction's stream.
    off: u64,
    len: usize,
    syn: bool,
    fin: bool,
}

fn frame(seg: &Seg, data: &[u8], ack: u32) -> Vec<u8> {
    let (src, dst, isn) = match seg.dir {
        Direction::C2S => (CLIENT, BROKER, ISN_C),
        Direction::S2C => (BROKER, CLIENT, ISN_S),
    };
    let seq = if seg.syn {
        isn
    } else {
        isn.wrapping_add(1).wrapping_add(seg.off as u32)
    };
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 65535);
    if seg.syn {
        b = b.syn();
    }
    if seg.fin {
        b = b.fin();
    }
    let b = if !(seg.syn && seg.dir == Direction::C2S) {
        b.ack(ack)
    } else {
        b
    };
    let payload = if seg.len == 0 {
        &[][..]
    } else {
        &data[seg.off as usize..seg.off as usize + seg.len]
    };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn cut(rng: &mut Rng, dir: Direction, total: usize, max_seg: u64) -> Vec<Seg> {
    let mut v = Vec::new();
    let mut off = 0u64;
    while (off as usize) < total {
        let len = (1 + rng.below(max_seg)).min((total as u64) - off) as usize;
        v.push(Seg {
            dir,
            off,
            len,
            syn: false,
            fin: false,
        });
        off += len as u64;
    }
    v
}

fn run(seed: u64, level: u8, max_seg: u64, reorder: bool, dups: bool) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed);
    // Large payloads (spanning tens of segments) only with larger segments, to keep
    // the number of frames, and so the test's run time, bounded.
    let max_payload = if max_seg >= 500 { 70_000 } else { 4_000 };
    let (c2s, s2c, expect) = conversation(&mut rng, level, max_payload);
    let a = cut(&mut rng, Direction::C2S, c2s.len(), max_seg);
    let b = cut(&mut rng, Direction::S2C, s2c.len(), max_seg);
    // Interleave the directions, each keeping its order.
    let (mut ia, mut ib) = (a.into_iter().peekable(), b.into_iter().peekable());
    let mut order = vec![
        Seg {
            dir: Direction::C2S,
            off: 0,
            len: 0,
            syn: true,
            fin: false,
        },
        Seg {
            dir: Direction::S2C,
            off: 0,
            len: 0,
            syn: true,
            fin: false,
        },
    ];
    while ia.peek().is_some() || ib.peek().is_some() {
        let take_a = ib.peek().is_none() || (ia.peek().is_some() && rng.below(2) == 0);
        order.push(if take_a {
            ia.next().unwrap()
        } else {
            ib.next().unwrap()
        });
    }
    // Reorder within a small window (never before the handshake), then repeat some
    // segments later, as retransmissions do.
    if reorder {
        for i in 2..order.len() {
            if rng.below(4) == 0 {
                let j = (i + 1 + rng.below(3) as usize).min(order.len() - 1);
                order.swap(i, j);
            }
        }
    }
    if dups {
        let n = order.len();
        for _ in 0..rng.below(n as u64 / 4 + 1) {
            let i = 2 + rng.below((n - 2) as u64) as usize;
            let s = &order[i];
            let copy = Seg {
                dir: s.dir,
                off: s.off,
                len: s.len,
                syn: false,
                fin: false,
            };
            let at = (i + 1 + rng.below(4) as usize).min(order.len());
            order.insert(at, copy);
        }
    }
    order.push(Seg {
        dir: Direction::C2S,
        off: c2s.len() as u64,
        len: 0,
        syn: false,
        fin: true,
    });
    order.push(Seg {
        dir: Direction::S2C,
        off: s2c.len() as u64,
        len: 0,
        syn: false,
        fin: true,
    });

    // Feed, tracking per direction the contiguous prefix seen so far: a packet is
    // complete on the first frame whose arrival makes the prefix cover its end.
    let mut d = Dissector::new(DissectConfig::default());
    let mut got: Vec<Got> = Vec::new();
    let mut have = [Vec::<(u64, u64)>::new(), Vec::new()];
    let mut prefix = [0u64; 2];
    let mut complete_frame: Vec<Option<u64>> = vec![None; expect.len()];
    for (i, seg) in order.iter().enumerate() {
        let fno = i as u64 + 1;
        let (k, data) = match seg.dir {
            Direction::C2S => (0, &c2s),
            Direction::S2C => (1, &s2c),
        };
        // The peer acknowledges only what it could have received: its contiguous prefix.
        let ack = match seg.dir {
            Direction::C2S => ISN_S.wrapping_add(1).wrapping_add(prefix[1] as u32),
            Direction::S2C => ISN_C.wrapping_add(1).wrapping_add(prefix[0] as u32),
        };
        let bytes = frame(seg, data, ack);
        if seg.len > 0 {
            have[k].push((seg.off, seg.off + seg.len as u64));
            have[k].sort();
            for &(s, e) in &have[k] {
                if s <= prefix[k] {
                    prefix[k] = prefix[k].max(e);
                }
            }
            for (j, e) in expect.iter().enumerate() {
                if complete_frame[j].is_none() && (e.dir == seg.dir) && e.end <= prefix[k] {
                    complete_frame[j] = Some(fno);
                }
            }
        }
        d.on_frame(
            LinkType::Ethernet,
            fno,
            fno * 1_000_000,
            &bytes,
            &mut |r: &MqttRecord<'_>| {
                let topic = r.topic.map(|t| String::from_utf8(t.0.to_vec()).unwrap());
                let plen = match &r.packet {
                    Ok(Packet::Publish(p)) => Some(p.payload.len()),
                    _ => None,
                };
                got.push((
                    r.frame,
                    r.dir,
                    r.header.packet_type().unwrap().name().to_string(),
                    r.header.remaining_length,
                    topic,
                    plen,
                    r.error_kind(),
                ));
            },
        );
    }
    d.finish(order.len() as u64, 0, &mut |_: &MqttRecord<'_>| {});
    let st = d.stats();
    prop_assert_eq!(st.gaps, 0, "no data was lost");
    prop_assert_eq!(st.resync_skipped_bytes, 0);
    for dir in [Direction::C2S, Direction::S2C] {
        let want: Vec<_> = expect
            .iter()
            .zip(&complete_frame)
            .filter(|(e, _)| e.dir == dir)
            .map(|(e, f)| {
                (
                    f.unwrap(),
                    e.ptype.to_string(),
                    e.remaining_length,
                    e.topic.clone(),
                    e.payload_len,
                    None,
                )
            })
            .collect();
        let have: Vec<_> = got
            .iter()
            .filter(|g| g.1 == dir)
            .map(|g| (g.0, g.2.clone(), g.3, g.4.clone(), g.5, g.6))
            .collect();
        prop_assert_eq!(have, want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn in_order_any_segmentation(seed in any::<u64>(), v5 in any::<bool>(), max_seg in 1u64..3000) {
        run(seed, if v5 { 5 } else { 4 }, max_seg, false, false)?;
    }

    #[test]
    fn reordered_and_retransmitted(seed in any::<u64>(), v5 in any::<bool>(), max_seg in 1u64..3000) {
        run(seed, if v5 { 5 } else { 4 }, max_seg, true, true)?;
    }
}

#[test]
fn one_byte_segments() {
    run(7, 5, 1, false, false).unwrap();
}

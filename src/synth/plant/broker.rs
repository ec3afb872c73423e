//! What the broker does: accept sessions (taking over a half-open one), acknowledge
//! subscriptions and send matching retained messages, acknowledge and route each
//! PUBLISH to every subscriber (own packet id per hop, QoS capped by the grant, the
//! in-flight window respected), publish wills.

use std::io::{self, Write};

use super::conn::{Ev, MAX_INFLIGHT, Owner, React, St};
use super::engine::{MS, Msg, Origin, Retained, Sim, US};
use super::link::{BROKER, CLIENT};
use super::payload;
use super::topology::{self, Route, Sub};
use crate::mqtt::{
    Ack, ConnAck, MqttStr, Packet, Properties, Property, Publish, ReasonOnly, SubAck, encode,
};

/// MQTT 5 reason code 0x8E, Session taken over.
const SESSION_TAKEN_OVER: u8 = 0x8e;

impl<W: Write> Sim<'_, W> {
    /// Runs reaction `r` of side `by` on `conn`.
    pub fn react(&mut self, conn: u32, by: usize, r: React, now: u64) -> io::Result<()> {
        let ack = |pid| Ack {
            packet_id: pid,
            reason_code: None,
            properties: Properties::default(),
        };
        match r {
            React::ConnAck => self.connack(conn, now)?,
            React::Up => self.session_up(conn, now)?,
            React::SubAck { pid } => self.suback(conn, pid, now)?,
            React::PubIn { msg, qos, pid } => {
                match qos {
                    1 => self.push(conn, BROKER, &Packet::PubAck(ack(pid)), None, None),
                    2 => self.push(
                        conn,
                        BROKER,
                        &Packet::PubRec(ack(pid)),
                        Some(React::Rec { pid }),
                        None,
                    ),
                    _ => {}
                }
                if qos > 0 {
                    self.flush(conn, BROKER, now)?;
                }
                self.route(msg, now);
            }
            React::Deliver { qos, pid } => {
                if qos == 1 {
                    self.push(
                        conn,
                        CLIENT,
                        &Packet::PubAck(ack(pid)),
                        Some(React::Acked),
                        None,
                    );
                } else {
                    let then = Some(React::Rec { pid });
                    self.push(conn, CLIENT, &Packet::PubRec(ack(pid)), then, None);
                }
                self.flush(conn, CLIENT, now)?;
            }
            React::Rec { pid } => {
                let then = Some(React::Rel { pid });
                self.push(conn, by, &Packet::PubRel(ack(pid)), then, None);
                self.flush(conn, by, now)?;
            }
            React::Rel { pid } => {
                // A subscriber's PUBCOMP ends a delivery; a publisher's needs no answer.
                let then = (by == CLIENT).then_some(React::Acked);
                self.push(conn, by, &Packet::PubComp(ack(pid)), then, None);
                self.flush(conn, by, now)?;
            }
            React::Acked => {
                let cn = &mut self.conns[conn as usize];
                cn.inflight = cn.inflight.saturating_sub(1);
                let mut sent = false;
                while self.conns[conn as usize].inflight < MAX_INFLIGHT {
                    let Some((msg, qos, retain)) = self.conns[conn as usize].queue.pop_front()
                    else {
                        break;
                    };
                    self.send_copy(conn, msg, qos, retain);
                    sent = true;
                }
                if sent {
                    self.flush(conn, BROKER, now)?;
                }
            }
            React::Ping => {
                self.push(conn, BROKER, &Packet::PingResp, None, None);
                self.flush(conn, BROKER, now)?;
            }
        }
        Ok(())
    }

    fn connack(&mut self, conn: u32, now: u64) -> io::Result<()> {
        let owner = self.conns[conn as usize].owner;
        // A device back from a half-open connection: the broker still holds the old
        // one and closes it (MQTT 5: DISCONNECT 0x8E first).
        if let Owner::Dev(_) = owner
            && let Some(old) = self
                .conns
                .iter()
                .position(|c| c.owner == owner && c.st == St::Dead)
        {
            let old = old as u32;
            if self.conns[old as usize].level >= 5 {
                let d = Packet::Disconnect(ReasonOnly {
                    reason_code: Some(SESSION_TAKEN_OVER),
                    properties: Properties::default(),
                });
                self.push(old, BROKER, &d, None, None);
                self.conns[old as usize].link.clocked[BROKER] = false;
                self.flush(old, BROKER, now)?;
            }
            let o = &mut self.conns[old as usize];
            o.link.control(
                &mut self.out,
                now + 20 * US,
                BROKER,
                crate::synth::frame::FIN | crate::synth::frame::ACK,
            )?;
            o.st = St::Closed;
            self.s.takeovers += 1;
        }
        let persistent = match owner {
            Owner::Dev(d) => self.plant.devices[d as usize].persistent,
            Owner::Cons(k) => self.plant.consumers[k as usize].persistent,
        };
        let cn = &mut self.conns[conn as usize];
        cn.accepted = true;
        let v5 = cn.level >= 5;
        // EMQX's CONNACK properties with its defaults.
        self.props.clear();
        if v5 {
            encode::properties(
                &[
                    Property::ReceiveMaximum(MAX_INFLIGHT),
                    Property::MaximumPacketSize(1_048_576),
                    Property::TopicAliasMaximum(65_535),
                    Property::RetainAvailable(1),
                    Property::WildcardSubscriptionAvailable(1),
                    Property::SubscriptionIdentifierAvailable(1),
                    Property::SharedSubscriptionAvailable(1),
                ],
                &mut self.props,
            );
        }
        let props = std::mem::take(&mut self.props);
        let p = Packet::ConnAck(ConnAck {
            session_present: persistent && cn.reconnect,
            code: 0,
            properties: Properties { raw: &props },
        });
        self.push(conn, BROKER, &p, Some(React::Up), None);
        self.props = props;
        self.flush(conn, BROKER, now)
    }

    fn suback(&mut self, conn: u32, pid: u16, now: u64) -> io::Result<()> {
        let owner = self.conns[conn as usize].owner;
        let mut codes = [0u8; 4];
        let mut n = 0;
        let mut wanted: Vec<(Vec<u8>, u8)> = Vec::new();
        match owner {
            Owner::Dev(_) => {
                codes[0] = 1;
                n = 1;
            }
            Owner::Cons(k) => {
                for (f, q) in self.plant.consumers[k as usize].filters.iter().take(4) {
                    codes[n] = *q;
                    n += 1;
                    wanted.push((f.clone(), *q));
                }
            }
        }
        let p = Packet::SubAck(SubAck {
            packet_id: pid,
            properties: Properties::default(),
            codes: &codes[..n],
        });
        self.push(conn, BROKER, &p, None, None);
        // Retained messages matching a new subscription follow its SUBACK, flagged
        // retained, at the lower of their QoS and the grant.
        let mut hits: Vec<(Vec<u8>, Vec<u8>, u8, bool)> = Vec::new();
        for (topic, r) in &self.retained {
            if let Some((_, g)) = wanted.iter().find(|(f, _)| topology::matches(f, topic)) {
                hits.push((topic.clone(), r.payload.clone(), r.qos.min(*g), r.json));
            }
        }
        for (topic, payload, qos, json) in hits {
            let msg = self.new_msg(Msg {
                topic,
                payload,
                qos,
                retain: true,
                json,
                refs: 1,
                origin: Origin::Retained,
            });
            self.s.retained_deliveries += 1;
            let cn = &mut self.conns[conn as usize];
            if qos > 0 && cn.inflight >= MAX_INFLIGHT {
                cn.queue.push_back((msg, qos, true));
            } else {
                self.send_copy(conn, msg, qos, true);
            }
        }
        self.flush(conn, BROKER, now)
    }

    /// Routes a message that reached the broker: retained store, then one delivery per
    /// matching subscriber, written one after another (a subscriber's copies in order).
    pub fn route(&mut self, msg: u32, now: u64) {
        let Some(Some(m)) = self.msgs.get(msg as usize) else {
            return;
        };
        let (qos, origin) = (m.qos, m.origin);
        if m.retain {
            let r = Retained {
                payload: m.payload.clone(),
                qos: m.qos,
                json: m.json,
            };
            self.retained.insert(m.topic.clone(), r);
        }
        let mut routes = std::mem::take(&mut self.routes);
        routes.clear();
        match origin {
            Origin::Metric(d, i) => routes
                .extend_from_slice(&self.plant.devices[d as usize].metrics[usize::from(i)].routes),
            Origin::Status(d) => {
                routes.extend_from_slice(&self.plant.devices[d as usize].status_routes)
            }
            Origin::Cmd(d) => {
                topology::consumer_routes(&self.plant.consumers, &m.topic, &mut routes);
                routes.push(Route {
                    sub: Sub::Dev(d),
                    granted: 1,
                });
            }
            Origin::Retained => {}
        }
        let mut base = now + self.rng.range(40 * US, 250 * US);
        if self.rng.chance(0.005) {
            // A scheduler or garbage-collection pause on the broker node.
            base += self.rng.range(MS, 5 * MS);
        }
        let step = self.rng.range(10 * US, 40 * US);
        let mut refs = 0;
        for (k, r) in routes.iter().enumerate() {
            let target = match r.sub {
                Sub::Cons(c) => self.cons_conn[c as usize],
                Sub::Dev(d) => self.devs[d as usize].conn,
            };
            let Some(c) = target.filter(|&c| {
                let cn = &self.conns[c as usize];
                cn.accepted && matches!(cn.st, St::Up | St::Dead)
            }) else {
                self.s.forwards_dropped += 1;
                continue;
            };
            let cn = &mut self.conns[c as usize];
            let t = (base + k as u64 * step).max(cn.fwd_at + 2 * US);
            cn.fwd_at = t;
            refs += 1;
            self.at(
                t,
                Ev::Forward {
                    msg,
                    conn: c,
                    qos: qos.min(r.granted),
                },
            );
        }
        self.routes = routes;
        if let Some(Some(m)) = self.msgs.get_mut(msg as usize) {
            m.refs += refs;
        }
        // The reference the PUBLISH held while waiting to be routed.
        self.release(msg);
    }

    pub fn forward(&mut self, msg: u32, conn: u32, qos: u8, now: u64) -> io::Result<()> {
        let cn = &mut self.conns[conn as usize];
        if !matches!(cn.st, St::Up | St::Dead) {
            self.release(msg);
            return Ok(());
        }
        if qos > 0 && cn.inflight >= MAX_INFLIGHT {
            cn.queue.push_back((msg, qos, false));
            return Ok(());
        }
        self.send_copy(conn, msg, qos, false);
        self.flush(conn, BROKER, now)
    }

    /// Encodes one delivery of `msg` toward the client of `conn` (not flushed).
    fn send_copy(&mut self, conn: u32, msg: u32, qos: u8, retain: bool) {
        // Taken out of its slot while encoding so the packet can borrow it.
        let Some(m) = self.msgs.get_mut(msg as usize).and_then(Option::take) else {
            return;
        };
        let cn = &mut self.conns[conn as usize];
        let pid = (qos > 0).then(|| cn.next_pid(BROKER));
        if qos > 0 {
            cn.inflight += 1;
        }
        let sub_id = match cn.owner {
            Owner::Cons(k) => self.plant.consumers[k as usize].sub_id,
            Owner::Dev(_) => None,
        };
        self.props.clear();
        if cn.level >= 5 {
            let mut list = [Property::PayloadFormatIndicator(0); 3];
            let mut n = 0;
            if m.json {
                list[n] = Property::PayloadFormatIndicator(1);
                list[n + 1] = Property::ContentType(MqttStr(b"application/json"));
                n += 2;
            }
            if let Some(id) = sub_id {
                list[n] = Property::SubscriptionIdentifier(id);
                n += 1;
            }
            encode::properties(&list[..n], &mut self.props);
        }
        let props = std::mem::take(&mut self.props);
        let p = Packet::Publish(Publish {
            dup: false,
            qos,
            retain,
            topic: MqttStr(&m.topic),
            packet_id: pid,
            properties: Properties { raw: &props },
            payload: &m.payload,
        });
        let then = pid.map(|pid| React::Deliver { qos, pid });
        self.push(conn, BROKER, &p, then, Some(&m.topic));
        self.props = props;
        self.s.forwarded += 1;
        self.msgs[msg as usize] = Some(m);
        self.release(msg);
    }

    /// The broker publishes a device's will (retained "offline" on its status topic).
    pub fn publish_will(&mut self, d: u32, now: u64) {
        let dev = &self.plant.devices[d as usize];
        let msg = self.new_msg(Msg {
            topic: dev.status_topic.clone(),
            payload: payload::OFFLINE.to_vec(),
            qos: 1,
            retain: true,
            json: false,
            refs: 1,
            origin: Origin::Status(d),
        });
        self.s.wills += 1;
        self.route(msg, now);
    }
}

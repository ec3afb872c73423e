//! What the clients do: CONNECT (with will, credentials, MQTT 5 session properties),
//! subscribe and announce themselves once the session is up, publish telemetry on
//! their timers, keep the connection alive, and (SCADA) send the odd set-point command.

use std::io::{self, Write as _};

use super::conn::{Ev, Owner, React, St};
use super::engine::{MS, Msg, NS, Origin, Sim};
use super::link::CLIENT;
use super::payload;
use super::topology::Role;
use crate::mqtt::{
    Connect, MqttStr, Packet, Properties, Property, Publish, Subscribe, Will, encode,
};

impl<W: std::io::Write> Sim<'_, W> {
    pub fn send_connect(&mut self, c: u32, now: u64) -> io::Result<()> {
        let cn = &self.conns[c as usize];
        let (owner, v5) = (cn.owner, cn.level >= 5);
        let mut will_props = Vec::new();
        let (id, keep_alive, persistent, will_delay) = match owner {
            Owner::Dev(d) => {
                let dev = &self.plant.devices[d as usize];
                (
                    dev.id.clone(),
                    dev.keepalive_s,
                    dev.persistent,
                    Some(dev.will_delay_s),
                )
            }
            Owner::Cons(k) => {
                let cons = &self.plant.consumers[k as usize];
                (cons.id.clone(), cons.keepalive_s, cons.persistent, None)
            }
        };
        self.props.clear();
        if v5 {
            let mut list = [Property::PayloadFormatIndicator(0); 2];
            let mut n = 0;
            if persistent {
                list[n] = Property::SessionExpiryInterval(3600);
                n += 1;
            }
            list[n] = Property::ReceiveMaximum(if will_delay.is_some() { 16 } else { 64 });
            n += 1;
            encode::properties(&list[..n], &mut self.props);
            if let Some(delay) = will_delay.filter(|&s| s > 0) {
                encode::properties(&[Property::WillDelayInterval(delay)], &mut will_props);
            }
        }
        let status = match owner {
            Owner::Dev(d) => self.plant.devices[d as usize].status_topic.clone(),
            Owner::Cons(_) => Vec::new(),
        };
        let props = std::mem::take(&mut self.props);
        let user = match owner {
            Owner::Dev(_) => id.clone(),
            Owner::Cons(_) => format!("svc-{id}"),
        };
        let p = Packet::Connect(Connect {
            protocol_name: MqttStr(b"MQTT"),
            protocol_level: if v5 { 5 } else { 4 },
            flags: 0,
            clean_start: !persistent,
            keep_alive,
            properties: Properties { raw: &props },
            client_id: MqttStr(id.as_bytes()),
            will: will_delay.map(|_| Will {
                properties: Properties { raw: &will_props },
                topic: MqttStr(&status),
                payload: payload::OFFLINE,
                qos: 1,
                retain: true,
            }),
            username: Some(MqttStr(user.as_bytes())),
            password: Some(b"k8s-sealed-secret-token".as_slice()),
        });
        self.push(c, CLIENT, &p, Some(React::ConnAck), None);
        self.props = props;
        self.flush(c, CLIENT, now)
    }

    /// CONNACK arrived: subscribe, and a device announces itself (retained birth).
    pub fn session_up(&mut self, c: u32, now: u64) -> io::Result<()> {
        let cn = &mut self.conns[c as usize];
        cn.st = St::Up;
        let owner = cn.owner;
        let v5 = cn.level >= 5;
        let (filters, sub_id, keep_alive) = match owner {
            Owner::Dev(d) => {
                let dev = &self.plant.devices[d as usize];
                cn.aliases = vec![0; dev.metrics.len()];
                cn.next_alias = 1;
                (vec![(dev.cmd_filter.clone(), 1u8)], None, dev.keepalive_s)
            }
            Owner::Cons(k) => {
                let cons = &self.plant.consumers[k as usize];
                (cons.filters.clone(), cons.sub_id, cons.keepalive_s)
            }
        };
        let entries: Vec<(&[u8], u8)> = filters.iter().map(|(f, q)| (f.as_slice(), *q)).collect();
        self.filters.clear();
        encode::subscribe_filters(&entries, &mut self.filters);
        self.props.clear();
        if let (true, Some(id)) = (v5, sub_id) {
            encode::properties(&[Property::SubscriptionIdentifier(id)], &mut self.props);
        }
        let (props, list) = (
            std::mem::take(&mut self.props),
            std::mem::take(&mut self.filters),
        );
        let pid = self.conns[c as usize].next_pid(CLIENT);
        let p = Packet::Subscribe(Subscribe {
            packet_id: pid,
            properties: Properties { raw: &props },
            filters_raw: &list,
        });
        self.push(c, CLIENT, &p, Some(React::SubAck { pid }), None);
        (self.props, self.filters) = (props, list);
        if let Owner::Dev(d) = owner {
            payload::online(now / MS, &mut self.payload);
            let msg = self.new_msg(Msg {
                topic: self.plant.devices[d as usize].status_topic.clone(),
                payload: self.payload.clone(),
                qos: 1,
                retain: true,
                json: false,
                refs: 1,
                origin: Origin::Status(d),
            });
            self.publish_msg(c, msg, None)?;
        }
        let started = match owner {
            Owner::Dev(d) => &mut self.devs[d as usize].ka_started,
            Owner::Cons(k) => &mut self.cons_ka_started[k as usize],
        };
        if !*started {
            *started = true;
            self.at_before_end(now + u64::from(keep_alive) * NS, Ev::KeepAlive(owner));
        }
        self.flush(c, CLIENT, now)
    }

    /// Encodes the client's PUBLISH of `msg` (not flushed); `alias` is the MQTT 5
    /// topic alias and whether the topic itself goes on the wire with it.
    fn publish_msg(&mut self, c: u32, msg: u32, alias: Option<(u16, bool)>) -> io::Result<()> {
        let Some(m) = self.msgs.get_mut(msg as usize).and_then(Option::take) else {
            return Ok(());
        };
        let cn = &mut self.conns[c as usize];
        let pid = (m.qos > 0).then(|| cn.next_pid(CLIENT));
        let v5 = cn.level >= 5;
        self.props.clear();
        if v5 {
            let mut list = [Property::PayloadFormatIndicator(0); 3];
            let mut n = 0;
            if let Some((a, _)) = alias {
                list[n] = Property::TopicAlias(a);
                n += 1;
            }
            if m.json {
                list[n] = Property::PayloadFormatIndicator(1);
                list[n + 1] = Property::ContentType(MqttStr(b"application/json"));
                n += 2;
            }
            encode::properties(&list[..n], &mut self.props);
        }
        let on_wire = alias.is_none_or(|(_, with_topic)| with_topic);
        let props = std::mem::take(&mut self.props);
        let p = Packet::Publish(Publish {
            dup: false,
            qos: m.qos,
            retain: m.retain,
            topic: MqttStr(if on_wire { &m.topic } else { &[] }),
            packet_id: pid,
            properties: Properties { raw: &props },
            payload: &m.payload,
        });
        let then = React::PubIn {
            msg,
            qos: m.qos,
            pid: pid.unwrap_or(0),
        };
        self.push(c, CLIENT, &p, Some(then), Some(&m.topic));
        self.props = props;
        self.msgs[msg as usize] = Some(m);
        Ok(())
    }

    /// Cycle `k` of a device's metric group: sample and publish each metric back to
    /// back (the stack coalesces them), then schedule the next cycle.
    pub fn tick(&mut self, d: u32, g: usize, k: u32, now: u64) -> io::Result<()> {
        let next = self.tick_time(d, g, k + 1);
        self.at_before_end(
            next,
            Ev::Tick {
                dev: d,
                group: g as u8,
                k: k + 1,
            },
        );
        let Some(c) = self.devs[d as usize].conn else {
            return Ok(());
        };
        if self.conns[c as usize].st != St::Up {
            // Disconnected: this cycle's samples are lost, as on most field devices.
            self.s.samples_lost += self.plant.devices[d as usize].groups[g].metrics.len() as u64;
            return Ok(());
        }
        let n = self.plant.devices[d as usize].groups[g].metrics.len();
        for j in 0..n {
            let dev = &self.plant.devices[d as usize];
            let m = dev.groups[g].metrics[j];
            let metric = &dev.metrics[m];
            let who = dev.verbose.then_some(dev.id.as_str());
            self.devs[d as usize].signals[m].sample(
                metric.shape,
                metric.unit,
                now / MS,
                who,
                &mut self.rng,
                &mut self.payload,
            );
            let json = dev.json_props && dev.level >= 5;
            let (qos, retain, aliases) = (metric.qos, metric.retain, dev.aliases);
            let topic = metric.topic.clone();
            let msg = self.new_msg(Msg {
                topic,
                payload: self.payload.clone(),
                qos,
                retain,
                json,
                refs: 1,
                origin: Origin::Metric(d, m as u16),
            });
            let alias = if aliases {
                let cn = &mut self.conns[c as usize];
                match cn.aliases.get(m).copied() {
                    Some(0) => {
                        let a = cn.next_alias;
                        cn.next_alias += 1;
                        if let Some(slot) = cn.aliases.get_mut(m) {
                            *slot = a;
                        }
                        Some((a, true))
                    }
                    Some(a) => Some((a, false)),
                    None => None,
                }
            } else {
                None
            };
            self.publish_msg(c, msg, alias)?;
            self.s.device_publishes += 1;
        }
        self.flush(c, CLIENT, now)
    }

    /// Client keepalive as MQTT client libraries do it: PINGREQ when nothing was sent,
    /// or nothing received, for a whole keepalive period.
    pub fn keepalive(&mut self, owner: Owner, now: u64) -> io::Result<()> {
        let (conn, ka_s) = match owner {
            Owner::Dev(d) => (
                self.devs[d as usize].conn,
                self.plant.devices[d as usize].keepalive_s,
            ),
            Owner::Cons(k) => (
                self.cons_conn[k as usize],
                self.plant.consumers[k as usize].keepalive_s,
            ),
        };
        let ka = u64::from(ka_s) * NS;
        let mut next = now + ka;
        if let Some(c) = conn
            && self.conns[c as usize].st == St::Up
        {
            let cn = &self.conns[c as usize];
            let due = cn.last_out.min(cn.last_in) + ka;
            if now >= due {
                self.push(c, CLIENT, &Packet::PingReq, Some(React::Ping), None);
                self.flush(c, CLIENT, now)?;
            } else {
                next = due;
            }
        }
        // The client's loop notices within a fraction of a second.
        next += self.rng.range(MS, 250 * MS);
        self.at_before_end(next, Ev::KeepAlive(owner));
        Ok(())
    }

    /// A SCADA server changes a set point on one device of its area (QoS 1).
    pub fn command(&mut self, k: u32, now: u64) -> io::Result<()> {
        let next = now + self.rng.range(60, 240) * NS;
        self.at_before_end(next, Ev::Command(k));
        let cons = &self.plant.consumers[k as usize];
        let Role::Scada { site, area } = cons.role else {
            return Ok(());
        };
        let Some(c) = self.cons_conn[k as usize] else {
            return Ok(());
        };
        if self.conns[c as usize].st != St::Up {
            return Ok(());
        }
        let area_devs: Vec<u32> = (0..self.plant.devices.len() as u32)
            .filter(|&d| {
                let dev = &self.plant.devices[d as usize];
                dev.site == site && dev.area == area
            })
            .collect();
        if area_devs.is_empty() {
            return Ok(());
        }
        let d = area_devs[self.rng.below(area_devs.len() as u64) as usize];
        let mut topic = self.plant.devices[d as usize].prefix.clone().into_bytes();
        topic.extend_from_slice(b"/cmd/setpoint");
        self.payload.clear();
        let sp = 40.0 + self.rng.below(400) as f64 / 10.0;
        let _ = write!(
            self.payload,
            "{{\"setpoint\":{sp:.1},\"by\":\"{}\",\"ts\":{}}}",
            cons.id,
            now / MS
        );
        let msg = self.new_msg(Msg {
            topic,
            payload: self.payload.clone(),
            qos: 1,
            retain: false,
            json: false,
            refs: 1,
            origin: Origin::Cmd(d),
        });
        self.publish_msg(c, msg, None)?;
        self.s.commands += 1;
        self.flush(c, CLIENT, now)
    }
}

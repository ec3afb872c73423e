//! Connection and client lifecycle: first packet, CONNECT, CONNACK, DISCONNECT, close.

use crate::dissect::MqttRecord;
use crate::mqtt::{ConnAck, Connect, Direction, ReasonOnly};
use crate::observe::event::EventKind;

use super::client::{Client, EndKind};
use super::conn::{Conn, MAX_ID_LEN, clip};
use super::events::{connack_refused, event, is_auth_failure};
use super::latency::{Extra, PendKey, Pending, Stage};
use super::{LatencySample, Tracker, TrackerOutput, addr_key, id_key};
use crate::observe::types::Exchange;

const TOUCH_EVERY_NS: u64 = 1_000_000_000;

/// MQTT 5 reason code "Session taken over".
const SESSION_TAKEN_OVER: u8 = 0x8E;

impl Tracker {
    /// Slot of the record's connection, created on its first packet; marks it recently
    /// used. When the table is full the least recently active connection goes.
    pub(super) fn conn_slot(&mut self, rec: &MqttRecord<'_>) -> u32 {
        let id = rec.flow.id;
        if let Some(i) = self.conns.find(&id) {
            // LRU order to the second is enough to pick a victim, and relinking on every
            // packet would write to three scattered list nodes.
            if let Some(c) = self.conns.at_mut(i)
                && rec.ts_ns.saturating_sub(c.touched_ns) >= TOUCH_EVERY_NS
            {
                c.touched_ns = rec.ts_ns;
                self.conns.touch(i);
            }
            return i;
        }
        self.n.conns_opened += 1;
        let c = Conn::new(
            rec.flow.client,
            rec.flow.from_start,
            addr_key(rec.flow.client),
            rec.ts_ns,
        );
        let (i, evicted) = self.conns.insert(id, c);
        if let Some((old_id, old)) = evicted {
            self.n.conns_evicted += 1;
            self.finish_conn(old_id, old, rec.ts_ns, EndKind::TrackerEvicted);
        }
        i
    }

    /// A connection is over: fold it into its client's statistics.
    pub(super) fn finish_conn(&mut self, flow: u64, c: Conn, ts_ns: u64, tcp_end: EndKind) {
        self.n.conns_closed += 1;
        self.note_closed(flow);
        if self.last_key.0 == flow {
            self.last_key = (u64::MAX, 0);
        }
        let Some(id) = c.client_id.as_deref() else {
            return;
        };
        let Some(cl) = self.clients.get_mut(id) else {
            return;
        };
        let end = c.end.unwrap_or(tcp_end);
        if let Some(slot) = cl.disconnects.get_mut(end as usize) {
            *slot = slot.saturating_add(1);
        }
        if let Some(t0) = c.connected_at_ns {
            let d = ts_ns.saturating_sub(t0);
            cl.session_ns_sum = cl.session_ns_sum.saturating_add(d);
            cl.session_count += 1;
            cl.session_ns_max = cl.session_ns_max.max(d);
        }
        cl.msgs_in += c.msgs_in;
        cl.bytes_in += c.bytes_in;
        cl.msgs_out += c.msgs_out;
        cl.bytes_out += c.bytes_out;
        if cl.open_flow == Some(flow) {
            cl.open_flow = None;
            cl.subs_held = c.subs.count();
        }
        cl.last_seen_ns = cl.last_seen_ns.max(ts_ns);
    }

    pub(super) fn on_connect(
        &mut self,
        slot: u32,
        rec: &MqttRecord<'_>,
        c: &Connect<'_>,
        out: &mut TrackerOutput<'_>,
    ) {
        let flow = rec.flow.id;
        let Some(conn) = self.conns.at_mut(slot) else {
            return;
        };
        if conn.connected_at_ns.is_some() {
            // MQTT-3.1.0-2: a second CONNECT is a protocol violation. The first one's
            // identity stays.
            self.n.second_connects += 1;
            let mut e = event(rec, Some(conn), EventKind::ProtocolViolation);
            e.detail = Some("second_connect");
            out.events.push(e);
            return;
        }
        self.n.connects += 1;
        conn.connected_at_ns = Some(rec.ts_ns);
        conn.level = c.protocol_level & 0x7f;
        conn.keep_alive = c.keep_alive;
        conn.clean_start = c.clean_start;
        conn.username = c.username.map(|u| clip(u.0, MAX_ID_LEN));
        conn.will_topic = c.will.map(|w| clip(w.topic.0, MAX_ID_LEN));
        self.lat.start(
            PendKey {
                flow,
                stage: Stage::Connect,
                dir: Direction::C2S,
                packet_id: 0,
            },
            Pending {
                ts_ns: rec.ts_ns,
                publish_ts_ns: None,
                group: None,
                extra: Extra::None,
            },
            false,
        );
        // An empty client id asks the broker to assign one (MQTT 5) or uses a
        // throw-away session: it names no client, so the address keys it.
        let raw = c.client_id.0;
        if raw.is_empty() {
            self.n.connects_without_id += 1;
            return;
        }
        let id: Box<[u8]> = raw.get(..MAX_ID_LEN).unwrap_or(raw).into();
        conn.key = id_key(&id);
        conn.client_id = Some(id.clone());
        self.last_key = (flow, conn.key);
        let (username, will, addr) = (
            conn.username.clone(),
            conn.will_topic.clone(),
            conn.client_addr,
        );
        let (level, keep_alive, clean_start) = (conn.level, conn.keep_alive, conn.clean_start);

        // Takeover: the id's previous connection is still open, from another address.
        let prev = match self.clients.find(&id) {
            Some(i) => {
                self.clients.touch(i);
                self.clients.at(i).and_then(|cl| cl.open_flow)
            }
            None => None,
        };
        if let Some(pf) = prev.filter(|&pf| pf != flow)
            && let Some(old) = self.conns.get_mut(&pf)
            && old.client_addr != addr
        {
            let same_ip = old.client_addr.ip() == addr.ip();
            old.end.get_or_insert(EndKind::TakenOver);
            self.n.takeovers += 1;
            if let Some(cl) = self.clients.get_mut(&id) {
                cl.takeovers += 1;
            }
            let mut e = event(rec, self.conns.at(slot), EventKind::ClientTakeover);
            e.detail = Some(if same_ip { "same_ip" } else { "other_ip" });
            out.events.push(e);
        }

        if self.clients.find(&id).is_none() {
            let (_, evicted) = self.clients.insert(id.clone(), Client::new(rec.ts_ns));
            if evicted.is_some() {
                self.n.clients_evicted += 1;
            }
        }
        if let Some(cl) = self.clients.get_mut(&id) {
            cl.connects += 1;
            cl.connect_times.record(rec.ts_ns);
            cl.keep_alive = keep_alive;
            cl.level = level;
            cl.clean_start = clean_start;
            cl.will_topic = will;
            cl.username = username;
            cl.last_addr = Some(addr);
            cl.open_flow = Some(flow);
            cl.last_seen_ns = rec.ts_ns;
        }
    }

    pub(super) fn on_connack(
        &mut self,
        slot: u32,
        rec: &MqttRecord<'_>,
        a: &ConnAck<'_>,
        out: &mut TrackerOutput<'_>,
    ) {
        let key = PendKey {
            flow: rec.flow.id,
            stage: Stage::Connect,
            dir: Direction::C2S,
            packet_id: 0,
        };
        if let Some(p) = self.lat.answer(key)
            && let Some(s) = self.lat.record(Exchange::Connect, p.ts_ns, rec.ts_ns)
        {
            out.samples.push(LatencySample {
                exchange: Exchange::Connect,
                seconds: s,
                group: None,
            });
        }
        let Some(conn) = self.conns.at_mut(slot) else {
            return;
        };
        conn.connack = Some(a.code);
        let level = if conn.connected_at_ns.is_some() {
            conn.level
        } else {
            rec.level
        };
        if let Some(cl) = conn
            .client_id
            .as_deref()
            .and_then(|id| self.clients.get_mut(id))
        {
            cl.auth = Some(a.code);
        }
        if connack_refused(a.code, level) {
            self.n.connacks_refused += 1;
            let conn = self.conns.at(slot);
            let mut e = event(rec, conn, EventKind::ConnectRefused);
            e.code = Some(a.code);
            if is_auth_failure(a.code, level) {
                self.n.auth_failures += 1;
                let mut a = e.clone();
                a.kind = EventKind::AuthFailure;
                out.events.push(e);
                out.events.push(a);
            } else {
                out.events.push(e);
            }
        }
    }

    pub(super) fn on_disconnect(
        &mut self,
        slot: u32,
        rec: &MqttRecord<'_>,
        d: &ReasonOnly<'_>,
        out: &mut TrackerOutput<'_>,
    ) {
        let Some(conn) = self.conns.at_mut(slot) else {
            return;
        };
        let code = d.reason_code.unwrap_or(0);
        let end = match code {
            0 => EndKind::Normal,
            SESSION_TAKEN_OVER => EndKind::TakenOver,
            _ => EndKind::WithReason,
        };
        conn.end.get_or_insert(end);
        if code != 0 {
            conn.end_code = Some(code);
            if let Some(cl) = conn
                .client_id
                .as_deref()
                .and_then(|id| self.clients.get_mut(id))
            {
                cl.last_disconnect_code = Some(code);
            }
            let mut e = event(rec, self.conns.at(slot), EventKind::Disconnect);
            e.code = Some(code);
            e.detail = Some(match rec.dir {
                Direction::C2S => "from_client",
                Direction::S2C => "from_broker",
            });
            out.events.push(e);
        }
    }
}

//! State of one synthetic client connection (both TCP directions plus the MQTT
//! session as the generator needs it), and the actions and replies that drive it.

use super::content::METRICS;
use super::frame::FlowAddrs;
use super::rng::Rng;
use super::sched::Agenda;
use super::tcp::Side;
use std::collections::VecDeque;

/// Something a connection does at a scheduled time.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    Syn,
    SynAck,
    HandshakeAck,
    /// Client sends CONNECT.
    Connect,
    /// One unit of steady-state traffic (telemetry, delivery, ping, (un)subscribe).
    Activity,
    /// Client sends DISCONNECT once nothing is in flight.
    Disconnect,
    /// Continue sending buffered bytes of one direction (ACK-clocked).
    Flush {
        c2s: bool,
    },
    /// Pure ACK sent by one side.
    PureAck {
        by_c2s: bool,
    },
    /// One side reacts to everything of the peer's stream delivered up to `upto`.
    Respond {
        by_c2s: bool,
        upto: u64,
    },
    FinClient,
    FinServer,
    FinLast,
}

/// What a side owes once a given byte of the peer's stream has arrived.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    ConnAck,
    /// Client: CONNACK arrived, subscribe and start the session's traffic.
    SessionUp,
    SubAck {
        pid: u16,
        n: u8,
        codes: [u8; MAX_FILTERS],
    },
    UnsubAck {
        pid: u16,
        n: u8,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    PingResp,
}

/// Filters per SUBSCRIBE / UNSUBSCRIBE at most.
pub const MAX_FILTERS: usize = 4;
/// Subscriptions a connection holds at most (keeps per-connection state bounded).
pub const MAX_SUBS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Opening,
    Open,
    Closing,
}

pub struct Conn {
    pub addrs: FlowAddrs,
    pub mss: usize,
    pub level: u8,
    pub rng: Rng,
    pub client: Side,
    pub broker: Side,
    pub agenda: Agenda<Action>,
    /// Bumped whenever the slot's entry in the global clock is replaced.
    pub generation: u32,
    /// Replies the client owes, keyed by the end offset in the broker's stream.
    pub owed_by_client: VecDeque<(u64, Reply)>,
    /// Replies the broker owes, keyed by the end offset in the client's stream.
    pub owed_by_broker: VecDeque<(u64, Reply)>,
    pub rtt_ns: u64,
    /// Mean time between activities.
    pub think_ns: u64,
    pub phase: Phase,
    pub activities_left: u32,
    pub prefix: String,
    pub client_id: String,
    /// MQTT 5 client that sends an empty client id and gets one assigned in CONNACK.
    pub client_id_assigned: bool,
    pub pid_client: u16,
    pub pid_broker: u16,
    pub subs: Vec<Vec<u8>>,
    /// Topic alias maximum the broker granted the client (0 = client sends no aliases).
    pub alias_max_c2s: u16,
    /// Topic alias maximum the client announced (0 = broker sends no aliases).
    pub alias_max_s2c: u16,
    /// Alias per metric index, 0 = not assigned yet.
    pub aliases_c2s: [u16; METRICS.len()],
    pub aliases_s2c: [u16; METRICS.len()],
    pub next_alias_c2s: u16,
    pub next_alias_s2c: u16,
}

impl Conn {
    pub fn next_pid(&mut self, c2s: bool) -> u16 {
        let p = if c2s {
            &mut self.pid_client
        } else {
            &mut self.pid_broker
        };
        // Packet id 0 is not allowed (MQTT-2.2.1-3), so wrap from 65535 to 1.
        *p = if *p == u16::MAX { 1 } else { *p + 1 };
        *p
    }

    pub fn side(&mut self, c2s: bool) -> &mut Side {
        if c2s {
            &mut self.client
        } else {
            &mut self.broker
        }
    }

    /// The cumulative ACK a segment sent at `now` by the client (`by_c2s`) or the broker
    /// carries: everything of the peer's stream that has arrived by then.
    pub fn ack_now(&mut self, by_c2s: bool, now: u64) -> u32 {
        let (me, peer) = if by_c2s {
            (&mut self.client, &mut self.broker)
        } else {
            (&mut self.broker, &mut self.client)
        };
        while let Some(&(arrival, seq)) = peer.in_flight.front() {
            if arrival > now {
                break;
            }
            me.rcv_nxt = seq;
            peer.in_flight.pop_front();
        }
        me.rcv_nxt
    }

    /// The replies owed by the receiver of direction `c2s`.
    pub fn owed_by_receiver_of(&mut self, c2s: bool) -> &mut VecDeque<(u64, Reply)> {
        if c2s {
            &mut self.owed_by_broker
        } else {
            &mut self.owed_by_client
        }
    }

    /// Nothing encoded-but-unsent and no reply outstanding.
    pub fn quiet(&self) -> bool {
        self.client.unsent() == 0
            && self.broker.unsent() == 0
            && self.owed_by_client.is_empty()
            && self.owed_by_broker.is_empty()
    }
}

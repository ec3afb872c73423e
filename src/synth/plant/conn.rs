//! The MQTT side of one connection (state, packet ids, keepalive clocks, the broker's
//! in-flight window toward the client) and the scheduled events of the plant.

use std::collections::VecDeque;

use super::link::Link;

/// Who owns a connection: a device or a consumer, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Dev(u32),
    Cons(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum St {
    /// TCP handshake or CONNECT/CONNACK under way.
    Opening,
    Up,
    /// The client sent its FIN: neither side starts anything new.
    Closing,
    /// The client is gone without a word (half-open); the broker does not know yet.
    Dead,
    Closed,
}

/// What a receiver does once a packet has fully arrived.
#[derive(Clone, Copy, Debug)]
pub enum React {
    /// Broker: answer CONNECT.
    ConnAck,
    /// Client: CONNACK arrived, the session is up.
    Up,
    /// Broker: answer SUBSCRIBE (then send matching retained messages).
    SubAck { pid: u16 },
    /// Broker: a client's PUBLISH (message slot `msg`) to acknowledge and route.
    PubIn { msg: u32, qos: u8, pid: u16 },
    /// Client: a delivery to acknowledge.
    Deliver { qos: u8, pid: u16 },
    /// Receiver of PUBREC: send PUBREL.
    Rec { pid: u16 },
    /// Receiver of PUBREL: send PUBCOMP.
    Rel { pid: u16 },
    /// Broker: PUBACK/PUBCOMP of a delivery: one less in flight.
    Acked,
    /// Broker: answer PINGREQ.
    Ping,
}

/// Most unacknowledged QoS 1/2 deliveries per client (EMQX `max_inflight` default);
/// the rest wait in the session queue.
pub const MAX_INFLIGHT: u16 = 32;

pub struct Conn {
    pub link: Link<React>,
    pub owner: Owner,
    pub level: u8,
    pub st: St,
    /// Not the owner's first connection in the capture.
    pub reconnect: bool,
    /// The broker has accepted its CONNECT.
    pub accepted: bool,
    /// Last packet id used, per side.
    pub pid: [u16; 2],
    /// Client's keepalive clocks: last MQTT packet sent, last one received.
    pub last_out: u64,
    pub last_in: u64,
    /// Per actor: time of its last scheduled reaction (keeps replies in order).
    pub busy: [u64; 2],
    /// Time of the broker's last scheduled delivery here (keeps deliveries in order).
    pub fwd_at: u64,
    pub inflight: u16,
    /// Deliveries waiting for room in the in-flight window: (message, QoS, retain).
    pub queue: VecDeque<(u32, u8, bool)>,
    /// Topic alias per metric index (0: none yet) for devices that use aliases.
    pub aliases: Vec<u16>,
    pub next_alias: u16,
    /// Reactions scheduled and not yet run.
    pub pending: u32,
}

impl Conn {
    pub fn new(link: Link<React>, owner: Owner, level: u8, reconnect: bool, now: u64) -> Conn {
        Conn {
            link,
            owner,
            level,
            st: St::Opening,
            reconnect,
            accepted: false,
            pid: [0; 2],
            last_out: now,
            last_in: now,
            busy: [0; 2],
            fwd_at: 0,
            inflight: 0,
            queue: VecDeque::new(),
            aliases: Vec::new(),
            next_alias: 1,
            pending: 0,
        }
    }

    pub fn next_pid(&mut self, side: usize) -> u16 {
        let p = &mut self.pid[side];
        // Packet id 0 is not allowed (MQTT-2.2.1-3): wrap from 65535 to 1.
        *p = if *p == u16::MAX { 1 } else { *p + 1 };
        *p
    }

    /// May side `by` (0 client, 1 broker) still act on this connection?
    pub fn can_act(&self, by: usize) -> bool {
        match self.st {
            St::Opening | St::Up => true,
            St::Dead => by == super::link::BROKER,
            St::Closing | St::Closed => false,
        }
    }

    /// Nothing buffered, owed, scheduled or in flight: a close now loses nothing.
    pub fn quiet(&self) -> bool {
        self.link.idle()
            && self.pending == 0
            && self.inflight == 0
            && self.queue.is_empty()
            && !self.link.clocked.iter().any(|&c| c)
    }
}

/// A scheduled happening. Connections and messages are referred to by index.
#[derive(Clone, Copy, Debug)]
pub enum Ev {
    Syn(u32),
    SynAck(u32),
    HsAck(u32),
    Connect(u32),
    React {
        conn: u32,
        by: u8,
        r: React,
    },
    /// Next ACK-clocked burst of one side.
    Flush {
        conn: u32,
        side: u8,
    },
    /// Immediate ACK of a multi-segment burst.
    PureAck {
        conn: u32,
        by: u8,
    },
    /// Delayed ACK timer.
    DelAck {
        conn: u32,
        by: u8,
    },
    /// Device publishing cycle `k` of metric group `group`.
    Tick {
        dev: u32,
        group: u8,
        k: u32,
    },
    KeepAlive(Owner),
    /// The broker writes one copy of a message to a subscriber's connection.
    Forward {
        msg: u32,
        conn: u32,
        qos: u8,
    },
    /// A device's network blips: its connection goes.
    Drop(u32),
    FinBroker(u32),
    FinLast(u32),
    Reconnect(u32),
    /// A delayed will (MQTT 5 Will Delay Interval) falls due.
    WillFire {
        dev: u32,
        conn: u32,
    },
    /// A SCADA server sends a set-point command.
    Command(u32),
}

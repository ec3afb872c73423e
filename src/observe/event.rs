//! One event model for everything worth telling a person about: protocol and security
//! events seen on the wire now, EMQX rule-engine events and detector findings later. So
//! alerts, OTLP log records and Azure rows are each one mapping from `Event`.

use std::collections::VecDeque;
use std::net::SocketAddr;

use serde::Serialize;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// CONNACK refused the connection (MQTT 3 return code != 0, MQTT 5 reason >= 0x80).
    ConnectRefused,
    /// The refusal was about credentials or authorisation (3: codes 4, 5; 5: 0x86, 0x87,
    /// 0x8C). Reported in addition to `ConnectRefused`.
    AuthFailure,
    /// SUBACK refused a filter (3.1.1: 0x80; 5: any reason >= 0x80, e.g. 0x87 not authorised).
    SubscribeRefused,
    /// PUBACK/PUBREC with a reason >= 0x80 (e.g. 0x87 not authorised).
    PublishRefused,
    /// UNSUBACK with a reason >= 0x80.
    UnsubscribeRefused,
    /// DISCONNECT carrying a reason code other than 0x00 (MQTT 5), from either side.
    Disconnect,
    /// An MQTT 5 AUTH packet (enhanced authentication exchange).
    AuthExchange,
    /// A packet that could not be decoded.
    Malformed,
    /// A packet that decoded but breaks the protocol (`detail` says how).
    ProtocolViolation,
    /// A subscription to a filter that starts with `#` (everything).
    WildcardSubscribe,
    /// A subscription to `$SYS/...` (broker internals).
    SysSubscribe,
    /// A client id connected from a new address while its earlier connection was open.
    ClientTakeover,
    /// The broker's authorisation refused a publish or subscribe (EMQX
    /// `client_check_authz_complete` with `result = deny`). Seen inside TLS too.
    AclDenied,
    /// The broker dropped a message while routing it (EMQX `message_dropped`, e.g.
    /// `no_subscribers`).
    MessageDropped,
    /// The broker dropped a message on its way to one subscriber (EMQX `delivery_dropped`,
    /// e.g. `queue_full`).
    DeliveryDropped,
    /// mqscope's own broker connection failed (`detail` says how); repeated while it
    /// keeps failing, at most once per reconnect attempt.
    BrokerUnreachable,
}

/// Every kind, in declaration order (the index of `EventQueue::counts`).
pub const ALL_KINDS: [EventKind; 16] = [
    EventKind::ConnectRefused,
    EventKind::AuthFailure,
    EventKind::SubscribeRefused,
    EventKind::PublishRefused,
    EventKind::UnsubscribeRefused,
    EventKind::Disconnect,
    EventKind::AuthExchange,
    EventKind::Malformed,
    EventKind::ProtocolViolation,
    EventKind::WildcardSubscribe,
    EventKind::SysSubscribe,
    EventKind::ClientTakeover,
    EventKind::AclDenied,
    EventKind::MessageDropped,
    EventKind::DeliveryDropped,
    EventKind::BrokerUnreachable,
];

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ConnectRefused => "connect_refused",
            EventKind::AuthFailure => "auth_failure",
            EventKind::SubscribeRefused => "subscribe_refused",
            EventKind::PublishRefused => "publish_refused",
            EventKind::UnsubscribeRefused => "unsubscribe_refused",
            EventKind::Disconnect => "disconnect",
            EventKind::AuthExchange => "auth_exchange",
            EventKind::Malformed => "malformed",
            EventKind::ProtocolViolation => "protocol_violation",
            EventKind::WildcardSubscribe => "wildcard_subscribe",
            EventKind::SysSubscribe => "sys_subscribe",
            EventKind::ClientTakeover => "client_takeover",
            EventKind::AclDenied => "acl_denied",
            EventKind::MessageDropped => "message_dropped",
            EventKind::DeliveryDropped => "delivery_dropped",
            EventKind::BrokerUnreachable => "broker_unreachable",
        }
    }
}

/// Where an event was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Wire,
    EmqxEvent,
    Detector,
    /// mqscope's own broker connection (`input::broker`).
    BrokerInput,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Time of the packet that caused it (capture time in replay), ns since the epoch.
    pub ts_ns: u64,
    pub kind: EventKind,
    pub source: EventSource,
    /// Client and broker addresses, when known.
    pub client_addr: Option<SocketAddr>,
    pub broker_addr: Option<SocketAddr>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// Topic or topic filter concerned.
    pub topic: Option<String>,
    /// Return / reason code.
    pub code: Option<u8>,
    /// Short machine-readable detail (e.g. the violation kind or decode error kind).
    pub detail: Option<&'static str>,
    /// 1-based frame number that carried the packet, in replay.
    pub frame: Option<u64>,
}

impl Event {
    pub fn new(ts_ns: u64, kind: EventKind) -> Event {
        Event {
            ts_ns,
            kind,
            source: EventSource::Wire,
            client_addr: None,
            broker_addr: None,
            client_id: None,
            username: None,
            topic: None,
            code: None,
            detail: None,
            frame: None,
        }
    }
}

/// A bounded queue of events waiting for consumers (alerting, exporters, reports).
/// When full, new events are dropped and counted: analysis never blocks on consumers.
#[derive(Debug)]
pub struct EventQueue {
    q: VecDeque<Event>,
    cap: usize,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Events ever pushed, by kind (indexed in `EventKind` declaration order).
    pub counts: [u64; ALL_KINDS.len()],
}

impl EventQueue {
    pub fn new(cap: usize) -> EventQueue {
        EventQueue {
            q: VecDeque::new(),
            cap,
            dropped: 0,
            counts: [0; ALL_KINDS.len()],
        }
    }

    pub fn push(&mut self, e: Event) {
        self.counts[e.kind as usize] += 1;
        if self.q.len() >= self.cap {
            self.dropped += 1;
            return;
        }
        self.q.push_back(e);
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.q.drain(..)
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Events ever pushed of this kind (queued, taken or dropped).
    pub fn count(&self, kind: EventKind) -> u64 {
        self.counts[kind as usize]
    }
}

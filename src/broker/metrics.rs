//! The normalised broker metrics: one shape for Mosquitto's `$SYS/broker/...` and EMQX's
//! `$SYS/brokers/<node>/...`, so dashboards and detectors read one set of names. A field
//! a broker kind does not publish stays `None` (absent is not zero).
//!
//! Mapping notes (where the two brokers' words differ):
//! - `packets_received`/`packets_sent`: MQTT packets of every type. Mosquitto calls these
//!   `messages/received|sent`; EMQX `metrics/packets/received|sent`.
//! - `publish_received`/`publish_sent`: PUBLISH messages. Mosquitto
//!   `publish/messages/received|sent`; EMQX `metrics/messages/received|sent`.
//! - `publish_dropped`: Mosquitto `publish/messages/dropped` (queue/inflight limits);
//!   EMQX `metrics/messages/dropped` (every drop, `no_subscribers` included). Not the same
//!   thing: compare rates within one broker kind only.
//! - `clients_connected`: Mosquitto `clients/connected`; EMQX `stats/connections/count`,
//!   overridden by `stats/live_connections/count` when the node publishes it (EMQX 5
//!   counts sessions without a live socket in `connections`).
//! - `clients_total`: Mosquitto `clients/total` (connected + persistent sessions); EMQX
//!   `stats/sessions/count`.

use serde::Serialize;

/// Which broker published the `$SYS` tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    #[default]
    Unknown,
    Mosquitto,
    Emqx,
}

/// Load averages over 1, 5 and 15 minutes, in units per minute (Mosquitto's `load/...`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LoadAvg {
    pub m1: Option<f64>,
    pub m5: Option<f64>,
    pub m15: Option<f64>,
}

/// Mosquitto's `load/...` families. EMQX publishes none of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Loads {
    pub messages_received: LoadAvg,
    pub messages_sent: LoadAvg,
    pub publish_received: LoadAvg,
    pub publish_sent: LoadAvg,
    pub publish_dropped: LoadAvg,
    pub bytes_received: LoadAvg,
    pub bytes_sent: LoadAvg,
    pub connections: LoadAvg,
    pub sockets: LoadAvg,
}

/// One broker node's metrics as last published. Totals are cumulative since the broker
/// started: when the broker restarts (uptime goes backwards) `SysState` clears every
/// value and bumps `generation`, so a consumer computing rates from deltas never mixes
/// two broker lifetimes (treat a generation change like a counter reset).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BrokerMetrics {
    pub kind: BrokerKind,
    /// EMQX node name (`emqx@10.0.0.1`); `None` for Mosquitto (one node).
    pub node: Option<String>,
    /// Version number only (`2.0.11`, `5.8.0`), without the broker's name.
    pub version: Option<String>,
    /// EMQX `sysdescr`.
    pub sysdescr: Option<String>,
    /// Broker lifetime counter, starting at 0 and bumped on each detected restart.
    pub generation: u32,
    pub uptime_s: Option<u64>,

    pub clients_connected: Option<u64>,
    pub clients_total: Option<u64>,
    pub clients_disconnected: Option<u64>,
    pub clients_maximum: Option<u64>,
    pub clients_expired: Option<u64>,

    pub packets_received: Option<u64>,
    pub packets_sent: Option<u64>,
    pub publish_received: Option<u64>,
    pub publish_sent: Option<u64>,
    pub publish_dropped: Option<u64>,
    pub publish_bytes_received: Option<u64>,
    pub publish_bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    pub bytes_sent: Option<u64>,

    pub retained_messages: Option<u64>,
    pub subscriptions: Option<u64>,
    pub shared_subscriptions: Option<u64>,
    /// Mosquitto `store/messages/count` (messages held, retained included).
    pub store_messages: Option<u64>,
    pub store_bytes: Option<u64>,
    /// Mosquitto only, and only when built with memory tracking.
    pub heap_current: Option<u64>,
    pub heap_maximum: Option<u64>,

    pub load: Loads,

    /// EMQX: `metrics/messages/dropped/no_subscribers`.
    pub dropped_no_subscribers: Option<u64>,
    /// EMQX: `metrics/packets/publish/auth_error` (PUBLISH refused by authorisation).
    pub publish_auth_denied: Option<u64>,
    /// EMQX: `metrics/packets/subscribe/auth_error`.
    pub subscribe_auth_denied: Option<u64>,
    /// EMQX: `metrics/authorization/deny`.
    pub authz_denied: Option<u64>,
    /// EMQX: `metrics/authentication/failure`.
    pub authn_failed: Option<u64>,
    /// EMQX `clients/<id>/connected` and `.../disconnected` notices seen (counted, not
    /// kept: client ids are unbounded).
    pub client_connected_notices: u64,
    pub client_disconnected_notices: u64,
    /// EMQX alarms: activations and deactivations seen, and the number active by our count.
    pub alarms_activated: u64,
    pub alarms_deactivated: u64,
    pub alarms_active: u64,
    /// Name of the most recent alarm activated (bounded length).
    pub last_alarm: Option<String>,
}

impl BrokerMetrics {
    /// Clears every published value (on a broker restart), keeping identity (kind, node,
    /// version) and bumping the generation.
    pub(crate) fn reset_for_restart(&mut self) {
        let keep = BrokerMetrics {
            kind: self.kind,
            node: self.node.take(),
            version: self.version.take(),
            sysdescr: self.sysdescr.take(),
            generation: self.generation.wrapping_add(1),
            ..BrokerMetrics::default()
        };
        *self = keep;
    }
}

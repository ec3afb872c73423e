//! Observation core: per-topic and per-client statistics, passive latency and wire
//! events, from decoded MQTT packets. Pure: no I/O, no clock. Every input carries its
//! time (packet timestamps in replay, wall clock live), so replay is deterministic.
//!
//! | module | job |
//! |---|---|
//! | `config` | `ObserveConfig`: caps and knobs |
//! | `types` | `GroupId`, `GroupKind`, `Exchange` |
//! | `event` | `Event`, `EventKind`, bounded `EventQueue` |
//! | `sketch` | mergeable quantile sketch (payload sizes, latencies) |
//! | `window` | time-bucketed counters with 1/5/15 minute views |
//! | `topics` | topic grouping (exact → template → `__other__`) with caps, and per-group statistics |
//! | `tracker` | connection and client state, request/response latency, broker fan-out, wire events |
//! | `prefetch` | a cache prefetch hint |
//! | `observer` | `Observer`: feeds each record to `topics` and `tracker`, owns the event queue |

pub mod config;
pub mod event;
pub mod observer;
mod prefetch;
pub mod sketch;
pub mod topics;
pub mod tracker;
pub mod types;
pub mod window;

pub use config::ObserveConfig;
pub use event::{Event, EventKind, EventQueue, EventSource};
pub use observer::{Observer, ObserverSnapshot};
pub use types::{Exchange, GroupId, GroupKind};

//! Alerts: an Alertmanager-like model and its delivery to Alertmanager, webhooks
//! (Alertmanager webhook v4), Slack, Teams Workflows and PagerDuty Events v2.
//!
//! | module | job |
//! |---|---|
//! | `time` | `Timestamp` (Unix ms) and its RFC 3339 form |
//! | `model` | `Alert`, `AlertState`, `fingerprint` (Alertmanager-compatible) |
//! | `book` | `AlertBook`: detectors' level signal → `Transition::{Fired, Resolved}` |
//! | `payload` | request bodies per receiver kind (pure) |
//! | `secret` | `Secret`: URLs / keys that never reach logs |
//! | `client` | minimal HTTP/1.1 POST over tokio, `http://` and `https://` (rustls) |
//! | `spool` | bounded on-disk JSON-lines queue per receiver |
//! | `config` | `[alerts]`: receivers, secrets from files or the environment |
//! | `from_hits` | `HitAlerts`: rule / anomaly hit lists → fired / resolved edges |
//! | `deliver` | `Receiver`: queue, dedup, repeat, retries with backoff, spool, ledger |
//!
//! A detector owns an `AlertBook`, calls `set(active, labels, annotations, now)` and
//! hands any returned `Transition`'s alert to each `Receiver::notify`.

pub mod book;
pub mod client;
pub mod config;
pub mod deliver;
pub mod from_hits;
pub mod model;
pub mod payload;
pub mod secret;
pub mod spool;
pub mod time;

pub use book::{AlertBook, Transition};
pub use config::{AlertsConfig, ReceiverSpec, ReceiverType};
pub use deliver::{Receiver, ReceiverConfig, ReceiverKind, ReceiverStats};
pub use from_hits::HitAlerts;
pub use model::{Alert, AlertState, Fingerprint, LabelSet, fingerprint};
pub use secret::Secret;
pub use time::Timestamp;

#[cfg(test)]
mod tests;

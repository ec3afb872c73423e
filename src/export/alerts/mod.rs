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
//! | `deliver` | `Receiver`: queue, dedup, repeat, retries with backoff, spool, ledger |
//!
//! A detector owns an `AlertBook`, calls `set(active, labels, annotations, now)` and
//! hands any returned `Transition`'s alert to each `Receiver::notify`.

pub mod book;
pub mod client;
pub mod deliver;
pub mod model;
pub mod payload;
pub mod secret;
pub mod spool;
pub mod time;

pub use book::{AlertBook, Transition};
pub use deliver::{Receiver, ReceiverConfig, ReceiverKind, ReceiverStats};
pub use model::{Alert, AlertState, Fingerprint, LabelSet, fingerprint};
pub use secret::Secret;
pub use time::Timestamp;

#[cfg(test)]
mod tests;

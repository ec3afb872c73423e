//! Alerts: an Alertmanager-like model and its delivery to Alertmanager, webhooks
//! (Alertmanager webhook v4), Slack, Teams Workflows and PagerDuty Events v2.
//!
//! | module | job |
//! |---|---|
//! | `time` | `Timestamp` (Unix ms) and its RFC 3339 form |
//! | `model` | `Alert`, `AlertState`, `fingerprint` (Alertmanager-compatible) |
//! | `book` | `AlertBook`: detectors' level signal → `Transition::{Fired, Resolved}` |
//! | `payload` | request bodies per receiver kind (pure) |
//!
//! A detector owns an `AlertBook`, calls `set(active, labels, annotations, now)` and
//! hands any returned `Transition` to the receivers.

pub mod book;
pub mod model;
pub mod payload;
pub mod time;

pub use book::{AlertBook, Transition};
pub use model::{Alert, AlertState, Fingerprint, LabelSet, fingerprint};
pub use time::Timestamp;

#[cfg(test)]
mod tests;

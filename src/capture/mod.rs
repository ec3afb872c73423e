//! Capture layer: link-layer frames → TCP segments → flows → ordered per-direction byte
//! streams with explicit gaps. Pure computation, no I/O.
//!
//! - [`link`]: `parse_frame` for Ethernet (VLAN/QinQ), Linux SLL/SLL2, BSD NULL/LOOP, raw IP.
//! - [`flow`]: `FlowTable` (bounded, LRU eviction, idle expiry) and the `StreamSink` trait.
//! - [`reassembly`]: one direction's sequence tracking, out-of-order buffer and gaps.
//! - [`stats`]: counters for every drop, trim and gap.

// Wire data reaches everything in this module: a panic here would take the sidecar down.
// Outside tests, unwrap/expect are refused by clippy; failures are typed errors or counts.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod event;
mod ip;
mod limits;
mod lru;
mod ooo;
mod segment;
mod sink;

pub mod flow;
pub mod link;
pub mod reassembly;
pub mod stats;

pub use event::{Interest, Side, StreamEvent};
pub use flow::{CloseReason, FlowInfo, FlowTable, StreamSink};
pub use limits::FlowLimits;
pub use link::{LinkType, SkipReason, TcpSegment, parse_frame};
pub use stats::CaptureStats;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests_flow;
#[cfg(test)]
mod tests_link;
#[cfg(test)]
mod tests_reassembly;

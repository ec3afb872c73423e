//! What the broker says about itself: `$SYS` metrics (Mosquitto, EMQX) and EMQX
//! rule-engine events, normalised. Pure: messages with their receive time go in; the
//! connection that fetches them lives in `input::broker`.
//!
//! | module | job |
//! |---|---|
//! | `metrics` | `BrokerMetrics`: one normalised shape for every broker kind |
//! | `sys` | `SysState`: `$SYS` topics → `BrokerMetrics` per node, staleness by uptime, restarts |
//! | `emqx_events` | EMQX `$events/...` JSON → `observe::Event` (ACL denial, auth, drops) |
//! | `parse` | small payload parsers |

pub mod emqx_events;
pub mod metrics;
mod parse;
pub mod sys;

pub use emqx_events::{EmqxEventParser, EmqxEventStats, EventDrop};
pub use metrics::{BrokerKind, BrokerMetrics, LoadAvg, Loads};
pub use sys::{SysConfig, SysOutcome, SysState, SysStats};

use crate::observe::Event;

/// Routes every message from the broker connection: `$SYS/...` to [`SysState`], anything
/// else (the topic the EMQX rule republishes to) to [`EmqxEventParser`].
#[derive(Clone, Debug, Default)]
pub struct BrokerFeed {
    pub sys: SysState,
    pub events: EmqxEventParser,
}

impl BrokerFeed {
    pub fn new(cfg: SysConfig) -> BrokerFeed {
        BrokerFeed {
            sys: SysState::new(cfg),
            events: EmqxEventParser::default(),
        }
    }

    /// Feeds one message; returns the event it made, if any.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now_ns: u64) -> Option<Event> {
        if topic.starts_with("$SYS/") {
            self.sys.on_message(topic, payload, now_ns);
            None
        } else {
            self.events.on_message(topic, payload, now_ns)
        }
    }

    /// A new session began (see [`SysState::on_session_start`]).
    pub fn on_session_start(&mut self) {
        self.sys.on_session_start();
    }
}

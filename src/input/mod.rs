//! Live inputs: the I/O edge that feeds the pure core. The broker input needs a tokio
//! runtime; capture runs on its own thread.
//!
//! | module | job |
//! |---|---|
//! | `broker_config` | `BrokerInputConfig` (serde, `validate`), URL parsing, `Secret` |
//! | `tls` | rustls client configuration: CA or system roots, mutual TLS |
//! | `broker` | the connection task: subscribe, forward, reconnect with backoff; `FeedDriver` |
//! | `capture` | live pcap capture thread: BPF from ports, batches over a bounded channel, drop counters |

pub mod broker;
pub mod broker_config;
pub mod capture;
mod tls;

pub use broker::{BrokerInput, BrokerMsg, BrokerStatus, FeedDriver, InputStats};
pub use broker_config::{BrokerInputConfig, Secret};

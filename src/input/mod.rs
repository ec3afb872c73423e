//! Live inputs: the I/O edge that feeds the pure core. Needs a tokio runtime.
//!
//! | module | job |
//! |---|---|
//! | `broker_config` | `BrokerInputConfig` (serde, `validate`), URL parsing, `Secret` |
//! | `tls` | rustls client configuration: CA or system roots, mutual TLS |
//! | `broker` | the connection task: subscribe, forward, reconnect with backoff; `FeedDriver` |

pub mod broker;
pub mod broker_config;
mod tls;

pub use broker::{BrokerInput, BrokerMsg, BrokerStatus, FeedDriver, InputStats};
pub use broker_config::{BrokerInputConfig, Secret};

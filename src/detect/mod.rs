//! Streaming anomaly detectors for univariate series, O(1) state per series.
//!
//! [`SeriesDetector`] is the one detector: the MQTT pipeline feeds it per-topic,
//! per-client and broker series; `mqscope detect-series` feeds it any CSV series so it can
//! be measured on NAB. Its state serialises with serde so baselines can be saved
//! periodically and reloaded at start ([`persist`]).
//!
//! | module | job |
//! |---|---|
//! | [`series`] | `SeriesDetector`: one univariate series |
//! | [`anomaly`] | `AnomalyEngine`: the MQTT series (topics, clients, exchanges, `$SYS`), peer clustering, anomaly hits |
//! | [`rules`] | security rules and the alert life cycle shared with anomalies |

pub mod anomaly;
pub mod gpd;
pub mod persist;
pub mod rules;
pub mod season;
pub mod series;
pub mod spot;

pub use series::{DetectorConfig, SeriesDetector, Verdict, score_of};

//! Evaluation tooling: reading univariate series (`timestamp,value` CSV as in NAB) and
//! scoring detections the way the Numenta Anomaly Benchmark does. Nothing here runs in
//! the capture pipeline; it exists so the detectors in [`crate::detect`] can be measured
//! on series that never came from MQTT.

pub mod corpus;
pub mod nab;
pub mod series;

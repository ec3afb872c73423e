//! Exporters: the pipeline's counters and sketches as metrics for other systems. Now:
//! Prometheus text exposition over a small HTTP listener. Rendering happens at scrape
//! time from owned snapshots; nothing here runs per packet.
//!
//! | module | job |
//! |---|---|
//! | `config` | `PrometheusConfig`: listen address and label caps |
//! | `hist` | fixed `le` bounds; sketches read as cumulative bucket counts |
//! | `series` | topic groups cut to `max_topic_series` labels (rest → `__other__`), latency histograms |
//! | `tally` | event counts by reason / action (bounded label sets) |
//! | `prometheus` | `render(&MetricsInput) -> String`: the documented metric set (`docs/metrics.md`) |
//! | `broker_metrics` | `$SYS` broker metrics as `mqscope_broker_*` |
//! | `state` | `MetricsSnapshot` (owned) and `MetricsState` (latest snapshot + readiness, shared) |
//! | `event_log` | `LogRecord`: events and alert edges as flat log lines (OTLP logs, Azure rows) |
//! | `azure` | `AzureLogs`: `LogRecord`s to the Azure Monitor Logs Ingestion API (batched, gzip, Entra ID token, retries) |
//! | `output_metrics` | alert receivers' and log sinks' delivery counters |
//! | `http` | `serve(listener, state)`: `/metrics`, `/healthz`, `/readyz` |
//! | `otlp` | `OtlpExporter`: the same metrics and every `LogRecord` over OTLP (gRPC or HTTP/protobuf) |

pub mod alerts;
pub mod azure;
mod broker_metrics;
pub mod config;
pub mod event_log;
pub mod hist;
pub mod http;
pub mod otlp;
pub mod output_metrics;
pub mod prometheus;
pub mod series;
pub mod state;
pub mod tally;

pub use config::PrometheusConfig;
pub use event_log::LogRecord;
pub use prometheus::{MetricsInput, render};
pub use state::{MetricsSnapshot, MetricsState};
pub use tally::EventTally;

#[cfg(test)]
mod tests;

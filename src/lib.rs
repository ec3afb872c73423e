//! # mqscope
//!
//! Passive observability and anomaly detection for MQTT brokers. This crate holds the
//! whole pipeline; `main.rs` only parses the command line and calls into it.
//!
//! ## Crate map (pure core first, I/O last; dependencies only point upward in this list)
//!
//! | module | job |
//! |---|---|
//! | [`mqtt`] | MQTT 3.1/3.1.1/5 wire format: `Packet`, decoder, encoder, per-connection session state. No I/O. |
//! | [`capture`] | Link layer → IP → TCP; flow table; per-direction TCP reassembly with gap/overlap handling. No I/O. |
//! | [`dissect`] | Glue: frames → flows → byte streams → MQTT packets with flow, direction and time (`MqttRecord`). No I/O. |
//! | [`observe`] | Per-topic and per-client statistics, passive latency, fan-out, wire events; bounded. No I/O, time passed in. |
//! | [`broker`] | The broker's own word: `$SYS` metrics (Mosquitto, EMQX) normalised, staleness by uptime, EMQX rule-engine events → `Event`. No I/O. |
//! | [`synth`] | Synthetic MQTT traffic and a pcap writer, for benchmarks and tests. |
//! | [`input`] | Live inputs: the broker connection (tokio, rumqttc, TLS, reconnect with backoff) feeding `broker`; live pcap capture on its own thread, batches over a bounded channel. |
//! | [`replay`] | Reads pcap/pcapng files (pcap crate), drives `dissect`, observation, rules and anomalies in record time; jsonl, summary and report. |
//! | [`detect`] | Streaming per-series detectors (robust baselines, seasonality, SPOT tails; O(1) state), the anomaly engine over the observed series (rates, silence, payload, latency, fan-out loss, new names, linfa peer clustering) and the security rules. No I/O, time passed in. |
//! | [`eval`] | Evaluation tooling: `timestamp,value` series CSV and NAB scoring. |
//! | [`sim`] | `mqscope simulate`: realistic OT traffic and misbehaviours against a real broker (rumqttc clients). |
//! | [`export`] | Prometheus `/metrics`, `/healthz`, `/readyz`; OTLP (metrics + log records); Azure Monitor Logs Ingestion; alerts (Alertmanager-style model, hit → fired/resolved edges, receivers with queue, retries, spool). |
//! | [`config`] | The `mqscope run` TOML file: typed sections, every error at once with `section.key` and line, command-line overrides. |
//! | [`app`] | `mqscope run`: capture thread → processing thread (dissect + observe + rules + anomalies + `$SYS`), alert and log outputs, snapshot hook for the exporters, signals and bounded shutdown. |
//! | [`cli`] | Command-line parsing and exit codes; `main.rs` calls `cli::main` (after `hugepages`). |
//! | [`hugepages`] | Transparent huge pages for the TLB-bound observation state: `main.rs` first re-executes with glibc's huge-page tunable; where that cannot work (file capability) `run` advises its mappings. |

pub mod app;
pub mod broker;
pub mod capture;
pub mod cli;
pub mod config;
pub mod detect;
pub mod dissect;
pub mod eval;
pub mod export;
pub mod hugepages;
pub mod input;
pub mod mqtt;
pub mod observe;
pub mod replay;
pub mod sim;
pub mod synth;

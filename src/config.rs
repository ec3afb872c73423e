//! The one configuration file of `mqscope run` (TOML), its validation and the command-line
//! overrides. Loading reports every problem at once (syntax, unknown keys anywhere, wrong
//! types, bad values), each with its `section.key` path and line: an operator fixing a
//! config should not discover the errors one restart at a time. Nothing here opens a socket
//! or a capture; files the config names are only checked to exist.
//!
//! Sections: `[capture]`, `[limits]`, `[observe]` (`ObserveConfig`), `[broker]`
//! (`BrokerInputConfig`; absent = no `$SYS` input), `[http]`. Every key is optional.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::capture::FlowLimits;
use crate::detect::anomaly::AnomalyConfig;
use crate::detect::rules::RulesConfig;
use crate::dissect::DissectConfig;
use crate::export::alerts::AlertsConfig;
use crate::export::azure::AzureLogsConfig;
use crate::export::otlp::OtlpConfig;
use crate::input::BrokerInputConfig;
use crate::observe::ObserveConfig;

/// Where the HTTP endpoint (metrics, health) listens unless configured.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9883";

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureConfig,
    pub limits: LimitsConfig,
    pub observe: ObserveConfig,
    /// The broker's own metrics (`$SYS`) and EMQX events; `None` runs on the wire alone.
    pub broker: Option<BrokerInputConfig>,
    pub http: HttpConfig,
    /// Security rule thresholds (`detect::rules`); `capture.tls_ports` are added to its
    /// `tls_ports`.
    pub rules: RulesConfig,
    /// Where alerts from rules and detectors are delivered.
    pub alerts: AlertsConfig,
    /// Events and alert edges to Azure Monitor Logs (Logs Ingestion API).
    pub azure_logs: AzureLogsConfig,
    /// The metrics and every event / alert edge over OTLP (an OpenTelemetry Collector).
    pub otlp: OtlpConfig,
    /// Baselines and anomaly detectors on the observed series.
    pub anomaly: AnomalyConfig,
}

/// Live capture and what of it is MQTT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// `false` runs on `$SYS` and events alone (`--no-capture`).
    pub enabled: bool,
    /// Interface name; `any` (Linux) captures on all of them, `lo` is loopback.
    pub interface: String,
    /// Broker ports carrying plain MQTT; also the capture filter.
    pub ports: Vec<u16>,
    /// Broker ports carrying MQTT over TLS (flows counted, not decoded).
    pub tls_ports: Vec<u16>,
    /// Decode MQTT on any TCP port whose client opens with a CONNECT. This widens the
    /// capture filter to all of TCP, so it costs CPU on a busy host; off by default because
    /// a sidecar knows its broker's ports.
    pub detect_by_content: bool,
    /// Bytes captured per frame. MQTT needs whole frames (a cut frame is a stream gap).
    pub snaplen: u32,
    /// Kernel capture buffer; absorbs bursts while the dissector catches up.
    pub buffer_bytes: u32,
    /// Promiscuous mode (needs CAP_NET_ADMIN). A sidecar sees its own pod's traffic
    /// without it.
    pub promiscuous: bool,
    /// How long a read waits before returning with no frame, so that partly filled batches
    /// flow at low rates and a stop request is noticed.
    pub read_timeout_ms: u32,
    /// Frames per batch handed to the processing thread.
    pub batch_frames: usize,
    /// Batches queued towards the processing thread; beyond this, batches are dropped and
    /// counted (capture never waits for the consumer). Each holds at most 512 KiB plus one
    /// frame, so this also bounds the memory in flight (128 × 576 KiB ≈ 72 MiB worst case).
    pub channel_batches: usize,
    /// MQTT packets with a larger remaining length are skipped by length and counted.
    pub max_packet_size: u32,
    /// Bytes of each PUBLISH payload kept in records (evidence for events); 0 keeps none.
    pub payload_prefix: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        let d = DissectConfig::default();
        CaptureConfig {
            enabled: true,
            interface: "any".into(),
            ports: d.ports,
            tls_ports: d.tls_ports,
            detect_by_content: false,
            // Not 65535: a coalesced frame (loopback, GRO/GSO) is a 65535-byte IP packet
            // plus the link header, and cutting its tail is a stream gap. Free with
            // TPACKET_V3, which stores frames by their real size.
            snaplen: 262_144,
            buffer_bytes: 16 << 20,
            promiscuous: false,
            read_timeout_ms: 100,
            batch_frames: 256,
            channel_batches: 128,
            max_packet_size: d.max_packet_size,
            payload_prefix: d.payload_prefix,
        }
    }
}

/// Memory bounds of TCP reassembly and MQTT framing (see `FlowLimits`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_flows: usize,
    pub idle_timeout_secs: u64,
    pub max_ooo_bytes_per_direction: usize,
    pub max_ooo_bytes_total: usize,
    pub max_ooo_segments_per_direction: usize,
    /// Bytes buffered for partial MQTT packets over all flows.
    pub max_pending_total: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let f = FlowLimits::default();
        LimitsConfig {
            max_flows: f.max_flows,
            idle_timeout_secs: f.idle_timeout_us / 1_000_000,
            max_ooo_bytes_per_direction: f.max_ooo_bytes_per_direction,
            max_ooo_bytes_total: f.max_ooo_bytes_total,
            max_ooo_segments_per_direction: f.max_ooo_segments_per_direction,
            max_pending_total: DissectConfig::default().max_pending_total,
        }
    }
}

/// The HTTP endpoint (Prometheus metrics, health).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `ip:port`; port 0 picks a free one.
    pub listen: String,
    /// Topic groups exported with their own `topic` label (the busiest); the rest are
    /// summed into `topic="__other__"`.
    pub max_topic_series: usize,
    /// Export per-topic latency histograms (`mqscope_topic_latency_seconds`).
    pub topic_latency: bool,
    /// Export per-client series (`client_id` label): off by default, client ids are
    /// unbounded and often personal data.
    pub per_client_labels: bool,
    /// With `per_client_labels`: how many of the most active clients.
    pub max_client_series: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let p = crate::export::PrometheusConfig::default();
        HttpConfig {
            listen: DEFAULT_LISTEN.into(),
            max_topic_series: p.max_topic_series,
            topic_latency: p.topic_latency,
            per_client_labels: p.per_client_labels,
            max_client_series: p.max_client_series,
        }
    }
}

impl HttpConfig {
    /// The exporter's settings (the listen address is resolved separately).
    pub fn prometheus(&self, listen: std::net::SocketAddr) -> crate::export::PrometheusConfig {
        crate::export::PrometheusConfig {
            listen,
            max_topic_series: self.max_topic_series,
            topic_latency: self.topic_latency,
            per_client_labels: self.per_client_labels,
            max_client_series: self.max_client_series,
        }
    }
}

/// One problem, located as precisely as known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `section.key`, `section`, or empty (syntax errors).
    pub path: String,
    /// 1-based line in the file, when the problem is tied to one.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, in file order (problems without a line last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Command-line values that replace the file's (`mqscope run` flags).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub interface: Option<String>,
    pub ports: Option<Vec<u16>>,
    pub tls_ports: Option<Vec<u16>>,
    /// Broker URL: enables the broker input (with the file's other `[broker]` settings, or
    /// defaults).
    pub broker: Option<String>,
    pub listen: Option<String>,
    pub no_capture: bool,
    pub no_broker: bool,
}

/// Key path → line, from the parser's spans.
type Lines = BTreeMap<String, usize>;

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, &Overrides::default())
    }

    /// Like [`Config::load`], applying `ov` before validation (a flag can fix or replace a
    /// bad value from the file).
    pub fn load_with(path: &Path, ov: &Overrides) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                line: None,
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        Config::from_str_with(&text, ov)
    }

    /// Parses and validates a whole document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_str_with(text, &Overrides::default())
    }

    pub fn from_str_with(text: &str, ov: &Overrides) -> Result<Config, ConfigErrors> {
        let (mut cfg, lines, mut errs) = parse(text)?;
        cfg.apply(ov);
        errs.extend(cfg.validate_at(&lines));
        finish(cfg, errs)
    }

    /// Defaults plus overrides, validated (no file).
    pub fn from_overrides(ov: &Overrides) -> Result<Config, ConfigErrors> {
        let mut cfg = Config::default();
        cfg.apply(ov);
        let errs = cfg.validate_at(&Lines::new());
        finish(cfg, errs)
    }

    pub fn apply(&mut self, ov: &Overrides) {
        if let Some(i) = &ov.interface {
            self.capture.interface = i.clone();
        }
        if let Some(p) = &ov.ports {
            self.capture.ports = p.clone();
        }
        if let Some(p) = &ov.tls_ports {
            self.capture.tls_ports = p.clone();
        }
        if let Some(url) = &ov.broker {
            self.broker.get_or_insert_with(Default::default).url = url.clone();
        }
        if ov.no_broker {
            self.broker = None;
        }
        if let Some(l) = &ov.listen {
            self.http.listen = l.clone();
        }
        if ov.no_capture {
            self.capture.enabled = false;
        }
    }

    /// Every semantic problem of an already typed config.
    pub fn validate(&self) -> Vec<ConfigError> {
        self.validate_at(&Lines::new())
    }

    fn validate_at(&self, lines: &Lines) -> Vec<ConfigError> {
        let mut v = Validator {
            lines,
            errs: Vec::new(),
        };
        self.capture.check(&mut v);
        self.limits.check(&mut v);
        check_observe(&self.observe, &mut v);
        if let Some(b) = &self.broker {
            for m in b.validate() {
                v.err("broker", m);
            }
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            v.err(
                "http.listen",
                format!(
                    "{:?} is not ip:port (e.g. {DEFAULT_LISTEN} or 127.0.0.1:0)",
                    self.http.listen
                ),
            );
        }
        // The exporter's own checks (the listen address is checked above).
        let probe = self.http.prometheus(SocketAddr::from(([127, 0, 0, 1], 0)));
        for m in probe.validate() {
            let key = if m.starts_with("max_topic_series") {
                "http.max_topic_series"
            } else if m.starts_with("max_client_series") {
                "http.max_client_series"
            } else {
                "http"
            };
            v.err(key, m);
        }
        for m in self.rules_config().validate() {
            // The rule engine's sentences start with the key they are about.
            let key = m
                .split_whitespace()
                .next()
                .filter(|k| k.starts_with("rules."))
                .unwrap_or("rules")
                .to_string();
            v.err(&key, m);
        }
        for (key, m) in self.alerts.validate() {
            v.err(&key, m);
        }
        // The exporter's sentences start with the key they are about.
        for m in self.azure_logs.validate() {
            let key = m
                .split([' ', ':'])
                .next()
                .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .map_or_else(|| "azure_logs".to_string(), |k| format!("azure_logs.{k}"));
            v.err(&key, m);
        }
        // Its sentences start with `anomaly.<key>`.
        for m in self.anomaly.validate() {
            let key = m
                .split_whitespace()
                .next()
                .filter(|k| k.starts_with("anomaly."))
                .unwrap_or("anomaly")
                .to_string();
            v.err(&key, m);
        }
        // Its sentences name the key relative to [otlp].
        for m in self.otlp.validate() {
            let key = m
                .split([' ', ':'])
                .next()
                .filter(|k| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                })
                .map_or_else(|| "otlp".to_string(), |k| format!("otlp.{k}"));
            v.err(&key, m);
        }
        if !self.capture.enabled && self.broker.is_none() {
            v.err(
                "capture.enabled",
                "capture is off and no [broker] is configured: nothing to observe",
            );
        }
        v.errs
    }

    /// The dissector's configuration.
    pub fn dissect(&self) -> DissectConfig {
        let c = &self.capture;
        let l = &self.limits;
        DissectConfig {
            ports: c.ports.clone(),
            tls_ports: c.tls_ports.clone(),
            detect_by_content: c.detect_by_content,
            max_packet_size: c.max_packet_size,
            payload_prefix: c.payload_prefix,
            max_pending_total: l.max_pending_total,
            flow_limits: FlowLimits {
                max_flows: l.max_flows,
                idle_timeout_us: l.idle_timeout_secs.saturating_mul(1_000_000),
                max_ooo_bytes_per_direction: l.max_ooo_bytes_per_direction,
                max_ooo_bytes_total: l.max_ooo_bytes_total,
                max_ooo_segments_per_direction: l.max_ooo_segments_per_direction,
            },
            ..DissectConfig::default()
        }
    }

    /// The rule engine's configuration: `[rules]`, its TLS ports joined by those of
    /// `[capture]` (a port the capture treats as TLS is one where plaintext is a finding),
    /// and the broker input's own client id among the admin clients.
    pub fn rules_config(&self) -> RulesConfig {
        let mut r = self.rules.clone();
        for p in &self.capture.tls_ports {
            if !r.tls_ports.contains(p) {
                r.tls_ports.push(*p);
            }
        }
        // mqscope's own `$SYS/#` subscription is on the wire too: not a finding.
        if let Some(b) = &self.broker {
            let own = b.client_id_or_default();
            if !r.admin_clients.contains(&own) {
                r.admin_clients.push(own);
            }
        }
        r
    }

    /// The listen address (valid after validation).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.http.listen.parse().ok()
    }

    /// One line for logs and `check-config`.
    pub fn summary(&self) -> String {
        let c = &self.capture;
        let capture = if c.enabled {
            format!(
                "capture on {} ports {:?} tls {:?}{}",
                c.interface,
                c.ports,
                c.tls_ports,
                if c.detect_by_content {
                    " + content detection"
                } else {
                    ""
                }
            )
        } else {
            "no capture".into()
        };
        let broker = match &self.broker {
            Some(b) => format!("broker {}", b.url),
            None => "no broker input".into(),
        };
        format!("{capture}; {broker}; http {}", self.http.listen)
    }
}

fn finish(cfg: Config, mut errs: Vec<ConfigError>) -> Result<Config, ConfigErrors> {
    if errs.is_empty() {
        return Ok(cfg);
    }
    // Stable: equal lines keep the order the checks found them in.
    errs.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    Err(ConfigErrors(errs))
}

/// Syntax, unknown keys and types. Syntax errors end parsing (a broken document's
/// structure cannot be trusted); key and type errors are collected and the offending keys
/// fall back to their defaults so that semantic validation can still run on the rest.
fn parse(text: &str) -> Result<(Config, Lines, Vec<ConfigError>), ConfigErrors> {
    let (doc, syntax) = toml::de::DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let errs = syntax
            .iter()
            .map(|e| ConfigError {
                path: String::new(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: format!("syntax error: {}", e.message().trim_end()),
            })
            .collect();
        return Err(finish(Config::default(), errs).unwrap_err());
    }
    let mut lines = Lines::new();
    for (k, v) in doc.get_ref() {
        lines.insert(k.get_ref().to_string(), line_of(text, k.span().start));
        if let Some(t) = v.get_ref().as_table() {
            for (k2, _) in t {
                lines.insert(
                    format!("{}.{}", k.get_ref(), k2.get_ref()),
                    line_of(text, k2.span().start),
                );
            }
        }
    }
    // Parsed again as plain values: the typed sections deserialize from these.
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return Err(ConfigErrors(vec![ConfigError {
                path: String::new(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: e.message().trim_end().to_string(),
            }]));
        }
    };
    let mut errs = Vec::new();
    let mut cfg = Config::default();
    for (name, value) in table {
        let line = lines.get(&name).copied();
        let mut err = |path: String, message: String| {
            let line = lines.get(&path).copied().or(line);
            errs.push(ConfigError {
                path,
                line,
                message,
            });
        };
        let toml::Value::Table(section) = value else {
            err(
                name.clone(),
                if matches!(
                    name.as_str(),
                    "capture"
                        | "limits"
                        | "observe"
                        | "broker"
                        | "http"
                        | "rules"
                        | "alerts"
                        | "azure_logs"
                        | "otlp"
                        | "anomaly"
                ) {
                    format!("must be a table ([{name}])")
                } else {
                    format!("unknown section (known: {})", SECTIONS.join(", "))
                },
            );
            continue;
        };
        match name.as_str() {
            "capture" => cfg.capture = section_of(&name, section, &mut err),
            "limits" => cfg.limits = section_of(&name, section, &mut err),
            "observe" => cfg.observe = section_of(&name, section, &mut err),
            "broker" => cfg.broker = Some(section_of(&name, section, &mut err)),
            "http" => cfg.http = section_of(&name, section, &mut err),
            "rules" => cfg.rules = section_of(&name, section, &mut err),
            "alerts" => cfg.alerts = section_of(&name, section, &mut err),
            "azure_logs" => cfg.azure_logs = section_of(&name, section, &mut err),
            "otlp" => cfg.otlp = section_of(&name, section, &mut err),
            "anomaly" => cfg.anomaly = section_of(&name, section, &mut err),
            _ => err(
                name.clone(),
                format!("unknown section (known: {})", SECTIONS.join(", ")),
            ),
        }
    }
    Ok((cfg, lines, errs))
}

const SECTIONS: [&str; 10] = [
    "capture",
    "limits",
    "observe",
    "broker",
    "http",
    "rules",
    "alerts",
    "azure_logs",
    "otlp",
    "anomaly",
];

/// Deserializes one section key by key, so that every unknown key and every wrong type is
/// reported (serde stops at the first); bad keys are left at their defaults.
fn section_of<T: DeserializeOwned + Default>(
    section: &str,
    table: toml::Table,
    err: &mut impl FnMut(String, String),
) -> T {
    let mut good = toml::Table::new();
    for (key, value) in table {
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        match one.try_into::<T>() {
            Ok(_) => {
                good.insert(key, value);
            }
            Err(e) => err(format!("{section}.{key}"), clean_message(e.message())),
        }
    }
    // Each key deserialized alone, so together they do too; the fallback is defensive.
    good.try_into::<T>().unwrap_or_else(|e| {
        err(section.to_string(), clean_message(e.message()));
        T::default()
    })
}

fn clean_message(m: &str) -> String {
    m.trim_end().replace('\n', " ")
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Validator<'a> {
    lines: &'a Lines,
    errs: Vec<ConfigError>,
}

impl Validator<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        // A key's own line, else its section's.
        let line = self.lines.get(path).copied().or_else(|| {
            path.split_once('.')
                .and_then(|(s, _)| self.lines.get(s).copied())
        });
        self.errs.push(ConfigError {
            path: path.to_string(),
            line,
            message: message.into(),
        });
    }

    fn range<T: PartialOrd + fmt::Display + Copy>(&mut self, path: &str, v: T, lo: T, hi: T) {
        if v < lo || v > hi {
            self.err(path, format!("{v} is out of range {lo}..={hi}"));
        }
    }
}

impl CaptureConfig {
    fn check(&self, v: &mut Validator<'_>) {
        // Linux IFNAMSIZ is 16 including the NUL.
        if self.interface.is_empty() || self.interface.len() > 15 {
            v.err(
                "capture.interface",
                "must be 1..=15 bytes (e.g. eth0, lo, any)",
            );
        } else if self
            .interface
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'/' || b == 0)
        {
            v.err(
                "capture.interface",
                format!("{:?} is not an interface name", self.interface),
            );
        }
        if self.ports.is_empty() && self.tls_ports.is_empty() && !self.detect_by_content {
            v.err(
                "capture.ports",
                "no ports and no content detection: nothing would be captured",
            );
        }
        if self.ports.contains(&0) {
            v.err("capture.ports", "port 0 is not a valid broker port");
        }
        if self.tls_ports.contains(&0) {
            v.err("capture.tls_ports", "port 0 is not a valid broker port");
        }
        for p in self.ports.iter().filter(|p| self.tls_ports.contains(p)) {
            v.err(
                "capture.tls_ports",
                format!("port {p} is listed both as plain MQTT (ports) and as TLS"),
            );
        }
        v.range("capture.snaplen", self.snaplen, 128, 262_144);
        v.range("capture.buffer_bytes", self.buffer_bytes, 65_536, 1 << 30);
        if self.buffer_bytes < self.snaplen {
            v.err(
                "capture.buffer_bytes",
                "must be at least snaplen (one frame must fit the kernel buffer)",
            );
        }
        v.range("capture.read_timeout_ms", self.read_timeout_ms, 1, 1_000);
        v.range("capture.batch_frames", self.batch_frames, 1, 65_536);
        v.range("capture.channel_batches", self.channel_batches, 1, 4_096);
        v.range(
            "capture.max_packet_size",
            self.max_packet_size,
            1,
            268_435_455,
        );
        v.range("capture.payload_prefix", self.payload_prefix, 0, 65_536);
    }
}

impl LimitsConfig {
    fn check(&self, v: &mut Validator<'_>) {
        for (k, n) in [
            ("limits.max_flows", self.max_flows),
            (
                "limits.max_ooo_bytes_per_direction",
                self.max_ooo_bytes_per_direction,
            ),
            ("limits.max_ooo_bytes_total", self.max_ooo_bytes_total),
            (
                "limits.max_ooo_segments_per_direction",
                self.max_ooo_segments_per_direction,
            ),
            ("limits.max_pending_total", self.max_pending_total),
        ] {
            if n == 0 {
                v.err(k, "must be > 0");
            }
        }
        if self.idle_timeout_secs == 0 {
            v.err("limits.idle_timeout_secs", "must be > 0");
        }
        if self.max_ooo_bytes_per_direction > self.max_ooo_bytes_total {
            v.err(
                "limits.max_ooo_bytes_per_direction",
                "must not exceed max_ooo_bytes_total",
            );
        }
    }
}

fn check_observe(o: &ObserveConfig, v: &mut Validator<'_>) {
    // Templates and bucket width: the observation core's own checks, all at once.
    // (It reserves the exact-topic table, a few MB at most: acceptable once at start.)
    if let Err(e) = crate::observe::topics::Topics::new(o) {
        for p in e.problems {
            let path = if p.starts_with("template") {
                "observe.topic_templates"
            } else if p.starts_with("bucket_secs") {
                "observe.bucket_secs"
            } else if p.starts_with("max_exact_topics") {
                "observe.max_exact_topics"
            } else {
                "observe"
            };
            v.err(path, p);
        }
    }
    for (k, n) in [
        ("observe.max_clients", o.max_clients),
        ("observe.max_connections", o.max_connections),
        ("observe.max_pending_requests", o.max_pending_requests),
        ("observe.max_fanout_pending", o.max_fanout_pending),
        ("observe.max_events_queued", o.max_events_queued),
    ] {
        if n == 0 {
            v.err(k, "must be > 0");
        }
    }
    if !(o.unanswered_timeout_secs.is_finite() && o.unanswered_timeout_secs > 0.0) {
        v.err(
            "observe.unanswered_timeout_secs",
            "must be a positive number",
        );
    }
    if o.fanout_window_ms == 0 {
        v.err("observe.fanout_window_ms", "must be > 0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert!(c.broker.is_none());
        assert_eq!(c.http.listen, DEFAULT_LISTEN);
    }

    #[test]
    fn every_unknown_key_and_type_error_is_reported() {
        let text = "[capture]\nfoo = 1\nsnaplen = \"big\"\nbar = 2\n[observe]\nbaz = true\n";
        let e = Config::from_toml(text).unwrap_err().0;
        let paths: Vec<_> = e.iter().map(|e| (e.path.as_str(), e.line)).collect();
        assert_eq!(
            paths,
            [
                ("capture.foo", Some(2)),
                ("capture.snaplen", Some(3)),
                ("capture.bar", Some(4)),
                ("observe.baz", Some(6)),
            ],
            "{e:#?}"
        );
        assert!(e[0].message.contains("unknown field"), "{}", e[0].message);
        assert!(e[1].message.contains("invalid type"), "{}", e[1].message);
    }

    #[test]
    fn syntax_errors_carry_lines() {
        let e = Config::from_toml("[capture]\nports = [1883,\n")
            .unwrap_err()
            .0;
        assert!(!e.is_empty());
        assert!(e[0].message.starts_with("syntax error"), "{e:#?}");
        assert!(e[0].line.is_some());
    }

    #[test]
    fn overrides_replace_file_values_before_validation() {
        let ov = Overrides {
            ports: Some(vec![1884]),
            listen: Some("127.0.0.1:0".into()),
            broker: Some("mqtt://b:1883".into()),
            ..Default::default()
        };
        let c = Config::from_str_with("[capture]\nports = [0]\n", &ov).unwrap();
        assert_eq!(c.capture.ports, [1884]);
        assert_eq!(c.broker.unwrap().url, "mqtt://b:1883");
        assert_eq!(c.http.listen, "127.0.0.1:0");
    }

    #[test]
    fn semantic_errors_point_at_keys() {
        let text =
            "[capture]\nports = [1883]\ntls_ports = [1883]\nsnaplen = 10\n[http]\nlisten = \"x\"\n";
        let e = Config::from_toml(text).unwrap_err().0;
        let paths: Vec<_> = e.iter().map(|e| (e.path.as_str(), e.line)).collect();
        assert_eq!(
            paths,
            [
                ("capture.tls_ports", Some(3)),
                ("capture.snaplen", Some(4)),
                ("http.listen", Some(6)),
            ],
            "{e:#?}"
        );
    }

    #[test]
    fn dissect_config_carries_limits() {
        let c = Config::from_toml("[limits]\nidle_timeout_secs = 7\nmax_flows = 9\n").unwrap();
        let d = c.dissect();
        assert_eq!(d.flow_limits.idle_timeout_us, 7_000_000);
        assert_eq!(d.flow_limits.max_flows, 9);
    }
}

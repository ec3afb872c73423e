//! `OtlpConfig`: the `[otlp]` section. Where the collector is, which protocol, which
//! headers (credentials: literal, from an environment variable or from a file, never
//! printed), TLS files, how often metrics go out and how many log records may wait.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::export::alerts::Secret;

/// Largest `max_queued_logs`: a log record is a few hundred bytes, so this bounds the
/// queue's memory near 1 GiB in the very worst case.
pub const MAX_QUEUED_LOGS_LIMIT: usize = 1_000_000;
/// Largest `max_batch_logs`: collectors refuse requests over 4 MiB (gRPC default).
pub const MAX_BATCH_LOGS_LIMIT: usize = 8192;

/// Wire protocol to the collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies (port 4318), at `<endpoint>/v1/metrics`
    /// and `<endpoint>/v1/logs`.
    #[serde(alias = "http/protobuf")]
    HttpProtobuf,
}

/// A configured value: literal, or read at start from an environment variable or a file
/// (one trailing newline trimmed: `echo` and most secret mounts add one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum ValueFrom {
    Literal(String),
    Env { env: String },
    File { file: PathBuf },
}

impl ValueFrom {
    /// The value, or a sentence saying why it cannot be had (never the value itself).
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            ValueFrom::Literal(s) => Ok(s.clone()),
            ValueFrom::Env { env } => std::env::var(env).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    format!("environment variable {env:?} is not set")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("environment variable {env:?} is not UTF-8")
                }
            }),
            ValueFrom::File { file } => match std::fs::read_to_string(file) {
                Ok(mut s) => {
                    if s.ends_with('\n') {
                        s.pop();
                        if s.ends_with('\r') {
                            s.pop();
                        }
                    }
                    Ok(s)
                }
                Err(e) => Err(format!("{}: {e}", file.display())),
            },
        }
    }
}

/// A `ValueFrom` whose value is a credential (`authorization`, API keys). `Debug` and
/// `Serialize` print a literal as `***`; env and file sources show their name, which is
/// not secret and helps an operator find the right variable.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretFrom(pub ValueFrom);

impl SecretFrom {
    pub fn resolve(&self) -> Result<Secret, String> {
        self.0.resolve().map(Secret::new)
    }
}

impl fmt::Debug for SecretFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ValueFrom::Literal(_) => f.write_str("Literal(***)"),
            other => other.fmt(f),
        }
    }
}

impl Serialize for SecretFrom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            ValueFrom::Literal(_) => s.serialize_str("***"),
            other => other.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SecretFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValueFrom::deserialize(d).map(SecretFrom)
    }
}

/// TLS towards the collector. Used only with an `https://` endpoint; without `ca_file`
/// the system roots verify the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpTls {
    /// PEM CA certificate(s) that sign the collector's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for collectors that require mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

impl OtlpTls {
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    pub enabled: bool,
    /// `http://host:port` or `https://host:port`. For `http_protobuf` it is the base: the
    /// signal paths `/v1/metrics` and `/v1/logs` are appended to its path.
    pub endpoint: String,
    pub protocol: Protocol,
    /// Sent with every request (gRPC metadata or HTTP headers). Names are case-insensitive
    /// and sent in lower case.
    pub headers: BTreeMap<String, SecretFrom>,
    pub tls: OtlpTls,
    /// Export the metric set of `/metrics`.
    pub metrics: bool,
    /// Export events and alert transitions as log records.
    pub logs: bool,
    /// How often the metrics are sent (cumulative values: a missed export loses nothing).
    pub export_interval_ms: u64,
    /// Bound on one export request (connect, send, answer).
    pub timeout_ms: u64,
    /// Log records waiting to be sent; beyond this new records are dropped and counted.
    pub max_queued_logs: usize,
    /// Log records per request.
    pub max_batch_logs: usize,
    /// Resource attributes added to (or replacing) `service.name = "mqscope"`,
    /// `service.version` and `service.instance.id` (default: `$HOSTNAME`, the pod name in
    /// Kubernetes). E.g. `"k8s.pod.name" = { env = "POD_NAME" }`.
    pub resource: BTreeMap<String, ValueFrom>,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            enabled: false,
            endpoint: "http://localhost:4317".into(),
            protocol: Protocol::Grpc,
            headers: BTreeMap::new(),
            tls: OtlpTls::default(),
            metrics: true,
            logs: true,
            // 15 s: the Prometheus scrape interval the dashboards assume.
            export_interval_ms: 15_000,
            // 10 s: the OTLP exporter default (OTEL_EXPORTER_OTLP_TIMEOUT).
            timeout_ms: 10_000,
            max_queued_logs: 4096,
            // 512: the OpenTelemetry batch processor's default batch.
            max_batch_logs: 512,
            resource: BTreeMap::new(),
        }
    }
}

impl OtlpConfig {
    pub fn export_interval(&self) -> Duration {
        Duration::from_millis(self.export_interval_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Every problem with this configuration, as sentences naming the key (relative to
    /// `[otlp]`); empty when valid. Environment variables and files are checked only when
    /// the exporter is enabled (a disabled section may name variables that are not set).
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let target = match EndpointParts::parse(&self.endpoint) {
            Ok(t) => Some(t),
            Err(e) => {
                errs.push(format!(
                    "endpoint {:?}: {e} (expected http://host:port or https://host:port)",
                    self.endpoint
                ));
                None
            }
        };
        if let Some(t) = &target {
            if self.protocol == Protocol::Grpc && !t.base_path.is_empty() {
                errs.push(format!(
                    "endpoint: a gRPC endpoint has no path (got {:?}); the service path is fixed by OTLP",
                    t.base_path
                ));
            }
            if !t.tls && self.tls.is_set() {
                errs.push("tls: files are given but the endpoint is not https://".into());
            }
        }
        if !(100..=3_600_000).contains(&self.export_interval_ms) {
            errs.push(format!(
                "export_interval_ms must be between 100 and 3600000 (got {})",
                self.export_interval_ms
            ));
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            errs.push(format!(
                "timeout_ms must be between 100 and 300000 (got {})",
                self.timeout_ms
            ));
        }
        if self.max_queued_logs == 0 || self.max_queued_logs > MAX_QUEUED_LOGS_LIMIT {
            errs.push(format!(
                "max_queued_logs must be between 1 and {MAX_QUEUED_LOGS_LIMIT} (got {})",
                self.max_queued_logs
            ));
        }
        if self.max_batch_logs == 0 || self.max_batch_logs > MAX_BATCH_LOGS_LIMIT {
            errs.push(format!(
                "max_batch_logs must be between 1 and {MAX_BATCH_LOGS_LIMIT} (got {})",
                self.max_batch_logs
            ));
        }
        if self.enabled && !self.metrics && !self.logs {
            errs.push("enabled, but metrics and logs are both off: nothing to export".into());
        }
        for (name, v) in &self.headers {
            if let Err(e) = check_header_name(name, self.protocol) {
                errs.push(format!("headers.{name}: {e}"));
            }
            if let ValueFrom::Literal(s) = &v.0
                && !header_value_ok(s)
            {
                errs.push(format!(
                    "headers.{name}: the value has control characters (CR, LF, NUL...)"
                ));
            }
        }
        for k in self.resource.keys() {
            if k.is_empty() {
                errs.push("resource: an attribute name is empty".into());
            }
        }
        if self.tls.client_cert_file.is_some() != self.tls.client_key_file.is_some() {
            errs.push("tls.client_cert_file and tls.client_key_file go together".into());
        }
        if self.enabled {
            for (name, p) in [
                ("tls.ca_file", &self.tls.ca_file),
                ("tls.client_cert_file", &self.tls.client_cert_file),
                ("tls.client_key_file", &self.tls.client_key_file),
            ] {
                if let Some(p) = p {
                    check_file(&mut errs, name, p);
                }
            }
            for (name, v) in &self.headers {
                match v.resolve() {
                    Ok(s) if !header_value_ok(s.expose()) => errs.push(format!(
                        "headers.{name}: the value has control characters (CR, LF, NUL...)"
                    )),
                    Ok(_) => {}
                    // Literals were checked above; the error names the source, not the value.
                    Err(e) => errs.push(format!("headers.{name}: {e}")),
                }
            }
            for (name, v) in &self.resource {
                if let Err(e) = v.resolve() {
                    errs.push(format!("resource.{name}: {e}"));
                }
            }
        }
        errs
    }
}

/// The pieces of `endpoint` the transports need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct EndpointParts {
    pub tls: bool,
    /// Host name or IP literal, without the brackets of an IPv6 literal (for DNS and SNI).
    pub host: String,
    pub port: u16,
    /// `host:port` as written (brackets kept): the `Host` header and gRPC `:authority`.
    pub authority: String,
    /// The path with no trailing `/` (empty for none).
    pub base_path: String,
}

impl EndpointParts {
    pub fn parse(s: &str) -> Result<EndpointParts, String> {
        let uri: http::Uri = s.parse().map_err(|_| "malformed URL".to_string())?;
        let tls = match uri.scheme_str() {
            Some(x) if x.eq_ignore_ascii_case("http") => false,
            Some(x) if x.eq_ignore_ascii_case("https") => true,
            _ => return Err("only http:// and https:// are supported".into()),
        };
        let auth = uri.authority().ok_or("no host")?;
        if auth.as_str().contains('@') {
            return Err("user info in the URL is not supported (use headers)".into());
        }
        if uri.query().is_some() {
            return Err("a query string is not supported".into());
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("no host".into());
        }
        let port = auth.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(EndpointParts {
            tls,
            host: host.to_string(),
            port,
            authority: auth.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

fn check_file(errs: &mut Vec<String>, what: &str, p: &Path) {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => {}
        Ok(_) => errs.push(format!("{what} {}: not a file", p.display())),
        Err(e) => errs.push(format!("{what} {}: {e}", p.display())),
    }
}

/// HTTP token characters, as gRPC metadata allows them (lower-cased on use). Names the
/// transport owns are refused: overriding them would break the request.
pub(super) fn check_header_name(name: &str, protocol: Protocol) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty header name".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err("header names may only contain letters, digits, '-', '_' and '.'".into());
    }
    let lower = name.to_ascii_lowercase();
    let reserved = matches!(
        lower.as_str(),
        "content-type" | "content-length" | "host" | "te" | "connection" | "transfer-encoding"
    ) || lower.starts_with("grpc-");
    if reserved {
        return Err("this header is set by the transport".into());
    }
    if protocol == Protocol::Grpc && lower.ends_with("-bin") {
        return Err("binary gRPC metadata (-bin) is not supported".into());
    }
    Ok(())
}

/// Visible ASCII, spaces and tabs, or any non-ASCII byte (HTTP `field-value`); CR, LF and
/// other controls would split or corrupt the request.
pub(super) fn header_value_ok(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<OtlpConfig, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn defaults_are_disabled_and_valid() {
        let c = OtlpConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.export_interval(), Duration::from_secs(15));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(parse("").unwrap(), c);
    }

    #[test]
    fn full_section_parses() {
        let c = parse(
            r#"
            enabled = true
            endpoint = "https://otel-collector.monitoring:4318"
            protocol = "http_protobuf"
            export_interval_ms = 30000
            [headers]
            authorization = { env = "OTLP_TOKEN_FOR_TEST_UNSET" }
            x-tenant = "plant-7"
            api-key = { file = "/nonexistent/otlp-key" }
            [tls]
            ca_file = "/etc/ssl/ca.pem"
            [resource]
            "k8s.pod.name" = { env = "POD_NAME" }
            "deployment.environment" = "prod"
            "#,
        )
        .unwrap();
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(
            c.headers["authorization"].0,
            ValueFrom::Env {
                env: "OTLP_TOKEN_FOR_TEST_UNSET".into()
            }
        );
        assert_eq!(
            c.resource["deployment.environment"],
            ValueFrom::Literal("prod".into())
        );
        assert_eq!(
            parse("protocol = \"http/protobuf\"").unwrap().protocol,
            Protocol::HttpProtobuf
        );
        // Unknown keys are errors, also inside a value source.
        assert!(parse("endpont = \"x\"").is_err());
        assert!(parse("[headers]\na = { env = \"X\", file = \"/y\" }").is_err());
    }

    #[test]
    fn every_problem_is_named() {
        let mut c = parse(
            r#"
            enabled = true
            metrics = false
            logs = false
            endpoint = "http://collector:4317/v1"
            export_interval_ms = 5
            timeout_ms = 0
            max_queued_logs = 0
            max_batch_logs = 100000
            [headers]
            "bad header" = "x"
            a = { env = "OTLP_TOKEN_FOR_TEST_UNSET" }
            b = { file = "/nonexistent/otlp-key" }
            c = "line\nbreak"
            grpc-timeout = "1S"
            [tls]
            client_cert_file = "/nonexistent/cert.pem"
            [resource]
            "" = "x"
            pod = { env = "OTLP_POD_FOR_TEST_UNSET" }
            "#,
        )
        .unwrap();
        let errs = c.validate();
        let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
        for needle in [
            "endpoint: a gRPC endpoint has no path",
            "tls: files are given but the endpoint is not https://",
            "export_interval_ms",
            "timeout_ms",
            "max_queued_logs",
            "max_batch_logs",
            "nothing to export",
            "headers.bad header:",
            "headers.a: environment variable \"OTLP_TOKEN_FOR_TEST_UNSET\" is not set",
            "headers.b: /nonexistent/otlp-key",
            "headers.c: the value has control characters",
            "headers.grpc-timeout: this header is set by the transport",
            "tls.client_cert_file and tls.client_key_file go together",
            "tls.client_cert_file /nonexistent/cert.pem",
            "resource: an attribute name is empty",
            "resource.pod: environment variable",
        ] {
            assert!(has(needle), "missing {needle:?} in {errs:#?}");
        }
        // Disabled: sources are not read, shape problems remain.
        c.enabled = false;
        let errs = c.validate();
        assert!(!errs.iter().any(|e| e.contains("environment variable")));
        assert!(errs.iter().any(|e| e.contains("max_queued_logs")));
        c.endpoint = "ftp://x".into();
        assert!(
            c.validate()
                .iter()
                .any(|e| e.starts_with("endpoint \"ftp://x\""))
        );
    }

    #[test]
    fn endpoint_pieces() {
        let e = EndpointParts::parse("https://[::1]:4318/otlp/").unwrap();
        assert!(e.tls);
        assert_eq!(e.host, "::1");
        assert_eq!(e.authority, "[::1]:4318");
        assert_eq!((e.port, e.base_path.as_str()), (4318, "/otlp"));
        let e = EndpointParts::parse("http://otel-collector:4317").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("otel-collector", 4317, "")
        );
        assert_eq!(EndpointParts::parse("http://c").unwrap().port, 80);
        for bad in [
            "otel:4317",
            "http://u:p@h:1",
            "http://h:1/?k=v",
            "udp://h:1",
            "",
        ] {
            assert!(EndpointParts::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = parse("[headers]\nauthorization = \"Bearer s3cr3t\"\nx = { env = \"TOKEN_VAR\" }")
            .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("TOKEN_VAR"));
        let ser = toml::to_string(&c).unwrap();
        assert!(!ser.contains("s3cr3t"), "{ser}");
        assert_eq!(
            c.headers["authorization"].resolve().unwrap().expose(),
            "Bearer s3cr3t"
        );
    }

    #[test]
    fn file_values_lose_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("mqscope-otlp-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tok");
        std::fs::write(&p, "abc\r\n").unwrap();
        assert_eq!(
            ValueFrom::File { file: p.clone() }.resolve().unwrap(),
            "abc"
        );
        std::fs::write(&p, "abc\n\n").unwrap();
        assert_eq!(ValueFrom::File { file: p }.resolve().unwrap(), "abc\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

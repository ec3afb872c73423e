//! Configuration of the broker connection, its validation, and the password handling.
//! The password is never in the configuration itself: only where to read it (a file or an
//! environment variable), and once read it lives in a [`Secret`] whose `Debug` is redacted.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where and how to connect. Every field has a default; `url` is the only one usually set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerInputConfig {
    /// `mqtt://host:port`, `mqtts://host:port` (TLS) or `host:port` (plain). Port
    /// defaults to 1883, or 8883 for `mqtts`. IPv6 as `[::1]:1883`.
    pub url: String,
    /// Client id; default `mqscope-<pid>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// PEM CA bundle to verify the broker; default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) and key, for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Accept any broker certificate. For tests only: it defeats TLS's protection.
    pub insecure_skip_verify: bool,
    /// Filters for `$SYS` (`#` does not match topics starting with `$`).
    pub sys_topics: Vec<String>,
    /// Filter for the topic the EMQX rule in `deploy/emqx/` republishes events to; `None`
    /// subscribes to none.
    pub events_topic: Option<String>,
    pub keepalive_secs: u16,
    /// First reconnect delay, doubled after each failure up to `backoff_max_ms`, with up to
    /// 25% random jitter so a fleet of sidecars does not reconnect in step.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Messages buffered towards the consumer; beyond this they are dropped and counted
    /// (the connection is never stalled by a slow consumer).
    pub channel_capacity: usize,
    /// Largest incoming packet accepted.
    pub max_packet_bytes: usize,
}

impl Default for BrokerInputConfig {
    fn default() -> Self {
        BrokerInputConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: None,
            username: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            insecure_skip_verify: false,
            sys_topics: vec!["$SYS/#".into()],
            events_topic: Some(DEFAULT_EVENTS_TOPIC.into()),
            keepalive_secs: 30,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            channel_capacity: 4096,
            max_packet_bytes: 1024 * 1024,
        }
    }
}

/// Where `deploy/emqx/` republishes EMQX events. Not under `$events/`: that prefix is
/// EMQX's own namespace for rule sources, and MQTT reserves `$` topics for the broker.
pub const DEFAULT_EVENTS_TOPIC: &str = "mqscope/emqx/events/#";

/// Transport chosen by the URL scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Tcp,
    Tls,
}

/// A parsed `url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Host name or IP, without brackets.
    pub host: String,
    pub port: u16,
}

/// Parses `mqtt://h:p`, `mqtts://h:p`, `tcp://`, `ssl://`, `tls://` or bare `h:p`.
pub fn parse_url(url: &str) -> Result<Endpoint, String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("mqtt" | "tcp", r)) => (Scheme::Tcp, r),
        Some(("mqtts" | "ssl" | "tls", r)) => (Scheme::Tls, r),
        Some((s, _)) => return Err(format!("url {url:?}: unknown scheme {s:?} (mqtt or mqtts)")),
        None => (Scheme::Tcp, url),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "url {url:?}: only scheme://host:port is accepted (no path, no user)"
        ));
    }
    let default_port = if scheme == Scheme::Tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("url {url:?}: unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("url {url:?}: junk after ']'")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(format!("url {url:?}: no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("url {url:?}: bad port {p:?}")),
        },
    };
    Ok(Endpoint {
        scheme,
        host: host.to_owned(),
        port,
    })
}

/// A password. `Debug` prints `Secret(***)`; there is no `Display` and no `Serialize`, so
/// it cannot end up in a log line or a report by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The only way to the text; call it where the password is handed to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl BrokerInputConfig {
    /// Every problem at once (an operator fixing a config should not discover them one
    /// restart at a time). Checks that the files exist and the variable is set; their
    /// content is checked when read.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let scheme = match parse_url(&self.url) {
            Ok(ep) => Some(ep.scheme),
            Err(e) => {
                errs.push(e);
                None
            }
        };
        if let Some(id) = &self.client_id
            && (id.is_empty() || id.len() > 65535)
        {
            errs.push("client_id must be 1..=65535 bytes".into());
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            errs.push("give password_file or password_env, not both".into());
        }
        if (self.password_file.is_some() || self.password_env.is_some()) && self.username.is_none()
        {
            errs.push("a password needs a username".into());
        }
        if let Some(p) = &self.password_file {
            check_file(&mut errs, "password_file", p);
        }
        if let Some(v) = &self.password_env
            && std::env::var_os(v).is_none()
        {
            errs.push(format!(
                "password_env: environment variable {v:?} is not set"
            ));
        }
        for (name, p) in [
            ("ca_file", &self.ca_file),
            ("client_cert_file", &self.client_cert_file),
            ("client_key_file", &self.client_key_file),
        ] {
            if let Some(p) = p {
                check_file(&mut errs, name, p);
            }
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            errs.push("client_cert_file and client_key_file go together".into());
        }
        let tls_opts = self.ca_file.is_some()
            || self.client_cert_file.is_some()
            || self.client_key_file.is_some()
            || self.insecure_skip_verify;
        if tls_opts && scheme == Some(Scheme::Tcp) {
            errs.push("TLS options given but the url is not mqtts://".into());
        }
        if self.sys_topics.is_empty() && self.events_topic.is_none() {
            errs.push("nothing to subscribe to: sys_topics is empty and events_topic unset".into());
        }
        for t in self.sys_topics.iter().chain(self.events_topic.iter()) {
            if let Err(e) = check_filter(t) {
                errs.push(format!("topic filter {t:?}: {e}"));
            }
        }
        // rumqttc refuses keep-alives under 1 s; under 5 s only adds load.
        if self.keepalive_secs < 5 {
            errs.push("keepalive_secs must be at least 5".into());
        }
        if self.backoff_initial_ms == 0 {
            errs.push("backoff_initial_ms must be > 0".into());
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            errs.push("backoff_max_ms must be >= backoff_initial_ms".into());
        }
        if self.channel_capacity == 0 {
            errs.push("channel_capacity must be > 0".into());
        }
        if self.max_packet_bytes < 1024 {
            errs.push("max_packet_bytes must be at least 1024".into());
        }
        errs
    }

    /// Reads the password from its file or variable. Errors name the source, never the
    /// content.
    pub fn load_password(&self) -> Result<Option<Secret>, String> {
        if let Some(p) = &self.password_file {
            let s = std::fs::read_to_string(p)
                .map_err(|e| format!("password_file {}: {e}", p.display()))?;
            let s = s.strip_suffix('\n').unwrap_or(&s);
            let s = s.strip_suffix('\r').unwrap_or(s);
            return Ok(Some(Secret(s.to_owned())));
        }
        if let Some(v) = &self.password_env {
            return match std::env::var(v) {
                Ok(s) => Ok(Some(Secret(s))),
                Err(_) => Err(format!("password_env {v:?}: not set or not UTF-8")),
            };
        }
        Ok(None)
    }

    pub fn client_id_or_default(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("mqscope-{}", std::process::id()))
    }
}

fn check_file(errs: &mut Vec<String>, what: &str, p: &Path) {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => {}
        Ok(_) => errs.push(format!("{what} {}: not a file", p.display())),
        Err(e) => errs.push(format!("{what} {}: {e}", p.display())),
    }
}

/// MQTT topic filter rules: non-empty, no NUL, `#` only as the whole last level, `+` only
/// as a whole level.
fn check_filter(f: &str) -> Result<(), &'static str> {
    if f.is_empty() {
        return Err("empty");
    }
    if f.contains('\0') {
        return Err("contains NUL");
    }
    let levels: Vec<&str> = f.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err("'#' must be the whole last level");
        }
        if l.contains('+') && *l != "+" {
            return Err("'+' must be a whole level");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ep = parse_url("mqtt://broker:1884").unwrap();
        assert_eq!(
            (ep.scheme, ep.host.as_str(), ep.port),
            (Scheme::Tcp, "broker", 1884)
        );
        let ep = parse_url("mqtts://broker").unwrap();
        assert_eq!((ep.scheme, ep.port), (Scheme::Tls, 8883));
        let ep = parse_url("10.0.0.1:1883").unwrap();
        assert_eq!((ep.scheme, ep.host.as_str()), (Scheme::Tcp, "10.0.0.1"));
        let ep = parse_url("mqtts://[::1]:8884/").unwrap();
        assert_eq!((ep.host.as_str(), ep.port), ("::1", 8884));
        assert!(parse_url("http://x:1").is_err());
        assert!(parse_url("mqtt://x:0").is_err());
        assert!(parse_url("mqtt://x:99999").is_err());
        assert!(parse_url("mqtt://:1883").is_err());
        assert!(parse_url("mqtt://u:p@x:1883").is_err());
        assert!(parse_url("mqtt://x:1883/path").is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(***))");
    }

    #[test]
    fn validate_reports_every_problem() {
        let cfg = BrokerInputConfig {
            url: "mqtt://h:1883".into(),
            password_file: Some("/nonexistent/pw".into()),
            password_env: Some("MQSCOPE_TEST_SURELY_UNSET_VAR".into()),
            client_cert_file: Some("/nonexistent/cert.pem".into()),
            insecure_skip_verify: true,
            sys_topics: vec!["$SYS/#/x".into()],
            keepalive_secs: 1,
            backoff_initial_ms: 10,
            backoff_max_ms: 5,
            ..BrokerInputConfig::default()
        };
        let errs = cfg.validate();
        let want = [
            "not both",
            "needs a username",
            "password_file /nonexistent/pw",
            "MQSCOPE_TEST_SURELY_UNSET_VAR",
            "client_cert_file /nonexistent/cert.pem",
            "go together",
            "not mqtts",
            "'#' must be",
            "keepalive_secs",
            "backoff_max_ms",
        ];
        for w in want {
            assert!(
                errs.iter().any(|e| e.contains(w)),
                "missing {w:?} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        assert!(BrokerInputConfig::default().validate().is_empty());
    }

    #[test]
    fn config_rejects_unknown_fields_and_fills_defaults() {
        let c: BrokerInputConfig = serde_json::from_str(r#"{"url":"mqtts://b"}"#).unwrap();
        assert_eq!(c.sys_topics, vec!["$SYS/#".to_string()]);
        assert!(!c.insecure_skip_verify);
        assert!(serde_json::from_str::<BrokerInputConfig>(r#"{"password":"x"}"#).is_err());
    }

    #[test]
    fn password_from_an_environment_variable() {
        // PATH is set wherever tests run; setting a variable is unsafe in edition 2024.
        let cfg = BrokerInputConfig {
            username: Some("u".into()),
            password_env: Some("PATH".into()),
            ..BrokerInputConfig::default()
        };
        assert!(cfg.validate().is_empty());
        let want = std::env::var("PATH").unwrap();
        assert_eq!(cfg.load_password().unwrap().unwrap().expose(), want);
        assert!(
            !format!("{cfg:?}").contains(&want),
            "config holds no password"
        );
    }

    #[test]
    fn password_file_trailing_newline_is_dropped() {
        let dir = std::env::temp_dir().join(format!("mqscope-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let cfg = BrokerInputConfig {
            username: Some("u".into()),
            password_file: Some(p),
            ..BrokerInputConfig::default()
        };
        assert!(cfg.validate().is_empty());
        assert_eq!(cfg.load_password().unwrap().unwrap().expose(), "s3cret");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

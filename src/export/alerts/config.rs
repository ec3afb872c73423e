//! `[alerts]` of the config file: where alerts go. Receivers are listed as
//! `[[alerts.receivers]]`; URLs and keys can come from a file or the environment (Slack,
//! Teams and PagerDuty URLs embed credentials; Kubernetes mounts them from a Secret), and
//! once read they are `Secret`s that never reach logs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::deliver::{ReceiverConfig, ReceiverKind};
use super::secret::Secret;

/// Where mqscope keeps undelivered alerts across restarts unless configured.
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/mqscope/alerts";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Directory of the per-receiver spools and ledgers (must survive restarts: a
    /// PersistentVolume or emptyDir in Kubernetes, see deploy/).
    pub spool_dir: PathBuf,
    /// Alerts firing at once; beyond, new ones are refused and counted (a firing alert is
    /// never evicted: its resolution would be lost).
    pub max_firing: usize,
    /// Put in every alert's `generatorURL` (e.g. the pod's `/metrics` or a Grafana link).
    pub generator_url: String,
    /// On shutdown, how long to keep delivering what is queued (the spool keeps the rest).
    pub shutdown_flush_s: u64,
    /// After a restart, an alert that was firing resolves unless a detector raises it
    /// again within this time (set it to at least the rules' `cooldown_s`).
    pub restore_grace_s: u64,
    pub receivers: Vec<ReceiverSpec>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            spool_dir: PathBuf::from(DEFAULT_SPOOL_DIR),
            max_firing: 1000,
            generator_url: String::new(),
            shutdown_flush_s: 3,
            restore_grace_s: 60,
            receivers: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverType {
    /// Prometheus Alertmanager; `url` is its base (`/api/v2/alerts` is appended).
    Alertmanager,
    /// Any receiver of Alertmanager's webhook JSON (version 4).
    Webhook,
    /// Slack incoming webhook.
    Slack,
    /// Microsoft Teams Workflows webhook (Adaptive Card).
    Teams,
    /// PagerDuty Events API v2 (`url` defaults to the public endpoint).
    Pagerduty,
}

/// One `[[alerts.receivers]]` entry. Exactly one of `url`, `url_file`, `url_env`
/// (PagerDuty: optional, defaults to its public endpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSpec {
    /// Unique: names the spool files and the receiver in logs and metrics.
    pub name: String,
    pub kind: ReceiverType,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    #[serde(default)]
    pub url_env: Option<String>,
    /// PagerDuty integration key (routing key): from a file or the environment only.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// PagerDuty `source` (default: the host name).
    #[serde(default)]
    pub source: Option<String>,
    /// Webhook v4 `externalURL` and `groupLabels` names.
    #[serde(default)]
    pub external_url: Option<String>,
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Re-send a still-firing alert this often (default: 60 s for Alertmanager, which
    /// expects refreshes before its resolve_timeout; 4 h for the others).
    #[serde(default)]
    pub repeat_interval_s: Option<u64>,
    #[serde(default)]
    pub queue_capacity: Option<usize>,
    #[serde(default)]
    pub spool_max_bytes: Option<usize>,
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// PEM CA bundle for `https://` instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

fn read_secret_file(p: &Path) -> Result<String, String> {
    match std::fs::read_to_string(p) {
        Ok(s) if s.trim().is_empty() => Err(format!("{} is empty", p.display())),
        // Mounted Secrets often end in a newline.
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    }
}

fn read_secret_env(var: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(format!("environment variable {var} is not set")),
    }
}

impl ReceiverSpec {
    fn url(&self) -> Result<Option<Secret>, String> {
        let given = [
            self.url.is_some(),
            self.url_file.is_some(),
            self.url_env.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if given > 1 {
            return Err("give one of url, url_file, url_env".into());
        }
        if let Some(u) = &self.url {
            return Ok(Some(Secret::new(u.trim())));
        }
        if let Some(p) = &self.url_file {
            return read_secret_file(p).map(|s| Some(Secret::new(s)));
        }
        if let Some(v) = &self.url_env {
            return read_secret_env(v).map(|s| Some(Secret::new(s)));
        }
        Ok(None)
    }

    fn routing_key(&self) -> Result<Secret, String> {
        match (&self.routing_key_file, &self.routing_key_env) {
            (Some(_), Some(_)) => Err("give routing_key_file or routing_key_env, not both".into()),
            (Some(p), None) => read_secret_file(p).map(Secret::new),
            (None, Some(v)) => read_secret_env(v).map(Secret::new),
            (None, None) => Err("pagerduty needs routing_key_file or routing_key_env".into()),
        }
    }

    /// The runnable receiver configuration: reads the secrets now. Every problem as a
    /// sentence.
    pub fn resolve(&self, spool_dir: &Path) -> Result<ReceiverConfig, Vec<String>> {
        let mut errs = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errs.push(format!(
                "name {:?} must be non-empty letters, digits, '-' or '_' (it names files)",
                self.name
            ));
        }
        let url = match self.url() {
            Ok(u) => u,
            Err(e) => {
                errs.push(e);
                None
            }
        };
        let url = match (url, self.kind) {
            (Some(u), _) => Some(u),
            (None, ReceiverType::Pagerduty) => Some(Secret::new(PAGERDUTY_URL)),
            (None, _) if errs.is_empty() => {
                errs.push("needs url, url_file or url_env".into());
                None
            }
            (None, _) => None,
        };
        // The error names the problem, never the URL (it may hold a key).
        if let Some(Err(e)) = url
            .as_ref()
            .map(|u| super::client::HttpTarget::parse(u.expose()))
        {
            errs.push(format!("url: {e}"));
        }
        let routing_key = if self.kind == ReceiverType::Pagerduty {
            match self.routing_key() {
                Ok(k) => Some(k),
                Err(e) => {
                    errs.push(e);
                    None
                }
            }
        } else {
            if self.routing_key_file.is_some() || self.routing_key_env.is_some() {
                errs.push("routing_key_file/routing_key_env are for kind = \"pagerduty\"".into());
            }
            None
        };
        if self.kind != ReceiverType::Webhook
            && (self.external_url.is_some() || !self.group_by.is_empty())
        {
            errs.push("external_url and group_by are for kind = \"webhook\"".into());
        }
        if self.queue_capacity == Some(0) {
            errs.push("queue_capacity must be at least 1".into());
        }
        if self.timeout_s == Some(0) {
            errs.push("timeout_s must be at least 1".into());
        }
        if self.repeat_interval_s == Some(0) {
            errs.push("repeat_interval_s must be at least 1".into());
        }
        if let Some((p, Err(e))) = self.ca_file.as_ref().map(|p| (p, std::fs::metadata(p))) {
            errs.push(format!("ca_file {}: {e}", p.display()));
        }
        let Some(url) = url else {
            return Err(errs);
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        let kind = match self.kind {
            ReceiverType::Alertmanager => ReceiverKind::Alertmanager { url },
            ReceiverType::Webhook => ReceiverKind::Webhook {
                url,
                external_url: self.external_url.clone().unwrap_or_default(),
                group_by: self.group_by.clone(),
            },
            ReceiverType::Slack => ReceiverKind::Slack { url },
            ReceiverType::Teams => ReceiverKind::Teams { url },
            ReceiverType::Pagerduty => ReceiverKind::PagerDuty {
                url,
                routing_key: routing_key.unwrap_or_else(|| Secret::new("")),
                source: self.source.clone().unwrap_or_else(host_name),
            },
        };
        let mut cfg = ReceiverConfig::new(self.name.clone(), kind, spool_dir.to_path_buf());
        if let Some(s) = self.repeat_interval_s {
            cfg.repeat_interval = Duration::from_secs(s);
        }
        if let Some(q) = self.queue_capacity {
            cfg.queue_capacity = q;
        }
        if let Some(b) = self.spool_max_bytes {
            cfg.spool_max_bytes = b;
        }
        if let Some(t) = self.timeout_s {
            cfg.request_timeout = Duration::from_secs(t);
        }
        cfg.ca_file.clone_from(&self.ca_file);
        Ok(cfg)
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mqscope".to_string())
}

impl AlertsConfig {
    /// Every problem, as `(key, sentence)` with keys like `alerts.receivers[1]`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if self.max_firing == 0 {
            errs.push(("alerts.max_firing".into(), "must be at least 1".into()));
        }
        if !self.receivers.is_empty() && self.spool_dir.as_os_str().is_empty() {
            errs.push(("alerts.spool_dir".into(), "must not be empty".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let key = format!("alerts.receivers[{i}]");
            if !names.insert(r.name.as_str()) {
                errs.push((key.clone(), format!("name {:?} is used twice", r.name)));
            }
            if let Err(es) = r.resolve(&self.spool_dir) {
                for e in es {
                    errs.push((key.clone(), format!("{}: {e}", r.name)));
                }
            }
        }
        errs
    }

    /// The receivers' runnable configurations (call after `validate` found nothing).
    pub fn resolve(&self) -> Result<Vec<ReceiverConfig>, Vec<String>> {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for r in &self.receivers {
            match r.resolve(&self.spool_dir) {
                Ok(c) => out.push(c),
                Err(es) => errs.extend(es.into_iter().map(|e| format!("{}: {e}", r.name))),
            }
        }
        if errs.is_empty() { Ok(out) } else { Err(errs) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ReceiverType) -> ReceiverSpec {
        ReceiverSpec {
            name: "r1".into(),
            kind,
            url: None,
            url_file: None,
            url_env: None,
            routing_key_file: None,
            routing_key_env: None,
            source: None,
            external_url: None,
            group_by: Vec::new(),
            repeat_interval_s: None,
            queue_capacity: None,
            spool_max_bytes: None,
            timeout_s: None,
            ca_file: None,
        }
    }

    #[test]
    fn url_from_file_is_trimmed_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("mqscope-alerts-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("slack-url");
        std::fs::write(
            &f,
            "https://hooks.slack.test/services/T000/B000/SECRETKEY\n",
        )
        .unwrap();
        let mut s = spec(ReceiverType::Slack);
        s.url_file = Some(f);
        let cfg = s.resolve(&dir).unwrap();
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("SECRETKEY"), "{printed}");
        match cfg.kind {
            ReceiverKind::Slack { url } => assert!(url.expose().ends_with("/SECRETKEY")),
            other => panic!("{other:?}"),
        }
        // Non-Alertmanager receivers default to Alertmanager's 4 h repeat_interval.
        assert_eq!(cfg.repeat_interval, Duration::from_secs(4 * 3600));
    }

    #[test]
    fn every_problem_is_reported() {
        let mut a = AlertsConfig::default();
        let mut p = spec(ReceiverType::Pagerduty);
        p.name = "bad name".into();
        p.routing_key_env = Some("MQSCOPE_TEST_SURELY_UNSET_VAR".into());
        let mut w = spec(ReceiverType::Webhook);
        w.url = Some("ftp://x".into());
        w.url_env = Some("X".into());
        let mut s = spec(ReceiverType::Slack);
        s.name = "r1".into();
        s.group_by = vec!["alertname".into()];
        s.url = Some("http://127.0.0.1:1/".into());
        w.name = "r1".into();
        a.receivers = vec![p, w, s];
        let errs = a.validate();
        let text = format!("{errs:?}");
        assert!(
            errs.iter().any(|(_, m)| m.contains("\"bad name\" must be")),
            "{text}"
        );
        assert!(text.contains("MQSCOPE_TEST_SURELY_UNSET_VAR"), "{text}");
        assert!(text.contains("give one of url"), "{text}");
        assert!(text.contains("used twice"), "{text}");
        assert!(text.contains("group_by are for kind"), "{text}");
        // PagerDuty without a URL defaults to the public endpoint: no URL error for it.
        assert!(
            !errs
                .iter()
                .any(|(k, m)| k == "alerts.receivers[0]" && m.contains("needs url")),
            "{text}"
        );
    }
}

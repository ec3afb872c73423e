//! `AzureLogsConfig`: the `[azure_logs]` section. Where rows go (a data collection
//! endpoint, or a DCR's own logs ingestion endpoint; the DCR's immutable id; its stream),
//! how mqscope gets a token for them, and the batching and retry bounds.
//!
//! Identity values not set here come from the variables the AKS workload identity webhook
//! injects into the pod (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`,
//! `AZURE_AUTHORITY_HOST`; see
//! <https://azure.github.io/azure-workload-identity/docs/installation/mutating-admission-webhook.html>).
//! Environment access goes through a lookup function so validation is testable without
//! touching the process environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::export::alerts::client::HttpTarget;

/// The table's input stream in `deploy/azure/logs-ingestion.json`.
pub const DEFAULT_STREAM: &str = "Custom-MqscopeEvents_CL";
/// Microsoft Entra ID in Azure's public cloud.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";
/// The Logs Ingestion API's resource (`/.default`: the permissions granted to the app).
pub const DEFAULT_SCOPE: &str = "https://monitor.azure.com/.default";
/// "Maximum size of API call: 1 MB for both compressed and uncompressed data" (Azure
/// Monitor service limits, Logs Ingestion API). Read strictly: the uncompressed JSON
/// array must fit, and therefore so does its gzip form. Microsoft's own Python client
/// cuts chunks at 1 MiB of uncompressed JSON (`azure-monitor-ingestion`, `_helpers.py`);
/// 1,000,000 stays below both readings of "MB".
pub const MAX_BATCH_BYTES_LIMIT: usize = 1_000_000;
/// Smallest batch limit accepted (tests use a few KiB to exercise splitting).
pub const MIN_BATCH_BYTES: usize = 1024;

pub const ENV_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const ENV_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const ENV_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const ENV_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Microsoft Entra Workload ID: the pod's projected service account token is the
    /// client assertion (AKS).
    #[default]
    WorkloadIdentity,
    /// An app registration's client secret (outside Kubernetes).
    ClientSecret,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureLogsConfig {
    pub enabled: bool,
    /// Data collection endpoint (DCE) logs ingestion URL or the DCR's own
    /// `logsIngestion` endpoint, e.g. `https://mqscope-dce-a1b2.westeurope-1.ingest.monitor.azure.com`.
    pub endpoint: String,
    /// The DCR's `immutableId`: `dcr-` and 32 hex digits.
    pub dcr_immutable_id: String,
    /// Stream declared in the DCR.
    pub stream: String,
    pub auth: AuthMethod,
    /// Directory (tenant) id; default `$AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// Application (client) id of the app registration or user-assigned managed identity;
    /// default `$AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// Entra ID authority; default `$AZURE_AUTHORITY_HOST`, else the public cloud's.
    pub authority_host: Option<String>,
    /// Token scope; other clouds use their own (`https://monitor.azure.us/.default`, ...).
    pub scope: String,
    /// workload_identity: the projected service account token; default
    /// `$AZURE_FEDERATED_TOKEN_FILE`. Re-read for every token request (kubelet rotates it).
    pub federated_token_file: Option<PathBuf>,
    /// client_secret: a file holding the secret (trailing newline ignored; re-read for
    /// every token request, so a rotated Kubernetes secret is picked up) ...
    pub client_secret_file: Option<PathBuf>,
    /// ... or the name of an environment variable holding it.
    pub client_secret_env: Option<String>,
    /// Longest uncompressed JSON array per request (its gzip form is also checked).
    pub max_batch_bytes: usize,
    /// A partial batch is sent once its oldest row has waited this long.
    pub flush_interval_ms: u64,
    /// Rows accepted but not yet delivered; beyond this new rows are dropped and counted.
    pub max_queued_records: usize,
    /// One HTTP exchange (connect, TLS, request, answer).
    pub request_timeout_secs: u64,
    /// A batch still failing this long after its first attempt is dropped and counted.
    pub max_retry_secs: u64,
    /// Retry backoff: doubles from initial to max, each wait jittered to [½, 1] of it.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// PEM CA bundle for both endpoints instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` endpoint and authority. For tests against local stand-ins only:
    /// tokens would cross the network in clear text.
    pub allow_insecure_http: bool,
}

impl Default for AzureLogsConfig {
    fn default() -> Self {
        AzureLogsConfig {
            enabled: false,
            endpoint: String::new(),
            dcr_immutable_id: String::new(),
            stream: DEFAULT_STREAM.to_string(),
            auth: AuthMethod::WorkloadIdentity,
            tenant_id: None,
            client_id: None,
            authority_host: None,
            scope: DEFAULT_SCOPE.to_string(),
            federated_token_file: None,
            client_secret_file: None,
            client_secret_env: None,
            max_batch_bytes: MAX_BATCH_BYTES_LIMIT,
            flush_interval_ms: 5_000,
            max_queued_records: 50_000,
            request_timeout_secs: 30,
            max_retry_secs: 600,
            backoff_initial_ms: 500,
            backoff_max_ms: 60_000,
            ca_file: None,
            allow_insecure_http: false,
        }
    }
}

/// Where the client secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SecretSource {
    File(PathBuf),
    /// Read once at start; the value itself lives in a `Secret`.
    Env(String),
}

/// The identity part after environment defaults are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub tenant_id: String,
    pub client_id: String,
    pub authority_host: String,
    pub credential: CredentialSource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CredentialSource {
    FederatedTokenFile(PathBuf),
    ClientSecret(SecretSource),
}

impl AzureLogsConfig {
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn max_retry(&self) -> Duration {
        Duration::from_secs(self.max_retry_secs)
    }

    /// `{endpoint}/dataCollectionRules/{id}/streams/{stream}?api-version=2023-01-01`
    /// (Logs Ingestion API, "Upload", stable 2023-01-01).
    pub fn ingestion_url(&self) -> String {
        format!(
            "{}/dataCollectionRules/{}/streams/{}?api-version=2023-01-01",
            self.endpoint.trim_end_matches('/'),
            self.dcr_immutable_id,
            self.stream
        )
    }

    /// Every problem with this section, each starting with its key; empty when valid or
    /// disabled. Reads the process environment for the identity defaults.
    pub fn validate(&self) -> Vec<String> {
        self.validate_with(&|k| std::env::var(k).ok())
    }

    /// [`validate`](Self::validate) with an explicit environment.
    pub fn validate_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        if !self.enabled {
            return Vec::new();
        }
        let mut errs = Vec::new();
        let url = |key: &str, value: &str, errs: &mut Vec<String>| match HttpTarget::parse(value) {
            Err(e) => errs.push(format!("{key} {value:?}: {e}")),
            Ok(t) if !t.is_tls() && !self.allow_insecure_http => errs.push(format!(
                "{key} must be https:// (tokens and data would cross the network in clear text)"
            )),
            Ok(_) if value.contains(['?', '#']) => {
                errs.push(format!("{key} must not carry a query or fragment"))
            }
            Ok(_) => {}
        };
        if self.endpoint.is_empty() {
            errs.push("endpoint is required (the DCE's or DCR's logs ingestion URL)".into());
        } else {
            url("endpoint", &self.endpoint, &mut errs);
        }
        if !is_dcr_id(&self.dcr_immutable_id) {
            errs.push(format!(
                "dcr_immutable_id must be dcr- and 32 hex digits (the DCR's immutableId; got {:?})",
                self.dcr_immutable_id
            ));
        }
        if !is_stream(&self.stream) {
            errs.push(format!(
                "stream must be Custom-<name> or Microsoft-<name> of letters, digits, _ and - (got {:?})",
                self.stream
            ));
        }
        if self.scope.is_empty() || self.scope.bytes().any(|b| b <= b' ' || b == 0x7f) {
            errs.push("scope must be a non-empty URI without spaces".into());
        }
        let id = self.identity_with(env);
        match &id.tenant_id {
            None => errs.push(format!("tenant_id is required (or set {ENV_TENANT_ID})")),
            Some(t) if !is_tenant(t) => errs.push(format!(
                "tenant_id must be a GUID or a domain name (got {t:?})"
            )),
            Some(_) => {}
        }
        match &id.client_id {
            None => errs.push(format!("client_id is required (or set {ENV_CLIENT_ID})")),
            Some(c) if c.is_empty() || c.bytes().any(|b| b <= b' ' || b >= 0x7f) => {
                errs.push(format!("client_id must be the application id (got {c:?})"))
            }
            Some(_) => {}
        }
        url("authority_host", &id.authority_host, &mut errs);
        match self.auth {
            AuthMethod::WorkloadIdentity => {
                if self.client_secret_file.is_some() || self.client_secret_env.is_some() {
                    errs.push(
                        "client_secret_file / client_secret_env need auth = \"client_secret\""
                            .into(),
                    );
                }
                match &id.federated_token_file {
                    None => errs.push(format!(
                        "federated_token_file is required for workload_identity (or set {ENV_FEDERATED_TOKEN_FILE})"
                    )),
                    Some(p) => check_file(&mut errs, "federated_token_file", p),
                }
            }
            AuthMethod::ClientSecret => {
                if self.federated_token_file.is_some() {
                    errs.push("federated_token_file needs auth = \"workload_identity\"".into());
                }
                match (&self.client_secret_file, &self.client_secret_env) {
                    (Some(_), Some(_)) => errs.push(
                        "client_secret_file: give client_secret_file or client_secret_env, not both"
                            .into(),
                    ),
                    (None, None) => errs.push(
                        "client_secret_file (or client_secret_env) is required for client_secret"
                            .into(),
                    ),
                    (Some(p), None) => check_file(&mut errs, "client_secret_file", p),
                    (None, Some(v)) if env(v).is_none() => errs.push(format!(
                        "client_secret_env: environment variable {v:?} is not set"
                    )),
                    (None, Some(_)) => {}
                }
            }
        }
        if !(MIN_BATCH_BYTES..=MAX_BATCH_BYTES_LIMIT).contains(&self.max_batch_bytes) {
            errs.push(format!(
                "max_batch_bytes must be between {MIN_BATCH_BYTES} and {MAX_BATCH_BYTES_LIMIT} (the API's 1 MB per call; got {})",
                self.max_batch_bytes
            ));
        }
        let ranges: [(&str, u64, u64, u64); 6] = [
            ("flush_interval_ms", self.flush_interval_ms, 10, 3_600_000),
            ("request_timeout_secs", self.request_timeout_secs, 1, 600),
            ("max_retry_secs", self.max_retry_secs, 1, 86_400),
            ("backoff_initial_ms", self.backoff_initial_ms, 1, 3_600_000),
            ("backoff_max_ms", self.backoff_max_ms, 1, 3_600_000),
            (
                "max_queued_records",
                self.max_queued_records as u64,
                1,
                10_000_000,
            ),
        ];
        for (key, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                errs.push(format!("{key} must be between {lo} and {hi} (got {v})"));
            }
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            errs.push("backoff_max_ms must be at least backoff_initial_ms".into());
        }
        if let Some(p) = &self.ca_file {
            check_file(&mut errs, "ca_file", p);
        }
        errs
    }

    /// Identity values with environment defaults (unvalidated).
    fn identity_with(&self, env: &dyn Fn(&str) -> Option<String>) -> PartialIdentity {
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        PartialIdentity {
            tenant_id: nonempty(self.tenant_id.clone()).or_else(|| nonempty(env(ENV_TENANT_ID))),
            client_id: nonempty(self.client_id.clone()).or_else(|| nonempty(env(ENV_CLIENT_ID))),
            authority_host: nonempty(self.authority_host.clone())
                .or_else(|| nonempty(env(ENV_AUTHORITY_HOST)))
                .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_string()),
            federated_token_file: self
                .federated_token_file
                .clone()
                .or_else(|| nonempty(env(ENV_FEDERATED_TOKEN_FILE)).map(PathBuf::from)),
        }
    }

    /// The identity to authenticate as, or every problem (as `validate_with`).
    pub(crate) fn resolve_identity(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Identity, Vec<String>> {
        let errs = self.validate_with(env);
        if !errs.is_empty() {
            return Err(errs);
        }
        let p = self.identity_with(env);
        let credential = match self.auth {
            AuthMethod::WorkloadIdentity => {
                CredentialSource::FederatedTokenFile(p.federated_token_file.unwrap_or_default())
            }
            AuthMethod::ClientSecret => CredentialSource::ClientSecret(
                match (&self.client_secret_file, &self.client_secret_env) {
                    (Some(f), _) => SecretSource::File(f.clone()),
                    (None, v) => SecretSource::Env(v.clone().unwrap_or_default()),
                },
            ),
        };
        Ok(Identity {
            tenant_id: p.tenant_id.unwrap_or_default(),
            client_id: p.client_id.unwrap_or_default(),
            authority_host: p.authority_host,
            credential,
        })
    }
}

struct PartialIdentity {
    tenant_id: Option<String>,
    client_id: Option<String>,
    authority_host: String,
    federated_token_file: Option<PathBuf>,
}

fn check_file(errs: &mut Vec<String>, key: &str, p: &Path) {
    if !p.is_file() {
        errs.push(format!("{key} {}: no such file", p.display()));
    }
}

/// `dcr-` and 32 hex digits, as the portal and `az monitor data-collection rule show
/// --query immutableId` print it.
pub fn is_dcr_id(s: &str) -> bool {
    s.strip_prefix("dcr-")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Stream names: `Custom-` for declared streams, `Microsoft-` for Azure tables. The name
/// goes into the URL path, so only URL-safe characters.
fn is_stream(s: &str) -> bool {
    let rest = s
        .strip_prefix("Custom-")
        .or_else(|| s.strip_prefix("Microsoft-"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && r.len() <= 200
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// A tenant GUID or a verified domain (`contoso.onmicrosoft.com`); it goes into the token
/// URL path.
fn is_tenant(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const DCR: &str = "dcr-0123456789abcdef0123456789ABCDEF";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file() -> PathBuf {
        // Any file that exists: validation only checks presence.
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")
    }

    fn valid() -> AzureLogsConfig {
        AzureLogsConfig {
            enabled: true,
            endpoint: "https://dce-x.westeurope-1.ingest.monitor.azure.com".into(),
            dcr_immutable_id: DCR.into(),
            tenant_id: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
            client_id: Some("00000000-0000-0000-0000-000000000001".into()),
            federated_token_file: Some(file()),
            ..AzureLogsConfig::default()
        }
    }

    #[test]
    fn disabled_default_is_valid_and_roundtrips() {
        let c = AzureLogsConfig::default();
        assert!(!c.enabled);
        assert!(c.validate_with(&no_env).is_empty());
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<AzureLogsConfig>(&text).unwrap(), c);
        assert!(serde_json::from_str::<AzureLogsConfig>(r#"{"endpoint_url": "x"}"#).is_err());
        let c: AzureLogsConfig =
            serde_json::from_str(r#"{"enabled": true, "auth": "client_secret"}"#).unwrap();
        assert_eq!(c.auth, AuthMethod::ClientSecret);
        assert_eq!(c.stream, DEFAULT_STREAM);
    }

    #[test]
    fn valid_config_and_its_url() {
        let c = valid();
        assert_eq!(c.validate_with(&no_env), Vec::<String>::new());
        let mut c2 = c.clone();
        c2.endpoint.push('/');
        assert_eq!(
            c2.ingestion_url(),
            format!(
                "https://dce-x.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/{DCR}/streams/Custom-MqscopeEvents_CL?api-version=2023-01-01"
            )
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let c = AzureLogsConfig {
            enabled: true,
            endpoint: "http://dce.example".into(),
            dcr_immutable_id: "dcr-123".into(),
            stream: "MqscopeEvents_CL".into(),
            authority_host: Some("ftp://login".into()),
            federated_token_file: Some("/nonexistent/token".into()),
            client_secret_env: Some("X".into()),
            max_batch_bytes: 2_000_000,
            flush_interval_ms: 0,
            backoff_initial_ms: 10,
            backoff_max_ms: 5,
            ..AzureLogsConfig::default()
        };
        let errs = c.validate_with(&no_env);
        let keys = [
            "endpoint must be https",
            "dcr_immutable_id",
            "stream",
            "tenant_id is required (or set AZURE_TENANT_ID)",
            "client_id is required (or set AZURE_CLIENT_ID)",
            "authority_host",
            "client_secret_file / client_secret_env need auth",
            "federated_token_file /nonexistent/token: no such file",
            "max_batch_bytes",
            "flush_interval_ms",
            "backoff_max_ms must be at least",
        ];
        for k in keys {
            assert!(
                errs.iter().any(|e| e.starts_with(k)),
                "{k} missing in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), keys.len(), "{errs:#?}");
    }

    #[test]
    fn workload_identity_comes_from_the_webhook_variables() {
        let c = AzureLogsConfig {
            enabled: true,
            endpoint: "https://dce.example".into(),
            dcr_immutable_id: DCR.into(),
            ..AzureLogsConfig::default()
        };
        assert_eq!(
            c.validate_with(&no_env).len(),
            3,
            "{:?}",
            c.validate_with(&no_env)
        );
        let token = file();
        let tok = token.to_string_lossy().into_owned();
        let env = move |k: &str| match k {
            ENV_TENANT_ID => Some("contoso.onmicrosoft.com".to_string()),
            ENV_CLIENT_ID => Some("cid".to_string()),
            ENV_FEDERATED_TOKEN_FILE => Some(tok.clone()),
            ENV_AUTHORITY_HOST => Some("https://login.microsoftonline.us/".to_string()),
            _ => None,
        };
        let id = c.resolve_identity(&env).unwrap();
        assert_eq!(id.tenant_id, "contoso.onmicrosoft.com");
        assert_eq!(id.client_id, "cid");
        assert_eq!(id.authority_host, "https://login.microsoftonline.us/");
        assert_eq!(id.credential, CredentialSource::FederatedTokenFile(token));
        // Config wins over the environment.
        let c2 = AzureLogsConfig {
            client_id: Some("from-config".into()),
            ..c
        };
        assert_eq!(c2.resolve_identity(&env).unwrap().client_id, "from-config");
    }

    #[test]
    fn client_secret_needs_exactly_one_source() {
        let base = AzureLogsConfig {
            auth: AuthMethod::ClientSecret,
            federated_token_file: None,
            ..valid()
        };
        assert!(base.validate_with(&no_env)[0].starts_with("client_secret_file (or"));
        let both = AzureLogsConfig {
            client_secret_file: Some(file()),
            client_secret_env: Some("S".into()),
            ..base.clone()
        };
        assert!(both.validate_with(&no_env)[0].contains("not both"));
        let env_unset = AzureLogsConfig {
            client_secret_env: Some("S".into()),
            ..base.clone()
        };
        assert!(env_unset.validate_with(&no_env)[0].starts_with("client_secret_env"));
        let env_set = |k: &str| (k == "S").then(|| "v".to_string());
        assert_eq!(
            env_unset.resolve_identity(&env_set).unwrap().credential,
            CredentialSource::ClientSecret(SecretSource::Env("S".into()))
        );
        let wrong_mix = AzureLogsConfig {
            client_secret_file: Some(file()),
            federated_token_file: Some(file()),
            ..base
        };
        assert!(wrong_mix.validate_with(&no_env)[0].starts_with("federated_token_file needs"));
    }

    #[test]
    fn insecure_http_only_with_the_test_switch() {
        let mut c = valid();
        c.endpoint = "http://127.0.0.1:9/".into();
        c.authority_host = Some("http://127.0.0.1:8".into());
        assert_eq!(c.validate_with(&no_env).len(), 2);
        c.allow_insecure_http = true;
        assert!(c.validate_with(&no_env).is_empty());
        c.endpoint = "https://dce.example/?x=1".into();
        assert!(c.validate_with(&no_env)[0].contains("query"));
    }

    #[test]
    fn dcr_ids_and_streams() {
        assert!(is_dcr_id(DCR));
        assert!(!is_dcr_id("dcr-0123456789abcdef0123456789abcde"));
        assert!(!is_dcr_id("dcr-0123456789abcdef0123456789abcdeg"));
        assert!(!is_dcr_id("0123456789abcdef0123456789abcdef"));
        assert!(is_stream("Custom-MqscopeEvents_CL"));
        assert!(is_stream("Microsoft-Syslog"));
        assert!(!is_stream("Custom-"));
        assert!(!is_stream("Custom-a/b"));
        assert!(!is_stream("custom-a"));
    }

    /// The `[azure_logs]` example in `deploy/azure/README.md` parses, validates (given
    /// the webhook's variables) and mentions every key but the test-only switch.
    #[test]
    fn readme_example_is_a_valid_section() {
        let readme = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/azure/README.md"),
        )
        .unwrap();
        let block = readme
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap();
        let doc: toml::Table = toml::from_str(block).unwrap();
        let section = doc["azure_logs"].clone();
        let c: AzureLogsConfig = section.try_into().unwrap();
        assert!(c.enabled);
        let tok = file().to_string_lossy().into_owned();
        let env = move |k: &str| match k {
            ENV_TENANT_ID | ENV_CLIENT_ID => Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
            ENV_FEDERATED_TOKEN_FILE => Some(tok.clone()),
            _ => None,
        };
        assert_eq!(c.validate_with(&env), Vec::<String>::new());
        let keys = serde_json::to_value(AzureLogsConfig::default()).unwrap();
        for k in keys.as_object().unwrap().keys() {
            if k != "allow_insecure_http" {
                assert!(block.contains(&format!("{k} = ")), "README lacks {k}");
            }
        }
    }
}

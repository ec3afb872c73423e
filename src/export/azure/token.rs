//! Access tokens for the Logs Ingestion API from Microsoft Entra ID, by the OAuth 2.0
//! client credentials grant (RFC 6749 section 4.4) against
//! `POST {authority}/{tenant}/oauth2/v2.0/token` with an
//! `application/x-www-form-urlencoded` body
//! (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>):
//!
//! * always `client_id`, `scope` (`https://monitor.azure.com/.default`) and
//!   `grant_type=client_credentials`;
//! * workload identity: `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//!   and `client_assertion=<the projected service account token>` ("third case: access
//!   token request with a federated credential" on that page; RFC 7523). The file is read
//!   for every request because the kubelet rotates it (hourly by default);
//! * client secret: `client_secret=<secret>`.
//!
//! The answer is `{"token_type":"Bearer","expires_in":3599,"access_token":"..."}`. The
//! token is cached until `expires_in` minus a margin (5 minutes, or half the lifetime for
//! short-lived tokens), and dropped at once when the ingestion endpoint answers 401.
//! Neither the token, the assertion nor the secret is ever logged.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::export::alerts::Secret;
use crate::export::alerts::client::{self, HttpTarget, PostRequest};

use super::config::{CredentialSource, Identity, SecretSource};

/// RFC 7523 section 2.2.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Refresh this long before expiry at most.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Token responses are ~1.5 KiB; errors a little more.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// Longest credential file read (a projected token is ~1 KiB).
const MAX_CREDENTIAL_FILE: u64 = 64 * 1024;

#[derive(Debug)]
enum Credential {
    FederatedTokenFile(PathBuf),
    SecretFile(PathBuf),
    Secret(Secret),
}

#[derive(Debug)]
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// Why no token: transport trouble, an Entra error answer, or a local credential problem.
#[derive(Debug)]
pub(crate) enum TokenError {
    Io(io::ErrorKind),
    /// Entra answered non-2xx; `code` is its `error` field (e.g. `invalid_client`).
    Status {
        status: u16,
        retry_after: Option<Duration>,
        code: String,
    },
    BadResponse,
    Credential(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Io(k) => write!(f, "token endpoint unreachable: {k}"),
            TokenError::Status { status, code, .. } => {
                write!(f, "token endpoint answered {status} {code}")
            }
            TokenError::BadResponse => f.write_str("token endpoint answer unreadable"),
            TokenError::Credential(e) => write!(f, "credential: {e}"),
        }
    }
}

impl TokenError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TokenError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct TokenSource {
    target: HttpTarget,
    client_id: String,
    scope: String,
    credential: Credential,
    tls: Option<Arc<rustls::ClientConfig>>,
    cached: Option<Cached>,
    /// Token requests sent (for stats).
    pub requests: u64,
}

impl TokenSource {
    /// Reads a client secret given by environment variable now; files are read per request.
    pub fn new(
        id: Identity,
        scope: String,
        tls: Option<Arc<rustls::ClientConfig>>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TokenSource, String> {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            id.authority_host.trim_end_matches('/'),
            id.tenant_id
        );
        let target = HttpTarget::parse(&url).map_err(|e| format!("authority_host: {e}"))?;
        let credential = match id.credential {
            CredentialSource::FederatedTokenFile(p) => Credential::FederatedTokenFile(p),
            CredentialSource::ClientSecret(SecretSource::File(p)) => Credential::SecretFile(p),
            CredentialSource::ClientSecret(SecretSource::Env(v)) => Credential::Secret(
                Secret::new(env(&v).ok_or_else(|| format!("client_secret_env {v:?}: not set"))?),
            ),
        };
        Ok(TokenSource {
            target,
            client_id: id.client_id,
            scope,
            credential,
            tls,
            cached: None,
            requests: 0,
        })
    }

    /// Forgets the cached token (the ingestion endpoint refused it).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    /// A token valid for a while yet: the cached one, or a fresh one.
    pub async fn token(&mut self, timeout: Duration) -> Result<Secret, TokenError> {
        let now = Instant::now();
        if let Some(c) = &self.cached
            && now < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let body = self.form()?;
        self.requests += 1;
        let req = PostRequest {
            content_type: "application/x-www-form-urlencoded",
            headers: &[("Accept", "application/json")],
            body: body.expose().as_bytes(),
            max_response_body: MAX_TOKEN_RESPONSE,
        };
        let resp = client::post(&self.target, &req, timeout, self.tls.as_ref())
            .await
            .map_err(|e| TokenError::Io(e.kind()))?;
        if !(200..300).contains(&resp.status) {
            return Err(TokenError::Status {
                status: resp.status,
                retry_after: resp.retry_after,
                code: error_code(&resp.body),
            });
        }
        let (token, lifetime) = parse_token(&resp.body).ok_or(TokenError::BadResponse)?;
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        self.cached = Some(Cached {
            token: token.clone(),
            refresh_at: now + lifetime - margin,
        });
        Ok(token)
    }

    /// The form body; a `Secret` because it carries the assertion or the client secret.
    fn form(&self) -> Result<Secret, TokenError> {
        let mut pairs: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".into()),
        ];
        match &self.credential {
            Credential::FederatedTokenFile(p) => {
                pairs.push(("client_assertion_type", ASSERTION_TYPE.into()));
                pairs.push((
                    "client_assertion",
                    read_credential(p, "federated_token_file")?,
                ));
            }
            Credential::SecretFile(p) => {
                pairs.push(("client_secret", read_credential(p, "client_secret_file")?));
            }
            Credential::Secret(s) => pairs.push(("client_secret", s.expose().to_string())),
        }
        Ok(Secret::new(form_encode(&pairs)))
    }
}

/// A credential file's content without surrounding whitespace (a JWT or a secret has
/// none; files written by editors or `echo` end in a newline). Bounded in size.
fn read_credential(p: &std::path::Path, key: &str) -> Result<String, TokenError> {
    use std::io::Read;
    let f = std::fs::File::open(p)
        .map_err(|e| TokenError::Credential(format!("{key} {}: {e}", p.display())))?;
    let mut s = String::new();
    f.take(MAX_CREDENTIAL_FILE)
        .read_to_string(&mut s)
        .map_err(|e| TokenError::Credential(format!("{key} {}: {e}", p.display())))?;
    let s = s.trim();
    if s.is_empty() {
        return Err(TokenError::Credential(format!(
            "{key} {}: empty",
            p.display()
        )));
    }
    Ok(s.to_string())
}

/// `application/x-www-form-urlencoded` (WHATWG URL, section 5): unreserved bytes as they
/// are, everything else percent-encoded (a space as `%20`, which decoders accept).
pub(crate) fn form_encode(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, k);
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

fn encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: Option<String>,
    /// Seconds; a number from Entra ID v2, a string from some older endpoints.
    expires_in: Value,
}

/// The token and its lifetime from a successful answer.
pub(crate) fn parse_token(body: &[u8]) -> Option<(Secret, Duration)> {
    let r: TokenResponse = serde_json::from_slice(body).ok()?;
    if r.token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return None;
    }
    // The token goes into a header: refuse anything that is not a plain token68-ish
    // string rather than fail later.
    if r.access_token.is_empty() || r.access_token.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return None;
    }
    let secs = match &r.expires_in {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    if secs == 0 {
        return None;
    }
    // A day at most: a wrong answer must not pin a token for years.
    let secs = secs.min(86_400);
    Some((Secret::new(r.access_token), Duration::from_secs(secs)))
}

/// The `error` field of an Entra error answer (`invalid_client`, ...), bounded and
/// printable; it names the problem without secrets.
fn error_code(body: &[u8]) -> String {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_is_percent_encoded() {
        let f = form_encode(&[
            ("scope", "https://monitor.azure.com/.default".into()),
            ("client_secret", "a b+c&d=é~".into()),
        ]);
        // Hand-encoded: ':' 3A, '/' 2F, ' ' 20, '+' 2B, '&' 26, '=' 3D, 'é' C3 A9.
        assert_eq!(
            f,
            "scope=https%3A%2F%2Fmonitor.azure.com%2F.default&client_secret=a%20b%2Bc%26d%3D%C3%A9~"
        );
    }

    #[test]
    fn token_answers() {
        let (t, d) = parse_token(
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.eyJ1.sig"}"#,
        )
        .unwrap();
        assert_eq!(
            (t.expose(), d),
            ("eyJ0.eyJ1.sig", Duration::from_secs(3599))
        );
        let (_, d) =
            parse_token(br#"{"token_type":"Bearer","expires_in":"60","access_token":"x"}"#)
                .unwrap();
        assert_eq!(d, Duration::from_secs(60));
        assert!(
            parse_token(br#"{"token_type":"mac","expires_in":60,"access_token":"x"}"#).is_none()
        );
        assert!(parse_token(br#"{"expires_in":60,"access_token":"x\r\ny"}"#).is_none());
        assert!(parse_token(br#"{"expires_in":0,"access_token":"x"}"#).is_none());
        assert!(parse_token(br#"{"access_token":"x"}"#).is_none());
        assert!(parse_token(b"<html>").is_none());
    }

    #[test]
    fn error_codes_are_bounded_and_clean() {
        assert_eq!(
            error_code(br#"{"error":"invalid_client","error_description":"AADSTS700016: ..."}"#),
            "invalid_client"
        );
        assert_eq!(error_code(br#"{"error":"a\nb c"}"#), "abc");
        assert_eq!(error_code(b"nonsense"), "");
    }

    #[test]
    fn debug_never_shows_credentials() {
        let ts = TokenSource {
            target: HttpTarget::parse("https://login.example/t/oauth2/v2.0/token").unwrap(),
            client_id: "cid".into(),
            scope: "s".into(),
            credential: Credential::Secret(Secret::new("hunter2")),
            tls: None,
            cached: Some(Cached {
                token: Secret::new("eyJtoken"),
                refresh_at: Instant::now(),
            }),
            requests: 0,
        };
        let d = format!("{ts:?}");
        assert!(!d.contains("hunter2") && !d.contains("eyJtoken"), "{d}");
        assert!(!format!("{:?}", ts.form().unwrap()).contains("hunter2"));
    }
}

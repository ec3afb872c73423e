//! A minimal HTTP/1.1 POST client over tokio's `TcpStream`, `http://` and `https://`
//! (rustls with the ring provider, system roots or a given CA file). One request per
//! connection with
//! `Connection: close`; only the status line and `Retry-After` are read from the answer,
//! with the response head capped so a hostile or broken endpoint cannot make us buffer
//! without bound. Errors never include the URL (it may carry a key).

use std::future::poll_fn;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest response head read (status line + headers).
const MAX_HEAD: usize = 16 * 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct HttpTarget {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

/// Path and query are left out: webhook keys live there.
impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpTarget({}:{}/***)", self.host, self.port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("only http:// and https:// URLs are supported")]
    Scheme,
    #[error("malformed URL")]
    Malformed,
}

impl HttpTarget {
    /// Parses `http[s]://host[:port][/path]`. IPv6 literals in brackets are accepted.
    pub fn parse(url: &str) -> Result<HttpTarget, UrlError> {
        let (tls, rest) = match (url.get(..7), url.get(..8)) {
            (Some(p), _) if p.eq_ignore_ascii_case("http://") => (false, &url[7..]),
            (_, Some(p)) if p.eq_ignore_ascii_case("https://") => (true, &url[8..]),
            _ => return Err(UrlError::Scheme),
        };
        let default_port = if tls { 443 } else { 80 };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(UrlError::Malformed);
        }
        let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
            let end = stripped.find(']').ok_or(UrlError::Malformed)?;
            let host = &stripped[..end];
            let after = &stripped[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| UrlError::Malformed)?,
                None if after.is_empty() => default_port,
                None => return Err(UrlError::Malformed),
            };
            (format!("[{host}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| UrlError::Malformed)?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError::Malformed);
        }
        Ok(HttpTarget {
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// The same server with `suffix` appended to the path (trailing `/` collapsed).
    pub fn join(&self, suffix: &str) -> HttpTarget {
        let mut t = self.clone();
        let base = t.path.trim_end_matches('/');
        t.path = format!("{base}{suffix}");
        t
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

/// TLS client configuration: certificates from `ca_file` (PEM) or the system roots.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(p) => {
            for c in CertificateDer::pem_file_iter(p)
                .map_err(|e| format!("ca_file {}: {e}", p.display()))?
            {
                let c = c.map_err(|e| format!("ca_file {}: {e}", p.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                // A malformed system certificate is skipped, as browsers do.
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        return Err("no CA certificates for https".into());
    }
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// `Retry-After` in delta-seconds form (the HTTP-date form is ignored).
    pub retry_after: Option<Duration>,
}

/// POSTs `body` as JSON; the whole exchange is bounded by `timeout`. `tls` is required
/// for `https://` targets.
pub async fn post_json(
    target: &HttpTarget,
    body: &[u8],
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
) -> io::Result<HttpResponse> {
    match tokio::time::timeout(timeout, exchange(target, body, tls)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out")),
    }
}

async fn exchange(
    target: &HttpTarget,
    body: &[u8],
    tls: Option<&Arc<ClientConfig>>,
) -> io::Result<HttpResponse> {
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let sock = TcpStream::connect((host, target.port)).await?;
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: mqscope\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        target.path,
        target.host,
        target.port,
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let head = if target.tls {
        let cfg = tls.ok_or_else(|| io::Error::other("https target without TLS configuration"))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad TLS server name"))?;
        let mut s = TlsConnector::from(Arc::clone(cfg))
            .connect(name, sock)
            .await?;
        write_all(&mut s, &req).await?;
        read_head(&mut s).await?
    } else {
        let mut s = sock;
        write_all(&mut s, &req).await?;
        read_head(&mut s).await?
    };
    parse_head(&head).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad HTTP response"))
}

async fn write_all<S: AsyncWrite + Unpin>(s: &mut S, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *s).poll_write(cx, data)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    poll_fn(|cx| Pin::new(&mut *s).poll_flush(cx)).await
}

/// Reads until the blank line ending the head, EOF, or `MAX_HEAD` bytes.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    while buf.len() < MAX_HEAD && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut rb = ReadBuf::new(&mut chunk);
        poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, &mut rb)).await?;
        let got = rb.filled();
        if got.is_empty() {
            break;
        }
        let take = got.len().min(MAX_HEAD - buf.len());
        buf.extend_from_slice(&got[..take]);
    }
    Ok(buf)
}

/// Status code from `HTTP/1.x NNN ...` and a delta-seconds `Retry-After`.
pub fn parse_head(head: &[u8]) -> Option<HttpResponse> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    let retry_after = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Some(HttpResponse {
        status,
        retry_after,
    })
}

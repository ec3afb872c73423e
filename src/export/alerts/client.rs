//! A minimal HTTP/1.1 POST client over tokio's `TcpStream`, `http://` only (TLS is not
//! implemented yet: see the module docs of `deliver`). One request per connection with
//! `Connection: close`; only the status line and `Retry-After` are read from the answer,
//! with the response head capped so a hostile or broken endpoint cannot make us buffer
//! without bound. Errors never include the URL (it may carry a key).

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// Longest response head read (status line + headers).
const MAX_HEAD: usize = 16 * 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct HttpTarget {
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
    #[error("only http:// URLs are supported (https is not implemented yet)")]
    Scheme,
    #[error("malformed URL")]
    Malformed,
}

impl HttpTarget {
    /// Parses `http://host[:port][/path]`. IPv6 literals in brackets are accepted.
    pub fn parse(url: &str) -> Result<HttpTarget, UrlError> {
        let rest = match url.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("http://") => &url[7..],
            _ => return Err(UrlError::Scheme),
        };
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
                None if after.is_empty() => 80,
                None => return Err(UrlError::Malformed),
            };
            (format!("[{host}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| UrlError::Malformed)?),
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError::Malformed);
        }
        Ok(HttpTarget {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// `Retry-After` in delta-seconds form (the HTTP-date form is ignored).
    pub retry_after: Option<Duration>,
}

/// POSTs `body` as JSON; the whole exchange is bounded by `timeout`.
pub async fn post_json(
    target: &HttpTarget,
    body: &[u8],
    timeout: Duration,
) -> io::Result<HttpResponse> {
    match tokio::time::timeout(timeout, exchange(target, body)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out")),
    }
}

async fn exchange(target: &HttpTarget, body: &[u8]) -> io::Result<HttpResponse> {
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
    write_all(&sock, &req).await?;
    let head = read_head(&sock).await?;
    parse_head(&head).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad HTTP response"))
}

async fn write_all(sock: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        sock.writable().await?;
        match sock.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads until the blank line ending the head, EOF, or `MAX_HEAD` bytes.
async fn read_head(sock: &TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    while buf.len() < MAX_HEAD && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        sock.readable().await?;
        match sock.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n.min(MAX_HEAD - buf.len())]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
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

//! A minimal HTTP/1.1 POST client over tokio's `TcpStream`, `http://` and `https://`
//! (rustls with the ring provider, system roots or a given CA file). One request per
//! connection with `Connection: close`.
//!
//! * [`post_json`] (alert receivers) reads only the status line and `Retry-After`.
//! * [`post`] takes any content type and extra headers (`Authorization`,
//!   `Content-Encoding`) and can also read the response body (a token endpoint's JSON),
//!   framed by `Content-Length`, `chunked` or end of stream.
//!
//! The response head is capped at 16 KiB and the body at the caller's limit, so a hostile
//! or broken endpoint cannot make us buffer without bound. Errors never include the URL
//! (it may carry a key) nor header values (they carry bearer tokens).

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

/// One POST for [`post`].
#[derive(Clone, Copy)]
pub struct PostRequest<'a> {
    pub content_type: &'a str,
    /// Extra headers, e.g. `("Content-Encoding", "gzip")`, `("Authorization", ...)`. Names
    /// and values must not contain CR, LF or NUL (checked: request smuggling).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// Longest response body read; 0 reads the head only. A longer body is an error.
    pub max_response_body: usize,
}

/// Header values are left out: they carry tokens.
impl std::fmt::Debug for PostRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostRequest")
            .field("content_type", &self.content_type)
            .field(
                "headers",
                &self.headers.iter().map(|h| h.0).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The answer to [`post`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostResponse {
    pub status: u16,
    /// `Retry-After` in delta-seconds form (the HTTP-date form is ignored).
    pub retry_after: Option<Duration>,
    /// Empty unless `max_response_body > 0`; never longer than it.
    pub body: Vec<u8>,
    /// Header fields as received (names as sent; at most the 16 KiB head).
    pub headers: Vec<(String, String)>,
}

impl PostResponse {
    /// The first header field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` as JSON; the whole exchange is bounded by `timeout`. `tls` is required
/// for `https://` targets.
pub async fn post_json(
    target: &HttpTarget,
    body: &[u8],
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
) -> io::Result<HttpResponse> {
    let req = PostRequest {
        content_type: "application/json",
        headers: &[],
        body,
        max_response_body: 0,
    };
    let r = post(target, &req, timeout, tls).await?;
    Ok(HttpResponse {
        status: r.status,
        retry_after: r.retry_after,
    })
}

/// POSTs `req`; the whole exchange (connect, TLS, request, response) is bounded by
/// `timeout`. `tls` is required for `https://` targets.
pub async fn post(
    target: &HttpTarget,
    req: &PostRequest<'_>,
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
) -> io::Result<PostResponse> {
    let bytes = request_bytes(target, req)?;
    match tokio::time::timeout(
        timeout,
        exchange(target, &bytes, req.max_response_body, tls),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out")),
    }
}

/// The request head and body. Header names and values are checked for CR, LF and NUL so
/// a value read from a file (a token) cannot inject headers.
fn request_bytes(target: &HttpTarget, req: &PostRequest<'_>) -> io::Result<Vec<u8>> {
    let bad = |v: &str| v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    if bad(req.content_type)
        || req
            .headers
            .iter()
            .any(|(k, v)| k.is_empty() || bad(k) || k.contains(':') || bad(v))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "header name or value contains CR, LF or NUL",
        ));
    }
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: mqscope\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        target.path,
        target.host,
        target.port,
        req.content_type,
        req.body.len()
    );
    for (k, v) in req.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(req.body);
    Ok(bytes)
}

async fn exchange(
    target: &HttpTarget,
    req: &[u8],
    max_body: usize,
    tls: Option<&Arc<ClientConfig>>,
) -> io::Result<PostResponse> {
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let sock = TcpStream::connect((host, target.port)).await?;
    if target.tls {
        let cfg = tls.ok_or_else(|| io::Error::other("https target without TLS configuration"))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad TLS server name"))?;
        let mut s = TlsConnector::from(Arc::clone(cfg))
            .connect(name, sock)
            .await?;
        write_all(&mut s, req).await?;
        read_response(&mut s, max_body).await
    } else {
        let mut s = sock;
        write_all(&mut s, req).await?;
        read_response(&mut s, max_body).await
    }
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

/// Reads until the blank line ending the head, EOF, or `MAX_HEAD` bytes. Returns what
/// was read, which may run past the head into the body.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    while buf.len() < MAX_HEAD && head_end(&buf).is_none() {
        let got = read_some(s, &mut chunk).await?;
        if got == 0 {
            break;
        }
        let take = got.min(MAX_HEAD - buf.len());
        buf.extend_from_slice(&chunk[..take]);
    }
    Ok(buf)
}

async fn read_some<S: AsyncRead + Unpin>(s: &mut S, chunk: &mut [u8]) -> io::Result<usize> {
    let mut rb = ReadBuf::new(chunk);
    poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, &mut rb)).await?;
    Ok(rb.filled().len())
}

/// Offset just past `\r\n\r\n`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Status, `Retry-After` and (up to `max_body` bytes) the body.
async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    max_body: usize,
) -> io::Result<PostResponse> {
    let mut buf = read_head(s).await?;
    let head = parse_head(&buf).ok_or_else(|| invalid("bad HTTP response"))?;
    let headers = String::from_utf8_lossy(&buf[..head_end(&buf).unwrap_or(buf.len())])
        .split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = PostResponse {
        status: head.status,
        retry_after: head.retry_after,
        body: Vec::new(),
        headers,
    };
    // 1xx, 204 and 304 have no body (RFC 9112 section 6.3).
    if max_body == 0 || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(resp);
    }
    let start = head_end(&buf).ok_or_else(|| invalid("HTTP response head too long"))?;
    let framing = body_framing(&buf[..start]).ok_or_else(|| invalid("bad Content-Length"))?;
    buf.drain(..start);
    let raw_cap = match framing {
        Framing::Length(n) if n > max_body => return Err(invalid("HTTP response body too long")),
        Framing::Length(n) => n,
        // Chunk-size lines add overhead; allow for it, then check the decoded length.
        Framing::Chunked => max_body.saturating_mul(2).saturating_add(1024),
        Framing::Close => max_body,
    };
    let mut chunk = [0u8; 4096];
    loop {
        let complete = match framing {
            Framing::Length(n) => buf.len() >= n,
            Framing::Chunked => matches!(decode_chunked(&buf, max_body), Chunked::Done(_)),
            Framing::Close => false,
        };
        if complete {
            break;
        }
        let got = read_some(s, &mut chunk).await?;
        if got == 0 {
            break;
        }
        let room = raw_cap.saturating_sub(buf.len());
        let take = match framing {
            // Bytes past Content-Length are not ours to read.
            Framing::Length(_) => got.min(room),
            _ if got > room => return Err(invalid("HTTP response body too long")),
            _ => got,
        };
        buf.extend_from_slice(&chunk[..take]);
    }
    resp.body = match framing {
        Framing::Length(n) if buf.len() < n => return Err(invalid("HTTP response body cut short")),
        Framing::Length(n) => {
            buf.truncate(n);
            buf
        }
        Framing::Chunked => match decode_chunked(&buf, max_body) {
            Chunked::Done(b) => b,
            Chunked::TooLong => return Err(invalid("HTTP response body too long")),
            Chunked::Partial | Chunked::Bad => return Err(invalid("bad chunked HTTP body")),
        },
        Framing::Close if buf.len() > max_body => {
            return Err(invalid("HTTP response body too long"));
        }
        Framing::Close => buf,
    };
    Ok(resp)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// Neither: the body ends when the server closes (we sent `Connection: close`).
    Close,
}

/// `Transfer-Encoding: chunked` wins over `Content-Length` (RFC 9112 section 6.3).
/// `None` for a malformed or conflicting `Content-Length`.
fn body_framing(head: &[u8]) -> Option<Framing> {
    let text = String::from_utf8_lossy(head);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for (k, v) in text
        .split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
    {
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked |= v
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if k.eq_ignore_ascii_case("content-length") {
            let n: usize = v.parse().ok()?;
            if length.is_some_and(|m| m != n) {
                return None;
            }
            length = Some(n);
        }
    }
    Some(if chunked {
        Framing::Chunked
    } else {
        length.map_or(Framing::Close, Framing::Length)
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Chunked {
    Done(Vec<u8>),
    Partial,
    TooLong,
    Bad,
}

/// Decodes a whole chunked body (chunk extensions and trailers are skipped).
fn decode_chunked(mut raw: &[u8], max: usize) -> Chunked {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return Chunked::Partial;
        };
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Chunked::Bad;
        };
        raw = &raw[eol + 2..];
        if size == 0 {
            // Trailer fields, then the final CRLF.
            return if raw.starts_with(b"\r\n") || head_end(raw).is_some() {
                Chunked::Done(out)
            } else {
                Chunked::Partial
            };
        }
        if out.len().saturating_add(size) > max {
            return Chunked::TooLong;
        }
        let Some(data) = raw.get(..size) else {
            return Chunked::Partial;
        };
        out.extend_from_slice(data);
        raw = &raw[size..];
        match raw.get(..2) {
            Some(b"\r\n") => raw = &raw[2..],
            Some(_) => return Chunked::Bad,
            None => return Chunked::Partial,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_and_are_bounded() {
        // RFC 9112 section 7.1 framing, written by hand.
        let raw = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
        assert_eq!(
            decode_chunked(raw, 100),
            Chunked::Done(b"Wikipedia in \r\n\r\nchunks.".to_vec())
        );
        assert_eq!(decode_chunked(raw, 10), Chunked::TooLong);
        assert_eq!(decode_chunked(&raw[..20], 100), Chunked::Partial);
        assert_eq!(
            decode_chunked(b"0\r\nX-T: 1\r\n\r\n", 10),
            Chunked::Done(vec![])
        );
        assert_eq!(decode_chunked(b"zz\r\n", 10), Chunked::Bad);
        assert_eq!(decode_chunked(b"2\r\nabc\r\n", 10), Chunked::Bad);
    }

    #[test]
    fn framing_from_headers() {
        let h = |s: &str| body_framing(s.as_bytes());
        assert_eq!(
            h("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Some(Framing::Length(12))
        );
        assert_eq!(
            h("HTTP/1.1 200 OK\r\ncontent-length: 12\r\ntransfer-encoding: gzip, chunked\r\n\r\n"),
            Some(Framing::Chunked)
        );
        assert_eq!(h("HTTP/1.1 200 OK\r\n\r\n"), Some(Framing::Close));
        assert_eq!(
            h("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            None
        );
        assert_eq!(h("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), None);
    }

    #[test]
    fn header_injection_is_refused() {
        let t = HttpTarget::parse("http://127.0.0.1:1/x").unwrap();
        let req = |headers: &'static [(&'static str, &'static str)]| PostRequest {
            content_type: "text/plain",
            headers,
            body: b"",
            max_response_body: 0,
        };
        assert!(request_bytes(&t, &req(&[("Authorization", "Bearer a\r\nX: y")])).is_err());
        assert!(request_bytes(&t, &req(&[("X:Y", "v")])).is_err());
        let ok = request_bytes(&t, &req(&[("Content-Encoding", "gzip")])).unwrap();
        let text = String::from_utf8(ok).unwrap();
        assert!(text.starts_with("POST /x HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Type: text/plain\r\n"), "{text}");
        assert!(
            text.ends_with("\r\nContent-Encoding: gzip\r\n\r\n"),
            "{text}"
        );
        assert!(
            format!("{:?}", req(&[("Authorization", "Bearer sekrit")])).contains("Authorization")
        );
        assert!(!format!("{:?}", req(&[("Authorization", "Bearer sekrit")])).contains("sekrit"));
    }

    /// Answers one connection with `answer` after reading the request head.
    fn one_shot(answer: &'static [u8]) -> HttpTarget {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = l.accept() {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while head_end(&seen).is_none() {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c.write_all(answer);
            }
        });
        HttpTarget::parse(&format!("http://127.0.0.1:{port}/t")).unwrap()
    }

    async fn fetch(answer: &'static [u8], max: usize) -> io::Result<PostResponse> {
        let t = one_shot(answer);
        let req = PostRequest {
            content_type: "application/x-www-form-urlencoded",
            headers: &[],
            body: b"a=b",
            max_response_body: max,
        };
        post(&t, &req, Duration::from_secs(5), None).await
    }

    #[tokio::test]
    async fn reads_bodies_in_all_three_framings() {
        let r = fetch(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            64,
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let r = fetch(
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            64,
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"abcde"[..]));
        let r = fetch(
            b"HTTP/1.1 200 OK\r\nRetry-After: 3\r\nx-ms-error-code:  Nope \r\n\r\nto-the-end",
            64,
        )
        .await
        .unwrap();
        assert_eq!(r.body, b"to-the-end");
        assert_eq!(r.header("X-MS-Error-Code"), Some("Nope"));
        assert_eq!(r.header("content-length"), None);
        assert_eq!(r.retry_after, Some(Duration::from_secs(3)));
        // Head only.
        let r = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0)
            .await
            .unwrap();
        assert!(r.body.is_empty());
    }

    #[tokio::test]
    async fn long_or_short_bodies_are_errors() {
        let e = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nx", 64).await;
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let e = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 64).await;
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let e = fetch(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 4).await;
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let e = fetch(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n",
            4,
        )
        .await;
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}

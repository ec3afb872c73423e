//! A minimal HTTP/1.1 responder for `/metrics`, `/healthz` and `/readyz` on tokio's
//! `TcpListener`. One request per connection (`Connection: close`): Prometheus opens a
//! connection per scrape anyway when told to close, and it keeps this small enough to
//! read in one sitting. Slow or silent clients are bounded three ways: a deadline per
//! connection, a cap on the request head, and a cap on connections served at once
//! (beyond it new connections are closed at once). Scrapes only read the shared
//! snapshot (see `state`), so nothing here can stall the analysis.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::prometheus::CONTENT_TYPE;
use super::state::MetricsState;

/// Longest request head read (request line plus headers).
const MAX_HEAD: usize = 8 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Whole-connection deadline: reading the request and writing the answer.
    pub deadline: Duration,
    /// Connections served at the same time.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            // Prometheus' default scrape timeout is 10 s.
            deadline: Duration::from_secs(10),
            max_connections: 16,
        }
    }
}

/// Serves until the task is dropped. Accept errors (e.g. out of file descriptors) are
/// retried after a pause instead of ending the listener.
pub async fn serve(listener: TcpListener, state: Arc<MetricsState>) {
    serve_with(listener, state, ServeOptions::default()).await
}

pub async fn serve_with(listener: TcpListener, state: Arc<MetricsState>, opts: ServeOptions) {
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    loop {
        let sock = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("metrics listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            // Too many connections in progress: refuse this one rather than queue it.
            drop(sock);
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(opts.deadline, handle(&sock, &state)).await;
            drop(permit);
            close(sock);
        });
    }
}

/// Half-closes before dropping, so the client reads the whole answer before the FIN.
fn close(sock: TcpStream) {
    if let Ok(s) = sock.into_std() {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
}

async fn handle(sock: &TcpStream, state: &MetricsState) -> io::Result<()> {
    let resp = match read_head(sock).await? {
        Head::Complete(h) => respond(&h, state),
        Head::TooLarge => response(431, "text/plain", b"request header too large\n", false),
        Head::Closed => return Ok(()),
    };
    write_all(sock, &resp).await
}

enum Head {
    Complete(Vec<u8>),
    TooLarge,
    Closed,
}

fn head_end(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

async fn read_head(sock: &TcpStream) -> io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        sock.readable().await?;
        match sock.try_read(&mut chunk) {
            Ok(0) => return Ok(Head::Closed),
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                if head_end(&buf) {
                    return Ok(Head::Complete(buf));
                }
                if buf.len() > MAX_HEAD {
                    return Ok(Head::TooLarge);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(sock: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        sock.writable().await?;
        match sock.try_write(data) {
            Ok(n) => data = data.get(n..).unwrap_or(&[]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The answer to one request head.
pub fn respond(head: &[u8], state: &MetricsState) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = std::str::from_utf8(line)
        .unwrap_or("")
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return response(400, "text/plain", b"bad request\n", false);
    };
    if !version.starts_with("HTTP/1.") {
        return response(505, "text/plain", b"HTTP/1.x only\n", false);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return response(405, "text/plain", b"GET or HEAD only\n", false),
    };
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => response(200, CONTENT_TYPE, state.render().as_bytes(), head_only),
        "/healthz" => response(200, "text/plain", b"ok\n", head_only),
        "/readyz" if state.is_ready() => response(200, "text/plain", b"ready\n", head_only),
        "/readyz" => response(503, "text/plain", b"not ready\n", head_only),
        _ => response(404, "text/plain", b"not found\n", head_only),
    }
}

fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "HTTP Version Not Supported",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

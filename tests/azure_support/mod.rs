//! An in-process stand-in for the Azure Monitor Logs Ingestion API and the Microsoft
//! Entra ID token endpoint, enforcing the contract as Microsoft documents it: path
//! `/dataCollectionRules/{id}/streams/{stream}`, `api-version=2023-01-01`,
//! `Authorization: Bearer <a token it issued>`, `Content-Type: application/json`,
//! `Content-Encoding: gzip`, body at most the limit (413 otherwise, compressed or not), a
//! JSON array of rows with the table's columns; the token endpoint
//! (`/{tenant}/oauth2/v2.0/token`) checks the client credentials form of workload identity
//! (federated assertion) or of a client secret. It decompresses with flate2 and parses the
//! rows itself, independently of the exporter's own code. Plain std threads.

#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "0d5c3b8e-1f2a-4c6d-9e7f-a1b2c3d4e5f6";
pub const DCR: &str = "dcr-00112233445566778899aabbccddeeff";
pub const STREAM: &str = "Custom-MqscopeEvents_CL";
pub const SCOPE: &str = "https://monitor.azure.com/.default";
/// RFC 7523 section 2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The table's columns (deploy/azure/logs-ingestion.json).
pub const COLUMNS: [&str; 14] = [
    "TimeGenerated",
    "RecordType",
    "Kind",
    "Severity",
    "Source",
    "ClientId",
    "Username",
    "ClientAddress",
    "BrokerAddress",
    "Topic",
    "Code",
    "Detail",
    "Message",
    "Attributes",
];

#[derive(Clone)]
pub enum Credential {
    /// The assertion must equal this file's content at the time of the request.
    Assertion(PathBuf),
    Secret(String),
}

/// One row of the table, column → value.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// One ingestion request as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Ingest {
    pub received: Instant,
    pub answered: Instant,
    pub status: u16,
    /// `Message` of each row.
    pub ids: Vec<String>,
    /// The rows themselves, as parsed here (empty when the request broke the contract).
    pub rows: Vec<Row>,
    pub body_len: usize,
    pub raw_len: usize,
}

pub struct State {
    pub limit: usize,
    pub credential: Credential,
    pub expires_in: u64,
    /// Ingestion answers (status, Retry-After); 204 once empty.
    pub script: VecDeque<(u16, Option<u64>)>,
    pub issued: Vec<String>,
    pub revoked: HashSet<String>,
    pub token_requests: usize,
    pub ingests: Vec<Ingest>,
    pub violations: Vec<String>,
}

pub struct StandIn {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    pub stop: Arc<AtomicBool>,
    pub thread: Option<thread::JoinHandle<()>>,
}

impl StandIn {
    pub fn start(limit: usize, credential: Credential, script: Vec<(u16, Option<u64>)>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            limit,
            credential,
            expires_in: 3599,
            script: script.into(),
            issued: Vec::new(),
            revoked: HashSet::new(),
            token_requests: 0,
            ingests: Vec::new(),
            violations: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stop2) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let st = Arc::clone(&st);
                    thread::spawn(move || serve(c, &st));
                }
            }
        });
        StandIn {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("lock"))
    }

    /// Ids accepted (204), in arrival order.
    pub fn accepted(&self) -> Vec<String> {
        self.with(|s| {
            s.ingests
                .iter()
                .filter(|i| i.status == 204)
                .flat_map(|i| i.ids.clone())
                .collect()
        })
    }

    /// Rows accepted (204), in arrival order.
    pub fn accepted_rows(&self) -> Vec<Row> {
        self.with(|s| {
            s.ingests
                .iter()
                .filter(|i| i.status == 204)
                .flat_map(|i| i.rows.clone())
                .collect()
        })
    }

    pub fn wait_accepted(&self, n: usize, within: Duration) -> Vec<String> {
        let end = Instant::now() + within;
        loop {
            let got = self.accepted();
            if got.len() >= n || Instant::now() > end {
                return got;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn assert_no_violations(&self) {
        let v = self.with(|s| s.violations.clone());
        assert!(v.is_empty(), "contract violations: {v:#?}");
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request; bodies past 4 MiB are refused unread.
pub fn read_request(c: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())?;
    if len > 4 << 20 {
        return None;
    }
    while buf.len() < head_end + len {
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body: buf[head_end..head_end + len].to_vec(),
    })
}

pub fn respond(c: &mut TcpStream, status: u16, extra: &str, body: &str) {
    let _ = write!(
        c,
        "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = c.flush();
}

pub fn serve(mut c: TcpStream, st: &Mutex<State>) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&mut c) else {
        return;
    };
    let received = Instant::now();
    if req.method != "POST" {
        st.lock()
            .expect("lock")
            .violations
            .push(format!("method {}", req.method));
        return respond(&mut c, 405, "", "");
    }
    if req.path == format!("/{TENANT}/oauth2/v2.0/token") {
        return token(&mut c, &req, st);
    }
    if req.path != format!("/dataCollectionRules/{DCR}/streams/{STREAM}") {
        st.lock()
            .expect("lock")
            .violations
            .push(format!("path {}", req.path));
        return respond(&mut c, 404, "", "");
    }
    let (status, retry, rows, raw_len) = ingest(&req, st);
    let ids = rows
        .iter()
        .map(|r| {
            r.get("Message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let extra = retry
        .map(|r| format!("Retry-After: {r}\r\n"))
        .unwrap_or_default();
    let body = if status == 204 {
        ""
    } else {
        r#"{"error":{"code":"Scripted","message":"x"}}"#
    };
    respond(&mut c, status, &extra, body);
    st.lock().expect("lock").ingests.push(Ingest {
        received,
        answered: Instant::now(),
        status,
        ids,
        rows,
        body_len: req.body.len(),
        raw_len,
    });
}

/// Checks an ingestion request; (status, Retry-After, rows, uncompressed length).
pub fn ingest(req: &Request, st: &Mutex<State>) -> (u16, Option<u64>, Vec<Row>, usize) {
    let mut s = st.lock().expect("lock");
    let violation = |s: &mut State, status: u16, what: String| {
        s.violations.push(what);
        (status, None, Vec::new(), 0)
    };
    if !req.query.split('&').any(|p| p == "api-version=2023-01-01") {
        return violation(&mut s, 400, format!("query {:?}", req.query));
    }
    let token = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "));
    match token {
        Some(t) if s.issued.iter().any(|i| i == t) => {
            if s.revoked.contains(t) {
                // Deliberately revoked: the client is expected to get a new one.
                return (401, None, Vec::new(), 0);
            }
        }
        other => return violation(&mut s, 401, format!("authorization {other:?}")),
    }
    if req.header("content-type") != Some("application/json") {
        let ct = req.header("content-type").map(str::to_string);
        return violation(&mut s, 415, format!("content-type {ct:?}"));
    }
    if req.header("content-encoding") != Some("gzip") {
        let ce = req.header("content-encoding").map(str::to_string);
        return violation(&mut s, 400, format!("content-encoding {ce:?}"));
    }
    let limit = s.limit;
    if req.body.len() > limit {
        return violation(
            &mut s,
            413,
            format!("compressed body {} > {limit}", req.body.len()),
        );
    }
    let mut raw = Vec::new();
    if GzDecoder::new(req.body.as_slice())
        .take(limit as u64 + 1)
        .read_to_end(&mut raw)
        .is_err()
    {
        return violation(&mut s, 400, "body is not gzip".into());
    }
    if raw.len() > limit {
        return violation(&mut s, 413, format!("uncompressed body > {limit}"));
    }
    let rows: Vec<Row> = match serde_json::from_slice(&raw) {
        Ok(r) => r,
        Err(e) => return violation(&mut s, 400, format!("not a JSON array of objects: {e}")),
    };
    for r in &rows {
        if let Some(k) = r.keys().find(|k| !COLUMNS.contains(&k.as_str())) {
            return violation(&mut s, 400, format!("unknown column {k}"));
        }
        let time_ok = r
            .get("TimeGenerated")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T');
        if !time_ok {
            return violation(
                &mut s,
                400,
                format!("TimeGenerated {:?}", r.get("TimeGenerated")),
            );
        }
    }
    let (status, retry) = s.script.pop_front().unwrap_or((204, None));
    (status, retry, rows, raw.len())
}

/// `application/x-www-form-urlencoded` decoding (WHATWG URL section 5.1), written here
/// independently of the exporter's encoder.
pub fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                    match u8::from_str_radix(h, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

pub fn token(c: &mut TcpStream, req: &Request, st: &Mutex<State>) {
    let mut s = st.lock().expect("lock");
    s.token_requests += 1;
    let form = form_decode(&req.body);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut problems = Vec::new();
    if req.header("content-type") != Some("application/x-www-form-urlencoded") {
        problems.push(format!("content-type {:?}", req.header("content-type")));
    }
    for (k, want) in [
        ("client_id", CLIENT_ID),
        ("scope", SCOPE),
        ("grant_type", "client_credentials"),
    ] {
        if get(k) != Some(want) {
            problems.push(format!("{k} = {:?}", get(k)));
        }
    }
    match &s.credential {
        Credential::Assertion(file) => {
            let want = std::fs::read_to_string(file).unwrap_or_default();
            if get("client_assertion_type") != Some(ASSERTION_TYPE) {
                problems.push(format!(
                    "client_assertion_type {:?}",
                    get("client_assertion_type")
                ));
            }
            if get("client_assertion") != Some(want.trim()) {
                problems.push(format!(
                    "client_assertion {:?} is not the file's {:?}",
                    get("client_assertion"),
                    want.trim()
                ));
            }
            if get("client_secret").is_some() {
                problems.push("client_secret sent with an assertion".into());
            }
        }
        Credential::Secret(secret) => {
            if get("client_secret") != Some(secret.as_str()) {
                problems.push(format!("client_secret {:?}", get("client_secret")));
            }
            if get("client_assertion").is_some() {
                problems.push("client_assertion sent with a secret".into());
            }
        }
    }
    // client_id, scope, grant_type and the credential (assertion and its type, or secret).
    let fields = match s.credential {
        Credential::Assertion(_) => 5,
        Credential::Secret(_) => 4,
    };
    if form.len() != fields {
        problems.push(format!("{} form fields: {form:?}", form.len()));
    }
    if !problems.is_empty() {
        s.violations.extend(problems);
        drop(s);
        return respond(c, 400, "", r#"{"error":"invalid_client"}"#);
    }
    let tok = format!("tok-{}", s.issued.len() + 1);
    s.issued.push(tok.clone());
    let body = format!(
        r#"{{"token_type":"Bearer","expires_in":{},"ext_expires_in":{},"access_token":"{tok}"}}"#,
        s.expires_in, s.expires_in
    );
    drop(s);
    respond(
        c,
        200,
        "Content-Type: application/json; charset=utf-8\r\n",
        &body,
    );
}

//! The Azure Logs Ingestion exporter against an in-process stand-in that enforces the
//! API's contract as Microsoft documents it: path `/dataCollectionRules/{id}/streams/{stream}`,
//! `api-version=2023-01-01`, `Authorization: Bearer <a token it issued>`,
//! `Content-Type: application/json`, `Content-Encoding: gzip`, body at most the limit
//! (413 otherwise, compressed or not), a JSON array of rows with the table's columns.
//! The same server is the Microsoft Entra ID token endpoint
//! (`/{tenant}/oauth2/v2.0/token`), checking the client credentials form of workload
//! identity (federated assertion) or of a client secret. It decompresses with flate2 and
//! parses the rows itself, independently of the exporter's own code.
//!
//! Plain std threads (one per connection), independent of the exporter's runtime.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use mqscope::export::LogRecord;
use mqscope::export::azure::{AuthMethod, AzureErrorKind, AzureLogs, AzureLogsConfig};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "0d5c3b8e-1f2a-4c6d-9e7f-a1b2c3d4e5f6";
const DCR: &str = "dcr-00112233445566778899aabbccddeeff";
const STREAM: &str = "Custom-MqscopeEvents_CL";
const SCOPE: &str = "https://monitor.azure.com/.default";
/// RFC 7523 section 2.2.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The table's columns (deploy/azure/logs-ingestion.json).
const COLUMNS: [&str; 14] = [
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
enum Credential {
    /// The assertion must equal this file's content at the time of the request.
    Assertion(PathBuf),
    Secret(String),
}

/// One ingestion request as the stand-in saw it.
#[derive(Clone, Debug)]
struct Ingest {
    received: Instant,
    answered: Instant,
    status: u16,
    /// `Message` of each row.
    ids: Vec<String>,
    body_len: usize,
    raw_len: usize,
}

struct State {
    limit: usize,
    credential: Credential,
    expires_in: u64,
    /// Ingestion answers (status, Retry-After); 204 once empty.
    script: VecDeque<(u16, Option<u64>)>,
    issued: Vec<String>,
    revoked: HashSet<String>,
    token_requests: usize,
    ingests: Vec<Ingest>,
    violations: Vec<String>,
}

struct StandIn {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StandIn {
    fn start(limit: usize, credential: Credential, script: Vec<(u16, Option<u64>)>) -> StandIn {
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("lock"))
    }

    /// Ids accepted (204), in arrival order.
    fn accepted(&self) -> Vec<String> {
        self.with(|s| {
            s.ingests
                .iter()
                .filter(|i| i.status == 204)
                .flat_map(|i| i.ids.clone())
                .collect()
        })
    }

    fn wait_accepted(&self, n: usize, within: Duration) -> Vec<String> {
        let end = Instant::now() + within;
        loop {
            let got = self.accepted();
            if got.len() >= n || Instant::now() > end {
                return got;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn assert_no_violations(&self) {
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

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
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
fn read_request(c: &mut TcpStream) -> Option<Request> {
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

fn respond(c: &mut TcpStream, status: u16, extra: &str, body: &str) {
    let _ = write!(
        c,
        "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = c.flush();
}

fn serve(mut c: TcpStream, st: &Mutex<State>) {
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
    let (status, retry, ids, raw_len) = ingest(&req, st);
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
        body_len: req.body.len(),
        raw_len,
    });
}

/// Checks an ingestion request; (status, Retry-After, row ids, uncompressed length).
fn ingest(req: &Request, st: &Mutex<State>) -> (u16, Option<u64>, Vec<String>, usize) {
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
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = match serde_json::from_slice(&raw) {
        Ok(r) => r,
        Err(e) => return violation(&mut s, 400, format!("not a JSON array of objects: {e}")),
    };
    let mut ids = Vec::new();
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
        ids.push(
            r.get("Message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
        );
    }
    let (status, retry) = s.script.pop_front().unwrap_or((204, None));
    (status, retry, ids, raw.len())
}

/// `application/x-www-form-urlencoded` decoding (WHATWG URL section 5.1), written here
/// independently of the exporter's encoder.
fn form_decode(body: &[u8]) -> Vec<(String, String)> {
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

fn token(c: &mut TcpStream, req: &Request, st: &Mutex<State>) {
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

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mqscope-azure-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn rec(id: &str, pad: usize) -> LogRecord {
    LogRecord {
        ts_ns: 1_700_000_000_123_000_000,
        time_generated: "2023-11-14T22:13:20.123Z".into(),
        record_type: "event",
        kind: "auth_failure".into(),
        severity: "info".into(),
        source: "wire".into(),
        client_id: Some("dev-1".into()),
        username: None,
        client_address: Some("10.0.0.7:51000".into()),
        broker_address: None,
        topic: None,
        code: Some(0x87),
        detail: Some("x".repeat(pad)),
        message: id.to_string(),
        attributes: [("k".to_string(), "v".to_string())].into(),
    }
}

/// A config pointed at the stand-in, with fast timings.
fn config(server: &StandIn, auth: AuthMethod, limit: usize) -> AzureLogsConfig {
    AzureLogsConfig {
        enabled: true,
        endpoint: server.url(),
        dcr_immutable_id: DCR.into(),
        auth,
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT_ID.into()),
        authority_host: Some(format!("{}/", server.url())),
        max_batch_bytes: limit,
        flush_interval_ms: 50,
        request_timeout_secs: 5,
        backoff_initial_ms: 100,
        backoff_max_ms: 400,
        allow_insecure_http: true,
        ..AzureLogsConfig::default()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

#[test]
fn workload_identity_batches_retries_and_splits() {
    let dir = temp_dir("wi");
    let token_file = dir.join("azure-identity-token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2ln\n",
    )
    .unwrap();
    let limit = 4096;
    let server = StandIn::start(
        limit,
        Credential::Assertion(token_file.clone()),
        vec![(204, None), (429, Some(1)), (500, None)],
    );
    let mut cfg = config(&server, AuthMethod::WorkloadIdentity, limit);
    cfg.federated_token_file = Some(token_file);
    // Only the last batch may go out partly filled, even if pushing stalls a little.
    cfg.flush_interval_ms = 1000;
    let azure = AzureLogs::start_with(&cfg, &no_env).expect("start");
    let want = ids("wi", 200);
    for id in &want {
        // 389 bytes of JSON each (Python's json.dumps of the same row, compact).
        assert!(azure.push(rec(id, 150)));
    }
    let got = server.wait_accepted(want.len(), Duration::from_secs(30));
    server.assert_no_violations();
    // Exactly once, in order.
    assert_eq!(got, want);
    let ingests = server.with(|s| s.ingests.clone());
    let statuses: Vec<u16> = ingests.iter().take(4).map(|i| i.status).collect();
    assert_eq!(statuses, [204, 429, 500, 204]);
    // The throttled batch is retried with the same rows.
    assert_eq!(ingests[1].ids, ingests[2].ids);
    assert_eq!(ingests[2].ids, ingests[3].ids);
    assert!(!ingests[1].ids.is_empty());
    // Retry-After: 1 was honoured (the retry came at least a second after the 429).
    let gap = ingests[2].received.duration_since(ingests[1].answered);
    assert!(gap >= Duration::from_secs(1), "retry after {gap:?}");
    // Split into several requests, each within the limit both ways.
    let accepted: Vec<&Ingest> = ingests.iter().filter(|i| i.status == 204).collect();
    for i in &ingests {
        assert!(i.body_len <= limit && i.raw_len <= limit, "{i:?}");
        assert!(i.body_len < i.raw_len, "gzip made it smaller: {i:?}");
    }
    // 10 rows make 10 * 389 + 9 commas + 2 brackets = 3901 bytes; 11 would be 4291 > 4096.
    // So 20 full requests.
    assert_eq!(accepted.len(), 20);
    for i in &accepted {
        assert_eq!((i.ids.len(), i.raw_len), (10, 3901), "{i:?}");
    }
    let stats = azure.shutdown(Duration::from_secs(2));
    assert_eq!(stats.rows_sent, 200);
    assert_eq!(stats.batches_sent, accepted.len() as u64);
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.rows_dropped, 0);
    assert_eq!(stats.queued, 0);
    assert_eq!(stats.last_error, Some(AzureErrorKind::Server));
    assert_eq!(stats.token_requests, 1);
    assert_eq!(
        server.with(|s| s.token_requests),
        1,
        "one token for all batches"
    );
}

#[test]
fn client_secret_rejections_and_oversize_rows() {
    let dir = temp_dir("secret");
    let secret = "s3cr3t value+/=&~é";
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let limit = 4096;
    let server = StandIn::start(limit, Credential::Secret(secret.into()), vec![(400, None)]);
    let mut cfg = config(&server, AuthMethod::ClientSecret, limit);
    cfg.client_secret_file = Some(secret_file);
    let azure = AzureLogs::start_with(&cfg, &no_env).expect("start");
    assert!(azure.push(rec("rejected", 10)));
    let end = Instant::now() + Duration::from_secs(10);
    while server.with(|s| s.ingests.len()) == 0 && Instant::now() < end {
        thread::sleep(Duration::from_millis(20));
    }
    // One row larger than a request may ever be, between two that fit.
    assert!(azure.push(rec("ok-0", 10)));
    assert!(azure.push(rec("too-large", limit)));
    assert!(azure.push(rec("ok-1", 10)));
    let got = server.wait_accepted(2, Duration::from_secs(10));
    server.assert_no_violations();
    assert_eq!(got, ["ok-0", "ok-1"]);
    let stats = azure.shutdown(Duration::from_secs(2));
    assert_eq!(stats.dropped_rejected, 1);
    assert_eq!(stats.dropped_oversize, 1);
    assert_eq!(stats.rows_dropped, 2);
    assert_eq!(stats.rows_sent, 2);
    assert_eq!(stats.retries, 0, "a 400 is not retried");
    assert_eq!(server.with(|s| s.token_requests), 1);
}

#[test]
fn token_is_reused_refreshed_near_expiry_and_after_401() {
    let dir = temp_dir("refresh");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "assertion-1").unwrap();
    let server = StandIn::start(8192, Credential::Assertion(token_file.clone()), vec![]);
    // Two-second tokens: cached for one second (half the lifetime as margin).
    server.with(|s| s.expires_in = 2);
    let mut cfg = config(&server, AuthMethod::WorkloadIdentity, 8192);
    // Identity from the variables the AKS workload identity webhook injects.
    cfg.tenant_id = None;
    cfg.client_id = None;
    let (t, cid, file) = (TENANT, CLIENT_ID, token_file.to_string_lossy().into_owned());
    let env = move |k: &str| match k {
        "AZURE_TENANT_ID" => Some(t.to_string()),
        "AZURE_CLIENT_ID" => Some(cid.to_string()),
        "AZURE_FEDERATED_TOKEN_FILE" => Some(file.clone()),
        _ => None,
    };
    let azure = AzureLogs::start_with(&cfg, &env).expect("start");
    assert!(azure.push(rec("r-0", 10)));
    assert_eq!(server.wait_accepted(1, Duration::from_secs(5)).len(), 1);
    assert!(azure.push(rec("r-1", 10)));
    assert_eq!(server.wait_accepted(2, Duration::from_secs(5)).len(), 2);
    assert_eq!(
        server.with(|s| s.token_requests),
        1,
        "second batch reuses the token"
    );

    // The kubelet rotates the projected token; the next token request must carry the new one.
    std::fs::write(&token_file, "assertion-2").unwrap();
    thread::sleep(Duration::from_millis(1200));
    assert!(azure.push(rec("r-2", 10)));
    assert_eq!(server.wait_accepted(3, Duration::from_secs(5)).len(), 3);
    assert_eq!(
        server.with(|s| s.token_requests),
        2,
        "refreshed near expiry"
    );

    // The service stops accepting the current token: one 401, a new token, the same rows.
    server.with(|s| {
        let last = s.issued.last().cloned().unwrap();
        s.revoked.insert(last);
        s.expires_in = 3599;
    });
    assert!(azure.push(rec("r-3", 10)));
    let got = server.wait_accepted(4, Duration::from_secs(5));
    server.assert_no_violations();
    assert_eq!(got, ["r-0", "r-1", "r-2", "r-3"]);
    assert_eq!(server.with(|s| s.token_requests), 3);
    let statuses: Vec<u16> = server.with(|s| s.ingests.iter().map(|i| i.status).collect());
    assert_eq!(statuses, [204, 204, 204, 401, 204]);
    let stats = azure.shutdown(Duration::from_secs(2));
    assert_eq!((stats.retries, stats.rows_sent), (1, 4));
    assert_eq!(stats.last_error, Some(AzureErrorKind::Unauthorized));
}

#[test]
fn failing_batch_is_dropped_after_max_retry() {
    let server = StandIn::start(8192, Credential::Secret("s".into()), vec![(503, None); 20]);
    let dir = temp_dir("maxretry");
    let f = dir.join("secret");
    std::fs::write(&f, "s").unwrap();
    let mut cfg = config(&server, AuthMethod::ClientSecret, 8192);
    cfg.client_secret_file = Some(f);
    cfg.max_retry_secs = 1;
    let azure = AzureLogs::start_with(&cfg, &no_env).expect("start");
    assert!(azure.push(rec("doomed", 10)));
    let end = Instant::now() + Duration::from_secs(10);
    while azure.stats().dropped_retry_exhausted == 0 && Instant::now() < end {
        thread::sleep(Duration::from_millis(20));
    }
    let s = azure.stats();
    assert_eq!(s.dropped_retry_exhausted, 1);
    assert!(s.retries >= 2, "{s:?}");
    let attempts = server.with(|s| s.ingests.len());
    // The service recovers; later rows go through.
    server.with(|s| s.script.clear());
    assert!(azure.push(rec("later", 10)));
    assert_eq!(server.wait_accepted(1, Duration::from_secs(5)), ["later"]);
    server.assert_no_violations();
    let ingests = server.with(|s| s.ingests.clone());
    assert!(ingests[..attempts].iter().all(|i| i.ids == ["doomed"]));
    // Its attempts stayed within max_retry_secs of the first (plus scheduling slack on a
    // busy machine; without the bound the 20 scripted 503s would take over 6 s).
    let span = ingests[attempts - 1]
        .received
        .duration_since(ingests[0].received);
    assert!(span <= Duration::from_millis(1500), "{span:?}");
    assert!(attempts < 20, "{attempts} attempts");
    drop(azure);
}

#[test]
fn endpoint_down_queue_is_bounded_and_shutdown_is_bounded() {
    let token_server = StandIn::start(8192, Credential::Secret("s".into()), vec![]);
    let dir = temp_dir("down");
    let f = dir.join("secret");
    std::fs::write(&f, "s").unwrap();
    // Nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config(&token_server, AuthMethod::ClientSecret, 8192);
    cfg.client_secret_file = Some(f);
    cfg.endpoint = format!("http://127.0.0.1:{port}");
    cfg.max_queued_records = 50;
    let azure = AzureLogs::start_with(&cfg, &no_env).expect("start");
    let accepted = (0..80)
        .filter(|i| azure.push(rec(&format!("d-{i}"), 10)))
        .count();
    assert_eq!(accepted, 50);
    thread::sleep(Duration::from_millis(600));
    let s = azure.stats();
    assert_eq!((s.dropped_queue_full, s.queued, s.rows_sent), (30, 50, 0));
    assert!(s.retries >= 2, "keeps retrying: {s:?}");
    assert_eq!(s.last_error, Some(AzureErrorKind::Connect));
    let t0 = Instant::now();
    let s = azure.shutdown(Duration::from_millis(500));
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    assert_eq!((s.dropped_shutdown, s.queued, s.rows_dropped), (50, 0, 80));
}

#[test]
fn shutdown_is_bounded_while_a_request_hangs() {
    let token_server = StandIn::start(8192, Credential::Secret("s".into()), vec![]);
    let dir = temp_dir("hang");
    let f = dir.join("secret");
    std::fs::write(&f, "s").unwrap();
    // Accepts connections (kernel backlog) but never answers.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(&token_server, AuthMethod::ClientSecret, 8192);
    cfg.client_secret_file = Some(f);
    cfg.endpoint = format!("http://{}", black_hole.local_addr().unwrap());
    cfg.request_timeout_secs = 60;
    let azure = AzureLogs::start_with(&cfg, &no_env).expect("start");
    assert!(azure.push(rec("h-0", 10)));
    thread::sleep(Duration::from_millis(300));
    assert_eq!(azure.stats().retries, 0, "the request is still waiting");
    let t0 = Instant::now();
    let s = azure.shutdown(Duration::from_millis(400));
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    assert_eq!((s.dropped_shutdown, s.rows_sent), (1, 0));
    drop(black_hole);
}

#[test]
fn start_refuses_bad_configs_with_every_problem() {
    let cfg = AzureLogsConfig {
        enabled: true,
        endpoint: "http://dce.example".into(),
        dcr_immutable_id: "dcr-x".into(),
        ..AzureLogsConfig::default()
    };
    let err = AzureLogs::start_with(&cfg, &no_env)
        .unwrap_err()
        .to_string();
    for k in [
        "endpoint",
        "dcr_immutable_id",
        "tenant_id",
        "client_id",
        "federated_token_file",
    ] {
        assert!(err.contains(k), "{k} not in {err}");
    }
    let off = AzureLogsConfig::default();
    assert!(AzureLogs::start_with(&off, &no_env).is_err());
}

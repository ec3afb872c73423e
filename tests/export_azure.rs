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

use std::net::TcpListener;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use mqscope::export::LogRecord;
use mqscope::export::azure::{AuthMethod, AzureErrorKind, AzureLogs, AzureLogsConfig};

mod azure_support;
use azure_support::*;

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

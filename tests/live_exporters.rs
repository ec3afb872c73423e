//! `mqscope run` end to end with both log sinks (issue #5): a real Mosquitto with a
//! password file on loopback, captured on `lo`; three good publishes and six wrong
//! passwords from the real `mosquitto_pub`. `[otlp]` points at the in-process OTLP
//! receiver (`otlp_support`; one test over gRPC, one over HTTP/protobuf) and
//! `[azure_logs]` at the contract-enforcing Logs Ingestion + Entra ID stand-in
//! (`azure_support`) with workload identity (a federated token file written here; tenant
//! and client ids from the config alone, no `AZURE_*` variables).
//!
//! Expectations come from what the test did, not from mqscope: 9 CONNECT / 9 CONNACK / 3
//! PUBLISH; per refused login one `connect_refused` and one `auth_failure` event with the
//! MQTT 3.1.1 CONNACK return code 5 ("not authorized", section 3.2.2.3); `auth_brute_force`
//! (default threshold five failures) firing for the source address and the user name, and
//! resolved at the last failure plus `cooldown_s`. Both sinks must receive exactly that,
//! once each, and the stats file must count exactly what the receivers got.
//!
//! A second test runs with both destinations down: capture, `/metrics` and alerting go on,
//! shutdown stays within its bound, and every undelivered record is counted as dropped.
//!
//! Needs root (capture on `lo`) and Debian's `mosquitto` and `mosquitto-clients`.

mod azure_support;
mod live_common;
mod otlp_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use live_common::{Mqscope, count, free_port, http_get, password_broker, publish};
use mqscope::export::otlp::Protocol;
use otlp_support::{Labels, all_logs, labels, last_metrics, otlp_as_samples, prom_samples};
use serde_json::Value;

const GOOD: usize = 3;
const BAD: usize = 6;
const ALERTS: &str = r#"mqscope_alerts_firing{rule="auth_brute_force",severity="high"}"#;

fn traffic(port: u16) {
    for i in 0..GOOD {
        assert!(
            publish(port, &format!("good-{i}"), "devpw"),
            "good login refused"
        );
    }
    for i in 0..BAD {
        assert!(
            !publish(port, &format!("guess-{i}"), "wrong"),
            "wrong password accepted"
        );
    }
}

/// The config file (checked with `mqscope check-config`): capture on `lo` for the broker,
/// `cooldown_s`, then the sink sections.
fn write_config(dir: &Path, port: u16, cooldown_s: u64, sinks: &str) -> PathBuf {
    let cfg = dir.join("mqscope.toml");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\ninterface = \"lo\"\nports = [{port}]\n\n[rules]\ncooldown_s = {cooldown_s}\n{sinks}"
        ),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .arg("check-config")
        .arg(&cfg)
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_AUTHORITY_HOST")
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    cfg
}

fn sinks_config(
    otlp_url: &str,
    protocol: Protocol,
    azure_url: &str,
    authority: &str,
    token_file: &Path,
) -> String {
    let protocol = match protocol {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http_protobuf",
    };
    format!(
        r#"
[otlp]
enabled = true
endpoint = "{otlp_url}"
protocol = "{protocol}"
export_interval_ms = 500
timeout_ms = 1000

[azure_logs]
enabled = true
endpoint = "{azure_url}"
dcr_immutable_id = "{dcr}"
stream = "{stream}"
auth = "workload_identity"
tenant_id = "{tenant}"
client_id = "{client}"
authority_host = "{authority}"
federated_token_file = "{token}"
flush_interval_ms = 200
request_timeout_secs = 1
allow_insecure_http = true
"#,
        dcr = azure_support::DCR,
        stream = azure_support::STREAM,
        tenant = azure_support::TENANT,
        client = azure_support::CLIENT_ID,
        token = token_file.display(),
    )
}

/// `mqscope run` as live_common starts it, but with no `AZURE_*` variables: the config
/// alone must be enough.
fn start_mqscope(dir: &Path, cfg: &Path) -> Mqscope {
    for k in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_AUTHORITY_HOST",
    ] {
        assert!(
            std::env::var_os(k).is_none(),
            "{k} is set in the test's environment"
        );
    }
    live_common::start_mqscope(dir, &["--config", cfg.to_str().unwrap()])
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `2026-11-24T18:39:22.123Z` → ms since the epoch (days from the civil date, H. Hinnant's
/// algorithm), written here independently of mqscope's formatter.
fn rfc3339_ms(s: &str) -> u64 {
    assert_eq!(s.len(), 24, "{s}");
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    (secs * 1000 + n(20, 23)) as u64
}

/// One log record as both sinks carry it: the Azure row's columns, or the OTLP record's
/// `mqscope.*` attributes with its time, in one shape.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    ms: u64,
    record_type: String,
    kind: String,
    source: String,
    severity: String,
    client_id: String,
    username: String,
    client_address: String,
    broker_address: String,
    code: String,
    detail: String,
    message: String,
}

fn from_row(r: &azure_support::Row) -> Rec {
    let s = |k: &str| match r.get(k) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(v)) => v.clone(),
        Some(v) => v.to_string(),
    };
    Rec {
        ms: rfc3339_ms(&s("TimeGenerated")),
        record_type: s("RecordType"),
        kind: s("Kind"),
        source: s("Source"),
        severity: s("Severity"),
        client_id: s("ClientId"),
        username: s("Username"),
        client_address: s("ClientAddress"),
        broker_address: s("BrokerAddress"),
        code: s("Code"),
        detail: s("Detail"),
        message: s("Message"),
    }
}

fn from_otlp(o: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> Rec {
    let a = labels(&o.attributes);
    let s = |k: &str| a.get(&format!("mqscope.{k}")).cloned().unwrap_or_default();
    Rec {
        ms: o.time_unix_nano / 1_000_000,
        record_type: s("record_type"),
        kind: s("kind"),
        source: s("source"),
        severity: s("severity"),
        client_id: s("client_id"),
        username: s("username"),
        client_address: s("client_address"),
        broker_address: s("broker_address"),
        code: s("code"),
        detail: s("detail"),
        message: otlp_support::str_of(&o.body).unwrap_or_default(),
    }
}

fn azure_recs(stand: &azure_support::StandIn) -> Vec<Rec> {
    stand.accepted_rows().iter().map(from_row).collect()
}

fn otlp_recs(rx: &otlp_support::Receiver) -> Vec<Rec> {
    all_logs(&rx.got.lock().unwrap())
        .iter()
        .map(from_otlp)
        .collect()
}

fn wait_until<T>(what: &str, within: Duration, get: impl Fn() -> T, ok: impl Fn(&T) -> bool) -> T
where
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + within;
    loop {
        let v = get();
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never got {what}; last {v:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn resolved(recs: &[Rec]) -> usize {
    recs.iter()
        .filter(|r| r.record_type == "alert" && r.source == "resolved")
        .count()
}

/// Everything the test expects of the records one sink received.
fn check_records(sink: &str, recs: &[Rec], port: u16, t0_ms: u64, t1_ms: u64) {
    // Exactly once each: no record twice (time, kind, client, key and message differ).
    let mut sorted = recs.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), recs.len(), "{sink}: duplicates in {recs:#?}");
    let of = |ty: &str, kind: &str| -> Vec<&Rec> {
        recs.iter()
            .filter(|r| r.record_type == ty && r.kind == kind)
            .collect()
    };
    let broker = format!("127.0.0.1:{port}");
    for kind in ["auth_failure", "connect_refused"] {
        let ev = of("event", kind);
        assert_eq!(ev.len(), BAD, "{sink} {kind}: {recs:#?}");
        let mut ids: Vec<&str> = ev.iter().map(|r| r.client_id.as_str()).collect();
        ids.sort_unstable();
        let want: Vec<String> = (0..BAD).map(|i| format!("guess-{i}")).collect();
        assert_eq!(ids, want, "{sink} {kind}");
        for r in &ev {
            // MQTT 3.1.1 section 3.2.2.3: return code 5, "not authorized".
            assert_eq!(r.code, "5", "{sink} {r:?}");
            assert_eq!(r.username, "dev", "{sink} {r:?}");
            assert_eq!((r.source.as_str(), r.severity.as_str()), ("wire", "info"));
            let client_port = r
                .client_address
                .strip_prefix("127.0.0.1:")
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("{sink}: client address {r:?}"));
            assert_ne!(client_port, port);
            assert_eq!(r.broker_address, broker, "{sink} {r:?}");
            assert!((t0_ms..=t1_ms).contains(&r.ms), "{sink}: time {r:?}");
        }
    }
    // The same connection refused once as a refusal and once as an auth failure.
    for a in of("event", "auth_failure") {
        let twin = of("event", "connect_refused")
            .into_iter()
            .find(|r| r.client_id == a.client_id)
            .unwrap();
        assert_eq!((a.ms, &a.client_address), (twin.ms, &twin.client_address));
    }
    let alerts = of("alert", "auth_brute_force");
    assert_eq!(alerts.len(), 4, "{sink}: {alerts:#?}");
    let mut failures: Vec<u64> = of("event", "auth_failure").iter().map(|r| r.ms).collect();
    failures.sort_unstable();
    for key in ["ip:127.0.0.1", "user:dev"] {
        let edge = |state: &str| -> &Rec {
            let v: Vec<_> = alerts
                .iter()
                .filter(|r| r.detail == key && r.source == state)
                .collect();
            assert_eq!(v.len(), 1, "{sink} {key} {state}: {alerts:#?}");
            v[0]
        };
        let (f, r) = (edge("firing"), edge("resolved"));
        for e in [f, r] {
            assert_eq!(e.severity, "high", "{sink} {e:?}");
        }
        // Fires on the fifth failure (the default threshold); resolves `cooldown_s` (2 s)
        // after the last one. Times are ms in the records (truncated), hence the slack.
        assert!(
            f.ms.abs_diff(failures[4]) <= 1,
            "{sink} {key}: fired at {} not at the 5th failure {failures:?}",
            f.ms
        );
        assert!(
            r.ms.abs_diff(failures[BAD - 1] + 2000) <= 1,
            "{sink} {key}: resolved at {} not 2 s after the last failure {failures:?}",
            r.ms
        );
    }
    assert_eq!(recs.len(), 2 * BAD + 4, "{sink}: nothing else: {recs:#?}");
}

/// `mqscope_mqtt_packets_total` samples of a parsed exposition.
fn packets(s: &BTreeMap<(String, Labels), f64>) -> BTreeMap<Labels, f64> {
    s.iter()
        .filter(|((n, _), _)| n == "mqscope_mqtt_packets_total")
        .map(|((_, l), v)| (l.clone(), *v))
        .collect()
}

fn packet(p: &BTreeMap<Labels, f64>, ty: &str, dir: &str) -> f64 {
    let l: Labels = [("direction", dir), ("type", ty)]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    p.get(&l).copied().unwrap_or(-1.0)
}

fn otlp_packets(rx: &otlp_support::Receiver) -> (usize, BTreeMap<Labels, f64>) {
    let g = rx.got.lock().unwrap();
    if g.metrics.is_empty() {
        return (0, BTreeMap::new());
    }
    (
        g.metrics.len(),
        packets(&otlp_as_samples(&last_metrics(&g))),
    )
}

fn end_to_end(protocol: Protocol, tag: &str) {
    let t0 = now_ms();
    let dir = live_common::temp_dir(tag);
    let (_broker, port) = password_broker(&dir);
    let rx = otlp_support::Receiver::start(protocol, None);
    let token = dir.join("azure-identity-token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.projected-sa-token.sig\n").unwrap();
    let stand = azure_support::StandIn::start(
        1_000_000,
        azure_support::Credential::Assertion(token.clone()),
        vec![],
    );
    let sinks = sinks_config(&rx.url(false), protocol, &stand.url(), &stand.url(), &token);
    let cfg = write_config(&dir, port, 2, &sinks);
    let mq = start_mqscope(&dir, &cfg);
    traffic(port);
    let t1 = now_ms();

    // Both keys fire, then resolve after the 2 s cool-down.
    mq.wait_metrics(&[(ALERTS, 2.0)], Duration::from_secs(10));
    wait_until(
        "two resolved alerts at Azure",
        Duration::from_secs(12),
        || azure_recs(&stand),
        |r| resolved(r) == 2,
    );
    wait_until(
        "two resolved alerts over OTLP",
        Duration::from_secs(5),
        || otlp_recs(&rx),
        |r| resolved(r) == 2,
    );
    let n = (2 * BAD + 4) as f64;
    let body = mq.wait_metrics(
        &[
            (ALERTS, 0.0),
            (
                r#"mqscope_log_records_total{sink="azure_logs",result="sent"}"#,
                n,
            ),
            (r#"mqscope_log_records_total{sink="otlp",result="sent"}"#, n),
            (
                r#"mqscope_log_records_total{sink="azure_logs",result="dropped"}"#,
                0.0,
            ),
            (
                r#"mqscope_log_records_total{sink="otlp",result="dropped"}"#,
                0.0,
            ),
        ],
        Duration::from_secs(5),
    );

    // Live: an OTLP export rendered after this scrape shows what /metrics shows.
    let prom = packets(&prom_samples(&body));
    for (ty, dir, want) in [
        ("connect", "in", GOOD + BAD),
        ("connack", "out", GOOD + BAD),
        ("publish", "in", GOOD),
    ] {
        assert_eq!(packet(&prom, ty, dir), want as f64, "/metrics {ty} {dir}");
    }
    let (seen, _) = otlp_packets(&rx);
    let (_, live) = wait_until(
        "two more metric exports",
        Duration::from_secs(5),
        || otlp_packets(&rx),
        |(n, _)| *n >= seen + 2,
    );
    assert_eq!(live, prom, "OTLP export vs /metrics");
    let again = packets(&prom_samples(&http_get(&mq.addr, "/metrics")));
    assert_eq!(again, prom, "traffic had stopped");

    let sigterm_ns = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap();
    let t = Instant::now();
    let stats = mq.terminate();
    let stop_took = t.elapsed();
    eprintln!("{tag}: exit {stop_took:?} after SIGTERM");
    let t2 = now_ms();

    // The stats file: packets, and per sink exactly what the receivers got.
    assert_eq!(count(&stats, "CONNECT"), ((GOOD + BAD) as u64, 0));
    assert_eq!(count(&stats, "CONNACK"), (0, (GOOD + BAD) as u64));
    assert_eq!(count(&stats, "PUBLISH"), (GOOD as u64, 0));
    let az = azure_recs(&stand);
    let ot = otlp_recs(&rx);
    let sinks = &stats["outputs"]["sinks"];
    assert_eq!(sinks["azure_logs"]["sent"], az.len() as u64, "{sinks:#}");
    assert_eq!(sinks["otlp"]["sent"], ot.len() as u64, "{sinks:#}");
    for s in ["azure_logs", "otlp"] {
        assert_eq!(sinks[s]["dropped"], 0, "{s}: {sinks:#}");
        assert_eq!(sinks[s]["queued"], 0, "{s}: {sinks:#}");
    }
    assert_eq!(stats["outputs"]["log_records"], 2 * n as u64);
    assert_eq!(stats["outputs"]["log_records_dropped"], 0);
    assert_eq!(stats["outputs"]["alerts_fired"], 2);
    assert_eq!(stats["outputs"]["alerts_resolved"], 2);

    check_records("azure", &az, port, t0, t1);
    check_records("otlp", &ot, port, t0, t1);
    // Both sinks carry the same records, field for field.
    let (mut a, mut o) = (az.clone(), ot.clone());
    a.sort();
    o.sort();
    assert_eq!(a, o, "azure vs otlp");
    stand.assert_no_violations();
    assert_eq!(stand.with(|s| s.token_requests), 1, "one token, cached");

    // The last metrics export came after SIGTERM and carries the final counts.
    let got = rx.got.lock().unwrap();
    let last = last_metrics(&got);
    let final_pts = packets(&otlp_as_samples(&last));
    assert_eq!(
        packet(&final_pts, "connect", "in"),
        count(&stats, "CONNECT").0 as f64
    );
    assert_eq!(
        packet(&final_pts, "connack", "out"),
        count(&stats, "CONNACK").1 as f64
    );
    assert_eq!(
        packet(&final_pts, "publish", "in"),
        count(&stats, "PUBLISH").0 as f64
    );
    let at = last
        .iter()
        .find(|m| m.name == "mqscope_mqtt_packets")
        .and_then(|m| match &m.data {
            Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) => {
                s.data_points.first().map(|p| p.time_unix_nano)
            }
            _ => None,
        })
        .expect("mqscope_mqtt_packets is a sum");
    assert!(at >= sigterm_ns, "last export before SIGTERM");
    assert!(at / 1_000_000 <= t2);
    eprintln!(
        "{tag}: {} azure rows, {} otlp records, {} metric exports, final CONNECT {}",
        az.len(),
        ot.len(),
        got.metrics.len(),
        packet(&final_pts, "connect", "in")
    );
}

#[test]
fn run_delivers_events_and_alerts_to_otlp_grpc_and_azure() {
    end_to_end(Protocol::Grpc, "live-exp-grpc");
}

#[test]
fn run_delivers_events_and_alerts_to_otlp_http_and_azure() {
    end_to_end(Protocol::HttpProtobuf, "live-exp-http");
}

/// Nobody listens where the OTLP collector and Azure (ingestion and token endpoint) should
/// be. mqscope captures, serves /metrics and alerts as usual, stops in time on SIGTERM, and
/// counts every record it could not deliver.
#[test]
fn run_with_both_sinks_down_keeps_working_and_counts_the_losses() {
    let dir = live_common::temp_dir("live-exp-down");
    let (_broker, port) = password_broker(&dir);
    let (otlp_port, azure_port) = (free_port(), free_port());
    let token = dir.join("azure-identity-token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.projected-sa-token.sig\n").unwrap();
    let azure = format!("http://127.0.0.1:{azure_port}");
    let sinks = sinks_config(
        &format!("http://127.0.0.1:{otlp_port}"),
        Protocol::Grpc,
        &azure,
        &azure,
        &token,
    );
    // A long cool-down: the alerts are still firing at the stop.
    let cfg = write_config(&dir, port, 600, &sinks);
    let mq = start_mqscope(&dir, &cfg);
    for i in 0..BAD {
        assert!(!publish(port, &format!("guess-{i}"), "wrong"));
    }
    mq.wait_metrics(
        &[
            (ALERTS, 2.0),
            (
                r#"mqscope_mqtt_packets_total{type="connect",direction="in"}"#,
                BAD as f64,
            ),
            (
                r#"mqscope_mqtt_packets_total{type="connack",direction="out"}"#,
                BAD as f64,
            ),
            (r#"mqscope_events_total{kind="auth_failure"}"#, BAD as f64),
        ],
        Duration::from_secs(10),
    );
    let body = http_get(&mq.addr, "/metrics");
    let t = Instant::now();
    let stats = mq.terminate();
    let stop_took = t.elapsed();
    eprintln!("down: exit {stop_took:?} after SIGTERM");
    // SHUTDOWN_LIMIT is 5 s; the sinks get 2 s of it.
    assert!(stop_took < Duration::from_secs(6), "{stop_took:?}");
    assert_eq!(count(&stats, "CONNECT"), (BAD as u64, 0));
    assert_eq!(count(&stats, "CONNACK"), (0, BAD as u64));
    assert_eq!(stats["outputs"]["alerts_fired"], 2);
    // 6 refusals × (connect_refused + auth_failure) + 2 alerts firing, per sink.
    let n = (2 * BAD + 2) as u64;
    assert_eq!(
        stats["outputs"]["log_records"],
        2 * n,
        "{:#}",
        stats["outputs"]
    );
    let sinks = &stats["outputs"]["sinks"];
    for s in ["azure_logs", "otlp"] {
        let c = &sinks[s];
        assert_eq!(c["sent"], 0, "{s}: {sinks:#}");
        assert_eq!(
            c["dropped"].as_u64().unwrap() + c["queued"].as_u64().unwrap(),
            n,
            "{s}: every record accounted for: {sinks:#}"
        );
        assert_eq!(
            c["queued"], 0,
            "{s}: nothing left pending after exit: {sinks:#}"
        );
    }
    eprintln!(
        "down: sinks {sinks}; /metrics before stop: {:?}",
        body.lines()
            .filter(|l| l.starts_with("mqscope_log_records"))
            .collect::<Vec<_>>()
    );
}

//! OTLP export against an in-process OTLP receiver built from the opentelemetry-proto
//! definitions: a tonic gRPC server (the generated `MetricsService` / `LogsService`) and
//! a hyper HTTP/1.1 server decoding `/v1/metrics` and `/v1/logs` bodies with prost. The
//! exporter is fed a `MetricsState` built from a real replay of a shared capture and
//! `LogRecord`s from the replay's events and an alert edge. What arrives is checked
//! against the Prometheus text of the same snapshot (parsed here, independently), the
//! capture's TShark decode and hand calculation. Also: a receiver that is down or hangs
//! never blocks `log` or `shutdown`, and mutual TLS works for both protocols.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use mqscope::dissect::DissectConfig;
use mqscope::export::alerts::{AlertBook, LabelSet, Timestamp};
use mqscope::export::otlp::{OtlpConfig, OtlpExporter, OtlpTls, Protocol, SecretFrom, ValueFrom};
use mqscope::export::{EventTally, LogRecord, MetricsSnapshot, MetricsState, PrometheusConfig};
use mqscope::observe::{ObserveConfig, Observer};
use mqscope::replay::replay_files;
use mqscope::replay::sink::ReplaySink;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord as OtlpLog;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use prost::Message;

mod common;

// ---------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Received {
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
    /// `authorization` header / metadata of each request.
    auth: Vec<Option<String>>,
    /// ALPN protocol negotiated on each TLS connection.
    alpn: Vec<Option<Vec<u8>>>,
}

type Shared = Arc<Mutex<Received>>;

/// One receiver on its own thread and runtime (the exporter's `shutdown` blocks its
/// caller, so the receiver must not need the test thread to make progress).
struct Receiver {
    addr: SocketAddr,
    got: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
struct Grpc(Shared);

fn auth_of(h: &http::HeaderMap) -> Option<String> {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut g = self.0.lock().unwrap();
        g.auth.push(auth_of(&req.metadata().clone().into_headers()));
        g.metrics.push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut g = self.0.lock().unwrap();
        g.auth.push(auth_of(&req.metadata().clone().into_headers()));
        g.logs.push(req.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Routes by gRPC path to the two generated servers (tonic's router needs axum).
#[derive(Clone)]
struct Both(MetricsServiceServer<Grpc>, LogsServiceServer<Grpc>);

impl tower::Service<http::Request<tonic::body::Body>> for Both {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path().contains(".metrics.") {
            Box::pin(self.0.call(req))
        } else {
            Box::pin(self.1.call(req))
        }
    }
}

fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let chain: Vec<_> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

impl Receiver {
    /// `tls`: a directory made by `make_certs` (server certificate, client certificates
    /// required).
    fn start(protocol: Protocol, tls: Option<&Path>) -> Receiver {
        let got = Shared::default();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let g = Arc::clone(&got);
        let acceptor = tls.map(tls_acceptor);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(l.local_addr().unwrap()).unwrap();
                match protocol {
                    Protocol::Grpc => serve_grpc(l, g, acceptor, stop_rx).await,
                    Protocol::HttpProtobuf => serve_http(l, g, acceptor, stop_rx).await,
                }
            });
        });
        Receiver {
            addr: addr_rx.recv().unwrap(),
            got,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn url(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    /// Waits until `done` holds for what has arrived (or 10 s).
    fn wait(&self, done: impl Fn(&Received) -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if done(&self.got.lock().unwrap()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

async fn serve_grpc(
    l: tokio::net::TcpListener,
    g: Shared,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let svc = Both(
        MetricsServiceServer::new(Grpc(Arc::clone(&g))),
        LogsServiceServer::new(Grpc(Arc::clone(&g))),
    );
    let stop = async {
        let _ = stop.await;
    };
    let server = tonic::transport::Server::builder();
    match tls {
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(l);
            let _ = server
                .serve_with_incoming_shutdown(svc, incoming, stop)
                .await;
        }
        Some(acc) => {
            // TLS done here (tonic's own TLS features stay off: see Cargo.toml).
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let (acc, tx, g) = (acc.clone(), tx.clone(), Arc::clone(&g));
                    tokio::spawn(async move {
                        if let Ok(s) = acc.accept(s).await {
                            let alpn = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                            g.lock().unwrap().alpn.push(alpn);
                            let _ = tx.send(Ok::<_, std::io::Error>(s)).await;
                        }
                    });
                }
            });
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
            let _ = server
                .serve_with_incoming_shutdown(svc, incoming, stop)
                .await;
        }
    }
}

async fn handle_http(
    req: http::Request<hyper::body::Incoming>,
    g: Shared,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let auth = auth_of(req.headers());
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let status = if ctype != "application/x-protobuf" {
        415
    } else {
        let mut r = g.lock().unwrap();
        match path.as_str() {
            "/v1/metrics" => match ExportMetricsServiceRequest::decode(body) {
                Ok(m) => {
                    r.metrics.push(m);
                    r.auth.push(auth);
                    200
                }
                Err(_) => 400,
            },
            "/v1/logs" => match ExportLogsServiceRequest::decode(body) {
                Ok(m) => {
                    r.logs.push(m);
                    r.auth.push(auth);
                    200
                }
                Err(_) => 400,
            },
            _ => 404,
        }
    };
    let answer = match path.as_str() {
        "/v1/logs" => ExportLogsServiceResponse::default().encode_to_vec(),
        _ => ExportMetricsServiceResponse::default().encode_to_vec(),
    };
    Ok(http::Response::builder()
        .status(status)
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::from(answer)))
        .unwrap())
}

async fn serve_http(
    l: tokio::net::TcpListener,
    g: Shared,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let s = tokio::select! {
            _ = &mut stop => return,
            r = l.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
        };
        let (g, tls) = (Arc::clone(&g), tls.clone());
        tokio::spawn(async move {
            let g2 = Arc::clone(&g);
            let svc = hyper::service::service_fn(move |req| handle_http(req, Arc::clone(&g)));
            let conn = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = conn
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                }
                Some(acc) => {
                    if let Ok(s) = acc.accept(s).await {
                        let alpn = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        g2.lock().unwrap().alpn.push(alpn);
                        let _ = conn
                            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                            .await;
                    }
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// Inputs: a replayed capture, log records, certificates
// ---------------------------------------------------------------------------------------

/// MQTT 5 CONNECT refused with CONNACK 0x86 (bad user name or password), then a 35,758
/// byte PUBLISH.
const CAPTURE: &str = "suricata-verify/mqtt-connect-rules-2/mqtt5_pub_jpeg_connack134.pcap";

fn capture() -> PathBuf {
    common::shared_captures().join(CAPTURE)
}

/// Replays `cap` through the library as `mqscope replay --metrics-out` does and
/// publishes the snapshot; returns the state and the log records of its events.
fn replay_state(cap: &Path) -> (Arc<MetricsState>, Vec<LogRecord>) {
    let mut sink: ReplaySink<Vec<u8>> = ReplaySink {
        jsonl: None,
        observer: Some(Observer::new(&ObserveConfig::default()).unwrap()),
    };
    let report = replay_files(
        &[cap.to_path_buf()],
        DissectConfig::default(),
        None,
        &mut sink,
    );
    let mut obs = sink.observer.take().unwrap();
    obs.finish();
    let events: Vec<_> = obs.events().drain().collect();
    let mut tally = EventTally::default();
    for e in &events {
        tally.observe(e);
    }
    let state = MetricsState::new(PrometheusConfig {
        per_client_labels: true,
        ..PrometheusConfig::default()
    });
    let mut snap = MetricsSnapshot::new(report.stats.clone(), report.capture.clone())
        .with_observer(&obs, state.config());
    snap.events = Some(tally);
    state.publish(snap);
    (state, events.iter().map(LogRecord::from_event).collect())
}

fn alert_record() -> LogRecord {
    let mut labels = LabelSet::new();
    labels.insert("alertname".into(), "auth_failure_burst".into());
    labels.insert("severity".into(), "high".into());
    labels.insert("client_id".into(), "plc-17".into());
    let mut ann = LabelSet::new();
    ann.insert("summary".into(), "5 refused logins from plc-17".into());
    let t = AlertBook::new(8)
        .activate(labels, ann, Timestamp(1_585_173_936_000))
        .expect("fires");
    LogRecord::from_transition(&t)
}

fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("mqscope-otlp-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, with the openssl
/// CLI (Debian package `openssl`).
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let st = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (Debian package openssl)");
        assert!(st.success(), "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=otlp-test-ca",
    ]);
    run(&a);
    for (name, cn, ext) in [
        (
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "/CN=mqscope", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, pem, cnf) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.cnf"),
        );
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &csr, "-subj", cn]);
        run(&a);
        std::fs::write(dir.join(&cnf), format!("basicConstraints=CA:FALSE\n{ext}")).unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &cnf,
        ]);
    }
}

fn base_config(protocol: Protocol, endpoint: String) -> OtlpConfig {
    OtlpConfig {
        enabled: true,
        endpoint,
        protocol,
        export_interval_ms: 200,
        timeout_ms: 2_000,
        ..OtlpConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Reading what arrived
// ---------------------------------------------------------------------------------------

type Labels = BTreeMap<String, String>;

fn str_of(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn labels(kv: &[KeyValue]) -> Labels {
    kv.iter()
        .map(|k| {
            (
                k.key.clone(),
                str_of(&k.value).expect("string or int attribute"),
            )
        })
        .collect()
}

/// The exposition as `(name, labels) → value`, read with its escapes; written for this
/// test (the exporter has its own reader).
fn prom_samples(text: &str) -> BTreeMap<(String, Labels), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => {
                let (n, v) = line.split_once(' ').unwrap();
                out.insert((n.to_string(), Labels::new()), v.parse().unwrap());
                continue;
            }
        };
        let mut ls = Labels::new();
        let mut chars = rest.chars();
        let (mut key, mut val) = (String::new(), String::new());
        let mut in_val = false;
        loop {
            let c = chars.next().expect("unterminated labels");
            if in_val {
                match c {
                    '\\' => match chars.next().unwrap() {
                        'n' => val.push('\n'),
                        o => val.push(o),
                    },
                    '"' => {
                        ls.insert(std::mem::take(&mut key), std::mem::take(&mut val));
                        in_val = false;
                    }
                    o => val.push(o),
                }
            } else {
                match c {
                    '}' => break,
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next(), Some('"'));
                        in_val = true;
                    }
                    o => key.push(o),
                }
            }
        }
        let v = chars.as_str().trim();
        let v = match v {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        assert!(
            out.insert((name.to_string(), ls), v).is_none(),
            "dup {line}"
        );
    }
    out
}

fn le(b: f64) -> String {
    if b.is_infinite() {
        "+Inf".into()
    } else {
        b.to_string()
    }
}

/// Every OTLP point, as the Prometheus samples it stands for.
fn otlp_as_samples(metrics: &[Metric]) -> BTreeMap<(String, Labels), f64> {
    let mut out = BTreeMap::new();
    let mut put = |name: String, l: Labels, v: f64| {
        assert!(
            out.insert((name.clone(), l.clone()), v).is_none(),
            "dup {name} {l:?}"
        );
    };
    for m in metrics {
        match m.data.as_ref().expect("data") {
            metric::Data::Sum(s) => {
                assert!(s.is_monotonic, "{}", m.name);
                assert_eq!(s.aggregation_temporality, 2, "cumulative: {}", m.name);
                assert!(!m.name.ends_with("_total"), "{}", m.name);
                for p in &s.data_points {
                    assert!(
                        p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano
                    );
                    let v = match p.value {
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        None => panic!("no value"),
                    };
                    put(format!("{}_total", m.name), labels(&p.attributes), v);
                }
            }
            metric::Data::Gauge(g) => {
                for p in &g.data_points {
                    let Some(number_data_point::Value::AsDouble(v)) = p.value else {
                        panic!("gauge {} not a double", m.name)
                    };
                    put(m.name.clone(), labels(&p.attributes), v);
                }
            }
            metric::Data::Histogram(h) => {
                assert_eq!(h.aggregation_temporality, 2, "cumulative: {}", m.name);
                for p in &h.data_points {
                    let l = labels(&p.attributes);
                    assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
                    assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
                    let mut cum = 0;
                    let bounds = p.explicit_bounds.iter().copied().chain([f64::INFINITY]);
                    for (b, n) in bounds.zip(&p.bucket_counts) {
                        cum += n;
                        let mut lb = l.clone();
                        lb.insert("le".into(), le(b));
                        put(format!("{}_bucket", m.name), lb, cum as f64);
                    }
                    put(format!("{}_sum", m.name), l.clone(), p.sum.expect("sum"));
                    put(format!("{}_count", m.name), l, p.count as f64);
                }
            }
            other => panic!("unexpected metric type {other:?}"),
        }
    }
    out
}

fn last_metrics(r: &Received) -> Vec<Metric> {
    let req = r.metrics.last().expect("a metrics request");
    assert_eq!(req.resource_metrics.len(), 1);
    let rm = &req.resource_metrics[0];
    assert_eq!(rm.scope_metrics.len(), 1);
    assert_eq!(rm.scope_metrics[0].scope.as_ref().unwrap().name, "mqscope");
    rm.scope_metrics[0].metrics.clone()
}

fn all_logs(r: &Received) -> Vec<OtlpLog> {
    r.logs
        .iter()
        .flat_map(|q| &q.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| sl.log_records.clone())
        .collect()
}

fn log_count(r: &Received) -> usize {
    all_logs(r).len()
}

fn resource_attrs(r: &Received) -> Labels {
    let res = r.metrics.first().map_or_else(
        || r.logs[0].resource_logs[0].resource.clone(),
        |m| m.resource_metrics[0].resource.clone(),
    );
    labels(&res.expect("resource").attributes)
}

/// TShark's frame time as ns since the epoch (`1585173935.383884000`).
fn tsv_ns(s: &str) -> u64 {
    let (a, b) = s.split_once('.').unwrap();
    a.parse::<u64>().unwrap() * 1_000_000_000 + format!("{b:0<9}")[..9].parse::<u64>().unwrap()
}

fn hist<'a>(
    metrics: &'a [Metric],
    name: &str,
) -> Vec<&'a opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint> {
    metrics
        .iter()
        .filter(|m| m.name == name)
        .flat_map(|m| match &m.data {
            Some(metric::Data::Histogram(h)) => h.data_points.iter().collect::<Vec<_>>(),
            _ => panic!("{name} is not a histogram"),
        })
        .collect()
}

/// Index of the bucket `(bounds[i-1], bounds[i]]` holding `v`.
fn bucket_of(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len())
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

fn round_trip(protocol: Protocol) {
    let cap = capture();
    let (state, mut records) = replay_state(&cap);
    records.push(alert_record());
    let rx = Receiver::start(protocol, None);
    let dir = temp_dir("rt");
    let token = dir.join("token");
    std::fs::write(&token, "Bearer t0ken-from-file\n").unwrap();
    let mut cfg = base_config(protocol, rx.url(false));
    cfg.headers.insert(
        "Authorization".into(),
        SecretFrom(ValueFrom::File { file: token }),
    );
    cfg.resource.insert(
        "service.instance.id".into(),
        ValueFrom::Literal("emqx-0".into()),
    );
    cfg.resource.insert(
        "k8s.namespace.name".into(),
        ValueFrom::Env {
            env: "CARGO_PKG_NAME".into(),
        },
    );
    let exp = OtlpExporter::start(&cfg, Arc::clone(&state)).expect("start");
    for r in &records {
        assert!(exp.log(r), "queue has room");
    }
    let n = records.len();
    assert!(
        rx.wait(|g| !g.metrics.is_empty() && log_count(g) == n),
        "nothing (or not all) arrived"
    );
    let stats = exp.shutdown(Duration::from_secs(3));
    assert_eq!(stats.logs_sent, n as u64);
    assert_eq!(
        (stats.logs_dropped, stats.logs_failed, stats.export_errors),
        (0, 0, 0)
    );
    assert!(stats.metric_exports >= 1);

    let got = rx.got.lock().unwrap();
    // Headers from the file (trailing newline trimmed) on every request.
    assert!(!got.auth.is_empty());
    assert!(
        got.auth
            .iter()
            .all(|a| a.as_deref() == Some("Bearer t0ken-from-file")),
        "{:?}",
        got.auth
    );
    let res = resource_attrs(&got);
    assert_eq!(res["service.name"], "mqscope");
    assert_eq!(res["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(res["service.instance.id"], "emqx-0");
    assert_eq!(res["k8s.namespace.name"], "mqscope");

    // Metrics: every sample of the Prometheus text of the same snapshot, and nothing
    // else, with the same value.
    let metrics = last_metrics(&got);
    let text = state.render();
    let prom = prom_samples(&text);
    let otlp = otlp_as_samples(&metrics);
    let only_prom: Vec<_> = prom.keys().filter(|k| !otlp.contains_key(*k)).collect();
    let only_otlp: Vec<_> = otlp.keys().filter(|k| !prom.contains_key(*k)).collect();
    assert!(only_prom.is_empty(), "missing from OTLP: {only_prom:?}");
    assert!(only_otlp.is_empty(), "not in /metrics: {only_otlp:?}");
    for (k, v) in &prom {
        assert_eq!(otlp[k], *v, "{k:?}");
    }
    assert!(prom.len() > 100, "a real snapshot: {} samples", prom.len());
    let unit = |n: &str| metrics.iter().find(|m| m.name == n).map(|m| m.unit.clone());
    assert_eq!(unit("mqscope_latency_seconds").as_deref(), Some("s"));
    assert_eq!(unit("mqscope_mqtt_bytes").as_deref(), Some("By"));

    // Against TShark's decode of the capture (independent of mqscope).
    let rows = common::tshark_rows(&cap);
    let dir_of = |r: &common::Row| if r["dstport"] == "1883" { "in" } else { "out" };
    let mut by_type: BTreeMap<(String, &str), f64> = BTreeMap::new();
    for r in &rows {
        *by_type
            .entry((r["msgtype_name"].to_ascii_lowercase(), dir_of(r)))
            .or_default() += 1.0;
    }
    for ((t, d), n) in &by_type {
        let l: Labels = [("type", t.as_str()), ("direction", d)]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            otlp[&("mqscope_mqtt_packets_total".to_string(), l)],
            *n,
            "{t} {d}"
        );
    }
    // CONNECT → CONNACK latency from the frame times: one observation, in its bucket.
    let t_of = |ty: &str| {
        tsv_ns(&rows.iter().find(|r| r["msgtype_name"] == ty).unwrap()["frame.time_epoch"])
    };
    let connack_ns = t_of("CONNACK");
    let lat_s = (connack_ns - t_of("CONNECT")) as f64 / 1e9;
    let pts = hist(&metrics, "mqscope_latency_seconds");
    let p = pts
        .iter()
        .find(|p| labels(&p.attributes)["exchange"] == "connect")
        .expect("connect latency");
    assert_eq!(p.count, 1);
    assert_eq!(
        p.bucket_counts[bucket_of(&p.explicit_bounds, lat_s)],
        1,
        "{lat_s} s"
    );
    assert!(
        (p.sum.unwrap() - lat_s).abs() < 2e-6,
        "{:?} vs {lat_s}",
        p.sum
    );
    // The PUBLISH payload size from TShark: one message, its bucket, its bytes.
    let payload: f64 = rows
        .iter()
        .find(|r| r["msgtype_name"] == "PUBLISH")
        .unwrap()["payload_len"]
        .parse()
        .unwrap();
    let pts = hist(&metrics, "mqscope_payload_size_bytes");
    assert_eq!(pts.iter().map(|p| p.count).sum::<u64>(), 1);
    let p = pts.iter().find(|p| p.count == 1).unwrap();
    assert_eq!(
        p.explicit_bounds,
        [
            16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0
        ]
    );
    assert_eq!(p.bucket_counts[bucket_of(&p.explicit_bounds, payload)], 1);
    assert_eq!(p.sum, Some(payload));

    // Logs: one record per LogRecord, in order, with its fields.
    let logs = all_logs(&got);
    assert_eq!(logs.len(), n);
    for (o, r) in logs.iter().zip(&records) {
        let a = labels(&o.attributes);
        assert_eq!(a["mqscope.kind"], r.kind);
        assert_eq!(o.time_unix_nano, r.ts_ns);
        assert_eq!(str_of(&o.body).as_deref(), Some(r.message.as_str()));
    }
    // The refused login: code and user name as TShark decodes them.
    let connack = rows
        .iter()
        .find(|r| r["msgtype_name"] == "CONNACK")
        .unwrap();
    let connect = rows
        .iter()
        .find(|r| r["msgtype_name"] == "CONNECT")
        .unwrap();
    let auth = logs
        .iter()
        .find(|o| labels(&o.attributes)["mqscope.kind"] == "auth_failure")
        .expect("an auth_failure record");
    let a = labels(&auth.attributes);
    assert_eq!(a["mqscope.code"], connack["mqtt.connack.reason_code"]);
    assert_eq!(a["mqscope.username"], connect["mqtt.username"]);
    assert_eq!(a["mqscope.record_type"], "event");
    assert_eq!(a["mqscope.source"], "wire");
    assert_eq!(
        (auth.severity_text.as_str(), auth.severity_number),
        ("info", 9)
    );
    assert_eq!(auth.time_unix_nano, connack_ns);
    // The alert edge: severity high → ERROR (17), labels and annotations kept.
    let alert = logs.last().unwrap();
    let a = labels(&alert.attributes);
    assert_eq!(
        (alert.severity_text.as_str(), alert.severity_number),
        ("high", 17)
    );
    assert_eq!(a["mqscope.record_type"], "alert");
    assert_eq!(a["mqscope.source"], "firing");
    assert_eq!(a["mqscope.client_id"], "plc-17");
    assert_eq!(
        a["mqscope.annotation.summary"],
        "5 refused logins from plc-17"
    );
    assert_eq!(
        str_of(&alert.body).as_deref(),
        Some("5 refused logins from plc-17")
    );
    assert_eq!(alert.time_unix_nano, 1_585_173_936_000_000_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn grpc_receiver_gets_the_metrics_and_logs() {
    round_trip(Protocol::Grpc);
}

#[test]
fn http_protobuf_receiver_gets_the_metrics_and_logs() {
    round_trip(Protocol::HttpProtobuf);
}

/// Nothing listens: `log` stays instant and drops beyond the queue, errors are counted,
/// shutdown returns within its bound and accounts for every accepted record.
#[test]
fn receiver_down_never_blocks() {
    let rec = alert_record();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = base_config(protocol, format!("http://127.0.0.1:{port}"));
        cfg.export_interval_ms = 100;
        cfg.timeout_ms = 300;
        cfg.max_queued_logs = 8;
        cfg.max_batch_logs = 4;
        let state = MetricsState::new(PrometheusConfig::default());
        let exp = OtlpExporter::start(&cfg, state).expect("starts without a collector");
        let t = Instant::now();
        let accepted = (0..500).filter(|_| exp.log(&rec)).count() as u64;
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert!((8..500).contains(&accepted), "{accepted}");
        std::thread::sleep(Duration::from_millis(700));
        let s = exp.stats();
        assert_eq!(s.logs_dropped, 500 - accepted);
        assert!(s.export_errors >= 3, "{s:?}");
        assert_eq!((s.metric_exports, s.logs_sent), (0, 0));
        let t = Instant::now();
        let fin = exp.shutdown(Duration::from_millis(500));
        assert!(
            t.elapsed() < Duration::from_millis(700),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(fin.logs_failed, accepted, "{protocol:?} {fin:?}");
    }
}

/// A collector that accepts connections and never answers: exports hang (their timeout
/// is 10 s), yet `log` returns at once and shutdown keeps its bound.
#[test]
fn hung_receiver_does_not_hold_shutdown() {
    let rec = alert_record();
    // Never accepted: the kernel completes the handshake, nobody ever reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let mut cfg = base_config(protocol, format!("http://127.0.0.1:{port}"));
        cfg.export_interval_ms = 100;
        cfg.timeout_ms = 10_000;
        let state = MetricsState::new(PrometheusConfig::default());
        let exp = OtlpExporter::start(&cfg, state).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        for _ in 0..100 {
            assert!(exp.log(&rec));
        }
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        let t = Instant::now();
        let fin = exp.shutdown(Duration::from_secs(1));
        assert!(
            t.elapsed() < Duration::from_millis(1300),
            "{:?}",
            t.elapsed()
        );
        // The exporter gave up the hung export, tried the queue once more within the
        // deadline and accounted for every record before shutdown returned.
        assert_eq!((fin.logs_sent, fin.logs_failed), (0, 100), "{protocol:?}");
    }
    drop(silent);
}

/// https:// with a private CA and a client certificate the receiver requires; ALPN as
/// each protocol needs (`h2` for gRPC). Without the client certificate nothing arrives.
#[test]
fn mutual_tls_for_both_protocols() {
    let dir = temp_dir("mtls");
    make_certs(&dir);
    let rec = alert_record();
    for (protocol, alpn) in [
        (Protocol::Grpc, &b"h2"[..]),
        (Protocol::HttpProtobuf, b"http/1.1"),
    ] {
        let rx = Receiver::start(protocol, Some(&dir));
        let mut cfg = base_config(protocol, rx.url(true));
        cfg.metrics = false;
        cfg.tls = OtlpTls {
            ca_file: Some(dir.join("ca.pem")),
            client_cert_file: None,
            client_key_file: None,
        };
        // Without a client certificate: refused by the receiver.
        let anon =
            OtlpExporter::start(&cfg, MetricsState::new(PrometheusConfig::default())).unwrap();
        assert!(anon.log(&rec));
        let fin = anon.shutdown(Duration::from_secs(2));
        assert_eq!(
            (fin.logs_sent, fin.logs_failed),
            (0, 1),
            "{protocol:?} {fin:?}"
        );
        assert!(fin.export_errors >= 1);
        assert_eq!(log_count(&rx.got.lock().unwrap()), 0);

        cfg.tls.client_cert_file = Some(dir.join("client.pem"));
        cfg.tls.client_key_file = Some(dir.join("client.key"));
        let exp =
            OtlpExporter::start(&cfg, MetricsState::new(PrometheusConfig::default())).unwrap();
        assert!(exp.log(&rec));
        assert!(
            rx.wait(|g| log_count(g) == 1),
            "{protocol:?}: no log over mTLS"
        );
        let fin = exp.shutdown(Duration::from_secs(2));
        assert_eq!((fin.logs_sent, fin.export_errors), (1, 0), "{protocol:?}");
        let got = rx.got.lock().unwrap();
        assert!(got.metrics.is_empty(), "metrics = false");
        assert_eq!(
            got.alpn.last().cloned().flatten().as_deref(),
            Some(alpn),
            "{protocol:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start refuses what it cannot use, naming the key; a disabled section is not started.
#[test]
fn start_reports_configuration_problems() {
    let state = MetricsState::new(PrometheusConfig::default());
    let cfg = OtlpConfig::default();
    assert!(matches!(
        OtlpExporter::start(&cfg, Arc::clone(&state)),
        Err(mqscope::export::otlp::OtlpError::Disabled)
    ));
    let mut cfg = base_config(Protocol::Grpc, "https://127.0.0.1:4317".into());
    cfg.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let e = OtlpExporter::start(&cfg, Arc::clone(&state))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tls.ca_file /nonexistent/ca.pem"), "{e}");
    let mut cfg = base_config(Protocol::Grpc, "http://127.0.0.1:4317".into());
    cfg.headers.insert(
        "x-key".into(),
        SecretFrom(ValueFrom::Literal("caf\u{e9}-s3cret".into())),
    );
    let e = OtlpExporter::start(&cfg, state).unwrap_err().to_string();
    assert!(e.contains("headers.x-key"), "{e}");
    assert!(!e.contains("s3cret"), "the value leaked: {e}");
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The collector config, read by PyYAML (comes with `kubernetes-validate`, installed by
/// scripts/setup-debian.sh). The collector binary is not available: this checks the shape
/// mqscope relies on, not the collector's own validation.
#[test]
fn collector_config_shape() {
    let path = root().join("deploy/otel-collector/collector.yaml");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "PyYAML cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &c["receivers"]["otlp"]["protocols"];
    assert_eq!(p["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(p["http"]["endpoint"], "0.0.0.0:4318");
    assert_eq!(
        c["exporters"]["azuremonitor"]["connection_string"],
        "${env:APPLICATIONINSIGHTS_CONNECTION_STRING}"
    );
    for signal in ["metrics", "logs"] {
        let pl = &c["service"]["pipelines"][signal];
        let list = |k: &str| -> Vec<String> {
            pl[k]
                .as_array()
                .unwrap_or_else(|| panic!("{signal}.{k}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        assert!(list("receivers").contains(&"otlp".to_string()), "{signal}");
        assert!(
            list("exporters").contains(&"azuremonitor".to_string()),
            "{signal}"
        );
        // Every component a pipeline names is defined.
        for (kind, names) in [
            ("receivers", list("receivers")),
            ("processors", list("processors")),
            ("exporters", list("exporters")),
        ] {
            for n in names {
                assert!(c[kind].get(&n).is_some(), "{signal}: {kind}.{n} undefined");
            }
        }
    }
    for e in c["service"]["extensions"].as_array().unwrap() {
        assert!(c["extensions"].get(e.as_str().unwrap()).is_some(), "{e}");
    }
}

/// The `[otlp]` example in the collector README is a valid section for mqscope.
#[test]
fn readme_example_section_parses() {
    #[derive(serde::Deserialize)]
    struct File {
        otlp: OtlpConfig,
    }
    let readme = std::fs::read_to_string(root().join("deploy/otel-collector/README.md")).unwrap();
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block");
    let f: File = toml::from_str(block).expect("the example parses");
    let c = f.otlp;
    assert!(c.enabled);
    assert_eq!(c.protocol, Protocol::Grpc);
    assert_eq!(c.export_interval_ms, 15_000);
    assert!(c.resource.contains_key("k8s.pod.name"));
    // Only the example's environment variables may be missing here.
    for e in c.validate() {
        assert!(e.contains("environment variable"), "{e}");
    }
}

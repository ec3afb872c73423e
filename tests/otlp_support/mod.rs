//! An in-process OTLP receiver built from the opentelemetry-proto definitions: a tonic
//! gRPC server (the generated `MetricsService` / `LogsService`) and a hyper HTTP/1.1
//! server decoding `/v1/metrics` and `/v1/logs` bodies with prost, optionally behind
//! rustls with client certificates required; and readers for what arrived (OTLP points
//! as the Prometheus samples they stand for, log records, attributes). Each receiver runs
//! on its own thread and runtime, independent of the exporter under test.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use mqscope::export::otlp::Protocol;
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

// ---------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------

#[derive(Default)]
pub struct Received {
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    /// `authorization` header / metadata of each request.
    pub auth: Vec<Option<String>>,
    /// ALPN protocol negotiated on each TLS connection.
    pub alpn: Vec<Option<Vec<u8>>>,
    /// While set, requests are recorded but their answers held back: a collector that
    /// has the data while its answer is still on the way.
    pub hold_replies: bool,
}

/// Returns once `hold_replies` is off.
async fn held(g: &Shared) {
    while g.lock().unwrap().hold_replies {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub type Shared = Arc<Mutex<Received>>;

/// One receiver on its own thread and runtime (the exporter's `shutdown` blocks its
/// caller, so the receiver must not need the test thread to make progress).
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Held answers would keep the server's graceful shutdown waiting.
        if let Ok(mut g) = self.got.lock() {
            g.hold_replies = false;
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub struct Grpc(pub Shared);

pub fn auth_of(h: &http::HeaderMap) -> Option<String> {
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
        {
            let mut g = self.0.lock().unwrap();
            g.auth.push(auth_of(&req.metadata().clone().into_headers()));
            g.metrics.push(req.into_inner());
        }
        held(&self.0).await;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        {
            let mut g = self.0.lock().unwrap();
            g.auth.push(auth_of(&req.metadata().clone().into_headers()));
            g.logs.push(req.into_inner());
        }
        held(&self.0).await;
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Routes by gRPC path to the two generated servers (tonic's router needs axum).
#[derive(Clone)]
pub struct Both(pub MetricsServiceServer<Grpc>, pub LogsServiceServer<Grpc>);

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

pub fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
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
    pub fn start(protocol: Protocol, tls: Option<&Path>) -> Receiver {
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

    pub fn url(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    /// Waits until `done` holds for what has arrived (or 10 s).
    pub fn wait(&self, done: impl Fn(&Received) -> bool) -> bool {
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

pub async fn serve_grpc(
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

pub async fn handle_http(
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
    held(&g).await;
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

pub async fn serve_http(
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
// Reading what arrived
// ---------------------------------------------------------------------------------------

pub type Labels = BTreeMap<String, String>;

pub fn str_of(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

pub fn labels(kv: &[KeyValue]) -> Labels {
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
pub fn prom_samples(text: &str) -> BTreeMap<(String, Labels), f64> {
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

pub fn le(b: f64) -> String {
    if b.is_infinite() {
        "+Inf".into()
    } else {
        b.to_string()
    }
}

/// Every OTLP point, as the Prometheus samples it stands for.
pub fn otlp_as_samples(metrics: &[Metric]) -> BTreeMap<(String, Labels), f64> {
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

pub fn last_metrics(r: &Received) -> Vec<Metric> {
    let req = r.metrics.last().expect("a metrics request");
    assert_eq!(req.resource_metrics.len(), 1);
    let rm = &req.resource_metrics[0];
    assert_eq!(rm.scope_metrics.len(), 1);
    assert_eq!(rm.scope_metrics[0].scope.as_ref().unwrap().name, "mqscope");
    rm.scope_metrics[0].metrics.clone()
}

pub fn all_logs(r: &Received) -> Vec<OtlpLog> {
    r.logs
        .iter()
        .flat_map(|q| &q.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| sl.log_records.clone())
        .collect()
}

pub fn log_count(r: &Received) -> usize {
    all_logs(r).len()
}

pub fn resource_attrs(r: &Received) -> Labels {
    let res = r.metrics.first().map_or_else(
        || r.logs[0].resource_logs[0].resource.clone(),
        |m| m.resource_metrics[0].resource.clone(),
    );
    labels(&res.expect("resource").attributes)
}

pub fn hist<'a>(
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
pub fn bucket_of(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len())
}

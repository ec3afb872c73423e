//! Getting OTLP requests to the collector: gRPC (tonic's generated OTLP clients over a
//! tonic `Channel`) or HTTP/1.1 with binary protobuf bodies (hyper). Both dial through
//! one [`Dialer`]: TCP, then rustls (ring, system roots or `ca_file`, optional client
//! certificate) when the endpoint is `https://`, with ALPN `h2` for gRPC (Go gRPC servers
//! such as the collector require it) and `http/1.1` for HTTP. tonic's own TLS features
//! stay off: TLS here is ours, so both protocols verify the same way.
//!
//! Errors are classified as the OTLP specification says: gRPC `UNAVAILABLE`,
//! `RESOURCE_EXHAUSTED`, ... and HTTP 429/502/503/504 (and network failures) may be
//! retried; anything else is final. Messages never carry header values.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;

use super::config::{EndpointParts, OtlpConfig, OtlpTls, Protocol};

const USER_AGENT: &str = concat!("mqscope/", env!("CARGO_PKG_VERSION"));
/// Longest answer body read (a partial-success message or an error status).
const MAX_RESPONSE: usize = 64 * 1024;

/// Why an export failed, and whether sending the same data again may help.
#[derive(Debug)]
pub struct ExportError {
    pub retryable: bool,
    pub retry_after: Option<Duration>,
    pub message: String,
}

impl ExportError {
    fn retry(message: impl Into<String>) -> ExportError {
        ExportError {
            retryable: true,
            retry_after: None,
            message: message.into(),
        }
    }

    fn fatal(message: impl Into<String>) -> ExportError {
        ExportError {
            retryable: false,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// Accepted with some items refused (OTLP partial success).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub rejected: u64,
    pub message: String,
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Opens connections to the collector (TCP, then TLS for `https://`), bounded in time.
struct Dialer {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl Dialer {
    async fn dial(&self) -> io::Result<Box<dyn Io>> {
        let work = async {
            let sock = TcpStream::connect((self.host.as_str(), self.port)).await?;
            let _ = sock.set_nodelay(true);
            match &self.tls {
                None => Ok(Box::new(sock) as Box<dyn Io>),
                Some((c, name)) => {
                    Ok(Box::new(c.connect(name.clone(), sock).await?) as Box<dyn Io>)
                }
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
}

/// rustls client configuration from the `[otlp.tls]` files (system roots without
/// `ca_file`).
pub(super) fn tls_config(tls: &OtlpTls, alpn: &[u8]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(p) => {
            let certs = CertificateDer::pem_file_iter(p)
                .map_err(|e| format!("tls.ca_file {}: {e}", p.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("tls.ca_file {}: {e}", p.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls.ca_file {}: {e}", p.display()))?;
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
        return Err("tls: no CA certificates to verify the collector with".into());
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_root_certificates(roots);
    let mut cfg = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(c), Some(k)) => {
            let chain = CertificateDer::pem_file_iter(c)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls.client_cert_file {}: {e}", c.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "tls.client_cert_file {}: no certificate in it",
                    c.display()
                ));
            }
            let key = PrivateKeyDer::from_pem_file(k)
                .map_err(|e| format!("tls.client_key_file {}: {e}", k.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.client_cert_file / client_key_file: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(cfg))
}

/// Everything a transport needs that can fail, resolved before the exporter thread
/// starts (so `OtlpExporter::start` reports it) and without a runtime.
pub(super) struct Prepared {
    protocol: Protocol,
    endpoint: EndpointParts,
    dialer: Arc<Dialer>,
    timeout: Duration,
    headers: Vec<(String, crate::export::alerts::Secret)>,
}

impl Prepared {
    pub fn new(cfg: &OtlpConfig) -> Result<Prepared, String> {
        let endpoint = EndpointParts::parse(&cfg.endpoint).map_err(|e| format!("endpoint: {e}"))?;
        let tls = if endpoint.tls {
            let alpn: &[u8] = match cfg.protocol {
                Protocol::Grpc => b"h2",
                Protocol::HttpProtobuf => b"http/1.1",
            };
            let c = tls_config(&cfg.tls, alpn)?;
            let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| {
                format!(
                    "endpoint: {:?} is not a valid TLS server name",
                    endpoint.host
                )
            })?;
            Some((TlsConnector::from(c), name))
        } else {
            None
        };
        let mut headers = Vec::new();
        for (k, v) in &cfg.headers {
            let v = v.resolve().map_err(|e| format!("headers.{k}: {e}"))?;
            headers.push((k.to_ascii_lowercase(), v));
        }
        Ok(Prepared {
            protocol: cfg.protocol,
            dialer: Arc::new(Dialer {
                host: endpoint.host.clone(),
                port: endpoint.port,
                tls,
                timeout: cfg.timeout(),
            }),
            endpoint,
            timeout: cfg.timeout(),
            headers,
        })
    }

    /// Checks what only the transport libraries can (header values they accept).
    pub fn check(&self) -> Result<(), String> {
        match self.protocol {
            Protocol::Grpc => grpc_metadata(&self.headers).map(|_| ()),
            Protocol::HttpProtobuf => http_headers(&self.headers).map(|_| ()),
        }
    }

    /// The transport; needs a tokio runtime (tonic spawns its channel's worker). No
    /// connection is made until the first export.
    pub fn connect(self) -> Result<Transport, String> {
        match self.protocol {
            Protocol::Grpc => {
                let scheme = if self.endpoint.tls { "https" } else { "http" };
                let ep = tonic::transport::Endpoint::from_shared(format!(
                    "{scheme}://{}",
                    self.endpoint.authority
                ))
                .map_err(|e| format!("endpoint: {e}"))?
                .user_agent(USER_AGENT)
                .map_err(|e| format!("user agent: {e}"))?
                .timeout(self.timeout)
                .connect_timeout(self.timeout);
                let dialer = self.dialer;
                let channel =
                    ep.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                        let d = Arc::clone(&dialer);
                        async move { d.dial().await.map(TokioIo::new) }
                    }));
                Ok(Transport::Grpc {
                    metrics: MetricsServiceClient::new(channel.clone()),
                    logs: LogsServiceClient::new(channel),
                    metadata: grpc_metadata(&self.headers)?,
                    timeout: self.timeout,
                })
            }
            Protocol::HttpProtobuf => Ok(Transport::Http(HttpSender {
                metrics_path: format!("{}/v1/metrics", self.endpoint.base_path),
                logs_path: format!("{}/v1/logs", self.endpoint.base_path),
                authority: self.endpoint.authority,
                headers: http_headers(&self.headers)?,
                dialer: self.dialer,
                conn: None,
                timeout: self.timeout,
            })),
        }
    }
}

fn grpc_metadata(h: &[(String, crate::export::alerts::Secret)]) -> Result<MetadataMap, String> {
    let mut m = MetadataMap::new();
    for (k, v) in h {
        let key = AsciiMetadataKey::from_bytes(k.as_bytes())
            .map_err(|_| format!("headers.{k}: not a valid gRPC metadata name"))?;
        // gRPC allows printable ASCII only (Go servers refuse anything else).
        let ascii = v.expose().bytes().all(|b| (0x20..=0x7e).contains(&b));
        let mut val = AsciiMetadataValue::try_from(v.expose())
            .ok()
            .filter(|_| ascii)
            .ok_or_else(|| format!("headers.{k}: gRPC metadata values must be printable ASCII"))?;
        val.set_sensitive(true);
        m.append(key, val);
    }
    Ok(m)
}

fn http_headers(
    h: &[(String, crate::export::alerts::Secret)],
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    h.iter()
        .map(|(k, v)| {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("headers.{k}: not a valid HTTP header name"))?;
            let mut val = http::HeaderValue::from_str(v.expose())
                .map_err(|_| format!("headers.{k}: not a valid HTTP header value"))?;
            val.set_sensitive(true);
            Ok((name, val))
        })
        .collect()
}

// One value per exporter: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Transport {
    Grpc {
        metrics: MetricsServiceClient<Channel>,
        logs: LogsServiceClient<Channel>,
        metadata: MetadataMap,
        timeout: Duration,
    },
    Http(HttpSender),
}

impl Transport {
    pub async fn metrics(
        &mut self,
        req: ExportMetricsServiceRequest,
    ) -> Result<Accepted, ExportError> {
        match self {
            Transport::Grpc {
                metrics,
                metadata,
                timeout,
                ..
            } => {
                let r = grpc_request(req, metadata);
                match tokio::time::timeout(*timeout, metrics.export(r)).await {
                    Ok(Ok(resp)) => Ok(resp
                        .into_inner()
                        .partial_success
                        .map(|p| Accepted {
                            rejected: u64::try_from(p.rejected_data_points).unwrap_or(0),
                            message: p.error_message,
                        })
                        .unwrap_or_default()),
                    Ok(Err(status)) => Err(grpc_error(&status)),
                    Err(_) => Err(ExportError::retry("timed out")),
                }
            }
            Transport::Http(h) => {
                let path = h.metrics_path.clone();
                let body = h.post(&path, req.encode_to_vec()).await?;
                Ok(ExportMetricsServiceResponse::decode(body.as_ref())
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| Accepted {
                        rejected: u64::try_from(p.rejected_data_points).unwrap_or(0),
                        message: p.error_message,
                    })
                    .unwrap_or_default())
            }
        }
    }

    pub async fn logs(&mut self, req: ExportLogsServiceRequest) -> Result<Accepted, ExportError> {
        match self {
            Transport::Grpc {
                logs,
                metadata,
                timeout,
                ..
            } => {
                let r = grpc_request(req, metadata);
                match tokio::time::timeout(*timeout, logs.export(r)).await {
                    Ok(Ok(resp)) => Ok(resp
                        .into_inner()
                        .partial_success
                        .map(|p| Accepted {
                            rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
                            message: p.error_message,
                        })
                        .unwrap_or_default()),
                    Ok(Err(status)) => Err(grpc_error(&status)),
                    Err(_) => Err(ExportError::retry("timed out")),
                }
            }
            Transport::Http(h) => {
                let path = h.logs_path.clone();
                let body = h.post(&path, req.encode_to_vec()).await?;
                Ok(ExportLogsServiceResponse::decode(body.as_ref())
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| Accepted {
                        rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
                        message: p.error_message,
                    })
                    .unwrap_or_default())
            }
        }
    }
}

fn grpc_request<T>(msg: T, metadata: &MetadataMap) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    *r.metadata_mut() = metadata.clone();
    r
}

fn grpc_error(s: &tonic::Status) -> ExportError {
    use tonic::Code;
    // OTLP/gRPC: these codes may succeed later; the rest never will for this data.
    let retryable = matches!(
        s.code(),
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
            | Code::ResourceExhausted
    );
    // The status message comes from the server (or names a transport failure); ours
    // never contain header values.
    let mut message = format!("gRPC {:?}", s.code());
    if !s.message().is_empty() {
        message.push_str(": ");
        message.extend(s.message().chars().take(200));
    }
    ExportError {
        retryable,
        retry_after: None,
        message,
    }
}

/// OTLP/HTTP over one kept-alive HTTP/1.1 connection, opened again when it breaks.
pub(super) struct HttpSender {
    dialer: Arc<Dialer>,
    authority: String,
    metrics_path: String,
    logs_path: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    conn: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl HttpSender {
    async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<Bytes, ExportError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(path, Bytes::from(body))).await {
            Ok(r) => r,
            Err(_) => {
                // The connection is in an unknown state: start afresh next time.
                self.conn = None;
                Err(ExportError::retry("timed out"))
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ExportError> {
        let io = self
            .dialer
            .dial()
            .await
            .map_err(|e| ExportError::retry(format!("connect: {e}")))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ExportError::retry(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn request(&self, path: &str, body: Bytes) -> Result<http::Request<Full<Bytes>>, ExportError> {
        let mut b = http::Request::post(path)
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(http::header::USER_AGENT, USER_AGENT);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(body))
            .map_err(|e| ExportError::fatal(format!("building the request: {e}")))
    }

    async fn exchange(&mut self, path: &str, body: Bytes) -> Result<Bytes, ExportError> {
        // A kept-alive connection the server has closed meanwhile fails at once: that
        // one gets a single retry on a new connection.
        let reused = self.conn.take().filter(|c| !c.is_closed());
        let was_reused = reused.is_some();
        let mut sender = match reused {
            Some(s) => s,
            None => self.connect().await?,
        };
        let resp = match self.send(&mut sender, path, body.clone()).await {
            Ok(r) => r,
            Err(_) if was_reused => {
                sender = self.connect().await?;
                self.send(&mut sender, path, body).await?
            }
            Err(e) => return Err(e),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| ExportError::retry(format!("reading the answer: {e}")))?;
        self.conn = Some(sender);
        if status.is_success() {
            return Ok(body);
        }
        let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
        Err(ExportError {
            retryable,
            retry_after,
            message: format!("HTTP {status}"),
        })
    }

    async fn send(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ExportError> {
        sender
            .ready()
            .await
            .map_err(|e| ExportError::retry(format!("connection: {e}")))?;
        let req = self.request(path, body)?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ExportError::retry(format!("request: {e}")))
    }
}

//! The rustls client configuration for `mqtts://`: CA file or system roots, optional
//! client certificate (mutual TLS), and the test-only "skip verification". Uses the ring
//! provider explicitly, so no process-wide default provider has to be installed.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::broker_config::BrokerInputConfig;

/// Builds the TLS client configuration. Errors name the file and the problem.
pub fn client_config(cfg: &BrokerInputConfig) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;

    let builder = if cfg.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(
                provider.signature_verification_algorithms,
            )))
    } else {
        let mut roots = RootCertStore::empty();
        match &cfg.ca_file {
            Some(p) => {
                let mut n = 0;
                for c in CertificateDer::pem_file_iter(p)
                    .map_err(|e| format!("ca_file {}: {e}", p.display()))?
                {
                    let c = c.map_err(|e| format!("ca_file {}: {e}", p.display()))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("ca_file {}: {e}", p.display()))?;
                    n += 1;
                }
                if n == 0 {
                    return Err(format!("ca_file {}: no certificate in it", p.display()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    // A malformed system certificate is skipped, as browsers do.
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    return Err("no system CA certificates found: give ca_file".into());
                }
            }
        }
        builder.with_root_certificates(roots)
    };

    match (&cfg.client_cert_file, &cfg.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| format!("client_cert_file {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "client_cert_file {}: no certificate in it",
                    cert.display()
                ));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client_key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate/key: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Accepts any certificate but still checks the handshake signatures (so the session is
/// at least keyed to the certificate presented).
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

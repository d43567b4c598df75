//! TLS for `https` scrape targets: one HTTP client per job, built from the job's `tls_config`
//! (Prometheus' `ca_file`, `cert_file`, `key_file`, `server_name`, `insecure_skip_verify`)
//! as a rustls client configuration handed to reqwest.
//!
//! Without `ca_file`, certificates are verified against the system CA bundle (`SSL_CERT_FILE`,
//! else the usual distribution paths). `server_name` replaces the target's host when the
//! certificate's name is checked (the TLS SNI still carries the host of the target URL).
//! Files are read when the scrape manager starts; a missing or unparsable file is a startup
//! error naming the job.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::{JobSettings, TlsConfig};

/// System CA bundles tried in order when `ca_file` is not set and `SSL_CERT_FILE` is not.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The HTTP client for one job's scrapes.
pub fn job_client(job: &JobSettings) -> Result<reqwest::Client, String> {
    let tls =
        client_config(&job.tls).map_err(|e| format!("job {:?}: tls_config: {e}", job.name))?;
    reqwest::Client::builder()
        .user_agent(concat!("Sextant/", env!("CARGO_PKG_VERSION")))
        .use_preconfigured_tls(tls)
        .build()
        .map_err(|e| format!("job {:?}: building the scrape HTTP client: {e}", job.name))
}

/// The rustls client configuration for a `tls_config`.
pub fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        Arc::new(SkipVerify { provider })
    } else {
        let roots = match &tls.ca_file {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path, "ca_file")? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("ca_file {path:?}: {e}"))?;
                }
                roots
            }
            None => system_roots(),
        };
        if roots.is_empty() {
            Arc::new(NoRoots { provider })
        } else {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("certificate verifier: {e}"))?;
            match &tls.server_name {
                Some(name) if !name.is_empty() => Arc::new(FixedName {
                    name: ServerName::try_from(name.clone())
                        .map_err(|e| format!("server_name {name:?}: {e}"))?,
                    inner: webpki,
                }),
                _ => webpki,
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("reading key_file {key:?}: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The PEM certificates in `path`; an error when there are none.
fn read_certs(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("reading {field} {path:?}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{field} {path:?} holds no PEM certificate"));
    }
    Ok(certs)
}

/// The system's CA certificates (unparsable entries are skipped); empty when none are found.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates = from_env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from));
    for path in candidates {
        let Ok(iter) = CertificateDer::pem_file_iter(&path) else {
            continue;
        };
        let certs: Vec<CertificateDer<'static>> = iter.filter_map(Result::ok).collect();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added > 0 {
            break;
        }
    }
    roots
}

/// Verifies certificates against a fixed name (`server_name`) instead of the target's host.
#[derive(Debug)]
struct FixedName {
    name: ServerName<'static>,
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for FixedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify: true`: any certificate is accepted (the handshake signatures are
/// still checked, so the connection is encrypted to whoever holds the presented key).
#[derive(Debug)]
struct SkipVerify {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SkipVerify {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// No `ca_file` and no system CA bundle: every certificate is refused with a message that
/// says how to fix it (plain-http jobs are unaffected).
#[derive(Debug)]
struct NoRoots {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(
            "no CA certificates to verify the target with: set tls_config.ca_file (or SSL_CERT_FILE)"
                .into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;

//! https scraping against a local TLS server (rustls, in a thread) with certificates generated
//! by rcgen: CA verification, `server_name`, `insecure_skip_verify`, client certificates, and
//! a scrape manager job scraping an https target.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use sextant_storage::{Db, SeriesSource};

use super::client_config;
use crate::scrape::config::{GlobalConfig, ScrapeConfig, TlsConfig};
use crate::scrape::ScrapeManager;

const BODY: &str = "# TYPE tls_test_value gauge\ntls_test_value{kind=\"secure\"} 42\n";

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `names` signed by this CA: (certificate PEM, key PEM).
    fn issue(&self, names: &[&str], client: bool) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Serves `BODY` over TLS with the given certificate; requires a client certificate signed by
/// `client_ca` when given.
fn tls_server(cert_pem: &str, key_pem: &str, client_ca: Option<&str>) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || serve_one(config, stream));
        }
    });
    addr
}

fn serve_one(config: Arc<ServerConfig>, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, stream);
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = write!(
        tls,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// GETs `url` with a client built from `tls`: the body, or the error chain as text.
async fn get(tls: &TlsConfig, url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(tls)?)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let describe = |e: reqwest::Error| {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        msg
    };
    let resp = client.get(url).send().await.map_err(describe)?;
    resp.text().await.map_err(describe)
}

#[tokio::test]
async fn ca_file_and_server_name_verify_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.issue(&["scrape.internal"], false);
    let addr = tls_server(&cert, &key, None);
    let url = format!("https://127.0.0.1:{}/metrics", addr.port());
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());

    let mut tls = TlsConfig {
        ca_file: Some(ca_file),
        server_name: Some("scrape.internal".into()),
        ..TlsConfig::default()
    };
    assert_eq!(get(&tls, &url).await.unwrap(), BODY);

    // The certificate does not name 127.0.0.1, nor another server name.
    tls.server_name = None;
    let err = get(&tls, &url).await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    tls.server_name = Some("other.internal".into());
    let err = get(&tls, &url).await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn unknown_ca_is_refused_unless_verification_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let other = Ca::new("some other CA");
    let (cert, key) = ca.issue(&["localhost", "127.0.0.1"], false);
    let addr = tls_server(&cert, &key, None);
    let url = format!("https://127.0.0.1:{}/metrics", addr.port());

    let wrong = TlsConfig {
        ca_file: Some(write(dir.path(), "other.pem", &other.pem())),
        ..TlsConfig::default()
    };
    let err = get(&wrong, &url).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    let skip = TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    };
    assert_eq!(get(&skip, &url).await.unwrap(), BODY);
}

#[tokio::test]
async fn client_certificate_is_presented_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"], false);
    let (client_cert, client_key) = ca.issue(&["sextant"], true);
    let addr = tls_server(&cert, &key, Some(&ca.pem()));
    let url = format!("https://127.0.0.1:{}/metrics", addr.port());
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());

    let mut tls = TlsConfig {
        ca_file: Some(ca_file),
        ..TlsConfig::default()
    };
    assert!(
        get(&tls, &url).await.is_err(),
        "the server requires a client certificate"
    );
    tls.cert_file = Some(write(dir.path(), "client.pem", &client_cert));
    tls.key_file = Some(write(dir.path(), "client.key", &client_key));
    assert_eq!(get(&tls, &url).await.unwrap(), BODY);
}

fn jobs(yaml: &str) -> Vec<ScrapeConfig> {
    serde_yaml::from_str(yaml).unwrap()
}

#[tokio::test]
async fn https_job_is_scraped_and_bad_tls_config_fails_startup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.issue(&["node.internal"], false);
    let addr = tls_server(&cert, &key, None);
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let db = Arc::new(Db::in_memory());
    let config = format!(
        "- job_name: secure\n  scheme: https\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  tls_config:\n    ca_file: {}\n    server_name: node.internal\n  static_configs:\n  - targets: ['127.0.0.1:{}']\n",
        ca_file.display(),
        addr.port()
    );
    let manager = ScrapeManager::start(db.clone(), &GlobalConfig::default(), &jobs(&config))
        .expect("valid configuration");
    let mut status = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let targets = manager.pools()[0].active_targets();
        if let Some(t) = targets.first() {
            if t.status().up.is_some() {
                status = Some(t.status());
                break;
            }
        }
    }
    let status = status.expect("the target was scraped");
    assert_eq!(status.up, Some(true), "{}", status.last_error);
    let target = &manager.pools()[0].active_targets()[0];
    assert!(
        target.url.starts_with("https://127.0.0.1:"),
        "{}",
        target.url
    );
    let names = db
        .label_values("__name__", &[], i64::MIN, i64::MAX)
        .unwrap();
    assert!(names.contains(&"tls_test_value".to_string()), "{names:?}");

    let half = "- job_name: half\n  tls_config:\n    cert_file: /nonexistent/c.pem\n  static_configs:\n  - targets: ['a:1']\n";
    let err = ScrapeManager::start(db.clone(), &GlobalConfig::default(), &jobs(half))
        .err()
        .unwrap_or_default();
    assert!(err.contains("specified without client key file"), "{err}");

    let missing = "- job_name: missing\n  scheme: https\n  tls_config:\n    ca_file: /nonexistent/ca.pem\n  static_configs:\n  - targets: ['a:1']\n";
    let err = ScrapeManager::start(db, &GlobalConfig::default(), &jobs(missing))
        .err()
        .unwrap_or_default();
    assert!(
        err.contains("missing") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}

//! Test support for the gateway binary's integration tests: a test CA issuing leaf
//! certificates (rcgen), the real `iii-gateway` as a subprocess on ephemeral loopback ports
//! (ready file, bounded waits, killed on drop), HTTP and WebSocket echo upstreams, and TLS
//! clients trusting only the test CA.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    clippy::string_slice,
    clippy::indexing_slicing,
    unreachable_pub,
    missing_docs
)]

pub mod clients;
pub mod process;
pub mod upstreams;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// Installs ring as the process's rustls provider (idempotent).
#[expect(deprecated, reason = "ring, as the gateway uses")]
pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A test certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub der: rustls::pki_types::CertificateDer<'static>,
}

/// A leaf certificate issued by the test CA, written as PEM files.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "iii-gateway test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_pem = cert.pem();
        let der = cert.der().clone();
        Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            der,
        }
    }

    /// Issues a leaf for `names` and writes `<stem>.pem` / `<stem>-key.pem` in `dir`.
    pub fn leaf(&self, dir: &Path, stem: &str, names: &[&str]) -> Leaf {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = dir.join(format!("{stem}.pem"));
        let key_file = dir.join(format!("{stem}-key.pem"));
        write_atomic(&cert_file, cert.pem().as_bytes());
        write_atomic(&key_file, key.serialize_pem().as_bytes());
        Leaf {
            cert_file,
            key_file,
            der: cert.der().to_vec(),
        }
    }

    /// A rustls client config trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        crypto();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Writes `bytes` to `path` through a temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

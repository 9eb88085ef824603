//! The certificate store: every `tls.certificates` entry loaded, chosen per handshake by SNI
//! (exact name, then `*.` wildcard, else the first entry), behind an `ArcSwap` so a reload
//! swaps all of them at once. Each listener gets its own `ServerConfig` (its own ALPN) that
//! shares the one resolver. File loading is `load.rs`; watching files is `watch.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite};

use super::load::{TlsError, load_certified_key};
use crate::config::TlsSection;

/// Modern suites only (AEAD with forward secrecy), in the server's order of preference. The
/// server's order is enforced (`ignore_client_order`).
const CIPHER_SUITES: &[SupportedCipherSuite] = &[
    rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    rustls::crypto::ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    rustls::crypto::ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    rustls::crypto::ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// What a listener offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` only: listeners that carry WebSocket upgrades.
    Http1,
    /// `h2` then `http/1.1`: HTTP-only listeners.
    H2Http1,
}

impl Alpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Self::Http1 => vec![b"http/1.1".to_vec()],
            Self::H2Http1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// One SNI name a certificate answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NamePattern {
    /// `example.com`.
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: one extra label only.
    Wildcard(String),
}

impl NamePattern {
    fn parse(name: &str) -> Self {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') => Self::Wildcard(suffix.to_owned()),
            _ => Self::Exact(name),
        }
    }

    fn matches_exact(&self, sni: &str) -> bool {
        matches!(self, Self::Exact(name) if name.eq_ignore_ascii_case(sni))
    }

    fn matches_wildcard(&self, sni: &str) -> bool {
        let Self::Wildcard(suffix) = self else {
            return false;
        };
        let Some(split) = sni.len().checked_sub(suffix.len()) else {
            return false;
        };
        match (sni.get(..split), sni.get(split..)) {
            (Some(label), Some(tail)) => {
                !label.is_empty() && !label.contains('.') && tail.eq_ignore_ascii_case(suffix)
            }
            _ => false,
        }
    }
}

/// Every certificate, in file order; the first is the default.
#[derive(Debug)]
struct CertSet {
    entries: Vec<(Vec<NamePattern>, Arc<CertifiedKey>)>,
}

impl CertSet {
    fn load(section: &TlsSection) -> Result<Self, TlsError> {
        let mut entries = Vec::with_capacity(section.certificates.len());
        for entry in &section.certificates {
            let key = load_certified_key(&entry.cert_file, &entry.key_file)?;
            let names = entry
                .server_names
                .iter()
                .map(|n| NamePattern::parse(n))
                .collect();
            entries.push((names, key));
        }
        if entries.is_empty() {
            return Err(TlsError::Config("tls.certificates is empty".to_owned()));
        }
        Ok(Self { entries })
    }

    fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by = |f: &dyn Fn(&NamePattern) -> bool| {
            self.entries
                .iter()
                .find(|(names, _)| names.iter().any(f))
                .map(|(_, key)| key.clone())
        };
        sni.and_then(|sni| {
            let sni = sni.trim_end_matches('.');
            by(&|p| p.matches_exact(sni)).or_else(|| by(&|p| p.matches_wildcard(sni)))
        })
        .or_else(|| self.entries.first().map(|(_, key)| key.clone()))
    }
}

/// The resolver every `ServerConfig` of this process shares.
#[derive(Debug)]
struct SniResolver {
    current: ArcSwap<CertSet>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().choose(client_hello.server_name())
    }
}

/// The loaded certificates of one `tls:` section.
#[derive(Debug)]
pub struct TlsStore {
    section: TlsSection,
    resolver: Arc<SniResolver>,
    provider: Arc<CryptoProvider>,
}

impl TlsStore {
    /// Loads every certificate of `section`.
    ///
    /// # Errors
    /// The first file that cannot be read or parsed, or a key that does not match its
    /// certificate.
    #[expect(
        deprecated,
        reason = "ring (as pingora-rustls uses) has no post-quantum key exchange; modern suites only"
    )]
    pub fn load(section: &TlsSection) -> Result<Arc<Self>, TlsError> {
        let set = CertSet::load(section)?;
        let provider = CryptoProvider {
            cipher_suites: CIPHER_SUITES.to_vec(),
            ..rustls::crypto::ring::default_provider()
        };
        Ok(Arc::new(Self {
            section: section.clone(),
            resolver: Arc::new(SniResolver {
                current: ArcSwap::from_pointee(set),
            }),
            provider: Arc::new(provider),
        }))
    }

    /// A server config offering `alpn`, TLS 1.2 and 1.3 with modern suites in the server's
    /// order, and the shared (reloadable) certificates.
    ///
    /// # Errors
    /// Only if rustls refuses the protocol versions for the provider (a build problem).
    pub fn server_config(&self, alpn: Alpn) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.ignore_client_order = true;
        config.alpn_protocols = alpn.protocols();
        Ok(Arc::new(config))
    }

    /// Re-reads every file and swaps them in at once; on error the old certificates stay.
    /// Open connections are not touched; new handshakes see the new certificates.
    ///
    /// # Errors
    /// As [`TlsStore::load`].
    pub fn reload(&self) -> Result<usize, TlsError> {
        let set = CertSet::load(&self.section)?;
        let count = set.entries.len();
        self.resolver.current.store(Arc::new(set));
        Ok(count)
    }

    /// Modification time and length of every file, to notice changes.
    pub(crate) fn fingerprint(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.section
            .certificates
            .iter()
            .flat_map(|c| [&c.cert_file, &c.key_file])
            .map(|path| {
                let meta = std::fs::metadata(path).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect()
    }

    /// Whether file watching is on (`tls.watch`).
    pub(crate) const fn watches_files(&self) -> bool {
        self.section.watch
    }
}

#[cfg(test)]
mod tests {
    use super::NamePattern;

    #[test]
    fn wildcards_match_exactly_one_label() {
        let p = NamePattern::parse("*.Example.com");
        assert!(p.matches_wildcard("a.example.com"));
        assert!(p.matches_wildcard("A.EXAMPLE.COM"));
        assert!(!p.matches_wildcard("example.com"));
        assert!(!p.matches_wildcard("a.b.example.com"));
        assert!(!p.matches_wildcard(".example.com"));
        assert!(!p.matches_exact("a.example.com"));
    }

    #[test]
    fn exact_names_ignore_case_and_trailing_dots() {
        let p = NamePattern::parse("API.example.com.");
        assert!(p.matches_exact("api.example.com"));
        assert!(!p.matches_exact("x.api.example.com"));
        assert!(!p.matches_wildcard("api.example.com"));
    }
}

//! Certificates from an ACME CA (Let's Encrypt by default) for a node with a public name,
//! through `rustls-acme`: it orders, answers the TLS-ALPN-01 challenge on the HTTPS port
//! itself (a validation connection offers only the `acme-tls/1` protocol and gets the
//! challenge certificate; the server closes it after the handshake), renews at two thirds
//! of the certificate's lifetime, and retries a failed order with a doubling backoff
//! (1 s up to about 18 h). Until the first certificate arrives, TLS handshakes fail and
//! plain HTTP still gets its redirect; the node itself runs on.
//!
//! The account key and the certificate with its key are kept in the cache directory
//! (`DATA_DIR/acme/`, mode 0700, files 0600, written whole then renamed), one pair of
//! files per set of domains and directory URL, so a restart serves the cached certificate
//! without a new order. Keys are never logged.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use rustls_acme::{AcmeConfig, AcmeState, EventOk};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::tls::{Tls, TlsError};

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = rustls_acme::acme::LETS_ENCRYPT_PRODUCTION_DIRECTORY;
/// Let's Encrypt's staging directory: untrusted certificates, generous rate limits; for
/// trying a deployment out.
pub const LETS_ENCRYPT_STAGING: &str = rustls_acme::acme::LETS_ENCRYPT_STAGING_DIRECTORY;

/// What to ask for, and from whom.
#[derive(Debug, Clone)]
pub struct AcmeOptions {
    /// DNS names the certificate covers; each must resolve to this node, which must be
    /// reachable on port 443 under it (TLS-ALPN-01 is validated there).
    pub domains: Vec<String>,
    /// Contact URLs of the account (`mailto:…`), possibly none.
    pub contact: Vec<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// A PEM file of extra roots that verify the ACME server (a private CA such as
    /// step-ca, or a test server); the Web PKI roots are trusted in any case.
    pub ca_file: Option<PathBuf>,
    /// Where the account and the certificates are kept.
    pub cache_dir: PathBuf,
}

/// Checks a domain given to `--acme-domain`, lowercased.
pub fn check_domain(name: &str) -> Result<String, String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "{name}: an IP address; ACME certificates are for DNS names"
        ));
    }
    if name.contains('*') {
        return Err(format!(
            "{name}: a wildcard needs the DNS-01 challenge; this node answers TLS-ALPN-01"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("{name:?}: not a DNS name"));
    }
    Ok(name)
}

impl Tls {
    /// TLS with certificates from the ACME directory in `opts`. Nothing is ordered until
    /// the server starts (see [`crate::server::serve_with`]).
    pub fn acme(opts: &AcmeOptions) -> Result<Tls, TlsError> {
        let bad = |what: String| TlsError::Acme(what);
        if opts.domains.is_empty() {
            return Err(bad("no domain".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &opts.ca_file {
            let pem_err = |e: rustls_pki_types::pem::Error| {
                TlsError::Pem(ca.display().to_string(), e.to_string())
            };
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(pem_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(pem_err)?;
            if certs.is_empty() {
                return Err(TlsError::Pem(
                    ca.display().to_string(),
                    "no certificate in it".into(),
                ));
            }
            for c in certs {
                roots.add(c)?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let cache = DirCache {
            dir: opts.cache_dir.clone(),
            loaded: Arc::new(Mutex::new(None)),
            not_after: Default::default(),
        };
        let (loaded, not_after) = (cache.loaded.clone(), cache.not_after.clone());
        let state = AcmeConfig::new_with_client_config(&opts.domains, Arc::new(client))
            .directory(&opts.directory)
            .contact(&opts.contact)
            .cache(cache)
            .state();
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(state.resolver());
        // The server's preference wins: browsers get HTTP/1.1, a validation connection
        // (which offers nothing else) `acme-tls/1`.
        server.alpn_protocols = vec![
            b"http/1.1".to_vec(),
            rustls_acme::acme::ACME_TLS_ALPN_NAME.to_vec(),
        ];
        let driver = drive(state, opts.clone(), loaded, not_after.clone());
        Ok(Tls::with_driver(server, not_after, Box::pin(driver)))
    }
}

/// Whether a connection negotiated the TLS-ALPN-01 validation protocol.
pub(crate) fn is_challenge(alpn: Option<&[u8]>) -> bool {
    alpn == Some(rustls_acme::acme::ACME_TLS_ALPN_NAME)
}

/// Polls the ACME state for ever (orders, renewals, retries) and logs what happens.
async fn drive(
    mut state: AcmeState<std::io::Error>,
    opts: AcmeOptions,
    loaded: Arc<Mutex<Option<i64>>>,
    not_after: Arc<std::sync::atomic::AtomicI64>,
) {
    let domains = opts.domains.join(",");
    let directory = &opts.directory;
    tracing::info!("ACME: certificate for {domains} from {directory}");
    let mut held = false;
    while let Some(event) = state.next().await {
        match event {
            Ok(EventOk::DeployedCachedCert) => {
                let until = loaded.lock().map(|l| *l).unwrap_or(None).unwrap_or(0);
                not_after.store(until, Ordering::Relaxed);
                held = true;
                tracing::info!(
                    "ACME: serving the cached certificate for {domains}, valid until {}",
                    utc(until)
                );
            }
            Ok(EventOk::DeployedNewCert) => {
                let what = if held { "renewed" } else { "issued" };
                held = true;
                tracing::info!("ACME: certificate for {domains} {what}");
            }
            Ok(EventOk::CertCacheStore) => {
                // The expiry is read as the certificate is stored (just after it is served).
                tracing::info!(
                    "ACME: certificate for {domains} kept in {}, valid until {}",
                    opts.cache_dir.display(),
                    utc(not_after.load(Ordering::Relaxed))
                );
            }
            Ok(EventOk::AccountCacheStore) => {
                tracing::debug!("ACME: account key kept in {}", opts.cache_dir.display());
            }
            Err(e) => tracing::warn!("ACME ({directory}, {domains}): {e}; will retry"),
        }
    }
}

/// A readable UTC time for Unix seconds.
fn utc(unix: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(unix)
        .map_or_else(|_| unix.to_string(), |t| t.to_string())
}

/// The expiry (Unix seconds) of the first certificate in a PEM bundle.
pub(crate) fn leaf_not_after(pem: &[u8]) -> Option<i64> {
    let leaf = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    not_after_of(&leaf)
}

/// The expiry (Unix seconds) of a DER certificate.
pub(crate) fn not_after_of(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// rustls-acme's directory cache, with private files: the account key and the
/// certificate's key live in them.
struct DirCache {
    dir: PathBuf,
    /// The expiry of the certificate last loaded, deployed if it parses.
    loaded: Arc<Mutex<Option<i64>>>,
    not_after: Arc<std::sync::atomic::AtomicI64>,
}

impl DirCache {
    /// One name per set of domains (or contacts) and directory: another CA or name set
    /// orders afresh.
    fn file(&self, kind: &str, items: &[String], directory: &str) -> PathBuf {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for i in items {
            ctx.update(i.as_bytes());
            ctx.update(&[0]);
        }
        ctx.update(directory.as_bytes());
        let hex: String = ctx.finish().as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(format!("{kind}-{hex}.pem"))
    }

    async fn read(path: PathBuf) -> std::io::Result<Option<Vec<u8>>> {
        let read = tokio::task::spawn_blocking(move || std::fs::read(path));
        match read.await.map_err(std::io::Error::other)? {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write(&self, path: PathBuf, contents: &[u8]) -> std::io::Result<()> {
        let (dir, contents) = (self.dir.clone(), contents.to_vec());
        tokio::task::spawn_blocking(move || write_private(&dir, &path, &contents))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Writes `contents` to `path` in `dir` (made 0700) as a 0600 file, whole or not at all.
fn write_private(dir: &Path, path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[async_trait::async_trait]
impl rustls_acme::CertCache for DirCache {
    type EC = std::io::Error;

    async fn load_cert(
        &self,
        domains: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, Self::EC> {
        let pem = Self::read(self.file("cert", domains, directory_url)).await?;
        if let (Some(pem), Ok(mut loaded)) = (&pem, self.loaded.lock()) {
            *loaded = leaf_not_after(pem);
        }
        Ok(pem)
    }

    async fn store_cert(
        &self,
        domains: &[String],
        directory_url: &str,
        cert: &[u8],
    ) -> Result<(), Self::EC> {
        // Stored right after it is deployed: this is the certificate served now.
        if let Some(t) = leaf_not_after(cert) {
            self.not_after.store(t, Ordering::Relaxed);
        }
        self.write(self.file("cert", domains, directory_url), cert)
            .await
    }
}

#[async_trait::async_trait]
impl rustls_acme::AccountCache for DirCache {
    type EA = std::io::Error;

    async fn load_account(
        &self,
        contact: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, Self::EA> {
        Self::read(self.file("account", contact, directory_url)).await
    }

    async fn store_account(
        &self,
        contact: &[String],
        directory_url: &str,
        account: &[u8],
    ) -> Result<(), Self::EA> {
        self.write(self.file("account", contact, directory_url), account)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_dns_names() {
        assert_eq!(
            check_domain("Live.Example.COM.").unwrap(),
            "live.example.com"
        );
        assert_eq!(check_domain("cascade.test").unwrap(), "cascade.test");
        assert!(check_domain("*.example.com").is_err());
        assert!(check_domain("10.0.0.1").is_err());
        assert!(check_domain("::1").is_err());
        assert!(check_domain("").is_err());
        assert!(check_domain("a..b").is_err());
        assert!(check_domain("-a.b").is_err());
        assert!(check_domain("a_b.c").is_err());
        assert!(check_domain("a/b").is_err());
    }

    #[test]
    fn cache_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cascade-acme-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("cert-x.pem");
        write_private(&dir, &file, b"one").unwrap();
        write_private(&dir, &file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir), 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

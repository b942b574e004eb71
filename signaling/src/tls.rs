//! HTTPS on the node's own port: a certificate and key from PEM files, rustls on aws-lc-rs.
//! Browsers give the camera only to a secure context, so a studio served over plain HTTP
//! on a LAN or public address cannot go live. With TLS on, a plain-HTTP request to the
//! same port gets a redirect to its `https://` twin (the first byte tells: a TLS record
//! starts with 0x16, a request line with a letter).
//!
//! The certificate comes from PEM files ([`Tls::from_pem_files`]) or from an ACME CA
//! ([`Tls::acme`], in [`crate::acme`]).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What keeps ACME certificates coming; runs once the server does.
type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The node's TLS side.
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// The served certificate's expiry, Unix seconds; 0 while there is none.
    not_after: Arc<AtomicI64>,
    /// ACME's driver, taken (and spawned) by the first server that starts.
    driver: Arc<Mutex<Option<Driver>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing or malformed.
    #[error("{0}: {1}")]
    Pem(String, String),
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// ACME settings that cannot work.
    #[error("ACME: {0}")]
    Acme(String),
}

impl Tls {
    /// Loads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or
    /// SEC1), both PEM.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let pem_err = |p: &Path, e: rustls_pki_types::pem::Error| {
            TlsError::Pem(p.display().to_string(), e.to_string())
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_err(cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert, e))?;
        if chain.is_empty() {
            return Err(TlsError::Pem(
                cert.display().to_string(),
                "no certificate in it".into(),
            ));
        }
        let not_after = crate::acme::not_after_of(&chain[0]).unwrap_or(0);
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            not_after: Arc::new(AtomicI64::new(not_after)),
            driver: Arc::default(),
        })
    }

    pub(crate) fn with_driver(
        config: rustls::ServerConfig,
        not_after: Arc<AtomicI64>,
        driver: Driver,
    ) -> Tls {
        Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            not_after,
            driver: Arc::new(Mutex::new(Some(driver))),
        }
    }

    /// Seconds until the served certificate expires (negative once it has); `None` while
    /// there is no certificate yet (ACME has not got one).
    pub fn seconds_left(&self) -> Option<i64> {
        let not_after = self.not_after.load(Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        (not_after != 0).then(|| not_after - now)
    }

    /// Registers `tls_certificate_expiry_seconds` on `registry` (the node's, which
    /// prefixes `cascade_`): seconds until the served certificate expires, computed when
    /// scraped; 0 while there is none (ACME still trying: HTTPS does not work).
    pub fn register_metrics(&self, registry: &prometheus::Registry) {
        let gauge = prometheus::IntGauge::new(
            "tls_certificate_expiry_seconds",
            "Seconds until the HTTPS certificate expires (0: none yet)",
        )
        .expect("a valid metric"); // Invariant: a constant, valid name.
        let _ = registry.register(Box::new(Expiry {
            tls: self.clone(),
            gauge,
        }));
    }

    /// Starts getting and renewing certificates, if they come from ACME (once; on a
    /// tokio runtime).
    pub(crate) fn start(&self) {
        let driver = self.driver.lock().ok().and_then(|mut d| d.take());
        if let Some(driver) = driver {
            tokio::spawn(driver);
        }
    }
}

/// The expiry gauge, set as it is scraped.
struct Expiry {
    tls: Tls,
    gauge: prometheus::IntGauge,
}

impl prometheus::core::Collector for Expiry {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.gauge.set(self.tls.seconds_left().unwrap_or(0));
        self.gauge.collect()
    }
}

/// Whether the first byte of a connection starts a TLS handshake record.
pub(crate) fn is_tls_record(first: u8) -> bool {
    first == 0x16
}

/// The `https://` twin of a plain request (`None` without a usable `Host`).
pub(crate) fn https_location(host: Option<&str>, path_and_query: &str) -> Option<String> {
    let host = host?.trim();
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| format!("https://{host}{path_and_query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_only_plain_hosts() {
        assert_eq!(
            https_location(Some("10.0.0.2:8443"), "/studio?x=1").as_deref(),
            Some("https://10.0.0.2:8443/studio?x=1")
        );
        assert_eq!(
            https_location(Some("[::1]:8443"), "/").as_deref(),
            Some("https://[::1]:8443/")
        );
        assert_eq!(https_location(Some("evil.com/x@"), "/"), None);
        assert_eq!(https_location(Some(""), "/"), None);
        assert_eq!(https_location(None, "/"), None);
        assert!(is_tls_record(0x16));
        assert!(!is_tls_record(b'G'));
    }
}

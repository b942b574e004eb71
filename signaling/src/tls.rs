//! HTTPS on the node's own port: a certificate and key from PEM files, rustls on aws-lc-rs.
//! Browsers give the camera only to a secure context, so a studio served over plain HTTP
//! on a LAN or public address cannot go live. With TLS on, a plain-HTTP request to the
//! same port gets a redirect to its `https://` twin (the first byte tells: a TLS record
//! starts with 0x16, a request line with a letter).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The node's TLS side.
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
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
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
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

//! Cluster certificates: one CA per cluster, one certificate per node, mutual TLS on every link.
//!
//! A node proves it belongs to the cluster by a certificate signed by the cluster CA; the CA
//! signs nothing else, so "signed by the CA" is the whole authorization. Both sides of a link
//! verify the other against the CA alone (no system roots): the parent requires a client
//! certificate ([`WebPkiClientVerifier`]), the child checks the parent's name.
//!
//! Files: `init_cluster` writes `ca.pem` and `ca.key`; `issue_node` writes a node's
//! `node.pem`, `node.key` and a copy of `ca.pem`, which is what [`NodeIdentity::load`] reads.
//! Keys are ECDSA P-256, written mode 0600.
//!
//! A node named `edge-1` has the DNS name `edge-1.cascade.node` in its subject alternative
//! names (what the child asks for when it connects) and `edge-1` as its common name (what a
//! parent reports as [`crate::net::SubscribeRequest::peer`]).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use thiserror::Error;

use crate::wire::NodeId;

/// ALPN protocol of the relay link; a peer speaking anything else is refused.
pub const ALPN: &[u8] = b"cascade-relay/1";
/// Suffix of a node's DNS name in its certificate.
pub const NAME_SUFFIX: &str = ".cascade.node";
/// How long a node certificate is valid.
pub const NODE_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long the cluster CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why certificates could not be made, read or used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// `init_cluster` found a CA already there.
    #[error("{0} exists; refusing to overwrite a cluster CA")]
    Exists(String),
    /// A node name that is not a DNS label.
    #[error("bad node name {0:?}: 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'")]
    BadName(String),
    /// Generating or signing a certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file without the expected certificate or key.
    #[error("{0}: no usable PEM item")]
    Pem(String),
    /// A certificate that does not parse, or lacks a node name.
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// rustls refused the configuration (for example, a key not matching the certificate).
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The id of a node in hop lists: 64-bit FNV-1a of the UTF-8 name. Stable across builds,
/// platforms and versions (unlike `std`'s hasher), so every node computes the same id for a
/// name; names are short and chosen by the operator, so collisions are not a concern.
pub fn node_id(name: &str) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    NodeId(h)
}

fn check_name(name: &str) -> Result<(), TlsError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(TlsError::BadName(name.to_owned()))
    }
}

/// The DNS name a node's certificate carries.
pub fn dns_name(node_name: &str) -> String {
    format!("{node_name}{NAME_SUFFIX}")
}

/// Writes `bytes` to `path` through a temporary file and a rename, with mode `mode`; with
/// `create_new` the file must not exist yet.
fn write_file(path: &Path, bytes: &[u8], mode: u32, create_new: bool) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    if create_new {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(io_err(path))?;
        return f.write_all(bytes).map_err(io_err(path));
    }
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks a minute apart.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + lifetime;
}

/// Creates a cluster CA in `dir`: `ca.pem` (0644) and `ca.key` (0600). Refuses if either exists.
pub fn init_cluster(dir: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(TlsError::Exists(p.display().to_string()));
        }
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // A name of its own per cluster, so a certificate from another cluster's CA is reported
    // as of an unknown issuer rather than as a bad signature.
    let tag: String = key.public_key_raw()[1..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dn.push(DnType::CommonName, format!("Cascade cluster CA {tag}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    // The key first: a crash between the two leaves no CA certificate without its key.
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600, true)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644, true)
}

/// Issues a certificate for node `node_name`, signed by the CA in `ca_dir`, into `out_dir`:
/// `node.pem`, `node.key` (0600) and a copy of `ca.pem`. Overwrites an older node certificate
/// (renewal).
pub fn issue_node(ca_dir: &Path, node_name: &str, out_dir: &Path) -> Result<(), TlsError> {
    check_name(node_name)?;
    let ca_pem_path = ca_dir.join("ca.pem");
    let ca_key_path = ca_dir.join("ca.key");
    let ca_pem = fs::read_to_string(&ca_pem_path).map_err(io_err(&ca_pem_path))?;
    let ca_key = fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
    let ca_key = KeyPair::from_pem(&ca_key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![dns_name(node_name)])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_name);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every node is both: a parent (server) to its children and a child (client) of its parent.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, NODE_VALIDITY);
    let cert = params.signed_by(&key, &issuer)?;

    fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    write_file(
        &out_dir.join("node.key"),
        key.serialize_pem().as_bytes(),
        0o600,
        false,
    )?;
    write_file(
        &out_dir.join("node.pem"),
        cert.pem().as_bytes(),
        0o644,
        false,
    )?;
    if out_dir.join("ca.pem") != ca_pem_path {
        write_file(&out_dir.join("ca.pem"), ca_pem.as_bytes(), 0o644, false)?;
    }
    Ok(())
}

/// A node's name, id, certificate and key, and the cluster CA it trusts.
#[derive(Clone)]
pub struct NodeIdentity {
    /// The node's name (its certificate's common name).
    pub name: String,
    /// [`node_id`] of the name.
    pub id: NodeId,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    not_after: SystemTime,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("NodeIdentity")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    CertificateDer::from_pem_slice(&bytes).map_err(|_| TlsError::Pem(path.display().to_string()))
}

/// The node name in a certificate (its common name), and its expiry.
pub(crate) fn cert_name(der: &[u8]) -> Result<(String, SystemTime), TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| TlsError::BadCertificate("no common name".into()))?
        .to_owned();
    let secs = cert.validity().not_after.timestamp().max(0) as u64;
    Ok((name, UNIX_EPOCH + Duration::from_secs(secs)))
}

impl NodeIdentity {
    /// Reads `ca.pem`, `node.pem` and `node.key` from `dir` (as written by [`issue_node`]).
    pub fn load(dir: &Path) -> Result<NodeIdentity, TlsError> {
        let ca = read_cert(&dir.join("ca.pem"))?;
        let cert = read_cert(&dir.join("node.pem"))?;
        let key_path = dir.join("node.key");
        let key_bytes = fs::read(&key_path).map_err(io_err(&key_path))?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes)
            .map_err(|_| TlsError::Pem(key_path.display().to_string()))?;
        let (name, not_after) = cert_name(&cert)?;
        check_name(&name)?;
        let id = NodeIdentity {
            id: node_id(&name),
            name,
            ca,
            chain: vec![cert],
            key: Arc::new(key),
            not_after,
        };
        // Fails now, not at the first handshake, if the key does not match the certificate.
        id.server_config()?;
        Ok(id)
    }

    /// When the node certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(Arc::new(roots))
    }

    /// TLS for accepting links: TLS 1.3 only, a client certificate from the cluster CA required.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }

    /// TLS for opening links: TLS 1.3 only, the server verified against the cluster CA alone,
    /// this node's certificate presented.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_cluster_issues_node_identities() {
        let dir = std::env::temp_dir().join(format!("cascade-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let ca = dir.join("ca");
        init_cluster(&ca).unwrap();
        assert!(matches!(init_cluster(&ca), Err(TlsError::Exists(_))));
        let mode = fs::metadata(ca.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        assert!(matches!(
            issue_node(&ca, "Bad_Name", &dir.join("x")),
            Err(TlsError::BadName(_))
        ));
        let node = dir.join("edge-1");
        issue_node(&ca, "edge-1", &node).unwrap();
        let mode = fs::metadata(node.join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let id = NodeIdentity::load(&node).unwrap();
        assert_eq!(id.name, "edge-1");
        assert_eq!(id.id, node_id("edge-1"));
        let left = id.not_after().duration_since(SystemTime::now()).unwrap();
        assert!(left > NODE_VALIDITY - Duration::from_secs(60) && left <= NODE_VALIDITY);
        // Renewal overwrites.
        issue_node(&ca, "edge-1", &node).unwrap();
        NodeIdentity::load(&node).unwrap();
        assert!(!format!("{id:?}").contains("key:"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn node_ids_are_fnv1a() {
        assert_eq!(node_id(""), NodeId(0xcbf2_9ce4_8422_2325));
        assert_eq!(node_id("a"), NodeId(0xaf63_dc4c_8601_ec8c));
        assert_ne!(node_id("edge-1"), node_id("edge-2"));
    }
}

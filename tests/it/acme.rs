//! `--acme-domain` against a real ACME CA on loopback: Debian's `pebble`, with
//! `pebble-challtestsrv` as its DNS server (every name is 127.0.0.1). Pebble validates for
//! real (no `PEBBLE_VA_ALWAYS_VALID`): it connects to the node's HTTPS port, offering only
//! `acme-tls/1`, and checks the challenge certificate the node presents (TLS-ALPN-01).
//! The client here trusts nothing but pebble's root, fetched from its management API.
//! Without pebble installed (`apt-get install pebble`) those tests say SKIPPED and pass.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;

use crate::server::{cascade_bin, temp_dir, Server};

const DOMAIN: &str = "cascade.test";

fn have_pebble() -> bool {
    let found = ["pebble", "pebble-challtestsrv"].iter().all(|b| {
        Command::new(b)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !found {
        eprintln!("##############################################################");
        eprintln!("## SKIPPED (ACME): pebble is not installed (apt-get install pebble)");
        eprintln!("##############################################################");
    }
    found
}

/// A port free now (the kernel's pick); pebble needs the node's HTTPS port before either
/// starts.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Pebble and its DNS server, killed when dropped.
struct Pebble {
    procs: Vec<Child>,
    directory: String,
    /// The CA of pebble's own HTTPS certificate (what `--acme-ca-file` trusts).
    ca_file: PathBuf,
    ca: RootCertStore,
    management: u16,
    log: PathBuf,
}

impl Pebble {
    /// Pebble validating TLS-ALPN-01 on `tls_port`, files in `dir`.
    fn start(tls_port: u16, dir: &Path) -> Pebble {
        // Debian's package has no test certificates: a CA and a 127.0.0.1 leaf made here.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble's test CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        std::fs::write(dir.join("pebble.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("pebble.key"), key.serialize_pem()).unwrap();
        let mut ca = RootCertStore::empty();
        ca.add(ca_cert.der().clone()).unwrap();

        let (acme, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble.pem"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": free_port(),
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let log = dir.join("pebble.log");
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Pebble refuses 5 % of good nonces by default; rustls-acme drops the order on
            // a badNonce and orders again after its backoff (tested below with an
            // unreachable directory): a slower run, not a different one.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pebble");
        let p = Pebble {
            procs: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{acme}/dir"),
            ca_file,
            ca,
            management,
            log,
        };
        until(Duration::from_secs(20), "pebble's directory", || {
            https_get(acme, "127.0.0.1", &p.ca, "/dir").ok()
        });
        p
    }

    /// The root that pebble's certificates chain to (made afresh on every start).
    fn root(&self) -> RootCertStore {
        let (_, body) = https_get(self.management, "127.0.0.1", &self.ca, "/roots/0").unwrap();
        let mut roots = RootCertStore::empty();
        let pem = body.split_once("\r\n\r\n").map_or(&*body, |(_, b)| b);
        let der = pem_certificates(pem.as_bytes());
        assert!(!der.is_empty(), "no root in {body:?}");
        for c in der {
            roots.add(c).unwrap();
        }
        roots
    }

    /// The orders pebble holds, from its log.
    fn orders(&self) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter_map(|l| l.split("There are now ").nth(1)?.split(' ').next())
            .filter_map(|n| n.parse().ok())
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

/// GET `path` over TLS from 127.0.0.1:`port` as `name` (SNI and verification), trusting
/// only `roots`: the server's chain and the whole response.
fn https_get(
    port: u16,
    name: &str,
    roots: &RootCertStore,
    path: &str,
) -> std::io::Result<(Vec<CertificateDer<'static>>, String)> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), server_name)
        .map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // Closed without close_notify after the response: fine for this.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    let chain = tls
        .conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    Ok((chain, String::from_utf8_lossy(&response).into_owned()))
}

/// A plain-HTTP request's response head.
fn plain_get(port: u16, host: &str, path: &str) -> String {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = sock.read_to_string(&mut out);
    out
}

fn until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node on `port` with ACME from `pebble`, its log (info) in `log`.
fn node(port: u16, data: &Path, directory: &str, ca_file: &Path, log: &Path) -> Server {
    let (http, ca) = (format!("127.0.0.1:{port}"), ca_file.display().to_string());
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Server::launch(
        &[
            "--http",
            &http,
            "--acme-domain",
            DOMAIN,
            "--acme-contact",
            "mailto:ops@cascade.test",
            "--acme-directory",
            directory,
            "--acme-ca-file",
            &ca,
        ],
        data,
        Stdio::from(stderr),
        "info",
    )
}

fn subject_names(der: &CertificateDer<'_>) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect()
}

fn not_after(der: &CertificateDer<'_>) -> i64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.validity().not_after.timestamp()
}

#[test]
fn acme_certificate_from_pebble_is_served_redirected_to_and_cached() {
    if !have_pebble() {
        return;
    }
    let dir = temp_dir("acme");
    let port = free_port();
    let pebble = Pebble::start(port, &dir);
    let (data, log) = (dir.join("data"), dir.join("node.log"));
    let server = node(port, &data, &pebble.directory, &pebble.ca_file, &log);
    assert_eq!(server.base, format!("https://127.0.0.1:{port}"));
    let roots = pebble.root();

    // Pebble validates, issues; the node serves its certificate (verified against
    // pebble's root, for the name cascade.test) and its API over it.
    let (chain, health) = until(Duration::from_secs(60), "the ACME certificate", || {
        https_get(port, DOMAIN, &roots, "/healthz").ok()
    });
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    assert_eq!(subject_names(&chain[0]), [format!("DNSName({DOMAIN})")]);
    let first = chain[0].clone();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("ACME: certificate for cascade.test issued"),
        "{logged}"
    );
    let orders = pebble.orders();
    assert!(orders >= 1);
    let pebble_log = std::fs::read_to_string(&pebble.log).unwrap();
    assert!(
        pebble_log.contains("set VALID by completed challenge"),
        "{pebble_log}"
    );

    // Plain HTTP on the same port: a redirect to HTTPS.
    let plain = plain_get(port, &format!("{DOMAIN}:{port}"), "/studio?x=1");
    assert!(plain.starts_with("HTTP/1.1 308"), "{plain}");
    assert!(
        plain
            .to_ascii_lowercase()
            .contains(&format!("location: https://{DOMAIN}:{port}/studio?x=1")),
        "{plain}"
    );

    // The expiry metric: seconds left on the served certificate.
    let (_, metrics) = https_get(port, DOMAIN, &roots, "/metrics").unwrap();
    let left: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cascade_tls_certificate_expiry_seconds "))
        .expect("the expiry metric")
        .trim()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((left - (not_after(&first) - now)).abs() < 30, "{left}");

    // Keys are private: the cache directory and its files.
    let cache = data.join("acme");
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&cache), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}"); // the account key, the certificate and its key
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    let cert_file = files
        .iter()
        .find(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("cert-")
        })
        .unwrap()
        .clone();
    let stored = std::fs::metadata(&cert_file).unwrap().modified().unwrap();
    assert!(!logged.contains("PRIVATE KEY"), "a key in the log");

    // A restart serves the cached certificate: no new order, the same certificate.
    assert!(server.terminate(), "the node exits cleanly");
    std::fs::write(&log, "").unwrap();
    let restarted = node(port, &data, &pebble.directory, &pebble.ca_file, &log);
    let (chain, _) = until(Duration::from_secs(20), "the cached certificate", || {
        https_get(port, DOMAIN, &roots, "/healthz").ok()
    });
    assert_eq!(chain[0], first, "the same certificate after a restart");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("ACME: serving the cached certificate for cascade.test"),
        "{logged}"
    );
    assert!(!logged.contains("cascade.test issued"), "{logged}");
    assert_eq!(pebble.orders(), orders, "no new order");
    assert_eq!(
        std::fs::metadata(&cert_file).unwrap().modified().unwrap(),
        stored
    );
    drop((restarted, pebble));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreachable_acme_directory_is_retried_and_the_node_runs_on() {
    let dir = temp_dir("acme-down");
    let port = free_port();
    let closed = free_port(); // nothing listens there
    let ca = dir.join("ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    let log = dir.join("node.log");
    let mut server = node(
        port,
        &dir.join("data"),
        &format!("https://127.0.0.1:{closed}/dir"),
        &ca,
        &log,
    );
    // Errors logged, retried (after 1 s, then 2 s, …), and the node stays up.
    until(Duration::from_secs(10), "a second failed attempt", || {
        let logged = std::fs::read_to_string(&log).unwrap();
        (logged.matches("ACME (https://127.0.0.1:").count() >= 2).then_some(())
    });
    assert!(server.alive(), "the node is still running");
    // No certificate yet: handshakes fail, plain HTTP still gets its redirect.
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    assert!(https_get(port, DOMAIN, &roots, "/healthz").is_err());
    let plain = plain_get(port, &format!("{DOMAIN}:{port}"), "/");
    assert!(plain.starts_with("HTTP/1.1 308"), "{plain}");
    assert!(server.terminate(), "the node exits cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn acme_with_tls_files_or_bad_names_is_refused() {
    let dir = temp_dir("acme-bad");
    let run = |extra: &[&str]| {
        let out = Command::new(cascade_bin())
            .args(["serve", "--http", "127.0.0.1:0", "--auth", "open"])
            .arg("--data-dir")
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let both = run(&[
        "--acme-domain",
        DOMAIN,
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        "/nonexistent.key",
    ]);
    assert!(
        both.contains("--acme-domain and --tls-cert/--tls-key are exclusive"),
        "{both}"
    );
    let wildcard = run(&["--acme-domain", "*.cascade.test"]);
    assert!(wildcard.contains("wildcard"), "{wildcard}");
    let ip = run(&["--acme-domain", "127.0.0.1"]);
    assert!(ip.contains("an IP address"), "{ip}");
    let alone = run(&["--acme-directory", "https://127.0.0.1:1/dir"]);
    assert!(alone.contains("need --acme-domain"), "{alone}");
    let contact = run(&[
        "--acme-domain",
        DOMAIN,
        "--acme-contact",
        "ops@cascade.test",
    ]);
    assert!(contact.contains("expected mailto:"), "{contact}");
}

//! DTLS through OpenSSL for every session; SRTP, hashes and HMACs stay on aws-lc-rs.
//!
//! str0m's built-in DTLS (dimpl 0.9) offers only ECDSA in its CertificateRequest and can
//! verify only ECDSA signatures, so a publisher with an RSA certificate (GStreamer's
//! `webrtcbin`, the engine of `whipsink` and many WHIP tools) sends none and the handshake
//! fails with "no client certificate received". OpenSSL accepts RSA and ECDSA peers.
//! str0m 0.25 names an `openssl` feature, but the crate behind it (str0m-openssl 0.7) was
//! never published. This module follows the shape of the DTLS part of str0m-openssl 0.6
//! (Martin Algesten, MIT OR Apache-2.0), rewritten for str0m 0.25's traits, without its
//! panics on remote input and with handshake retransmission. It goes when str0m publishes
//! an OpenSSL (or RSA-accepting) DTLS backend. Only the handshake runs here: the
//! per-packet path (SRTP) is unchanged.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dimpl::{CryptoError as ImplCrypto, CryptoOperation};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::srtp::SrtpProfileId;
use openssl::ssl::{ErrorCode, HandshakeError, MidHandshakeSslStream, Ssl, SslContext};
use openssl::ssl::{SslContextBuilder, SslSessionCacheMode};
use openssl::ssl::{SslMethod, SslOptions, SslRef, SslStream, SslVerifyMode};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use str0m::crypto::dtls::{DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider};
use str0m::crypto::dtls::{DtlsVersion, KeyingMaterial, ProtocolVersion, SrtpProfile};
use str0m::crypto::{CryptoError, CryptoProvider};

/// The crypto provider every session uses: aws-lc-rs with OpenSSL's DTLS.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    static DTLS: OpenSslDtls = OpenSslDtls;
    PROVIDER
        .get_or_init(|| {
            let mut p = str0m::crypto::from_feature_flags();
            p.dtls_provider = &DTLS;
            Arc::new(p)
        })
        .clone()
}

/// ECDHE only: the node's own certificate is ECDSA, the peer's may be RSA or ECDSA.
const CIPHERS: &str = "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES256";
const SRTP_PROFILES: &str = "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80";
const SRTP_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// How often a handshake in progress is driven, so OpenSSL can retransmit a lost flight
/// (it keeps its own backoff from 1 s; driving it early sends nothing).
const HANDSHAKE_TICK: Duration = Duration::from_millis(250);
/// Datagrams waiting for OpenSSL; more is a flood, and DTLS survives losing them.
const MAX_QUEUED: usize = 64;

#[derive(Debug)]
struct OpenSslDtls;

impl DtlsProvider for OpenSslDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        match IDENTITY.certificate(Instant::now()) {
            Ok(cert) => Some(cert),
            Err(e) => {
                tracing::error!("DTLS certificate generation failed: {e}");
                None
            }
        }
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        if version != DtlsVersion::Dtls12 {
            return Err(CryptoError::Other(format!("{version} is not offered")));
        }
        let ssl = IDENTITY
            .ssl(cert, mtu.unwrap_or(str0m::DATAGRAM_MTU_TARGET))
            .map_err(|e| CryptoError::Other(e.to_string()))?;
        Ok(Box::new(Dtls::new(ssl, now)))
    }
}

/// The node's DTLS identity: one ECDSA certificate and the OpenSSL context built on it,
/// shared by every session of the process (as mediasoup shares one per worker) and made
/// again once a day, well inside its 30 days of validity. A context per session cost
/// about a millisecond of CPU per join (parsing the cipher list, the certificate and the
/// key, checking they match); a session now only makes its `Ssl` from the shared one.
struct Identity(std::sync::Mutex<Option<Made>>);

struct Made {
    at: Instant,
    cert: DtlsCert,
    ctx: SslContext,
}

static IDENTITY: Identity = Identity(std::sync::Mutex::new(None));

impl Identity {
    /// How long one certificate serves new sessions.
    const RENEW: Duration = Duration::from_secs(24 * 3600);

    /// The certificate new sessions present at `now`.
    fn certificate(&self, now: Instant) -> Result<DtlsCert, openssl::error::ErrorStack> {
        let mut made = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = made.as_ref() {
            if now.saturating_duration_since(m.at) < Self::RENEW {
                return Ok(m.cert.clone());
            }
        }
        let fresh = self_signed().and_then(|cert| Ok((context(&cert)?, cert)));
        match (fresh, made.as_ref()) {
            (Ok((ctx, cert)), _) => {
                *made = Some(Made {
                    at: now,
                    cert: cert.clone(),
                    ctx,
                });
                Ok(cert)
            }
            // The old one is valid for 29 more days: keep it and try again next session.
            (Err(e), Some(m)) => {
                tracing::warn!("DTLS certificate renewal failed, the current one stays: {e}");
                Ok(m.cert.clone())
            }
            (Err(e), None) => Err(e),
        }
    }

    /// A session's `Ssl` for `cert`: from the shared context when `cert` is the node's
    /// (any other, a test's or a renewed-away one, gets a context of its own).
    fn ssl(&self, cert: &DtlsCert, mtu: usize) -> Result<Ssl, openssl::error::ErrorStack> {
        let shared = {
            let made = self.0.lock().unwrap_or_else(|p| p.into_inner());
            made.as_ref()
                .filter(|m| m.cert.certificate == cert.certificate)
                .map(|m| m.ctx.clone())
        };
        let ctx = match shared {
            Some(ctx) => ctx,
            None => context(cert)?,
        };
        let mut ssl = Ssl::new(&ctx)?;
        ssl.set_mtu(u32::try_from(mtu).unwrap_or(1200))?;
        Ok(ssl)
    }
}

/// A fresh ECDSA P-256 certificate, like browsers use.
fn self_signed() -> Result<DtlsCert, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    certificate_for(PKey::from_ec_key(EcKey::generate(&group)?)?, "cascade")
}

/// A self-signed RSA-2048 certificate, as GStreamer's `webrtcbin` presents: for tests and
/// benchmarks of peers the built-in DTLS refuses.
#[doc(hidden)]
pub fn rsa_certificate() -> Result<DtlsCert, openssl::error::ErrorStack> {
    let rsa = openssl::rsa::Rsa::generate(2048)?;
    certificate_for(PKey::from_rsa(rsa)?, "gstreamer")
}

/// A self-signed certificate for `key`, valid for 30 days.
fn certificate_for(
    key: PKey<openssl::pkey::Private>,
    cn: &str,
) -> Result<DtlsCert, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    b.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(30)?.as_ref())?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok(DtlsCert {
        certificate: b.build().to_der()?,
        private_key: key.private_key_to_der()?,
    })
}

/// The OpenSSL context sessions presenting `cert` are made from.
fn context(cert: &DtlsCert) -> Result<SslContext, openssl::error::ErrorStack> {
    let mut ctx = SslContextBuilder::new(SslMethod::dtls())?;
    ctx.set_cipher_list(CIPHERS)?;
    ctx.set_tlsext_use_srtp(SRTP_PROFILES)?;
    // Any certificate is accepted here: str0m compares its fingerprint with the SDP's
    // when it gets `PeerCert`, which is what authenticates a WebRTC peer.
    ctx.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_, _| true,
    );
    let certificate = X509::from_der(&cert.certificate)?;
    let key = PKey::private_key_from_der(&cert.private_key)?;
    ctx.set_certificate(&certificate)?;
    ctx.set_private_key(&key)?;
    ctx.set_options(SslOptions::SINGLE_ECDH_USE | SslOptions::NO_DTLSV1 | SslOptions::NO_QUERY_MTU);
    // Sessions share this context: none may resume another's handshake (no cache, no
    // tickets), as none could when each had a context of its own.
    ctx.set_options(SslOptions::NO_TICKET);
    // The peer's certificate is read once, when the handshake completes.
    ctx.set_options(SslOptions::NO_RENEGOTIATION);
    ctx.set_session_cache_mode(SslSessionCacheMode::OFF);
    Ok(ctx.build())
}

/// The datagrams between OpenSSL and str0m: one read or write is one datagram.
#[derive(Debug, Default)]
struct Wire {
    incoming: VecDeque<Vec<u8>>,
    outgoing: VecDeque<Vec<u8>>,
}

impl io::Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(d) = self.incoming.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl io::Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.push_back(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Tls {
    Idle(Ssl, Wire),
    Handshaking(MidHandshakeSslStream<Wire>),
    Established(SslStream<Wire>),
    Failed,
}

impl Tls {
    fn wire(&mut self) -> Option<&mut Wire> {
        match self {
            Tls::Idle(_, w) => Some(w),
            Tls::Handshaking(m) => Some(m.get_mut()),
            Tls::Established(s) => Some(s.get_mut()),
            Tls::Failed => None,
        }
    }
}

/// What `poll_output` hands out after the datagrams.
#[derive(Debug)]
enum Event {
    Connected,
    PeerCert(Vec<u8>),
    Keying(Vec<u8>, SrtpProfile),
    Data(Vec<u8>),
    CloseNotify,
}

struct Dtls {
    tls: Tls,
    active: Option<bool>,
    now: Instant,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    close_sent: bool,
    close_received: bool,
}

impl std::fmt::Debug for Dtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSslDtls")
            .field("active", &self.active)
            .finish()
    }
}

fn failed(op: CryptoOperation) -> DtlsImplError {
    DtlsImplError::CryptoError(ImplCrypto::OperationFailed(op))
}

impl Dtls {
    fn new(ssl: Ssl, now: Instant) -> Dtls {
        Dtls {
            tls: Tls::Idle(ssl, Wire::default()),
            active: None,
            now,
            out: VecDeque::new(),
            events: VecDeque::new(),
            close_sent: false,
            close_received: false,
        }
    }

    /// Moves the handshake or the established connection as far as it goes.
    fn drive(&mut self) -> Result<(), DtlsImplError> {
        let Some(active) = self.active else {
            return Ok(());
        };
        let was_established = matches!(self.tls, Tls::Established(_));
        let result = match mem::replace(&mut self.tls, Tls::Failed) {
            Tls::Idle(ssl, wire) if active => ssl.connect(wire),
            Tls::Idle(ssl, wire) => ssl.accept(wire),
            Tls::Handshaking(mid) => mid.handshake(),
            Tls::Established(s) => Ok(s),
            Tls::Failed => return Err(failed(CryptoOperation::CompleteKeyExchange)),
        };
        let outcome = match result {
            Ok(s) => {
                self.tls = Tls::Established(s);
                if was_established {
                    Ok(())
                } else {
                    self.established()
                }
                .and_then(|()| self.read_data())
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                self.tls = Tls::Handshaking(mid);
                Ok(())
            }
            Err(HandshakeError::Failure(mut mid)) => {
                tracing::debug!("DTLS handshake failed: {}", mid.error());
                // The alert that tells the peer why.
                self.out.append(&mut mid.get_mut().outgoing);
                Err(failed(CryptoOperation::CompleteKeyExchange))
            }
            Err(HandshakeError::SetupFailure(e)) => {
                tracing::debug!("DTLS setup failed: {e}");
                Err(failed(CryptoOperation::CompleteKeyExchange))
            }
        };
        if let Some(w) = self.tls.wire() {
            self.out.append(&mut w.outgoing);
        }
        outcome
    }

    /// The handshake just completed: the peer's certificate and the SRTP keys.
    fn established(&mut self) -> Result<(), DtlsImplError> {
        let Tls::Established(s) = &self.tls else {
            return Ok(());
        };
        let (cert, keys, profile) = srtp_keys(s.ssl()).map_err(|e| {
            tracing::debug!("DTLS keying failed: {e}");
            failed(CryptoOperation::CompleteKeyExchange)
        })?;
        self.events.push_back(Event::Connected);
        self.events.push_back(Event::PeerCert(cert));
        self.events.push_back(Event::Keying(keys, profile));
        Ok(())
    }

    /// Application data (SCTP) and close_notify.
    fn read_data(&mut self) -> Result<(), DtlsImplError> {
        let Tls::Established(s) = &mut self.tls else {
            return Ok(());
        };
        // str0m's output buffer is 2,000 bytes; SCTP packets are MTU-sized.
        let mut buf = [0u8; 2000];
        loop {
            match s.ssl_read(&mut buf) {
                Ok(n) => self.events.push_back(Event::Data(buf[..n].to_vec())),
                Err(e) if e.code() == ErrorCode::WANT_READ => return Ok(()),
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    if !self.close_received {
                        self.close_received = true;
                        if !self.close_sent {
                            let _ = s.shutdown();
                            self.close_sent = true;
                        }
                        self.events.push_back(Event::CloseNotify);
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!("DTLS record refused: {e}");
                    return Err(failed(CryptoOperation::Decrypt));
                }
            }
        }
    }

    fn handshaking(&self) -> bool {
        matches!(self.tls, Tls::Idle(..) | Tls::Handshaking(_))
    }
}

fn srtp_keys(ssl: &SslRef) -> Result<(Vec<u8>, Vec<u8>, SrtpProfile), String> {
    // A resumed session's peer never proved it holds its certificate's key in this
    // handshake (the context allows none; this holds even if that changes).
    if ssl.session_reused() {
        return Err("a resumed session is refused".into());
    }
    let cert = ssl
        .peer_certificate()
        .ok_or("no peer certificate")?
        .to_der()
        .map_err(|e| e.to_string())?;
    let profile = match ssl.selected_srtp_profile().map(|p| p.id()) {
        Some(SrtpProfileId::SRTP_AES128_CM_SHA1_80) => SrtpProfile::AES128_CM_SHA1_80,
        Some(SrtpProfileId::SRTP_AEAD_AES_128_GCM) => SrtpProfile::AEAD_AES_128_GCM,
        Some(SrtpProfileId::SRTP_AEAD_AES_256_GCM) => SrtpProfile::AEAD_AES_256_GCM,
        _ => return Err("no SRTP profile negotiated".into()),
    };
    let mut keys = vec![0u8; profile.keying_material_len()];
    ssl.export_keying_material(&mut keys, SRTP_LABEL, None)
        .map_err(|e| e.to_string())?;
    Ok((cert, keys, profile))
}

impl DtlsInstance for Dtls {
    fn set_active(&mut self, active: bool) {
        self.active = Some(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        // str0m starts a client with an empty packet: nothing to queue, just drive.
        if let (false, Some(w)) = (packet.is_empty(), self.tls.wire()) {
            if w.incoming.len() >= MAX_QUEUED {
                return Ok(());
            }
            w.incoming.push_back(packet.to_vec());
        }
        self.drive()
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        // Sizes are checked before anything is taken, so nothing is lost to a short buffer.
        let needed = match (self.out.front(), self.events.front()) {
            (Some(p), _) => p.len(),
            (None, Some(Event::PeerCert(d) | Event::Data(d))) => d.len(),
            _ => 0,
        };
        if needed > buf.len() {
            return DtlsOutput::BufferTooSmall { needed };
        }
        if let Some(p) = self.out.pop_front() {
            buf[..p.len()].copy_from_slice(&p);
            return DtlsOutput::Packet(&buf[..p.len()]);
        }
        match self.events.pop_front() {
            Some(Event::Connected) => DtlsOutput::Connected,
            Some(Event::CloseNotify) => DtlsOutput::CloseNotify,
            Some(Event::PeerCert(d)) => {
                buf[..d.len()].copy_from_slice(&d);
                DtlsOutput::PeerCert(&buf[..d.len()])
            }
            Some(Event::Data(d)) => {
                buf[..d.len()].copy_from_slice(&d);
                DtlsOutput::ApplicationData(&buf[..d.len()])
            }
            Some(Event::Keying(k, profile)) => {
                DtlsOutput::KeyingMaterial(KeyingMaterial::new(&k), profile)
            }
            None if self.handshaking() => DtlsOutput::Timeout(self.now + HANDSHAKE_TICK),
            None => DtlsOutput::Timeout(self.now + Duration::from_secs(3600)),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.now = now;
        // OpenSSL checks its retransmission timer (on the wall clock) when it finds no
        // datagram to read: driving the handshake is what resends a lost flight.
        if matches!(self.tls, Tls::Handshaking(_)) {
            self.drive()?;
        }
        Ok(())
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        let Tls::Established(s) = &mut self.tls else {
            return Ok(0);
        };
        if data.is_empty() || self.close_sent {
            return Ok(0);
        }
        s.ssl_write(data)
            .map_err(|_| failed(CryptoOperation::Encrypt))?;
        self.out.append(&mut s.get_mut().outgoing);
        Ok(data.len())
    }

    fn is_active(&self) -> bool {
        self.active.unwrap_or(false)
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        matches!(self.tls, Tls::Established(_)).then_some(ProtocolVersion::DTLS1_2)
    }

    fn is_closing(&self) -> bool {
        self.close_sent || self.close_received
    }

    fn is_closed(&self) -> bool {
        self.close_sent && self.out.is_empty()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        if let Tls::Established(s) = &mut self.tls {
            if !self.close_sent {
                let _ = s.shutdown();
                self.out.append(&mut s.get_mut().outgoing);
            }
        }
        self.close_sent = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use str0m::media::{Direction, MediaKind};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

    /// A self-signed RSA-2048 certificate, as GStreamer's DTLS agent makes.
    fn rsa_cert() -> DtlsCert {
        super::rsa_certificate().unwrap()
    }

    /// A publisher with `client` DTLS offers to an ICE-lite node on `node`'s; whether both
    /// ends connect, with the datagrams exchanged in memory.
    fn connects(node: Arc<CryptoProvider>, client: RtcConfig) -> bool {
        let (ca, sa): (SocketAddr, SocketAddr) = (
            "127.0.0.2:1000".parse().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
        );
        let mut now = Instant::now();
        let mut c = client.set_rtp_mode(true).build(now);
        c.add_local_candidate(Candidate::host(ca, Protocol::Udp).unwrap());
        let mut api = c.sdp_api();
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let mut s = RtcConfig::new()
            .set_crypto_provider(node)
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .build(now);
        s.add_local_candidate(Candidate::host(sa, Protocol::Udp).unwrap());
        let answer = s.sdp_api().accept_offer(offer).unwrap();
        c.sdp_api().accept_answer(pending, answer).unwrap();
        let (mut up_c, mut up_s) = (false, false);
        for _ in 0..200 {
            let (Some(a), Some(b)) = (
                pass(&mut c, ca, &mut s, sa, now),
                pass(&mut s, sa, &mut c, ca, now),
            ) else {
                return false;
            };
            (up_c, up_s) = (up_c || a, up_s || b);
            if up_c && up_s {
                return true;
            }
            now += Duration::from_millis(50);
            if c.handle_input(Input::Timeout(now)).is_err()
                || s.handle_input(Input::Timeout(now)).is_err()
            {
                return false;
            }
        }
        false
    }

    /// Delivers what `from` sends to `to`; whether `from` connected, `None` on an error.
    fn pass(
        from: &mut Rtc,
        fa: SocketAddr,
        to: &mut Rtc,
        ta: SocketAddr,
        now: Instant,
    ) -> Option<bool> {
        let mut connected = false;
        loop {
            match from.poll_output().ok()? {
                Output::Transmit(t) => {
                    let r = Receive::new(Protocol::Udp, fa, ta, &t.contents).ok()?;
                    to.handle_input(Input::Receive(now, r)).ok()?;
                }
                Output::Event(Event::Connected) => connected = true,
                Output::Event(_) => {}
                Output::Timeout(_) => return Some(connected),
            }
        }
    }

    #[test]
    fn a_peer_with_an_rsa_certificate_connects() {
        let rsa = rsa_cert();
        let client = || {
            RtcConfig::new()
                .set_crypto_provider(provider())
                .set_dtls_cert(rsa.clone())
        };
        assert!(connects(provider(), client()), "OpenSSL's DTLS accepts RSA");
        // What the node did before: str0m's built-in DTLS asks for ECDSA only.
        let builtin = Arc::new(str0m::crypto::from_feature_flags());
        assert!(
            !connects(builtin, client()),
            "the built-in DTLS refuses RSA"
        );
    }

    #[test]
    fn a_peer_with_an_ecdsa_certificate_still_connects() {
        assert!(connects(provider(), RtcConfig::new()));
    }

    /// Sessions present the node's one certificate, made again after a day; each
    /// still completes its own full handshake from the shared context.
    #[test]
    fn sessions_share_the_nodes_certificate_until_it_is_renewed() {
        let id = Identity(std::sync::Mutex::new(None));
        let t0 = Instant::now();
        let a = id.certificate(t0).unwrap();
        let b = id.certificate(t0 + Duration::from_secs(3600)).unwrap();
        assert_eq!(a.certificate, b.certificate, "one certificate for the day");
        let c = id.certificate(t0 + Identity::RENEW).unwrap();
        assert_ne!(a.certificate, c.certificate, "renewed after a day");
        // A session made just before the renewal still gets an Ssl for its certificate.
        assert!(id.ssl(&a, 1200).is_ok());
        // The node's provider: two sessions in a row, the second on the shared context.
        let node = provider();
        let one = node.dtls_provider.generate_certificate().unwrap();
        let two = node.dtls_provider.generate_certificate().unwrap();
        assert_eq!(one.certificate, two.certificate);
        for _ in 0..2 {
            assert!(connects(provider(), RtcConfig::new()));
        }
    }
}

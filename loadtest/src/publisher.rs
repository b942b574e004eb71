//! The synthetic WHIP publisher: three VP8 simulcast layers at 30 fps with real payload
//! descriptors, keyframes every few seconds and on request, and Opus-sized audio at 50
//! packets a second; every payload stamped (stream, sequence, send time).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Rids, Simulcast, SimulcastLayer};
use str0m::rtp::RtpWrite;
use str0m::Event;

use crate::client::{Client, ClientError};
use crate::stamp::{Stamp, AUDIO, VP8_HEADER};

/// The publisher's layers: RID and bits per second, low to high.
pub const LAYERS: [(&str, u64); 3] = [("q", 150_000), ("h", 500_000), ("f", 1_200_000)];
/// Largest RTP payload the publisher writes.
const MAX_PAYLOAD: usize = 1100;
/// Opus payload bytes (about 32 kbit/s at 50 packets a second).
const AUDIO_PAYLOAD: usize = 80;

/// Counters the report reads.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// RTP packets written.
    pub packets: AtomicU64,
    /// Keyframes sent because a viewer (through the server) asked.
    pub keyframes_requested: AtomicU64,
    /// Set once ICE and DTLS are up.
    pub connected: std::sync::atomic::AtomicBool,
    /// Its WHIP resource (deleted when the run ends).
    pub location: std::sync::Mutex<Option<String>>,
    /// Video layers sent: 3 when the server accepted simulcast, else 1.
    pub layers: std::sync::atomic::AtomicUsize,
}

struct Layer {
    /// `None` when the server did not accept simulcast: one plain video stream.
    rid: Option<&'static str>,
    /// Its index in [`LAYERS`], written in every stamp.
    stream: u8,
    bytes_per_frame: usize,
    seq: u64,
    stamp_seq: u32,
    ts: u32,
    pid: u16,
    tl0: u8,
    key_due: bool,
}

/// Publishes until the task is dropped.
pub async fn run(
    http: reqwest::Client,
    ip: IpAddr,
    url: String,
    key: Option<String>,
    keyframe_every: Duration,
    epoch: Instant,
    stats: Arc<PublisherStats>,
) -> Result<(), ClientError> {
    let mut c = Client::bind(ip).await?;
    let mut api = c.rtc.sdp_api();
    let mut sim = Simulcast::new();
    for (rid, _) in LAYERS {
        sim.add_send_layer(SimulcastLayer::new(rid));
    }
    let amid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let vmid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(sim));
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| ClientError::Rtc("no offer".into()))?;
    let location = c
        .post(
            &http,
            &url,
            key.as_deref(),
            offer.to_sdp_string(),
            pending,
            async |s| s,
        )
        .await?;
    if let Ok(mut l) = stats.location.lock() {
        *l = location;
    }
    let mut layers: Vec<Layer> = LAYERS
        .iter()
        .enumerate()
        .map(|(i, (rid, bps))| Layer {
            rid: Some(rid),
            stream: i as u8,
            bytes_per_frame: (*bps / 8 / 30) as usize,
            seq: 1000 * i as u64,
            stamp_seq: 0,
            ts: 90_000 * i as u32,
            pid: (i as u16) * 1000,
            tl0: 0,
            key_due: true,
        })
        .collect();
    let (mut audio_seq, mut audio_stamp, mut audio_ts) = (0u64, 0u32, 0u32);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let (mut next_video, mut next_audio, mut next_key) = (start, start, start + keyframe_every);
    let frame = Duration::from_micros(33_333);
    loop {
        c.drain(&mut events).await?;
        for e in events.drain(..) {
            match e {
                Event::Connected => stats.connected.store(true, Ordering::Relaxed),
                Event::KeyframeRequest(r) => {
                    stats.keyframes_requested.fetch_add(1, Ordering::Relaxed);
                    for l in &mut layers {
                        if r.rid.as_deref().is_none_or(|x| Some(x) == l.rid) {
                            l.key_due = true;
                        }
                    }
                }
                _ => {}
            }
        }
        let connected = stats.connected.load(Ordering::Relaxed);
        let wake = if connected {
            c.timeout.min(next_video).min(next_audio)
        } else {
            c.timeout
        };
        tokio::select! {
            r = c.socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                c.input(from, &buf[..n])?;
                continue;
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        c.tick()?;
        if !connected {
            continue;
        }
        let now = Instant::now();
        if now >= next_key {
            next_key += keyframe_every;
            layers.iter_mut().for_each(|l| l.key_due = true);
        }
        let (Some(vp8), Some(opus)) = (pt(&c, vmid, Codec::Vp8), pt(&c, amid, Codec::Opus)) else {
            return Err(ClientError::Rtc("VP8 and Opus were not negotiated".into()));
        };
        if stats.layers.load(Ordering::Relaxed) == 0 {
            single_layer_unless_simulcast(&c, vmid, &mut layers);
            stats.layers.store(layers.len(), Ordering::Relaxed);
        }
        if now >= next_video {
            next_video += frame;
            for l in layers.iter_mut() {
                let key = std::mem::take(&mut l.key_due);
                let packets = l.bytes_per_frame.div_ceil(MAX_PAYLOAD).max(1);
                let size = (l.bytes_per_frame / packets).max(VP8_HEADER + crate::stamp::LEN);
                for idx in 0..packets {
                    let first = idx == 0;
                    let mut p = crate::stamp::vp8_descriptor(first, l.pid, l.tl0);
                    // VP8 payload header: P=0 on a keyframe's first packet.
                    p.push(if first && !key { 0x01 } else { 0x00 });
                    Stamp {
                        stream: l.stream,
                        seq: l.stamp_seq,
                        sent_us: epoch.elapsed().as_micros() as u64,
                    }
                    .write(&mut p);
                    p.resize(size, 0x5a);
                    l.stamp_seq = l.stamp_seq.wrapping_add(1);
                    let w = RtpWrite::new(vp8, l.seq.into(), l.ts, now, p)
                        .marker(idx + 1 == packets)
                        .nackable(true);
                    write(&mut c, vmid, l.rid, w, &mut events).await?;
                    l.seq += 1;
                    stats.packets.fetch_add(1, Ordering::Relaxed);
                }
                l.pid = (l.pid + 1) & 0x7fff;
                l.tl0 = l.tl0.wrapping_add(1);
                l.ts = l.ts.wrapping_add(3000);
            }
        }
        if now >= next_audio {
            next_audio += Duration::from_millis(20);
            let mut p = Vec::with_capacity(AUDIO_PAYLOAD);
            Stamp {
                stream: AUDIO,
                seq: audio_stamp,
                sent_us: epoch.elapsed().as_micros() as u64,
            }
            .write(&mut p);
            p.resize(AUDIO_PAYLOAD, 0x33);
            let w = RtpWrite::new(opus, audio_seq.into(), audio_ts, now, p).nackable(true);
            write(&mut c, amid, None, w, &mut events).await?;
            audio_seq += 1;
            audio_stamp = audio_stamp.wrapping_add(1);
            audio_ts = audio_ts.wrapping_add(960);
            stats.packets.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The payload type the answer gave `codec` on `mid` (servers may answer a subset).
fn pt(c: &Client, mid: Mid, codec: Codec) -> Option<Pt> {
    let params = c.rtc.codec_config().params();
    let of = |pt: &Pt| params.iter().find(|p| p.pt() == *pt);
    let negotiated = c.rtc.media(mid)?.remote_pts().iter().copied();
    negotiated
        .filter(|pt| of(pt).is_some_and(|p| p.spec().codec == codec))
        .chain(
            params
                .iter()
                .filter(|p| p.spec().codec == codec)
                .map(|p| p.pt()),
        )
        .next()
}

/// A server that did not accept the simulcast offer gets one plain stream: the middle
/// layer, without a RID.
fn single_layer_unless_simulcast(c: &Client, vmid: Mid, layers: &mut Vec<Layer>) {
    let simulcast = c
        .rtc
        .media(vmid)
        .is_some_and(|m| matches!(m.rids_tx(), Rids::Specific(r) if r.len() > 1));
    if !simulcast {
        let mid_layer = layers.len() / 2;
        layers.swap(0, mid_layer);
        layers.truncate(1);
        layers[0].rid = None;
    }
}

/// Writes one packet and drains str0m (every mutation is followed by a drain).
async fn write(
    c: &mut Client,
    mid: Mid,
    rid: Option<&str>,
    w: RtpWrite,
    events: &mut Vec<Event>,
) -> Result<(), ClientError> {
    let mut api = c.rtc.direct_api();
    let tx = api
        .stream_tx_by_mid(mid, rid.map(Rid::from))
        .ok_or_else(|| ClientError::Rtc(format!("no send stream for {rid:?}")))?;
    tx.write_rtp(w);
    c.drain(events).await
}

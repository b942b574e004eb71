//! What crosses the link: control messages on a subscription's bidirectional stream, and the
//! header in front of each RTP packet sent as a QUIC datagram.
//!
//! A hand-written compact binary rather than serde + postcard/bincode: seven small messages,
//! every length bounded before anything is allocated, and no dependency to keep in step.
//!
//! Control frame: `len: u16 BE` (bytes after the length, at most [`MAX_FRAME`]), `version: u8`,
//! `type: u8`, body. Integers are big-endian; a list is a `u8` count then its items, a string
//! a `u8` length then UTF-8. Decoding never panics: short input is `Ok(None)` (wait for more),
//! anything else wrong is a [`WireError`].
//!
//! Datagram: `sub: u32 BE`, `layer: u8`, `flags: u8` (bit 0: the packet starts a keyframe),
//! then the RTP packet unchanged.

use thiserror::Error;

/// Version of the control protocol; a frame of another version is refused.
pub const VERSION: u8 = 1;
/// Largest control frame after its length prefix.
pub const MAX_FRAME: usize = 4096;
/// Longest stream name, in bytes.
pub const MAX_STREAM_NAME: usize = 128;
/// Most nodes in a hop list.
pub const MAX_HOPS: usize = 16;
/// Most tracks in a SUBSCRIBED.
pub const MAX_TRACKS: usize = 8;
/// Most layers in one track.
pub const MAX_TRACK_LAYERS: usize = 4;
/// Most sequence numbers in one NACK.
pub const MAX_NACK: usize = 64;
/// Bytes in front of the RTP packet in a media datagram.
pub const DATAGRAM_HEADER: usize = 6;

/// A node of the cluster, as named in hop lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

/// A subscription on one connection, chosen by the child; it names the datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(pub u32);

/// A layer of the stream: video layers `0..=3`, or [`Layer::AUDIO`]. A video layer's number
/// is the origin's encoding index (in order of arrival), not its rank: which is lowest is
/// told by the order of a layer list ([`Message::Layers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layer(u8);

impl Layer {
    /// The audio track.
    pub const AUDIO: Layer = Layer(7);
    /// Video layer 0: the base until a layer list says another is lowest.
    pub const BASE: Layer = Layer(0);
    /// Number of video layers.
    pub const VIDEO_LAYERS: u8 = 4;

    /// A video layer, `None` past the last.
    pub fn video(index: u8) -> Option<Layer> {
        (index < Self::VIDEO_LAYERS).then_some(Layer(index))
    }

    /// Checks a layer from the wire.
    pub fn from_wire(v: u8) -> Result<Layer, WireError> {
        if v < Self::VIDEO_LAYERS || v == Self::AUDIO.0 {
            Ok(Layer(v))
        } else {
            Err(WireError::BadLayer(v))
        }
    }

    /// The number on the wire, also the index into per-layer arrays (`< 8`).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of layers, one bit per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LayerSet(u8);

impl LayerSet {
    /// No layer.
    pub const EMPTY: LayerSet = LayerSet(0);
    const VALID: u8 = 0b1000_1111;

    /// From the wire: bits of unknown layers are an error.
    pub fn from_wire(v: u8) -> Result<LayerSet, WireError> {
        if v & !Self::VALID != 0 {
            return Err(WireError::BadLayerSet(v));
        }
        Ok(LayerSet(v))
    }

    /// From bits known to be ours; unknown layers' bits are cleared.
    pub fn from_bits(v: u8) -> LayerSet {
        LayerSet(v & Self::VALID)
    }

    /// The bits.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// This set with `layer` added.
    pub fn with(self, layer: Layer) -> LayerSet {
        LayerSet(self.0 | 1 << layer.0)
    }

    /// Whether `layer` is in the set.
    pub fn contains(self, layer: Layer) -> bool {
        self.0 & (1 << layer.0) != 0
    }

    /// Union of two sets.
    pub fn union(self, other: LayerSet) -> LayerSet {
        LayerSet(self.0 | other.0)
    }

    /// The layers in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = Layer> {
        (0..8u8).filter(move |i| self.0 & (1 << i) != 0).map(Layer)
    }
}

/// Why a parent refused a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The parent neither has nor can get the stream.
    UnknownStream,
    /// The parent is already in the hop list.
    Loop,
    /// The parent takes no more subscriptions.
    Full,
}

/// A stream's state, sent downward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Media flows.
    Active,
    /// The publisher is gone for now.
    Inactive,
    /// A new publisher (or a new generation of it): numbering restarts, wait for a keyframe.
    PublisherRestart,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// One layer of a track as the parent receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Which layer.
    pub layer: Layer,
    /// The publisher's SSRC for it (forwarded unrewritten).
    pub ssrc: u32,
    /// Measured bitrate, bits per second.
    pub bitrate_bps: u32,
}

/// A track of the stream, in SUBSCRIBED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Audio or video.
    pub kind: TrackKind,
    /// Codec, as the sfu numbers them (opaque here).
    pub codec: u8,
    /// RTP payload type.
    pub payload_type: u8,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Its layers (one for audio or a single-layer video).
    pub layers: Vec<LayerInfo>,
}

/// A control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Child → parent: send me this stream.
    Subscribe {
        /// Stream name.
        stream: String,
        /// Layers wanted now.
        layers: LayerSet,
        /// Nodes this subscription has come through, the child last.
        hops: Vec<NodeId>,
    },
    /// Parent → child: yes, here are the tracks.
    Subscribed {
        /// The stream's tracks.
        tracks: Vec<TrackInfo>,
    },
    /// Parent → child: no.
    Refused {
        /// Why.
        reason: RefuseReason,
    },
    /// Child → parent: the layers wanted changed.
    Update {
        /// Layers wanted now.
        layers: LayerSet,
    },
    /// Child → parent: a keyframe on this layer, please.
    Keyframe {
        /// Which layer.
        layer: Layer,
    },
    /// Child → parent: these packets were lost.
    Nack {
        /// Which layer.
        layer: Layer,
        /// RTP sequence numbers.
        seqs: Vec<u16>,
    },
    /// Parent → child: the stream's state.
    State {
        /// New state.
        state: StreamState,
    },
    /// Parent → child: the video layers the parent has now, flowing or not, with their
    /// measured bitrates: what the child's viewers choose among, so a layer the child let
    /// go can be asked for again.
    Layers {
        /// The layers, lowest-ranked first, at most [`MAX_TRACK_LAYERS`].
        layers: Vec<LayerInfo>,
    },
}

/// Bytes from the remote that are not a valid frame or datagram.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// Protocol version not spoken here.
    #[error("unsupported version {0}")]
    Version(u8),
    /// Frame length past [`MAX_FRAME`] or too short for its header.
    #[error("bad frame length {0}")]
    FrameLength(usize),
    /// Unknown message type.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The body ended early.
    #[error("truncated body")]
    Truncated,
    /// Bytes left after the body.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A list longer than its bound.
    #[error("list of {0} past its bound")]
    TooMany(usize),
    /// Not UTF-8, or too long.
    #[error("bad stream name")]
    BadName,
    /// Unknown enum value.
    #[error("bad value {1} for {0}")]
    BadValue(&'static str, u8),
    /// Layer number out of range.
    #[error("bad layer {0}")]
    BadLayer(u8),
    /// Layer set with unknown bits.
    #[error("bad layer set {0:#x}")]
    BadLayerSet(u8),
    /// Datagram too short or not carrying RTP.
    #[error("bad datagram")]
    BadDatagram,
    /// A well-formed message the other side may not send, or not now.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
}

const T_SUBSCRIBE: u8 = 1;
const T_SUBSCRIBED: u8 = 2;
const T_REFUSED: u8 = 3;
const T_UPDATE: u8 = 4;
const T_KEYFRAME: u8 = 5;
const T_NACK: u8 = 6;
const T_STATE: u8 = 7;
const T_LAYERS: u8 = 8;

impl Message {
    /// The message's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Subscribe { .. } => "SUBSCRIBE",
            Message::Subscribed { .. } => "SUBSCRIBED",
            Message::Refused { .. } => "REFUSED",
            Message::Update { .. } => "UPDATE",
            Message::Keyframe { .. } => "KEYFRAME",
            Message::Nack { .. } => "NACK",
            Message::State { .. } => "STATE",
            Message::Layers { .. } => "LAYERS",
        }
    }

    /// Appends the framed message to `out`. Lists past their bounds are cut to them (a local
    /// caller's mistake must not produce a frame the peer refuses).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0, 0, VERSION]);
        match self {
            Message::Subscribe {
                stream,
                layers,
                hops,
            } => {
                out.push(T_SUBSCRIBE);
                let name = truncate_utf8(stream, MAX_STREAM_NAME);
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                out.push(layers.0);
                let hops = &hops[..hops.len().min(MAX_HOPS)];
                out.push(hops.len() as u8);
                for h in hops {
                    out.extend_from_slice(&h.0.to_be_bytes());
                }
            }
            Message::Subscribed { tracks } => {
                out.push(T_SUBSCRIBED);
                let tracks = &tracks[..tracks.len().min(MAX_TRACKS)];
                out.push(tracks.len() as u8);
                for t in tracks {
                    out.push(match t.kind {
                        TrackKind::Audio => 0,
                        TrackKind::Video => 1,
                    });
                    out.extend_from_slice(&[t.codec, t.payload_type]);
                    out.extend_from_slice(&t.clock_rate.to_be_bytes());
                    encode_layers(&t.layers, out);
                }
            }
            Message::Refused { reason } => {
                out.push(T_REFUSED);
                out.push(match reason {
                    RefuseReason::UnknownStream => 0,
                    RefuseReason::Loop => 1,
                    RefuseReason::Full => 2,
                });
            }
            Message::Update { layers } => out.extend_from_slice(&[T_UPDATE, layers.0]),
            Message::Keyframe { layer } => out.extend_from_slice(&[T_KEYFRAME, layer.0]),
            Message::Nack { layer, seqs } => {
                out.extend_from_slice(&[T_NACK, layer.0]);
                let seqs = &seqs[..seqs.len().min(MAX_NACK)];
                out.push(seqs.len() as u8);
                for s in seqs {
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
            Message::State { state } => {
                out.push(T_STATE);
                out.push(match state {
                    StreamState::Active => 0,
                    StreamState::Inactive => 1,
                    StreamState::PublisherRestart => 2,
                });
            }
            Message::Layers { layers } => {
                out.push(T_LAYERS);
                encode_layers(layers, out);
            }
        }
        // Bounded above: the largest message (8 tracks of 4 layers) is under 500 bytes.
        let len = (out.len() - start - 2) as u16;
        out[start..start + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// Decodes one frame from the front of `buf`: `Ok(None)` until the whole frame is there,
    /// else the message and the bytes it took.
    pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
        let Some(len) = buf.get(..2) else {
            return Ok(None);
        };
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        if !(2..=MAX_FRAME).contains(&len) {
            return Err(WireError::FrameLength(len));
        }
        let Some(frame) = buf.get(2..2 + len) else {
            return Ok(None);
        };
        if frame[0] != VERSION {
            return Err(WireError::Version(frame[0]));
        }
        let mut r = Reader(&frame[2..]);
        let msg = match frame[1] {
            T_SUBSCRIBE => {
                let n = r.u8()? as usize;
                if n > MAX_STREAM_NAME {
                    return Err(WireError::BadName);
                }
                let stream = std::str::from_utf8(r.take(n)?)
                    .map_err(|_| WireError::BadName)?
                    .to_owned();
                let layers = LayerSet::from_wire(r.u8()?)?;
                let n = r.count(MAX_HOPS)?;
                let mut hops = Vec::with_capacity(n);
                for _ in 0..n {
                    hops.push(NodeId(r.u64()?));
                }
                Message::Subscribe {
                    stream,
                    layers,
                    hops,
                }
            }
            T_SUBSCRIBED => {
                let n = r.count(MAX_TRACKS)?;
                let mut tracks = Vec::with_capacity(n);
                for _ in 0..n {
                    let kind = match r.u8()? {
                        0 => TrackKind::Audio,
                        1 => TrackKind::Video,
                        v => return Err(WireError::BadValue("track kind", v)),
                    };
                    let codec = r.u8()?;
                    let payload_type = r.u8()?;
                    let clock_rate = r.u32()?;
                    let layers = decode_layers(&mut r)?;
                    tracks.push(TrackInfo {
                        kind,
                        codec,
                        payload_type,
                        clock_rate,
                        layers,
                    });
                }
                Message::Subscribed { tracks }
            }
            T_REFUSED => Message::Refused {
                reason: match r.u8()? {
                    0 => RefuseReason::UnknownStream,
                    1 => RefuseReason::Loop,
                    2 => RefuseReason::Full,
                    v => return Err(WireError::BadValue("refuse reason", v)),
                },
            },
            T_UPDATE => Message::Update {
                layers: LayerSet::from_wire(r.u8()?)?,
            },
            T_KEYFRAME => Message::Keyframe {
                layer: Layer::from_wire(r.u8()?)?,
            },
            T_NACK => {
                let layer = Layer::from_wire(r.u8()?)?;
                let n = r.count(MAX_NACK)?;
                let mut seqs = Vec::with_capacity(n);
                for _ in 0..n {
                    seqs.push(r.u16()?);
                }
                Message::Nack { layer, seqs }
            }
            T_STATE => Message::State {
                state: match r.u8()? {
                    0 => StreamState::Active,
                    1 => StreamState::Inactive,
                    2 => StreamState::PublisherRestart,
                    v => return Err(WireError::BadValue("stream state", v)),
                },
            },
            T_LAYERS => Message::Layers {
                layers: decode_layers(&mut r)?,
            },
            t => return Err(WireError::UnknownType(t)),
        };
        if !r.0.is_empty() {
            return Err(WireError::Trailing(r.0.len()));
        }
        Ok(Some((msg, 2 + len)))
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn count(&mut self, max: usize) -> Result<usize, WireError> {
        let n = self.u8()? as usize;
        if n > max {
            return Err(WireError::TooMany(n));
        }
        Ok(n)
    }
}

/// A list of layers: count, then layer, SSRC and bitrate each; cut to its bound.
fn encode_layers(layers: &[LayerInfo], out: &mut Vec<u8>) {
    let layers = &layers[..layers.len().min(MAX_TRACK_LAYERS)];
    out.push(layers.len() as u8);
    for l in layers {
        out.push(l.layer.0);
        out.extend_from_slice(&l.ssrc.to_be_bytes());
        out.extend_from_slice(&l.bitrate_bps.to_be_bytes());
    }
}

fn decode_layers(r: &mut Reader<'_>) -> Result<Vec<LayerInfo>, WireError> {
    let m = r.count(MAX_TRACK_LAYERS)?;
    let mut layers = Vec::with_capacity(m);
    for _ in 0..m {
        layers.push(LayerInfo {
            layer: Layer::from_wire(r.u8()?)?,
            ssrc: r.u32()?,
            bitrate_bps: r.u32()?,
        });
    }
    Ok(layers)
}

/// The header in front of an RTP packet in a media datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramHeader {
    /// The subscription the packet belongs to.
    pub sub: SubId,
    /// Its layer.
    pub layer: Layer,
    /// The packet starts a keyframe (the parent parsed it once; the child need not).
    pub keyframe: bool,
}

impl DatagramHeader {
    /// Appends header and packet to `out`.
    pub fn encode(&self, rtp: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sub.0.to_be_bytes());
        out.push(self.layer.0);
        out.push(self.keyframe as u8);
        out.extend_from_slice(rtp);
    }

    /// Splits a datagram into header, RTP sequence number and the RTP packet.
    pub fn decode(buf: &[u8]) -> Result<(DatagramHeader, u16, &[u8]), WireError> {
        if buf.len() < DATAGRAM_HEADER + 12 {
            return Err(WireError::BadDatagram);
        }
        let sub = SubId(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        let layer = Layer::from_wire(buf[4])?;
        if buf[5] & !1 != 0 {
            return Err(WireError::BadValue("datagram flags", buf[5]));
        }
        let rtp = &buf[DATAGRAM_HEADER..];
        if rtp[0] >> 6 != 2 {
            return Err(WireError::BadDatagram);
        }
        let seq = u16::from_be_bytes([rtp[2], rtp[3]]);
        let h = DatagramHeader {
            sub,
            layer,
            keyframe: buf[5] & 1 == 1,
        };
        Ok((h, seq, rtp))
    }
}

/// The RTP sequence number of a packet, if it looks like RTP.
pub fn rtp_seq(rtp: &[u8]) -> Option<u16> {
    (rtp.len() >= 12 && rtp[0] >> 6 == 2).then(|| u16::from_be_bytes([rtp[2], rtp[3]]))
}

/// The SSRC of a packet, if it looks like RTP: whose numbering its sequence number is in
/// (a Cascade node writes the upstream publisher's generation there).
pub fn rtp_ssrc(rtp: &[u8]) -> Option<u32> {
    (rtp.len() >= 12 && rtp[0] >> 6 == 2)
        .then(|| u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small seeded generator (xorshift64*), so the tests need no `rand`.
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    fn samples() -> Vec<Message> {
        vec![
            Message::Subscribe {
                stream: "live/é-cam".into(),
                layers: LayerSet::EMPTY.with(Layer::AUDIO).with(Layer::BASE),
                hops: vec![NodeId(1), NodeId(u64::MAX)],
            },
            Message::Subscribed {
                tracks: vec![
                    TrackInfo {
                        kind: TrackKind::Audio,
                        codec: 1,
                        payload_type: 111,
                        clock_rate: 48_000,
                        layers: vec![LayerInfo {
                            layer: Layer::AUDIO,
                            ssrc: 7,
                            bitrate_bps: 32_000,
                        }],
                    },
                    TrackInfo {
                        kind: TrackKind::Video,
                        codec: 2,
                        payload_type: 96,
                        clock_rate: 90_000,
                        layers: (0..3)
                            .map(|i| LayerInfo {
                                layer: Layer::video(i).unwrap(),
                                ssrc: 100 + i as u32,
                                bitrate_bps: 150_000 << i,
                            })
                            .collect(),
                    },
                ],
            },
            Message::Refused {
                reason: RefuseReason::Loop,
            },
            Message::Update {
                layers: LayerSet::from_wire(0x83).unwrap(),
            },
            Message::Keyframe {
                layer: Layer::video(2).unwrap(),
            },
            Message::Nack {
                layer: Layer::BASE,
                seqs: vec![0, 65535, 12],
            },
            Message::State {
                state: StreamState::PublisherRestart,
            },
            Message::Layers {
                layers: (0..2)
                    .map(|i| LayerInfo {
                        layer: Layer::video(i).unwrap(),
                        ssrc: 0,
                        bitrate_bps: 300_000 << i,
                    })
                    .collect(),
            },
            Message::Layers { layers: vec![] },
        ]
    }

    #[test]
    fn every_message_round_trips_and_frames_concatenate() {
        let mut buf = Vec::new();
        for m in samples() {
            m.encode(&mut buf);
        }
        let mut at = 0;
        for m in samples() {
            let (got, used) = Message::decode(&buf[at..]).unwrap().unwrap();
            assert_eq!(got, m);
            at += used;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut buf = Vec::new();
        samples()[1].encode(&mut buf);
        for cut in 0..buf.len() {
            assert_eq!(Message::decode(&buf[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn bounds_and_versions_are_checked() {
        assert_eq!(
            Message::decode(&[0xff, 0xff]),
            Err(WireError::FrameLength(0xffff))
        );
        assert_eq!(
            Message::decode(&[0, 3, 9, T_UPDATE, 1]),
            Err(WireError::Version(9))
        );
        assert_eq!(
            Message::decode(&[0, 3, VERSION, T_UPDATE, 0x10]),
            Err(WireError::BadLayerSet(0x10))
        );
        assert_eq!(
            Message::decode(&[0, 4, VERSION, T_UPDATE, 1, 0]),
            Err(WireError::Trailing(1))
        );
        assert_eq!(
            Message::decode(&[0, 4, VERSION, T_NACK, 0, 200]),
            Err(WireError::TooMany(200))
        );
        // Encoding cuts an over-long list to its bound rather than emit a refused frame.
        let mut buf = Vec::new();
        Message::Nack {
            layer: Layer::BASE,
            seqs: (0..500).collect(),
        }
        .encode(&mut buf);
        let (m, _) = Message::decode(&buf).unwrap().unwrap();
        assert!(matches!(m, Message::Nack { seqs, .. } if seqs.len() == MAX_NACK));
    }

    #[test]
    fn random_bytes_never_panic_the_decoders() {
        let mut rng = Rng(0x5eed_0001);
        let mut valid = Vec::new();
        for m in samples() {
            m.encode(&mut valid);
        }
        for round in 0..50_000 {
            let len = (rng.next() % 96) as usize;
            let mut buf: Vec<u8> = if round % 2 == 0 {
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                // Mutated valid frames reach deeper into the decoder than pure noise.
                let mut b = valid.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % b.len();
                    b[i] = rng.next() as u8;
                }
                b
            };
            if round % 3 == 0 && buf.len() >= 2 {
                // A plausible length prefix, so the body is decoded rather than waited for.
                let l = (buf.len() - 2) as u16;
                buf[..2].copy_from_slice(&l.to_be_bytes());
            }
            let mut at = 0;
            while let Ok(Some((_, used))) = Message::decode(&buf[at..]) {
                at += used;
            }
            let _ = DatagramHeader::decode(&buf);
        }
    }

    #[test]
    fn datagram_round_trips() {
        let mut rtp = vec![0x80, 96, 0x12, 0x34];
        rtp.extend_from_slice(&[0; 8]);
        rtp.extend_from_slice(b"payload");
        let h = DatagramHeader {
            sub: SubId(9),
            layer: Layer::video(1).unwrap(),
            keyframe: true,
        };
        let mut buf = Vec::new();
        h.encode(&rtp, &mut buf);
        assert_eq!(buf.len(), DATAGRAM_HEADER + rtp.len());
        let (got, seq, body) = DatagramHeader::decode(&buf).unwrap();
        assert_eq!((got, seq, body), (h, 0x1234, &rtp[..]));
        assert_eq!(
            DatagramHeader::decode(&buf[..10]),
            Err(WireError::BadDatagram)
        );
        buf[4] = 5;
        assert_eq!(DatagramHeader::decode(&buf), Err(WireError::BadLayer(5)));
    }
}

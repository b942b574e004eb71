//! A stream's source, whatever brings it in: a WHIP session today, a relay link later.
//!
//! The Producer holds what every source needs and nothing of its transport: the
//! generation that tells a restarted publisher's packets apart, the ranking of its simulcast
//! encodings ([`LayerRanker`]), the keyframe request throttle ([`KeyframeThrottle`]) and, per
//! video encoding, the handle `H` its transport asks that encoding through (a WebRTC
//! session's `(mid, rid)`, a relay link's layer). Its owner parses packets; the Producer
//! numbers them, ranks them and decides whether a keyframe request may go upstream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layers::{EncodingInfo, LayerRanker, LayerTable};
use super::throttle::KeyframeThrottle;
use super::SourceKey;

/// One source's numbering, ranking and keyframe throttle.
#[derive(Debug)]
pub struct Producer<H> {
    generation: u32,
    ranker: LayerRanker,
    throttle: KeyframeThrottle,
    /// Per video encoding, in encoding order: how to ask it for a keyframe.
    upstream: Vec<H>,
    layers_changed: bool,
    /// A ranked list was reported last (not yet forgotten).
    reported: bool,
}

impl<H: Clone> Producer<H> {
    /// A source numbered `generation` (unique per publisher session), letting at most one
    /// keyframe request per layer through each `throttle` window.
    pub fn new(generation: u32, throttle: Duration) -> Self {
        Producer {
            generation,
            ranker: LayerRanker::new(generation),
            throttle: KeyframeThrottle::new(throttle),
            upstream: Vec::new(),
            layers_changed: false,
            reported: false,
        }
    }

    /// The same source under a new `generation` (a relay link moved to another parent):
    /// its encodings, handles and layer ranking stay; its keyframe requests start afresh.
    pub fn renumber(&mut self, generation: u32) {
        self.generation = generation;
        self.ranker.renumber(generation);
        self.throttle.reset();
        self.layers_changed = true;
    }

    /// Ranks only by an upstream node's lists ([`LayerRanker::set_listed_only`]).
    pub fn set_listed_only(&mut self) {
        self.ranker.set_listed_only();
    }

    /// The upstream node no longer knows the layers ([`LayerRanker::forget`]); the empty
    /// list is reported, so this node's own children forget them too.
    pub fn forget_layers(&mut self) {
        self.ranker.forget();
        self.layers_changed = true;
    }

    /// The layers as an upstream node has them (encoding, bitrate), which make the table
    /// from now on (see [`LayerRanker::set_known`]).
    pub fn set_known_layers(&mut self, now: Instant, layers: &[(u8, u64)]) {
        self.layers_changed |= self.ranker.set_known(now, layers);
    }

    /// Unique per publisher session.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The key of `encoding` of this source.
    pub fn source(&self, encoding: u8) -> SourceKey {
        SourceKey {
            generation: self.generation,
            encoding,
        }
    }

    /// The encoding index of the video encoding `rid`, registering it (and the handle it
    /// is asked through) on first sight; `None` past [`LayerRanker::MAX_ENCODINGS`].
    pub fn video_encoding(&mut self, rid: Option<&str>, handle: impl FnOnce() -> H) -> Option<u8> {
        let encoding = self.ranker.encoding_for(rid)?;
        if usize::from(encoding) == self.upstream.len() {
            self.upstream.push(handle());
        }
        Some(encoding)
    }

    /// Counts a video packet of `encoding` (`bytes` of payload, a keyframe start or not,
    /// its temporal layer if it has one); returns the layer table it belongs to.
    pub fn on_video(
        &mut self,
        now: Instant,
        encoding: u8,
        bytes: usize,
        keyframe: bool,
        tid: Option<u8>,
    ) -> Arc<LayerTable> {
        if keyframe {
            self.throttle.keyframe_seen(usize::from(encoding), now);
        }
        let before = Arc::as_ptr(self.ranker.table());
        let table = self.ranker.on_packet(now, encoding, bytes, tid).clone();
        self.layers_changed |= !std::ptr::eq(before, Arc::as_ptr(&table));
        table
    }

    /// Whether a keyframe of `encoding` may be asked for now: the handle to ask it through,
    /// or `None` for an unknown encoding or a throttled request.
    pub fn request_keyframe(&mut self, encoding: u8, now: Instant) -> Option<H> {
        let handle = self.upstream.get(usize::from(encoding))?.clone();
        self.throttle
            .allow(usize::from(encoding), now)
            .then_some(handle)
    }

    /// Re-ranks the layers; returns them when they changed since the last call, once they
    /// are ranked. Before the first ranking the order is only the order of arrival, and a
    /// relay child takes a parent's list as its ranking: a viewer there that asked for the
    /// lowest layer would get the first to arrive.
    /// A ranked list reported and then forgotten is reported once as empty (unknown).
    pub fn poll_layers(&mut self, now: Instant) -> Option<Vec<EncodingInfo>> {
        let changed = self.ranker.handle_timeout(now) | std::mem::take(&mut self.layers_changed);
        let table = self.ranker.table();
        if !changed {
            return None;
        }
        if table.settled {
            self.reported = true;
            return Some(table.active.clone());
        }
        std::mem::take(&mut self.reported).then(Vec::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn encodings_are_numbered_once_with_their_handles() {
        let mut p: Producer<&str> = Producer::new(9, Duration::from_millis(100));
        assert_eq!(p.video_encoding(Some("h"), || "mid0/h"), Some(0));
        assert_eq!(p.video_encoding(Some("l"), || "mid0/l"), Some(1));
        // Seen again: the same number, the first handle kept.
        assert_eq!(p.video_encoding(Some("h"), || "other"), Some(0));
        let t0 = Instant::now();
        assert_eq!(p.request_keyframe(1, t0), Some("mid0/l"));
        assert_eq!(p.request_keyframe(0, t0), Some("mid0/h"));
        assert_eq!(p.request_keyframe(2, t0), None, "unknown encoding");
        assert_eq!(
            p.source(1),
            SourceKey {
                generation: 9,
                encoding: 1
            }
        );
        for i in 0..LayerRanker::MAX_ENCODINGS {
            p.video_encoding(Some(&format!("x{i}")), || "x");
        }
        assert_eq!(p.video_encoding(Some("late"), || "late"), None, "bounded");
    }

    #[test]
    fn keyframe_requests_are_throttled_and_answered_by_keyframes() {
        let t0 = Instant::now();
        let mut p: Producer<u8> = Producer::new(1, Duration::from_millis(100));
        let e = p.video_encoding(None, || 7).unwrap();
        assert_eq!(p.request_keyframe(e, t0), Some(7));
        assert_eq!(p.request_keyframe(e, ms(t0, 50)), None, "in the window");
        assert_eq!(
            p.request_keyframe(e, ms(t0, 200)),
            None,
            "still outstanding"
        );
        p.on_video(ms(t0, 210), e, 1000, true, None);
        // Answered; the encoder's hold-off after that keyframe still applies.
        assert_eq!(p.request_keyframe(e, ms(t0, 400)), None);
        assert_eq!(p.request_keyframe(e, ms(t0, 520)), Some(7));
    }

    #[test]
    fn layers_are_reported_once_ranked_and_when_they_change() {
        let t0 = Instant::now();
        let mut p: Producer<()> = Producer::new(3, Duration::from_millis(100));
        // The top layer arrives first: unranked, it would be listed lowest.
        let hi = p.video_encoding(Some("h"), || ()).unwrap();
        let lo = p.video_encoding(Some("l"), || ()).unwrap();
        let table = p.on_video(t0, hi, 1000, true, None);
        assert_eq!(table.generation, 3);
        p.on_video(t0, lo, 100, true, None);
        assert_eq!(p.on_video(t0, lo, 100, false, None).active[0].encoding, hi);
        assert!(p.poll_layers(t0).is_none(), "not ranked yet");
        for i in 1..30 {
            p.on_video(ms(t0, i * 10), lo, 100, false, None);
            p.on_video(ms(t0, i * 10), hi, 1000, false, None);
        }
        let layers = p.poll_layers(ms(t0, 300)).expect("first ranking");
        let order: Vec<u8> = layers.iter().map(|e| e.encoding).collect();
        assert_eq!(order, [lo, hi]);
        assert!(p.poll_layers(ms(t0, 300)).is_none(), "reported once");
        // The top layer stops: the change is reported.
        for i in 30..250 {
            p.on_video(ms(t0, i * 10), lo, 100, false, None);
        }
        let layers = p.poll_layers(ms(t0, 2500)).expect("a layer went");
        assert_eq!(layers.iter().map(|e| e.encoding).collect::<Vec<_>>(), [lo]);
    }
}

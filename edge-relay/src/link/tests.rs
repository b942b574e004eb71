//! A parent core and a child core on a virtual clock, joined by a seeded lossy link: control
//! bytes arrive reliably and in order (a QUIC stream), datagrams are lost at random.

use std::collections::{BTreeSet, VecDeque};

use super::*;
use crate::wire::tests::Rng;
use crate::wire::{rtp_seq, DatagramHeader, SubId, TrackKind, MAX_NACK};

const LATENCY: Duration = Duration::from_millis(20);

enum Item {
    Control(Vec<u8>),
    Datagram(Bytes),
}

struct Pair {
    now: Instant,
    parent: ParentLink,
    child: ChildLink,
    loss_percent: u64,
    rng: Rng,
    to_parent: VecDeque<(Instant, Vec<u8>)>,
    to_child: VecDeque<(Instant, Item)>,
    parent_events: Vec<(Instant, Event)>,
    child_events: Vec<(Instant, Event)>,
    parent_timeout: Instant,
    child_timeout: Instant,
    lost: u64,
}

fn tracks() -> Vec<TrackInfo> {
    vec![TrackInfo {
        kind: TrackKind::Video,
        codec: 1,
        payload_type: 96,
        clock_rate: 90_000,
        layers: vec![],
    }]
}

fn layers(ls: &[Layer]) -> LayerSet {
    ls.iter().fold(LayerSet::EMPTY, |s, l| s.with(*l))
}

fn l1() -> Layer {
    Layer::video(1).unwrap()
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[0xab; 100]);
    p
}

/// A packet of the numbering `ssrc` (a publisher generation).
fn rtp_of(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = rtp(seq);
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

impl Pair {
    fn new(hops: Vec<NodeId>, wanted: LayerSet, loss_percent: u64) -> Pair {
        let now = Instant::now();
        let cfg = LinkConfig::default();
        Pair {
            now,
            parent: ParentLink::new(cfg.clone(), now, NodeId(2), SubId(1)),
            child: ChildLink::new(cfg, now, SubId(1), "cam", wanted, hops),
            loss_percent,
            rng: Rng(42),
            to_parent: VecDeque::new(),
            to_child: VecDeque::new(),
            parent_events: Vec::new(),
            child_events: Vec::new(),
            parent_timeout: now,
            child_timeout: now,
            lost: 0,
        }
    }

    /// Drains both cores; the parent's node accepts every subscription.
    fn drain(&mut self) {
        loop {
            match self.parent.poll_output() {
                Output::Transmit(Transmit::Control(b)) => self
                    .to_child
                    .push_back((self.now + LATENCY, Item::Control(b))),
                Output::Transmit(Transmit::Datagram { data, .. }) => {
                    if self.rng.next() % 100 < self.loss_percent {
                        self.lost += 1;
                    } else {
                        self.to_child
                            .push_back((self.now + LATENCY, Item::Datagram(data)));
                    }
                }
                Output::Event(e) => {
                    if matches!(e, Event::SubscribeRequested { .. }) {
                        self.parent.accept(self.now, tracks());
                    }
                    self.parent_events.push((self.now, e));
                }
                Output::Timeout(t) => {
                    self.parent_timeout = t;
                    break;
                }
            }
        }
        loop {
            match self.child.poll_output() {
                Output::Transmit(Transmit::Control(b)) => {
                    self.to_parent.push_back((self.now + LATENCY, b))
                }
                Output::Transmit(Transmit::Datagram { .. }) => panic!("a child sends no media"),
                Output::Event(e) => self.child_events.push((self.now, e)),
                Output::Timeout(t) => {
                    self.child_timeout = t;
                    break;
                }
            }
        }
    }

    /// Advances to whatever is due first, a timer or an arrival, but not past `end`.
    fn progress(&mut self, end: Instant) {
        self.drain();
        let next = [
            Some(self.parent_timeout),
            Some(self.child_timeout),
            self.to_parent.front().map(|x| x.0),
            self.to_child.front().map(|x| x.0),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap();
        if next > end {
            self.now = end;
            return;
        }
        self.now = self.now.max(next);
        while self.to_parent.front().is_some_and(|x| x.0 <= self.now) {
            let (_, b) = self.to_parent.pop_front().unwrap();
            self.parent.handle_control(self.now, &b);
        }
        while self.to_child.front().is_some_and(|x| x.0 <= self.now) {
            match self.to_child.pop_front().unwrap().1 {
                Item::Control(b) => self.child.handle_control(self.now, &b),
                Item::Datagram(d) => self.child.handle_datagram(self.now, d),
            }
        }
        if self.parent_timeout <= self.now {
            self.parent.handle_timeout(self.now);
        }
        if self.child_timeout <= self.now {
            self.child.handle_timeout(self.now);
        }
        self.drain();
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            if self.now >= end {
                return;
            }
            self.progress(end);
        }
        panic!("no progress");
    }

    fn parent_saw(&self, f: impl Fn(&Event) -> bool) -> Vec<Instant> {
        self.parent_events
            .iter()
            .filter(|(_, e)| f(e))
            .map(|(t, _)| *t)
            .collect()
    }

    fn received(&self, layer: Layer) -> BTreeSet<u16> {
        self.child_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Media { layer: l, rtp, .. } if *l == layer => rtp_seq(rtp),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn lost_packets_are_repaired_by_nack_from_the_parent_cache() {
    let mut p = Pair::new(vec![NodeId(1)], layers(&[Layer::BASE]), 10);
    p.run_for(Duration::from_millis(100));
    assert!(matches!(p.child_events[0].1, Event::Subscribed(_)));
    for seq in 0..300u16 {
        let now = p.now;
        assert!(p.parent.handle_media(now, Layer::BASE, seq == 0, &rtp(seq)));
        p.run_for(Duration::from_millis(10));
    }
    p.run_for(Duration::from_millis(500));
    assert!(p.lost > 20, "the link lost {} datagrams", p.lost);
    let got = p.received(Layer::BASE);
    // Only a loss after the last packet delivered cannot be seen.
    let last = *got.last().unwrap();
    assert!(last >= 295);
    // A loss of the very first packet cannot be seen either: nothing came before it.
    let first = *got.first().unwrap();
    assert!(first <= 5);
    assert_eq!(got, (first..=last).collect(), "holes left after repair");
    let (repaired, unrepairable) = p.parent.repairs();
    assert!(
        repaired >= 20 && unrepairable == 0,
        "{repaired} {unrepairable}"
    );
}

#[test]
fn many_keyframe_requests_become_one_per_window() {
    let mut p = Pair::new(vec![NodeId(1)], layers(&[Layer::BASE, l1()]), 0);
    p.run_for(Duration::from_millis(100));
    // 50 viewers ask within 100 ms; the parent's source answers with a keyframe at once.
    for _ in 0..50 {
        let now = p.now;
        p.child.handle_keyframe_request(now, l1());
        p.run_for(Duration::from_millis(2));
        let asked = p.parent_saw(|e| *e == Event::KeyframeWanted(l1())).len();
        let now = p.now;
        p.parent.handle_media(now, l1(), asked > 0, &rtp(0));
    }
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.parent_saw(|e| *e == Event::KeyframeWanted(l1())).len(), 1);

    // No keyframe comes: requests in the window fold into one more at its end.
    let start = p.now;
    for _ in 0..20 {
        let now = p.now;
        p.child.handle_keyframe_request(now, l1());
        p.run_for(Duration::from_millis(10));
    }
    p.run_for(Duration::from_secs(2));
    let times = p.parent_saw(|e| *e == Event::KeyframeWanted(l1()));
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(times[2] - times[1] >= LinkConfig::default().keyframe_throttle);
    assert!(times[1] < start + Duration::from_millis(50));
    // A layer not subscribed asks nothing.
    let now = p.now;
    p.child
        .handle_keyframe_request(now, Layer::video(3).unwrap());
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.parent_events.len(), 1 + 3);
}

#[test]
fn layers_are_pulled_at_once_and_released_after_grace() {
    let base = layers(&[Layer::AUDIO, Layer::BASE]);
    let more = base.with(l1());
    let grace = LinkConfig::default().release_grace;
    let mut p = Pair::new(vec![NodeId(1)], base, 0);
    p.run_for(Duration::from_millis(100));

    let t0 = p.now;
    p.child.handle_want(t0, more);
    p.run_for(Duration::from_millis(100));
    let pulled = p.parent_saw(|e| *e == Event::LayersWanted(more));
    assert_eq!(pulled, [t0 + LATENCY]);

    // Let go, then want again inside the grace: nothing is released.
    let t1 = p.now;
    p.child.handle_want(t1, base);
    p.run_for(grace / 2);
    let now = p.now;
    p.child.handle_want(now, more);
    p.run_for(grace * 2);
    assert!(p.parent_saw(|e| *e == Event::LayersWanted(base)).is_empty());

    // Let go for good: released one grace later, and L1's packets stop.
    let t2 = p.now;
    p.child.handle_want(t2, base);
    p.run_for(grace / 2);
    let now = p.now;
    assert!(p.parent.handle_media(now, l1(), true, &rtp(1)));
    p.run_for(grace);
    let released = p.parent_saw(|e| *e == Event::LayersWanted(base));
    assert_eq!(released.len(), 1);
    assert!(released[0] >= t2 + grace && released[0] <= t2 + grace + LATENCY * 2);
    let now = p.now;
    assert!(!p.parent.handle_media(now, l1(), true, &rtp(2)));
    assert_eq!(p.child.requested(), base);
}

#[test]
fn a_loop_is_refused_by_the_node_in_the_hop_list() {
    // Node 2 (the parent) already carries this subscription further down.
    let mut p = Pair::new(vec![NodeId(5), NodeId(2), NodeId(1)], LayerSet::EMPTY, 0);
    p.run_for(Duration::from_millis(200));
    let child: Vec<&Event> = p.child_events.iter().map(|(_, e)| e).collect();
    assert_eq!(child, [&Event::Refused(RefuseReason::Loop)]);
    assert!(p
        .parent_saw(|e| matches!(e, Event::SubscribeRequested { .. }))
        .is_empty());
    let now = p.now;
    assert!(!p.parent.handle_media(now, Layer::BASE, true, &rtp(0)));
}

#[test]
fn stream_state_goes_down_and_a_restart_forgets_old_holes() {
    let mut p = Pair::new(vec![NodeId(1)], layers(&[Layer::BASE]), 0);
    p.run_for(Duration::from_millis(100));
    let now = p.now;
    p.parent.handle_media(now, Layer::BASE, true, &rtp(100));
    p.run_for(Duration::from_millis(50));
    let now = p.now;
    p.parent.handle_state(now, StreamState::PublisherRestart);
    p.parent.handle_media(now, Layer::BASE, true, &rtp(5));
    p.run_for(Duration::from_millis(500));
    assert!(p
        .child_events
        .iter()
        .any(|(_, e)| *e == Event::State(StreamState::PublisherRestart)));
    // Sequence 5 after 100 is a new publisher, not a 65 000-packet hole: no NACK went up.
    assert_eq!(p.parent.repairs(), (0, 0));
    assert_eq!(p.received(Layer::BASE), [5, 100].into());
}

/// The sequence numbers a child NACKs in what it has to send now.
fn nacked(child: &mut ChildLink, rx: &mut ControlRx) -> Vec<u16> {
    let mut msgs = Vec::new();
    loop {
        match child.poll_output() {
            Output::Transmit(Transmit::Control(b)) => rx.feed(&b, &mut msgs).unwrap(),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    msgs.into_iter()
        .flat_map(|m| match m {
            Message::Nack { seqs, .. } => seqs,
            _ => Vec::new(),
        })
        .collect()
}

/// A publisher restart the parent did not tell (nothing sends PUBLISHER_RESTART, and a move
/// upstream of a mid-tier parent is not one it sees): the new SSRC on a layer starts its
/// numbering anew, so the holes of a new sequence "behind" the old one are NACKed too.
#[test]
fn a_new_ssrc_on_a_layer_restarts_its_numbering() {
    let now = Instant::now();
    let base = layers(&[Layer::BASE]);
    let mut child = ChildLink::new(LinkConfig::default(), now, SubId(1), "cam", base, vec![]);
    let mut bytes = Vec::new();
    Message::Subscribed { tracks: tracks() }.encode(&mut bytes);
    child.handle_control(now, &bytes);
    let mut rx = ControlRx::default();
    let mut send = |child: &mut ChildLink, ssrc: u32, seq: u16| {
        let mut d = Vec::new();
        let h = DatagramHeader {
            sub: SubId(1),
            layer: Layer::BASE,
            keyframe: false,
        };
        h.encode(&rtp_of(ssrc, seq), &mut d);
        child.handle_datagram(now, Bytes::from(d));
        nacked(child, &mut rx)
    };
    for seq in 1000..=1010 {
        assert!(send(&mut child, 7, seq).is_empty(), "no hole");
    }
    assert!(send(&mut child, 8, 100).is_empty());
    assert_eq!(send(&mut child, 8, 102), [101]);
    // A late packet of the publisher before changes nothing.
    assert!(send(&mut child, 7, 1011).is_empty());
    assert_eq!(send(&mut child, 8, 104), [103]);
}

/// After a publisher restart, a NACK of a packet the link lost is not answered with the
/// packet of the same number of the publisher before (still in the parent's cache), which
/// the child's node would take for the old publisher back.
#[test]
fn a_nack_after_a_restart_is_not_answered_with_the_old_publishers_packet() {
    let mut p = Pair::new(vec![NodeId(1)], layers(&[Layer::BASE]), 0);
    p.run_for(Duration::from_millis(100));
    let now = p.now;
    p.parent
        .handle_media(now, Layer::BASE, true, &rtp_of(7, 101));
    p.run_for(Duration::from_millis(50));
    let now = p.now;
    p.parent
        .handle_media(now, Layer::BASE, true, &rtp_of(8, 100));
    // Its 101 is lost on the way.
    p.parent
        .handle_media(now, Layer::BASE, false, &rtp_of(8, 102));
    p.run_for(Duration::from_millis(500));
    let ssrcs: Vec<u32> = p
        .child_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Media { rtp, .. } => crate::wire::rtp_ssrc(rtp),
            _ => None,
        })
        .collect();
    assert_eq!(
        ssrcs,
        [7, 8, 8],
        "nothing of the old publisher after the new one's"
    );
    // The child asked (its tries), and nothing was there to answer.
    let (repaired, unrepairable) = p.parent.repairs();
    assert_eq!(repaired, 0);
    assert!(unrepairable > 0);
}

#[test]
fn garbage_on_the_control_stream_ends_the_subscription_without_panic() {
    let mut rng = Rng(7);
    for round in 0..2_000 {
        let now = Instant::now();
        let mut parent = ParentLink::new(LinkConfig::default(), now, NodeId(2), SubId(1));
        let mut child = ChildLink::new(
            LinkConfig::default(),
            now,
            SubId(1),
            "cam",
            LayerSet::EMPTY,
            vec![],
        );
        let len = (rng.next() % 64) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && junk.len() >= 4 {
            junk[..4].copy_from_slice(&[0, (len - 2) as u8, crate::wire::VERSION, 6]);
        }
        parent.handle_control(now, &junk);
        child.handle_control(now, &junk);
        child.handle_datagram(now, Bytes::from(junk));
        while !matches!(parent.poll_output(), Output::Timeout(_)) {}
        while !matches!(child.poll_output(), Output::Timeout(_)) {}
    }
}

#[test]
fn a_message_out_of_place_is_a_protocol_error() {
    let mut p = Pair::new(vec![NodeId(1)], layers(&[Layer::BASE]), 0);
    p.run_for(Duration::from_millis(100));
    let mut bytes = Vec::new();
    Message::Subscribed { tracks: vec![] }.encode(&mut bytes);
    let now = p.now;
    p.parent.handle_control(now, &bytes);
    p.child.handle_control(now, &bytes);
    p.drain();
    let err = Event::ProtocolError(WireError::Unexpected("SUBSCRIBED"));
    assert_eq!(p.parent_events.last().unwrap().1, err);
    assert_eq!(p.child_events.last().unwrap().1, err);
    // Both are closed: no more media either way.
    assert!(!p.parent.handle_media(now, Layer::BASE, true, &rtp(0)));
}

#[test]
fn repairs_are_bounded_per_window() {
    let mut p = Pair::new(vec![NodeId(1)], layers(&[Layer::BASE]), 0);
    p.run_for(Duration::from_millis(100));
    let now = p.now;
    for seq in 0..300 {
        p.parent.handle_media(now, Layer::BASE, false, &rtp(seq));
    }
    p.drain();
    // A child NACKs every cached packet, ten times over, within one window.
    let mut bytes = Vec::new();
    for _ in 0..10 {
        for chunk in (0..300u16).collect::<Vec<_>>().chunks(MAX_NACK) {
            Message::Nack {
                layer: Layer::BASE,
                seqs: chunk.to_vec(),
            }
            .encode(&mut bytes);
        }
    }
    p.parent.handle_control(now, &bytes);
    let max = LinkConfig::default().max_repairs as u64;
    assert_eq!(p.parent.repairs(), (max, 3000 - max));
    // The next window answers again.
    let later = now + LinkConfig::REPAIR_WINDOW;
    p.parent.handle_control(later, &bytes[..bytes.len() / 10]);
    assert_eq!(p.parent.repairs().0, 2 * max);
}

#[test]
fn out_of_range_config_is_bounded() {
    let now = Instant::now();
    let cfg = LinkConfig {
        cache_packets: 0,
        max_missing: 0,
        nack_tries: 0,
        ..LinkConfig::default()
    };
    let mut parent = ParentLink::new(cfg.clone(), now, NodeId(2), SubId(1));
    let mut bytes = Vec::new();
    Message::Subscribe {
        stream: "cam".into(),
        layers: layers(&[Layer::BASE]),
        hops: vec![],
    }
    .encode(&mut bytes);
    parent.handle_control(now, &bytes);
    parent.accept(now, vec![]);
    assert!(parent.handle_media(now, Layer::BASE, true, &rtp(7)));
}

/// A server-made ladder at the origin: the full-size source is wire layer 0 and its rung,
/// the lowest layer, wire layer 1; the node lists them lowest first. On a congested link the
/// child keeps the rung (where the constrained viewers are) and loses the source first.
#[test]
fn a_congested_link_keeps_the_lowest_listed_layer_whatever_its_number() {
    use crate::queue::SendQueue;
    let (source, rung) = (Layer::BASE, l1());
    let mut p = Pair::new(vec![NodeId(1)], layers(&[source, rung]), 0);
    p.run_for(Duration::from_millis(100));
    let now = p.now;
    let info = |layer, bitrate_bps| LayerInfo {
        layer,
        ssrc: 0,
        bitrate_bps,
    };
    p.parent
        .handle_layers(now, vec![info(rung, 300_000), info(source, 2_500_000)]);
    p.drain();
    p.run_for(Duration::from_millis(100));
    assert!(p
        .child_events
        .iter()
        .any(|(_, e)| matches!(e, Event::Layers(l) if l[0].layer == rung)));

    // Ten packets of each, interleaved, into a queue with room for 16: four must go.
    let now = p.now;
    for seq in 0..10u16 {
        for layer in [source, rung] {
            let mut pkt = rtp(seq);
            pkt.resize(1000, 0xab);
            assert!(p.parent.handle_media(now, layer, seq == 0, &pkt));
        }
    }
    let mut queue = SendQueue::new(0);
    let mut classes = Vec::new();
    loop {
        match p.parent.poll_output() {
            Output::Transmit(Transmit::Datagram { class, data }) => {
                let (h, _, _) = crate::wire::DatagramHeader::decode(&data).unwrap();
                classes.push((h.layer, class));
                queue.push(class, data);
            }
            Output::Timeout(_) => break,
            o => panic!("unexpected {o:?}"),
        }
    }
    while let Some(d) = queue.pop() {
        p.to_child.push_back((now + LATENCY, Item::Datagram(d)));
    }
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.received(rung), (0..10).collect());
    assert_eq!(p.received(source), (4..10).collect());
    assert!(classes.contains(&(rung, Class::Base)), "{classes:?}");
    assert!(classes.contains(&(source, Class::Higher)), "{classes:?}");
}

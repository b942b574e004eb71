//! What a neighbour node controls on a relay link: control bytes on a subscription's stream
//! (the frame decoder, then both sides' state machines once subscribed) and media datagrams.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_relay::wire::DatagramHeader;
use edge_relay::{ChildLink, LayerSet, LinkConfig, Message, NodeId, Output, ParentLink, SubId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let Ok(Some((_, used))) = Message::decode(&data[at..]) {
        at += used;
    }
    let _ = DatagramHeader::decode(data);

    let now = Instant::now();
    let later = now + Duration::from_millis(10);
    let all = LayerSet::from_bits(0xff);
    let mut sub = Vec::new();
    Message::Subscribe {
        stream: "s".into(),
        layers: all,
        hops: vec![NodeId(1)],
    }
    .encode(&mut sub);
    let mut parent = ParentLink::new(LinkConfig::default(), now, NodeId(2), SubId(1));
    parent.handle_control(now, &sub);
    parent.accept(now, vec![]);
    parent.handle_control(later, data);
    while !matches!(parent.poll_output(), Output::Timeout(_)) {}

    let mut ok = Vec::new();
    Message::Subscribed { tracks: vec![] }.encode(&mut ok);
    let mut child = ChildLink::new(LinkConfig::default(), now, SubId(1), "s", all, vec![]);
    child.handle_control(now, &ok);
    child.handle_control(later, data);
    child.handle_datagram(later, Bytes::copy_from_slice(data));
    while !matches!(child.poll_output(), Output::Timeout(_)) {}
});

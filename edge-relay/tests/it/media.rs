//! A child subscribes to its parent; tracks, media, wants and keyframe requests flow.

use std::collections::BTreeSet;
use std::time::Duration;

use edge_relay::net::{ChildEvent, NetConfig, ParentEvent};
use edge_relay::tls::node_id;
use edge_relay::wire::{RefuseReason, StreamState};
use edge_relay::Layer;

use crate::common::*;

#[tokio::test]
async fn media_of_both_layers_arrives_in_order_with_keyframe_flags() {
    let cluster = Cluster::new();
    let (parent, mut requests) = bind(&cluster.node("origin"), NetConfig::default());
    let child_id = cluster.node("edge-1");
    let (child, _) = bind(&child_id, NetConfig::default());
    let addr = parent.local_addr().unwrap();

    let conn = child.connect(addr, "origin").await.unwrap();
    assert_eq!(conn.peer(), "origin");
    // One connection per parent.
    let again = child.connect(addr, "origin").await.unwrap();
    let wanted = layers(&[Layer::BASE, l1()]);
    let mut sub = again
        .subscribe("cam", wanted, vec![child_id.id])
        .await
        .unwrap();

    let req = next(&mut requests).await;
    assert_eq!(
        (
            req.stream.as_str(),
            req.layers,
            req.hops.clone(),
            req.peer.as_str()
        ),
        ("cam", wanted, vec![node_id("edge-1")], "edge-1")
    );
    let handle = req.accept(tracks());
    assert_eq!(
        next_control(&mut sub.events).await,
        ChildEvent::Subscribed(tracks())
    );
    assert_eq!(parent.children().len(), 1);

    for seq in 0..100u16 {
        for layer in [Layer::BASE, l1()] {
            assert!(handle.send(layer, seq % 50 == 0, rtp(seq, 1000)));
        }
        if seq % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut got: [Vec<(u16, bool)>; 2] = Default::default();
    while got.iter().map(Vec::len).sum::<usize>() < 200 {
        match next(&mut sub.events).await {
            ChildEvent::Media {
                layer,
                keyframe,
                rtp: p,
            } => {
                assert_eq!(p, rtp(u16::from_be_bytes([p[2], p[3]]), 1000));
                got[layer.index()].push((u16::from_be_bytes([p[2], p[3]]), keyframe));
            }
            e => panic!("unexpected {e:?}"),
        }
    }
    let want: Vec<(u16, bool)> = (0..100).map(|s| (s, s % 50 == 0)).collect();
    assert_eq!(got[0], want);
    assert_eq!(got[1], want);

    let cs = conn.stats();
    assert_eq!(cs.datagrams_received, 200);
    assert_eq!(cs.demux_drops, 0);
    let ps = &parent.children()[0].stats();
    assert_eq!(ps.datagrams_sent, 200);
    assert!(ps.rtt < Duration::from_millis(100));

    // Stream state goes down.
    handle.state(StreamState::Inactive);
    assert_eq!(
        next_control(&mut sub.events).await,
        ChildEvent::State(StreamState::Inactive)
    );
}

#[tokio::test]
async fn wants_and_keyframe_requests_reach_the_parent_from_any_thread() {
    let cluster = Cluster::new();
    let (parent, mut requests) = bind(&cluster.node("origin"), NetConfig::default());
    let (child, _) = bind(&cluster.node("edge-1"), NetConfig::default());
    let conn = child
        .connect(parent.local_addr().unwrap(), "origin")
        .await
        .unwrap();
    let mut sub = conn
        .subscribe("cam", layers(&[Layer::BASE]), vec![node_id("edge-1")])
        .await
        .unwrap();
    let mut handle = next(&mut requests).await.accept(tracks());
    assert!(matches!(
        next_control(&mut sub.events).await,
        ChildEvent::Subscribed(_)
    ));

    std::thread::scope(|s| {
        s.spawn(|| {
            sub.want(layers(&[Layer::BASE, l1()]));
            sub.keyframe(l1());
        });
    });
    assert_eq!(
        next_parent(&mut handle.events).await,
        ParentEvent::LayersWanted(layers(&[Layer::BASE, l1()]))
    );
    assert_eq!(
        next_parent(&mut handle.events).await,
        ParentEvent::KeyframeWanted(l1())
    );

    // Dropping the subscription releases it on the parent.
    drop(sub);
    assert_eq!(next_parent(&mut handle.events).await, ParentEvent::Closed);
    assert!(
        !handle.send(Layer::BASE, false, rtp(1, 100)) || {
            tokio::time::sleep(Duration::from_millis(50)).await;
            handle.is_closed()
        }
    );
}

#[tokio::test]
async fn an_unknown_stream_is_refused() {
    let cluster = Cluster::new();
    let (parent, mut requests) = bind(&cluster.node("origin"), NetConfig::default());
    let (child, _) = bind(&cluster.node("edge-1"), NetConfig::default());
    let conn = child
        .connect(parent.local_addr().unwrap(), "origin")
        .await
        .unwrap();
    let mut sub = conn
        .subscribe("nope", layers(&[Layer::BASE]), vec![node_id("edge-1")])
        .await
        .unwrap();
    next(&mut requests)
        .await
        .refuse(RefuseReason::UnknownStream);
    assert_eq!(
        next_control(&mut sub.events).await,
        ChildEvent::Ended(edge_relay::net::EndReason::Refused(
            RefuseReason::UnknownStream
        ))
    );

    // A loop never reaches the node: the parent refuses it itself.
    let mut sub = conn
        .subscribe(
            "cam",
            layers(&[Layer::BASE]),
            vec![node_id("origin"), node_id("edge-1")],
        )
        .await
        .unwrap();
    assert_eq!(
        next_control(&mut sub.events).await,
        ChildEvent::Ended(edge_relay::net::EndReason::Refused(RefuseReason::Loop))
    );
    assert!(requests.try_recv().is_err());
}

#[tokio::test]
async fn a_packet_larger_than_the_datagram_limit_arrives_on_a_stream() {
    let cluster = Cluster::new();
    // No MTU discovery from 1200 bytes: the datagram limit stays under 1200.
    let small = NetConfig {
        initial_mtu: 1200,
        mtu_discovery: false,
        ..NetConfig::default()
    };
    let (parent, mut requests) = bind(&cluster.node("origin"), small.clone());
    let (child, _) = bind(&cluster.node("edge-1"), small);
    let conn = child
        .connect(parent.local_addr().unwrap(), "origin")
        .await
        .unwrap();
    let limit = conn.max_datagram_size().unwrap();
    assert!(limit < 1406, "datagram limit {limit}");
    let mut sub = conn
        .subscribe("cam", layers(&[Layer::BASE]), vec![node_id("edge-1")])
        .await
        .unwrap();
    let handle = next(&mut requests).await.accept(tracks());
    assert!(matches!(
        next_control(&mut sub.events).await,
        ChildEvent::Subscribed(_)
    ));
    assert!(handle.send(Layer::BASE, true, rtp(1, 1400)));
    assert!(handle.send(Layer::BASE, false, rtp(2, 500)));
    let mut got = BTreeSet::new();
    while got.len() < 2 {
        if let ChildEvent::Media { rtp: p, .. } = next(&mut sub.events).await {
            assert_eq!(p, rtp(u16::from_be_bytes([p[2], p[3]]), p.len()));
            got.insert(p.len());
        }
    }
    assert_eq!(got, BTreeSet::from([500, 1400]));
    assert_eq!(conn.stats().oversized_received, 1);
    assert_eq!(parent.children()[0].stats().oversized_sent, 1);
}

#[tokio::test]
async fn default_mtu_carries_a_full_rtp_packet_as_a_datagram() {
    let cluster = Cluster::new();
    let (parent, _requests) = bind(&cluster.node("origin"), NetConfig::default());
    let (child, _) = bind(&cluster.node("edge-1"), NetConfig::default());
    let conn = child
        .connect(parent.local_addr().unwrap(), "origin")
        .await
        .unwrap();
    let limit = conn.max_datagram_size().unwrap();
    assert!(limit >= 1206, "datagram limit {limit}");
}

#[tokio::test]
async fn lost_datagrams_are_repaired_hop_by_hop() {
    let cluster = Cluster::new();
    let lossy = NetConfig {
        drop_one_in: 7,
        ..NetConfig::default()
    };
    let (parent, mut requests) = bind(&cluster.node("origin"), lossy);
    let (child, _) = bind(&cluster.node("edge-1"), NetConfig::default());
    let conn = child
        .connect(parent.local_addr().unwrap(), "origin")
        .await
        .unwrap();
    let mut sub = conn
        .subscribe("cam", layers(&[Layer::BASE]), vec![node_id("edge-1")])
        .await
        .unwrap();
    let handle = next(&mut requests).await.accept(tracks());
    assert!(matches!(
        next_control(&mut sub.events).await,
        ChildEvent::Subscribed(_)
    ));
    for seq in 0..200u16 {
        assert!(handle.send(Layer::BASE, seq == 0, rtp(seq, 800)));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut got = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 200 {
        match tokio::time::timeout_at(deadline, sub.events.recv()).await {
            Ok(Some(ChildEvent::Media { rtp: p, .. })) => {
                got.insert(u16::from_be_bytes([p[2], p[3]]));
            }
            Ok(e) => panic!("unexpected {e:?}"),
            Err(_) => break,
        }
    }
    // The last packet's loss is unseen (nothing after it shows the hole); all else repaired.
    let missing: Vec<u16> = (0..199).filter(|s| !got.contains(s)).collect();
    assert!(missing.is_empty(), "missing {missing:?}");
    // One first send in seven never left the parent: every one of them came back as a repair.
    assert_eq!(parent.children()[0].stats().datagrams_sent, 200);
}

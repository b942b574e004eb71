//! What goes wrong: a parent that vanishes, a peer from another cluster, a peer that speaks
//! garbage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_relay::net::{ChildEvent, EndReason, NetConfig, ParentEvent, CODE_PROTOCOL};
use edge_relay::tls::{self, node_id};
use edge_relay::wire::Message;
use edge_relay::Layer;

use crate::common::*;

#[tokio::test]
async fn a_parent_that_vanishes_is_lost_within_the_idle_timeout() {
    let cluster = Cluster::new();
    let (parent, mut requests) = bind(&cluster.node("origin"), NetConfig::default());
    let (child, _) = bind(&cluster.node("edge-1"), NetConfig::default());
    let (via, proxy) = proxy(parent.local_addr().unwrap()).await;
    let conn = child.connect(via, "origin").await.unwrap();
    let mut sub = conn
        .subscribe("cam", layers(&[Layer::BASE]), vec![node_id("edge-1")])
        .await
        .unwrap();
    let _handle = next(&mut requests).await.accept(tracks());
    assert!(matches!(
        next_control(&mut sub.events).await,
        ChildEvent::Subscribed(_)
    ));
    // Keep-alives hold an idle link open past its idle timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!conn.is_closed());

    // The parent vanishes without a word (as a killed process or a cut link).
    proxy.abort();
    let cut = Instant::now();
    assert_eq!(
        next_control(&mut sub.events).await,
        ChildEvent::Ended(EndReason::ParentLost)
    );
    let took = cut.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "parent lost after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(700),
        "parent lost after {took:?}"
    );
    assert!(conn.is_closed());
    // The next connect makes a new connection (which fails: nothing there).
    assert!(child.connect(via, "origin").await.is_err());
}

/// A parent that never answers (dead before the child first calls): the handshake fails
/// in about the idle timeout, not quinn's three probe timeouts at its default 333 ms RTT
/// (about 3 s), and the endpoint remembers it as unreachable.
#[tokio::test]
async fn a_handshake_with_a_dead_parent_fails_within_the_idle_timeout() {
    let cluster = Cluster::new();
    let (child, _) = bind(&cluster.node("edge-1"), NetConfig::default());
    let hole = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead = hole.local_addr().unwrap();
    assert_eq!(child.unreachable_since(dead), None);
    let start = Instant::now();
    assert!(child.connect(dead, "origin").await.is_err());
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2000), "failed after {took:?}");
    assert!(child.unreachable_since(dead).is_some());
}

#[tokio::test]
async fn a_parent_that_shuts_down_is_lost_at_once() {
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
    let handle = next(&mut requests).await.accept(tracks());
    assert!(matches!(
        next_control(&mut sub.events).await,
        ChildEvent::Subscribed(_)
    ));
    let start = Instant::now();
    drop((parent, requests, handle));
    assert_eq!(
        next_control(&mut sub.events).await,
        ChildEvent::Ended(EndReason::ParentLost)
    );
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn a_node_of_another_cluster_is_refused_at_the_handshake() {
    let cluster = Cluster::new();
    let other = Cluster::new();
    let (parent, mut requests) = bind(&cluster.node("origin"), NetConfig::default());
    let addr = parent.local_addr().unwrap();

    // A child with the other CA's certificate, even under a name the cluster knows.
    let (rogue, _) = bind(&other.node("edge-1"), NetConfig::default());
    match rogue.connect(addr, "origin").await {
        Err(e) => println!("rogue child refused: {e}"),
        Ok(conn) => {
            // TLS 1.3: the client may finish before the server checked its certificate;
            // the server's refusal then closes the connection at once.
            let e = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
            println!("rogue child refused after the handshake: {e}");
            assert!(conn
                .subscribe("cam", layers(&[Layer::BASE]), vec![])
                .await
                .is_err());
        }
    }
    // A parent with the other CA's certificate: the child refuses it.
    let (rogue_parent, _rogue_requests) = bind(&other.node("origin"), NetConfig::default());
    let (child, _) = bind(&cluster.node("edge-1"), NetConfig::default());
    let e = child
        .connect(rogue_parent.local_addr().unwrap(), "origin")
        .await
        .unwrap_err();
    println!("rogue parent refused: {e}");
    // A parent of this cluster under another name than asked for: refused too.
    assert!(child.connect(addr, "edge-9").await.is_err());

    // The parent goes on serving its cluster; no request ever came from the rogue.
    assert!(requests.try_recv().is_err());
    let conn = child.connect(addr, "origin").await.unwrap();
    let mut sub = conn
        .subscribe("cam", layers(&[Layer::BASE]), vec![node_id("edge-1")])
        .await
        .unwrap();
    let req = next(&mut requests).await;
    assert_eq!(req.peer, "edge-1");
    let _h = req.accept(tracks());
    assert!(matches!(
        next_control(&mut sub.events).await,
        ChildEvent::Subscribed(_)
    ));
    assert_eq!(parent.children().len(), 1);
}

#[tokio::test]
async fn garbage_on_one_subscription_ends_only_that_one() {
    let cluster = Cluster::new();
    let (parent, mut requests) = bind(&cluster.node("origin"), NetConfig::default());
    let addr = parent.local_addr().unwrap();

    // A well-behaved child, receiving.
    let (child, _) = bind(&cluster.node("edge-1"), NetConfig::default());
    let conn = child.connect(addr, "origin").await.unwrap();
    let mut good = conn
        .subscribe("cam", layers(&[Layer::BASE]), vec![node_id("edge-1")])
        .await
        .unwrap();
    let good_handle = next(&mut requests).await.accept(tracks());
    assert!(matches!(
        next_control(&mut good.events).await,
        ChildEvent::Subscribed(_)
    ));

    // A raw quinn client with a valid certificate: a proper SUBSCRIBE, then garbage.
    let raw_id = cluster.node("raw");
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(raw_id.client_config().unwrap()).unwrap();
    let raw = quinn::Endpoint::client(any_port()).unwrap();
    let raw_conn = raw
        .connect_with(
            quinn::ClientConfig::new(Arc::new(crypto)),
            addr,
            &tls::dns_name("origin"),
        )
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = raw_conn.open_bi().await.unwrap();
    let mut frame = Vec::new();
    Message::Subscribe {
        stream: "cam".into(),
        layers: layers(&[Layer::BASE]),
        hops: vec![node_id("raw")],
    }
    .encode(&mut frame);
    send.write_all(&frame).await.unwrap();
    let req = next(&mut requests).await;
    assert_eq!(req.peer, "raw");
    let mut raw_handle = req.accept(tracks());
    // Version 9 of an UPDATE.
    send.write_all(&[0, 3, 9, 4, 1]).await.unwrap();
    assert_eq!(
        next_parent(&mut raw_handle.events).await,
        ParentEvent::Closed
    );
    // The raw client is told: its stream is reset with the protocol error code.
    let mut buf = vec![0u8; 4096];
    let err = loop {
        match tokio::time::timeout(WAIT, recv.read(&mut buf))
            .await
            .unwrap()
        {
            Ok(Some(_)) => continue, // SUBSCRIBED
            Ok(None) => panic!("finished, not reset"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        err,
        quinn::ReadError::Reset(quinn::VarInt::from_u32(CODE_PROTOCOL))
    );
    // Its connection and the other child's subscription live on.
    assert!(raw_conn.close_reason().is_none());
    for seq in 0..10 {
        assert!(good_handle.send(Layer::BASE, seq == 0, rtp(seq, 300)));
    }
    for seq in 0..10u16 {
        match next(&mut good.events).await {
            ChildEvent::Media { rtp: p, .. } => assert_eq!(p, rtp(seq, 300)),
            e => panic!("unexpected {e:?}"),
        }
    }
}

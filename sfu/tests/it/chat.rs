//! A session's `chat` data channel through a real node: a str0m client over UDP on
//! 127.0.0.1 opens it, the test takes it from the session's hook and echoes.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfu::chat::MAX_INCOMING;
use sfu::{ChatChannel, ChatHook, LayerPref, Metrics, Node, NodeConfig, Role};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc;

/// A WebRTC peer on its own UDP socket, driven by the test.
struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    timeout: Instant,
    connected: bool,
    /// Channels the node has acknowledged open.
    open: Vec<ChannelId>,
    /// Channels that closed.
    closed: Vec<ChannelId>,
    /// Text messages received (`binary`, bytes).
    got: Vec<(bool, Vec<u8>)>,
}

impl Client {
    /// A peer whose offer has the media of `role` and data channels labelled `labels`.
    fn offer(role: Role, labels: &[&str]) -> (Client, String, SdpPendingOffer, Vec<ChannelId>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut rtc = RtcConfig::new().set_rtp_mode(true).build(Instant::now());
        let c = Candidate::host(socket.local_addr().unwrap(), Protocol::Udp).unwrap();
        rtc.add_local_candidate(c);
        let mut api = rtc.sdp_api();
        let dir = match role {
            Role::Publisher => Direction::SendOnly,
            Role::Viewer => Direction::RecvOnly,
        };
        api.add_media(MediaKind::Audio, dir, None, None, None);
        api.add_media(MediaKind::Video, dir, None, None, None);
        let ids = labels
            .iter()
            .map(|l| api.add_channel(l.to_string()))
            .collect();
        let (offer, pending) = api.apply().unwrap();
        let client = Client {
            rtc,
            socket,
            timeout: Instant::now(),
            connected: false,
            open: Vec::new(),
            closed: Vec::new(),
            got: Vec::new(),
        };
        (client, offer.to_sdp_string(), pending, ids)
    }

    fn answer(&mut self, pending: SdpPendingOffer, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::ChannelOpen(id, _)) => self.open.push(id),
                Output::Event(Event::ChannelData(d)) => self.got.push((d.binary, d.data)),
                Output::Event(Event::ChannelClose(id)) => self.closed.push(id),
                Output::Event(_) => {}
            }
        }
    }

    fn poll(&mut self) {
        let local = self.socket.local_addr().unwrap();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            if let Ok(r) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                self.rtc
                    .handle_input(Input::Receive(Instant::now(), r))
                    .unwrap();
                self.drain();
            }
        }
        let now = Instant::now();
        if self.timeout <= now {
            self.rtc.handle_input(Input::Timeout(now)).unwrap();
            self.drain();
        }
    }

    /// Polls until `done` holds, for at most 10 s.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&mut Client) -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            self.poll();
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn send(&mut self, id: ChannelId, binary: bool, data: &[u8]) {
        let mut ch = self.rtc.channel(id).expect("an open channel");
        assert!(ch.write(binary, data).unwrap(), "accepted");
        self.drain();
    }

    /// The text messages received so far.
    fn texts(&self) -> Vec<String> {
        self.got
            .iter()
            .filter(|(binary, _)| !binary)
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .collect()
    }
}

fn node() -> Node {
    let config = NodeConfig {
        workers: 1,
        tcp_port: None,
        ..NodeConfig::default()
    };
    Node::start(config, Metrics::new()).unwrap()
}

/// A hook that hands the channel to the test.
fn hook() -> (ChatHook, mpsc::UnboundedReceiver<ChatChannel>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let hook: ChatHook = Box::new(move |ch| {
        let _ = tx.send(ch);
    });
    (hook, rx)
}

/// Answers each line the peer sends with `echo: <line>`, until `incoming` ends; returns
/// the lines it saw.
fn echo(ch: ChatChannel) -> tokio::task::JoinHandle<(Vec<String>, mpsc::Sender<Arc<str>>)> {
    tokio::spawn(ch.pump.run());
    let (mut incoming, outgoing) = (ch.incoming, ch.outgoing);
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(line) = incoming.recv().await {
            let _ = outgoing.send(Arc::from(format!("echo: {line}"))).await;
            seen.push(line);
        }
        (seen, outgoing)
    })
}

async fn open(node: &Node, role: Role, offer: String, hook: Option<ChatHook>) -> sfu::Opened {
    match role {
        Role::Publisher => node.publish("chat", offer, hook, false).await.unwrap(),
        Role::Viewer => node
            .view("chat", offer, LayerPref::Auto, None, hook)
            .await
            .unwrap(),
    }
}

fn dropped(node: &Node, direction: &str, reason: &str) -> u64 {
    let want = format!(
        "cascade_chat_frames_dropped_total{{direction=\"{direction}\",reason=\"{reason}\"}} "
    );
    node.render_metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&want)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_chats_through_its_session_and_the_end_reaches_the_taker() {
    let node = node();
    for role in [Role::Viewer, Role::Publisher] {
        let (mut c, offer, pending, ids) = Client::offer(role, &["chat", "files"]);
        assert!(offer.contains("m=application"));
        let (hook, mut taken) = hook();
        let opened = open(&node, role, offer, Some(hook)).await;
        c.answer(pending, &opened.answer);
        let (chat, files) = (ids[0], ids[1]);
        c.until("both channels open", |c| {
            c.connected && c.open.contains(&chat) && c.open.contains(&files)
        })
        .await;
        let ch = tokio::time::timeout(Duration::from_secs(5), taken.recv())
            .await
            .expect("the hook fires")
            .unwrap();
        assert_eq!(ch.session, opened.id);
        let echoer = echo(ch);

        c.send(chat, false, b"hello");
        c.until("the echo", |c| c.texts() == ["echo: hello"]).await;

        // What is not passed on is dropped and counted; the channel goes on.
        let before = |r| dropped(&node, "in", r);
        let counts: Vec<u64> = ["binary", "oversized", "not_utf8", "other_channel"]
            .iter()
            .map(|r| before(r))
            .collect();
        c.send(chat, true, b"binary");
        c.send(chat, false, &vec![b'x'; MAX_INCOMING + 1]);
        c.send(chat, false, &[0xff, 0xfe, 0xfd]);
        c.send(files, false, b"not chat");
        let edge = "y".repeat(MAX_INCOMING);
        c.send(chat, false, edge.as_bytes());
        c.send(chat, false, "après".as_bytes());
        c.until("the echoes after the garbage", |c| c.texts().len() == 3)
            .await;
        assert_eq!(
            c.texts(),
            [
                "echo: hello".to_string(),
                format!("echo: {edge}"),
                "echo: après".into()
            ],
            "{role:?}: in order, nothing dropped passed on"
        );
        for (reason, was) in ["binary", "oversized", "not_utf8", "other_channel"]
            .iter()
            .zip(counts)
        {
            assert_eq!(dropped(&node, "in", reason), was + 1, "{reason}");
        }
        assert!(c.got.iter().all(|(binary, _)| !binary), "text frames only");

        // The session closes: the taker's `incoming` ends and `outgoing` fails.
        node.close(opened.id, role).await.unwrap();
        let (seen, outgoing) = tokio::time::timeout(Duration::from_secs(5), echoer)
            .await
            .expect("incoming ends")
            .unwrap();
        assert_eq!(seen.len(), 3);
        tokio::time::timeout(Duration::from_secs(5), outgoing.closed())
            .await
            .expect("outgoing fails once the channel is gone");
        assert!(outgoing.send(Arc::from("late")).await.is_err());
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_channel_ends_incoming_while_the_media_session_goes_on() {
    let node = node();
    let (mut c, offer, pending, ids) = Client::offer(Role::Viewer, &["chat"]);
    let (hook, mut taken) = hook();
    let opened = open(&node, Role::Viewer, offer, Some(hook)).await;
    c.answer(pending, &opened.answer);
    c.until("open", |c| c.open.contains(&ids[0])).await;
    let ch = taken.recv().await.unwrap();
    let echoer = echo(ch);
    c.send(ids[0], false, b"one");
    c.until("the echo", |c| c.texts().len() == 1).await;
    c.rtc.direct_api().close_data_channel(ids[0]);
    c.drain();
    let end = Instant::now() + Duration::from_secs(10);
    while !echoer.is_finished() {
        assert!(
            Instant::now() < end,
            "incoming ends when the channel closes"
        );
        c.poll();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (seen, outgoing) = echoer.await.unwrap();
    assert_eq!(seen, ["one"]);
    tokio::time::timeout(Duration::from_secs(5), outgoing.closed())
        .await
        .expect("outgoing fails");
    assert_eq!(node.session_count(), 1, "the session itself goes on");
    node.close(opened.id, Role::Viewer).await.unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taker_letting_go_closes_the_channel_and_a_new_one_is_handed_out() {
    let node = node();
    let (mut c, offer, pending, ids) = Client::offer(Role::Viewer, &["chat"]);
    let (hook, mut taken) = hook();
    let opened = open(&node, Role::Viewer, offer, Some(hook)).await;
    c.answer(pending, &opened.answer);
    c.until("open", |c| c.open.contains(&ids[0])).await;
    let ch = taken.recv().await.unwrap();
    tokio::spawn(ch.pump.run());
    drop(ch.outgoing); // as a bridge closing an idle connection
    let mut incoming = ch.incoming;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        c.poll();
        if c.closed.contains(&ids[0]) {
            break;
        }
        assert!(Instant::now() < end, "the peer sees the channel close");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(incoming.recv().await.is_none(), "incoming ends");
    // The peer opens another `chat` channel on the same session: handed out again.
    let config = str0m::channel::ChannelConfig {
        label: "chat".into(),
        ..Default::default()
    };
    let again = c.rtc.direct_api().create_data_channel(config);
    c.drain();
    c.until("the new channel open", |c| c.open.contains(&again))
        .await;
    let ch = tokio::time::timeout(Duration::from_secs(5), taken.recv())
        .await
        .expect("the hook fires again")
        .unwrap();
    let _echoer = echo(ch);
    c.send(again, false, b"back");
    c.until("the echo", |c| c.texts() == ["echo: back"]).await;
    node.close(opened.id, Role::Viewer).await.unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_without_a_channel_or_a_hook_work_as_before() {
    let node = node();
    // No data channel in the offer: the hook is never called.
    let (mut c, offer, pending, _) = Client::offer(Role::Viewer, &[]);
    assert!(!offer.contains("m=application"));
    let (hook, mut taken) = hook();
    let opened = open(&node, Role::Viewer, offer, Some(hook)).await;
    assert!(!opened.answer.contains("m=application"));
    c.answer(pending, &opened.answer);
    c.until("connected", |c| c.connected).await;
    // A channel but no hook: negotiated, its messages dropped and counted.
    let (mut d, offer, pending, ids) = Client::offer(Role::Viewer, &["chat"]);
    let opened_d = open(&node, Role::Viewer, offer, None).await;
    assert!(opened_d.answer.contains("m=application"));
    d.answer(pending, &opened_d.answer);
    d.until("open", |d| d.connected && d.open.contains(&ids[0]))
        .await;
    let before = dropped(&node, "in", "unattached");
    d.send(ids[0], false, b"anyone?");
    let end = Instant::now() + Duration::from_secs(10);
    while dropped(&node, "in", "unattached") == before {
        assert!(Instant::now() < end, "counted");
        d.poll();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(taken.try_recv().is_err(), "no channel was handed out");
    assert_eq!(node.session_count(), 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_fanned_out_reaches_every_peer_on_the_worker() {
    let node = node();
    let mut clients = Vec::new();
    let mut outs = Vec::new();
    for _ in 0..20 {
        let (mut c, offer, pending, ids) = Client::offer(Role::Viewer, &["chat"]);
        let (hook, mut taken) = hook();
        let opened = open(&node, Role::Viewer, offer, Some(hook)).await;
        c.answer(pending, &opened.answer);
        c.until("open", |c| c.open.contains(&ids[0])).await;
        let ch = taken.recv().await.unwrap();
        tokio::spawn(ch.pump.run());
        outs.push((ch.outgoing, ch.incoming));
        clients.push(c);
    }
    let line: Arc<str> = Arc::from("to everyone");
    for (out, _) in &outs {
        out.try_send(line.clone()).unwrap();
    }
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        for c in clients.iter_mut() {
            c.poll();
        }
        if clients.iter().all(|c| c.texts() == ["to everyone"]) {
            break;
        }
        assert!(Instant::now() < end, "every peer gets the line once");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(dropped(&node, "out", "worker_queue_full"), 0);
    node.shutdown().await;
}

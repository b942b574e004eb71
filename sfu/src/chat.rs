//! A session's `chat` data channel as a pipe of text, handed to whoever takes it.
//!
//! A WHIP or WHEP offer may carry a data channel (`m=application`, SCTP over the
//! session's DTLS). When the peer opens the one labelled [`LABEL`], the session's worker
//! calls the session's [`ChatHook`] with a [`ChatChannel`]:
//!
//! - `incoming`: the text messages the peer sends, in order. A frame the node does not pass
//!   on is dropped and counted (`cascade_chat_frames_dropped_total{direction="in"}`), not
//!   answered: binary frames, text over [`MAX_INCOMING`] bytes, text that is not UTF-8,
//!   and frames the taker has not kept up with ([`INCOMING_QUEUE`] waiting). It ends
//!   (`None`) when the channel or the session closes.
//! - `outgoing`: text to write to the peer. Sending fails once the channel is gone. The
//!   [`ChatPump`] moves what is sent there into the worker's chat queue (one per worker,
//!   bounded); the worker drains that queue on one command however many sessions' lines
//!   it holds, so a line fanned out to every session of a worker costs one command.
//!   Dropping every `outgoing` sender closes the channel (the peer sees it close, and
//!   `incoming` ends); the session goes on.
//!
//! The worker never waits: a full queue drops the frame and counts it. Nothing here knows
//! what the text means.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus::IntCounter;
use tokio::sync::{mpsc, oneshot};

use crate::ids::SessionId;
use crate::worker::Command;

/// The label of the data channel handed out.
pub const LABEL: &str = "chat";
/// Largest text message passed on from a peer, in bytes.
pub const MAX_INCOMING: usize = 8 * 1024;
/// Messages from a peer waiting for the taker before more are dropped.
pub const INCOMING_QUEUE: usize = 64;
/// Lines for a peer sent on `outgoing` and not yet moved to its worker.
pub const OUTGOING_QUEUE: usize = 256;
/// Lines waiting in a worker's chat queue (all its sessions) before more are dropped.
pub(crate) const WORKER_QUEUE: usize = 65_536;

/// Called on the session's worker thread when the peer opens its `chat` channel (again
/// after a close, if it opens another). It must not block: spawn what the channel needs
/// elsewhere (the [`ChatPump`] included).
pub type ChatHook = Box<dyn FnMut(ChatChannel) + Send>;

/// One opened `chat` data channel.
pub struct ChatChannel {
    /// The session it belongs to.
    pub session: SessionId,
    /// Text the peer sends, in order; ends when the channel or session closes.
    pub incoming: mpsc::Receiver<String>,
    /// Text to write to the peer; sending fails once the channel is gone (after the pump
    /// ends, or if it is dropped unrun).
    pub outgoing: mpsc::Sender<Arc<str>>,
    /// Moves `outgoing`'s lines to the worker: spawn [`ChatPump::run`] on a runtime of
    /// the taker's (not the worker's).
    pub pump: ChatPump,
}

impl std::fmt::Debug for ChatChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatChannel")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// What a pump hands the worker for a session's channel.
#[derive(Debug, PartialEq)]
pub(crate) enum ChatWrite {
    /// Write this text.
    Line(Arc<str>),
    /// The taker let go of `outgoing`: close the channel.
    Close,
}

/// Drains a channel's `outgoing` into its worker's chat queue until the channel closes.
pub struct ChatPump {
    session: SessionId,
    lines: mpsc::Receiver<Arc<str>>,
    closed: oneshot::Receiver<()>,
    outbox: Arc<ChatOutbox>,
}

impl ChatPump {
    /// Runs until the channel or session closes (then `outgoing` fails), or every
    /// `outgoing` sender is dropped (then it closes the channel).
    pub async fn run(mut self) {
        loop {
            tokio::select! {
                biased;
                _ = &mut self.closed => return,
                line = self.lines.recv() => match line {
                    Some(line) => self.outbox.push(self.session, ChatWrite::Line(line)),
                    None => {
                        self.outbox.push(self.session, ChatWrite::Close);
                        return;
                    }
                },
            }
        }
    }
}

/// A worker's queue of lines to write, shared by the pumps of its sessions' channels.
pub(crate) struct ChatOutbox {
    queue: crossbeam_channel::Sender<(SessionId, ChatWrite)>,
    /// A [`Command::ChatFlush`] is on its way to the worker (or the worker is draining).
    pending: AtomicBool,
    worker: mpsc::Sender<Command>,
    dropped: IntCounter,
}

impl ChatOutbox {
    /// The outbox of the worker taking `worker`'s commands, and its receiving end.
    pub(crate) fn new(
        worker: mpsc::Sender<Command>,
        dropped: IntCounter,
    ) -> (
        Arc<ChatOutbox>,
        crossbeam_channel::Receiver<(SessionId, ChatWrite)>,
    ) {
        let (queue, rx) = crossbeam_channel::bounded(WORKER_QUEUE);
        let outbox = ChatOutbox {
            queue,
            pending: AtomicBool::new(false),
            worker,
            dropped,
        };
        (Arc::new(outbox), rx)
    }

    /// Queues a line; wakes the worker unless a wake is already on its way. Never waits.
    fn push(&self, session: SessionId, write: ChatWrite) {
        if self.queue.try_send((session, write)).is_err() {
            self.dropped.inc();
            return;
        }
        if !self.pending.swap(true, Ordering::AcqRel)
            && self.worker.try_send(Command::ChatFlush).is_err()
        {
            // The worker's queue is full: the next push tries again, and housekeeping
            // drains the queue meanwhile.
            self.pending.store(false, Ordering::Release);
        }
    }

    /// The worker is about to drain: a push from now on wakes it again.
    pub(crate) fn draining(&self) {
        self.pending.store(false, Ordering::Release);
    }
}

/// What a session keeps for its chat channel: the hook until (and after) it opens, and the
/// open channel's ends.
pub(crate) struct ChatState {
    hook: ChatHook,
    outbox: Arc<ChatOutbox>,
    open: Option<OpenChat>,
}

/// The worker's ends of an open channel: dropped when it closes, which ends `incoming`
/// and the pump.
struct OpenChat {
    channel: str0m::channel::ChannelId,
    incoming: mpsc::Sender<String>,
    _closed: oneshot::Sender<()>,
}

impl ChatState {
    pub(crate) fn new(hook: ChatHook, outbox: Arc<ChatOutbox>) -> Self {
        ChatState {
            hook,
            outbox,
            open: None,
        }
    }

    /// The peer opened a channel: the first `chat` one open at a time goes to the hook.
    pub(crate) fn on_open(
        &mut self,
        session: SessionId,
        channel: str0m::channel::ChannelId,
        label: &str,
    ) {
        if label != LABEL || self.open.is_some() {
            return;
        }
        let (in_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let (outgoing, lines) = mpsc::channel(OUTGOING_QUEUE);
        let (closed_tx, closed) = oneshot::channel();
        self.open = Some(OpenChat {
            channel,
            incoming: in_tx,
            _closed: closed_tx,
        });
        (self.hook)(ChatChannel {
            session,
            incoming,
            outgoing,
            pump: ChatPump {
                session,
                lines,
                closed,
                outbox: self.outbox.clone(),
            },
        });
    }

    /// A channel closed: if it was the chat, its taker sees the end.
    pub(crate) fn on_close(&mut self, channel: str0m::channel::ChannelId) {
        if self.open.as_ref().is_some_and(|o| o.channel == channel) {
            self.open = None;
        }
    }

    /// A message from the peer; `Err(reason)` when it is dropped.
    pub(crate) fn on_data(
        &mut self,
        channel: str0m::channel::ChannelId,
        binary: bool,
        data: Vec<u8>,
    ) -> Result<(), &'static str> {
        let open = self
            .open
            .as_ref()
            .filter(|o| o.channel == channel)
            .ok_or("other_channel")?;
        let text = incoming_text(binary, data)?;
        open.incoming.try_send(text).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "incoming_full",
            mpsc::error::TrySendError::Closed(_) => "taker_gone",
        })
    }

    /// The open chat channel, if any.
    pub(crate) fn channel(&self) -> Option<str0m::channel::ChannelId> {
        self.open.as_ref().map(|o| o.channel)
    }

    /// Forgets the open chat channel (its taker sees the end); returns it.
    pub(crate) fn take(&mut self) -> Option<str0m::channel::ChannelId> {
        self.open.take().map(|o| o.channel)
    }
}

/// A peer's frame as text to pass on, or why it is dropped.
pub(crate) fn incoming_text(binary: bool, data: Vec<u8>) -> Result<String, &'static str> {
    if binary {
        return Err("binary");
    }
    if data.len() > MAX_INCOMING {
        return Err("oversized");
    }
    String::from_utf8(data).map_err(|_| "not_utf8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_within_the_limit_is_passed_on() {
        assert_eq!(incoming_text(false, b"hi".to_vec()), Ok("hi".into()));
        assert_eq!(incoming_text(false, Vec::new()), Ok(String::new()));
        let edge = "é".repeat(MAX_INCOMING / 2);
        assert_eq!(incoming_text(false, edge.clone().into()), Ok(edge));
        assert_eq!(
            incoming_text(false, vec![b'x'; MAX_INCOMING + 1]),
            Err("oversized")
        );
        assert_eq!(incoming_text(true, b"hi".to_vec()), Err("binary"));
        assert_eq!(incoming_text(false, vec![0xff, 0xfe]), Err("not_utf8"));
    }

    #[tokio::test]
    async fn one_wake_for_many_lines_and_again_after_a_drain() {
        let (tx, mut commands) = mpsc::channel(8);
        let dropped = IntCounter::new("d", "d").unwrap();
        let (outbox, rx) = ChatOutbox::new(tx, dropped.clone());
        for i in 0..1000 {
            outbox.push(SessionId(i), ChatWrite::Line(Arc::from("line")));
        }
        assert!(matches!(commands.try_recv(), Ok(Command::ChatFlush)));
        assert!(commands.try_recv().is_err(), "one command for 1000 lines");
        outbox.draining();
        assert_eq!(rx.try_iter().count(), 1000);
        outbox.push(SessionId(1), ChatWrite::Close);
        assert!(matches!(commands.try_recv(), Ok(Command::ChatFlush)));
        assert_eq!(dropped.get(), 0);
    }

    #[tokio::test]
    async fn a_full_worker_queue_is_retried_by_the_next_line() {
        let (tx, mut commands) = mpsc::channel(1);
        tx.try_send(Command::ChatFlush).unwrap(); // the worker's queue is full
        let (outbox, _rx) = ChatOutbox::new(tx, IntCounter::new("d", "d").unwrap());
        outbox.push(SessionId(1), ChatWrite::Line(Arc::from("a")));
        let _ = commands.try_recv();
        outbox.push(SessionId(1), ChatWrite::Line(Arc::from("b")));
        assert!(matches!(commands.try_recv(), Ok(Command::ChatFlush)));
    }

    #[tokio::test]
    async fn the_pump_ends_when_the_channel_closes_and_outgoing_then_fails() {
        let (tx, _commands) = mpsc::channel(8);
        let (outbox, rx) = ChatOutbox::new(tx, IntCounter::new("d", "d").unwrap());
        let (outgoing, lines) = mpsc::channel(OUTGOING_QUEUE);
        let (closed_tx, closed) = oneshot::channel();
        let pump = tokio::spawn(
            ChatPump {
                session: SessionId(7),
                lines,
                closed,
                outbox,
            }
            .run(),
        );
        outgoing.send(Arc::from("one")).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while rx.is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        let line = ChatWrite::Line(Arc::from("one"));
        assert_eq!(rx.try_recv().unwrap(), (SessionId(7), line));
        drop(closed_tx); // the worker dropped the channel
        pump.await.unwrap();
        assert!(outgoing.send(Arc::from("two")).await.is_err());
        assert!(rx.try_recv().is_err(), "nothing to close: it is closed");
    }

    #[tokio::test]
    async fn a_taker_letting_go_of_outgoing_closes_the_channel() {
        let (tx, _commands) = mpsc::channel(8);
        let (outbox, rx) = ChatOutbox::new(tx, IntCounter::new("d", "d").unwrap());
        let (outgoing, lines) = mpsc::channel(OUTGOING_QUEUE);
        let (_closed_tx, closed) = oneshot::channel();
        let pump = ChatPump {
            session: SessionId(7),
            lines,
            closed,
            outbox,
        };
        drop(outgoing);
        pump.run().await;
        assert_eq!(rx.try_recv().unwrap(), (SessionId(7), ChatWrite::Close));
    }
}

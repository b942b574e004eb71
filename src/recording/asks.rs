//! The go-live asks in flight ("does this stream's channel record?"): each in a task of
//! its own, so one the control plane is slow to answer delays no other stream's
//! recording; at most [`MAX_ASKING`] at once (the rest wait for a turn), and each given
//! up after its timeout (an unanswered ask: asked again later, `Lifecycle::unanswered`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use control_plane::recording::RecordLayers;
use tokio::sync::Semaphore;
use tokio::task::{Id, JoinSet};

/// The library's answer: which layers to record (none: it does not record), or why there
/// is none.
pub type Answer = Result<Option<RecordLayers>, String>;

/// Asks waiting for their answer at once, at most.
const MAX_ASKING: usize = 16;

/// The asks in flight, one per stream (`Lifecycle` asks again only after an answer).
pub struct Asks {
    tasks: JoinSet<(String, Answer)>,
    /// Which stream each task asks about (a task that panicked names none).
    streams: HashMap<Id, String>,
    turns: Arc<Semaphore>,
    timeout: Duration,
}

impl Asks {
    /// Each ask is given up `timeout` after its turn came.
    pub fn new(timeout: Duration) -> Self {
        Asks {
            tasks: JoinSet::new(),
            streams: HashMap::new(),
            turns: Arc::new(Semaphore::new(MAX_ASKING)),
            timeout,
        }
    }

    /// Starts asking `ask` about `stream`; its answer comes from [`Self::next`].
    pub fn ask<F>(&mut self, stream: String, ask: F)
    where
        F: Future<Output = Answer> + Send + 'static,
    {
        let (turns, timeout, name) = (self.turns.clone(), self.timeout, stream.clone());
        let task = self.tasks.spawn(async move {
            // The semaphore is never closed: a turn always comes.
            let _turn = turns.acquire_owned().await;
            let answer = tokio::time::timeout(timeout, ask)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
            (stream, answer)
        });
        self.streams.insert(task.id(), name);
    }

    /// The next answer, as it comes (whichever stream's); pending while nothing is asked.
    pub async fn next(&mut self) -> (String, Answer) {
        loop {
            match self.tasks.join_next_with_id().await {
                None => std::future::pending().await,
                Some(Ok((id, answer))) => {
                    self.streams.remove(&id);
                    return answer;
                }
                Some(Err(e)) => {
                    if let Some(stream) = self.streams.remove(&e.id()) {
                        return (stream, Err(format!("the ask failed: {e}")));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On tokio's paused clock: time moves only when every task waits on it.
    #[tokio::test(start_paused = true)]
    async fn a_stream_whose_answer_hangs_delays_no_other_and_is_given_up() {
        let mut asks = Asks::new(Duration::from_secs(5));
        asks.ask("slow".into(), std::future::pending());
        asks.ask("fast".into(), async { Ok(Some(RecordLayers::Top)) });
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            asks.next().await,
            ("fast".into(), Ok(Some(RecordLayers::Top)))
        );
        assert_eq!(t0.elapsed(), Duration::ZERO, "not behind the slow one");
        let (stream, answer) = asks.next().await;
        assert_eq!(stream, "slow");
        assert!(answer.is_err(), "{answer:?}");
        assert_eq!(t0.elapsed(), Duration::from_secs(5), "given up after 5 s");
    }

    #[tokio::test(start_paused = true)]
    async fn asks_beyond_the_bound_wait_for_a_turn() {
        let mut asks = Asks::new(Duration::from_secs(5));
        for i in 0..MAX_ASKING {
            asks.ask(format!("hung-{i}"), std::future::pending());
        }
        asks.ask("next".into(), async { Ok(None) });
        let t0 = tokio::time::Instant::now();
        let mut answered = Vec::new();
        for _ in 0..=MAX_ASKING {
            answered.push(asks.next().await);
        }
        // The hung ones are given up after 5 s, then the last one's turn comes.
        assert_eq!(answered.last(), Some(&("next".into(), Ok(None))));
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }
}

//! The connection's datagram send queue.
//!
//! Live media loses its worth in a few hundred milliseconds, so the queue holds about
//! [`SendQueue::HOLD`] of the link's estimated rate and, when full, drops the oldest packet of
//! the least important class rather than the newest (quinn-proto's `Datagrams::send` does the
//! same for one class). Classes, most important first: audio, the base video layer (the
//! stream's lowest-ranked layer, whatever its wire number), higher video layers. A viewer
//! keeps audio and a watchable base layer while a link is congested.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use crate::wire::Layer;

/// Priority class of a datagram; lower value goes out first and is dropped last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Audio.
    Audio = 0,
    /// The base (lowest-ranked) video layer.
    Base = 1,
    /// Any higher video layer.
    Higher = 2,
}

impl Class {
    /// The class of a layer's packets when `base` is the stream's lowest-ranked video layer.
    /// A wire layer number is not a rank (it is the origin's encoding index, in order of
    /// arrival; a server-made ladder's rungs come after their full-size source), so the
    /// base is whichever layer the parent lists first.
    pub fn of(layer: Layer, base: Layer) -> Class {
        if layer == Layer::AUDIO {
            Class::Audio
        } else if layer == base {
            Class::Base
        } else {
            Class::Higher
        }
    }
}

const CLASSES: usize = 3;

/// Drop-oldest, prioritised queue of datagrams with a byte budget that follows the rate.
#[derive(Debug)]
pub struct SendQueue {
    queues: [VecDeque<Bytes>; CLASSES],
    bytes: usize,
    budget: usize,
    drops: [u64; CLASSES],
}

impl SendQueue {
    /// How much of the link's rate the queue holds.
    pub const HOLD: Duration = Duration::from_millis(150);
    /// Smallest budget, so a slow or unmeasured link still queues a few packets.
    pub const MIN_BUDGET: usize = 16 * 1024;
    /// Largest budget (about 150 ms at 200 Mbit/s).
    pub const MAX_BUDGET: usize = 4 * 1024 * 1024;
    /// Most datagrams queued whatever their size: bounds the memory of tiny packets.
    pub const MAX_PACKETS: usize = 8192;

    /// A queue for a link of `rate_bps` bits per second.
    pub fn new(rate_bps: u64) -> SendQueue {
        let mut q = SendQueue {
            queues: Default::default(),
            bytes: 0,
            budget: 0,
            drops: [0; CLASSES],
        };
        q.set_rate(rate_bps);
        q
    }

    /// A new rate estimate: the budget becomes [`Self::HOLD`] of it; if it shrank, the
    /// least important, oldest packets go now.
    pub fn set_rate(&mut self, rate_bps: u64) {
        let bytes = rate_bps.saturating_mul(Self::HOLD.as_millis() as u64) / 8 / 1000;
        self.budget = (bytes.min(Self::MAX_BUDGET as u64) as usize).max(Self::MIN_BUDGET);
        while self.bytes > self.budget {
            if !self.drop_lowest() {
                break;
            }
        }
    }

    /// The byte budget now.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && self.len() == 0
    }

    /// Datagrams of `class` dropped so far (evicted, or refused on arrival).
    pub fn drops(&self, class: Class) -> u64 {
        self.drops[class as usize]
    }

    /// Queues a datagram. To make room it drops the oldest packets of the least important
    /// class present; if that class is more important than `class`, the new packet is the
    /// one dropped. Returns whether it was queued.
    pub fn push(&mut self, class: Class, datagram: Bytes) -> bool {
        let len = datagram.len();
        if len > self.budget {
            self.drops[class as usize] += 1;
            return false;
        }
        while self.bytes + len > self.budget || self.len() >= Self::MAX_PACKETS {
            let lowest = self.lowest_present();
            match lowest {
                Some(c) if c >= class => {
                    self.drop_lowest();
                }
                _ => {
                    self.drops[class as usize] += 1;
                    return false;
                }
            }
        }
        self.bytes += len;
        self.queues[class as usize].push_back(datagram);
        true
    }

    /// The size of the datagram [`Self::pop`] would return.
    pub fn peek_len(&self) -> Option<usize> {
        self.queues.iter().find_map(|q| q.front()).map(Bytes::len)
    }

    /// The next datagram to send: most important class first, oldest first within it.
    pub fn pop(&mut self) -> Option<Bytes> {
        let q = self.queues.iter_mut().find(|q| !q.is_empty())?;
        let d = q.pop_front()?;
        self.bytes -= d.len();
        Some(d)
    }

    fn lowest_present(&self) -> Option<Class> {
        [Class::Higher, Class::Base, Class::Audio]
            .into_iter()
            .find(|c| !self.queues[*c as usize].is_empty())
    }

    fn drop_lowest(&mut self) -> bool {
        let Some(c) = self.lowest_present() else {
            return false;
        };
        if let Some(d) = self.queues[c as usize].pop_front() {
            self.bytes -= d.len();
            self.drops[c as usize] += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(tag: u8, len: usize) -> Bytes {
        let mut v = vec![0u8; len];
        v[0] = tag;
        Bytes::from(v)
    }

    #[test]
    fn budget_follows_the_rate_within_bounds() {
        let mut q = SendQueue::new(8_000_000); // 8 Mbit/s: 150 KB
        assert_eq!(q.budget(), 150_000);
        q.set_rate(0);
        assert_eq!(q.budget(), SendQueue::MIN_BUDGET);
        q.set_rate(u64::MAX);
        assert_eq!(q.budget(), SendQueue::MAX_BUDGET);
    }

    #[test]
    fn a_shrinking_rate_drops_least_important_oldest_first() {
        let mut q = SendQueue::new(8_000_000);
        for i in 0..50 {
            assert!(q.push(Class::Audio, pkt(i, 1000)));
            assert!(q.push(Class::Higher, pkt(100 + i, 1000)));
        }
        q.set_rate(1_600_000); // 30 KB
        assert!(q.bytes() <= q.budget());
        assert_eq!(q.drops(Class::Higher), 50);
        assert_eq!(q.drops(Class::Audio), 20);
        // The oldest audio went: 20..50 remain, in order.
        assert_eq!(q.pop().unwrap()[0], 20);
    }

    #[test]
    fn overload_keeps_audio_then_base_and_drops_oldest() {
        let mut q = SendQueue::new(0); // 16 KiB budget: 16 packets of 1 KiB
        for i in 0..40u8 {
            q.push(Class::Higher, pkt(i, 1024));
            q.push(Class::Base, pkt(i, 1024));
            if i % 4 == 0 {
                q.push(Class::Audio, pkt(i, 1024));
            }
        }
        assert!(q.bytes() <= q.budget());
        assert_eq!(q.drops(Class::Audio), 0);
        assert_eq!(q.drops(Class::Higher), 40);
        // 10 audio, 6 base: the newest base packets survived.
        let out: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|d| d[0]).collect();
        let audio: Vec<u8> = (0..40).step_by(4).collect();
        assert_eq!(&out[..10], &audio[..]);
        assert_eq!(&out[10..], &[34, 35, 36, 37, 38, 39]);
        assert_eq!(q.drops(Class::Base), 34);
    }

    #[test]
    fn a_full_queue_of_better_packets_refuses_a_worse_one() {
        let mut q = SendQueue::new(0);
        for i in 0..16 {
            assert!(q.push(Class::Audio, pkt(i, 1024)));
        }
        assert!(!q.push(Class::Base, pkt(99, 1024)));
        assert_eq!(q.drops(Class::Base), 1);
        assert_eq!(q.drops(Class::Audio), 0);
        // Same class: the oldest goes, the new one stays.
        assert!(q.push(Class::Audio, pkt(16, 1024)));
        assert_eq!(q.pop().unwrap()[0], 1);
        assert!(!q.push(Class::Audio, pkt(0, SendQueue::MIN_BUDGET + 1)));
    }

    #[test]
    fn pop_empties_and_accounts_bytes() {
        let mut q = SendQueue::new(1_000_000);
        q.push(Class::Higher, pkt(3, 10));
        q.push(Class::Base, pkt(2, 10));
        q.push(Class::Audio, pkt(1, 10));
        assert_eq!(q.len(), 3);
        let out: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|d| d[0]).collect();
        assert_eq!(out, [1, 2, 3]);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }
}

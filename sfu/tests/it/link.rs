//! A seeded, lossy, reordering link and a virtual clock: no sockets, no sleeps.

use std::time::{Duration, Instant};

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn seed(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
}

/// Delivers items with `loss` probability of dropping and `reorder` probability of
/// swapping one with the next.
pub struct Link<T> {
    rng: Rng,
    loss: f64,
    reorder: f64,
    held: Option<T>,
    pub lost: usize,
}

impl<T> Link<T> {
    pub fn new(seed: u64, loss: f64, reorder: f64) -> Self {
        Link {
            rng: Rng::seed(seed),
            loss,
            reorder,
            held: None,
            lost: 0,
        }
    }

    /// Sends one item; returns what comes out (0, 1 or 2 items).
    pub fn send(&mut self, item: T) -> Vec<T> {
        if self.rng.chance(self.loss) {
            self.lost += 1;
            return self.held.take().into_iter().collect();
        }
        if self.held.is_none() && self.rng.chance(self.reorder) {
            self.held = Some(item);
            return Vec::new();
        }
        let mut out = vec![item];
        out.extend(self.held.take());
        out
    }
}

/// A clock that only moves when told.
pub struct Clock {
    pub now: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            now: Instant::now(),
        }
    }
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

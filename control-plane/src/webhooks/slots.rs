//! How many deliveries may be in flight: overall, and per endpoint. A hanging endpoint
//! holds at most its own share, so the others' deliveries always find a free slot. Pure
//! bookkeeping; the dispatcher takes a slot before it sends and gives it back after.

use std::collections::HashMap;

/// Slots in use, by endpoint.
#[derive(Debug)]
pub struct Slots {
    per_endpoint: usize,
    overall: usize,
    used: HashMap<String, usize>,
    total: usize,
}

impl Slots {
    /// At most `per_endpoint` at once to one endpoint and `overall` in all (each at least 1).
    pub fn new(per_endpoint: usize, overall: usize) -> Slots {
        Slots {
            per_endpoint: per_endpoint.max(1),
            overall: overall.max(1),
            used: HashMap::new(),
            total: 0,
        }
    }

    /// Takes a slot for `endpoint`; false when it or the whole is full.
    pub fn take(&mut self, endpoint: &str) -> bool {
        let used = self.used.get(endpoint).copied().unwrap_or(0);
        if used >= self.per_endpoint || self.total >= self.overall {
            return false;
        }
        self.used.insert(endpoint.to_owned(), used + 1);
        self.total += 1;
        true
    }

    /// Gives back a slot taken for `endpoint`.
    pub fn give_back(&mut self, endpoint: &str) {
        if let Some(n) = self.used.get_mut(endpoint) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.used.remove(endpoint);
            }
        }
    }

    /// Free slots overall.
    pub fn free(&self) -> usize {
        self.overall - self.total
    }

    /// Endpoints with no free slot: not worth claiming deliveries for now.
    pub fn full(&self) -> Vec<String> {
        self.used
            .iter()
            .filter(|(_, n)| **n >= self.per_endpoint)
            .map(|(e, _)| e.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_endpoint_leaves_room_for_the_others() {
        let mut s = Slots::new(2, 5);
        assert!(s.take("dead") && s.take("dead"));
        assert!(!s.take("dead"), "its share is used");
        assert_eq!(s.full(), ["dead"]);
        assert!(s.take("a") && s.take("b") && s.take("a"));
        assert_eq!(s.free(), 0);
        assert!(!s.take("c"), "full overall");
        s.give_back("a");
        assert!(s.take("c"));
        s.give_back("dead");
        assert!(s.full().is_empty());
        s.give_back("nobody");
        assert_eq!(
            s.free(),
            1,
            "giving back what was not taken changes nothing"
        );
    }
}

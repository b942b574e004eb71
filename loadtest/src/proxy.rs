//! An impairing UDP proxy: delay, jitter, random loss and a rate cap (constant or on a
//! schedule, with a token bucket's burst if asked), seeded, in both directions. Each client gets its own upstream socket, so the
//! server still sees one address per client; the proxy's listening address replaces the
//! server's in the SDP.

use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::schedule::{Origin, RateSchedule};

/// What the path does to each datagram (applied on each direction on its own).
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Uniform extra delay, 0 up to this (datagrams can be reordered).
    pub jitter: Duration,
    /// Share of datagrams dropped, 0 to 1.
    pub loss: f64,
    /// Bits per second the path carries over time (empty or 0: no cap); the queue holds
    /// at most 200 ms. Both directions follow the same schedule, each on its own link:
    /// upstream (the viewer's RTCP) is far below any rate a test would set.
    pub rate: RateSchedule,
    /// Bytes the capped link lets through at once after a quiet spell, as a token bucket
    /// (Linux `tbf`'s `burst`) does: 0, the default, spaces every datagram at the rate.
    pub burst: u64,
    /// Seed of the loss and jitter draws.
    pub seed: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            rate: RateSchedule::default(),
            burst: 0,
            seed: 1,
        }
    }
}

impl std::str::FromStr for Impairment {
    type Err = String;

    /// `delay=30ms,jitter=5ms,loss=1%,rate=2mbit,burst=16kb,seed=7` (any subset); the rate
    /// may be a schedule, `rate=3mbit@0s,400kbit@10s`, whose steps run on up to the next
    /// `key=`; the burst is in bytes, `kb` 1,024 of them (as `tc` counts).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut imp = Impairment::default();
        // The rate's text, gathered over its comma-separated steps, parsed at the end.
        let mut rate: Option<String> = None;
        let mut in_rate = false;
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                match &mut rate {
                    Some(r) if in_rate => {
                        r.push(',');
                        r.push_str(part);
                        continue;
                    }
                    _ => return Err(format!("{part}: expected key=value")),
                }
            };
            in_rate = k == "rate";
            let ms = |v: &str| -> Result<Duration, String> {
                let n: f64 = v
                    .trim_end_matches("ms")
                    .parse()
                    .map_err(|_| format!("{part}: expected milliseconds like 30ms"))?;
                Ok(Duration::from_secs_f64(n / 1000.0))
            };
            match k {
                "delay" => imp.delay = ms(v)?,
                "jitter" => imp.jitter = ms(v)?,
                "loss" => {
                    let n: f64 = v
                        .trim_end_matches('%')
                        .parse()
                        .map_err(|_| format!("{part}: expected a percentage like 1%"))?;
                    if !(0.0..=100.0).contains(&n) {
                        return Err(format!("{part}: loss must be 0 to 100%"));
                    }
                    imp.loss = n / 100.0;
                }
                "rate" if rate.is_some() => return Err(format!("{part}: rate is given twice")),
                "rate" => rate = Some(v.to_owned()),
                "burst" => {
                    let (n, unit) = match v.strip_suffix("kb") {
                        Some(n) => (n, 1024),
                        None => (v.strip_suffix('b').unwrap_or(v), 1),
                    };
                    let n: u64 = n
                        .parse()
                        .map_err(|_| format!("{part}: expected bytes like 16kb"))?;
                    imp.burst = n
                        .checked_mul(unit)
                        .ok_or_else(|| format!("{part}: too large"))?;
                }
                "seed" => {
                    imp.seed = v
                        .parse()
                        .map_err(|_| format!("{part}: expected a number"))?
                }
                _ => {
                    return Err(format!(
                        "{part}: unknown key (delay, jitter, loss, rate, burst, seed)"
                    ))
                }
            }
        }
        if let Some(r) = rate {
            imp.rate = r.parse().map_err(|e| format!("rate={r}: {e}"))?;
        }
        Ok(imp)
    }
}

/// A datagram waiting for its departure time.
struct Due {
    at: Instant,
    order: u64,
    to: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // A min-heap on (time, arrival order).
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

/// Most datagrams one direction queues.
const MAX_QUEUE: usize = 100_000;

/// One direction of the path: decides each datagram's fate and sends it when due.
struct Lane {
    imp: Impairment,
    rng: SmallRng,
    queue: BinaryHeap<Due>,
    order: u64,
    /// When the rate-capped link is free again.
    free_at: Instant,
    dropped: u64,
}

impl Lane {
    fn new(imp: Impairment, salt: u64) -> Lane {
        Lane {
            rng: SmallRng::seed_from_u64(imp.seed ^ salt),
            imp,
            queue: BinaryHeap::new(),
            order: 0,
            free_at: Instant::now(),
            dropped: 0,
        }
    }

    /// Takes a datagram at `now` onto a link that carries `rate_bps` (0: no cap) at the
    /// moment; what is already queued keeps the rate it was admitted at.
    fn admit(&mut self, now: Instant, rate_bps: u64, to: SocketAddr, data: Vec<u8>) {
        if self.imp.loss > 0.0 && self.rng.random::<f64>() < self.imp.loss {
            self.dropped += 1;
            return;
        }
        let mut at = now;
        if rate_bps > 0 {
            let time_of = |bytes: f64| Duration::from_secs_f64(bytes * 8.0 / rate_bps as f64);
            let wire = time_of(data.len() as f64 + 28.0);
            // The bucket: a link idle for a while has the credit of up to `burst` bytes.
            let credit = time_of(self.imp.burst as f64);
            let start = self.free_at.max(now.checked_sub(credit).unwrap_or(now));
            if start > now + Duration::from_millis(200) {
                self.dropped += 1; // the bottleneck's queue is full
                return;
            }
            self.free_at = start + wire;
            at = self.free_at.max(now);
        }
        at += self.imp.delay;
        if !self.imp.jitter.is_zero() {
            at += self.imp.jitter.mul_f64(self.rng.random::<f64>());
        }
        if self.queue.len() >= MAX_QUEUE {
            self.dropped += 1;
            return;
        }
        self.order += 1;
        self.queue.push(Due {
            at,
            order: self.order,
            to,
            data,
        });
    }
}

/// A running proxy in front of one server address; it stops when its last clone is
/// dropped.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Where clients send instead of the server.
    pub addr: SocketAddr,
    _tasks: Arc<Tasks>,
}

/// The proxy's listener and scheduler (which owns the upstream readers), aborted on drop.
#[derive(Debug)]
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

enum Msg {
    /// From a client, for the server.
    Up(SocketAddr, Vec<u8>),
    /// From the server, for a client.
    Down(SocketAddr, Vec<u8>),
}

impl Proxy {
    /// Listens on `bind` (port 0 for any) and relays to `server` through `imp`, its rate
    /// schedule counted from `origin` once that is set.
    pub async fn start(
        bind: SocketAddr,
        server: SocketAddr,
        imp: Impairment,
        origin: Origin,
    ) -> std::io::Result<Proxy> {
        let listen = Arc::new(UdpSocket::bind(bind).await?);
        let addr = listen.local_addr()?;
        let (tx, mut rx) = mpsc::channel::<Msg>(4096);
        // Client → proxy: hand to the scheduler.
        let listener = {
            let (listen, tx) = (listen.clone(), tx.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = listen.recv_from(&mut buf).await {
                    if tx.send(Msg::Up(from, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            })
        };
        // The scheduler: both lanes, their queues, and one upstream socket per client.
        let scheduler = tokio::spawn(async move {
            let schedule = imp.rate.clone();
            // The upstream sockets' readers, aborted with the scheduler.
            let mut readers = tokio::task::JoinSet::new();
            let mut up = Lane::new(imp.clone(), 0x5eed_0001);
            let mut down = Lane::new(imp, 0x5eed_0002);
            let mut uplinks: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            loop {
                let next = [up.queue.peek(), down.queue.peek()]
                    .into_iter()
                    .flatten()
                    .map(|d| d.at)
                    .min();
                let msg = match next {
                    Some(at) => tokio::select! {
                        m = rx.recv() => m,
                        _ = tokio::time::sleep_until(at) => None,
                    },
                    None => rx.recv().await,
                };
                let now = Instant::now();
                let rate = schedule.rate_at_instant(origin.get().copied(), now.into_std());
                match msg {
                    Some(Msg::Up(client, data)) => {
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            uplinks.entry(client)
                        {
                            let Ok(sock) = UdpSocket::bind((bind.ip(), 0)).await else {
                                continue;
                            };
                            let sock = Arc::new(sock);
                            let tx = tx.clone();
                            let reader = sock.clone();
                            readers.spawn(async move {
                                let mut buf = vec![0u8; 2048];
                                while let Ok((n, _)) = reader.recv_from(&mut buf).await {
                                    if tx.send(Msg::Down(client, buf[..n].to_vec())).await.is_err()
                                    {
                                        break;
                                    }
                                }
                            });
                            slot.insert(sock);
                        }
                        up.admit(now, rate, client, data);
                    }
                    Some(Msg::Down(client, data)) => down.admit(now, rate, client, data),
                    None => {}
                }
                let now = Instant::now();
                while up.queue.peek().is_some_and(|d| d.at <= now) {
                    let Some(d) = up.queue.pop() else { break };
                    if let Some(sock) = uplinks.get(&d.to) {
                        let _ = sock.send_to(&d.data, server).await;
                    }
                }
                while down.queue.peek().is_some_and(|d| d.at <= now) {
                    let Some(d) = down.queue.pop() else { break };
                    let _ = listen.send_to(&d.data, d.to).await;
                }
            }
        });
        Ok(Proxy {
            addr,
            _tasks: Arc::new(Tasks(vec![listener, scheduler])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let i: Impairment = "delay=30ms,jitter=5ms,loss=1.5%,rate=2mbit,seed=7"
            .parse()
            .unwrap();
        assert_eq!(i.delay, Duration::from_millis(30));
        assert_eq!(i.jitter, Duration::from_millis(5));
        assert!((i.loss - 0.015).abs() < 1e-12);
        assert_eq!(i.rate, RateSchedule::constant(2_000_000));
        assert_eq!(i.seed, 7);
        // A schedule runs on over its commas up to the next key.
        let i: Impairment = "delay=20ms,rate=3mbit@0s,400kbit@10s,loss=1%"
            .parse()
            .unwrap();
        assert_eq!(i.delay, Duration::from_millis(20));
        assert_eq!(i.rate, "3mbit@0s,400kbit@10s".parse().unwrap());
        assert!((i.loss - 0.01).abs() < 1e-12);
        let err = |s: &str| s.parse::<Impairment>().unwrap_err();
        assert_eq!(
            err("delay=5ms,400kbit@10s"),
            "400kbit@10s: expected key=value"
        );
        assert!(err("rate=3mbit@0s,400kbit@x")
            .starts_with("rate=3mbit@0s,400kbit@x: x: expected a time"));
        assert!(err("rate=1mbit,rate=2mbit").contains("twice"));
        assert_eq!(
            "rate=400kbit,burst=16kb"
                .parse::<Impairment>()
                .unwrap()
                .burst,
            16_384
        );
        assert_eq!("burst=1500b".parse::<Impairment>().unwrap().burst, 1_500);
        assert!(err("burst=lots").contains("expected bytes"));
        assert!("loss=200%".parse::<Impairment>().is_err());
        assert!("delay=fast".parse::<Impairment>().is_err());
        assert!("colour=red".parse::<Impairment>().is_err());
    }

    /// When each of `n` datagrams of 1,200 bytes on the wire, admitted at once onto a
    /// 400 kbit/s link that was idle for a second, leaves (ms after their admission).
    fn departures(burst: u64, n: usize) -> Vec<u128> {
        let imp = Impairment {
            burst,
            ..Impairment::default()
        };
        let mut lane = Lane::new(imp, 0);
        let now = lane.free_at + Duration::from_secs(1);
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..n {
            lane.admit(now, 400_000, to, vec![0; 1172]);
        }
        let mut at: Vec<u128> = std::iter::from_fn(|| lane.queue.pop())
            .map(|d| (d.at - now).as_millis())
            .collect();
        at.sort_unstable();
        at
    }

    #[test]
    fn a_burst_passes_a_bucketful_at_once_then_the_rate_spaces_the_rest() {
        // 24 ms per datagram at 400 kbit/s.
        assert_eq!(departures(0, 3), [24, 48, 72]);
        // 16 KiB of credit: 13 datagrams (15,600 bytes) leave at once; the 14th goes once
        // the bucket has refilled what the credit lacked (416 bytes, 8.3 ms), then the rate.
        let at = departures(16_384, 15);
        assert_eq!(at[..13], [0; 13]);
        assert_eq!(at[13..], [8, 32]);
    }
}

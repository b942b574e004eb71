//! `cascade loadtest --chat-viewers N`: chat clients instead of media viewers. N WebSocket
//! readers of one room (spread over `--chat-targets`, nodes sharing a database and a
//! NATS), one account posting `--chat-rate` messages a second over REST, and a report of
//! what arrived: every message at every reader, and the delay from the POST leaving to
//! the message arriving, on this machine's clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::report::{proc_usage, Quantiles};

/// Chat options of `cascade loadtest`.
#[derive(Debug, Clone, Args, Default)]
pub struct ChatOptions {
    /// Chat clients (WebSocket readers of the room `--stream`); with any, the run is a chat
    /// load test and no media flows.
    #[arg(long, default_value_t = 0)]
    pub chat_viewers: usize,
    /// Messages posted per second, over REST by one account.
    #[arg(long, default_value_t = 20.0)]
    pub chat_rate: f64,
    /// Base URLs the chat clients are spread over, round-robin (nodes sharing one database
    /// and one NATS) [default: --target]; posts go to --target.
    #[arg(long, value_delimiter = ',')]
    pub chat_targets: Vec<String>,
    /// The posting account, `username:password`; it owns the room (made if missing), so
    /// slow mode and flood limits do not apply to it (every other check does)
    /// [default: sign up `lt<pid>`].
    #[arg(long)]
    pub chat_account: Option<String>,
}

/// What a chat run measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ChatReport {
    /// Readers asked for and connected (welcome and history received).
    pub readers: usize,
    /// Of them, connected.
    pub connected: usize,
    /// Messages posted in the window, and refused.
    pub posted: u64,
    /// Posts that did not answer 201.
    pub post_errors: u64,
    /// Deliveries expected (posted × connected readers) and received.
    pub expected: u64,
    /// Received.
    pub delivered: u64,
    /// POST sent to message received, milliseconds.
    pub delay_ms: Quantiles,
    /// The longest delay.
    pub delay_max_ms: f64,
    /// POST round trip (stored and published), milliseconds.
    pub post_ms: Quantiles,
    /// CPU of the targets on this machine over the window, cores.
    pub node_cpu_cores: Option<f64>,
    /// Their resident memory at the end, MiB.
    pub node_rss_mib: Option<f64>,
    /// Window, seconds.
    pub duration_s: f64,
}

impl ChatReport {
    /// A human table.
    pub fn table(&self) -> String {
        let share = if self.expected > 0 {
            self.delivered as f64 / self.expected as f64 * 100.0
        } else {
            0.0
        };
        let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.2} {unit}"));
        format!(
            "chat readers         {}/{}\n\
             posted               {} in {:.1} s ({} refused)\n\
             delivered            {}/{} ({share:.3} %)\n\
             post → receipt ms    p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}\n\
             POST round trip ms   p50 {:.1}  p95 {:.1}  p99 {:.1}\n\
             node CPU             {}\n\
             node memory          {}\n",
            self.connected,
            self.readers,
            self.posted,
            self.duration_s,
            self.post_errors,
            self.delivered,
            self.expected,
            self.delay_ms.p50,
            self.delay_ms.p95,
            self.delay_ms.p99,
            self.delay_max_ms,
            self.post_ms.p50,
            self.post_ms.p95,
            self.post_ms.p99,
            opt(self.node_cpu_cores, "cores"),
            opt(self.node_rss_mib, "MiB"),
        )
    }
}

/// Posts carry `lt <micros since the run's origin>`; readers count only these.
const TAG: &str = "lt ";

struct Shared {
    origin: Instant,
    /// Readers count and time messages only while this is set (the window).
    measuring: std::sync::atomic::AtomicBool,
    delays: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    connected: AtomicU64,
}

async fn account(http: &reqwest::Client, api: &str, opts: &ChatOptions) -> Result<String, String> {
    let (user, password) = match &opts.chat_account {
        Some(a) => {
            let (u, p) = a
                .split_once(':')
                .ok_or("--chat-account is username:password")?;
            (u.to_owned(), p.to_owned())
        }
        None => {
            let u = format!("lt{}", std::process::id());
            let p = format!("{u}-password-for-loadtest");
            let _ = http
                .post(format!("{api}/auth/signup"))
                .json(&json!({"email": format!("{u}@loadtest.invalid"), "username": u, "password": p}))
                .send()
                .await;
            (u, p)
        }
    };
    let r = http
        .post(format!("{api}/auth/signin"))
        .json(&json!({"login": user, "password": password}))
        .send()
        .await
        .map_err(|e| format!("signing in: {e}"))?;
    let v: Value = r.json().await.map_err(|e| format!("signing in: {e}"))?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("signing in as {user}: {v}"))
}

async fn reader(
    base: String,
    stream: String,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let url = format!(
        "{}/api/v1/channels/{stream}/chat/ws",
        base.replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    );
    // A small read buffer: tungstenite zeroes it on every read (128 KiB by default).
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let Ok((mut ws, _)) =
        tokio_tungstenite::connect_async_with_config(url, Some(config), false).await
    else {
        return;
    };
    if ws.send(Ws::text(r#"{"type":"hello"}"#)).await.is_err() {
        return;
    }
    let mut local = Vec::new();
    let mut counted = false;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let Some(Ok(Ws::Text(t))) = msg else { break };
        let v: Value = match serde_json::from_str(t.as_str()) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let events = if v["type"] == "batch" {
            v["events"].as_array().cloned().unwrap_or_default()
        } else {
            vec![v]
        };
        let now = shared.origin.elapsed().as_micros() as u64;
        for e in events {
            match e["type"].as_str() {
                Some("history") if !counted => {
                    counted = true;
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                }
                Some("message") if shared.measuring.load(Ordering::Relaxed) => {
                    let text = e["message"]["text"].as_str().unwrap_or_default();
                    if let Some(sent) = text
                        .strip_prefix(TAG)
                        .and_then(|s| s.split(' ').next())
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        local.push(now.saturating_sub(sent));
                    }
                }
                _ => {}
            }
        }
        if local.len() >= 64 {
            flush(&shared, &mut local);
        }
    }
    flush(&shared, &mut local);
}

fn flush(shared: &Shared, local: &mut Vec<u64>) {
    if local.is_empty() {
        return;
    }
    shared
        .delivered
        .fetch_add(local.len() as u64, Ordering::Relaxed);
    let mut h = shared.delays.lock().unwrap_or_else(|e| e.into_inner());
    for d in local.drain(..) {
        let _ = h.record(d.max(1));
    }
}

fn cpu_of(pids: &[String]) -> Option<(f64, f64)> {
    let mut cpu = 0.0;
    let mut rss = 0.0;
    for p in pids {
        let (c, r) = proc_usage(p)?;
        cpu += c;
        rss += r;
    }
    (!pids.is_empty()).then_some((cpu, rss))
}

/// Runs a chat load test.
pub async fn run(opts: &crate::Options) -> Result<ChatReport, String> {
    let chat = &opts.chat;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())?;
    let api = format!("{}/api/v1", opts.target);
    let token = account(&http, &api, chat).await?;
    let r = http
        .post(format!("{api}/channels"))
        .bearer_auth(&token)
        .json(&json!({"slug": opts.stream, "title": "chat load test"}))
        .send()
        .await
        .map_err(|e| format!("creating the room: {e}"))?;
    if !(r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT) {
        return Err(format!("creating the room: {}", r.status()));
    }
    let targets = if chat.chat_targets.is_empty() {
        vec![opts.target.clone()]
    } else {
        chat.chat_targets.clone()
    };
    let mut pids = Vec::new();
    for t in &targets {
        if let Some(p) = crate::local_pid(&http, t).await {
            if !pids.contains(&p) {
                pids.push(p);
            }
        }
    }
    let shared = Arc::new(Shared {
        origin: Instant::now(),
        measuring: false.into(),
        delays: Mutex::new(Histogram::new(3).map_err(|e| e.to_string())?),
        delivered: AtomicU64::new(0),
        connected: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::with_capacity(chat.chat_viewers);
    let gap = Duration::from_secs_f64(1.0 / opts.ramp.max(1.0));
    for i in 0..chat.chat_viewers {
        let base = targets[i % targets.len()].clone();
        readers.push(tokio::spawn(reader(
            base,
            opts.stream.clone(),
            shared.clone(),
            stop_rx.clone(),
        )));
        tokio::time::sleep(gap).await;
        if !opts.quiet && (i + 1) % 1000 == 0 {
            eprintln!("{} chat readers started", i + 1);
        }
    }
    // Settle: every reader has its history, or 10 s passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (shared.connected.load(Ordering::Relaxed) as usize) < chat.chat_viewers
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = shared.connected.load(Ordering::Relaxed);
    if !opts.quiet {
        eprintln!(
            "{connected} chat readers connected; posting {} msg/s for {} s",
            chat.chat_rate, opts.duration
        );
    }
    shared.measuring.store(true, Ordering::Relaxed);
    let before = cpu_of(&pids);
    let started = Instant::now();
    let posted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let posts_h = Arc::new(Mutex::new(
        Histogram::<u64>::new(3).map_err(|e| e.to_string())?,
    ));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / chat.chat_rate.max(0.1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq = 0u64;
    let mut inflight = Vec::new();
    while started.elapsed().as_secs_f64() < opts.duration {
        tick.tick().await;
        seq += 1;
        let (http, api, token, shared) = (http.clone(), api.clone(), token.clone(), shared.clone());
        let (posted, errors, posts_h, stream) = (
            posted.clone(),
            errors.clone(),
            posts_h.clone(),
            opts.stream.clone(),
        );
        inflight.push(tokio::spawn(async move {
            let sent = shared.origin.elapsed().as_micros() as u64;
            let t0 = Instant::now();
            let r = http
                .post(format!("{api}/channels/{stream}/chat/messages"))
                .bearer_auth(token)
                .json(&json!({ "text": format!("{TAG}{sent} #{seq}") }))
                .send()
                .await;
            let ok = matches!(&r, Ok(r) if r.status() == reqwest::StatusCode::CREATED);
            posted.fetch_add(1, Ordering::Relaxed);
            if ok {
                let _ = posts_h
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(t0.elapsed().as_micros() as u64);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
        inflight.retain(|h| !h.is_finished());
    }
    for h in inflight {
        let _ = h.await;
    }
    let window = started.elapsed().as_secs_f64();
    let after = cpu_of(&pids);
    // Late arrivals: wait until deliveries stop growing (at most 5 s).
    let mut last = u64::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = shared.delivered.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    let posted = posted.load(Ordering::Relaxed);
    let post_errors = errors.load(Ordering::Relaxed);
    let h = shared
        .delays
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ph = posts_h.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(ChatReport {
        readers: chat.chat_viewers,
        connected: connected as usize,
        posted,
        post_errors,
        expected: (posted - post_errors) * connected,
        delivered: shared.delivered.load(Ordering::Relaxed),
        delay_ms: Quantiles::of(&h),
        delay_max_ms: h.max() as f64 / 1000.0,
        post_ms: Quantiles::of(&ph),
        node_cpu_cores: before.zip(after).map(|(b, a)| (a.0 - b.0) / window),
        node_rss_mib: after.map(|a| a.1 / 1048576.0),
        duration_s: window,
    })
}

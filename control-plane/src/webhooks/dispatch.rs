//! The driver: one task per process claims due deliveries and sends each in its own
//! task, within [`Slots`] (a hanging endpoint holds only its own share, each attempt at
//! most [`Settings::timeout`]), then records the attempt and the [`RetryPolicy`]'s
//! decision. It sleeps until woken by an emit, a finished send, the next due time or the
//! poll interval, whichever is first.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};

use super::schedule::{Decision, Outcome};
use super::sign::{self, Secret};
use super::slots::Slots;
use super::store::{self, Attempt, Claimed};
use super::{target, Settings, Webhooks};
use crate::db::now_ms;

/// A claim's lease beyond the attempt's timeout, milliseconds.
const LEASE_MARGIN_MS: i64 = 25_000;

/// Deliveries claimed per round at most.
const BATCH: usize = 32;

/// How often old attempts and events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The HTTP client: TLS by rustls on aws-lc-rs with the Mozilla roots, no redirects
/// (a 3xx is a failure, not a trip elsewhere), and, unless private addresses are
/// allowed, names resolved to public addresses only.
pub(super) fn client(settings: &Settings) -> Result<reqwest::Client, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.timeout)
        .timeout(settings.timeout)
        .pool_max_idle_per_host(settings.per_endpoint);
    if !settings.allow_private {
        b = b.dns_resolver(Arc::new(target::PublicOnly));
    }
    b.build().map_err(|e| format!("webhook HTTP client: {e}"))
}

/// Starts the dispatcher; it ends when the [`Webhooks`] is dropped.
pub(super) fn spawn(wh: Weak<Webhooks>, client: reqwest::Client) {
    tokio::spawn(async move {
        let (wake, settings) = match wh.upgrade() {
            Some(w) => (w.wake.clone(), w.settings.clone()),
            None => return,
        };
        let slots = Arc::new(Mutex::new(Slots::new(
            settings.per_endpoint,
            settings.overall,
        )));
        let mut pruned = Instant::now() - PRUNE_EVERY;
        loop {
            let Some(w) = wh.upgrade() else { return };
            let wait = match round(&w, &client, &slots).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!("webhook dispatcher: {e}");
                    settings.poll
                }
            };
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = Instant::now();
                if let Err(e) = store::prune(&w.db, now_ms()).await {
                    tracing::warn!("pruning webhook history: {e}");
                }
            }
            drop(w);
            if !wait.is_zero() {
                let _ = tokio::time::timeout(wait, wake.notified()).await;
            }
        }
    });
}

/// Claims what is due and has a slot, starts sending it; returns how long to sleep.
async fn round(
    w: &Arc<Webhooks>,
    client: &reqwest::Client,
    slots: &Arc<Mutex<Slots>>,
) -> Result<Duration, sqlx::Error> {
    let settings = &w.settings;
    let (free, full) = {
        let s = slots.lock().unwrap_or_else(|p| p.into_inner());
        (s.free(), s.full())
    };
    if free == 0 {
        // A finished send wakes us.
        return Ok(settings.poll);
    }
    let now = now_ms();
    let lease = now + timeout_ms(settings) + LEASE_MARGIN_MS;
    let claimed = store::claim(&w.db, now, lease, free.min(BATCH), &full).await?;
    let got = claimed.len();
    for d in claimed {
        let taken = slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(&d.endpoint_id);
        if !taken {
            store::release(&w.db, &d.id).await?;
            continue;
        }
        let (w, client, slots) = (w.clone(), client.clone(), slots.clone());
        tokio::spawn(async move {
            let endpoint = d.endpoint_id.clone();
            if let Err(e) = attempt(&w, &client, &d).await {
                tracing::warn!("recording a webhook attempt: {e}");
            }
            slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .give_back(&endpoint);
            w.wake.notify_one();
        });
    }
    if got == free.min(BATCH) {
        return Ok(Duration::ZERO);
    }
    let wait = match store::next_due(&w.db).await? {
        Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0).max(5)),
        None => settings.poll,
    };
    Ok(wait.min(settings.poll))
}

fn timeout_ms(settings: &Settings) -> i64 {
    i64::try_from(settings.timeout.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Sends one delivery and records how it went.
async fn attempt(w: &Webhooks, client: &reqwest::Client, d: &Claimed) -> Result<(), sqlx::Error> {
    let started = Instant::now();
    let (status, error) = if d.enabled == 0 {
        (None, Some("endpoint disabled".to_owned()))
    } else {
        match secrets(w, d) {
            Some(secrets) => send(w, client, d, &secrets).await,
            None => (
                None,
                Some("the endpoint's secret cannot be opened".to_owned()),
            ),
        }
    };
    let now = now_ms();
    let outcome = match status {
        Some(s) if (200..300).contains(&s) => Outcome::Delivered,
        _ => Outcome::Failed,
    };
    let decision = if d.enabled == 0 {
        Decision::GiveUp
    } else {
        let attempts = u32::try_from(d.attempts + 1).unwrap_or(u32::MAX);
        w.settings
            .retry
            .decide(outcome, d.created_at, attempts, now, rand::random::<f64>())
    };
    let record = Attempt {
        status,
        error: error.as_deref(),
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        decision,
    };
    store::record(&w.db, d, &record, now).await
}

/// The secrets that sign now: the current one, and the previous within its overlap.
fn secrets(w: &Webhooks, d: &Claimed) -> Option<Vec<Secret>> {
    let context = seal_context(&d.endpoint_id);
    let current = w.secret.open(&d.secret_sealed, &context)?;
    let mut out = vec![Secret::from_bytes(current)];
    if let (Some(old), Some(until)) = (&d.old_secret_sealed, d.old_secret_until) {
        if until > now_ms() {
            if let Some(old) = w.secret.open(old, &context) {
                out.push(Secret::from_bytes(old));
            }
        }
    }
    Some(out)
}

/// What an endpoint's sealed secrets are bound to.
pub(super) fn seal_context(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

/// One POST: the status, or why there is none.
async fn send(
    w: &Webhooks,
    client: &reqwest::Client,
    d: &Claimed,
    secrets: &[Secret],
) -> (Option<u16>, Option<String>) {
    // An IP literal skips the resolver: checked here too.
    if let Err(e) = target::check(&d.url, w.settings.allow_private) {
        return (None, Some(e.to_string()));
    }
    let timestamp = now_ms() / 1000;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static("Cascade-Webhooks/1"));
    let signature = sign::header(secrets, &d.event_id, timestamp, &d.body);
    for (name, value) in [
        ("webhook-id", d.event_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ] {
        match HeaderValue::from_str(&value) {
            Ok(v) => {
                headers.insert(name, v);
            }
            Err(_) => return (None, Some("unsendable header".into())),
        }
    }
    let sent = client
        .post(&d.url)
        .headers(headers)
        .body(d.body.clone())
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let error = (!resp.status().is_success()).then(|| format!("answered {status}"));
            (Some(status), error)
        }
        Err(e) if e.is_timeout() => (
            None,
            Some(format!("no answer within {} ms", timeout_ms(&w.settings))),
        ),
        Err(e) if e.is_connect() => (None, Some(format!("could not connect: {}", cause(&e)))),
        Err(e) => (None, Some(e.without_url().to_string())),
    }
}

/// The innermost cause of a connection error (e.g. "connection refused"), without the URL.
fn cause(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

//! A real webhook receiver on 127.0.0.1: it records what arrives and answers as told
//! (fail the first N, hang, or accept).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio::sync::Notify;

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// 200 to everything.
    Accept,
    /// 500 to the first N requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
}

#[derive(Clone)]
struct Shared {
    behaviour: Behaviour,
    got: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = {
        let mut got = s.got.lock().unwrap();
        got.push(Received {
            id: header(&headers, "webhook-id"),
            timestamp: header(&headers, "webhook-timestamp"),
            signature: header(&headers, "webhook-signature"),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        got.len()
    };
    s.arrived.notify_waiters();
    match s.behaviour {
        Behaviour::Accept => StatusCode::OK,
        Behaviour::FailFirst(k) if n <= k => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::FailFirst(_) => StatusCode::NO_CONTENT,
        Behaviour::Hang => std::future::pending().await,
    }
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let shared = Shared {
            behaviour,
            got: Default::default(),
            arrived: Default::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{addr}/hook"),
            shared,
        }
    }

    /// What arrived so far.
    pub fn got(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} of {n} requests within {within:?}",
                got.len()
            );
            let _ = tokio::time::timeout(left, arrived).await;
        }
    }
}

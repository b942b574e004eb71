//! Cascade's HTTP front for a media node: WHIP and WHEP resources, their events and
//! layer selection, the pages, `/metrics` and `/healthz`.
//!
//! **Boundary:** this crate turns HTTP into calls on [`sfu::Node`] and maps every error
//! once, in [`error::ApiError`]. It holds no media state of its own beyond ETags.

#![warn(missing_docs, unreachable_pub)]

pub mod acme;
pub mod auth;
pub mod chat;
pub mod cues;
pub mod error;
pub mod events;
pub mod headers;
pub mod linger;
pub mod links;
pub mod pages;
pub mod requests;
pub mod resource;
pub mod server;
pub mod sessions;
pub mod tls;
pub mod turn;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Method};
use axum::routing::{get, post};
use axum::Router;
use sfu::Node;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::{Action, Authorizer, Denied, Grant};
pub use chat::{ChatBridge, ChatPeer};
pub use links::IceServer;
pub use sessions::Sessions;
pub use turn::Turn;

/// Largest request body accepted (SDP offers, fragments, JSON).
pub const MAX_BODY: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The media engine.
    pub node: Node,
    /// Who may publish and watch.
    pub auth: Arc<dyn Authorizer>,
    /// STUN/TURN servers announced in `Link` headers.
    pub ice_servers: Arc<Vec<IceServer>>,
    /// TURN servers announced with fresh time-limited credentials.
    pub turn: Option<Arc<Turn>>,
    /// Takes sessions' `chat` data channels; without one, their messages are dropped.
    pub chat: Option<Arc<dyn ChatBridge>>,
    /// What else `/readyz` asks (the control plane's database), and what else `/metrics`
    /// renders (its request and pool metrics).
    pub ops: Option<Arc<dyn Ops>>,
    /// The channel page's Content-Security-Policy when it loads a payment gateway's card
    /// form ([`AppState::with_payment_script`]).
    pub watch_policy: Option<axum::http::HeaderValue>,
    sessions: Sessions,
    http: HttpMetrics,
}

/// The node's own HTTP requests (`cascade_http_request_duration_seconds`), on a registry
/// of their own (the engine's knows nothing of HTTP), rendered after the engine's.
#[derive(Clone)]
struct HttpMetrics {
    registry: prometheus::Registry,
    requests: prometheus::HistogramVec,
}

impl HttpMetrics {
    fn new() -> Self {
        const INVARIANT: &str = "a constant, valid and unique metric definition";
        let registry =
            prometheus::Registry::new_custom(Some("cascade".into()), None).expect(INVARIANT);
        let requests = requests::histogram(
            "http_request_duration_seconds",
            "Requests to the node's HTTP front (WHIP, WHEP, sessions, events, pages, \
             /metrics; not /api/v1): time to the response's head, by route template, method \
             and status",
        );
        registry
            .register(Box::new(requests.clone()))
            .expect(INVARIANT);
        HttpMetrics { registry, requests }
    }
}

/// The parts of readiness and metrics that live outside the media node.
pub trait Ops: Send + Sync + 'static {
    /// `Err(reason)` when something this node needs is unreachable.
    fn ready(&self) -> futures_util::future::BoxFuture<'_, Result<(), String>>;
    /// More Prometheus text for `/metrics`.
    fn metrics(&self) -> String;
}

impl AppState {
    /// State for a node with an authorizer and ICE servers.
    pub fn new(node: Node, auth: Arc<dyn Authorizer>, ice_servers: Vec<IceServer>) -> Self {
        AppState {
            node,
            auth,
            ice_servers: Arc::new(ice_servers),
            turn: None,
            chat: None,
            ops: None,
            watch_policy: headers::watch_policy(headers::CONTENT_SECURITY_POLICY_VALUE, None),
            sessions: Sessions::default(),
            http: HttpMetrics::new(),
        }
    }

    /// Also announces `turn`'s servers, each response with fresh credentials.
    pub fn with_turn(mut self, turn: Option<Turn>) -> Self {
        self.turn = turn.map(Arc::new);
        self
    }

    /// Asks `ops` too in `/readyz` and `/metrics`.
    pub fn with_ops(mut self, ops: Option<Arc<dyn Ops>>) -> Self {
        self.ops = ops;
        self
    }

    /// Lets the channel page load the payment gateway's card form from `js_url`
    /// (Stripe.js, or a stand-in) under the node's policy.
    pub fn with_payment_script(mut self, js_url: Option<&str>) -> Self {
        self.watch_policy = headers::watch_policy(headers::CONTENT_SECURITY_POLICY_VALUE, js_url);
        self
    }

    /// Hands every WHIP/WHEP session's `chat` data channel to `bridge`.
    pub fn with_chat(mut self, bridge: Option<Arc<dyn ChatBridge>>) -> Self {
        self.chat = bridge;
        self
    }

    /// The ICE servers to announce for `stream`: the configured ones, then TURN with
    /// credentials made now.
    pub fn ice_servers_for(&self, stream: &str) -> Vec<IceServer> {
        let mut out = self.ice_servers.as_ref().clone();
        if let Some(t) = &self.turn {
            out.extend(t.servers(stream, std::time::SystemTime::now()));
        }
        out
    }

    /// The node's HTTP request metrics, as Prometheus text.
    pub fn render_http_metrics(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.http.registry.gather())
            .unwrap_or_default()
    }

    /// Who watches in session `id` (a user id), when the grant that opened it said.
    pub fn viewer_of(&self, id: sfu::SessionId) -> Option<String> {
        self.sessions.viewer(id)
    }

    /// Ends the sessions bound to a revoked tag (a key, channel, user or viewer grant).
    pub async fn revoke(&self, tag: &str) -> usize {
        self.sessions.revoke(&self.node, tag).await
    }
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, Default)]
pub enum Cors {
    /// Any origin (the default: WHIP/WHEP players are embedded anywhere).
    #[default]
    Any,
    /// Only these origins.
    Origins(Vec<String>),
}

/// The CORS layer answers every OPTIONS itself; WHIP/WHEP endpoints also advertise what
/// they accept and the ICE servers there (RFC 9725 §4.2, §4.6).
async fn options_headers(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path().to_owned();
    let endpoint = req.method() == Method::OPTIONS
        && path.split('/').filter(|s| !s.is_empty()).count() == 2
        && (path.starts_with("/whip/") || path.starts_with("/whep/"));
    let mut resp = next.run(req).await;
    if endpoint {
        let h = resp.headers_mut();
        h.insert(
            "accept-post",
            axum::http::HeaderValue::from_static(resource::SDP),
        );
        let stream = path.rsplit('/').next().unwrap_or_default();
        links::ice_servers(h, &st.ice_servers_for(stream));
    }
    resp
}

/// The node's HTTP application.
pub fn app(state: AppState, cors: Cors) -> Router {
    let origin = match cors {
        Cors::Any => AllowOrigin::any(),
        Cors::Origins(list) => AllowOrigin::list(list.iter().filter_map(|o| o.parse().ok())),
    };
    let cors = CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::IF_MATCH,
            requests::REQUEST_ID,
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LINK,
            header::RETRY_AFTER,
            HeaderName::from_static("accept-post"),
            requests::REQUEST_ID,
        ]);
    {
        // Sessions that end on their own leave an entry behind: sweep now and then.
        let (sessions, node) = (state.sessions.clone(), state.node.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                sessions.prune(&node);
            }
        });
    }
    let http_requests = state.http.requests.clone();
    let router = Router::new()
        .route("/whip/{stream}", post(resource::whip_post))
        .route("/whep/{stream}", post(resource::whep_post))
        .route(
            "/{kind}/{stream}/{session}",
            axum::routing::delete(resource::delete).patch(resource::patch),
        )
        .route(
            "/whep/{stream}/{session}/events",
            get(events::events).post(events::subscribe),
        )
        .route("/whep/{stream}/{session}/layer", post(events::select_layer))
        .merge(web_pages(state.watch_policy.clone()))
        .route("/api/streams", get(pages::streams))
        .route("/metrics", get(pages::metrics))
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz))
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        // The node's own fallback: merged with the control plane's router (which has only
        // the default one), an unknown path stays the node's, timed here as `other`.
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            options_headers,
        ))
        .layer(axum::middleware::from_fn(headers::security_headers));
    requests::timed(router, http_requests).with_state(state)
}

/// The web app's pages, their scripts and the SDK: what a node serves, and what a
/// cluster's control plane serves too (its pages' WHEP POST is answered with a 307 to an
/// edge).
/// `watch_policy`: the channel page's own Content-Security-Policy (its card form's
/// origins), if it needs one.
pub fn web_pages<S: Clone + Send + Sync + 'static>(
    watch_policy: Option<axum::http::HeaderValue>,
) -> Router<S> {
    Router::new()
        .route("/", get(pages::index))
        .route("/studio", get(pages::studio))
        .route(
            "/watch/{stream}",
            get(move || pages::watch(watch_policy.clone())),
        )
        .route("/signup", get(pages::signup))
        .route("/signin", get(pages::signin))
        .route("/account", get(pages::account))
        .route("/video/{id}", get(pages::video))
        .route("/sdk/{file}", get(pages::sdk))
        .route("/js/{file}", get(pages::script))
}

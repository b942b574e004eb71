//! The pages a node serves (live streams, studio, watch) and the SDK they load. Built
//! by `sdk-js` and embedded at compile time, so `cascade serve` needs no files around it.
//! The pages hold no inline script or style: each loads its module from `/js/` and the
//! shared style sheet, which is what lets [`crate::headers`] forbid everything else.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::AppState;

const INDEX: &str = include_str!("../../sdk-js/pages/index.html");
const STUDIO: &str = include_str!("../../sdk-js/pages/studio.html");
const WATCH: &str = include_str!("../../sdk-js/pages/watch.html");
const SIGNUP: &str = include_str!("../../sdk-js/pages/signup.html");
const SIGNIN: &str = include_str!("../../sdk-js/pages/signin.html");
const ACCOUNT: &str = include_str!("../../sdk-js/pages/account.html");
const VIDEO: &str = include_str!("../../sdk-js/pages/video.html");
const CSS: &str = include_str!("../../sdk-js/pages/pages.css");
const SDK: &str = include_str!("../../sdk-js/dist/cascade.js");
const SDK_CLOCK: &str = include_str!("../../sdk-js/dist/clock.js");
const SDK_ACCOUNT: &str = include_str!("../../sdk-js/dist/account.js");
const SDK_CHAT: &str = include_str!("../../sdk-js/dist/chat.js");
const SDK_CHANNEL: &str = include_str!("../../sdk-js/dist/channel.js");
const SDK_ADS: &str = include_str!("../../sdk-js/dist/ads.js");
const SDK_STATS: &str = include_str!("../../sdk-js/dist/stats.js");
const SDK_ERRORS: &str = include_str!("../../sdk-js/dist/errors.js");
const SDK_MONEY: &str = include_str!("../../sdk-js/dist/money.js");
const SDK_INTEGRATIONS: &str = include_str!("../../sdk-js/dist/integrations.js");
/// tus-js-client's browser build (npm `tus-js-client`, copied by the SDK's build).
const TUS: &str = include_str!("../../sdk-js/dist/tus.min.js");

/// Each page's script, by file name under `/js/`.
const SCRIPTS: [(&str, &str); 15] = [
    ("index.js", include_str!("../../sdk-js/pages/js/index.js")),
    (
        "discover.js",
        include_str!("../../sdk-js/pages/js/discover.js"),
    ),
    (
        "studio-discovery.js",
        include_str!("../../sdk-js/pages/js/studio-discovery.js"),
    ),
    (
        "channel-page.js",
        include_str!("../../sdk-js/pages/js/channel-page.js"),
    ),
    ("studio.js", include_str!("../../sdk-js/pages/js/studio.js")),
    (
        "studio-effects.js",
        include_str!("../../sdk-js/pages/js/studio-effects.js"),
    ),
    ("watch.js", include_str!("../../sdk-js/pages/js/watch.js")),
    ("video.js", include_str!("../../sdk-js/pages/js/video.js")),
    (
        "studio-videos.js",
        include_str!("../../sdk-js/pages/js/studio-videos.js"),
    ),
    ("ui.js", include_str!("../../sdk-js/pages/js/ui.js")),
    ("money.js", include_str!("../../sdk-js/pages/js/money.js")),
    (
        "studio-money.js",
        include_str!("../../sdk-js/pages/js/studio-money.js"),
    ),
    ("signup.js", include_str!("../../sdk-js/pages/js/signup.js")),
    ("signin.js", include_str!("../../sdk-js/pages/js/signin.js")),
    (
        "account.js",
        include_str!("../../sdk-js/pages/js/account.js"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";

/// GET /
pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

/// GET /studio
pub async fn studio() -> Html<&'static str> {
    Html(STUDIO)
}

/// GET /watch/{stream}, with its own Content-Security-Policy when it may load a
/// payment gateway's card form ([`crate::headers::with_payment_script`]).
pub async fn watch(policy: Option<axum::http::HeaderValue>) -> Response {
    match policy {
        Some(p) => ([(header::CONTENT_SECURITY_POLICY, p)], Html(WATCH)).into_response(),
        None => Html(WATCH).into_response(),
    }
}

/// GET /signup
pub async fn signup() -> Html<&'static str> {
    Html(SIGNUP)
}

/// GET /signin
pub async fn signin() -> Html<&'static str> {
    Html(SIGNIN)
}

/// GET /video/{id}: a video's page (recording or upload).
pub async fn video() -> Html<&'static str> {
    Html(VIDEO)
}

/// GET /account: profile, email, password, sessions, deletion.
pub async fn account() -> Html<&'static str> {
    Html(ACCOUNT)
}

/// GET /sdk/{file}: the SDK's ES modules and the pages' style sheet.
pub async fn sdk(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "cascade.js" => (SDK, JS),
        "clock.js" => (SDK_CLOCK, JS),
        "account.js" => (SDK_ACCOUNT, JS),
        "chat.js" => (SDK_CHAT, JS),
        "channel.js" => (SDK_CHANNEL, JS),
        "ads.js" => (SDK_ADS, JS),
        "stats.js" => (SDK_STATS, JS),
        "errors.js" => (SDK_ERRORS, JS),
        "money.js" => (SDK_MONEY, JS),
        "integrations.js" => (SDK_INTEGRATIONS, JS),
        "tus.min.js" => (TUS, JS),
        "pages.css" => (CSS, "text/css; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// GET /js/{file}: the pages' own scripts.
pub async fn script(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match SCRIPTS.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => ([(header::CONTENT_TYPE, JS)], *body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// GET /api/streams: live streams and their viewers.
pub async fn streams(State(st): State<AppState>) -> Json<serde_json::Value> {
    let list: Vec<_> = st
        .node
        .streams()
        .into_iter()
        .map(|(name, s)| {
            json!({
                "name": name,
                "active": s.active,
                "viewers": s.viewers,
                "layers": crate::events::layers_json(&s.layers),
            })
        })
        .collect();
    Json(json!({ "streams": list }))
}

/// GET /metrics
pub async fn metrics(State(st): State<AppState>) -> Response {
    let mut text = st.node.render_metrics();
    text.push_str(&st.render_http_metrics());
    if let Some(ops) = &st.ops {
        text.push_str(&ops.metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// GET /readyz: 200 while the node takes new sessions; 503 with the reasons while it is
/// drained, refusing viewers over its budget, or cannot reach its database.
pub async fn readyz(State(st): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    if *st.node.watch_draining().borrow() {
        reasons.push("draining".to_string());
    }
    if st.node.pressure() == sfu::budget::Pressure::Refuse {
        reasons.push("over its CPU or egress budget: refusing new viewers".to_string());
    }
    if let Some(ops) = &st.ops {
        if let Err(e) = ops.ready().await {
            reasons.push(e);
        }
    }
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": reasons.is_empty(), "reasons": reasons })),
    )
        .into_response()
}

/// GET /healthz
pub async fn healthz(State(st): State<AppState>) -> Response {
    let strings = |addrs: &[std::net::SocketAddr]| -> Vec<String> {
        addrs.iter().map(|a| a.to_string()).collect()
    };
    let media = strings(st.node.media_addrs());
    let tcp = strings(st.node.tcp_addrs());
    // The pid lets a load generator on the same machine read the node's /proc entry.
    let body = json!({
        "status": "ok",
        "sessions": st.node.session_count(),
        "media": media,
        "tcp": tcp,
        "pid": std::process::id(),
    });
    (StatusCode::OK, Json(body)).into_response()
}

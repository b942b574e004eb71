//! Security headers on every response of a node's HTTP front.
//!
//! A signed-in user's tokens live in the pages' localStorage, so the pages allow nothing but
//! the node's own files: no inline script (the pages load theirs from `/js/`), no inline
//! style, no request to another origin, no framing. The same headers go on the SDK, the
//! API and WHIP/WHEP answers: a policy on a JSON or SDP body costs nothing, and no response
//! of the node is then ever sniffed into a page or framed.

use axum::extract::Request;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The pages' Content-Security-Policy.
///
/// - `default-src 'none'`: whatever is not named below (fonts, frames, workers, media and
///   image URLs, objects) is refused. Video plays from a `MediaStream` (`srcObject`),
///   which no directive governs, and WebRTC itself is not a fetch.
/// - `script-src 'self'` and `style-src 'self'`: the SDK, the pages' modules and
///   `pages.css`; no inline code, no `javascript:` URL, no `style` attribute. (Styles
///   set from script through CSSOM, `el.style.x = …`, stay allowed by design.)
/// - `connect-src 'self'`: fetch to `/api/v1`, WHIP and WHEP on this node only, and the
///   chat's WebSocket (`/api/v1/channels/{slug}/chat/ws`): CSP Level 3 lets `'self'`
///   match `ws:`/`wss:` on the page's own host and port, as browsers do (the chat tests
///   in tests/e2e/chat.test.mjs run under this policy).
/// - `img-src 'self'`: the favicon; the pages show no other image.
/// - `base-uri 'none'`, `form-action 'self'`, `frame-ancestors 'none'`: no `<base>`
///   hijack, no form posted elsewhere, no clickjacking of "Go live" from another site.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The same policy on a cluster's control plane, whose pages' WHEP POST is redirected to
/// an edge of another origin: `connect-src` also allows http(s) origins (scripts, styles
/// and everything else stay this origin's only).
pub const CLUSTER_CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; \
     script-src 'self'; style-src 'self'; connect-src 'self' http: https:; img-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `no-referrer`: page URLs name streams (a private channel's name is private), and
/// nothing on the node reads `Referer`; the pages load nothing from other origins anyway.
/// Same-origin `fetch` still sends `Origin` (only form posts would send `Origin: null`,
/// and the pages post no form).
pub const REFERRER_POLICY_VALUE: &str = "no-referrer";

const HEADERS: [(HeaderName, &str); 4] = [
    (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
    (X_FRAME_OPTIONS, "DENY"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (REFERRER_POLICY, REFERRER_POLICY_VALUE),
];

/// Middleware for a cluster's control plane: the cluster's policy, then the rest.
pub async fn cluster_security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            CLUSTER_CONTENT_SECURITY_POLICY_VALUE,
        ));
    let h = resp.headers_mut();
    for (name, value) in HEADERS {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    resp
}

/// Middleware adding the headers to every response that does not set its own; applying
/// it twice (to a merged router) is harmless.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in HEADERS {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    resp
}

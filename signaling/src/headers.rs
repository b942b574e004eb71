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
/// - `img-src 'self'`: the favicon and live thumbnails (`/api/v1/channels/…/thumbnail`).
/// - `media-src 'self'`: a video's page plays its media from `/api/v1/videos/{id}/media`
///   (live video is a `MediaStream`, which needs none).
/// - `base-uri 'none'`, `form-action 'self'`, `frame-ancestors 'none'`: no `<base>`
///   hijack, no form posted elsewhere, no clickjacking of "Go live" from another site.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; media-src 'self'; \
     base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The same policy on a cluster's control plane, whose pages' WHEP POST is redirected to
/// an edge of another origin: `connect-src` also allows http(s) origins (scripts, styles
/// and everything else stay this origin's only).
pub const CLUSTER_CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; \
     script-src 'self'; style-src 'self'; connect-src 'self' http: https:; img-src 'self'; \
     media-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The origin of an `http(s)` URL (`https://js.stripe.com` of
/// `https://js.stripe.com/v3/`), when it is one a policy can name safely.
fn origin(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split('/').next()?;
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| &url[..url.len() - rest.len() + host.len()])
}

/// The channel page's policy: `base` (the node's or the cluster's) plus what the payment
/// gateway's card form needs, loaded from `js_url`. Stripe.js (`https://js.stripe.com`)
/// gets what Stripe documents: its scripts, its frames (the card fields, 3-D Secure) and
/// its API for `connect-src`; a stand-in elsewhere (localstripe in tests serves its
/// script and API from one origin) gets its origin in the same three. `None` when
/// `js_url` is not an http(s) URL.
pub fn with_payment_script(base: &str, js_url: &str) -> Option<HeaderValue> {
    let o = origin(js_url)?;
    let (script, frame, connect) = if o == "https://js.stripe.com" {
        (
            "https://js.stripe.com https://*.js.stripe.com",
            "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com",
            "https://api.stripe.com",
        )
    } else {
        (o, o, o)
    };
    let policy =
        base.replacen(
            "script-src 'self'",
            &format!("script-src 'self' {script}"),
            1,
        )
        .replacen(
            "connect-src 'self'",
            &format!("connect-src 'self' {connect}"),
            1,
        ) + &format!("; frame-src {frame}");
    HeaderValue::from_str(&policy).ok()
}

/// The watch page's policy: `base`, sponsors' logos from any `https:` origin (an image
/// runs no code, and `no-referrer` tells its host nothing of the page), and the payment
/// gateway's card form when `js_url` is set ([`with_payment_script`]). `None` when
/// `js_url` is not an http(s) URL.
pub fn watch_policy(base: &str, js_url: Option<&str>) -> Option<HeaderValue> {
    let base = base.replacen("img-src 'self'", "img-src 'self' https:", 1);
    match js_url {
        Some(u) => with_payment_script(&base, u),
        None => HeaderValue::from_str(&base).ok(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_page_shows_https_images_and_nothing_else_more() {
        let p = watch_policy(CONTENT_SECURITY_POLICY_VALUE, None).unwrap();
        let p = p.to_str().unwrap();
        assert!(p.contains("; img-src 'self' https:;"), "{p}");
        assert_eq!(
            p.replacen(" https:", "", 1),
            CONTENT_SECURITY_POLICY_VALUE,
            "only images"
        );
        let p = watch_policy(
            CONTENT_SECURITY_POLICY_VALUE,
            Some("https://js.stripe.com/v3/"),
        );
        let p = p.unwrap();
        let p = p.to_str().unwrap();
        assert!(
            p.contains("img-src 'self' https:;") && p.contains("frame-src"),
            "{p}"
        );
    }

    #[test]
    fn the_card_form_adds_its_origin_and_nothing_else() {
        let p = with_payment_script(CONTENT_SECURITY_POLICY_VALUE, "https://js.stripe.com/v3/")
            .unwrap();
        let p = p.to_str().unwrap();
        assert!(p.contains("script-src 'self' https://js.stripe.com https://*.js.stripe.com;"));
        assert!(p.contains("connect-src 'self' https://api.stripe.com;"));
        assert!(p.ends_with(
            "; frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com"
        ));
        assert!(p.contains("style-src 'self';"), "{p}");
        let p = with_payment_script(
            CLUSTER_CONTENT_SECURITY_POLICY_VALUE,
            "http://127.0.0.1:8420/js.stripe.com/v3/",
        )
        .unwrap();
        let p = p.to_str().unwrap();
        assert!(
            p.contains("script-src 'self' http://127.0.0.1:8420;"),
            "{p}"
        );
        assert!(
            p.contains("connect-src 'self' http://127.0.0.1:8420 http: https:;"),
            "{p}"
        );
        // Nothing that could close a directive or name a keyword gets in.
        assert!(with_payment_script(CONTENT_SECURITY_POLICY_VALUE, "https://a;b/").is_none());
        assert!(
            with_payment_script(CONTENT_SECURITY_POLICY_VALUE, "https://a 'unsafe-inline'/")
                .is_none()
        );
        assert!(with_payment_script(CONTENT_SECURITY_POLICY_VALUE, "javascript:x").is_none());
        assert!(with_payment_script(CONTENT_SECURITY_POLICY_VALUE, "https:///x").is_none());
    }
}

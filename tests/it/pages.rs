//! The pages and every other response of a node carry the security headers, and the pages
//! hold nothing the Content-Security-Policy would have to allow inline.

use crate::server::Server;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; media-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const PAGES: [&str; 7] = [
    "/",
    "/studio",
    "/watch/some-stream",
    "/signup",
    "/signin",
    "/account",
    "/video/some-video",
];

fn header(resp: &reqwest::blocking::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or("(not text)").to_string())
        .unwrap_or_else(|| format!("(no {name})"))
}

/// Asserts the headers every response of the node carries.
#[track_caller]
fn assert_common(resp: &reqwest::blocking::Response, what: &str) {
    assert_eq!(header(resp, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(resp, "referrer-policy"), "no-referrer", "{what}");
}

/// Asserts the headers of a page (and of the files it loads).
#[track_caller]
fn assert_page_headers(resp: &reqwest::blocking::Response, what: &str) {
    assert_common(resp, what);
    // The watch page also shows sponsors' logos from https origins.
    let csp = if what.starts_with("/watch/") {
        CSP.replacen("img-src 'self'", "img-src 'self' https:", 1)
    } else {
        CSP.to_owned()
    };
    assert_eq!(header(resp, "content-security-policy"), csp, "{what}");
    assert_eq!(header(resp, "x-frame-options"), "DENY", "{what}");
}

/// The `src`/`href` values of a page that point at the node's own files.
fn local_refs(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let value = part.split('"').next().unwrap_or_default();
            if value.starts_with("/sdk/") || value.starts_with("/js/") {
                refs.push(value.to_string());
            }
        }
    }
    refs
}

#[test]
fn every_page_and_its_files_carry_the_security_headers() {
    let server = Server::start(&[]);
    let http = server.http();
    let mut files = Vec::new();
    for path in PAGES {
        let resp = http.get(server.url(path)).send().unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_page_headers(&resp, path);
        assert_eq!(header(&resp, "content-type"), "text/html; charset=utf-8");
        let html = resp.text().unwrap();
        // What the policy forbids must not be in the page: inline scripts, style
        // elements or attributes, inline event handlers.
        let lower = html.to_ascii_lowercase();
        for script in lower.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap_or_default();
            assert!(tag.contains(" src=\"/"), "{path}: inline <script{tag}>");
        }
        assert!(!lower.contains("<style"), "{path} has a <style> element");
        assert!(!lower.contains(" style="), "{path} has a style attribute");
        for handler in [
            " onclick=",
            " onload=",
            " onsubmit=",
            " onerror=",
            " onchange=",
        ] {
            assert!(
                !lower.contains(handler),
                "{path} has an inline{handler} handler"
            );
        }
        let refs = local_refs(&html);
        assert!(
            refs.iter().any(|r| r.starts_with("/js/")),
            "{path} loads its script"
        );
        files.extend(refs);
    }
    files.sort();
    files.dedup();
    for file in ["/sdk/cascade.js", "/sdk/account.js", "/sdk/clock.js"] {
        files.push(file.to_string());
    }
    for file in &files {
        let resp = http.get(server.url(file)).send().unwrap();
        assert_eq!(resp.status(), 200, "{file}");
        assert_page_headers(&resp, file);
        let kind = if file.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(header(&resp, "content-type"), kind, "{file}");
    }
    // An unknown script is a 404, with the headers all the same.
    let resp = http.get(server.url("/js/nope.js")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert_page_headers(&resp, "/js/nope.js");
}

#[test]
fn api_and_media_answers_carry_nosniff_and_a_referrer_policy() {
    let server = Server::start(&["--auth", "accounts"]);
    let http = server.http();
    let checks = [
        ("GET /api/streams", http.get(server.url("/api/streams"))),
        ("GET /healthz", http.get(server.url("/healthz"))),
        ("GET /metrics", http.get(server.url("/metrics"))),
        (
            "POST /whip (refused)",
            http.post(server.url("/whip/someone"))
                .header("content-type", "application/sdp")
                .body("v=0\r\n"),
        ),
        (
            "POST /whep (refused)",
            http.post(server.url("/whep/someone"))
                .header("content-type", "application/sdp")
                .body("v=0\r\n"),
        ),
        (
            "GET /api/v1/channels",
            http.get(server.url("/api/v1/channels")),
        ),
        (
            "POST /api/v1/auth/signin (refused)",
            http.post(server.url("/api/v1/auth/signin"))
                .json(&serde_json::json!({"login": "nobody", "password": "wrong password"})),
        ),
        (
            "GET /api/v1/nope (404)",
            http.get(server.url("/api/v1/nope")),
        ),
        ("GET /nope (404)", http.get(server.url("/nope"))),
    ];
    for (what, req) in checks {
        let resp = req.send().unwrap();
        assert_common(&resp, what);
    }
}

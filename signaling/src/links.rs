//! `Link` headers: ICE servers (RFC 9725 §4.6) and the WHEP extensions a session offers.

use axum::http::{header, HeaderMap, HeaderValue};
use serde::Deserialize;

/// A STUN or TURN server handed to clients.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port` or `turn:host:port?transport=udp`.
    pub url: String,
    /// TURN user name.
    pub username: Option<String>,
    /// TURN password.
    pub credential: Option<String>,
}

/// Adds one `Link: <url>; rel="ice-server"` per configured server.
pub fn ice_servers(h: &mut HeaderMap, servers: &[IceServer]) {
    for s in servers {
        let mut v = format!("<{}>; rel=\"ice-server\"", s.url);
        if let (Some(u), Some(c)) = (&s.username, &s.credential) {
            v.push_str(&format!(
                "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                u.replace('"', ""),
                c.replace('"', "")
            ));
        }
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(header::LINK, v);
        }
    }
}

/// Server-sent events and layer selection, as the WHEP core extensions name them.
pub fn whep_extensions(h: &mut HeaderMap, base: &str) {
    let links = [
        format!(
            "<{base}/events>; rel=\"urn:ietf:params:whep:ext:core:server-sent-events\"; events=\"active,inactive,layers,viewercount\""
        ),
        format!("<{base}/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\""),
    ];
    for l in links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            h.append(header::LINK, v);
        }
    }
}

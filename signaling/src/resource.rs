//! WHIP (RFC 9725) and WHEP resources: POST an offer to the endpoint to create a session,
//! PATCH the session for trickle ICE and ICE restarts, DELETE it to end it.
//! Publishing and watching share every step but the engine call and the WHEP extensions.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sfu::{LayerPref, Role, SessionId};

use crate::auth::{Action, Denied};
use crate::error::ApiError;
use crate::AppState;

/// `application/sdp`, the offer and answer type.
pub const SDP: &str = "application/sdp";
/// `application/trickle-ice-sdpfrag`, the PATCH body type.
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// Stream names: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn check_stream_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "stream names are 1 to 64 letters, digits, '-' or '_'".into(),
        ))
    }
}

/// Requires `Content-Type: want` (parameters such as charset are ignored).
pub fn require_content_type(headers: &HeaderMap, want: &'static str) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match ct {
        Some(ct) if ct == want => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(want)),
    }
}

fn body_text(body: &Bytes) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn role_path(role: Role) -> &'static str {
    match role {
        Role::Publisher => "whip",
        Role::Viewer => "whep",
    }
}

/// The query of a WHEP POST: the layer to start on.
#[derive(Debug, Deserialize, Default)]
pub struct StartLayer {
    /// `low`, `mid`, `high`, `auto`, or a publisher's RID.
    pub layer: Option<String>,
    /// A bearer token carried in the URL: what a placement redirect (307) hands a browser,
    /// which drops `Authorization` on a cross-origin redirect. The header wins.
    pub token: Option<String>,
    /// WHIP: `1` publishes a standby (backup) ingest of the stream, to another origin than
    /// the primary's; the cluster switches to it when the primary stops sending.
    pub backup: Option<String>,
}

/// Maps a layer name from the API to a preference.
pub fn parse_layer(name: &str) -> LayerPref {
    match name {
        "" | "auto" => LayerPref::Auto,
        "low" => LayerPref::Rank(0),
        "mid" | "medium" => LayerPref::Rank(1),
        "high" => LayerPref::Rank(2),
        rid => LayerPref::Rid(rid.to_owned()),
    }
}

fn etag(id: SessionId, generation: u32) -> String {
    format!("\"{id}-{generation}\"")
}

/// POST /whip/{stream}
pub async fn whip_post(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    Query(q): Query<StartLayer>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pref = LayerPref::Auto;
    let token = q.token;
    let backup = q.backup.as_deref() == Some("1");
    let resp = create(
        st.clone(),
        Role::Publisher,
        stream.clone(),
        headers,
        token,
        body,
        pref,
        peer,
    )
    .await?;
    st.node.set_backup_ingest(&stream, backup);
    Ok(resp)
}

/// POST /whep/{stream}
pub async fn whep_post(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    Query(q): Query<StartLayer>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pref = parse_layer(q.layer.as_deref().unwrap_or(""));
    let token = q.token;
    create(st, Role::Viewer, stream, headers, token, body, pref, peer).await
}

#[allow(clippy::too_many_arguments)]
async fn create(
    st: AppState,
    role: Role,
    stream: String,
    headers: HeaderMap,
    query_token: Option<String>,
    body: Bytes,
    pref: LayerPref,
    peer: SocketAddr,
) -> Result<Response, ApiError> {
    check_stream_name(&stream)?;
    require_content_type(&headers, SDP)?;
    let offer = body_text(&body)?;
    let action = match role {
        Role::Publisher => Action::Publish,
        Role::Viewer => Action::View,
    };
    let decided = std::time::Instant::now();
    let grant = st
        .auth
        // A token in the URL was put there by a redirect (a cluster's control plane) for
        // this request: it wins over a header the client kept across the redirect (OBS
        // re-sends its stream key, which a cluster node cannot check offline).
        .authorize(action, &stream, query_token.as_deref().or(bearer(&headers)))
        .await
        .map_err(|d| match d {
            Denied::Unauthenticated => ApiError::Unauthorized,
            Denied::Forbidden => ApiError::Forbidden,
            Denied::NotFound => ApiError::NotFound,
            Denied::SubscriptionRequired => ApiError::SubscriptionRequired,
            Denied::Unavailable => ApiError::Unavailable,
        })?;
    let chat = st
        .chat
        .clone()
        .and_then(|b| crate::chat::hook(b, &stream, peer.ip()));
    let opened = match role {
        Role::Publisher => st.node.publish(&stream, offer, chat, grant.ladder).await?,
        // Anonymous viewers are counted per client address (sfu::Client) against floods;
        // a signed-in viewer whose token was verified is not (many share one NAT).
        Role::Viewer => {
            let client = (!grant.identified).then(|| sfu::Client::new(peer.ip()));
            st.node.view(&stream, offer, pref, client, chat).await?
        }
    };
    if role == Role::Publisher {
        // Only a public channel's stream shows in public lists and metric labels.
        st.node.set_listed(&stream, grant.listed);
    }
    if !st.sessions.insert(opened.id, role, grant, decided) {
        // Revoked while it was being opened (a paywall closing, a ban): refused as a
        // request after the revocation would be.
        let _ = st.node.close(opened.id, role).await;
        return Err(ApiError::Forbidden);
    }
    let base = format!("/{}/{stream}/{}", role_path(role), opened.id);
    let mut resp = (StatusCode::CREATED, opened.answer).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    insert(h, header::LOCATION, &base);
    insert(h, header::ETAG, &etag(opened.id, 1));
    crate::links::ice_servers(h, &st.ice_servers_for(&stream));
    if role == Role::Viewer {
        crate::links::whep_extensions(h, &base);
    }
    Ok(resp)
}

fn insert(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.append(name, v);
    }
}

fn session_in(st: &AppState, role: Role, stream: &str, id: &str) -> Result<SessionId, ApiError> {
    let id: SessionId = id.parse().map_err(|_| ApiError::NotFound)?;
    match st.node.session_stream(id, role) {
        Some(s) if s == stream => Ok(id),
        _ => {
            st.sessions.remove(id);
            Err(ApiError::NotFound)
        }
    }
}

/// DELETE /whip/{stream}/{session} (and WHEP)
pub async fn delete(
    State(st): State<AppState>,
    Path((kind, stream, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let role = role_of(&kind)?;
    let id = session_in(&st, role, &stream, &id)?;
    st.node.close(id, role).await?;
    st.sessions.remove(id);
    Ok(StatusCode::OK)
}

/// PATCH /whip/{stream}/{session} (and WHEP): trickle or ICE restart.
pub async fn patch(
    State(st): State<AppState>,
    Path((kind, stream, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let role = role_of(&kind)?;
    let id = session_in(&st, role, &stream, &id)?;
    require_content_type(&headers, SDPFRAG)?;
    let frag = body_text(&body)?;
    let current = st.sessions.generation(id).unwrap_or(1);
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if m.trim() != "*" && m.trim() != etag(id, current) {
            return Err(ApiError::PreconditionFailed);
        }
    }
    match st.node.patch(id, role, frag).await? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(answer) => {
            let next = st.sessions.bump(id);
            let mut resp = (StatusCode::OK, answer).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDPFRAG));
            insert(h, header::ETAG, &etag(id, next));
            Ok(resp)
        }
    }
}

fn role_of(kind: &str) -> Result<Role, ApiError> {
    match kind {
        "whip" => Ok(Role::Publisher),
        "whep" => Ok(Role::Viewer),
        _ => Err(ApiError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_layers_and_content_types() {
        assert!(check_stream_name("my-stream_1").is_ok());
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(check_stream_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_layer("low"), LayerPref::Rank(0));
        assert_eq!(parse_layer("f"), LayerPref::Rid("f".into()));
        let mut h = HeaderMap::new();
        assert!(require_content_type(&h, SDP).is_err());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/SDP; charset=utf-8"),
        );
        assert!(require_content_type(&h, SDP).is_ok());
        assert!(require_content_type(&h, SDPFRAG).is_err());
    }
}

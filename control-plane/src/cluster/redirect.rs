//! `POST /whep/{stream}` on the control plane of a cluster: a 307 to the edge chosen for
//! the viewer (RFC 9725 §4.5), with a short-lived viewer token in the URL, since browsers
//! drop `Authorization` when a redirect crosses origins. `POST /whip/{stream}` the same
//! for a broadcaster: a 307 to an origin (`ingest.rs`), with a short-lived publish token
//! minted from its stream key (a publish token given instead is passed on as it is).
//!
//! Who may watch is decided by the gate, exactly as on a node ([`ControlPlane::check`]):
//! a public or unlisted channel takes no credential, a private one the caller's viewer
//! token. The token in the URL is minted for the same viewer (anonymous when none was
//! given), lives [`super::Tuning::redirect_token_ttl_secs`], and a node checks it offline
//! like any viewer token. A stream with no channel is refused (404): in a cluster every
//! stream is a channel; open (dev) mode is for `cascade serve`, whose node serves WHEP
//! itself.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::channels::by_slug;
use crate::error::ApiResult;
use crate::extract::{bearer, Path};
use crate::gate::{Refusal, Want};
use crate::revocation::{paywall_tag, ANONYMOUS};
use crate::tokens::{now_secs, ChannelClaim, TokenKind};
use crate::{ControlPlane, Error};

/// Where a viewer is sent.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// The node's registry id.
    pub node: String,
    /// The full URL for the 307's `Location`: `{http_url}/whep/{stream}?token=…` (or
    /// `/whip/`).
    pub location: String,
    /// The viewer or publish token alone (also in `location`).
    pub token: String,
}

fn refused(want: Want, r: Refusal) -> Error {
    match r {
        Refusal::Unauthenticated if want == Want::Publish => {
            Error::Unauthorized("a valid stream key or publish token is required")
        }
        Refusal::Unauthenticated => Error::Unauthorized("a viewer token is required"),
        Refusal::Forbidden => Error::Forbidden("this token is not for this stream"),
        Refusal::NotFound => Error::NotFound,
        Refusal::SubscriptionRequired => Error::SubscriptionRequired,
        Refusal::Unavailable => Error::Busy("the database is unavailable", 2),
    }
}

impl ControlPlane {
    /// Decides whether the bearer may watch `stream`, chooses an edge and mints the token
    /// for the redirect. Errors: 401/403/404 as the gate says, 503 when the cluster is
    /// full (retry after 2 s).
    pub async fn place_viewer(&self, stream: &str, bearer: Option<&str>) -> ApiResult<Redirect> {
        // The token is dated from before the decision (see `channels::viewer_token`).
        let decided_at = now_secs();
        let grant = self
            .check(Want::View, stream, bearer)
            .await
            .map_err(|r| refused(Want::View, r))?;
        let ch = by_slug(self, stream).await?.ok_or(Error::NotFound)?;
        // The gate said yes: a private channel's bearer is a valid viewer token for this
        // channel; on a public one a signed-in viewer's token keeps who is watching.
        let (sub, sv) = bearer
            .and_then(|b| self.signer().verifier().verify(b, TokenKind::View).ok())
            .filter(|c| c.cid.as_deref() == Some(ch.id.as_str()))
            .map_or((ANONYMOUS.to_owned(), 0), |c| (c.sub, c.sv));
        let placed = self.place(&ch.slug).await?;
        let claim = ChannelClaim {
            slug: &ch.slug,
            id: &ch.id,
            owner: None,
            listed: false,
            // The edge ends the session when the paywall closes, as this process would.
            paywall_open: grant.tags.contains(&paywall_tag(&ch.id)),
            ladder_off: false,
        };
        let ttl = self.config().cluster_tuning.redirect_token_ttl_secs;
        let token =
            self.signer()
                .issue_channel(TokenKind::View, &sub, sv, claim, decided_at, ttl)?;
        Ok(Redirect {
            node: placed.id,
            location: format!("{}/whep/{}?token={token}", placed.http_url, ch.slug),
            token,
        })
    }
}

impl ControlPlane {
    /// Decides whether the bearer may publish `stream`, chooses an origin (another than
    /// the primary's for a `backup`) and the token for the redirect. Errors: 401/403/404
    /// as the gate says, 503 when no origin has room.
    pub async fn place_broadcaster(
        &self,
        stream: &str,
        bearer: Option<&str>,
        backup: bool,
    ) -> ApiResult<Redirect> {
        self.check(Want::Publish, stream, bearer)
            .await
            .map_err(|r| refused(Want::Publish, r))?;
        let bearer = bearer.ok_or(Error::Unauthorized("a stream key is required"))?;
        let token = if bearer.starts_with("csk_") {
            let owner = crate::keys::find(self, bearer)
                .await?
                .ok_or(Error::Unauthorized("invalid or revoked stream key"))?;
            let ttl = self.config().cluster_tuning.redirect_token_ttl_secs;
            crate::keys::mint_publish_token(self, &owner, ttl)?
        } else {
            bearer.to_owned()
        };
        let placed = self.place_ingest(stream, backup).await?;
        let standby = if backup { "&backup=1" } else { "" };
        Ok(Redirect {
            node: placed.id,
            location: format!("{}/whip/{stream}?token={token}{standby}", placed.http_url),
            token,
        })
    }
}

/// `?backup=1` on a WHIP POST: a standby ingest.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct WhipQuery {
    backup: Option<String>,
}

/// Sends a WHIP broadcaster to an origin of the cluster (307, with a publish token in the
/// URL). Not in the OpenAPI document, as [`whep`].
pub(crate) async fn whip(
    State(cp): State<ControlPlane>,
    Path(stream): Path<String>,
    axum::extract::Query(q): axum::extract::Query<WhipQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    let backup = q.backup.as_deref() == Some("1");
    let r = cp
        .place_broadcaster(&stream, bearer(&parts), backup)
        .await?;
    redirect_to(&r)
}

/// The 307 to `r`'s location, never cached.
fn redirect_to(r: &Redirect) -> ApiResult<Response> {
    let location =
        HeaderValue::from_str(&r.location).map_err(|e| Error::Internal(e.to_string()))?;
    let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Sends a WHEP viewer to an edge of the cluster (307, with a viewer token in the URL).
/// Not in the OpenAPI document: it is WHEP (RFC 9725), and on a node the same path is the
/// node's own WHEP endpoint.
pub(crate) async fn whep(
    State(cp): State<ControlPlane>,
    Path(stream): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let r = cp.place_viewer(&stream, bearer(&parts)).await?;
    redirect_to(&r)
}

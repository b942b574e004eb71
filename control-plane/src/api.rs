//! `/api/v1`: the routes, their OpenAPI 3.1 document (generated from the handlers'
//! annotations), CORS, the body limit, and problem+json for every error, including the
//! ones axum makes itself (404, 405).

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, on, post, put, MethodFilter};
use axum::Router;
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::ads::{breaks, sponsors};
use crate::analytics::http as analytics;
use crate::chat::{http as chat, moderation, ws};
use crate::cluster::{audience, recordings, redirect, registry, thumbnails};
use crate::content::{media, retention, stills, tus, videos};
use crate::discovery::{follows, live, recommend, thumbs};
use crate::error::{problem, Problem, PROBLEM_JSON};
use crate::interact::{polls, questions, surveys};
use crate::money::{checkout, reports, subscriptions, tiers, tips, webhook};
use crate::webhooks::http as webhooks;
use crate::{accounts, admin, apikeys, channels, keys, revocation, ControlPlane};

/// The request id every response carries (set at the process's HTTP edge): a browser may
/// send one and read it.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Largest API request body.
pub const MAX_BODY: usize = 16 * 1024;

/// A route whose body may be larger than [`MAX_BODY`]: method, path (as routed under
/// `/api/v1`) and limit. Each is routed with its limit by [`Larger::larger`], and the HTTP
/// server's early bound on an announced length takes them from [`LARGER_BODIES`]
/// (`signaling::server::Limits::larger`): a node's audience report of a few hundred
/// viewers, or a studio's detailed frame, reaches its route.
type LargerRoute = (&'static str, &'static str, u64);

const NODE_STATS: LargerRoute = (
    "PUT",
    "/api/v1/cluster/nodes/{id}/stats",
    registry::MAX_STATS_BODY as u64,
);
const AUDIENCE: LargerRoute = (
    "PUT",
    "/api/v1/cluster/nodes/{id}/audience",
    audience::MAX_BODY as u64,
);
const CHANNEL_THUMBNAIL: LargerRoute = (
    "PUT",
    "/api/v1/channels/{slug}/thumbnail",
    thumbs::MAX_BYTES as u64,
);
const CLUSTER_THUMBNAIL: LargerRoute = (
    "PUT",
    "/api/v1/cluster/thumbnails/{stream}",
    thumbs::MAX_BYTES as u64,
);
const STRIPE_EVENTS: LargerRoute = (
    "POST",
    "/api/v1/payments/stripe/webhook",
    webhook::MAX_EVENT as u64,
);

/// The routes that take larger bodies, for the HTTP server.
pub const LARGER_BODIES: &[LargerRoute] = &[
    NODE_STATS,
    AUDIENCE,
    CHANNEL_THUMBNAIL,
    CLUSTER_THUMBNAIL,
    STRIPE_EVENTS,
];

/// Routing a [`LargerRoute`]: its handler on its method, with its limit.
trait Larger {
    fn larger<H, T>(self, route: LargerRoute, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ControlPlane>,
        T: 'static;
}

impl Larger for Router<ControlPlane> {
    fn larger<H, T>(self, (method, path, max): LargerRoute, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ControlPlane>,
        T: 'static,
    {
        // Constants of this file, routed at start: a wrong one is a programming error.
        let filter = axum::http::Method::from_bytes(method.as_bytes())
            .ok()
            .and_then(|m| MethodFilter::try_from(m).ok())
            .expect("a LARGER_BODIES method");
        let path = path
            .strip_prefix("/api/v1")
            .expect("a LARGER_BODIES path under /api/v1");
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        self.route(path, on(filter, handler).layer(DefaultBodyLimit::max(max)))
    }
}

/// The control plane's public key, for media nodes that check tokens offline.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKey {
    /// Always `EdDSA` (Ed25519).
    pub alg: String,
    /// The raw 32-byte public key signing now, base64url without padding.
    pub public_key: String,
    /// Every key that verifies now: during a rotation, the old and the new. Give them all
    /// to media nodes (`--token-public-key K1,K2`).
    pub keys: Vec<crate::tokens::ActiveKey>,
}

/// The public key that signs access, viewer and publish tokens.
#[utoipa::path(get, path = "/api/v1/signing-key", tag = "tokens",
    responses((status = 200, body = SigningKey)))]
async fn signing_key(State(cp): State<ControlPlane>) -> axum::Json<SigningKey> {
    axum::Json(SigningKey {
        alg: "EdDSA".into(),
        public_key: cp.signer().verifier().public_key(),
        keys: cp.signer().verifier().public_keys(),
    })
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from /auth/signin or /auth/refresh"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "stream_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A channel's stream key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (cak_…) with the scope the endpoint needs (docs/WEBHOOKS.md)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cluster_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The cluster's shared node token"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Cascade control plane", version = "1", description = "Accounts, channels, stream keys and tokens. Errors are RFC 9457 problem documents."),
    paths(
        accounts::signup, accounts::signin, accounts::refresh, accounts::signout,
        accounts::signout_all, accounts::me, accounts::edit_me, accounts::change_email,
        accounts::change_password, accounts::delete_me,
        channels::create, channels::list, channels::mine, channels::get, channels::edit,
        channels::delete, channels::grant, channels::revoke_grant, channels::viewer_token,
        keys::create, keys::list, keys::revoke, keys::rotate, keys::publish_token,
        admin::list_users, admin::suspend, admin::restore, admin::set_role, admin::audit_log,
        signing_key, revocation::feed,
        registry::register, registry::stats, registry::drain, registry::list,
        registry::parents, registry::place, audience::report,
        recordings::setting, recordings::upload, thumbnails::put,
        chat::history, chat::post, chat::delete, chat::report, chat::pin, chat::unpin,
        chat::settings, chat::edit_settings, ws::upgrade,
        moderation::moderators, moderation::appoint, moderation::dismiss, moderation::bans,
        moderation::ban, moderation::unban, moderation::terms, moderation::add_term,
        moderation::remove_term, moderation::reports, moderation::resolve, moderation::modlog,
        moderation::follow, moderation::unfollow, moderation::global_ban,
        moderation::global_unban,
        polls::list, polls::create, polls::vote, polls::close,
        questions::list, questions::ask, questions::upvote, questions::edit,
        surveys::list, surveys::create, surveys::respond, surveys::close, surveys::results,
        webhooks::create, webhooks::list, webhooks::get, webhooks::edit, webhooks::delete,
        webhooks::rotate, webhooks::deliveries, webhooks::redeliver, webhooks::test,
        apikeys::http::create, apikeys::http::list, apikeys::http::revoke,
        tiers::create, tiers::list, tiers::edit, tiers::retire, tiers::paywall,
        tiers::set_paywall, subscriptions::subscribe, subscriptions::mine,
        subscriptions::cancel, tips::tip, reports::balance, reports::payout,
        checkout::config, checkout::setup, checkout::badges,
        reports::statement, reports::report, webhook::stripe,
        breaks::cue, breaks::settings, breaks::set_settings, sponsors::create, sponsors::list,
        sponsors::remove, analytics::channel, analytics::channel_csv, analytics::stream,
        analytics::playback_stats, crate::ads::feed::feed,
        live::categories, live::live, live::trending, live::stream_info, live::set_stream_info,
        live::search, follows::following_live, follows::profile, follows::notifications,
        follows::mark_read, follows::events, recommend::recommendations, thumbs::put,
        thumbs::get,
        crate::recording::settings, crate::recording::set_settings,
        crate::ladder::settings, crate::ladder::set_settings,
        videos::list, videos::get, videos::edit, videos::delete, media::media, stills::get,
        retention::get, retention::set, tus::create, tus::head, tus::patch, tus::terminate,
    ),
    components(schemas(Problem)),
    modifiers(&Security),
)]
pub struct ApiDoc;

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Turns axum's own bodiless errors (unknown route, wrong method) into problem documents.
async fn problems(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let mut p = problem(
            status,
            status.canonical_reason().unwrap_or("error").to_lowercase(),
        );
        for keep in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
            if let Some(v) = resp.headers().get(&keep) {
                p.headers_mut().insert(keep, v.clone());
            }
        }
        return p;
    }
    resp
}

fn cors(origins: &[String]) -> CorsLayer {
    let origin = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::HEAD,
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::RANGE,
            REQUEST_ID,
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-metadata"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::LOCATION,
            header::CONTENT_RANGE,
            REQUEST_ID,
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-length"),
            tus::VIDEO_ID,
        ])
}

/// Chat, moderation, polls, questions and surveys under `/channels/{slug}`.
fn interaction_routes() -> Router<ControlPlane> {
    Router::new()
        .route("/channels/{slug}/chat/ws", get(ws::upgrade))
        .route(
            "/channels/{slug}/chat/messages",
            get(chat::history).post(chat::post),
        )
        .route("/channels/{slug}/chat/messages/{id}", delete(chat::delete))
        .route(
            "/channels/{slug}/chat/messages/{id}/report",
            post(chat::report),
        )
        .route(
            "/channels/{slug}/chat/pinned",
            put(chat::pin).delete(chat::unpin),
        )
        .route(
            "/channels/{slug}/chat/settings",
            get(chat::settings).patch(chat::edit_settings),
        )
        .route("/channels/{slug}/moderators", get(moderation::moderators))
        .route(
            "/channels/{slug}/moderators/{username}",
            put(moderation::appoint).delete(moderation::dismiss),
        )
        .route(
            "/channels/{slug}/bans",
            get(moderation::bans).post(moderation::ban),
        )
        .route(
            "/channels/{slug}/bans/{username}",
            delete(moderation::unban),
        )
        .route(
            "/channels/{slug}/blocked-terms",
            get(moderation::terms).post(moderation::add_term),
        )
        .route(
            "/channels/{slug}/blocked-terms/{id}",
            delete(moderation::remove_term),
        )
        .route("/channels/{slug}/reports", get(moderation::reports))
        .route(
            "/channels/{slug}/reports/{id}/resolve",
            post(moderation::resolve),
        )
        .route("/channels/{slug}/modlog", get(moderation::modlog))
        .route(
            "/channels/{slug}/follow",
            post(moderation::follow).delete(moderation::unfollow),
        )
        .route(
            "/channels/{slug}/polls",
            get(polls::list).post(polls::create),
        )
        .route("/channels/{slug}/polls/{id}/votes", post(polls::vote))
        .route("/channels/{slug}/polls/{id}/close", post(polls::close))
        .route(
            "/channels/{slug}/questions",
            get(questions::list).post(questions::ask),
        )
        .route(
            "/channels/{slug}/questions/{id}",
            axum::routing::patch(questions::edit),
        )
        .route(
            "/channels/{slug}/questions/{id}/upvote",
            post(questions::upvote),
        )
        .route(
            "/channels/{slug}/surveys",
            get(surveys::list).post(surveys::create),
        )
        .route(
            "/channels/{slug}/surveys/{id}/responses",
            post(surveys::respond),
        )
        .route("/channels/{slug}/surveys/{id}/close", post(surveys::close))
        .route(
            "/channels/{slug}/surveys/{id}/results",
            get(surveys::results),
        )
}

/// Webhook endpoints and API keys.
fn integration_routes() -> Router<ControlPlane> {
    Router::new()
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::edit)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/webhooks/{id}/events/{event_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/webhooks/{id}/test", post(webhooks::test))
        .route(
            "/api-keys",
            get(apikeys::http::list).post(apikeys::http::create),
        )
        .route("/api-keys/{id}", delete(apikeys::http::revoke))
}

/// Tiers, paywall, subscriptions, tips, balances and reports; the gateway's webhook
/// (its own body limit: events are larger than API requests).
fn money_routes() -> Router<ControlPlane> {
    Router::new()
        .route(
            "/channels/{slug}/tiers",
            get(tiers::list).post(tiers::create),
        )
        .route(
            "/channels/{slug}/tiers/{id}",
            axum::routing::patch(tiers::edit).delete(tiers::retire),
        )
        .route(
            "/channels/{slug}/tiers/{id}/subscribe",
            post(subscriptions::subscribe),
        )
        .route(
            "/channels/{slug}/paywall",
            get(tiers::paywall).put(tiers::set_paywall),
        )
        .route("/channels/{slug}/tips", post(tips::tip))
        .route("/channels/{slug}/badges", get(checkout::badges))
        .route("/payments/config", get(checkout::config))
        .route("/me/payment-methods/setup", post(checkout::setup))
        .route("/channels/{slug}/balance", get(reports::balance))
        .route("/channels/{slug}/payouts", post(reports::payout))
        .route("/channels/{slug}/payouts.csv", get(reports::statement))
        .route("/admin/payouts.csv", get(reports::report))
        .route("/me/subscriptions", get(subscriptions::mine))
        .route("/me/subscriptions/{id}", delete(subscriptions::cancel))
        .larger(STRIPE_EVENTS, webhook::stripe)
}

/// Ad breaks, sponsors' slots, analytics and players' reports.
fn ads_routes() -> Router<ControlPlane> {
    Router::new()
        .route("/channels/{slug}/ad-breaks", post(breaks::cue))
        .route(
            "/channels/{slug}/ads",
            get(breaks::settings).put(breaks::set_settings),
        )
        .route(
            "/channels/{slug}/recording",
            get(crate::recording::settings).put(crate::recording::set_settings),
        )
        .route(
            "/channels/{slug}/ladder",
            get(crate::ladder::settings).put(crate::ladder::set_settings),
        )
        .route(
            "/channels/{slug}/sponsors",
            get(sponsors::list).post(sponsors::create),
        )
        .route("/channels/{slug}/sponsors/{id}", delete(sponsors::remove))
        .route("/channels/{slug}/analytics", get(analytics::channel))
        .route(
            "/channels/{slug}/analytics.csv",
            get(analytics::channel_csv),
        )
        .route(
            "/channels/{slug}/analytics/streams/{broadcast_id}",
            get(analytics::stream),
        )
        .route("/playback-stats", post(analytics::playback_stats))
        .route("/cluster/cues", get(crate::ads::feed::feed))
}

fn discovery_routes() -> Router<ControlPlane> {
    Router::new()
        .route("/categories", get(live::categories))
        .route("/live", get(live::live))
        .route("/trending", get(live::trending))
        .route("/search", get(live::search))
        .route("/recommendations", get(recommend::recommendations))
        .route(
            "/channels/{slug}/stream-info",
            get(live::stream_info).put(live::set_stream_info),
        )
        .route("/channels/{slug}/profile", get(follows::profile))
        .route("/channels/{slug}/thumbnail", get(thumbs::get))
        .larger(CHANNEL_THUMBNAIL, thumbs::put)
        .route("/me/following/live", get(follows::following_live))
        .route("/me/notifications", get(follows::notifications))
        .route("/me/notifications/read", post(follows::mark_read))
        .route("/me/notifications/events", get(follows::events))
}

/// Videos, their media, uploads (tus, whose PATCH streams to disk: no body limit but
/// the upload's declared length) and retention.
fn content_routes() -> Router<ControlPlane> {
    Router::new()
        .route("/channels/{slug}/videos", get(videos::list))
        .route(
            "/videos/{id}",
            get(videos::get).patch(videos::edit).delete(videos::delete),
        )
        .route("/videos/{id}/media", get(media::media))
        .route("/videos/{id}/thumbnail", get(stills::get))
        .route(
            "/channels/{slug}/retention",
            get(retention::get).put(retention::set),
        )
        .route("/channels/{slug}/uploads", post(tus::create))
        .route(
            "/uploads/{id}",
            axum::routing::head(tus::head)
                .patch(tus::patch)
                .delete(tus::terminate)
                .layer(DefaultBodyLimit::disable()),
        )
}

/// The routes, ready to merge into a node's app.
pub(crate) fn router(cp: ControlPlane) -> Router {
    let cors = cors(&cp.config().cors_origins);
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/signing-key", get(signing_key))
        .route("/revocations", get(revocation::feed))
        .route("/auth/signup", post(accounts::signup))
        .route("/auth/signin", post(accounts::signin))
        .route("/auth/refresh", post(accounts::refresh))
        .route("/auth/signout", post(accounts::signout))
        .route("/auth/signout-all", post(accounts::signout_all))
        .route(
            "/me",
            get(accounts::me)
                .patch(accounts::edit_me)
                .delete(accounts::delete_me),
        )
        .route("/me/email", put(accounts::change_email))
        .route("/me/password", put(accounts::change_password))
        .route("/me/channels", get(channels::mine))
        .route("/channels", get(channels::list).post(channels::create))
        .route(
            "/channels/{slug}",
            get(channels::get)
                .patch(channels::edit)
                .delete(channels::delete),
        )
        .route("/channels/{slug}/viewers", post(channels::grant))
        .route(
            "/channels/{slug}/viewers/{username}",
            delete(channels::revoke_grant),
        )
        .route(
            "/channels/{slug}/viewer-token",
            post(channels::viewer_token),
        )
        .route("/channels/{slug}/keys", get(keys::list).post(keys::create))
        .route("/channels/{slug}/keys/{id}", delete(keys::revoke))
        .route("/channels/{slug}/keys/{id}/rotate", post(keys::rotate))
        .route("/publish-token", post(keys::publish_token))
        .route("/admin/users", get(admin::list_users))
        .route("/admin/users/{id}/suspend", post(admin::suspend))
        .route("/admin/users/{id}/restore", post(admin::restore))
        .route("/admin/users/{id}/role", put(admin::set_role))
        .route("/admin/audit", get(admin::audit_log))
        .route("/admin/bans", post(moderation::global_ban))
        .route("/admin/bans/{username}", delete(moderation::global_unban))
        .merge(interaction_routes())
        .merge(integration_routes())
        .merge(money_routes())
        .merge(ads_routes())
        .merge(discovery_routes())
        .merge(content_routes())
        .route(
            "/cluster/nodes",
            get(registry::list).post(registry::register),
        )
        .larger(NODE_STATS, registry::stats)
        .larger(AUDIENCE, audience::report)
        .route("/cluster/nodes/{id}/drain", post(registry::drain))
        // The body streams to disk, counted against `max_recording_bytes` as it comes.
        .route(
            "/cluster/recordings",
            post(recordings::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/cluster/recording", get(recordings::setting))
        .larger(CLUSTER_THUMBNAIL, thumbnails::put)
        .route("/cluster/parents", get(registry::parents))
        .route("/cluster/place", get(registry::place))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(problems))
        .layer(cors.clone())
        .with_state(cp.clone());
    let app = Router::new().nest("/api/v1", api);
    if !cp.config().cluster {
        return app;
    }
    // An offer is not read here: the client sends it again to the edge or the origin.
    let whep = Router::new()
        .route("/whep/{stream}", post(redirect::whep))
        .route("/whip/{stream}", post(redirect::whip))
        .layer(axum::middleware::from_fn(problems))
        .layer(cors)
        .with_state(cp);
    app.merge(whep)
}

//! Accounts: sign up, sign in, refresh, sign out (here or everywhere), the profile,
//! email and password changes, and deleting the account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::db::{now_ms, unique_violation};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, ClientIp, Json};
use crate::limits::Target;
use crate::model::{self, User, UserRow, USER_COLUMNS};
use crate::revocation::{channel_tag, user_tag};
use crate::tokens::{hash_secret, now_secs, random_id, random_secret, TokenKind};
use crate::{password, ControlPlane, Error};

/// `POST /auth/signup`
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignUp {
    /// Email address.
    #[schema(max_length = 254)]
    pub email: String,
    /// 3 to 32 of a-z, 0-9 and _.
    #[schema(min_length = 3, max_length = 32)]
    pub username: String,
    /// At least 8 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

/// The answer to a sign-up; the same whether or not the email was already registered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    pub status: String,
    /// What to do next.
    pub detail: String,
}

/// `POST /auth/signin`
#[derive(Deserialize, ToSchema)]
pub struct SignIn {
    /// Email address or username.
    #[schema(max_length = 254)]
    pub login: String,
    /// Password.
    #[schema(max_length = 256)]
    pub password: String,
}

/// A refresh token, to exchange or revoke.
#[derive(Deserialize, ToSchema)]
pub struct Refresh {
    /// The refresh token from the last sign-in or refresh.
    #[schema(max_length = 200)]
    pub refresh_token: String,
}

/// A signed-in session's tokens.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    /// Send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Exchange at `/auth/refresh` for a new pair; single use.
    pub refresh_token: String,
    /// Who signed in.
    pub user: User,
}

/// `PATCH /me`: fields to change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileEdit {
    /// Name shown on the channel page.
    #[schema(max_length = 64)]
    pub display_name: Option<String>,
    /// About text.
    #[schema(max_length = 1000)]
    pub bio: Option<String>,
    /// An http(s) picture URL, or empty.
    #[schema(max_length = 500)]
    pub avatar_url: Option<String>,
}

/// `PUT /me/email`
#[derive(Deserialize, ToSchema)]
pub struct EmailChange {
    /// The current password.
    #[schema(max_length = 256)]
    pub current_password: String,
    /// The new address.
    #[schema(max_length = 254)]
    pub email: String,
}

/// `PUT /me/password`
#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    /// The current password.
    #[schema(max_length = 256)]
    pub current_password: String,
    /// At least 8 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: String,
}

/// `DELETE /me`
#[derive(Deserialize, ToSchema)]
pub struct Confirm {
    /// The current password.
    #[schema(max_length = 256)]
    pub current_password: String,
}

/// (family, user, expires at, used at, revoked at) of a refresh token.
type RefreshRow = (String, String, i64, Option<i64>, Option<i64>);

pub(crate) async fn user_by_id(cp: &ControlPlane, id: &str) -> ApiResult<Option<UserRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(cp.pool())
    .await?)
}

/// Issues an access token and a refresh token in `family` (a new family if none).
async fn issue_pair(
    cp: &ControlPlane,
    user: UserRow,
    family: Option<String>,
) -> ApiResult<TokenPair> {
    let cfg = cp.config();
    let access = cp.signer().issue(
        TokenKind::Access,
        &user.id,
        user.session_version,
        None,
        now_secs(),
        cfg.access_ttl_secs,
    )?;
    let refresh = random_secret("crt_");
    let now = now_ms();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash_secret(&refresh))
    .bind(family.unwrap_or_else(random_id))
    .bind(&user.id)
    .bind(now)
    .bind(now + cfg.refresh_ttl_secs * 1000)
    .execute(cp.pool())
    .await?;
    Ok(TokenPair {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: cfg.access_ttl_secs,
        refresh_token: refresh,
        user: user.into(),
    })
}

/// Invalidates every access token and refresh token of a user; returns the new session
/// version.
pub(crate) async fn revoke_all(cp: &ControlPlane, user_id: &str) -> ApiResult<i64> {
    let sv = bump_session(cp, user_id).await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    Ok(sv)
}

/// Checks the current password before a sensitive change (rate-limited like sign-in).
async fn confirm(cp: &ControlPlane, ip: ClientIp, user: &UserRow, password: &str) -> ApiResult<()> {
    cp.limiter()
        .signin(ip.0, &Target::Account(user.id.clone()))?;
    let ok = cp
        .hasher()
        .verify(password.to_owned(), Some(user.password_hash.clone()))
        .await?;
    if ok {
        Ok(())
    } else {
        audit::record(
            cp,
            Some(&user.id),
            "password.confirm_failed",
            None,
            Some(ip.0),
            "",
        )
        .await;
        Err(Error::Forbidden("the current password is wrong"))
    }
}

/// Inserts a user; the one whose transaction claims the `bootstrap` row is the admin.
///
/// "Admin if no user exists yet" read from `users` is not atomic on PostgreSQL: under READ
/// COMMITTED two transactions each see the other's new user as absent and both become
/// admin. A primary key is: the second insert of `bootstrap`'s one row waits for the
/// first transaction, then conflicts if it committed (DO NOTHING: a viewer) or goes ahead
/// if it rolled back (say, on a taken email). SQLite runs one writer at a time, so there
/// the claim is trivially atomic.
async fn create_user(
    cp: &ControlPlane,
    id: &str,
    email: &str,
    username: &str,
    hash: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let mut tx = cp.pool().begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, username, password_hash, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'viewer', $5, $5)",
    )
    .bind(id)
    .bind(email)
    .bind(username)
    .bind(hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let first = sqlx::query(
        "INSERT INTO bootstrap (id, user_id, claimed_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if first {
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Create an account. The first account on a fresh database is an admin.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "accounts", request_body = SignUp,
    responses((status = 202, body = Accepted), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn signup(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    Json(req): Json<SignUp>,
) -> ApiResult<impl IntoResponse> {
    cp.limiter().signup(ip.0)?;
    let email = model::email(&req.email)?;
    let username = model::username(&req.username)?;
    password::validate(&req.password)?;
    let hash = cp.hasher().hash(req.password).await?;
    let id = random_id();
    match create_user(&cp, &id, &email, &username, &hash).await {
        Ok(()) => audit::record(&cp, Some(&id), "account.signup", Some(&id), Some(ip.0), "").await,
        // A registered email gets the same answer as a new one: no enumeration.
        Err(e) if unique_violation(&e, "email") => {}
        Err(e) if unique_violation(&e, "username") => {
            return Err(Error::Conflict("username is taken"))
        }
        Err(e) => return Err(e.into()),
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "accepted".into(),
            detail: "If this email address was not registered yet, the account exists now: sign in to continue.".into(),
        }),
    ))
}

/// Sign in with email or username and password.
#[utoipa::path(post, path = "/api/v1/auth/signin", tag = "accounts", request_body = SignIn,
    responses((status = 200, body = TokenPair), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn signin(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    Json(req): Json<SignIn>,
) -> ApiResult<axum::Json<TokenPair>> {
    let login = req.login.trim().to_lowercase();
    let user: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1 OR username = $1"
    )))
    .bind(&login)
    .fetch_optional(cp.pool())
    .await?;
    // By account (its email and username share one budget), and by account and address,
    // so that strangers elsewhere cannot lock the owner out (see limits.rs).
    let target = match &user {
        Some(u) => Target::Account(u.id.clone()),
        None => Target::Unknown(login),
    };
    cp.limiter().signin(ip.0, &target)?;
    let ok = cp
        .hasher()
        .verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    let user = match (user, ok) {
        (Some(u), true) => u,
        (u, _) => {
            let actor = u.as_ref().map(|u| u.id.as_str());
            audit::record(&cp, actor, "signin.failed", actor, Some(ip.0), "").await;
            return Err(Error::Unauthorized("wrong login or password"));
        }
    };
    if user.suspended() {
        audit::record(
            &cp,
            Some(&user.id),
            "signin.suspended",
            Some(&user.id),
            Some(ip.0),
            "",
        )
        .await;
        return Err(Error::Forbidden("account suspended"));
    }
    cp.limiter().signed_in(ip.0, &user.id);
    audit::record(
        &cp,
        Some(&user.id),
        "signin",
        Some(&user.id),
        Some(ip.0),
        "",
    )
    .await;
    Ok(axum::Json(issue_pair(&cp, user, None).await?))
}

/// Exchange a refresh token for a new pair. A refresh token works once: using it again
/// revokes every token descended from the same sign-in.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "accounts", request_body = Refresh,
    responses((status = 200, body = TokenPair), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn refresh(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    Json(req): Json<Refresh>,
) -> ApiResult<axum::Json<TokenPair>> {
    let hash = hash_secret(&req.refresh_token);
    let row: Option<RefreshRow> = sqlx::query_as(
        "SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens \
         WHERE token_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(cp.pool())
    .await?;
    let (family, user_id, expires_at, used_at, revoked_at) =
        row.ok_or(Error::Unauthorized("invalid refresh token"))?;
    let now = now_ms();
    if revoked_at.is_some() {
        return Err(Error::Unauthorized("refresh token revoked"));
    }
    // Claim the token; of two racing uses only one can, and the other is a reuse.
    let claimed = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
    )
    .bind(&hash)
    .bind(now)
    .execute(cp.pool())
    .await?
    .rows_affected()
        == 1;
    if used_at.is_some() || !claimed {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(&family)
        .bind(now)
        .execute(cp.pool())
        .await?;
        // Access tokens minted from this family may be the thief's: end them all now
        // rather than when they expire. Other sessions refresh once (their family lives).
        bump_session(&cp, &user_id).await?;
        audit::record(
            &cp,
            Some(&user_id),
            "refresh.reuse",
            Some(&user_id),
            Some(ip.0),
            "family revoked",
        )
        .await;
        return Err(Error::Unauthorized(
            "refresh token reused: this session is revoked",
        ));
    }
    if expires_at <= now {
        return Err(Error::Unauthorized("refresh token expired"));
    }
    let user = user_by_id(&cp, &user_id)
        .await?
        .ok_or(Error::Unauthorized("invalid refresh token"))?;
    if user.suspended() {
        return Err(Error::Forbidden("account suspended"));
    }
    Ok(axum::Json(issue_pair(&cp, user, Some(family)).await?))
}

/// Sign out this session (revokes its refresh tokens). Unknown tokens are ignored.
#[utoipa::path(post, path = "/api/v1/auth/signout", tag = "accounts", request_body = Refresh,
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn signout(
    State(cp): State<ControlPlane>,
    Json(req): Json<Refresh>,
) -> ApiResult<StatusCode> {
    let hash = hash_secret(&req.refresh_token);
    let revoked = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND family_id = \
         (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
    )
    .bind(&hash)
    .bind(now_ms())
    .execute(cp.pool())
    .await?
    .rows_affected();
    if revoked > 0 {
        // The session's access token must not outlive it. Versions are per user, so the
        // user's other sessions get one 401 each and refresh (their families live on).
        let user: Option<(String,)> =
            sqlx::query_as("SELECT user_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(&hash)
                .fetch_optional(cp.pool())
                .await?;
        if let Some((user_id,)) = user {
            bump_session(&cp, &user_id).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Invalidates every access token of a user (not the refresh tokens), and the publish and
/// viewer tokens bound to their session version, on media-only nodes too; returns the new
/// session version.
async fn bump_session(cp: &ControlPlane, user_id: &str) -> ApiResult<i64> {
    let (sv,): (i64,) = sqlx::query_as(
        "UPDATE users SET session_version = session_version + 1, updated_at = $2 WHERE id = $1 \
         RETURNING session_version",
    )
    .bind(user_id)
    .bind(now_ms())
    .fetch_one(cp.pool())
    .await?;
    cp.revoke(user_tag(user_id), sv, false).await?;
    Ok(sv)
}

/// Sign out every session of the caller, here and on every other device.
#[utoipa::path(post, path = "/api/v1/auth/signout-all", tag = "accounts", security(("access_token" = [])),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn signout_all(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
) -> ApiResult<StatusCode> {
    revoke_all(&cp, &caller.0.id).await?;
    audit::record(
        &cp,
        Some(&caller.0.id),
        "signout.all",
        Some(&caller.0.id),
        Some(ip.0),
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("access_token" = [])),
    responses((status = 200, body = User), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn me(caller: Caller) -> axum::Json<User> {
    axum::Json(caller.0.into())
}

/// Edit the caller's profile.
#[utoipa::path(patch, path = "/api/v1/me", tag = "accounts", security(("access_token" = [])), request_body = ProfileEdit,
    responses((status = 200, body = User), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn edit_me(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Json(req): Json<ProfileEdit>,
) -> ApiResult<axum::Json<User>> {
    let u = caller.0;
    let display_name = match req.display_name {
        Some(s) => model::text("display_name", s.trim(), 64)?,
        None => u.display_name.clone(),
    };
    let bio = match req.bio {
        Some(s) => model::text("bio", &s, 1000)?,
        None => u.bio.clone(),
    };
    let avatar_url = match req.avatar_url {
        Some(s) => model::url("avatar_url", &s)?,
        None => u.avatar_url.clone(),
    };
    sqlx::query(
        "UPDATE users SET display_name = $2, bio = $3, avatar_url = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(&u.id)
    .bind(&display_name)
    .bind(&bio)
    .bind(&avatar_url)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    let fresh = user_by_id(&cp, &u.id).await?.ok_or(Error::NotFound)?;
    Ok(axum::Json(fresh.into()))
}

/// Change the email address. The answer is the same whether or not the address was free
/// (it only changes if it was): with no mail to confirm it, saying "taken" would tell
/// anyone with an account who else has one. Every other session is signed out either way;
/// the answer holds this session's new tokens and the account as it was before the
/// request (`GET /me` shows the address on file).
#[utoipa::path(put, path = "/api/v1/me/email", tag = "accounts", security(("access_token" = [])), request_body = EmailChange,
    responses((status = 200, body = TokenPair), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn change_email(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Json(req): Json<EmailChange>,
) -> ApiResult<axum::Json<TokenPair>> {
    let email = model::email(&req.email)?;
    confirm(&cp, ip, &caller.0, &req.current_password).await?;
    // Each try tells the account holder (through GET /me) whether an address was free:
    // few tries an hour keep that from being a way to list who is registered.
    cp.limiter().email_change(&caller.0.id)?;
    let result = sqlx::query("UPDATE users SET email = $2, updated_at = $3 WHERE id = $1")
        .bind(&caller.0.id)
        .bind(&email)
        .bind(now_ms())
        .execute(cp.pool())
        .await;
    let action = match result {
        Ok(_) => "account.email",
        Err(e) if unique_violation(&e, "email") => "account.email_taken",
        Err(e) => return Err(e.into()),
    };
    let mut pair = changed_credentials(&cp, ip, &caller.0.id, action).await?;
    pair.0.user.email = caller.0.email.clone();
    Ok(pair)
}

/// Change the password. Every other session is signed out; the answer holds this
/// session's new tokens.
#[utoipa::path(put, path = "/api/v1/me/password", tag = "accounts", security(("access_token" = [])), request_body = PasswordChange,
    responses((status = 200, body = TokenPair), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn change_password(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Json(req): Json<PasswordChange>,
) -> ApiResult<axum::Json<TokenPair>> {
    password::validate(&req.new_password)?;
    confirm(&cp, ip, &caller.0, &req.current_password).await?;
    let hash = cp.hasher().hash(req.new_password).await?;
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(&caller.0.id)
        .bind(&hash)
        .bind(now_ms())
        .execute(cp.pool())
        .await?;
    changed_credentials(&cp, ip, &caller.0.id, "account.password").await
}

async fn changed_credentials(
    cp: &ControlPlane,
    ip: ClientIp,
    user_id: &str,
    action: &str,
) -> ApiResult<axum::Json<TokenPair>> {
    revoke_all(cp, user_id).await?;
    audit::record(cp, Some(user_id), action, Some(user_id), Some(ip.0), "").await;
    let user = user_by_id(cp, user_id).await?.ok_or(Error::NotFound)?;
    Ok(axum::Json(issue_pair(cp, user, None).await?))
}

/// Delete the caller's account: the profile, channels, keys and sessions go; the audit
/// log keeps only the opaque id.
#[utoipa::path(delete, path = "/api/v1/me", tag = "accounts", security(("access_token" = [])), request_body = Confirm,
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn delete_me(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Json(req): Json<Confirm>,
) -> ApiResult<StatusCode> {
    confirm(&cp, ip, &caller.0, &req.current_password).await?;
    let id = &caller.0.id;
    let channels: Vec<(String,)> = sqlx::query_as("SELECT id FROM channels WHERE owner_id = $1")
        .bind(id)
        .fetch_all(cp.pool())
        .await?;
    // Their videos' stored media (the rows would go with the channels, the files stay).
    for (channel,) in &channels {
        crate::content::videos::remove_all_of(&cp, channel).await?;
    }
    let mut tx = cp.pool().begin().await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // The log keeps that something happened, not where from.
    sqlx::query("UPDATE audit_log SET ip = NULL WHERE actor_id = $1 OR target = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    // Their broadcasts and viewing sessions end, and every token they held or minted dies.
    cp.revoke(user_tag(id), i64::MAX, true).await?;
    for (channel,) in channels {
        cp.revoke(channel_tag(&channel), 0, true).await?;
    }
    audit::record(&cp, Some(id), "account.delete", Some(id), None, "").await;
    Ok(StatusCode::NO_CONTENT)
}

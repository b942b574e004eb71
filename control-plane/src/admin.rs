//! Admin endpoints: list users, suspend and restore them, change roles, read the audit log.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::{revoke_all, user_by_id};
use crate::audit::{self, AuditEntry};
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, ClientIp, Json, Path, Query};
use crate::model::{PageQuery, Role, User, UserRow, USER_COLUMNS};
use crate::revocation::user_tag;
use crate::{ControlPlane, Error};

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// The users on this page, oldest first.
    pub items: Vec<User>,
    /// This page's number.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
    /// Users matching in all.
    pub total: i64,
}

/// A page of audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub items: Vec<AuditEntry>,
    /// This page's number.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
    /// Entries matching in all.
    pub total: i64,
}

/// `?q=`: part of a username or email.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// Part of a username or email address.
    #[param(max_length = 100)]
    pub q: Option<String>,
}

/// `?action=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only entries with this action (e.g. `signin.failed`).
    #[param(max_length = 100)]
    pub action: Option<String>,
}

/// `PUT /admin/users/{id}/role`
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleChange {
    /// The new role.
    pub role: Role,
}

fn like_pattern(q: &str) -> String {
    let escaped: String = q
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

/// Users, oldest first, optionally filtered (admins only).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("access_token" = [])),
    params(PageQuery, UserFilter),
    responses((status = 200, body = UserPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_users(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Query(page): Query<PageQuery>,
    Query(filter): Query<UserFilter>,
) -> ApiResult<axum::Json<UserPage>> {
    caller.require(Role::Admin)?;
    let (page, per_page, offset) = page.resolve()?;
    let q: String = filter.q.unwrap_or_default().chars().take(100).collect();
    let pattern = like_pattern(&q);
    let filter_sql = "(email LIKE $1 ESCAPE '\\' OR username LIKE $1 ESCAPE '\\')";
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM users WHERE {filter_sql}"
    )))
    .bind(&pattern)
    .fetch_one(cp.pool())
    .await?;
    let rows: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {filter_sql} \
         ORDER BY created_at, id LIMIT $2 OFFSET $3"
    )))
    .bind(&pattern)
    .bind(i64::from(per_page))
    .bind(offset)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(UserPage {
        items: rows.into_iter().map(User::from).collect(),
        page,
        per_page,
        total,
    }))
}

async fn target(cp: &ControlPlane, caller: &Caller, id: &str) -> ApiResult<UserRow> {
    caller.require(Role::Admin)?;
    let user = user_by_id(cp, id).await?.ok_or(Error::NotFound)?;
    if user.id == caller.0.id {
        return Err(Error::Forbidden(
            "admins cannot change their own role or status",
        ));
    }
    Ok(user)
}

async fn set_status(
    cp: ControlPlane,
    ip: ClientIp,
    caller: Caller,
    id: String,
    status: &str,
) -> ApiResult<axum::Json<User>> {
    let user = target(&cp, &caller, &id).await?;
    sqlx::query("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(&user.id)
        .bind(status)
        .bind(now_ms())
        .execute(cp.pool())
        .await?;
    if status == "suspended" {
        let sv = revoke_all(&cp, &user.id).await?;
        // Their live broadcasts and viewing sessions end, on every node, and publish and
        // viewer tokens minted before now stop working.
        cp.revoke(user_tag(&user.id), sv, true).await?;
    }
    audit::record(
        &cp,
        Some(&caller.0.id),
        &format!("user.{status}"),
        Some(&user.id),
        Some(ip.0),
        "",
    )
    .await;
    let fresh = user_by_id(&cp, &user.id).await?.ok_or(Error::NotFound)?;
    Ok(axum::Json(fresh.into()))
}

/// Suspend a user: their sessions end and their stream keys stop working (admins only).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/suspend", tag = "admin", security(("access_token" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn suspend(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<User>> {
    set_status(cp, ip, caller, id, "suspended").await
}

/// Restore a suspended user (admins only).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/restore", tag = "admin", security(("access_token" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn restore(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<User>> {
    set_status(cp, ip, caller, id, "active").await
}

/// Change a user's role (admins only).
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/role", tag = "admin", security(("access_token" = [])),
    params(("id" = String, Path, description = "User id")), request_body = RoleChange,
    responses((status = 200, body = User), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn set_role(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<RoleChange>,
) -> ApiResult<axum::Json<User>> {
    let user = target(&cp, &caller, &id).await?;
    sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
        .bind(&user.id)
        .bind(req.role.as_str())
        .bind(now_ms())
        .execute(cp.pool())
        .await?;
    let detail = format!("{} -> {}", user.role, req.role.as_str());
    audit::record(
        &cp,
        Some(&caller.0.id),
        "user.role",
        Some(&user.id),
        Some(ip.0),
        &detail,
    )
    .await;
    let fresh = user_by_id(&cp, &user.id).await?.ok_or(Error::NotFound)?;
    Ok(axum::Json(fresh.into()))
}

/// The audit log, newest first (admins only).
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", security(("access_token" = [])),
    params(PageQuery, AuditFilter),
    responses((status = 200, body = AuditPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn audit_log(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Query(page): Query<PageQuery>,
    Query(filter): Query<AuditFilter>,
) -> ApiResult<axum::Json<AuditPage>> {
    caller.require(Role::Admin)?;
    let (page, per_page, offset) = page.resolve()?;
    let action = filter.action.unwrap_or_default();
    let where_sql = "($1 = '' OR action = $1)";
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM audit_log WHERE {where_sql}"
    )))
    .bind(&action)
    .fetch_one(cp.pool())
    .await?;
    let items: Vec<AuditEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, at, actor_id, action, target, ip, detail FROM audit_log WHERE {where_sql} \
         ORDER BY at DESC, id LIMIT $2 OFFSET $3"
    )))
    .bind(&action)
    .bind(i64::from(per_page))
    .bind(offset)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(AuditPage {
        items,
        page,
        per_page,
        total,
    }))
}

//! The audit log: who signed in (or failed to), changed a role, a status, an email or a
//! password, or made, rotated or revoked a stream key. Secrets never go into it.

use std::net::IpAddr;

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::now_ms;
use crate::tokens::random_id;
use crate::ControlPlane;

/// One audited event.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditEntry {
    /// Opaque id.
    pub id: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The user who acted, if known.
    pub actor_id: Option<String>,
    /// What happened, e.g. `signin`, `signin.failed`, `user.role`, `key.rotate`.
    pub action: String,
    /// What it happened to (a user id, a channel slug, a key id).
    pub target: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// Details (never secrets).
    pub detail: String,
}

/// Appends an event. A failure to audit is logged, and does not fail the request.
pub(crate) async fn record(
    cp: &ControlPlane,
    actor: Option<&str>,
    action: &str,
    target: Option<&str>,
    ip: Option<IpAddr>,
    detail: &str,
) {
    let result = sqlx::query(
        "INSERT INTO audit_log (id, at, actor_id, action, target, ip, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(random_id())
    .bind(now_ms())
    .bind(actor.map(str::to_owned))
    .bind(action)
    .bind(target.map(str::to_owned))
    .bind(ip.map(|i| i.to_string()))
    .bind(detail)
    .execute(cp.pool())
    .await;
    if let Err(e) = result {
        tracing::error!(action, "could not write the audit log: {e}");
    }
}

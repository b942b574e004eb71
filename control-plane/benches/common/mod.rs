//! What the control plane's benches share: a control plane on a fresh database.

use std::path::PathBuf;

use control_plane::db::Backend;
use control_plane::keystore::{SecretKey, SecretKeySource};
use control_plane::{Config, ControlPlane};

/// A control plane with `config` on a fresh database of `backend` (named after `tag`), and
/// the SQLite database's file; None when PostgreSQL is not configured
/// (`CASCADE_TEST_POSTGRES`).
pub async fn open(
    backend: Backend,
    tag: &str,
    config: Config,
) -> Option<(ControlPlane, Option<PathBuf>)> {
    let mut file = None;
    let url = match backend {
        Backend::Sqlite => {
            let dir =
                std::env::temp_dir().join(format!("cascade-bench-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let db = dir.join("cascade.db");
            let url = control_plane::db::sqlite_url(&db);
            file = Some(db);
            url
        }
        Backend::Postgres => {
            let base = std::env::var("CASCADE_TEST_POSTGRES").ok()?;
            let schema = format!("cascade_bench_{tag}_{}", std::process::id());
            let pool = sqlx::postgres::PgPool::connect(&base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&pool)
                .await
                .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20search_path%3D{schema}")
        }
    };
    let config = Config {
        secret_key: Some(SecretKeySource::Value(SecretKey::random().to_text())),
        ..config
    };
    Some((ControlPlane::open(&url, config).await.unwrap(), file))
}

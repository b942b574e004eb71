//! The database: one pool over SQLite or PostgreSQL, migrated on start, and the SQLite
//! copy and restore under `cascade backup` and `cascade restore` (see `backups`).
//!
//! Every query in this crate is written once, in SQL both databases accept (`$1`
//! placeholders, `ON CONFLICT`, BIGINT milliseconds), and runs through sqlx's `Any` driver.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection};

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file (the `serve` default).
    Sqlite,
    /// A server, shared by control-plane replicas.
    Postgres,
}

/// Why the database could not be opened, migrated, copied or restored.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL (expected sqlite:… or postgres://…)")]
    UnsupportedUrl,
    /// The driver failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A file operation failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file is not a Cascade database.
    #[error("{0} is not a Cascade database: {1}")]
    NotADatabase(PathBuf, String),
    /// The secret key that seals the signing keys is missing, malformed or wrong.
    #[error("secret key: {0}")]
    SecretKey(String),
    /// The SQLite copy and restore were asked of PostgreSQL (`backups` runs pg_dump).
    #[error("this is the SQLite backup; PostgreSQL is backed up with pg_dump")]
    NotSqlite,
    /// `pg_dump` or `pg_restore` is missing or failed.
    #[error("{0}")]
    Tool(String),
    /// A PostgreSQL restore goes into an empty database only.
    #[error(
        "the database has {0} tables: restore into an empty database (createdb a new one), \
         never over a live one"
    )]
    NotEmpty(i64),
    /// The chat bus (NATS) could not be reached.
    #[error("{0}")]
    Bus(String),
    /// The media storage could not be opened.
    #[error("media storage: {0}")]
    Storage(String),
    /// The webhooks' HTTP client could not be made.
    #[error("{0}")]
    Webhooks(String),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The control plane's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// The SQLite URL of the database file in a data directory.
pub fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}?mode=rwc", file.display())
}

pub(crate) fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl)
    }
}

impl Db {
    /// Opens (creating an SQLite file if needed) and migrates.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let file = match backend {
            Backend::Sqlite => sqlite_path(url),
            Backend::Postgres => None,
        };
        if let Some(file) = &file {
            if let Some(dir) = file.parent() {
                crate::keystore::private_dir(dir)?;
            }
            // Made 0600 before SQLite opens it: SQLite gives the -wal and -shm files the
            // database file's mode, so they are private from their first byte too.
            private_file(file)?;
        }
        let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers (and `cascade backup`) run beside the writer.
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        if let Some(file) = &file {
            // A database made by an older version (or copied in) may be world-readable.
            for side in ["", "-wal", "-shm"] {
                let path = PathBuf::from(format!("{}{side}", file.display()));
                if path.exists() {
                    restrict(&path)?;
                }
            }
        }
        Ok(Db { pool, backend })
    }

    /// The connection pool (for tools and tests that look at what the API stored).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The directory of an SQLite database URL's file (where `secret.key` goes by default).
pub(crate) fn sqlite_dir(url: &str) -> Option<PathBuf> {
    if backend_of(url).ok()? != Backend::Sqlite {
        return None;
    }
    let file = sqlite_path(url)?;
    Some(match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

/// Sets mode 0600, whatever the umask made.
fn restrict(path: &Path) -> Result<(), DbError> {
    std::fs::set_permissions(path, Permissions::from_mode(0o600))
        .map_err(|e| DbError::Io(path.to_path_buf(), e))
}

/// Creates `path` empty and 0600 if missing (or `fresh`: it must not exist), and makes an
/// existing one 0600.
pub(crate) fn private_file_with(path: &Path, fresh: bool) -> Result<std::fs::File, DbError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(!fresh)
        .create_new(fresh)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| DbError::Io(path.to_path_buf(), e))?;
    restrict(path)?;
    Ok(f)
}

fn private_file(path: &Path) -> Result<(), DbError> {
    private_file_with(path, false).map(drop)
}

pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Writes a consistent copy of a live SQLite database to `to` (which must not exist).
///
/// `VACUUM INTO` reads one snapshot of the database inside a read transaction, so the
/// server keeps writing meanwhile (WAL) and the copy holds every committed write up to
/// that point and none after.
pub async fn backup(url: &str, to: &Path) -> Result<(), DbError> {
    if backend_of(url)? != Backend::Sqlite {
        return Err(DbError::NotSqlite);
    }
    // The copy holds what the database holds: made empty and 0600 first (which also
    // refuses an existing file), and `VACUUM INTO` accepts an empty target.
    private_file_with(to, true)?;
    let copied = async {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .read_only(true)
            .busy_timeout(Duration::from_secs(30))
            .connect()
            .await?;
        sqlx::query("VACUUM INTO $1")
            .bind(to.display().to_string())
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok::<(), DbError>(())
    }
    .await;
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied?;
    restrict(to)
}

/// Replaces the SQLite database at `url` with the backup `from`, after checking that the
/// backup is intact and is a Cascade database. Stop the server first.
pub async fn restore(url: &str, from: &Path) -> Result<(), DbError> {
    if backend_of(url)? != Backend::Sqlite {
        return Err(DbError::NotSqlite);
    }
    let target = sqlite_path(url).ok_or(DbError::UnsupportedUrl)?;
    let not_db = |why: String| DbError::NotADatabase(from.to_path_buf(), why);
    if !from.is_file() {
        return Err(not_db("no such file".into()));
    }
    {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(from)
            .read_only(true)
            .connect()
            .await?;
        let check: (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| not_db(e.to_string()))?;
        if check.0 != "ok" {
            return Err(not_db(check.0));
        }
        sqlx::query("SELECT count(*) FROM users")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| not_db(e.to_string()))?;
        conn.close().await?;
    }
    if let Some(dir) = target.parent() {
        crate::keystore::private_dir(dir)?;
    }
    // Copy beside the target, then rename over it: a crash leaves the old or the new file.
    // The copy is made 0600 before a byte is written (`fs::copy` would copy the backup's
    // mode, which may be anything).
    let staging = target.with_extension("restoring");
    let _ = std::fs::remove_file(&staging);
    {
        let mut out = private_file_with(&staging, true)?;
        let mut src = std::fs::File::open(from).map_err(|e| DbError::Io(from.to_path_buf(), e))?;
        std::io::copy(&mut src, &mut out)
            .and_then(|_| out.flush())
            .and_then(|()| out.sync_all())
            .map_err(|e| DbError::Io(staging.clone(), e))?;
    }
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", target.display()));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DbError::Io(side, e)),
        }
    }
    std::fs::rename(&staging, &target).map_err(|e| DbError::Io(target.clone(), e))?;
    // Open once through the normal path so that a backup from an older version migrates.
    Db::connect(url).await?.close().await;
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether an insert failed on a UNIQUE constraint naming `column`.
pub(crate) fn unique_violation(e: &sqlx::Error, column: &str) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                && (d.message().contains(column)
                    || d.constraint().is_some_and(|c| c.contains(column)))
        }
        _ => false,
    }
}

/// Whether an insert broke any unique constraint (a primary key of several columns has
/// no column name in PostgreSQL's message).
pub(crate) fn duplicate(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A transaction that reads before it writes. On SQLite it begins `IMMEDIATE`: it takes
/// the write lock at once, waiting as `busy_timeout` allows. A deferred one would read,
/// then fail at its first write with "database is locked" (no waiting) whenever another
/// connection (the node's own writers, `cascade backup` recording its row) committed in
/// between.
pub async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

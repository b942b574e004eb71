//! Backups of the database: written whole or not at all, recorded in the database they
//! copy, taken on a schedule by `cascade serve --backup-dir`, restored by `cascade restore`.
//!
//! - **A file is a backup once it has its name.** The copy is written to `NAME.partial`,
//!   synced, then renamed; a crash leaves a `.partial` (a scheduled run removes it once
//!   untouched for ten minutes), never a truncated file under a backup's name.
//! - **Names sort by time**: `cascade-2026-12-06T01-05-42.123Z.db` (SQLite) or `….dump`
//!   (`pg_dump -Fc`), the time the backup started, UTC; rotation deletes the oldest.
//! - **Every success is a row** of the `backups` table, written after the file is complete
//!   (so a backup never holds its own row). Any process on the database (a `serve`, a
//!   `cascade control` replica) exports the newest as
//!   `cascade_backup_last_success_timestamp_seconds`, read again every
//!   [`REFRESH_EVERY`]; a manual `cascade backup` counts as much as a scheduled one.
//! - **PostgreSQL goes through its own tools**: `pg_dump -Fc` and `pg_restore` from `PATH`
//!   (their major version must be the server's or newer; pg_dump refuses otherwise). The
//!   password never reaches their command line (`PGPASSWORD`). A restore goes into an
//!   empty database only: a database with tables is refused, never overwritten.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;

use crate::db::{self, now_ms, Backend, DbError};
use crate::ControlPlane;

/// How often each process re-reads the newest backup's time from the database.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// A `.partial` file untouched this long is what a crash left.
const STALE_PARTIAL: Duration = Duration::from_secs(600);

/// Rows of the `backups` table kept.
const ROWS_KEPT: i64 = 100;

/// A backup that was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// When the backup started, ms since the epoch: it holds everything committed before.
    pub started_ms: i64,
    /// When the file was complete.
    pub finished_ms: i64,
    /// How it was made.
    pub kind: Kind,
}

/// How a backup was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite's `VACUUM INTO`.
    Sqlite,
    /// `pg_dump -Fc`.
    PgDump,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::PgDump => "pg_dump",
        }
    }

    /// The extension of its files.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Sqlite => "db",
            Kind::PgDump => "dump",
        }
    }
}

/// The kind of backup the database at `url` gets.
pub fn kind_of(url: &str) -> Result<Kind, DbError> {
    Ok(match db::backend_of(url)? {
        Backend::Sqlite => Kind::Sqlite,
        Backend::Postgres => Kind::PgDump,
    })
}

/// Backs up the database at `url` to `to`, which must not exist: SQLite by `VACUUM INTO`
/// (consistent, the server keeps running), PostgreSQL by `pg_dump -Fc`. The file is
/// written as `to.partial`, synced, then renamed to `to`.
pub async fn backup_to(url: &str, to: &Path) -> Result<Written, DbError> {
    let kind = kind_of(url)?;
    if to.exists() {
        return Err(DbError::Io(
            to.to_path_buf(),
            std::io::ErrorKind::AlreadyExists.into(),
        ));
    }
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    let started_ms = now_ms();
    let written = match kind {
        Kind::Sqlite => db::backup(url, &partial).await,
        Kind::PgDump => {
            db::private_file_with(&partial, true)?;
            let (url, partial) = (url.to_owned(), partial.clone());
            tokio::task::spawn_blocking(move || pg_dump(&url, &partial))
                .await
                .unwrap_or_else(|e| Err(DbError::Tool(format!("pg_dump: {e}"))))
        }
    };
    let finished = written.and_then(|()| finish(&partial, to));
    if finished.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let bytes = finished?;
    Ok(Written {
        file: to.to_path_buf(),
        bytes,
        started_ms,
        finished_ms: now_ms(),
        kind,
    })
}

/// Syncs the partial file, renames it to `to` and syncs the directory; returns its size.
fn finish(partial: &Path, to: &Path) -> Result<u64, DbError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| DbError::Io(p, e)
    };
    let f = std::fs::File::open(partial).map_err(io(partial))?;
    f.sync_all().map_err(io(partial))?;
    let bytes = f.metadata().map_err(io(partial))?.len();
    drop(f);
    std::fs::rename(partial, to).map_err(io(to))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(bytes)
}

/// Records a backup in the database at `url` (for `cascade backup`: its own connection,
/// no migration, so a newer binary never migrates a running server's database).
pub async fn record(url: &str, written: &Written) -> Result<(), DbError> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    if db::backend_of(url)? == Backend::Sqlite {
        sqlx::raw_sql("PRAGMA busy_timeout = 10000;")
            .execute(&mut conn)
            .await?;
    }
    insert(&mut conn, written).await?;
    conn.close().await?;
    Ok(())
}

async fn insert(conn: &mut sqlx::AnyConnection, w: &Written) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO backups (started_at, finished_at, file, bytes, kind) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(w.started_ms)
    .bind(w.finished_ms)
    .bind(w.file.display().to_string())
    .bind(i64::try_from(w.bytes).unwrap_or(i64::MAX))
    .bind(w.kind.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM backups WHERE started_at < \
         (SELECT started_at FROM backups ORDER BY started_at DESC LIMIT 1 OFFSET $1)",
    )
    .bind(ROWS_KEPT - 1)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// When the newest recorded backup started, ms since the epoch.
pub async fn last_success_ms(pool: &sqlx::AnyPool) -> Result<Option<i64>, DbError> {
    let (ms,): (Option<i64>,) = sqlx::query_as("SELECT max(started_at) FROM backups")
        .fetch_one(pool)
        .await?;
    Ok(ms)
}

/// Replaces the database at `url` with a backup. SQLite: the file is checked and put in
/// place (stop the server first). PostgreSQL: `pg_restore` into `url`, which must be an
/// empty database (`createdb` a fresh one); one with tables is refused.
pub async fn restore(url: &str, from: &Path) -> Result<(), DbError> {
    match db::backend_of(url)? {
        Backend::Sqlite => db::restore(url, from).await,
        Backend::Postgres => {
            if !from.is_file() {
                return Err(DbError::NotADatabase(
                    from.to_path_buf(),
                    "no such file".into(),
                ));
            }
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(url).await?;
            let (tables,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_catalog.pg_tables \
                 WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
            )
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            if tables > 0 {
                return Err(DbError::NotEmpty(tables));
            }
            let (url_owned, from_owned) = (url.to_owned(), from.to_path_buf());
            tokio::task::spawn_blocking(move || pg_restore(&url_owned, &from_owned))
                .await
                .unwrap_or_else(|e| Err(DbError::Tool(format!("pg_restore: {e}"))))?;
            // Migrates a backup made by an older version, as the SQLite restore does.
            db::Db::connect(url).await?.close().await;
            Ok(())
        }
    }
}

/// `pg_dump -Fc` of the database at `url` into `to`.
fn pg_dump(url: &str, to: &Path) -> Result<(), DbError> {
    let mut cmd = pg_command("pg_dump", url);
    cmd.arg("--format=custom").arg("--file").arg(to);
    run_tool("pg_dump", cmd)
}

/// `pg_restore` of `from` into the (empty) database at `url`, all or nothing.
fn pg_restore(url: &str, from: &Path) -> Result<(), DbError> {
    let mut cmd = pg_command("pg_restore", url);
    cmd.args(["--no-owner", "--exit-on-error", "--single-transaction"])
        .arg(from);
    run_tool("pg_restore", cmd)
}

/// A PostgreSQL client tool aimed at `url`, its password (if any) in the environment.
fn pg_command(tool: &str, url: &str) -> Command {
    let (url, password) = split_password(url);
    let mut cmd = Command::new(tool);
    cmd.arg("--no-password").arg("--dbname").arg(url);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

fn run_tool(tool: &str, mut cmd: Command) -> Result<(), DbError> {
    let out = cmd.output().map_err(|e| {
        DbError::Tool(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{tool} is not on PATH: install the PostgreSQL client tools of the server's \
                 major version (Debian: postgresql-client)"
            )
        } else {
            format!("{tool}: {e}")
        })
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(DbError::Tool(format!(
        "{tool} failed ({}): {}",
        out.status,
        stderr.trim()
    )))
}

/// A PostgreSQL URL without its password, and the password (percent-decoded); sqlx's own
/// parameters, which libpq does not know, are dropped.
fn split_password(url: &str) -> (String, Option<String>) {
    let url = drop_params(url, &["statement-cache-capacity"]);
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url, None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.clone(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.clone(), None);
    };
    (
        format!("{scheme}://{user}@{host}{tail}"),
        Some(percent_decode(password)),
    )
}

fn drop_params(url: &str, names: &[&str]) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !names.contains(&p.split('=').next().unwrap_or_default()))
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                // Two hex digits make one byte (h, l < 16).
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Scheduled backups (`cascade serve --backup-dir`).
#[derive(Clone)]
pub struct Schedule {
    /// The database (its URL may hold a password: never logged).
    pub url: String,
    /// Where the files go (made 0700 if missing). One node per directory.
    pub dir: PathBuf,
    /// Time between backups, counted from the newest recorded in the database, so a
    /// restart does not put the next one off.
    pub every: Duration,
    /// Files kept; the oldest go first.
    pub keep: usize,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("dir", &self.dir)
            .field("every", &self.every)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

/// A backup's file name: the time it started, UTC, sortable.
pub fn file_name(started_ms: i64, kind: Kind) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(started_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "cascade-{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}Z.{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond(),
        kind.extension()
    )
}

/// Whether `name` is a backup's file name (what rotation may delete).
pub fn is_backup_name(name: &str) -> bool {
    let Some(stamp) = name.strip_prefix("cascade-") else {
        return false;
    };
    let Some(stamp) = stamp
        .strip_suffix(".db")
        .or_else(|| stamp.strip_suffix(".dump"))
    else {
        return false;
    };
    // 2026-12-06T01-05-42.123Z
    let shape = "0000-00-00T00-00-00.000Z";
    stamp.len() == shape.len()
        && stamp.bytes().zip(shape.bytes()).all(|(c, s)| {
            if s == b'0' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
}

/// The backups in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, DbError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DbError::Io(dir.to_path_buf(), e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(is_backup_name))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Deletes the oldest backups in `dir` beyond `keep`; returns the files deleted.
fn rotate(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, DbError> {
    let files = list(dir)?;
    let extra = files.len().saturating_sub(keep.max(1));
    let mut gone = Vec::new();
    for f in files.into_iter().take(extra) {
        std::fs::remove_file(&f).map_err(|e| DbError::Io(f.clone(), e))?;
        gone.push(f);
    }
    Ok(gone)
}

/// Removes what earlier runs left half written: `.partial` files untouched for `idle`
/// (a copy in progress keeps writing its file).
fn remove_partials(dir: &Path, idle: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() >= idle);
        if stale && name.strip_suffix(".partial").is_some_and(is_backup_name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl ControlPlane {
    /// Takes a backup into `schedule.dir` now, records it and rotates.
    pub async fn backup_now(&self, schedule: &Schedule) -> Result<Written, DbError> {
        let kind = kind_of(&schedule.url)?;
        crate::keystore::private_dir(&schedule.dir)?;
        remove_partials(&schedule.dir, STALE_PARTIAL);
        let file = schedule.dir.join(file_name(now_ms(), kind));
        let written = backup_to(&schedule.url, &file).await?;
        let mut conn = self.pool().acquire().await?;
        insert(&mut conn, &written).await?;
        drop(conn);
        self.note_backup(written.started_ms);
        for f in rotate(&schedule.dir, schedule.keep)? {
            tracing::debug!("backup rotated out: {}", f.display());
        }
        Ok(written)
    }

    /// Backs up on `schedule` until the control plane is dropped: every `every` after the
    /// newest backup recorded (at once if that is already due), or a minute after a
    /// failure (counted in `cascade_backup_failures_total`) when `every` is longer.
    pub fn schedule_backups(&self, schedule: Schedule) {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            loop {
                let Some(cp) = weak.upgrade().map(ControlPlane) else {
                    return;
                };
                let every = i64::try_from(schedule.every.as_millis()).unwrap_or(i64::MAX);
                let last = last_success_ms(cp.pool()).await.ok().flatten();
                drop(cp);
                let wait = last.map_or(0, |l| l.saturating_add(every) - now_ms());
                let wait = u64::try_from(wait.clamp(0, every)).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let Some(cp) = weak.upgrade().map(ControlPlane) else {
                    return;
                };
                match cp.backup_now(&schedule).await {
                    Ok(w) => tracing::info!(
                        "backup written: {} ({} bytes, {} ms)",
                        w.file.display(),
                        w.bytes,
                        w.finished_ms - w.started_ms
                    ),
                    Err(e) => {
                        cp.0.metrics.backup_failures.inc();
                        tracing::warn!("scheduled backup failed: {e}");
                        drop(cp);
                        tokio::time::sleep(schedule.every.min(Duration::from_secs(60))).await;
                    }
                }
            }
        });
    }

    /// Re-reads the newest recorded backup for the gauge.
    pub(crate) async fn refresh_backup_gauge(&self) {
        match last_success_ms(self.pool()).await {
            Ok(Some(ms)) => self.note_backup(ms),
            Ok(None) => {}
            Err(e) => tracing::debug!("reading the last backup: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_only_they_are_rotated() {
        let a = file_name(1_796_000_000_000, Kind::Sqlite);
        let b = file_name(1_796_000_000_001, Kind::Sqlite);
        let c = file_name(1_796_000_100_000, Kind::PgDump);
        assert_eq!(a, "cascade-2026-11-30T00-53-20.000Z.db");
        assert!(a < b && b < c);
        for n in [&a, &b, &c] {
            assert!(is_backup_name(n), "{n}");
        }
        for n in [
            "cascade.db",
            "cascade-2026-11-30T00-53-20.000Z.db.partial",
            "cascade-2026-11-30T00-53-20.000Z.txt",
            "cascade-2026-1x-30T00-53-20.000Z.db",
            "notes.db",
        ] {
            assert!(!is_backup_name(n), "{n}");
        }
        let dir = std::env::temp_dir().join(format!("cascade-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for n in [&c, &a, &b, &"notes.db".to_owned()] {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        std::fs::write(dir.join(format!("{a}.partial")), b"x").unwrap();
        let gone = rotate(&dir, 2).unwrap();
        assert_eq!(gone, vec![dir.join(&a)]);
        assert_eq!(list(&dir).unwrap(), vec![dir.join(&b), dir.join(&c)]);
        remove_partials(&dir, STALE_PARTIAL);
        assert!(
            dir.join(format!("{a}.partial")).exists(),
            "in progress, perhaps"
        );
        remove_partials(&dir, Duration::ZERO);
        assert!(!dir.join(format!("{a}.partial")).exists());
        assert!(dir.join("notes.db").exists(), "not a backup: kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        assert_eq!(
            split_password("postgres://cascade:p%40ss%3Aw@db.example:5432/cascade?sslmode=require"),
            (
                "postgres://cascade@db.example:5432/cascade?sslmode=require".to_owned(),
                Some("p@ss:w".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1/test?statement-cache-capacity=10"),
            ("postgres://postgres@127.0.0.1/test".to_owned(), None)
        );
        assert_eq!(
            split_password("postgresql://h/db?options=-c%20search_path%3Ds"),
            (
                "postgresql://h/db?options=-c%20search_path%3Ds".to_owned(),
                None
            )
        );
    }
}

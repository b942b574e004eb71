//! The disaster-recovery rehearsal (docs/DISASTER-RECOVERY.md), on real processes and real
//! databases: an SQLite node killed with `kill -9`, its database deleted and restored from
//! the last scheduled backup it reported on `/metrics`; a PostgreSQL `pg_dump` restored into
//! a fresh database that a control plane then serves. (A node killed with live viewers:
//! `cluster.rs` for a relay, `cluster_control.rs` for an edge.)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::accounts::{account, api, channel_with_key, whip};
use crate::server::{cascade_bin, temp_dir, Server};

const LAST_BACKUP: &str = "cascade_backup_last_success_timestamp_seconds";

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `cascade <args>`, which must succeed; its standard output.
fn cascade(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(cascade_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "cascade {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `/metrics` says a backup started at or after `since`; its time.
fn backup_since(server: &Server, since: f64, within: Duration) -> f64 {
    let end = Instant::now() + within;
    loop {
        let last = server.metric(&format!("{LAST_BACKUP} "));
        if last >= since {
            return last;
        }
        assert!(
            Instant::now() < end,
            "no backup reported since {since} (last: {last})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Signs in with the password `account` gave `name`: the status and the access token.
fn sign_in(server: &Server, name: &str) -> (u16, Option<String>) {
    let (s, pair) = api(
        server,
        "POST",
        "/auth/signin",
        None,
        Some(json!({"login": name, "password": format!("pw of {name} 123")})),
    );
    (s, pair["access_token"].as_str().map(str::to_owned))
}

/// The backups in a directory, oldest first (names sort by time).
fn backups_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("cascade-") && n.ends_with(".db")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_sqlite_node_killed_and_its_database_lost_comes_back_from_the_last_backup() {
    let started = Instant::now();
    let data = temp_dir("dr-data");
    let dir = temp_dir("dr-backups");
    let scheduled = [
        "--auth",
        "accounts",
        "--backup-dir",
        dir.to_str().unwrap(),
        "--backup-every",
        "1s",
        "--backup-keep",
        "3",
    ];
    let mut server = Server::launch(&scheduled, &data, Stdio::inherit(), "warn");
    account(&server, "admin");
    let mut before = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let token = account(&server, name);
        let slug = format!("{name}-live");
        let (key, _) = channel_with_key(&server, &token, &slug, "public");
        before.push((name, slug, key));
    }
    let written = now_secs();

    // A backup that began after the last write above holds all of it; `/metrics` says
    // when one has (the gauge moves only once the file is complete and recorded).
    let last = backup_since(&server, written, Duration::from_secs(15));
    let newest = backups_in(&dir).pop().expect("a backup file");
    // The schedule goes on every second (and rotates this one out): keep it aside, as an
    // operator restores the last backup taken before the loss.
    let chosen = temp_dir("dr-chosen").join(newest.file_name().unwrap());
    std::fs::copy(&newest, &chosen).unwrap();
    eprintln!(
        "backup {} reported {:.1}s after the writes",
        newest.display(),
        last - written
    );
    // Made after that backup: lost with the database.
    account(&server, "late");
    server.kill_hard();
    let kept = backups_in(&dir).len();
    assert!(
        (1..=4).contains(&kept),
        "--backup-keep 3 (a 4th may be between its rename and the rotation): {kept}"
    );

    for side in ["", "-wal", "-shm"] {
        let f = data.join(format!("cascade.db{side}"));
        if f.exists() {
            std::fs::remove_file(&f).unwrap();
        }
    }
    let out = cascade(&[
        "restore".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--from".as_ref(),
        chosen.as_os_str(),
    ]);
    assert!(out.contains("restored"), "{out}");
    let server = Server::launch(&["--auth", "accounts"], &data, Stdio::inherit(), "warn");
    for (name, slug, key) in &before {
        let (s, token) = sign_in(&server, name);
        assert_eq!(s, 200, "{name}, made before the backup, signs in");
        let (_, page) = api(&server, "GET", "/me/channels", token.as_deref(), None);
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["slug"] == slug.as_str()),
            "{name}'s channel came back: {page}"
        );
        assert_eq!(
            whip(&server, slug, Some(key)),
            201,
            "{name}'s key publishes"
        );
    }
    let (s, _) = sign_in(&server, "late");
    assert_eq!(s, 401, "the account made after the backup is gone");
    // The restored database holds the records of the backups before the one restored.
    assert!(server.metric(&format!("{LAST_BACKUP} ")) > 0.0);
    eprintln!("SQLite rehearsal: {:?}", started.elapsed());
}

#[test]
fn failed_scheduled_backups_are_counted_and_no_success_is_reported() {
    // A backup directory that cannot be made: under a regular file.
    let blocker = temp_dir("dr-blocked").join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let dir = blocker.join("backups");
    let server = Server::start(&[
        "--backup-dir",
        dir.to_str().unwrap(),
        "--backup-every",
        "1s",
    ]);
    let end = Instant::now() + Duration::from_secs(10);
    while server.metric("cascade_backup_failures_total ") < 1.0 {
        assert!(Instant::now() < end, "the failure was not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = server.metrics_text();
    assert!(
        !text.contains(LAST_BACKUP),
        "no success is known: the gauge is absent"
    );
}

/// PostgreSQL client tools and server: the major versions (a dump needs pg_dump's major at
/// least the server's; pg_restore reads what pg_dump of the same major wrote).
fn majors(pg: &str) -> (u32, u32, u32) {
    let major = |out: std::process::Output| -> u32 {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v = text
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no version in {text:?}"))
            .to_owned();
        v.split('.').next().unwrap().parse().unwrap()
    };
    let tool = |t: &str| major(Command::new(t).arg("--version").output().unwrap());
    let server: u32 = String::from_utf8_lossy(&psql(pg, "SHOW server_version_num").stdout)
        .trim()
        .parse::<u32>()
        .unwrap()
        / 10_000;
    (tool("pg_dump"), tool("pg_restore"), server)
}

fn psql(url: &str, sql: &str) -> std::process::Output {
    let out = Command::new("psql")
        .args(["-qtA", url, "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Databases made for the test, dropped at its end whatever happens.
struct Databases {
    admin: String,
    names: Vec<String>,
}

impl Databases {
    /// A fresh database: its URL.
    fn create(&mut self, name: &str) -> String {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(&self.admin, &format!("CREATE DATABASE {name}"));
        self.names.push(name.to_owned());
        let mut url = reqwest::Url::parse(&self.admin).unwrap();
        url.set_path(&format!("/{name}"));
        url.to_string()
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("psql")
                .args(["-qtA", &self.admin, "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .output();
        }
    }
}

#[test]
fn a_pg_dump_restored_into_a_fresh_database_serves_every_account() {
    let Ok(pg) = std::env::var("CASCADE_TEST_POSTGRES") else {
        eprintln!("################################################################");
        eprintln!("## SKIPPED (PostgreSQL): CASCADE_TEST_POSTGRES is not set       ##");
        eprintln!("################################################################");
        return;
    };
    if Command::new("pg_dump").arg("--version").output().is_err() {
        eprintln!("SKIPPED (PostgreSQL): pg_dump is not installed (postgresql-client)");
        return;
    }
    let started = Instant::now();
    let (dump_major, restore_major, server_major) = majors(&pg);
    eprintln!("pg_dump {dump_major}, pg_restore {restore_major}, server {server_major}");
    assert!(
        dump_major >= server_major && restore_major == dump_major,
        "pg_dump {dump_major} / pg_restore {restore_major} cannot dump and restore a \
         PostgreSQL {server_major}: install its client tools"
    );
    let mut dbs = Databases {
        admin: pg.clone(),
        names: Vec::new(),
    };
    let pid = std::process::id();
    let src = dbs.create(&format!("cascade_t_dr_src_{pid}"));
    // The secret key lives in this directory, shared by every process below (it travels
    // apart from the database's backups).
    let data = temp_dir("dr-pg");
    let control = |url: &str| {
        Server::launch_as(
            "control",
            &[
                "--cluster-token",
                "a token for the tests",
                "--database-url",
                url,
            ],
            &data,
            Stdio::inherit(),
            "warn",
        )
    };
    let c1 = control(&src);
    account(&c1, "admin");
    let mut keys = Vec::new();
    for name in ["dan", "eve"] {
        let token = account(&c1, name);
        let slug = format!("{name}-tv");
        let (key, _) = channel_with_key(&c1, &token, &slug, "public");
        keys.push((name, slug, key));
    }

    let before = now_secs();
    let dump = temp_dir("dr-dump").join("cascade.dump");
    let out = cascade(&[
        "backup".as_ref(),
        "--database-url".as_ref(),
        src.as_ref(),
        "--to".as_ref(),
        dump.as_os_str(),
    ]);
    assert!(out.contains("backup written"), "{out}");
    // The success is in the database: another replica exports it from its first read.
    let c2 = control(&src);
    let last = backup_since(&c2, before, Duration::from_secs(10));
    assert!(last <= now_secs());

    // Never over a database with tables; into a fresh one.
    let refused = Command::new(cascade_bin())
        .args(["restore", "--database-url", &src, "--from"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("restore into an empty database"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(c2);
    let dst = dbs.create(&format!("cascade_t_dr_dst_{pid}"));
    cascade(&[
        "restore".as_ref(),
        "--database-url".as_ref(),
        dst.as_ref(),
        "--from".as_ref(),
        dump.as_os_str(),
    ]);
    let c3 = control(&dst);
    for name in ["admin", "dan", "eve"] {
        assert_eq!(
            sign_in(&c3, name).0,
            200,
            "{name} signs in on the restored database"
        );
    }
    for (name, slug, key) in &keys {
        let (_, token) = sign_in(&c3, name);
        let (s, ch) = api(
            &c3,
            "GET",
            &format!("/channels/{slug}"),
            token.as_deref(),
            None,
        );
        assert_eq!(s, 200, "{name}'s channel: {ch}");
        let (s, pt) = api(&c3, "POST", "/publish-token", Some(key), None);
        assert_eq!(s, 200, "{name}'s stream key still works: {pt}");
    }
    // The replica that was running when the backup job ran reads it at its next refresh
    // (every 30 s).
    let seen = Instant::now();
    assert_eq!(
        backup_since(&c1, before, Duration::from_secs(35)),
        last,
        "the running replica exports the same backup"
    );
    eprintln!(
        "PostgreSQL rehearsal: {:?} (the running replica saw the backup after {:?} more)",
        started.elapsed(),
        seen.elapsed()
    );
}

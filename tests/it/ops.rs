//! What operators read: `/readyz` (ready, and not while the database is unreachable) and
//! the control plane's metrics on `/metrics` (requests by route template, the pool, the
//! build).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::accounts::account;
use crate::server::Server;

fn get(server: &Server, path: &str) -> (u16, String) {
    let resp = server.http().get(server.url(path)).send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap())
}

#[test]
fn readiness_and_control_plane_metrics() {
    let server = Server::start(&["--auth", "accounts"]);
    let (s, body) = get(&server, "/readyz");
    assert_eq!(s, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ready"], true);
    account(&server, "admin");
    let (_, text) = get(&server, "/metrics");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("cascade_api_request_duration_seconds_count")
                && l.contains(r#"route="/api/v1/auth/signup""#)
                && l.contains(r#"status="202""#)
        })
        .unwrap_or_else(|| panic!("the sign-up is counted by its route template:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(
        text.lines()
            .all(|l| !l.contains("route=\"/api/v1/channels/admin")),
        "routes are templates, never paths"
    );
    assert!(
        text.contains(r#"cascade_db_pool_connections{state="max"} 4"#),
        "{text}"
    );
    assert!(text.contains(&format!(
        r#"cascade_build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    )));
}

/// A TCP relay to PostgreSQL that can be cut.
fn relay(to: String) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cut = Arc::new(AtomicBool::new(false));
    let flag = cut.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            if flag.load(Ordering::Relaxed) {
                continue;
            }
            let Ok(server) = TcpStream::connect(&to) else {
                continue;
            };
            for (mut a, mut b) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let _ = a.set_read_timeout(Some(Duration::from_millis(100)));
                    let mut buf = [0u8; 16384];
                    loop {
                        if flag.load(Ordering::Relaxed) {
                            let _ = a.shutdown(std::net::Shutdown::Both);
                            let _ = b.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        match a.read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => {
                                if b.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                            Err(e)
                                if e.kind() == std::io::ErrorKind::WouldBlock
                                    || e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => return,
                        }
                    }
                });
            }
        }
    });
    (addr, cut)
}

#[test]
fn not_ready_while_the_database_is_unreachable() {
    let Ok(pg) = std::env::var("CASCADE_TEST_POSTGRES") else {
        eprintln!("SKIPPED (PostgreSQL): CASCADE_TEST_POSTGRES is not set");
        return;
    };
    if std::process::Command::new("psql")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED (PostgreSQL): psql is not installed");
        return;
    }
    // The same server through a relay the test can cut; a schema of its own.
    let url = reqwest::Url::parse(&pg).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let (addr, cut) = relay(target);
    let schema = format!("cascade_t_ops_{}", std::process::id());
    let mut direct = postgres_exec(&pg);
    direct(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
    let mut via = url.clone();
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(addr.rsplit(':').next().unwrap().parse().unwrap()))
        .unwrap();
    let sep = if via.query().is_some() { '&' } else { '?' };
    let db = format!("{via}{sep}options=-c%20search_path%3D{schema}");
    let server = Server::start(&["--auth", "accounts", "--database-url", &db]);
    assert_eq!(get(&server, "/readyz").0, 200);
    cut.store(true, Ordering::Relaxed);
    let mut last = String::new();
    let mut refused = false;
    for _ in 0..50 {
        let (s, body) = get(&server, "/readyz");
        last = body;
        if s == 503 {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(refused, "503 once the database is cut: {last}");
    assert!(last.contains("database unreachable"), "{last}");
    let (_, metrics) = get(&server, "/metrics");
    assert!(metrics.contains("cascade_db_up 0"), "the gauge says so too");
}

/// Runs SQL on PostgreSQL with `psql` (what the test needs, nothing more).
fn postgres_exec(url: &str) -> impl FnMut(&str) {
    let url = url.to_owned();
    move |sql: &str| {
        let out = std::process::Command::new("psql")
            .args(["-q", &url, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

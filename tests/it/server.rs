//! A real `cascade serve` process on loopback, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct Server {
    child: Child,
    pub base: String,
    /// The rest of its standard output, line by line.
    stdout: BufReader<std::process::ChildStdout>,
}

/// A fresh directory under the system's temp directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cascade-it-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `cascade` binary under test: cargo's, or `CASCADE_BIN` (the e2e harness's variable)
/// where a shared target directory may hold another tree's build by the time tests run.
pub fn cascade_bin() -> PathBuf {
    std::env::var_os("CASCADE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cascade")))
}

impl Server {
    /// A node with its own fresh database. Unless `extra` says how to authorize, publishing
    /// is open (`--auth open`): most tests are about media, not accounts.
    pub fn start(extra: &[&str]) -> Server {
        Server::launch(extra, &temp_dir("data"), Stdio::inherit(), "warn")
    }

    /// A node on the data directory `data`, its log (at `log_level`) going to `stderr`.
    pub fn launch(extra: &[&str], data: &Path, stderr: Stdio, log_level: &str) -> Server {
        Server::launch_as("serve", extra, data, stderr, log_level)
    }

    /// `cascade <command>` (`serve`, `node`, `control`) on the data directory `data`
    /// (on `127.0.0.1:0` unless `extra` names its `--http`).
    pub fn launch_as(
        command: &str,
        extra: &[&str],
        data: &Path,
        stderr: Stdio,
        log_level: &str,
    ) -> Server {
        let mut cmd = Command::new(crate::server::cascade_bin());
        cmd.arg(command);
        if !extra.contains(&"--http") {
            cmd.args(["--http", "127.0.0.1:0"]);
        }
        cmd.args(["--workers", "2"]).arg("--data-dir").arg(data);
        if command == "serve"
            && !extra
                .iter()
                .any(|a| *a == "--auth" || *a == "--publish-key")
        {
            cmd.args(["--auth", "open"]);
        }
        // CASCADE_TEST_LOG (a RUST_LOG filter) overrides a test's own level, to look into a
        // failing test, e.g. `CASCADE_TEST_LOG=warn,qos=trace`.
        let log_level = std::env::var("CASCADE_TEST_LOG").unwrap_or_else(|_| log_level.into());
        let mut child = cmd
            .args(extra)
            .env("RUST_LOG", log_level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn cascade");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read banner");
        let base = line
            .trim()
            .strip_prefix("cascade listening on ")
            .unwrap_or_else(|| panic!("unexpected banner {line:?}"))
            .to_string();
        Server {
            child,
            base,
            stdout,
        }
    }

    /// The next line the process prints.
    pub fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read a line");
        line.trim().to_owned()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Ends the process at once, as a crash would (SIGKILL).
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// POSTs an SDP offer to `path`, with a bearer token if given.
    pub fn post_sdp(
        &self,
        path: &str,
        sdp: &str,
        bearer: Option<&str>,
    ) -> reqwest::blocking::Response {
        let mut req = self
            .http()
            .post(self.url(path))
            .header("content-type", "application/sdp")
            .body(sdp.to_string());
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        req.send().unwrap()
    }

    /// The value of a metric line starting with `prefix` (summed over matches).
    pub fn metric(&self, prefix: &str) -> f64 {
        self.metrics_text()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The node's `/metrics`, whole.
    pub fn metrics_text(&self) -> String {
        self.http()
            .get(self.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// The node's `/healthz`.
    pub fn health(&self) -> serde_json::Value {
        self.http()
            .get(self.url("/healthz"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Sessions open on the node, from `/healthz`.
    pub fn sessions(&self) -> u64 {
        self.health()["sessions"].as_u64().unwrap()
    }

    /// SIGTERM, then wait: returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        unsafe_kill(self.child.id());
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

fn unsafe_kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

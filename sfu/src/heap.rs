//! Gives the heap that ended sessions freed back to the OS.
//!
//! Nothing leaks when sessions end, but glibc's malloc keeps what it freed: each media
//! worker allocates from its own arena, and the few blocks still live in an arena (a
//! stream's state, buffers kept for reuse) pin its pages, so only the top of a heap is ever
//! returned. Measured after 300 viewers left (docs/PERFORMANCE.md, "Memory over time"):
//! 68 MB held by malloc, 8 MB in use, idle RSS 87 MiB; `malloc_trim(0)`, which also
//! releases the free pages inside each arena, brought it to 35 MiB.
//!
//! A thread watches the session count and trims when it has fallen to half its peak since
//! the last trim (a node going idle, or most viewers leaving a big stream): memory comes
//! back after a peak without trimming on every close. Elsewhere than glibc it is a no-op.

use std::sync::Weak;
use std::time::Duration;

use crate::directory::Directory;

/// How often the session count is read.
const PERIOD: Duration = Duration::from_secs(2);

/// When to trim, from the session counts seen.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    /// The highest count seen since the last trim.
    peak: usize,
}

impl Policy {
    /// Takes the current count; true when the heap should be trimmed now.
    pub(crate) fn observe(&mut self, sessions: usize) -> bool {
        self.peak = self.peak.max(sessions);
        if self.peak > 0 && sessions <= self.peak / 2 {
            self.peak = sessions;
            return true;
        }
        false
    }
}

/// Starts the watcher; it ends once the directory is dropped (the node is gone).
pub(crate) fn spawn_trimmer(directory: Weak<Directory>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("cascade-heap-trim".into())
        .spawn(move || {
            let mut policy = Policy::default();
            loop {
                std::thread::sleep(PERIOD);
                let Some(d) = directory.upgrade() else { return };
                let sessions = d.session_count();
                drop(d);
                if policy.observe(sessions) {
                    trim();
                }
            }
        })?;
    Ok(())
}

/// Returns free heap pages to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn trim() {
    // SAFETY: malloc_trim takes no pointer and locks each arena itself; it is safe to
    // call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_when_sessions_fall_to_half_their_peak() {
        let mut p = Policy::default();
        // An idle node never trims.
        assert!(!p.observe(0));
        assert!(!p.observe(0));
        // Growing, and a small dip, do not.
        for n in [10, 300, 250, 151] {
            assert!(!p.observe(n), "{n}");
        }
        // Half the peak does, and the count then becomes the new peak.
        assert!(p.observe(150));
        assert!(!p.observe(100));
        assert!(p.observe(75));
        // Going idle does, once.
        assert!(p.observe(0));
        assert!(!p.observe(0));
    }

    /// The anonymous resident memory of this process, in KiB.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// What the node saw: a thread's arena fills, most of it is freed, a few blocks stay
    /// live across it, and the freed pages stay resident until `trim`.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn trim_returns_pages_pinned_by_a_few_live_blocks() {
        const BLOCKS: usize = 64 * 1024;
        const SIZE: usize = 1024;
        let (before, after) = std::thread::spawn(|| {
            let mut blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8; SIZE]).collect();
            // One block in 64 stays live: 64 MiB allocated, 1 MiB kept.
            let mut kept = Vec::new();
            for (i, b) in blocks.drain(..).enumerate() {
                if i % 64 == 0 {
                    kept.push(b);
                }
            }
            let before = rss_anon_kib();
            trim();
            let after = rss_anon_kib();
            drop(kept);
            (before, after)
        })
        .join()
        .expect("the allocating thread");
        // Most of the 63 MiB freed was resident and is not any more.
        assert!(
            before.saturating_sub(after) > 32 * 1024,
            "RssAnon {before} KiB before the trim, {after} KiB after"
        );
    }
}

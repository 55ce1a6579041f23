//! Drains a plugin's stdout and stderr pipes into its log, line by line, with a
//! cap on line length so a plugin cannot make the supervisor buffer without bound.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use crate::plugin_log::{PluginLog, MAX_LINE_BYTES};

pub struct Drains(Vec<JoinHandle<()>>);

impl Drains {
    /// Waits for both pipes to reach EOF (the process and its children are gone),
    /// but not forever: a grandchild holding the pipe must not block a restart.
    pub async fn finish(self) {
        for h in self.0 {
            let abort = h.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), h)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

pub fn drain(stdout: OwnedFd, stderr: OwnedFd, log: Arc<PluginLog>) -> Drains {
    let mut tasks = Vec::new();
    for (fd, source) in [(stdout, "stdout"), (stderr, "stderr")] {
        match pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => tasks.push(tokio::spawn(pump(rx, source, Arc::clone(&log)))),
            Err(e) => tracing::warn!(source, error = %e, "cannot read plugin output"),
        }
    }
    Drains(tasks)
}

async fn pump(mut rx: pipe::Receiver, source: &'static str, log: Arc<PluginLog>) {
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' || line.len() >= MAX_LINE_BYTES {
                log.line(source, &String::from_utf8_lossy(&line));
                line.clear();
                if b == b'\n' {
                    continue;
                }
            }
            line.push(b);
        }
    }
    if !line.is_empty() {
        log.line(source, &String::from_utf8_lossy(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_split_and_all_output_lands() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(PluginLog::open(dir.path(), "p").unwrap());
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let drains = drain(r1, r2, log);
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        nix::unistd::write(&w1, format!("hello\n{long}\ntail").as_bytes()).unwrap();
        nix::unistd::write(&w2, b"oops\n").unwrap();
        drop((w1, w2));
        drains.finish().await;
        let text = std::fs::read_to_string(dir.path().join("plugins/p.log")).unwrap();
        assert!(text.contains("[stdout] hello\n"));
        assert!(text.contains("[stderr] oops\n"));
        assert!(text.contains("[stdout] tail\n"));
        assert!(text.lines().all(|l| l.len() < MAX_LINE_BYTES + 64));
    }
}

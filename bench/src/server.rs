//! `pp server` as the benchmark runs it: a child process on a free port, its console
//! drained (unconfigured channels print every link there), its memory read from /proc.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

/// A running `pp server`.
pub struct Server {
    child: Child,
    pub address: SocketAddr,
}

impl Server {
    /// Starts `pp server --db DATABASE` on a free port and waits until it listens.
    pub fn start(pp: &Path, database: &str, extra: &[&str]) -> anyhow::Result<Server> {
        Server::start_on(pp, database, extra, None)
    }

    /// Like [`Server::start`], pinned to one CPU with `taskset` when `cpu` is given.
    pub fn start_on(
        pp: &Path,
        database: &str,
        extra: &[&str],
        cpu: Option<usize>,
    ) -> anyhow::Result<Server> {
        let mut command = match cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.args(["-c", &cpu.to_string()]).arg(pp);
                command
            }
            None => Command::new(pp),
        };
        let mut child = command
            .args(["server", "--db", database, "--bind", "127.0.0.1:0"])
            .args(extra)
            .env("PAUSEPOINT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", pp.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (found, address) = mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("PausePoint is listening on http://") {
                    if let Some(found) = found.take() {
                        let _ = found.send(rest.trim().to_owned());
                    }
                }
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(60))
            .context("pp server did not say where it listens")?
            .parse()?;
        Ok(Server { child, address })
    }

    /// The server's resident memory, in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.child.id())
    }

    /// SIGTERM, and how long the server took to exit.
    pub fn terminate(mut self) -> anyhow::Result<Duration> {
        let started = std::time::Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill failed");
        }
        self.child.wait()?;
        Ok(started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of a process, in bytes.
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("no VmRSS value")?
        .parse()?;
    Ok(kib * 1024)
}

/// Makes an API key with `pp admin keys create`.
pub fn create_key(pp: &Path, database: &str, project: &str) -> anyhow::Result<String> {
    let output = Command::new(pp)
        .args([
            "admin",
            "keys",
            "create",
            "--name",
            "bench",
            "--project",
            project,
            "--db",
            database,
        ])
        .stderr(Stdio::null())
        .output()?;
    if !output.status.success() {
        bail!("pp admin keys create failed");
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// The release `pp` beside this benchmark's binary.
pub fn default_pp() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("pp")))
        .unwrap_or_else(|| PathBuf::from("pp"))
}

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
    /// The CPU cgroup the server runs in, if capped; removed once the server has exited
    /// (fields drop after [`Server`]'s own `drop`).
    _cap: Option<CpuCap>,
}

/// Where a server runs: pinned to one core (`taskset`), capped at a fraction of one core
/// (a CPU cgroup of its own), both or neither.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement {
    pub core: Option<usize>,
    pub cap: Option<f64>,
}

impl Server {
    /// Starts `pp server --db DATABASE` on a free port and waits until it listens.
    pub fn start(pp: &Path, database: &str, extra: &[&str]) -> anyhow::Result<Server> {
        Server::start_on(pp, database, extra, Placement::default())
    }

    /// Like [`Server::start`], placed as `placement` says.
    pub fn start_on(
        pp: &Path,
        database: &str,
        extra: &[&str],
        placement: Placement,
    ) -> anyhow::Result<Server> {
        // Made before the server starts, so that a machine that cannot cap says so first.
        let cap = placement.cap.map(CpuCap::new).transpose()?;
        let mut command = match placement.core {
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
        if let Some(cap) = &cap {
            // Moves every thread of the process; those it starts later stay in the group.
            if let Err(e) = cap.add(child.id()) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
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
        Ok(Server {
            child,
            address,
            _cap: cap,
        })
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

/// A CPU cgroup that caps the processes in it at a fraction of one core: cgroup v2's
/// `cpu.max` where the `cpu` controller is there, else v1's CFS quota. Needs root.
pub struct CpuCap {
    dir: PathBuf,
}

impl CpuCap {
    /// The scheduler's period; the quota is `fraction` of it.
    const PERIOD_US: u64 = 10_000;

    pub fn new(fraction: f64) -> anyhow::Result<CpuCap> {
        if !(0.01..=1.0).contains(&fraction) {
            bail!("--server-cpu takes a fraction of one core, from 0.01 to 1 (got {fraction})");
        }
        let quota = (fraction * Self::PERIOD_US as f64).round() as u64;
        let name = format!("pp-bench-{}-{}", std::process::id(), next_cap());
        let v2 = Path::new("/sys/fs/cgroup");
        let has_cpu = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|controllers| controllers.split_whitespace().any(|c| c == "cpu"));
        if has_cpu {
            // Children of the root get the controller only once the root hands it down.
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
            let cap = CpuCap { dir: v2.join(name) };
            std::fs::create_dir(&cap.dir).context("cannot make a CPU cgroup (run as root)")?;
            std::fs::write(
                cap.dir.join("cpu.max"),
                format!("{quota} {}", Self::PERIOD_US),
            )?;
            return Ok(cap);
        }
        for v1 in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
            let v1 = Path::new(v1);
            if !v1.join("cpu.cfs_quota_us").exists() {
                continue;
            }
            let cap = CpuCap { dir: v1.join(name) };
            std::fs::create_dir(&cap.dir).context("cannot make a CPU cgroup (run as root)")?;
            std::fs::write(
                cap.dir.join("cpu.cfs_period_us"),
                Self::PERIOD_US.to_string(),
            )?;
            std::fs::write(cap.dir.join("cpu.cfs_quota_us"), quota.to_string())?;
            return Ok(cap);
        }
        bail!("this machine has no CPU cgroup to cap servers with (cgroup v2 with the cpu controller, or v1's cpu): leave out --server-cpu")
    }

    fn add(&self, pid: u32) -> anyhow::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("cannot move pp server into {}", self.dir.display()))
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        // Empty by now: its server has exited.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A number for each cgroup this run makes.
fn next_cap() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

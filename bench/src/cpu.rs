//! The machine's CPU time during a load, from `/proc/stat`: what the load cost, whoever
//! spent it (the server, PostgreSQL, the load generator, the kernel). A rate measured on a
//! shared machine moves by a third within an hour (`pgbench` read 5,300 to 13,000
//! inserts/s here), and two builds measured minutes apart are hard to tell apart by it.
//! The CPU an operation takes moves much less with what the neighbours do, so the create
//! table also gives it, against `pgbench`'s for one insert measured the same way.

use std::process::Command;

/// The machine's busy CPU time when a load started.
pub struct Meter {
    busy: u64,
}

impl Meter {
    /// Starts measuring; `None` where `/proc/stat` cannot be read (not Linux).
    pub fn start() -> Option<Meter> {
        busy_ticks().map(|busy| Meter { busy })
    }

    /// The machine's busy CPU time since the start, in microseconds per operation.
    pub fn micros_per(&self, operations: u64) -> Option<f64> {
        let busy = busy_ticks()?.checked_sub(self.busy)?;
        (operations > 0).then(|| busy as f64 * 1e6 / ticks_per_second() / operations as f64)
    }
}

/// Busy time of every CPU so far, in clock ticks: `/proc/stat`'s first line without its
/// idle, iowait and steal columns (time another machine's guest took is not ours).
fn busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    let column = |i: usize| ticks.get(i).copied().unwrap_or(0);
    Some(column(0) + column(1) + column(2) + column(5) + column(6))
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

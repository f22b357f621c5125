//! The machine's own limits, measured in the same run: how fast the database itself
//! commits one-row inserts of a pause-sized row, with nothing of PausePoint around it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A pause's columns, filled as the benchmark's create body fills them.
const ROW: [&str; 4] = [
    "+15550100",
    "Deploy build #4712 to production?",
    "[\"Deploy\",\"Abort\"]",
    "{\"run\":\"r_4712\"}",
];

/// Autocommit inserts per second into a SQLite file in `dir`, with the server's pragmas
/// (WAL, synchronous=FULL): each insert is its own fsynced commit.
pub fn sqlite_inserts_per_second(dir: &Path, duration: Duration) -> anyhow::Result<f64> {
    let path = dir.join("raw.db");
    let conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         CREATE TABLE pauses (id TEXT PRIMARY KEY, recipient TEXT, message TEXT, options TEXT,
                              metadata TEXT, created_at INTEGER, expires_at INTEGER);",
    )?;
    let mut insert = conn.prepare(
        "INSERT INTO pauses (id, recipient, message, options, metadata, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let started = Instant::now();
    let mut count: u64 = 0;
    while started.elapsed() < duration {
        insert.execute(rusqlite::params![
            format!("0190b1c2-0000-7000-8000-{count:012}"),
            ROW[0],
            ROW[1],
            ROW[2],
            ROW[3],
            1_800_000_000_000_i64,
            1_800_003_600_000_i64
        ])?;
        count += 1;
    }
    drop(insert);
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Runs `sql` on the database at `url` with `psql`, which stops at the first error:
/// its output, rows unaligned and without headers, for the caller to judge.
pub fn psql(url: &str, sql: &str) -> anyhow::Result<std::process::Output> {
    Command::new("psql")
        .args([url, "-Atq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .context("cannot run psql")
}

/// Runs `sql` with [`psql`]; its error, with what `psql` said, if it fails.
pub fn psql_ok(url: &str, sql: &str) -> anyhow::Result<()> {
    let output = psql(url, sql)?;
    if !output.status.success() {
        bail!(
            "psql failed: {sql}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `pgbench`'s transactions per second for one-row autocommit inserts of a pause-sized
/// row, with `clients` clients, on the database at `url`.
pub fn pgbench_inserts_per_second(
    url: &str,
    clients: u32,
    duration: Duration,
) -> anyhow::Result<f64> {
    let pgbench = find_pgbench().context("pgbench is not installed (it comes with PostgreSQL)")?;
    psql_ok(
        url,
        "DROP TABLE IF EXISTS bench_raw_pauses; \
         CREATE TABLE bench_raw_pauses (id TEXT PRIMARY KEY, recipient TEXT, message TEXT, \
         options TEXT, metadata TEXT, created_at BIGINT, expires_at BIGINT)",
    )?;
    let script = tempfile::NamedTempFile::new()?;
    std::fs::write(
        script.path(),
        format!(
            "INSERT INTO bench_raw_pauses (id, recipient, message, options, metadata, created_at, expires_at) \
             VALUES (md5(random()::text || clock_timestamp()::text), '{}', '{}', '{}', '{}', 1800000000000, 1800003600000);\n",
            ROW[0], ROW[1], ROW[2], ROW[3]
        ),
    )?;
    let output = Command::new(pgbench)
        .args(["-n", "-c", &clients.to_string(), "-j", "2"])
        .args(["-T", &duration.as_secs().max(1).to_string(), "-f"])
        .arg(script.path())
        .arg(url)
        .output()?;
    psql_ok(url, "DROP TABLE IF EXISTS bench_raw_pauses")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| {
            format!(
                "pgbench said: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    Ok(tps)
}

fn find_pgbench() -> Option<PathBuf> {
    if let Ok(path) = which("pgbench") {
        return Some(path);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").context("no PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .context("not found")
}

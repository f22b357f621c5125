//! The `create` section: creates/s, p50 and p99 at 1, 4, 16 and 64 connections, against
//! the raw insert rate of the same database, and the machine's CPU per create. With
//! `--against`, two builds in turn on fresh databases (see [`compare`]).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::load::{self, Request};
use crate::server::{self, Server};
use crate::{admin_status, cpu, micros, raw, CREATE_BODY};

const CONNECTIONS: [usize; 4] = [1, 4, 16, 64];

/// One build's figures: the raw insert rate, then a load per number of connections.
pub struct CreateRun {
    raw: f64,
    /// The machine's CPU per raw insert, in µs (none without /proc/stat).
    raw_cpu: Option<f64>,
    loads: Vec<Load>,
}

struct Load {
    connections: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
    /// Notices not yet sent when the load ended: a server that creates faster by leaving
    /// its deliveries behind shows it here.
    unsent: u64,
    /// The whole machine's CPU per create during the load (server, database, load
    /// generator, kernel), as the raw insert's, in µs.
    cpu: Option<f64>,
    /// The server's writer during the load, from its `/metrics` (none from a build
    /// without them).
    writer: Option<Writer>,
}

/// What the server's one writer did during a load: the serial part of every create.
struct Writer {
    /// Writes it committed together, on average.
    per_group: f64,
    /// The share of the load's time it was busy with a group.
    busy: f64,
}

impl Writer {
    fn show(writer: &Option<Writer>) -> String {
        match writer {
            Some(w) => format!("{:.1} / {:.0} %", w.per_group, w.busy * 100.0),
            None => "—".into(),
        }
    }
}

/// The writer's totals so far, from the server's `/metrics`: groups, writes, busy seconds.
async fn writer_totals(address: SocketAddr) -> Option<[f64; 3]> {
    let request = Request::new("GET", "/metrics", None, None, 200);
    let mut connection = load::Connection::open(address).await.ok()?;
    let (status, body) = connection.send(request.bytes()).await.ok()?;
    if status != 200 {
        return None;
    }
    let text = String::from_utf8(body).ok()?;
    let value = |name: &str| {
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    Some([
        value("pausepoint_writer_group_writes_count")?,
        value("pausepoint_writer_group_writes_sum")?,
        value("pausepoint_writer_busy_seconds_total")?,
    ])
}

impl Load {
    fn ratio(&self, run: &CreateRun) -> f64 {
        self.per_second / run.raw
    }

    fn cpu_ratio(&self, run: &CreateRun) -> Option<f64> {
        Some(self.cpu? / run.raw_cpu?)
    }
}

/// What runs against which database.
pub struct Target<'a> {
    pub pp: &'a Path,
    /// A SQLite file, or a PostgreSQL URL.
    pub database: &'a str,
    /// Where the raw SQLite inserts write.
    pub dir: &'a Path,
    pub address: SocketAddr,
    pub key: &'a str,
}

impl Target<'_> {
    fn postgres(&self) -> bool {
        self.database.starts_with("postgres")
    }
}

/// Measures the raw rate, then each load in turn; prints each as it ends when `print`.
pub async fn run(
    target: &Target<'_>,
    duration: Duration,
    print: bool,
) -> anyhow::Result<CreateRun> {
    let postgres = target.postgres();
    settle(target.database)?;
    let meter = cpu::Meter::start();
    let raw = if postgres {
        raw::pgbench_inserts_per_second(target.database, 16, duration)?
    } else {
        raw::sqlite_inserts_per_second(target.dir, duration)?
    };
    // Its rate over the load's length: the few inserts of its start and end are within
    // the CPU figure's own precision.
    let raw_cpu = meter.and_then(|m| m.micros_per((raw * duration.as_secs_f64()) as u64));
    let mut run = CreateRun {
        raw,
        raw_cpu,
        loads: Vec::new(),
    };
    if print {
        let raw_name = if postgres {
            "pgbench one-row insert, 16 clients"
        } else {
            "raw SQLite autocommit insert (WAL, synchronous=FULL)"
        };
        println!("\n## create: POST /v1/pause (the spec's SMS body)\n");
        println!(
            "{raw_name}: {raw:.0}/s, {} of the machine's CPU each\n",
            micros(raw_cpu)
        );
        println!(
            "| connections | creates/s | ratio to raw | p50 ms | p99 ms | errors | notices unsent at the end | CPU per create (ratio to raw) | writer: writes per group / busy |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    }
    for connections in CONNECTIONS {
        let request = Request::new(
            "POST",
            "/v1/pause",
            Some(target.key),
            Some(CREATE_BODY),
            201,
        );
        let before = writer_totals(target.address).await;
        let meter = cpu::Meter::start();
        let started = std::time::Instant::now();
        let stats = load::run(target.address, connections, duration, request).await?;
        let cpu = meter.and_then(|m| m.micros_per(stats.ok));
        let elapsed = started.elapsed().as_secs_f64();
        let writer = match (before, writer_totals(target.address).await) {
            (Some([groups, writes, busy]), Some([groups_after, writes_after, busy_after]))
                if groups_after > groups =>
            {
                Some(Writer {
                    per_group: (writes_after - writes) / (groups_after - groups),
                    busy: (busy_after - busy) / elapsed,
                })
            }
            _ => None,
        };
        let unsent = admin_status(target.pp, target.database)?["deliveries"]["queued"]
            .as_u64()
            .unwrap_or(0);
        let load = Load {
            connections,
            per_second: stats.per_second(),
            p50_ms: stats.percentile_ms(50.0),
            p99_ms: stats.percentile_ms(99.0),
            failed: stats.failed,
            unsent,
            cpu,
            writer,
        };
        if print {
            let cpu_ratio = load
                .cpu_ratio(&run)
                .map(|r| format!(" ({r:.1}×)"))
                .unwrap_or_default();
            println!(
                "| {} | {:.0} | {:.2}× | {:.2} | {:.2} | {} | {} | {}{cpu_ratio} | {} |",
                load.connections,
                load.per_second,
                load.ratio(&run),
                load.p50_ms,
                load.p99_ms,
                load.failed,
                load.unsent,
                micros(load.cpu),
                Writer::show(&load.writer),
            );
        }
        run.loads.push(load);
    }
    Ok(run)
}

/// Starts a measurement from the same state as any other: the database's dirty pages
/// written out (PostgreSQL's `CHECKPOINT`, the kernel's `sync` for a SQLite file), so
/// that a run does not pay for the one before it. Without this, the second of two runs
/// back to back read up to a quarter slower, whichever build it was.
fn settle(database: &str) -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("cannot run sync")?;
    if !status.success() {
        bail!("sync failed");
    }
    if database.starts_with("postgres") {
        // `CHECKPOINT` needs a superuser or `pg_checkpoint`; without it the run goes on,
        // and says so.
        let output = raw::psql(database, "CHECKPOINT")?;
        if !output.status.success() {
            eprintln!(
                "pp-bench: no CHECKPOINT before the run ({}); runs may pay for the one before",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    Ok(())
}

/// The order of the four runs: A B B A. A machine that drifts (shared, warming, filling
/// its disk cache) then gives neither build the better half.
const TURNS: [usize; 4] = [0, 1, 1, 0];

/// `create` for two builds in turn, each on a fresh database with a key of its own, and
/// one table of both builds' two runs each. On PostgreSQL, `url` must name an empty
/// database: it is emptied again (`DROP SCHEMA public CASCADE`) before every run.
pub async fn compare(
    builds: [&Path; 2],
    url: Option<&str>,
    duration: Duration,
) -> anyhow::Result<()> {
    if let Some(url) = url {
        ensure_empty(url)?;
    }
    println!(
        "# pp-bench: create, {} (A) against {} (B) on {}",
        builds[0].display(),
        builds[1].display(),
        if url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!(
        "(each load: {} s; runs in the order A B B A, each on a fresh database, after a checkpoint)\n",
        duration.as_secs()
    );
    let mut runs: [Vec<CreateRun>; 2] = [Vec::new(), Vec::new()];
    for (turn, build) in TURNS.into_iter().enumerate() {
        let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
        let database = match url {
            Some(url) => {
                if turn > 0 {
                    empty(url)?;
                }
                url.to_owned()
            }
            None => dir.path().join("bench.db").display().to_string(),
        };
        let pp = builds[build];
        let key = server::create_key(pp, &database, "default")?;
        let server = Server::start(pp, &database, &[])?;
        let target = Target {
            pp,
            database: &database,
            dir: dir.path(),
            address: server.address,
            key: &key,
        };
        let run = run(&target, duration, false).await?;
        server.terminate()?;
        eprintln!(
            "pp-bench: run {} of 4 ({}) done",
            turn + 1,
            ["A", "B"][build]
        );
        runs[build].push(run);
    }
    print_comparison(&runs);
    Ok(())
}

/// One figure of a load, as a table shows it.
type Figure = fn(&CreateRun, &Load) -> String;

/// Each cell holds a build's two runs, in the order they ran.
fn print_comparison(runs: &[Vec<CreateRun>; 2]) {
    let both = |build: usize, figure: &dyn Fn(&CreateRun) -> String| {
        runs[build]
            .iter()
            .map(figure)
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "raw insert rate: A {}, B {}\n",
        both(0, &|run| format!("{:.0}/s", run.raw)),
        both(1, &|run| format!("{:.0}/s", run.raw))
    );
    let columns = [
        "creates/s",
        "ratio to raw",
        "p50 ms",
        "p99 ms",
        "CPU per create",
        "errors",
        "notices unsent",
        "writer: writes per group / busy",
    ];
    let header: Vec<String> = columns
        .iter()
        .flat_map(|c| [format!("{c} A"), format!("{c} B")])
        .collect();
    println!("| connections | {} |", header.join(" | "));
    println!("| --- |{}", " --- |".repeat(header.len()));
    for (i, connections) in CONNECTIONS.into_iter().enumerate() {
        let figures: [Figure; 8] = [
            |_, load| format!("{:.0}", load.per_second),
            |run, load| format!("{:.2}×", load.ratio(run)),
            |_, load| format!("{:.2}", load.p50_ms),
            |_, load| format!("{:.2}", load.p99_ms),
            |_, load| micros(load.cpu),
            |_, load| load.failed.to_string(),
            |_, load| load.unsent.to_string(),
            |_, load| Writer::show(&load.writer),
        ];
        let cells: Vec<String> = figures
            .iter()
            .flat_map(|figure| {
                [0, 1].map(|build| both(build, &|run: &CreateRun| figure(run, &run.loads[i])))
            })
            .collect();
        println!("| {connections} | {} |", cells.join(" | "));
    }
    let mean_ratio = |build: usize, i: usize| {
        runs[build]
            .iter()
            .map(|run| run.loads[i].ratio(run))
            .sum::<f64>()
            / runs[build].len() as f64
    };
    let at_16 = CONNECTIONS.iter().position(|&c| c == 16).unwrap_or(0);
    println!(
        "\nat 16 connections, mean ratio to raw: A {:.2}×, B {:.2}× (B/A {:.2})",
        mean_ratio(0, at_16),
        mean_ratio(1, at_16),
        mean_ratio(1, at_16) / mean_ratio(0, at_16)
    );
}

/// Refuses a database that holds tables: the comparison empties it between runs.
fn ensure_empty(url: &str) -> anyhow::Result<()> {
    let output = raw::psql(
        url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    )?;
    let tables = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || tables != "0" {
        bail!(
            "--against on PostgreSQL needs an empty database, emptied again before each run; \
             this one has {tables} tables {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Drops everything the last run made: a fresh database for the next.
fn empty(url: &str) -> anyhow::Result<()> {
    raw::psql_ok(
        url,
        "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public",
    )
    .context("cannot empty the database for the next run")
}

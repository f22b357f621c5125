//! `pp-bench`: measures a release `pp server` against this machine's own limits, in one
//! run on one disk, and prints the figures the issues ask for as ratios, so that runs on
//! different (and noisy, shared) machines compare:
//!
//! - `create`: creates/s and p50/p99 at 1, 4, 16 and 64 connections, against the raw
//!   autocommit insert rate of the same database (SQLite with the server's pragmas, or
//!   `pgbench` on PostgreSQL), and what the server's one writer did (writes per group
//!   and the share of the time it was busy, from `/metrics`): near 100 % busy, the
//!   writer's serial chain is the limit, not the machine.
//! - `reads`: polls/s of one pause against the invalid-link page rate (routing, the HMAC
//!   check and a small page: the framework's own ceiling).
//! - `waiters`: the server's memory with 10,000 long-polls open.
//! - `wake`: the time from a decision to the waiting agent's answer, p50 and p99.
//! - `scale` (PostgreSQL): creates/s of one server against two sharing the database,
//!   the same 16 connections split between them; `--pin` gives each server one core,
//!   `--server-cpu F` caps each at a fraction F of one core (a CPU cgroup), so that the
//!   servers rather than a database on the same cores are the limit.
//! - `burst`: creates at full rate with the console (logged) channel; the lag from each
//!   `pause.created` to its `pause.notified` (p50, p99, max, from the audit export), the
//!   most rows due at once, and the backlog when the burst ends.
//! - `slow`: the same at a set create rate, with SMS to a Twilio stand-in that takes
//!   100 ms per message: concurrency, not serial sends, must carry the rate.
//! - `stop`: a backlog of 100,000 due deliveries (the stand-in hangs), SIGTERM, the time
//!   to exit, a restart, and every pause notified exactly once.
//! - `grow` (not run by default): request times and creates/s on a fresh database against
//!   the same after `--grow N` creates (1,000,000 by default), and a verify after 1,000 new
//!   events.
//!
//! `--against OTHER_PP` compares two builds in the `create` section: A B B A, each run on a
//! fresh database after a checkpoint, both builds' runs in one table.
//!
//! Run through `scripts/bench`, which builds the release binaries first.

#![forbid(unsafe_code)]

mod cpu;
mod create;
mod grow;
mod load;
mod raw;
mod server;
mod standin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use load::{Connection, Request};
use server::{Placement, Server};

#[derive(Parser)]
#[command(
    name = "pp-bench",
    about = "Measure pp server against this machine's own limits"
)]
struct Args {
    /// The pp binary to measure [default: the release pp beside this binary]
    #[arg(long)]
    pp: Option<PathBuf>,
    /// An empty PostgreSQL database to run on instead of a SQLite file
    #[arg(long)]
    db: Option<String>,
    /// Another pp binary to compare with (A is `--pp`, B this one): runs only the
    /// `create` section, four times in the order A B B A, each on a fresh database (on
    /// PostgreSQL, `--db` is emptied before each run), and prints both builds' runs side
    /// by side
    #[arg(long, value_name = "PP")]
    against: Option<PathBuf>,
    /// Seconds per load run
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Which sections to run
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,reads,waiters,wake,burst,slow,stop"
    )]
    sections: Vec<String>,
    /// Creates per second in the `slow` section
    #[arg(long, default_value_t = 500.0)]
    slow_rate: f64,
    /// Due deliveries when the `stop` section sends SIGTERM
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Long-polls held open at once in the `waiters` section
    #[arg(long, default_value_t = 10_000)]
    waiters: usize,
    /// In the `scale` section, pin each server to a core of its own (taskset)
    #[arg(long)]
    pin: bool,
    /// In the `scale` section, cap each server at this fraction of one core (a CPU cgroup
    /// of its own; needs root), so that the servers, not the database, are the limit, as
    /// when each server has a machine of its own
    #[arg(long, value_name = "FRACTION")]
    server_cpu: Option<f64>,
    /// Pauses the `grow` section creates between its two measurements (give it
    /// `--sections grow`; on PostgreSQL, an empty database)
    #[arg(long, default_value_t = 1_000_000)]
    grow: u64,
}

/// The spec's SMS example, as an agent sends it.
pub(crate) const CREATE_BODY: &str = r#"{"recipient": "+15550100", "channel": "sms", "message": "Deploy build #4712 to production?", "options": ["Deploy", "Abort"], "timeout_hours": 1, "timeout_default": "Abort", "metadata": {"run": "r_4712"}}"#;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let pp = args.pp.clone().unwrap_or_else(server::default_pp);
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let duration = Duration::from_secs(args.seconds);
    if let Some(other) = &args.against {
        return create::compare([&pp, other], args.db.as_deref(), duration).await;
    }
    let database = match &args.db {
        Some(url) => url.clone(),
        None => dir.path().join("bench.db").display().to_string(),
    };
    let postgres = database.starts_with("postgres");
    println!(
        "# pp-bench: {} on {}",
        pp.display(),
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    println!(
        "(each load: {} s; one machine, one disk, one run)\n",
        args.seconds
    );

    let key = server::create_key(&pp, &database, "default")?;
    // One key holds every long-poll of the waiters section.
    let main_server = || Server::start(&pp, &database, &["--max-long-polls-per-key", "100000"]);
    let mut server = main_server()?;
    let mut address = server.address;
    println!("server memory at start: {:.1} MB", mb(server.rss()?));

    if args.sections.iter().any(|s| s == "create") {
        let target = create::Target {
            pp: &pp,
            database: &database,
            dir: dir.path(),
            address,
            key: &key,
        };
        create::run(&target, duration, true).await?;
    }

    if args.sections.iter().any(|s| s == "reads") {
        let id = create(address, &key).await?;
        let poll = Request::new("GET", &format!("/v1/pause/{id}"), Some(&key), None, 200);
        let polls = load::run(address, 16, duration, poll).await?;
        let invalid = Request::new("GET", &format!("/r/{}", "A".repeat(48)), None, None, 404);
        let pages = load::run(address, 16, duration, invalid).await?;
        println!("\n## reads: 16 connections\n");
        println!("| request | per second | p50 ms | p99 ms |");
        println!("| --- | --- | --- | --- |");
        for (name, stats) in [
            ("GET /v1/pause/{id}", &polls),
            ("GET /r/<invalid link>", &pages),
        ] {
            println!(
                "| {name} | {:.0} | {:.2} | {:.2} |",
                stats.per_second(),
                stats.percentile_ms(50.0),
                stats.percentile_ms(99.0)
            );
        }
        println!(
            "\npolls / invalid-link page: {:.2}×",
            polls.per_second() / pages.per_second()
        );
    }

    if args.sections.iter().any(|s| s == "waiters") {
        waiters(&server, &key, args.waiters).await?;
    }

    if args.sections.iter().any(|s| s == "wake") {
        println!("\n## wake: decision to waiting agent (cancel through the API)\n");
        let samples = wake(address, address, &key, 200).await?;
        println!(
            "one server: p50 {:.2} ms, p99 {:.2} ms ({} decisions)",
            load::percentile_ms(&samples, 50.0),
            load::percentile_ms(&samples, 99.0),
            samples.len()
        );
        if postgres {
            let other = Server::start(&pp, &database, &[])?;
            let samples = wake(address, other.address, &key, 200).await?;
            println!(
                "across two servers (wait on one, decide on the other): p50 {:.2} ms, p99 {:.2} ms",
                load::percentile_ms(&samples, 50.0),
                load::percentile_ms(&samples, 99.0)
            );
        }
    }

    if args.sections.iter().any(|s| s == "scale") {
        if !postgres {
            bail!("the scale section needs --db postgres://…: servers share only PostgreSQL");
        }
        // The scale servers run alone: this one would take part of their work (it claims
        // deliveries and sequences events like any other) and count as one more server.
        server.terminate()?;
        scale(&pp, &database, &key, duration, args.pin, args.server_cpu).await?;
        server = main_server()?;
        address = server.address;
    }

    if args.sections.iter().any(|s| s == "burst") {
        burst(&pp, &database, address, &key, duration).await?;
    }

    let verify = get_json(address, &key, "/v1/audit/verify").await?;
    println!("\naudit chain after the run: {verify}");
    let took = server.terminate()?;
    println!("stopped {:.2} s after SIGTERM", took.as_secs_f64());

    // These run servers of their own, with SMS to the stand-in.
    let own = |name: &str| {
        if postgres {
            database.clone()
        } else {
            dir.path().join(name).display().to_string()
        }
    };
    if args.sections.iter().any(|s| s == "slow") {
        slow(&pp, &own("slow.db"), duration, args.slow_rate).await?;
    }
    if args.sections.iter().any(|s| s == "stop") {
        stop(&pp, &own("stop.db"), args.backlog).await?;
    }
    if args.sections.iter().any(|s| s == "grow") {
        grow::grow(&pp, &own("grow.db"), args.grow, duration).await?;
    }
    Ok(())
}

/// The deliveries waiting to be sent: due, or handed to the worker at their creation.
pub(crate) const DELIVERIES_WAITING: &str = "pausepoint_backlog{queue=\"deliveries\"}";

/// Full-rate creates for `duration`, deliveries logged: how far behind the humans are.
async fn burst(
    pp: &std::path::Path,
    database: &str,
    address: SocketAddr,
    key: &str,
    duration: Duration,
) -> anyhow::Result<()> {
    println!(
        "\n## burst: 16 connections create at full rate for {} s; deliveries logged\n",
        duration.as_secs()
    );
    let since = jiff::Timestamp::now();
    let most_waiting = MostWaiting::sample(address);
    let request = Request::new("POST", "/v1/pause", Some(key), Some(CREATE_BODY), 201);
    let stats = load::run(address, 16, duration, request).await?;
    let at_end = admin_status(pp, database)?;
    let drained = wait_notified(address, key, since, stats.ok).await?;
    let most_waiting = most_waiting.stop().await;
    let lags = lags(address, key, since).await?;
    print_lags(&stats, &lags, most_waiting, &at_end, drained);
    Ok(())
}

/// Creates at `rate` for `duration`, SMS to a stand-in that takes 100 ms a message.
async fn slow(
    pp: &std::path::Path,
    database: &str,
    duration: Duration,
    rate: f64,
) -> anyhow::Result<()> {
    println!(
        "\n## slow: {rate:.0} creates/s for {} s; SMS to a Twilio stand-in that answers in 100 ms\n",
        duration.as_secs()
    );
    let twilio = standin::Twilio::start(Duration::from_millis(100)).await?;
    let key = server::create_key(pp, database, "default")?;
    let args = twilio.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(pp, database, &args)?;
    let address = server.address;
    let since = jiff::Timestamp::now();
    let most_waiting = MostWaiting::sample(address);
    let request = Request::new("POST", "/v1/pause", Some(&key), Some(CREATE_BODY), 201);
    let stats = load::run_at(address, 16, duration, request, Some(rate)).await?;
    let at_end = admin_status(pp, database)?;
    let drained = wait_notified(address, &key, since, stats.ok).await?;
    let most_waiting = most_waiting.stop().await;
    let lags = lags(address, &key, since).await?;
    print_lags(&stats, &lags, most_waiting, &at_end, drained);
    let (received, repeated) = twilio.counts();
    println!("\nthe stand-in received {received} messages, {repeated} of them more than once");
    server.terminate()?;
    Ok(())
}

fn print_lags(
    stats: &load::Stats,
    lags: &[u32],
    most_waiting: f64,
    at_end: &serde_json::Value,
    drained: Duration,
) {
    let rate = stats.per_second();
    println!("| creates | creates/s | lag p50 ms | lag p99 ms | lag max ms | most waiting at once | = seconds of creates | due when the creates end | all notified after |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {} | {rate:.0} | {:.1} | {:.1} | {:.1} | {most_waiting:.0} | {:.2} s | {} (oldest {:.1} s) | {:.1} s |",
        stats.ok,
        load::percentile_ms(lags, 50.0),
        load::percentile_ms(lags, 99.0),
        lags.last().map_or(f64::NAN, |&l| f64::from(l) / 1000.0),
        most_waiting / rate.max(1e-9),
        at_end["deliveries"]["due"],
        at_end["deliveries"]["oldest_due_seconds"].as_f64().unwrap_or(0.0),
        drained.as_secs_f64()
    );
    if stats.failed > 0 {
        println!("\n{} creates failed", stats.failed);
    }
}

/// A backlog of due deliveries, SIGTERM, and a restart that sends each exactly once.
async fn stop(pp: &std::path::Path, database: &str, backlog: usize) -> anyhow::Result<()> {
    println!("\n## stop: SIGTERM with {backlog} deliveries due (the stand-in answers in 5 s)\n");
    let twilio = standin::Twilio::start(Duration::from_secs(5)).await?;
    let key = server::create_key(pp, database, "default")?;
    let args = twilio.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(pp, database, &args)?;
    let address = server.address;
    let since = jiff::Timestamp::now();
    let mut created = 0;
    let mut due = serde_json::Value::Null;
    while created < backlog as u64 {
        let request = Request::new("POST", "/v1/pause", Some(&key), Some(CREATE_BODY), 201);
        created += load::run(address, 16, Duration::from_secs(1), request)
            .await?
            .ok;
        due = admin_status(pp, database)?["deliveries"]["due"].clone();
    }
    let took = server.terminate()?;
    let left = admin_status(pp, database)?;
    twilio
        .delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let server = Server::start(pp, database, &args)?;
    let drained = wait_notified(server.address, &key, since, created).await?;
    let notified = events(server.address, &key, "pause.notified", since).await?;
    let pauses: std::collections::HashSet<&str> =
        notified.iter().map(|(pause, _)| pause.as_str()).collect();
    let (received, repeated) = twilio.counts();
    println!("| pauses | due at SIGTERM | exit after SIGTERM | left due | restart: all notified after | pause.notified | pauses notified | stand-in received | sent twice |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {created} | {due} | {:.2} s | {} | {:.1} s | {} | {} | {received} | {repeated} |",
        took.as_secs_f64(),
        left["deliveries"]["due"],
        drained.as_secs_f64(),
        notified.len(),
        pauses.len(),
    );
    println!(
        "\n(sent twice: messages in flight at the stop that the stand-in had not answered; the"
    );
    println!("server cannot know they arrived, and sends them again: at least once, never lost)");
    server.terminate()?;
    Ok(())
}

/// The most deliveries waiting at once (due, or handed to the worker and not sent) while
/// it samples `/metrics`.
struct MostWaiting {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<f64>,
}

impl MostWaiting {
    fn sample(address: SocketAddr) -> MostWaiting {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut most: f64 = 0.0;
            loop {
                if let Ok(waiting) = metric(address, DELIVERIES_WAITING).await {
                    most = most.max(waiting);
                }
                tokio::select! {
                    _ = &mut stopped => return most,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        MostWaiting { stop, task }
    }

    async fn stop(self) -> f64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(f64::NAN)
    }
}

/// What `pp admin status --json` says.
fn admin_status(pp: &std::path::Path, database: &str) -> anyhow::Result<serde_json::Value> {
    let output = std::process::Command::new(pp)
        .args(["admin", "status", "--json", "--db", database])
        .output()?;
    if !output.status.success() {
        bail!(
            "pp admin status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Waits until `count` pauses created since `since` are notified; returns how long it took.
async fn wait_notified(
    address: SocketAddr,
    key: &str,
    since: jiff::Timestamp,
    count: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let notified = events(address, key, "pause.notified", since).await?.len() as u64;
        if notified >= count {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("only {notified} of {count} pauses were notified in 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Each pause's lag from `pause.created` to `pause.notified`, in microseconds, sorted.
async fn lags(address: SocketAddr, key: &str, since: jiff::Timestamp) -> anyhow::Result<Vec<u32>> {
    let created: std::collections::HashMap<String, jiff::Timestamp> =
        events(address, key, "pause.created", since)
            .await?
            .into_iter()
            .collect();
    let mut lags: Vec<u32> = events(address, key, "pause.notified", since)
        .await?
        .into_iter()
        .filter_map(|(pause, at)| {
            let lag = at.duration_since(*created.get(&pause)?);
            u32::try_from(lag.as_micros().max(0)).ok()
        })
        .collect();
    lags.sort_unstable();
    Ok(lags)
}

/// Every `event` since `since`, as (pause id, time), from the audit export.
async fn events(
    address: SocketAddr,
    key: &str,
    event: &str,
    since: jiff::Timestamp,
) -> anyhow::Result<Vec<(String, jiff::Timestamp)>> {
    let text = reqwest::Client::new()
        .get(format!(
            "http://{address}/v1/audit/export?format=jsonl&event={event}&since={since}"
        ))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)?;
            let pause = value["pause_id"]
                .as_str()
                .context("no pause_id")?
                .to_owned();
            let at = value["occurred_at"]
                .as_str()
                .context("no occurred_at")?
                .parse()?;
            Ok((pause, at))
        })
        .collect()
}

/// Creates/s through one server, then through two sharing the database.
async fn scale(
    pp: &std::path::Path,
    database: &str,
    key: &str,
    duration: Duration,
    pin: bool,
    cap: Option<f64>,
) -> anyhow::Result<()> {
    println!("\n## scale: one server against two on one database, one project, 16 connections\n");
    let place = |n: usize| Placement {
        core: pin.then_some(n),
        cap,
    };
    let placed = |servers: usize| {
        let each = if servers > 1 { " each" } else { "" };
        match (pin, cap) {
            (false, None) => String::new(),
            (true, None) => format!(" (a core{each})"),
            (false, Some(cap)) => format!(" (capped at {:.0} % of a core{each})", cap * 100.0),
            (true, Some(cap)) => format!(" (a core{each}, capped at {:.0} % of it)", cap * 100.0),
        }
    };
    let one = Server::start_on(pp, database, &[], place(0))?;
    let request = || Request::new("POST", "/v1/pause", Some(key), Some(CREATE_BODY), 201);
    let alone = load::run(one.address, 16, duration, request()).await?;
    let two = Server::start_on(pp, database, &[], place(1))?;
    // Warmed up as the first was (its connections opened, its statements prepared), so
    // that the two start even.
    load::run(two.address, 8, Duration::from_secs(1), request()).await?;
    let (a, b) = tokio::join!(
        load::run(one.address, 8, duration, request()),
        load::run(two.address, 8, duration, request())
    );
    let (a, b) = (a?, b?);
    let together = a.per_second() + b.per_second();
    println!("| servers | creates/s | vs one server | errors |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| 1{} | {:.0} | 1.00× | {} |",
        placed(1),
        alone.per_second(),
        alone.failed
    );
    println!(
        "| 2{} | {:.0} + {:.0} = {together:.0} | {:.2}× | {} |",
        placed(2),
        a.per_second(),
        b.per_second(),
        together / alone.per_second(),
        a.failed + b.failed
    );
    let verify = get_json(two.address, key, "/v1/audit/verify").await?;
    println!("\naudit chain after two servers: {verify}");
    one.terminate()?;
    two.terminate()?;
    Ok(())
}

/// Memory with `count` long-polls open, each on its own pending pause.
async fn waiters(server: &Server, key: &str, count: usize) -> anyhow::Result<()> {
    let address = server.address;
    println!("\n## waiters: {count} long-polls open at once\n");
    let mut ids = Vec::with_capacity(count);
    let mut connection = Connection::open(address).await?;
    let request = Request::new("POST", "/v1/pause", Some(key), Some(CREATE_BODY), 201);
    let bytes = request_bytes(&request);
    while ids.len() < count {
        let (status, body) = connection.send(&bytes).await?;
        if status != 201 {
            bail!("create answered {status}");
        }
        ids.push(pause_id(&body)?);
    }
    // Let the delivery worker finish with them, so its memory is not counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.rss()?;
    let mut open = Vec::with_capacity(count);
    for id in &ids {
        let mut connection = Connection::open(address).await?;
        let request = Request::new(
            "GET",
            &format!("/v1/pause/{id}?wait=60"),
            Some(key),
            None,
            200,
        );
        connection.write(&request_bytes(&request)).await?;
        open.push(connection);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut waiting = 0.0;
    while Instant::now() < deadline {
        waiting = metric(address, "pausepoint_long_polls_waiting").await?;
        if waiting as usize >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = server.rss()?;
    println!("| long-polls waiting | RSS before | RSS with them | per waiter |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| {waiting:.0} | {:.1} MB | {:.1} MB | {:.1} KiB |",
        mb(before),
        mb(after),
        (after.saturating_sub(before)) as f64 / 1024.0 / count as f64
    );
    drop(open);
    Ok(())
}

/// Decision-to-waiter latencies in microseconds, sorted: a waiter long-polls on
/// `wait_on`, the pause is cancelled through `decide_on`.
async fn wake(
    wait_on: SocketAddr,
    decide_on: SocketAddr,
    key: &str,
    rounds: usize,
) -> anyhow::Result<Vec<u32>> {
    let mut samples = Vec::with_capacity(rounds);
    let mut decider = Connection::open(decide_on).await?;
    for _ in 0..rounds {
        let id = create(wait_on, key).await?;
        let mut waiter = Connection::open(wait_on).await?;
        let poll = Request::new(
            "GET",
            &format!("/v1/pause/{id}?wait=30"),
            Some(key),
            None,
            200,
        );
        waiter.write(&request_bytes(&poll)).await?;
        // The waiter is registered once the server has read the request; give it a moment.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cancel = Request::new(
            "POST",
            &format!("/v1/pause/{id}/cancel"),
            Some(key),
            None,
            200,
        );
        let started = Instant::now();
        let answered = tokio::spawn(async move {
            let reply = waiter.read_answer().await;
            (reply, Instant::now())
        });
        let (status, _) = decider.send(&request_bytes(&cancel)).await?;
        if status != 200 {
            bail!("cancel answered {status}");
        }
        let (reply, at) = answered.await?;
        let (status, body) = reply?;
        if status != 200 || !String::from_utf8_lossy(&body).contains("\"cancelled\"") {
            bail!(
                "the waiter saw {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        samples.push(u32::try_from(at.duration_since(started).as_micros()).unwrap_or(u32::MAX));
    }
    samples.sort_unstable();
    Ok(samples)
}

async fn create(address: SocketAddr, key: &str) -> anyhow::Result<String> {
    let mut connection = Connection::open(address).await?;
    let request = Request::new("POST", "/v1/pause", Some(key), Some(CREATE_BODY), 201);
    let (status, body) = connection.send(&request_bytes(&request)).await?;
    if status != 201 {
        bail!(
            "create answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    pause_id(&body)
}

fn pause_id(body: &[u8]) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    value["pause_id"]
        .as_str()
        .map(str::to_owned)
        .context("no pause_id")
}

async fn get_json(address: SocketAddr, key: &str, path: &str) -> anyhow::Result<String> {
    let mut connection = Connection::open(address).await?;
    let request = Request::new("GET", path, Some(key), None, 200);
    let (_, body) = connection.send(&request_bytes(&request)).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A value from `/metrics`.
pub(crate) async fn metric(address: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let mut connection = Connection::open(address).await?;
    let request = Request::new("GET", "/metrics", None, None, 200);
    let (_, body) = connection.send(&request_bytes(&request)).await?;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {name} in /metrics"))
}

fn request_bytes(request: &Request) -> Vec<u8> {
    request.bytes().to_vec()
}

/// A CPU time per operation, or why there is none.
fn micros(cpu: Option<f64>) -> String {
    match cpu {
        Some(cpu) => format!("{cpu:.0} µs"),
        None => "(no /proc/stat)".to_owned(),
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

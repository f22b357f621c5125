//! `grow`: what requests cost on a fresh database against the same database after N
//! creates through the API (each a pause, its `pause.created` and `pause.notified`, on the
//! chain like any other). No request but a full verify may cost more because the database
//! is older.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::{self, Connection, Request};
use crate::server::{self, Server};
use crate::CREATE_BODY;

/// One request's time, the median of a few sent one after the other.
const SAMPLES: usize = 9;

/// The requests measured, by name: (path, expected status).
const REQUESTS: [(&str, &str, u16); 6] = [
    ("GET /metrics", "/metrics", 200),
    (
        "GET /v1/pause?limit=20&status=cancelled (no match)",
        "/v1/pause?limit=20&status=cancelled",
        200,
    ),
    (
        "GET /v1/audit?limit=100&event=pause.cancelled (no match)",
        "/v1/audit?limit=100&event=pause.cancelled",
        200,
    ),
    (
        "GET /v1/audit?limit=100&since=<now>",
        "/v1/audit?limit=100&since=",
        200,
    ),
    (
        "GET /v1/audit/verify (from the newest checkpoint)",
        "/v1/audit/verify",
        200,
    ),
    ("GET /v1/pause?limit=20", "/v1/pause?limit=20", 200),
];

/// What one measurement found.
struct Costs {
    /// Milliseconds per request of [`REQUESTS`], in order.
    requests: Vec<f64>,
    full_verify_ms: f64,
    verify_after_1000_ms: f64,
    creates_per_second: f64,
}

pub async fn grow(
    pp: &std::path::Path,
    database: &str,
    n: u64,
    duration: Duration,
) -> anyhow::Result<()> {
    println!("\n## grow: request times fresh, and after {n} creates through the API\n");
    let key = server::create_key(pp, database, "default")?;
    let server = Server::start(pp, database, &[])?;
    let address = server.address;
    let fresh = measure(address, &key, duration).await?;
    if database.starts_with("postgres") {
        autovacuum_stand_in(database, "ANALYZE")?;
    }
    let started = Instant::now();
    let made = fill(address, &key, n).await?;
    let took = started.elapsed();
    println!(
        "filled: {made} creates in {:.0} s ({:.0}/s)",
        took.as_secs_f64(),
        made as f64 / took.as_secs_f64()
    );
    // The humans' notifications of the fill go out after it: measure once they have, as a
    // database that grew over time would be.
    let drained = Instant::now();
    if database.starts_with("postgres") {
        // Statistics of the grown tables, as autovacuum takes them while tables grow.
        autovacuum_stand_in(database, "ANALYZE")?;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if crate::metric(address, crate::DELIVERIES_WAITING).await? == 0.0 {
            break;
        }
        if drained.elapsed() > Duration::from_secs(900) {
            bail!("the fill's deliveries did not drain in 15 minutes");
        }
    }
    println!(
        "deliveries of the fill drained {:.0} s after it\n",
        drained.elapsed().as_secs_f64()
    );
    if database.starts_with("postgres") {
        autovacuum_stand_in(database, "VACUUM ANALYZE")?;
    }
    let grown = measure(address, &key, duration).await?;

    println!("| request | fresh ms | at {n} pauses ms | ratio |");
    println!("| --- | --- | --- | --- |");
    let mut rows: Vec<(String, f64, f64)> = REQUESTS
        .iter()
        .zip(fresh.requests.iter().zip(&grown.requests))
        .map(|((name, _, _), (f, g))| ((*name).to_owned(), *f, *g))
        .collect();
    rows.push((
        "GET /v1/audit/verify after 1,000 new events".into(),
        fresh.verify_after_1000_ms,
        grown.verify_after_1000_ms,
    ));
    rows.push((
        "GET /v1/audit/verify?full=true (walks everything)".into(),
        fresh.full_verify_ms,
        grown.full_verify_ms,
    ));
    for (name, f, g) in rows {
        println!("| {name} | {f:.2} | {g:.2} | {:.2}× |", g / f.max(1e-3));
    }
    println!(
        "| creates/s (16 connections) | {:.0} | {:.0} | {:.2}× |",
        fresh.creates_per_second,
        grown.creates_per_second,
        grown.creates_per_second / fresh.creates_per_second.max(1e-9)
    );
    let took = server.terminate()?;
    println!("\nstopped {:.2} s after SIGTERM", took.as_secs_f64());
    Ok(())
}

async fn measure(address: SocketAddr, key: &str, duration: Duration) -> anyhow::Result<Costs> {
    // As the server's own checkpointer does every minute while events arrive.
    send(
        address,
        key,
        "POST",
        "/v1/audit/checkpoints",
        None,
        &[200, 201],
    )
    .await?;
    let mut requests = Vec::new();
    for (_, path, expect) in REQUESTS {
        let path = match path.strip_suffix("since=") {
            Some(prefix) => {
                let since = jiff::Timestamp::now();
                format!("{prefix}since={since}")
            }
            None => path.to_owned(),
        };
        requests.push(median_ms(address, key, &path, expect, SAMPLES).await?);
    }
    let full_verify_ms = median_ms(address, key, "/v1/audit/verify?full=true", 200, 1).await?;
    // A checkpoint now, then 1,000 events after it (500 pauses, each created and
    // notified), then the verify that walks only those.
    send(
        address,
        key,
        "POST",
        "/v1/audit/checkpoints",
        None,
        &[200, 201],
    )
    .await?;
    let request = Request::new("POST", "/v1/pause", Some(key), Some(CREATE_BODY), 201);
    let mut connection = Connection::open(address).await?;
    for _ in 0..500 {
        let (status, _) = connection.send(request.bytes()).await?;
        if status != 201 {
            bail!("a create answered {status}");
        }
    }
    // Let the deliveries' pause.notified land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let verify_after_1000_ms = median_ms(address, key, "/v1/audit/verify", 200, 1).await?;
    let request = Request::new("POST", "/v1/pause", Some(key), Some(CREATE_BODY), 201);
    let creates = load::run(address, 16, duration, request).await?;
    Ok(Costs {
        requests,
        full_verify_ms,
        verify_after_1000_ms,
        creates_per_second: creates.per_second(),
    })
}

async fn send(
    address: SocketAddr,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    expect: &[u16],
) -> anyhow::Result<Vec<u8>> {
    let mut connection = Connection::open(address).await?;
    let request = Request::new(method, path, Some(key), body, expect[0]);
    let (status, answer) = connection.send(request.bytes()).await?;
    if !expect.contains(&status) {
        bail!(
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(answer)
}

/// The median time of `samples` requests sent one after the other on one connection.
async fn median_ms(
    address: SocketAddr,
    key: &str,
    path: &str,
    expect: u16,
    samples: usize,
) -> anyhow::Result<f64> {
    let mut connection = Connection::open(address).await?;
    let request = Request::new("GET", path, Some(key), None, expect);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let sent = Instant::now();
        let (status, body) = connection.send(request.bytes()).await?;
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
        if status != expect {
            bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// `n` creates on 64 connections, as fast as the server answers; how many succeeded.
async fn fill(address: SocketAddr, key: &str, n: u64) -> anyhow::Result<u64> {
    const CONNECTIONS: u64 = 64;
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS {
        let share = n / CONNECTIONS + u64::from(i < n % CONNECTIONS);
        let request = Request::new("POST", "/v1/pause", Some(key), Some(CREATE_BODY), 201);
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(address).await?;
            let mut made = 0u64;
            for _ in 0..share {
                let (status, _) = connection.send(request.bytes()).await?;
                if status == 201 {
                    made += 1;
                }
            }
            Ok::<_, anyhow::Error>(made)
        }));
    }
    let mut made = 0;
    for task in tasks {
        made += task.await.context("a filling connection failed")??;
    }
    Ok(made)
}

/// Where PostgreSQL's autovacuum is off (as on some test clusters), runs `sql` (`ANALYZE`,
/// `VACUUM ANALYZE`) as autovacuum would have, and says so; with it on, leaves it to it.
fn autovacuum_stand_in(database: &str, sql: &str) -> anyhow::Result<()> {
    let output = std::process::Command::new("psql")
        .args([database, "-qAt", "-c", "SHOW autovacuum"])
        .output()
        .context("cannot run psql")?;
    if String::from_utf8_lossy(&output.stdout).trim() != "off" {
        return Ok(());
    }
    println!("(autovacuum is off on this PostgreSQL: the bench runs {sql} where it would have)");
    let status = std::process::Command::new("psql")
        .args([database, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()?;
    if !status.success() {
        bail!("psql failed: {sql}");
    }
    Ok(())
}

//! A small HTTP/1.1 load generator, in the manner of wrk: each connection sends one
//! request, reads the whole answer, and sends the next, until the time is up. Latencies
//! are kept whole, so percentiles are exact.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a run measured.
#[derive(Debug, Default)]
pub struct Stats {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Every request's latency, in microseconds, sorted.
    pub latencies: Vec<u32>,
}

impl Stats {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at `p` (0–100), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies, p)
    }
}

/// The value at `p` (0–100) of sorted microsecond samples, in milliseconds.
pub fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

/// A request, ready to write again and again.
pub struct Request {
    bytes: Vec<u8>,
    /// The statuses that count as success.
    expect: u16,
}

impl Request {
    pub fn new(
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        expect: u16,
    ) -> Request {
        let mut text = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
        if let Some(key) = key {
            text.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        if let Some(body) = body {
            text.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            text.push_str("\r\n");
        }
        Request {
            bytes: text.into_bytes(),
            expect,
        }
    }

    /// The request as written on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub async fn open(address: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(8192),
        })
    }

    /// Sends `request` and reads the answer: its status and body.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.write(request).await?;
        self.read_answer().await
    }

    /// Sends a request without waiting for its answer.
    pub async fn write(&mut self, request: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(request).await?;
        Ok(())
    }

    /// Reads one answer: its status and body.
    pub async fn read_answer(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response.parse(&self.buffer)? {
                let status = response.code.context("no status")?;
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .context("an answer without Content-Length")?;
                while self.buffer.len() < head + length {
                    self.fill().await?;
                }
                let body = self.buffer[head..head + length].to_vec();
                self.buffer.drain(..head + length);
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// Sends `request` on `connections` connections for `duration`, each as fast as the
/// server answers.
pub async fn run(
    address: SocketAddr,
    connections: usize,
    duration: Duration,
    request: Request,
) -> anyhow::Result<Stats> {
    run_at(address, connections, duration, request, None).await
}

/// Like [`run`], at most `rate` requests a second in all when given: each connection keeps
/// its share of a schedule, so a slow answer delays its requests but not the others'.
pub async fn run_at(
    address: SocketAddr,
    connections: usize,
    duration: Duration,
    request: Request,
    rate: Option<f64>,
) -> anyhow::Result<Stats> {
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + duration;
    let spacing = rate.map(|rate| Duration::from_secs_f64(connections as f64 / rate.max(1e-3)));
    let mut tasks = Vec::new();
    for n in 0..connections {
        let request = Arc::clone(&request);
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut connection = Connection::open(address).await?;
            // Connections start spread over one spacing, not all at once.
            let mut next = spacing.map(|s| started + s.mul_f64(n as f64 / connections as f64));
            while Instant::now() < deadline {
                if let (Some(at), Some(spacing)) = (next.as_mut(), spacing) {
                    tokio::time::sleep_until((*at).into()).await;
                    *at += spacing;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                let sent = Instant::now();
                match connection.send(&request.bytes).await {
                    Ok((status, _)) if status == request.expect => {
                        stats.ok += 1;
                        let micros = sent.elapsed().as_micros();
                        stats
                            .latencies
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                    Ok(_) => stats.failed += 1,
                    Err(_) => {
                        stats.failed += 1;
                        connection = Connection::open(address).await?;
                    }
                }
            }
            Ok::<_, anyhow::Error>(stats)
        }));
    }
    let mut total = Stats::default();
    for task in tasks {
        let stats = task.await??;
        total.ok += stats.ok;
        total.failed += stats.failed;
        total.latencies.extend(stats.latencies);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    Ok(total)
}

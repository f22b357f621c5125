//! A Twilio stand-in on loopback: answers `POST …/Messages.json` as Twilio does (201 and
//! the message's JSON) after a set delay, and counts what it received, so the benchmark
//! can measure sends to a slow provider and see a human sent the same link twice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The stand-in, serving until dropped.
pub struct Twilio {
    pub address: SocketAddr,
    /// How long each answer takes, in milliseconds; may change while it runs.
    pub delay_ms: Arc<AtomicU64>,
    /// How many times each pause's message arrived.
    received: Arc<Mutex<HashMap<u64, u32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Twilio {
    pub async fn start(delay: Duration) -> anyhow::Result<Twilio> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let delay_ms = Arc::new(AtomicU64::new(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        ));
        let received = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn({
            let (delay_ms, received) = (delay_ms.clone(), received.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (delay_ms, received) = (delay_ms.clone(), received.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, delay_ms, received).await;
                    });
                }
            }
        });
        Ok(Twilio {
            address,
            delay_ms,
            received,
            task,
        })
    }

    /// The `pp server` arguments that send SMS here, at a rate that never holds one back.
    pub fn server_args(&self) -> Vec<String> {
        [
            "--twilio-account-sid",
            "ACbench",
            "--twilio-auth-token",
            "bench-token",
            "--twilio-from",
            "+15550000",
            "--twilio-mps",
            "1000000",
            "--twilio-api-url",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("http://{}", self.address)])
        .collect()
    }

    /// Messages received, and how many of them arrived more than once.
    pub fn counts(&self) -> (u64, u64) {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        let total = received.values().map(|&n| u64::from(n)).sum();
        let repeated = received.values().filter(|&&n| n > 1).count() as u64;
        (total, repeated)
    }
}

impl Drop for Twilio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one keep-alive connection.
async fn serve(
    mut stream: TcpStream,
    delay_ms: Arc<AtomicU64>,
    received: Arc<Mutex<HashMap<u64, u32>>>,
) -> anyhow::Result<()> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut answered: u64 = 0;
    loop {
        let (head, length) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(head) = request.parse(&buffer)? {
                let length = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .context("no Content-Length")?;
                break (head, length);
            }
            read_more(&mut stream, &mut buffer).await?;
        };
        while buffer.len() < head + length {
            read_more(&mut stream, &mut buffer).await?;
        }
        let body = &buffer[head..head + length];
        *received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(hash(link_token(body)))
            .or_insert(0) += 1;
        buffer.drain(..head + length);
        tokio::time::sleep(Duration::from_millis(delay_ms.load(Ordering::Relaxed))).await;
        answered += 1;
        let json = format!(
            "{{\"sid\":\"SM{:032x}\",\"status\":\"queued\",\"num_segments\":\"1\"}}",
            answered
        );
        let answer = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        stream.write_all(answer.as_bytes()).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    anyhow::ensure!(n > 0, "closed");
    buffer.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// The response link's token in a form-encoded SMS, which names the pause whatever
/// address the server had; the whole body if there is none.
fn link_token(body: &[u8]) -> &[u8] {
    const BEFORE: &[u8] = b"%2Fr%2F";
    body.windows(BEFORE.len())
        .position(|w| w == BEFORE)
        .and_then(|at| body.get(at + BEFORE.len()..at + BEFORE.len() + 48))
        .unwrap_or(body)
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

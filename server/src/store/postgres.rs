//! PostgreSQL, for several servers on one database. Each write is its own transaction
//! on a pooled connection (PostgreSQL commits concurrent transactions together on its
//! own); what it changed goes to every server with `NOTIFY`, sent inside the transaction
//! so that it is delivered only if the transaction commits.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::db::{Conn, PgHandle};
use super::StoreError;
use crate::hub::{Change, Hub};

/// The channel on which servers tell each other what changed.
pub const NOTIFY_CHANNEL: &str = "pausepoint";
/// PostgreSQL refuses `NOTIFY` payloads from 8000 bytes on.
const MAX_PAYLOAD: usize = 7900;

/// What one commit tells the other servers.
#[derive(Serialize, Deserialize)]
struct Notice {
    /// The server that made the changes; it has acted on them already.
    origin: Uuid,
    changes: Vec<Change>,
}

/// A PostgreSQL database and its connection pool.
pub(super) struct Postgres {
    pub pool: PgPool,
    /// This server, as named in its notices.
    origin: Uuid,
}

impl Postgres {
    pub async fn connect(url: &str) -> Result<Postgres, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Postgres {
            pool,
            origin: Uuid::now_v7(),
        })
    }

    pub async fn read_conn(&self) -> Result<Conn, StoreError> {
        Ok(Conn::Postgres(PgHandle::Pooled(self.pool.acquire().await?)))
    }

    pub async fn begin(&self) -> Result<Conn, StoreError> {
        Ok(Conn::Postgres(PgHandle::Transaction(
            self.pool.begin().await?,
        )))
    }

    /// Tells the other servers about `changes` when the transaction on `conn` commits.
    pub async fn notify(&self, conn: &mut Conn, changes: &[Change]) -> Result<(), StoreError> {
        let Some(connection) = conn.postgres() else {
            return Ok(());
        };
        for payload in payloads(self.origin, changes)? {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(payload)
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    }

    /// Commits the transaction on `conn`.
    pub async fn commit(conn: Conn) -> Result<(), StoreError> {
        match conn {
            Conn::Postgres(PgHandle::Transaction(tx)) => Ok(tx.commit().await?),
            _ => Err(StoreError::corrupt(
                "transaction",
                "commit without a transaction",
            )),
        }
    }

    /// Hears what other servers changed and hands it to `hub`, until `stop`. A notice
    /// missed while reconnecting costs only time: waits run out and workers look at the
    /// database at least once a minute.
    pub async fn listen(&self, hub: Arc<Hub>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let listening = async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(NOTIFY_CHANNEL).await?;
                tracing::info!("listening for changes made on other servers");
                loop {
                    let notification = listener.recv().await?;
                    match serde_json::from_str::<Notice>(notification.payload()) {
                        Ok(notice) if notice.origin == self.origin => {}
                        Ok(notice) => hub.publish(&notice.changes),
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring a notice this server cannot read")
                        }
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                result = listening => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "lost the PostgreSQL listener; reconnecting");
                    }
                }
                () = stop.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The notices that carry `changes`, each under PostgreSQL's payload limit.
fn payloads(origin: Uuid, changes: &[Change]) -> Result<Vec<String>, StoreError> {
    let mut payloads = Vec::new();
    let mut chunk: Vec<Change> = Vec::new();
    for change in changes {
        chunk.push(change.clone());
        let text = encode(origin, &chunk)?;
        if text.len() > MAX_PAYLOAD && chunk.len() > 1 {
            let last = chunk.pop();
            payloads.push(encode(origin, &chunk)?);
            chunk = last.into_iter().collect();
        }
    }
    if !chunk.is_empty() {
        payloads.push(encode(origin, &chunk)?);
    }
    Ok(payloads)
}

fn encode(origin: Uuid, changes: &[Change]) -> Result<String, StoreError> {
    serde_json::to_string(&Notice {
        origin,
        changes: changes.to_vec(),
    })
    .map_err(|e| StoreError::corrupt("notice", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PauseId;

    #[test]
    fn many_changes_are_split_under_the_payload_limit() {
        let changes: Vec<Change> = (0..500)
            .map(|_| Change::PauseDecided {
                pause_id: PauseId::new(),
            })
            .collect();
        let origin = Uuid::now_v7();
        let payloads = payloads(origin, &changes).unwrap();
        assert!(payloads.len() > 1);
        let mut back = Vec::new();
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD);
            back.extend(serde_json::from_str::<Notice>(payload).unwrap().changes);
        }
        assert_eq!(back, changes);
    }
}

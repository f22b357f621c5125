//! What a server tells the others sharing its PostgreSQL database (a change they must
//! hear of, a batch of audit events sequenced), sent after the commit that made it, from
//! a task and a connection of its own.
//!
//! Not inside the transaction: a `NOTIFY` there makes PostgreSQL take one lock for the
//! whole cluster when the transaction commits, and hold it until the commit is on disk
//! (`PreCommit_Notify`, so that notices queue in commit order). With every writer's group
//! and every sequencer's batch notifying, each commit of every server waited for the one
//! before it to be flushed: a writer and a sequencer, or two servers, could not commit
//! side by side.
//! Sent here, a notice takes that lock only for its own statement, which writes nothing
//! to flush, and the notices waiting when it starts go together in that one statement.
//! Under load one statement starts at most every [`SEND_EVERY`], so that it carries many
//! groups' notices (one per group cost each create at one connection a statement of its
//! own); the first after a quiet spell goes at once.
//!
//! A notice still goes out only for what committed, and in the order of the commits of
//! this server. One lost (the server dies between its commit and its notice, or
//! PostgreSQL refuses it) costs the others time and nothing else, like one missed while
//! their listener reconnects: waits run out, and workers look at the database on their
//! own.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::db::{Arg, Conn, OwnedArg, PgHandle};
use super::postgres::{payloads, NOTIFY_CHANNEL};
use super::sequencer::SEQUENCED_CHANNEL;
use super::StoreError;
use crate::hub::Change;

/// What the task sends.
enum Message {
    /// Committed changes the other servers need to hear of.
    Changes(Vec<Change>),
    /// This server's sequencer committed a batch.
    Sequenced,
    /// Send what is queued, then end.
    Stop,
}

/// This server's notices to the others, in the order they are given. Cheap to clone.
#[derive(Clone)]
pub(super) struct Notices {
    queue: mpsc::UnboundedSender<Message>,
}

/// Statements start at most this often: under load a long-poll on another server hears
/// of a decision up to this much later, as a sequencer's batch may start this much later.
const SEND_EVERY: Duration = Duration::from_millis(10);

/// At most this many messages go in one statement: two arguments per notice, far under
/// PostgreSQL's limit, and a statement that stays short.
const MAX_MESSAGES: usize = 1_024;

impl Notices {
    /// Starts the task that sends the notices of the server `origin` over `pool`.
    pub fn start(pool: PgPool, origin: Uuid) -> (Notices, JoinHandle<()>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        (Notices { queue }, tokio::spawn(run(pool, origin, receiver)))
    }

    /// Tells the other servers of `changes`, which committed. Those that concern only
    /// this server are left out.
    pub fn changed(&self, mut changes: Vec<Change>) {
        changes.retain(Change::concerns_other_servers);
        if !changes.is_empty() {
            let _ = self.queue.send(Message::Changes(changes));
        }
    }

    /// Tells the other servers that this server's sequencer committed a batch.
    pub fn sequenced(&self) {
        let _ = self.queue.send(Message::Sequenced);
    }

    /// Has the task send every notice given so far, and end.
    pub fn stop(&self) {
        let _ = self.queue.send(Message::Stop);
    }
}

async fn run(pool: PgPool, origin: Uuid, mut queue: mpsc::UnboundedReceiver<Message>) {
    let mut kept: Option<sqlx::pool::PoolConnection<sqlx::Postgres>> = None;
    let mut stopping = false;
    let mut last_sent: Option<Instant> = None;
    while !stopping {
        let mut messages = Vec::new();
        match queue.recv().await {
            Some(Message::Stop) | None => break,
            Some(message) => messages.push(message),
        }
        let wait = last_sent.map(|at| SEND_EVERY.saturating_sub(at.elapsed()));
        if let Some(wait) = wait.filter(|wait| !wait.is_zero()) {
            tokio::time::sleep(wait).await;
        }
        last_sent = Some(Instant::now());
        while messages.len() < MAX_MESSAGES {
            match queue.try_recv() {
                Ok(Message::Stop) => {
                    stopping = true;
                    break;
                }
                Ok(message) => messages.push(message),
                Err(_) => break,
            }
        }
        let sent = match statement(origin, messages) {
            Ok(Some((sql, args))) => send(&pool, &mut kept, &sql, &args).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not tell the other servers what changed; they will find it on their own");
        }
    }
}

/// Runs `sql` on the kept connection, or a new one; gives the connection up if it fails.
async fn send(
    pool: &PgPool,
    kept: &mut Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    sql: &str,
    args: &[OwnedArg],
) -> Result<(), StoreError> {
    let connection = match kept.take() {
        Some(connection) => connection,
        None => pool.acquire().await?,
    };
    let mut conn = Conn::Postgres(PgHandle::writing(connection));
    let args: Vec<Arg<'_>> = args.iter().map(OwnedArg::as_arg).collect();
    // Its text changes with the number of notices: not worth keeping prepared.
    conn.execute_once(sql, &args, false, true).await?;
    if let Conn::Postgres(handle) = conn {
        *kept = handle.into_inner();
    }
    Ok(())
}

/// One statement that sends `messages` in their order (a sequencer's batches once), or
/// none when there is nothing to send.
fn statement(
    origin: Uuid,
    messages: Vec<Message>,
) -> Result<Option<(String, Vec<OwnedArg>)>, StoreError> {
    let mut changes = Vec::new();
    let mut sequenced = false;
    for message in messages {
        match message {
            Message::Changes(more) => changes.extend(more),
            Message::Sequenced => sequenced = true,
            Message::Stop => {}
        }
    }
    let mut notices: Vec<(&str, String)> = payloads(origin, &changes)?
        .into_iter()
        .map(|payload| (NOTIFY_CHANNEL, payload))
        .collect();
    if sequenced {
        notices.push((SEQUENCED_CHANNEL, origin.to_string()));
    }
    if notices.is_empty() {
        return Ok(None);
    }
    let mut args = Vec::with_capacity(notices.len() * 2);
    let mut sends = Vec::with_capacity(notices.len());
    for (channel, payload) in notices {
        args.push(OwnedArg::Text(Some(channel.to_owned())));
        args.push(OwnedArg::Text(Some(payload)));
        sends.push(format!("pg_notify(${}, ${})", args.len() - 1, args.len()));
    }
    Ok(Some((format!("SELECT {}", sends.join(", ")), args)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ids::PauseId;

    #[test]
    fn notices_waiting_together_go_in_one_statement_in_their_order() {
        let origin = Uuid::now_v7();
        let (first, second) = (PauseId::new(), PauseId::new());
        let changed = |pause_id| Message::Changes(vec![Change::PauseChanged { pause_id }]);
        let (sql, args) = statement(
            origin,
            vec![
                changed(first),
                Message::Sequenced,
                changed(second),
                Message::Sequenced,
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(sql, "SELECT pg_notify($1, $2), pg_notify($3, $4)");
        let texts: Vec<String> = args
            .iter()
            .map(|arg| match arg {
                OwnedArg::Text(Some(text)) => text.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts[0], NOTIFY_CHANNEL);
        assert_eq!(
            texts[1],
            payloads(
                origin,
                &[
                    Change::PauseChanged { pause_id: first },
                    Change::PauseChanged { pause_id: second },
                ]
            )
            .unwrap()[0]
        );
        assert_eq!(
            texts[2..],
            [SEQUENCED_CHANNEL.to_owned(), origin.to_string()]
        );
        assert!(statement(origin, vec![Message::Stop]).unwrap().is_none());
    }
}

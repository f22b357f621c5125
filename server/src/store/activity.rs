//! What the console's charts count: the project's recent decisions, deliveries and
//! webhook events. Each read starts from the project's pauses in a range of ids (an id
//! carries its creation time), so it searches `pauses_by_project` and, for each pause,
//! the keys or per-pause indexes of the other tables, never a whole table.

use jiff::Timestamp;
use pausepoint_api::{Channel, PauseStatus};

use super::db::{args, Conn, OwnedArg, Query, Row};
use super::pauses::lowest_id_since;
use super::{Store, StoreError};
use crate::ids::ProjectId;

/// The most rows one chart reads: the console shows recent activity, not all of it.
pub const MAX_ROWS: i64 = 20_000;

/// A pause that left `pending`: when it was created, how it ended and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub created_at: Timestamp,
    pub status: PauseStatus,
    pub decided_at: Timestamp,
}

/// A channel's notices to pauses created in the window, and how many failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDeliveries {
    pub channel: Channel,
    pub total: i64,
    pub failed: i64,
}

/// A webhook event of a pause created in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOutcome {
    pub created_at: Timestamp,
    pub failed: bool,
}

/// The notices of the project's pauses created since `since`, counted by channel. A
/// pause's notices are the primary key's range from `{pause_id}:` to `{pause_id};` (see
/// [`super::deliveries::DeliveryKey::range`]).
pub fn deliveries_by_channel_query(project_id: ProjectId, since: Timestamp) -> Query {
    let mut query = Query::new(
        "SELECT d.channel, COUNT(*) AS total, \
         SUM(CASE WHEN d.status = 'failed' THEN 1 ELSE 0 END) AS failed \
         FROM pauses p JOIN deliveries d ON d.id >= p.id || ':' AND d.id < p.id || ';' \
         WHERE ",
    );
    query.push(
        "p.project_id = ? AND p.id >= ? AND p.created_at >= ? \
         GROUP BY d.channel ORDER BY d.channel",
        [
            OwnedArg::Text(Some(project_id.to_string())),
            OwnedArg::Text(Some(lowest_id_since(since))),
            OwnedArg::Int(Some(since.as_millisecond())),
        ],
    );
    query
}

impl Conn {
    pub async fn decided_since(
        &mut self,
        project_id: ProjectId,
        since: Timestamp,
    ) -> Result<Vec<Decided>, StoreError> {
        self.fetch_all(
            "pauses",
            "SELECT status, created_at, response_at FROM pauses \
             WHERE project_id = $1 AND id >= $2 AND created_at >= $3 \
             AND status <> 'pending' AND response_at IS NOT NULL \
             ORDER BY id DESC LIMIT $4",
            args![
                &project_id.to_string(),
                &lowest_id_since(since),
                since,
                MAX_ROWS
            ],
            |row: &dyn Row| {
                Ok(Decided {
                    status: row
                        .text("status")?
                        .parse()
                        .map_err(|e: String| StoreError::corrupt("pauses", e))?,
                    created_at: row.time("created_at")?,
                    decided_at: row.time("response_at")?,
                })
            },
        )
        .await
    }

    pub async fn deliveries_by_channel_since(
        &mut self,
        project_id: ProjectId,
        since: Timestamp,
    ) -> Result<Vec<ChannelDeliveries>, StoreError> {
        let query = deliveries_by_channel_query(project_id, since);
        self.fetch_all("deliveries", query.sql(), &query.args(), |row: &dyn Row| {
            Ok(ChannelDeliveries {
                channel: row
                    .text("channel")?
                    .parse()
                    .map_err(|e: String| StoreError::corrupt("deliveries", e))?,
                total: row.int("total")?,
                failed: row.int("failed")?,
            })
        })
        .await
    }

    pub async fn webhooks_since(
        &mut self,
        project_id: ProjectId,
        since: Timestamp,
    ) -> Result<Vec<WebhookOutcome>, StoreError> {
        self.fetch_all(
            "webhook_events",
            "SELECT w.created_at, w.status FROM pauses p JOIN webhook_events w ON w.pause_id = p.id \
             WHERE p.project_id = $1 AND p.id >= $2 AND p.created_at >= $3 \
             ORDER BY p.id DESC LIMIT $4",
            args![&project_id.to_string(), &lowest_id_since(since), since, MAX_ROWS],
            |row: &dyn Row| {
                Ok(WebhookOutcome {
                    created_at: row.time("created_at")?,
                    failed: row.text("status")? == "failed",
                })
            },
        )
        .await
    }
}

/// Everything the charts show, read in one go.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub decided: Vec<Decided>,
    pub deliveries: Vec<ChannelDeliveries>,
    pub webhooks: Vec<WebhookOutcome>,
}

impl Store {
    /// The project's activity on pauses created since `since`.
    pub async fn activity(
        &self,
        project_id: ProjectId,
        since: Timestamp,
    ) -> Result<Activity, StoreError> {
        self.read(move |conn| {
            Box::pin(async move {
                Ok(Activity {
                    decided: conn.decided_since(project_id, since).await?,
                    deliveries: conn.deliveries_by_channel_since(project_id, since).await?,
                    webhooks: conn.webhooks_since(project_id, since).await?,
                })
            })
        })
        .await
    }
}

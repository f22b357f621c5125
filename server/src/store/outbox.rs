//! Rows of work that must survive a crash (deliveries to humans, webhook events) and the
//! one way workers take them: a row is due at `next_attempt_at`, a worker claims a batch
//! with one UPDATE (skipping rows other servers are claiming) and a lease, and a crashed
//! holder's lease runs out. A new pause's first notices are written already leased to the
//! server that created them, which sends them with no claim ([`crate::work::handover`]).

use jiff::Timestamp;

use super::db::{args, Conn};
use super::{StoreError, Tx};

/// A table of pending work, and the column that names a row.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    table: &'static str,
    key: &'static str,
}

impl Outbox {
    /// The table's name, for logs.
    pub fn name(&self) -> &'static str {
        self.table
    }
}

/// One delivery per approver and notice, to its human.
pub const DELIVERIES: Outbox = Outbox {
    table: "deliveries",
    key: "id",
};
/// Webhook events, to the pause's `webhook_url`.
pub const WEBHOOK_EVENTS: Outbox = Outbox {
    table: "webhook_events",
    key: "id",
};

impl Tx {
    /// Claims up to `limit` rows due at `now` and held by nobody, until `lease_until`, in
    /// one statement; returns their keys. Servers claiming at once get different rows.
    pub async fn claim_due(
        &mut self,
        outbox: Outbox,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "UPDATE {table} SET lease_until = $2 WHERE {key} IN ( \
                 SELECT {key} FROM {table} \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                   AND (lease_until IS NULL OR lease_until <= $1) \
                 ORDER BY next_attempt_at LIMIT $3 {lock}) \
             RETURNING {key} AS key",
            key = outbox.key,
            table = outbox.table,
            lock = self.dialect().skip_locked()
        );
        self.fetch_all(outbox.table, &sql, args![now, lease_until, limit], |row| {
            row.text("key")
        })
        .await
    }

    /// Gives claimed rows back unsent, due at once: for a server that stops mid-batch.
    pub async fn release(&mut self, outbox: Outbox, keys: &[String]) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {table} SET lease_until = NULL WHERE {key} = $1 AND status = 'pending'",
            key = outbox.key,
            table = outbox.table,
        );
        for key in keys {
            self.execute(&sql, args![key]).await?;
        }
        Ok(())
    }

    /// Releases every lease, at start. Only where one server owns the database (SQLite):
    /// then any lease left is a crashed process's, and its work can go out at once.
    /// Servers sharing a database wait for leases to run out instead.
    pub async fn release_leases_of_a_crashed_server(
        &mut self,
        outbox: Outbox,
    ) -> Result<u64, StoreError> {
        if !self.dialect().single_server() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE {} SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL",
            outbox.table
        );
        self.execute(&sql, &[]).await
    }
}

/// How far behind an outbox is at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Rows due and held by nobody.
    pub due: i64,
    /// When the oldest of them came due.
    pub oldest: Option<Timestamp>,
    /// Rows not done yet, due or not, held or not.
    pub queued: i64,
}

impl Conn {
    /// How far behind `outbox` is at `now` (read through its index of pending rows, so its
    /// cost grows with the queue, not with every row ever done).
    pub async fn backlog(&mut self, outbox: Outbox, now: Timestamp) -> Result<Backlog, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS queued, \
                    SUM(CASE WHEN next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                             THEN 1 ELSE 0 END) AS due, \
                    MIN(CASE WHEN next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                             THEN next_attempt_at END) AS oldest \
             FROM {} WHERE status = 'pending'",
            outbox.table
        );
        self.fetch_one(outbox.table, &sql, args![now], |row| {
            Ok(Backlog {
                due: row.opt_int("due")?.unwrap_or(0),
                oldest: row.opt_time("oldest")?,
                queued: row.int("queued")?,
            })
        })
        .await
    }

    /// When the next pending row is due (or its lease runs out).
    ///
    /// Read first as the earliest rows in the order of the `_due` index, cut short, rather
    /// than as a `MIN` over every pending row. Each sent row leaves a dead entry in that
    /// index until the next vacuum; a scan over all of it visited every one of them on
    /// each call (which the delivery worker makes each time it goes idle, at one
    /// connection once per create), while an ordered scan marks them dead as it passes and
    /// stops at the first live rows. Only when every row it read is held past the due time
    /// of the last one can a row it did not read come sooner, and then the whole `MIN` is
    /// read. (Answering with that due time instead, early but never late, made a worker
    /// whose own handed-over notices were the rows read wake, claim nothing and read again
    /// in a loop.)
    pub async fn outbox_next_at(
        &mut self,
        outbox: Outbox,
    ) -> Result<Option<Timestamp>, StoreError> {
        let sql = format!(
            "SELECT next_attempt_at, lease_until FROM {} WHERE status = 'pending' \
             ORDER BY next_attempt_at LIMIT {NEXT_AT_LOOKAHEAD}",
            outbox.table
        );
        let rows = self
            .fetch_all(outbox.table, &sql, &[], |row| {
                Ok((row.time("next_attempt_at")?, row.opt_time("lease_until")?))
            })
            .await?;
        if let Some(next) = next_at(&rows) {
            return Ok(next);
        }
        let sql = format!(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
                             THEN lease_until ELSE next_attempt_at END) AS next \
             FROM {} WHERE status = 'pending'",
            outbox.table
        );
        self.fetch_one(outbox.table, &sql, &[], |row| row.opt_time("next"))
            .await
    }
}

/// How many of the earliest pending rows [`Conn::outbox_next_at`] reads first.
const NEXT_AT_LOOKAHEAD: usize = 32;

/// When the next pending row can be claimed (it is due and nobody holds it), as far as
/// `rows` tell: the earliest pending rows by `next_attempt_at`, at most
/// [`NEXT_AT_LOOKAHEAD`]. `None` when they cannot tell.
fn next_at(rows: &[(Timestamp, Option<Timestamp>)]) -> Option<Option<Timestamp>> {
    let soonest = rows
        .iter()
        .map(|&(due, lease)| lease.map_or(due, |lease| lease.max(due)))
        .min();
    match (rows.last(), soonest) {
        // Rows not read come due no sooner than the last one read, but may be free then:
        // sooner than every row read, each held past that time.
        (Some(&(last, _)), Some(soonest)) if rows.len() == NEXT_AT_LOOKAHEAD && soonest > last => {
            None
        }
        _ => Some(soonest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + second).unwrap()
    }

    #[test]
    fn the_next_row_is_the_earliest_due_and_unheld() {
        assert_eq!(next_at(&[]), Some(None));
        // The first row is held until 50; the second is due at 20 and held by nobody.
        assert_eq!(
            next_at(&[(at(10), Some(at(50))), (at(20), None)]),
            Some(Some(at(20)))
        );
        // A lease that ran out before the row came due does not delay it.
        assert_eq!(
            next_at(&[(at(10), Some(at(5))), (at(20), None)]),
            Some(Some(at(10)))
        );
        // Every row is held: the first lease to run out.
        assert_eq!(
            next_at(&[(at(10), Some(at(60))), (at(20), Some(at(40)))]),
            Some(Some(at(40)))
        );
    }

    #[test]
    fn a_full_read_of_held_rows_cannot_tell_and_anything_else_can() {
        let mut rows: Vec<_> = (0..NEXT_AT_LOOKAHEAD as i64)
            .map(|n| (at(n), Some(at(1_000))))
            .collect();
        // A row past the read may be due at the last one's time, and free.
        assert_eq!(next_at(&rows), None);
        // One of them free: nothing past the read comes sooner.
        rows[5].1 = None;
        assert_eq!(next_at(&rows), Some(Some(at(5))));
        // One row fewer than a full read: every pending row was read.
        rows[5].1 = Some(at(1_000));
        rows.pop();
        assert_eq!(next_at(&rows), Some(Some(at(1_000))));
    }
}

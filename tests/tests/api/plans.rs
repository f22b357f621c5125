//! Costs that stay flat as the data grows: every list and audit filter is served by an
//! index. Each query the store builds is checked against the database's own plan (SQLite's
//! `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN` with sequential scans discouraged): a plan
//! that scans the table, or searches it by an index that does not hold the filtered
//! column, fails.

use jiff::Timestamp;
use pausepoint_api::{AuditEventKind, Channel, PauseStatus};
use pausepoint_server::ids::PauseId;
use pausepoint_server::store::audit::{audit_query, AuditFilter};
use pausepoint_server::store::db::Query;
use pausepoint_server::store::pauses::{list_query, PauseFilter};
use pausepoint_server::store::Dialect;
use pausepoint_tests::{Backend, TestServer};

/// A query with no filter: the index must give its order.
const ORDER: &str = "(order)";

fn dialect(server: &TestServer) -> Dialect {
    server.app.store().dialect()
}

async fn plan(server: &TestServer, query: Query) -> Vec<String> {
    server
        .app
        .store()
        .read(move |conn| Box::pin(async move { conn.query_plan(&query).await }))
        .await
        .unwrap()
}

/// The plan reads `table` through an index whose condition names `column`.
fn served_by_index(server: &TestServer, plan: &[String], table: &str, column: &str) -> bool {
    match server.backend {
        // "SEARCH p USING INDEX pauses_by_project_status (project_id=? AND status=?)"
        Backend::Sqlite => {
            let searched = plan.iter().any(|line| {
                line.starts_with(&format!("SEARCH {table} USING "))
                    && (line.contains(&format!("{column}=?"))
                        || line.contains(&format!("{column}>"))
                        || line.contains(&format!("{column}<"))
                        // Only the order: the index's own order, with no sort after.
                        || (column == ORDER && !plan.iter().any(|l| l.contains("TEMP B-TREE"))))
            });
            searched && !plan.iter().any(|line| line.starts_with("SCAN "))
        }
        // "Index Scan using pauses_by_project_status on pauses p" then
        // "  Index Cond: ((project_id = $1) AND (status = $2))"
        Backend::Postgres => {
            let conditions: Vec<&String> =
                plan.iter().filter(|l| l.contains("Index Cond:")).collect();
            let indexed = match column {
                ORDER => !plan.iter().any(|l| l.trim_start().starts_with("Sort")),
                column => conditions.iter().any(|l| l.contains(column)),
            };
            indexed && !plan.iter().any(|line| line.contains("Seq Scan"))
        }
    }
}

#[tokio::test]
async fn every_list_filter_is_served_by_an_index() {
    let server = TestServer::start().await;
    let at = Timestamp::now();
    let cases: Vec<(&str, PauseFilter)> = vec![
        (ORDER, PauseFilter::default()),
        (
            "status",
            PauseFilter {
                status: Some(PauseStatus::Cancelled),
                ..PauseFilter::default()
            },
        ),
        (
            "channel",
            PauseFilter {
                channel: Some(Channel::Slack),
                ..PauseFilter::default()
            },
        ),
        // A time range is a range of ids (an id carries its pause's creation time).
        (
            "id",
            PauseFilter {
                since: Some(at),
                ..PauseFilter::default()
            },
        ),
        (
            "id",
            PauseFilter {
                until: Some(at),
                status: Some(PauseStatus::Pending),
                ..PauseFilter::default()
            },
        ),
        // The console's searches walk the project's pauses newest first, in the index's
        // order, and look up each one's approvers by their primary key.
        (
            ORDER,
            PauseFilter {
                recipient: Some("+14155550100".into()),
                ..PauseFilter::default()
            },
        ),
        (
            ORDER,
            PauseFilter {
                text: Some("deploy".into()),
                ..PauseFilter::default()
            },
        ),
    ];
    for (column, filter) in cases {
        for before in [None, Some(PauseId::new())] {
            let query = list_query(dialect(&server), server.project_id, &filter, before, 21);
            let plan = plan(&server, query.clone()).await;
            assert!(
                served_by_index(&server, &plan, "p", column),
                "{filter:?} (before {before:?}) is not served by an index on {column}:\n{}\n{}",
                query.sql(),
                plan.join("\n")
            );
        }
    }
}

#[tokio::test]
async fn every_audit_filter_is_served_by_an_index() {
    let server = TestServer::start().await;
    let at = Timestamp::now();
    let cases: Vec<(&str, AuditFilter)> = vec![
        (ORDER, AuditFilter::default()),
        (
            "pause_id",
            AuditFilter {
                pause_id: Some(PauseId::new()),
                ..AuditFilter::default()
            },
        ),
        (
            "event",
            AuditFilter {
                event: Some(AuditEventKind::PauseCancelled),
                ..AuditFilter::default()
            },
        ),
        (
            "actor",
            AuditFilter {
                actor: Some("system".into()),
                ..AuditFilter::default()
            },
        ),
        (
            "occurred_at",
            AuditFilter {
                since: Some(at),
                until: Some(at),
                ..AuditFilter::default()
            },
        ),
    ];
    for (column, filter) in cases {
        for after in [None, Some(1_000)] {
            let query = audit_query(server.project_id, &filter, after, 101);
            let plan = plan(&server, query.clone()).await;
            assert!(
                served_by_index(&server, &plan, "audit_events", column),
                "{filter:?} (after {after:?}) is not served by an index on {column}:\n{}\n{}",
                query.sql(),
                plan.join("\n")
            );
        }
    }
}

/// Verification's cross-check reads pauses and their decision events by id, 500 at a time:
/// each must be a search per id, never a walk of the project's events. (SQLite only: with
/// a few hundred rows PostgreSQL rightly reads them all, and with millions its statistics
/// choose the per-id search; SQLite plans without statistics, so its plan is the one that
/// must be pinned. Its first plan here, before `event || ''`, read every event.)
#[tokio::test]
async fn the_cross_check_reads_by_id() {
    let server = TestServer::start().await;
    if server.backend == Backend::Postgres {
        return;
    }
    let ids: Vec<PauseId> = (0..500).map(|_| PauseId::new()).collect();
    let query = pausepoint_server::store::proof::decision_events_query(server.project_id, &ids);
    let found = plan(&server, query.clone()).await;
    assert!(
        served_by_index(&server, &found, "audit_events", "pause_id"),
        "{}\n{}",
        query.sql(),
        found.join("\n")
    );
    // Every read of pauses reads their approvers, each with its first notice, by key.
    let query = pausepoint_server::store::pauses::pauses_with_ids_query(
        dialect(&server),
        server.project_id,
        &ids,
    );
    let found = plan(&server, query.clone()).await;
    assert!(
        ["p", "a", "ad"]
            .iter()
            .all(|table| served_by_index(&server, &found, table, "id")
                || served_by_index(&server, &found, table, "pause_id")),
        "{}\n{}",
        query.sql(),
        found.join("\n")
    );
}

/// A pause's notices are read by their key (`{pause_id}:{approver}:{reminder}`): every
/// read of a pause (its first notice, and each approver's) and the console's count of
/// notices by channel search the primary key, never `deliveries_by_pause`, whose columns
/// repeat the key's prefix, so that a later migration can drop it (two index entries less
/// per create) without leaving any read to scan the table.
#[tokio::test]
async fn notices_are_read_by_their_key() {
    use pausepoint_server::store::activity::deliveries_by_channel_query;
    use pausepoint_server::store::pauses::pauses_with_ids_query;
    let server = TestServer::start().await;
    let ids = [PauseId::new()];
    let reads = [
        (
            pauses_with_ids_query(dialect(&server), server.project_id, &ids),
            &["d", "ad"][..],
        ),
        (
            deliveries_by_channel_query(server.project_id, Timestamp::now()),
            &["d"][..],
        ),
    ];
    for (query, aliases) in reads {
        let found = plan(&server, query.clone()).await;
        for alias in aliases {
            assert!(
                by_key(&server, &found, alias),
                "deliveries {alias} is not read by its key:\n{}\n{}",
                query.sql(),
                found.join("\n")
            );
        }
    }
}

/// The plan reads the deliveries named `alias` through the primary key, by `id`.
fn by_key(server: &TestServer, plan: &[String], alias: &str) -> bool {
    match server.backend {
        // "SEARCH d USING INDEX sqlite_autoindex_deliveries_1 (id=?)", or "(id>? AND id<?)"
        Backend::Sqlite => plan.iter().any(|line| {
            line.starts_with(&format!("SEARCH {alias} USING "))
                && (line.contains("(id=?)") || line.contains("(id>? AND id<?)"))
        }),
        // "Index Scan using deliveries_pkey on deliveries d" then
        // "  Index Cond: (id = (p.id || ':0:0'::text))"; or "Bitmap Heap Scan on
        // deliveries d", its recheck, then "Bitmap Index Scan on deliveries_pkey" and its
        // "Index Cond: ((id >= …) AND (id < …))".
        Backend::Postgres => (0..plan.len()).any(|at| {
            let scan = &plan[at];
            let node = &plan[at..plan.len().min(at + 4)];
            let by_id = |line: &String| {
                let line = line.trim_start();
                line.starts_with("Index Cond: (id ") || line.starts_with("Index Cond: ((id ")
            };
            (scan.contains(&format!(" on deliveries {alias} "))
                || scan.ends_with(&format!(" on deliveries {alias}")))
                && node.iter().any(|line| line.contains("deliveries_pkey"))
                && node.iter().any(by_id)
        }),
    }
}

/// A hook looks for a rule before every question, and `pp rules list` pages them: both
/// are searches of the project's rules by index.
#[tokio::test]
async fn rules_are_found_by_index() {
    use pausepoint_server::store::rules::{live_rule_query, rules_query};
    let server = TestServer::start().await;
    let query = live_rule_query(server.project_id, "ab12", Timestamp::now());
    let found = plan(&server, query.clone()).await;
    assert!(
        served_by_index(&server, &found, "approval_rules", "match_key"),
        "{}\n{}",
        query.sql(),
        found.join("\n")
    );
    let query = rules_query(server.project_id, 50);
    let found = plan(&server, query.clone()).await;
    assert!(
        served_by_index(&server, &found, "approval_rules", "project_id"),
        "{}\n{}",
        query.sql(),
        found.join("\n")
    );
}

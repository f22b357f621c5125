//! `pp admin backup` and `pp admin restore` as an operator runs them: the real binary
//! against a real server's SQLite file while clients write to it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pausepoint_api::{AuditEventKind, PauseStatus};
use pausepoint_tests::{admin_create_key, run_pp, sms_pause, Client, ServerProcess};
use reqwest::StatusCode;
use uuid::Uuid;

fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// Clients that create and cancel pauses until told to stop; every acknowledged create is
/// recorded, in order.
struct Load {
    running: Arc<AtomicBool>,
    acknowledged: Arc<std::sync::Mutex<Vec<Uuid>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &Client) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
        let clients = (0..8)
            .map(|i| {
                let (client, running, acknowledged) = (
                    client.clone(),
                    Arc::clone(&running),
                    Arc::clone(&acknowledged),
                );
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while running.load(Ordering::SeqCst) && n < 5_000 {
                        n += 1;
                        let pause = client
                            .create(sms_pause(None))
                            .await
                            .pause(StatusCode::CREATED);
                        if (n + i).is_multiple_of(2) {
                            client.cancel(pause.pause_id).await.pause(StatusCode::OK);
                        }
                        acknowledged.lock().unwrap().push(pause.pause_id);
                    }
                })
            })
            .collect();
        Load {
            running,
            acknowledged,
            clients,
        }
    }

    fn acknowledged(&self) -> Vec<Uuid> {
        self.acknowledged.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.running.store(false, Ordering::SeqCst);
        for client in self.clients {
            client.await.unwrap();
        }
    }
}

async fn until_acknowledged(load: &Load, count: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while load.acknowledged().len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load made no progress"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_backup_taken_under_load_is_whole_and_restores_every_acknowledged_pause() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let backup = dir.path().join("backups").join("pp-backup.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);

    let load = Load::start(&client);
    until_acknowledged(&load, 200).await;
    let before = load.acknowledged();
    let (code, stdout, stderr) = run_pp(&[
        "admin",
        "backup",
        &arg(&backup),
        "--db",
        &arg(&database),
        "--json",
    ])
    .await;
    until_acknowledged(&load, before.len() + 100).await;
    load.stop().await;
    assert_eq!(code, 0, "{stderr}");
    let written: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(written["backup"]["audit_verified"], true);
    assert!(written["backup"]["pauses"].as_u64().unwrap() >= before.len() as u64);
    assert!(written["backup"]["events"].as_u64().unwrap() > before.len() as u64);
    assert!(written["master_key_file"]
        .as_str()
        .unwrap()
        .ends_with("pausepoint.key"));
    assert!(!backup.with_extension("db.partial").exists());
    // Owner-only, like the database.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let (code, stdout, _) = run_pp(&["admin", "verify-backup", &arg(&backup)]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("Integrity: ok"), "{stdout}");

    // Restore over the database the (now stopped) server used.
    assert_eq!(server.terminate().await, Some(0));
    let (code, stdout, stderr) =
        run_pp(&["admin", "restore", &arg(&backup), "--db", &arg(&database)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("The database it replaced is now"),
        "{stdout}"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("pp.db.replaced-")
        })
        .collect();
    assert!(!aside.is_empty(), "the replaced database was kept");

    let server = ServerProcess::start(&database, 0).await;
    assert!(
        server
            .logged()
            .contains("this database was restored from a backup"),
        "{}",
        server.logged()
    );
    let client = Client::new(&server.base, &key);
    for id in &before {
        let pause = client.get(*id).await.pause(StatusCode::OK);
        let events = client.audit(&format!("pause_id={id}")).await;
        assert_eq!(events[0].event, AuditEventKind::PauseCreated);
        if pause.status == PauseStatus::Cancelled {
            assert!(events
                .iter()
                .any(|e| e.event == AuditEventKind::PauseCancelled));
        }
    }
    let report = client.get_path("/v1/audit/verify").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
    server.terminate().await;
}

#[tokio::test]
async fn a_restore_refuses_a_running_servers_database_a_damaged_file_and_an_edited_chain() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let backup = dir.path().join("good.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    let pause = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    client.cancel(pause.pause_id).await.pause(StatusCode::OK);
    let (code, _, stderr) =
        run_pp(&["admin", "backup", &arg(&backup), "--db", &arg(&database)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("The master key file is not in the backup"),
        "{stderr}"
    );
    let (code, _, stderr) =
        run_pp(&["admin", "backup", &arg(&backup), "--db", &arg(&database)]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");

    // A running server's database.
    let (code, _, stderr) =
        run_pp(&["admin", "restore", &arg(&backup), "--db", &arg(&database)]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("in use by a running pp server"), "{stderr}");

    // One flipped byte in the first page's b-tree header.
    let damaged = dir.path().join("damaged.db");
    let mut bytes = std::fs::read(&backup).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let (code, _, stderr) =
        run_pp(&["admin", "restore", &arg(&damaged), "--db", &arg(&database)]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("is damaged"), "{stderr}");

    // The cancellation rewritten as an approval in the log, the guard dropped first.
    let edited = dir.path().join("edited.db");
    std::fs::copy(&backup, &edited).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", edited.display()))
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_events_refuse_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET data = replace(data, '\"cancelled\"', '\"responded\"') WHERE event = 'pause.cancelled'")
        .execute(&pool)
        .await
        .unwrap();
    // Still open, the edit is in the file's write-ahead log: a copy of the file alone would
    // lack it, so the file is refused until the log is written back.
    let (code, _, stderr) = run_pp(&["admin", "verify-backup", &arg(&edited)]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("edited.db-wal holds writes"), "{stderr}");
    let (code, _, stderr) =
        run_pp(&["admin", "restore", &arg(&edited), "--db", &arg(&database)]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("edited.db-wal holds writes"), "{stderr}");
    // Written back at once: a closed pool may still be checkpointing in the background.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (code, stdout, stderr) = run_pp(&["admin", "verify-backup", &arg(&edited)]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("does not hold at event"), "{stderr}");
    server.terminate().await;
    let (code, _, stderr) =
        run_pp(&["admin", "restore", &arg(&edited), "--db", &arg(&database)]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("does not hold at event"), "{stderr}");
    // Nothing was replaced by the refusals: the server starts on its own database.
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    assert_eq!(client.status(pause.pause_id).await, PauseStatus::Cancelled);
    server.terminate().await;

    // PostgreSQL has its own tools.
    let (code, _, stderr) = run_pp(&[
        "admin",
        "backup",
        &arg(&dir.path().join("pg.db")),
        "--db",
        "postgres://postgres:secret@127.0.0.1:5432/test",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}

#[tokio::test]
async fn a_backup_restored_without_its_key_file_fails_at_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let backup = dir.path().join("good.db");
    admin_create_key(&database, "agent", "default").await;
    let (code, _, stderr) =
        run_pp(&["admin", "backup", &arg(&backup), "--db", &arg(&database)]).await;
    assert_eq!(code, 0, "{stderr}");

    let elsewhere = dir.path().join("elsewhere").join("pp.db");
    let (code, stdout, stderr) =
        run_pp(&["admin", "restore", &arg(&backup), "--db", &arg(&elsewhere)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("replaced"), "{stdout}");
    // A new machine: no key file beside the restored database.
    let (code, _, stderr) =
        run_pp(&["server", "--db", &arg(&elsewhere), "--bind", "127.0.0.1:0"]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("sealed with another key file"), "{stderr}");
}

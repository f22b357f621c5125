//! Backups and restores of a SQLite database that lose nothing.
//!
//! - A backup is taken with `VACUUM INTO` while servers run and write: one read
//!   transaction, so the copy is consistent, and no writer waits for it. The copy is
//!   written beside its destination, passes `PRAGMA integrity_check` and a verification of
//!   every project's audit chain (and every pause against it), and only then takes its
//!   name. The master key file is never put in it.
//! - A restore checks the file the same way on a copy, refuses a database a server holds
//!   (every server holds a lock on its SQLite file, [`ServerLock`]), moves the database it
//!   replaces aside rather than deleting it, and leaves a note the next server start logs.
//!
//! PostgreSQL deployments use `pg_dump` and `pg_restore` (see the README).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::{audit, proof};
use crate::store::db::args;
use crate::store::{Store, StoreError};

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} is a PostgreSQL database: back it up with pg_dump and restore it with pg_restore (see the README's Backups)")]
    Postgres(String),
    #[error("{0} already exists; give a new file name")]
    Exists(PathBuf),
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("{0} is in use by a running pp server; stop it first")]
    InUse(PathBuf),
    #[error("{file} is damaged: PRAGMA integrity_check says {problem}")]
    Integrity { file: PathBuf, problem: String },
    #[error(
        "the audit log of project {project} in {file} does not hold at event {seq}: {problem}"
    )]
    Chain {
        file: PathBuf,
        project: String,
        seq: i64,
        problem: String,
    },
    #[error(
        "{wal} holds writes to {file} that are not in it yet: a program has the file open, \
         or did not close it. Close that program (or run `sqlite3 {file} \"PRAGMA \
         wal_checkpoint(TRUNCATE)\"`) and try again",
        wal = with_suffix(.0, "-wal").display(),
        file = .0.display()
    )]
    OpenLog(PathBuf),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> BackupError {
        BackupError::Io(format!("SQLite: {e}"))
    }
}

fn io(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let (context, path) = (context.to_owned(), path.display().to_string());
    move |e| BackupError::Io(format!("{context} {path}: {e}"))
}

/// The lock a server holds on its SQLite file for as long as it runs (an advisory `flock`,
/// apart from SQLite's own locks): a restore, or a second server, is refused while it is
/// held. The operating system drops it when the process ends, however it ends.
#[derive(Debug)]
pub struct ServerLock {
    _file: std::fs::File,
}

impl ServerLock {
    /// Takes the lock on the database at `path`, or says that a server holds it.
    pub fn take(path: &Path) -> Result<ServerLock, BackupError> {
        let file = std::fs::File::open(path).map_err(io("cannot open", path))?;
        match file.try_lock() {
            Ok(()) => Ok(ServerLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::InUse(path.to_owned())),
            Err(std::fs::TryLockError::Error(e)) => Err(io("cannot lock", path)(e)),
        }
    }
}

/// The SQLite file named by `database` (as the store reads `--db`); PostgreSQL is refused.
pub fn sqlite_file(database: &str) -> Result<PathBuf, BackupError> {
    crate::store::sqlite_path(database)?
        .ok_or_else(|| BackupError::Postgres(crate::store::mask_password(database)))
}

/// What a checked database file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub file: String,
    pub bytes: u64,
    pub projects: u64,
    pub pauses: u64,
    pub events: u64,
    /// When the newest audit event happened: how recent the copy is.
    #[serde(with = "pausepoint_api::time::millis_opt")]
    pub newest_event: Option<Timestamp>,
    /// Every project's audit chain verified (with its signed checkpoints) and every pause
    /// agreed with its events.
    pub audit_verified: bool,
}

/// Copies the live database `database` to `destination`, checked, without stopping
/// anyone.
pub async fn backup(database: &str, destination: &Path) -> Result<Summary, BackupError> {
    let source = sqlite_file(database)?;
    if !source.exists() {
        return Err(BackupError::Missing(source));
    }
    if destination.exists() {
        return Err(BackupError::Exists(destination.to_owned()));
    }
    let partial = with_suffix(destination, ".partial");
    let _ = std::fs::remove_file(&partial);
    // Owner-only from the start: the copy holds everything the database does.
    crate::secrets::owner_only_file(&partial).map_err(io("cannot create", &partial))?;
    let copied = {
        let (source, partial) = (source.clone(), partial.clone());
        tokio::task::spawn_blocking(move || -> Result<(), BackupError> {
            let connection = rusqlite::Connection::open_with_flags(
                &source,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            connection.busy_timeout(std::time::Duration::from_secs(30))?;
            connection.execute("VACUUM INTO ?1", [partial.display().to_string()])?;
            Ok(())
        })
        .await
        .map_err(|e| BackupError::Io(e.to_string()))?
    };
    let checked = match copied {
        Ok(()) => check_copy(&partial, None).await,
        Err(e) => Err(e),
    };
    match checked {
        Ok(mut summary) => {
            sync(&partial)?;
            std::fs::rename(&partial, destination).map_err(io("cannot name", destination))?;
            sync_parent(destination)?;
            summary.file = destination.display().to_string();
            Ok(summary)
        }
        Err(e) => {
            remove_database(&partial);
            Err(e)
        }
    }
}

/// Refuses a file with a write-ahead log beside it that is not empty: the log holds
/// committed writes that a copy of the file alone would lack, so what was checked would
/// not be what SQLite reads (a backup `pp admin backup` writes never has one).
fn refuse_open_log(file: &Path) -> Result<(), BackupError> {
    let wal = with_suffix(file, "-wal");
    if std::fs::metadata(wal).is_ok_and(|m| m.len() > 0) {
        return Err(BackupError::OpenLog(file.to_owned()));
    }
    Ok(())
}

/// Checks a database file as a restore would, without changing it: on a copy.
pub async fn check(file: &Path) -> Result<Summary, BackupError> {
    if !file.exists() {
        return Err(BackupError::Missing(file.to_owned()));
    }
    refuse_open_log(file)?;
    let dir = tempfile::tempdir().map_err(|e| BackupError::Io(e.to_string()))?;
    let copy = dir.path().join("check.db");
    std::fs::copy(file, &copy).map_err(io("cannot copy", file))?;
    let mut summary = check_copy(&copy, None).await?;
    summary.file = file.display().to_string();
    summary.bytes = std::fs::metadata(file)
        .map_err(io("cannot read", file))?
        .len();
    Ok(summary)
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    #[serde(flatten)]
    pub summary: Summary,
    /// Where the database it replaced was moved.
    pub replaced: Option<String>,
}

/// The note a restore leaves in the database for the next server start.
const RESTORED: &str = "restored_from";

/// Puts the checked copy of `file` in place of the database `database`, which no server
/// may be using (checked after the file, so a bad file is said first); the database it
/// replaces is moved aside.
pub async fn restore(file: &Path, database: &str) -> Result<Restored, BackupError> {
    let target = sqlite_file(database)?;
    if !file.exists() {
        return Err(BackupError::Missing(file.to_owned()));
    }
    refuse_open_log(file)?;
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    }
    let incoming = with_suffix(&target, ".restoring");
    remove_database(&incoming);
    {
        let mut to =
            crate::secrets::owner_only_file(&incoming).map_err(io("cannot create", &incoming))?;
        let mut from = std::fs::File::open(file).map_err(io("cannot open", file))?;
        std::io::copy(&mut from, &mut to).map_err(io("cannot copy", file))?;
    }
    let note = Note {
        file: file.display().to_string(),
        at: crate::domain::pauses::now(),
    };
    let mut summary = match check_copy(&incoming, Some(&note)).await {
        Ok(summary) => summary,
        Err(e) => {
            remove_database(&incoming);
            return Err(e);
        }
    };
    sync(&incoming)?;
    // Checked first, so that a bad file is said before the server need be stopped.
    let lock = match target.exists() {
        true => match ServerLock::take(&target) {
            Ok(lock) => Some(lock),
            Err(e) => {
                remove_database(&incoming);
                return Err(e);
            }
        },
        false => None,
    };
    let replaced = if target.exists() {
        let aside = with_suffix(
            &target,
            &format!(".replaced-{}", note.at.strftime("%Y%m%dT%H%M%SZ")),
        );
        for companion in ["", "-wal", "-shm"] {
            let from = with_suffix(&target, companion);
            if from.exists() {
                let to = with_suffix(&aside, companion);
                std::fs::rename(&from, &to).map_err(io("cannot move aside", &from))?;
            }
        }
        Some(aside.display().to_string())
    } else {
        None
    };
    std::fs::rename(&incoming, &target).map_err(io("cannot name", &target))?;
    sync_parent(&target)?;
    drop(lock);
    summary.file = target.display().to_string();
    Ok(Restored { summary, replaced })
}

/// What the next server start says about a restore.
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    file: String,
    #[serde(with = "pausepoint_api::time::millis")]
    at: Timestamp,
}

/// Logs (once) that the database was restored, and from what; called at server start.
pub async fn report_restore(store: &Store) -> Result<(), StoreError> {
    let note = store
        .write(|tx| {
            Box::pin(async move {
                let note = tx
                    .fetch_optional(
                        "settings",
                        "SELECT value FROM settings WHERE name = $1",
                        args![RESTORED],
                        |row| row.text("value"),
                    )
                    .await?;
                if note.is_some() {
                    tx.execute("DELETE FROM settings WHERE name = $1", args![RESTORED])
                        .await?;
                }
                Ok::<_, StoreError>(note)
            })
        })
        .await?;
    if let Some(note) = note.and_then(|n| serde_json::from_str::<Note>(&n).ok()) {
        let (pauses, events, newest) = counts(store).await?;
        tracing::info!(
            from = note.file,
            restored_at = %pausepoint_api::time::format(&note.at),
            pauses,
            events,
            newest_event = newest.as_ref().map(pausepoint_api::time::format).unwrap_or_default(),
            "this database was restored from a backup"
        );
    }
    Ok(())
}

/// Checks the database file `copy` (a copy this module made: it may be changed): its
/// integrity, then every project's audit chain and pauses. With `note`, leaves it for the
/// next server start.
async fn check_copy(copy: &Path, note: Option<&Note>) -> Result<Summary, BackupError> {
    let integrity = {
        let copy = copy.to_owned();
        tokio::task::spawn_blocking(move || -> Result<String, BackupError> {
            let connection = rusqlite::Connection::open_with_flags(
                &copy,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            let mut statement = connection.prepare("PRAGMA integrity_check")?;
            let lines: Vec<String> = statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<_, _>>()?;
            Ok(lines.join("; "))
        })
        .await
        .map_err(|e| BackupError::Io(e.to_string()))?
    };
    let integrity = match integrity {
        Ok(result) => result,
        Err(e) => e.to_string(),
    };
    if integrity != "ok" {
        return Err(BackupError::Integrity {
            file: copy.to_owned(),
            problem: integrity.chars().take(300).collect(),
        });
    }
    // Nothing is opened that needs the master key: a throwaway one satisfies the store.
    let keys_dir = tempfile::tempdir().map_err(|e| BackupError::Io(e.to_string()))?;
    let store = Store::connect(
        &copy.display().to_string(),
        Some(&keys_dir.path().join("throwaway.key")),
    )
    .await?;
    let checked = verify_all(&store, copy).await;
    let result = match (checked, note) {
        (Ok(summary), Some(note)) => {
            let value = serde_json::to_string(note).map_err(|e| BackupError::Io(e.to_string()))?;
            store
                .write(move |tx| {
                    Box::pin(async move {
                        tx.execute(
                            "INSERT INTO settings (name, value) VALUES ($1, $2) \
                             ON CONFLICT (name) DO UPDATE SET value = $2",
                            args![RESTORED, &value],
                        )
                        .await
                    })
                })
                .await?;
            Ok(summary)
        }
        (result, _) => result,
    };
    store.close().await;
    result
}

async fn verify_all(store: &Store, file: &Path) -> Result<Summary, BackupError> {
    store.migrate().await?;
    let keys = proof::public_keys(store)
        .await
        .map_err(|e| BackupError::Io(e.to_string()))?;
    let projects = store.projects().await?;
    for project in &projects {
        let report = audit::verify_with(
            store,
            project.id,
            &keys,
            Vec::new(),
            None,
            audit::Walk::Full,
        )
        .await?;
        if !report.ok {
            return Err(BackupError::Chain {
                file: file.to_owned(),
                project: project.name.clone(),
                seq: report.first_bad_seq.unwrap_or(0),
                problem: report.problem.unwrap_or_default(),
            });
        }
    }
    let (pauses, events, newest_event) = counts(store).await?;
    Ok(Summary {
        file: file.display().to_string(),
        bytes: std::fs::metadata(file)
            .map_err(io("cannot read", file))?
            .len(),
        projects: projects.len() as u64,
        pauses,
        events,
        newest_event,
        audit_verified: true,
    })
}

/// Pauses, audit events, and the newest event's time.
async fn counts(store: &Store) -> Result<(u64, u64, Option<Timestamp>), StoreError> {
    store
        .read(|conn| {
            Box::pin(async move {
                conn.fetch_one(
                    "audit_events",
                    "SELECT (SELECT COUNT(*) FROM pauses) AS pauses, COUNT(*) AS events, \
                            MAX(occurred_at) AS newest FROM audit_events",
                    &[],
                    |row| {
                        Ok((
                            row.int("pauses")?.max(0).unsigned_abs(),
                            row.int("events")?.max(0).unsigned_abs(),
                            row.opt_time("newest")?,
                        ))
                    },
                )
                .await
            })
        })
        .await
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes a database file and its companions, if there.
fn remove_database(path: &Path) {
    for companion in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(path, companion));
    }
}

fn sync(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", path))
}

fn sync_parent(path: &Path) -> Result<(), BackupError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync(parent),
        None => Ok(()),
    }
}

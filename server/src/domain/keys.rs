//! API keys: `pp_live_` and 32 random base62 characters, shown once and stored only as
//! their SHA-256 hash. A key is found by the hash of what the caller presents, so no
//! stored secret is ever compared byte by byte.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use pausepoint_api::AuditEventKind;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::domain::webhooks;
use crate::ids::KeyId;
use crate::secrets::MasterKey;
use crate::store::keys::KeyRecord;
use crate::store::projects::Project;
use crate::store::{Actor, Store, StoreError, Tx};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "pp_live_";
/// The project that `pp server` and `pp admin keys create` use when none is named.
pub const DEFAULT_PROJECT: &str = "default";
/// How many characters of a key are kept to tell keys apart.
const SHOWN_PREFIX_CHARS: usize = KEY_PREFIX.len() + 4;

/// A key just made: the record, and the key itself, which exists nowhere else.
pub struct NewKey {
    pub record: KeyRecord,
    pub key: String,
}

/// The hex SHA-256 of a key, as stored and looked up.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Makes a key for `project` (created, with its first webhook secret, when missing) and
/// records `key.created`.
pub async fn create_key(
    store: &Store,
    project: &str,
    name: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<NewKey, StoreError> {
    let key = format!(
        "{KEY_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 32)
    );
    let prefix = key[..SHOWN_PREFIX_CHARS].to_owned();
    let hash = hash_key(&key);
    let (project, name) = (project.to_owned(), name.to_owned());
    let secrets = std::sync::Arc::clone(store.secrets());
    let record = store
        .write(move |tx| {
            Box::pin(async move {
                let project = ensure_project(tx, &secrets, &project, now).await?;
                let id = tx.insert_key(project.id, &name, &prefix, &hash, now).await?;
                tx.append_audit(
                    project.id,
                    AuditEventKind::KeyCreated,
                    None,
                    &actor,
                    json!({ "key_id": id, "name": name, "prefix": prefix, "project": project.name }),
                    now,
                );
                tx.keys_changed();
                Ok::<_, StoreError>(KeyRecord {
                    id,
                    project_id: project.id,
                    project_name: project.name,
                    project_max_timeout: project.max_timeout,
                    name,
                    prefix,
                    created_at: Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now),
                    revoked_at: None,
                })
            })
        })
        .await?;
    Ok(NewKey { record, key })
}

/// The project named `name`, made with its first webhook secret when missing.
pub async fn ensure_project(
    tx: &mut Tx,
    secrets: &MasterKey,
    name: &str,
    now: Timestamp,
) -> Result<Project, StoreError> {
    let (project, made) = tx.ensure_project(name, now).await?;
    if made {
        webhooks::add_first_secret(tx, secrets, project.id, now).await?;
    }
    Ok(project)
}

/// Revokes a live key and records `key.revoked`; None when no live key has this id.
pub async fn revoke_key(
    store: &Store,
    id: KeyId,
    actor: Actor,
    now: Timestamp,
) -> Result<Option<KeyRecord>, StoreError> {
    let revoked = store
        .write(move |tx| {
            Box::pin(async move {
                let Some(record) = tx.revoke_key(id, now).await? else {
                    return Ok(None);
                };
                tx.append_audit(
                    record.project_id,
                    AuditEventKind::KeyRevoked,
                    None,
                    &actor,
                    json!({ "key_id": record.id, "name": record.name, "prefix": record.prefix, "project": record.project_name }),
                    now,
                );
                tx.keys_changed();
                Ok::<_, StoreError>(Some(record))
            })
        })
        .await?;
    Ok(revoked)
}

/// How often a server asks the database whether keys changed (a revoke by `pp admin`
/// in another process, or on another server): a revoked key is refused within this.
const RECHECK_EVERY: Duration = Duration::from_millis(500);
/// The most unknown keys remembered as unknown; beyond, the memory starts over.
const MAX_UNKNOWN: usize = 10_000;

/// API keys by hash, kept in memory so that a request costs no database round trip.
/// Emptied whenever keys change: at once for a change made through this server (or
/// announced by another over PostgreSQL), within [`RECHECK_EVERY`] for any other.
#[derive(Default)]
pub struct KeyCache {
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    live: HashMap<String, KeyRecord>,
    unknown: HashSet<String>,
    hub_version: u64,
    db_version: Option<String>,
    checked: Option<Instant>,
}

impl CacheState {
    fn clear(&mut self) {
        self.live.clear();
        self.unknown.clear();
    }
}

impl KeyCache {
    /// The live key a caller presented, if any.
    pub async fn authenticate(
        &self,
        store: &Store,
        presented: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        if !presented.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let hash = hash_key(presented);
        let stale = {
            let mut state = self.lock();
            let hub_version = store.hub().keys_version();
            if state.hub_version != hub_version {
                state.clear();
                state.hub_version = hub_version;
            }
            state.checked.is_none_or(|at| at.elapsed() >= RECHECK_EVERY)
        };
        if stale {
            let version = store.keys_version().await?;
            let mut state = self.lock();
            if state.db_version.as_deref() != Some(version.as_str()) {
                state.clear();
                state.db_version = Some(version);
            }
            state.checked = Some(Instant::now());
        }
        {
            let state = self.lock();
            if let Some(record) = state.live.get(&hash) {
                return Ok(Some(record.clone()));
            }
            if state.unknown.contains(&hash) {
                return Ok(None);
            }
        }
        let found = store.live_key_by_hash(&hash).await?;
        let mut state = self.lock();
        match &found {
            Some(record) => {
                state.live.insert(hash, record.clone());
            }
            None => {
                if state.unknown.len() >= MAX_UNKNOWN {
                    state.unknown.clear();
                }
                state.unknown.insert(hash);
            }
        }
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

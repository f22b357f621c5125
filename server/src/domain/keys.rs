//! API keys: `pp_live_` and 32 random base62 characters, shown once and stored only as
//! their SHA-256 hash. A key is found by the hash of what the caller presents, so no
//! stored secret is ever compared byte by byte.

use jiff::Timestamp;
use pausepoint_api::AuditEventKind;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::keys::KeyRecord;
use crate::store::{Store, StoreError};

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

/// The audit actor for requests made with this key.
pub fn actor(key_id: Uuid) -> String {
    format!("api_key:{key_id}")
}

/// Makes a key for `project` (created when missing) and records `key.created`.
pub async fn create_key(
    store: &Store,
    project: &str,
    name: &str,
    actor: &str,
    now: Timestamp,
) -> Result<NewKey, StoreError> {
    let key = format!(
        "{KEY_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 32)
    );
    let prefix = &key[..SHOWN_PREFIX_CHARS];
    let mut tx = store.begin().await?;
    let project = Store::ensure_project(&mut tx, project, now).await?;
    let id = Store::insert_key(&mut tx, project.id, name, prefix, &hash_key(&key), now).await?;
    Store::append_audit(
        &mut tx,
        project.id,
        AuditEventKind::KeyCreated,
        None,
        actor,
        json!({ "key_id": id, "name": name, "prefix": prefix, "project": project.name }),
        now,
    )
    .await?;
    tx.commit().await?;
    let record = KeyRecord {
        id,
        project_id: project.id,
        project_name: project.name,
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        created_at: Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now),
        revoked_at: None,
    };
    Ok(NewKey { record, key })
}

/// Revokes a live key and records `key.revoked`; None when no live key has this id.
pub async fn revoke_key(
    store: &Store,
    id: Uuid,
    actor: &str,
    now: Timestamp,
) -> Result<Option<KeyRecord>, StoreError> {
    let mut tx = store.begin().await?;
    let Some(record) = Store::revoke_key(&mut tx, id, now).await? else {
        return Ok(None);
    };
    Store::append_audit(
        &mut tx,
        record.project_id,
        AuditEventKind::KeyRevoked,
        None,
        actor,
        json!({ "key_id": record.id, "name": record.name, "prefix": record.prefix, "project": record.project_name }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(record))
}

/// The live key a caller presented, if any.
pub async fn authenticate(store: &Store, presented: &str) -> Result<Option<KeyRecord>, StoreError> {
    if !presented.starts_with(KEY_PREFIX) {
        return Ok(None);
    }
    store.live_key_by_hash(&hash_key(presented)).await
}

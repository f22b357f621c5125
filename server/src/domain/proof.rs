//! Proof that the audit log is what was written: the Ed25519 audit key, signed
//! checkpoints of each project's chain, and decision receipts.
//!
//! - [`AuditKeys`]: the key that signs (made on first start, sealed under the master key)
//!   and every public key that ever signed, served as a JWK set.
//! - [`Checkpoints`]: signs a project's chain head after checking that the chain still
//!   holds from the last checkpoint, records the checkpoint as an `audit.checkpoint` event,
//!   and queues it for the outside witness when one is configured.
//! - [`Receipts`]: a decided pause's receipt, over its decision event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use pausepoint_api::proof::{
    key_id, pause_agrees, ChainCheck, Checkpoint, Jwk, Jwks, ReceiptClaims,
};
use pausepoint_api::webhooks::WebhookEventType;
use pausepoint_api::{AuditEvent, AuditEventKind, Pause, VerifyReport};
use serde_json::json;
use uuid::Uuid;

use crate::hub::Change;
use crate::ids::{PauseId, ProjectId};
use crate::secrets::MasterKey;
use crate::store::proof::StoredAuditKey;
use crate::store::{Actor, Store, StoreError};

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit key cannot sign: {0}")]
    Key(String),
    /// The chain no longer holds from the last checkpoint: nothing is signed over it.
    #[error("refusing to sign a checkpoint: {}", .0.problem.as_deref().unwrap_or("the chain does not hold"))]
    Tampered(Box<VerifyReport>),
}

/// What an audit key's seed is sealed for: bound to the key.
fn key_purpose(kid: &str) -> String {
    format!("audit-key/{kid}")
}

/// A new key, its seed sealed.
fn new_key(secrets: &MasterKey, now: Timestamp) -> Result<StoredAuditKey, StoreError> {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    let id = key_id(&public);
    Ok(StoredAuditKey {
        private_key: Some(secrets.seal(&key_purpose(&id), key.as_bytes())?),
        id,
        public_key: URL_SAFE_NO_PAD.encode(public.as_bytes()),
        created_at: now,
        retired_at: None,
    })
}

/// The key that signs, and every key that ever did.
struct KeySet {
    signer: Option<SigningKey>,
    public: Jwks,
}

/// The audit key of this database, as this server last read it.
pub struct AuditKeys {
    store: Store,
    set: RwLock<Arc<KeySet>>,
}

impl AuditKeys {
    /// Reads the keys, making the first one if there is none.
    pub async fn load(store: &Store, now: Timestamp) -> Result<AuditKeys, ProofError> {
        let keys = AuditKeys {
            store: store.clone(),
            set: RwLock::new(Arc::new(KeySet {
                signer: None,
                public: Jwks::default(),
            })),
        };
        if keys.refresh().await?.signer.is_none() {
            let key = new_key(store.secrets(), now)?;
            store
                .write(move |tx| Box::pin(async move { tx.insert_first_audit_key(&key).await }))
                .await?;
            keys.refresh().await?;
        }
        Ok(keys)
    }

    /// Reads the keys again (`pp admin audit-key --rotate` may have changed them).
    async fn refresh(&self) -> Result<Arc<KeySet>, ProofError> {
        let stored = self.store.read(|conn| Box::pin(conn.audit_keys())).await?;
        let set = Arc::new(key_set(self.store.secrets(), &stored)?);
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&set);
        Ok(set)
    }

    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.set.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every public key that ever signed, the one that signs now first.
    pub fn public(&self) -> Jwks {
        self.current().public.clone()
    }

    fn signer(&self) -> Result<SigningKey, ProofError> {
        self.current()
            .signer
            .clone()
            .ok_or_else(|| ProofError::Key("no audit key signs".into()))
    }
}

/// The keys as stored, opened.
fn key_set(secrets: &MasterKey, stored: &[StoredAuditKey]) -> Result<KeySet, ProofError> {
    let mut public = Vec::with_capacity(stored.len());
    let mut signer = None;
    for key in stored {
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&key.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ProofError::Key(format!("audit key {} is not 32 bytes", key.id)))?;
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|e| ProofError::Key(format!("audit key {}: {e}", key.id)))?;
        if key_id(&verifying) != key.id {
            return Err(ProofError::Key(format!(
                "audit key {} is stored under another key's id",
                key.id
            )));
        }
        let jwk = Jwk::new(&verifying, key.created_at, key.retired_at);
        match (&key.private_key, key.retired_at) {
            (Some(sealed), None) => {
                let seed = secrets
                    .open(&key_purpose(&key.id), sealed)
                    .map_err(StoreError::from)?;
                let seed: [u8; 32] = seed
                    .as_slice()
                    .try_into()
                    .map_err(|_| ProofError::Key("the audit key's seed is not 32 bytes".into()))?;
                let signing = SigningKey::from_bytes(&seed);
                if signing.verifying_key() != verifying {
                    return Err(ProofError::Key(format!(
                        "audit key {}: its private half does not match its public half",
                        key.id
                    )));
                }
                signer = Some(signing);
                public.insert(0, jwk);
            }
            _ => public.push(jwk),
        }
    }
    Ok(KeySet {
        signer,
        public: Jwks { keys: public },
    })
}

/// Retires the signing key and makes a new one; returns the new public key. What the old
/// key signed keeps verifying: its public half stays in the set.
pub async fn rotate(store: &Store, now: Timestamp) -> Result<Jwk, ProofError> {
    let key = new_key(store.secrets(), now)?;
    let jwk = Jwks::parse(&key.public_key)
        .map_err(|e| ProofError::Key(e.to_string()))?
        .keys
        .remove(0);
    store
        .write(move |tx| Box::pin(async move { tx.rotate_audit_key(&key, now).await }))
        .await?;
    Ok(Jwk {
        created_at: Some(now),
        ..jwk
    })
}

/// The public keys as stored, without opening any private one (for `pp admin`).
pub async fn public_keys(store: &Store) -> Result<Jwks, ProofError> {
    let stored = store.read(|conn| Box::pin(conn.audit_keys())).await?;
    let mut keys: Vec<Jwk> = Vec::with_capacity(stored.len());
    for key in &stored {
        let mut set = Jwks::parse(&key.public_key).map_err(|e| ProofError::Key(e.to_string()))?;
        let mut jwk = set.keys.remove(0);
        jwk.created_at = Some(key.created_at);
        jwk.retired_at = key.retired_at;
        if key.retired_at.is_none() {
            keys.insert(0, jwk);
        } else {
            keys.push(jwk);
        }
    }
    Ok(Jwks { keys })
}

/// Events read per round trip while a chain is walked.
pub const WALK_PAGE: u32 = 1000;

/// Walks the project's chain with `check` from the event after `after` up to `head_seq`,
/// noting in `touched` (when given) the pauses its events concern.
pub async fn walk(
    store: &Store,
    project_id: ProjectId,
    check: &mut ChainCheck<'_>,
    after: i64,
    head_seq: i64,
    mut touched: Option<&mut std::collections::HashSet<Uuid>>,
) -> Result<(), StoreError> {
    let mut after = after;
    while after < head_seq && !check.failed() {
        let rows = store.audit_rows(project_id, after, WALK_PAGE).await?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            match row {
                Ok(event) if event.seq > head_seq => return Ok(()),
                Ok(event) => {
                    after = event.seq;
                    if let (Some(touched), Some(pause)) = (touched.as_deref_mut(), event.pause_id) {
                        touched.insert(pause);
                    }
                    check.push(&event);
                }
                Err((seq, detail)) => {
                    check.unreadable(seq, &detail);
                    return Ok(());
                }
            }
            if check.failed() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The event the project's newest checkpoint names, with its hash, when that checkpoint
/// holds (see [`holding`]). The chain up to it was verified when it was signed.
pub async fn newest_trusted_checkpoint(
    store: &Store,
    project_id: ProjectId,
    keys: &Jwks,
) -> Result<Option<(i64, String)>, StoreError> {
    let Some(event) = store
        .read(move |conn| Box::pin(conn.newest_checkpoint_event(project_id)))
        .await?
    else {
        return Ok(None);
    };
    Ok(holding(store, project_id, keys, &event)
        .await?
        .map(|checkpoint| (checkpoint.seq, checkpoint.head_hash)))
}

/// The checkpoint an `audit.checkpoint` event carries, trusted only as far as it holds:
/// signed by one of `keys`, this project's, and the event it names still has the signed
/// hash.
async fn holding(
    store: &Store,
    project_id: ProjectId,
    keys: &Jwks,
    event: &AuditEvent,
) -> Result<Option<Checkpoint>, StoreError> {
    let Ok(checkpoint) = serde_json::from_value::<Checkpoint>(event.data.clone()) else {
        return Ok(None);
    };
    if checkpoint.verify(keys).is_err() || checkpoint.project_id != Uuid::from(project_id) {
        return Ok(None);
    }
    let named = store.audit_rows(project_id, checkpoint.seq - 1, 1).await?;
    let holds = matches!(named.first(), Some(Ok(e)) if e.seq == checkpoint.seq && e.hash == checkpoint.head_hash);
    Ok(holds.then_some(checkpoint))
}

/// How often a checkpoint's walk catches up with events written while it walked, and how
/// few left behind count as caught up.
const CATCH_UP_ROUNDS: usize = 8;
const CAUGHT_UP: i64 = 1_000;

/// Signed checkpoints of every project's chain.
pub struct Checkpoints {
    store: Store,
    keys: Arc<AuditKeys>,
    /// Where checkpoints are pushed (the outside witness), if anywhere.
    witness: Option<String>,
    /// The newest checkpoint this server signed, per project: evidence kept outside the
    /// database, against a tail cut while the server runs.
    made: Mutex<HashMap<ProjectId, Checkpoint>>,
}

impl Checkpoints {
    pub fn new(store: Store, keys: Arc<AuditKeys>, witness: Option<String>) -> Checkpoints {
        Checkpoints {
            store,
            keys,
            witness,
            made: Mutex::new(HashMap::new()),
        }
    }

    pub fn keys(&self) -> &Arc<AuditKeys> {
        &self.keys
    }

    /// The newest checkpoint this server signed for the project since it started.
    pub fn made(&self, project_id: ProjectId) -> Option<Checkpoint> {
        self.made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&project_id)
            .cloned()
    }

    /// Checkpoints every project whose chain moved since its last checkpoint; how many.
    pub async fn make_all(&self, now: Timestamp) -> Result<usize, ProofError> {
        self.keys.refresh().await?;
        let projects = self.store.projects().await?;
        let mut made = 0;
        for project in projects {
            match self.make(project.id, now).await {
                Ok(Some(_)) => made += 1,
                Ok(None) => {}
                Err(ProofError::Tampered(report)) => tracing::error!(
                    project = %project.id,
                    first_bad_seq = report.first_bad_seq,
                    problem = report.problem.as_deref().unwrap_or(""),
                    "the audit chain does not hold: no checkpoint is signed over it; run pp audit verify"
                ),
                Err(e) => return Err(e),
            }
        }
        Ok(made)
    }

    /// Signs the project's chain head with the current audit key, unless the head is
    /// already a checkpoint (then it is returned, with `false`). Refuses when the chain no
    /// longer holds from the last checkpoint: a server never signs over a rewritten log.
    pub async fn make_now(
        &self,
        project_id: ProjectId,
        now: Timestamp,
    ) -> Result<Option<(Checkpoint, bool)>, ProofError> {
        self.keys.refresh().await?;
        self.sign_head(project_id, now).await
    }

    async fn sign_head(
        &self,
        project_id: ProjectId,
        now: Timestamp,
    ) -> Result<Option<(Checkpoint, bool)>, ProofError> {
        let (head_seq, head_hash) = self.store.audit_head(project_id).await?;
        if head_seq == 0 {
            return Ok(None);
        }
        let last = self
            .store
            .read(move |conn| Box::pin(conn.newest_checkpoint_event(project_id)))
            .await?;
        let keys = self.keys.public();
        let project_uuid = Uuid::from(project_id);
        let mut check = ChainCheck::new(
            &keys,
            Some(project_uuid),
            self.made(project_id).into_iter().collect(),
        )
        .without_coverage_rule();
        let mut from = 0;
        if let Some(event) = &last {
            if event.seq == head_seq {
                let checkpoint = serde_json::from_value::<Checkpoint>(event.data.clone())
                    .map_err(|e| ProofError::Key(format!("the newest checkpoint event: {e}")))?;
                return Ok(Some((checkpoint, false)));
            }
            if let Some(checkpoint) = holding(&self.store, project_id, &keys, event).await? {
                check = check.starting_after(checkpoint.seq, &checkpoint.head_hash);
                from = checkpoint.seq;
            }
        }
        walk(&self.store, project_id, &mut check, from, head_seq, None).await?;
        // A long walk lets many events arrive behind it; a checkpoint must name an event
        // just before its own place on the chain (verifiers look it up among the recent
        // ones), so catch up with the head until little is left between them.
        let (mut head_seq, mut head_hash) = (head_seq, head_hash);
        for _ in 0..CATCH_UP_ROUNDS {
            let (now_seq, now_hash) = self.store.audit_head(project_id).await?;
            if now_seq == head_seq || check.failed() {
                break;
            }
            // A short walk let few events in behind it.
            let walked = now_seq - head_seq;
            walk(&self.store, project_id, &mut check, head_seq, now_seq, None).await?;
            (head_seq, head_hash) = (now_seq, now_hash);
            if walked < CAUGHT_UP {
                break;
            }
        }
        let report = check.finish(Some((head_seq, &head_hash)), None);
        if !report.ok {
            return Err(ProofError::Tampered(Box::new(report)));
        }
        let checkpoint = Checkpoint::sign(
            project_uuid,
            head_seq,
            &head_hash,
            now,
            &self.keys.signer()?,
        )
        .map_err(|e| ProofError::Key(e.to_string()))?;
        let (recorded, witness) = (checkpoint.clone(), self.witness.clone());
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    let data = serde_json::to_value(&recorded)
                        .map_err(|e| StoreError::corrupt("audit_events", e))?;
                    tx.append_audit(
                        project_id,
                        AuditEventKind::AuditCheckpoint,
                        None,
                        &Actor::System,
                        data.clone(),
                        now,
                    );
                    if let Some(url) = witness {
                        let payload = json!({
                            "type": WebhookEventType::AuditCheckpoint,
                            "timestamp": pausepoint_api::time::format(&now),
                            "data": data,
                        })
                        .to_string();
                        let id = format!("msg_{}", Uuid::now_v7().simple());
                        tx.insert_webhook_event(
                            &id,
                            project_id,
                            None,
                            WebhookEventType::AuditCheckpoint,
                            &url,
                            &payload,
                            now,
                        )
                        .await?;
                        tx.announce(Change::WebhooksDue);
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await?;
        self.made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project_id, checkpoint.clone());
        Ok(Some((checkpoint, true)))
    }

    /// [`Self::make_now`], for the periodic worker: `Some` only when a new one was signed.
    async fn make(
        &self,
        project_id: ProjectId,
        now: Timestamp,
    ) -> Result<Option<Checkpoint>, ProofError> {
        Ok(self
            .sign_head(project_id, now)
            .await?
            .and_then(|(checkpoint, new)| new.then_some(checkpoint)))
    }
}

/// Decision receipts: signed statements of what a human (or the clock, or the agent)
/// decided about exactly which message.
pub struct Receipts {
    store: Store,
    keys: Arc<AuditKeys>,
}

impl Receipts {
    pub fn new(store: Store, keys: Arc<AuditKeys>) -> Receipts {
        Receipts { store, keys }
    }

    /// Puts the receipt on a decided pause. Its decision event must exist and agree with
    /// the row; otherwise the pause goes out without one (and the disagreement is logged:
    /// `pp audit verify` names it).
    pub async fn attach(&self, project_id: ProjectId, pause: &mut Pause) -> Result<(), StoreError> {
        if !pause.status.is_final() || pause.receipt.is_some() {
            return Ok(());
        }
        let id = PauseId::from(pause.pause_id);
        self.store.settle_audit(project_id).await?;
        let decisions = self
            .store
            .read(move |conn| Box::pin(conn.decision_events(project_id, id)))
            .await?;
        let [decision] = decisions.as_slice() else {
            tracing::error!(pause_id = %id, decisions = decisions.len(), "a decided pause without exactly one decision event: no receipt");
            return Ok(());
        };
        if let Err(problem) = pause_agrees(pause, Some(decision)) {
            tracing::error!(pause_id = %id, problem, "no receipt");
            return Ok(());
        }
        let signed = self
            .keys
            .signer()
            .map_err(|e| StoreError::Io(e.to_string()))
            .and_then(|key| {
                ReceiptClaims::of(project_id.into(), pause, decision)
                    .and_then(|claims| claims.sign(&key))
                    .map_err(|e| StoreError::Io(e.to_string()))
            });
        match signed {
            Ok(receipt) => pause.receipt = Some(receipt),
            Err(e) => tracing::error!(pause_id = %id, error = %e, "cannot sign a receipt"),
        }
        Ok(())
    }
}

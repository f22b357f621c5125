//! Proof that an audit log is the one the service wrote, checkable by anyone with the
//! service's public key:
//!
//! - the audit key's public half as a JWK set (RFC 7517; Ed25519 keys as in RFC 8037), each
//!   key named by its RFC 7638 thumbprint;
//! - compact JWS signatures (EdDSA) over canonical JSON (RFC 8785);
//! - [`Checkpoint`]s: a project's chain up to some event, signed;
//! - decision [`ReceiptClaims`]: what a human decided, about exactly which message, signed;
//! - [`ChainCheck`]: the walk over a chain that checks every hash, every checkpoint on it
//!   and every checkpoint kept outside it. The server (`GET /v1/audit/verify`) and the
//!   offline verifier (`pp audit verify --file`) run this same code.

use std::collections::{BTreeMap, HashMap, VecDeque};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{AuditEvent, AuditEventKind, VerifyReport, GENESIS_HASH};
use crate::pause::{Pause, PauseStatus};

/// Why a signature, key or checkpoint does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("the JWS header is not EdDSA")]
    Algorithm,
    #[error("signed by key {0}, which is not among the public keys given")]
    UnknownKey(String),
    #[error("the signature does not match what was signed")]
    BadSignature,
    #[error("not a usable Ed25519 public key: {0}")]
    BadKey(String),
    #[error("what was signed ({0}) differs from what is shown")]
    Mismatch(&'static str),
    #[error("cannot put the claims in canonical form: {0}")]
    Canonical(String),
}

/// One public key of the audit key set, as a JWK with when it was made and retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// The key's RFC 7638 thumbprint.
    pub kid: String,
    #[serde(default = "eddsa")]
    pub alg: String,
    #[serde(rename = "use", default = "sig")]
    pub use_: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::millis_opt"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Timestamp>,
    /// Set once a newer key signs instead; what this key signed still verifies.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::millis_opt"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retired_at: Option<Timestamp>,
}

fn eddsa() -> String {
    "EdDSA".into()
}

fn sig() -> String {
    "sig".into()
}

impl Jwk {
    pub fn new(key: &VerifyingKey, created_at: Timestamp, retired_at: Option<Timestamp>) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            kid: key_id(key),
            alg: eddsa(),
            use_: sig(),
            created_at: Some(created_at),
            retired_at,
        }
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey, ProofError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(ProofError::BadKey(format!(
                "{}/{} is not OKP/Ed25519",
                self.kty, self.crv
            )));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|e| ProofError::BadKey(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ProofError::BadKey("not 32 bytes".into()))?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| ProofError::BadKey(e.to_string()))
    }
}

/// A key's RFC 7638 thumbprint: base64url(SHA-256) of its required members in canonical form.
pub fn key_id(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The audit key set: every key that ever signed, the current one first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Reads a key set as people paste it: a JWK set, one JWK, or the bare base64url key.
    pub fn parse(text: &str) -> Result<Jwks, ProofError> {
        let text = text.trim();
        if let Ok(set) = serde_json::from_str::<Jwks>(text) {
            return Ok(set);
        }
        if let Ok(key) = serde_json::from_str::<Jwk>(text) {
            return Ok(Jwks { keys: vec![key] });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| {
                ProofError::BadKey("neither a JWK set, a JWK nor a base64url key".into())
            })?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ProofError::BadKey("not 32 bytes".into()))?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|e| ProofError::BadKey(e.to_string()))?;
        let mut jwk = Jwk::new(&key, Timestamp::UNIX_EPOCH, None);
        jwk.created_at = None;
        Ok(Jwks { keys: vec![jwk] })
    }

    /// The key named `kid`.
    pub fn find(&self, kid: &str) -> Result<VerifyingKey, ProofError> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| ProofError::UnknownKey(kid.to_owned()))?
            .verifying_key()
    }
}

/// Compact JWS with EdDSA (RFC 7515, RFC 8037).
pub mod jws {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }

    /// `payload` signed with `key`: `header.payload.signature`, each base64url.
    pub fn sign(payload: &[u8], key: &SigningKey) -> String {
        let header = format!(
            r#"{{"alg":"EdDSA","kid":"{}"}}"#,
            key_id(&key.verifying_key())
        );
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// The payload of `token` and the key that signed it, if one of `keys` did.
    pub fn verify(token: &str, keys: &Jwks) -> Result<(String, Vec<u8>), ProofError> {
        let mut parts = token.trim().split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| ProofError::Malformed)
        };
        let parsed: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| ProofError::Malformed)?;
        if parsed.alg != "EdDSA" {
            return Err(ProofError::Algorithm);
        }
        let signature =
            Signature::from_slice(&decode(signature)?).map_err(|_| ProofError::Malformed)?;
        let signing_input = &token.trim()[..header.len() + 1 + payload.len()];
        let holds = |key: &VerifyingKey| {
            key.verify_strict(signing_input.as_bytes(), &signature)
                .is_ok()
        };
        let kid = match parsed.kid {
            Some(kid) => {
                if !holds(&keys.find(&kid)?) {
                    return Err(ProofError::BadSignature);
                }
                kid
            }
            // A token that names no key (as other JOSE tools may make): any key of the set.
            None => keys
                .keys
                .iter()
                .find(|k| k.verifying_key().is_ok_and(|key| holds(&key)))
                .map(|k| k.kid.clone())
                .ok_or(ProofError::BadSignature)?,
        };
        Ok((kid, decode(payload)?))
    }
}

fn canonical(value: &impl Serialize) -> Result<Vec<u8>, ProofError> {
    crate::canonical::of(value).map_err(|e| ProofError::Canonical(e.to_string()))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A project's chain up to event `seq`, whose hash is `head_hash`, signed at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    pub project_id: Uuid,
    pub seq: i64,
    pub head_hash: String,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The key that signed it.
    pub key_id: String,
    /// A compact JWS over the canonical JSON of `{at, head_hash, project_id, seq}`.
    pub jws: String,
}

/// What a checkpoint signs.
#[derive(Serialize)]
struct CheckpointClaims<'a> {
    at: String,
    head_hash: &'a str,
    project_id: &'a Uuid,
    seq: i64,
}

impl Checkpoint {
    pub fn sign(
        project_id: Uuid,
        seq: i64,
        head_hash: &str,
        at: Timestamp,
        key: &SigningKey,
    ) -> Result<Checkpoint, ProofError> {
        let claims = CheckpointClaims {
            at: crate::time::format(&at),
            head_hash,
            project_id: &project_id,
            seq,
        };
        Ok(Checkpoint {
            project_id,
            seq,
            head_hash: head_hash.to_owned(),
            at,
            key_id: key_id(&key.verifying_key()),
            jws: jws::sign(&canonical(&claims)?, key),
        })
    }

    /// Whether one of `keys` signed exactly these fields.
    pub fn verify(&self, keys: &Jwks) -> Result<(), ProofError> {
        let (kid, payload) = jws::verify(&self.jws, keys)?;
        if kid != self.key_id {
            return Err(ProofError::Mismatch("the key id"));
        }
        let claims = CheckpointClaims {
            at: crate::time::format(&self.at),
            head_hash: &self.head_hash,
            project_id: &self.project_id,
            seq: self.seq,
        };
        if payload != canonical(&claims)? {
            return Err(ProofError::Mismatch("the checkpoint's fields"));
        }
        Ok(())
    }

    /// A checkpoint as it may be kept: alone, or as the `data` of the event that carried it
    /// (a witness's webhook body, or an `audit.checkpoint` audit event).
    pub fn from_json(value: &Value) -> Option<Checkpoint> {
        serde_json::from_value(value.clone())
            .ok()
            .or_else(|| serde_json::from_value(value.get("data")?.clone()).ok())
    }
}

/// Checkpoints as an auditor may have kept them, in any of the shapes PausePoint gives
/// them out: one checkpoint, a witness's webhook body (`{"type", "data": checkpoint}`),
/// a page of `GET /v1/audit/checkpoints` (`{"data": [...]}`), or one of those per line.
pub fn checkpoints_in(text: &str) -> Result<Vec<Checkpoint>, String> {
    fn from_value(value: &Value, out: &mut Vec<Checkpoint>) -> Result<(), String> {
        if let Some(list) = value.get("data").and_then(Value::as_array) {
            for item in list {
                from_value(item, out)?;
            }
            return Ok(());
        }
        out.push(Checkpoint::from_json(value).ok_or("not a signed checkpoint")?);
        Ok(())
    }
    let mut out = Vec::new();
    match serde_json::from_str::<Value>(text) {
        Ok(value) => from_value(&value, &mut out)?,
        Err(_) => {
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let value: Value = serde_json::from_str(line)
                    .map_err(|e| format!("line {}: not JSON: {e}", n + 1))?;
                from_value(&value, &mut out).map_err(|e| format!("line {}: {e}", n + 1))?;
            }
        }
    }
    Ok(out)
}

/// The first line of an export bundle (`GET /v1/audit/export?bundle=true`): whose log it
/// is and the public keys that sign it. The events follow, one per line, then each pause
/// as a [`BundlePause`] line, so that one file is enough to verify offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// Always `pausepoint.audit.bundle/1`.
    pub bundle: String,
    pub project_id: Uuid,
    /// When the export began.
    #[serde(with = "crate::time::millis")]
    pub exported_at: Timestamp,
    pub keys: Jwks,
}

/// One page of `GET /v1/audit/checkpoints`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointPage {
    pub data: Vec<Checkpoint>,
    pub next_cursor: Option<String>,
}

/// The name and version a bundle's first line carries.
pub const BUNDLE: &str = "pausepoint.audit.bundle/1";

/// A pause's stored state, as a bundle line after the events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundlePause {
    pub pause: Pause,
}

/// What a decision receipt says: who decided what about exactly which message, and where
/// the decision sits on the audit chain. Signed as a compact JWS over its canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptClaims {
    /// The hash of the audit event that records the decision.
    pub audit_hash: String,
    pub audit_seq: i64,
    /// RFC 3339, three fractional digits.
    pub decided_at: String,
    /// The audit actor: `recipient:<who>`, `api_key:<id>` (cancelled) or `system` (timed out).
    pub decided_by: String,
    /// Lowercase hex SHA-256 of the message's UTF-8.
    pub message_sha256: String,
    /// Lowercase hex SHA-256 of the canonical JSON (RFC 8785) of `metadata`; null without.
    pub metadata_sha256: Option<String>,
    pub options: Vec<String>,
    pub pause_id: Uuid,
    pub project_id: Uuid,
    pub response_choice: Option<String>,
    pub status: PauseStatus,
}

impl ReceiptClaims {
    pub fn sign(&self, key: &SigningKey) -> Result<String, ProofError> {
        Ok(jws::sign(&canonical(self)?, key))
    }

    /// The claims of `receipt`, if one of `keys` signed it.
    pub fn verify(receipt: &str, keys: &Jwks) -> Result<ReceiptClaims, ProofError> {
        let (_, payload) = jws::verify(receipt, keys)?;
        serde_json::from_slice(&payload).map_err(|_| ProofError::Malformed)
    }

    /// The claims for `pause`, decided by the audit event `decision` of project `project_id`.
    pub fn of(
        project_id: Uuid,
        pause: &Pause,
        decision: &AuditEvent,
    ) -> Result<ReceiptClaims, ProofError> {
        Ok(ReceiptClaims {
            audit_hash: decision.hash.clone(),
            audit_seq: decision.seq,
            decided_at: crate::time::format(&decision.occurred_at),
            decided_by: decision.actor.clone(),
            message_sha256: sha256_hex(pause.message.as_bytes()),
            metadata_sha256: ReceiptClaims::metadata_hash(pause.metadata.as_ref())?,
            options: pause.options.clone(),
            pause_id: pause.pause_id,
            project_id,
            response_choice: pause.response_choice.clone(),
            status: pause.status,
        })
    }

    /// The hash of a pause's metadata as receipts carry it.
    pub fn metadata_hash(
        metadata: Option<&serde_json::Map<String, Value>>,
    ) -> Result<Option<String>, ProofError> {
        metadata
            .map(|m| canonical(m).map(|bytes| sha256_hex(&bytes)))
            .transpose()
    }
}

/// Whether a pause's row says what its audit events say: a decided pause has exactly the
/// terminal event `decision` with the same status, choice, text and time; a pending one
/// has none. The row is what the API shows, so a row edited behind the log shows here.
pub fn pause_agrees(pause: &Pause, decision: Option<&AuditEvent>) -> Result<(), String> {
    let Some(event) = decision else {
        return match pause.status {
            PauseStatus::Pending => Ok(()),
            status => Err(format!(
                "pause {} is {status} but its audit events record no decision",
                pause.pause_id
            )),
        };
    };
    let recorded = |field: &str| event.data.get(field).and_then(Value::as_str);
    let mut differs = Vec::new();
    if recorded("status") != Some(pause.status.as_str()) {
        differs.push("status");
    }
    if recorded("response_choice") != pause.response_choice.as_deref() {
        differs.push("response_choice");
    }
    if recorded("response_text") != pause.response_text.as_deref() {
        differs.push("response_text");
    }
    if pause.response_at != Some(event.occurred_at) {
        differs.push("response_at");
    }
    if differs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "pause {} disagrees with its {} event (seq {}) on {}",
            pause.pause_id,
            event.event,
            event.seq,
            differs.join(", ")
        ))
    }
}

/// [`pause_agrees`] over all the decision events found for the pause (more than one is
/// itself a forgery).
pub fn pause_agrees_with(pause: &Pause, decisions: &[AuditEvent]) -> Result<(), String> {
    match decisions {
        [] => pause_agrees(pause, None),
        [decision] => pause_agrees(pause, Some(decision)),
        [_, second, ..] => Err(format!(
            "pause {} has {} decision events; the second is event {}",
            pause.pause_id,
            decisions.len(),
            second.seq
        )),
    }
}

/// Verifies an export offline (`pp audit verify --file`): a bundle or plain JSON lines of
/// events, with `keys` (or, when none are given, the keys the bundle carries) and the
/// checkpoints kept outside the log. A bundle's pauses are checked against their events;
/// a pause decided after the export's last event has none in it yet, and passes.
pub fn verify_export(
    text: impl std::io::BufRead,
    keys: Option<&Jwks>,
    outside: Vec<Checkpoint>,
) -> Result<VerifyReport, String> {
    let mut lines = text.lines().enumerate().peekable();
    let mut header: Option<BundleHeader> = None;
    let mut first: Option<(usize, String)> = None;
    for (n, line) in lines.by_ref() {
        let line = line.map_err(|e| format!("cannot read the export: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<BundleHeader>(&line) {
            Ok(h) if h.bundle == BUNDLE => header = Some(h),
            _ => first = Some((n, line)),
        }
        break;
    }
    let keys = match (keys, &header) {
        (Some(keys), _) => keys.clone(),
        (None, Some(header)) => header.keys.clone(),
        (None, None) => {
            return Err(
                "no public key: give the audit key (GET /v1/audit/public-key, or pp admin audit-key), or export a bundle".into(),
            )
        }
    };
    let project = header.as_ref().map(|h| h.project_id);
    let mut check = ChainCheck::new(&keys, project, outside);
    let mut decisions: HashMap<Uuid, Vec<AuditEvent>> = HashMap::new();
    let mut newest: Option<Timestamp> = None;
    let mut pauses_checked: Option<u64> = None;
    let mut pause_problem: Option<(Option<i64>, String)> = None;
    let rest = lines.map(|(n, line)| line.map(|l| (n, l)));
    for item in first.into_iter().map(Ok).chain(rest) {
        let (n, line) = item.map_err(|e| format!("cannot read the export: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Ok(BundlePause { pause }) = serde_json::from_str::<BundlePause>(&line) {
            let checked = pauses_checked.get_or_insert(0);
            *checked += 1;
            if pause_problem.is_some() {
                continue;
            }
            let found = decisions
                .get(&pause.pause_id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let decided_later = found.is_empty()
                && pause
                    .response_at
                    .zip(newest)
                    .is_some_and(|(at, newest)| at >= newest);
            if decided_later {
                continue;
            }
            if let Err(problem) = pause_agrees_with(&pause, found) {
                pause_problem = Some((found.first().map(|e| e.seq), problem));
            }
            continue;
        }
        match serde_json::from_str::<AuditEvent>(&line) {
            Ok(event) => {
                newest = Some(newest.map_or(event.occurred_at, |t| t.max(event.occurred_at)));
                if let Some(id) = event.pause_id.filter(|_| is_decision(event.event)) {
                    decisions.entry(id).or_default().push(event.clone());
                }
                check.push(&event);
            }
            Err(e) => {
                let seq = check.next_seq();
                check.unreadable(seq, &format!("line {}: {e}", n + 1));
            }
        }
    }
    let mut report = check.finish(None, None);
    report.pauses_checked = pauses_checked;
    if report.ok {
        if let Some((seq, problem)) = pause_problem {
            report.ok = false;
            report.first_bad_seq = seq;
            report.problem = Some(problem);
        }
    }
    Ok(report)
}

/// Whether `kind` records a pause's decision (the end of its life).
pub fn is_decision(kind: AuditEventKind) -> bool {
    matches!(
        kind,
        AuditEventKind::PauseResponded
            | AuditEventKind::PauseTimedOut
            | AuditEventKind::PauseCancelled
    )
}

/// Events older than this (before the newest event, or before now online) must be covered
/// by a signed checkpoint: checkpoints are made every minute while events arrive, so an
/// older event without one was written, or rewritten, where no server could sign it.
pub const MUST_BE_COVERED_AFTER: SignedDuration = SignedDuration::from_mins(5);

/// How many recent hashes the walk keeps to check the checkpoints it meets: a checkpoint
/// names an event just before it (only writes committed meanwhile come between).
const RECENT: usize = 65_536;

/// One of the last events the walk met.
struct Recent {
    seq: i64,
    hash: String,
    at: Timestamp,
    checkpoint: bool,
}

/// The walk over one project's chain, event by event, in order.
pub struct ChainCheck<'k> {
    keys: &'k Jwks,
    project_id: Option<Uuid>,
    expected_seq: i64,
    prev_hash: String,
    checked: u64,
    /// The last [`RECENT`] events: seq, hash, time, and whether it is a checkpoint.
    recent: VecDeque<Recent>,
    /// Checkpoints kept outside the log, by the event they name.
    outside: BTreeMap<i64, Vec<Checkpoint>>,
    outside_checked: u64,
    checkpoints: u64,
    covered_to: Option<i64>,
    /// The first event (not a checkpoint) after `covered_to`; while `None`, the next one
    /// pushed becomes it. Only this one is needed: it is the oldest event no checkpoint
    /// covers, so the walk's memory does not grow with the log.
    first_uncovered: Option<(i64, Timestamp)>,
    newest: Option<Timestamp>,
    /// Whether old events must be covered by a checkpoint (see [`ChainCheck::finish`]).
    coverage: bool,
    /// The event the walk began after (0: the start).
    started_after: i64,
    problem: Option<(i64, String)>,
}

impl<'k> ChainCheck<'k> {
    /// A walk of the chain of `project_id` (any, when unknown), with `keys` for the
    /// signatures and the checkpoints kept outside the log. An outside checkpoint that is
    /// not validly signed, or is another project's, is a problem at once.
    pub fn new(
        keys: &'k Jwks,
        project_id: Option<Uuid>,
        outside: Vec<Checkpoint>,
    ) -> ChainCheck<'k> {
        let mut check = ChainCheck {
            keys,
            project_id,
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            checked: 0,
            recent: VecDeque::new(),
            outside: BTreeMap::new(),
            outside_checked: 0,
            checkpoints: 0,
            covered_to: None,
            first_uncovered: None,
            newest: None,
            coverage: true,
            started_after: 0,
            problem: None,
        };
        for checkpoint in outside {
            if let Err(e) = checkpoint.verify(keys) {
                check.fail(
                    checkpoint.seq,
                    format!("a checkpoint kept outside the log does not hold: {e}"),
                );
            } else if project_id.is_some_and(|p| p != checkpoint.project_id) {
                check.fail(
                    checkpoint.seq,
                    "a checkpoint kept outside the log is another project's".into(),
                );
            } else {
                check
                    .outside
                    .entry(checkpoint.seq)
                    .or_default()
                    .push(checkpoint);
            }
        }
        check
    }

    /// The walk of the rest of a chain, from the event after `seq`, whose hash is `hash`
    /// (known good: named by a checkpoint this walker trusts).
    pub fn starting_after(mut self, seq: i64, hash: &str) -> ChainCheck<'k> {
        self.expected_seq = seq + 1;
        self.started_after = seq;
        self.prev_hash = hash.to_owned();
        self.recent.clear();
        self.recent.push_back(Recent {
            seq,
            hash: hash.to_owned(),
            at: Timestamp::UNIX_EPOCH,
            checkpoint: true,
        });
        self
    }

    /// Leaves out the rule that old events be covered by a checkpoint: for a server about
    /// to sign the events after its last checkpoint, however long ago that was.
    pub fn without_coverage_rule(mut self) -> ChainCheck<'k> {
        self.coverage = false;
        self
    }

    /// The seq the next event must have.
    pub fn next_seq(&self) -> i64 {
        self.expected_seq
    }

    /// Whether a problem was found (the walk may stop).
    pub fn failed(&self) -> bool {
        self.problem.is_some()
    }

    fn fail(&mut self, seq: i64, problem: String) {
        if self.problem.is_none() {
            self.problem = Some((seq, problem));
        }
    }

    /// An event that could not be read at all (edited into something that does not parse).
    pub fn unreadable(&mut self, seq: i64, detail: &str) {
        self.fail(seq, format!("unreadable event: {detail}"));
    }

    /// The next event of the chain.
    pub fn push(&mut self, event: &AuditEvent) {
        if self.failed() {
            return;
        }
        let seq = self.expected_seq;
        if event.seq != seq {
            return self.fail(
                seq,
                format!("event {seq} is missing (next is {})", event.seq),
            );
        }
        if event.prev_hash != self.prev_hash {
            return self.fail(seq, "prev_hash does not match the event before".into());
        }
        if !event.hash_holds(&self.prev_hash) {
            return self.fail(seq, "the event was changed after it was written".into());
        }
        if let Some(kept) = self.outside.get(&seq) {
            self.outside_checked += kept.len() as u64;
            if kept.iter().any(|c| c.head_hash != event.hash) {
                return self.fail(
                    seq,
                    "the event differs from what a checkpoint kept outside the log signed".into(),
                );
            }
        }
        if event.event == AuditEventKind::AuditCheckpoint {
            if let Err(problem) = self.checkpoint(event) {
                return self.fail(seq, problem);
            }
        } else {
            if self.first_uncovered.is_none() {
                self.first_uncovered = Some((seq, event.occurred_at));
            }
        }
        self.newest = Some(
            self.newest
                .map_or(event.occurred_at, |t| t.max(event.occurred_at)),
        );
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            seq,
            hash: event.hash.clone(),
            at: event.occurred_at,
            checkpoint: event.event == AuditEventKind::AuditCheckpoint,
        });
        self.prev_hash = event.hash.clone();
        self.expected_seq += 1;
        self.checked += 1;
    }

    /// A checkpoint on the chain: signed by one of the keys, this project's, naming an
    /// earlier event with the hash that event has.
    fn checkpoint(&mut self, event: &AuditEvent) -> Result<(), String> {
        let checkpoint: Checkpoint = serde_json::from_value(event.data.clone())
            .map_err(|e| format!("a checkpoint event that is not a checkpoint: {e}"))?;
        checkpoint
            .verify(self.keys)
            .map_err(|e| format!("a checkpoint whose signature does not hold: {e}"))?;
        if self.project_id.is_some_and(|p| p != checkpoint.project_id) {
            return Err("a checkpoint of another project".into());
        }
        let named = self
            .recent
            .iter()
            .rev()
            .find(|r| r.seq == checkpoint.seq)
            .map(|r| r.hash.as_str());
        match named {
            Some(hash) if hash == checkpoint.head_hash => {}
            Some(_) => {
                return Err(format!(
                    "a signed checkpoint says event {} had another hash: the chain was rewritten",
                    checkpoint.seq
                ))
            }
            None => {
                return Err(format!(
                    "a signed checkpoint names event {}, which is not just before it",
                    checkpoint.seq
                ))
            }
        }
        self.checkpoints += 1;
        if self.covered_to.is_none_or(|c| checkpoint.seq > c) {
            self.covered_to = Some(checkpoint.seq);
            // The oldest event left uncovered is the first after the one it names: among
            // the recent ones (it names an event just before it), or the next to come.
            self.first_uncovered = self
                .recent
                .iter()
                .find(|r| r.seq > checkpoint.seq && !r.checkpoint)
                .map(|r| (r.seq, r.at));
        }
        Ok(())
    }

    /// The report: the first problem met, or else the checks that need the whole walk. The
    /// walk must end at `head` when given (the project's head, online). Events older than
    /// [`MUST_BE_COVERED_AFTER`] before `now` (or before the newest event) must be covered
    /// by a checkpoint, unless no checkpoint was ever made (a log from before checkpoints).
    pub fn finish(mut self, head: Option<(i64, &str)>, now: Option<Timestamp>) -> VerifyReport {
        let last = self.expected_seq - 1;
        if !self.failed() {
            if let Some((&seq, _)) = self.outside.range(last + 1..).next() {
                self.fail(
                    last + 1,
                    format!(
                        "the log ends at event {last}, but a signed checkpoint kept outside it covers event {seq}: events were cut"
                    ),
                );
            }
        }
        if !self.failed() {
            if let Some((head_seq, head_hash)) = head {
                if last != head_seq || self.prev_hash != head_hash {
                    self.fail(
                        last + 1,
                        format!("the log ends at event {last} but {head_seq} were written"),
                    );
                }
            }
        }
        if !self.failed() && self.coverage && self.checkpoints > 0 {
            let reference = now.or(self.newest);
            if let (Some(reference), Some((seq, at))) = (reference, self.first_uncovered) {
                if reference.duration_since(at) > MUST_BE_COVERED_AFTER {
                    self.fail(
                        seq,
                        format!(
                            "event {seq} ({}) is covered by no signed checkpoint, though checkpoints are made every minute: the chain after event {} may have been rewritten",
                            crate::time::format(&at),
                            self.covered_to.unwrap_or(0)
                        ),
                    );
                }
            }
        }
        let (first_bad_seq, problem) = match self.problem {
            Some((seq, problem)) => (Some(seq), Some(problem)),
            None => (None, None),
        };
        VerifyReport {
            ok: first_bad_seq.is_none(),
            events_checked: self.checked,
            head_hash: self.prev_hash,
            first_bad_seq,
            problem,
            checkpoints_checked: self.checkpoints,
            outside_checkpoints_checked: self.outside_checked,
            covered_to_seq: self.covered_to,
            pauses_checked: None,
            walked_from_seq: self.started_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn keys(signers: &[&SigningKey]) -> Jwks {
        Jwks {
            keys: signers
                .iter()
                .map(|k| Jwk::new(&k.verifying_key(), Timestamp::UNIX_EPOCH, None))
                .collect(),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    /// A chain of `n` events one second apart, each signed checkpoint after `every` events.
    fn chain(n: i64, every: Option<i64>, key: &SigningKey, project: Uuid) -> Vec<AuditEvent> {
        let mut events: Vec<AuditEvent> = Vec::new();
        let mut prev = GENESIS_HASH.to_owned();
        let mut push =
            |kind: AuditEventKind, data: Value, when: Timestamp, events: &mut Vec<AuditEvent>| {
                let mut event = AuditEvent {
                    event_id: Uuid::now_v7(),
                    seq: events.len() as i64 + 1,
                    event: kind,
                    pause_id: None,
                    actor: "system".into(),
                    occurred_at: when,
                    data,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                event.hash = event.chain_hash(&prev);
                prev = event.hash.clone();
                events.push(event);
            };
        for i in 1..=n {
            push(
                AuditEventKind::PauseCreated,
                json!({ "i": i }),
                at(i),
                &mut events,
            );
            if every.is_some_and(|e| i % e == 0) {
                let last = events.last().unwrap();
                let checkpoint =
                    Checkpoint::sign(project, last.seq, &last.hash, at(i), key).unwrap();
                push(
                    AuditEventKind::AuditCheckpoint,
                    serde_json::to_value(&checkpoint).unwrap(),
                    at(i),
                    &mut events,
                );
            }
        }
        events
    }

    fn walk(
        events: &[AuditEvent],
        keys: &Jwks,
        project: Uuid,
        outside: Vec<Checkpoint>,
    ) -> VerifyReport {
        let mut check = ChainCheck::new(keys, Some(project), outside);
        for event in events {
            check.push(event);
        }
        check.finish(None, None)
    }

    #[test]
    fn a_jws_verifies_with_its_key_only() {
        let (signer, other) = (key(1), key(2));
        let token = jws::sign(b"{\"a\":1}", &signer);
        let (kid, payload) = jws::verify(&token, &keys(&[&other, &signer])).unwrap();
        assert_eq!(
            (kid, payload),
            (key_id(&signer.verifying_key()), b"{\"a\":1}".to_vec())
        );
        assert!(matches!(
            jws::verify(&token, &keys(&[&other])),
            Err(ProofError::UnknownKey(_))
        ));
        // A payload swapped under the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(b"{\"a\":2}"),
            parts[2]
        );
        assert_eq!(
            jws::verify(&forged, &keys(&[&signer])),
            Err(ProofError::BadSignature)
        );
        assert_eq!(
            jws::verify("a.b", &keys(&[&signer])),
            Err(ProofError::Malformed)
        );
    }

    #[test]
    fn the_rfc_8037_example_signature_verifies() {
        // RFC 8037, appendix A.4: "Example of Ed25519 signing" signed with its example key.
        let set = Jwks::parse(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}"#,
        )
        .unwrap();
        let token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let (_, payload) = jws::verify(token, &set).unwrap();
        assert_eq!(payload, b"Example of Ed25519 signing");
        // The same key, from its private half, signs the same bytes the same way.
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let signer = SigningKey::from_bytes(&d.try_into().unwrap());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(signer.verifying_key().as_bytes()),
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
        let ours = jws::sign(b"Example of Ed25519 signing", &signer);
        assert_eq!(
            jws::verify(&ours, &set).unwrap().1,
            b"Example of Ed25519 signing"
        );
    }

    #[test]
    fn a_key_id_is_the_rfc_7638_thumbprint() {
        // RFC 8037, appendix A.3: the thumbprint of its example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
        assert_eq!(key_id(&key), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        // And the bare key, pasted, reads as a key set.
        let set = Jwks::parse("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert_eq!(
            set.keys[0].kid,
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn receipts_bind_every_claim() {
        let signer = key(3);
        let claims = ReceiptClaims {
            audit_hash: "ab".repeat(32),
            audit_seq: 9,
            decided_at: "2026-11-29T10:00:00.000Z".into(),
            decided_by: "recipient:+13128471928".into(),
            message_sha256: sha256_hex("Wire $8,400 to Meridian?".as_bytes()),
            metadata_sha256: ReceiptClaims::metadata_hash(json!({"b": 1, "a": 2}).as_object())
                .unwrap(),
            options: vec!["Approve".into(), "Reject".into()],
            pause_id: Uuid::nil(),
            project_id: Uuid::nil(),
            response_choice: Some("Approve".into()),
            status: PauseStatus::Responded,
        };
        let receipt = claims.sign(&signer).unwrap();
        assert_eq!(
            ReceiptClaims::verify(&receipt, &keys(&[&signer])).unwrap(),
            claims
        );
        assert!(ReceiptClaims::verify(&receipt, &keys(&[&key(4)])).is_err());
        // The metadata hash is over its canonical form: key order does not matter.
        assert_eq!(
            claims.metadata_sha256,
            Some(sha256_hex(br#"{"a":2,"b":1}"#))
        );
    }

    #[test]
    fn an_intact_chain_with_checkpoints_verifies() {
        let (signer, project) = (key(5), Uuid::now_v7());
        let events = chain(20, Some(5), &signer, project);
        let report = walk(&events, &keys(&[&signer]), project, Vec::new());
        assert!(report.ok, "{report:?}");
        assert_eq!((report.checkpoints_checked, report.events_checked), (4, 24));
        assert_eq!(report.covered_to_seq, Some(23));
    }

    #[test]
    fn a_rewritten_chain_fails_at_the_checkpoint_after_it() {
        let (signer, project) = (key(6), Uuid::now_v7());
        let mut events = chain(20, Some(5), &signer, project);
        // The attacker edits event 3 and re-hashes everything after it, as the documented
        // algorithm lets anyone do; the signed checkpoints cannot be re-signed.
        events[2].data = json!({ "i": 99 });
        let mut prev = events[1].hash.clone();
        for event in &mut events[2..] {
            event.prev_hash = prev.clone();
            event.hash = event.chain_hash(&prev);
            prev = event.hash.clone();
        }
        let report = walk(&events, &keys(&[&signer]), project, Vec::new());
        assert_eq!(report.first_bad_seq, Some(6), "{report:?}");
        assert!(report.problem.unwrap().contains("rewritten"));
    }

    #[test]
    fn dropping_the_checkpoints_leaves_old_events_uncovered() {
        let (signer, project) = (key(7), Uuid::now_v7());
        let events = chain(600, Some(100), &signer, project);
        // Rewritten without its checkpoint events, re-hashed from the start.
        let mut kept: Vec<AuditEvent> = events
            .into_iter()
            .filter(|e| e.event != AuditEventKind::AuditCheckpoint || e.seq < 300)
            .collect();
        let mut prev = kept[0].prev_hash.clone();
        for (i, event) in kept.iter_mut().enumerate() {
            event.seq = i as i64 + 1;
            event.prev_hash = prev.clone();
            event.hash = event.chain_hash(&prev);
            prev = event.hash.clone();
        }
        let report = walk(&kept, &keys(&[&signer]), project, Vec::new());
        assert!(!report.ok);
        assert!(report
            .problem
            .unwrap()
            .contains("covered by no signed checkpoint"));
    }

    #[test]
    fn a_checkpoint_kept_outside_catches_a_cut_tail_and_a_changed_event() {
        let (signer, project) = (key(8), Uuid::now_v7());
        let events = chain(30, None, &signer, project);
        let kept = Checkpoint::sign(project, 25, &events[24].hash, at(25), &signer).unwrap();
        let report = walk(&events, &keys(&[&signer]), project, vec![kept.clone()]);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.outside_checkpoints_checked, 1);
        // Cut back to 20 events: the checkpoint names event 25.
        let report = walk(
            &events[..20],
            &keys(&[&signer]),
            project,
            vec![kept.clone()],
        );
        assert_eq!(report.first_bad_seq, Some(21));
        assert!(report.problem.unwrap().contains("events were cut"));
        // A checkpoint that is not validly signed is no evidence.
        let mut forged = kept.clone();
        forged.seq = 24;
        let report = walk(&events, &keys(&[&signer]), project, vec![forged]);
        assert!(report.problem.unwrap().contains("does not hold"));
        // Another project's checkpoint is not this log's.
        let theirs =
            Checkpoint::sign(Uuid::now_v7(), 25, &events[24].hash, at(25), &signer).unwrap();
        let report = walk(&events, &keys(&[&signer]), project, vec![theirs]);
        assert!(report.problem.unwrap().contains("another project"));
    }
}

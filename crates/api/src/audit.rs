//! Audit events and the hash chain that makes the log tamper-evident.
//!
//! Each project has one chain. An event's `hash` is
//! `hex(SHA-256(prev_hash || JCS(event)))`, where `prev_hash` is the previous event's hash
//! as 64 lowercase hex characters (64 zeros for the first event), `JCS` is the RFC 8785
//! canonical JSON, and `event` is the event exactly as the API returns it without its
//! `prev_hash` and `hash` fields. So anyone holding an export can check it independently.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of a project's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. The names are the wire form (`pause.created`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AuditEventKind {
    #[serde(rename = "pause.created")]
    PauseCreated,
    #[serde(rename = "pause.notified")]
    PauseNotified,
    #[serde(rename = "pause.notification_failed")]
    PauseNotificationFailed,
    /// The provider reports the notice reached the phone.
    #[serde(rename = "pause.delivered")]
    PauseDelivered,
    #[serde(rename = "pause.viewed")]
    PauseViewed,
    #[serde(rename = "pause.responded")]
    PauseResponded,
    /// One approver's vote; the vote that decides is followed by `pause.responded`.
    #[serde(rename = "pause.vote_recorded")]
    PauseVoteRecorded,
    /// An escalation tier was sent the question: the pause was still pending.
    #[serde(rename = "pause.escalated")]
    PauseEscalated,
    /// An approver who had not answered was sent the question again.
    #[serde(rename = "pause.reminded")]
    PauseReminded,
    #[serde(rename = "pause.timed_out")]
    PauseTimedOut,
    #[serde(rename = "pause.cancelled")]
    PauseCancelled,
    #[serde(rename = "webhook.delivered")]
    WebhookDelivered,
    #[serde(rename = "webhook.failed")]
    WebhookFailed,
    #[serde(rename = "key.created")]
    KeyCreated,
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    #[serde(rename = "project.renamed")]
    ProjectRenamed,
    #[serde(rename = "audit.checkpoint")]
    AuditCheckpoint,
    /// An approver answered "Allow for 1 hour": a rule now allows the same call.
    #[serde(rename = "rule.created")]
    RuleCreated,
    /// A call was allowed by a rule, without asking.
    #[serde(rename = "rule.applied")]
    RuleApplied,
    #[serde(rename = "rule.revoked")]
    RuleRevoked,
}

impl AuditEventKind {
    pub const ALL: [AuditEventKind; 20] = [
        AuditEventKind::PauseCreated,
        AuditEventKind::PauseNotified,
        AuditEventKind::PauseNotificationFailed,
        AuditEventKind::PauseDelivered,
        AuditEventKind::PauseViewed,
        AuditEventKind::PauseResponded,
        AuditEventKind::PauseVoteRecorded,
        AuditEventKind::PauseEscalated,
        AuditEventKind::PauseReminded,
        AuditEventKind::PauseTimedOut,
        AuditEventKind::PauseCancelled,
        AuditEventKind::WebhookDelivered,
        AuditEventKind::WebhookFailed,
        AuditEventKind::KeyCreated,
        AuditEventKind::KeyRevoked,
        AuditEventKind::ProjectRenamed,
        AuditEventKind::AuditCheckpoint,
        AuditEventKind::RuleCreated,
        AuditEventKind::RuleApplied,
        AuditEventKind::RuleRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditEventKind::PauseCreated => "pause.created",
            AuditEventKind::PauseNotified => "pause.notified",
            AuditEventKind::PauseNotificationFailed => "pause.notification_failed",
            AuditEventKind::PauseDelivered => "pause.delivered",
            AuditEventKind::PauseViewed => "pause.viewed",
            AuditEventKind::PauseResponded => "pause.responded",
            AuditEventKind::PauseVoteRecorded => "pause.vote_recorded",
            AuditEventKind::PauseEscalated => "pause.escalated",
            AuditEventKind::PauseReminded => "pause.reminded",
            AuditEventKind::PauseTimedOut => "pause.timed_out",
            AuditEventKind::PauseCancelled => "pause.cancelled",
            AuditEventKind::WebhookDelivered => "webhook.delivered",
            AuditEventKind::WebhookFailed => "webhook.failed",
            AuditEventKind::KeyCreated => "key.created",
            AuditEventKind::KeyRevoked => "key.revoked",
            AuditEventKind::ProjectRenamed => "project.renamed",
            AuditEventKind::AuditCheckpoint => "audit.checkpoint",
            AuditEventKind::RuleCreated => "rule.created",
            AuditEventKind::RuleApplied => "rule.applied",
            AuditEventKind::RuleRevoked => "rule.revoked",
        }
    }
}

impl fmt::Display for AuditEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditEventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditEventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = AuditEventKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown event {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// One entry of a project's audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub event_id: Uuid,
    /// Position in the project's chain, from 1 with no gaps.
    pub seq: i64,
    pub event: AuditEventKind,
    pub pause_id: Option<Uuid>,
    /// `api_key:<key id>`, `recipient:<recipient>`, `admin` or `system`.
    pub actor: String,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Timestamp,
    /// Full context: for pause events the exact message and options, and what changed.
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// An event's `data` in canonical form ([`crate::canonical`]): what its hash covers, and
/// the text a server stores, so that the one serialization serves both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalData(String);

impl CanonicalData {
    pub fn of(data: &Value) -> CanonicalData {
        CanonicalData(crate::canonical::to_string(data))
    }

    /// Text that [`CanonicalData::of`] made and a store kept: taken as it is, not checked
    /// (checking means parsing it, which is the work this type saves). Only for text
    /// this program wrote as canonical; a wrong text makes a hash that verify refuses.
    pub fn from_stored(text: String) -> CanonicalData {
        CanonicalData(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The fields of an event that its hash covers: everything but `prev_hash` and `hash`,
/// `occurred_at` spelled as the export spells it.
struct Hashed<'a> {
    event_id: &'a Uuid,
    seq: i64,
    event: AuditEventKind,
    pause_id: &'a Option<Uuid>,
    actor: &'a str,
    occurred_at: &'a str,
    data: &'a CanonicalData,
}

impl Hashed<'_> {
    /// The canonical JSON of these fields, as an auditor makes it from the exported event
    /// without `prev_hash` and `hash`. Written member by member: their names are ASCII,
    /// so this order (by bytes) is RFC 8785's (by UTF-16), and `data` is canonical already.
    fn canonical(&self) -> Vec<u8> {
        use crate::canonical::{write_number, write_str};
        let mut out = Vec::with_capacity(160 + self.data.as_str().len());
        out.extend_from_slice(b"{\"actor\":");
        write_str(self.actor, &mut out);
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(self.data.as_str().as_bytes());
        out.extend_from_slice(b",\"event\":");
        write_str(self.event.as_str(), &mut out);
        out.extend_from_slice(b",\"event_id\":");
        write_str(
            self.event_id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
            &mut out,
        );
        out.extend_from_slice(b",\"occurred_at\":");
        write_str(self.occurred_at, &mut out);
        out.extend_from_slice(b",\"pause_id\":");
        match self.pause_id {
            Some(id) => write_str(
                id.hyphenated().encode_lower(&mut Uuid::encode_buffer()),
                &mut out,
            ),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"seq\":");
        // As JavaScript writes it, as every JSON number is: exact up to 2^53.
        write_number(self.seq as f64, &mut out);
        out.push(b'}');
        out
    }

    /// `hex(SHA-256(prev_hash || JCS(fields)))`.
    fn hash(&self, prev_hash: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        hasher.update(self.canonical());
        hex::encode(hasher.finalize())
    }
}

impl AuditEvent {
    /// The hash this event must carry, given the hash of the event before it.
    pub fn chain_hash(&self, prev_hash: &str) -> String {
        self.hash_with(
            prev_hash,
            &crate::time::format(&self.occurred_at),
            &CanonicalData::of(&self.data),
        )
    }

    /// Whether `hash` is this event's hash after `prev_hash`. Events written before times
    /// had one spelling hashed `occurred_at` in its shortest form (`…31.59Z` for
    /// `…31.590Z`); both spell the same instant, so either binds the event.
    pub fn hash_holds(&self, prev_hash: &str) -> bool {
        let data = CanonicalData::of(&self.data);
        let formatted = crate::time::format(&self.occurred_at);
        if self.hash_with(prev_hash, &formatted, &data) == self.hash {
            return true;
        }
        let shortest = self.occurred_at.to_string();
        self.hash_with(prev_hash, &shortest, &data) == self.hash
    }

    fn hash_with(&self, prev_hash: &str, occurred_at: &str, data: &CanonicalData) -> String {
        Hashed {
            event_id: &self.event_id,
            seq: self.seq,
            event: self.event,
            pause_id: &self.pause_id,
            actor: &self.actor,
            occurred_at,
            data,
        }
        .hash(prev_hash)
    }
}

/// `hex(SHA-256(prev_hash || JCS(event)))` over the fields of an event, `occurred_at` with
/// three fractional digits.
#[allow(clippy::too_many_arguments)]
pub fn chain_hash(
    prev_hash: &str,
    event_id: &Uuid,
    seq: i64,
    event: AuditEventKind,
    pause_id: &Option<Uuid>,
    actor: &str,
    occurred_at: &Timestamp,
    data: &CanonicalData,
) -> String {
    Hashed {
        event_id,
        seq,
        event,
        pause_id,
        actor,
        occurred_at: &crate::time::format(occurred_at),
        data,
    }
    .hash(prev_hash)
}

/// One page of `GET /v1/audit`, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

/// What `GET /v1/audit/verify` (or `pp audit verify --file`) found walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    pub events_checked: u64,
    /// The hash of the last event checked (the genesis hash for an empty log).
    pub head_hash: String,
    /// The first event that is missing, edited or out of place; null when `ok`.
    pub first_bad_seq: Option<i64>,
    /// What is wrong at `first_bad_seq`, in words; null when `ok`.
    pub problem: Option<String>,
    /// Signed checkpoints found on the chain, each checked against it.
    #[serde(default)]
    pub checkpoints_checked: u64,
    /// Checkpoints kept outside the log (a witness's, an auditor's, this server's last)
    /// checked against it.
    #[serde(default)]
    pub outside_checkpoints_checked: u64,
    /// The last event a valid signed checkpoint covers.
    #[serde(default)]
    pub covered_to_seq: Option<i64>,
    /// Pauses whose stored state was checked against their audit events (online only).
    #[serde(default)]
    pub pauses_checked: Option<u64>,
    /// The walk began after this event: 0 for the whole chain; otherwise the event the
    /// newest valid signed checkpoint names (everything up to it was verified before it
    /// was signed). Ask for `full` to walk everything again.
    #[serde(default)]
    pub walked_from_seq: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in AuditEventKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditEventKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn hash_covers_the_exported_event() {
        let mut event = AuditEvent {
            event_id: Uuid::nil(),
            seq: 1,
            event: AuditEventKind::PauseCreated,
            pause_id: None,
            actor: "system".into(),
            occurred_at: Timestamp::from_millisecond(1_700_000_000_120).unwrap(),
            data: serde_json::json!({"b": 1, "a": [1, 2]}),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        event.hash = event.chain_hash(GENESIS_HASH);

        // An auditor's recomputation from the exported JSON: drop the hashes, JCS, SHA-256.
        assert_eq!(recomputed(&event, GENESIS_HASH), event.hash);
        let exported = serde_json::to_value(&event).unwrap();
        assert!(exported["occurred_at"] == "2023-11-14T22:13:20.120Z");
        assert!(event.hash_holds(GENESIS_HASH));

        event.data = serde_json::json!({"b": 2, "a": [1, 2]});
        assert_ne!(event.chain_hash(GENESIS_HASH), event.hash);
        assert!(!event.hash_holds(GENESIS_HASH));
    }

    /// An auditor's recomputation, with another implementation of RFC 8785.
    fn recomputed(event: &AuditEvent, prev_hash: &str) -> String {
        let mut exported = serde_json::to_value(event).unwrap();
        let object = exported.as_object_mut().unwrap();
        object.remove("hash");
        object.remove("prev_hash");
        let mut hasher = Sha256::new();
        hasher.update(prev_hash);
        hasher.update(serde_jcs::to_vec(&exported).unwrap());
        hex::encode(hasher.finalize())
    }

    #[test]
    fn hashes_match_an_auditors_on_awkward_events() {
        let actors = [
            "system",
            "recipient:caf\u{e9} \u{1f600} \"quoted\" \\ back\nslash \u{1}",
            "api_key:\u{fb33}\u{10000}",
            "",
        ];
        let datas = [
            serde_json::json!({}),
            serde_json::json!({"\u{fb33}": 1, "\u{1f600}": 2, "a": [0.1, 1e21, -0.0, 9007199254740993_u64]}),
            serde_json::json!({"message": "Wire $8,400 to Meridian?\u{2028}</script>", "options": ["Approve", "Reject"], "nested": {"z": null, "y": {"x": true}}}),
        ];
        let mut prev = GENESIS_HASH.to_owned();
        for (i, (actor, data)) in actors
            .iter()
            .flat_map(|a| datas.iter().map(move |d| (a, d)))
            .enumerate()
        {
            let event = AuditEvent {
                event_id: Uuid::from_u128(0x1234_5678_9abc_def0_u128 << (i % 64)),
                seq: [1, 999_999, 9_007_199_254_740_991][i % 3],
                event: AuditEventKind::ALL[i % AuditEventKind::ALL.len()],
                pause_id: (i % 2 == 0).then(|| Uuid::from_u128(i as u128 * 0xdead_beef)),
                actor: (*actor).to_owned(),
                occurred_at: Timestamp::from_millisecond(1_700_000_000_000 + i as i64 * 7).unwrap(),
                data: data.clone(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            let hash = event.chain_hash(&prev);
            assert_eq!(hash, recomputed(&event, &prev), "event {i}");
            assert_eq!(
                hash,
                chain_hash(
                    &prev,
                    &event.event_id,
                    event.seq,
                    event.event,
                    &event.pause_id,
                    &event.actor,
                    &event.occurred_at,
                    &CanonicalData::of(&event.data),
                ),
            );
            prev = hash;
        }
    }

    #[test]
    fn events_hashed_with_the_shortest_time_still_verify() {
        let mut event = AuditEvent {
            event_id: Uuid::nil(),
            seq: 7,
            event: AuditEventKind::PauseCancelled,
            pause_id: Some(Uuid::nil()),
            actor: "admin".into(),
            occurred_at: Timestamp::from_millisecond(1_700_000_000_500).unwrap(),
            data: serde_json::json!({}),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        // As an earlier version wrote it: "…20.5Z".
        event.hash = event.hash_with(
            GENESIS_HASH,
            "2023-11-14T22:13:20.5Z",
            &CanonicalData::of(&event.data),
        );
        assert_ne!(event.chain_hash(GENESIS_HASH), event.hash);
        assert!(event.hash_holds(GENESIS_HASH));
        // Another instant, in either spelling, does not.
        event.occurred_at = Timestamp::from_millisecond(1_700_000_000_600).unwrap();
        assert!(!event.hash_holds(GENESIS_HASH));
    }
}

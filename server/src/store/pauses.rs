//! Pause rows. A pause leaves `pending` through [`Tx::finish_pause`], one conditional
//! UPDATE, so of any number of racing decisions exactly one changes the row.

use jiff::Timestamp;
use pausepoint_api::validation::NewPause;
use pausepoint_api::{Channel, Decision, Delivery, DeliveryStatus, Pause, PauseStatus, Quorum};
use serde_json::{Map, Value};

use super::db::{args, Arg, Conn, OwnedArg, Query, Row};
use super::deliveries::DeliveryKey;
use super::tx::{Deferred, Draft};
use super::{Dialect, Store, StoreError, Tx};
use crate::ids::{PauseId, ProjectId};

/// How a pending pause ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The human answered. Only before `expires_at`.
    Responded(Decision),
    /// Nobody answered in time; the choice becomes `timeout_default`. Only from `expires_at` on.
    TimedOut,
    /// The agent withdrew the question.
    Cancelled,
}

impl Outcome {
    pub fn status(&self) -> PauseStatus {
        match self {
            Outcome::Responded(_) => PauseStatus::Responded,
            Outcome::TimedOut => PauseStatus::TimedOut,
            Outcome::Cancelled => PauseStatus::Cancelled,
        }
    }
}

/// A pause found by its idempotency key, with the hash of the request that created it.
pub struct IdempotentPause {
    pub pause: Pause,
    pub request_hash: Option<String>,
}

/// The `Idempotency-Key` of a create, with a hash of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

const TABLE: &str = "pauses";

macro_rules! pause_columns {
    () => {
        "SELECT p.id, p.project_id, p.status, p.channel, p.recipient, p.message, \
         p.options, p.allow_text_response, p.timeout_default, p.response_choice, p.response_text, \
         p.response_at, p.created_at, p.expires_at, p.metadata, p.webhook_url, p.request_hash, \
         p.quorum_option, p.quorum_count, p.remind_every_seconds, \
         d.status AS delivery_status, d.attempts AS delivery_attempts, \
         d.last_error AS delivery_last_error"
    };
}

/// Which pauses a list holds. Every field narrows; none lists them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PauseFilter {
    pub status: Option<PauseStatus>,
    pub channel: Option<Channel>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Asked of this recipient, first or as one of the approvers (exactly as given).
    pub recipient: Option<String>,
    /// Whose message holds this text (any case, for ASCII letters).
    pub text: Option<String>,
}

/// The query for a page of the project's pauses matching `filter`, newest first, older
/// than `before`: each filter is served by an index (`pauses_by_project_status`,
/// `_channel`; times are ranges of ids), and pages are keyed by id, never by offset.
pub fn list_query(
    dialect: Dialect,
    project_id: ProjectId,
    filter: &PauseFilter,
    before: Option<PauseId>,
    limit: u32,
) -> Query {
    let text = |value: String| OwnedArg::Text(Some(value));
    let mut query = Query::new(format!("{} WHERE ", select(dialect)));
    query.push("p.project_id = ?", [text(project_id.to_string())]);
    if let Some(status) = filter.status {
        query.push(" AND p.status = ?", [text(status.as_str().to_owned())]);
    }
    if let Some(channel) = filter.channel {
        query.push(" AND p.channel = ?", [text(channel.as_str().to_owned())]);
    }
    // A time range is a range of ids (see `lowest_id_since`), searched through whichever
    // index serves the other filters; created_at then filters exactly.
    if let Some(since) = filter.since {
        query.push(
            " AND p.id >= ? AND p.created_at >= ?",
            [
                text(lowest_id_since(since)),
                OwnedArg::Int(Some(since.as_millisecond())),
            ],
        );
    }
    if let Some(until) = filter.until {
        query.push(
            " AND p.id < ? AND p.created_at < ?",
            [
                text(PauseId::lowest_at(until + ID_MARGIN)),
                OwnedArg::Int(Some(until.as_millisecond())),
            ],
        );
    }
    if let Some(recipient) = &filter.recipient {
        query.push(
            " AND (p.recipient = ? OR EXISTS \
             (SELECT 1 FROM approvers a WHERE a.pause_id = p.id AND a.recipient = ?))",
            [text(recipient.clone()), text(recipient.clone())],
        );
    }
    if let Some(words) = &filter.text {
        // SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's ILIKE does too.
        let like = match dialect {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        };
        query.push(
            &format!(" AND p.message {like} ? ESCAPE '\\'"),
            [text(format!("%{}%", like_escaped(words)))],
        );
    }
    if let Some(before) = before {
        query.push(" AND p.id < ?", [text(before.to_string())]);
    }
    query.push(
        " ORDER BY p.id DESC LIMIT ?",
        [OwnedArg::Int(Some(i64::from(limit)))],
    );
    query
}

/// `words` matched literally by LIKE: its wildcards and the escape character escaped.
fn like_escaped(words: &str) -> String {
    let mut escaped = String::with_capacity(words.len());
    for c in words.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The query for the project's pauses with these ids: one search of the primary key each.
pub fn pauses_with_ids_query(dialect: Dialect, project_id: ProjectId, ids: &[PauseId]) -> Query {
    let text = |value: String| OwnedArg::Text(Some(value));
    let mut query = Query::new(format!("{} WHERE ", select(dialect)));
    query.push("p.project_id = ?", [text(project_id.to_string())]);
    let marks = vec!["?"; ids.len()].join(", ");
    query.push(
        &format!(" AND p.id IN ({marks})"),
        ids.iter().map(|id| text(id.to_string())),
    );
    query
}

/// The pause's approvers, each with its first notice, as one JSON array of arrays (see
/// [`super::approvers::from_json`]): a correlated subquery through both primary keys (a
/// notice's is its [`super::deliveries::DeliveryKey`], written out in SQL), so
/// that a read of a pause is one statement (one round trip on PostgreSQL) however many
/// approvers it has. `$agg` and `$array` are the dialect's JSON functions.
macro_rules! approvers_column {
    ($agg:literal, $array:literal) => {
        concat!(
            ", (SELECT CAST(",
            $agg,
            "(",
            $array,
            "(a.approver, a.channel, a.recipient, a.tier, a.notify_at, a.viewed_at, \
               a.vote_choice, a.vote_text, a.vote_at, ad.status, ad.attempts, ad.last_error)) \
               AS TEXT) \
             FROM approvers a LEFT JOIN deliveries ad \
               ON ad.id = a.pause_id || ':' || a.approver || ':0' \
             WHERE a.pause_id = p.id) AS approvers"
        )
    };
}

/// The tables every read of a pause reads: the pause and its delivery (the first
/// approver's first notice, by its key `{pause_id}:0:0`).
macro_rules! pause_tables {
    () => {
        " FROM pauses p LEFT JOIN deliveries d ON d.id = p.id || ':0:0'"
    };
}

/// Every read of a pause goes through [`select`], so a pause always carries its delivery
/// and its approvers.
const SELECT_SQLITE: &str = concat!(
    pause_columns!(),
    approvers_column!("json_group_array", "json_array"),
    pause_tables!()
);
const SELECT_POSTGRES: &str = concat!(
    pause_columns!(),
    approvers_column!("json_agg", "json_build_array"),
    pause_tables!()
);
/// The same, with the name of the pause's project.
const SELECT_WITH_PROJECT_SQLITE: &str = concat!(
    pause_columns!(),
    approvers_column!("json_group_array", "json_array"),
    ", pr.name AS project_name",
    pause_tables!(),
    " JOIN projects pr ON pr.id = p.project_id"
);
const SELECT_WITH_PROJECT_POSTGRES: &str = concat!(
    pause_columns!(),
    approvers_column!("json_agg", "json_build_array"),
    ", pr.name AS project_name",
    pause_tables!(),
    " JOIN projects pr ON pr.id = p.project_id"
);

/// The lowest id a pause created at `since` or later can have, in the text form ids are
/// stored in: a pause's id carries its creation time, so a bound on creation times is a
/// bound on ids, which an index that orders pauses by id stops at.
pub(super) fn lowest_id_since(since: Timestamp) -> String {
    PauseId::lowest_at(since - ID_MARGIN)
}

/// How much earlier than its creation time a pause's id may say it was made: ids made by
/// earlier versions took their time a moment before the creation time they stored.
const ID_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_mins(1);

/// `SELECT … FROM …` of a pause read, to be followed by its `WHERE`.
pub(super) fn select(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => SELECT_SQLITE,
        Dialect::Postgres => SELECT_POSTGRES,
    }
}

/// [`select`], with the name of the pause's project as `project_name`.
pub(super) fn select_with_project(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => SELECT_WITH_PROJECT_SQLITE,
        Dialect::Postgres => SELECT_WITH_PROJECT_POSTGRES,
    }
}

fn from_row(row: &dyn Row) -> Result<Pause, StoreError> {
    let corrupt = |detail: String| StoreError::corrupt(TABLE, detail);
    let options = row.text("options")?;
    let metadata = row.opt_text("metadata")?;
    Ok(Pause {
        pause_id: row.uuid("id")?,
        status: row.text("status")?.parse().map_err(corrupt)?,
        channel: row.text("channel")?.parse().map_err(corrupt)?,
        recipient: row.text("recipient")?,
        message: row.text("message")?,
        options: serde_json::from_str(&options).map_err(|e| corrupt(format!("options: {e}")))?,
        allow_text_response: row.int("allow_text_response")? != 0,
        timeout_default: row.opt_text("timeout_default")?,
        response_choice: row.opt_text("response_choice")?,
        response_text: row.opt_text("response_text")?,
        response_at: row.opt_time("response_at")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        metadata: metadata
            .map(|m| serde_json::from_str::<Map<String, Value>>(&m))
            .transpose()
            .map_err(|e| corrupt(format!("metadata: {e}")))?,
        webhook_url: row.opt_text("webhook_url")?,
        delivery: delivery_from_row(row)?,
        receipt: None,
        approvers: super::approvers::from_json(row.opt_text("approvers")?)?,
        quorum: match row.opt_text("quorum_option")? {
            Some(option) => Some(Quorum {
                option,
                count: row.count("quorum_count")?,
            }),
            None => None,
        },
        remind_every_seconds: row
            .opt_int("remind_every_seconds")?
            .map(|s| u64::try_from(s).map_err(|e| corrupt(format!("remind_every_seconds: {e}"))))
            .transpose()?,
    })
}

fn delivery_from_row(row: &dyn Row) -> Result<Option<Delivery>, StoreError> {
    let Some(status) = row.opt_text("delivery_status")? else {
        return Ok(None);
    };
    Ok(Some(Delivery {
        status: status
            .parse()
            .map_err(|e: String| StoreError::corrupt("deliveries", e))?,
        attempts: row.count("delivery_attempts")?,
        last_error: row.opt_text("delivery_last_error")?,
    }))
}

pub(super) fn with_project(row: &dyn Row) -> Result<(ProjectId, Pause), StoreError> {
    Ok((row.uuid("project_id")?.into(), from_row(row)?))
}

impl Conn {
    /// The project's pause with this id.
    pub async fn pause(
        &mut self,
        project_id: ProjectId,
        id: PauseId,
    ) -> Result<Option<Pause>, StoreError> {
        let sql = format!(
            "{} WHERE p.id = $1 AND p.project_id = $2",
            select(self.dialect())
        );
        self.fetch_optional(
            TABLE,
            &sql,
            args![&id.to_string(), &project_id.to_string()],
            from_row,
        )
        .await
    }

    /// The pause with this id and the project it belongs to. Only for callers that proved
    /// their right to it some other way (a signed link, a claimed delivery).
    pub async fn pause_anywhere(
        &mut self,
        id: PauseId,
    ) -> Result<Option<(ProjectId, Pause)>, StoreError> {
        let sql = format!("{} WHERE p.id = $1", select(self.dialect()));
        self.fetch_optional(TABLE, &sql, args![&id.to_string()], with_project)
            .await
    }

    /// The project's pause created with this `Idempotency-Key`.
    pub async fn pause_by_idempotency_key(
        &mut self,
        project_id: ProjectId,
        key: &str,
    ) -> Result<Option<IdempotentPause>, StoreError> {
        let sql = format!(
            "{} WHERE p.project_id = $1 AND p.idempotency_key = $2",
            select(self.dialect())
        );
        self.fetch_optional(TABLE, &sql, args![&project_id.to_string(), key], |row| {
            Ok(IdempotentPause {
                pause: from_row(row)?,
                request_hash: row.opt_text("request_hash")?,
            })
        })
        .await
    }

    /// A page of the project's pauses matching `filter`, newest first, strictly older
    /// than the pause `before`.
    pub async fn pauses(
        &mut self,
        project_id: ProjectId,
        filter: &PauseFilter,
        before: Option<PauseId>,
        limit: u32,
    ) -> Result<Vec<Pause>, StoreError> {
        let query = list_query(self.dialect(), project_id, filter, before, limit);
        self.fetch_all(TABLE, query.sql(), &query.args(), from_row)
            .await
    }

    /// The project's pauses with these ids (those that exist).
    pub async fn pauses_with_ids(
        &mut self,
        project_id: ProjectId,
        ids: &[PauseId],
    ) -> Result<Vec<Pause>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = pauses_with_ids_query(self.dialect(), project_id, ids);
        self.fetch_all(TABLE, query.sql(), &query.args(), from_row)
            .await
    }

    /// Pending pauses whose deadline has passed at `now`, earliest first.
    pub async fn pauses_due(
        &mut self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(ProjectId, PauseId)>, StoreError> {
        self.fetch_all(
            TABLE,
            "SELECT project_id, id FROM pauses \
             WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
            args![now, limit],
            |row| Ok((row.uuid("project_id")?.into(), row.uuid("id")?.into())),
        )
        .await
    }

    /// The earliest deadline of any pending pause.
    pub async fn next_expiry(&mut self) -> Result<Option<Timestamp>, StoreError> {
        self.fetch_one(
            TABLE,
            "SELECT MIN(expires_at) AS next FROM pauses WHERE status = 'pending'",
            &[],
            |row| row.opt_time("next"),
        )
        .await
    }
}

/// A new pause's rows, built before its write reaches the writer (see [`Draft`]).
pub struct PreparedPause {
    /// The pause as stored.
    pub pause: Pause,
    /// The keys of the notices leased for this server's delivery worker.
    pub handed: Vec<DeliveryKey>,
    /// The pause's row: run within the write when it has an idempotency key.
    row: Deferred,
    checked: bool,
    /// Its approvers and notices; the caller adds its audit event and change.
    pub draft: Draft,
}

impl PreparedPause {
    /// A new pending pause, its approvers and their notices. With `handover`, the notices
    /// due now are leased until then, for this server's delivery worker; their keys are
    /// in [`PreparedPause::handed`].
    pub fn new(
        project_id: ProjectId,
        pause: &NewPause,
        (created_at, expires_at): (Timestamp, Timestamp),
        idempotency: Option<&Idempotency>,
        handover: Option<Timestamp>,
    ) -> PreparedPause {
        // The id carries the creation time, which lets a time filter search a range of ids.
        let id = PauseId::at(created_at);
        let options = Value::from(pause.options.as_slice().to_vec()).to_string();
        let metadata = pause
            .metadata
            .as_ref()
            .map(|m| Value::Object(m.clone()).to_string());
        let webhook_url = pause.webhook_url.as_ref().map(|u| u.to_string());
        let (id_text, project_text) = (id.to_string(), project_id.to_string());
        let remind_every = pause
            .remind_every
            .map(|every| i64::try_from(every.as_secs()).unwrap_or(i64::MAX));
        let args: &[Arg<'_>] = args![
            &id_text,
            &project_text,
            PauseStatus::Pending.as_str(),
            pause.channel().as_str(),
            pause.recipient().as_str(),
            &pause.message,
            &options,
            pause.allow_text_response,
            pause.timeout_default.as_deref(),
            created_at,
            expires_at,
            metadata.as_deref(),
            webhook_url.as_deref(),
            idempotency.map(|i| i.key.as_str()),
            idempotency.map(|i| i.request_hash.as_str()),
            pause.quorum.as_ref().map(|q| q.option.as_str()),
            pause.quorum.as_ref().map(|q| i64::from(q.count)),
            remind_every,
        ];
        let row = Deferred {
            sql: "INSERT INTO pauses (id, project_id, status, channel, recipient, message, \
                     options, allow_text_response, timeout_default, created_at, expires_at, \
                     metadata, webhook_url, idempotency_key, request_hash, quorum_option, \
                     quorum_count, remind_every_seconds) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18)"
                .into(),
            args: args.iter().copied().map(OwnedArg::from).collect(),
        };
        let mut draft = Draft::default();
        let (approvers, handed) =
            draft.insert_approvers(project_id, id, pause, (created_at, expires_at), handover);
        let pause = Pause {
            pause_id: id.into(),
            status: PauseStatus::Pending,
            channel: pause.channel(),
            recipient: pause.recipient().as_str().to_owned(),
            message: pause.message.clone(),
            options: pause.options.as_slice().to_vec(),
            allow_text_response: pause.allow_text_response,
            timeout_default: pause.timeout_default.clone(),
            response_choice: None,
            response_text: None,
            response_at: None,
            created_at: millis(created_at),
            expires_at: millis(expires_at),
            metadata: pause.metadata.clone(),
            webhook_url,
            delivery: Some(Delivery {
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_error: None,
            }),
            receipt: None,
            approvers,
            quorum: pause.quorum.clone(),
            remind_every_seconds: pause.remind_every.map(|every| every.as_secs()),
        };
        PreparedPause {
            pause,
            handed,
            row,
            checked: idempotency.is_some(),
            draft,
        }
    }
}

impl Tx {
    /// Stores a prepared pause with everything its draft holds; returns the pause and the
    /// keys of its leased notices.
    pub async fn insert_pause(
        &mut self,
        prepared: PreparedPause,
    ) -> Result<(Pause, Vec<DeliveryKey>), StoreError> {
        let PreparedPause {
            pause,
            handed,
            row,
            checked,
            draft,
        } = prepared;
        if checked {
            // Two requests with one key may race: the loser's insert must fail within its
            // own request, which a deferred statement would not.
            let args: Vec<Arg<'_>> = row.args.iter().map(OwnedArg::as_arg).collect();
            self.execute(&row.sql, &args).await?;
        } else {
            self.defer_owned(row);
        }
        self.include(draft);
        Ok((pause, handed))
    }

    /// Moves the pause from `pending` to the outcome's status. None when it was not
    /// pending, or the outcome is not allowed at `now` (a response after `expires_at`, a
    /// timeout before it).
    pub async fn finish_pause(
        &mut self,
        project_id: ProjectId,
        id: PauseId,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Option<Pause>, StoreError> {
        let (choice, text) = match outcome {
            Outcome::Responded(decision) => {
                (Some(decision.choice.as_str()), decision.text.as_deref())
            }
            Outcome::TimedOut | Outcome::Cancelled => (None, None),
        };
        let updated = self
            .execute(
                "UPDATE pauses \
                 SET status = $3, \
                     response_choice = CASE WHEN $3 = 'timed_out' THEN timeout_default ELSE $4 END, \
                     response_text = $5, \
                     response_at = $6 \
                 WHERE id = $1 AND project_id = $2 AND status = 'pending' \
                   AND ($3 <> 'responded' OR expires_at > $6) \
                   AND ($3 <> 'timed_out' OR expires_at <= $6)",
                args![
                    &id.to_string(),
                    &project_id.to_string(),
                    outcome.status().as_str(),
                    choice,
                    text,
                    now
                ],
            )
            .await?;
        if updated == 0 {
            return Ok(None);
        }
        self.pause(project_id, id).await
    }
}

impl Store {
    /// The project's pause with this id.
    pub async fn pause(
        &self,
        project_id: ProjectId,
        id: PauseId,
    ) -> Result<Option<Pause>, StoreError> {
        self.read(move |conn| Box::pin(conn.pause(project_id, id)))
            .await
    }

    /// The pause with this id and its project, whatever the project.
    pub async fn pause_anywhere(
        &self,
        id: PauseId,
    ) -> Result<Option<(ProjectId, Pause)>, StoreError> {
        self.read(move |conn| Box::pin(conn.pause_anywhere(id)))
            .await
    }

    /// How many pauses are pending, all projects together (read through the index of
    /// pending pauses, so its cost grows with them, not with every pause ever stored).
    pub async fn pending_count(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            Box::pin(async move {
                conn.fetch_one(
                    TABLE,
                    "SELECT COUNT(*) AS n FROM pauses WHERE status = 'pending'",
                    &[],
                    |row| row.int("n"),
                )
                .await
            })
        })
        .await
    }

    /// A page of the project's pauses matching `filter`, newest first.
    pub async fn pauses(
        &self,
        project_id: ProjectId,
        filter: PauseFilter,
        before: Option<PauseId>,
        limit: u32,
    ) -> Result<Vec<Pause>, StoreError> {
        self.read(move |conn| {
            Box::pin(async move { conn.pauses(project_id, &filter, before, limit).await })
        })
        .await
    }
}

/// `at` to the millisecond, as stored.
pub(super) fn millis(at: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(at.as_millisecond()).unwrap_or(at)
}

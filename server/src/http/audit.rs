//! `/v1/audit`: query the project's audit events, export them all, verify the chain.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{stream, StreamExt};
use pausepoint_api::proof::{BundleHeader, BundlePause, Checkpoint, CheckpointPage, Jwks, BUNDLE};
use pausepoint_api::ErrorBody;
use pausepoint_api::{AuditEvent, AuditEventKind, AuditPage, VerifyReport};
use serde::Deserialize;

use super::error::documented::{Invalid, Unauthorized, Unavailable};
use super::error::ApiError;
use super::extract::{time, Caller, QueryParams};
use super::pauses::page_size;
use super::AppState;
use crate::domain::audit::Walk;
use crate::domain::proof::ProofError;
use crate::ids::PauseId;
use crate::store::audit::AuditFilter;
use crate::store::pauses::PauseFilter;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
/// Events read per round trip while exporting.
const EXPORT_BATCH: u32 = 500;
const CSV_COLUMNS: [&str; 9] = [
    "seq",
    "event_id",
    "occurred_at",
    "event",
    "pause_id",
    "actor",
    "data",
    "prev_hash",
    "hash",
];

/// Which events: every field narrows.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only the events of this pause.
    pause_id: Option<String>,
    /// Only events of this kind.
    #[param(value_type = Option<AuditEventKind>)]
    event: Option<String>,
    /// Only events by this actor, as events name it (`system`, `recipient:+1…`).
    actor: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// How many, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Which events to export, and how.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only the events of this pause.
    pause_id: Option<String>,
    /// Only events of this kind.
    #[param(value_type = Option<AuditEventKind>)]
    event: Option<String>,
    /// Only events by this actor, as events name it (`system`, `recipient:+1…`).
    actor: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// `jsonl` (the default) or `csv`.
    #[param(pattern = "^(jsonl|csv)$")]
    format: Option<String>,
    /// The whole log as a bundle: the public keys first, the pauses after.
    bundle: Option<bool>,
}

/// The filter the query's parameters describe.
fn filter(
    pause_id: Option<&str>,
    event: Option<&str>,
    actor: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<AuditFilter, ApiError> {
    Ok(AuditFilter {
        pause_id: pause_id
            .map(str::parse::<PauseId>)
            .transpose()
            .map_err(|_| ApiError::invalid("pause_id", "pause_id is not a pause id"))?,
        event: event
            .map(str::parse::<AuditEventKind>)
            .transpose()
            .map_err(|message| ApiError::invalid("event", message))?,
        actor: actor.map(str::to_owned),
        since: time("since", since)?,
        until: time("until", until)?,
    })
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        filter(
            self.pause_id.as_deref(),
            self.event.as_deref(),
            self.actor.as_deref(),
            self.since.as_deref(),
            self.until.as_deref(),
        )
    }
}

impl ExportQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        filter(
            self.pause_id.as_deref(),
            self.event.as_deref(),
            self.actor.as_deref(),
            self.since.as_deref(),
            self.until.as_deref(),
        )
    }
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    operation_id = "list_audit_events",
    summary = "Read the audit log, oldest first",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events, oldest first", body = AuditPage),
        Unauthorized,
        Invalid,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `GET /v1/audit?pause_id=&event=&since=&until=&limit=&cursor=`, oldest first.
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = query.filter()?;
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = query
        .cursor
        .as_deref()
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| ApiError::invalid("cursor", "the cursor is not one this API returned"))?;
    let mut data = state
        .app
        .store()
        .audit_events(caller.project_id(), filter, after, limit + 1)
        .await?;
    let next_cursor = if data.len() > limit as usize {
        data.truncate(limit as usize);
        data.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(Json(AuditPage { data, next_cursor }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Jsonl,
    Csv,
}

#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "audit",
    operation_id = "export_audit_log",
    summary = "Export the audit log",
    params(ExportQuery),
    responses(
        (status = 200, description = "Every matching event, one JSON object per line (`jsonl`, the default; with `bundle=true`, a header line with the public keys first and each pause after), or CSV with a header row", content((String = "application/x-ndjson"), (String = "text/csv"))),
        Unauthorized,
        Invalid,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `GET /v1/audit/export?format=jsonl|csv` (plus the query's filters): every matching
/// event, streamed in batches so an export of any size holds no connection for long.
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ExportQuery>,
) -> Result<Response, ApiError> {
    let filter = query.filter()?;
    let format = match query.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => Format::Jsonl,
        "csv" => Format::Csv,
        other => {
            return Err(ApiError::invalid(
                "format",
                format!("unknown format {other:?}: use jsonl or csv"),
            ))
        }
    };
    let bundle = query.bundle.unwrap_or(false);
    if bundle && (format != Format::Jsonl || filter != AuditFilter::default()) {
        // (actor is a filter too: a bundle is the whole log.)
        return Err(ApiError::invalid(
            "bundle",
            "a bundle is the whole log as JSON lines: leave out format, pause_id, event, actor, since and until",
        ));
    }
    let store = state.app.store().clone();
    let pauses_store = store.clone();
    let project_id = caller.project_id();
    let header = bundle
        .then(|| {
            let header = BundleHeader {
                bundle: BUNDLE.into(),
                project_id: project_id.into(),
                exported_at: crate::domain::pauses::now(),
                keys: state.app.checkpoints().keys().public(),
            };
            serde_json::to_vec(&header).map(|mut line| {
                line.push(b'\n');
                Bytes::from(line)
            })
        })
        .transpose()
        .map_err(|e| ApiError::internal(&e))?;
    // State: the last seq sent, or None before the first batch; Some(-1) once done.
    let batches = stream::unfold(Some(None::<i64>), move |position| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let after = position?;
            let events = match store
                .audit_events(project_id, filter, after, EXPORT_BATCH)
                .await
            {
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed part-way");
                    return Some((Err(std::io::Error::other("audit export failed")), None));
                }
            };
            let first = after.is_none();
            let next = if events.len() < EXPORT_BATCH as usize {
                None
            } else {
                events.last().map(|e| Some(e.seq))
            };
            if events.is_empty() && !(first && format == Format::Csv) {
                return None;
            }
            Some((render(format, &events, first), next))
        }
    });
    let pauses = stream::unfold(
        bundle.then_some(None::<crate::ids::PauseId>),
        move |position| {
            let store = pauses_store.clone();
            async move {
                let before = position?;
                let page = match store
                    .pauses(project_id, PauseFilter::default(), before, EXPORT_BATCH)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "audit export failed part-way");
                        return Some((Err(std::io::Error::other("audit export failed")), None));
                    }
                };
                let last = page.last()?.pause_id;
                let next = (page.len() == EXPORT_BATCH as usize)
                    .then_some(Some(crate::ids::PauseId::from(last)));
                let mut out = Vec::new();
                for pause in page {
                    if let Err(e) = serde_json::to_writer(&mut out, &BundlePause { pause }) {
                        return Some((Err(e.into()), None));
                    }
                    out.push(b'\n');
                }
                Some((Ok(Bytes::from(out)), next))
            }
        },
    );
    // Fused: a body may be polled again after its end (the gzip layer does, for an empty
    // export), and an unfold polled after its end panics.
    let batches = stream::iter(header.map(Ok))
        .chain(batches)
        .chain(pauses)
        .fuse();
    let (content_type, extension) = match format {
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"pausepoint-audit.{extension}\""),
            ),
        ],
        Body::from_stream(batches),
    )
        .into_response())
}

/// One batch of events in the export format; CSV starts with its header.
fn render(format: Format, events: &[AuditEvent], first: bool) -> Result<Bytes, std::io::Error> {
    match format {
        Format::Jsonl => {
            let mut out = Vec::new();
            for event in events {
                serde_json::to_writer(&mut out, event)?;
                out.push(b'\n');
            }
            Ok(out.into())
        }
        Format::Csv => {
            let mut writer = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            if first {
                writer.write_record(CSV_COLUMNS)?;
            }
            for e in events {
                writer.write_record([
                    e.seq.to_string(),
                    e.event_id.to_string(),
                    pausepoint_api::time::format(&e.occurred_at),
                    e.event.to_string(),
                    e.pause_id.map(|id| id.to_string()).unwrap_or_default(),
                    e.actor.clone(),
                    e.data.to_string(),
                    e.prev_hash.clone(),
                    e.hash.clone(),
                ])?;
            }
            writer
                .into_inner()
                .map(Bytes::from)
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// Walk from the first event, not from the newest valid checkpoint.
    full: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    operation_id = "verify_audit_log",
    summary = "Verify the audit chain",
    params(VerifyQuery),
    responses(
        (status = 200, description = "What the walk found; `ok` is false when the chain, a checkpoint or a pause row does not hold", body = VerifyReport),
        Unauthorized,
        Invalid,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `GET /v1/audit/verify[?full=true]`: walks the project's hash chain from its newest
/// valid checkpoint (or, with `full`, from the start), checks every checkpoint's
/// signature against it, and the rows of the pauses it walks (with `full`, of every
/// pause) against their events.
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<VerifyQuery>,
) -> Result<Json<VerifyReport>, ApiError> {
    let walk = match query.full.unwrap_or(false) {
        true => Walk::Full,
        false => Walk::SinceCheckpoint,
    };
    let report = crate::domain::audit::verify(
        state.app.store(),
        state.app.checkpoints(),
        caller.project_id(),
        walk,
    )
    .await?;
    Ok(Json(report))
}

#[utoipa::path(
    get,
    path = "/v1/audit/public-key",
    tag = "audit",
    operation_id = "audit_public_keys",
    summary = "The audit public keys",
    responses(
        (status = 200, description = "Every key that ever signed checkpoints and receipts, as a JWK set, the signing one first", body = Jwks)
    )
)]
/// `GET /v1/audit/public-key`: every public key that ever signed checkpoints and
/// receipts, as a JWK set, the one that signs now first. Public: no key needed.
pub async fn public_key(State(state): State<AppState>) -> Json<Jwks> {
    Json(state.app.checkpoints().keys().public())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckpointsQuery {
    /// How many, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/audit/checkpoints",
    tag = "audit",
    operation_id = "list_checkpoints",
    summary = "List signed checkpoints, oldest first",
    params(CheckpointsQuery),
    responses(
        (status = 200, description = "A page of checkpoints", body = CheckpointPage),
        Unauthorized,
        Invalid,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `GET /v1/audit/checkpoints?limit=&cursor=`: the project's signed checkpoints, oldest
/// first, as its `audit.checkpoint` events carry them.
pub async fn checkpoints(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<CheckpointsQuery>,
) -> Result<Json<CheckpointPage>, ApiError> {
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = query
        .cursor
        .as_deref()
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| ApiError::invalid("cursor", "the cursor is not one this API returned"))?;
    let filter = AuditFilter {
        event: Some(AuditEventKind::AuditCheckpoint),
        ..AuditFilter::default()
    };
    let events = state
        .app
        .store()
        .audit_events(caller.project_id(), filter, after, limit + 1)
        .await?;
    let next_cursor = (events.len() > limit as usize)
        .then(|| events.get(limit as usize - 1).map(|e| e.seq.to_string()))
        .flatten();
    let data = events
        .iter()
        .take(limit as usize)
        .filter_map(|e| Checkpoint::from_json(&e.data))
        .collect();
    Ok(Json(CheckpointPage { data, next_cursor }))
}

#[utoipa::path(
    post,
    path = "/v1/audit/checkpoints",
    tag = "audit",
    operation_id = "create_checkpoint",
    summary = "Sign the audit log's head now",
    responses(
        (status = 201, description = "A new checkpoint of the head", body = Checkpoint),
        (status = 200, description = "The head already has a checkpoint: that one", body = Checkpoint),
        (status = 409, description = "The log is empty (`audit_log_empty`), or the chain does not hold (`audit_chain_broken`)", body = ErrorBody),
        Unauthorized,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `POST /v1/audit/checkpoints`: signs the project's chain head now (201), or gives the
/// checkpoint that already covers it (200), for an auditor to keep outside the database.
pub async fn checkpoint_now(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Checkpoint>), ApiError> {
    let made = state
        .app
        .checkpoints()
        .make_now(caller.project_id(), crate::domain::pauses::now())
        .await;
    match made {
        Ok(Some((checkpoint, new))) => Ok((
            if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(checkpoint),
        )),
        Ok(None) => Err(ApiError::conflict(
            "audit_log_empty",
            "the project's audit log is empty: there is nothing to checkpoint yet",
        )),
        Err(ProofError::Tampered(report)) => Err(ApiError::conflict(
            "audit_chain_broken",
            format!(
                "the audit chain does not hold at event {}: {}; nothing is signed over it",
                report.first_bad_seq.unwrap_or(0),
                report.problem.as_deref().unwrap_or("")
            ),
        )),
        Err(ProofError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

//! The console's handlers: each reads what the API would, as the signed-in key, and
//! renders a page. Every change is a POST carrying the session's CSRF token, and ends in a
//! redirect (or, for a new key, the one page that shows it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{
    ConnectInfo, Extension, FromRequest, FromRequestParts, Path, RawQuery, Request, State,
};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::Stream;
use jiff::{SignedDuration, Timestamp};
use maud::Markup;
use pausepoint_api::proof::Checkpoint;
use pausepoint_api::{AuditEventKind, Channel, PauseStatus};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::session::{self, Operator, BASE, SIGN_IN_COOKIE};
use super::views::{self, AuditFilters, Chrome, PauseFilters, Section};
use crate::domain::pauses::PauseError;
use crate::domain::webhooks::ResendError;
use crate::http::extract::QueryParams;
use crate::http::AppState;
use crate::ids::{KeyId, PauseId};
use crate::store::audit::AuditFilter;
use crate::store::pauses::PauseFilter;

/// How many pauses a page of the list shows.
const PAGE: u32 = 50;
/// How many events a page of the audit log shows.
const AUDIT_PAGE: u32 = 100;
/// The most events a pause's timeline shows.
const TIMELINE_EVENTS: u32 = 500;

/// A page with its status.
fn html(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// 500, logged; the page says only that something failed.
pub fn failure(error: &dyn std::error::Error) -> Response {
    tracing::error!(error = %error, "console: a page failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        views::problem(
            "Something went wrong",
            "Something went wrong on our side. Try again in a minute.",
        ),
    )
}

/// Why a request is not answered with its page: each renders the page that says so.
enum Refusal {
    /// The body is not a form this console sends.
    NotAForm,
    /// The form lacks the session's CSRF token.
    Forged,
    /// Nothing of this project by that id.
    NotFound(&'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotAForm => html(
                StatusCode::BAD_REQUEST,
                views::problem("Not a form", "The request was not a form this page sends."),
            ),
            Refusal::Forged => html(
                StatusCode::FORBIDDEN,
                views::problem(
                    "Refused",
                    "This form did not come from this console's own page (or it is too old). \
                     Go back, reload the page and try again.",
                ),
            ),
            Refusal::NotFound(what) => {
                html(StatusCode::NOT_FOUND, views::problem("Not found", what))
            }
        }
    }
}

const NO_PAUSE: Refusal = Refusal::NotFound("There is no such pause in this project.");
const NO_KEY: Refusal = Refusal::NotFound("There is no such key in this project.");

/// A form body.
fn form<T: DeserializeOwned>(body: &Bytes) -> Result<T, Refusal> {
    serde_urlencoded::from_bytes(body).map_err(|_| Refusal::NotAForm)
}

/// A form that is its CSRF token alone (a button: cancel, resend, revoke, sign out).
#[derive(Deserialize)]
pub struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form posted by the signed-in operator from one of the console's own pages: it carries
/// the session's CSRF token. Anything else is refused before the handler runs (a request
/// without a session goes to sign-in).
pub struct Posted<T> {
    pub operator: Operator,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Posted<T>, Response> {
        let (mut parts, body) = request.into_parts();
        let operator = Operator::from_request_parts(&mut parts, state).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let CsrfField { csrf } = form(&body).map_err(IntoResponse::into_response)?;
        if !operator.csrf_ok(&csrf) {
            return Err(Refusal::Forged.into_response());
        }
        let form = form(&body).map_err(IntoResponse::into_response)?;
        Ok(Posted { operator, form })
    }
}

fn chrome<'a>(operator: &'a Operator, section: Section) -> Chrome<'a> {
    Chrome {
        project: &operator.project,
        key_name: &operator.caller.key.name,
        csrf: &operator.csrf,
        section,
    }
}

/// `GET /console`: the list of pauses.
pub async fn home() -> Redirect {
    Redirect::to(&format!("{BASE}/pauses"))
}

#[derive(Deserialize, Default)]
struct Next {
    next: Option<String>,
}

/// `GET /console/sign-in?next=`: the form, tied to this browser by a cookie of its own.
pub async fn sign_in_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let nonce = session::cookie(&headers, SIGN_IN_COOKIE)
        .filter(|n| n.len() == 43)
        .map_or_else(session::random_token, str::to_owned);
    let cookie = session::set_cookie(&state, SIGN_IN_COOKIE, &nonce, Duration::from_secs(3600));
    let asked: Next = query_of(raw.as_deref());
    let next = asked.next.as_deref().and_then(session::safe_next);
    (
        [(SET_COOKIE, cookie)],
        html(StatusCode::OK, views::sign_in(&nonce, next, None)),
    )
        .into_response()
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// `POST /console/sign-in`: the key exchanged for a session cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0 .0.ip());
    let nonce = session::cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if let Some(wait) = state.sign_ins.wait(client) {
        let minutes = wait.as_secs().div_ceil(60);
        let mut response = html(
            StatusCode::TOO_MANY_REQUESTS,
            views::sign_in(
                nonce,
                None,
                Some(&format!(
                    "Too many failed sign-ins from your address. Try again in {minutes} minute(s)."
                )),
            ),
        );
        if let Ok(seconds) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(RETRY_AFTER, seconds);
        }
        return response;
    }
    let signed: SignInForm = match form(&body) {
        Ok(f) => f,
        Err(refusal) => return refusal.into_response(),
    };
    let next = signed.next.as_deref().and_then(session::safe_next);
    if nonce.is_empty() || !session::same_token(nonce, &signed.csrf) {
        return Refusal::Forged.into_response();
    }
    match session::sign_in(&state, &signed.key).await {
        Ok(Some(cookie)) => {
            state.sign_ins.succeeded(client);
            let clear = session::set_cookie(&state, SIGN_IN_COOKIE, "", Duration::ZERO);
            let to = next.map_or_else(|| format!("{BASE}/pauses"), str::to_owned);
            let mut response = Redirect::to(&to).into_response();
            response.headers_mut().append(SET_COOKIE, cookie);
            response.headers_mut().append(SET_COOKIE, clear);
            response
        }
        Ok(None) => {
            state.sign_ins.failed(client);
            tracing::warn!(%client, "console: a sign-in with a key that is not valid");
            html(
                StatusCode::UNAUTHORIZED,
                views::sign_in(
                    nonce,
                    next,
                    Some("That key is not valid, or it has been revoked."),
                ),
            )
        }
        Err(e) => failure(&e),
    }
}

/// `POST /console/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    Posted { operator, .. }: Posted<CsrfField>,
) -> Response {
    match session::sign_out(&state, &operator).await {
        Ok(clear) => {
            let mut response = Redirect::to(&format!("{BASE}/sign-in")).into_response();
            response.headers_mut().append(SET_COOKIE, clear);
            response
        }
        Err(e) => failure(&e),
    }
}

/// The start of the UTC day `raw` (`YYYY-MM-DD`), or of the day after it.
fn day(raw: &str, field: &str, next: bool) -> Result<Option<Timestamp>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let date: jiff::civil::Date = raw
        .parse()
        .map_err(|_| format!("{field} must be a date such as 2026-01-31"))?;
    let start = date
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| e.to_string())?
        .timestamp();
    Ok(Some(if next {
        start + SignedDuration::from_hours(24)
    } else {
        start
    }))
}

/// The store's filter for the form's, or why the form does not make one.
fn pause_filter(filters: &PauseFilters) -> Result<(PauseFilter, Option<PauseId>), String> {
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = PauseFilter {
        status: text(&filters.status)
            .map(|s| s.parse::<PauseStatus>())
            .transpose()?,
        channel: text(&filters.channel)
            .map(|s| s.parse::<Channel>())
            .transpose()?,
        since: day(filters.since.trim(), "Created from", false)?,
        until: day(filters.until.trim(), "Created to", true)?,
        recipient: text(&filters.recipient),
        text: text(&filters.q).map(|q| q.chars().take(200).collect()),
    };
    let before = text(&filters.cursor)
        .map(|c| c.parse::<PauseId>())
        .transpose()
        .map_err(|_| "that page of the list does not exist".to_owned())?;
    Ok((filter, before))
}

fn query_of<T: DeserializeOwned + Default>(raw: Option<&str>) -> T {
    serde_urlencoded::from_str(raw.unwrap_or_default()).unwrap_or_default()
}

/// `GET /console/pauses`: the project's pauses, newest first, filtered.
pub async fn pauses(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let filters: PauseFilters = query_of(raw.as_deref());
    let chrome = chrome(&operator, Section::Pauses);
    let (filter, before) = match pause_filter(&filters) {
        Ok(f) => f,
        Err(error) => {
            return html(
                StatusCode::UNPROCESSABLE_ENTITY,
                views::pauses(&chrome, &filters, &[], None, Some(&error)),
            )
        }
    };
    let project = operator.caller.project_id();
    match state
        .app
        .store()
        .pauses(project, filter, before, PAGE + 1)
        .await
    {
        Ok(mut list) => {
            let next = (list.len() > PAGE as usize).then(|| {
                list.truncate(PAGE as usize);
                list.last()
                    .map(|p| p.pause_id.to_string())
                    .unwrap_or_default()
            });
            html(
                StatusCode::OK,
                views::pauses(&chrome, &filters, &list, next, None),
            )
        }
        Err(e) => failure(&e),
    }
}

/// How long the live list waits after a change for more to come, so a burst of creates
/// sends one update.
const SETTLE: Duration = Duration::from_millis(250);

/// `GET /console/pauses/live`: server-sent events, each the rows of the list again when
/// this project's pauses change. Ends when the session does.
pub async fn live(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let filters: PauseFilters = query_of(raw.as_deref());
    let Ok((filter, _)) = pause_filter(&filters) else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let stream = rows_stream(state, operator, filter);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
        .into_response()
}

struct Live {
    state: AppState,
    operator: Operator,
    filter: PauseFilter,
    activity: tokio::sync::watch::Receiver<u64>,
    last: Option<String>,
}

fn rows_stream(
    state: AppState,
    operator: Operator,
    filter: PauseFilter,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut activity = state.app.store().hub().activity();
    activity.mark_unchanged();
    let live = Live {
        state,
        operator,
        filter,
        activity,
        last: None,
    };
    futures_util::stream::unfold(live, |mut live| async move {
        loop {
            tokio::select! {
                changed = live.activity.changed() => if changed.is_err() { return None },
                () = live.state.stop.cancelled() => return None,
            }
            tokio::time::sleep(SETTLE).await;
            live.activity.mark_unchanged();
            if !live.operator.still_signed_in(&live.state).await {
                return None;
            }
            let project = live.operator.caller.project_id();
            let list = match live
                .state
                .app
                .store()
                .pauses(project, live.filter.clone(), None, PAGE)
                .await
            {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e, "console: the live list could not read pauses");
                    continue;
                }
            };
            let rows = views::pause_rows(&list).into_string();
            // Another project's change, or one the list does not show: nothing to send.
            if live.last.as_deref() == Some(rows.as_str()) {
                continue;
            }
            live.last = Some(rows.clone());
            return Some((Ok(Event::default().event("rows").data(rows)), live));
        }
    })
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

/// What a redirect after a change says, from a fixed list (nothing a link can make up).
fn done_notice(done: Option<&str>) -> Option<(bool, &'static str)> {
    Some(match done? {
        "cancelled" => (true, "The pause is cancelled."),
        "not-pending" => (false, "The pause was already decided; nothing was changed."),
        "resent" => (true, "The webhook event is queued to be sent again."),
        "not-failed" => (false, "Only a failed webhook event can be resent."),
        "revoked" => (true, "The key is revoked: it no longer works anywhere."),
        _ => return None,
    })
}

fn pause_id(raw: &str) -> Result<PauseId, Refusal> {
    raw.parse().map_err(|_| NO_PAUSE)
}

/// `GET /console/pauses/{id}`: the pause's timeline.
pub async fn timeline(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let id = match pause_id(&id) {
        Ok(id) => id,
        Err(refusal) => return refusal.into_response(),
    };
    let project = operator.caller.project_id();
    let pause = match state.app.pauses().get(project, id).await {
        Ok(pause) => pause,
        Err(PauseError::NotFound) => return NO_PAUSE.into_response(),
        Err(e) => return failure(&e),
    };
    let store = state.app.store();
    let filter = AuditFilter {
        pause_id: Some(id),
        ..AuditFilter::default()
    };
    let events = match store
        .audit_events(project, filter, None, TIMELINE_EVENTS)
        .await
    {
        Ok(events) => events,
        Err(e) => return failure(&e),
    };
    let webhooks = match crate::domain::webhooks::deliveries(store, project, id).await {
        Ok(webhooks) => webhooks,
        Err(e) => return failure(&e),
    };
    let done: Done = query_of(raw.as_deref());
    html(
        StatusCode::OK,
        views::timeline(
            &chrome(&operator, Section::Pauses),
            &pause,
            &events,
            &webhooks,
            done_notice(done.done.as_deref()),
        ),
    )
}

fn back_to_pause(id: PauseId, done: &str) -> Response {
    Redirect::to(&format!("{BASE}/pauses/{id}?done={done}")).into_response()
}

/// `POST /console/pauses/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { operator, .. }: Posted<CsrfField>,
) -> Response {
    let id = match pause_id(&id) {
        Ok(id) => id,
        Err(refusal) => return refusal.into_response(),
    };
    let project = operator.caller.project_id();
    match state
        .app
        .pauses()
        .cancel(project, id, operator.caller.actor())
        .await
    {
        Ok(_) => back_to_pause(id, "cancelled"),
        Err(PauseError::NotFound) => NO_PAUSE.into_response(),
        Err(PauseError::NotPending(_) | PauseError::Expired) => back_to_pause(id, "not-pending"),
        Err(e) => failure(&e),
    }
}

/// `POST /console/pauses/{id}/webhooks/{event_id}/resend`.
pub async fn resend(
    State(state): State<AppState>,
    Path((id, event_id)): Path<(String, String)>,
    Posted { operator, .. }: Posted<CsrfField>,
) -> Response {
    let id = match pause_id(&id) {
        Ok(id) => id,
        Err(refusal) => return refusal.into_response(),
    };
    let project = operator.caller.project_id();
    match crate::domain::webhooks::resend(
        state.app.store(),
        project,
        id,
        event_id,
        Timestamp::now(),
    )
    .await
    {
        Ok(_) => back_to_pause(id, "resent"),
        Err(ResendError::NotFound) => {
            Refusal::NotFound("There is no such webhook event for this pause.").into_response()
        }
        Err(ResendError::NotFailed(_)) => back_to_pause(id, "not-failed"),
        Err(ResendError::Store(e)) => failure(&e),
    }
}

/// `GET /console/audit`: the events, the chain's state and the newest checkpoint.
pub async fn audit(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let filters: AuditFilters = query_of(raw.as_deref());
    let project = operator.caller.project_id();
    let store = state.app.store();
    let mut error = None;
    let event = match filters.event.trim() {
        "" => None,
        name => match serde_json::from_value::<AuditEventKind>(name.into()) {
            Ok(kind) => Some(kind),
            Err(_) => {
                error = Some(format!("{name:?} is not an event of the audit log"));
                None
            }
        },
    };
    let pause = match filters.pause_id.trim() {
        "" => None,
        raw => match raw.parse::<PauseId>() {
            Ok(id) => Some(id),
            Err(_) => {
                error = Some("the pause id is not a pause's id".to_owned());
                None
            }
        },
    };
    let mut day_of = |raw: &str, field: &str, next: bool| {
        day(raw.trim(), field, next).unwrap_or_else(|e| {
            error = Some(e);
            None
        })
    };
    let since = day_of(&filters.since, "From", false);
    let until = day_of(&filters.until, "To", true);
    let after = filters.cursor.trim().parse::<i64>().ok();
    let actor = Some(filters.actor.trim().to_owned()).filter(|a| !a.is_empty());
    let filter = AuditFilter {
        pause_id: pause,
        event,
        actor,
        since,
        until,
    };
    let export_query = export_query(&filter);
    let events = if error.is_some() {
        Vec::new()
    } else {
        match store
            .audit_events(project, filter, after, AUDIT_PAGE + 1)
            .await
        {
            Ok(events) => events,
            Err(e) => return failure(&e),
        }
    };
    let mut events = events;
    let next_query = (events.len() > AUDIT_PAGE as usize).then(|| {
        events.truncate(AUDIT_PAGE as usize);
        let mut next = filters.clone();
        next.cursor = events.last().map(|e| e.seq.to_string()).unwrap_or_default();
        serde_urlencoded::to_string(&next).unwrap_or_default()
    });
    let verify = crate::domain::audit::verify(
        store,
        state.app.checkpoints(),
        project,
        crate::domain::audit::Walk::SinceCheckpoint,
    )
    .await;
    let verify = match verify {
        Ok(report) => Some(report),
        Err(e) => {
            tracing::warn!(error = %e, "console: the chain could not be verified");
            None
        }
    };
    let checkpoint = match store
        .read(move |conn| Box::pin(conn.newest_checkpoint_event(project)))
        .await
    {
        Ok(event) => event.and_then(|e| serde_json::from_value::<Checkpoint>(e.data).ok()),
        Err(e) => return failure(&e),
    };
    let chrome = chrome(&operator, Section::Audit);
    html(
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        views::audit(
            &chrome,
            &views::AuditView {
                events: &events,
                next_query,
                verify: verify.as_ref(),
                checkpoint: checkpoint.as_ref(),
                filters: &filters,
                export_query,
                error: error.as_deref(),
            },
        ),
    )
}

/// The query string of the export of the events `filter` selects.
fn export_query(filter: &AuditFilter) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(pause) = filter.pause_id {
        query.append_pair("pause_id", &pause.to_string());
    }
    if let Some(event) = filter.event {
        query.append_pair("event", event.as_str());
    }
    if let Some(actor) = &filter.actor {
        query.append_pair("actor", actor);
    }
    if let Some(since) = filter.since {
        query.append_pair("since", &since.to_string());
    }
    if let Some(until) = filter.until {
        query.append_pair("until", &until.to_string());
    }
    query.finish()
}

/// `GET /console/audit/export`: the API's export, as the signed-in key.
pub async fn export(
    State(state): State<AppState>,
    operator: Operator,
    query: QueryParams<crate::http::audit::ExportQuery>,
) -> Response {
    match crate::http::audit::export(State(state), operator.caller, query).await {
        Ok(response) => response,
        Err(error) => html(
            error.status(),
            views::problem("Cannot export", error.message()),
        ),
    }
}

/// `GET /console/keys`.
pub async fn keys(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let done: Done = query_of(raw.as_deref());
    keys_page(
        &state,
        &operator,
        None,
        done_notice(done.done.as_deref()),
        StatusCode::OK,
    )
    .await
}

async fn keys_page(
    state: &AppState,
    operator: &Operator,
    made: Option<(&str, &str)>,
    notice: Option<(bool, &str)>,
    status: StatusCode,
) -> Response {
    let project = operator.caller.project_id();
    match state.app.store().keys().await {
        Ok(keys) => {
            let keys: Vec<_> = keys
                .into_iter()
                .filter(|k| k.project_id == project)
                .collect();
            html(
                status,
                views::keys(
                    &chrome(operator, Section::Keys),
                    &keys,
                    operator.caller.key.id,
                    made,
                    notice,
                ),
            )
        }
        Err(e) => failure(&e),
    }
}

/// The form that makes a key.
#[derive(Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    name: String,
}

/// `POST /console/keys`: a new key for this project, shown once.
pub async fn create_key(
    State(state): State<AppState>,
    Posted {
        operator,
        form: posted,
    }: Posted<NewKeyForm>,
) -> Response {
    let name = posted.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return keys_page(
            &state,
            &operator,
            None,
            Some((false, "A key needs a name of 1 to 100 characters.")),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match crate::domain::keys::create_key(
        state.app.store(),
        &operator.project,
        name,
        operator.caller.actor(),
        Timestamp::now(),
    )
    .await
    {
        Ok(made) => {
            keys_page(
                &state,
                &operator,
                Some((&made.record.name, &made.key)),
                None,
                StatusCode::CREATED,
            )
            .await
        }
        Err(e) => failure(&e),
    }
}

/// `POST /console/keys/{id}/revoke`: only a key of this project.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { operator, .. }: Posted<CsrfField>,
) -> Response {
    let project = operator.caller.project_id();
    let Ok(id) = id.parse::<KeyId>() else {
        return NO_KEY.into_response();
    };
    let store = state.app.store();
    match store.read(move |conn| Box::pin(conn.key(id))).await {
        Ok(Some(key)) if key.project_id == project => {}
        Ok(_) => return NO_KEY.into_response(),
        Err(e) => return failure(&e),
    }
    match crate::domain::keys::revoke_key(store, id, operator.caller.actor(), Timestamp::now())
        .await
    {
        // Already revoked: the page shows it so.
        Ok(_) => Redirect::to(&format!("{BASE}/keys?done=revoked")).into_response(),
        Err(e) => failure(&e),
    }
}

/// `GET /console/charts`.
pub async fn charts(State(state): State<AppState>, operator: Operator) -> Response {
    let now = Timestamp::now();
    let since = now - SignedDuration::from_hours(24 * super::charts::DAYS);
    match state
        .app
        .store()
        .activity(operator.caller.project_id(), since)
        .await
    {
        Ok(activity) => html(
            StatusCode::OK,
            views::charts(
                &chrome(&operator, Section::Charts),
                super::charts::all(&activity, now),
            ),
        ),
        Err(e) => failure(&e),
    }
}

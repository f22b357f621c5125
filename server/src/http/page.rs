//! `/r/{token}`: the page a human opens from the message. GET only shows (link scanners
//! and chat unfurlers fetch links too); POST decides. Every answer carries the headers
//! that keep the page and its token private.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::Markup;
use pausepoint_api::{Pause, PauseStatus};
use serde::Deserialize;

use super::AppState;
use crate::domain::links::LinkError;
use crate::domain::pauses::{self, PauseError};
use crate::ids::{PauseId, ProjectId};
use crate::views;

/// An HTML page with the response page's headers.
pub struct Page(pub StatusCode, pub Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (self.0, Html(self.1.into_string())).into_response()
    }
}

/// The headers that keep the page and its token private, on every answer under `/r/`
/// (a refusal of the body by size included).
pub async fn with_page_headers(mut response: Response) -> Response {
    {
        let headers = response.headers_mut();
        let fixed = [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::HeaderName::from_static("x-robots-tag"),
                "noindex, nofollow",
            ),
        ];
        for (name, value) in fixed {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if let Ok(policy) = HeaderValue::from_str(views::content_security_policy()) {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
    }
    response
}

/// A pause opened by a valid link, with the name of the project that asks and the
/// approver the link is for.
struct Opened {
    project_id: ProjectId,
    project: String,
    pause: Pause,
    approver: u32,
}

/// Follows a token to its pause, or to the page that says why not.
async fn open(state: &AppState, token: &str) -> Result<Opened, Page> {
    let target = match state.app.links().verify(token, pauses::now()) {
        Ok(target) => target,
        Err(LinkError::Invalid) => return Err(Page(StatusCode::NOT_FOUND, views::invalid_link())),
        Err(LinkError::Expired) => return Err(Page(StatusCode::GONE, views::expired_link())),
    };
    let store = state.app.store();
    let found = store
        .pause_anywhere(target.pause_id)
        .await
        .map_err(|e| failure(&e))?;
    let Some((project_id, pause)) = found else {
        return Err(Page(StatusCode::NOT_FOUND, views::invalid_link()));
    };
    if pause.approvers.len() <= target.approver as usize {
        return Err(Page(StatusCode::NOT_FOUND, views::invalid_link()));
    }
    let project = store
        .project(project_id)
        .await
        .map_err(|e| failure(&e))?
        .map(|p| p.name)
        .unwrap_or_default();
    Ok(Opened {
        project_id,
        project,
        pause,
        approver: target.approver,
    })
}

fn failure(error: &dyn std::error::Error) -> Page {
    tracing::error!(error = %error, "response page failed");
    Page(
        StatusCode::INTERNAL_SERVER_ERROR,
        views::bad_request(
            "Something went wrong on our side. Please try the link again in a minute.",
        ),
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowQuery {
    /// Preselects this option (the buttons in an email or a Slack message link here).
    choice: Option<String>,
}

#[utoipa::path(
    get,
    path = "/r/{token}",
    tag = "page",
    operation_id = "show_page",
    summary = "The page the human answers on",
    description = "The link in the human's message. Shows the question with a button per option, or what became of it; never decides. The token is signed: it is the only credential.",
    params(("token" = String, Path, description = "The signed link token"), ShowQuery),
    responses(
        (status = 200, description = "The question, or its outcome", content_type = "text/html", body = String),
        (status = 404, description = "The link is not one this server made", content_type = "text/html", body = String),
        (status = 410, description = "The link has expired", content_type = "text/html", body = String)
    )
)]
/// `GET /r/{token}`: the question, or what became of it. Never decides.
pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<ShowQuery>,
    headers: HeaderMap,
) -> Page {
    let opened = match open(&state, &token).await {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let now = pauses::now();
    let pause = &opened.pause;
    if pause.status.is_final() || pause.expires_at <= now {
        return Page(StatusCode::OK, views::decided(pause, &opened.project));
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(e) = state
        .app
        .pauses()
        .record_view(opened.project_id, pause, opened.approver, user_agent)
        .await
    {
        tracing::error!(error = %e, "could not record that a pause was viewed");
    }
    let preselected = query
        .choice
        .as_deref()
        .and_then(|choice| pause.options.iter().find(|o| *o == choice))
        .map(String::as_str);
    Page(
        StatusCode::OK,
        views::question(&views::Question {
            pause,
            project: &opened.project,
            now,
            preselected,
            error: None,
            approver: opened.approver,
        }),
    )
}

/// The page's form: the option tapped, and the note when the pause allows one.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Answer {
    choice: String,
    note: Option<String>,
}

#[utoipa::path(
    post,
    path = "/r/{token}",
    tag = "page",
    operation_id = "answer_page",
    summary = "The human's answer",
    params(("token" = String, Path, description = "The signed link token")),
    request_body(content = Answer, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Recorded: the page says so", content_type = "text/html", body = String),
        (status = 400, description = "The form is not an answer", content_type = "text/html", body = String),
        (status = 404, description = "The link is not one this server made", content_type = "text/html", body = String),
        (status = 410, description = "The link has expired", content_type = "text/html", body = String),
        (status = 409, description = "Already decided: the page shows how", content_type = "text/html", body = String),
        (status = 413, description = "The note is too long", content_type = "text/html", body = String),
        (status = 422, description = "Not one of the options, or a note the pause does not allow: the question again, saying why", content_type = "text/html", body = String)
    )
)]
/// `POST /r/{token}`: the human's tap.
pub async fn answer(State(state): State<AppState>, Path(token): Path<String>, body: Bytes) -> Page {
    let opened = match open(&state, &token).await {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let Ok(answer) = serde_urlencoded::from_bytes::<Answer>(&body) else {
        return Page(
            StatusCode::BAD_REQUEST,
            views::bad_request("Tap one of the answers to respond."),
        );
    };
    let pause = &opened.pause;
    let result = state
        .app
        .pauses()
        .vote(
            opened.project_id,
            PauseId::from(pause.pause_id),
            opened.approver,
            &answer.choice,
            answer.note.as_deref(),
        )
        .await;
    match result {
        Ok(after) => Page(
            StatusCode::OK,
            views::recorded(&after, &opened.project, opened.approver, pauses::now()),
        ),
        Err(PauseError::AlreadyVoted) => {
            let current = match state
                .app
                .store()
                .pause_anywhere(PauseId::from(pause.pause_id))
                .await
            {
                Ok(Some((_, current))) => current,
                Ok(None) => return Page(StatusCode::NOT_FOUND, views::invalid_link()),
                Err(e) => return failure(&e),
            };
            let page = if current.status.is_final() {
                views::decided(&current, &opened.project)
            } else {
                views::already_voted(&current, &opened.project, opened.approver, pauses::now())
            };
            Page(StatusCode::CONFLICT, page)
        }
        Err(PauseError::NotPending(_) | PauseError::Expired) => {
            // Show the state that won, read afresh.
            let current = match state
                .app
                .store()
                .pause_anywhere(PauseId::from(pause.pause_id))
                .await
            {
                Ok(Some((_, current))) => current,
                Ok(None) => return Page(StatusCode::NOT_FOUND, views::invalid_link()),
                Err(e) => return failure(&e),
            };
            let mut shown = current;
            if shown.status == PauseStatus::Pending {
                shown.status = PauseStatus::TimedOut;
            }
            Page(
                StatusCode::CONFLICT,
                views::decided(&shown, &opened.project),
            )
        }
        Err(PauseError::Invalid(e)) => Page(
            StatusCode::UNPROCESSABLE_ENTITY,
            views::question(&views::Question {
                pause,
                project: &opened.project,
                now: pauses::now(),
                preselected: None,
                error: Some(&e.message),
                approver: opened.approver,
            }),
        ),
        Err(e) => failure(&e),
    }
}

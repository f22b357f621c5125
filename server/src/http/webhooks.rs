//! `/v1/pause/{id}/webhooks`: what was sent to the pause's `webhook_url`, and sending a
//! failed event again by hand.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pausepoint_api::webhooks::{WebhookDelivery, WebhookDeliveryList};
use pausepoint_api::ErrorBody;

use super::error::documented::{NotFound, Unauthorized, Unavailable};
use super::error::ApiError;
use super::extract::Caller;
use super::pauses::pause_id;
use super::AppState;
use crate::domain::pauses;
use crate::domain::webhooks::{self, ResendError};

#[utoipa::path(
    get,
    path = "/v1/pause/{id}/webhooks",
    tag = "webhooks",
    operation_id = "list_webhook_events",
    summary = "A pause's webhook events",
    params(("id" = String, Path, description = "The pause's `pause_id`")),
    responses(
        (status = 200, description = "Each event with every attempt", body = WebhookDeliveryList),
        Unauthorized,
        NotFound,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `GET /v1/pause/{id}/webhooks`: every event of the pause with its attempts.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    let id = pause_id(&id)?;
    state.app.pauses().get(caller.project_id(), id).await?;
    let data = webhooks::deliveries(state.app.store(), caller.project_id(), id).await?;
    Ok(Json(WebhookDeliveryList { data }))
}

#[utoipa::path(
    post,
    path = "/v1/pause/{id}/webhooks/{event_id}/resend",
    tag = "webhooks",
    operation_id = "resend_webhook_event",
    summary = "Send a failed webhook event again",
    params(("id" = String, Path, description = "The pause's `pause_id`"), ("event_id" = String, Path, description = "The event's `event_id` (its `webhook-id`)")),
    responses(
        (status = 202, description = "The event, due again now", body = WebhookDelivery),
        (status = 409, description = "The event has not failed (`webhook_not_failed`)", body = ErrorBody),
        Unauthorized,
        NotFound,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `POST /v1/pause/{id}/webhooks/{event_id}/resend`: a failed event goes out again now.
pub async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<WebhookDelivery>), ApiError> {
    let id = pause_id(&id)?;
    let event = webhooks::resend(
        state.app.store(),
        caller.project_id(),
        id,
        event_id,
        pauses::now(),
    )
    .await
    .map_err(|e| match e {
        ResendError::NotFound => {
            ApiError::not_found("this pause has no webhook event with this id")
        }
        ResendError::NotFailed(status) => ApiError::conflict(
            "webhook_not_failed",
            format!("the event is {status}; only a failed event can be sent again"),
        ),
        ResendError::Store(e) => e.into(),
    })?;
    Ok((StatusCode::ACCEPTED, Json(event)))
}

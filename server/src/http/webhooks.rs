//! `/v1/pause/{id}/webhooks`: what was sent to the pause's `webhook_url`, and sending a
//! failed event again by hand.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pausepoint_api::webhooks::{WebhookDelivery, WebhookDeliveryList};

use super::error::ApiError;
use super::extract::Caller;
use super::pauses::pause_id;
use super::AppState;
use crate::domain::pauses;
use crate::domain::webhooks::{self, ResendError};

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

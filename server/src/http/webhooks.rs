//! `/v1/pause/{id}/webhooks`: what was sent to the pause's `webhook_url`, and sending a
//! failed event again by hand.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pausepoint_api::webhooks::{WebhookDelivery, WebhookDeliveryList};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::Caller;
use super::AppState;
use crate::domain::pauses;

fn pause_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no pause with this id"))
}

/// `GET /v1/pause/{id}/webhooks`: every event of the pause with its attempts.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    let id = pause_id(&id)?;
    state.app.pauses().get(caller.project_id(), id).await?;
    let data = state
        .app
        .store()
        .webhook_deliveries(caller.project_id(), id)
        .await?;
    Ok(Json(WebhookDeliveryList { data }))
}

/// `POST /v1/pause/{id}/webhooks/{event_id}/resend`: a failed event goes out again now.
pub async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<WebhookDelivery>), ApiError> {
    let id = pause_id(&id)?;
    let store = state.app.store();
    match store
        .resend_webhook(caller.project_id(), id, &event_id, pauses::now())
        .await?
    {
        None => {
            return Err(ApiError::not_found(
                "this pause has no webhook event with this id",
            ))
        }
        Some(status) if status != "failed" => {
            return Err(ApiError::conflict(
                "webhook_not_failed",
                format!("the event is {status}; only a failed event can be sent again"),
            ))
        }
        Some(_) => state.app.ring_webhooks(),
    }
    let event = store
        .webhook_deliveries(caller.project_id(), id)
        .await?
        .into_iter()
        .find(|e| e.event_id == event_id)
        .ok_or_else(|| ApiError::not_found("this pause has no webhook event with this id"))?;
    Ok((StatusCode::ACCEPTED, Json(event)))
}

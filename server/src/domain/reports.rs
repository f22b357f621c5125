//! Providers' reports on messages they accepted. Twilio's status callbacks say whether an
//! SMS reached the phone: `delivered`, or `undelivered`/`failed` with an error code, which
//! counts as a failed delivery. Each report that changes a delivery is an audit event.

use pausepoint_api::{AuditEventKind, DeliveryStatus};
use serde_json::json;

use crate::domain::pauses::{now, PauseError};
use crate::hub::Change;
use crate::store::{Actor, Store};

/// What a Twilio `MessageStatus` means for a delivery; None for the steps before the end
/// (`queued`, `sending`, `sent`, …), which change nothing.
pub fn twilio_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "delivered" => Some(DeliveryStatus::Delivered),
        "undelivered" => Some(DeliveryStatus::Undelivered),
        "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// Records Twilio's report that the message `sid` is now `status` (with `error_code` when
/// it failed). True when it changed a delivery; a report on a message that is not ours,
/// or repeated, changes nothing.
pub async fn record_twilio(
    store: &Store,
    sid: &str,
    status: &str,
    error_code: Option<&str>,
) -> Result<bool, PauseError> {
    let Some(delivery_status) = twilio_status(status) else {
        return Ok(false);
    };
    let error = (delivery_status != DeliveryStatus::Delivered).then(|| match error_code {
        Some(code) => format!("Twilio reports the SMS {status} (error {code})"),
        None => format!("Twilio reports the SMS {status}"),
    });
    let (sid, status, error_code) = (
        sid.to_owned(),
        status.to_owned(),
        error_code.map(str::to_owned),
    );
    let at = now();
    store
        .write(move |tx| {
            Box::pin(async move {
                let Some(reported) = tx
                    .record_delivery_report(&sid, delivery_status, error.as_deref(), at)
                    .await?
                else {
                    return Ok::<_, PauseError>(false);
                };
                let event = if delivery_status == DeliveryStatus::Delivered {
                    AuditEventKind::PauseDelivered
                } else {
                    AuditEventKind::PauseNotificationFailed
                };
                tx.append_audit(
                    reported.project_id,
                    event,
                    Some(reported.key.pause_id),
                    &Actor::System,
                    json!({
                        "channel": "sms",
                        "via": "twilio",
                        "reference": sid,
                        "approver": reported.key.approver,
                        "reminder": reported.key.reminder,
                        "status": status,
                        "error_code": error_code,
                        "error": error,
                    }),
                    at,
                );
                tx.announce(Change::PauseChanged {
                    pause_id: reported.key.pause_id,
                });
                // An SMS that never arrived is a failed delivery: the next escalation tier
                // need not wait for an answer that cannot come.
                if delivery_status != DeliveryStatus::Delivered && reported.key.reminder == 0 {
                    tx.escalate_if_unreachable(
                        reported.key.pause_id,
                        reported.key.approver,
                        &reported.key.to_string(),
                        at,
                    );
                    tx.announce(Change::DeliveriesDue);
                }
                Ok(true)
            })
        })
        .await
}

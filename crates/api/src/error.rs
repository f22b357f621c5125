//! The one error body of the API: `{"error": {"code", "message", "field"}}`.

use serde::{Deserialize, Serialize};

/// Every non-2xx answer of the API carries this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and for people (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, such as `validation_failed` or `not_found`.
    pub code: String,
    /// One sentence a person can act on.
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// For `pause_not_pending` (409): the status the pause has already reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

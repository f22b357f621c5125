//! Projects as people see them: the name the page, the email and Slack show for the one
//! who asks, and renaming a project.

use jiff::Timestamp;
use pausepoint_api::{text, AuditEventKind};
use serde_json::json;

use super::keys::DEFAULT_PROJECT;
use crate::store::projects::Project;
use crate::store::{Actor, Store, StoreError};

/// The longest project name.
pub const MAX_NAME_CHARS: usize = 100;

/// The name to show the humans asked, if the project has a real one: the first project
/// is called `default` until it is named, and "Decision requested by default" tells the
/// human nothing.
pub fn shown_name(name: &str) -> Option<&str> {
    (name != DEFAULT_PROJECT && !name.is_empty()).then_some(name)
}

/// Why a rename did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    #[error("there is no project named {0:?} (see `pp admin projects list`)")]
    NoSuchProject(String),
    #[error("a project named {0:?} exists already")]
    NameTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A project name as given: trimmed, visible, without control characters, not too long.
pub fn valid_name(name: &str) -> Result<String, RenameError> {
    let name =
        text::without_controls("name", name.trim()).map_err(|e| RenameError::Invalid(e.message))?;
    if !text::has_visible(&name) {
        return Err(RenameError::Invalid("the name must not be empty".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.contains('\n') {
        return Err(RenameError::Invalid(format!(
            "the name must be one line of at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name)
}

/// Renames the project `from` to `to` and records `project.renamed` in its audit log.
pub async fn rename(
    store: &Store,
    from: &str,
    to: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<Project, RenameError> {
    let to = valid_name(to)?;
    let from = from.trim().to_owned();
    store
        .write(move |tx| {
            Box::pin(async move {
                if from != to && tx.project_named(&to).await?.is_some() {
                    return Err(RenameError::NameTaken(to));
                }
                let Some(project) = tx.rename_project(&from, &to).await? else {
                    return Err(RenameError::NoSuchProject(from));
                };
                tx.append_audit(
                    project.id,
                    AuditEventKind::ProjectRenamed,
                    None,
                    &actor,
                    json!({ "from": from, "to": to }),
                    now,
                );
                // Keys carry their project's name.
                tx.keys_changed();
                Ok(project)
            })
        })
        .await
}

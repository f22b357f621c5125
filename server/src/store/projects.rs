//! Projects: the tenants. Each key belongs to one, and a project sees only its own data.

use std::time::Duration;

use jiff::Timestamp;

use super::db::{args, Conn, Row};
use super::{Store, StoreError, Tx};
use crate::ids::ProjectId;

/// A tenant of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    /// The longest timeout a pause of this project may ask for.
    pub max_timeout: Duration,
    pub created_at: Timestamp,
}

const COLUMNS: &str = "id, name, max_timeout_seconds, created_at";

fn from_row(row: &dyn Row) -> Result<Project, StoreError> {
    let seconds = row.int("max_timeout_seconds")?;
    Ok(Project {
        id: row.uuid("id")?.into(),
        name: row.text("name")?,
        max_timeout: Duration::from_secs(seconds.max(0).unsigned_abs()),
        created_at: row.time("created_at")?,
    })
}

impl Conn {
    /// The project with this id.
    pub async fn project(&mut self, id: ProjectId) -> Result<Option<Project>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1");
        self.fetch_optional("projects", &sql, args![&id.to_string()], from_row)
            .await
    }

    /// The project named `name`.
    pub async fn project_named(&mut self, name: &str) -> Result<Option<Project>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM projects WHERE name = $1");
        self.fetch_optional("projects", &sql, args![name], from_row)
            .await
    }

    /// Every project, oldest first.
    pub async fn projects(&mut self) -> Result<Vec<Project>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM projects ORDER BY created_at, id");
        self.fetch_all("projects", &sql, &[], from_row).await
    }
}

impl Tx {
    /// Gives the project named `from` the name `to`; None when there is no `from`.
    pub async fn rename_project(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Option<Project>, StoreError> {
        let sql = format!("UPDATE projects SET name = $2 WHERE name = $1 RETURNING {COLUMNS}");
        self.fetch_optional("projects", &sql, args![from, to], from_row)
            .await
    }

    /// The project named `name`, made when missing; true when it was made now.
    pub async fn ensure_project(
        &mut self,
        name: &str,
        now: Timestamp,
    ) -> Result<(Project, bool), StoreError> {
        // Two servers may make the same project at once: the second insert does nothing.
        let made = self
            .execute(
                "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
                args![&ProjectId::new().to_string(), name, now],
            )
            .await?;
        let project = self
            .project_named(name)
            .await?
            .ok_or_else(|| StoreError::corrupt("projects", "a project vanished as it was made"))?;
        Ok((project, made == 1))
    }
}

impl Store {
    /// The project with this id.
    pub async fn project(&self, id: ProjectId) -> Result<Option<Project>, StoreError> {
        self.read(move |conn| Box::pin(conn.project(id))).await
    }

    /// Every project, oldest first.
    pub async fn projects(&self) -> Result<Vec<Project>, StoreError> {
        self.read(|conn| Box::pin(conn.projects())).await
    }
}

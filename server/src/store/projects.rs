//! Projects: the tenants. Each key belongs to one, and a project sees only its own data.

use std::time::Duration;

use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{time_column, uuid_column, Store, StoreError};

/// A tenant of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    /// The longest timeout a pause of this project may ask for.
    pub max_timeout: Duration,
    pub created_at: Timestamp,
}

const COLUMNS: &str = "id, name, max_timeout_seconds, created_at";

fn from_row(row: &AnyRow) -> Result<Project, StoreError> {
    let seconds: i64 = row.try_get("max_timeout_seconds")?;
    Ok(Project {
        id: uuid_column(row, "projects", "id")?,
        name: row.try_get("name")?,
        max_timeout: Duration::from_secs(seconds.max(0).unsigned_abs()),
        created_at: time_column(row, "projects", "created_at")?,
    })
}

impl Store {
    /// The project with this id.
    pub async fn project(&self, id: Uuid) -> Result<Option<Project>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The project named `name`, created inside `conn`'s transaction when missing.
    pub async fn ensure_project(
        conn: &mut AnyConnection,
        name: &str,
        now: Timestamp,
    ) -> Result<Project, StoreError> {
        // Two servers may make the same project at once: the second insert does nothing.
        sqlx::query(
            "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(name)
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await?;
        let sql = format!("SELECT {COLUMNS} FROM projects WHERE name = $1");
        let row = sqlx::query(&sql).bind(name).fetch_one(&mut *conn).await?;
        from_row(&row)
    }
}

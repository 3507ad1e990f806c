//! Errors of the Postgres archive.

/// Why an archive operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Postgres could not be reached, or refused the statement.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Postgres holds data this version cannot read.
    #[error("corrupt archive data: {0}")]
    Corrupt(String),
}

impl ArchiveError {
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt(what.into())
    }

    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ArchiveError::Database(_) => "postgres_error",
            ArchiveError::Migrate(_) => "migration_failed",
            ArchiveError::Corrupt(_) => "corrupt_data",
        }
    }
}

//! The store's one error type, and the mapping from database errors to it by kind and code (never
//! by message text: messages change between versions and may carry a stored value).

use std::borrow::Cow;

use sqlx::error::{DatabaseError, ErrorKind};

/// What went wrong in a store call; the server maps each to one wire code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// No standing room has this id.
    #[error("no standing room has this id")]
    NotFound,
    /// Another standing room already has this title (compared case-insensitively).
    #[error("another standing room already has this title")]
    DuplicateTitle,
    /// The caller's input is not acceptable; the message says what and why.
    #[error("{0}")]
    Invalid(String),
    /// The database is locked, unreachable or did not answer in time: try again later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The disk or the database is full.
    #[error("storage full: {0}")]
    Full(String),
    /// The database's schema could not be brought up to date.
    #[error("storage migration failed: {0}")]
    Migration(String),
    /// Anything else (a bug or a damaged database); the message names the kind, never a value.
    #[error("storage error: {0}")]
    Other(String),
}

/// SQLite primary result codes (the low byte of the extended code sqlx reports).
mod sqlite_code {
    pub const BUSY: i64 = 5;
    pub const LOCKED: i64 = 6;
    pub const NOMEM: i64 = 7;
    pub const READONLY: i64 = 8;
    pub const IOERR: i64 = 10;
    pub const CORRUPT: i64 = 11;
    pub const FULL: i64 = 13;
    pub const CANTOPEN: i64 = 14;
    pub const NOTADB: i64 = 26;
}

/// Maps a sqlx error. `title_written`: the statement set a title, so a unique violation is the
/// title's (the other unique columns are 128 random bits; a collision there is not a thing users
/// meet, and SQLite does not name the constraint).
pub(crate) fn from_sqlx(err: sqlx::Error, title_written: bool) -> StoreError {
    use sqlx::Error as E;
    match err {
        E::RowNotFound => StoreError::NotFound,
        E::PoolTimedOut => {
            StoreError::Unavailable("no database connection became free in time".into())
        }
        E::PoolClosed => StoreError::Unavailable("the store is closed".into()),
        E::Io(io) => from_io(&io),
        E::Tls(_) => StoreError::Unavailable("cannot reach the database (TLS)".into()),
        E::Database(db) => from_database(db.as_ref(), title_written),
        E::Configuration(_) => StoreError::Other("the database URL is not usable".into()),
        E::Protocol(_) => StoreError::Unavailable("the database answered out of protocol".into()),
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) | E::TypeNotFound { .. } => {
            StoreError::Other("a stored row could not be read".into())
        }
        other => StoreError::Other(format!("unexpected database error ({})", kind_name(&other))),
    }
}

/// An IO error on the way to the database or the data directory.
pub(crate) fn from_io(io: &std::io::Error) -> StoreError {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::StorageFull | K::QuotaExceeded => StoreError::Full("the disk is full".into()),
        kind => StoreError::Unavailable(format!("cannot reach the database ({kind})")),
    }
}

fn from_database(db: &dyn DatabaseError, title_written: bool) -> StoreError {
    if db.kind() == ErrorKind::UniqueViolation {
        return if title_written {
            StoreError::DuplicateTitle
        } else {
            StoreError::Other("a unique id collided".into())
        };
    }
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return from_postgres_code(pg.code());
    }
    let code: Cow<'_, str> = db.code().unwrap_or(Cow::Borrowed(""));
    match code.parse::<i64>() {
        Ok(extended) => from_sqlite_code(extended),
        Err(_) => StoreError::Other("unexpected database error".into()),
    }
}

fn from_sqlite_code(extended: i64) -> StoreError {
    use sqlite_code::*;
    match extended & 0xff {
        BUSY | LOCKED => {
            StoreError::Unavailable("the database is locked by another writer (SQLite busy)".into())
        }
        FULL => StoreError::Full("the database or its disk is full (SQLite full)".into()),
        NOMEM => StoreError::Unavailable("the database ran out of memory".into()),
        READONLY => StoreError::Unavailable("the database file is read-only".into()),
        CANTOPEN => StoreError::Unavailable("the database file cannot be opened".into()),
        IOERR => StoreError::Unavailable(format!(
            "the database file cannot be read or written (SQLite I/O error {extended})"
        )),
        CORRUPT | NOTADB => StoreError::Other("the database file is damaged".into()),
        _ => StoreError::Other(format!("SQLite error {extended}")),
    }
}

/// PostgreSQL SQLSTATE codes (appendix A of its manual).
fn from_postgres_code(code: &str) -> StoreError {
    match code {
        "53100" => StoreError::Full("the database server's disk is full".into()),
        "53200" => StoreError::Unavailable("the database server is out of memory".into()),
        "53300" => StoreError::Unavailable("the database server has too many connections".into()),
        "55P03" => StoreError::Unavailable("the table is locked by another transaction".into()),
        "57014" => StoreError::Unavailable("the database did not answer in time".into()),
        "40001" | "40P01" => {
            StoreError::Unavailable("the database aborted the write (conflict); retry".into())
        }
        "25006" => StoreError::Unavailable("the database is read-only".into()),
        c if c.starts_with("08") || c.starts_with("57P") => {
            StoreError::Unavailable(format!("the database connection failed (SQLSTATE {c})"))
        }
        c => StoreError::Other(format!("database error (SQLSTATE {c})")),
    }
}

/// A name for an error's kind that carries none of its content.
fn kind_name(err: &sqlx::Error) -> &'static str {
    use sqlx::Error as E;
    match err {
        E::WorkerCrashed => "worker crashed",
        E::Migrate(_) => "migration",
        E::AnyDriverError(_) => "driver",
        E::InvalidArgument(_) => "invalid argument",
        E::BeginFailed => "begin failed",
        _ => "other",
    }
}

/// Maps a migration failure: a locked or unreachable database is still `Unavailable`.
pub(crate) fn from_migrate(err: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError as M;
    match err {
        M::Execute(e) | M::ExecuteMigration(e, _) => match from_sqlx(e, false) {
            StoreError::Other(msg) => StoreError::Migration(msg),
            mapped => mapped,
        },
        M::VersionMissing(v) => StoreError::Migration(format!(
            "the database was migrated by a newer Circle (migration {v} is unknown here)"
        )),
        M::VersionMismatch(v) => {
            StoreError::Migration(format!("migration {v} was changed after it was applied"))
        }
        M::Dirty(v) => StoreError::Migration(format!("migration {v} is partially applied")),
        other => StoreError::Migration(other.to_string()),
    }
}

//! The [`Store`]: a pool of connections to SQLite or PostgreSQL, the migrations, and one method per
//! operation. Reads are single statements; every write is one statement inside its own transaction,
//! so a failed write leaves nothing behind. Every call is bounded in time and then `Unavailable`.

use std::{fmt, future::Future, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use circle_protocol::{RoomId, Settings};
use sqlx::{
    ConnectOptions as _,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use crate::{
    FacilitatorSecret, NewStandingRoom, Schedule, SecretHash, StandingId, StandingPatch,
    StandingRoom, StoreError,
    error::{from_migrate, from_sqlx},
    room::{Title, check_early_open, random_link},
};

/// The SQLite file's name inside the data directory.
pub const SQLITE_FILE: &str = "circle.sqlite3";
/// How long a SQLite write waits for another writer's lock before it gives up (`Unavailable`).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a call waits for a free connection (or for a new one to connect) before it gives up.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The backstop for a whole call (connect, lock waits, statement): past it, `Unavailable`. Longer
/// than the two limits above together, so those give the more precise message when they apply.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in the pool. Calls come from organisers and from first joins of a meeting: few.
/// When all are busy a call waits up to [`ACQUIRE_TIMEOUT`].
const MAX_CONNECTIONS: u32 = 4;
/// SQLite: take the write lock when the transaction starts, so a write never fails half-way
/// through upgrading a read lock (the busy timeout applies to the start instead).
const SQLITE_BEGIN: &str = "BEGIN IMMEDIATE";

/// The migrations, embedded at build time; the same SQL on both backends.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Where the store lives.
#[derive(Clone)]
pub struct StoreConfig {
    /// Created on first start (mode 0700); holds the SQLite file when `url` is `None`.
    pub data_dir: PathBuf,
    /// `postgres://…`: PostgreSQL instead of the embedded SQLite.
    pub url: Option<String>,
}

/// Limits beyond the configuration, for tests and for operators who want a hard size cap.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// SQLite: the most pages (4 KiB each) the database file may grow to; a write past it fails
    /// with [`StoreError::Full`] and changes nothing.
    pub sqlite_max_pages: Option<u32>,
}

/// `Debug` without the URL: it may hold the database password.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("data_dir", &self.data_dir)
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// A handle to the store; clones share one pool.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// `Debug` names the backend only: the pool's own `Debug` would print its connect options, which
/// for PostgreSQL include the password.
impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish()
    }
}

#[derive(Clone)]
enum Backend {
    /// The pool, and the turn to write: this process's writers queue here, first come first
    /// served, so SQLite's busy timeout is only ever spent waiting for another process. (Left to
    /// SQLite, writers poll the file lock with backoff, and on a slow disk one can lose every
    /// round for two seconds while others commit: `circle-load standing` saw it.)
    Sqlite(SqlitePool, Arc<tokio::sync::Mutex<()>>),
    Postgres(PgPool),
}

/// The columns a room is read from, in [`Row`]'s order.
const COLUMNS: &str = "id, link, title, settings, secret_sha256, schedule, early_open_mins";
type Row = (String, String, String, String, String, Option<String>, i32);

/// Runs `$body` (which uses `$tx`) in a write transaction on either backend and commits it; the
/// body is written once and compiled for each backend's types. A `?` in it returns `sqlx::Error`.
macro_rules! in_write_tx {
    ($backend:expr, |$tx:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite(pool, writer) => {
                let _turn = tokio::time::timeout(ACQUIRE_TIMEOUT, writer.lock())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?;
                let mut $tx = pool.begin_with(SQLITE_BEGIN).await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Runs `$body` (which uses `$pool`) on either backend's pool.
macro_rules! on_pool {
    ($backend:expr, |$pool:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite($pool, _) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// Bounds a call in time.
async fn bounded<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "the database did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            )))
        })
}

impl Store {
    /// Creates the data dir (and SQLite file) if missing, runs migrations (each in a transaction).
    pub async fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        Self::open_with_limits(cfg, Limits::default()).await
    }

    /// [`Self::open`] with [`Limits`].
    pub async fn open_with_limits(cfg: &StoreConfig, limits: Limits) -> Result<Store, StoreError> {
        bounded(async {
            create_data_dir(cfg).await?;
            let backend = match &cfg.url {
                Some(url) => Backend::Postgres(connect_postgres(url).await?),
                None => Backend::Sqlite(
                    connect_sqlite(cfg, &limits).await?,
                    Arc::new(tokio::sync::Mutex::new(())),
                ),
            };
            let store = Store { backend };
            let migrated = on_pool!(&store.backend, |pool| MIGRATOR.run(pool).await);
            if let Err(err) = migrated {
                store.close().await;
                return Err(from_migrate(err));
            }
            Ok(store)
        })
        .await
    }

    /// Which backend this is, for the server's start line: "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(..) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Stores a new standing room with fresh ids and a fresh facilitator secret, returned once.
    pub async fn create(
        &self,
        new: NewStandingRoom,
    ) -> Result<(StandingRoom, FacilitatorSecret), StoreError> {
        let title = Title::parse(&new.title)?;
        let early_open_mins = check_early_open(new.early_open_mins)?;
        check_schedule(new.schedule.as_ref())?;
        let secret = FacilitatorSecret::random();
        let room = StandingRoom {
            id: StandingId::random(),
            link: random_link(),
            title: title.title,
            settings: new.settings,
            secret: SecretHash::of(&secret.0),
            schedule: new.schedule,
            early_open_mins,
        };
        let settings = settings_json(&room.settings)?;
        let schedule = room.schedule.as_ref().map(|s| s.to_json().to_string());
        let early = to_i32(early_open_mins);
        let insert = async {
            in_write_tx!(&self.backend, |tx| {
                sqlx::query(
                    "INSERT INTO standing_rooms (id, link, title, title_key, settings, \
                     secret_sha256, schedule, early_open_mins) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&room.id.0)
                .bind(&room.link.0)
                .bind(&room.title)
                .bind(&title.key)
                .bind(&settings)
                .bind(room.secret.as_hex())
                .bind(&schedule)
                .bind(early)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            });
            Ok::<_, sqlx::Error>(())
        };
        bounded(async { insert.await.map_err(|e| from_sqlx(e, true)) }).await?;
        Ok((room, secret))
    }

    /// Every standing room, ordered by title (case-insensitively).
    pub async fn list(&self) -> Result<Vec<StandingRoom>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM standing_rooms ORDER BY title_key");
        let rows = bounded(async {
            on_pool!(&self.backend, |pool| sqlx::query_as::<_, Row>(&sql)
                .fetch_all(pool)
                .await)
            .map_err(|e| from_sqlx(e, false))
        })
        .await?;
        rows.into_iter().map(decode).collect()
    }

    /// The standing room with this organiser id, or `NotFound`.
    pub async fn get(&self, id: &StandingId) -> Result<StandingRoom, StoreError> {
        self.find("id", &id.0).await?.ok_or(StoreError::NotFound)
    }

    /// The standing room whose members' link is `link`, if any (a rotated link finds nothing).
    pub async fn by_link(&self, link: &RoomId) -> Result<Option<StandingRoom>, StoreError> {
        self.find("link", &link.0).await
    }

    /// Changes the given fields in one statement; a refused change (a duplicate title) changes
    /// nothing at all.
    pub async fn update(
        &self,
        id: &StandingId,
        patch: StandingPatch,
    ) -> Result<StandingRoom, StoreError> {
        let title = patch.title.as_deref().map(Title::parse).transpose()?;
        let early = patch
            .early_open_mins
            .map(check_early_open)
            .transpose()?
            .map(to_i32);
        if let Some(schedule) = &patch.schedule {
            check_schedule(schedule.as_ref())?;
        }
        let settings = patch.settings.as_ref().map(settings_json).transpose()?;
        let set_schedule = patch.schedule.is_some();
        let schedule = patch.schedule.flatten().map(|s| s.to_json().to_string());
        let (new_title, new_key) = match title {
            Some(t) => (Some(t.title), Some(t.key)),
            None => (None, None),
        };
        let sql = format!(
            "UPDATE standing_rooms SET title = COALESCE($2, title), \
             title_key = COALESCE($3, title_key), settings = COALESCE($4, settings), \
             schedule = CASE WHEN $5 THEN $6 ELSE schedule END, \
             early_open_mins = COALESCE($7, early_open_mins) \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row = bounded(async {
            let update = async {
                Ok::<_, sqlx::Error>(in_write_tx!(&self.backend, |tx| {
                    sqlx::query_as::<_, Row>(&sql)
                        .bind(&id.0)
                        .bind(&new_title)
                        .bind(&new_key)
                        .bind(&settings)
                        .bind(set_schedule)
                        .bind(&schedule)
                        .bind(early)
                        .fetch_optional(&mut *tx)
                        .await?
                }))
            };
            update.await.map_err(|e| from_sqlx(e, new_title.is_some()))
        })
        .await?;
        decode(row.ok_or(StoreError::NotFound)?)
    }

    /// Removes a standing room; `NotFound` when there is none with this id.
    pub async fn delete(&self, id: &StandingId) -> Result<(), StoreError> {
        let deleted = bounded(async {
            let delete = async {
                Ok::<_, sqlx::Error>(in_write_tx!(&self.backend, |tx| {
                    sqlx::query("DELETE FROM standing_rooms WHERE id = $1")
                        .bind(&id.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }))
            };
            delete.await.map_err(|e| from_sqlx(e, false))
        })
        .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Gives the room a new members' link id; the old one finds nothing from now on.
    pub async fn rotate_link(&self, id: &StandingId) -> Result<StandingRoom, StoreError> {
        self.set_column(id, "link", random_link().0).await
    }

    /// Gives the room a new facilitator secret, returned once; the old one no longer verifies.
    pub async fn rotate_secret(
        &self,
        id: &StandingId,
    ) -> Result<(StandingRoom, FacilitatorSecret), StoreError> {
        let secret = FacilitatorSecret::random();
        let hash = SecretHash::of(&secret.0);
        let room = self
            .set_column(id, "secret_sha256", hash.as_hex().to_owned())
            .await?;
        Ok((room, secret))
    }

    /// How many standing rooms there are.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let sql = "SELECT COUNT(*) FROM standing_rooms";
        let (n,): (i64,) = bounded(async {
            on_pool!(&self.backend, |pool| sqlx::query_as(sql)
                .fetch_one(pool)
                .await)
            .map_err(|e| from_sqlx(e, false))
        })
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Closes every connection (waits for calls in progress to finish).
    pub async fn close(&self) {
        on_pool!(&self.backend, |pool| pool.close().await)
    }

    /// One room by a unique column (`column` is one of ours, never input).
    async fn find(&self, column: &str, value: &str) -> Result<Option<StandingRoom>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM standing_rooms WHERE {column} = $1");
        let row = bounded(async {
            on_pool!(&self.backend, |pool| sqlx::query_as::<_, Row>(&sql)
                .bind(value)
                .fetch_optional(pool)
                .await)
            .map_err(|e| from_sqlx(e, false))
        })
        .await?;
        row.map(decode).transpose()
    }

    /// Sets one column (one of ours, never input) of one room and returns the room.
    async fn set_column(
        &self,
        id: &StandingId,
        column: &str,
        value: String,
    ) -> Result<StandingRoom, StoreError> {
        let sql =
            format!("UPDATE standing_rooms SET {column} = $2 WHERE id = $1 RETURNING {COLUMNS}");
        let row = bounded(async {
            let update = async {
                Ok::<_, sqlx::Error>(in_write_tx!(&self.backend, |tx| {
                    sqlx::query_as::<_, Row>(&sql)
                        .bind(&id.0)
                        .bind(&value)
                        .fetch_optional(&mut *tx)
                        .await?
                }))
            };
            update.await.map_err(|e| from_sqlx(e, false))
        })
        .await?;
        decode(row.ok_or(StoreError::NotFound)?)
    }
}

/// Creates the data directory (owner-only) if it is missing.
async fn create_data_dir(cfg: &StoreConfig) -> Result<(), StoreError> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(&cfg.data_dir).await.map_err(|err| {
        let message = format!(
            "cannot create the data directory {}: {err}",
            cfg.data_dir.display()
        );
        match err.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                StoreError::Full(message)
            }
            _ => StoreError::Other(message),
        }
    })
}

async fn connect_sqlite(cfg: &StoreConfig, limits: &Limits) -> Result<SqlitePool, StoreError> {
    let mut options = SqliteConnectOptions::new()
        .filename(cfg.data_dir.join(SQLITE_FILE))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // A definition an organiser was told is saved must survive a power cut.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        // Statements carry no values, but nothing here needs logging: the log stays clean.
        .disable_statement_logging();
    if let Some(pages) = limits.sqlite_max_pages {
        options = options.pragma("max_page_count", pages.to_string());
    }
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| from_sqlx(e, false))
}

async fn connect_postgres(url: &str) -> Result<PgPool, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Invalid(
            "[storage] url must start with postgres:// or postgresql://".into(),
        ));
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Invalid("[storage] url is not a valid PostgreSQL URL".into()))?
        .application_name("circle")
        // A lock held elsewhere or a stuck statement ends in an error the caller sees in time,
        // inside the call's own bound.
        .options([("lock_timeout", "2s"), ("statement_timeout", "5s")])
        .disable_statement_logging();
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| from_sqlx(e, false))
}

fn check_schedule(schedule: Option<&Schedule>) -> Result<(), StoreError> {
    match schedule {
        Some(s) => s.check().map_err(|e| StoreError::Invalid(e.to_string())),
        None => Ok(()),
    }
}

fn settings_json(settings: &Settings) -> Result<String, StoreError> {
    serde_json::to_string(settings).map_err(|_| StoreError::Other("settings did not encode".into()))
}

/// A checked early-open time (0..=120) always fits.
fn to_i32(mins: u32) -> i32 {
    i32::try_from(mins).unwrap_or(i32::MAX)
}

fn decode(row: Row) -> Result<StandingRoom, StoreError> {
    let (id, link, title, settings, secret, schedule, early) = row;
    let unreadable =
        |what: &str| StoreError::Other(format!("a stored room's {what} is unreadable"));
    let settings = serde_json::from_str(&settings).map_err(|_| unreadable("settings"))?;
    let schedule = schedule
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| Schedule::parse(v).ok())
                .ok_or_else(|| unreadable("schedule"))
        })
        .transpose()?;
    Ok(StandingRoom {
        id: StandingId(id),
        link: RoomId(link),
        title,
        settings,
        secret: SecretHash::from_hex(secret)?,
        schedule,
        early_open_mins: u32::try_from(early).map_err(|_| unreadable("early_open_mins"))?,
    })
}

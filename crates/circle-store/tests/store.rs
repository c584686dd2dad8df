//! The store against a real database: SQLite always, PostgreSQL when `POSTGRES_TEST_URL` is
//! set (each case in its own fresh database there). With `POSTGRES_TEST_REQUIRED=1` and no URL,
//! the PostgreSQL cases fail rather than skip, so `make test` cannot pass without them.

use std::path::Path;

use anyhow::Result;
use chrono::{NaiveTime, Weekday};
use circle_protocol::{RoomId, Settings};
use circle_store::{
    Limits, NewStandingRoom, Schedule, StandingId, StandingPatch, Store, StoreConfig, StoreError,
    store::SQLITE_FILE,
};
use serde_json::json;
use sqlx::{Connection, Executor};
use tempfile::TempDir;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// One case's database: a temporary data dir, and for PostgreSQL a database made for the case.
struct TestDb {
    kind: Kind,
    cfg: StoreConfig,
    dir: TempDir,
    /// PostgreSQL: the server's URL with the case's database name.
    pg_url: Option<String>,
}

impl TestDb {
    /// `None`: PostgreSQL is not configured and not required (the case is skipped).
    async fn new(kind: Kind) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data_dir = dir.path().join("data");
        let pg_url = match kind {
            Kind::Sqlite => None,
            Kind::Postgres => Some(fresh_postgres_database().await?),
        };
        Some(TestDb {
            kind,
            cfg: StoreConfig {
                data_dir,
                url: pg_url.clone(),
            },
            dir,
            pg_url,
        })
    }

    async fn open(&self) -> Store {
        Store::open(&self.cfg).await.expect("the store opens")
    }

    /// Runs `sql` on a connection of the test's own, outside the store.
    async fn raw_text(&self, sql: &str) -> Vec<String> {
        match self.kind {
            Kind::Sqlite => {
                let url = format!("sqlite://{}", self.cfg.data_dir.join(SQLITE_FILE).display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
                rows.into_iter().map(|r| r.0).collect()
            }
            Kind::Postgres => {
                let url = self.pg_url.as_deref().unwrap();
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
                rows.into_iter().map(|r| r.0).collect()
            }
        }
    }
}

/// Makes a new database on the PostgreSQL server named by `POSTGRES_TEST_URL`.
async fn fresh_postgres_database() -> Option<String> {
    let Ok(base) = std::env::var("POSTGRES_TEST_URL") else {
        if std::env::var("POSTGRES_TEST_REQUIRED").as_deref() == Ok("1") {
            panic!(
                "POSTGRES_TEST_REQUIRED=1 but POSTGRES_TEST_URL is not set: \
                 run the tests through tests/postgres/with-cluster.sh"
            );
        }
        eprintln!("POSTGRES_TEST_URL is not set: PostgreSQL case skipped");
        return None;
    };
    let name = format!(
        "circle_test_{}",
        StandingId::random().0.to_lowercase().replace('-', "_")
    );
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("POSTGRES_TEST_URL is reachable");
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("the test user may create databases");
    Some(with_database(&base, &name))
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let authority = match head[scheme_end..].find('/') {
        Some(slash) => &head[..scheme_end + slash],
        None => head,
    };
    format!("{authority}/{name}{query}")
}

/// Generates one test per backend for each case `async fn case(db: &TestDb) -> Result<()>`.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    let db = super::TestDb::new(super::Kind::Sqlite).await.expect("sqlite");
                    super::$case(&db).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    match super::TestDb::new(super::Kind::Postgres).await {
                        Some(db) => super::$case(&db).await,
                        None => Ok(()),
                    }
                }
            )*
        }
    };
}

both_backends!(
    round_trip,
    rotation,
    duplicate_title,
    refused_input,
    unknown_id,
    reopen_keeps_rooms_and_migrates_once,
    locked_database_is_unavailable,
    secret_never_stored,
);

fn weekly() -> Schedule {
    Schedule {
        weekdays: vec![Weekday::Tue, Weekday::Thu],
        start: NaiveTime::from_hms_opt(19, 0, 0).unwrap(),
        time_zone: chrono_tz::Europe::London,
        duration_mins: 90,
    }
}

fn new_room(title: &str) -> NewStandingRoom {
    NewStandingRoom {
        title: title.into(),
        settings: Settings::default(),
        schedule: Some(weekly()),
        early_open_mins: 15,
    }
}

async fn round_trip(db: &TestDb) -> Result<()> {
    let store = db.open().await;
    assert!(
        db.cfg.data_dir.is_dir(),
        "the data dir is created on first start"
    );
    let (made, _) = store.create(new_room("  Tuesday Group ")).await?;
    assert_eq!(made.title, "Tuesday Group");
    let (other, _) = store
        .create(NewStandingRoom {
            schedule: None,
            early_open_mins: 0,
            ..new_room("Anytime")
        })
        .await?;

    assert_eq!(store.get(&made.id).await?, made);
    assert_eq!(store.by_link(&made.link).await?, Some(made.clone()));
    let titles: Vec<String> = store.list().await?.into_iter().map(|r| r.title).collect();
    assert_eq!(titles, ["Anytime", "Tuesday Group"], "listed by title");
    assert_eq!(store.count().await?, 2);
    assert_eq!(store.get(&other.id).await?.schedule, None);

    let settings = Settings {
        chat_enabled: false,
        ..Settings::default()
    };
    let changed = store
        .update(
            &made.id,
            StandingPatch {
                title: Some("Tuesday Evening".into()),
                settings: Some(settings.clone()),
                schedule: Some(None),
                early_open_mins: Some(120),
            },
        )
        .await?;
    assert_eq!(
        (
            changed.title.as_str(),
            &changed.settings,
            &changed.schedule,
            changed.early_open_mins
        ),
        ("Tuesday Evening", &settings, &None, 120)
    );
    assert_eq!(
        (&changed.link, &changed.secret),
        (&made.link, &made.secret),
        "ids kept"
    );
    assert_eq!(store.get(&made.id).await?, changed);

    let untouched = store.update(&other.id, StandingPatch::default()).await?;
    assert_eq!(untouched, other, "an empty patch changes nothing");
    let scheduled = store
        .update(
            &other.id,
            StandingPatch {
                schedule: Some(Some(weekly())),
                ..StandingPatch::default()
            },
        )
        .await?;
    assert_eq!(scheduled.schedule, Some(weekly()));
    assert_eq!(scheduled.title, "Anytime");

    store.delete(&made.id).await?;
    assert_eq!(store.get(&made.id).await, Err(StoreError::NotFound));
    assert_eq!(store.by_link(&made.link).await?, None);
    assert_eq!(store.count().await?, 1);
    store.close().await;
    Ok(())
}

async fn rotation(db: &TestDb) -> Result<()> {
    let store = db.open().await;
    let (room, first_secret) = store.create(new_room("Rotating")).await?;
    assert!(room.secret.verify(&first_secret.0));

    let rotated = store.rotate_link(&room.id).await?;
    assert_ne!(rotated.link, room.link);
    assert_eq!(
        store.by_link(&room.link).await?,
        None,
        "the old link finds nothing"
    );
    assert_eq!(
        store.by_link(&rotated.link).await?.map(|r| r.id),
        Some(room.id.clone())
    );
    assert!(
        rotated.secret.verify(&first_secret.0),
        "rotating the link keeps the secret"
    );

    let (after, second_secret) = store.rotate_secret(&room.id).await?;
    assert_ne!(second_secret, first_secret);
    let stored = store.get(&room.id).await?;
    assert!(
        stored.secret.verify(&second_secret.0),
        "the new secret verifies"
    );
    assert!(
        !stored.secret.verify(&first_secret.0),
        "the old secret does not"
    );
    assert_eq!(
        after.link, rotated.link,
        "rotating the secret keeps the link"
    );
    store.close().await;
    Ok(())
}

async fn duplicate_title(db: &TestDb) -> Result<()> {
    let store = db.open().await;
    let (first, _) = store.create(new_room("Tuesday Group")).await?;
    assert_eq!(
        store.create(new_room("tuesday GROUP")).await.err(),
        Some(StoreError::DuplicateTitle)
    );
    assert_eq!(store.count().await?, 1, "the refused room was not stored");

    // A refused update changes nothing, not even the fields that were fine.
    let (second, _) = store.create(new_room("Thursday Group")).await?;
    let refused = store
        .update(
            &second.id,
            StandingPatch {
                title: Some("TUESDAY group".into()),
                settings: Some(Settings {
                    locked: true,
                    ..Settings::default()
                }),
                early_open_mins: Some(0),
                schedule: Some(None),
            },
        )
        .await;
    assert_eq!(refused, Err(StoreError::DuplicateTitle));
    assert_eq!(store.get(&second.id).await?, second, "nothing half-written");
    assert_eq!(store.get(&first.id).await?, first);

    // The same room may change its title's case.
    let recased = store
        .update(
            &first.id,
            StandingPatch {
                title: Some("TUESDAY GROUP".into()),
                ..StandingPatch::default()
            },
        )
        .await?;
    assert_eq!(recased.title, "TUESDAY GROUP");
    store.close().await;
    Ok(())
}

async fn refused_input(db: &TestDb) -> Result<()> {
    let store = db.open().await;
    let invalid = |r: Result<_, StoreError>| match r {
        Err(StoreError::Invalid(message)) => message,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let message = invalid(store.create(new_room("   ")).await.map(|_| ()));
    assert!(message.contains("title"), "{message}");
    let message = invalid(store.create(new_room(&"x".repeat(81))).await.map(|_| ()));
    assert!(message.contains("1 to 80"), "{message}");
    let message = invalid(store.create(new_room("Hidden\u{200B}")).await.map(|_| ()));
    assert!(message.contains("invisible"), "{message}");
    let message = invalid(
        store
            .create(NewStandingRoom {
                early_open_mins: 121,
                ..new_room("Early")
            })
            .await
            .map(|_| ()),
    );
    assert!(message.contains("early_open_mins"), "{message}");
    let message = invalid(
        store
            .create(NewStandingRoom {
                schedule: Some(Schedule {
                    duration_mins: 721,
                    ..weekly()
                }),
                ..new_room("Long")
            })
            .await
            .map(|_| ()),
    );
    assert!(message.contains("duration_mins"), "{message}");
    let message = invalid(
        store
            .create(NewStandingRoom {
                schedule: Some(Schedule {
                    weekdays: vec![],
                    ..weekly()
                }),
                ..new_room("Never")
            })
            .await
            .map(|_| ()),
    );
    assert!(message.contains("weekdays"), "{message}");

    // The same rules through JSON, as the organiser API receives them.
    let time_zone = serde_json::from_value::<Schedule>(json!({
        "weekdays": ["tue"], "start": "19:00", "time_zone": "Mars/Olympus_Mons", "duration_mins": 90
    }))
    .unwrap_err()
    .to_string();
    assert!(
        time_zone.contains("unknown time zone \"Mars/Olympus_Mons\""),
        "{time_zone}"
    );

    let (room, _) = store.create(new_room("Valid")).await?;
    let message = invalid(
        store
            .update(
                &room.id,
                StandingPatch {
                    early_open_mins: Some(500),
                    title: Some("Changed".into()),
                    ..StandingPatch::default()
                },
            )
            .await
            .map(|_| ()),
    );
    assert!(message.contains("early_open_mins"), "{message}");
    assert_eq!(
        store.get(&room.id).await?,
        room,
        "a refused update changes nothing"
    );
    assert_eq!(store.count().await?, 1, "no refused room was stored");
    store.close().await;
    Ok(())
}

async fn unknown_id(db: &TestDb) -> Result<()> {
    let store = db.open().await;
    let nobody = StandingId::random();
    assert_eq!(store.get(&nobody).await, Err(StoreError::NotFound));
    assert_eq!(
        store.update(&nobody, StandingPatch::default()).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.delete(&nobody).await, Err(StoreError::NotFound));
    assert_eq!(store.rotate_link(&nobody).await, Err(StoreError::NotFound));
    assert_eq!(
        store.rotate_secret(&nobody).await.err(),
        Some(StoreError::NotFound)
    );
    assert_eq!(store.by_link(&RoomId("no-such-link".into())).await?, None);
    store.close().await;
    Ok(())
}

async fn reopen_keeps_rooms_and_migrates_once(db: &TestDb) -> Result<()> {
    let store = db.open().await;
    let (room, secret) = store.create(new_room("Kept")).await?;
    store.close().await;

    let again = db.open().await;
    let kept = again.get(&room.id).await?;
    assert_eq!(kept, room);
    assert!(kept.secret.verify(&secret.0));
    again.close().await;
    let third = db.open().await;
    assert_eq!(third.count().await?, 1);
    third.close().await;
    let applied = db
        .raw_text("SELECT CAST(version AS TEXT) FROM _sqlx_migrations")
        .await;
    assert_eq!(applied, ["1"], "each migration is applied once");
    Ok(())
}

async fn locked_database_is_unavailable(db: &TestDb) -> Result<()> {
    let store = db.open().await;
    let (room, _) = store.create(new_room("Before")).await?;
    // Another connection takes the write lock and holds it.
    let unavailable = match db.kind {
        Kind::Sqlite => {
            let url = format!("sqlite://{}", db.cfg.data_dir.join(SQLITE_FILE).display());
            let mut holder = sqlx::SqliteConnection::connect(&url).await?;
            holder.execute("BEGIN IMMEDIATE").await?;
            let results = (
                store.create(new_room("During")).await.err(),
                store.rotate_link(&room.id).await.err(),
                store.get(&room.id).await,
            );
            holder.execute("ROLLBACK").await?;
            results
        }
        Kind::Postgres => {
            let mut holder = sqlx::PgConnection::connect(db.pg_url.as_deref().unwrap()).await?;
            holder.execute("BEGIN").await?;
            holder
                .execute("LOCK TABLE standing_rooms IN EXCLUSIVE MODE")
                .await?;
            let results = (
                store.create(new_room("During")).await.err(),
                store.rotate_link(&room.id).await.err(),
                store.get(&room.id).await,
            );
            holder.execute("ROLLBACK").await?;
            results
        }
    };
    let (create, rotate, read) = unavailable;
    assert!(
        matches!(create, Some(StoreError::Unavailable(_))),
        "{create:?}"
    );
    assert!(
        matches!(rotate, Some(StoreError::Unavailable(_))),
        "{rotate:?}"
    );
    assert_eq!(
        read?, room,
        "reads go on while another writer holds the lock"
    );
    // Once the lock is released, writes work again and the refused ones left nothing.
    assert_eq!(store.get(&room.id).await?.link, room.link);
    assert_eq!(store.count().await?, 1);
    store.create(new_room("After")).await?;
    store.close().await;
    Ok(())
}

async fn secret_never_stored(db: &TestDb) -> Result<()> {
    let store = db.open().await;
    let (room, first) = store.create(new_room("Secretive")).await?;
    let (_, second) = store.rotate_secret(&room.id).await?;
    let (_, third) = store.create(new_room("Another")).await?;
    let secrets = [first.0, second.0, third.0];

    // Every row of every table, as text.
    let rows = match db.kind {
        Kind::Sqlite => {
            db.raw_text(
                "SELECT id || link || title || title_key || settings || secret_sha256 \
                 || COALESCE(schedule, '') || early_open_mins FROM standing_rooms",
            )
            .await
        }
        Kind::Postgres => {
            db.raw_text("SELECT t::text FROM standing_rooms t UNION ALL SELECT m::text FROM _sqlx_migrations m")
                .await
        }
    };
    let all = rows.join("\n");
    assert!(all.contains("Secretive"), "the rows were read");
    for secret in &secrets {
        assert!(
            !all.contains(secret.as_str()),
            "a secret's plaintext is in a row"
        );
    }

    if db.kind == Kind::Sqlite {
        // The bytes on disk, with the store still open (the WAL holds the latest writes) and after.
        for phase in ["open", "closed"] {
            if phase == "closed" {
                store.close().await;
            }
            let bytes = data_dir_bytes(&db.cfg.data_dir)?;
            assert!(
                contains(&bytes, b"Secretive"),
                "the files were read ({phase})"
            );
            for secret in &secrets {
                assert!(
                    !contains(&bytes, secret.as_bytes()),
                    "a secret's plaintext is on disk ({phase})"
                );
            }
        }
    }
    let _ = &db.dir;
    Ok(())
}

/// Every file in the data dir (the database, its -wal and -shm), concatenated.
fn data_dir_bytes(dir: &Path) -> Result<Vec<u8>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            all.extend(std::fs::read(&path)?);
        }
    }
    Ok(all)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn sqlite_full_database_keeps_previous_rows() -> Result<()> {
    let db = TestDb::new(Kind::Sqlite).await.unwrap();
    let limits = Limits {
        sqlite_max_pages: Some(16),
    };
    let store = Store::open_with_limits(&db.cfg, limits).await?;
    let mut made = Vec::new();
    let full = loop {
        assert!(
            made.len() < 10_000,
            "16 pages of 4 KiB never hold 10,000 rooms"
        );
        match store
            .create(new_room(&format!("Group number {}", made.len())))
            .await
        {
            Ok((room, _)) => made.push(room),
            Err(err) => break err,
        }
    };
    assert!(matches!(full, StoreError::Full(_)), "{full:?}");
    assert!(!made.is_empty());
    assert_eq!(
        store.count().await?,
        made.len() as u64,
        "the refused room left nothing"
    );
    for room in &made {
        assert_eq!(
            &store.get(&room.id).await?,
            room,
            "earlier rooms are intact"
        );
    }
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() -> Result<()> {
    // A loopback port that was just free and is now closed: the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        data_dir: dir.path().join("data"),
        url: Some(format!("postgres://circle@127.0.0.1:{port}/circle")),
    };
    let err = Store::open(&cfg).await.err();
    assert!(matches!(err, Some(StoreError::Unavailable(_))), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn a_url_that_is_not_postgres_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        data_dir: dir.path().join("data"),
        url: Some("mysql://circle@localhost/circle".into()),
    };
    let err = Store::open(&cfg).await.err();
    assert!(
        matches!(&err, Some(StoreError::Invalid(m)) if m.contains("postgres://")),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_created_is_a_clear_error() -> Result<()> {
    // A regular file where a directory should be (root may write anywhere, so no permission trick).
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"")?;
    let cfg = StoreConfig {
        data_dir: file.join("data"),
        url: None,
    };
    match Store::open(&cfg).await {
        Err(StoreError::Other(message)) => {
            assert!(
                message.starts_with("cannot create the data directory"),
                "{message}"
            );
            assert!(message.contains("not-a-directory"), "{message}");
        }
        other => panic!("expected a clear error, got {:?}", other.map(|_| ())),
    }
    Ok(())
}

#[test]
fn postgres_urls_get_the_case_database() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5/base?sslmode=disable", "x"),
        "postgres://u@127.0.0.1:5/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

#[tokio::test]
async fn debug_output_never_shows_the_database_password() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        data_dir: dir.path().join("data"),
        url: Some("postgres://circle:hunter2-password@127.0.0.1:1/circle".into()),
    };
    assert!(!format!("{cfg:?}").contains("hunter2"));
    let db = TestDb::new(Kind::Sqlite).await.unwrap();
    let store = db.open().await;
    assert_eq!(format!("{store:?}"), "Store { backend: \"sqlite\" }");
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn a_damaged_database_file_is_a_clear_error() -> Result<()> {
    let db = TestDb::new(Kind::Sqlite).await.unwrap();
    std::fs::create_dir_all(&db.cfg.data_dir)?;
    std::fs::write(db.cfg.data_dir.join(SQLITE_FILE), vec![0x5a; 8192])?;
    match Store::open(&db.cfg).await {
        Err(StoreError::Other(message)) => assert!(message.contains("damaged"), "{message}"),
        other => panic!("expected a damaged-file error, got {:?}", other.map(|_| ())),
    }
    Ok(())
}

/// Writes from one server queue among themselves; the busy timeout is for other processes. (Found
/// by `circle-load standing`: 8 creations at once on a loaded machine got `Unavailable`.)
#[tokio::test]
async fn many_writes_at_once_from_one_store_all_succeed() -> Result<()> {
    let db = TestDb::new(Kind::Sqlite).await.unwrap();
    let store = db.open().await;
    let creates = (0..200).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.create(new_room(&format!("Group {i}"))).await })
    });
    let results = futures_join(creates).await;
    let failed: Vec<_> = results.into_iter().filter_map(|r| r.err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(store.count().await?, 200);
    store.close().await;
    Ok(())
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<Result<T, StoreError>>>,
) -> Vec<Result<T, StoreError>> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.expect("the task ran"));
    }
    out
}

//! "Circle may remember that a room exists, never what happened in it" (issue 9, item 2): a whole
//! meeting in a standing room (voice over real WebRTC, chat, private chat, raised hands, a
//! facilitator's mute, the waiting room, a denial and a removal), then every table (all rows, all
//! columns) and every file under the data directory (bytes, `-wal` / `-shm` included) are read,
//! while the server runs and after it stopped, and none of the meeting's pseudonyms, chat texts,
//! participant ids, resume tokens or device ids is found.
//!
//! Against SQLite always; against PostgreSQL too when `POSTGRES_TEST_URL` is set (`make
//! test` runs through `tests/postgres/with-cluster.sh`, which sets it); with
//! `POSTGRES_TEST_REQUIRED=1` a missing URL fails the PostgreSQL case.

use circle_tests::{
    Client, TestServer,
    proto::{ClientMsg as C, ParticipantId, ServerMsg as S, SettingsPatch},
    server_with,
    standing::{OPERATOR_KEY, create_standing},
    voice::{VoiceMember, eventually},
};
use serde_json::json;
use sqlx::{Connection, Executor, Row};
use std::path::Path;

/// Everything the meeting must not leave behind.
#[derive(Default)]
struct Traces(Vec<String>);

impl Traces {
    fn add(&mut self, s: impl Into<String>) {
        self.0.push(s.into());
    }

    fn add_joined(&mut self, you: &ParticipantId, token: &str) {
        self.add(you.0.clone());
        self.add(token);
    }

    /// Panics naming the first trace found in `haystack` (from `place`).
    fn assert_absent(&self, place: &str, haystack: &[u8]) {
        for t in &self.0 {
            assert!(
                !contains(haystack, t.as_bytes()),
                "{t:?} was found in {place}"
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Reads every file of the data directory and checks none holds a trace; the names of the files.
fn check_files(dir: &Path, traces: &Traces) -> Vec<String> {
    let files = files_under(dir);
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        traces.assert_absent(&f.display().to_string(), &bytes);
    }
    files
        .iter()
        .filter_map(|f| f.file_name()?.to_str().map(str::to_owned))
        .collect()
}

/// Every row of every table of the SQLite database, all columns as text.
async fn sqlite_dump(file: &Path) -> String {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .read_only(true);
    let mut conn = sqlx::ConnectOptions::connect(&options)
        .await
        .expect("open the database");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .expect("tables");
    assert!(tables.iter().any(|t| t == "standing_rooms"), "{tables:?}");
    let mut dump = String::new();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&mut conn)
                .await
                .expect("columns");
        let row_text = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT {row_text} FROM \"{table}\""))
            .fetch_all(&mut conn)
            .await
            .expect("rows");
        dump.push_str(&format!("{table}: {}\n", rows.join("\n")));
    }
    conn.close().await.ok();
    dump
}

/// Every row of every table of the PostgreSQL database, as JSON text.
async fn postgres_dump(url: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    assert!(tables.iter().any(|t| t == "standing_rooms"), "{tables:?}");
    let mut dump = String::new();
    for table in tables {
        let rows = conn
            .fetch_all(format!("SELECT row_to_json(t)::text AS r FROM \"{table}\" t").as_str())
            .await
            .expect("rows");
        for row in rows {
            let r: String = row.get("r");
            dump.push_str(&format!("{table}: {r}\n"));
        }
    }
    conn.close().await.ok();
    dump
}

/// A member with a device id of their own, with voice, unmuted.
async fn voice_member(
    srv: &TestServer,
    room: &circle_tests::CreatedRoom,
    name: &str,
    secret: Option<String>,
    traces: &mut Traces,
) -> VoiceMember {
    let device = format!("device-of-{name}");
    traces.add(name);
    traces.add(device.clone());
    let mut c = srv.connect().await;
    let joined = c
        .join(&room.room, name, secret, Some(device))
        .await
        .expect("joins");
    traces.add_joined(&joined.you, &joined.token);
    let mut m = VoiceMember::start(c, joined).await;
    m.unmute().await;
    m
}

/// A member without voice, who may wait.
async fn plain_member(
    srv: &TestServer,
    room: &circle_tests::CreatedRoom,
    name: &str,
    traces: &mut Traces,
) -> (Client, ParticipantId) {
    let device = format!("device-of-{name}");
    traces.add(name);
    traces.add(device.clone());
    let mut c = srv.connect().await;
    let joined = c
        .join(&room.room, name, None, Some(device))
        .await
        .expect("joins");
    traces.add_joined(&joined.you, &joined.token);
    (c, joined.you)
}

/// Runs a whole meeting in a standing room on `srv`; what it must not leave behind.
async fn a_whole_meeting(srv: &TestServer) -> Traces {
    let mut traces = Traces::default();
    let room = create_standing(
        &srv.base,
        json!({"title": "Privacy group", "settings": {"waiting_room": false, "mute_on_entry": false}}),
    )
    .await;
    let mut fay = voice_member(
        srv,
        &room,
        "Fay Pseudonym",
        Some(room.secret.clone()),
        &mut traces,
    )
    .await;
    let mut ann = voice_member(srv, &room, "Ann Pseudonym", None, &mut traces).await;
    let mut bob = voice_member(srv, &room, "Bob Pseudonym", None, &mut traces).await;
    // They hear each other through the relay.
    let members = [&fay, &ann, &bob];
    eventually(|| {
        for r in members {
            for s in members {
                if r.id() != s.id() && r.received_from(s) < 5 {
                    return Err(format!("{} hears {}", r.name(), s.name()));
                }
            }
        }
        Ok(())
    })
    .await;

    for (who, text) in [
        (&mut ann, "Ann's words about her week, never stored"),
        (&mut bob, "Bob's words about his family, never stored"),
    ] {
        traces.add(text);
        who.ok(C::Chat {
            id: None,
            text: text.into(),
        })
        .await;
    }
    let private = "Bob's private note to the facilitators";
    traces.add(private);
    bob.ok(C::ChatPrivate {
        id: None,
        text: private.into(),
        to: None,
    })
    .await;
    let reply = "Fay's private reply to Bob";
    traces.add(reply);
    fay.ok(C::ChatPrivate {
        id: None,
        text: reply.into(),
        to: Some(bob.id().clone()),
    })
    .await;
    ann.ok(C::RaiseHand { id: None }).await;
    bob.ok(C::RaiseHand { id: None }).await;
    fay.ok(C::NextSpeaker { id: None }).await;
    fay.ok(C::Mute {
        id: None,
        participant: bob.id().clone(),
    })
    .await;

    // The waiting room: one turned away, one let in and then removed.
    fay.ok(C::UpdateSettings {
        id: None,
        settings: SettingsPatch {
            waiting_room: Some(true),
            ..SettingsPatch::default()
        },
    })
    .await;
    let (_cyd, cyd) = plain_member(srv, &room, "Cyd Pseudonym", &mut traces).await;
    let (_dee, dee) = plain_member(srv, &room, "Dee Pseudonym", &mut traces).await;
    fay.ok(C::Deny {
        id: None,
        participant: cyd,
    })
    .await;
    fay.ok(C::Admit {
        id: None,
        participant: dee.clone(),
    })
    .await;
    fay.ok(C::Remove {
        id: None,
        participant: dee,
    })
    .await;

    fay.ok(C::EndMeeting { id: None }).await;
    for m in [&mut ann, &mut bob] {
        m.expect("meeting ended", |msg| {
            matches!(msg, S::MeetingEnded).then_some(())
        })
        .await;
    }
    traces
}

#[tokio::test]
async fn a_whole_meeting_leaves_nothing_in_sqlite() {
    let srv = server_with(|c| c.rooms.operator_key = OPERATOR_KEY.into()).await;
    let traces = a_whole_meeting(&srv).await;
    let dir = srv.data.0.clone();
    // While the server runs: the database, its -wal and -shm, token.key.
    let names = check_files(&dir, &traces);
    assert!(names.iter().any(|n| n == "circle.sqlite3"), "{names:?}");
    assert!(names.iter().any(|n| n == "token.key"), "{names:?}");
    let dump = sqlite_dump(&dir.join("circle.sqlite3")).await;
    assert!(
        dump.contains("Privacy group"),
        "the room itself is stored: {dump}"
    );
    traces.assert_absent("the database's rows", dump.as_bytes());
    // And after it stopped.
    let TestServer { running, data, .. } = srv;
    running.shutdown().await;
    check_files(&data.0, &traces);
}

#[tokio::test]
async fn a_whole_meeting_leaves_nothing_in_postgresql() {
    let Some(url) = fresh_postgres_database().await else {
        return;
    };
    let srv = server_with(|c| {
        c.rooms.operator_key = OPERATOR_KEY.into();
        c.storage.url = Some(url.clone());
    })
    .await;
    let traces = a_whole_meeting(&srv).await;
    let dump = postgres_dump(&url).await;
    assert!(
        dump.contains("Privacy group"),
        "the room itself is stored: {dump}"
    );
    traces.assert_absent("the database's rows", dump.as_bytes());
    let names = check_files(&srv.data.0, &traces);
    assert_eq!(
        names,
        vec!["token.key"],
        "only the key is kept in the data dir"
    );
    let TestServer { running, data, .. } = srv;
    running.shutdown().await;
    check_files(&data.0, &traces);
}

/// A new database on the PostgreSQL server named by `POSTGRES_TEST_URL`, or `None` when it
/// is not set (a failure instead when `POSTGRES_TEST_REQUIRED=1`).
async fn fresh_postgres_database() -> Option<String> {
    let Ok(base) = std::env::var("POSTGRES_TEST_URL") else {
        assert_ne!(
            std::env::var("POSTGRES_TEST_REQUIRED").as_deref(),
            Ok("1"),
            "POSTGRES_TEST_REQUIRED=1 but POSTGRES_TEST_URL is not set: run the \
             tests through tests/postgres/with-cluster.sh"
        );
        eprintln!("POSTGRES_TEST_URL is not set: the PostgreSQL case is skipped");
        return None;
    };
    let name = format!("circle_privacy_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("POSTGRES_TEST_URL is reachable");
    admin
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\"").as_str())
        .await
        .expect("drop an old test database");
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("the test user may create databases");
    admin.close().await.ok();
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let cut = head.rfind('/').expect("a database in the URL");
    Some(format!("{}/{name}{query}", &head[..cut]))
}

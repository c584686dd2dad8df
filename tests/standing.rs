//! Standing rooms end to end (issue 9): a real server on port 0, the organiser API over HTTP,
//! members over the websocket. (`kill -9` of the real `circle` binary is in
//! `crates/circle-server/tests/standing_kill.rs`, where the binary is built for the test.)
//!
//! Waits are for a state with a deadline, never a bare sleep.

use circle_tests::{
    Client, TestServer, join_error,
    proto::{ClientMsg as C, ErrorCode, LinkKind, Presence, Role, RoomId, ServerMsg as S},
    scratch_dir, server_with,
    standing::{
        OPERATOR_KEY, api, api_as, create_adhoc, create_standing, link_of, standing_server,
    },
    test_config,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A standing room where members come straight in.
fn open_room(title: &str) -> Value {
    json!({"title": title, "settings": {"waiting_room": false}})
}

/// Polls `check` (an API call) every 50 ms until it returns `Some`, for at most `within`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The live meetings the organiser sees.
async fn meetings(base: &str) -> Vec<Value> {
    let (status, json) = api(base, Method::GET, "/api/meetings", None).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json.as_array().cloned().unwrap_or_default()
}

/// Waits until no meeting is live on the server.
async fn until_no_meeting(base: &str) {
    until("the meeting to end", Duration::from_secs(20), || async {
        meetings(base).await.is_empty().then_some(())
    })
    .await;
}

async fn chat(c: &mut Client, text: &str) {
    c.ok(C::Chat {
        id: None,
        text: text.into(),
    })
    .await;
}

fn names(room: &circle_tests::proto::RoomSnapshot) -> Vec<String> {
    room.participants.iter().map(|p| p.name.clone()).collect()
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A weekly schedule (in UTC) whose occurrence starts at the Unix time `start` (a whole minute).
fn schedule_at(start: u64) -> Value {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let day = DAYS[((start / 86_400 + 3) % 7) as usize];
    let hh = (start % 86_400) / 3600;
    let mm = (start % 3600) / 60;
    json!({
        "weekdays": [day],
        "start": format!("{hh:02}:{mm:02}"),
        "time_zone": "UTC",
        "duration_mins": 60,
    })
}

#[tokio::test]
async fn a_meeting_opens_on_first_arrival_and_ends_when_empty_for_the_configured_time() {
    let srv = standing_server(|c| c.rooms.standing_empty_end_secs = 1).await;
    let room = create_standing(&srv.base, open_room("Tuesday group")).await;
    assert!(
        meetings(&srv.base).await.is_empty(),
        "no meeting before anyone comes"
    );

    let (mut ann, joined) = srv.join(&room, "Ann", false).await;
    assert!(!joined.waiting);
    assert!(joined.room.standing && joined.room.opens_at.is_none());
    // The counts follow the join a moment later.
    let live = until("Ann counted", Duration::from_secs(5), || async {
        let live = meetings(&srv.base).await;
        (live.len() == 1 && live[0]["participants"] == 1).then_some(live)
    })
    .await;
    assert_eq!(live[0]["standing"], room.json["id"]);
    chat(&mut ann, "first meeting's words").await;
    ann.ok(C::Leave { id: None }).await;
    until_no_meeting(&srv.base).await;

    // The link still works, for a new meeting with nothing of the old one.
    let (mut bea, joined) = srv.join(&room, "Bea", false).await;
    assert_eq!(names(&joined.room), vec!["Bea"]);
    assert!(joined.room.chat.is_empty(), "{:?}", joined.room.chat);
    bea.ok(C::Leave { id: None }).await;
}

#[tokio::test]
async fn joins_that_race_to_start_a_meeting_land_in_one_meeting() {
    let srv = standing_server(|_| {}).await;
    let room = create_standing(&srv.base, open_room("Racing group")).await;
    // Every socket is open first, then every join is sent at once: they all miss the directory
    // and ask the store together.
    const N: usize = 30;
    let mut sockets = Vec::new();
    for _ in 0..N {
        sockets.push(srv.connect().await);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let joins: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let (link, start) = (room.room.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                c.join(&link, &format!("Member {i}"), None, None)
                    .await
                    .expect("joins");
                c
            })
        })
        .collect();
    let mut clients = Vec::new();
    for j in joins {
        clients.push(j.await.expect("join task"));
    }
    // One meeting with everyone in it (the counts follow each join a moment later).
    until(
        "one meeting with everyone",
        Duration::from_secs(5),
        || async {
            let live = meetings(&srv.base).await;
            (live.len() == 1 && live[0]["participants"] == N).then_some(())
        },
    )
    .await;
    drop(clients);
}

#[tokio::test]
async fn a_facilitators_end_leaves_the_link_for_a_fresh_meeting() {
    let srv = standing_server(|_| {}).await;
    let room = create_standing(&srv.base, open_room("Thursday group")).await;
    let (mut fay, _) = srv.join(&room, "Fay", true).await;
    let (mut ann, ann_joined) = srv.join(&room, "Ann", false).await;
    chat(&mut ann, "said in the first meeting").await;
    fay.ok(C::EndMeeting { id: None }).await;
    let (seen, _) = ann.until_closed().await;
    assert!(seen.iter().any(|m| matches!(m, S::MeetingEnded)));
    until_no_meeting(&srv.base).await;

    let (_bea, joined) = srv.join(&room, "Bea", false).await;
    assert_eq!(names(&joined.room), vec!["Bea"], "nobody from before");
    assert!(joined.room.chat.is_empty());
    let mut back = srv.connect().await;
    let e = back
        .resume(&room.room, &ann_joined.token)
        .await
        .expect_err("the ended meeting's session is gone");
    assert_eq!(join_error(&e), Some(ErrorCode::SessionGone), "{e:#}");
}

#[tokio::test]
async fn a_member_before_the_opening_waits_with_opens_at_and_comes_in_at_that_time() {
    let srv = standing_server(|_| {}).await;
    // The next whole minute at least a few seconds ahead: the waiting room opens then.
    let now = unix_secs();
    let mut start = (now / 60 + 1) * 60;
    if start - now < 3 {
        start += 60;
    }
    let mut body = open_room("Early birds");
    body["schedule"] = schedule_at(start);
    body["early_open_mins"] = json!(0);
    let room = create_standing(&srv.base, body).await;
    let opens_at = start * 1000;
    assert_eq!(room.json["next_meeting"]["opens_at"], opens_at);

    let (mut ann, joined) = srv.join(&room, "Ann", false).await;
    assert!(joined.waiting, "before the opening, Ann waits");
    assert_eq!(joined.room.opens_at, Some(opens_at));
    let (status, info) = api(
        &srv.base,
        Method::GET,
        &format!("/api/rooms/{}", room.room),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (info["standing"].clone(), info["opens_at"].clone()),
        (json!(true), json!(opens_at))
    );

    let room_then = ann
        .expect_within("the opening", Duration::from_secs(75), |m| match m {
            S::Admitted { room } => Some(room.clone()),
            _ => None,
        })
        .await;
    assert_eq!(room_then.opens_at, None);
    let server_now = srv.running.state.clock.now_ms();
    assert!(server_now >= opens_at, "let in no earlier than the opening");
    assert_eq!(names(&room_then), vec!["Ann"]);
    let (status, info) = api(
        &srv.base,
        Method::GET,
        &format!("/api/rooms/{}", room.room),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["opens_at"], Value::Null);
}

#[tokio::test]
async fn a_facilitator_opens_the_meeting_early() {
    let srv = standing_server(|_| {}).await;
    let start = (unix_secs() / 60 + 180) * 60; // three hours ahead
    let mut body = open_room("Evening group");
    body["schedule"] = schedule_at(start);
    let room = create_standing(&srv.base, body).await;
    let (mut ann, joined) = srv.join(&room, "Ann", false).await;
    assert!(joined.waiting);
    assert_eq!(joined.room.opens_at, Some((start - 15 * 60) * 1000));
    let (_fay, fay_joined) = srv.join(&room, "Fay", true).await;
    assert_eq!(fay_joined.role, Role::Facilitator);
    assert!(fay_joined.room.opens_at.is_none(), "open from her arrival");
    let admitted = ann
        .expect("Ann let in", |m| match m {
            S::Admitted { room } => Some(room.clone()),
            _ => None,
        })
        .await;
    assert_eq!(names(&admitted), vec!["Ann", "Fay"]);
}

#[tokio::test]
async fn rotating_the_members_link_by_the_api_refuses_the_old_link_and_keeps_those_in() {
    let srv = standing_server(|_| {}).await;
    let room = create_standing(&srv.base, open_room("Rotated group")).await;
    let (mut fay, _) = srv.join(&room, "Fay", true).await;
    let (ann, ann_joined) = srv.join(&room, "Ann", false).await;
    let id = room.json["id"].as_str().unwrap().to_owned();

    let (status, view) = api(
        &srv.base,
        Method::POST,
        &format!("/api/standing/{id}/rotate"),
        Some(json!({"link": "members"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(view.get("facilitator_secret").is_none());
    let new_link = link_of(&view);
    assert_ne!(new_link, room.room);
    let links = fay
        .expect("links", |m| match m {
            S::Links {
                join_url,
                facilitator_url,
            } => Some((join_url.clone(), facilitator_url.clone())),
            _ => None,
        })
        .await;
    assert!(links.0.ends_with(&format!("#room={new_link}")), "{links:?}");
    assert!(
        links
            .1
            .as_deref()
            .is_some_and(|u| u.contains(&new_link.0) && u.contains(&room.secret)),
        "Fay joined by the secret, so the server can give her link: {links:?}"
    );

    // The old link takes no one new, at once.
    let mut late = srv.connect().await;
    let e = late
        .join(&room.room, "Mallory", None, None)
        .await
        .expect_err("old link");
    assert_eq!(join_error(&e), Some(ErrorCode::RoomNotFound), "{e:#}");
    // The new one does, into the same meeting.
    let mut bea = srv.connect().await;
    let joined = bea
        .join(&new_link, "Bea", None, None)
        .await
        .expect("new link");
    assert_eq!(names(&joined.room), vec!["Fay", "Ann", "Bea"]);
    // Ann, who came by the old link, is still in and can resume on it.
    ann.drop_connection().await;
    let mut back = srv.connect().await;
    let resumed = back
        .resume(&room.room, &ann_joined.token)
        .await
        .expect("resume on the old link");
    assert_eq!(resumed.you, ann_joined.you);
    chat(&mut back, "still here").await;
}

#[tokio::test]
async fn rotating_the_facilitator_link_refuses_the_old_secret_at_once() {
    let srv = standing_server(|_| {}).await;
    let room = create_standing(&srv.base, open_room("Key group")).await;
    let (mut fay, _) = srv.join(&room, "Fay", true).await;
    let id = room.json["id"].as_str().unwrap().to_owned();
    let (status, view) = api(
        &srv.base,
        Method::POST,
        &format!("/api/standing/{id}/rotate"),
        Some(json!({"link": "facilitator"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let secret = view["facilitator_secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(secret, room.secret);
    assert!(
        view["facilitator_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("&key={secret}"))
    );
    fay.expect("links", |m| matches!(m, S::Links { .. }).then_some(()))
        .await;

    let mut old = srv.connect().await;
    let e = old
        .join(&room.room, "Oscar", Some(room.secret.clone()), None)
        .await
        .expect_err("old secret");
    assert_eq!(join_error(&e), Some(ErrorCode::BadSecret), "{e:#}");
    let mut new = srv.connect().await;
    let joined = new
        .join(&room.room, "Nia", Some(secret), None)
        .await
        .expect("new secret");
    assert_eq!(joined.role, Role::Facilitator);
    // Fay, in before the rotation, stays a facilitator.
    chat(&mut fay, "still facilitating").await;
}

#[tokio::test]
async fn a_facilitator_rotates_links_in_the_meeting_and_a_member_may_not() {
    let srv = standing_server(|_| {}).await;
    let room = create_standing(&srv.base, open_room("In-meeting rotation")).await;
    let (mut fay, _) = srv.join(&room, "Fay", true).await;
    let (mut ann, _) = srv.join(&room, "Ann", false).await;
    ann.fails(
        C::RotateLink {
            id: None,
            link: LinkKind::Members,
        },
        ErrorCode::Forbidden,
    )
    .await;

    fay.ok(C::RotateLink {
        id: None,
        link: LinkKind::Members,
    })
    .await;
    let join_url = fay
        .expect("links", |m| match m {
            S::Links { join_url, .. } => Some(join_url.clone()),
            _ => None,
        })
        .await;
    let new_link = RoomId(join_url.rsplit("#room=").next().unwrap().to_owned());
    assert_ne!(new_link, room.room);
    ann.none_pending("links for a member", |m| matches!(m, S::Links { .. }))
        .await;
    let mut late = srv.connect().await;
    let e = late
        .join(&room.room, "Mallory", None, None)
        .await
        .expect_err("old link");
    assert_eq!(join_error(&e), Some(ErrorCode::RoomNotFound), "{e:#}");
    let mut bea = srv.connect().await;
    bea.join(&new_link, "Bea", None, None)
        .await
        .expect("new link");

    fay.ok(C::RotateLink {
        id: None,
        link: LinkKind::Facilitator,
    })
    .await;
    let fac_url = fay
        .expect("links", |m| match m {
            S::Links {
                facilitator_url, ..
            } => facilitator_url.clone(),
            _ => None,
        })
        .await;
    assert!(!fac_url.contains(&room.secret));
    let mut old = srv.connect().await;
    let e = old
        .join(&new_link, "Oscar", Some(room.secret.clone()), None)
        .await
        .expect_err("old secret");
    assert_eq!(join_error(&e), Some(ErrorCode::BadSecret), "{e:#}");
    let secret = fac_url.rsplit("&key=").next().unwrap().to_owned();
    let mut nia = srv.connect().await;
    let joined = nia
        .join(&new_link, "Nia", Some(secret), None)
        .await
        .expect("new secret");
    assert_eq!(joined.role, Role::Facilitator);

    // An ad-hoc room's links cannot be rotated.
    let adhoc = create_adhoc(&srv.base, json!({})).await;
    let (mut host, _) = srv.join(&adhoc, "Host", true).await;
    host.fails(
        C::RotateLink {
            id: None,
            link: LinkKind::Members,
        },
        ErrorCode::NotStanding,
    )
    .await;
}

/// The carry-over token a member is sent before the server's graceful stop closes them.
async fn carry_token(c: &mut Client) -> String {
    let (seen, close) = c.until_closed().await;
    let token = seen.iter().find_map(|m| match m {
        S::CarryOver { token } => Some(token.clone()),
        _ => None,
    });
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1001, "going away");
    token.unwrap_or_else(|| panic!("no carry_over in {seen:#?}"))
}

#[tokio::test]
async fn a_graceful_restart_carries_role_admission_hand_order_and_mute_over() {
    let data = scratch_dir("circle-standing-restart-");
    let data_s = data.display().to_string();
    let first = server_with(|c| {
        c.rooms.operator_key = OPERATOR_KEY.into();
        c.media.enabled = false;
        c.storage.data_dir = data_s.clone();
    })
    .await;
    let room = create_standing(
        &first.base,
        json!({"title": "Restart group", "settings": {"waiting_room": true, "mute_on_entry": true}}),
    )
    .await;
    let (mut fay, _) = first.join(&room, "Fay", true).await;
    let mut people = Vec::new();
    for name in ["Bea", "Cal", "Dan", "Eve"] {
        let (c, j) = first.join(&room, name, false).await;
        people.push((c, j));
    }
    for (_, j) in &people[..3] {
        fay.ok(C::Admit {
            id: None,
            participant: j.you.clone(),
        })
        .await;
    }
    people[0].0.ok(C::RaiseHand { id: None }).await;
    people[1].0.ok(C::RaiseHand { id: None }).await;
    // The facilitator puts Cal first: the order she kept is what comes back.
    fay.ok(C::MoveHand {
        id: None,
        participant: people[1].1.you.clone(),
        position: 0,
    })
    .await;
    fay.ok(C::AllowSpeak {
        id: None,
        participant: people[2].1.you.clone(),
    })
    .await;

    let addr = first.running.addr;
    let other_room = create_adhoc(&first.base, json!({})).await;
    let forged_keys = first.running.state.keys.clone();
    let TestServer {
        running,
        data: _keep,
        ..
    } = first;
    running.shutdown().await;
    let fay_token = carry_token(&mut fay).await;
    let mut tokens = Vec::new();
    for (c, _) in people.iter_mut() {
        tokens.push(carry_token(c).await);
    }

    // A new process on the same data directory and port: the members come back with their tokens.
    let mut config = test_config();
    config.rooms.operator_key = OPERATOR_KEY.into();
    config.media.enabled = false;
    config.storage.data_dir = data_s.clone();
    config.server.listen = addr;
    let second = circle_server::start(config).await.expect("restarts");
    let ws = format!("ws://{addr}/ws");

    // Refusals first: a token for another room, a forged and an expired one join nobody.
    let mut c = Client::connect(&ws, None).await.unwrap();
    let e = c
        .join_carried(&other_room.room, "Bea", &tokens[0])
        .await
        .expect_err("another room's link");
    assert_eq!(join_error(&e), Some(ErrorCode::InvalidToken), "{e:#}");
    let forged = format!("{}x", &tokens[0][..tokens[0].len() - 1]);
    let e = c
        .join_carried(&room.room, "Bea", &forged)
        .await
        .expect_err("forged");
    assert_eq!(join_error(&e), Some(ErrorCode::InvalidToken), "{e:#}");
    let expired = forged_keys.issue_carry_expired(&room.room, &circle_room_carry("Bea"));
    let e = c
        .join_carried(&room.room, "Bea", &expired)
        .await
        .expect_err("expired");
    assert_eq!(join_error(&e), Some(ErrorCode::TokenExpired), "{e:#}");

    // Members come back before the facilitator, Bea before Cal.
    let mut back = Vec::new();
    for (i, name) in [(0, "Bea"), (1, "Cal"), (2, "Dan"), (3, "Eve")] {
        let mut c = Client::connect(&ws, None).await.unwrap();
        let j = c
            .join_carried(&room.room, name, &tokens[i])
            .await
            .expect("carried join");
        back.push((name, c, j));
    }
    let mut fay2 = Client::connect(&ws, None).await.unwrap();
    let fay_back = fay2
        .join_carried(&room.room, "Fay", &fay_token)
        .await
        .expect("Fay back");
    assert_eq!(
        fay_back.role,
        Role::Facilitator,
        "Fay is a facilitator again"
    );
    let by_name = |n: &str| {
        back.iter()
            .find(|(name, _, _)| *name == n)
            .map(|(_, _, j)| j.clone())
            .unwrap()
    };
    assert!(!by_name("Bea").waiting && !by_name("Cal").waiting && !by_name("Dan").waiting);
    assert!(by_name("Eve").waiting, "Eve was waiting, and waits");
    let queue: Vec<_> = fay_back
        .room
        .floor
        .queue
        .iter()
        .map(|q| q.name.clone().unwrap())
        .collect();
    assert_eq!(queue, vec!["Cal", "Bea"], "the hands keep their order");
    let view = |n: &str| {
        fay_back
            .room
            .participants
            .iter()
            .find(|p| p.name == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} in Fay's view"))
    };
    assert!(view("Bea").muted_by_facilitator && view("Cal").muted_by_facilitator);
    assert!(
        !view("Dan").muted_by_facilitator,
        "Dan had been allowed to speak"
    );
    assert_eq!(view("Eve").presence, Presence::Waiting);
    drop(back);
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A carry-over as a token could hold it, for the expired-token case.
fn circle_room_carry(name: &str) -> circle_room::CarryOver {
    circle_room::CarryOver {
        name: name.into(),
        device: None,
        place: circle_room::Carried {
            role: Role::Member,
            admitted: true,
            hand_raised_at: None,
            hand_place: None,
            muted_by_facilitator: false,
        },
    }
}

#[tokio::test]
async fn the_organiser_api_needs_the_key_and_the_origin() {
    let off = server_with(|c| c.media.enabled = false).await;
    let (status, body) = api(&off.base, Method::GET, "/api/standing", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "organiser_disabled");
    assert!(body["message"].as_str().unwrap().contains("operator_key"));

    let srv = standing_server(|_| {}).await;
    for key in [None, Some("wrong-key")] {
        for (method, path) in [
            (Method::GET, "/api/standing"),
            (Method::POST, "/api/standing"),
            (Method::GET, "/api/meetings"),
            (Method::POST, "/api/meetings/00000000/end"),
        ] {
            let (status, body) =
                api_as(&srv.base, method, path, Some(json!({"title": "x"})), key).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {key:?}");
            assert_eq!(body["code"], "unauthorized");
        }
    }
    let res = reqwest::Client::new()
        .get(format!("{}/api/standing", srv.base))
        .bearer_auth(OPERATOR_KEY)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "origin_not_allowed");
}

#[tokio::test]
async fn the_organiser_api_creates_lists_changes_and_deletes_rooms() {
    let srv = standing_server(|_| {}).await;
    let b = &srv.base;
    let room = create_standing(
        b,
        json!({"title": "Monday group", "schedule": {"weekdays": ["mon"], "start": "19:00",
               "time_zone": "Europe/London", "duration_mins": 90}, "early_open_mins": 10}),
    )
    .await;
    let id = room.json["id"].as_str().unwrap().to_owned();
    assert_eq!(room.json["early_open_mins"], 10);
    assert!(
        room.json["facilitator_url"]
            .as_str()
            .unwrap()
            .ends_with(&room.secret)
    );
    let next = &room.json["next_meeting"];
    assert_eq!(
        next["starts_at"].as_u64().unwrap() - next["opens_at"].as_u64().unwrap(),
        10 * 60_000
    );
    create_standing(b, json!({"title": "Another group"})).await;

    let (status, list) = api(b, Method::GET, "/api/standing", None).await;
    assert_eq!(status, StatusCode::OK);
    let titles: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("Another group"), json!("Monday group")]);
    assert!(
        list[0].get("facilitator_secret").is_none(),
        "never shown again"
    );

    let (status, got) = api(b, Method::GET, &format!("/api/standing/{id}"), None).await;
    assert_eq!(
        (status, got["title"].clone()),
        (StatusCode::OK, json!("Monday group"))
    );
    let (status, changed) = api(
        b,
        Method::PATCH,
        &format!("/api/standing/{id}"),
        Some(
            json!({"title": "Monday night", "schedule": null, "settings": {"chat_enabled": false}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["title"], "Monday night");
    assert_eq!(changed["schedule"], Value::Null);
    assert_eq!(changed["next_meeting"], Value::Null);
    assert_eq!(changed["settings"]["chat_enabled"], false);
    assert_eq!(changed["settings"]["waiting_room"], true, "the rest kept");

    // Bad bodies, each with a clear answer.
    let cases = [
        (
            Method::POST,
            "/api/standing".to_owned(),
            json!([{"title": "x"}]),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "object",
        ),
        (
            Method::POST,
            "/api/standing".to_owned(),
            json!({"title": "x", "schedule": {"weekdays": ["tue"], "start": "25:00", "time_zone": "UTC", "duration_mins": 60}}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "start",
        ),
        (
            Method::POST,
            "/api/standing".to_owned(),
            json!({"title": "x", "schedule": {"weekdays": ["tue"], "start": "19:00", "time_zone": "Mars/Olympus", "duration_mins": 60}}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "time zone",
        ),
        (
            Method::POST,
            "/api/standing".to_owned(),
            json!({"title": "monday NIGHT"}),
            StatusCode::CONFLICT,
            "duplicate_title",
            "title",
        ),
        (
            Method::POST,
            "/api/standing".to_owned(),
            json!({"title": "x", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "colour",
        ),
        (
            Method::POST,
            "/api/standing".to_owned(),
            json!({}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "title",
        ),
        (
            Method::PATCH,
            format!("/api/standing/{id}"),
            json!({"title": "Another GROUP"}),
            StatusCode::CONFLICT,
            "duplicate_title",
            "title",
        ),
        (
            Method::GET,
            "/api/standing/nope".to_owned(),
            Value::Null,
            StatusCode::NOT_FOUND,
            "standing_room_not_found",
            "",
        ),
        (
            Method::POST,
            format!("/api/standing/{id}/rotate"),
            json!({"link": "everything"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "members",
        ),
    ];
    for (method, path, body, want, code, says) in cases {
        let body = (!body.is_null()).then_some(body);
        let (status, got) = api(b, method.clone(), &path, body.clone()).await;
        assert_eq!(status, want, "{method} {path} {body:?}: {got}");
        assert_eq!(got["code"], code, "{got}");
        let message = got["message"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            message.contains(says),
            "{message:?} should mention {says:?}"
        );
    }

    // A live meeting: listed with counts (never names), ended by its tag.
    let (_fay, _) = srv.join(&room, "Fay", true).await;
    let (mut ann, _) = srv.join(&room, "Ann", false).await;
    let live = until("Fay and Ann counted", Duration::from_secs(5), || async {
        let live = meetings(b).await;
        let counted = live.len() == 1 && live[0]["participants"] == 1 && live[0]["waiting"] == 1;
        counted.then_some(live)
    })
    .await;
    assert!(!live[0].to_string().contains("Ann"));
    let tag = live[0]["meeting"].as_str().unwrap().to_owned();
    let (status, _) = api(b, Method::POST, &format!("/api/meetings/{tag}/end"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (seen, _) = ann.until_closed().await;
    assert!(seen.iter().any(|m| matches!(m, S::MeetingEnded)));
    until_no_meeting(b).await;
    let (status, _) = api(b, Method::POST, &format!("/api/meetings/{tag}/end"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting a room ends its meeting and its link.
    let (mut bea, _) = srv.join(&room, "Bea", true).await;
    let (status, _) = api(b, Method::DELETE, &format!("/api/standing/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (seen, _) = bea.until_closed().await;
    assert!(seen.iter().any(|m| matches!(m, S::MeetingEnded)));
    until_no_meeting(b).await;
    let mut late = srv.connect().await;
    let e = late
        .join(&room.room, "Cy", None, None)
        .await
        .expect_err("deleted");
    assert_eq!(join_error(&e), Some(ErrorCode::RoomNotFound), "{e:#}");
    let (status, _) = api(b, Method::GET, &format!("/api/standing/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_locked_database_answers_503_while_a_live_meeting_goes_on() {
    let srv = standing_server(|_| {}).await;
    let room = create_standing(&srv.base, open_room("Locked out")).await;
    let (mut ann, _) = srv.join(&room, "Ann", false).await;
    let (mut bea, _) = srv.join(&room, "Bea", false).await;

    // Another process holds the write lock on the SQLite file.
    let file = srv.data.0.join("circle.sqlite3");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file);
    let mut conn = sqlx::ConnectOptions::connect(&options)
        .await
        .expect("open the database");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .expect("take the write lock");

    let (status, body) = api(
        &srv.base,
        Method::POST,
        "/api/standing",
        Some(json!({"title": "New"})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "storage_unavailable");
    assert!(
        body["message"].as_str().unwrap().contains("locked"),
        "{body}"
    );
    // The meeting in progress does not notice.
    chat(&mut ann, "still talking").await;
    bea.expect("Ann's chat", |m| match m {
        S::Chat { message } if message.text == "still talking" => Some(()),
        _ => None,
    })
    .await;

    sqlx::query("ROLLBACK")
        .execute(&mut conn)
        .await
        .expect("release");
    let (status, body) = api(
        &srv.base,
        Method::POST,
        "/api/standing",
        Some(json!({"title": "New"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

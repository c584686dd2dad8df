//! The HTTP API: room creation (open, or with the operator key), room lookup, health.

use circle_tests::{
    proto::{ClientMsg as C, SettingsPatch},
    server, server_with,
};
use serde_json::{Value, json};

#[tokio::test]
async fn creating_a_room_returns_unguessable_ids_and_both_links() {
    let srv = server().await;
    let a = srv.create_room(json!({"title": "Grief circle"})).await;
    let b = srv.create_room(json!({})).await;
    assert_ne!(a.room, b.room);
    assert_eq!(a.room.0.len(), 22);
    assert_eq!(a.secret.len(), 22);
    let j = &a.json;
    assert_eq!(j["title"], "Grief circle");
    assert_eq!(b.json["title"], "Circle meeting");
    let join = j["join_url"].as_str().unwrap();
    let fac = j["facilitator_url"].as_str().unwrap();
    assert!(join.contains(&a.room.0) && !join.contains(&a.secret));
    assert!(
        fac.contains(&format!("#room={}&key={}", a.room, a.secret)),
        "the secret rides in the fragment, never sent to a web server: {fac}"
    );
    assert_eq!(
        j["settings"]["waiting_room"], true,
        "waiting room on by default"
    );
    assert_eq!(
        j["settings"]["mute_on_entry"], true,
        "mute on entry by default"
    );

    let info: Value = reqwest::get(format!("{}/api/rooms/{}", srv.base, a.room))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["title"], "Grief circle");
    assert!(info.get("facilitator_secret").is_none());
    let missing = reqwest::get(format!("{}/api/rooms/nope", srv.base))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "room_not_found");

    let health: Value = reqwest::get(format!("{}/healthz", srv.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["rooms"], 2);
}

#[tokio::test]
async fn bad_room_requests_are_refused() {
    let srv = server().await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/rooms", srv.base);
    let long = http
        .post(&url)
        .json(&json!({"title": "t".repeat(81)}))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
    let unknown = http
        .post(&url)
        .json(&json!({"colour": "red"}))
        .send()
        .await
        .unwrap();
    assert!(unknown.status().is_client_error());
    let bad_setting = http
        .post(&url)
        .json(&json!({"settings": {"waiting_room": "yes"}}))
        .send()
        .await
        .unwrap();
    assert!(bad_setting.status().is_client_error());
}

#[tokio::test]
async fn room_creation_can_require_the_operator_key() {
    let srv = server_with(|c| c.rooms.operator_key = "s3cret-operator-key".into()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/rooms", srv.base);
    let without = http.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let wrong = http
        .post(&url)
        .bearer_auth("guess")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http
        .post(&url)
        .bearer_auth("s3cret-operator-key")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 201);
}

#[tokio::test]
async fn the_web_client_is_served_with_protective_headers() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../web-client");
    let srv = server_with(|c| c.client.serve_dir = dir.into()).await;
    let client = srv.running.client_addr.expect("client served");
    let res = reqwest::get(format!("http://{client}/")).await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains(&format!("ws://{}", srv.running.addr)), "{csp}");
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("<script type=\"module\"")
    );
}

#[tokio::test]
async fn a_json_array_or_a_hidden_character_title_is_not_a_room() {
    let srv = server().await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/rooms", srv.base);
    let array = http
        .post(&url)
        .json(&json!(["Title", {"waiting_room": false}]))
        .send()
        .await
        .unwrap();
    assert_eq!(array.status(), 400, "an array is not the documented object");
    let bidi = http
        .post(&url)
        .json(&json!({"title": "Tuesday \u{202E}gnirehtag"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bidi.status(), 400, "a bidirectional override in a title");
    let health: serde_json::Value = http
        .get(format!("{}/healthz", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["rooms"], 0, "no room was made");
}

#[tokio::test]
async fn another_site_cannot_create_rooms_through_its_visitors() {
    let srv = server_with(|c| c.client.url = "https://circle.example".into()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/rooms", srv.base);
    let hostile = http
        .post(&url)
        .header("Origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status(), 403);
    let ours = http
        .post(&url)
        .header("Origin", "https://circle.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ours.status(), 201);
}

#[tokio::test]
async fn one_client_cannot_take_every_room() {
    let srv = server_with(|c| {
        c.limits.rooms_per_client_per_min = 1;
        c.limits.rooms_per_client_burst = 5;
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/rooms", srv.base);
    let create = |from: &'static str| {
        http.post(&url)
            .header("X-Forwarded-For", from)
            .json(&json!({}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(create("198.51.100.7").await.unwrap().status(), 201);
    }
    let refused = create("198.51.100.7").await.unwrap();
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Someone else, at the same moment, still can.
    assert_eq!(create("203.0.113.50").await.unwrap().status(), 201);
}

/// What `GET /api/rooms/{room}` says now.
async fn room_info(srv: &circle_tests::TestServer, room: &circle_tests::CreatedRoom) -> Value {
    reqwest::get(format!("{}/api/rooms/{}", srv.base, room.room))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_join_page_can_tell_a_locked_or_full_room_before_a_name_is_typed() {
    let srv = server_with(|c| c.rooms.max_participants = 2).await;
    let room = srv.create_room(json!({})).await;
    let info = room_info(&srv, &room).await;
    assert_eq!(
        (&info["locked"], &info["full"]),
        (&json!(false), &json!(false))
    );

    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    fac.ok(C::UpdateSettings {
        id: None,
        settings: SettingsPatch {
            locked: Some(true),
            ..Default::default()
        },
    })
    .await;
    // The room publishes its state after each step; this request's answer comes after that.
    fac.ok(C::LowerHand {
        id: None,
        participant: None,
    })
    .await;
    let info = room_info(&srv, &room).await;
    assert_eq!(
        (&info["locked"], &info["full"]),
        (&json!(true), &json!(false))
    );

    fac.ok(C::UpdateSettings {
        id: None,
        settings: SettingsPatch {
            locked: Some(false),
            ..Default::default()
        },
    })
    .await;
    let (_kim, _) = srv.join(&room, "Kim", false).await;
    fac.ok(C::LowerHand {
        id: None,
        participant: None,
    })
    .await;
    let info = room_info(&srv, &room).await;
    assert_eq!(
        (&info["locked"], &info["full"]),
        (&json!(false), &json!(true))
    );
    assert!(
        info.get("participants").is_none(),
        "nothing about who is inside"
    );

    let locked_from_the_start = srv.create_room(json!({"settings": {"locked": true}})).await;
    assert_eq!(
        room_info(&srv, &locked_from_the_start).await["locked"],
        true
    );
}

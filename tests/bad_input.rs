//! Bad input gets a clear error reply, never a panic, a hang, or harm to anyone else in the room.

use circle_tests::{
    Client, join_error,
    proto::{ClientMsg as C, ErrorCode, PROTOCOL_VERSION, RequestId, RoomId, ServerMsg as S},
    server, server_with,
};
use serde_json::json;

/// Sends raw text and returns the error it earned.
async fn error_for(c: &mut Client, text: &str) -> (Option<RequestId>, ErrorCode, String) {
    c.send_raw(text).await;
    c.expect("an error", |m| match m {
        S::Error {
            id, code, message, ..
        } => Some((id.clone(), *code, message.clone())),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_survives() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let mut c = srv.connect().await;

    assert_eq!(error_for(&mut c, "{not json").await.1, ErrorCode::BadJson);
    assert_eq!(error_for(&mut c, "[1,2,3]").await.1, ErrorCode::BadJson);
    assert_eq!(
        error_for(&mut c, r#"{"id":7}"#).await.1,
        ErrorCode::BadRequest
    );
    let (id, code, _) = error_for(&mut c, r#"{"type":"dance","id":8}"#).await;
    assert_eq!(
        (id, code),
        (Some(RequestId::Num(8)), ErrorCode::UnknownType)
    );
    let (id, code, message) = error_for(
        &mut c,
        r#"{"type":"join","id":"j","protocol":1,"name":"Sam"}"#,
    )
    .await;
    assert_eq!(
        (id, code),
        (Some(RequestId::Str("j".into())), ErrorCode::BadRequest)
    );
    assert!(
        message.contains("room"),
        "names the missing field: {message}"
    );
    let (_, code, _) = error_for(
        &mut c,
        r#"{"type":"join","protocol":1,"room":"r","name":"Sam","colour":"red"}"#,
    )
    .await;
    assert_eq!(code, ErrorCode::BadRequest, "unknown fields are refused");

    // Before joining, only join and resume make sense.
    c.fails(
        C::Chat {
            id: None,
            text: "hi".into(),
        },
        ErrorCode::NotJoined,
    )
    .await;
    let wrong_version = C::Join {
        id: None,
        protocol: PROTOCOL_VERSION + 1,
        room: room.room.clone(),
        name: "Sam".into(),
        secret: None,
        device: None,
        carry: None,
    };
    c.fails(wrong_version, ErrorCode::UnsupportedProtocol).await;

    // Still usable: a proper join works, and a second join on the same socket is refused.
    c.join(&room.room, "Sam", None, None)
        .await
        .expect("join after errors");
    let err = c
        .join(&room.room, "Sam again", None, None)
        .await
        .expect_err("second join");
    assert_eq!(join_error(&err), Some(ErrorCode::AlreadyJoined));
    c.ok(C::RaiseHand { id: None }).await;
}

#[tokio::test]
async fn bad_joins_are_refused_with_their_reason() {
    let srv = server().await;
    let room = srv.create_room(json!({})).await;
    let (_fac, _) = srv.join(&room, "Robin", true).await;
    let mut c = srv.connect().await;
    let code = |r: anyhow::Result<circle_tests::Joined>| join_error(&r.expect_err("refused"));

    assert_eq!(
        code(
            c.join(&RoomId("nosuchroom".into()), "Sam", None, None)
                .await
        ),
        Some(ErrorCode::RoomNotFound)
    );
    assert_eq!(
        code(c.join(&room.room, "   ", None, None).await),
        Some(ErrorCode::InvalidName)
    );
    assert_eq!(
        code(c.join(&room.room, &"n".repeat(33), None, None).await),
        Some(ErrorCode::InvalidName)
    );
    assert_eq!(
        code(c.join(&room.room, "Sam\u{0}", None, None).await),
        Some(ErrorCode::InvalidName)
    );
    assert_eq!(
        code(c.join(&room.room, " robin ", None, None).await),
        Some(ErrorCode::NameTaken),
        "names are unique, ignoring case and spaces"
    );
    assert_eq!(
        code(c.join(&room.room, "Sam", Some("wrong".into()), None).await),
        Some(ErrorCode::BadSecret)
    );
    assert_eq!(
        code(c.join(&room.room, "Sam", None, Some("d".repeat(65))).await),
        Some(ErrorCode::BadRequest)
    );
    let j = c
        .join(&room.room, "  Sam  ", None, None)
        .await
        .expect("fine join");
    assert_eq!(
        j.room.participants[0].name, "Sam",
        "the name is stored trimmed"
    );
}

#[tokio::test]
async fn oversized_frames_and_text() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (mut ann, _) = srv.join(&room, "Ann", false).await;

    // Over the chat limit: a clear error.
    ann.fails(
        C::Chat {
            id: None,
            text: "a".repeat(2001),
        },
        ErrorCode::InvalidText,
    )
    .await;
    ann.fails(
        C::Chat {
            id: None,
            text: " \n ".into(),
        },
        ErrorCode::InvalidText,
    )
    .await;

    // Over the protocol frame limit (64 KiB): an error, and the connection stays.
    let big = format!(r#"{{"type":"chat","text":"{}"}}"#, "a".repeat(70 * 1024));
    assert_eq!(error_for(&mut ann, &big).await.1, ErrorCode::FrameTooLarge);
    ann.ok(C::RaiseHand { id: None }).await;

    // Over the websocket limit (256 KiB): the server closes with 1009 (message too big).
    let huge = "a".repeat(300 * 1024);
    ann.send_raw(huge).await;
    let (_, close) = ann.until_closed().await;
    assert_eq!(u16::from(close.expect("close frame").code), 1009);
}

#[tokio::test]
async fn binary_frames_are_refused() {
    let srv = server().await;
    let mut c = srv.connect().await;
    c.send_binary(vec![0, 1, 2]).await;
    let code = c
        .expect("error", |m| match m {
            S::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::BadJson);
}

#[tokio::test]
async fn a_chat_flood_is_rate_limited_without_stalling_the_room() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (mut flood, fj) = srv.join(&room, "Flood", false).await;
    let (mut calm, _) = srv.join(&room, "Calm", false).await;

    let mut limited = 0;
    let mut delivered = 0;
    for i in 0..15 {
        match flood
            .request(&C::Chat {
                id: None,
                text: format!("spam {i}"),
            })
            .await
            .expect("reply")
        {
            S::Ack { .. } => delivered += 1,
            S::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited >= 5, "the burst is bounded: {limited} limited");
    assert!(delivered >= 5, "the burst (5) goes through: {delivered}");

    // The calm member is unaffected: they saw exactly what was delivered, and can chat and act.
    calm.ok(C::Chat {
        id: None,
        text: "still here".into(),
    })
    .await;
    calm.none_pending("an error", |m| matches!(m, S::Error { .. }))
        .await;
    let from_flood = calm
        .buffered()
        .iter()
        .filter(|m| matches!(m, S::Chat { message } if message.from == fj.you))
        .count();
    assert_eq!(from_flood, delivered);
}

#[tokio::test]
async fn hand_toggling_is_rate_limited() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (mut ann, _) = srv.join(&room, "Ann", false).await;
    let mut limited = 0;
    for i in 0..12 {
        let msg = if i % 2 == 0 {
            C::RaiseHand { id: None }
        } else {
            C::LowerHand {
                id: None,
                participant: None,
            }
        };
        if let S::Error {
            code: ErrorCode::RateLimited,
            ..
        } = ann.request(&msg).await.expect("reply")
        {
            limited += 1;
        }
    }
    assert!(limited >= 6, "{limited} limited");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_without_stalling_the_room() {
    let srv = server_with(|c| {
        c.limits.outbound_queue = 32;
        c.rooms.chat_max_chars = 50_000;
        c.limits.chat_per_sec = 100_000;
        c.limits.chat_burst = 100_000;
        c.limits.requests_per_sec = 100_000;
        c.limits.requests_burst = 100_000;
    })
    .await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (sender, _) = srv.join(&room, "Sender", false).await;
    let (mut reader, _) = srv.join(&room, "Reader", false).await;
    let mut stuck = Client::connect_small_buffer(&srv.ws_url(), srv.running.addr)
        .await
        .expect("connects");
    let sj = stuck
        .join(&room.room, "Stuck", None, None)
        .await
        .expect("joins"); // and never reads again
    let stuck_id = sj.you.clone();

    // The reader keeps reading in its own task until it sees the stuck member dropped.
    let watcher = tokio::spawn(async move {
        let mut chats = 0usize;
        loop {
            match reader.next_event().await {
                Some(S::Chat { .. }) => chats += 1,
                Some(S::ParticipantUpdated { participant })
                    if participant.id == stuck_id
                        && participant.presence == circle_tests::proto::Presence::Reconnecting =>
                {
                    return (chats, true);
                }
                Some(_) => {}
                None => return (chats, false),
            }
        }
    });
    let text = "x".repeat(50_000);
    let mut sender = sender;
    let mut sent = 0usize;
    while !watcher.is_finished() && sent < 5_000 {
        sender
            .ok(C::Chat {
                id: None,
                text: text.clone(),
            })
            .await;
        sender.clear();
        sent += 1;
    }
    let (chats, dropped) = watcher.await.expect("watcher");
    assert!(
        dropped,
        "the stuck member was dropped as too slow (after {sent} messages)"
    );
    assert!(chats > 0 && chats <= sent);
}

#[tokio::test]
async fn websocket_origins_are_checked() {
    let srv = server_with(|c| {
        c.client.url = "http://127.0.0.1:8080".into();
        c.client.allow_missing_origin = false;
    })
    .await;
    let url = srv.ws_url();
    assert!(
        Client::connect(&url, Some("http://127.0.0.1:8080"))
            .await
            .is_ok()
    );
    assert!(
        Client::connect(&url, Some("http://localhost:8080"))
            .await
            .is_ok()
    );
    let refused = Client::connect(&url, Some("https://evil.example"))
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("403"), "{refused}");
    assert!(Client::connect(&url, None).await.is_err());
}

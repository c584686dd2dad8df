//! How long a room lives with nobody in it: a room nobody ever joined goes after
//! `[rooms] unused_room_ttl_secs`, much sooner than a used one (`empty_room_ttl_secs`).

use circle_tests::{proto::ClientMsg as C, server_with};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn a_room_nobody_joined_is_forgotten_long_before_a_used_one() {
    let srv = server_with(|c| {
        c.rooms.unused_room_ttl_secs = 1;
        c.rooms.empty_room_ttl_secs = 3600;
    })
    .await;
    let unused = srv.create_room(json!({})).await;
    let used = srv.create_room(json!({})).await;
    let (mut ann, _) = srv.join(&used, "Ann", true).await;
    ann.ok(C::Leave { id: None }).await;

    let rooms = &srv.running.state.rooms;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rooms.contains_key(&unused.room) {
        assert!(
            Instant::now() < deadline,
            "the unused room is still there after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = |room: &circle_tests::CreatedRoom| {
        let url = format!("{}/api/rooms/{}", srv.base, room.room);
        async move { reqwest::get(url).await.expect("GET room").status() }
    };
    assert_eq!(status(&unused).await, 404);
    assert!(
        rooms.contains_key(&used.room),
        "the used room was forgotten"
    );
    assert_eq!(status(&used).await, 200);
}

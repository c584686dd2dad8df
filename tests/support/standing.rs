//! Standing rooms in end-to-end tests: a server with the organiser API on, its API as a typed
//! helper, and joins that carry a carry-over token.

use crate::{Client, CreatedRoom, Joined, TestServer, WAIT, joined, server_with};
use anyhow::Result;
use circle_protocol::{ClientMsg, PROTOCOL_VERSION, RoomId, ServerMsg};
use circle_server::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// The operator key the organiser tests use.
pub const OPERATOR_KEY: &str = "organiser-key-for-the-tests-0123456789";

/// A server with the organiser API on (and no voice, unless `tweak` turns it back on).
pub async fn standing_server(tweak: impl FnOnce(&mut Config)) -> TestServer {
    server_with(|c| {
        c.rooms.operator_key = OPERATOR_KEY.into();
        c.media.enabled = false;
        tweak(c);
    })
    .await
}

/// Calls the organiser API with the operator key: the status and the JSON body (`null` if none).
pub async fn api(
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api_as(base, method, path, body, Some(OPERATOR_KEY)).await
}

/// Calls the API with `key` as the bearer token (none if `None`).
pub async fn api_as(
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("API request");
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A standing room made through the API, as a [`CreatedRoom`] (its members' link and secret).
pub async fn create_standing(base: &str, body: Value) -> CreatedRoom {
    let (status, json) = api(base, Method::POST, "/api/standing", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    CreatedRoom {
        room: link_of(&json),
        secret: json["facilitator_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
        json,
    }
}

/// An ad-hoc room made with `POST /api/rooms` (with the operator key, which a standing server has).
pub async fn create_adhoc(base: &str, body: Value) -> CreatedRoom {
    let (status, json) = api(base, Method::POST, "/api/rooms", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    CreatedRoom {
        room: RoomId(json["room"].as_str().expect("room").to_owned()),
        secret: json["facilitator_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
        json,
    }
}

/// The members' link id in a view's `join_url`.
pub fn link_of(view: &Value) -> RoomId {
    let url = view["join_url"].as_str().expect("join_url");
    RoomId(url.rsplit("#room=").next().expect("#room=").to_owned())
}

impl Client {
    /// Joins `room` with a carry-over token.
    pub async fn join_carried(&mut self, room: &RoomId, name: &str, carry: &str) -> Result<Joined> {
        let msg = ClientMsg::Join {
            id: None,
            protocol: PROTOCOL_VERSION,
            room: room.clone(),
            name: name.into(),
            secret: None,
            device: None,
            carry: Some(carry.into()),
        };
        joined(self.request(&msg).await?)
    }

    /// Like [`Client::expect`] with a deadline of `within` instead of [`WAIT`], for what comes at
    /// a time the server chose (a meeting's opening).
    pub async fn expect_within<T>(
        &mut self,
        what: &str,
        within: Duration,
        mut pick: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within.max(WAIT);
        loop {
            if let Some(t) = crate::take_buffered(&mut self.inbox, &mut pick) {
                return t;
            }
            match self.read_until(deadline).await {
                Ok(m) => self.inbox.push_back(m),
                Err(e) => panic!("waiting for {what}: {e}; buffered: {:#?}", self.inbox),
            }
        }
    }
}

//! TURN through the server: `joined` hands each session fresh credentials for the embedded relay;
//! with them a client gets an allocation, may reach the voice relay's own address, and nothing else.
//! Loopback only: the embedded relay listens on 127.0.0.1, the voice relay is 127.0.0.1 too.

use circle_tests::{proto::IceServer, server_with};
use serde_json::json;
use std::{sync::Arc, time::Duration};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

const SECRET: &str = "a long random secret shared with coturn";

/// A guard against hangs, not a timing assertion: each step is a loopback round trip.
const STEP: Duration = Duration::from_secs(5);

#[tokio::test]
async fn joined_credentials_open_the_embedded_relay_to_the_voice_relay_only() {
    let srv = server_with(|c| {
        c.turn.secret = SECRET.into();
        c.turn.udp = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (_ann, first) = srv.join(&room, "Ann", false).await;
    let (_bob, second) = srv.join(&room, "Bob", false).await;
    let turn_entry = |j: &circle_tests::Joined| -> IceServer {
        j.ice_servers
            .iter()
            .find(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
            .cloned()
            .expect("a TURN entry in joined.ice_servers")
    };
    let ann = turn_entry(&first);
    let bob = turn_entry(&second);
    let user = ann.username.clone().expect("a user name");
    let (expiry, id) = user.split_once(':').expect("expiry:id");
    assert!(
        expiry.parse::<u64>().is_ok(),
        "the user name starts with its expiry"
    );
    assert!(
        !id.is_empty() && !user.contains("Ann"),
        "the id names no one"
    );
    assert_ne!(ann.username, bob.username, "each session has its own");

    let turn = srv.running.state.turn.clone().expect("TURN is on");
    let stats = || turn.stats().expect("the embedded relay runs");
    let relay_addr = ann.urls[0]
        .trim_start_matches("turn:")
        .split('?')
        .next()
        .unwrap()
        .parse::<std::net::SocketAddr>()
        .expect("turn:IP:PORT");
    let client = Client::new(ClientConfig {
        stun_serv_addr: relay_addr.to_string(),
        turn_serv_addr: relay_addr.to_string(),
        username: user,
        password: ann.credential.clone().expect("a credential"),
        realm: "circle".into(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
        vnet: None,
    })
    .await
    .expect("a TURN client");
    client.listen().await.expect("listens");
    let relayed = tokio::time::timeout(STEP, client.allocate())
        .await
        .expect("an answer")
        .expect("the credentials from joined are accepted");
    assert_eq!(stats().allocations, 1);

    // The voice relay's own address may be reached...
    let media = srv
        .running
        .state
        .media
        .as_ref()
        .expect("voice on")
        .handle
        .local_addr();
    tokio::time::timeout(STEP, relayed.send_to(b"\0\0\0\0", media))
        .await
        .expect("an answer")
        .expect("a permission to the voice relay");
    assert_eq!(stats().refused_peer_attempts(), 0);

    // ...and nothing else: not another machine (refused at the permission), not another port of
    // this one (refused at the relay socket). Each refusal is counted.
    for stranger_ip in ["127.0.0.2", "127.0.0.1"] {
        let before = stats().refused_peer_attempts();
        let stranger = UdpSocket::bind((stranger_ip, 0)).await.unwrap();
        let _ = tokio::time::timeout(
            STEP,
            relayed.send_to(b"hello", stranger.local_addr().unwrap()),
        )
        .await
        .expect("an answer");
        let deadline = tokio::time::Instant::now() + STEP;
        while stats().refused_peer_attempts() == before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "sending to {stranger_ip} was not refused"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut buf = [0u8; 64];
        assert!(
            stranger.try_recv_from(&mut buf).is_err(),
            "nothing reached the stranger at {stranger_ip}"
        );
    }
    client.close().await.expect("closes");
    srv.running.shutdown().await;
}

#[tokio::test]
async fn without_a_secret_no_turn_is_handed_out() {
    let srv = server_with(|_| {}).await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (_ann, joined) = srv.join(&room, "Ann", false).await;
    assert!(joined.ice_servers.is_empty());
}

//! ICE over TCP (RFC 6544 passive candidates, RFC 4571 framing) and advertised addresses, over real
//! WebRTC on loopback.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use circle_media::{GroupId, MediaConfig, PeerId};
use circle_rtc_client::AudioPeer;
use common::{Harness, wait_for, wait_for_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const G: GroupId = GroupId(1);
const SETTLE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reaching_the_relay_only_over_tcp_publishes_and_hears_a_udp_client() {
    let h = Harness::start_tcp().await;
    let udp = h.join(PeerId(1), Some(G)).await;
    let tcp = h.join_tcp(PeerId(2), Some(G)).await;
    wait_for("each hears the other", SETTLE, || {
        udp.received_from(tcp.id) > 50 && tcp.received_from(udp.id) > 50
    })
    .await;
    let stats = h.sfu.stats().await.expect("stats");
    assert_eq!(stats.tcp_connections, 1, "the TCP client's one connection");
    // Its packets came over TCP: it has no UDP candidate, so the relay learned no UDP route for it.
    assert_eq!(stats.addr_routes, 1, "only the UDP client has a UDP route");
    tcp.stop().await;
    udp.stop().await;
}

/// Reads until the relay closes the connection; `true` if it did (EOF or reset) within `SETTLE`.
async fn closed_by_relay(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    tokio::time::timeout(SETTLE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_or_an_oversized_frame_on_a_tcp_connection_closes_only_it() {
    let h = Harness::start_tcp().await;
    let relay = h.sfu.tcp_local_addr().expect("ICE-TCP is on");
    let udp = h.join(PeerId(1), Some(G)).await;
    let tcp = h.join_tcp(PeerId(2), Some(G)).await;

    // A well-framed packet that is no ICE check naming a session.
    let mut garbage = TcpStream::connect(relay).await.expect("connect");
    garbage
        .write_all(&[0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
        .await
        .expect("write");
    // A length prefix announcing more than any packet (65535 bytes), then a little of it.
    let mut oversized = TcpStream::connect(relay).await.expect("connect");
    oversized
        .write_all(&[0xff, 0xff, 0x16, 0xfe, 0xfd])
        .await
        .expect("write");
    assert!(
        closed_by_relay(&mut garbage).await,
        "garbage connection closed"
    );
    assert!(
        closed_by_relay(&mut oversized).await,
        "oversized frame closed"
    );
    let sfu = h.sfu.clone();
    wait_for_async("the relay forgot both connections", SETTLE, || {
        let sfu = sfu.clone();
        async move { sfu.stats().await.is_ok_and(|s| s.tcp_connections == 1) }
    })
    .await;
    assert_eq!(h.sfu.stats().await.expect("stats").tcp_rejected, 1);

    // The TCP client and the UDP client go on hearing each other.
    let (a, b) = (udp.received_from(tcp.id), tcp.received_from(udp.id));
    wait_for("both still hear each other", SETTLE, || {
        udp.received_from(tcp.id) > a + 50 && tcp.received_from(udp.id) > b + 50
    })
    .await;
    tcp.stop().await;
    udp.stop().await;
}

/// The RTP (component 1) candidates of an SDP: (transport, address, tcptype). (Each is repeated for
/// component 2, RTCP, which rtcp-mux folds onto the same address.)
fn candidates(sdp: &str) -> Vec<(String, SocketAddr, Option<String>)> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|c| c.split(' ').collect::<Vec<&str>>())
        .filter(|f| f[1] == "1")
        .map(|f| {
            let ip: IpAddr = f[4].parse().expect("an IP");
            let tcptype = f
                .windows(2)
                .find(|w| w[0] == "tcptype")
                .map(|w| w[1].to_owned());
            (
                f[2].to_lowercase(),
                SocketAddr::new(ip, f[5].parse().expect("a port")),
                tcptype,
            )
        })
        .collect()
}

#[tokio::test]
async fn the_answer_carries_a_udp_and_a_tcp_candidate_per_advertised_address() {
    let v4: IpAddr = "127.0.0.1".parse().unwrap();
    let v6: IpAddr = "::1".parse().unwrap();
    let (sfu, _events) = circle_media::spawn(MediaConfig {
        bind: "[::]:0".parse().unwrap(),
        advertised_ips: vec![v4, v6],
        tcp_listen: Some("[::]:0".parse().unwrap()),
        ..MediaConfig::loopback()
    })
    .await
    .expect("spawn");
    let (udp_port, tcp_port) = (
        sfu.local_addr().port(),
        sfu.tcp_local_addr().expect("tcp").port(),
    );
    sfu.add_peer(PeerId(1)).await.expect("add");
    let client = AudioPeer::new().await.expect("client");
    let offer = client.create_offer().await.expect("offer");
    let answer = sfu.handle_offer(PeerId(1), offer).await.expect("answer");
    let mut got = candidates(&answer);
    got.sort();
    let passive = Some("passive".to_owned());
    let mut want = vec![
        ("udp".to_owned(), SocketAddr::new(v4, udp_port), None),
        ("udp".to_owned(), SocketAddr::new(v6, udp_port), None),
        (
            "tcp".to_owned(),
            SocketAddr::new(v4, tcp_port),
            passive.clone(),
        ),
        ("tcp".to_owned(), SocketAddr::new(v6, tcp_port), passive),
    ];
    want.sort();
    assert_eq!(got, want, "{answer}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_relay_serves_ipv4_clients_over_udp_and_tcp() {
    let h = Harness::start_with(MediaConfig {
        bind: "[::]:0".parse().unwrap(),
        advertised_ips: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        tcp_listen: Some("[::]:0".parse().unwrap()),
        ..MediaConfig::loopback()
    })
    .await;
    let udp = h.join(PeerId(1), Some(G)).await;
    let tcp = h.join_tcp(PeerId(2), Some(G)).await;
    wait_for("each hears the other", SETTLE, || {
        udp.received_from(tcp.id) > 20 && tcp.received_from(udp.id) > 20
    })
    .await;
    tcp.stop().await;
    udp.stop().await;
}

#[tokio::test]
async fn an_advertised_address_the_sockets_cannot_serve_is_refused() {
    let result = circle_media::spawn(MediaConfig {
        advertised_ips: vec!["::1".parse().unwrap()],
        ..MediaConfig::loopback()
    })
    .await;
    assert!(
        matches!(result, Err(circle_media::MediaError::Config(_))),
        "an IPv6 candidate on an IPv4 socket"
    );
}

#[tokio::test]
async fn a_silent_tcp_connection_is_closed_and_one_past_the_cap_is_refused() {
    let (sfu, _events) = circle_media::spawn(MediaConfig {
        tcp_listen: Some(([127, 0, 0, 1], 0).into()),
        tcp_max_connections: 1,
        tcp_idle_timeout: Duration::from_millis(300),
        ..MediaConfig::loopback()
    })
    .await
    .expect("spawn");
    let relay = sfu.tcp_local_addr().expect("tcp");
    let mut silent = TcpStream::connect(relay).await.expect("connect");
    let sfu2 = sfu.clone();
    wait_for_async("the first connection is accepted", SETTLE, || {
        let sfu = sfu2.clone();
        async move { sfu.stats().await.is_ok_and(|s| s.tcp_connections == 1) }
    })
    .await;
    let mut extra = TcpStream::connect(relay).await.expect("connect");
    assert!(closed_by_relay(&mut extra).await, "past the cap: closed");
    assert!(closed_by_relay(&mut silent).await, "silent: closed");
    wait_for_async("the relay forgot it", SETTLE, || {
        let sfu = sfu2.clone();
        async move { sfu.stats().await.is_ok_and(|s| s.tcp_connections == 0) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_session_closes_its_tcp_connection() {
    let h = Harness::start_tcp().await;
    let tcp = h.join_tcp(PeerId(1), Some(G)).await;
    assert_eq!(h.sfu.stats().await.expect("stats").tcp_connections, 1);
    h.sfu.close_peer(tcp.id).await.expect("close");
    let sfu = h.sfu.clone();
    wait_for_async("its connection is gone", SETTLE, || {
        let sfu = sfu.clone();
        async move { sfu.stats().await.is_ok_and(|s| s.tcp_connections == 0) }
    })
    .await;
    let peer = tcp.peer.clone();
    wait_for("the client sees its session closed", SETTLE, || {
        !peer.is_connected()
    })
    .await;
    tcp.stop().await;
}

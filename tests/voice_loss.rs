//! Voice over a path that loses the relay's DTLS ServerHello flight.
//!
//! The relay is the DTLS server for every member. rtc-dtls 0.21.1 cleared its retransmission timer
//! before looking at what arrived, so when its ServerHello flight was lost the client's repeated
//! ClientHello left it waiting with no timer, never sending again: that member never had voice (the
//! churn member of docs/ROBUSTNESS.md). The workspace patches rtc-dtls (vendor/rtc-dtls,
//! CIRCLE-PATCH.md); this test fails without the patch.
//!
//! Between one member's `circle-rtc-client` and the relay sits a UDP proxy on loopback, like a NAT
//! whose both sides are advertised: the member's offer names the proxy's relay-facing address as
//! its host candidate, and the relay's answer is shown to the member with the proxy's member-facing
//! address as the relay's candidate, so every datagram of that session passes the proxy. The proxy
//! drops the relay's ServerHello flight, and any handshake datagram from the relay after it, until
//! the member has sent its ClientHello twice more (its retransmissions); it forwards everything
//! else.

use circle_tests::{
    Client, TestServer,
    proto::{ClientMsg as C, RequestId, ServerMsg as S},
    server_with,
    voice::{AudioPeer, VoiceMember},
};
use serde_json::json;
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{net::UdpSocket, task::JoinHandle, time::Instant};

/// How long the lossy member's voice may take: two of the member's 1 s handshake retransmissions,
/// the relay's next one, ICE and the first audio, on a busy machine; a working relay needs 2–5 s.
const LOSSY_WAIT: Duration = Duration::from_secs(20);

/// DTLS record content type `handshake` (RFC 6347 4.1), the first byte of a handshake datagram.
const DTLS_HANDSHAKE: u8 = 22;

/// Length of a DTLS record header (RFC 6347 4.1), after which a handshake datagram's first message
/// type comes.
const RECORD_HEADER_LEN: usize = 13;

/// DTLS handshake message types (RFC 6347 4.2.2).
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;

/// The type of the first handshake message of a DTLS handshake datagram, if it is one.
fn handshake_type(datagram: &[u8]) -> Option<u8> {
    match datagram.first() {
        Some(&DTLS_HANDSHAKE) => datagram.get(RECORD_HEADER_LEN).copied(),
        _ => None,
    }
}

/// How many times the member repeats its ClientHello while the relay's handshake is dropped.
const REPEATS_DROPPED: u64 = 2;

/// What the proxy saw and did.
#[derive(Default)]
struct ProxyCounts {
    /// Handshake datagrams from the relay that were dropped.
    dropped: AtomicU64,
    /// ClientHellos the member sent while the relay's handshake was dropped.
    repeated_hellos: AtomicU64,
}

/// The proxy's two sockets: the member sends to `member_side`; the relay sees `relay_side`.
struct Proxy {
    member_side: UdpSocket,
    relay_side: UdpSocket,
    counts: Arc<ProxyCounts>,
}

impl Proxy {
    async fn bind() -> Proxy {
        Proxy {
            member_side: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            relay_side: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            counts: Arc::default(),
        }
    }

    fn member_side_addr(&self) -> SocketAddr {
        self.member_side.local_addr().expect("bound")
    }

    fn relay_side_addr(&self) -> SocketAddr {
        self.relay_side.local_addr().expect("bound")
    }

    /// Forwards between `member` and `relay` until aborted, dropping the relay's ServerHello flight
    /// and everything the relay sends in the handshake after it until the member has repeated its
    /// ClientHello twice.
    ///
    /// The relay's HelloVerifyRequest (flight 2) is left alone: a server answers every ClientHello
    /// without a cookie with a fresh one, so its loss is always repaired. The ServerHello flight
    /// (flight 4, in one or more datagrams) is the one the relay alone must retransmit. Both sides
    /// retransmit after 1 s, so the relay's own first retransmission and the member's first repeat
    /// cross; by the member's second repeat (a second later) the relay has seen the first, and a
    /// relay that then stays silent has lost its timer.
    fn spawn(self, member: SocketAddr, relay: SocketAddr) -> (Arc<ProxyCounts>, JoinHandle<()>) {
        let counts = self.counts.clone();
        let task = tokio::spawn(async move {
            let (mut from_member, mut from_relay) = ([0u8; 2048], [0u8; 2048]);
            // Dropping the relay's handshake datagrams: from its first ServerHello until the
            // member's second repeated ClientHello; then `done`, and everything is forwarded.
            let (mut dropping, mut done) = (false, false);
            loop {
                tokio::select! {
                    r = self.member_side.recv_from(&mut from_member) => {
                        let (n, _) = r.expect("proxy receives");
                        if dropping && handshake_type(&from_member[..n]) == Some(CLIENT_HELLO) {
                            let seen = self.counts.repeated_hellos.fetch_add(1, Ordering::SeqCst);
                            if seen + 1 == REPEATS_DROPPED {
                                (dropping, done) = (false, true);
                            }
                        }
                        let _ = self.relay_side.send_to(&from_member[..n], relay).await;
                    }
                    r = self.relay_side.recv_from(&mut from_relay) => {
                        let (n, _) = r.expect("proxy receives");
                        let msg_type = handshake_type(&from_relay[..n]);
                        dropping |= !done && msg_type == Some(SERVER_HELLO);
                        if dropping && msg_type.is_some() {
                            self.counts.dropped.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        let _ = self.member_side.send_to(&from_relay[..n], member).await;
                    }
                }
            }
        });
        (counts, task)
    }
}

/// `sdp` with every candidate on `from` moved to `to`.
fn move_candidate(sdp: &str, from: SocketAddr, to: SocketAddr) -> String {
    let (old, new) = (
        format!(" {} {} typ ", from.ip(), from.port()),
        format!(" {} {} typ ", to.ip(), to.port()),
    );
    assert!(sdp.contains(&old), "no candidate on {from} in {sdp}");
    sdp.replace(&old, &new)
}

/// The relay's UDP host candidate on 127.0.0.1 in an SDP.
fn relay_candidate(sdp: &str) -> SocketAddr {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 7 && f[2].eq_ignore_ascii_case("udp") && f[4] == "127.0.0.1")
        .map(|f| {
            format!("{}:{}", f[4], f[5])
                .parse()
                .expect("candidate address")
        })
        .expect("the relay offers a UDP candidate on 127.0.0.1")
}

/// Polls `cond` every 10 ms until it holds; panics naming `what` after [`LOSSY_WAIT`].
async fn wait_long(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LOSSY_WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Answers the server's renegotiations for a member whose session runs through the proxy (the
/// relay's candidate shown as the proxy's, our own as the proxy's), until the socket closes.
fn answer_renegotiations(
    mut client: Client,
    peer: AudioPeer,
    (member, member_side): (SocketAddr, SocketAddr),
    (relay, relay_side): (SocketAddr, SocketAddr),
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match client.next_event().await {
                Some(S::MediaOffer { sdp }) => {
                    let offer = move_candidate(&sdp, relay, member_side);
                    let answer = peer.handle_offer(offer).await.expect("answer the offer");
                    let sdp = move_candidate(&answer, member, relay_side);
                    client.send(&C::MediaAnswer { id: None, sdp }).await;
                }
                Some(_) => {}
                None if client.close.is_some() => return,
                None => {}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_connects_when_the_relays_server_hello_flight_is_lost() {
    let srv: TestServer = server_with(|_| {}).await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false, "mute_on_entry": false}}))
        .await;
    let mut robin = VoiceMember::join(&srv, &room, "Robin", true).await;
    robin.unmute().await;

    // Sam's session goes through the proxy.
    let (mut sam, _) = srv.join(&room, "Sam", false).await;
    sam.ok(C::SetSelfMute {
        id: None,
        muted: false,
    })
    .await;
    let proxy = Proxy::bind().await;
    let (member_side, relay_side) = (proxy.member_side_addr(), proxy.relay_side_addr());
    let peer = AudioPeer::new().await.expect("audio peer");
    let member = peer.local_addr();
    let offer = peer.create_offer().await.expect("offer");
    let offer_id = RequestId::Str("sam-offer".into());
    sam.send(&C::MediaOffer {
        id: Some(offer_id.clone()),
        sdp: move_candidate(&offer, member, relay_side),
    })
    .await;
    let answer = sam
        .expect("the media_answer", |m| match m {
            S::MediaAnswer { id: Some(id), sdp } if *id == offer_id => Some(sdp.clone()),
            _ => None,
        })
        .await;
    let relay = relay_candidate(&answer);
    let (counts, proxy_task) = proxy.spawn(member, relay);
    peer.apply_answer(move_candidate(&answer, relay, member_side))
        .await
        .expect("apply the answer");
    peer.start_sending();
    let signalling = answer_renegotiations(
        sam,
        peer.clone(),
        (member, member_side),
        (relay, relay_side),
    );

    wait_long("Sam's media connects", || peer.is_connected()).await;
    assert!(
        counts.dropped.load(Ordering::SeqCst) >= 1
            && counts.repeated_hellos.load(Ordering::SeqCst) == REPEATS_DROPPED,
        "the relay's ServerHello flight was dropped while the member repeated its ClientHello"
    );
    let robin_before = robin.peer.received_total();
    wait_long("Robin hears Sam", || {
        robin.peer.received_total() >= robin_before + 50
    })
    .await;
    wait_long("Sam hears Robin", || peer.received_total() >= 50).await;

    signalling.abort();
    proxy_task.abort();
    peer.close().await;
    robin.close().await;
}

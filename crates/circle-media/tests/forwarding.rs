//! The SFU over real WebRTC on loopback: forwarding, the mute gate, groups, closing.

mod common;

use std::time::Duration;

use circle_media::{GroupId, PeerId};
use common::{Client, Harness, wait_for};

const G: GroupId = GroupId(1);
const SETTLE: Duration = Duration::from_secs(10);

/// Waits until every client hears every other one.
async fn all_hear_each_other(clients: &[&Client]) {
    for a in clients {
        for b in clients {
            if a.id != b.id {
                let (sa, idb) = (*a, b.id);
                wait_for(&format!("{} hears {}", a.id, b.id), SETTLE, || {
                    sa.received_from(idb) > 5
                })
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_hear_each_other() {
    let h = Harness::start().await;
    let a = h.join(PeerId(1), Some(G)).await;
    let b = h.join(PeerId(2), Some(G)).await;
    let c = h.join(PeerId(3), Some(G)).await;
    let clients = [&a, &b, &c];
    all_hear_each_other(&clients).await;
    // The clients list AES-256-GCM first, as Chrome does; the SFU settles on AES-128-GCM.
    assert_eq!(a.peer.srtp_cipher(), "SRTP_AEAD_AES_128_GCM");

    // Measure a 2-second window: what each receives from each other against what that other sent.
    let sent_before: Vec<u64> = clients.iter().map(|c| c.sent()).collect();
    let recv_before: Vec<Vec<u64>> = clients
        .iter()
        .map(|r| clients.iter().map(|s| r.received_from(s.id)).collect())
        .collect();
    let a_shared = &a;
    let start = a_shared.sent();
    wait_for("100 packets sent", SETTLE, || {
        a_shared.sent() >= start + 100
    })
    .await;
    // Let the last packets of the window arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (ri, r) in clients.iter().enumerate() {
        for (si, s) in clients.iter().enumerate() {
            if ri == si {
                continue;
            }
            let sent = s.sent() - sent_before[si];
            let got = r.received_from(s.id) - recv_before[ri][si];
            assert!(sent >= 90, "{} sent only {sent}", s.id);
            assert!(
                got * 100 >= sent * 90,
                "{} received {got} of {sent} packets from {}",
                r.id,
                s.id
            );
        }
    }
    // Every client sends "speech" levels, so the group's active speakers are all three.
    let speakers = h.speakers.clone();
    wait_for("all three reported speaking", SETTLE, || {
        speakers.lock().unwrap().get(&G) == Some(&vec![PeerId(1), PeerId(2), PeerId(3)])
    })
    .await;
    for c in [a, b, c] {
        c.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_gate_is_never_forwarded_and_reopening_resumes() {
    let h = Harness::start().await;
    let a = h.join(PeerId(1), Some(G)).await;
    let b = h.join(PeerId(2), Some(G)).await;
    let c = h.join(PeerId(3), Some(G)).await;
    all_hear_each_other(&[&a, &b, &c]).await;

    h.set_gate(b.id, false);
    // Packets forwarded just before the flip may still be in flight: wait for B to send a few more,
    // then take the baseline.
    let bs = &b;
    let start = bs.sent();
    wait_for("B sends on", SETTLE, || bs.sent() >= start + 5).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (a_from_b, c_from_b) = (a.received_from(b.id), c.received_from(b.id));
    let (a_from_c, b_from_a) = (a.received_from(c.id), b.received_from(a.id));
    let start = bs.sent();
    wait_for("B keeps sending 75 packets", SETTLE, || {
        bs.sent() >= start + 75
    })
    .await;
    assert_eq!(a.received_from(b.id), a_from_b, "A heard muted B");
    assert_eq!(c.received_from(b.id), c_from_b, "C heard muted B");
    assert!(a.received_from(c.id) > a_from_c + 50, "A still hears C");
    assert!(
        b.received_from(a.id) > b_from_a + 50,
        "muted B still hears A"
    );
    let speakers = h.speakers.clone();
    wait_for("muted B is not an active speaker", SETTLE, || {
        speakers.lock().unwrap().get(&G) == Some(&vec![PeerId(1), PeerId(3)])
    })
    .await;

    h.set_gate(b.id, true);
    let (a_s, c_s) = (&a, &c);
    wait_for("A and C hear B again", SETTLE, || {
        a_s.received_from(PeerId(2)) >= a_from_b + 25
            && c_s.received_from(PeerId(2)) >= c_from_b + 25
    })
    .await;
    for c in [a, b, c] {
        c.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_in_no_group_hears_nothing_until_it_joins() {
    let h = Harness::start().await;
    let a = h.join(PeerId(1), Some(G)).await;
    let b = h.join(PeerId(2), Some(G)).await;
    // D is connected and sending (gate open) but in the waiting room.
    let d = h.join(PeerId(4), None).await;
    all_hear_each_other(&[&a, &b]).await;

    let ds = &d;
    let start = ds.sent();
    wait_for("D sends 75 packets", SETTLE, || ds.sent() >= start + 75).await;
    assert_eq!(d.received_total(), 0, "D in no group received audio");
    assert_eq!(a.received_from(d.id), 0, "A heard D from the waiting room");
    assert_eq!(b.received_from(d.id), 0, "B heard D from the waiting room");

    h.sfu.set_group(d.id, Some(G)).await.unwrap();
    all_hear_each_other(&[&a, &b, &d]).await;
    for c in [a, b, d] {
        c.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_peer_ends_its_connection_and_frees_its_state() {
    let h = Harness::start().await;
    let a = h.join(PeerId(1), Some(G)).await;
    let b = h.join(PeerId(2), Some(G)).await;
    let c = h.join(PeerId(3), Some(G)).await;
    all_hear_each_other(&[&a, &b, &c]).await;
    assert_eq!(h.sfu.stats().await.unwrap().peers, 3);

    h.sfu.close_peer(c.id).await.unwrap();
    let stats = h.sfu.stats().await.unwrap();
    assert_eq!(stats.peers, 2);
    assert_eq!(stats.ufrag_routes, 2);

    // The client's connection ends: the SFU's DTLS close_notify closes its transport at once, and
    // its connection state leaves `Connected` when ICE consent lapses (about 5 s in `rtc`) ...
    let cs = &c;
    wait_for("C's connection ends", Duration::from_secs(30), || {
        !matches!(
            cs.peer.state(),
            Some(rtc::peer_connection::state::RTCPeerConnectionState::Connected)
        )
    })
    .await;
    // ... and it receives nothing more while A and B keep talking.
    let c_total = c.received_total();
    let a_from_b = a.received_from(b.id);
    let a_s = &a;
    wait_for("A keeps hearing B", SETTLE, || {
        a_s.received_from(PeerId(2)) >= a_from_b + 50
    })
    .await;
    assert_eq!(c.received_total(), c_total, "closed C still receives");
    assert!(matches!(
        h.sfu.set_group(c.id, Some(G)).await,
        Err(circle_media::MediaError::UnknownPeer(_))
    ));
    for c in [a, b, c] {
        c.stop().await;
    }
}

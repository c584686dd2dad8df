//! The relay sharded over several workers: each group on one worker, its members' sessions on the
//! same worker (and port), and nothing crosses from one worker's groups to another's.

mod common;

use std::time::Duration;

use circle_media::{GroupId, MediaConfig, PeerId};
use common::{Harness, wait_for};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_on_different_workers_never_hear_each_other() {
    let h = Harness::start_with(MediaConfig {
        workers: 2,
        ..MediaConfig::loopback()
    })
    .await;
    let (room_a, room_b) = (GroupId(1), GroupId(2));
    let (a1, a2, b1, b2) = (PeerId(1), PeerId(2), PeerId(3), PeerId(4));
    for (peer, group) in [(a1, room_a), (a2, room_a), (b1, room_b), (b2, room_b)] {
        h.sfu.place_peer(peer, group);
    }
    // Two groups on two workers: each took the least loaded one.
    let (wa, wb) = (h.sfu.worker_of(a1).unwrap(), h.sfu.worker_of(b1).unwrap());
    assert_ne!(wa, wb, "the rooms are spread over the workers");
    assert_eq!(h.sfu.worker_of(a2), Some(wa));
    assert_eq!(h.sfu.worker_of(b2), Some(wb));

    let alice1 = h.join(a1, Some(room_a)).await;
    let alice2 = h.join(a2, Some(room_a)).await;
    let bob1 = h.join(b1, Some(room_b)).await;
    let bob2 = h.join(b2, Some(room_b)).await;
    for p in [a1, a2, b1, b2] {
        h.set_gate(p, true);
    }
    wait_for("each room's members hear each other", WAIT, || {
        alice1.received_from(a2) > 50
            && alice2.received_from(a1) > 50
            && bob1.received_from(b2) > 50
            && bob2.received_from(b1) > 50
    })
    .await;
    // Everything each member received came from its own room's other member.
    assert_eq!(alice1.received_total(), alice1.received_from(a2));
    assert_eq!(alice2.received_total(), alice2.received_from(a1));
    assert_eq!(bob1.received_total(), bob1.received_from(b2));
    assert_eq!(bob2.received_total(), bob2.received_from(b1));
    let stats = h.sfu.stats().await.expect("relay running");
    assert_eq!((stats.peers, stats.groups), (4, 2));

    // A member of one room cannot be moved into a room on the other worker.
    assert!(matches!(
        h.sfu.set_group(a1, Some(room_b)).await,
        Err(circle_media::MediaError::OtherWorker(_))
    ));
    for c in [alice1, alice2, bob1, bob2] {
        c.stop().await;
    }
}

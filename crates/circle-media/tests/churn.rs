//! A peer added and closed many times leaves nothing behind.

mod common;

use std::time::Duration;

use circle_media::{GroupId, PeerId};
use common::{Harness, wait_for, wait_for_async};

const G: GroupId = GroupId(7);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_peers_added_and_closed_leave_no_state() {
    let h = Harness::start().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    // A stays for the whole test, so every churned peer also adds and removes a track on A's leg.
    let a = h.join(PeerId(1), Some(G)).await;
    let baseline_tasks = metrics.num_alive_tasks();
    let baseline = h.sfu.stats().await.unwrap();
    assert_eq!(baseline.peers, 1);

    for i in 0..50u64 {
        let id = PeerId(1000 + i);
        let client = h.join(id, Some(G)).await;
        let (cs, aid) = (&client, a.id);
        wait_for("churned peer hears A", Duration::from_secs(10), || {
            cs.received_from(aid) > 0
        })
        .await;
        h.sfu.close_peer(id).await.unwrap();
        client.stop().await;
    }

    let sfu = h.sfu.clone();
    wait_for_async("SFU state back to one peer", Duration::from_secs(5), || {
        let sfu = sfu.clone();
        async move {
            let s = sfu.stats().await.unwrap();
            s.peers == 1
                && s.groups == 1
                && s.ufrag_routes == 1
                && s.addr_routes == baseline.addr_routes
        }
    })
    .await;
    wait_for("no task left behind", Duration::from_secs(5), || {
        metrics.num_alive_tasks() == baseline_tasks
    })
    .await;

    // A's connection survived 100 renegotiations and still works.
    let b = h.join(PeerId(2), Some(G)).await;
    let (a_s, b_s) = (&a, &b);
    wait_for("A and B hear each other", Duration::from_secs(10), || {
        a_s.received_from(PeerId(2)) > 10 && b_s.received_from(PeerId(1)) > 10
    })
    .await;
    h.sfu.close_peer(a.id).await.unwrap();
    h.sfu.close_peer(b.id).await.unwrap();
    let s = h.sfu.stats().await.unwrap();
    assert_eq!(
        (s.peers, s.groups, s.ufrag_routes, s.addr_routes),
        (0, 0, 0, 0)
    );
    a.stop().await;
    b.stop().await;
}

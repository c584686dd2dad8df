//! A harness that routes the SFU's events to real WebRTC test clients ([`circle_rtc_client`]'s
//! `AudioPeer`, each on its own 127.0.0.1 socket).
//!
//! Each client publishes one Opus-sized RTP stream at 50 packets/s with the RFC 6464 audio-level
//! extension, answers the SFU's renegotiation offers, and counts the packets it receives per publisher
//! (by the `circle-<id>` stream id of each received track).

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circle_media::{Gate, GroupId, MediaConfig, MediaEvent, MediaHandle, PeerId, PeerState};
use circle_rtc_client::AudioPeer;
use tokio::sync::mpsc;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `cond` until it holds or `timeout` passes; panics with `what` on timeout.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`wait_for`] with an async condition.
pub async fn wait_for_async<F: Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The SFU plus the routing of its events to test clients.
pub struct Harness {
    pub sfu: MediaHandle,
    offers: Arc<Mutex<HashMap<PeerId, mpsc::UnboundedSender<String>>>>,
    pub states: Arc<Mutex<HashMap<PeerId, PeerState>>>,
    pub speakers: Arc<Mutex<HashMap<GroupId, Vec<PeerId>>>>,
    lost: Arc<Mutex<Vec<PeerId>>>,
    /// The gate of each peer `join` added.
    gates: Mutex<HashMap<PeerId, Gate>>,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(MediaConfig::loopback()).await
    }

    /// Like [`Harness::start`] with ICE-TCP on, listening on `127.0.0.1:0`.
    pub async fn start_tcp() -> Harness {
        Harness::start_with(MediaConfig {
            tcp_listen: Some(([127, 0, 0, 1], 0).into()),
            ..MediaConfig::loopback()
        })
        .await
    }

    pub async fn start_with(config: MediaConfig) -> Harness {
        init_tracing();
        let (sfu, mut events) = circle_media::spawn(config).await.expect("spawn sfu");
        let offers: Arc<Mutex<HashMap<PeerId, mpsc::UnboundedSender<String>>>> = Default::default();
        let states: Arc<Mutex<HashMap<PeerId, PeerState>>> = Default::default();
        let speakers: Arc<Mutex<HashMap<GroupId, Vec<PeerId>>>> = Default::default();
        let lost: Arc<Mutex<Vec<PeerId>>> = Default::default();
        let (o, s, sp, l) = (
            offers.clone(),
            states.clone(),
            speakers.clone(),
            lost.clone(),
        );
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    MediaEvent::LocalOffer { peer, sdp, .. } => {
                        if let Some(tx) = o.lock().unwrap().get(&peer) {
                            let _ = tx.send(sdp);
                        }
                    }
                    MediaEvent::PeerState { peer, state } => {
                        s.lock().unwrap().insert(peer, state);
                    }
                    MediaEvent::ActiveSpeakers { group, speakers } => {
                        sp.lock().unwrap().insert(group, speakers);
                    }
                    MediaEvent::PeerLost { peer, .. } => l.lock().unwrap().push(peer),
                    MediaEvent::LocalCandidate { .. } => {}
                }
            }
        });
        Harness {
            sfu,
            offers,
            states,
            speakers,
            lost,
            gates: Mutex::default(),
        }
    }

    /// Opens or closes the gate of a peer `join` added.
    pub fn set_gate(&self, id: PeerId, open: bool) {
        self.gates.lock().unwrap()[&id].set(open);
    }

    /// Peers the SFU reported lost (`MediaEvent::PeerLost`), in order.
    pub fn lost(&self) -> Vec<PeerId> {
        self.lost.lock().unwrap().clone()
    }

    pub fn state(&self, peer: PeerId) -> Option<PeerState> {
        self.states.lock().unwrap().get(&peer).copied()
    }

    /// Adds `id` to the SFU (gate open, in `group`) and connects a client for it.
    pub async fn join(&self, id: PeerId, group: Option<GroupId>) -> Client {
        let peer = AudioPeer::new().await.expect("client peer");
        self.join_with(id, group, peer).await
    }

    /// Like [`Harness::join`] for a client that reaches the SFU over ICE-TCP only.
    pub async fn join_tcp(&self, id: PeerId, group: Option<GroupId>) -> Client {
        let peer = AudioPeer::new_tcp().await.expect("tcp client peer");
        self.join_with(id, group, peer).await
    }

    async fn join_with(&self, id: PeerId, group: Option<GroupId>, peer: AudioPeer) -> Client {
        let gate = self.sfu.add_peer(id).await.expect("add_peer");
        gate.set(true);
        self.gates.lock().unwrap().insert(id, gate);
        self.sfu.set_group(id, group).await.expect("set_group");
        let client = self.connect_with(id, peer).await;
        let sfu_state = self.states.clone();
        wait_for("sfu reports connected", Duration::from_secs(10), || {
            sfu_state.lock().unwrap().get(&id) == Some(&PeerState::Connected)
        })
        .await;
        client
    }

    /// Connects a sending client for an already added peer and waits until its connection is up.
    pub async fn connect(&self, id: PeerId) -> Client {
        let peer = AudioPeer::new().await.expect("client peer");
        self.connect_with(id, peer).await
    }

    async fn connect_with(&self, id: PeerId, peer: AudioPeer) -> Client {
        let (offer_tx, mut offer_rx) = mpsc::unbounded_channel::<String>();
        self.offers.lock().unwrap().insert(id, offer_tx);
        let offer = peer.create_offer().await.expect("client offer");
        let answer = self.sfu.handle_offer(id, offer).await.expect("sfu answer");
        peer.apply_answer(answer).await.expect("apply answer");
        peer.start_sending();
        // The SFU's renegotiation offers, answered in order.
        let (p, sfu) = (peer.clone(), self.sfu.clone());
        let signalling = tokio::spawn(async move {
            while let Some(offer) = offer_rx.recv().await {
                // Failing here (the peer was closed meanwhile) shows as missing audio in the test.
                let Ok(answer) = p.handle_offer(offer).await else {
                    break;
                };
                if sfu.handle_answer(id, answer).await.is_err() {
                    break;
                }
            }
        });
        let p = peer.clone();
        wait_for("client connected", Duration::from_secs(10), || {
            p.is_connected()
        })
        .await;
        Client {
            id,
            peer,
            signalling,
            offers: self.offers.clone(),
        }
    }
}

pub struct Client {
    pub id: PeerId,
    /// The client's WebRTC connection (cloneable: clones share its counters).
    pub peer: AudioPeer,
    /// The task answering the SFU's offers for this client.
    signalling: tokio::task::JoinHandle<()>,
    /// The harness's offer routes, to stop routing ours on `stop`.
    offers: Arc<Mutex<HashMap<PeerId, mpsc::UnboundedSender<String>>>>,
}

impl Client {
    /// Packets received from `publisher` (by its `circle-<id>` stream id).
    pub fn received_from(&self, publisher: PeerId) -> u64 {
        self.peer.received_from(&publisher.stream_id())
    }

    /// Packets received from anyone.
    pub fn received_total(&self) -> u64 {
        self.peer.received_total()
    }

    pub fn sent(&self) -> u64 {
        self.peer.sent()
    }

    /// Stops answering offers, closes the connection and waits for both tasks to end.
    pub async fn stop(self) {
        // Dropping the route closes the offer channel, which ends the signalling task.
        self.offers.lock().unwrap().remove(&self.id);
        let _ = self.signalling.await;
        self.peer.close().await;
    }
}

//! The voice relay as the server runs it: one `circle-media` relay for the whole server (a worker per
//! core, each on its own UDP port), and the routing of its events (renegotiation offers, active
//! speakers) to the room actor that owns each peer or group. The relay itself knows no rooms; the
//! room actors drive it. A room's group, and so its voice, lives on one worker; each of the room's
//! peers is placed with it when it is routed ([`Media::route_peer`]), so that a member admitted from
//! the waiting room joins the group on the worker its session already uses.

use crate::{config::MediaSettings, room_actor::RoomCmd};
use anyhow::Context;
use circle_media::{GroupId, MediaConfig, MediaEvent, MediaHandle, PeerId};
use circle_protocol::IceServer;
use dashmap::DashMap;
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{debug, info};

/// The relay and the directory of who drives which of its peers and groups.
#[derive(Clone)]
pub struct Media {
    /// Drives the SFU task.
    pub handle: MediaHandle,
    /// The room actor driving each peer: where its renegotiation offers go.
    peers: Arc<DashMap<PeerId, mpsc::Sender<RoomCmd>>>,
    /// The room actor of each group: where its active-speaker changes go.
    groups: Arc<DashMap<GroupId, mpsc::Sender<RoomCmd>>>,
    /// Hands out peer and group ids, unique for the life of the server.
    next_id: Arc<AtomicU64>,
    /// Handed to clients in `joined`.
    pub ice_servers: Arc<Vec<IceServer>>,
}

impl Media {
    /// Binds the media port, starts the SFU and the task that routes its events.
    pub async fn start(settings: &MediaSettings) -> anyhow::Result<Self> {
        // `Config::validate` has checked these; an entry that is no IP is left out.
        let config = MediaConfig {
            bind: settings.listen,
            advertised_ips: settings.advertised(),
            tcp_listen: settings.tcp_listen_addr(),
            speech_level_dbov: settings.speech_level_dbov,
            workers: settings.worker_count(),
            ..MediaConfig::default()
        };
        let (handle, events) = circle_media::spawn(config)
            .await
            .with_context(|| format!("starting the voice relay on udp {}", settings.listen))?;
        let ports: Vec<u16> = handle.local_addrs().iter().map(|a| a.port()).collect();
        info!(
            udp = %handle.local_addr(),
            tcp = ?handle.tcp_local_addr(),
            workers = handle.workers(),
            udp_ports = ?ports,
            "voice relay listening"
        );
        let ice_servers = settings
            .ice_servers
            .iter()
            .map(|s| IceServer {
                urls: s.urls.clone(),
                username: (!s.username.is_empty()).then(|| s.username.clone()),
                credential: (!s.credential.is_empty()).then(|| s.credential.clone()),
            })
            .collect();
        let media = Self {
            handle,
            peers: Arc::new(DashMap::new()),
            groups: Arc::new(DashMap::new()),
            next_id: Arc::new(AtomicU64::new(1)),
            ice_servers: Arc::new(ice_servers),
        };
        tokio::spawn(route_events(
            media.peers.clone(),
            media.groups.clone(),
            events,
        ));
        Ok(media)
    }

    /// Whether every relay worker is still running. When it is not, no voice session can be started or
    /// kept: readiness (`/readyz`) should fail and the process should exit non-zero so that its
    /// supervisor restarts it (wait on [`Media::relay_stopped`]). A panic caused by one peer does not
    /// stop the relay (it closes that peer only), so this turns false only on a bug in the relay
    /// itself or a failed UDP socket.
    pub fn relay_alive(&self) -> bool {
        self.handle.is_running()
    }

    /// Resolves when any relay worker has ended (at once if one already has). The relay ends on its
    /// own only when it fails (see [`Media::relay_alive`]); this `Media` keeps it running otherwise.
    pub async fn relay_stopped(&self) {
        self.handle.stopped().await;
    }

    /// The UDP address the relay's first worker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Every relay worker's UDP address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.handle.local_addrs()
    }

    /// A fresh id, for a peer or a group.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes this peer's events to a room actor, and places the peer on the relay worker of that
    /// actor's group (the one [`Media::route_group`] registered with the same inbox).
    pub fn route_peer(&self, peer: PeerId, to: mpsc::Sender<RoomCmd>) {
        let group = self
            .groups
            .iter()
            .find(|g| g.value().same_channel(&to))
            .map(|g| *g.key());
        if let Some(group) = group {
            self.handle.place_peer(peer, group);
        }
        self.peers.insert(peer, to);
    }

    /// Stops routing this peer's events.
    pub fn unroute_peer(&self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// Routes this group's events to a room actor.
    pub fn route_group(&self, group: GroupId, to: mpsc::Sender<RoomCmd>) {
        self.groups.insert(group, to);
    }

    /// Stops routing this group's events, and forgets its worker.
    pub fn unroute_group(&self, group: GroupId) {
        self.groups.remove(&group);
        self.handle.forget_group(group);
    }
}

/// Forwards each relay event to the room actor that drives its peer or group. Ends when the relay
/// stops (its last handle dropped). Holds no handle itself, so it never keeps the relay alive.
async fn route_events(
    peers: Arc<DashMap<PeerId, mpsc::Sender<RoomCmd>>>,
    groups: Arc<DashMap<GroupId, mpsc::Sender<RoomCmd>>>,
    mut events: mpsc::Receiver<MediaEvent>,
) {
    while let Some(event) = events.recv().await {
        let to = match &event {
            MediaEvent::LocalOffer { peer, .. }
            | MediaEvent::LocalCandidate { peer, .. }
            | MediaEvent::PeerState { peer, .. }
            | MediaEvent::PeerLost { peer, .. } => peers.get(peer).map(|r| r.value().clone()),
            MediaEvent::ActiveSpeakers { group, .. } => {
                groups.get(group).map(|r| r.value().clone())
            }
        };
        match to {
            Some(to) => match to.try_send(RoomCmd::MediaEvent(event)) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                // An offer must not be lost, and one busy room must not hold up every other room's
                // events: wait for room in that actor's inbox on the side.
                Err(TrySendError::Full(cmd)) => {
                    tokio::spawn(async move {
                        let _ = to.send(cmd).await;
                    });
                }
            },
            None => debug!("media event for a peer or group no room drives"),
        }
    }
}

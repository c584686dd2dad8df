//! One SFU worker's task: owns its UDP socket (and ICE-TCP listener), its [`Peer`]s, its group table
//! and the routes, and runs them from one `select!` over commands, datagrams, TCP packets and timers.
//! There is no task per peer: a peer is plain state in this task's map, and closing it is removing it.
//! The only other tasks are the ICE-TCP connections' (see `net.rs`), which never hold peer state.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::sansio::Protocol;
use rtc::shared::TaggedBytesMut;
use tokio::sync::mpsc;

use crate::config::MediaConfig;
use crate::demux::Routes;
use crate::error::MediaError;
use crate::event::{IceCandidate, MediaEvent, PeerState};
use crate::forward::{Inbound, flush_writes, intake};
use crate::handle::{BusyTimes, Command, MediaStats, NewSession, SessionRequest, Timed};
use crate::ids::{GroupId, PeerId};
use crate::net::{LocalCandidate, Net, TcpInput, TcpRoute, canonical};
use crate::peer::Peer;
use crate::sdp::is_mdns_candidate;

/// Events from the SFU task to the driver. Full (a driver that stopped reading): the event is dropped
/// and counted in [`MediaStats::events_dropped`]; media never waits for the driver.
pub(crate) const EVENT_CAPACITY: usize = 1024;

/// Largest datagram we read; bigger ones are truncated by the OS and then rejected by the stack.
const MAX_DATAGRAM: usize = 2048;

/// Receive arena: datagrams are read into it and split off, so there is one allocation per arena
/// rather than per packet.
const RECV_ARENA: usize = 64 * 1024;

/// Datagrams read per wake-up before commands and timers get a turn again.
const RECV_BATCH: usize = 64;

/// Upper bound on how long the task sleeps when no connection wants a timer.
const IDLE_WAKE: Duration = Duration::from_secs(1);

pub(crate) struct Sfu {
    /// The UDP socket all peers' datagrams go through, and the ICE-TCP side.
    pub(crate) net: Net,
    /// Every session's ICE host candidates (advertised IPs, bound ports).
    local_candidates: Vec<LocalCandidate>,
    /// Packets from the ICE-TCP connection tasks (see `net.rs`); `None` without ICE-TCP.
    tcp_inbound: Option<mpsc::Receiver<TcpInput>>,
    /// Speech threshold and speaker interval.
    config: MediaConfig,
    /// Requests from the handles; closed when the last handle is dropped, which ends the task.
    commands: mpsc::Receiver<Command>,
    /// Events to the driver (see [`EVENT_CAPACITY`]).
    events: mpsc::Sender<MediaEvent>,
    /// Every live peer; removing one frees all of it.
    pub(crate) peers: HashMap<PeerId, Peer>,
    /// Members of each non-empty group. The packet path iterates this.
    pub(crate) groups: HashMap<GroupId, Vec<PeerId>>,
    /// The speaker set last reported per group.
    speakers: HashMap<GroupId, Vec<PeerId>>,
    /// Which peer a datagram belongs to.
    routes: Routes,
    /// Scratch: one publisher's gated packets between intake and forwarding (reused, never shrunk).
    pub(crate) inbound: Vec<Inbound>,
    /// Scratch: peers whose timers expired.
    expired: Vec<PeerId>,
    /// The receive arena (see [`RECV_ARENA`]).
    recv_buf: BytesMut,
    /// Counters reported by [`crate::MediaHandle::stats`].
    pub(crate) stats: MediaStats,
    /// When active speakers are next evaluated.
    next_speaker_tick: Instant,
    /// Sessions made so far: the last one's number ([`Peer::session`]).
    sessions: u64,
    /// Per group too large for everyone to receive everyone: whose gates were open at the last look.
    open_gates: HashMap<GroupId, Vec<PeerId>>,
    /// Time spent per wake-up, written by the [`Timed`] wrapper around [`Sfu::run`].
    busy: Arc<BusyTimes>,
}

impl Sfu {
    pub(crate) fn new(
        mut net: Net,
        config: MediaConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<MediaEvent>,
    ) -> Sfu {
        let next_speaker_tick = Instant::now() + config.speaker_interval;
        Sfu {
            local_candidates: net.candidates(),
            tcp_inbound: net.tcp.as_mut().and_then(|t| t.inbound.take()),
            net,
            config,
            commands,
            events,
            peers: HashMap::new(),
            groups: HashMap::new(),
            speakers: HashMap::new(),
            routes: Routes::default(),
            inbound: Vec::new(),
            expired: Vec::new(),
            recv_buf: BytesMut::with_capacity(RECV_ARENA),
            stats: MediaStats::default(),
            next_speaker_tick,
            sessions: 0,
            open_gates: HashMap::new(),
            busy: Arc::default(),
        }
    }

    /// Runs until every [`crate::MediaHandle`] is dropped, then closes all peers.
    /// Each wake-up is timed (`MediaStats::busy`).
    pub(crate) async fn run(self) {
        let busy = self.busy.clone();
        Timed::new(self.serve(), busy).await;
    }

    async fn serve(mut self) {
        loop {
            crate::fault::relay_wakeup();
            let deadline = self.next_deadline();
            let accepting = self.accepting();
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                readable = self.net.udp.readable() => {
                    if let Err(e) = readable {
                        tracing::error!(error = %e, "media socket failed; stopping the SFU");
                        break;
                    }
                    self.on_readable();
                }
                accepted = accept(&self.net), if accepting => {
                    if let Some(tcp) = self.net.tcp.as_mut() {
                        tcp.accept(accepted);
                    }
                }
                input = tcp_input(&mut self.tcp_inbound) => self.on_tcp(input),
                _ = tokio::time::sleep_until(deadline.into()) => self.on_timers(),
            }
        }
        // Shutting down: close every connection (each client gets a DTLS close_notify) without the
        // renegotiations a one-by-one `close_peer` would make.
        for (_, mut peer) in self.peers.drain() {
            close_connection(&mut peer, &mut self.net);
        }
        tracing::debug!("media task stopped");
    }

    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        self.peers
            .values()
            .filter_map(|p| p.next_timeout)
            .chain([self.next_speaker_tick, now + IDLE_WAKE])
            .chain(self.net.tcp.as_ref().and_then(|t| t.paused_until))
            .min()
            .unwrap_or(now + IDLE_WAKE)
    }

    fn on_readable(&mut self) {
        for _ in 0..RECV_BATCH {
            self.recv_buf.reserve(MAX_DATAGRAM);
            let from = match self.net.udp.try_recv_buf_from(&mut self.recv_buf) {
                Ok((_, from)) => canonical(from),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // E.g. ICMP port unreachable surfacing as ECONNREFUSED: not fatal for others.
                    tracing::debug!(error = %e, "udp receive error");
                    self.recv_buf.clear();
                    continue;
                }
            };
            let datagram = self.recv_buf.split();
            let Some(transport) = self.net.udp_transport(from) else {
                continue; // a family we advertise no address in
            };
            let Some(peer_id) = self.routes.route(from, &datagram) else {
                continue;
            };
            let now = Instant::now();
            let input = TaggedBytesMut {
                now,
                transport,
                message: datagram,
            };
            match self.guarded(peer_id, |peer| peer.pc.handle_read(input)) {
                Some(Ok(())) => {}
                Some(Err(e)) => tracing::debug!(peer = %peer_id, error = %e, "datagram rejected"),
                None => continue,
            }
            self.pump(peer_id, now);
        }
    }

    /// Whether the ICE-TCP listener is taken from (on, and not paused after an accept error).
    fn accepting(&mut self) -> bool {
        let Some(tcp) = self.net.tcp.as_mut() else {
            return false;
        };
        if tcp.paused_until.is_some_and(|t| t > Instant::now()) {
            return false;
        }
        tcp.paused_until = None;
        true
    }

    /// One packet from an ICE-TCP connection (or its end): routed by its connection, then fed to that
    /// session's connection exactly like a datagram, tagged TCP.
    fn on_tcp(&mut self, input: TcpInput) {
        let Some(tcp) = self.net.tcp.as_mut() else {
            return;
        };
        let (remote, serial, packet) = match input {
            TcpInput::Closed(remote, serial) => return tcp.closed(remote, serial),
            TcpInput::Packet(remote, serial, packet) => (remote, serial, packet),
        };
        let routes = &self.routes;
        let peers = &self.peers;
        let routed = tcp.route(remote, serial, &packet, |ufrag| {
            routes
                .peer_for_ufrag(ufrag)
                .filter(|p| peers.contains_key(p))
        });
        let peer_id = match routed {
            TcpRoute::Peer(peer) => peer,
            TcpRoute::Gone => return,
            TcpRoute::Rejected => {
                self.net.tcp_rejected += 1;
                tracing::debug!("ice-tcp connection closed: its first packet named no session");
                return;
            }
        };
        let Some(transport) = self.net.tcp_transport(remote) else {
            return;
        };
        let now = Instant::now();
        let input = TaggedBytesMut {
            now,
            transport,
            message: packet,
        };
        match self.guarded(peer_id, |peer| peer.pc.handle_read(input)) {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::debug!(peer = %peer_id, error = %e, "tcp packet rejected"),
            None => return,
        }
        self.pump(peer_id, now);
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        self.expired.clear();
        self.expired.extend(
            self.peers
                .values()
                .filter(|p| p.next_timeout.is_some_and(|t| t <= now))
                .map(|p| p.id),
        );
        for i in 0..self.expired.len() {
            let id = self.expired[i];
            match self.guarded(id, |peer| peer.pc.handle_timeout(now)) {
                Some(Ok(())) => self.pump(id, now),
                Some(Err(e)) => {
                    tracing::debug!(peer = %id, error = %e, "timeout handling failed");
                    self.pump(id, now);
                }
                None => {}
            }
        }
        if self.next_speaker_tick <= now {
            self.report_speakers();
            self.revisit_large_groups(now);
            self.next_speaker_tick = now + self.config.speaker_interval;
        }
    }

    /// Drains one peer's connection: datagrams out, events, decrypted RTP (forwarded), next timer.
    fn pump(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Sfu {
            net,
            config,
            stats,
            inbound,
            ..
        } = self;
        let drained = catch_unwind(AssertUnwindSafe(|| {
            drain(
                peer,
                net,
                config.speech_level_dbov,
                &mut stats.gated,
                inbound,
            )
        }));
        let Ok(outgoing) = drained else {
            self.inbound.clear();
            self.lose_peer(id);
            return;
        };
        for event in outgoing {
            self.emit(event);
        }
        self.forward(id, now);
    }

    /// Runs `f` on peer `id`'s state, which calls into the WebRTC stack on behalf of that one peer
    /// (with its SDP, candidates, datagrams, timers). `None`: no such peer, or `f` panicked, and then
    /// the peer is closed and reported lost ([`Sfu::lose_peer`]): a panic one peer causes costs that
    /// peer its session, never everyone's audio.
    pub(crate) fn guarded<T>(&mut self, id: PeerId, f: impl FnOnce(&mut Peer) -> T) -> Option<T> {
        let peer = self.peers.get_mut(&id)?;
        match catch_unwind(AssertUnwindSafe(|| f(peer))) {
            Ok(t) => Some(t),
            Err(_) => {
                self.lose_peer(id);
                None
            }
        }
    }

    /// Closes a peer whose connection state is suspect (the WebRTC stack panicked on its behalf) and
    /// tells the driver, which must tell its client to start a new session.
    pub(crate) fn lose_peer(&mut self, id: PeerId) {
        tracing::error!(peer = %id, "the webrtc stack panicked on this peer's behalf; closing it");
        self.stats.lost += 1;
        let Some(session) = self.peers.get(&id).map(|p| p.session) else {
            return;
        };
        self.close_peer(id);
        self.emit(MediaEvent::PeerLost { peer: id, session });
    }

    fn emit(&mut self, event: MediaEvent) {
        if self.events.try_send(event).is_err() {
            self.stats.events_dropped += 1;
            tracing::warn!("media event dropped: the driver is not reading events");
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::StartSession(request, reply) => {
                let id = request.peer;
                let result = self.start_session(request, now);
                let ok = result.is_ok();
                // The answer goes out before any follow-up offer (see `MediaHandle::handle_offer`).
                let _ = reply.send(result);
                if ok {
                    self.resubscribe(&[id], now);
                }
                self.pump(id, now);
            }
            Command::AddPeer(id, reply) => {
                let result = self.add_peer(id, now);
                let _ = reply.send(result);
            }
            Command::SetGroup(id, group, reply) => {
                let result = self.set_group(id, group, now);
                let _ = reply.send(result);
            }
            Command::SetGroups(moves, reply) => {
                self.set_groups(moves, now);
                let _ = reply.send(Ok(()));
            }
            Command::HandleOffer(id, sdp, reply) => {
                let result = self
                    .guarded(id, |peer| peer.answer(sdp, now))
                    .unwrap_or(Err(MediaError::UnknownPeer(id)));
                let ok = result.is_ok();
                // The answer goes out before any follow-up offer (see `MediaHandle::handle_offer`).
                let _ = reply.send(result);
                if ok {
                    self.resubscribe(&[id], now);
                }
                self.pump(id, now);
            }
            Command::HandleAnswer(id, sdp, reply) => {
                let result = self
                    .guarded(id, |peer| peer.apply_answer(sdp, now))
                    .unwrap_or(Err(MediaError::UnknownPeer(id)));
                let _ = reply.send(result);
                self.offer_if_due(id, now);
                self.pump(id, now);
            }
            Command::AddRemoteCandidate(id, candidate, reply) => {
                let result = self.add_remote_candidate(id, candidate);
                let _ = reply.send(result);
                self.pump(id, now);
            }
            Command::ClosePeer(id, reply) => {
                let result = if self.close_peer(id) {
                    Ok(())
                } else {
                    Err(MediaError::UnknownPeer(id))
                };
                let _ = reply.send(result);
            }
            #[cfg(test)]
            Command::Crash => panic!("test crash of the SFU task"),
            #[cfg(test)]
            Command::Sabotage(id) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.sabotaged = true;
                }
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
        }
    }

    /// A candidate the client trickled. An mDNS one is accepted and dropped (see `sdp.rs`).
    fn add_remote_candidate(
        &mut self,
        id: PeerId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError> {
        if is_mdns_candidate(&candidate.candidate) {
            return match self.peers.contains_key(&id) {
                true => Ok(()),
                false => Err(MediaError::UnknownPeer(id)),
            };
        }
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: None,
            url: None,
        };
        match self.guarded(id, |peer| peer.pc.add_remote_candidate(init)) {
            Some(result) => result.map_err(MediaError::negotiation),
            None => Err(MediaError::UnknownPeer(id)),
        }
    }

    fn stats(&mut self) -> MediaStats {
        let mut stats = self.stats;
        stats.peers = self.peers.len();
        stats.groups = self.groups.len();
        stats.ufrag_routes = self.routes.ufrag_count();
        stats.addr_routes = self.routes.addr_count();
        stats.tcp_connections = self.net.tcp.as_ref().map_or(0, |t| t.count());
        stats.tcp_dropped = self.net.tcp_dropped;
        stats.udp_dropped = self.net.udp_dropped;
        stats.tcp_rejected = self.net.tcp_rejected;
        stats.max_mlines = self
            .peers
            .values_mut()
            .map(Peer::mline_count)
            .max()
            .unwrap_or(0);
        stats.busy = self.busy.snapshot();
        stats
    }

    fn add_peer(&mut self, id: PeerId, now: Instant) -> Result<crate::Gate, MediaError> {
        if self.peers.contains_key(&id) {
            return Err(MediaError::PeerExists(id));
        }
        self.sessions += 1;
        let session = self.sessions;
        let local = &self.local_candidates;
        let peer = catch_unwind(|| Peer::new(id, session, local, now))
            .map_err(|_| MediaError::webrtc("the webrtc stack panicked building a connection"))??;
        let gate = peer.gate.clone();
        self.routes.add_peer(id, peer.ufrag.clone());
        self.peers.insert(id, peer);
        self.pump(id, now);
        tracing::debug!(peer = %id, "peer added");
        Ok(gate)
    }

    /// See [`crate::MediaHandle::start_session`].
    fn start_session(
        &mut self,
        request: SessionRequest,
        now: Instant,
    ) -> Result<NewSession, MediaError> {
        let SessionRequest {
            peer: id,
            offer,
            group,
            may_be_heard,
        } = request;
        self.close_peer(id);
        let gate = self.add_peer(id, now)?;
        gate.set(may_be_heard);
        let session = self.sessions;
        let answer = self.set_group(id, group, now).and_then(|()| {
            self.guarded(id, |peer| peer.answer(offer, now))
                .unwrap_or(Err(MediaError::UnknownPeer(id)))
        });
        match answer {
            Ok(answer) => Ok(NewSession {
                gate,
                answer,
                session,
            }),
            Err(e) => {
                self.close_peer(id);
                Err(e)
            }
        }
    }

    fn set_group(
        &mut self,
        id: PeerId,
        group: Option<GroupId>,
        now: Instant,
    ) -> Result<(), MediaError> {
        let mut affected = Vec::new();
        self.move_peer(id, group, &mut affected)?;
        self.resubscribe(&affected, now);
        Ok(())
    }

    /// Moves many peers, then brings everyone affected up to date once (admitting a thousand people
    /// at once must not resubscribe the whole group a thousand times). Unknown peers are skipped.
    fn set_groups(&mut self, moves: Vec<(PeerId, Option<GroupId>)>, now: Instant) {
        let mut affected = Vec::new();
        for (id, group) in moves {
            let _ = self.move_peer(id, group, &mut affected);
        }
        affected.sort_unstable();
        affected.dedup();
        self.resubscribe(&affected, now);
    }

    /// Moves one peer between groups; adds to `affected` everyone whose received voices may change.
    fn move_peer(
        &mut self,
        id: PeerId,
        group: Option<GroupId>,
        affected: &mut Vec<PeerId>,
    ) -> Result<(), MediaError> {
        let peer = self.peers.get_mut(&id).ok_or(MediaError::UnknownPeer(id))?;
        let old = peer.group;
        if old == group {
            return Ok(());
        }
        peer.group = group;
        affected.push(id);
        if let Some(old) = old {
            self.leave_group(id, old);
            affected.extend(self.groups.get(&old).into_iter().flatten().copied());
        }
        if let Some(new) = group {
            let members = self.groups.entry(new).or_default();
            affected.extend(members.iter().copied());
            members.push(id);
        }
        tracing::debug!(peer = %id, group = ?group.map(|g| g.0), "peer moved");
        Ok(())
    }

    fn leave_group(&mut self, id: PeerId, group: GroupId) {
        if let Some(members) = self.groups.get_mut(&group) {
            members.retain(|m| *m != id);
            if members.is_empty() {
                self.groups.remove(&group);
                self.speakers.remove(&group);
                self.open_gates.remove(&group);
            }
        }
    }

    /// Brings each peer's received tracks in line with its group and offers where that changed.
    fn resubscribe(&mut self, ids: &[PeerId], now: Instant) {
        for &id in ids {
            let Some(peer) = self.peers.get(&id) else {
                continue;
            };
            if !peer.negotiated {
                // Tracks are added only once the client's own offer is answered, so they never get
                // matched against the m-lines of that first offer; `HandleOffer` resubscribes.
                continue;
            }
            let publishers = self.voices_for(peer);
            match self.guarded(id, |peer| peer.subscribe_exactly(&publishers)) {
                None => continue,
                Some(Err(e)) => {
                    tracing::warn!(peer = %id, error = %e, "could not update received tracks");
                }
                Some(Ok(())) => {}
            }
            self.offer_if_due(id, now);
            self.pump(id, now);
        }
    }

    /// The publishers `peer` should receive: the other members of its group, at most
    /// [`MediaConfig::max_voices`] of them (see there for which).
    fn voices_for(&self, peer: &Peer) -> Vec<PeerId> {
        let members = peer
            .group
            .and_then(|g| self.groups.get(&g))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let max = self.config.max_voices;
        if members.len() <= max + 1 {
            return members.to_vec(); // `subscribe_exactly` skips the peer itself
        }
        let open = |m: &PeerId| self.peers.get(m).is_some_and(|p| p.gate.is_open());
        let mut ranked: Vec<(bool, bool, usize, PeerId)> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| **m != peer.id)
            .map(|(i, m)| (!open(m), !peer.subscriptions.contains_key(m), i, *m))
            .collect();
        ranked.sort_unstable();
        ranked.truncate(max);
        ranked.into_iter().map(|(.., m)| m).collect()
    }

    /// In groups larger than [`MediaConfig::max_voices`] allows everyone to hear everyone, who
    /// receives whom follows whose gate is open: when that set changed, every member is resubscribed.
    fn revisit_large_groups(&mut self, now: Instant) {
        let max = self.config.max_voices;
        let mut changed = Vec::new();
        for (group, members) in &self.groups {
            if members.len() <= max + 1 {
                continue;
            }
            let open: Vec<PeerId> = members
                .iter()
                .filter(|m| self.peers.get(m).is_some_and(|p| p.gate.is_open()))
                .copied()
                .collect();
            if self.open_gates.get(group) != Some(&open) {
                changed.push((*group, open, members.clone()));
            }
        }
        for (group, open, members) in changed {
            self.open_gates.insert(group, open);
            self.resubscribe(&members, now);
        }
    }

    fn offer_if_due(&mut self, id: PeerId, now: Instant) {
        match self.guarded(id, |peer| peer.offer_if_due(now).map(|o| (o, peer.session))) {
            Some(Ok((Some(sdp), session))) => self.emit(MediaEvent::LocalOffer {
                peer: id,
                session,
                sdp,
            }),
            Some(Ok((None, _))) | None => {}
            Some(Err(e)) => tracing::warn!(peer = %id, error = %e, "could not make an offer"),
        }
    }

    /// Removes a peer and everything that refers to it. Returns whether it existed.
    fn close_peer(&mut self, id: PeerId) -> bool {
        let Some(mut peer) = self.peers.remove(&id) else {
            return false;
        };
        self.routes.remove_peer(id, &peer.ufrag);
        close_connection(&mut peer, &mut self.net);
        drop(peer);
        if let Some(tcp) = self.net.tcp.as_mut() {
            tcp.close_peer(id);
        }
        let mut others = Vec::new();
        let groups: Vec<GroupId> = self.groups.keys().copied().collect();
        for group in groups {
            if self.groups.get(&group).is_some_and(|m| m.contains(&id)) {
                self.leave_group(id, group);
                others.extend(self.groups.get(&group).into_iter().flatten().copied());
            }
        }
        self.resubscribe(&others, Instant::now());
        tracing::debug!(peer = %id, "peer closed");
        true
    }

    fn report_speakers(&mut self) {
        let mut changes = Vec::new();
        for (group, members) in &self.groups {
            let mut speaking: Vec<PeerId> = members
                .iter()
                .filter(|m| {
                    self.peers
                        .get_mut(m)
                        .is_some_and(|p| p.levels.take_speaking())
                })
                .copied()
                .collect();
            speaking.sort();
            let last = self.speakers.get(group).map(Vec::as_slice).unwrap_or(&[]);
            if last != speaking.as_slice() {
                changes.push((*group, speaking));
            }
        }
        for (group, speakers) in changes {
            self.speakers.insert(group, speakers.clone());
            self.emit(MediaEvent::ActiveSpeakers { group, speakers });
        }
    }
}

/// The next connection on the ICE-TCP listener; never, without one.
async fn accept(net: &Net) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match net.tcp.as_ref() {
        Some(tcp) => tcp.next_connection().await,
        None => std::future::pending().await,
    }
}

/// The next packet from an ICE-TCP connection task; never, without ICE-TCP.
async fn tcp_input(inbound: &mut Option<mpsc::Receiver<TcpInput>>) -> TcpInput {
    match inbound.as_mut() {
        // The `Tcp` keeps a sender for new connections, so the channel never closes.
        Some(inbound) => match inbound.recv().await {
            Some(input) => input,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Drains one peer's connection (see [`Sfu::pump`]): events first (the track opens before its packets
/// matter), then decrypted packets through the gate into `inbound`, then the events the reads raised;
/// then its datagrams go out and its next timer is read. Returns the events for the driver.
fn drain(
    peer: &mut Peer,
    net: &mut Net,
    speech_level_dbov: u8,
    gated: &mut u64,
    inbound: &mut Vec<Inbound>,
) -> Vec<MediaEvent> {
    let mut outgoing = Vec::new();
    for _ in 0..2 {
        while let Some(event) = peer.pc.poll_event() {
            if let Some(e) = on_pc_event(peer, event) {
                outgoing.push(e);
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() {
            // RTCP was already consumed by this leg's interceptors (reports are per leg); data
            // channel messages cannot occur (none negotiated).
            if let RTCMessage::RtpPacket(_, packet) = message
                && let Some(packet) = intake(peer, packet, speech_level_dbov, gated)
            {
                inbound.push(packet);
            }
        }
    }
    flush_writes(peer, net);
    peer.next_timeout = peer.pc.poll_timeout();
    outgoing
}

/// Closes a peer's connection and sends what that makes (DTLS close_notify), so the client learns at
/// once rather than by ICE timeout. A panic in the stack here only loses the goodbye.
fn close_connection(peer: &mut Peer, net: &mut Net) {
    let closed = catch_unwind(AssertUnwindSafe(|| {
        if let Err(e) = peer.pc.close() {
            tracing::debug!(peer = %peer.id, error = %e, "close failed");
        }
        flush_writes(peer, net);
    }));
    if closed.is_err() {
        tracing::error!(peer = %peer.id, "the webrtc stack panicked closing this peer");
    }
}

/// Turns one connection event into what the driver needs to know (if anything).
fn on_pc_event(peer: &mut Peer, event: RTCPeerConnectionEvent) -> Option<MediaEvent> {
    match event {
        RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
            let state = match state {
                RTCPeerConnectionState::Connected => PeerState::Connected,
                RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
                RTCPeerConnectionState::Failed => PeerState::Failed,
                RTCPeerConnectionState::Closed => PeerState::Closed,
                _ => return None,
            };
            if peer.reported == Some(state) {
                return None;
            }
            peer.reported = Some(state);
            tracing::debug!(peer = %peer.id, ?state, "connection state");
            Some(MediaEvent::PeerState {
                peer: peer.id,
                state,
            })
        }
        // Our host candidate is registered before the first offer and is in every SDP we make; only a
        // candidate found later (none today) is worth trickling.
        RTCPeerConnectionEvent::OnIceCandidateEvent(e) if peer.negotiated => {
            let init = e.candidate.to_json().ok()?;
            Some(MediaEvent::LocalCandidate {
                peer: peer.id,
                candidate: IceCandidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                },
            })
        }
        RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
            peer.on_track(init.receiver_id, init.ssrc);
            None
        }
        // Negotiation is decided by group membership (`Peer::renegotiate`), not by this event.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::test_harness::{Harness, wait_for};
    use crate::{GroupId, PeerId};

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_the_webrtc_stack_for_one_peer_closes_that_peer_only() {
        let h = Harness::start().await;
        let group = Some(GroupId(1));
        let (a, b, c) = (PeerId(1), PeerId(2), PeerId(3));
        let alice = h.join(a, group).await;
        let bob = h.join(b, group).await;
        let carol = h.join(c, group).await;
        wait_for("all hear each other", WAIT, || {
            alice.received_from(b) > 5 && bob.received_from(a) > 5 && alice.received_from(c) > 5
        })
        .await;

        // From now on every write on Carol's connection panics, as a bug in the stack would: on
        // her own timers and reads, and when the others' audio is forwarded to her.
        h.sfu.sabotage(c).await;
        wait_for("Carol reported lost", WAIT, || h.lost().contains(&c)).await;
        let stats = h.sfu.stats().await.expect("the relay runs on");
        assert_eq!((stats.peers, stats.lost), (2, 1));
        assert!(h.sfu.is_running());

        // Alice and Bob go on hearing each other.
        let (ab, ba) = (alice.received_from(b), bob.received_from(a));
        wait_for("Alice and Bob hear each other on", WAIT, || {
            alice.received_from(b) > ab + 50 && bob.received_from(a) > ba + 50
        })
        .await;
        carol.stop().await;
        bob.stop().await;
        alice.stop().await;
    }

    #[tokio::test]
    async fn a_dead_relay_says_so() {
        let (sfu, _events) = crate::spawn(crate::MediaConfig::loopback()).await.unwrap();
        assert!(sfu.is_running());
        sfu.crash(0).await;
        tokio::time::timeout(WAIT, sfu.stopped())
            .await
            .expect("stopped() resolves once the task is gone");
        assert!(!sfu.is_running());
        assert!(matches!(
            sfu.add_peer(PeerId(1)).await,
            Err(crate::MediaError::Stopped)
        ));
    }

    /// With several workers, any one of them dying makes the whole relay say it is not running
    /// (its rooms have no voice): readiness fails and the server exits.
    #[tokio::test]
    async fn any_dead_worker_makes_the_relay_say_so() {
        let config = crate::MediaConfig {
            workers: 3,
            ..crate::MediaConfig::loopback()
        };
        let (sfu, _events) = crate::spawn(config).await.unwrap();
        assert_eq!(sfu.local_addrs().len(), 3);
        assert!(sfu.is_running());
        sfu.crash(2).await;
        tokio::time::timeout(WAIT, sfu.stopped())
            .await
            .expect("stopped() resolves once any worker is gone");
        assert!(!sfu.is_running());
        // The others still answer, for the peers they hold.
        assert!(sfu.add_peer(PeerId(1)).await.is_ok());
    }
}

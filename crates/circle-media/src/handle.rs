//! The driver's side: [`MediaHandle`], a cloneable handle that sends [`Command`]s to the SFU task over a
//! bounded channel, and [`Gate`], the per-publisher "may be heard" flag that bypasses the channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::error::MediaError;
use crate::event::IceCandidate;
use crate::ids::{GroupId, PeerId};

/// Commands from handles to the SFU task. Full: the calling driver waits (back-pressure on signalling,
/// never on media).
pub(crate) const COMMAND_CAPACITY: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, MediaError>>;

/// What a handle asks of the SFU task.
pub(crate) enum Command {
    AddPeer(PeerId, Reply<Gate>),
    StartSession(SessionRequest, Reply<NewSession>),
    SetGroup(PeerId, Option<GroupId>, Reply<()>),
    SetGroups(Vec<(PeerId, Option<GroupId>)>, Reply<()>),
    HandleOffer(PeerId, String, Reply<String>),
    HandleAnswer(PeerId, String, Reply<()>),
    AddRemoteCandidate(PeerId, IceCandidate, Reply<()>),
    ClosePeer(PeerId, Reply<()>),
    Stats(oneshot::Sender<MediaStats>),
    /// Test hook: make the WebRTC stack "panic" on this peer's every write.
    #[cfg(test)]
    Sabotage(PeerId),
    /// Test hook: panic in the SFU task itself, outside any per-peer guard.
    #[cfg(test)]
    Crash,
}

/// What [`MediaHandle::start_session`] asks for.
pub(crate) struct SessionRequest {
    pub(crate) peer: PeerId,
    pub(crate) offer: String,
    pub(crate) group: Option<GroupId>,
    pub(crate) may_be_heard: bool,
}

/// A fresh session, as [`MediaHandle::start_session`] made it.
#[derive(Debug)]
pub struct NewSession {
    /// Its "may be heard" flag, set as asked.
    pub gate: Gate,
    /// The SFU's answer to the client's offer.
    pub answer: String,
    /// Which session of this peer it is: [`crate::MediaEvent::LocalOffer`] and
    /// [`crate::MediaEvent::PeerLost`] carry it, so a driver can tell an event of this session from
    /// one a replaced session of the same peer made just before it closed.
    pub session: u64,
}

/// The publisher's "may be heard" flag. Closed (false) when a peer is added: members join muted.
///
/// The packet path reads it for every packet; flipping it takes effect on the next packet, without a
/// round trip through the SFU task. Cheap to clone; the room actor keeps one per voice session. The
/// handle keeps no copy: [`MediaHandle::add_peer`] hands out the only one the driver gets.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    /// Lets the publisher be heard (`true`) or drops everything it sends (`false`).
    pub fn set(&self, open: bool) {
        self.0.store(open, Ordering::Relaxed);
    }

    /// Whether the publisher may be heard now.
    pub fn is_open(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts of what the SFU holds, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaStats {
    /// Live peers (added and not closed).
    pub peers: usize,
    /// Groups with at least one member.
    pub groups: usize,
    /// Demultiplexing entries by ICE username fragment (one per live peer).
    pub ufrag_routes: usize,
    /// Demultiplexing entries by remote address.
    pub addr_routes: usize,
    /// RTP packets forwarded (one per subscriber) since start.
    pub forwarded: u64,
    /// RTP packets dropped by a closed gate since start.
    pub gated: u64,
    /// Time the relay task spent per wake-up since start (see [`BusyHistogram`]).
    pub busy: BusyHistogram,
    /// Events dropped because the driver's event receiver was full.
    pub events_dropped: u64,
    /// Peers closed because the WebRTC stack panicked on their behalf ([`crate::MediaEvent::PeerLost`]).
    pub lost: u64,
    /// The most m-lines any live session has (bounded by its group's size, not its history).
    pub max_mlines: usize,
    /// ICE-TCP connections open now.
    pub tcp_connections: usize,
    /// ICE-TCP connections closed by the relay for what they sent: a frame longer than any packet
    /// Circle handles, or a first packet that is not an ICE check naming a live session.
    pub tcp_rejected: u64,
    /// Packets to ICE-TCP clients dropped because that connection's outbound queue was full (the
    /// client reads too slowly), as a full socket buffer drops a UDP datagram.
    pub tcp_dropped: u64,
    /// Datagrams not sent because the UDP socket's send buffer was full (or the send failed), as
    /// the network would drop them.
    pub udp_dropped: u64,
}

/// One relay worker as the handles see it: its command queue and its addresses.
pub(crate) struct WorkerTx {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) tcp_local_addr: Option<SocketAddr>,
}

/// Which worker holds each peer and each group. A group lives on one worker (its members forward to
/// each other with no hop), so a peer must be on its group's worker: a group is placed where it is
/// first needed (on the worker with the fewest groups, or its first member's), a peer where its
/// group is (or where [`MediaHandle::place_peer`] said).
#[derive(Default)]
pub(crate) struct Placement {
    peers: HashMap<PeerId, usize>,
    groups: HashMap<GroupId, usize>,
    /// Groups placed on each worker, for choosing the least loaded.
    load: Vec<usize>,
}

impl Placement {
    fn new(workers: usize) -> Self {
        Placement {
            load: vec![0; workers],
            ..Placement::default()
        }
    }

    fn least_loaded(&self) -> usize {
        (0..self.load.len())
            .min_by_key(|&w| self.load[w])
            .unwrap_or(0)
    }

    /// The worker of `group`, placing it on `preferred` (or the least loaded) if it is new.
    fn group(&mut self, group: GroupId, preferred: Option<usize>) -> usize {
        if let Some(&w) = self.groups.get(&group) {
            return w;
        }
        let w = preferred.unwrap_or_else(|| self.least_loaded());
        self.groups.insert(group, w);
        self.load[w] += 1;
        w
    }
}

/// A cloneable handle to the relay. All methods are requests to the worker that holds the peer (see
/// the crate docs on workers) and return its answer.
///
/// When every handle is dropped, every worker closes all its peers and ends.
#[derive(Clone)]
pub struct MediaHandle {
    pub(crate) workers: Arc<[WorkerTx]>,
    pub(crate) placement: Arc<Mutex<Placement>>,
    /// Turns true when any worker ends, however it ends: see [`MediaHandle::is_running`].
    pub(crate) stopped: watch::Receiver<bool>,
}

/// Held by each worker task for as long as it runs; dropping it (the task returned or panicked)
/// tells every handle that the relay is no longer whole.
pub(crate) struct RunningGuard(pub(crate) Arc<watch::Sender<bool>>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl MediaHandle {
    pub(crate) fn new(workers: Vec<WorkerTx>, stopped: watch::Receiver<bool>) -> Self {
        MediaHandle {
            placement: Arc::new(Mutex::new(Placement::new(workers.len()))),
            workers: workers.into(),
            stopped,
        }
    }

    fn placement(&self) -> std::sync::MutexGuard<'_, Placement> {
        // Plain maps updated in one step each: a panic elsewhere cannot leave them half-written.
        self.placement.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The UDP address of the first worker (the only one with one worker).
    pub fn local_addr(&self) -> SocketAddr {
        self.workers[0].local_addr
    }

    /// Every worker's UDP address, in worker order (consecutive ports from the configured one, or
    /// each a free port when it is 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.local_addr).collect()
    }

    /// The first worker's ICE-TCP address, if [`crate::MediaConfig::tcp_listen`] is set.
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.workers[0].tcp_local_addr
    }

    /// How many workers the relay runs.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Which worker holds `peer`, if it is placed.
    pub fn worker_of(&self, peer: PeerId) -> Option<usize> {
        self.placement().peers.get(&peer).copied()
    }

    /// Puts `peer`'s sessions on `group`'s worker (placing the group if it is new), so that it can
    /// join `group` later: a member waiting in a room's waiting room (in no group) is admitted
    /// into the room's group on the same worker. Call it before the peer's first session.
    pub fn place_peer(&self, peer: PeerId, group: GroupId) {
        let mut p = self.placement();
        let w = p.group(group, None);
        p.peers.insert(peer, w);
    }

    /// Forgets where `group` was placed (its room is gone), so placement counts only live groups.
    pub fn forget_group(&self, group: GroupId) {
        let mut p = self.placement();
        if let Some(w) = p.groups.remove(&group) {
            p.load[w] = p.load[w].saturating_sub(1);
        }
    }

    /// Whether every worker is still running. A worker stops when its socket fails, when it panics
    /// outside the per-peer guards (a bug in this crate), or when every handle has been dropped;
    /// after that its peers' requests fail with [`MediaError::Stopped`] and its rooms have no
    /// voice, so a server should report itself not ready and exit (see [`MediaHandle::stopped`]).
    pub fn is_running(&self) -> bool {
        !*self.stopped.borrow()
    }

    /// Resolves once any worker has stopped (at once if one already has). For a supervisor:
    /// `tokio::select!` on it next to the server's other work.
    pub async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        // An error means every worker's guard is gone, each having said so first.
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// The worker of a peer, or the first (which then answers that it does not know the peer).
    fn peer_worker(&self, peer: PeerId) -> usize {
        self.worker_of(peer).unwrap_or(0)
    }

    /// Test hook: every later write for `peer` panics inside the SFU task.
    #[cfg(test)]
    pub(crate) async fn sabotage(&self, peer: PeerId) {
        let w = self.peer_worker(peer);
        let _ = self.workers[w].tx.send(Command::Sabotage(peer)).await;
    }

    /// Test hook: worker `w`'s task panics, as a bug outside the per-peer guards would make it.
    #[cfg(test)]
    pub(crate) async fn crash(&self, w: usize) {
        let _ = self.workers[w].tx.send(Command::Crash).await;
    }

    async fn request<T>(
        &self,
        worker: usize,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, MediaError> {
        let (reply, rx) = oneshot::channel();
        self.workers[worker]
            .tx
            .send(make(reply))
            .await
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)?
    }

    /// Creates a peer, in no group, with its gate closed. Returns its gate, the one place the
    /// driver opens and closes it. It goes to the worker [`MediaHandle::place_peer`] named, else
    /// to the one with the fewest groups.
    pub async fn add_peer(&self, peer: PeerId) -> Result<Gate, MediaError> {
        let w = {
            let mut p = self.placement();
            let w = p
                .peers
                .get(&peer)
                .copied()
                .unwrap_or_else(|| p.least_loaded());
            p.peers.insert(peer, w);
            w
        };
        self.request(w, |r| Command::AddPeer(peer, r)).await
    }

    /// Moves a peer into a group (it hears and is heard by the group's other members) or out of any
    /// (`None`: it hears nothing and is forwarded to no one). Triggers [`crate::MediaEvent::LocalOffer`]s
    /// for the peers whose set of received tracks changed. A group new to the relay is placed on
    /// the peer's worker; one on another worker is refused ([`MediaError::OtherWorker`]).
    pub async fn set_group(&self, peer: PeerId, group: Option<GroupId>) -> Result<(), MediaError> {
        let w = self.peer_worker(peer);
        if let Some(g) = group
            && self.placement().group(g, Some(w)) != w
        {
            return Err(MediaError::OtherWorker(peer));
        }
        self.request(w, |r| Command::SetGroup(peer, group, r)).await
    }

    /// [`MediaHandle::set_group`] for many peers in one round trip per worker, with one
    /// renegotiation per affected peer rather than one per move. Peers the relay does not know, and
    /// moves into a group on another worker, are skipped.
    pub async fn set_groups(
        &self,
        moves: Vec<(PeerId, Option<GroupId>)>,
    ) -> Result<(), MediaError> {
        let mut per_worker: Vec<Vec<(PeerId, Option<GroupId>)>> =
            (0..self.workers.len()).map(|_| Vec::new()).collect();
        {
            let mut p = self.placement();
            for (peer, group) in moves {
                let Some(&w) = p.peers.get(&peer) else {
                    continue;
                };
                if group.is_some_and(|g| p.group(g, Some(w)) != w) {
                    tracing::debug!(peer = %peer, "move into a group on another worker skipped");
                    continue;
                }
                per_worker[w].push((peer, group));
            }
        }
        for (w, moves) in per_worker.into_iter().enumerate() {
            if !moves.is_empty() {
                self.request(w, |r| Command::SetGroups(moves, r)).await?;
            }
        }
        Ok(())
    }

    /// Starts a fresh session for `peer` in one round trip: closes the one it has (if any), adds it
    /// anew with its gate set to `may_be_heard`, puts it in `group`, and answers the client's
    /// `offer` (mDNS candidates dropped). If the offer is refused, no session remains. Follow-up
    /// offers come as events after the reply, as for [`MediaHandle::handle_offer`].
    ///
    /// The session goes to `group`'s worker (a new group goes where the peer was placed, else to
    /// the worker with the fewest groups); in no group, to the peer's placed worker.
    pub async fn start_session(
        &self,
        peer: PeerId,
        offer: String,
        group: Option<GroupId>,
        may_be_heard: bool,
    ) -> Result<NewSession, MediaError> {
        let (w, previous) = {
            let mut p = self.placement();
            let placed = p.peers.get(&peer).copied();
            let w = match group {
                Some(g) => p.group(g, placed),
                None => placed.unwrap_or_else(|| p.least_loaded()),
            };
            p.peers.insert(peer, w);
            (w, placed.filter(|&old| old != w))
        };
        if let Some(old) = previous {
            // Its old session is on another worker: close it there, as a same-worker start would.
            let _ = self.request(old, |r| Command::ClosePeer(peer, r)).await;
        }
        let request = SessionRequest {
            peer,
            offer,
            group,
            may_be_heard,
        };
        self.request(w, |r| Command::StartSession(request, r)).await
    }

    /// Applies the client's offer (its first, or an ICE restart) and returns the SFU's answer SDP.
    ///
    /// Fails with [`MediaError::Glare`] if the SFU's own offer is outstanding. Any follow-up offer the
    /// SFU needs is emitted as an event *after* this reply: forward this answer to the client before
    /// the events read after it.
    pub async fn handle_offer(&self, peer: PeerId, sdp: String) -> Result<String, MediaError> {
        let w = self.peer_worker(peer);
        self.request(w, |r| Command::HandleOffer(peer, sdp, r))
            .await
    }

    /// Applies the client's answer to the SFU's last [`crate::MediaEvent::LocalOffer`] (mDNS candidates
    /// dropped).
    pub async fn handle_answer(&self, peer: PeerId, sdp: String) -> Result<(), MediaError> {
        let w = self.peer_worker(peer);
        self.request(w, |r| Command::HandleAnswer(peer, sdp, r))
            .await
    }

    /// Adds a trickled candidate from the client. An mDNS one (`….local`) is accepted and dropped: the
    /// SFU is ICE-lite and needs no client candidate, and would only try to resolve the name.
    pub async fn add_remote_candidate(
        &self,
        peer: PeerId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError> {
        let w = self.peer_worker(peer);
        self.request(w, |r| Command::AddRemoteCandidate(peer, candidate, r))
            .await
    }

    /// Closes a peer and frees everything it held: its connection, routes, group membership, tracks
    /// sent to others (they get a renegotiation offer), and its placement.
    pub async fn close_peer(&self, peer: PeerId) -> Result<(), MediaError> {
        let w = self.peer_worker(peer);
        let result = self.request(w, |r| Command::ClosePeer(peer, r)).await;
        let mut p = self.placement();
        if p.peers.get(&peer) == Some(&w) {
            p.peers.remove(&peer);
        }
        result
    }

    /// Counts of live state, summed over the workers (`max_mlines`: the largest).
    pub async fn stats(&self) -> Result<MediaStats, MediaError> {
        let mut total = MediaStats::default();
        for worker in self.workers.iter() {
            let (reply, rx) = oneshot::channel();
            worker
                .tx
                .send(Command::Stats(reply))
                .await
                .map_err(|_| MediaError::Stopped)?;
            total.add(&rx.await.map_err(|_| MediaError::Stopped)?);
        }
        Ok(total)
    }
}

impl MediaStats {
    /// Adds another worker's counts to these.
    fn add(&mut self, o: &MediaStats) {
        self.peers += o.peers;
        self.groups += o.groups;
        self.ufrag_routes += o.ufrag_routes;
        self.addr_routes += o.addr_routes;
        self.forwarded += o.forwarded;
        self.gated += o.gated;
        for (a, b) in self.busy.counts.iter_mut().zip(o.busy.counts) {
            *a += b;
        }
        self.busy.sum_nanos += o.busy.sum_nanos;
        self.events_dropped += o.events_dropped;
        self.lost += o.lost;
        self.max_mlines = self.max_mlines.max(o.max_mlines);
        self.tcp_connections += o.tcp_connections;
        self.tcp_rejected += o.tcp_rejected;
        self.tcp_dropped += o.tcp_dropped;
        self.udp_dropped += o.udp_dropped;
    }
}

/// Upper bounds of the [`BusyHistogram`] buckets. Forwarding one packet to a handful of listeners
/// takes tens of microseconds; a DTLS handshake or a large renegotiation, milliseconds; past one
/// audio frame (20 ms) the relay is late for everyone, so the buckets stop a little beyond that.
pub const BUSY_BOUNDS: [Duration; 12] = [
    Duration::from_micros(10),
    Duration::from_micros(25),
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
];

/// How long the relay task ran each time it woke (one poll of its future: the packets, commands or
/// timers that woke it, handled to the next wait), as a histogram over [`BUSY_BOUNDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BusyHistogram {
    /// Wake-ups per bucket (not cumulative): `counts[i]` took at most `BUSY_BOUNDS[i]` and more than
    /// the bound before; the last entry counts those longer than every bound.
    pub counts: [u64; BUSY_BOUNDS.len() + 1],
    /// Their total time, in nanoseconds.
    pub sum_nanos: u64,
}

impl BusyHistogram {
    /// Wake-ups counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The relay task's busy-time counters, written by [`Timed`] after each poll and read by the task
/// itself when asked for stats. Atomics because the wrapper and the task both hold them; only the
/// task's own thread touches them, so `Relaxed` is enough.
#[derive(Debug, Default)]
pub(crate) struct BusyTimes {
    counts: [AtomicU64; BUSY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl BusyTimes {
    fn record(&self, busy: Duration) {
        let bucket = BUSY_BOUNDS
            .iter()
            .position(|b| busy <= *b)
            .unwrap_or(BUSY_BOUNDS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> BusyHistogram {
        BusyHistogram {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

/// A future that times each of its polls into [`BusyTimes`]: for the relay task, each poll is one
/// wake-up, run to its next wait. (Boxed once, so that it needs no pin projection.)
pub(crate) struct Timed<F> {
    inner: Pin<Box<F>>,
    busy: Arc<BusyTimes>,
}

impl<F> Timed<F> {
    pub(crate) fn new(inner: F, busy: Arc<BusyTimes>) -> Self {
        Timed {
            inner: Box::pin(inner),
            busy,
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        let result = self.inner.as_mut().poll(cx);
        self.busy.record(started.elapsed());
        result
    }
}

#[cfg(test)]
mod busy_tests {
    use super::*;

    #[test]
    fn each_wake_up_lands_in_the_first_bucket_that_holds_it() {
        let busy = BusyTimes::default();
        busy.record(Duration::from_micros(3));
        busy.record(Duration::from_micros(10));
        busy.record(Duration::from_micros(11));
        busy.record(Duration::from_secs(1));
        let h = busy.snapshot();
        assert_eq!(h.counts[0], 2, "at most 10 µs");
        assert_eq!(h.counts[1], 1, "10 to 25 µs");
        assert_eq!(h.counts[BUSY_BOUNDS.len()], 1, "past every bound");
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum_nanos, 1_000_024_000);
    }
}

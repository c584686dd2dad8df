//! TURN over TCP and over TLS (RFC 8656 §3.1, RFC 6544), presented to the `turn` server as one
//! datagram-style [`Conn`]: `recv_from` yields one whole STUN or ChannelData message with the
//! client connection's address as its source; `send_to` queues bytes for that connection.
//!
//! Framing over a stream: a STUN message is a 20-byte header whose length field counts the rest;
//! a ChannelData message is a 4-byte header (channel number, length) and, over streams, padding
//! to a multiple of 4 (RFC 8656 §12.5). Anything else is garbage: that connection is closed, and
//! no other.
//!
//! Everything is bounded: the message size, the number of connections, the time a connection may
//! sit without sending a whole message, the TLS handshake, each write, and each connection's
//! outbound queue (full: the message is dropped, as a datagram would be).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use webrtc_util::Conn;

use crate::Counters;
use crate::relay::io_error;

/// The largest message accepted from a stream: the `turn` server reads into a 1500-byte buffer,
/// so anything longer could not be handled anyway. WebRTC keeps its packets below the path MTU,
/// so a browser never sends more.
pub(crate) const MAX_MESSAGE: usize = 1500;

/// Messages from all connections of one listener, waiting for the `turn` server's read loop.
/// When full, a connection's reader waits, which pushes back on that client through TCP.
const INBOUND_QUEUE: usize = 256;

/// Messages waiting to be written to one connection. When full, the message is dropped (and
/// counted): a client that does not read cannot hold up the server's single read loop.
const OUTBOUND_QUEUE: usize = 64;

/// How long a TLS handshake may take before the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one message may take to write before the connection is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// After an `accept` error (such as running out of file descriptors), wait this long before
/// accepting again rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Limits for the TCP and TLS listeners.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Connections open at once, per listener; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a connection may go without sending a whole message before it is closed. WebRTC
    /// clients send consent checks every few seconds, so a live call never comes near it.
    pub idle_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Why a stream stopped making sense.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The first bits are neither STUN's `00` nor ChannelData's `01`, or a STUN header is wrong.
    Garbage,
    /// The message would be longer than [`MAX_MESSAGE`].
    TooLong,
}

/// The total length (padding included) of the message whose first four bytes are `head`.
pub(crate) fn frame_len(head: [u8; 4]) -> Result<usize, FrameError> {
    let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let total = match head[0] >> 6 {
        // STUN: the length counts the attributes, always a multiple of 4 (RFC 8489 §5).
        0b00 if length % 4 == 0 => 20 + length,
        // ChannelData, padded over streams.
        0b01 => 4 + length.div_ceil(4) * 4,
        _ => return Err(FrameError::Garbage),
    };
    if total > MAX_MESSAGE {
        return Err(FrameError::TooLong);
    }
    Ok(total)
}

/// STUN's magic cookie (RFC 8489 §5), checked so that a stream that happens to start with `00`
/// bits is not taken for STUN.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// Reads one whole message. `Ok(None)` is a clean end of stream between messages.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 4];
    match reader.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let total = frame_len(head)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
    let mut frame = vec![0u8; total];
    frame[..4].copy_from_slice(&head);
    reader.read_exact(&mut frame[4..]).await?;
    if head[0] >> 6 == 0 && frame[4..8] != MAGIC_COOKIE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no STUN magic cookie",
        ));
    }
    Ok(Some(frame))
}

/// A connection's id (so that a closing connection removes only its own entry) and its outbound
/// queue.
type Queue = (u64, mpsc::Sender<Vec<u8>>);

/// The connections of one listener, by the client's address.
struct Connections {
    /// Each live connection's outbound queue.
    queues: Mutex<HashMap<SocketAddr, Queue>>,
    next_id: AtomicU64,
}

/// One TCP or TLS listener, as one [`Conn`] for the `turn` server.
pub(crate) struct StreamMux {
    /// The listener's bound address.
    pub(crate) local: SocketAddr,
    inbound: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    connections: Arc<Connections>,
    counters: Arc<Counters>,
    /// Ends the accept loop and every connection of this listener.
    shutdown: CancellationToken,
}

impl StreamMux {
    /// Starts accepting on `listener` (TLS when `tls` is given). The accept loop and the
    /// connection tasks run on `tracker` and end when `shutdown` is cancelled or the `turn`
    /// server closes this listener.
    pub(crate) fn start(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        limits: StreamLimits,
        counters: Arc<Counters>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> io::Result<StreamMux> {
        let local = listener.local_addr()?;
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let connections = Arc::new(Connections {
            queues: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let accept = Acceptor {
            listener,
            tls,
            limits,
            slots: Arc::new(Semaphore::new(0)),
            inbound: inbound_tx,
            connections: connections.clone(),
            counters: counters.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        accept.slots.add_permits(accept.limits.max_connections);
        tracker.spawn(accept.run());
        Ok(StreamMux {
            local,
            inbound: tokio::sync::Mutex::new(inbound_rx),
            connections,
            counters,
            shutdown,
        })
    }
}

/// The accept loop of one listener.
struct Acceptor {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: StreamLimits,
    /// One permit per connection allowed at once.
    slots: Arc<Semaphore>,
    inbound: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    connections: Arc<Connections>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Acceptor {
    /// Ends when `shutdown` is cancelled.
    async fn run(self) {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = self.shutdown.cancelled() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "turn: accepting a stream connection failed");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        () = self.shutdown.cancelled() => return,
                    }
                }
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                self.counters
                    .refused_connections
                    .fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                peer,
                idle_timeout: self.limits.idle_timeout,
                inbound: self.inbound.clone(),
                connections: self.connections.clone(),
                counters: self.counters.clone(),
                shutdown: self.shutdown.clone(),
            };
            let tls = self.tls.clone();
            self.tracker.spawn(async move {
                connection.run(stream, tls).await;
                drop(slot);
            });
        }
    }
}

/// One client's stream connection.
struct Connection {
    peer: SocketAddr,
    idle_timeout: Duration,
    inbound: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    connections: Arc<Connections>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
}

impl Connection {
    /// Ends when the client closes, sends garbage, idles, stops reading, or at shutdown.
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(tls) = tls else {
            return self.serve(stream).await;
        };
        let handshake = tokio::select! {
            handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)) => handshake,
            () = self.shutdown.cancelled() => return,
        };
        match handshake {
            Ok(Ok(stream)) => self.serve(stream).await,
            Ok(Err(e)) => tracing::debug!(error = %e, "turn: TLS handshake failed"),
            Err(_) => tracing::debug!("turn: TLS handshake timed out"),
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Send + Unpin>(self, stream: S) {
        self.counters
            .stream_connections
            .fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let id = self.connections.next_id.fetch_add(1, Ordering::Relaxed);
        self.connections
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(self.peer, (id, tx));
        let (reader, writer) = tokio::io::split(stream);
        tokio::select! {
            result = self.read_loop(reader) => {
                if let Err(e) = result {
                    if e.kind() == io::ErrorKind::InvalidData {
                        self.counters.bad_streams.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(error = %e, "turn: closing a stream connection");
                }
            }
            () = write_loop(writer, rx) => {}
            () = self.shutdown.cancelled() => {}
        }
        let mut queues = self
            .connections
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if queues
            .get(&self.peer)
            .is_some_and(|(other, _)| *other == id)
        {
            queues.remove(&self.peer);
        }
        drop(queues);
        self.counters
            .stream_connections
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Hands whole messages to the `turn` server until the stream ends or misbehaves.
    async fn read_loop<R: AsyncRead + Unpin>(&self, mut reader: R) -> io::Result<()> {
        loop {
            let frame = tokio::time::timeout(self.idle_timeout, read_frame(&mut reader))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle stream"))??;
            let Some(frame) = frame else {
                return Ok(());
            };
            if self.inbound.send((frame, self.peer)).await.is_err() {
                // The `turn` server stopped reading: it is closing.
                return Ok(());
            }
        }
    }
}

/// Writes queued messages until the queue closes, a write fails, or one takes too long.
async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(message) = rx.recv().await {
        let write = async {
            writer.write_all(&message).await?;
            writer.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

#[async_trait]
impl Conn for StreamMux {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(io_error(
            io::ErrorKind::Unsupported,
            "a listener does not connect",
        ))
    }

    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(io_error(
            io::ErrorKind::Unsupported,
            "a listener uses recv_from",
        ))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        // Only the `turn` server's read loop calls this, so the lock is never contended.
        let mut inbound = self.inbound.lock().await;
        loop {
            let received = tokio::select! {
                received = inbound.recv() => received,
                () = self.shutdown.cancelled() => None,
            };
            let Some((frame, from)) = received else {
                return Err(io_error(io::ErrorKind::NotConnected, "listener closed"));
            };
            let Some(room) = buf.get_mut(..frame.len()) else {
                // Cannot happen while MAX_MESSAGE fits the server's buffer; dropped if it does.
                self.counters.bad_streams.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            room.copy_from_slice(&frame);
            return Ok((frame.len(), from));
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(io_error(
            io::ErrorKind::Unsupported,
            "a listener uses send_to",
        ))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let queue = self
            .connections
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&target)
            .map(|(_, tx)| tx.clone());
        let Some(queue) = queue else {
            return Err(io_error(io::ErrorKind::NotConnected, "no such connection"));
        };
        match queue.try_send(buf.to_vec()) {
            Ok(()) => Ok(buf.len()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters
                    .dropped_outbound
                    .fetch_add(1, Ordering::Relaxed);
                Ok(buf.len())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(io_error(io::ErrorKind::NotConnected, "connection closed"))
            }
        }
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.shutdown.cancel();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_measured_from_their_header() {
        // A 20-byte STUN header announcing 8 bytes of attributes.
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x08]), Ok(28));
        // ChannelData of 5 bytes is padded to 8 over a stream.
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]), Ok(12));
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x00]), Ok(4));
        // STUN lengths are multiples of 4; the top bits 10 and 11 are neither protocol.
        assert_eq!(
            frame_len([0x00, 0x01, 0x00, 0x07]),
            Err(FrameError::Garbage)
        );
        assert_eq!(
            frame_len([0x80, 0x00, 0x00, 0x04]),
            Err(FrameError::Garbage)
        );
        assert_eq!(
            frame_len([0xC0, 0x00, 0x00, 0x04]),
            Err(FrameError::Garbage)
        );
        assert_eq!(
            frame_len([0x40, 0x00, 0xFF, 0xFF]),
            Err(FrameError::TooLong)
        );
        assert_eq!(
            frame_len([0x00, 0x01, 0x05, 0xD0]),
            Err(FrameError::TooLong)
        );
    }

    #[tokio::test]
    async fn a_message_split_across_reads_is_reassembled_and_garbage_is_refused() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut stun = vec![0x00, 0x01, 0x00, 0x04];
        stun.extend_from_slice(&MAGIC_COOKIE);
        stun.extend_from_slice(&[7; 12]);
        stun.extend_from_slice(&[1, 2, 3, 4]);
        client.write_all(&stun[..10]).await.unwrap();
        let reading = tokio::spawn(async move {
            let first = read_frame(&mut server).await.unwrap();
            let second = read_frame(&mut server).await;
            (first, second)
        });
        client.write_all(&stun[10..]).await.unwrap();
        // STUN-looking bits without the magic cookie.
        client.write_all(&[0x00, 0x01, 0x00, 0x00]).await.unwrap();
        client.write_all(&[0; 16]).await.unwrap();
        let (first, second) = reading.await.unwrap();
        assert_eq!(first, Some(stun));
        assert_eq!(second.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}

//! The listeners: Circle's own accept loop in front of the axum routers.
//!
//! `axum::serve` has no header timeout, no header size limit, no connection cap and spins on
//! `EMFILE`. Here each accepted socket must first get a permit from [`Connections`] (past the cap it is
//! refused at once, so live meetings keep their descriptors); TLS, when configured, is negotiated
//! within the header timeout; then hyper serves HTTP/1.1 with a header read timeout (which is also the
//! idle timeout between requests) and a bounded read buffer (a larger request head gets 431). Bodies
//! are limited and timed by layers in [`crate::http::router`]. A websocket leaves hyper at the upgrade:
//! none of these timeouts apply to it, but it keeps its connection permit until it closes.
//!
//! How it ends: the accept loop stops when the server's shutdown token fires; every HTTP connection is
//! then shut down gracefully (the request in flight finishes), and the loop's task waits for them.
//! When draining, connections open at that moment are shut down gracefully, and idle connections
//! close after the header timeout, so only websockets and requests in flight remain.

use crate::tls::TlsAcceptor;
use axum::{Extension, Router, extract::ConnectInfo};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, warn};

/// First pause after an accept error that is not about one connection (out of descriptors, out of
/// memory): accepting again at once would spin on the same error.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest pause between accept attempts while the error persists.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a refused plain-HTTP connection is told before it is closed. Written without waiting: if the
/// socket cannot take it at once, the connection is simply closed.
const REFUSED_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\nretry-after: 5\r\ncontent-length: 81\r\n\r\n\
{\"code\":\"server_busy\",\"message\":\"this server has no room for another connection\"}";

/// The cap on open connections, shared by the public listeners, and its gauges.
#[derive(Debug)]
pub struct Connections {
    /// One permit per open connection; a websocket holds its permit until it closes.
    permits: Arc<Semaphore>,
    /// Connections open now.
    open: AtomicUsize,
    /// Connections refused because the cap was reached, since the start.
    refused: AtomicU64,
}

impl Connections {
    /// A cap of `max` open connections.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Connections open now (HTTP and websocket).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused at the cap since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A slot for one more connection, or `None` at the cap.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            _permit: permit,
            conns: self.clone(),
        })
    }
}

/// One admitted connection's place under the cap; given back when dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    conns: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's byte stream carrying its [`Slot`], so the slot lives exactly as long as the socket:
/// through hyper, and after a websocket upgrade inside the websocket.
struct Counted<IO> {
    io: IO,
    _slot: Slot,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// How one listener serves its connections.
#[derive(Clone)]
pub struct Listener {
    /// The routes.
    pub app: Router,
    /// TLS for this listener, if any.
    pub tls: Option<TlsAcceptor>,
    /// Time to send a request head (and to finish the TLS handshake); idle time between requests.
    pub header_timeout: Duration,
    /// Largest request head, in bytes (hyper's read buffer; at least 8192).
    pub max_header_bytes: usize,
    /// The cap this listener's connections count against, if any.
    pub connections: Option<Arc<Connections>>,
    /// Fires when the server stops: stop accepting, finish requests in flight.
    pub stop: CancellationToken,
    /// Fires when the server starts draining: stop keeping HTTP connections alive.
    pub drain: CancellationToken,
}

impl Listener {
    /// Accepts on `listener` until `stop` fires; the task ends once every HTTP connection has.
    pub fn spawn(self, listener: TcpListener) -> JoinHandle<()> {
        tokio::spawn(self.accept_loop(listener))
    }

    async fn accept_loop(self, listener: TcpListener) {
        let this = Arc::new(self);
        let conns = TaskTracker::new();
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            let accepted = tokio::select! {
                _ = this.stop.cancelled() => break,
                r = listener.accept() => r,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    accepted
                }
                // The client gave up before we accepted: nothing to do.
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of descriptors (EMFILE / ENFILE) or memory: pause new connections and
                    // keep serving the open ones; the kernel's backlog holds or refuses newcomers.
                    warn!(error = %e, pause_ms = backoff.as_millis() as u64,
                        "cannot accept connections; pausing");
                    tokio::select! {
                        _ = this.stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            let slot = match &this.connections {
                Some(c) => match c.admit() {
                    Some(slot) => Some(slot),
                    None => {
                        c.refused.fetch_add(1, Ordering::Relaxed);
                        refuse(stream, this.tls.is_none());
                        continue;
                    }
                },
                None => None,
            };
            let _ = stream.set_nodelay(true);
            conns.spawn(this.clone().connection(stream, peer, slot));
        }
        conns.close();
        conns.wait().await;
    }

    /// One connection: the TLS handshake if any, then HTTP until it closes or upgrades.
    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, slot: Option<Slot>) {
        match (&self.tls, slot) {
            (None, Some(slot)) => {
                let io = Counted {
                    io: stream,
                    _slot: slot,
                };
                self.serve(io, peer).await
            }
            (None, None) => self.serve(stream, peer).await,
            (Some(tls), slot) => {
                let handshake = tokio::time::timeout(self.header_timeout, tls.accept(stream));
                let tls_stream = match handshake.await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!("TLS handshake timed out");
                        return;
                    }
                };
                match slot {
                    Some(slot) => {
                        self.serve(
                            Counted {
                                io: tls_stream,
                                _slot: slot,
                            },
                            peer,
                        )
                        .await
                    }
                    None => self.serve(tls_stream, peer).await,
                }
            }
        }
    }

    async fn serve<IO>(&self, io: IO, peer: SocketAddr)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Handlers read the peer address as axum's `ConnectInfo`, as under `axum::serve`.
        let app = self.app.clone().layer(Extension(ConnectInfo(peer)));
        let service = TowerToHyperService::new(app);
        // A connection open when the drain starts is shut down gracefully (after its request in
        // flight). One opened while draining is served as usual (a latecomer's websocket upgrade
        // must work: turning keep-alive off would answer `Connection: close` instead of upgrading)
        // and closes after its idle timeout.
        let draining = self.drain.is_cancelled();
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(self.max_header_bytes);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let ended = tokio::select! {
            r = conn.as_mut() => Some(r),
            _ = self.stop.cancelled() => None,
            _ = self.drain.cancelled(), if !draining => None,
        };
        let ended = match ended {
            Some(r) => r,
            None => {
                // Finish the request in flight (bodies are timed), then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            debug!(error = %e, "HTTP connection ended with an error");
        }
    }
}

/// Accept errors that concern one connection only (it was reset before we took it); anything else
/// (out of descriptors, out of memory) concerns the process.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Refuses a connection over the cap: a 503 if it can be written at once (plain HTTP only: a TLS
/// client could not read it), then close.
fn refuse(stream: TcpStream, plain: bool) {
    if plain {
        let _ = stream.try_write(REFUSED_RESPONSE);
    }
    debug!("connection refused: at the connection cap");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_response_says_its_length() {
        let text = std::str::from_utf8(REFUSED_RESPONSE).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}

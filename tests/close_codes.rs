//! Close codes a client can rely on (RFC 6455 §7.4): a protocol violation earns 1002, invalid UTF-8
//! 1007, a message over the limit 1009, and the close frame reaches the client even when it was still
//! sending (the server drains its input instead of resetting the connection).
//!
//! These speak raw websocket frames over TCP, since a well-behaved client library cannot send the
//! broken frames under test.
//!
//! Why the draining matters: closing a socket whose input was not all read makes the kernel reset the
//! connection and throw away whatever it had not yet transmitted. On loopback the close frame is
//! usually transmitted at once, before the reset, and then it survives; it is lost when it is still
//! in the server's send queue, as when the client's receive window is closed (a client busy
//! uploading, a slow link). [`the_1009_close_arrives_when_the_client_was_not_reading`] builds that
//! case: it fails when the server closes without draining.

use circle_tests::server;
use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const WAIT: Duration = Duration::from_secs(5);

/// A websocket opened by hand: the handshake sent and its 101 read.
async fn open(addr: std::net::SocketAddr) -> TcpStream {
    handshake(TcpStream::connect(addr).await.expect("connect"), addr).await
}

/// [`open`] with a small receive buffer, so that a client that does not read closes its receive
/// window after a few kilobytes.
async fn open_small_window(addr: std::net::SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    socket.set_nonblocking(true).expect("non-blocking");
    let tcp = TcpStream::from_std(std::net::TcpStream::from(socket)).expect("tokio socket");
    handshake(tcp, addr).await
}

async fn handshake(mut tcp: TcpStream, addr: std::net::SocketAddr) -> TcpStream {
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.expect("handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await.expect("101 response");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgraded");
    tcp
}

/// A client frame: FIN and opcode in `first`, masked (or not) payload.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x11, 0x22, 0x33, 0x44];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads server frames until a close frame and returns its status code (`None`: a close without
/// one, or the connection ended with no close frame at all).
async fn close_code(tcp: &mut (impl AsyncRead + Unpin)) -> Option<u16> {
    let read = async {
        loop {
            let mut h = [0u8; 2];
            tcp.read_exact(&mut h).await.ok()?;
            let len = match h[1] & 0x7F {
                126 => {
                    let mut l = [0u8; 2];
                    tcp.read_exact(&mut l).await.ok()?;
                    u16::from_be_bytes(l) as usize
                }
                127 => {
                    let mut l = [0u8; 8];
                    tcp.read_exact(&mut l).await.ok()?;
                    u64::from_be_bytes(l) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.ok()?;
            if h[0] & 0x0F == 0x8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the server answers")
}

#[tokio::test]
async fn protocol_violations_close_with_1002_and_bad_utf8_with_1007() {
    let srv = server().await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("an unmasked frame", frame(0x81, b"{}", false), 1002),
        ("reserved bits set", frame(0x81 | 0x40, b"{}", true), 1002),
        ("a reserved opcode", frame(0x83, b"{}", true), 1002),
        (
            "a control frame over 125 bytes",
            frame(0x89, &[b'p'; 126], true),
            1002,
        ),
        (
            "a continuation with nothing to continue",
            frame(0x80, b"{}", true),
            1002,
        ),
        (
            "a text frame that is not UTF-8",
            frame(0x81, &[0xC3, 0x28], true),
            1007,
        ),
    ];
    for (what, bytes, expected) in cases {
        let mut tcp = open(srv.running.addr).await;
        tcp.write_all(&bytes).await.expect("send");
        assert_eq!(close_code(&mut tcp).await, Some(expected), "{what}");
    }
}

/// The close code under a client that keeps uploading. On loopback the close frame is transmitted
/// before any reset, so this one does not show the draining (see the next test); it shows the code.
#[tokio::test]
async fn the_1009_close_arrives_while_the_client_is_still_sending() {
    let srv = server().await;
    let tcp = open(srv.running.addr).await;
    let (mut rd, mut wr) = tcp.into_split();
    // 300 KiB, over the 256 KiB limit, then more: the server stops reading at the first header, so
    // most of this is still unread when it closes.
    let sending = tokio::spawn(async move {
        let _ = wr
            .write_all(&frame(0x81, &vec![b'a'; 300 * 1024], true))
            .await;
        // A client streaming a large upload keeps writing; the server's answer waits.
        for _ in 0..64 {
            if wr
                .write_all(&frame(0x81, &vec![b'b'; 64 * 1024], true))
                .await
                .is_err()
            {
                break;
            }
        }
        wr
    });
    // Read nothing until the server has had its say and dropped (or kept) the connection.
    let _wr = sending.await.expect("sender");
    assert_eq!(close_code(&mut rd).await, Some(1009));
}

/// A connection's queues as `/proc/net/tcp` shows its end at `local`: bytes written and not yet
/// acknowledged by the other end (sent, or waiting for its window), and bytes received and not yet
/// read. `None` once that socket is gone (closed or reset).
fn queues(local: SocketAddr, remote: SocketAddr) -> Option<(u32, u32)> {
    let hex = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(ip) => {
            format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), a.port())
        }
        std::net::IpAddr::V6(_) => String::new(),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Established, or the peer closed (CLOSE_WAIT): the owner still holds the socket.
        let open = matches!(f.get(3), Some(&"01") | Some(&"08"));
        if !open || f.get(1) != Some(&local.as_str()) || f.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = f.get(4)?.split_once(':')?;
        Some((
            u32::from_str_radix(tx, 16).ok()?,
            u32::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// Bytes the server has written on the connection from `client` and not yet been able to send
/// (`notsent` in `ss -ti`: waiting for the client's receive window), or `None` when there is no
/// such connection.
fn server_not_sent(server: SocketAddr, client: SocketAddr) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args([
            "-tinH",
            "src",
            &server.to_string(),
            "dst",
            &client.to_string(),
        ])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return None;
    }
    // `ss` prints the field only when it is not zero.
    Some(
        text.split_whitespace()
            .find_map(|f| f.strip_prefix("notsent:"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

/// Polls `cond` every 5 ms until it holds; panics naming `what` after [`WAIT`].
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_1009_close_arrives_when_the_client_was_not_reading() {
    let srv = server().await;
    let server_addr = srv.running.addr;
    let tcp = open_small_window(server_addr).await;
    let client_addr = tcp.local_addr().expect("local address");
    let (mut rd, mut wr) = tcp.into_split();
    let unsent = || queues(server_addr, client_addr).map(|(tx, _)| tx);
    let unread = || queues(client_addr, server_addr).map_or(0, |(_, rx)| rx);
    let waiting = || server_not_sent(server_addr, client_addr).unwrap_or(0);
    // Frames that are not JSON, one at a time, each answered with an error we do not read, until
    // our receive window is closed and the server holds a reply it cannot send. That is a few
    // kilobytes, far below the server's send buffer, so what it writes next (the close frame) waits
    // there too.
    let mut sent = 0;
    while waiting() == 0 {
        assert!(sent < 1_000, "our receive window never closed");
        let before = unread();
        wr.write_all(&frame(0x81, b"not json", true))
            .await
            .expect("send");
        sent += 1;
        wait_for("the reply", || unread() > before || waiting() > 0).await;
    }
    let stuck = unsent().expect("the connection is open");
    // Over the limit: the server stops reading at the header and closes with 1009, while we go on
    // uploading the rest, as a client in the middle of a large message does.
    let sending = tokio::spawn(async move {
        let _ = wr
            .write_all(&frame(0x81, &vec![b'a'; 300 * 1024], true))
            .await;
        wr
    });
    // Until the close frame is queued behind the replies, or the connection was reset (the server's
    // socket is gone, and everything it held with it).
    wait_for("the server's close", || unsent().is_none_or(|q| q > stuck)).await;
    // Now read: the replies, then the close frame, if it was not thrown away.
    assert_eq!(close_code(&mut rd).await, Some(1009));
    drop(sending);
}

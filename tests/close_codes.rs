//! Close codes a client can rely on (RFC 6455 §7.4): a protocol violation earns 1002, invalid UTF-8
//! 1007, a message over the limit 1009, and the close frame reaches the client even when it was still
//! sending (the server drains its input instead of resetting the connection).
//!
//! These speak raw websocket frames over TCP, since a well-behaved client library cannot send the
//! broken frames under test.

use circle_tests::server;
use std::time::Duration;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const WAIT: Duration = Duration::from_secs(5);

/// A websocket opened by hand: the handshake sent and its 101 read.
async fn open(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
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

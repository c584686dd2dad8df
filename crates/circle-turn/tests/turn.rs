//! The TURN server through webrtc-rs's TURN client, over UDP, TCP and TLS, on loopback: a client
//! with valid credentials reaches Circle's media address (a UDP socket playing it) and hears its
//! reply; every other peer is refused and counted; bad credentials get nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use async_trait::async_trait;
use circle_turn::{StreamLimits, TlsListen, TurnConfig, TurnServer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

const SECRET: &str = "test secret, shared with Circle";
const REALM: &str = "circle.test";

/// A guard against hangs, not a timing assertion: every step is a loopback round trip.
const STEP: Duration = Duration::from_secs(5);

async fn step<T>(what: &str, future: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(STEP, future)
        .await
        .with_context(|| format!("{what} did not finish"))
}

#[derive(Clone)]
enum Transport {
    Udp,
    Tcp,
    Tls,
    /// TCP over a connection the test can stall.
    TcpStalling(Arc<StreamConn<TcpStream>>),
}

/// A running server, the socket playing Circle's media address, and the test CA for TLS.
struct Setup {
    server: TurnServer,
    media: Arc<UdpSocket>,
    ca: rustls::pki_types::CertificateDer<'static>,
}

async fn setup() -> anyhow::Result<Setup> {
    setup_with(StreamLimits::default()).await
}

async fn setup_with(stream_limits: StreamLimits) -> anyhow::Result<Setup> {
    let media = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let (tls_config, ca) = test_tls()?;
    let loopback = "127.0.0.1".parse()?;
    let server = circle_turn::spawn(TurnConfig {
        udp: Some("127.0.0.1:0".parse()?),
        tcp: Some("127.0.0.1:0".parse()?),
        tls: Some(TlsListen {
            addr: "127.0.0.1:0".parse()?,
            config: tls_config,
        }),
        relay_bind_ip: loopback,
        relay_advertised_ip: loopback,
        relay_ports: 40000..=59999,
        realm: REALM.into(),
        secret: SECRET.into(),
        allowed_peers: vec![media.local_addr()?],
        stream_limits,
    })
    .await?;
    Ok(Setup { server, media, ca })
}

/// A test CA and a certificate for `localhost` signed by it, made fresh for each run.
fn test_tls() -> anyhow::Result<(
    Arc<rustls::ServerConfig>,
    rustls::pki_types::CertificateDer<'static>,
)> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&leaf_key, &ca)?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)?;
    Ok((Arc::new(config), ca.der().clone()))
}

/// A TURN client on `transport`, with the given credentials.
async fn client(
    setup: &Setup,
    transport: Transport,
    username: String,
    password: String,
) -> anyhow::Result<Client> {
    let (server, conn): (SocketAddr, Arc<dyn Conn + Send + Sync>) = match transport {
        Transport::Udp => {
            let server = setup.server.udp_addr().context("no UDP listener")?;
            (server, Arc::new(UdpSocket::bind("127.0.0.1:0").await?))
        }
        Transport::Tcp => {
            let server = setup.server.tcp_addr().context("no TCP listener")?;
            let stream = TcpStream::connect(server).await?;
            (server, Arc::new(StreamConn::new(stream, server)))
        }
        Transport::TcpStalling(conn) => {
            let server = setup.server.tcp_addr().context("no TCP listener")?;
            (server, conn)
        }
        Transport::Tls => {
            let server = setup.server.tls_addr().context("no TLS listener")?;
            let mut roots = rustls::RootCertStore::empty();
            roots.add(setup.ca.clone())?;
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let stream = TcpStream::connect(server).await?;
            let stream = connector.connect("localhost".try_into()?, stream).await?;
            (server, Arc::new(StreamConn::new(stream, server)))
        }
    };
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username,
        password,
        realm: REALM.into(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await?;
    client.listen().await?;
    Ok(client)
}

fn valid_credentials() -> (String, String) {
    circle_turn::credentials(
        SECRET,
        "session-1",
        Duration::from_secs(600),
        SystemTime::now(),
    )
}

/// Allocates, sends to Circle's media address, which replies; the reply comes back.
async fn relays_to_media_and_back(transport: Transport) -> anyhow::Result<()> {
    let setup = setup().await?;
    let (user, pass) = valid_credentials();
    let client = client(&setup, transport, user, pass).await?;
    let relay = step("allocate", client.allocate()).await??;
    let relayed = relay.local_addr()?;
    assert_eq!(setup.server.stats().allocations, 1);

    let media = setup.media.local_addr()?;
    step("send to media", relay.send_to(b"hello circle", media)).await??;
    let mut buf = [0u8; 1500];
    let (n, from) = step("media receive", setup.media.recv_from(&mut buf)).await??;
    assert_eq!(&buf[..n], b"hello circle");
    assert_eq!(
        from.port(),
        relayed.port(),
        "the datagram came from the relayed address"
    );

    setup.media.send_to(b"hello client", from).await?;
    let (n, from) = step("client receive", relay.recv_from(&mut buf)).await??;
    assert_eq!(&buf[..n], b"hello client");
    assert_eq!(from, media);

    // A second datagram each way, which the client may send over a channel by now.
    step("send again", relay.send_to(b"again", media)).await??;
    let (n, from) = step("media receive again", setup.media.recv_from(&mut buf)).await??;
    assert_eq!(&buf[..n], b"again");
    setup.media.send_to(b"back again", from).await?;
    let (n, _) = step("client receive again", relay.recv_from(&mut buf)).await??;
    assert_eq!(&buf[..n], b"back again");
    assert_eq!(setup.server.stats().refused_peer_attempts(), 0);

    client.close().await?;
    assert!(setup.server.healthy());
    step("close", setup.server.close()).await??;
    assert!(!setup.server.healthy(), "closed listeners are not served");
    assert_eq!(
        setup.server.stats().allocations,
        0,
        "closing closes allocations"
    );
    Ok(())
}

#[tokio::test]
async fn over_udp_a_client_reaches_circles_media_address_and_hears_back() -> anyhow::Result<()> {
    relays_to_media_and_back(Transport::Udp).await
}

#[tokio::test]
async fn over_tcp_a_client_reaches_circles_media_address_and_hears_back() -> anyhow::Result<()> {
    relays_to_media_and_back(Transport::Tcp).await
}

#[tokio::test]
async fn over_tls_a_client_reaches_circles_media_address_and_hears_back() -> anyhow::Result<()> {
    relays_to_media_and_back(Transport::Tls).await
}

/// After a refused attempt, a round trip to the media address proves the server has handled
/// everything sent before it (one read loop per listener, in order).
async fn round_trip(relay: &impl Conn, media: &UdpSocket) -> anyhow::Result<()> {
    let media_addr = media.local_addr()?;
    let mut buf = [0u8; 1500];
    step("send to media", relay.send_to(b"ping", media_addr)).await??;
    let (_, from) = step("media receive", media.recv_from(&mut buf)).await??;
    media.send_to(b"pong", from).await?;
    let (n, from) = step("client receive", relay.recv_from(&mut buf)).await??;
    assert_eq!((&buf[..n], from), (&b"pong"[..], media_addr));
    Ok(())
}

/// Nothing waits on `socket` (checked without waiting).
fn nothing_arrived(socket: &UdpSocket) -> bool {
    let mut buf = [0u8; 1500];
    matches!(socket.try_recv_from(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

async fn another_ip_is_refused(transport: Transport) -> anyhow::Result<()> {
    let setup = setup().await?;
    // 127.0.0.2 is loopback too on Linux: an address the relay could reach, but not Circle's.
    let stranger = UdpSocket::bind("127.0.0.2:0").await?;
    let (user, pass) = valid_credentials();
    let client = client(&setup, transport, user, pass).await?;
    let relay = step("allocate", client.allocate()).await??;

    let refused = step(
        "send to a stranger",
        relay.send_to(b"x", stranger.local_addr()?),
    )
    .await?;
    assert!(
        refused.is_err(),
        "the permission for a stranger must be refused"
    );
    round_trip(&relay, &setup.media).await?;
    assert!(nothing_arrived(&stranger), "nothing reached the stranger");
    let stats = setup.server.stats();
    assert!(stats.refused_permissions >= 1, "{stats:?}");
    setup.server.close().await?;
    Ok(())
}

#[tokio::test]
async fn over_udp_a_permission_for_another_ip_is_refused_and_counted() -> anyhow::Result<()> {
    another_ip_is_refused(Transport::Udp).await
}

#[tokio::test]
async fn over_tcp_a_permission_for_another_ip_is_refused_and_counted() -> anyhow::Result<()> {
    another_ip_is_refused(Transport::Tcp).await
}

/// The relay's own IP is allowed (permissions are per IP), but only the media port may be
/// reached: another service on the same host, another port, is not.
#[tokio::test]
async fn the_relay_refuses_another_port_of_circles_own_ip_both_ways() -> anyhow::Result<()> {
    let setup = setup().await?;
    let other_service = UdpSocket::bind("127.0.0.1:0").await?;
    let (user, pass) = valid_credentials();
    let client = client(&setup, Transport::Udp, user, pass).await?;
    let relay = step("allocate", client.allocate()).await??;
    let relayed = relay.local_addr()?;

    // The permission (for 127.0.0.1) is granted; the datagram itself is refused by the relay.
    let _ = step(
        "send to another port",
        relay.send_to(b"x", other_service.local_addr()?),
    )
    .await?;
    // And a datagram from that port to the relayed address is dropped, not passed to the client.
    other_service.send_to(b"unsolicited", relayed).await?;
    round_trip(&relay, &setup.media).await?;

    assert!(
        nothing_arrived(&other_service),
        "nothing reached the other port"
    );
    let stats = setup.server.stats();
    assert_eq!(stats.refused_sends, 1, "{stats:?}");
    assert_eq!(stats.dropped_from_peers, 1, "{stats:?}");
    setup.server.close().await?;
    Ok(())
}

async fn allocation_refused(username: String, password: String) -> anyhow::Result<()> {
    let setup = setup().await?;
    for transport in [Transport::Udp, Transport::Tcp] {
        let client = client(&setup, transport, username.clone(), password.clone()).await?;
        let allocated = step("allocate", client.allocate()).await?;
        assert!(allocated.is_err(), "an allocation with bad credentials");
        client.close().await?;
    }
    assert_eq!(setup.server.stats().allocations, 0);
    setup.server.close().await?;
    Ok(())
}

#[tokio::test]
async fn expired_credentials_get_no_allocation() -> anyhow::Result<()> {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let (user, pass) =
        circle_turn::credentials(SECRET, "session-1", Duration::from_secs(600), an_hour_ago);
    allocation_refused(user, pass).await
}

#[tokio::test]
async fn credentials_signed_with_another_secret_get_no_allocation() -> anyhow::Result<()> {
    let (user, pass) = circle_turn::credentials(
        "not the secret",
        "session-1",
        Duration::from_secs(600),
        SystemTime::now(),
    );
    allocation_refused(user, pass).await
}

#[tokio::test]
async fn garbage_on_one_tcp_connection_closes_only_that_connection() -> anyhow::Result<()> {
    let setup = setup().await?;
    let tcp = setup.server.tcp_addr().context("no TCP listener")?;
    let (user, pass) = valid_credentials();
    let client = client(&setup, Transport::Tcp, user, pass).await?;

    // An HTTP request (its length field, read as ChannelData, is far too long), bytes that are
    // neither STUN nor ChannelData, and a STUN-sized header without STUN's magic cookie.
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &[0xFF; 24],
        &[
            0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ],
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(tcp).await?;
        stream.write_all(bytes).await?;
        let mut buf = [0u8; 64];
        // Closed with the garbage unread, the connection may end in a reset, not a clean end.
        let closed = match step("garbage connection closed", stream.read(&mut buf)).await? {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(
            closed,
            "the server closed the garbage connection without answering"
        );
    }

    let relay = step("allocate", client.allocate()).await??;
    round_trip(&relay, &setup.media).await?;
    assert_eq!(setup.server.stats().bad_streams, 3);
    setup.server.close().await?;
    Ok(())
}

/// Whether the server closed `stream` (a clean end, or a reset when it closed with bytes unread).
async fn closed_by_server(stream: &mut TcpStream) -> anyhow::Result<bool> {
    let mut buf = [0u8; 64];
    Ok(
        match step("connection closed", stream.read(&mut buf)).await? {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        },
    )
}

#[tokio::test]
async fn a_stream_connection_over_the_limit_is_closed_and_the_others_still_work()
-> anyhow::Result<()> {
    let setup = setup_with(StreamLimits {
        max_connections: 1,
        ..StreamLimits::default()
    })
    .await?;
    let tcp = setup.server.tcp_addr().context("no TCP listener")?;
    let (user, pass) = valid_credentials();
    let client = client(&setup, Transport::Tcp, user, pass).await?;
    // Allocating first proves the server has accepted (and counted) the client's connection.
    let relay = step("allocate", client.allocate()).await??;

    let mut second = TcpStream::connect(tcp).await?;
    assert!(
        closed_by_server(&mut second).await?,
        "the connection over the limit stays open"
    );
    assert_eq!(setup.server.stats().refused_connections, 1);
    round_trip(&relay, &setup.media).await?;
    setup.server.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_silent_stream_connection_is_closed() -> anyhow::Result<()> {
    let setup = setup_with(StreamLimits {
        idle_timeout: Duration::from_millis(100),
        ..StreamLimits::default()
    })
    .await?;
    let tcp = setup.server.tcp_addr().context("no TCP listener")?;
    let mut silent = TcpStream::connect(tcp).await?;
    // Half a message, then nothing.
    silent.write_all(&[0x00, 0x01, 0x00]).await?;
    assert!(closed_by_server(&mut silent).await?);
    setup.server.close().await?;
    Ok(())
}

/// The client side of TURN over a stream, as a datagram-style `Conn` for the `turn` client:
/// messages are written as they are and read back one whole message at a time.
struct StreamConn<S> {
    reader: Mutex<ReadHalf<S>>,
    writer: Mutex<WriteHalf<S>>,
    server: SocketAddr,
    /// Once set, the client stops reading: a client that cannot keep up.
    stalled: std::sync::atomic::AtomicBool,
}

impl<S: AsyncRead + AsyncWrite> StreamConn<S> {
    fn new(stream: S, server: SocketAddr) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        StreamConn {
            reader: Mutex::new(reader),
            writer: Mutex::new(writer),
            server,
            stalled: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn io_err(text: &'static str) -> webrtc_util::Error {
    std::io::Error::other(text).into()
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Send + Sync + 'static> Conn for StreamConn<S> {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(io_err("unsupported"))
    }

    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(io_err("unsupported"))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        if self.stalled.load(std::sync::atomic::Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        let mut reader = self.reader.lock().await;
        let mut head = [0u8; 4];
        reader.read_exact(&mut head).await?;
        let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
        // STUN: 20-byte header; ChannelData: 4-byte header, padded to 4 over streams.
        let total = if head[0] >> 6 == 0 {
            20 + length
        } else {
            4 + length.div_ceil(4) * 4
        };
        if total > buf.len() {
            return Err(io_err("message too long"));
        }
        buf[..4].copy_from_slice(&head);
        reader.read_exact(&mut buf[4..total]).await?;
        Ok((total, self.server))
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(io_err("unsupported"))
    }

    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> webrtc_util::Result<usize> {
        let mut writer = self.writer.lock().await;
        writer.write_all(buf).await?;
        writer.flush().await?;
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.server)
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// A flood of requests without credentials (each would make the `turn` crate store a nonce
/// forever) is cut to a trickle; a real client still gets its allocation afterwards.
#[tokio::test]
async fn a_flood_of_unauthenticated_requests_is_cut_and_a_real_client_still_allocates()
-> anyhow::Result<()> {
    use stun::message::{BINDING_REQUEST, CLASS_REQUEST, METHOD_ALLOCATE, Message, MessageType};

    let setup = setup().await?;
    let tcp = setup.server.tcp_addr().context("no TCP listener")?;
    let flood = StreamConn::new(TcpStream::connect(tcp).await?, tcp);
    let message = |typ: MessageType| -> anyhow::Result<Vec<u8>> {
        let mut m = Message::new();
        m.build(&[Box::new(stun::agent::TransactionId::new()), Box::new(typ)])?;
        Ok(m.raw)
    };
    for _ in 0..600 {
        let allocate = message(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST))?;
        flood.send_to(&allocate, tcp).await?;
    }
    // A Binding request, answered in order after all of the flood has been judged.
    let binding = message(BINDING_REQUEST)?;
    flood.send_to(&binding, tcp).await?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, _) = step("binding answer", flood.recv_from(&mut buf)).await??;
        if buf[8..20] == binding[8..20] {
            break;
        }
        assert!(n >= 20);
    }
    let dropped = setup.server.stats().dropped_unauthenticated;
    assert!(dropped > 0, "the flood was not cut");

    let (user, pass) = valid_credentials();
    let client = client(&setup, Transport::Udp, user, pass).await?;
    let relay = step("allocate", client.allocate()).await??;
    round_trip(&relay, &setup.media).await?;
    setup.server.close().await?;
    Ok(())
}

fn config_for(media: SocketAddr) -> anyhow::Result<TurnConfig> {
    let loopback = "127.0.0.1".parse()?;
    Ok(TurnConfig {
        udp: Some("127.0.0.1:0".parse()?),
        tcp: None,
        tls: None,
        relay_bind_ip: loopback,
        relay_advertised_ip: loopback,
        relay_ports: 40000..=59999,
        realm: REALM.into(),
        secret: SECRET.into(),
        allowed_peers: vec![media],
        stream_limits: StreamLimits::default(),
    })
}

#[tokio::test]
async fn a_configuration_that_cannot_work_is_refused_at_start() -> anyhow::Result<()> {
    let media: SocketAddr = "127.0.0.1:3479".parse()?;
    type Breaks = fn(&mut TurnConfig);
    let broken: [(&str, Breaks); 6] = [
        ("no listener", |c| c.udp = None),
        ("empty secret", |c| c.secret.clear()),
        ("empty realm", |c| c.realm.clear()),
        ("port range from 0", |c| c.relay_ports = 0..=10),
        ("unspecified advertised IP", |c| {
            c.relay_advertised_ip = "0.0.0.0".parse().expect("an IP")
        }),
        ("no allowed peer", |c| c.allowed_peers.clear()),
    ];
    for (what, breaks) in broken {
        let mut config = config_for(media)?;
        breaks(&mut config);
        let started = circle_turn::spawn(config).await;
        assert!(
            matches!(started, Err(circle_turn::TurnError::Config(_))),
            "{what} was accepted"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_listener_that_cannot_bind_stops_the_ones_already_started() -> anyhow::Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let free = std::net::TcpListener::bind("127.0.0.1:0")?;
    let tcp = free.local_addr()?;
    drop(free);
    let (tls_config, _) = test_tls()?;
    let mut config = config_for("127.0.0.1:3479".parse()?)?;
    config.tcp = Some(tcp);
    config.tls = Some(TlsListen {
        addr: taken.local_addr()?,
        config: tls_config,
    });
    let started = circle_turn::spawn(config).await;
    assert!(matches!(
        started,
        Err(circle_turn::TurnError::Bind {
            listener: "TLS",
            ..
        })
    ));
    // The TCP listener started before is closed: refused, or reset once its accept loop ends.
    if let Ok(mut stream) = TcpStream::connect(tcp).await {
        assert!(closed_by_server(&mut stream).await?);
    }
    Ok(())
}

/// A log sink for [`no_address_reaches_the_logs`].
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// With [`circle_turn::LOG_DIRECTIVES`] added, even a filter asking for everything at `trace`
/// gets no client or peer address from a session with refusals in it. (The `turn` crate logs
/// addresses through `log`, which tracing-subscriber forwards.)
#[tokio::test]
async fn no_address_reaches_the_logs() -> anyhow::Result<()> {
    let captured = Captured::default();
    let sink = captured.clone();
    let filter = format!("trace,{}", circle_turn::LOG_DIRECTIVES);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter)?)
        .with_writer(move || sink.clone())
        .try_init()
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let setup = setup().await?;
    let stranger = UdpSocket::bind("127.0.0.2:0").await?;
    let other_port = UdpSocket::bind("127.0.0.1:0").await?;
    let (user, pass) = valid_credentials();
    let client = client(&setup, Transport::Udp, user, pass).await?;
    let relay = step("allocate", client.allocate()).await??;
    let _ = step(
        "send to a stranger",
        relay.send_to(b"x", stranger.local_addr()?),
    )
    .await?;
    let _ = step(
        "send to another port",
        relay.send_to(b"x", other_port.local_addr()?),
    )
    .await?;
    other_port
        .send_to(b"unsolicited", relay.local_addr()?)
        .await?;
    round_trip(&relay, &setup.media).await?;
    setup.server.close().await?;

    let logs =
        String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(!logs.is_empty(), "the subscriber captured nothing at all");
    assert!(
        !logs.contains("127.0.0."),
        "an address reached the logs:\n{logs}"
    );
    Ok(())
}

/// A TCP client that stops reading fills its own queue, whose overflow is dropped; the server's
/// read loop never waits for it, so another client on the same listener is served throughout.
#[tokio::test]
async fn a_tcp_client_that_stops_reading_does_not_hold_up_another() -> anyhow::Result<()> {
    let setup = setup().await?;
    let tcp = setup.server.tcp_addr().context("no TCP listener")?;
    let slow_conn = Arc::new(StreamConn::new(TcpStream::connect(tcp).await?, tcp));
    let (user, pass) = valid_credentials();
    let slow = client(
        &setup,
        Transport::TcpStalling(slow_conn.clone()),
        user,
        pass,
    )
    .await?;
    let slow_relay = step("allocate", slow.allocate()).await??;
    round_trip(&slow_relay, &setup.media).await?;
    let slow_relayed = slow_relay.local_addr()?;
    slow_conn
        .stalled
        .store(true, std::sync::atomic::Ordering::Relaxed);

    // Circle's media floods the stalled client until its queue overflows: the socket buffers
    // between them take some megabytes first, so the flood goes on in rounds until it does.
    let payload = [7u8; 1200];
    step("the stalled client's queue overflows", async {
        while setup.server.stats().dropped_outbound == 0 {
            for _ in 0..500 {
                setup.media.send_to(&payload, slow_relayed).await?;
            }
            tokio::task::yield_now().await;
        }
        anyhow::Ok(())
    })
    .await??;
    // And it asks for more: the answer is for the listener's read loop to queue, not to wait on.
    let mut binding = stun::message::Message::new();
    binding.build(&[
        Box::new(stun::agent::TransactionId::new()),
        Box::new(stun::message::BINDING_REQUEST),
    ])?;
    slow_conn.send_to(&binding.raw, tcp).await?;

    let (user, pass) = valid_credentials();
    let other = client(&setup, Transport::Tcp, user, pass).await?;
    let other_relay = step("allocate", other.allocate()).await??;
    round_trip(&other_relay, &setup.media).await?;
    setup.server.close().await?;
    Ok(())
}

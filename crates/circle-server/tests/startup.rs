//! The `circle` binary at startup (issue 8, item 10; issue 7, item 6): a configuration that cannot
//! work is refused with one clear line per problem and a non-zero exit status, before anything is
//! bound; logs go to standard error.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Exit status `circle` uses for a configuration it refuses.
const EXIT_CONFIG: i32 = 2;

/// How long a refused start may take; a server that starts instead is stopped then.
const WAIT: Duration = Duration::from_secs(10);

/// Runs `circle` with only these environment variables; its exit status (`None` if it was still
/// running after [`WAIT`], i.e. it started) and standard error lines.
fn run(env: &[(&str, &str)]) -> (Option<i32>, Vec<String>) {
    let data = scratch_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_circle"))
        .env_clear()
        .env("CIRCLE_STORAGE__DATA_DIR", data.path())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("circle runs");
    let deadline = std::time::Instant::now() + WAIT;
    let code = loop {
        match child.try_wait().expect("wait for circle") {
            Some(status) => break status.code(),
            None if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    (code, stderr.lines().map(str::to_owned).collect())
}

/// A data directory of its own for one `circle` started here, under the system's temporary folder
/// (never in the source tree), removed when the returned guard is dropped: keep it until the
/// process has exited.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("circle-startup-")
        .tempdir()
        .expect("a temporary data directory")
}

/// Loopback, free ports: only the setting under test can be wrong.
const FREE_PORTS: [(&str, &str); 3] = [
    ("CIRCLE_SERVER__LISTEN", "127.0.0.1:0"),
    ("CIRCLE_CLIENT__LISTEN", "127.0.0.1:0"),
    ("CIRCLE_MEDIA__LISTEN", "127.0.0.1:0"),
];

fn with_free_ports<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = FREE_PORTS.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_zero_limit_is_refused_not_raised() {
    let (code, lines) = run(&with_free_ports(&[("CIRCLE_LIMITS__OUTBOUND_QUEUE", "0")]));
    assert_eq!(code, Some(EXIT_CONFIG), "{lines:?}");
    assert_eq!(
        lines,
        vec!["circle: limits.outbound_queue is 0: it must be at least 1"]
    );
}

#[test]
fn a_store_that_cannot_be_opened_stops_the_start_with_one_line() {
    // Nothing listens on port 1: the database is unreachable.
    let (code, lines) = run(&with_free_ports(&[(
        "CIRCLE_STORAGE__URL",
        "postgres://circle@127.0.0.1:1/circle",
    )]));
    assert_eq!(code, Some(EXIT_CONFIG), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("circle: storage: "), "{lines:?}");
}

#[test]
fn every_problem_gets_its_own_line() {
    let (code, lines) = run(&with_free_ports(&[
        ("CIRCLE_ROOMS__MAX_ROOMS", "0"),
        ("CIRCLE_LIMITS__CHAT_BURST", "0"),
    ]));
    assert_eq!(code, Some(EXIT_CONFIG), "{lines:?}");
    assert_eq!(
        lines,
        vec![
            "circle: limits.chat_burst is 0: it must be at least 1",
            "circle: rooms.max_rooms is 0: it must be at least 1",
        ]
    );
}

#[test]
fn a_malformed_rust_log_is_refused_not_replaced() {
    let (code, lines) = run(&with_free_ports(&[("RUST_LOG", "circle_server=loud")]));
    assert_eq!(code, Some(EXIT_CONFIG), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("circle: RUST_LOG \"circle_server=loud\" is not a log filter"),
        "{lines:?}"
    );
}

#[test]
fn a_public_listener_without_an_advertised_address_is_refused() {
    let (code, lines) = run(&[
        ("CIRCLE_SERVER__LISTEN", "0.0.0.0:0"),
        ("CIRCLE_MEDIA__LISTEN", "127.0.0.1:0"),
    ]);
    assert_eq!(code, Some(EXIT_CONFIG), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "circle: server.listen 0.0.0.0:0 is on all interfaces but server.public_url is empty"
        ),
        "{lines:?}"
    );

    let (code, lines) = run(&[
        ("CIRCLE_SERVER__LISTEN", "127.0.0.1:0"),
        ("CIRCLE_MEDIA__LISTEN", "0.0.0.0:0"),
    ]);
    assert_eq!(code, Some(EXIT_CONFIG), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "circle: media.listen 0.0.0.0:0 is on all interfaces but media.advertised_ip is empty"
        ),
        "{lines:?}"
    );
}

#[test]
fn turn_without_a_secret_is_refused() {
    let (code, lines) = run(&with_free_ports(&[(
        "CIRCLE_MEDIA__ICE_SERVERS",
        r#"[{urls=["turn:turn.example.org:3478"]}]"#,
    )]));
    assert_eq!(code, Some(EXIT_CONFIG), "{lines:?}");
    assert_eq!(
        lines,
        vec![
            "circle: media.ice_servers [\"turn:turn.example.org:3478\"] is a TURN server without \
             username and credential"
        ]
    );
}

#[test]
fn a_missing_tls_key_is_refused() {
    let dir = std::env::temp_dir().join(format!("circle-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert_path = dir.join("cert.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    let key_path = dir.join("missing-key.pem");
    let (code, lines) = run(&with_free_ports(&[
        ("CIRCLE_TLS__CERT", cert_path.to_str().expect("utf-8 path")),
        ("CIRCLE_TLS__KEY", key_path.to_str().expect("utf-8 path")),
    ]));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(EXIT_CONFIG), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("circle: tls: cannot read {}", key_path.display())),
        "{lines:?}"
    );
}

#[test]
fn logs_go_to_standard_error() {
    let data = scratch_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_circle"))
        .env_clear()
        .env("CIRCLE_STORAGE__DATA_DIR", data.path())
        .envs(FREE_PORTS)
        .env("CIRCLE_MEDIA__ENABLED", "false")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("circle starts");
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(("stderr", line));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx2.send(("stdout", line));
        }
    });
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(WAIT) {
            Ok((stream, line)) => {
                let listening = line.contains("circle listening");
                seen.push((stream, line));
                if listening {
                    break seen.last().map(|(s, _)| *s);
                }
            }
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found, Some("stderr"), "{seen:?}");
}

/// Starts `circle` under a shell `ulimit -n` of `files`, with `env`; the child and, once it is
/// listening, its API address (read from the line it prints on standard output), and its data
/// directory's guard (keep it until the child has exited).
fn start_limited(
    files: u32,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    Option<std::net::SocketAddr>,
    tempfile::TempDir,
) {
    let data = scratch_dir();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\""))
        .arg(env!("CARGO_BIN_EXE_circle"))
        .env_clear()
        .env("CIRCLE_STORAGE__DATA_DIR", data.path())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("circle starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The first line: "Circle API and websocket on http(s)://127.0.0.1:PORT"
    let addr = rx.recv_timeout(WAIT).ok().and_then(|line| {
        let rest = line.split("://").nth(1)?;
        rest.split(';').next()?.parse().ok()
    });
    (child, addr, data)
}

/// A new connection, with `GET /healthz` sent if `ask`: the first line the server sends, or `None` if
/// the connection was closed or gave nothing within `WAIT`.
fn first_line(addr: std::net::SocketAddr, ask: bool) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, WAIT).ok()?;
    s.set_read_timeout(Some(WAIT)).ok()?;
    if ask {
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: circle\r\nconnection: close\r\n\r\n")
            .ok()?;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.lines().next().map(str::to_owned)
}

#[test]
fn a_connection_cap_above_the_descriptor_limit_is_refused() {
    let (mut child, addr, _data) = start_limited(256, &FREE_PORTS);
    let status = {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert!(
        addr.is_none(),
        "circle started with 4096 connections allowed and 256 files"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(EXIT_CONFIG));
}

#[test]
fn with_few_descriptors_idle_sockets_cannot_lock_out_health_checks() {
    // 256 files, at most 100 connections: 300 idle sockets (the attack in issue 8) fill the cap,
    // the server refuses the rest at once and answers again as soon as they go.
    let mut env = FREE_PORTS.to_vec();
    env.push(("CIRCLE_LIMITS__MAX_CONNECTIONS", "100"));
    env.push(("CIRCLE_MEDIA__ENABLED", "false"));
    let (mut child, addr, _data) = start_limited(256, &env);
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("circle did not start");
    };
    let idle: Vec<_> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, WAIT).ok())
        .collect();
    // Refused at once: the 503 comes without our even asking.
    let refused = first_line(addr, false);
    drop(idle);
    // Once the idle sockets are gone, health checks are answered again.
    let deadline = std::time::Instant::now() + WAIT;
    let recovered = loop {
        let got = first_line(addr, true);
        if got.as_deref().is_some_and(|l| l.contains(" 200 "))
            || std::time::Instant::now() >= deadline
        {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let still_running = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        refused.as_deref(),
        Some("HTTP/1.1 503 Service Unavailable"),
        "past the cap"
    );
    assert!(
        recovered.as_deref().is_some_and(|l| l.contains(" 200 ")),
        "after the idle sockets left: {recovered:?}"
    );
    assert!(still_running, "the server died");
}

/// Opens a websocket by hand (the handshake only) and keeps the socket: a member's connection.
fn open_websocket(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nhost: circle\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
          sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .expect("handshake");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("101");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

#[test]
fn sigusr1_drains_and_the_process_exits_when_the_last_member_leaves() {
    let mut env = FREE_PORTS.to_vec();
    env.push(("CIRCLE_MEDIA__ENABLED", "false"));
    let (mut child, addr, _data) = start_limited(8192, &env);
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("circle did not start");
    };
    let member = open_websocket(addr);
    let ready_before = first_line(addr, true);
    let signalled = Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .expect("kill -USR1");
    assert!(signalled.success());
    // Readiness turns false while the member is still there (it may take a moment to be noticed).
    let deadline = std::time::Instant::now() + WAIT;
    let ready_during = loop {
        let got = first_line_readyz(addr);
        if got.as_deref().is_some_and(|l| l.contains(" 503 "))
            || std::time::Instant::now() >= deadline
        {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let running_with_member = child.try_wait().expect("wait").is_none();
    drop(member);
    let deadline = std::time::Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        ready_before.as_deref().is_some_and(|l| l.contains(" 200 ")),
        "{ready_before:?}"
    );
    assert!(
        ready_during.as_deref().is_some_and(|l| l.contains(" 503 ")),
        "readiness while draining: {ready_during:?}"
    );
    assert!(
        running_with_member,
        "the process stopped with a member connected"
    );
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{exit:?}");
}

/// `GET /readyz` on a new connection: the status line.
fn first_line_readyz(addr: std::net::SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, WAIT).ok()?;
    s.set_read_timeout(Some(WAIT)).ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nhost: circle\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .map(str::to_owned)
}

/// A CA made for one test, and `localhost` certificates it signs.
struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).expect("CA").der().clone();
        Self { params, key, der }
    }

    /// Writes a new `localhost` pair to `cert` and `key` (write, then rename); its DER certificate.
    fn issue(
        &self,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> rustls::pki_types::CertificateDer<'static> {
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let leaf = params.signed_by(&leaf_key, &issuer).expect("leaf");
        for (path, text) in [(cert, leaf.pem()), (key, leaf_key.serialize_pem())] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, path).expect("rename");
        }
        leaf.der().clone()
    }

    /// The certificate `addr` presents to a client trusting only this CA.
    fn presented(
        &self,
        addr: std::net::SocketAddr,
    ) -> Option<rustls::pki_types::CertificateDer<'static>> {
        use std::io::Write;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).ok()?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").ok()?;
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).ok()?;
        let mut sock = std::net::TcpStream::connect_timeout(&addr, WAIT).ok()?;
        sock.set_read_timeout(Some(WAIT)).ok()?;
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .ok()?;
        conn.peer_certificates()?.first().cloned()
    }
}

#[test]
fn sighup_reloads_a_renewed_certificate() {
    let dir = std::env::temp_dir().join(format!("circle-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ca = TestCa::new();
    let first = ca.issue(&cert, &key);
    let mut env = FREE_PORTS.to_vec();
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    env.push(("CIRCLE_MEDIA__ENABLED", "false"));
    env.push(("CIRCLE_TLS__CERT", &cert_s));
    env.push(("CIRCLE_TLS__KEY", &key_s));
    // No polling within the test's time: only SIGHUP can bring the new certificate in.
    env.push(("CIRCLE_TLS__WATCH_SECS", "3600"));
    let (mut child, addr, _data) = start_limited(8192, &env);
    let result = addr.map(|addr| {
        let before = ca.presented(addr);
        let second = ca.issue(&cert, &key);
        let still_first = ca.presented(addr);
        let _ = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + WAIT;
        let after = loop {
            let got = ca.presented(addr);
            if got.as_ref() == Some(&second) || std::time::Instant::now() >= deadline {
                break got;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (before, still_first, after, second)
    });
    let running = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let (before, still_first, after, second) = result.expect("circle started with TLS");
    assert_eq!(before.as_ref(), Some(&first));
    assert_eq!(still_first.as_ref(), Some(&first), "reloaded before SIGHUP");
    assert_eq!(
        after.as_ref(),
        Some(&second),
        "SIGHUP did not bring the new certificate"
    );
    assert!(running, "SIGHUP stopped the server");
}

//! HTTPS and WSS served by Circle itself (issue 7, items 1 and 2): a certificate from a CA made at
//! test time is served, links follow the scheme, and a renewed certificate is served without a
//! restart, on SIGHUP's path and when the files change. And one origin: the web client on the API's
//! listener.

use circle_tests::{WAIT, server_with};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use tokio_rustls::TlsConnector;

/// A test CA that signs `localhost` certificates.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            der: cert.der().clone(),
            params,
            key,
        }
    }

    /// A new leaf for `localhost`: its PEM certificate, PEM key, and DER certificate.
    fn leaf(&self) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().expect("leaf key");
        let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("CA trusted");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

/// A folder for this test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("circle-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, file: &str, text: &str) -> String {
        let path = self.0.join(file);
        // Write then rename, as certbot does: a reader never sees half a file.
        let tmp = self.0.join(format!("{file}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        path.to_str().expect("utf-8 path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Connects over TLS (trusting only `ca`), sends `request`, and returns the certificate the server
/// presented and its whole response.
async fn https(ca: &Ca, addr: SocketAddr, request: &str) -> (CertificateDer<'static>, String) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = ca
        .connector()
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate")
        .clone();
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut out)).await;
    (presented, String::from_utf8_lossy(&out).into_owned())
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";

fn body_json(response: &str) -> Value {
    let (_, body) = response.split_once("\r\n\r\n").expect("a body");
    serde_json::from_str(body).expect("JSON body")
}

#[tokio::test]
async fn https_and_wss_are_served_with_the_configured_certificate_and_links_follow() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-serve");
    let (cert, key, der) = ca.leaf();
    let (cert, key) = (dir.write("cert.pem", &cert), dir.write("key.pem", &key));
    let srv = server_with(|c| {
        c.tls.cert = cert;
        c.tls.key = key;
    })
    .await;
    let (presented, res) = https(&ca, srv.running.addr, HEALTHZ).await;
    assert_eq!(presented, der);
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");

    let create = "POST /api/rooms HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
                  content-length: 0\r\n\r\n";
    let (_, res) = https(&ca, srv.running.addr, create).await;
    assert!(res.starts_with("HTTP/1.1 201"), "{res}");
    let json = body_json(&res);
    let ws = json["websocket_url"].as_str().expect("websocket_url");
    assert_eq!(ws, format!("wss://{}/ws", srv.running.addr));

    // Plain HTTP on the TLS port gets nothing useful.
    let mut plain = TcpStream::connect(srv.running.addr).await.expect("connect");
    let _ = plain.write_all(HEALTHZ.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut out)).await;
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-reload");
    let (cert, key, first) = ca.leaf();
    let (cert, key) = (dir.write("cert.pem", &cert), dir.write("key.pem", &key));
    let srv = server_with(|c| {
        c.tls.cert = cert;
        c.tls.key = key;
        // Only the explicit reload (SIGHUP's path) in this test.
        c.tls.watch_secs = 3600;
    })
    .await;
    assert_eq!(https(&ca, srv.running.addr, HEALTHZ).await.0, first);

    let (cert2, key2, second) = ca.leaf();
    dir.write("cert.pem", &cert2);
    dir.write("key.pem", &key2);
    srv.running.reload_tls().expect("the new pair loads");
    let (presented, res) = https(&ca, srv.running.addr, HEALTHZ).await;
    assert_eq!(presented, second);
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");

    // A broken renewal keeps the certificate in use.
    dir.write("key.pem", "not a key");
    assert!(srv.running.reload_tls().is_err());
    assert_eq!(https(&ca, srv.running.addr, HEALTHZ).await.0, second);
}

#[tokio::test]
async fn changed_certificate_files_are_noticed_by_themselves() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-watch");
    let (cert, key, first) = ca.leaf();
    let (cert, key) = (dir.write("cert.pem", &cert), dir.write("key.pem", &key));
    let srv = server_with(|c| {
        c.tls.cert = cert;
        c.tls.key = key;
        c.tls.watch_secs = 1;
    })
    .await;
    assert_eq!(https(&ca, srv.running.addr, HEALTHZ).await.0, first);

    let (cert2, key2, second) = ca.leaf();
    dir.write("key.pem", &key2);
    dir.write("cert.pem", &cert2);
    let deadline = Instant::now() + WAIT;
    loop {
        if https(&ca, srv.running.addr, HEALTHZ).await.0 == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_origin_serves_the_client_api_and_websocket_on_one_port() {
    let dir = TempDir::new("same-origin");
    dir.write("index.html", "<!doctype html><title>Circle</title>");
    let serve_dir = dir.0.to_str().expect("utf-8").to_owned();
    let srv = server_with(|c| {
        c.client.serve_dir = serve_dir;
        c.client.same_origin = true;
    })
    .await;
    assert!(srv.running.client_addr.is_none(), "a second listener");
    let page = reqwest::get(format!("{}/", srv.base)).await.expect("GET /");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("CSP")
        .to_owned();
    assert!(csp.contains(&format!("ws://{}", srv.running.addr)), "{csp}");
    assert!(
        page.text()
            .await
            .expect("body")
            .contains("<title>Circle</title>")
    );

    let room = srv.create_room(serde_json::json!({})).await;
    let join_url = room.json["join_url"].as_str().expect("join_url");
    assert!(
        join_url.starts_with(&format!("{}/#room=", srv.base)),
        "{join_url}"
    );
    // A page from this origin may open the websocket.
    circle_tests::Client::connect(&srv.ws_url(), Some(&srv.base))
        .await
        .expect("websocket from the same origin");
}

//! TURN for members behind strict firewalls: the embedded relay (`circle-turn`) started for the
//! server, and the short-lived credentials each client gets in `joined`, for it or for an external
//! coturn that shares the secret (`use-auth-secret`).
//!
//! The embedded relay relays only to the voice relay's own addresses: a browser behind a firewall
//! reaches the voice relay through it, and nothing else.

use crate::{auth, config::Config, media::Media, tls::Certificate};
use circle_protocol::IceServer;
use circle_turn::{TlsListen, TurnConfig, TurnServer};
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, SystemTime},
};
use tracing::info;

/// Why TURN did not start.
#[derive(Debug, thiserror::Error)]
pub enum TurnStartError {
    /// The embedded relay did not start.
    #[error("{0}")]
    Turn(#[from] circle_turn::TurnError),
    /// rustls refused the TLS configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// TURN as this server offers it.
pub struct Turn {
    /// Signs credentials.
    secret: String,
    /// How long credentials work.
    ttl: Duration,
    /// The URLs handed out with the credentials.
    urls: Vec<String>,
    /// The embedded relay, when it runs.
    server: Option<TurnServer>,
}

impl Turn {
    /// TURN for this configuration: `None` when it hands out no credentials. Starts the embedded
    /// relay when it has listeners (`media` is the voice relay it serves, `tls` the certificate for
    /// TURN over TLS).
    pub async fn start(
        config: &Config,
        media: Option<&Media>,
        tls: Option<&Arc<Certificate>>,
    ) -> Result<Option<Self>, TurnStartError> {
        let t = &config.turn;
        let server = match media {
            Some(media) if t.embedded() => Some(spawn_embedded(config, media, tls).await?),
            _ => None,
        };
        let urls = if !t.urls.is_empty() {
            t.urls.clone()
        } else if let Some(server) = &server {
            let host = if t.host.is_empty() {
                host_of(&config.public_url())
            } else {
                t.host.clone()
            };
            let port = |a: Option<SocketAddr>| a.map(|a| a.port());
            circle_turn::ice_urls(
                &host,
                port(server.udp_addr()),
                port(server.tcp_addr()),
                port(server.tls_addr()),
            )
        } else {
            return Ok(None);
        };
        Ok(Some(Self {
            secret: t.secret.clone(),
            ttl: Duration::from_secs(t.credential_ttl_secs),
            urls,
            server,
        }))
    }

    /// The TURN entry for one `joined`: fresh credentials under a random id (a TURN server logs user
    /// names; this one names no one and links no two sessions).
    pub fn ice_server(&self) -> IceServer {
        let id = auth::random_token(9);
        let (username, password) =
            circle_turn::credentials(&self.secret, &id, self.ttl, SystemTime::now());
        IceServer {
            urls: self.urls.clone(),
            username: Some(username),
            credential: Some(password),
        }
    }

    /// Whether the embedded relay is serving; `None` when there is none (credentials for an
    /// external coturn only).
    pub fn relay_healthy(&self) -> Option<bool> {
        self.server.as_ref().map(|s| s.healthy())
    }

    /// The embedded relay's counters, if it runs.
    pub fn stats(&self) -> Option<circle_turn::TurnStats> {
        self.server.as_ref().map(|s| s.stats())
    }

    /// Stops the embedded relay (its allocations first).
    pub async fn close(&self) {
        if let Some(server) = &self.server
            && let Err(e) = server.close().await
        {
            tracing::warn!(error = %e, "the TURN relay did not close cleanly");
        }
    }
}

async fn spawn_embedded(
    config: &Config,
    media: &Media,
    tls: Option<&Arc<Certificate>>,
) -> Result<TurnServer, TurnStartError> {
    let t = &config.turn;
    let bound = media.handle.local_addr();
    let advertised_all = config.media.advertised();
    // The relay hands out addresses of one family: that of the first advertised voice address.
    let advertised: IpAddr = advertised_all.first().copied().unwrap_or(bound.ip());
    // The voice relay's addresses: every advertised one (what browsers' permissions name) and the
    // bound one, if it is a real address of its own; on every relay worker's port.
    let mut allowed_peers: Vec<SocketAddr> = Vec::new();
    for worker in media.handle.local_addrs() {
        allowed_peers.extend(
            advertised_all
                .iter()
                .map(|ip| SocketAddr::new(*ip, worker.port())),
        );
        if (advertised_all.is_empty() || !worker.ip().is_unspecified())
            && !allowed_peers.contains(&worker)
        {
            allowed_peers.push(worker);
        }
    }
    let unspecified = if advertised.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let tls = match (t.tls, tls) {
        (Some(addr), Some(cert)) => Some(TlsListen {
            addr,
            // TURN clients offer ALPN `stun.turn` or none: no ALPN list on this side.
            config: cert.server_config(Vec::new())?,
        }),
        _ => None,
    };
    let server = circle_turn::spawn(TurnConfig {
        udp: t.udp,
        tcp: t.tcp,
        tls,
        relay_bind_ip: t.relay_ip.unwrap_or(unspecified),
        relay_advertised_ip: advertised,
        relay_ports: t.relay_min_port..=t.relay_max_port,
        realm: t.realm.clone(),
        secret: t.secret.clone(),
        allowed_peers,
        stream_limits: Default::default(),
    })
    .await?;
    info!(
        udp = ?server.udp_addr(),
        tcp = ?server.tcp_addr(),
        tls = ?server.tls_addr(),
        "TURN relay listening"
    );
    Ok(server)
}

/// The host of a URL (`https://meet.example.org:443/x` → `meet.example.org`; an IPv6 literal without
/// its brackets).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_owned();
    }
    authority.split(':').next().unwrap_or(authority).to_owned()
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_a_public_url() {
        assert_eq!(host_of("https://meet.example.org"), "meet.example.org");
        assert_eq!(
            host_of("https://meet.example.org:8443/x"),
            "meet.example.org"
        );
        assert_eq!(host_of("http://[2001:db8::1]:7700"), "2001:db8::1");
        assert_eq!(host_of("http://203.0.113.10:7700"), "203.0.113.10");
    }
}

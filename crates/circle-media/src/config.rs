//! How the SFU is set up: where it listens (UDP, and TCP for ICE-TCP), which addresses it advertises,
//! how it judges speech.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Settings for [`crate::spawn`].
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The UDP address media goes through (worker `i` binds its port plus `i`; port 0: a free port
    /// for each). `[::]` binds
    /// one dual-stack socket (IPv6 and IPv4, `IPV6_V6ONLY` off), so IPv4 and IPv6 clients share it.
    pub bind: SocketAddr,
    /// The IPs put in the ICE host candidates instead of the bound one: the public addresses of a
    /// 1:1 NAT, or the reachable ones when `bind` is unspecified. One UDP candidate (and, with
    /// `tcp_listen`, one passive TCP candidate) per address, IPv4 and IPv6 alike. Empty: the bound
    /// IP, which then must not be unspecified. Give at most one address per family: a packet is
    /// attributed to the first advertised address of its sender's family.
    pub advertised_ips: Vec<IpAddr>,
    /// ICE-TCP (RFC 6544, passive candidates): where to accept TCP connections carrying RFC 4571
    /// framed packets, for clients whose network drops UDP. `None`: ICE over UDP only. `[::]` is
    /// dual-stack as for `bind`.
    pub tcp_listen: Option<SocketAddr>,
    /// Most TCP connections open at once; more are refused (closed at accept).
    pub tcp_max_connections: usize,
    /// How long a TCP connection may stay silent before it is closed: before its first packet (the
    /// ICE check naming a session), and between packets afterwards (ICE consent checks come every
    /// few seconds, so a live session never gets near it).
    pub tcp_idle_timeout: Duration,
    /// RFC 6464 level (−dBov, 0 loudest, 127 silence) at or under which a packet counts as speech.
    pub speech_level_dbov: u8,
    /// How often active speakers are evaluated; one event per group at most this often, and only when
    /// the set changed.
    pub speaker_interval: Duration,
    /// Most voices one session receives at once. Every voice is an m-line in that session's SDP, and
    /// a client's `media_answer` must fit the signalling frame limit (64 KiB): a browser's answer
    /// takes about 500 bytes per m-line, and a session has at most one m-line of its own plus three
    /// per voice (see the crate docs), so 32 voices stay under about 50 KB. In a larger group a
    /// session receives the publishers whose gate is open first (re-checked every
    /// `speaker_interval`), then those it already receives, then the earliest to join.
    pub max_voices: usize,
    /// Relay workers: each is one task with its own UDP socket (and ICE-TCP listener) on its own
    /// port, and owns the peers and groups placed on it, so the relay forwards on as many cores as
    /// it has workers. Worker `i` listens on `bind`'s port plus `i` (`tcp_listen`'s likewise); a
    /// group and all its members live on one worker. 1 to [`crate::MAX_WORKERS`].
    pub workers: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 3478)),
            advertised_ips: Vec::new(),
            tcp_listen: None,
            tcp_max_connections: 1024,
            tcp_idle_timeout: Duration::from_secs(30),
            speech_level_dbov: 50,
            speaker_interval: Duration::from_millis(300),
            max_voices: 32,
            workers: 1,
        }
    }
}

impl MediaConfig {
    /// A config bound to `127.0.0.1:0` (any free port), for tests.
    pub fn loopback() -> Self {
        MediaConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..MediaConfig::default()
        }
    }
}

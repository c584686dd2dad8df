//! Configuration: embedded defaults, then the file given with `--config FILE` (or `CIRCLE_CONFIG`), then
//! `CIRCLE_...` environment variables (`CIRCLE_SERVER__LISTEN=0.0.0.0:7700`: sections and keys joined by
//! `__`). Every option is documented in `config/circle.toml`, which holds the defaults.

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
};

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the server listens and how it is reached.
    pub server: ServerConfig,
    /// The web client: where it is served from, which pages may connect.
    pub client: ClientConfig,
    /// Room creation and room limits.
    pub rooms: RoomsConfig,
    /// Resume tokens.
    pub auth: AuthConfig,
    /// Protection against bad or abusive clients.
    pub limits: LimitsConfig,
    /// The voice relay.
    pub media: MediaSettings,
    /// HTTPS / WSS served by Circle itself.
    pub tls: TlsConfig,
    /// The operator's listener (metrics), off the public port.
    pub admin: AdminConfig,
    /// TURN: the embedded relay for members behind strict firewalls, and the credentials handed to
    /// clients for it or for an external coturn.
    pub turn: TurnSettings,
    /// Where standing rooms' definitions (and the token key) are kept.
    pub storage: StorageConfig,
    /// Several nodes sharing meetings through Redis (off unless `redis_url` is set).
    pub cluster: crate::cluster::ClusterConfig,
}

/// `[storage]`: standing rooms' definitions, never anything about a meeting.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The data directory, created on first start: the embedded SQLite database and `token.key`
    /// live here. Relative paths are from the directory the server starts in.
    pub data_dir: String,
    /// `postgres://…`: keep standing rooms in this PostgreSQL database instead of the embedded
    /// SQLite. Absent: SQLite in `data_dir`.
    pub url: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: "circle-data".into(),
            url: None,
        }
    }
}

/// `[turn]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnSettings {
    /// The shared secret TURN credentials are signed with (coturn's `static-auth-secret`). Empty: no
    /// TURN credentials are handed out, and the embedded relay cannot be on.
    pub secret: String,
    /// The TURN realm (coturn's `realm`).
    pub realm: String,
    /// How long handed-out credentials work, in seconds. A browser refreshes its allocation with the
    /// same credentials, so this outlasts the longest meeting (a resume hands out new ones).
    pub credential_ttl_secs: u64,
    /// The embedded relay's UDP listener (e.g. `0.0.0.0:3478`). Absent: none.
    pub udp: Option<SocketAddr>,
    /// The embedded relay's TCP listener (e.g. `0.0.0.0:3478`). Absent: none.
    pub tcp: Option<SocketAddr>,
    /// The embedded relay's TURN-over-TLS listener (e.g. `0.0.0.0:5349`), with the `[tls]`
    /// certificate. Absent: none.
    pub tls: Option<SocketAddr>,
    /// The URLs handed to clients with the credentials. Empty: those of the embedded listeners, at
    /// `host`. Set them (with `secret`) to use an external coturn with `use-auth-secret`.
    pub urls: Vec<String>,
    /// The host name in the URLs of the embedded listeners (the name on the certificate, for TLS).
    /// Empty: the host of `server.public_url`.
    pub host: String,
    /// The IP the relay's own UDP sockets bind to. Absent: the unspecified address of the media
    /// relay's family.
    pub relay_ip: Option<IpAddr>,
    /// The lowest port of the relay's sockets.
    pub relay_min_port: u16,
    /// The highest port of the relay's sockets.
    pub relay_max_port: u16,
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            secret: String::new(),
            realm: "circle".into(),
            credential_ttl_secs: 12 * 3600,
            udp: None,
            tcp: None,
            tls: None,
            urls: Vec::new(),
            host: String::new(),
            relay_ip: None,
            relay_min_port: 49152,
            relay_max_port: 65535,
        }
    }
}

impl TurnSettings {
    /// Whether the embedded relay runs.
    pub fn embedded(&self) -> bool {
        self.udp.is_some() || self.tcp.is_some() || self.tls.is_some()
    }
}

/// `[tls]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first. Empty, with `key` empty: plain HTTP.
    pub cert: String,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// How often, in seconds, the files are checked for a change (a certificate renewal); SIGHUP
    /// reloads at once.
    pub watch_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: String::new(),
            key: String::new(),
            watch_secs: 10,
        }
    }
}

impl TlsConfig {
    /// Whether Circle serves HTTPS itself.
    pub fn enabled(&self) -> bool {
        !self.cert.is_empty() || !self.key.is_empty()
    }
}

/// `[admin]`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Where `/metrics` is served (plain HTTP), e.g. `127.0.0.1:7702`. Empty: no admin listener.
    pub listen: String,
}

impl AdminConfig {
    /// The admin address, if one is configured and valid.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// `[media]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// Relay voice. Off: the server is chat and speaking order only, and says so in `joined`.
    pub enabled: bool,
    /// The one UDP address all voice goes through (one firewall rule). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// The IP address browsers should send voice to, when it differs from `listen`'s (a server behind
    /// a 1:1 NAT, or `listen` on 0.0.0.0). Empty: `listen`'s address. For one address; several (an
    /// IPv4 and an IPv6 one) go in `advertised_ips` instead.
    pub advertised_ip: String,
    /// The IP addresses browsers may send voice to, IPv4 and/or IPv6 (at most one of each is
    /// useful): each becomes a UDP candidate, and with `tcp_listen` a TCP one. Empty: `advertised_ip`.
    pub advertised_ips: Vec<String>,
    /// ICE over TCP for browsers whose network drops UDP: the TCP address to accept them on, e.g.
    /// `0.0.0.0:7701` (the same port number as `listen` is fine). Empty: off.
    pub tcp_listen: String,
    /// Audio level (in -dBov: 0 loudest, 127 silence) at or under which a packet counts as speech.
    pub speech_level_dbov: u8,
    /// STUN / TURN servers handed to browsers in `joined`.
    pub ice_servers: Vec<IceServerConfig>,
    /// Relay workers, each forwarding on its own core with its own UDP port (`listen`'s port plus
    /// the worker's number, and `tcp_listen`'s likewise); a room's voice lives on one worker.
    /// Unset: one per core.
    pub workers: Option<usize>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 7701)),
            advertised_ip: String::new(),
            advertised_ips: Vec::new(),
            tcp_listen: String::new(),
            speech_level_dbov: 50,
            ice_servers: Vec::new(),
            workers: None,
        }
    }
}

impl MediaSettings {
    /// The advertised IPs: `advertised_ips`, else `advertised_ip`, else none (`listen`'s address).
    /// Entries that are no IP address are left out (`Config::validate` refuses them).
    pub fn advertised(&self) -> Vec<std::net::IpAddr> {
        let listed: &[String] = match self.advertised_ips.is_empty() {
            true => std::slice::from_ref(&self.advertised_ip),
            false => &self.advertised_ips,
        };
        listed.iter().filter_map(|ip| ip.parse().ok()).collect()
    }

    /// How many relay workers to run: `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// `tcp_listen`, if ICE-TCP is on and it is an address.
    pub fn tcp_listen_addr(&self) -> Option<SocketAddr> {
        self.tcp_listen.parse().ok()
    }
}

/// The `[media]` address settings' problems (see `Config::validate`).
fn media_address_problems(m: &MediaSettings, p: &mut Vec<String>) {
    let workers = m.worker_count();
    if workers == 0 || workers > circle_media::MAX_WORKERS {
        p.push(format!(
            "media.workers {workers} is out of range: 1 to {} (unset: one per core)",
            circle_media::MAX_WORKERS
        ));
    }
    let tcp_port = m.tcp_listen_addr().map_or(0, |a| a.port());
    for (key, port) in [
        ("media.listen", m.listen.port()),
        ("media.tcp_listen", tcp_port),
    ] {
        if port != 0 && usize::from(port) + workers.saturating_sub(1) > usize::from(u16::MAX) {
            p.push(format!(
                "{key} port {port} leaves no room for {workers} workers (one port each, upward)"
            ));
        }
    }
    if !m.advertised_ip.is_empty() && !m.advertised_ips.is_empty() {
        p.push(
            "media.advertised_ip and media.advertised_ips are both set: put every address in \
             media.advertised_ips"
                .to_owned(),
        );
    }
    let listed = match m.advertised_ips.is_empty() {
        true => (
            "media.advertised_ip",
            std::slice::from_ref(&m.advertised_ip),
        ),
        false => ("media.advertised_ips", m.advertised_ips.as_slice()),
    };
    for ip in listed.1.iter().filter(|ip| !ip.is_empty()) {
        match ip.parse::<std::net::IpAddr>() {
            Err(_) => p.push(format!("{} {ip:?} is not an IP address", listed.0)),
            Ok(a) if a.is_unspecified() => p.push(format!(
                "{} {ip:?} is no address browsers can send to: give this server's public IP",
                listed.0
            )),
            Ok(_) => {}
        }
    }
    let tcp = match m.tcp_listen.is_empty() {
        true => None,
        false => match m.tcp_listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                p.push(format!(
                    "media.tcp_listen {:?} is not an address: write ip:port (e.g. 0.0.0.0:7701), \
                     or leave it empty for no ICE-TCP",
                    m.tcp_listen
                ));
                None
            }
        },
    };
    // Without advertised addresses the relay advertises `listen`'s.
    let mut advertised = m.advertised();
    if advertised.is_empty() {
        if m.listen.ip().is_unspecified() {
            p.push(format!(
                "media.listen {} is on all interfaces but media.advertised_ip is empty: \
                 set the address browsers send voice to",
                m.listen
            ));
        } else {
            advertised.push(m.listen.ip());
        }
    }
    for (key, listen) in [("media.listen", Some(m.listen)), ("media.tcp_listen", tcp)] {
        let Some(listen) = listen else { continue };
        // `[::]` is bound dual-stack and serves both families.
        let dual = listen.is_ipv6() && listen.ip().is_unspecified();
        for ip in advertised
            .iter()
            .filter(|ip| ip.is_ipv4() != listen.is_ipv4() && !dual)
        {
            p.push(format!(
                "{key} {listen} cannot receive what is sent to the advertised address {ip}: \
                 listen on [::] to serve IPv4 and IPv6"
            ));
        }
    }
}

/// One `[[media.ice_servers]]` entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name (empty for STUN).
    pub username: String,
    /// TURN credential (empty for STUN).
    pub credential: String,
}

/// `[server]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The HTTP and websocket listen address.
    pub listen: SocketAddr,
    /// How clients reach the server (`http://host:port`), used in the links the API returns. Empty
    /// means `http://<listen>` (`https://` with `[tls]`).
    pub public_url: String,
    /// On `circle` receiving SIGUSR1 (draining), how long to wait for meetings to end before
    /// stopping anyway, in seconds.
    pub drain_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            public_url: String::new(),
            drain_secs: 3600,
        }
    }
}

/// `[client]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Where people open the web client; room links point here.
    pub url: String,
    /// Serve the web client from this folder on `client.listen` (empty: do not serve it).
    pub serve_dir: String,
    /// Where the built-in static server for the web client listens, when `serve_dir` is set.
    pub listen: SocketAddr,
    /// Page origins allowed to open a websocket and call the API. Empty means the origin of `url`.
    pub allowed_origins: Vec<String>,
    /// Accept websocket connections that carry no Origin header (non-browser clients and tools).
    pub allow_missing_origin: bool,
    /// Serve `serve_dir` on the API listener (`server.listen`) instead: one host, one port, one
    /// certificate. `url` and `listen` are then not used; links point at `server.public_url`.
    pub same_origin: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            serve_dir: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
            same_origin: false,
        }
    }
}

impl ClientConfig {
    /// The origins allowed to connect: the configured list, or the client URL's origin (and its
    /// `localhost` / `127.0.0.1` twin, which browsers treat as different origins).
    pub fn effective_origins(&self) -> Vec<String> {
        if !self.allowed_origins.is_empty() {
            return self.allowed_origins.clone();
        }
        let origin = origin_of(&self.url);
        let mut out = vec![origin.clone()];
        if origin.contains("://127.0.0.1") {
            out.push(origin.replace("://127.0.0.1", "://localhost"));
        } else if origin.contains("://localhost") {
            out.push(origin.replace("://localhost", "://127.0.0.1"));
        }
        out
    }
}

/// The `scheme://host[:port]` part of a URL.
fn origin_of(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.find("://") {
        Some(i) => match url[i + 3..].find('/') {
            Some(j) => url[..i + 3 + j].to_owned(),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `[rooms]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// If set, creating a room needs `Authorization: Bearer <operator_key>`. Empty: anyone may.
    pub operator_key: String,
    /// Most people in one room, its waiting room included.
    pub max_participants: usize,
    /// Most rooms at once on this server.
    pub max_rooms: usize,
    /// Room chat messages kept in memory for late joiners.
    pub chat_history: usize,
    /// Longest chat message, in characters.
    pub chat_max_chars: usize,
    /// How long a dropped participant keeps their place, in seconds.
    pub grace_secs: u64,
    /// A room nobody is in is forgotten after this many seconds.
    pub empty_room_ttl_secs: u64,
    /// A room nobody has ever joined is forgotten this many seconds after it was created (much
    /// sooner than a used one: creating rooms nobody uses must not fill `max_rooms` for an hour).
    pub unused_room_ttl_secs: u64,
    /// A standing room's meeting ends once nobody has been in it for this many seconds; the next
    /// arrival starts a new meeting with nothing of this one.
    pub standing_empty_end_secs: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            operator_key: String::new(),
            max_participants: 1000,
            max_rooms: 10_000,
            chat_history: 200,
            chat_max_chars: 2000,
            grace_secs: 30,
            empty_room_ttl_secs: 3600,
            unused_room_ttl_secs: 600,
            standing_empty_end_secs: 300,
        }
    }
}

/// `[auth]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Key that signs resume and carry-over tokens (HS256), 32+ random characters. Empty: a random
    /// key kept in `<storage.data_dir>/token.key` (mode 0600), made on first start, so tokens
    /// survive a restart.
    pub token_key: String,
    /// How long a resume token is valid, in seconds.
    pub token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_key: String::new(),
            token_ttl_secs: 6 * 3600,
        }
    }
}

/// `[limits]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest frame the protocol accepts, in bytes; larger ones get a `frame_too_large` error.
    pub max_frame_bytes: usize,
    /// Largest websocket message read at all, in bytes; larger ones close the connection (1009).
    pub max_ws_message_bytes: usize,
    /// Messages queued for one connection before it counts as too slow and is dropped.
    pub outbound_queue: usize,
    /// Chat messages per second per connection, sustained.
    pub chat_per_sec: u32,
    /// Chat messages a connection may send in a burst.
    pub chat_burst: u32,
    /// Hand raises and lowers per second per connection, sustained.
    pub hand_per_sec: u32,
    /// Hand raises and lowers a connection may send in a burst.
    pub hand_burst: u32,
    /// Any requests per second per connection, sustained.
    pub requests_per_sec: u32,
    /// Any requests a connection may send in a burst.
    pub requests_burst: u32,
    /// A socket that has not joined within this many seconds is closed.
    pub join_timeout_secs: u64,
    /// Seconds a connection has to send a request's headers; also how long an idle HTTP connection
    /// (between requests) stays open. Not applied to websockets, which have their own keepalive.
    pub header_timeout_secs: u64,
    /// Seconds a request body may stall between two pieces before the request fails.
    pub body_timeout_secs: u64,
    /// Largest request head (request line and headers), in bytes; larger gets 431. At least 8192.
    pub max_header_bytes: usize,
    /// Largest request body, in bytes; a larger `Content-Length` gets 413 before any body is read.
    pub max_body_bytes: usize,
    /// Most TCP connections open at once on the public listeners, websockets included. Past it new
    /// connections are refused at once (plain HTTP: a 503) and live meetings go on.
    pub max_connections: usize,
    /// Most websockets open at once that have not joined (or resumed) yet; past it a new upgrade
    /// gets 503 `server_busy`. Joined sessions do not count.
    pub max_unjoined_sockets: usize,
    /// Rooms one client (one network address, kept only as a keyed hash in memory) may create per
    /// minute, sustained.
    pub rooms_per_client_per_min: u32,
    /// Rooms one client may create in a burst.
    pub rooms_per_client_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_ws_message_bytes: 256 * 1024,
            outbound_queue: 1024,
            chat_per_sec: 1,
            chat_burst: 5,
            hand_per_sec: 1,
            hand_burst: 4,
            requests_per_sec: 20,
            requests_burst: 40,
            join_timeout_secs: 30,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            max_connections: 4096,
            max_unjoined_sockets: 512,
            rooms_per_client_per_min: 2,
            rooms_per_client_burst: 10,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or variable held a value of the wrong kind, or an unknown key.
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

impl Config {
    /// Defaults, then the file (if given and present), then `CIRCLE_...` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        // `CIRCLE_CONFIG` names the file (read by the command line), it is not an option.
        fig = fig.merge(Env::prefixed("CIRCLE_").ignore(&["config"]).split("__"));
        fig.extract().map_err(|e| ConfigError::Invalid(Box::new(e)))
    }

    /// The base URL clients use for the API and the websocket.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            let scheme = if self.tls.enabled() { "https" } else { "http" };
            format!("{scheme}://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }
}

/// What is wrong with a configuration: one line per problem, each saying what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct InvalidConfig(pub Vec<String>);

/// Hyper's smallest read buffer: a request head limit below it cannot be honoured.
pub const MIN_HEADER_BYTES: usize = 8192;

impl Config {
    /// Checks the configuration once, before anything starts: every problem found, one line each.
    /// Nothing is silently raised, lowered or replaced.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let mut p = Vec::new();
        let l = &self.limits;
        let r = &self.rooms;
        for (key, value) in [
            ("limits.max_frame_bytes", l.max_frame_bytes as u64),
            ("limits.max_ws_message_bytes", l.max_ws_message_bytes as u64),
            ("limits.outbound_queue", l.outbound_queue as u64),
            ("limits.chat_per_sec", l.chat_per_sec.into()),
            ("limits.chat_burst", l.chat_burst.into()),
            ("limits.hand_per_sec", l.hand_per_sec.into()),
            ("limits.hand_burst", l.hand_burst.into()),
            ("limits.requests_per_sec", l.requests_per_sec.into()),
            ("limits.requests_burst", l.requests_burst.into()),
            ("limits.join_timeout_secs", l.join_timeout_secs),
            ("limits.header_timeout_secs", l.header_timeout_secs),
            ("limits.body_timeout_secs", l.body_timeout_secs),
            ("limits.max_body_bytes", l.max_body_bytes as u64),
            ("limits.max_connections", l.max_connections as u64),
            ("limits.max_unjoined_sockets", l.max_unjoined_sockets as u64),
            (
                "limits.rooms_per_client_per_min",
                l.rooms_per_client_per_min.into(),
            ),
            (
                "limits.rooms_per_client_burst",
                l.rooms_per_client_burst.into(),
            ),
            ("rooms.max_participants", r.max_participants as u64),
            ("rooms.max_rooms", r.max_rooms as u64),
            ("rooms.chat_max_chars", r.chat_max_chars as u64),
            ("rooms.standing_empty_end_secs", r.standing_empty_end_secs),
            ("auth.token_ttl_secs", self.auth.token_ttl_secs),
            ("tls.watch_secs", self.tls.watch_secs),
        ] {
            if value == 0 {
                p.push(format!("{key} is 0: it must be at least 1"));
            }
        }
        if l.max_header_bytes < MIN_HEADER_BYTES {
            p.push(format!(
                "limits.max_header_bytes is {}: it must be at least {MIN_HEADER_BYTES}",
                l.max_header_bytes
            ));
        }
        if l.max_frame_bytes > l.max_ws_message_bytes {
            p.push(format!(
                "limits.max_frame_bytes ({}) is larger than limits.max_ws_message_bytes ({}): \
                 such frames could never arrive",
                l.max_frame_bytes, l.max_ws_message_bytes
            ));
        }
        if !self.auth.token_key.is_empty() && self.auth.token_key.len() < 32 {
            p.push(
                "auth.token_key is shorter than 32 characters: use a long random key, \
                    or leave it empty for a random key kept in the data directory"
                    .into(),
            );
        }
        self.validate_addresses(&mut p);
        self.validate_storage(&mut p);
        self.validate_tls(&mut p);
        self.validate_turn(&mut p);
        crate::cluster::validate(self, &mut p);
        if p.is_empty() {
            Ok(())
        } else {
            Err(InvalidConfig(p))
        }
    }

    /// URLs, origins and the addresses a public deployment must state.
    fn validate_addresses(&self, p: &mut Vec<String>) {
        let tls = self.tls.enabled();
        let public = &self.server.public_url;
        if !public.is_empty() {
            match http_url_problem(public) {
                Some(why) => p.push(format!("server.public_url {public:?} {why}")),
                None if tls && public.starts_with("http://") => p.push(format!(
                    "server.public_url {public:?} is http:// but [tls] is set: use https://"
                )),
                None => {}
            }
        } else if self.server.listen.ip().is_unspecified() {
            p.push(format!(
                "server.listen {} is on all interfaces but server.public_url is empty: \
                 set it to the address browsers use (e.g. https://circle.example.org)",
                self.server.listen
            ));
        }
        let c = &self.client;
        let serves_client = !c.serve_dir.is_empty();
        if c.same_origin && !serves_client {
            p.push(
                "client.same_origin is set but client.serve_dir is empty: \
                    set the folder to serve"
                    .into(),
            );
        }
        if serves_client && !Path::new(&c.serve_dir).is_dir() {
            p.push(format!(
                "client.serve_dir {:?} is not a folder",
                c.serve_dir
            ));
        }
        if !c.same_origin {
            if let Some(why) = http_url_problem(&c.url) {
                p.push(format!("client.url {:?} {why}", c.url));
            } else if serves_client && tls && c.url.starts_with("http://") {
                p.push(format!(
                    "client.url {:?} is http:// but the client is served with [tls]: use https://",
                    c.url
                ));
            } else if serves_client && c.listen.ip().is_unspecified() && is_loopback_url(&c.url) {
                p.push(format!(
                    "client.listen {} is on all interfaces but client.url {:?} is this machine \
                     only: set client.url to the address people open",
                    c.listen, c.url
                ));
            }
        }
        for o in &c.allowed_origins {
            if http_url_problem(o).is_some() || origin_of(o) != *o {
                p.push(format!(
                    "client.allowed_origins entry {o:?} is not an origin: \
                     write scheme://host[:port], nothing after"
                ));
            }
        }
        let m = &self.media;
        if m.enabled {
            media_address_problems(m, p);
            for s in &m.ice_servers {
                let turn = s
                    .urls
                    .iter()
                    .any(|u| u.starts_with("turn:") || u.starts_with("turns:"));
                if turn && (s.username.is_empty() || s.credential.is_empty()) {
                    p.push(format!(
                        "media.ice_servers {:?} is a TURN server without username and credential",
                        s.urls
                    ));
                }
                if s.urls.is_empty() {
                    p.push("media.ice_servers has an entry with no urls".into());
                }
            }
        }
        if !self.admin.listen.is_empty() {
            match self.admin.addr() {
                None => p.push(format!(
                    "admin.listen {:?} is not an address (e.g. 127.0.0.1:7702)",
                    self.admin.listen
                )),
                Some(a) if a == self.server.listen && a.port() != 0 => p.push(format!(
                    "admin.listen {a} is server.listen: the admin listener must be off the public port"
                )),
                Some(_) => {}
            }
        }
    }

    /// Storage: a data directory always (the token key lives there even with PostgreSQL), and a
    /// PostgreSQL URL when one is given.
    fn validate_storage(&self, p: &mut Vec<String>) {
        let s = &self.storage;
        if s.data_dir.trim().is_empty() {
            p.push(
                "storage.data_dir is empty: name the folder for the database and token.key \
                 (e.g. circle-data)"
                    .into(),
            );
        } else if Path::new(&s.data_dir).exists() && !Path::new(&s.data_dir).is_dir() {
            p.push(format!(
                "storage.data_dir {:?} exists and is not a folder",
                s.data_dir
            ));
        }
        if let Some(url) = &s.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            p.push(
                "storage.url is not a postgres:// or postgresql:// URL: give the PostgreSQL \
                 database, or leave it out for the embedded SQLite"
                    .into(),
            );
        }
    }

    /// TURN: a secret when credentials are handed out, the voice relay it serves, TLS for `turns:`.
    fn validate_turn(&self, p: &mut Vec<String>) {
        let t = &self.turn;
        let wanted = t.embedded() || !t.urls.is_empty();
        if wanted && t.secret.len() < 16 {
            p.push(
                "turn.secret is empty or shorter than 16 characters: TURN needs a long random \
                 shared secret (coturn's static-auth-secret)"
                    .into(),
            );
        }
        if t.embedded() && !self.media.enabled {
            p.push("turn has listeners but media.enabled is false: TURN relays voice".into());
        }
        if t.tls.is_some() && !self.tls.enabled() {
            p.push(
                "turn.tls is set but [tls] cert and key are not: TURN over TLS needs them".into(),
            );
        }
        if t.credential_ttl_secs == 0 {
            p.push("turn.credential_ttl_secs is 0: it must be at least 1".into());
        }
        if t.relay_min_port == 0 || t.relay_min_port > t.relay_max_port {
            p.push(format!(
                "turn.relay_min_port {} and relay_max_port {} are not a port range",
                t.relay_min_port, t.relay_max_port
            ));
        }
        for u in &t.urls {
            if !(u.starts_with("turn:") || u.starts_with("turns:")) {
                p.push(format!(
                    "turn.urls entry {u:?} is not a turn: or turns: URL"
                ));
            }
        }
    }

    /// The TLS files exist, are readable and load.
    fn validate_tls(&self, p: &mut Vec<String>) {
        let t = &self.tls;
        if !t.enabled() {
            return;
        }
        if t.cert.is_empty() || t.key.is_empty() {
            p.push("tls.cert and tls.key must both be set (or both empty for plain HTTP)".into());
            return;
        }
        if let Err(e) = crate::tls::load_pair(Path::new(&t.cert), Path::new(&t.key)) {
            p.push(format!("tls: {e}"));
        }
    }
}

/// Why `url` is not a usable `http://` / `https://` URL that can go into a header, if it is not.
pub(crate) fn http_url_problem(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        None => Some("must start with http:// or https://"),
        Some("") => Some("has no host"),
        Some(_) if axum::http::HeaderValue::from_str(url).is_err() => {
            Some("has characters a header cannot carry")
        }
        Some(_)
            if url
                .chars()
                .any(|c| c.is_whitespace() || c == ';' || c == ',') =>
        {
            Some("has spaces or separators")
        }
        Some(_) => None,
    }
}

/// Whether a URL points at this machine only.
fn is_loopback_url(url: &str) -> bool {
    let origin = origin_of(url);
    origin.contains("://127.") || origin.contains("://localhost") || origin.contains("://[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_origin_is_the_client_url_and_its_loopback_twin() {
        let c = ClientConfig::default();
        assert_eq!(
            c.effective_origins(),
            vec!["http://127.0.0.1:8080", "http://localhost:8080"]
        );
        assert_eq!(origin_of("https://a.example/x/y"), "https://a.example");
    }

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }

    #[test]
    fn problems_are_listed_one_line_each() {
        let mut c = Config::default();
        c.limits.max_header_bytes = 1024;
        c.client.allowed_origins = vec!["https://a.example/path".into()];
        c.server.public_url = "ftp://x".into();
        c.media.advertised_ip = "not-an-ip".into();
        let e = c.validate().expect_err("refused");
        assert_eq!(
            e.0,
            vec![
                "limits.max_header_bytes is 1024: it must be at least 8192",
                "server.public_url \"ftp://x\" must start with http:// or https://",
                "client.allowed_origins entry \"https://a.example/path\" is not an origin: \
                 write scheme://host[:port], nothing after",
                "media.advertised_ip \"not-an-ip\" is not an IP address",
            ]
        );
        assert_eq!(e.to_string().lines().count(), 4);
    }

    #[test]
    fn media_workers_are_checked_at_start() {
        let mut c = Config::default();
        c.media.workers = Some(0);
        c.media.listen = "127.0.0.1:65535".parse().unwrap();
        let e = c.validate().expect_err("refused");
        assert_eq!(
            e.0,
            vec!["media.workers 0 is out of range: 1 to 256 (unset: one per core)"]
        );
        c.media.workers = Some(4);
        c.media.tcp_listen = "127.0.0.1:65534".into();
        let e = c.validate().expect_err("refused");
        assert_eq!(
            e.0,
            vec![
                "media.listen port 65535 leaves no room for 4 workers (one port each, upward)",
                "media.tcp_listen port 65534 leaves no room for 4 workers (one port each, upward)",
            ]
        );
        c.media.listen = "127.0.0.1:0".parse().unwrap();
        c.media.tcp_listen = "127.0.0.1:65532".into();
        c.validate().expect("ports 65532 to 65535, and free ones");
    }

    #[test]
    fn media_addresses_are_checked() {
        let mut c = Config::default();
        c.media.listen = "0.0.0.0:7701".parse().unwrap();
        c.media.advertised_ip = "203.0.113.7".into();
        c.media.advertised_ips = vec!["203.0.113.7".into(), "2001:db8::7".into(), "x".into()];
        c.media.tcp_listen = "7702".into();
        let e = c.validate().expect_err("refused");
        assert_eq!(
            e.0,
            vec![
                "media.advertised_ip and media.advertised_ips are both set: put every address \
                 in media.advertised_ips",
                "media.advertised_ips \"x\" is not an IP address",
                "media.tcp_listen \"7702\" is not an address: write ip:port (e.g. 0.0.0.0:7701), \
                 or leave it empty for no ICE-TCP",
                "media.listen 0.0.0.0:7701 cannot receive what is sent to the advertised address \
                 2001:db8::7: listen on [::] to serve IPv4 and IPv6",
            ]
        );

        // Dual-stack listeners serve both families.
        let mut c = Config::default();
        c.media.listen = "[::]:7701".parse().unwrap();
        c.media.advertised_ips = vec!["203.0.113.7".into(), "2001:db8::7".into()];
        c.media.tcp_listen = "[::]:7701".into();
        c.validate().expect("dual stack serves both");
        // Without advertised addresses, `listen`'s is advertised, for TCP too.
        c.media.advertised_ips.clear();
        c.media.listen = "127.0.0.1:7701".parse().unwrap();
        c.validate().expect("listen's address is advertised");
        c.media.listen = "[::1]:7701".parse().unwrap();
        c.media.tcp_listen = "0.0.0.0:7701".into();
        let e = c.validate().expect_err("refused");
        assert_eq!(
            e.0,
            vec![
                "media.tcp_listen 0.0.0.0:7701 cannot receive what is sent to the advertised \
                 address ::1: listen on [::] to serve IPv4 and IPv6"
            ]
        );
    }

    #[test]
    fn storage_settings_are_checked() {
        let mut c = Config::default();
        c.storage.data_dir = " ".into();
        c.storage.url = Some("mysql://x".into());
        c.rooms.standing_empty_end_secs = 0;
        let e = c.validate().expect_err("refused");
        assert_eq!(
            e.0,
            vec![
                "rooms.standing_empty_end_secs is 0: it must be at least 1",
                "storage.data_dir is empty: name the folder for the database and token.key \
                 (e.g. circle-data)",
                "storage.url is not a postgres:// or postgresql:// URL: give the PostgreSQL \
                 database, or leave it out for the embedded SQLite",
            ]
        );
        c.storage.data_dir = "circle-data".into();
        c.storage.url = Some("postgresql://circle@localhost/circle".into());
        c.rooms.standing_empty_end_secs = 300;
        c.validate().expect("a PostgreSQL URL is fine");
    }

    #[test]
    fn a_url_a_header_cannot_carry_is_refused() {
        let mut c = Config::default();
        c.client.url = "http://a.example/\u{7f}".into();
        assert_eq!(c.validate().expect_err("refused").0.len(), 1);
    }

    #[test]
    fn an_http_public_url_with_tls_is_refused() {
        let mut c = Config::default();
        c.server.public_url = "http://circle.example.org".into();
        c.tls.cert = "/nonexistent/cert.pem".into();
        c.tls.key = "/nonexistent/key.pem".into();
        let e = c.validate().expect_err("refused");
        assert!(e.0[0].contains("is http:// but [tls] is set"), "{e}");
        assert!(
            e.0[1].starts_with("tls: cannot read /nonexistent/cert.pem"),
            "{e}"
        );
    }

    #[test]
    fn a_client_served_over_tls_needs_an_https_link() {
        let mut c = Config::default();
        c.client.serve_dir = env!("CARGO_MANIFEST_DIR").into();
        c.tls.cert = "/nonexistent/cert.pem".into();
        c.tls.key = "/nonexistent/key.pem".into();
        let e = c.validate().expect_err("refused");
        assert_eq!(
            e.0[0],
            "client.url \"http://127.0.0.1:8080\" is http:// but the client is served with [tls]: \
             use https://"
        );
    }

    #[test]
    fn shipped_config_file_matches_the_schema() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/circle.toml");
        let c = Config::load(Some(&path)).expect("config/circle.toml loads");
        assert_eq!(c.rooms.grace_secs, RoomsConfig::default().grace_secs);
    }
}

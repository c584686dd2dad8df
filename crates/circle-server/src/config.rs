//! Configuration: embedded defaults, then the file given with `--config FILE` (or `CIRCLE_CONFIG`), then
//! `CIRCLE_...` environment variables (`CIRCLE_SERVER__LISTEN=0.0.0.0:7700`: sections and keys joined by
//! `__`). Every option is documented in `config/circle.toml`, which holds the defaults.

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, path::Path};

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
    /// a 1:1 NAT, or `listen` on 0.0.0.0). Empty: `listen`'s address.
    pub advertised_ip: String,
    /// Audio level (in -dBov: 0 loudest, 127 silence) at or under which a packet counts as speech.
    pub speech_level_dbov: u8,
    /// STUN / TURN servers handed to browsers in `joined`.
    pub ice_servers: Vec<IceServerConfig>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 7701)),
            advertised_ip: String::new(),
            speech_level_dbov: 50,
            ice_servers: Vec::new(),
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
    /// means `http://<listen>`.
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            public_url: String::new(),
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
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            serve_dir: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
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
        }
    }
}

/// `[auth]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Key that signs resume tokens (HS256). Empty: a random key made at start, so tokens die with the
    /// process. Set it (32+ random characters) only if tokens must survive a restart.
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
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }
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
    fn shipped_config_file_matches_the_schema() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/circle.toml");
        let c = Config::load(Some(&path)).expect("config/circle.toml loads");
        assert_eq!(c.rooms.grace_secs, RoomsConfig::default().grace_secs);
    }
}

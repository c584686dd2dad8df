//! The websocket handshake (RFC 6455 §4.2) on top of hyper's upgrade, handing the raw connection to
//! tokio-tungstenite. Circle does this itself rather than through axum's `WebSocket` so that it keeps
//! the connection after the websocket is done with it: a server that closes a socket with unread
//! input makes the kernel send a reset, which throws away the close frame it just sent (the client
//! never learns *why*, e.g. 1009). `conn` drains the input before letting go (see `conn::linger`).

use crate::http::ApiError;
use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{handshake::derive_accept_key, protocol::Role, protocol::WebSocketConfig},
};

/// The server end of one websocket, over the upgraded HTTP connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A checked upgrade request, waiting for the 101 to go out.
pub struct Upgrade {
    /// Resolves to the raw connection once hyper has sent the 101.
    on_upgrade: OnUpgrade,
    /// `Sec-WebSocket-Accept` for the 101.
    accept: HeaderValue,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl Upgrade {
    /// Checks that `req` is a websocket handshake (GET, `Connection: upgrade`, `Upgrade: websocket`,
    /// version 13, a key) on a connection that can be upgraded.
    pub fn from_request(req: &mut Request) -> Result<Self, ApiError> {
        let headers = req.headers();
        let handshake = req.method() == Method::GET
            && has_token(headers, header::CONNECTION, "upgrade")
            && has_token(headers, header::UPGRADE, "websocket")
            && headers
                .get(header::SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v == "13");
        let key = headers.get(header::SEC_WEBSOCKET_KEY).filter(|_| handshake);
        let Some(key) = key else {
            return Err(ApiError::BadRequest(
                "this endpoint speaks websocket (version 13) only".into(),
            ));
        };
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| ApiError::BadRequest("bad Sec-WebSocket-Key".into()))?;
        let on_upgrade = req
            .extensions_mut()
            .remove::<OnUpgrade>()
            .ok_or_else(|| ApiError::BadRequest("this connection cannot be upgraded".into()))?;
        Ok(Self { on_upgrade, accept })
    }

    /// The 101 response; `run` gets the socket once it has gone out.
    pub fn respond<F, Fut>(self, config: WebSocketConfig, run: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Self { on_upgrade, accept } = self;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    run(socket).await;
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, accept),
            ],
        )
            .into_response()
    }
}

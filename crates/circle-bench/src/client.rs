//! The smallest protocol client the benchmarks need: connect, `join`, wait for `joined`. After that
//! each benchmark reads the socket itself, as cheaply as it can.

use anyhow::{Context, Result, anyhow, bail};
use circle_protocol::{ClientMsg, PROTOCOL_VERSION, RoomId};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};

/// A client websocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Frames a client may read before `joined` (there should be none but errors).
const MAX_FRAMES_BEFORE_JOINED: usize = 16;

/// Opens a websocket to `ws_url` with small buffers (10,000 of them live in this process) and
/// Nagle's algorithm off, so a frame leaves when it is written.
pub async fn connect(ws_url: &str) -> Result<Ws> {
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let (ws, _) = connect_async_with_config(ws_url, Some(config), true)
        .await
        .with_context(|| format!("connecting to {ws_url}"))?;
    Ok(ws)
}

/// Sends `join` and waits (at most `timeout`) for `joined`; an `error` reply or a close fails.
/// Returns the size of the `joined` frame in bytes.
pub async fn join(ws: &mut Ws, room: &RoomId, name: &str, timeout: Duration) -> Result<usize> {
    let msg = ClientMsg::Join {
        id: None,
        protocol: PROTOCOL_VERSION,
        room: room.clone(),
        name: name.to_owned(),
        secret: None,
        device: None,
        carry: None,
    };
    ws.send(Message::text(serde_json::to_string(&msg)?)).await?;
    tokio::time::timeout(timeout, async {
        for _ in 0..MAX_FRAMES_BEFORE_JOINED {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    // Read loosely: only the fields needed here, so fields added to `joined` later
                    // (or a server built from another revision) do not break the tool.
                    let v: Value = serde_json::from_str(&t)?;
                    match v["type"].as_str() {
                        Some("joined") if v["waiting"] == Value::Bool(true) => {
                            bail!("put in the waiting room")
                        }
                        Some("joined") => return Ok(t.len()),
                        Some("error") => bail!("join refused: {}: {}", v["code"], v["message"]),
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(f))) => bail!("closed before joined: {f:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("connection ended before joined"),
            }
        }
        Err(anyhow!(
            "no `joined` in the first {MAX_FRAMES_BEFORE_JOINED} frames"
        ))
    })
    .await
    .map_err(|_| anyhow!("no `joined` within {timeout:?}"))?
}

//! A minimal Socket.io v5 client over a raw WebSocket (Engine.IO v4 framing): connect with an
//! `auth` token, and classify incoming text frames without a full JSON parse.

use std::{
    net::{IpAddr, SocketAddr},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};

/// One client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Microseconds since the first call: one monotonic clock shared by every task of the process,
/// so a send stamp taken by one socket can be compared with an arrival seen by another.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A server to connect to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL, e.g. `http://127.0.0.1:4001`.
    pub base: String,
    /// Resolved socket address.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Parses `http://IP:PORT` (or `localhost`); anything but a loopback address is refused,
    /// so the generator can never be pointed at another machine.
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let rest = url
            .trim_end_matches('/')
            .strip_prefix("http://")
            .with_context(|| format!("{url}: only http:// URLs are supported"))?;
        let rest = rest.replacen("localhost", "127.0.0.1", 1);
        let addr: SocketAddr = rest
            .parse()
            .with_context(|| format!("{url}: expected http://IP:PORT"))?;
        if !addr.ip().is_loopback() {
            bail!("{url}: only loopback targets are allowed");
        }
        Ok(Endpoint {
            base: format!("http://{addr}"),
            addr,
        })
    }
}

/// Source addresses for outgoing sockets: `count` loopback addresses 127.0.0.1, 127.0.0.2, ...
/// Each one has its own ephemeral port range, which lifts the ~28k connections per target limit.
pub fn source_ips(count: usize) -> Vec<IpAddr> {
    (0..count.max(1))
        .map(|i| {
            let n = i as u32 + 1;
            IpAddr::from([
                127,
                ((n >> 16) & 0xff) as u8,
                ((n >> 8) & 0xff) as u8,
                (n & 0xff) as u8,
            ])
        })
        .collect()
}

/// Small buffers: the defaults (128 KiB eagerly allocated per socket) would make the generator
/// the memory hog at 100k sockets.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20))
}

/// Why a connect attempt failed, for failure counts.
#[derive(Debug)]
pub enum ConnectError {
    /// TCP connect failed.
    Tcp(std::io::Error),
    /// The WebSocket upgrade failed.
    Upgrade(String),
    /// The server refused the namespace connect (`44{"message":...}`).
    Refused(String),
    /// The server closed the socket or spoke something unexpected.
    Protocol(String),
}

impl ConnectError {
    /// A short label for grouping failures.
    pub fn kind(&self) -> String {
        match self {
            ConnectError::Tcp(e) => format!("tcp:{:?}", e.kind()),
            ConnectError::Upgrade(_) => "upgrade".into(),
            ConnectError::Refused(m) => format!("refused:{m}"),
            ConnectError::Protocol(_) => "protocol".into(),
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tcp(e) => write!(f, "tcp connect: {e}"),
            ConnectError::Upgrade(e) => write!(f, "websocket upgrade: {e}"),
            ConnectError::Refused(m) => write!(f, "connect refused: {m}"),
            ConnectError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

/// Opens an authenticated Socket.io connection on the default namespace: TCP, WebSocket
/// upgrade, Engine.IO open packet, then `40{"token":...}` until the server's `40{...}`.
pub async fn connect(
    ep: &Endpoint,
    source: Option<IpAddr>,
    token: &str,
) -> Result<Ws, ConnectError> {
    let sock = TcpSocket::new_v4().map_err(ConnectError::Tcp)?;
    if let Some(ip) = source {
        set_bind_no_port(&sock);
        sock.bind(SocketAddr::new(ip, 0))
            .map_err(ConnectError::Tcp)?;
    }
    let stream = sock.connect(ep.addr).await.map_err(ConnectError::Tcp)?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", ep.addr);
    let (mut ws, _) = client_async_with_config(url, stream, Some(ws_config()))
        .await
        .map_err(|e| ConnectError::Upgrade(e.to_string()))?;
    let mut opened = false;
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => {
                return Err(ConnectError::Protocol(format!(
                    "unexpected frame {other:?}"
                )));
            }
            Some(Err(e)) => return Err(ConnectError::Protocol(e.to_string())),
            None => return Err(ConnectError::Protocol("closed during handshake".into())),
        };
        match parse(text.as_str()) {
            Packet::Open => {
                if opened {
                    continue;
                }
                opened = true;
                let auth = format!("40{{\"token\":\"{token}\"}}");
                ws.send(Message::text(auth))
                    .await
                    .map_err(|e| ConnectError::Protocol(e.to_string()))?;
            }
            Packet::Connect => return Ok(ws),
            Packet::ConnectError(body) => {
                let msg = serde_json::from_str::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| body.to_owned());
                return Err(ConnectError::Refused(msg));
            }
            Packet::Ping => {
                ws.send(Message::text("3"))
                    .await
                    .map_err(|e| ConnectError::Protocol(e.to_string()))?;
            }
            Packet::Close | Packet::Disconnect => {
                return Err(ConnectError::Protocol(
                    "server closed during handshake".into(),
                ));
            }
            _ => {}
        }
    }
}

/// Lets the kernel pick the source port at connect time from the full 4-tuple, so many
/// sockets bound to one source address do not exhaust its ports at bind time.
fn set_bind_no_port(sock: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to a c_int that outlives the call.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// An incoming Engine.IO / Socket.io text frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0{...}`: Engine.IO open.
    Open,
    /// `1`: Engine.IO close.
    Close,
    /// `2`: server ping (answer `3`).
    Ping,
    /// `40{...}`: namespace connected.
    Connect,
    /// `41`: namespace disconnected.
    Disconnect,
    /// `44{...}`: namespace connect refused, with its JSON body.
    ConnectError(&'a str),
    /// `42[...]`: an event; `body` is the JSON array `["name", ...]`.
    Event(&'a str),
    /// `43<id>[...]`: the ack of our request `id`, `body` its argument array.
    Ack(u64, &'a str),
    /// Anything else (pong, noop, binary placeholders).
    Other,
}

/// Classifies one text frame. Only the default namespace is used, so no `/nsp,` prefix appears.
pub fn parse(text: &str) -> Packet<'_> {
    let b = text.as_bytes();
    match b.first() {
        Some(b'0') => Packet::Open,
        Some(b'1') => Packet::Close,
        Some(b'2') => Packet::Ping,
        Some(b'4') => match b.get(1) {
            Some(b'0') => Packet::Connect,
            Some(b'1') => Packet::Disconnect,
            Some(b'2') => {
                let rest = &text[2..];
                let body_at = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                Packet::Event(&rest[body_at..])
            }
            Some(b'3') => {
                let rest = &text[2..];
                let body_at = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                match rest[..body_at].parse() {
                    Ok(id) => Packet::Ack(id, &rest[body_at..]),
                    Err(_) => Packet::Other,
                }
            }
            Some(b'4') => Packet::ConnectError(&text[2..]),
            _ => Packet::Other,
        },
        _ => Packet::Other,
    }
}

/// The name of an event body `["name", ...]`.
pub fn event_name(body: &str) -> Option<&str> {
    let rest = body.strip_prefix("[\"")?;
    rest.find('"').map(|end| &rest[..end])
}

/// Encodes an event with an ack request: `42<id>["name",<json>]`.
pub fn emit_with_ack(id: u64, name: &str, json: &str) -> Message {
    Message::text(format!("42{id}[\"{name}\",{json}]"))
}

/// The Engine.IO pong answering a ping.
pub fn pong() -> Message {
    Message::text("3")
}

/// Connect with a deadline.
pub async fn connect_timeout(
    ep: &Endpoint,
    source: Option<IpAddr>,
    token: &str,
    deadline: Duration,
) -> Result<Ws, ConnectError> {
    match tokio::time::timeout(deadline, connect(ep, source, token)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Protocol("timeout".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_classified() {
        assert_eq!(parse("2"), Packet::Ping);
        assert_eq!(parse("0{\"sid\":\"x\"}"), Packet::Open);
        assert_eq!(parse("40{\"sid\":\"x\"}"), Packet::Connect);
        assert_eq!(
            parse("44{\"message\":\"Unauthorized\"}"),
            Packet::ConnectError("{\"message\":\"Unauthorized\"}")
        );
        assert_eq!(
            parse("42[\"user:online\",{}]"),
            Packet::Event("[\"user:online\",{}]")
        );
        assert_eq!(parse("4217[\"x\",1]"), Packet::Event("[\"x\",1]"));
        assert_eq!(parse("4312[{\"id\":1}]"), Packet::Ack(12, "[{\"id\":1}]"));
        assert_eq!(event_name("[\"message:new\",{}]"), Some("message:new"));
    }

    #[test]
    fn only_loopback_endpoints_are_accepted() {
        assert!(Endpoint::parse("http://127.0.0.1:3000").is_ok());
        assert!(Endpoint::parse("http://localhost:3000/").is_ok());
        assert!(Endpoint::parse("http://10.0.0.1:3000").is_err());
        assert!(Endpoint::parse("http://192.168.1.2:80").is_err());
    }

    #[test]
    fn source_addresses_stay_in_loopback() {
        let ips = source_ips(300);
        assert_eq!(ips[0].to_string(), "127.0.0.1");
        assert_eq!(ips[299].to_string(), "127.0.1.44");
        assert!(ips.iter().all(|ip| ip.is_loopback()));
    }
}

//! The signalling driver: LiveKit's WebSocket, protobuf frames in and out.
//!
//! [`connect`] opens `/rtc` (protocol 17) with a Bearer token and returns a [`SignalLink`]:
//! a sender of `SignalRequest` messages and a receiver of [`SignalEvent`]s. Two small tasks
//! move the bytes; they make no decisions (the session core does) and never see the token
//! again after the upgrade request.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};
use tokio_tungstenite::MaybeTlsStream;

/// Protocol version we speak (see docs: every SDK and the server use 17).
pub const PROTOCOL_VERSION: u32 = 17;

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one value per event, never stored in bulk
pub enum SignalEvent {
    Message(proto::signal_response::Message),
    Closed(String),
}

/// An open signalling connection.
pub struct SignalLink {
    tx: mpsc::UnboundedSender<Outgoing>,
    pub events: mpsc::Receiver<SignalEvent>,
}

#[allow(clippy::large_enum_variant)] // one value per event, never stored in bulk
enum Outgoing {
    Request(proto::signal_request::Message),
    Close,
}

impl SignalLink {
    /// Queue a message. Silently dropped if the connection is already gone: the reader side
    /// reports the closure.
    pub fn send(&self, msg: proto::signal_request::Message) {
        let _ = self.tx.send(Outgoing::Request(msg));
    }

    /// Flush what is queued, then close the WebSocket.
    pub fn close(&self) {
        let _ = self.tx.send(Outgoing::Close);
    }
}

pub use crate::session::{ConnectError, ConnectStep, Resume};

/// The `/rtc` URL for `base` (ws:// or wss://, possibly with a path prefix).
pub fn rtc_url(base: &url::Url, resume: Option<&Resume>) -> url::Url {
    let mut url = base.clone();
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{path}/rtc"));
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("protocol", &PROTOCOL_VERSION.to_string());
        q.append_pair("sdk", "rust");
        q.append_pair("version", env!("CARGO_PKG_VERSION"));
        q.append_pair("os", std::env::consts::OS);
        q.append_pair("auto_subscribe", "0");
        q.append_pair("adaptive_stream", "0");
        if let Some(r) = resume {
            q.append_pair("reconnect", "1");
            q.append_pair("sid", &r.participant_sid);
            q.append_pair("reconnect_reason", &r.reason.to_string());
        }
    }
    url
}

type WsStream = tokio_tungstenite::WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open the signalling WebSocket, reporting each step on `steps` as it starts. Errors say
/// what happened ([`ConnectError`]); what that means for the user is the session's call.
/// They never contain the token. This never gives up by itself: the session's connect
/// deadline bounds it (the run loop drops the task).
pub async fn connect(
    base: &url::Url,
    token: &str,
    resume: Option<&Resume>,
    tls_config: Arc<rustls::ClientConfig>,
    steps: mpsc::UnboundedSender<ConnectStep>,
) -> Result<SignalLink, ConnectError> {
    let ws = open(base, token, resume, tls_config, &steps).await?;
    Ok(spawn_link(ws))
}

async fn open(
    base: &url::Url,
    token: &str,
    resume: Option<&Resume>,
    tls_config: Arc<rustls::ClientConfig>,
    steps: &mpsc::UnboundedSender<ConnectStep>,
) -> Result<WsStream, ConnectError> {
    let url = rtc_url(base, resume);
    let host = base.host_str().unwrap_or("?").to_string();
    let port = base.port_or_known_default().unwrap_or(80);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Request(format!("cannot use the server URL: {e}")))?;
    let bearer = format!("Bearer {token}").parse().map_err(|_| {
        ConnectError::Request(
            "the token contains characters that cannot be sent in a header".into(),
        )
    })?;
    request.headers_mut().insert("Authorization", bearer);
    let unreachable = ConnectError::Unreachable;

    let _ = steps.send(ConnectStep::Resolve);
    // An IP literal comes back at once; a name goes through the system resolver.
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| unreachable(format!("cannot resolve the host name ({e})")))?
        .collect();
    let _ = steps.send(ConnectStep::Tcp);
    let mut last_error = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(tcp) = tcp else {
        return Err(unreachable(
            last_error.map_or("no address".to_string(), |e| e.to_string()),
        ));
    };
    let _ = tcp.set_nodelay(true);
    let stream = if base.scheme() == "wss" {
        let _ = steps.send(ConnectStep::Tls);
        MaybeTlsStream::Rustls(tls(&host, tcp, tls_config).await?)
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    let _ = steps.send(ConnectStep::Upgrade);
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _response)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(refused(&response)),
        Err(e) => Err(unreachable(describe_ws_error(&e))),
    }
}

/// The TLS step of wss://.
async fn tls(
    host: &str,
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| ConnectError::Request(format!("{host} is not a valid TLS server name")))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls(e.to_string()))
}

/// The server answered the upgrade with an HTTP error.
fn refused(response: &tungstenite::http::Response<Option<Vec<u8>>>) -> ConnectError {
    let status = response.status();
    let body = response
        .body()
        .as_ref()
        // The server's 401 body echoes the refused token: never pass it on as it is.
        .map(|b| {
            crate::redact::tokens(String::from_utf8_lossy(b).trim())
                .chars()
                .take(200)
                .collect::<String>()
        })
        .unwrap_or_default();
    ConnectError::Http {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        body,
    }
}

/// Two small tasks move the frames of an open WebSocket.
fn spawn_link(ws: WsStream) -> SignalLink {
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
    let (ev_tx, ev_rx) = mpsc::channel::<SignalEvent>(256);

    tokio::spawn(async move {
        while let Some(item) = out_rx.recv().await {
            match item {
                Outgoing::Request(msg) => {
                    let req = proto::SignalRequest { message: Some(msg) };
                    if sink
                        .send(Message::Binary(req.encode_to_vec().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Outgoing::Close => {
                    let _ = sink.close().await;
                    break;
                }
            }
        }
    });

    tokio::spawn(async move {
        let why = loop {
            match stream.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    match proto::SignalResponse::decode(bytes.as_ref()) {
                        Ok(proto::SignalResponse { message: Some(m) }) => {
                            if ev_tx.send(SignalEvent::Message(m)).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("undecodable signal message: {e}"),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    break frame.map_or("closed by the server".to_string(), |f| {
                        format!(
                            "closed by the server ({}{})",
                            f.code,
                            if f.reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", crate::redact::tokens(&f.reason))
                            }
                        )
                    })
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break describe_ws_error(&e),
                None => break "connection closed".to_string(),
            }
        };
        let _ = ev_tx.send(SignalEvent::Closed(why)).await;
    });

    SignalLink {
        tx: out_tx,
        events: ev_rx,
    }
}

fn describe_ws_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => io.to_string(),
        tungstenite::Error::Tls(t) => format!("TLS: {t}"),
        tungstenite::Error::Url(u) => format!("URL: {u}"),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "connection closed".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtc_url_keeps_path_prefix_and_carries_protocol() {
        let base = url::Url::parse("wss://example.test/lk/").unwrap();
        let u = rtc_url(&base, None);
        assert_eq!(u.path(), "/lk/rtc");
        assert!(u.query().unwrap().contains("protocol=17"));
        assert!(u.query().unwrap().contains("auto_subscribe=0"));
        assert!(!u.query().unwrap().contains("reconnect"));
        let r = Resume {
            participant_sid: "PA_x".into(),
            reason: 1,
        };
        let u = rtc_url(&url::Url::parse("ws://h:7880").unwrap(), Some(&r));
        assert_eq!(u.path(), "/rtc");
        assert!(u
            .query()
            .unwrap()
            .contains("reconnect=1&sid=PA_x&reconnect_reason=1"));
    }
}

//! The signalling driver: LiveKit's WebSocket, protobuf frames in and out.
//!
//! [`connect`] opens `/rtc` (protocol 17) with a Bearer token and returns a [`SignalLink`]:
//! a sender of `SignalRequest` messages and a receiver of [`SignalEvent`]s. Two small tasks
//! move the bytes; they make no decisions (the session core does) and never see the token
//! again after the upgrade request.

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};

use crate::error::Error;

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

pub use crate::session::Resume;

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

/// Open the signalling WebSocket. Errors are already classified for the user (auth refusal
/// vs. unreachable server) and never contain the token.
pub async fn connect(
    base: &url::Url,
    token: &str,
    resume: Option<&Resume>,
) -> Result<SignalLink, Error> {
    // rustls needs one process-wide crypto provider for wss://; an error only means one is
    // already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let url = rtc_url(base, resume);
    let host = base.host_str().unwrap_or("?").to_string();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::Usage(format!("cannot use the server URL: {e}")))?;
    let bearer = format!("Bearer {token}").parse().map_err(|_| {
        Error::Usage("the token contains characters that cannot be sent in a header".into())
    })?;
    request.headers_mut().insert("Authorization", bearer);

    let (ws, _response) = match tokio_tungstenite::connect_async(request).await {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().chars().take(200).collect::<String>())
                .unwrap_or_default();
            let body = if body.is_empty() { String::new() } else { format!(": {body}") };
            return Err(match status.as_u16() {
                401 | 403 => Error::Auth(format!(
                    "the server refused the token ({status}{body}); check the token, its expiry and the API key/secret"
                )),
                404 => Error::Connection(format!(
                    "{host} has no LiveKit signalling endpoint ({status}); check --url"
                )),
                _ => Error::Connection(format!("the server at {host} answered {status}{body}")),
            });
        }
        Err(tungstenite::Error::Io(io)) if base.scheme() == "wss" && io.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Error::Connection(format!(
                "cannot connect to {host}: the TLS handshake failed ({io}); check that the server speaks TLS on that port, or use ws://"
            )))
        }
        Err(e) => {
            return Err(Error::Connection(format!(
                "cannot connect to {host}: {}; check --url and that the server is running",
                describe_ws_error(&e)
            )))
        }
    };

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
                                format!(": {}", f.reason)
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

    Ok(SignalLink {
        tx: out_tx,
        events: ev_rx,
    })
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

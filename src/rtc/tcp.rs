//! ICE over TCP (RFC 6544), the active side: connections to the server's passive TCP
//! candidates, each packet framed as RFC 4571 says (a 2-byte big-endian length, then the
//! packet), STUN, DTLS and SRTP alike.
//!
//! Our candidates are `tcptype active` on port 9 (the port of an outgoing connection is not
//! known before it is made): str0m sends from `ip:9`, and every frame read from a connection is
//! handed back as addressed to `ip:9`, so str0m sees one candidate whatever port the kernel
//! picked. A connection is opened on the first packet str0m sends to a remote passive
//! candidate; packets sent meanwhile wait in its queue. A connection that fails or closes is
//! forgotten; str0m's next check opens it again.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::{Arrival, Datagram};
use crate::session::Pc;

/// The port our active candidates carry.
pub(crate) const ACTIVE_PORT: u16 = 9;
/// Longest packet a frame can carry.
const MAX_FRAME: usize = u16::MAX as usize;

/// The connections of one peer connection, by (our candidate, remote candidate).
pub(crate) struct TcpLinks {
    pc: Pc,
    links: HashMap<(SocketAddr, SocketAddr), Link>,
    datagrams: mpsc::Sender<Datagram>,
}

struct Link {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpLinks {
    fn drop(&mut self) {
        for link in self.links.values() {
            link.task.abort();
        }
    }
}

/// `data` as one RFC 4571 frame; `None` when it is too long to frame.
pub(crate) fn frame(data: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(data.len()).ok()?;
    let mut v = Vec::with_capacity(2 + data.len());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(data);
    Some(v)
}

impl TcpLinks {
    pub(crate) fn new(pc: Pc, datagrams: &mpsc::Sender<Datagram>) -> TcpLinks {
        TcpLinks {
            pc,
            links: HashMap::new(),
            datagrams: datagrams.clone(),
        }
    }

    /// Send one packet from our candidate `source` (`ip:9`) to `destination`, opening the
    /// connection if there is none.
    pub(crate) fn send(&mut self, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        // A loopback address reaches only loopback: no connection to try.
        if source.ip().is_loopback() != destination.ip().is_loopback() {
            return;
        }
        let Some(frame) = frame(data) else {
            tracing::debug!("a {}-byte packet cannot be framed for TCP", data.len());
            return;
        };
        let key = (source, destination);
        if let Some(link) = self.links.get(&key) {
            if link.frames.send(frame.clone()).is_ok() {
                return;
            }
            // Its task ended (connection failed or closed): open a new one.
            self.links.remove(&key);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(frame);
        let task = tokio::spawn(run(
            self.pc,
            source,
            destination,
            rx,
            self.datagrams.clone(),
        ));
        self.links.insert(key, Link { frames: tx, task });
    }
}

/// Connect from `source`'s address, write queued frames, read frames back until either side
/// ends.
async fn run(
    pc: Pc,
    source: SocketAddr,
    destination: SocketAddr,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    datagrams: mpsc::Sender<Datagram>,
) {
    let stream = match connect(source, destination).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%destination, "ICE-TCP connection failed: {e}");
            return;
        }
    };
    tracing::debug!(%destination, "ICE-TCP connected");
    let (mut reader, mut writer) = stream.into_split();
    let read = async move {
        let mut len = [0u8; 2];
        loop {
            reader.read_exact(&mut len).await?;
            let n = usize::from(u16::from_be_bytes(len));
            let mut data = vec![0u8; n.min(MAX_FRAME)];
            reader.read_exact(&mut data).await?;
            let d = Datagram {
                pc,
                arrival: Arrival::Tcp {
                    local: source,
                    remote: destination,
                },
                data,
            };
            if datagrams.send(d).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let write = async move {
        while let Some(frame) = frames.recv().await {
            writer.write_all(&frame).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let ended = tokio::select! {
        r = read => r,
        w = write => w,
    };
    if let Err(e) = ended {
        tracing::debug!(%destination, "ICE-TCP connection ended: {e}");
    }
}

async fn connect(source: SocketAddr, destination: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match destination {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // From our candidate's address (any port), so the path is the one ICE chose.
    socket.bind(SocketAddr::new(source.ip(), 0))?;
    let stream = socket.connect(destination).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_big_endian_length() {
        assert_eq!(frame(&[1, 2, 3]).unwrap(), vec![0, 3, 1, 2, 3]);
        assert_eq!(frame(&vec![0u8; 300]).unwrap()[..2], [1, 44]);
        assert!(frame(&vec![0u8; 70_000]).is_none());
    }
}

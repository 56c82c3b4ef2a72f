//! TURN relays: an allocation on each TURN server the LiveKit server handed out (`turn:` over
//! UDP or TCP, `turns:` over TLS), its relayed address offered to str0m as a relay candidate,
//! and the packets of that path wrapped and unwrapped on the way.
//!
//! The TURN protocol itself (allocation with long-term credentials, permissions, refreshes)
//! is `turn-client-proto`, sans-IO like str0m: this module only moves its bytes. Each relay
//! has a task that owns its socket or TLS stream: it connects, reports [`Arrival::RelayUp`],
//! forwards what it reads as [`Arrival::Relay`] and writes what it is given. Over TCP and TLS
//! no channel is bound (the client does not pad ChannelData on streams): data travels in Send
//! and Data indications, which need no padding.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use turn_client_proto::api::{Transmit, TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::client::TurnClient;
use turn_client_proto::prelude::*;
use turn_client_proto::types::{Instant as TurnInstant, TransportType, TurnCredentials};
use turn_client_proto::{tcp::TurnClientTcp, udp::TurnClientUdp};

use super::{Arrival, Datagram};
use crate::session::{Pc, RelayServer, RelayTransport};

/// Something a relay did that the peer connection must know.
pub(crate) enum RelayNews {
    /// The allocation exists: offer this relayed address (reached through `local`).
    Allocated {
        relayed: SocketAddr,
        local: SocketAddr,
    },
    /// A packet a peer sent to our relayed address.
    Packet {
        peer: SocketAddr,
        relayed: SocketAddr,
        data: Vec<u8>,
    },
}

/// The relays of one peer connection.
pub(crate) struct Relays {
    /// The zero of the TURN client's clock.
    base: Instant,
    relays: Vec<Relay>,
}

struct Relay {
    server: RelayServer,
    /// Exists once the task is connected.
    client: Option<TurnClient>,
    /// The addresses of the link to the TURN server, once connected.
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    relayed: Option<SocketAddr>,
    /// Bytes for the task to send to the TURN server.
    out: mpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
    /// Peers we asked a permission for.
    permissions: HashSet<IpAddr>,
}

impl Drop for Relays {
    fn drop(&mut self) {
        for r in &self.relays {
            r.task.abort();
        }
    }
}

impl RelayServer {
    fn transport(&self) -> TransportType {
        match self.transport {
            RelayTransport::Udp => TransportType::Udp,
            RelayTransport::Tcp | RelayTransport::Tls => TransportType::Tcp,
        }
    }
}

impl Relays {
    /// Start an allocation on each server (the connections are made by their tasks).
    pub(crate) fn start(
        pc: Pc,
        now: Instant,
        servers: &[RelayServer],
        tls: &Arc<rustls::ClientConfig>,
        datagrams: &mpsc::Sender<Datagram>,
    ) -> Relays {
        let relays = servers
            .iter()
            .enumerate()
            .map(|(index, server)| {
                let (out, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(run(
                    pc,
                    index,
                    server.clone(),
                    tls.clone(),
                    rx,
                    datagrams.clone(),
                ));
                Relay {
                    server: server.clone(),
                    client: None,
                    local: None,
                    remote: None,
                    relayed: None,
                    out,
                    task,
                    permissions: HashSet::new(),
                }
            })
            .collect();
        Relays { base: now, relays }
    }

    fn t(&self, now: Instant) -> TurnInstant {
        TurnInstant::from_nanos(now.saturating_duration_since(self.base).as_nanos() as i64)
    }

    /// True when `addr` is one of our relayed addresses.
    pub(crate) fn is_relayed(&self, addr: SocketAddr) -> bool {
        self.relays.iter().any(|r| r.relayed == Some(addr))
    }

    /// The relay task connected to its TURN server: the allocation starts.
    pub(crate) fn up(
        &mut self,
        now: Instant,
        relay: usize,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Vec<RelayNews> {
        let Some(r) = self.relays.get_mut(relay) else {
            return Vec::new();
        };
        let mut config = TurnConfig::new(TurnCredentials::new(
            &r.server.username,
            &r.server.credential,
        ));
        config.set_allocation_transport(TransportType::Udp);
        r.client = Some(match r.server.transport {
            RelayTransport::Udp => TurnClientUdp::allocate(local, remote, config).into(),
            RelayTransport::Tcp | RelayTransport::Tls => {
                TurnClientTcp::allocate(local, remote, config).into()
            }
        });
        r.local = Some(local);
        r.remote = Some(remote);
        self.drive(now)
    }

    /// Bytes from relay `relay`'s TURN server.
    pub(crate) fn receive(&mut self, now: Instant, relay: usize, data: Vec<u8>) -> Vec<RelayNews> {
        let t = self.t(now);
        let mut news = Vec::new();
        if let Some(r) = self.relays.get_mut(relay) {
            let transport = r.server.transport();
            if let (Some(client), Some(local), Some(remote)) =
                (r.client.as_mut(), r.local, r.remote)
            {
                let mut packets = Vec::new();
                match client.recv(Transmit::new(&data[..], transport, remote, local), t) {
                    TurnRecvRet::PeerData(pd) => packets.push((pd.peer, pd.data().to_vec())),
                    TurnRecvRet::Handled
                    | TurnRecvRet::Ignored(_)
                    | TurnRecvRet::PeerIcmp { .. } => {}
                }
                while let Some(pd) = client.poll_recv(t) {
                    packets.push((pd.peer, pd.data().to_vec()));
                }
                // Peers can only send once the allocation exists.
                if let Some(relayed) = r.relayed {
                    news.extend(packets.into_iter().map(|(peer, data)| RelayNews::Packet {
                        peer,
                        relayed,
                        data,
                    }));
                }
            }
        }
        news.extend(self.drive(now));
        news
    }

    /// Send `data` from our relayed address `source` to `destination`. A peer without a
    /// permission yet gets one asked for; this packet is dropped (ICE retransmits).
    pub(crate) fn send(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let t = self.t(now);
        let Some(r) = self.relays.iter_mut().find(|r| r.relayed == Some(source)) else {
            return;
        };
        let Some(client) = r.client.as_mut() else {
            return;
        };
        match client.send_to(TransportType::Udp, destination, data, t) {
            Ok(Some(tb)) => {
                let _ = r.out.send(tb.build().data);
            }
            Ok(None) => {}
            Err(turn_client_proto::api::SendError::NoPermission) => {
                if r.permissions.insert(destination.ip()) {
                    if let Err(e) =
                        client.create_permission(TransportType::Udp, destination.ip(), t)
                    {
                        tracing::debug!(%destination, "TURN permission not asked: {e}");
                    }
                }
            }
            Err(e) => tracing::trace!(%destination, "TURN send: {e}"),
        }
        // A permission request goes out at once.
        while let Some(tx) = client.poll_transmit(t) {
            let _ = r.out.send(tx.data.as_ref().to_vec());
        }
    }

    /// Time passes: refreshes, retransmissions. Returns what happened.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<RelayNews> {
        self.drive(now)
    }

    /// When the relays next need [`Relays::handle_timeout`].
    pub(crate) fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        let t = self.t(now);
        let base = self.base;
        self.relays
            .iter_mut()
            .filter_map(|r| match r.client.as_mut()?.poll(t) {
                TurnPollRet::WaitUntil(at) => Some(at.to_std(base)),
                _ => None,
            })
            .min()
    }

    /// Send what the clients want sent; collect their events.
    fn drive(&mut self, now: Instant) -> Vec<RelayNews> {
        let t = self.t(now);
        let mut news = Vec::new();
        for r in &mut self.relays {
            let Some(client) = r.client.as_mut() else {
                continue;
            };
            let _ = client.poll(t);
            while let Some(tx) = client.poll_transmit(t) {
                let _ = r.out.send(tx.data.as_ref().to_vec());
            }
            while let Some(event) = client.poll_event() {
                match event {
                    TurnEvent::AllocationCreated(_, relayed) => {
                        tracing::info!("TURN relay {} allocated {relayed}", r.server.describe());
                        r.relayed = Some(relayed);
                        if let Some(local) = r.local {
                            news.push(RelayNews::Allocated { relayed, local });
                        }
                    }
                    TurnEvent::AllocationCreateFailed(_) => {
                        tracing::warn!("TURN relay {}: the allocation failed", r.server.describe())
                    }
                    other => tracing::trace!(?other, "TURN"),
                }
            }
        }
        news
    }
}

/// The relay's link to its TURN server: connect, report, then move bytes both ways.
async fn run(
    pc: Pc,
    relay: usize,
    server: RelayServer,
    tls: Arc<rustls::ClientConfig>,
    out: mpsc::UnboundedReceiver<Vec<u8>>,
    datagrams: mpsc::Sender<Datagram>,
) {
    let result = match server.transport {
        RelayTransport::Udp => run_udp(pc, relay, &server, out, &datagrams).await,
        RelayTransport::Tcp => {
            match TcpStream::connect((server.host.as_str(), server.port)).await {
                Ok(s) => run_stream(pc, relay, s, out, &datagrams).await,
                Err(e) => Err(e),
            }
        }
        RelayTransport::Tls => match connect_tls(&server, tls).await {
            Ok(s) => run_stream(pc, relay, s, out, &datagrams).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        tracing::warn!("TURN relay {}: {e}", server.describe());
    }
}

async fn connect_tls(
    server: &RelayServer,
    tls: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect((server.host.as_str(), server.port)).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(server.host.clone())
        .map_err(|e| std::io::Error::other(format!("bad TLS name: {e}")))?;
    tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
}

async fn run_udp(
    pc: Pc,
    relay: usize,
    server: &RelayServer,
    mut out: mpsc::UnboundedReceiver<Vec<u8>>,
    datagrams: &mpsc::Sender<Datagram>,
) -> std::io::Result<()> {
    let remote = tokio::net::lookup_host((server.host.as_str(), server.port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the host name has no address"))?;
    let any: SocketAddr = match remote {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(remote).await?;
    let local = socket.local_addr()?;
    up(pc, relay, local, remote, datagrams).await?;
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            r = socket.recv(&mut buf) => {
                let n = r?;
                deliver(pc, relay, buf[..n].to_vec(), datagrams).await?;
            }
            data = out.recv() => match data {
                Some(data) => { let _ = socket.send(&data).await; }
                None => return Ok(()),
            },
        }
    }
}

async fn run_stream<S: AsyncRead + AsyncWrite + Unpin + StreamEnds>(
    pc: Pc,
    relay: usize,
    stream: S,
    mut out: mpsc::UnboundedReceiver<Vec<u8>>,
    datagrams: &mpsc::Sender<Datagram>,
) -> std::io::Result<()> {
    let (local, remote) = stream.addresses()?;
    up(pc, relay, local, remote, datagrams).await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = reader.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Err(std::io::Error::other("the TURN server closed the connection"));
                }
                deliver(pc, relay, buf[..n].to_vec(), datagrams).await?;
            }
            data = out.recv() => match data {
                Some(data) => writer.write_all(&data).await?,
                None => return Ok(()),
            },
        }
    }
}

/// The two ends of a stream to a TURN server.
trait StreamEnds {
    fn addresses(&self) -> std::io::Result<(SocketAddr, SocketAddr)>;
}

impl StreamEnds for TcpStream {
    fn addresses(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.local_addr()?, self.peer_addr()?))
    }
}

impl StreamEnds for tokio_rustls::client::TlsStream<TcpStream> {
    fn addresses(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        self.get_ref().0.addresses()
    }
}

async fn up(
    pc: Pc,
    relay: usize,
    local: SocketAddr,
    remote: SocketAddr,
    datagrams: &mpsc::Sender<Datagram>,
) -> std::io::Result<()> {
    let d = Datagram {
        pc,
        arrival: Arrival::RelayUp {
            relay,
            local,
            remote,
        },
        data: Vec::new(),
    };
    datagrams
        .send(d)
        .await
        .map_err(|_| std::io::Error::other("the peer connection is gone"))
}

async fn deliver(
    pc: Pc,
    relay: usize,
    data: Vec<u8>,
    datagrams: &mpsc::Sender<Datagram>,
) -> std::io::Result<()> {
    let d = Datagram {
        pc,
        arrival: Arrival::Relay { relay },
        data,
    };
    datagrams
        .send(d)
        .await
        .map_err(|_| std::io::Error::other("the peer connection is gone"))
}

//! UDP for a peer connection: one socket per local IPv4 address (loopback included), each
//! offered as a host candidate, a task per socket that hands received datagrams to the run
//! loop, and non-blocking sends (a full socket buffer drops the datagram, as a network would).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Arrival, Datagram};
use crate::error::RtcError;
use crate::session::Pc;

/// The sockets of one peer connection; their receive tasks end when this is dropped.
pub(crate) struct UdpSockets {
    sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    recv_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for UdpSockets {
    fn drop(&mut self) {
        for t in &self.recv_tasks {
            t.abort();
        }
    }
}

impl UdpSockets {
    /// Bind one socket per local IPv4 address; received datagrams go to `datagrams`.
    /// Must be called inside the tokio runtime.
    pub(crate) fn bind(pc: Pc, datagrams: &mpsc::Sender<Datagram>) -> Result<UdpSockets, RtcError> {
        let mut sockets = Vec::new();
        let mut recv_tasks = Vec::new();
        let mut last_error = None;
        for ip in local_addresses() {
            let socket = match bind_one(ip) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::debug!(%ip, "cannot bind a UDP socket: {e}");
                    last_error = Some(e);
                    continue;
                }
            };
            let Ok(local) = socket.local_addr() else {
                continue;
            };
            recv_tasks.push(tokio::spawn(receive(
                pc,
                local,
                socket.clone(),
                datagrams.clone(),
            )));
            sockets.push((local, socket));
        }
        if sockets.is_empty() {
            return Err(RtcError::NoSockets(last_error.map_or_else(
                || "no local address to send media from".to_string(),
                |e| e.to_string(),
            )));
        }
        Ok(UdpSockets {
            sockets,
            recv_tasks,
        })
    }

    /// The local addresses, to offer as host candidates.
    pub(crate) fn addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.sockets.iter().map(|(a, _)| *a)
    }

    /// Send without waiting; a full buffer drops the datagram.
    pub(crate) fn send(&mut self, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        if let Some((_, s)) = self.sockets.iter().find(|(a, _)| *a == source) {
            let _ = s.try_send_to(data, destination);
        }
    }
}

fn bind_one(ip: IpAddr) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

async fn receive(
    pc: Pc,
    local: SocketAddr,
    socket: Arc<UdpSocket>,
    datagrams: mpsc::Sender<Datagram>,
) {
    let mut buf = vec![0u8; 2000];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                let d = Datagram {
                    pc,
                    arrival: Arrival::Udp { local, source },
                    data: buf[..n].to_vec(),
                };
                if datagrams.send(d).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // ICMP errors (e.g. port unreachable) surface here on Linux; keep going.
                tracing::trace!(%local, "recv: {e}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// The local IPv4 addresses we offer as host candidates.
fn local_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .filter(|ip| match ip {
                    IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_unspecified(),
                    IpAddr::V6(_) => false,
                })
                .collect()
        })
        .unwrap_or_default();
    if !ips.iter().any(|ip| ip.is_loopback()) {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips.sort();
    ips.dedup();
    ips
}

//! UDP for a peer connection: one socket per local IPv4 address (loopback included), each
//! offered as a host candidate, a task per socket that hands received datagrams to the run
//! loop, and non-blocking sends (a full socket buffer drops the datagram, as a network would).
//!
//! Sends are batched: the peer queues what one drain of str0m lets out and flushes it with
//! one `sendmmsg` per socket (at most [`BATCH`] datagrams a call). Each datagram stays its
//! own packet on the wire, sent when it would have been, so the pacer's spacing is kept
//! (unlike UDP GSO, whose one large send kept the congestion controller low in the lab).

use std::net::{IpAddr, SocketAddr};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Arrival, Datagram};
use crate::error::RtcError;
use crate::session::Pc;

/// The most datagrams queued on a socket before they are sent, and so the most one system
/// call sends. A drain of str0m's pacer lets out up to about 50.
pub(crate) const BATCH: usize = 32;

/// The sockets of one peer connection; their receive tasks end when this is dropped.
pub(crate) struct UdpSockets {
    sockets: Vec<Local>,
    recv_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One bound socket and the datagrams queued on it: (destination, bytes).
struct Local {
    addr: SocketAddr,
    socket: Arc<UdpSocket>,
    queued: Vec<(SocketAddr, Vec<u8>)>,
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
            sockets.push(Local {
                addr: local,
                socket,
                queued: Vec::with_capacity(BATCH),
            });
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
        self.sockets.iter().map(|s| s.addr)
    }

    /// Queue a datagram for the next [`UdpSockets::flush`]; how many are queued on its
    /// socket now (the caller flushes at [`BATCH`]). A source we have no socket for drops it.
    pub(crate) fn queue(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        data: Vec<u8>,
    ) -> usize {
        match self.sockets.iter_mut().find(|s| s.addr == source) {
            Some(s) => {
                s.queued.push((destination, data));
                s.queued.len()
            }
            None => 0,
        }
    }

    /// Send everything queued, without waiting: a full socket buffer drops the rest of a
    /// socket's batch, and a datagram the kernel refuses outright (an invalid destination)
    /// drops only that one.
    pub(crate) fn flush(&mut self) {
        for s in &mut self.sockets {
            if !s.queued.is_empty() {
                s.flush();
            }
        }
    }
}

impl Local {
    fn flush(&mut self) {
        let mut rest = &self.queued[..];
        while !rest.is_empty() {
            match send_batch(&self.socket, rest) {
                Ok(0) => break,
                Ok(sent) => rest = &rest[sent..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::trace!(local = %self.addr, to = %rest[0].0, "send: {e}");
                    rest = &rest[1..];
                }
            }
        }
        self.queued.clear();
    }
}

/// One `sendmmsg`: how many of `batch`'s datagrams went out, from the first on (at most
/// [`BATCH`]). An error means the first did not; the kernel reports a later datagram's error
/// on the next call, which starts with it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_batch(socket: &UdpSocket, batch: &[(SocketAddr, Vec<u8>)]) -> std::io::Result<usize> {
    let batch = &batch[..batch.len().min(BATCH)];
    let names: Vec<socket2::SockAddr> = batch.iter().map(|(a, _)| (*a).into()).collect();
    let mut iovs: Vec<libc::iovec> = batch
        .iter()
        .map(|(_, d)| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = names
        .iter()
        .zip(iovs.iter_mut())
        .map(|(name, iov)| {
            // SAFETY: msghdr is plain data (pointers and integers, some private padding
            // fields on some libcs), for which all zeroes is a valid value.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = name.as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = name.len();
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            }
        })
        .collect();
    let fd = socket.as_raw_fd();
    // tokio's readiness: a WouldBlock clears it, as `try_send_to` does.
    socket.try_io(Interest::WRITABLE, || {
        // SAFETY: every header points at a name and an iovec in `names` and `iovs`, and each
        // iovec at a datagram in `batch`, all alive and unmoved until this returns; the
        // kernel only reads them and writes each header's `msg_len`.
        let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as libc::c_uint, 0) };
        if sent < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    })
}

/// Elsewhere, one datagram a call.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_batch(socket: &UdpSocket, batch: &[(SocketAddr, Vec<u8>)]) -> std::io::Result<usize> {
    let (destination, data) = &batch[0];
    socket.try_send_to(data, *destination).map(|_| 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches go out whole and in order, past one system call's worth, and a datagram the
    /// kernel refuses (port 0) costs only itself.
    #[tokio::test]
    async fn a_flush_sends_every_queued_datagram_in_order_and_drops_only_a_refused_one() {
        let (tx, _rx) = mpsc::channel(8);
        let mut udp = UdpSockets::bind(Pc::Publisher, &tx).unwrap();
        let source = udp.addresses().find(|a| a.ip().is_loopback()).unwrap();
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = sink.local_addr().unwrap();
        let refused: SocketAddr = "127.0.0.1:0".parse().unwrap();
        // tokio learns that a new socket is writable when its driver first runs; until then
        // a send finds it not ready, as in a peer's first instants.
        tokio::time::sleep(Duration::from_millis(20)).await;

        let total = 2 * BATCH + 5;
        let mut queued = 0;
        for i in 0..total {
            if i == BATCH + 1 {
                udp.queue(source, refused, vec![0xee]);
            }
            queued = udp.queue(source, to, (i as u32).to_be_bytes().to_vec());
        }
        assert_eq!(queued, total + 1, "nothing goes out before the flush");
        let unknown: SocketAddr = "127.0.0.2:9".parse().unwrap();
        assert_eq!(
            udp.queue(unknown, to, vec![1]),
            0,
            "no socket of ours there"
        );
        udp.flush();

        let mut buf = [0u8; 16];
        for i in 0..total {
            let n = sink.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], (i as u32).to_be_bytes(), "datagram {i}");
        }
        sink.set_nonblocking(true).unwrap();
        assert!(sink.recv(&mut buf).is_err(), "nothing more");
        assert_eq!(
            udp.queue(source, to, vec![2]),
            1,
            "the flush emptied the queue"
        );
    }
}

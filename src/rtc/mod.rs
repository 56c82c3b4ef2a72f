//! The RTC driver: one str0m [`Rtc`] per peer connection, its transports and its clock.
//!
//! A [`Peer`] applies what the session decided (offers, answers, candidates, routed frames,
//! which paths to gather), moves str0m's packets over the path each one belongs to, and
//! reports what str0m saw as [`PeerEvent`]s. One small module per transport: [`udp`] (host
//! sockets), [`tcp`] (ICE over TCP, RFC 4571 framing), [`turn`] (relays over UDP, TCP or
//! TLS); [`in_flight`] follows each frame to its last packet on the socket (the statistics'
//! latency, and whether a stream may burst, see [`burst`]). It decides nothing: which paths to try, which payload type a frame uses, how the
//! offer is ordered and what a failure means are the session's. After every mutation it
//! drains str0m (its single-mutation rule), keeping the events for [`Peer::events`].
//!
//! One drain is one wake-up's worth of sending: str0m's pacer lets one packet out per
//! `Input::Timeout` and asks for the next one a microsecond later, so the drain goes on
//! feeding it the time for as long as something is due (see [`Peer::drain`]).

mod burst;
mod in_flight;
#[cfg(test)]
mod memcall;
mod negotiation;
mod resend;
mod tcp;
mod turn;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpPendingOffer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Frequency, MediaTime, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc;

use in_flight::{FramesInFlight, RtpHeader};
use tcp::TcpLinks;
use turn::{RelayNews, Relays};
use udp::UdpSockets;

use crate::error::RtcError;
use crate::session::{IcePolicy, Pc, Route};

/// Something received for a peer connection.
pub struct Datagram {
    pub pc: Pc,
    pub arrival: Arrival,
    pub data: Vec<u8>,
}

/// Where a [`Datagram`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// On a host UDP socket.
    Udp {
        local: SocketAddr,
        source: SocketAddr,
    },
    /// One de-framed packet on an ICE-TCP connection from our candidate `local` (`ip:9`).
    Tcp {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A relay's link to its TURN server is up (no data).
    RelayUp {
        relay: usize,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// Bytes from a relay's TURN server.
    Relay { relay: usize },
}

/// The path media currently takes, for logs and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Udp,
    Tcp,
    Relay,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Path::Udp => "udp",
            Path::Tcp => "tcp",
            Path::Relay => "relay",
        })
    }
}

/// What a peer reports to the run loop.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerEvent {
    Connected,
    /// ICE lost connectivity (may come back).
    Disconnected,
    /// The DTLS/SCTP association closed or the peer failed for good.
    Closed,
    KeyframeRequest(Mid, Option<String>),
    /// The bandwidth estimate of the connection (bit/s), a 3 s average.
    Estimate(u64),
    /// The estimator's latest value (bit/s), what the pacer sends at.
    Capacity(u64),
    /// A local candidate found after the SDP was made (SDP text), to trickle.
    LocalCandidate(String),
    /// Media now takes this path (and to this remote address).
    Path(Path, SocketAddr),
    /// Cumulative egress counters for one sending mid.
    Egress(Mid, Egress),
    /// A frame's last packet went to the socket, this long after the pipeline handed the
    /// frame over (str0m's pacer may have spread its packets).
    FrameOut(Duration),
}

/// What became of a frame given to [`Peer::send_frame`].
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// How long after the pipeline handed it over it was written.
    pub written: Duration,
    /// It went to the socket at once, not through the pacer.
    pub burst: bool,
}

/// Cumulative counters str0m reports for one sending mid.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Egress {
    pub bytes: u64,
    pub packets: u64,
    pub firs: u64,
    pub plis: u64,
    pub nacks: u64,
    pub rtt: Option<Duration>,
    pub loss: Option<f32>,
}

/// Video's RTP clock rate. A video frame's last packet has the marker bit; Opus (48 kHz) sends
/// a frame a packet.
const VIDEO_CLOCK_RATE: u32 = 90_000;
/// How often str0m reports its statistics: its counters per stream, and its estimator's
/// latest value, which is what its pacer sends at. That value decides whether a keyframe may
/// burst (see `session::burst::BURST_TIME`); the estimate str0m reports as an event is a
/// 3 s average of it, which lags a probe that found room by seconds (measured on loopback:
/// 8.5 Mbit/s reported while the probes had found 19 Mbit/s, so the next keyframe was paced
/// and the viewer's jitter buffer kept 35 ms of delay for the rest of the run).
const STATS_INTERVAL: Duration = Duration::from_millis(200);
/// The most `Input::Timeout`s one drain feeds str0m before it returns to the run loop (which
/// comes back at once, see [`Peer::poll_timeout`]): str0m's pacer sends at most ~63 kB per
/// burst, about 50 packets, and a frame sent at once (see [`burst`]) is a packet a round, so
/// this lets a frame of up to 2.4 MB (a 4K keyframe) out in one drain and otherwise only
/// bounds a drain that would not end.
const MAX_DUE_ROUNDS: usize = 2048;

/// One peer connection.
pub struct Peer {
    pc: Pc,
    rtc: Rtc,
    /// When the peer was made: the "already due" deadline [`Peer::poll_timeout`] gives.
    created: Instant,
    udp: Option<UdpSockets>,
    tcp: TcpLinks,
    relays: Relays,
    /// The path of the last packet str0m sent that was not a connectivity check.
    path: Option<(Path, SocketAddr)>,
    /// Our offer awaiting its answer, and the send streams it adds.
    pending_offer: Option<(SdpPendingOffer, Vec<resend::NewStream>)>,
    /// The resend cache's size in packets (audio, video), as str0m's configuration has it.
    rtx_cache: (usize, usize),
    next_timeout: Instant,
    connected: bool,
    /// The media sections we send on.
    send_mids: Vec<Mid>,
    /// Events drained from str0m, not yet handed out.
    events: Vec<PeerEvent>,
    /// For the start-up logs: SSRCs whose first RTP packet went out, and whether a packet
    /// with the marker bit (the end of their first frame) went out too.
    rtp_seen: Vec<(u32, bool)>,
    /// Frames written and not wholly sent (for the latency figure).
    in_flight: FramesInFlight,
    /// When each frame whose last packet is queued, not yet sent, was handed over.
    unsent_frames: Vec<Instant>,
    /// The SSRC of each (mid, rid) written to, looked up once per negotiation.
    ssrcs: Vec<(Mid, Option<Rid>, u32)>,
}

/// Makes one DTLS certificate on a thread of its own, once per process, so that the crypto
/// library's one-time set-up is not paid on the run loop when the publisher connection is
/// made right after the join. That set-up is aws-lc's CPU-jitter entropy source: 29 ms of CPU
/// for the first certificate, 54 µs for the next (measured). The front-end calls it first
/// thing, while GStreamer starts; the engine calls it again, which does nothing then.
pub fn warm_up() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("rtc-warm-up".into())
            .spawn(|| {
                let made = str0m::crypto::from_feature_flags()
                    .dtls_provider
                    .generate_certificate();
                tracing::debug!(made = made.is_some(), "crypto warmed up");
            });
        if let Err(e) = spawned {
            tracing::debug!("no warm-up thread: {e}");
        }
    });
}

fn rtc_config() -> RtcConfig {
    // Only what we publish: Opus, VP8, VP9 profile 0, AV1, and H.264 in the four profiles
    // browsers decode, packetization-mode 1. The session orders each offer's sections.
    let mut config = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_av1(true);
    {
        let codecs = config.codec_config();
        codecs.add_h264(102.into(), Some(103.into()), true, 0x42e01f);
        codecs.add_h264(104.into(), Some(105.into()), true, 0x42001f);
        codecs.add_h264(106.into(), Some(107.into()), true, 0x4d001f);
        codecs.add_h264(108.into(), Some(109.into()), true, 0x64001f);
        codecs.add_config(
            98.into(),
            Some(99.into()),
            RtcCodec::Vp9,
            Frequency::NINETY_KHZ,
            None,
            str0m::format::FormatParams {
                profile_id: Some(0),
                ..Default::default()
            },
        );
    }
    config.set_stats_interval(Some(STATS_INTERVAL))
}

impl Peer {
    /// Create the `Rtc` and gather the paths `policy` asks for: host UDP sockets and ICE-TCP
    /// candidates, and an allocation on each relay. Received packets go to `datagrams`.
    /// Must be called inside the tokio runtime.
    pub fn new(
        pc: Pc,
        now: Instant,
        policy: &IcePolicy,
        tls: &Arc<rustls::ClientConfig>,
        datagrams: &mpsc::Sender<Datagram>,
    ) -> Result<Peer, RtcError> {
        tracing::debug!(?pc, "creating the peer connection");
        let mut config = rtc_config();
        if pc == Pc::Publisher {
            // Congestion control on transport-wide feedback; its pacer spreads each frame.
            config = config.enable_bwe(Some(Bitrate::bps(crate::session::START_ESTIMATE)));
        }
        let rtx_cache = (config.send_buffer_audio(), config.send_buffer_video());
        let mut rtc = config.build(now);
        tracing::debug!(?pc, "str0m Rtc built (DTLS certificate made)");
        let udp = if policy.host {
            let udp = UdpSockets::bind(pc, datagrams)?;
            for local in udp.addresses() {
                for candidate in [
                    Candidate::host(local, "udp"),
                    // ICE over TCP: an active candidate on port 9 per address.
                    Candidate::builder()
                        .tcp()
                        .host(SocketAddr::new(local.ip(), tcp::ACTIVE_PORT))
                        .tcptype(TcpType::Active)
                        .build(),
                ] {
                    match candidate {
                        Ok(c) => {
                            rtc.add_local_candidate(c);
                        }
                        Err(e) => tracing::debug!(%local, "not a usable candidate: {e}"),
                    }
                }
            }
            tracing::debug!(?pc, "host UDP sockets bound");
            Some(udp)
        } else {
            None
        };
        if !policy.host && policy.relays.is_empty() {
            return Err(RtcError::NoSockets(
                "relay only, and no TURN server to relay through".into(),
            ));
        }
        Ok(Peer {
            pc,
            rtc,
            created: now,
            udp,
            tcp: TcpLinks::new(pc, datagrams),
            relays: Relays::start(pc, now, &policy.relays, tls, datagrams),
            path: None,
            pending_offer: None,
            rtx_cache,
            next_timeout: now,
            connected: false,
            send_mids: Vec::new(),
            events: Vec::new(),
            rtp_seen: Vec::new(),
            in_flight: FramesInFlight::default(),
            unsent_frames: Vec::new(),
            ssrcs: Vec::new(),
        })
    }

    /// When str0m or a relay next needs [`Peer::handle_timeout`]. Something already due
    /// gives an instant long past (the peer's creation): tokio rounds a timer's deadline up
    /// to its next millisecond tick unless the tick has already gone, so "due 1 µs ago" would
    /// wait up to a millisecond.
    pub fn poll_timeout(&mut self, now: Instant) -> Instant {
        let t = match self.relays.poll_timeout(now) {
            Some(t) => t.min(self.next_timeout),
            None => self.next_timeout,
        };
        if t <= now {
            self.created.min(t)
        } else {
            t
        }
    }

    /// The events gathered since the last call.
    pub fn events(&mut self) -> std::vec::Drain<'_, PeerEvent> {
        self.events.drain(..)
    }

    /// Write one encoded frame as the session routed it (handed over by the pipeline at
    /// `handed`); says how long after `handed` it was written, and whether it burst. The
    /// frame is packetized and sent at the peer's next timeout, which is due at once
    /// ([`Peer::poll_timeout`]): frames that arrive together (the branches of one pipeline,
    /// audio beside video) are all written first and then sent by one drain, each in its place
    /// in the pacer's queues, instead of each waiting for the packets of the ones before it to
    /// be sent. A frame the session marked as a burst is sent at once, unless earlier frames
    /// of its stream still wait in the pacer.
    pub fn send_frame(&mut self, route: &Route, data: Arc<[u8]>, handed: Instant) -> Sent {
        let Some(freq) = Frequency::new(route.clock_rate) else {
            return Sent {
                written: handed.elapsed(),
                burst: false,
            };
        };
        let rid = route.rid.map(Rid::from);
        // Looked up before the write: str0m wants a full drain after each mutation, and the
        // write's packets must find the frame in flight.
        let ssrc = self.ssrc_of(route.mid, rid);
        // A burst sends everything the stream has queued: not when earlier frames wait in the
        // pacer (frames kept for a first viewer, a keyframe too large to burst), which would
        // go with it, far more than the session allowed (measured: a file's 858 kB of kept
        // frames sent at once, and its first viewer's picture 1 s later).
        let burst = route.burst && !ssrc.is_some_and(|s| self.in_flight.waiting(s));
        let Some(mut writer) = self.rtc.writer(route.mid) else {
            return Sent {
                written: handed.elapsed(),
                burst: false,
            };
        };
        if let Some(rid) = rid {
            writer = writer.rid(rid);
        }
        let time = MediaTime::new(route.rtp_time, freq);
        let result = writer.write(Pt::from(route.pt), route.wallclock, time, data);
        let written = handed.elapsed();
        match (result, ssrc) {
            (Ok(()), Some(ssrc)) => {
                let per_packet = route.clock_rate != VIDEO_CLOCK_RATE;
                self.in_flight.written(ssrc, per_packet, handed);
            }
            (Ok(()), None) => {}
            (Err(e), _) => tracing::debug!(mid = %route.mid, "write failed: {e}"),
        }
        if burst {
            self.burst(route.mid, rid);
        } else {
            self.drain_rounds(0);
        }
        Sent { written, burst }
    }

    /// Send what `mid` (`rid`) has queued, the frame just written included, at once (see
    /// [`burst`]).
    fn burst(&mut self, mid: Mid, rid: Option<Rid>) {
        burst::set_unpaced(&mut self.rtc, mid, rid, true);
        self.drain();
        burst::set_unpaced(&mut self.rtc, mid, rid, false);
    }

    /// The SSRC str0m sends `mid` (and `rid`) with, once it has negotiated one.
    fn ssrc_of(&mut self, mid: Mid, rid: Option<Rid>) -> Option<u32> {
        if let Some((_, _, ssrc)) = self.ssrcs.iter().find(|(m, r, _)| *m == mid && *r == rid) {
            return Some(*ssrc);
        }
        // A lookup through str0m's `&mut` API; it changes nothing.
        let ssrc = self
            .rtc
            .direct_api()
            .stream_tx_by_mid(mid, rid)
            .map(|s| *s.ssrc())?;
        self.ssrcs.push((mid, rid, ssrc));
        Some(ssrc)
    }

    /// The bandwidth estimator's bounds (bit/s).
    pub fn set_bandwidth_limits(&mut self, min: u64, desired: u64) {
        tracing::debug!(min, desired, "bandwidth estimator bounds");
        self.rtc
            .bwe()
            .set_bitrate(Bitrate::bps(min), Bitrate::bps(desired));
        self.drain();
    }

    /// Feed what a transport received.
    pub fn receive(&mut self, now: Instant, d: Datagram) {
        match d.arrival {
            Arrival::Udp { local, source } => self.feed(now, Protocol::Udp, source, local, &d.data),
            Arrival::Tcp { local, remote } => self.feed(now, Protocol::Tcp, remote, local, &d.data),
            Arrival::RelayUp {
                relay,
                local,
                remote,
            } => {
                let news = self.relays.up(now, relay, local, remote);
                self.on_relay_news(now, news);
            }
            Arrival::Relay { relay } => {
                let news = self.relays.receive(now, relay, d.data);
                self.on_relay_news(now, news);
            }
        }
    }

    fn feed(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            return;
        };
        let input = Input::Receive(now, receive);
        if self.rtc.accepts(&input) {
            if let Err(e) = self.rtc.handle_input(input) {
                tracing::debug!(pc = ?self.pc, "input: {e}");
            }
            self.drain();
        }
    }

    fn on_relay_news(&mut self, now: Instant, news: Vec<RelayNews>) {
        for n in news {
            match n {
                RelayNews::Allocated { relayed, local } => {
                    match Candidate::relayed(relayed, local, "udp") {
                        Ok(c) => {
                            if let Some(added) = self.rtc.add_local_candidate(c) {
                                self.events
                                    .push(PeerEvent::LocalCandidate(added.to_sdp_string()));
                            }
                            self.kick(now);
                        }
                        Err(e) => tracing::debug!(%relayed, "not a usable relay candidate: {e}"),
                    }
                }
                RelayNews::Packet {
                    peer,
                    relayed,
                    data,
                } => self.feed(now, Protocol::Udp, peer, relayed, &data),
            }
        }
    }

    /// Advance time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_timeout <= now {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(pc = ?self.pc, "timeout: {e}");
            }
            self.drain();
        }
        let news = self.relays.handle_timeout(now);
        self.on_relay_news(now, news);
    }

    /// After SDP changes: str0m's ICE agent needs one timeout to start checking.
    fn kick(&mut self, now: Instant) {
        self.drain();
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(pc = ?self.pc, "timeout: {e}");
        }
        self.drain();
    }

    /// Drain str0m's output: keep events, remember the next timeout, and send what is due
    /// now. str0m's pacer releases one packet per `Input::Timeout` and asks for the next one
    /// a microsecond later (packetizing a written frame is also "due now"), so while its
    /// timeout has come the drain feeds it the time again, instead of a trip through the run
    /// loop and its millisecond timer per packet (which capped a peer at about 1,000
    /// packets a second and spread each frame over milliseconds). The UDP datagrams of one
    /// drain go out together at its end, one system call per socket and batch.
    fn drain(&mut self) {
        self.drain_rounds(MAX_DUE_ROUNDS);
    }

    /// [`Peer::drain`], feeding str0m the time at most `max_rounds` times (0: only take what
    /// it has ready, which still completes the drain str0m wants after a mutation).
    fn drain_rounds(&mut self, max_rounds: usize) {
        let mut rounds = 0;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    let now = Instant::now();
                    if t > now || rounds == max_rounds {
                        break;
                    }
                    rounds += 1;
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(pc = ?self.pc, "timeout: {e}");
                        break;
                    }
                }
                Ok(Output::Transmit(t)) => self.transmit(t),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    tracing::warn!(pc = ?self.pc, "peer connection failed: {e}");
                    self.next_timeout = Instant::now() + Duration::from_secs(3600);
                    self.events.push(PeerEvent::Closed);
                    break;
                }
            }
        }
        self.flush();
    }

    /// Send one packet over the path it belongs to. UDP datagrams are queued and go out at
    /// the end of the drain ([`Peer::flush`]), or once a batch is full.
    fn transmit(&mut self, t: str0m::net::Transmit) {
        let rtp = RtpHeader::read(&t.contents);
        // Media and DTLS (not STUN: checks go out on every pair) tell the path in use.
        let stun = t.contents.first().is_some_and(|b| *b < 2);
        let mut queued = 0;
        let path = if t.proto == Protocol::Tcp {
            self.tcp.send(t.source, t.destination, &t.contents);
            Path::Tcp
        } else if self.relays.is_relayed(t.source) {
            self.relays
                .send(Instant::now(), t.source, t.destination, &t.contents);
            Path::Relay
        } else {
            if let Some(udp) = self.udp.as_mut() {
                queued = udp.queue(t.source, t.destination, t.contents.into());
            }
            Path::Udp
        };
        if let Some(rtp) = rtp {
            if let Some(handed) = self.in_flight.sent(rtp) {
                if queued > 0 {
                    self.unsent_frames.push(handed);
                } else {
                    self.events.push(PeerEvent::FrameOut(handed.elapsed()));
                }
            }
            if tracing::enabled!(tracing::Level::DEBUG) {
                self.log_first_rtp(rtp);
            }
        }
        if self.connected && !stun && self.path != Some((path, t.destination)) {
            self.path = Some((path, t.destination));
            self.events.push(PeerEvent::Path(path, t.destination));
        }
        if queued >= udp::BATCH {
            self.flush();
        }
    }

    /// Send the queued UDP datagrams; the frames whose last packet was among them are out.
    fn flush(&mut self) {
        if let Some(udp) = self.udp.as_mut() {
            udp.flush();
        }
        for handed in self.unsent_frames.drain(..) {
            self.events.push(PeerEvent::FrameOut(handed.elapsed()));
        }
    }

    /// Debug log of each SSRC's first RTP packet on the wire, and of its first packet with
    /// the marker bit (for video: the last packet of the first frame, a keyframe); at trace
    /// level every packet with the marker bit (the end of each frame) too.
    fn log_first_rtp(&mut self, rtp: RtpHeader) {
        let RtpHeader {
            ssrc, pt, marker, ..
        } = rtp;
        if marker {
            tracing::trace!(pc = ?self.pc, ssrc, pt, "RTP packet with the marker bit sent");
        }
        match self.rtp_seen.iter_mut().find(|(s, _)| *s == ssrc) {
            None => {
                tracing::debug!(pc = ?self.pc, ssrc, pt, marker, "first RTP packet sent");
                self.rtp_seen.push((ssrc, marker));
            }
            Some((_, done)) if marker && !*done => {
                *done = true;
                tracing::debug!(pc = ?self.pc, ssrc, pt, "first RTP packet with the marker bit sent");
            }
            _ => {}
        }
    }

    fn on_event(&mut self, e: Event) {
        let event = match e {
            Event::Connected => {
                tracing::debug!(pc = ?self.pc, "DTLS connected");
                self.connected = true;
                PeerEvent::Connected
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                PeerEvent::Disconnected
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if self.connected => PeerEvent::Connected, // connectivity came back
            Event::IceConnectionStateChange(s) => {
                tracing::debug!(pc = ?self.pc, "ICE {s:?}");
                return;
            }
            Event::KeyframeRequest(k) => {
                PeerEvent::KeyframeRequest(k.mid, k.rid.map(|r| r.to_string()))
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                PeerEvent::Estimate(estimate.as_u64())
            }
            Event::PeerStats(s) => match s.bwe_tx {
                Some(bps) => PeerEvent::Capacity(bps.as_u64()),
                None => return,
            },
            Event::MediaEgressStats(s) => PeerEvent::Egress(
                s.mid,
                Egress {
                    bytes: s.bytes,
                    packets: s.packets,
                    firs: s.firs,
                    plis: s.plis,
                    nacks: s.nacks,
                    rtt: s.rtt,
                    loss: s.loss,
                },
            ),
            Event::ChannelOpen(_, label) => {
                tracing::debug!(pc = ?self.pc, "data channel {label} open");
                return;
            }
            _ => return,
        };
        self.events.push(event);
    }
}

//! The RTC driver: one str0m [`Rtc`] per peer connection, its UDP sockets and its clock.
//!
//! A [`Peer`] binds one UDP socket per local IPv4 address (loopback included) and offers each
//! as a host candidate; no STUN or TURN server is needed. It turns str0m's outputs into
//! datagrams and [`PeerEvent`]s, and applies what the session core decided (offers, answers,
//! candidates, frames). It makes no decisions of its own.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, Reliability};
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, Frequency, MediaKind as RtcKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::media::{Codec, MediaKind};
use crate::session::{NewMedia, OfferChanges, Pc};

/// A datagram received on one of a peer's sockets.
pub struct Datagram {
    pub pc: Pc,
    pub local: SocketAddr,
    pub source: SocketAddr,
    pub data: Vec<u8>,
}

/// What a peer reports to the main loop.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerEvent {
    Connected,
    /// ICE lost connectivity (may come back).
    Disconnected,
    /// The DTLS/SCTP association closed or the peer failed for good.
    Closed,
    KeyframeRequest(String),
    /// Cumulative egress counters for one sending mid.
    Egress(String, crate::stats::Egress),
}

/// One peer connection.
pub struct Peer {
    pc: Pc,
    rtc: Rtc,
    sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    pending_offer: Option<SdpPendingOffer>,
    /// Codec (and H.264 profile) per publisher mid, for picking the payload type.
    media: HashMap<Mid, (Codec, Option<String>)>,
    pt_cache: HashMap<Mid, Pt>,
    next_timeout: Instant,
    connected: bool,
    recv_tasks: Vec<tokio::task::JoinHandle<()>>,
    loss: Option<LossInjector>,
    /// Events produced while draining after our own mutations, not yet handed out.
    pending: Vec<PeerEvent>,
}

/// Test hook: drop this fraction of outgoing media datagrams (RTP/RTCP, never ICE or DTLS), to
/// exercise NACK/RTX on loopback. Set with `GST_PUBLISHER_TEST_OUTGOING_LOSS=0.05`; logged at
/// start, off by default.
struct LossInjector {
    fraction: f64,
    rng: rand::rngs::StdRng,
}

impl LossInjector {
    fn from_env(pc: Pc) -> Option<LossInjector> {
        use rand::SeedableRng;
        let fraction: f64 = std::env::var("GST_PUBLISHER_TEST_OUTGOING_LOSS")
            .ok()?
            .parse()
            .ok()?;
        if !(0.0..1.0).contains(&fraction) || fraction == 0.0 || pc != Pc::Publisher {
            return None;
        }
        tracing::warn!(
            "test hook: dropping {:.1}% of outgoing media packets",
            fraction * 100.0
        );
        Some(LossInjector {
            fraction,
            rng: rand::rngs::StdRng::seed_from_u64(0x5eed),
        })
    }

    fn drop_it(&mut self, datagram: &[u8]) -> bool {
        use rand::Rng;
        // RTP and RTCP start with version 2 (first byte 128..=191); STUN starts with 0 or 1,
        // DTLS with 20..=63.
        let media = datagram.first().is_some_and(|b| (128..=191).contains(b));
        media && self.rng.random::<f64>() < self.fraction
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for t in &self.recv_tasks {
            t.abort();
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

fn rtc_config() -> RtcConfig {
    // Only what we publish: Opus, VP8, VP9 profile 0, AV1, and H.264 in the four profiles
    // browsers decode, packetization-mode 1. Each m-line is then narrowed to its own codec
    // (see `narrow_offer`).
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
    config.set_stats_interval(Some(Duration::from_secs(1)))
}

impl Peer {
    /// Bind the sockets and create the `Rtc`. Received datagrams go to `datagrams`.
    pub async fn new(
        pc: Pc,
        now: Instant,
        datagrams: mpsc::Sender<Datagram>,
    ) -> std::io::Result<Peer> {
        let mut rtc = rtc_config().build(now);
        let mut sockets = Vec::new();
        let mut recv_tasks = Vec::new();
        for ip in local_addresses() {
            let socket = match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::debug!(%ip, "cannot bind a UDP socket: {e}");
                    continue;
                }
            };
            let local = socket.local_addr()?;
            match Candidate::host(local, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => {
                    tracing::debug!(%local, "not a usable candidate: {e}");
                    continue;
                }
            }
            let tx = datagrams.clone();
            let s = socket.clone();
            recv_tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 2000];
                loop {
                    match s.recv_from(&mut buf).await {
                        Ok((n, source)) => {
                            let d = Datagram {
                                pc,
                                local,
                                source,
                                data: buf[..n].to_vec(),
                            };
                            if tx.send(d).await.is_err() {
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
            }));
            sockets.push((local, socket));
        }
        if sockets.is_empty() {
            return Err(std::io::Error::other("no local address to send media from"));
        }
        Ok(Peer {
            pc,
            rtc,
            sockets,
            pending_offer: None,
            media: HashMap::new(),
            pt_cache: HashMap::new(),
            next_timeout: now,
            connected: false,
            recv_tasks,
            loss: LossInjector::from_env(pc),
            pending: Vec::new(),
        })
    }

    pub fn next_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// Create an offer with `changes`; returns the SDP and the mid given to each new cid.
    pub fn create_offer(
        &mut self,
        now: Instant,
        changes: &OfferChanges,
    ) -> Result<(String, Vec<(String, String)>), String> {
        let mut api = self.rtc.sdp_api();
        if changes.data_channels {
            api.add_channel_with_config(ChannelConfig {
                label: "_reliable".into(),
                ordered: true,
                reliability: Reliability::Reliable,
                ..Default::default()
            });
            api.add_channel_with_config(ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            });
        }
        let mut mids = Vec::new();
        let mut narrow = Vec::new();
        for m in &changes.add {
            let kind = match m.kind {
                MediaKind::Audio => RtcKind::Audio,
                MediaKind::Video => RtcKind::Video,
            };
            let mid = api.add_media(
                kind,
                Direction::SendOnly,
                Some(m.stream_id.clone()),
                Some(m.cid.clone()),
                None,
            );
            self.media
                .insert(mid, (m.codec, m.h264_profile_level_id.clone()));
            mids.push((m.cid.clone(), mid.to_string()));
            narrow.push((mid.to_string(), m.clone()));
        }
        for mid in &changes.remove {
            let mid = Mid::from(mid.as_str());
            // The sender is gone: the m-line stays (recycling is optional) but carries no media.
            api.set_direction(mid, Direction::Inactive);
            self.media.remove(&mid);
            self.pt_cache.remove(&mid);
        }
        let Some((offer, pending)) = api.apply() else {
            return Err("nothing to negotiate".into());
        };
        self.pending_offer = Some(pending);
        let sdp = prefer_codecs(&offer.to_sdp_string(), &narrow);
        self.kick(now);
        Ok((sdp, mids))
    }

    /// Apply the answer to our pending offer.
    pub fn accept_answer(&mut self, now: Instant, sdp: &str) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("bad answer: {e}"))?;
        let pending = self
            .pending_offer
            .take()
            .ok_or("an answer without a pending offer")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())?;
        self.pt_cache.clear();
        self.kick(now);
        Ok(())
    }

    /// Answer a remote offer (the subscriber connection).
    pub fn accept_offer(&mut self, now: Instant, sdp: &str) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| format!("bad offer: {e}"))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?;
        self.kick(now);
        Ok(answer.to_sdp_string())
    }

    /// Add a remote candidate from a trickle message's JSON `candidateInit`.
    pub fn add_remote_candidate(&mut self, now: Instant, json: &str) {
        let Some(text) = candidate_from_json(json) else {
            tracing::debug!("ignoring an unreadable trickle candidate");
            return;
        };
        if text.is_empty() {
            return; // end-of-candidates
        }
        match Candidate::from_sdp_string(&text) {
            Ok(c) => {
                self.rtc.add_remote_candidate(c);
                self.kick(now);
            }
            Err(e) => tracing::debug!("ignoring candidate {text:?}: {e}"),
        }
    }

    /// Write one encoded frame on `mid`.
    pub fn write(&mut self, mid: &str, wallclock: Instant, rtp_ticks: u64, data: Arc<[u8]>) {
        let mid = Mid::from(mid);
        let Some(pt) = self.pt_for(mid) else {
            tracing::debug!(%mid, "no payload type negotiated yet; frame dropped");
            return;
        };
        let Some((codec, _)) = self.media.get(&mid) else {
            return;
        };
        let freq = if *codec == Codec::Opus {
            Frequency::FORTY_EIGHT_KHZ
        } else {
            Frequency::NINETY_KHZ
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        if let Err(e) = writer.write(pt, wallclock, MediaTime::new(rtp_ticks, freq), data) {
            tracing::debug!(%mid, "write failed: {e}");
        }
        self.drain();
    }

    fn pt_for(&mut self, mid: Mid) -> Option<Pt> {
        if let Some(pt) = self.pt_cache.get(&mid) {
            return Some(*pt);
        }
        let (codec, profile) = self.media.get(&mid)?.clone();
        let writer = self.rtc.writer(mid)?;
        let want = match codec {
            Codec::H264 => RtcCodec::H264,
            Codec::Vp8 => RtcCodec::Vp8,
            Codec::Vp9 => RtcCodec::Vp9,
            Codec::Av1 => RtcCodec::Av1,
            Codec::Opus => RtcCodec::Opus,
        };
        let want_profile = profile.as_deref().and_then(h264_profile_prefix);
        let candidates: Vec<_> = writer
            .payload_params()
            .filter(|p| p.spec().codec == want)
            .collect();
        let best = candidates
            .iter()
            .find(|p| {
                codec != Codec::H264
                    || (p.spec().format.packetization_mode == Some(1)
                        && want_profile.is_none_or(|w| {
                            p.spec().format.profile_level_id.map(|id| id >> 8) == Some(w)
                        }))
            })
            .or_else(|| {
                candidates
                    .iter()
                    .find(|p| codec != Codec::H264 || p.spec().format.packetization_mode == Some(1))
            })
            .or(candidates.first())?;
        let pt = best.pt();
        self.pt_cache.insert(mid, pt);
        Some(pt)
    }

    /// Feed a received datagram.
    pub fn handle_datagram(&mut self, now: Instant, d: &Datagram) {
        let Ok(contents) = d.data.as_slice().try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: d.source,
                destination: d.local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            if let Err(e) = self.rtc.handle_input(input) {
                tracing::debug!(pc = ?self.pc, "input: {e}");
            }
        }
    }

    /// Advance time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(pc = ?self.pc, "timeout: {e}");
        }
    }

    /// After SDP changes: str0m's ICE agent needs one timeout to start checking.
    fn kick(&mut self, now: Instant) {
        self.drain();
        self.handle_timeout(now);
        // Every mutation is followed by a full drain (str0m's single-mutation invariant).
        self.drain();
    }

    /// Drain str0m's output after one of our own mutations; its events wait in `pending`
    /// for the next [`Peer::drain_into_tagged`], so none is lost.
    fn drain(&mut self) {
        let mut events = std::mem::take(&mut self.pending);
        self.drain_into(&mut events);
        self.pending = events;
    }

    /// Drain, tagging each event with this peer's role.
    pub fn drain_into_tagged(&mut self, pc: Pc, events: &mut Vec<(Pc, PeerEvent)>) {
        let mut own = Vec::new();
        self.drain_into(&mut own);
        events.extend(own.into_iter().map(|e| (pc, e)));
    }

    /// Drain str0m's output: send datagrams, collect events (with any still pending),
    /// remember the next timeout.
    pub fn drain_into(&mut self, events: &mut Vec<PeerEvent>) {
        events.append(&mut self.pending);
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if self.loss.as_mut().is_some_and(|l| l.drop_it(&t.contents)) {
                        continue;
                    }
                    if let Some((_, s)) = self.sockets.iter().find(|(a, _)| *a == t.source) {
                        // Non-blocking: a full socket buffer drops the datagram, as a network would.
                        let _ = s.try_send_to(&t.contents, t.destination);
                    }
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        events.push(PeerEvent::Connected);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        events.push(PeerEvent::Disconnected);
                    }
                    Event::IceConnectionStateChange(
                        IceConnectionState::Connected | IceConnectionState::Completed,
                    ) if self.connected => {
                        // Connectivity came back after a loss.
                        events.push(PeerEvent::Connected);
                    }
                    Event::IceConnectionStateChange(s) => {
                        tracing::debug!(pc = ?self.pc, "ICE {s:?}")
                    }
                    Event::KeyframeRequest(k) => {
                        events.push(PeerEvent::KeyframeRequest(k.mid.to_string()))
                    }
                    Event::MediaEgressStats(s) => events.push(PeerEvent::Egress(
                        s.mid.to_string(),
                        crate::stats::Egress {
                            bytes: s.bytes,
                            packets: s.packets,
                            firs: s.firs,
                            plis: s.plis,
                            nacks: s.nacks,
                            rtt: s.rtt,
                            loss: s.loss,
                        },
                    )),
                    Event::ChannelOpen(_, label) => {
                        tracing::debug!(pc = ?self.pc, "data channel {label} open")
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::warn!(pc = ?self.pc, "peer connection failed: {e}");
                    self.next_timeout = Instant::now() + Duration::from_secs(3600);
                    events.push(PeerEvent::Closed);
                    return;
                }
            }
        }
    }
}

/// `candidateInit` JSON → the `candidate:` SDP text (lenient: missing fields are fine).
pub fn candidate_from_json(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let c = v.get("candidate")?.as_str()?;
    Some(c.trim().trim_start_matches("a=").to_string())
}

/// First four hex digits of an H.264 profile-level-id (profile_idc + constraint flags).
fn h264_profile_prefix(id: &str) -> Option<u32> {
    (id.len() == 6)
        .then(|| u32::from_str_radix(&id[..4], 16).ok())
        .flatten()
}

/// Put each new m-line's own codec first in the offer.
///
/// str0m offers every configured codec on every m-line. LiveKit's server (pion) computes the
/// codecs it answers with across the whole session, so removing the other codecs from an
/// m-line does not help: with an H.264 and a VP8 track in one offer it answered the VP8 m-line
/// with H.264 only. Ordering works: the server puts the track's codec (from
/// AddTrackRequest.simulcast_codecs) first in its answer and forwards what we send. For
/// H.264 the payload type with the stream's profile goes first and its fmtp carries the
/// stream's real profile-level-id.
pub fn prefer_codecs(sdp: &str, media: &[(String, NewMedia)]) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut sections: Vec<Vec<String>> = vec![Vec::new()];
    for l in sdp.split(eol) {
        if l.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(last) = sections.last_mut() {
            last.push(l.to_string());
        }
    }
    for section in sections.iter_mut().skip(1) {
        let Some(mid) = section
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(str::to_string)
        else {
            continue;
        };
        let Some((_, m)) = media.iter().find(|(id, _)| *id == mid) else {
            continue;
        };
        prefer_in_section(section, m);
    }
    sections.concat().join(eol)
}

fn prefer_in_section(section: &mut [String], m: &NewMedia) {
    // pt → codec name, pt → fmtp
    let mut names: Vec<(String, String)> = Vec::new();
    let mut fmtp: HashMap<String, String> = HashMap::new();
    for l in section.iter() {
        if let Some(rest) = l.strip_prefix("a=rtpmap:") {
            if let Some((pt, enc)) = rest.split_once(' ') {
                names.push((
                    pt.to_string(),
                    enc.split('/').next().unwrap_or("").to_ascii_uppercase(),
                ));
            }
        } else if let Some(rest) = l.strip_prefix("a=fmtp:") {
            if let Some((pt, params)) = rest.split_once(' ') {
                fmtp.insert(pt.to_string(), params.to_string());
            }
        }
    }
    let want = match m.codec {
        Codec::H264 => "H264",
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        Codec::Av1 => "AV1",
        Codec::Opus => "OPUS",
    };
    let profile = m
        .h264_profile_level_id
        .as_deref()
        .and_then(h264_profile_prefix);
    let fmtp_profile = |pt: &str| -> Option<u32> {
        let f = fmtp.get(pt)?;
        let v = f
            .split(';')
            .find_map(|kv| kv.trim().strip_prefix("profile-level-id="))?;
        u32::from_str_radix(v, 16).ok().map(|x| x >> 8)
    };
    let primaries: Vec<&String> = names
        .iter()
        .filter(|(_, n)| n == want)
        .map(|(pt, _)| pt)
        .collect();
    let Some(primary) = primaries
        .iter()
        .find(|pt| m.codec != Codec::H264 || profile.is_none() || fmtp_profile(pt) == profile)
        .or(primaries.first())
        .map(|pt| (*pt).clone())
    else {
        return;
    };
    let mut first = vec![primary.clone()];
    for (pt, n) in &names {
        if n == "RTX"
            && fmtp
                .get(pt)
                .is_some_and(|f| f.split(';').any(|kv| kv.trim() == format!("apt={primary}")))
        {
            first.push(pt.clone());
        }
    }
    for l in section.iter_mut() {
        if let Some(rest) = l.strip_prefix("m=") {
            let parts: Vec<&str> = rest.split(' ').collect();
            if parts.len() > 3 {
                let mut fmts: Vec<&str> = first.iter().map(String::as_str).collect();
                fmts.extend(
                    parts[3..]
                        .iter()
                        .copied()
                        .filter(|p| !first.iter().any(|k| k == p)),
                );
                *l = format!("m={} {}", parts[..3].join(" "), fmts.join(" "));
            }
        } else if let (Codec::H264, Some(real), Some(rest)) = (
            m.codec,
            m.h264_profile_level_id.as_deref(),
            l.strip_prefix(&format!("a=fmtp:{primary} ")),
        ) {
            let params: Vec<String> = rest
                .split(';')
                .map(|kv| {
                    if kv.trim().starts_with("profile-level-id=") {
                        format!("profile-level-id={real}")
                    } else {
                        kv.to_string()
                    }
                })
                .collect();
            *l = format!("a=fmtp:{primary} {}", params.join(";"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::OutputId;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 108 109\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=rtcp-fb:102 nack pli\r\na=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\na=rtpmap:108 H264/90000\r\na=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\na=rtpmap:109 rtx/90000\r\na=fmtp:109 apt=108\r\n";

    fn media(codec: Codec, plid: Option<&str>) -> NewMedia {
        NewMedia {
            output: OutputId(0),
            kind: MediaKind::Video,
            codec,
            cid: "TR_1".into(),
            stream_id: "ST_1".into(),
            h264_profile_level_id: plid.map(str::to_string),
        }
    }

    #[test]
    fn h264_with_the_stream_profile_goes_first_with_its_real_level() {
        let out = prefer_codecs(OFFER, &[("1".into(), media(Codec::H264, Some("640028")))]);
        assert!(
            out.contains("m=video 9 UDP/TLS/RTP/SAVPF 108 109 96 97 102 103\r\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640028"
            ),
            "{out}"
        );
        assert!(
            out.contains("profile-level-id=42e01f"),
            "other payload types keep theirs: {out}"
        );
    }

    #[test]
    fn vp8_goes_first_and_other_sections_are_left_alone() {
        let out = prefer_codecs(OFFER, &[("1".into(), media(Codec::Vp8, None))]);
        assert!(out.contains("SAVPF 96 97 102 103 108 109\r\n"), "{out}");
        let untouched = prefer_codecs(OFFER, &[("2".into(), media(Codec::Vp8, None))]);
        assert_eq!(untouched, OFFER);
    }

    #[test]
    fn trickle_json_is_read_leniently() {
        let j = r#"{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host","sdpMid":"","sdpMLineIndex":0}"#;
        assert_eq!(
            candidate_from_json(j).unwrap(),
            "candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host"
        );
        assert!(candidate_from_json("not json").is_none());
    }
}

//! Negotiation on a [`Peer`]: our offer and the server's answer (publisher), the server's
//! offer and our answer (subscriber), and trickled remote candidates. The SDP is str0m's;
//! which codecs go first and how they are ordered is the session's ([`OfferChanges`]).

use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::{ChannelConfig, Reliability};
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, MediaKind as RtcKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, TcpType};
use str0m::Candidate;

use super::{resend, Peer};
use crate::error::RtcError;
use crate::media::{Codec, MediaKind, TrackCid};
use crate::session::{OfferChanges, Payload};

impl Peer {
    /// Create an offer with `changes`; returns the SDP and the mid given to each new cid.
    pub fn create_offer(
        &mut self,
        now: Instant,
        changes: &OfferChanges,
    ) -> Result<(String, Vec<(TrackCid, Mid)>), RtcError> {
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
        let mut new_streams = Vec::new();
        for m in &changes.add {
            let kind = match m.kind {
                MediaKind::Audio => RtcKind::Audio,
                MediaKind::Video => RtcKind::Video,
            };
            // Simulcast: a send layer per rid, lowest first (`a=rid` and `a=simulcast`).
            let simulcast = (!m.rids.is_empty()).then(|| {
                let mut s = Simulcast::new();
                for rid in &m.rids {
                    s.add_send_layer(SimulcastLayer::new(rid));
                }
                s
            });
            let mid = api.add_media(
                kind,
                Direction::SendOnly,
                Some(m.stream_id.clone()),
                Some(m.cid.to_string()),
                simulcast,
            );
            mids.push((m.cid.clone(), mid));
            self.send_mids.push(mid);
            if m.rids.is_empty() {
                new_streams.push((mid, None, m.kind));
            }
            for rid in &m.rids {
                new_streams.push((mid, Some(Rid::from(*rid)), m.kind));
            }
        }
        for mid in &changes.remove {
            self.send_mids.retain(|m| m != mid);
            // The sender is gone: the m-line stays (recycling is optional) but carries no media.
            api.set_direction(*mid, Direction::Inactive);
        }
        let Some((offer, pending)) = api.apply() else {
            return Err(RtcError::NothingToNegotiate);
        };
        self.pending_offer = Some((pending, new_streams));
        self.kick(now);
        Ok((offer.to_sdp_string(), mids))
    }

    /// Apply the answer to our pending offer; returns the payload types negotiated for each
    /// sending mid.
    pub fn accept_answer(
        &mut self,
        now: Instant,
        sdp: &str,
    ) -> Result<Vec<(Mid, Vec<Payload>)>, RtcError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| RtcError::BadRemoteSdp(e.to_string()))?;
        let (pending, new_streams) = self.pending_offer.take().ok_or(RtcError::NoPendingOffer)?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| RtcError::Rejected(e.to_string()))?;
        // The streams the answer made, before their first packet.
        resend::configure(&mut self.rtc, new_streams, self.rtx_cache);
        self.ssrcs.clear();
        self.kick(now);
        Ok(self.negotiated())
    }

    /// Every sending mid's payload types, as our own codecs.
    fn negotiated(&mut self) -> Vec<(Mid, Vec<Payload>)> {
        let mids = self.send_mids.clone();
        mids.into_iter()
            .filter_map(|mid| {
                let writer = self.rtc.writer(mid)?;
                let payloads = writer
                    .payload_params()
                    .map(|p| Payload {
                        pt: *p.pt(),
                        codec: match p.spec().codec {
                            RtcCodec::H264 => Some(Codec::H264),
                            RtcCodec::Vp8 => Some(Codec::Vp8),
                            RtcCodec::Vp9 => Some(Codec::Vp9),
                            RtcCodec::Av1 => Some(Codec::Av1),
                            RtcCodec::Opus => Some(Codec::Opus),
                            _ => None,
                        },
                        packetization_mode: p.spec().format.packetization_mode,
                        profile_level_id: p.spec().format.profile_level_id,
                    })
                    .collect();
                Some((mid, payloads))
            })
            .collect()
    }

    /// Answer a remote offer (the subscriber connection).
    pub fn accept_offer(&mut self, now: Instant, sdp: &str) -> Result<String, RtcError> {
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| RtcError::BadRemoteSdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| RtcError::Rejected(e.to_string()))?;
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
            // We are the active side of ICE over TCP: only passive candidates can be dialled.
            Ok(c) if c.proto() == Protocol::Tcp && c.tcptype() != Some(TcpType::Passive) => {
                tracing::debug!("ignoring a TCP candidate that is not passive: {text}");
            }
            Ok(c) => {
                self.rtc.add_remote_candidate(c);
                self.kick(now);
            }
            Err(e) => tracing::debug!("ignoring candidate {text:?}: {e}"),
        }
    }
}

/// `candidateInit` JSON → the `candidate:` SDP text (lenient: missing fields are fine).
pub fn candidate_from_json(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let c = v.get("candidate")?.as_str()?;
    Some(c.trim().trim_start_matches("a=").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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

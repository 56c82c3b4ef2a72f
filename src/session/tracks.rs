//! The nouns of publishing: each output's [`Track`] and its [`TrackState`], the
//! [`Negotiation`] in flight, and the [`AddTrackRequest`](add_track_request) that announces
//! a track. Plain data with small helpers; the decisions that move them are in
//! [`publications`](super::publications).

use std::collections::BTreeMap;
use std::time::Instant;

use livekit_protocol as proto;

use super::held::{FirstViewer, ParameterSets};
use super::Mid;
use crate::media::{Codec, MediaKind, Output, OutputId, Source, TrackCid, TrackSid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrackState {
    /// Output known, not yet announced (not joined yet, or publishing is delayed).
    Found,
    /// AddTrackRequest sent; waiting for TrackPublishedResponse.
    Requested { cid: TrackCid },
    /// Published by the server; its media section waits for the next offer.
    Published { cid: TrackCid, sid: TrackSid },
    /// Its media section is in the offer in flight.
    Negotiating {
        cid: TrackCid,
        sid: TrackSid,
        mid: Mid,
    },
    /// Negotiated: frames flow once the publisher PC is connected.
    Live {
        cid: TrackCid,
        sid: TrackSid,
        mid: Mid,
    },
    /// The output ended (or the server refused it); its media section, if any, is removed.
    Ended,
}

#[derive(Debug)]
pub(crate) struct Track {
    pub(crate) output: Output,
    pub(crate) state: TrackState,
    /// Video: drop frames until a keyframe after going live.
    pub(crate) awaiting_keyframe: bool,
    /// Simulcast: the layers, lowest first (the track's own output is the highest); empty
    /// for a single-layer track.
    pub(crate) layers: Vec<super::simulcast::Layer>,
    /// The track went live (announced, first keyframe asked for).
    pub(crate) announced_live: bool,
    /// The negotiated payload type frames go out with.
    pub(crate) pt: Option<u8>,
    /// Its pipeline is being restarted: the track waits for its output to come back.
    pub(crate) restarting: bool,
    /// A stream that cannot make keyframes keeps frames for its first viewer (see `held`).
    pub(crate) first_viewer: FirstViewer,
    /// Which placeholders for kept frames carry parameter sets, on this publication.
    pub(crate) parameter_sets: ParameterSets,
}

impl Track {
    pub(crate) fn new(output: Output) -> Track {
        Track {
            output,
            state: TrackState::Found,
            awaiting_keyframe: false,
            layers: Vec::new(),
            announced_live: false,
            pt: None,
            restarting: false,
            first_viewer: FirstViewer::default(),
            parameter_sets: ParameterSets::default(),
        }
    }

    /// Does this track keep frames for its first viewer: one H.264 stream that cannot make a
    /// keyframe when asked (see `held` for why H.264 only)?
    pub(crate) fn keeps_for_first_viewer(&self) -> bool {
        self.output.codec == Codec::H264
            && !self.output.format.keyframes_on_request
            && self.layers.is_empty()
    }
}

#[derive(Debug)]
pub(crate) struct Negotiation {
    /// Id of the offer in flight.
    pub(crate) in_flight: Option<u32>,
    /// Waiting for the driver to create the offer.
    pub(crate) creating: bool,
    /// Something changed while an offer was in flight: offer again after the answer.
    pub(crate) again: bool,
    pub(crate) next_id: u32,
    pub(crate) data_channels_created: bool,
    /// Media sections to remove in the next offer.
    pub(crate) remove: Vec<Mid>,
}

impl Default for Negotiation {
    fn default() -> Self {
        Negotiation {
            in_flight: None,
            creating: false,
            again: false,
            next_id: 1,
            data_channels_created: false,
            remove: Vec::new(),
        }
    }
}

/// Every output's track and the negotiation that carries them.
#[derive(Debug)]
pub(crate) struct Publications {
    pub(crate) tracks: BTreeMap<OutputId, Track>,
    pub(crate) neg: Negotiation,
    /// True once the pipeline had at least one output (so "all ended" means something).
    pub(crate) had_outputs: bool,
    /// When each video output's encoder was last asked for a keyframe.
    pub(crate) keyframe_asked: BTreeMap<OutputId, Instant>,
    cid_counter: u64,
    cid_prefix: String,
}

impl Publications {
    pub(crate) fn new(cid_seed: u64) -> Publications {
        Publications {
            tracks: BTreeMap::new(),
            neg: Negotiation::default(),
            had_outputs: false,
            keyframe_asked: BTreeMap::new(),
            cid_counter: 0,
            cid_prefix: format!("{cid_seed:012X}"),
        }
    }

    pub(crate) fn output_for_mid(&self, mid: Mid) -> Option<OutputId> {
        self.tracks.iter().find_map(|(id, t)| match &t.state {
            TrackState::Live { mid: m, .. } | TrackState::Negotiating { mid: m, .. }
                if *m == mid =>
            {
                Some(*id)
            }
            _ => None,
        })
    }

    pub(crate) fn element_of(&self, id: OutputId) -> String {
        self.tracks
            .get(&id)
            .map_or_else(|| id.to_string(), |t| t.output.element.clone())
    }

    pub(crate) fn element_of_cid(&self, cid: &str) -> String {
        self.tracks
            .values()
            .find(|t| matches!(&t.state, TrackState::Requested { cid: c } if c.as_str() == cid))
            .map_or_else(|| cid.to_string(), |t| t.output.element.clone())
    }

    /// A new connection: every track is announced again, with a fresh cid.
    pub(crate) fn start_over(&mut self) {
        for track in self.tracks.values_mut() {
            if track.state != TrackState::Ended {
                track.state = TrackState::Found;
            }
            track.awaiting_keyframe = false;
            track.layers.clear();
            track.announced_live = false;
            track.pt = None;
            track.parameter_sets = ParameterSets::default();
            // Viewers subscribe again; what is kept stays for them.
            track.first_viewer = match std::mem::take(&mut track.first_viewer) {
                FirstViewer::Awaited(k) | FirstViewer::Asked(k) => FirstViewer::Awaited(k),
                FirstViewer::Served => FirstViewer::default(),
            };
        }
        self.neg = Negotiation::default();
    }

    /// Only signalling was lost (a resume follows): the offer in flight lost its answer and
    /// is made again (str0m forgets a pending offer when the next one is made); a request
    /// in flight may have lost its confirmation and is made again.
    pub(crate) fn signalling_lost(&mut self) {
        self.neg.in_flight = None;
        self.neg.creating = false;
        for track in self.tracks.values_mut() {
            match &track.state {
                TrackState::Negotiating { cid, sid, .. } => {
                    track.state = TrackState::Published {
                        cid: cid.clone(),
                        sid: sid.clone(),
                    }
                }
                TrackState::Requested { .. } => track.state = TrackState::Found,
                _ => {}
            }
        }
    }

    /// The answer to the offer in flight arrived: its media sections are live.
    pub(crate) fn answered(&mut self) {
        for track in self.tracks.values_mut() {
            if let TrackState::Negotiating { cid, sid, mid } = &track.state {
                track.state = TrackState::Live {
                    cid: cid.clone(),
                    sid: sid.clone(),
                    mid: *mid,
                };
            }
        }
    }

    pub(crate) fn next_cid(&mut self) -> TrackCid {
        self.cid_counter += 1;
        TrackCid::new(format!("TR_{}{:04}", self.cid_prefix, self.cid_counter))
    }
}

/// The AddTrackRequest that announces `out` as `cid`, named and sourced by its settings.
pub(crate) fn add_track_request(
    out: &Output,
    cid: &TrackCid,
    layers: &[(&Output, &str)],
) -> proto::AddTrackRequest {
    let name = out
        .settings
        .name
        .clone()
        .unwrap_or_else(|| out.element.clone());
    let source = out
        .settings
        .source
        .unwrap_or(Source::default_for(out.kind()));
    let mut req = proto::AddTrackRequest {
        cid: cid.to_string(),
        name,
        disable_red: true,
        // Tell the server the codec: without it the server guesses from the SDP and, with two
        // video tracks in one offer, can answer one m-line with the other's codec.
        simulcast_codecs: vec![proto::SimulcastCodec {
            codec: out.codec.mime().to_string(),
            cid: cid.to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    match out.kind() {
        MediaKind::Video => {
            req.r#type = proto::TrackType::Video as i32;
            req.width = out.format.width.unwrap_or(0);
            req.height = out.format.height.unwrap_or(0);
            req.layers = if layers.is_empty() {
                vec![proto::VideoLayer {
                    quality: proto::VideoQuality::High as i32,
                    width: req.width,
                    height: req.height,
                    ..Default::default()
                }]
            } else {
                // Simulcast: one per layer, lowest first; the server takes each rid from
                // the offer by quality.
                layers
                    .iter()
                    .map(|(o, rid)| proto::VideoLayer {
                        quality: super::simulcast::quality(rid) as i32,
                        width: o.format.width.unwrap_or(0),
                        height: o.format.height.unwrap_or(0),
                        bitrate: o.format.encoder_bitrate.unwrap_or(0) as u32,
                        ..Default::default()
                    })
                    .collect()
            };
        }
        MediaKind::Audio => {
            req.r#type = proto::TrackType::Audio as i32;
            if out.format.channels.unwrap_or(1) >= 2 {
                req.audio_features
                    .push(proto::AudioTrackFeature::TfStereo as i32);
            }
            // Unless the encoder really uses DTX, say so: the server would otherwise announce
            // usedtx=1 to subscribers.
            if out.format.opus_dtx != Some(true) {
                req.audio_features
                    .push(proto::AudioTrackFeature::TfNoDtx as i32);
                #[allow(deprecated)]
                {
                    req.disable_dtx = true;
                }
            }
        }
    }
    req.source = match source {
        Source::Camera => proto::TrackSource::Camera,
        Source::Microphone => proto::TrackSource::Microphone,
        Source::ScreenShare => proto::TrackSource::ScreenShare,
        Source::ScreenShareAudio => proto::TrackSource::ScreenShareAudio,
    } as i32;
    req
}

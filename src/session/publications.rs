//! Outputs becoming tracks: announcing them (AddTrackRequest), the one-offer-at-a-time
//! negotiation of their media sections, going live on a keyframe, keyframe requests, size
//! changes, and the end of a track when its output ends.
//!
//! Each output's track moves Found → Requested → Published → Negotiating → Live, or to
//! Ended; a lost connection sends every track back to Found (fresh cids on the new
//! connection), a resume only the ones whose request or offer was in flight.

use livekit_protocol as proto;
use proto::signal_request::Message as Req;

use super::connection::Phase;
use super::frames::{rtp_time, Route};
use super::held::{FirstViewer, SEND_KEPT_AFTER};
use super::timers::Timer;
use super::tracks::{add_track_request, Track, TrackState};
use super::{
    Action, Mid, NewMedia, OfferChanges, Session, KEYFRAME_INTERVAL, KEYFRAME_RETRY,
    TRACK_PUBLISHED_TIMEOUT,
};
use crate::error::Error;
use crate::media::{MediaKind, Output, OutputId, PipelineEvent, TrackCid, TrackSid};

impl Session {
    /// Announce every output not announced yet (unless publishing is still delayed).
    pub(super) fn announce_tracks(&mut self) {
        if self.phase != Phase::Joined || self.timers.is_set(Timer::Publish) {
            return;
        }
        let found: Vec<OutputId> = self
            .pubs
            .tracks
            .iter()
            .filter(|(_, t)| t.state == TrackState::Found)
            .map(|(id, _)| *id)
            .collect();
        for id in found {
            let output = self.pubs.tracks[&id].output.clone();
            // A simulcast track waits for every layer's output.
            if self.group_incomplete(&output) {
                continue;
            }
            let layers = match self.group_outputs(&output) {
                Some(outputs) => match self.make_layers(&outputs) {
                    Some(layers) => layers,
                    None => return,
                },
                None => Vec::new(),
            };
            let layer_outputs: Vec<(Output, &str)> = layers
                .iter()
                .map(|l| (self.output_of(l.output).unwrap_or(&output).clone(), l.rid))
                .collect();
            let layer_refs: Vec<(&Output, &str)> =
                layer_outputs.iter().map(|(o, r)| (o, *r)).collect();
            let cid = self.pubs.next_cid();
            let req = add_track_request(&output, &cid, &layer_refs);
            for l in &layers {
                self.simulcast.layer_of.insert(l.output, id);
            }
            let track = self
                .pubs
                .tracks
                .get_mut(&id)
                .expect("id comes from the map");
            track.layers = layers;
            track.state = TrackState::Requested { cid };
            self.timers
                .set(Timer::TrackConfirm(id), self.now + TRACK_PUBLISHED_TIMEOUT);
            tracing::debug!("{}: AddTrackRequest sent", output.element);
            self.send(Req::AddTrack(req));
        }
    }

    pub(super) fn on_track_published(&mut self, p: proto::TrackPublishedResponse) {
        tracing::debug!(
            "{}: TrackPublishedResponse",
            self.pubs.element_of_cid(&p.cid)
        );
        let Some((id, track)) = self.pubs.tracks.iter_mut().find(
            |(_, t)| matches!(&t.state, TrackState::Requested { cid } if cid.as_str() == p.cid),
        ) else {
            return;
        };
        let sid = TrackSid::new(p.track.map(|t| t.sid).unwrap_or_default());
        track.state = TrackState::Published {
            cid: TrackCid::new(p.cid),
            sid,
        };
        self.timers.stop(Timer::TrackConfirm(*id));
        self.negotiate();
    }

    /// Ask the driver for an offer with everything that changed, unless one is in flight.
    pub(super) fn negotiate(&mut self) {
        if self.phase != Phase::Joined {
            return;
        }
        let neg = &mut self.pubs.neg;
        if neg.in_flight.is_some() || neg.creating {
            neg.again = true;
            return;
        }
        let add: Vec<NewMedia> = self
            .pubs
            .tracks
            .iter()
            .filter_map(|(id, t)| match &t.state {
                TrackState::Published { cid, .. } => Some(NewMedia {
                    output: *id,
                    kind: t.output.kind(),
                    codec: t.output.codec,
                    cid: cid.clone(),
                    stream_id: format!("ST_{}", &cid.as_str()[3..]),
                    h264_profile_level_id: t.output.format.h264_profile_level_id.clone(),
                    rids: t.layers.iter().map(|l| l.rid).collect(),
                }),
                _ => None,
            })
            .collect();
        let neg = &mut self.pubs.neg;
        let remove = std::mem::take(&mut neg.remove);
        let data_channels = !neg.data_channels_created;
        if add.is_empty() && remove.is_empty() && !data_channels {
            return;
        }
        neg.data_channels_created = true;
        neg.creating = true;
        self.actions.push_back(Action::CreateOffer(OfferChanges {
            add,
            remove,
            data_channels,
        }));
    }

    pub(super) fn on_offer_created(&mut self, sdp: String, mids: Vec<(TrackCid, Mid)>) {
        self.pubs.neg.creating = false;
        if self.phase != Phase::Joined {
            return;
        }
        let mut order = Vec::new();
        for (new_cid, mid) in mids {
            for track in self.pubs.tracks.values_mut() {
                if let TrackState::Published { cid, sid } = &track.state {
                    if *cid == new_cid {
                        track.state = TrackState::Negotiating {
                            cid: cid.clone(),
                            sid: sid.clone(),
                            mid,
                        };
                        order.push((
                            mid,
                            track.output.codec,
                            track.output.format.h264_profile_level_id.clone(),
                        ));
                    }
                }
            }
        }
        let sdp = super::sdp::prefer_codecs(&sdp, &order);
        self.remote.publisher_first_mid = super::ice::first_mid(&sdp);
        tracing::debug!("publisher offer:\n{sdp}");
        let neg = &mut self.pubs.neg;
        let id = neg.next_id;
        neg.next_id += 1;
        neg.in_flight = Some(id);
        self.timers
            .set(Timer::Answer, self.now + super::ANSWER_TIMEOUT);
        self.send(Req::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp,
            id,
            ..Default::default()
        }));
    }

    /// Tracks that are live and not announced yet: announce them and ask for a keyframe.
    pub(super) fn go_live(&mut self) {
        if !self.link.publisher_connected {
            return;
        }
        let mut live = Vec::new();
        for (id, track) in &mut self.pubs.tracks {
            if let TrackState::Live { sid, .. } = &track.state {
                if !track.announced_live {
                    track.announced_live = true;
                    // A stream whose encoder makes keyframes on request starts on the one
                    // asked for below. One that cannot (a file, a camera's own stream) is
                    // not cut until its next keyframe: its frames flow at once, so that the
                    // server sees the stream and forwards it to viewers from its next
                    // keyframe on (it forwards from a keyframe on anyway).
                    track.awaiting_keyframe = track.output.kind() == MediaKind::Video
                        && track.output.format.keyframes_on_request;
                    live.push((*id, sid.clone(), None));
                    for layer in &mut track.layers {
                        layer.awaiting_keyframe = layer.active;
                        if layer.output != *id {
                            live.push((layer.output, sid.clone(), Some(layer.rid)));
                        }
                    }
                }
            }
        }
        let any = !live.is_empty();
        for (id, sid, rid) in live {
            self.actions.push_back(Action::TrackLive {
                output: id,
                sid,
                rid,
            });
            // A stream that cannot make one is not asked (nor counted as unserved).
            if self
                .output_of(id)
                .is_none_or(|o| o.format.keyframes_on_request || o.kind() != MediaKind::Video)
            {
                self.request_keyframe(id, true);
            }
        }
        if any {
            // New tracks start from their share of the current estimate.
            self.reallocate();
        }
    }

    /// A viewer asked for a keyframe on `mid` (on one simulcast layer when `rid` says).
    pub(super) fn on_keyframe_request(&mut self, mid: Mid, rid: Option<&str>) {
        let found = self.pubs.tracks.iter().find_map(|(id, t)| match &t.state {
            TrackState::Live { mid: m, .. } if *m == mid => {
                let layer = rid.and_then(|r| t.layers.iter().find(|l| l.rid == r));
                Some(layer.map_or(*id, |l| l.output))
            }
            _ => None,
        });
        if let Some(id) = found {
            if !self.first_viewer_asks(id) {
                self.request_keyframe(id, false);
            }
        }
    }

    /// A viewer asked output `id` for a keyframe: if it is the track's first and frames are
    /// kept for it, they go out shortly (see [`held`](super::held)). Says whether the request
    /// is served so.
    fn first_viewer_asks(&mut self, id: OutputId) -> bool {
        let Some(track) = self.pubs.tracks.get_mut(&id) else {
            return false;
        };
        if !track.keeps_for_first_viewer() {
            return false;
        }
        match &mut track.first_viewer {
            // Asked again (the viewer's decoder, the server's retries) before they went out.
            FirstViewer::Asked(_) => true,
            FirstViewer::Awaited(kept) if !kept.frames.is_empty() => {
                track.first_viewer = FirstViewer::Asked(std::mem::take(kept));
                self.timers
                    .set(Timer::SendKept(id), self.now + SEND_KEPT_AFTER);
                true
            }
            // Nothing kept: someone watches now, keyframes go out as they come.
            _ => {
                track.first_viewer = FirstViewer::Served;
                false
            }
        }
    }

    /// The first viewer's kept frames go out now, on the track's current section.
    pub(super) fn send_kept(&mut self, id: OutputId) {
        let Some(track) = self.pubs.tracks.get_mut(&id) else {
            return;
        };
        let kept = match &mut track.first_viewer {
            FirstViewer::Asked(kept) => std::mem::take(kept),
            _ => return,
        };
        track.first_viewer = FirstViewer::Served;
        let (TrackState::Live { mid, .. }, Some(pt), false) =
            (&track.state, track.pt, kept.frames.is_empty())
        else {
            // Let go meanwhile (past its bounds), or the track is not live now: the viewer
            // waits for the next keyframe.
            self.request_keyframe(id, false);
            return;
        };
        let clock_rate = track.output.codec.clock_rate();
        let routes = kept
            .frames
            .iter()
            .map(|&(media, wallclock)| Route {
                mid: *mid,
                rid: None,
                pt,
                rtp_time: rtp_time(media, clock_rate),
                clock_rate,
                wallclock,
                // Through the pacer: the estimator's first probes are made of them.
                burst: false,
            })
            .collect();
        tracing::info!(
            "{}: the first viewer starts on the frames kept since the latest keyframe ({} frames, {} ms, {} kB)",
            track.output.element,
            kept.frames.len(),
            kept.span().as_millis(),
            kept.bytes() / 1000
        );
        self.actions
            .push_back(Action::SendKept { output: id, routes });
        // After them, so that the estimator's first probes are made of them; the stream's
        // rate so far will do for its bounds.
        self.hurry_meter(id);
        self.video_goes_out();
    }

    /// Output `id`'s description (a track's own, or a simulcast layer's).
    pub(super) fn output_of(&self, id: OutputId) -> Option<&Output> {
        self.pubs
            .tracks
            .get(&id)
            .map(|t| &t.output)
            .or_else(|| self.simulcast.layer_outputs.get(&id))
    }

    /// Is output `id` waiting for its first keyframe on a live track?
    fn awaits_keyframe(&self, id: OutputId) -> bool {
        let primary = self.simulcast.layer_of.get(&id).copied().unwrap_or(id);
        let Some(t) = self.pubs.tracks.get(&primary) else {
            return false;
        };
        if !matches!(t.state, TrackState::Live { .. }) {
            return false;
        }
        match t.layers.iter().find(|l| l.output == id) {
            Some(layer) => layer.awaiting_keyframe,
            None => t.awaiting_keyframe,
        }
    }

    /// Ask `id`'s encoder for a keyframe, at most once per [`KEYFRAME_INTERVAL`] unless
    /// `force`d. A track still waiting for its first keyframe is asked again every
    /// [`KEYFRAME_RETRY`].
    pub(super) fn request_keyframe(&mut self, id: OutputId, force: bool) {
        let now = self.now;
        if self
            .output_of(id)
            .is_none_or(|o| o.kind() != MediaKind::Video)
        {
            return;
        }
        if let Some(last) = self.pubs.keyframe_asked.get(&id) {
            if !force && now.duration_since(*last) < KEYFRAME_INTERVAL {
                tracing::debug!(
                    "{}: keyframe request ignored, the last one was {} ms ago",
                    self.pubs.element_of(id),
                    now.duration_since(*last).as_millis()
                );
                return;
            }
        }
        self.pubs.keyframe_asked.insert(id, now);
        tracing::debug!(force, "{}: keyframe requested", self.pubs.element_of(id));
        if self.awaits_keyframe(id) {
            self.timers
                .set(Timer::KeyframeRetry(id), now + KEYFRAME_RETRY);
        }
        self.actions.push_back(Action::RequestKeyframe(id));
    }

    pub(super) fn retry_keyframe(&mut self, id: OutputId) {
        if self.awaits_keyframe(id) && self.link.publisher_connected && self.phase == Phase::Joined
        {
            self.request_keyframe(id, true);
        }
    }

    pub(super) fn end_track(&mut self, id: OutputId) {
        let Some(track) = self.pubs.tracks.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut track.state, TrackState::Ended);
        self.timers.stop(Timer::TrackConfirm(id));
        self.timers.stop(Timer::KeyframeRetry(id));
        match old {
            TrackState::Ended => return,
            TrackState::Live { mid, .. } => {
                self.pubs.neg.remove.push(mid);
                self.negotiate();
            }
            TrackState::Negotiating { mid, .. } => {
                // In the offer in flight: remove it in the next one.
                self.pubs.neg.remove.push(mid);
                self.pubs.neg.again = true;
            }
            TrackState::Found | TrackState::Requested { .. } | TrackState::Published { .. } => {}
        }
        self.actions.push_back(Action::TrackEnded { output: id });
        self.forget_target(id);
        let all_ended = self
            .pubs
            .tracks
            .values()
            .all(|t| t.state == TrackState::Ended);
        if self.pubs.had_outputs && all_ended {
            tracing::info!("every output ended");
            self.leave(Ok(()));
        }
    }

    pub(super) fn on_pipeline(&mut self, ev: PipelineEvent) {
        match ev {
            PipelineEvent::OutputAdded(output) => {
                if matches!(self.phase, Phase::Leaving | Phase::Done)
                    || self.pubs.tracks.contains_key(&output.id)
                {
                    return;
                }
                self.pubs.had_outputs = true;
                if let Some(output) = self.output_back(output) {
                    if let Some(output) = self.layer_output(output) {
                        self.add_track(output);
                    }
                }
            }
            PipelineEvent::OutputChanged(output) => self.on_output_changed(output),
            // A live output that ends is a source that dropped out (a camera): with
            // --restart-pipeline the whole pipeline is restarted.
            PipelineEvent::OutputEos(id) if self.config.restart_pipeline && self.pipeline_live => {
                let why = format!("{} ended (EOS)", self.pubs.element_of(id));
                self.pipeline_down(&why)
            }
            PipelineEvent::OutputEos(id) => self.end_track(id),
            PipelineEvent::Started { live } => {
                tracing::debug!(live, "pipeline paused, going to PLAYING");
                self.pipeline_live = live
            }
            PipelineEvent::Eos if self.config.restart_pipeline && self.pipeline_live => {
                self.pipeline_down("the live source ended (EOS)")
            }
            PipelineEvent::Error(msg) if self.config.restart_pipeline => self.pipeline_down(&msg),
            PipelineEvent::Eos => {
                self.pipeline_stopped = true;
                self.leave(Ok(()));
            }
            PipelineEvent::Error(msg) => {
                self.pipeline_stopped = true;
                self.leave(Err(Error::Runtime(msg)));
            }
        }
    }

    /// A new output becomes a track (announced at once when we can).
    pub(super) fn add_track(&mut self, output: Output) {
        self.pubs.tracks.insert(output.id, Track::new(output));
        self.announce_tracks();
    }

    fn on_output_changed(&mut self, output: Output) {
        let Some(track) = self.pubs.tracks.get_mut(&output.id) else {
            return;
        };
        let size_changed = track.output.format.width != output.format.width
            || track.output.format.height != output.format.height;
        track.output = output;
        if let (true, TrackState::Live { sid, .. }) = (size_changed, &track.state) {
            let req = proto::UpdateLocalVideoTrack {
                track_sid: sid.to_string(),
                width: track.output.format.width.unwrap_or(0),
                height: track.output.format.height.unwrap_or(0),
            };
            self.send(Req::UpdateVideoTrack(req));
        }
    }

    /// What we publish, for SyncState on a resume.
    pub(super) fn sync_state(&self) -> proto::SyncState {
        let publish_tracks = self
            .pubs
            .tracks
            .values()
            .filter_map(|t| match &t.state {
                TrackState::Live { cid, sid, .. } | TrackState::Published { cid, sid } => {
                    Some(proto::TrackPublishedResponse {
                        cid: cid.to_string(),
                        track: Some(proto::TrackInfo {
                            sid: sid.to_string(),
                            name: t.output.element.clone(),
                            r#type: match t.output.kind() {
                                MediaKind::Video => proto::TrackType::Video as i32,
                                MediaKind::Audio => proto::TrackType::Audio as i32,
                            },
                            mime_type: t.output.codec.mime().to_string(),
                            width: t.output.format.width.unwrap_or(0),
                            height: t.output.format.height.unwrap_or(0),
                            ..Default::default()
                        }),
                    })
                }
                _ => None,
            })
            .collect();
        proto::SyncState {
            answer: self.remote.last_subscriber_answer.clone(),
            offer: self.remote.last_subscriber_offer.clone(),
            subscription: Some(proto::UpdateSubscription {
                track_sids: vec![],
                subscribe: false,
                ..Default::default()
            }),
            publish_tracks,
            ..Default::default()
        }
    }
}

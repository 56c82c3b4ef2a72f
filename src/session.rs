//! The session core: every decision about the LiveKit session, and nothing else.
//!
//! [`Session`] is sans-IO in the style of str0m: [`Session::handle`] takes an [`Input`]
//! (a signal message, a peer-connection event, a pipeline event, a stop request, a timer tick
//! with the time passed in) and queues [`Action`]s that [`Session::poll_action`] hands out.
//! It owns join state, publications, the one-offer-at-a-time negotiation, per-track end,
//! keep-alive and leave. It must not do I/O, read the clock, or import tokio, GStreamer or
//! str0m: drivers do that and feed the results back in. That is what lets the unit tests at
//! the bottom drive it through hostile orderings.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;

use crate::error::Error;
use crate::media::{Codec, MediaKind, Output, OutputId, PipelineEvent, Source};

/// How long the server may take to answer an AddTrackRequest (both LiveKit SDKs use 10 s).
pub const TRACK_PUBLISHED_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for the answer to one of our offers.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Minimum spacing of keyframe requests to one encoder.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// Publisher ICE may be disconnected this long before we reconnect.
pub const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(10);
/// A video track that went live but has not produced a keyframe yet is asked again this often.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// Which of the two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pc {
    Publisher,
    Subscriber,
}

impl Pc {
    fn from_target(target: i32) -> Pc {
        if target == proto::SignalTarget::Subscriber as i32 {
            Pc::Subscriber
        } else {
            Pc::Publisher
        }
    }
}

/// Parameters for a resume (`reconnect=1` on the signalling URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub participant_sid: String,
    /// `ReconnectReason` as an integer.
    pub reason: i32,
}

/// A media section the publisher must add to its next offer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMedia {
    pub output: OutputId,
    pub kind: MediaKind,
    pub codec: Codec,
    /// msid track id: LiveKit matches it against AddTrackRequest.cid.
    pub cid: String,
    /// msid stream id.
    pub stream_id: String,
    /// H.264: the stream's profile-level-id, so the offer can carry it.
    pub h264_profile_level_id: Option<String>,
}

/// Everything the next publisher offer must change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OfferChanges {
    pub add: Vec<NewMedia>,
    /// mids whose sender is removed (the output ended).
    pub remove: Vec<String>,
    /// First offer: create the `_reliable` and `_lossy` data channels.
    pub data_channels: bool,
}

/// What the drivers must do.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one value per event, never stored in bulk
pub enum Action {
    /// Open the signalling connection. `refresh_token` is the latest token the server gave
    /// us, if any; `resume` asks the server to resume the session of this participant (the
    /// peer connections are kept) instead of joining anew.
    Connect {
        refresh_token: Option<String>,
        resume: Option<Resume>,
    },
    /// Drop the signalling connection only (a resume follows; the peer connections stay).
    CloseSignal,
    /// Drop the signalling connection and both peer connections (before a full reconnect).
    Disconnect,
    /// Send a message on the signalling WebSocket.
    Signal(Req),
    /// Create the publisher offer with these changes; feed back [`Input::OfferCreated`].
    CreateOffer(OfferChanges),
    /// Apply the server's answer to our current offer on the publisher.
    ApplyAnswer(String),
    /// Apply the server's offer on the subscriber PC and feed back [`Input::AnswerCreated`]
    /// with the same `id`.
    AnswerSubscriberOffer {
        sdp: String,
        id: u32,
    },
    /// A remote ICE candidate (the JSON `candidateInit` of a trickle message).
    AddRemoteCandidate(Pc, String),
    /// Ask this output's encoder for a keyframe.
    RequestKeyframe(OutputId),
    /// Announce a change in what we publish (for the status line and logs).
    TrackLive {
        output: OutputId,
        sid: String,
    },
    TrackEnded {
        output: OutputId,
    },
    /// Stop the pipeline (set it to NULL).
    StopPipeline,
    /// Close the signalling connection and the peer connections, then end the process with
    /// this result. Always the last action.
    Exit(Result<(), Error>),
}

/// What happened.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one value per event, never stored in bulk
pub enum Input {
    /// The signalling WebSocket is open (the join response comes as a message).
    SignalConnected,
    /// Could not connect the signalling WebSocket.
    SignalConnectFailed(Error),
    /// A message from the server.
    Signal(Resp),
    /// The signalling WebSocket closed or failed.
    SignalClosed(String),
    /// The publisher offer we asked for, with the mid each new media got (by cid).
    OfferCreated {
        sdp: String,
        mids: Vec<(String, String)>,
    },
    /// The subscriber answer we asked for.
    AnswerCreated { sdp: String, id: u32 },
    /// A peer connection is connected (ICE + DTLS).
    Connected(Pc),
    /// ICE lost connectivity; it may come back by itself.
    IceDisconnected(Pc),
    /// A peer connection lost connectivity for good (ICE failed / DTLS closed).
    Disconnected(Pc),
    /// An SDP operation failed in the driver.
    RtcFailed(String),
    /// The remote asked for a keyframe on this publisher mid (PLI/FIR).
    KeyframeRequest { mid: String },
    /// From the pipeline driver.
    Pipeline(PipelineEvent),
    /// Stop: SIGINT/SIGTERM.
    Stop,
    /// Time passed; drives timeouts and keep-alive.
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting the WebSocket, waiting for the join response.
    Joining,
    /// In the room.
    Joined,
    /// Lost the connection; the next attempt starts at `retry_at`.
    Reconnecting { retry_at: Instant },
    /// We sent (or are about to send) our leave; nothing else goes out.
    Leaving,
    /// Exit action issued.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TrackState {
    /// Output known, not yet announced (not joined yet, or publishing is delayed).
    Found,
    /// AddTrackRequest sent; waiting for TrackPublishedResponse.
    Requested { cid: String, since: Instant },
    /// Published by the server; its media section waits for the next offer.
    Published { cid: String, sid: String },
    /// Its media section is in the offer in flight.
    Negotiating {
        cid: String,
        sid: String,
        mid: String,
    },
    /// Negotiated: frames flow once the publisher PC is connected.
    Live {
        cid: String,
        sid: String,
        mid: String,
    },
    /// The output ended (or the server refused it); its media section, if any, is removed.
    Ended,
}

#[derive(Debug)]
struct Track {
    output: Output,
    state: TrackState,
    /// Video: drop frames until a keyframe after going live.
    awaiting_keyframe: bool,
    last_keyframe_request: Option<Instant>,
    /// The track went live (announced, first keyframe asked for).
    announced_live: bool,
}

#[derive(Debug, Default)]
struct Negotiation {
    /// Id of the offer in flight and when it was sent.
    in_flight: Option<(u32, Instant)>,
    /// Waiting for the driver to create the offer.
    creating: bool,
    /// Something changed while an offer was in flight: offer again after the answer.
    again: bool,
    next_id: u32,
    /// The publisher has a remote description (candidates can be applied).
    remote_set: bool,
    data_channels_created: bool,
    /// mids to remove in the next offer.
    remove: Vec<String>,
}

/// Tunables, with the defaults the CLI uses.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Wait this long after joining before publishing (`--delay`).
    pub publish_delay: Duration,
    /// Give up reconnecting after this long without a successful join.
    pub reconnect_timeout: Duration,
    /// Give up after this many failed attempts in a row.
    pub max_reconnect_attempts: u32,
    /// `--track`: names and sources per output.
    pub tracks: Vec<crate::media::TrackSpec>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            publish_delay: Duration::ZERO,
            reconnect_timeout: Duration::from_secs(60),
            // The timeout is the real bound; this only stops a runaway loop.
            max_reconnect_attempts: 100,
            tracks: Vec::new(),
        }
    }
}

/// Delay before reconnect attempt `n` (0-based): n² × 300 ms as the LiveKit SDKs do, but
/// never more than 2 s, so a server that comes back is found within 2 s.
pub fn reconnect_delay(attempt: u32) -> Duration {
    Duration::from_millis((300 * u64::from(attempt.min(100)).pow(2)).min(2_000))
}

/// The session core. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    started: Instant,
    now: Instant,
    tracks: BTreeMap<OutputId, Track>,
    neg: Negotiation,
    publisher_connected: bool,
    subscriber_remote_set: bool,
    pending_candidates: Vec<(Pc, String)>,
    ping_interval: Duration,
    ping_timeout: Duration,
    last_ping: Option<Instant>,
    last_message: Option<Instant>,
    publish_at: Option<Instant>,
    refresh_token: Option<String>,
    participant_sid: Option<String>,
    /// True once the pipeline had at least one output (so "all ended" means something).
    had_outputs: bool,
    pipeline_stopped: bool,
    cid_counter: u64,
    cid_prefix: String,
    /// Failed attempts since the connection was lost, and when it was lost.
    reconnect_attempts: u32,
    lost_at: Option<Instant>,
    /// Publisher ICE lost connectivity at this time (it may come back).
    publisher_disconnected_at: Option<Instant>,
    /// The current attempt resumes the session (keeps the peer connections) rather than
    /// joining anew.
    resuming: bool,
    /// The last subscriber offer we got and the answer we gave, for SyncState on a resume.
    last_subscriber_offer: Option<proto::SessionDescription>,
    last_subscriber_answer: Option<proto::SessionDescription>,
    actions: VecDeque<Action>,
}

impl Session {
    /// `now` starts the session clock; `cid_seed` makes cids unique per process (random in
    /// production, fixed in tests).
    pub fn new(config: SessionConfig, now: Instant, cid_seed: u64) -> Session {
        Session {
            config,
            phase: Phase::Joining,
            started: now,
            now,
            tracks: BTreeMap::new(),
            neg: Negotiation {
                next_id: 1,
                ..Default::default()
            },
            publisher_connected: false,
            subscriber_remote_set: false,
            pending_candidates: Vec::new(),
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(15),
            last_ping: None,
            last_message: None,
            publish_at: None,
            refresh_token: None,
            participant_sid: None,
            had_outputs: false,
            pipeline_stopped: false,
            cid_counter: 0,
            cid_prefix: format!("{cid_seed:012X}"),
            reconnect_attempts: 0,
            lost_at: None,
            publisher_disconnected_at: None,
            resuming: false,
            last_subscriber_offer: None,
            last_subscriber_answer: None,
            actions: VecDeque::from([Action::Connect {
                refresh_token: None,
                resume: None,
            }]),
        }
    }

    /// Next action for the drivers, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True while actions are queued.
    pub fn poll_action_pending(&self) -> bool {
        !self.actions.is_empty()
    }

    /// The output whose live track is sent on publisher `mid`.
    pub fn output_for_mid(&self, mid: &str) -> Option<OutputId> {
        self.tracks.iter().find_map(|(id, t)| match &t.state {
            TrackState::Live { mid: m, .. } | TrackState::Negotiating { mid: m, .. }
                if m == mid =>
            {
                Some(*id)
            }
            _ => None,
        })
    }

    /// RTP clock rate of an output's codec.
    pub fn clock_rate(&self, output: OutputId) -> Option<u32> {
        self.tracks
            .get(&output)
            .map(|t| t.output.codec.clock_rate())
    }

    /// True once the session has decided to end.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// When the core next needs a [`Input::Tick`] (at the latest).
    pub fn next_deadline(&self) -> Instant {
        let mut t = self.now + Duration::from_millis(500);
        if let Some(p) = self.publish_at {
            t = t.min(p);
        }
        if let Phase::Reconnecting { retry_at } = self.phase {
            t = t.min(retry_at);
        }
        t
    }

    /// Decide whether a frame of `output` goes out, and on which publisher mid.
    ///
    /// Frames of outputs that are not live yet are dropped; a video track that just went live
    /// drops frames until its first keyframe, so the first frame a subscriber gets decodes.
    pub fn route_frame(&mut self, output: OutputId, keyframe: bool) -> Option<&str> {
        if self.phase != Phase::Joined || !self.publisher_connected {
            return None;
        }
        let track = self.tracks.get_mut(&output)?;
        let TrackState::Live { mid, .. } = &track.state else {
            return None;
        };
        if track.awaiting_keyframe {
            if !keyframe {
                return None;
            }
            track.awaiting_keyframe = false;
        }
        Some(mid.as_str())
    }

    /// Feed one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.now = now.max(self.now);
        if self.phase == Phase::Done {
            return;
        }
        match input {
            Input::SignalConnected => {}
            Input::SignalConnectFailed(e) => match e {
                // A resume can be refused for many reasons (the server restarted, the
                // refresh token expired): a full rejoin is the answer to all of them.
                _ if self.resuming => self.lost(format!("the session could not be resumed: {e}")),
                // A refused token will not get better by retrying.
                Error::Auth(_) | Error::Usage(_) => self.fail(e),
                other => self.lost(other.to_string()),
            },
            Input::Signal(msg) => {
                self.last_message = Some(self.now);
                self.on_signal(msg);
            }
            Input::SignalClosed(why) => {
                if self.phase == Phase::Leaving {
                    self.finish(Ok(()));
                } else if matches!(self.phase, Phase::Joined | Phase::Joining) {
                    self.lost_signal(format!("the signalling connection closed: {why}"));
                }
            }
            Input::OfferCreated { sdp, mids } => self.on_offer_created(sdp, mids),
            Input::AnswerCreated { sdp, id } => {
                if self.phase == Phase::Joined {
                    let answer = proto::SessionDescription {
                        r#type: "answer".into(),
                        sdp,
                        id,
                        ..Default::default()
                    };
                    self.last_subscriber_answer = Some(answer.clone());
                    self.send(Req::Answer(answer));
                }
            }
            Input::Connected(Pc::Publisher) => {
                self.publisher_connected = true;
                self.publisher_disconnected_at = None;
                self.go_live();
            }
            Input::Connected(Pc::Subscriber) => {}
            Input::IceDisconnected(Pc::Publisher) => {
                self.publisher_disconnected_at.get_or_insert(self.now);
            }
            Input::IceDisconnected(Pc::Subscriber) => {}
            Input::Disconnected(pc) => {
                if self.phase == Phase::Joined {
                    let which = match pc {
                        Pc::Publisher => "publisher",
                        Pc::Subscriber => "subscriber",
                    };
                    self.lost(format!("the {which} peer connection failed"));
                }
            }
            Input::RtcFailed(why) => {
                if self.phase == Phase::Joined {
                    self.lost(format!("WebRTC negotiation failed: {why}"));
                }
            }
            Input::KeyframeRequest { mid } => {
                let found = self.tracks.iter().find_map(|(id, t)| match &t.state {
                    TrackState::Live { mid: m, .. } if *m == mid => Some(*id),
                    _ => None,
                });
                if let Some(id) = found {
                    self.request_keyframe(id, false);
                }
            }
            Input::Pipeline(ev) => self.on_pipeline(ev),
            Input::Stop => self.leave(Ok(())),
            Input::Tick => self.on_tick(),
        }
    }

    // ----- signalling -----

    fn on_signal(&mut self, msg: Resp) {
        match msg {
            Resp::Join(join) => self.on_join(join),
            Resp::Answer(answer) => self.on_answer(answer),
            Resp::Offer(offer) if self.phase == Phase::Joined => {
                self.subscriber_remote_set = true;
                self.last_subscriber_offer = Some(offer.clone());
                self.actions.push_back(Action::AnswerSubscriberOffer {
                    sdp: offer.sdp,
                    id: offer.id,
                });
                self.flush_candidates();
            }
            Resp::Trickle(t) => {
                let pc = Pc::from_target(t.target);
                let ready = match pc {
                    Pc::Publisher => self.neg.remote_set,
                    Pc::Subscriber => self.subscriber_remote_set,
                };
                if ready {
                    self.actions
                        .push_back(Action::AddRemoteCandidate(pc, t.candidate_init));
                } else {
                    self.pending_candidates.push((pc, t.candidate_init));
                }
            }
            Resp::TrackPublished(p) => self.on_track_published(p),
            Resp::RequestResponse(r) => self.on_request_response(r),
            Resp::Leave(leave) => self.on_server_leave(leave),
            Resp::RefreshToken(t) => self.refresh_token = Some(t),
            Resp::Reconnect(_) => self.on_resumed(),
            Resp::Mute(_)
            | Resp::Update(_)
            | Resp::RoomUpdate(_)
            | Resp::PongResp(_)
            | Resp::Pong(_) => {}
            _ => {}
        }
    }

    fn on_join(&mut self, join: proto::JoinResponse) {
        if self.phase != Phase::Joining {
            return;
        }
        if self.resuming {
            // The server started a new session instead of resuming ours: our peer
            // connections belong to the old one. Start over properly.
            self.lost("the server did not resume the session".into());
            return;
        }
        self.phase = Phase::Joined;
        if let Some(lost) = self.lost_at.take() {
            tracing::info!(
                "rejoined the room after {:.1} s ({} attempt(s))",
                self.now.duration_since(lost).as_secs_f64(),
                self.reconnect_attempts + 1
            );
        }
        self.reconnect_attempts = 0;
        self.participant_sid = join.participant.map(|p| p.sid);
        if join.ping_interval > 0 {
            self.ping_interval = Duration::from_secs(join.ping_interval as u64);
        }
        if join.ping_timeout > 0 {
            self.ping_timeout = Duration::from_secs(join.ping_timeout as u64);
        }
        self.last_ping = Some(self.now);
        // The publisher connection is offered at once (with its data channels), whatever
        // `fast_publish` says: we are a publisher, and the server answers either way.
        self.negotiate();
        if self.config.publish_delay.is_zero() {
            self.announce_tracks();
        } else {
            self.publish_at = Some(self.now + self.config.publish_delay);
        }
    }

    fn on_answer(&mut self, answer: proto::SessionDescription) {
        let Some((id, _)) = self.neg.in_flight else {
            tracing::debug!("ignoring an answer with no offer in flight");
            return;
        };
        // The server echoes our offer id; 0 means "not set" in older servers.
        if answer.id != id && answer.id != 0 {
            tracing::debug!(
                answer = answer.id,
                current = id,
                "ignoring an answer for an old offer"
            );
            return;
        }
        self.neg.in_flight = None;
        self.neg.remote_set = true;
        self.actions.push_back(Action::ApplyAnswer(answer.sdp));
        self.flush_candidates();
        for track in self.tracks.values_mut() {
            if let TrackState::Negotiating { cid, sid, mid } = &track.state {
                track.state = TrackState::Live {
                    cid: cid.clone(),
                    sid: sid.clone(),
                    mid: mid.clone(),
                };
            }
        }
        self.go_live();
        if self.neg.again {
            self.neg.again = false;
            self.negotiate();
        }
    }

    fn on_track_published(&mut self, p: proto::TrackPublishedResponse) {
        let Some((_, track)) = self
            .tracks
            .iter_mut()
            .find(|(_, t)| matches!(&t.state, TrackState::Requested { cid, .. } if *cid == p.cid))
        else {
            return;
        };
        let sid = p.track.map(|t| t.sid).unwrap_or_default();
        track.state = TrackState::Published { cid: p.cid, sid };
        self.negotiate();
    }

    fn on_request_response(&mut self, r: proto::RequestResponse) {
        use proto::request_response::{Reason, Request};
        if r.reason == Reason::Ok as i32 {
            return;
        }
        let reason = Reason::try_from(r.reason)
            .map(|r| r.as_str_name())
            .unwrap_or("UNKNOWN");
        match r.request {
            Some(Request::AddTrack(add)) => {
                let name = self
                    .tracks
                    .values()
                    .find(|t| matches!(&t.state, TrackState::Requested { cid, .. } if *cid == add.cid))
                    .map(|t| t.output.element.clone())
                    .unwrap_or_else(|| add.cid.clone());
                let err = if r.reason == Reason::NotAllowed as i32 {
                    Error::Auth(format!(
                        "the server refused to publish {name} ({reason}): the token lacks canPublish or this source in canPublishSources"
                    ))
                } else {
                    Error::Runtime(format!(
                        "the server refused to publish {name}: {reason} {}",
                        r.message
                    ))
                };
                self.leave(Err(err));
            }
            _ => {
                tracing::warn!(reason, message = %r.message, "the server reported an error for a request")
            }
        }
    }

    fn on_server_leave(&mut self, leave: proto::LeaveRequest) {
        if self.phase == Phase::Leaving {
            self.finish(Ok(()));
            return;
        }
        let reason = proto::DisconnectReason::try_from(leave.reason)
            .map(|r| r.as_str_name())
            .unwrap_or("UNKNOWN_REASON");
        let action = proto::leave_request::Action::try_from(leave.action)
            .unwrap_or(proto::leave_request::Action::Disconnect);
        match action {
            proto::leave_request::Action::Disconnect => {
                self.actions.push_back(Action::StopPipeline);
                self.finish(Err(Error::Removed(format!(
                    "the server removed this participant from the room ({reason})"
                ))));
            }
            _ => self.lost(format!(
                "the server asked this participant to reconnect ({reason})"
            )),
        }
    }

    // ----- publications -----

    fn announce_tracks(&mut self) {
        if self.phase != Phase::Joined || self.publish_at.is_some() {
            return;
        }
        let ids: Vec<OutputId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.state == TrackState::Found)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.cid_counter += 1;
            let cid = format!("TR_{}{:04}", self.cid_prefix, self.cid_counter);
            let track = self.tracks.get_mut(&id).expect("id comes from the map");
            let out = &track.output;
            let spec = self.config.tracks.iter().find(|s| s.selects(out));
            let name = spec
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| out.element.clone());
            let source = spec
                .and_then(|s| s.source)
                .unwrap_or(Source::default_for(out.kind()));
            let mut req = proto::AddTrackRequest {
                cid: cid.clone(),
                name,
                disable_red: true,
                // Tell the server the codec: without it the server guesses from the SDP and,
                // with two video tracks in one offer, can answer one m-line with the other's codec.
                simulcast_codecs: vec![proto::SimulcastCodec {
                    codec: out.codec.mime().to_string(),
                    cid: cid.clone(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            match out.kind() {
                MediaKind::Video => {
                    req.r#type = proto::TrackType::Video as i32;
                    req.width = out.format.width.unwrap_or(0);
                    req.height = out.format.height.unwrap_or(0);
                    req.layers = vec![proto::VideoLayer {
                        quality: proto::VideoQuality::High as i32,
                        width: req.width,
                        height: req.height,
                        ..Default::default()
                    }];
                }
                MediaKind::Audio => {
                    req.r#type = proto::TrackType::Audio as i32;
                    if out.format.channels.unwrap_or(1) >= 2 {
                        req.audio_features
                            .push(proto::AudioTrackFeature::TfStereo as i32);
                    }
                    // Unless the encoder really uses DTX, say so: the server would otherwise
                    // announce usedtx=1 to subscribers.
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
            track.state = TrackState::Requested {
                cid,
                since: self.now,
            };
            self.actions.push_back(Action::Signal(Req::AddTrack(req)));
        }
    }

    fn negotiate(&mut self) {
        if self.phase != Phase::Joined {
            return;
        }
        if self.neg.in_flight.is_some() || self.neg.creating {
            self.neg.again = true;
            return;
        }
        let add: Vec<NewMedia> = self
            .tracks
            .iter()
            .filter_map(|(id, t)| match &t.state {
                TrackState::Published { cid, .. } => Some(NewMedia {
                    output: *id,
                    kind: t.output.kind(),
                    codec: t.output.codec,
                    cid: cid.clone(),
                    stream_id: format!("ST_{}", &cid[3..]),
                    h264_profile_level_id: t.output.format.h264_profile_level_id.clone(),
                }),
                _ => None,
            })
            .collect();
        let remove = std::mem::take(&mut self.neg.remove);
        let data_channels = !self.neg.data_channels_created;
        if add.is_empty() && remove.is_empty() && !data_channels {
            return;
        }
        self.neg.data_channels_created = true;
        self.neg.creating = true;
        self.actions.push_back(Action::CreateOffer(OfferChanges {
            add,
            remove,
            data_channels,
        }));
    }

    fn on_offer_created(&mut self, sdp: String, mids: Vec<(String, String)>) {
        self.neg.creating = false;
        if self.phase != Phase::Joined {
            return;
        }
        for (cid_for_mid, mid) in mids {
            for track in self.tracks.values_mut() {
                if let TrackState::Published { cid, sid } = &track.state {
                    if *cid == cid_for_mid {
                        track.state = TrackState::Negotiating {
                            cid: cid.clone(),
                            sid: sid.clone(),
                            mid: mid.clone(),
                        };
                    }
                }
            }
        }
        let id = self.neg.next_id;
        self.neg.next_id += 1;
        self.neg.in_flight = Some((id, self.now));
        self.send(Req::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp,
            id,
            ..Default::default()
        }));
    }

    fn go_live(&mut self) {
        if !self.publisher_connected {
            return;
        }
        let mut live = Vec::new();
        for (id, track) in &mut self.tracks {
            if let TrackState::Live { sid, .. } = &track.state {
                if !track.announced_live {
                    track.announced_live = true;
                    track.awaiting_keyframe = track.output.kind() == MediaKind::Video;
                    live.push((*id, sid.clone()));
                }
            }
        }
        for (id, sid) in live {
            self.actions
                .push_back(Action::TrackLive { output: id, sid });
            self.request_keyframe(id, true);
        }
    }

    fn request_keyframe(&mut self, id: OutputId, force: bool) {
        let now = self.now;
        let Some(track) = self.tracks.get_mut(&id) else {
            return;
        };
        if track.output.kind() != MediaKind::Video {
            return;
        }
        if let Some(last) = track.last_keyframe_request {
            if !force && now.duration_since(last) < KEYFRAME_INTERVAL {
                return;
            }
        }
        track.last_keyframe_request = Some(now);
        self.actions.push_back(Action::RequestKeyframe(id));
    }

    fn end_track(&mut self, id: OutputId) {
        let Some(track) = self.tracks.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut track.state, TrackState::Ended);
        match old {
            TrackState::Ended => return,
            TrackState::Live { mid, .. } => {
                self.neg.remove.push(mid);
                self.negotiate();
            }
            TrackState::Negotiating { mid, .. } => {
                // In the offer in flight: remove it in the next one.
                self.neg.remove.push(mid);
                self.neg.again = true;
            }
            TrackState::Found | TrackState::Requested { .. } | TrackState::Published { .. } => {}
        }
        self.actions.push_back(Action::TrackEnded { output: id });
        if self.had_outputs && self.tracks.values().all(|t| t.state == TrackState::Ended) {
            tracing::info!("every output ended");
            self.leave(Ok(()));
        }
    }

    // ----- pipeline -----

    fn on_pipeline(&mut self, ev: PipelineEvent) {
        match ev {
            PipelineEvent::OutputAdded(output) => {
                if matches!(self.phase, Phase::Leaving | Phase::Done)
                    || self.tracks.contains_key(&output.id)
                {
                    return;
                }
                self.had_outputs = true;
                let id = output.id;
                self.tracks.insert(
                    id,
                    Track {
                        output,
                        state: TrackState::Found,
                        awaiting_keyframe: false,
                        last_keyframe_request: None,
                        announced_live: false,
                    },
                );
                self.announce_tracks();
            }
            PipelineEvent::OutputChanged(output) => {
                let Some(track) = self.tracks.get_mut(&output.id) else {
                    return;
                };
                let size_changed = track.output.format.width != output.format.width
                    || track.output.format.height != output.format.height;
                track.output = output;
                if let (true, TrackState::Live { sid, .. }) = (size_changed, &track.state) {
                    let req = proto::UpdateLocalVideoTrack {
                        track_sid: sid.clone(),
                        width: track.output.format.width.unwrap_or(0),
                        height: track.output.format.height.unwrap_or(0),
                    };
                    self.send(Req::UpdateVideoTrack(req));
                }
            }
            PipelineEvent::OutputEos(id) => self.end_track(id),
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

    // ----- time -----

    fn on_tick(&mut self) {
        let now = self.now;
        if let Phase::Reconnecting { retry_at } = self.phase {
            if now >= retry_at {
                self.phase = Phase::Joining;
                self.last_message = None;
                let resume = self.resuming.then(|| Resume {
                    participant_sid: self.participant_sid.clone().unwrap_or_default(),
                    reason: proto::ReconnectReason::RrSignalDisconnected as i32,
                });
                self.actions.push_back(Action::Connect {
                    refresh_token: self.refresh_token.clone(),
                    resume,
                });
            }
            return;
        }
        if let Some(at) = self.publish_at {
            if now >= at {
                self.publish_at = None;
                self.announce_tracks();
            }
        }
        if self.phase != Phase::Joined {
            return;
        }
        if let Some(last) = self.last_message {
            if now.duration_since(last) > self.ping_timeout {
                self.lost_signal(format!(
                    "the server stopped answering (no message for {} s)",
                    self.ping_timeout.as_secs()
                ));
                return;
            }
        }
        if let Some(since) = self.publisher_disconnected_at {
            if now.duration_since(since) > ICE_DISCONNECTED_TIMEOUT {
                self.lost(format!(
                    "media connectivity to the server was lost for {} s",
                    ICE_DISCONNECTED_TIMEOUT.as_secs()
                ));
                return;
            }
        }
        if self
            .last_ping
            .is_none_or(|t| now.duration_since(t) >= self.ping_interval)
        {
            self.last_ping = Some(now);
            let ts = now.duration_since(self.started).as_millis() as i64;
            self.send(Req::PingReq(proto::Ping {
                timestamp: ts,
                rtt: 0,
            }));
        }
        if let Some((_, since)) = self.neg.in_flight {
            if now.duration_since(since) > ANSWER_TIMEOUT {
                self.lost("the server did not answer our offer within 15 s".into());
                return;
            }
        }
        let mut timed_out = None;
        let mut retry = Vec::new();
        for (id, t) in &self.tracks {
            match &t.state {
                TrackState::Requested { since, .. }
                    if now.duration_since(*since) > TRACK_PUBLISHED_TIMEOUT =>
                {
                    timed_out = Some(t.output.element.clone());
                }
                TrackState::Live { .. }
                    if t.awaiting_keyframe
                        && self.publisher_connected
                        && t.last_keyframe_request
                            .is_none_or(|l| now.duration_since(l) >= KEYFRAME_RETRY) =>
                {
                    retry.push(*id);
                }
                _ => {}
            }
        }
        if let Some(name) = timed_out {
            self.lost(format!(
                "the server did not confirm the track for {name} within {} s",
                TRACK_PUBLISHED_TIMEOUT.as_secs()
            ));
            return;
        }
        for id in retry {
            self.request_keyframe(id, true);
        }
    }

    // ----- ending -----

    /// Leave the room cleanly, then end with `result`.
    fn leave(&mut self, result: Result<(), Error>) {
        match self.phase {
            Phase::Leaving | Phase::Done => return,
            Phase::Joined => {
                self.send(Req::Leave(proto::LeaveRequest {
                    reason: proto::DisconnectReason::ClientInitiated as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                }));
            }
            Phase::Joining | Phase::Reconnecting { .. } => {}
        }
        self.phase = Phase::Leaving;
        if !self.pipeline_stopped {
            self.pipeline_stopped = true;
            self.actions.push_back(Action::StopPipeline);
        }
        self.finish(result);
    }

    /// The connection is gone (or unusable). Before the first join this is fatal (a wrong
    /// URL should fail fast); after it, reconnect with backoff until the attempts or the
    /// reconnect timeout run out.
    fn lost(&mut self, why: String) {
        match self.phase {
            Phase::Leaving | Phase::Done => return,
            Phase::Joining if self.participant_sid.is_none() => {
                self.fail(Error::Connection(why));
                return;
            }
            _ => {}
        }
        let lost_at = *self.lost_at.get_or_insert(self.now);
        if self.phase != Phase::Joined && !self.resuming {
            // An attempt failed (a failed resume is followed by a rejoin at once).
            self.reconnect_attempts += 1;
        }
        let elapsed = self.now.duration_since(lost_at);
        if self.reconnect_attempts >= self.config.max_reconnect_attempts
            || elapsed >= self.config.reconnect_timeout
        {
            self.fail(Error::Connection(format!(
                "gave up reconnecting after {} attempt(s) in {:.0} s: {why}",
                self.reconnect_attempts,
                elapsed.as_secs_f64()
            )));
            return;
        }
        tracing::warn!("{why}; reconnecting");
        self.resuming = false;
        self.actions.push_back(Action::Disconnect);
        // Every publication starts over on the new connection, with fresh cids.
        for track in self.tracks.values_mut() {
            if track.state != TrackState::Ended {
                track.state = TrackState::Found;
            }
            track.awaiting_keyframe = false;
            track.announced_live = false;
        }
        self.neg = Negotiation {
            next_id: 1,
            ..Default::default()
        };
        self.publisher_connected = false;
        self.publisher_disconnected_at = None;
        self.subscriber_remote_set = false;
        self.pending_candidates.clear();
        let retry_at = self.now + reconnect_delay(self.reconnect_attempts);
        let retry_at = retry_at.min(lost_at + self.config.reconnect_timeout);
        self.phase = Phase::Reconnecting { retry_at };
    }

    /// Only the signalling connection is gone. With the media still flowing, resume: a new
    /// WebSocket for the same participant, the peer connections and every publication kept,
    /// so subscribers see nothing. Otherwise (never joined, media down too, or a resume that
    /// already failed) fall back to [`lost`](Self::lost).
    fn lost_signal(&mut self, why: String) {
        let can_resume = self.phase == Phase::Joined
            && self.participant_sid.is_some()
            && self.publisher_connected
            && self.publisher_disconnected_at.is_none();
        if !can_resume {
            self.lost(why);
            return;
        }
        tracing::warn!("{why}; resuming the session");
        self.lost_at.get_or_insert(self.now);
        self.resuming = true;
        self.actions.push_back(Action::CloseSignal);
        // An offer in flight lost its answer: its new m-lines are offered again after the
        // resume (str0m forgets a pending offer when the next one is made).
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
                // Its TrackPublished may have been lost with the connection: ask again.
                TrackState::Requested { .. } => track.state = TrackState::Found,
                _ => {}
            }
        }
        self.phase = Phase::Reconnecting { retry_at: self.now };
    }

    /// The server resumed our session (`reconnect` response on the new WebSocket).
    fn on_resumed(&mut self) {
        if self.phase != Phase::Joining || !self.resuming {
            return;
        }
        self.resuming = false;
        self.phase = Phase::Joined;
        if let Some(lost) = self.lost_at.take() {
            tracing::info!(
                "resumed the session after {:.1} s",
                self.now.duration_since(lost).as_secs_f64()
            );
        }
        self.reconnect_attempts = 0;
        self.last_ping = Some(self.now);
        // Tell the server what we have, so it keeps our tracks and subscriber connection.
        let publish_tracks = self
            .tracks
            .values()
            .filter_map(|t| match &t.state {
                TrackState::Live { cid, sid, .. } | TrackState::Published { cid, sid } => {
                    Some(proto::TrackPublishedResponse {
                        cid: cid.clone(),
                        track: Some(proto::TrackInfo {
                            sid: sid.clone(),
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
        self.send(Req::SyncState(proto::SyncState {
            answer: self.last_subscriber_answer.clone(),
            offer: self.last_subscriber_offer.clone(),
            subscription: Some(proto::UpdateSubscription {
                track_sids: vec![],
                subscribe: false,
                ..Default::default()
            }),
            publish_tracks,
            ..Default::default()
        }));
        self.negotiate();
        self.announce_tracks();
    }

    /// Give up with an error: no leave can be sent (or it makes no sense).
    fn fail(&mut self, err: Error) {
        if matches!(self.phase, Phase::Leaving | Phase::Done) {
            self.finish(Ok(()));
            return;
        }
        self.phase = Phase::Leaving;
        if !self.pipeline_stopped {
            self.pipeline_stopped = true;
            self.actions.push_back(Action::StopPipeline);
        }
        self.finish(Err(err));
    }

    fn finish(&mut self, result: Result<(), Error>) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        self.actions.push_back(Action::Exit(result));
    }

    fn send(&mut self, msg: Req) {
        self.actions.push_back(Action::Signal(msg));
    }

    fn flush_candidates(&mut self) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_candidates)
            .into_iter()
            .partition(|(pc, _)| match pc {
                Pc::Publisher => self.neg.remote_set,
                Pc::Subscriber => self.subscriber_remote_set,
            });
        self.pending_candidates = waiting;
        for (pc, c) in ready {
            self.actions.push_back(Action::AddRemoteCandidate(pc, c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::StreamFormat;

    fn output(id: u32, codec: Codec) -> Output {
        Output {
            id: OutputId(id),
            element: format!("enc{id}"),
            pad: "src".into(),
            codec,
            format: StreamFormat {
                width: Some(640),
                height: Some(480),
                ..Default::default()
            },
            caps: String::new(),
        }
    }

    struct Harness {
        s: Session,
        now: Instant,
    }

    impl Harness {
        fn new() -> Harness {
            let now = Instant::now();
            let mut s = Session::new(SessionConfig::default(), now, 1);
            assert_eq!(
                s.poll_action(),
                Some(Action::Connect {
                    refresh_token: None,
                    resume: None
                })
            );
            Harness { s, now }
        }
        fn at(&mut self, ms: u64) -> Instant {
            self.now += Duration::from_millis(ms);
            self.now
        }
        fn feed(&mut self, input: Input) -> Vec<Action> {
            let now = self.at(1);
            self.s.handle(now, input);
            std::iter::from_fn(|| self.s.poll_action()).collect()
        }
        fn join(&mut self) -> Vec<Action> {
            self.feed(Input::Signal(Resp::Join(proto::JoinResponse {
                participant: Some(proto::ParticipantInfo {
                    sid: "PA_1".into(),
                    ..Default::default()
                }),
                ping_interval: 5,
                ping_timeout: 15,
                ..Default::default()
            })))
        }
        fn added(&mut self, id: u32, codec: Codec) -> Vec<Action> {
            self.feed(Input::Pipeline(PipelineEvent::OutputAdded(output(
                id, codec,
            ))))
        }
        fn answer(&mut self, id: u32) -> Vec<Action> {
            self.feed(Input::Signal(Resp::Answer(proto::SessionDescription {
                r#type: "answer".into(),
                sdp: format!("answer{id}"),
                id,
                ..Default::default()
            })))
        }
        fn offer_created(&mut self, mids: &[(&str, &str)]) -> Vec<Action> {
            self.feed(Input::OfferCreated {
                sdp: "offer".into(),
                mids: mids
                    .iter()
                    .map(|(c, m)| (c.to_string(), m.to_string()))
                    .collect(),
            })
        }
        fn published(&mut self, cid: &str, sid: &str) -> Vec<Action> {
            self.feed(Input::Signal(Resp::TrackPublished(
                proto::TrackPublishedResponse {
                    cid: cid.into(),
                    track: Some(proto::TrackInfo {
                        sid: sid.into(),
                        ..Default::default()
                    }),
                },
            )))
        }
    }

    fn add_tracks(actions: &[Action]) -> Vec<proto::AddTrackRequest> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Signal(Req::AddTrack(t)) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    fn add_track_cids(actions: &[Action]) -> Vec<String> {
        add_tracks(actions).into_iter().map(|t| t.cid).collect()
    }

    fn offers(actions: &[Action]) -> Vec<OfferChanges> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::CreateOffer(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    fn exit_of(actions: &[Action]) -> Option<Result<(), Error>> {
        actions.iter().find_map(|a| match a {
            Action::Exit(r) => Some(r.clone()),
            _ => None,
        })
    }

    fn sent_leave(actions: &[Action]) -> bool {
        actions
            .iter()
            .any(|a| matches!(a, Action::Signal(Req::Leave(_))))
    }

    /// Join, publish one video output and bring it live. Returns (cid, mid).
    fn live_video(h: &mut Harness) -> (String, String) {
        h.join();
        h.offer_created(&[]);
        h.answer(1);
        let cid = add_track_cids(&h.added(0, Codec::H264)).pop().unwrap();
        let a = h.published(&cid, "TR_V");
        assert_eq!(offers(&a).len(), 1);
        h.offer_created(&[(&cid, "1")]);
        h.answer(2);
        let a = h.feed(Input::Connected(Pc::Publisher));
        assert!(a.contains(&Action::RequestKeyframe(OutputId(0))), "{a:?}");
        (cid, "1".into())
    }

    #[test]
    fn output_found_before_join_is_published_after_it() {
        let mut h = Harness::new();
        assert!(
            h.added(0, Codec::Vp8).is_empty(),
            "nothing goes out before the join"
        );
        let a = h.join();
        assert_eq!(add_track_cids(&a).len(), 1);
        let o = offers(&a);
        assert_eq!(o.len(), 1);
        assert!(o[0].data_channels && o[0].add.is_empty());
    }

    #[test]
    fn one_offer_at_a_time_and_changes_wait_for_the_answer() {
        let mut h = Harness::new();
        h.join();
        h.offer_created(&[]);
        let c0 = add_track_cids(&h.added(0, Codec::H264)).pop().unwrap();
        let c1 = add_track_cids(&h.added(1, Codec::Opus)).pop().unwrap();
        // Both published while the first offer (data channels) is in flight: no new offer yet.
        assert!(offers(&h.published(&c0, "TR_V")).is_empty());
        assert!(offers(&h.published(&c1, "TR_A")).is_empty());
        let a = h.answer(1);
        let o = offers(&a);
        assert_eq!(o.len(), 1, "one offer carries both tracks: {a:?}");
        assert_eq!(
            o[0].add.iter().map(|m| m.cid.clone()).collect::<Vec<_>>(),
            vec![c0, c1]
        );
    }

    #[test]
    fn answer_for_an_offer_that_is_no_longer_current_is_ignored() {
        let mut h = Harness::new();
        h.join();
        h.offer_created(&[]);
        let a = h.answer(7);
        assert!(
            !a.iter().any(|x| matches!(x, Action::ApplyAnswer(_))),
            "{a:?}"
        );
        let a = h.answer(1);
        assert!(a.iter().any(|x| matches!(x, Action::ApplyAnswer(_))));
        // A duplicate of the same answer has no offer to match any more.
        let a = h.answer(1);
        assert!(!a.iter().any(|x| matches!(x, Action::ApplyAnswer(_))));
    }

    #[test]
    fn frames_flow_only_when_live_and_video_waits_for_a_keyframe() {
        let mut h = Harness::new();
        assert!(h.s.route_frame(OutputId(0), true).is_none());
        let (_, mid) = live_video(&mut h);
        assert!(
            h.s.route_frame(OutputId(0), false).is_none(),
            "delta frame before the first keyframe"
        );
        assert_eq!(h.s.route_frame(OutputId(0), true), Some(mid.as_str()));
        assert_eq!(h.s.route_frame(OutputId(0), false), Some(mid.as_str()));
    }

    #[test]
    fn remote_candidates_wait_for_the_remote_description() {
        let mut h = Harness::new();
        h.join();
        let trickle = |target: proto::SignalTarget| {
            Input::Signal(Resp::Trickle(proto::TrickleRequest {
                candidate_init: "{}".into(),
                target: target as i32,
                ..Default::default()
            }))
        };
        assert!(h.feed(trickle(proto::SignalTarget::Publisher)).is_empty());
        h.offer_created(&[]);
        let a = h.answer(1);
        let pos_answer = a
            .iter()
            .position(|x| matches!(x, Action::ApplyAnswer(_)))
            .unwrap();
        let pos_cand = a
            .iter()
            .position(|x| matches!(x, Action::AddRemoteCandidate(Pc::Publisher, _)))
            .unwrap();
        assert!(
            pos_answer < pos_cand,
            "candidates after the description: {a:?}"
        );
        assert_eq!(h.feed(trickle(proto::SignalTarget::Publisher)).len(), 1);
    }

    #[test]
    fn track_ending_before_the_join_completes() {
        let mut h = Harness::new();
        h.added(0, Codec::H264);
        h.added(1, Codec::Opus);
        assert!(h
            .feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(0))))
            .iter()
            .all(|a| !matches!(a, Action::Exit(_))));
        let a = h.join();
        assert_eq!(
            add_track_cids(&a).len(),
            1,
            "only the output still running is announced"
        );
    }

    #[test]
    fn track_ending_between_add_track_and_track_published() {
        let mut h = Harness::new();
        h.join();
        h.offer_created(&[]);
        h.answer(1);
        let c0 = add_track_cids(&h.added(0, Codec::H264)).pop().unwrap();
        h.added(1, Codec::Opus);
        h.feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(0))));
        let a = h.published(&c0, "TR_V");
        assert!(
            offers(&a).is_empty(),
            "an ended track gets no m-line: {a:?}"
        );
    }

    #[test]
    fn one_track_ends_while_others_go_on() {
        let mut h = Harness::new();
        let (_, mid) = live_video(&mut h);
        let c1 = add_track_cids(&h.added(1, Codec::Opus)).pop().unwrap();
        h.published(&c1, "TR_A");
        h.offer_created(&[(&c1, "2")]);
        h.answer(3);
        let a = h.feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(0))));
        let o = offers(&a);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].remove, vec![mid]);
        assert!(exit_of(&a).is_none(), "audio goes on");
        assert!(h.s.route_frame(OutputId(0), true).is_none());
        assert!(h.s.route_frame(OutputId(1), true).is_some());
        // The last one ends: leave, exit 0.
        let a = h.feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(1))));
        assert!(sent_leave(&a));
        assert_eq!(exit_of(&a), Some(Ok(())));
    }

    #[test]
    fn stop_during_connect_exits_cleanly_without_a_leave() {
        let mut h = Harness::new();
        h.added(0, Codec::H264);
        let a = h.feed(Input::Stop);
        assert!(!sent_leave(&a));
        assert!(a.contains(&Action::StopPipeline));
        assert_eq!(exit_of(&a), Some(Ok(())));
        assert!(h.s.is_done());
        // A join arriving after the stop changes nothing.
        assert!(h.join().is_empty());
    }

    #[test]
    fn stop_requested_twice_and_from_two_sources() {
        let mut h = Harness::new();
        live_video(&mut h);
        let a = h.feed(Input::Stop);
        assert!(sent_leave(&a));
        assert_eq!(exit_of(&a), Some(Ok(())));
        assert!(h.feed(Input::Stop).is_empty());
        assert!(h.feed(Input::Pipeline(PipelineEvent::Eos)).is_empty());
    }

    #[test]
    fn pipeline_eos_leaves_and_exits_zero_once() {
        let mut h = Harness::new();
        live_video(&mut h);
        let a = h.feed(Input::Pipeline(PipelineEvent::Eos));
        assert_eq!(
            a.iter()
                .filter(|x| matches!(x, Action::Signal(Req::Leave(_))))
                .count(),
            1
        );
        assert_eq!(exit_of(&a), Some(Ok(())));
        assert!(
            !a.contains(&Action::StopPipeline),
            "the pipeline already stopped itself"
        );
    }

    #[test]
    fn pipeline_error_leaves_with_a_runtime_error() {
        let mut h = Harness::new();
        live_video(&mut h);
        let a = h.feed(Input::Pipeline(PipelineEvent::Error(
            "pipeline error from src: boom".into(),
        )));
        assert!(sent_leave(&a));
        assert_eq!(
            exit_of(&a).unwrap().unwrap_err().exit_code(),
            crate::error::exit::RUNTIME
        );
    }

    #[test]
    fn server_disconnect_is_a_removal_with_its_own_exit_code() {
        let mut h = Harness::new();
        live_video(&mut h);
        let a = h.feed(Input::Signal(Resp::Leave(proto::LeaveRequest {
            reason: proto::DisconnectReason::ParticipantRemoved as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            ..Default::default()
        })));
        let e = exit_of(&a).unwrap().unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::REMOVED);
        assert!(e.to_string().contains("PARTICIPANT_REMOVED"), "{e}");
    }

    fn connect_of(actions: &[Action]) -> Option<Option<Resume>> {
        actions.iter().find_map(|a| match a {
            Action::Connect { resume, .. } => Some(resume.clone()),
            _ => None,
        })
    }

    #[test]
    fn signal_loss_during_a_negotiation_resumes_and_keeps_the_publications() {
        let mut h = Harness::new();
        let (cid0, _) = live_video(&mut h);
        let c1 = add_track_cids(&h.added(1, Codec::Opus)).pop().unwrap();
        h.published(&c1, "TR_A");
        h.offer_created(&[(&c1, "2")]);
        // The WebSocket drops while that offer is in flight; media is still up.
        let a = h.feed(Input::SignalClosed("reset".into()));
        assert!(a.contains(&Action::CloseSignal), "{a:?}");
        assert!(
            !a.contains(&Action::Disconnect),
            "the peer connections are kept: {a:?}"
        );
        assert!(exit_of(&a).is_none());
        // The answer that was in flight arrives late on the dead link: ignored.
        assert!(h.answer(3).is_empty());
        let a = h.feed(Input::Tick);
        let resume = connect_of(&a).expect("connects").expect("as a resume");
        assert_eq!(resume.participant_sid, "PA_1");
        let a = h.feed(Input::Signal(Resp::Reconnect(
            proto::ReconnectResponse::default(),
        )));
        let sync = a
            .iter()
            .find_map(|x| match x {
                Action::Signal(Req::SyncState(s)) => Some(s.clone()),
                _ => None,
            })
            .expect("sync_state after the resume");
        let synced: Vec<&str> = sync.publish_tracks.iter().map(|t| t.cid.as_str()).collect();
        assert!(
            synced.contains(&cid0.as_str()),
            "the live track is kept: {synced:?}"
        );
        assert!(add_track_cids(&a).is_empty(), "no track is published again");
        let o = offers(&a);
        assert_eq!(
            o.len(),
            1,
            "the offer that lost its answer is made again: {a:?}"
        );
        assert_eq!(
            o[0].add.iter().map(|m| m.cid.clone()).collect::<Vec<_>>(),
            vec![c1]
        );
        assert_eq!(
            h.s.route_frame(OutputId(0), true),
            Some("1"),
            "video keeps flowing"
        );
    }

    #[test]
    fn a_refused_resume_becomes_a_full_rejoin_with_fresh_cids() {
        let mut h = Harness::new();
        let (old_cid, _) = live_video(&mut h);
        h.feed(Input::SignalClosed("reset".into()));
        h.feed(Input::Tick);
        let a = h.feed(Input::SignalConnectFailed(Error::Auth("401".into())));
        assert!(a.contains(&Action::Disconnect), "{a:?}");
        assert!(exit_of(&a).is_none());
        let a = h.feed(Input::Tick);
        assert_eq!(connect_of(&a), Some(None), "a fresh join: {a:?}");
        assert!(
            h.s.route_frame(OutputId(0), true).is_none(),
            "frames are dropped while disconnected"
        );
        let a = h.join();
        let cids = add_track_cids(&a);
        assert_eq!(cids.len(), 1);
        assert_ne!(cids[0], old_cid, "fresh cid");
        assert!(offers(&a)[0].data_channels, "a new publisher connection");
    }

    #[test]
    fn media_loss_skips_the_resume() {
        let mut h = Harness::new();
        live_video(&mut h);
        h.feed(Input::IceDisconnected(Pc::Publisher));
        let a = h.feed(Input::SignalClosed("reset".into()));
        assert!(a.contains(&Action::Disconnect), "{a:?}");
        assert_eq!(connect_of(&h.feed(Input::Tick)), Some(None));
    }

    #[test]
    fn a_server_that_answers_a_resume_with_a_join_gets_a_clean_rejoin() {
        let mut h = Harness::new();
        live_video(&mut h);
        h.feed(Input::SignalClosed("reset".into()));
        h.feed(Input::Tick);
        let a = h.join();
        assert!(a.contains(&Action::Disconnect), "{a:?}");
        assert_eq!(connect_of(&h.feed(Input::Tick)), Some(None));
    }

    #[test]
    fn first_connection_failure_is_fatal_but_later_ones_are_retried() {
        let mut h = Harness::new();
        let a = h.feed(Input::SignalConnectFailed(Error::Connection(
            "refused".into(),
        )));
        assert_eq!(
            exit_of(&a).unwrap().unwrap_err().exit_code(),
            crate::error::exit::CONNECTION
        );

        let mut h = Harness::new();
        live_video(&mut h);
        h.feed(Input::SignalClosed("gone".into()));
        h.feed(Input::Tick);
        // The resume fails: a full rejoin follows at once.
        let a = h.feed(Input::SignalConnectFailed(Error::Connection(
            "refused".into(),
        )));
        assert!(exit_of(&a).is_none(), "{a:?}");
        assert_eq!(connect_of(&h.feed(Input::Tick)), Some(None));
        let a = h.feed(Input::SignalConnectFailed(Error::Connection(
            "refused".into(),
        )));
        assert!(exit_of(&a).is_none(), "{a:?}");
        // Backoff: the next attempt waits 300 ms.
        assert!(!h
            .feed(Input::Tick)
            .iter()
            .any(|x| matches!(x, Action::Connect { .. })));
        h.at(300);
        assert!(h
            .feed(Input::Tick)
            .iter()
            .any(|x| matches!(x, Action::Connect { .. })));
    }

    #[test]
    fn reconnect_backoff_is_quadratic_and_capped() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::from_millis(300));
        assert_eq!(reconnect_delay(2), Duration::from_millis(1200));
        assert_eq!(reconnect_delay(3), Duration::from_secs(2));
        assert_eq!(reconnect_delay(50), Duration::from_secs(2));
    }

    #[test]
    fn reconnect_gives_up_when_the_reconnect_timeout_runs_out() {
        let mut h = Harness::new();
        live_video(&mut h);
        h.feed(Input::SignalClosed("gone".into()));
        let mut exit = None;
        for _ in 0..200 {
            h.at(1000);
            let a = h.feed(Input::Tick);
            if a.iter().any(|x| matches!(x, Action::Connect { .. })) {
                let a = h.feed(Input::SignalConnectFailed(Error::Connection(
                    "refused".into(),
                )));
                if let Some(e) = exit_of(&a) {
                    exit = Some(e);
                    break;
                }
            }
        }
        let e = exit.expect("gives up").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONNECTION);
        assert!(e.to_string().starts_with("gave up reconnecting"), "{e}");
    }

    #[test]
    fn a_refused_token_while_rejoining_is_an_auth_error() {
        let mut h = Harness::new();
        live_video(&mut h);
        h.feed(Input::IceDisconnected(Pc::Publisher));
        h.feed(Input::SignalClosed("gone".into()));
        h.feed(Input::Tick);
        let a = h.feed(Input::SignalConnectFailed(Error::Auth("401".into())));
        assert_eq!(
            exit_of(&a).unwrap().unwrap_err().exit_code(),
            crate::error::exit::AUTH
        );
    }

    #[test]
    fn stop_during_a_reconnect_exits_zero_at_once() {
        let mut h = Harness::new();
        live_video(&mut h);
        h.feed(Input::SignalClosed("gone".into()));
        let a = h.feed(Input::Stop);
        assert!(!sent_leave(&a), "no link to send it on");
        assert_eq!(exit_of(&a), Some(Ok(())));
    }

    #[test]
    fn server_resume_or_reconnect_request_rejoins() {
        for action in [
            proto::leave_request::Action::Resume,
            proto::leave_request::Action::Reconnect,
        ] {
            let mut h = Harness::new();
            live_video(&mut h);
            let a = h.feed(Input::Signal(Resp::Leave(proto::LeaveRequest {
                reason: proto::DisconnectReason::StateMismatch as i32,
                action: action as i32,
                ..Default::default()
            })));
            assert!(a.contains(&Action::Disconnect), "{a:?}");
            assert!(exit_of(&a).is_none());
        }
    }

    #[test]
    fn ice_disconnected_for_long_reconnects_but_a_short_blip_does_not() {
        let mut h = Harness::new();
        live_video(&mut h);
        h.feed(Input::IceDisconnected(Pc::Publisher));
        h.at(5_000);
        h.feed(Input::Signal(Resp::PongResp(proto::Pong::default())));
        assert!(!h.feed(Input::Tick).contains(&Action::Disconnect));
        h.feed(Input::Connected(Pc::Publisher));
        h.at(20_000);
        h.feed(Input::Signal(Resp::PongResp(proto::Pong::default())));
        assert!(
            !h.feed(Input::Tick).contains(&Action::Disconnect),
            "it came back"
        );
        h.feed(Input::IceDisconnected(Pc::Publisher));
        h.at(10_500);
        h.feed(Input::Signal(Resp::PongResp(proto::Pong::default())));
        assert!(h.feed(Input::Tick).contains(&Action::Disconnect));
    }

    #[test]
    fn add_track_refused_is_an_auth_error() {
        let mut h = Harness::new();
        h.join();
        let cid = add_track_cids(&h.added(0, Codec::H264)).pop().unwrap();
        let a = h.feed(Input::Signal(Resp::RequestResponse(
            proto::RequestResponse {
                reason: proto::request_response::Reason::NotAllowed as i32,
                request: Some(proto::request_response::Request::AddTrack(
                    proto::AddTrackRequest {
                        cid,
                        ..Default::default()
                    },
                )),
                ..Default::default()
            },
        )));
        let e = exit_of(&a).unwrap().unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::AUTH);
        assert!(e.to_string().contains("enc0"), "{e}");
    }

    #[test]
    fn pings_go_out_every_interval_and_silence_is_a_lost_link() {
        let mut h = Harness::new();
        h.join();
        h.at(5_100);
        let a = h.feed(Input::Tick);
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Signal(Req::PingReq(_)))),
            "{a:?}"
        );
        h.at(16_000);
        let a = h.feed(Input::Tick);
        assert!(
            a.contains(&Action::Disconnect),
            "silence means a dead link: reconnect {a:?}"
        );
    }

    #[test]
    fn keyframe_requests_are_rate_limited() {
        let mut h = Harness::new();
        let (_, mid) = live_video(&mut h);
        h.at(600);
        let count = |a: &[Action]| {
            a.iter()
                .filter(|x| matches!(x, Action::RequestKeyframe(_)))
                .count()
        };
        assert_eq!(
            count(&h.feed(Input::KeyframeRequest { mid: mid.clone() })),
            1
        );
        assert_eq!(
            count(&h.feed(Input::KeyframeRequest { mid: mid.clone() })),
            0,
            "within 500 ms"
        );
        h.at(500);
        assert_eq!(count(&h.feed(Input::KeyframeRequest { mid })), 1);
    }

    #[test]
    fn opus_stereo_and_dtx_become_audio_features() {
        let mut h = Harness::new();
        h.join();
        let mut o = output(0, Codec::Opus);
        o.format.channels = Some(2);
        o.format.opus_dtx = Some(false);
        let a = h.feed(Input::Pipeline(PipelineEvent::OutputAdded(o)));
        let req = add_tracks(&a).pop().unwrap();
        assert!(req
            .audio_features
            .contains(&(proto::AudioTrackFeature::TfStereo as i32)));
        assert!(req
            .audio_features
            .contains(&(proto::AudioTrackFeature::TfNoDtx as i32)));
        let mut o = output(1, Codec::Opus);
        o.format.opus_dtx = Some(true);
        let a = h.feed(Input::Pipeline(PipelineEvent::OutputAdded(o)));
        let req = add_tracks(&a).pop().unwrap();
        assert!(
            req.audio_features.is_empty(),
            "mono with DTX: {:?}",
            req.audio_features
        );
        assert_eq!(req.r#type, proto::TrackType::Audio as i32);
    }

    #[test]
    fn delay_holds_publishing_but_not_joining() {
        let now = Instant::now();
        let config = SessionConfig {
            publish_delay: Duration::from_secs(2),
            ..SessionConfig::default()
        };
        let mut s = Session::new(config, now, 1);
        let mut h = Harness {
            s: {
                s.poll_action();
                s
            },
            now,
        };
        h.added(0, Codec::Vp8);
        let a = h.join();
        assert!(
            add_track_cids(&a).is_empty(),
            "nothing published during --delay: {a:?}"
        );
        assert_eq!(
            offers(&a).len(),
            1,
            "the connection itself is set up at once"
        );
        h.at(1_000);
        assert!(add_track_cids(&h.feed(Input::Tick)).is_empty());
        h.at(1_100);
        assert_eq!(add_track_cids(&h.feed(Input::Tick)).len(), 1);
        assert!(h.s.next_deadline() <= h.now + Duration::from_millis(500));
    }

    #[test]
    fn cids_are_fresh_per_publication() {
        let mut h = Harness::new();
        h.join();
        let a = add_track_cids(&h.added(0, Codec::H264));
        let b = add_track_cids(&h.added(1, Codec::H264));
        assert_ne!(a, b);
        assert!(a[0].starts_with("TR_"));
    }
}

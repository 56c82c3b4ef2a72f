//! The session core: every decision about the LiveKit session, and nothing else.
//!
//! [`Session`] is sans-IO in the style of str0m's `Rtc`: [`Session::handle`] takes an
//! [`Input`] (a signal message, a peer-connection event, a pipeline event, a stop request, or
//! [`Input::Timeout`]) with the time passed in, and queues [`Action`]s that
//! [`Session::poll_action`] hands out; [`Session::poll_timeout`] is the exact moment it next
//! needs [`Input::Timeout`], read from one timer table. Frames enter once each through
//! [`Session::route_frame`], which says whether and how a frame goes out.
//!
//! It owns join state, publications, the one-offer-at-a-time negotiation, per-track end,
//! keep-alive, reconnects and leave, and the policies that need numbers: which token to
//! present, how running time maps to RTP time, which payload type a track uses, how the offer
//! is ordered. It does no I/O, never reads the clock, and imports neither tokio nor GStreamer;
//! of str0m it uses only the plain `Mid` id, never an `Rtc`. Drivers do the rest and feed
//! the results back in. That is what lets the unit tests drive it through hostile orderings.
//!
//! The parts, each in its own file:
//! - [`connection`]: connecting, the connect deadline, losing the link, resume vs rejoin,
//!   leaving;
//! - [`signalling`]: the server's messages (join, answers, trickle, refusals, leave);
//! - [`publications`]: outputs becoming tracks, the negotiation, going live, keyframes, ends;
//!   [`tracks`] holds their nouns;
//! - [`frames`]: routing a frame (media clock, payload type);
//! - [`held`]: frames kept for the first viewer of a stream that cannot make keyframes;
//! - [`restart`]: `--restart-pipeline`, tracks kept through a pipeline's restart;
//! - [`simulcast`]: one track in several layers, paused when nobody wants them;
//! - [`sdp`]: the offer's codec order;
//! - [`ice`]: which network paths to gather (host UDP, ICE over TCP, TURN relays);
//! - [`bitrate`]: congestion control, the estimate split into each encoder's target;
//! - [`burst`]: keyframes that go to the socket at once while the link has room, and the
//!   room the estimator is asked to find for them;
//! - [`timers`]: every deadline in one table.

mod bitrate;
mod burst;
mod connection;
mod frames;
mod held;
mod ice;
mod publications;
mod restart;
pub mod sdp;
mod signalling;
mod simulcast;
mod timers;
mod tracks;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
pub use str0m::media::Mid;

use crate::error::{Error, RtcError};
use crate::media::{Codec, MediaKind, OutputId, PipelineEvent, TrackCid, TrackSid};

use bitrate::Congestion;
pub use bitrate::START_ESTIMATE;
pub use connection::{reconnect_delay, ConnectError, ConnectStep, Resume};
use connection::{Link, Phase};
use frames::MediaClock;
pub use frames::{Payload, Route};
pub use held::Keep;
pub use ice::{IcePolicy, RelayServer, RelayTransport};
use signalling::Remote;
pub use simulcast::Group as SimulcastGroup;
use timers::{Timer, TimerTable};
use tracks::Publications;

/// How long the server may take to answer an AddTrackRequest (both LiveKit SDKs use 10 s).
pub const TRACK_PUBLISHED_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for the answer to one of our offers.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Minimum spacing of keyframe requests to one encoder.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// Publisher ICE may be disconnected this long before we reconnect.
pub const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(10);
/// A video track that went live but has not produced a keyframe yet is asked again this often.
pub const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// Which of the two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    fn name(self) -> &'static str {
        match self {
            Pc::Publisher => "publisher",
            Pc::Subscriber => "subscriber",
        }
    }
}

/// A media section the publisher must add to its next offer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMedia {
    pub output: OutputId,
    pub kind: MediaKind,
    pub codec: Codec,
    /// msid track id: LiveKit matches it against AddTrackRequest.cid.
    pub cid: TrackCid,
    /// msid stream id.
    pub stream_id: String,
    /// H.264: the stream's profile-level-id, so the offer can carry it.
    pub h264_profile_level_id: Option<String>,
    /// Simulcast: the layers' rids, lowest first (empty for one layer).
    pub rids: Vec<&'static str>,
}

/// Everything the next publisher offer must change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OfferChanges {
    pub add: Vec<NewMedia>,
    /// Media sections whose sender is removed (the output ended).
    pub remove: Vec<Mid>,
    /// First offer: create the `_reliable` and `_lossy` data channels.
    pub data_channels: bool,
}

/// Which token the driver presents on a connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChoice {
    /// The credentials' own token: the one the user gave, or a freshly minted one.
    Credentials,
    /// The server's refreshed token (a given token may have expired by now).
    Refreshed(String),
}

/// Where the connection to the room stands, as the session reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// In the room, on the configured server of this index: joined for the first time,
    /// rejoined, or (`resumed`) the same session kept over a new signalling connection.
    Joined {
        /// Index of the server in the configured URLs.
        server: usize,
        /// The same session, kept (a resume), rather than a fresh join.
        resumed: bool,
    },
    /// The connection was lost; `resume`: only the signalling connection, the session is
    /// being resumed; otherwise a full rejoin is under way.
    Reconnecting {
        /// Only the signalling connection is being re-made (media kept).
        resume: bool,
    },
}

/// What the drivers must do.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one value per event, never stored in bulk
pub enum Action {
    /// The connection's state changed (for whoever watches: logs, the library's events).
    State(ConnectionState),
    /// Open the signalling connection with this token; `resume` asks the server to resume
    /// the session of this participant (the peer connections are kept) instead of joining
    /// anew. Report [`Input::ConnectStep`]s, then [`Input::SignalConnected`] or
    /// [`Input::SignalConnectFailed`].
    Connect {
        /// Which of the configured servers (an index into `SessionConfig::servers`).
        server: usize,
        token: TokenChoice,
        resume: Option<Resume>,
    },
    /// Gather these paths for the peer connections created from now on.
    ConfigureIce(IcePolicy),
    /// Drop the signalling connection (and any attempt in progress) only: a resume follows;
    /// the peer connections stay.
    CloseSignal,
    /// Drop the signalling connection and both peer connections (before a full reconnect).
    Disconnect,
    /// Send a message on the signalling WebSocket.
    Signal(Req),
    /// Create the publisher offer with these changes; feed back [`Input::OfferCreated`].
    CreateOffer(OfferChanges),
    /// Apply the server's answer to our current offer on the publisher; feed back
    /// [`Input::AnswerApplied`].
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
    /// Send the frames kept for this output (see [`Keep`]) on these routes, one each in
    /// order, then forget them: its track's first viewer starts on them.
    SendKept {
        output: OutputId,
        routes: Vec<Route>,
    },
    /// Set this output's encoder's target bitrate (bit/s).
    SetBitrate {
        output: OutputId,
        bps: u64,
        /// The output's share of the estimate; `bps` is lower when its encoder is known to
        /// send more than it is told.
        share: u64,
    },
    /// The bandwidth estimator's bounds (bit/s): it never assumes less than `min`, and probes
    /// for up to `desired`.
    SetBandwidthLimits {
        min: u64,
        desired: u64,
    },
    /// This output cannot adapt and sends more than the link holds (for the statistics).
    CannotAdapt {
        output: OutputId,
    },
    /// Announce a change in what we publish (for the status line and logs); `rid` names the
    /// simulcast layer an output feeds.
    TrackLive {
        output: OutputId,
        sid: TrackSid,
        rid: Option<&'static str>,
    },
    /// Start or pause the encoding of a simulcast layer's output.
    SetLayerActive {
        output: OutputId,
        active: bool,
    },
    TrackEnded {
        output: OutputId,
    },
    /// Stop the pipeline (set it to NULL) without waiting for it.
    StopPipeline,
    /// Stop the pipeline, build it anew from the same description and start it.
    RestartPipeline,
    /// After a restart, output `output` took over the track of output `old`.
    TrackResumed {
        old: OutputId,
        output: OutputId,
    },
    /// Close the signalling connection (after flushing what was sent, the leave included) and
    /// the peer connections, let the pipeline finish stopping, then end the process with this
    /// result. Always the last action.
    Exit(Result<(), Error>),
}

/// What happened.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one value per event, never stored in bulk
pub enum Input {
    /// A step of opening the signalling connection started.
    ConnectStep(ConnectStep),
    /// The signalling WebSocket is open (the join response comes as a message).
    SignalConnected,
    /// Could not open the signalling WebSocket.
    SignalConnectFailed(ConnectError),
    /// A message from the server.
    Signal(Resp),
    /// The signalling WebSocket closed or failed.
    SignalClosed(String),
    /// The publisher offer we asked for, with the mid each new media got.
    OfferCreated {
        sdp: String,
        mids: Vec<(TrackCid, Mid)>,
    },
    /// The answer is applied; these payload types were negotiated for each sending mid.
    AnswerApplied { payloads: Vec<(Mid, Vec<Payload>)> },
    /// The subscriber answer we asked for.
    AnswerCreated { sdp: String, id: u32 },
    /// A peer connection is connected (ICE + DTLS).
    Connected(Pc),
    /// ICE lost connectivity; it may come back by itself.
    IceDisconnected(Pc),
    /// A peer connection lost connectivity for good (ICE failed / DTLS closed).
    Disconnected(Pc),
    /// An operation on a peer connection failed in the driver.
    RtcFailed(RtcError),
    /// The publisher connection's bandwidth estimate (bit/s), with what each output sent over
    /// the last interval (bit/s).
    BandwidthEstimate {
        bps: u64,
        sent: Vec<(OutputId, u64)>,
    },
    /// The publisher connection's estimator's latest value (bit/s), which `BandwidthEstimate`
    /// averages over seconds: it decides whether a keyframe may burst.
    LinkCapacity(u64),
    /// A local candidate found after the SDP was made (a relay allocation).
    LocalCandidate { pc: Pc, candidate: String },
    /// The remote asked for a keyframe on this publisher mid (PLI/FIR), on one simulcast
    /// layer when `rid` says.
    KeyframeRequest { mid: Mid, rid: Option<String> },
    /// From the pipeline driver.
    Pipeline(PipelineEvent),
    /// Stop: SIGINT/SIGTERM.
    Stop,
    /// [`Session::poll_timeout`] has come.
    Timeout,
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
    /// Every attempt to join (or resume), from the TCP connect to the server's response,
    /// must complete within this (`--connect-timeout`).
    pub connect_timeout: Duration,
    /// The servers as messages name them (`host:port`), in the order to try them; at least
    /// one.
    pub servers: Vec<String>,
    /// The user gave a token (rather than a key and secret to mint one): on a reconnect the
    /// server's refreshed token is presented, since the given one may have expired.
    pub token_given: bool,
    /// `--force-relay`: only TURN relays, never a host candidate.
    pub force_relay: bool,
    /// Simulcast groups (`--simulcast`): outputs that are one track, highest first.
    pub simulcast: Vec<simulcast::Group>,
    /// `--restart-pipeline`: restart a failed pipeline (or an ended live one) instead of
    /// leaving.
    pub restart_pipeline: bool,
    /// `--min-bitrate` / `--max-bitrate` for every video output (bit/s).
    pub min_bitrate: Option<u64>,
    pub max_bitrate: Option<u64>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            publish_delay: Duration::ZERO,
            reconnect_timeout: Duration::from_secs(60),
            // The timeout is the real bound; this only stops a runaway loop.
            max_reconnect_attempts: 100,
            connect_timeout: Duration::from_secs(10),
            servers: vec!["the server".into()],
            token_given: true,
            force_relay: false,
            simulcast: Vec::new(),
            restart_pipeline: false,
            min_bitrate: None,
            max_bitrate: None,
        }
    }
}

/// The session core. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    started: Instant,
    now: Instant,
    timers: TimerTable,
    link: Link,
    remote: Remote,
    pubs: Publications,
    /// The pipeline stopped (or was told to): no second stop.
    pipeline_stopped: bool,
    congestion: Congestion,
    simulcast: simulcast::Simulcast,
    /// A pipeline restart in progress.
    restart: Option<restart::Restart>,
    /// The pipeline has a live source (its end is not the end of the stream).
    pipeline_live: bool,
    /// The estimator bounds last given (min, desired).
    congestion_limits: Option<(u64, u64)>,
    clock: MediaClock,
    actions: VecDeque<Action>,
}

impl Session {
    /// `now` starts the session clock; `cid_seed` makes cids unique per process (random in
    /// production, fixed in tests). The first action is the connection.
    pub fn new(config: SessionConfig, now: Instant, cid_seed: u64) -> Session {
        let groups = config.simulcast.clone();
        let mut session = Session {
            config,
            phase: Phase::Joining,
            started: now,
            now,
            timers: TimerTable::default(),
            link: Link::default(),
            remote: Remote::default(),
            pubs: Publications::new(cid_seed),
            pipeline_stopped: false,
            congestion: Congestion::default(),
            simulcast: simulcast::Simulcast {
                groups,
                ..Default::default()
            },
            restart: None,
            pipeline_live: false,
            congestion_limits: None,
            clock: MediaClock::starting_at(frames::MEDIA_START),
            actions: VecDeque::new(),
        };
        session.connect(None);
        session
    }

    /// Next action for the drivers, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True while actions are queued.
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// The moment the core next needs [`Input::Timeout`], if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// True once the session has decided to end.
    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The output whose track is sent on publisher `mid` (for statistics).
    pub fn output_for_mid(&self, mid: Mid) -> Option<OutputId> {
        self.pubs.output_for_mid(mid)
    }

    /// Feed one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.now = now.max(self.now);
        if self.phase == Phase::Done {
            return;
        }
        match input {
            Input::ConnectStep(step) => self.on_connect_step(step),
            Input::SignalConnected => self.on_connect_step(ConnectStep::Response),
            Input::SignalConnectFailed(e) => {
                let e = connection::classify(e, self.server_name());
                self.connect_failed(e)
            }
            Input::Signal(msg) => {
                self.on_message();
                self.on_signal(msg);
            }
            Input::SignalClosed(why) => self.on_signal_closed(why),
            Input::OfferCreated { sdp, mids } => self.on_offer_created(sdp, mids),
            Input::AnswerApplied { payloads } => self.on_answer_applied(payloads),
            Input::AnswerCreated { sdp, id } => self.on_subscriber_answer(sdp, id),
            Input::Connected(pc) => self.on_connected(pc),
            Input::IceDisconnected(pc) => self.on_ice_disconnected(pc),
            Input::Disconnected(pc) => {
                if self.phase == Phase::Joined {
                    self.lost(format!("the {} peer connection failed", pc.name()));
                }
            }
            Input::RtcFailed(e) => {
                if self.phase == Phase::Joined {
                    self.lost(format!("WebRTC negotiation failed: {e}"));
                }
            }
            Input::LocalCandidate { pc, candidate } => self.on_local_candidate(pc, candidate),
            Input::BandwidthEstimate { bps, sent } => self.on_estimate(bps, sent),
            Input::LinkCapacity(bps) => self.on_capacity(bps),
            Input::KeyframeRequest { mid, rid } => self.on_keyframe_request(mid, rid.as_deref()),
            Input::Pipeline(ev) => self.on_pipeline(ev),
            Input::Stop => self.leave(Ok(())),
            Input::Timeout => self.on_timeout(),
        }
    }

    /// Every timer that has come, in order.
    fn on_timeout(&mut self) {
        while let Some(timer) = self.timers.pop_expired(self.now) {
            if self.phase == Phase::Done {
                return;
            }
            match timer {
                Timer::Connect => self.on_connect_deadline(),
                Timer::Retry => self.retry(),
                Timer::Publish => self.announce_tracks(),
                Timer::Ping => self.ping(),
                Timer::Silence => self.lost_signal(format!(
                    "the server stopped answering (no message for {} s)",
                    self.link.ping_timeout.as_secs()
                )),
                Timer::MediaLost => self.lost(format!(
                    "media connectivity to the server was lost for {} s",
                    ICE_DISCONNECTED_TIMEOUT.as_secs()
                )),
                Timer::Answer => self.lost(format!(
                    "the server did not answer our offer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                )),
                Timer::TrackConfirm(id) => {
                    let name = self.pubs.element_of(id);
                    self.lost(format!(
                        "the server did not confirm the track for {name} within {} s",
                        TRACK_PUBLISHED_TIMEOUT.as_secs()
                    ))
                }
                Timer::KeyframeRetry(id) => self.retry_keyframe(id),
                Timer::SendKept(id) => self.send_kept(id),
                Timer::PipelineRestart => self.restart_pipeline(),
                Timer::OutputsBack => self.outputs_back_deadline(),
                Timer::Probe => self.probe_for_room(),
                Timer::StartRamp => self.start_ramp_over(),
                Timer::RigidOver(id) => self.warn_rigid_over(id),
            }
        }
    }

    /// The server of the current connection, as messages name it.
    fn server_name(&self) -> &str {
        self.config
            .servers
            .get(self.link.server)
            .map_or("the server", String::as_str)
    }

    fn send(&mut self, msg: Req) {
        self.actions.push_back(Action::Signal(msg));
    }
}

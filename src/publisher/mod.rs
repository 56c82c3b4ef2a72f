//! The library: publish encoded media into a LiveKit room from any Rust program, without
//! libwebrtc.
//!
//! ```no_run
//! use std::time::Duration;
//! use gstreamer_publisher::publisher::{Codec, EncodedFrame, Event, Options, Publisher, TrackSpec};
//!
//! # async fn run(h264_access_units: Vec<Vec<u8>>) -> gstreamer_publisher::error::Result<()> {
//! let options = Options::new("wss://my-project.livekit.cloud", std::env::var("LIVEKIT_TOKEN").unwrap())?;
//! let mut publisher = Publisher::connect(options).await?;
//! let camera = publisher.add_track(TrackSpec::new("camera", Codec::H264).size(1280, 720))?;
//! for (i, au) in h264_access_units.into_iter().enumerate() {
//!     let at = Duration::from_millis(33 * i as u64);
//!     camera.write(EncodedFrame::new(au, at, i % 60 == 0)).ok();
//!     while let Some(event) = publisher.try_event() {
//!         if let Event::KeyframeRequested { .. } = event { /* ask the encoder for one */ }
//!     }
//! }
//! camera.end();
//! publisher.close().await
//! # }
//! ```
//!
//! A [`Publisher`] runs on the tokio runtime it was started from, as one task that owns the
//! session core and both peer connections. Tracks are added at any time, before the join is
//! complete too; each becomes live (its first frame a keyframe) once the server accepts it.
//! What the room asks of the media comes back as [`Event`]s: keyframe requests, target
//! bitrates from congestion control, simulcast layers to pause or resume. Reconnection
//! (resume or rejoin, across several servers), keyframes, browser-safe packetization and
//! statistics are the same as the command-line tool's, which is built on this API: its
//! pipeline (the `pipeline` module) hands its events and frames over with
//! [`Publisher::source_channels`], each frame in one queue from the appsink to the task.
//!
//! Frames are written with their timestamp on one clock shared by every track of the
//! publisher (for GStreamer: the running time), so audio and video stay in sync.

mod credentials;
mod engine;
mod events;
mod server_url;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::error::{Error, Result};
pub use crate::media::{
    Codec, MediaKind, OutputId as TrackId, Source, StreamFormat, TrackSettings, TrackSid,
};
use crate::media::{Frame, Output, PipelineEvent};
pub use crate::session::ConnectionState;
pub use crate::stats::Report;
pub use credentials::{CredentialParts, Credentials, MissingCredential};
pub use server_url::normalise_url;

/// Starts the crypto library's one-time set-up (about 30 ms of CPU, for its entropy source) on
/// a thread of its own. [`Publisher::start`] does it too; a program that calls this first thing
/// (before building its pipeline) takes that time off its start-up. Calling it again does
/// nothing.
pub fn warm_up() {
    crate::rtc::warm_up();
}

/// How many frames may wait for the publisher's task before [`LocalTrack::write`] refuses one.
const FRAME_QUEUE: usize = 256;

/// Where and how to connect, and the policies of the session.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server URLs (`ws://`, `wss://`, `http://`, `https://`): the first that answers is
    /// used, and a rejoin tries the others in turn. At least one.
    pub urls: Vec<url::Url>,
    /// The token, or a key and secret to mint one for every connection.
    pub credentials: Credentials,
    /// Each connection attempt (TCP, TLS, WebSocket upgrade, join response) must finish in
    /// this time. Default 10 s.
    pub connect_timeout: Duration,
    /// Give up when a lost connection cannot be re-established in this time. Default 60 s.
    pub reconnect_timeout: Duration,
    /// Wait this long after joining before publishing. Default none.
    pub publish_delay: Duration,
    /// A CA certificate (PEM) to trust besides the system's roots, for `wss://` and `turns:`.
    pub ca_file: Option<PathBuf>,
    /// Send media only through the server's TURN relays.
    pub force_relay: bool,
    /// Bounds of every video track's target bitrate (bit/s); per track in
    /// [`TrackSpec::settings`]. Default: 150 kbit/s up to the track's configured bitrate.
    pub min_bitrate: Option<u64>,
    /// See `min_bitrate`.
    pub max_bitrate: Option<u64>,
    /// Simulcast groups: names of tracks (as [`TrackSpec::name`], or `name.pad`) that carry
    /// one picture at decreasing sizes, highest first; each group is published as one track.
    pub simulcast: Vec<Vec<String>>,
    /// When the media source fails ([`Publisher::source_failed`]), or a live source ends,
    /// ask for it to be restarted ([`Event::RestartSource`]) with backoff, for up to
    /// `reconnect_timeout`, instead of leaving; tracks that come back keep their publication.
    pub restart_source: bool,
    /// How often [`Event::Stats`] comes. Default 2 s.
    pub stats_interval: Duration,
    /// Settings for the outputs of a source given with
    /// [`Publisher::source_channels`], each for the outputs its selector names (an element,
    /// or `element.pad`); the first that selects an output wins (`--track`).
    pub tracks: Vec<crate::media::TrackOption>,
}

impl Options {
    /// Connect to `url` with an access token (it needs the `canPublish` grant).
    pub fn new(url: &str, token: impl Into<String>) -> Result<Options> {
        Ok(Options::with_credentials(
            vec![normalise_url(url)?],
            Credentials::Token(token.into()),
        ))
    }

    /// Fails on what would fail every connection: no URL, credentials that cannot make a
    /// token, a `ca_file` that cannot be read.
    pub fn check(&self) -> Result<()> {
        self.tls().map(|_| ())
    }

    /// The TLS configuration of every connection, after the checks of [`check`](Self::check).
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>> {
        if self.urls.is_empty() {
            return Err(Error::Usage("no server URL".into()));
        }
        self.credentials.token()?;
        crate::tls::client_config(self.ca_file.as_deref())
    }

    /// Connect to `urls` with these credentials (a token, or a key and secret to mint one
    /// for every connection), with the default policies.
    pub fn with_credentials(urls: Vec<url::Url>, credentials: Credentials) -> Options {
        Options {
            urls,
            credentials,
            connect_timeout: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(60),
            publish_delay: Duration::ZERO,
            ca_file: None,
            force_relay: false,
            min_bitrate: None,
            max_bitrate: None,
            simulcast: Vec::new(),
            restart_source: false,
            stats_interval: Duration::from_secs(2),
            tracks: Vec::new(),
        }
    }
}

/// What a track carries and how it is presented.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSpec {
    /// The output's name: the track's name in the room unless `settings.name` says
    /// otherwise, and what simulcast groups and logs call it.
    pub name: String,
    /// A second part of the name (`name.pad` in selectors); for GStreamer, the pad.
    pub pad: String,
    /// Its codec.
    pub codec: Codec,
    /// What is known of the stream: sizes, frame rate, sample rate, the encoder's bitrate
    /// and whether it follows [`Event::TargetBitrate`] (`adaptable`).
    pub format: StreamFormat,
    /// How the stream is described in logs (for GStreamer: its caps).
    pub description: String,
    /// Name, source and bitrate bounds in the room.
    pub settings: TrackSettings,
}

impl TrackSpec {
    /// A track of `codec` named `name`; a video track is a camera, an audio track a
    /// microphone unless [`source`](Self::source) says otherwise.
    pub fn new(name: impl Into<String>, codec: Codec) -> TrackSpec {
        TrackSpec {
            name: name.into(),
            pad: "src".into(),
            codec,
            format: StreamFormat::default(),
            description: codec.mime().into(),
            settings: TrackSettings::default(),
        }
    }

    /// Video: the picture's size (the server tells subscribers; simulcast layers need it).
    pub fn size(mut self, width: u32, height: u32) -> TrackSpec {
        self.format.width = Some(width);
        self.format.height = Some(height);
        self
    }

    /// Video: frames per second as a fraction.
    pub fn framerate(mut self, numerator: i32, denominator: i32) -> TrackSpec {
        self.format.framerate = Some((numerator, denominator));
        self
    }

    /// Audio: sample rate and channels.
    pub fn audio(mut self, sample_rate: u32, channels: u32) -> TrackSpec {
        self.format.sample_rate = Some(sample_rate);
        self.format.channels = Some(channels);
        self
    }

    /// The encoder's bitrate (bit/s); `adaptable` when it follows [`Event::TargetBitrate`].
    pub fn bitrate(mut self, bps: u64, adaptable: bool) -> TrackSpec {
        self.format.encoder_bitrate = Some(bps);
        self.format.adaptable = adaptable;
        self
    }

    /// The encoder makes a keyframe when asked ([`Event::KeyframeRequested`]): the track
    /// then starts on the keyframe it asks for. Without this, frames flow from the moment
    /// the track is live, viewers start at the stream's next keyframe, and the statistics
    /// count the requests that could not be served.
    pub fn keyframes_on_request(mut self, yes: bool) -> TrackSpec {
        self.format.keyframes_on_request = yes;
        self
    }

    /// What subscribers are told the track is.
    pub fn source(mut self, source: Source) -> TrackSpec {
        self.settings.source = Some(source);
        self
    }

    /// The name subscribers see, when it differs from [`name`](Self::name).
    pub fn title(mut self, title: impl Into<String>) -> TrackSpec {
        self.settings.name = Some(title.into());
        self
    }

    fn into_output(self, id: TrackId) -> Output {
        Output {
            id,
            element: self.name,
            pad: self.pad,
            codec: self.codec,
            format: self.format,
            caps: self.description,
            settings: self.settings,
        }
    }
}

/// One encoded frame: an H.264 access unit (Annex B), a VP8 or VP9 frame, an AV1 temporal
/// unit (low-overhead OBUs), or an Opus packet.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// The encoded bytes.
    pub data: Arc<[u8]>,
    /// When the frame is to be presented, on the clock shared by every track of the
    /// publisher; it maps to the RTP timestamp.
    pub timestamp: Duration,
    /// How long it lasts, when known.
    pub duration: Option<Duration>,
    /// A video keyframe (a track starts, and restarts after a request, on one). Audio: true.
    pub keyframe: bool,
    /// When the frame was made (for the statistics' latency figures). Default: now.
    pub captured: Instant,
}

impl EncodedFrame {
    /// A frame made now, of unknown duration.
    pub fn new(data: impl Into<Arc<[u8]>>, timestamp: Duration, keyframe: bool) -> EncodedFrame {
        EncodedFrame {
            data: data.into(),
            timestamp,
            duration: None,
            keyframe,
            captured: Instant::now(),
        }
    }
}

/// Why [`LocalTrack::write`] did not take a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The publisher has 256 frames waiting: the network side fell behind. The
    /// frame is dropped; keep writing (a keyframe request will follow if needed).
    Full,
    /// The publisher has ended.
    Closed,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteError::Full => "the publisher's frame queue is full; the frame was dropped",
            WriteError::Closed => "the publisher has ended",
        })
    }
}

impl std::error::Error for WriteError {}

/// What the room asks of the media, and what happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The connection's state changed (joined, resumed, reconnecting).
    Connection(ConnectionState),
    /// The track is live in the room under this server id.
    TrackPublished {
        /// The track.
        track: TrackId,
        /// Its id on the server (`TR_…`).
        sid: TrackSid,
    },
    /// The track was unpublished (it ended).
    TrackEnded {
        /// The track.
        track: TrackId,
    },
    /// A viewer needs a keyframe on this track: make the next frame one.
    KeyframeRequested {
        /// The track.
        track: TrackId,
    },
    /// Congestion control's target for this track's encoder (bit/s).
    TargetBitrate {
        /// The track.
        track: TrackId,
        /// Bits per second.
        bps: u64,
    },
    /// A simulcast layer nobody watches (`active: false`) can stop encoding; when it is
    /// wanted again its next frame must be a keyframe.
    LayerActive {
        /// The layer's track (each layer is written as a track of its own).
        track: TrackId,
        /// Wanted by a viewer.
        active: bool,
    },
    /// `restart_source`: restart the media source now and add its tracks again (a track
    /// with the same name, pad and codec takes over its old publication); report
    /// [`Publisher::source_started`].
    RestartSource,
    /// The publisher is leaving: stop producing media.
    StopSource,
    /// Statistics of the last interval; `last` for the totals at the end.
    Stats {
        /// The figures.
        report: Box<Report>,
        /// The totals at the end.
        last: bool,
    },
}

/// A connection to a LiveKit room that publishes tracks. See the module docs.
pub struct Publisher {
    /// What the source says (tracks added, changed, ended; started, ended, failed).
    media: mpsc::UnboundedSender<PipelineEvent>,
    stop: mpsc::UnboundedSender<()>,
    frames: mpsc::Sender<Frame>,
    events: events::EventReceiver,
    task: tokio::task::JoinHandle<Result<()>>,
    next_id: AtomicU32,
}

impl Publisher {
    /// Starts connecting and returns at once: tracks may be added meanwhile, and media
    /// written to them is sent once they are live. Must be called within a tokio runtime.
    /// Fails only on credentials that cannot make a token and an unreadable `ca_file`;
    /// connection failures end the publisher (see [`wait`](Self::wait)).
    pub fn start(options: Options) -> Result<Publisher> {
        let (media, media_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = mpsc::unbounded_channel();
        let (frames, frame_rx) = mpsc::channel(FRAME_QUEUE);
        let (event_tx, events) = events::channel();
        let engine = engine::Engine::new(options, event_tx)?;
        let task = tokio::spawn(engine.run(media_rx, stop_rx, frame_rx));
        Ok(Publisher {
            media,
            stop,
            frames,
            events,
            task,
            next_id: AtomicU32::new(0),
        })
    }

    /// Connects and returns once in the room; fails with the reason the first connection
    /// failed (unreachable, refused token…).
    pub async fn connect(options: Options) -> Result<Publisher> {
        let mut publisher = Publisher::start(options)?;
        loop {
            match publisher.events.recv().await {
                Some(Event::Connection(ConnectionState::Joined { .. })) => return Ok(publisher),
                Some(_) => {}
                None => {
                    return Err(publisher.wait().await.err().unwrap_or_else(|| {
                        Error::Connection("the publisher ended before joining".into())
                    }))
                }
            }
        }
    }

    /// Adds a track: it is published as soon as the connection allows, and goes live on
    /// its first keyframe.
    pub fn add_track(&self, spec: TrackSpec) -> Result<LocalTrack> {
        let id = TrackId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.media(PipelineEvent::OutputAdded(spec.into_output(id)))?;
        Ok(LocalTrack {
            id,
            frames: self.frames.clone(),
            media: self.media.clone(),
        })
    }

    /// The media source is running; `live` when it is paced by itself (a camera) rather
    /// than read from a file.
    pub fn source_started(&self, live: bool) -> Result<()> {
        self.media(PipelineEvent::Started { live })
    }

    /// The media source ended: every track ends and the publisher leaves (with
    /// `restart_source` and a live source: [`Event::RestartSource`] instead).
    pub fn source_ended(&self) -> Result<()> {
        self.media(PipelineEvent::Eos)
    }

    /// The media source failed: the publisher leaves with this error (with
    /// `restart_source`: [`Event::RestartSource`] after a backoff).
    pub fn source_failed(&self, why: impl Into<String>) -> Result<()> {
        self.media(PipelineEvent::Error(why.into()))
    }

    /// Where a source that numbers its own outputs (the `pipeline` module's `Pipeline`)
    /// sends its events and frames, straight to the publisher's task: each output it adds is
    /// a track whose id is the output's, with the settings of the first of
    /// [`Options::tracks`] that selects it. A source added so does not also add tracks with
    /// [`add_track`](Self::add_track): their ids would meet.
    pub fn source_channels(&self) -> (mpsc::UnboundedSender<PipelineEvent>, mpsc::Sender<Frame>) {
        (self.media.clone(), self.frames.clone())
    }

    /// The next event; `None` once the publisher has ended. Nothing is dropped for a reader
    /// that falls behind but statistics: while one interval's are unread, the next are
    /// skipped. Read them (a task looping on this): keyframe requests and target bitrates
    /// wait here until read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// An event if one is waiting.
    pub fn try_event(&mut self) -> Option<Event> {
        self.events.try_recv()
    }

    /// Asks the publisher to leave the room; [`wait`](Self::wait) for the end.
    pub fn stop(&self) {
        let _ = self.stop.send(());
    }

    /// Leaves the room and waits until it is done (at most about a second).
    pub async fn close(self) -> Result<()> {
        self.stop();
        self.wait().await
    }

    /// Waits until the publisher ends, and returns how: `Ok` after a clean leave (asked
    /// for, or every track ended), the reason otherwise. Events still unread are dropped.
    pub async fn wait(self) -> Result<()> {
        drop(self.events);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Runtime(format!("the publisher's task failed: {e}"))),
        }
    }

    fn media(&self, ev: PipelineEvent) -> Result<()> {
        self.media
            .send(ev)
            .map_err(|_| Error::Runtime("the publisher has ended".into()))
    }
}

/// A track of a [`Publisher`]: write its frames here. Clones write to the same track.
#[derive(Debug, Clone)]
pub struct LocalTrack {
    id: TrackId,
    frames: mpsc::Sender<Frame>,
    media: mpsc::UnboundedSender<PipelineEvent>,
}

impl LocalTrack {
    /// The id events name this track by.
    pub fn id(&self) -> TrackId {
        self.id
    }

    /// Queues one frame; never blocks. Frames written before the track is live are
    /// dropped.
    pub fn write(&self, frame: EncodedFrame) -> std::result::Result<(), WriteError> {
        self.frames
            .try_send(Frame {
                output: self.id,
                running_time: frame.timestamp,
                duration: frame.duration,
                keyframe: frame.keyframe,
                data: frame.data,
                captured: frame.captured,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriteError::Full,
                mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
            })
    }

    /// The stream's format changed (e.g. a new picture size).
    pub fn update(&self, spec: TrackSpec) {
        let _ = self
            .media
            .send(PipelineEvent::OutputChanged(spec.into_output(self.id)));
    }

    /// The track ends and is unpublished (with `restart_source` and a live source: the
    /// source is restarted instead). When every track has ended the publisher leaves.
    pub fn end(&self) {
        let _ = self.media.send(PipelineEvent::OutputEos(self.id));
    }
}

//! The publisher of a running element: one task on the process's shared tokio runtime (every
//! element's, as gst-plugins-rs' elements share theirs) that owns the [`Publisher`], adds the
//! pads' tracks, and turns its events into actions on the pipeline (keyframe requests, encoder
//! bitrates) and messages on the bus.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_publisher::error::Error;
use gstreamer_publisher::pipeline::{set_encoder_bitrate, upstream_encoder};
use gstreamer_publisher::redact::Redactor;
use gstreamer_publisher::{
    ConnectionState, Event, LocalTrack, MediaKind, Options, Publisher, Report, TrackId, TrackSpec,
};
use gstreamer_video as gst_video;
use tokio::sync::mpsc;

use super::{LiveKitPublishSink, LiveKitPublishSinkPad};
use crate::logging::CAT;

/// The name of the runtime's threads.
const THREAD_NAME: &str = "livekitpublish";
/// The most worker threads the shared runtime has (one per core below that): each element's
/// publisher is one task, its media path a few more.
const MAX_WORKERS: usize = 4;

/// The runtime of every element of the process, started with the first that starts and
/// never stopped (a task of an element that stops ends, or is aborted).
static RUNTIME: LazyLock<Result<tokio::runtime::Runtime, String>> = LazyLock::new(|| {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.min(MAX_WORKERS))
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
});
/// How long a streaming thread waits for the publisher to take a new track (it answers at
/// once unless it has ended).
const ADD_TRACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long stopping waits for the publisher to leave the room.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) enum Command {
    AddTrack {
        spec: Box<TrackSpec>,
        pad: LiveKitPublishSinkPad,
        reply: std::sync::mpsc::SyncSender<Result<LocalTrack, Error>>,
    },
    Stop,
}

/// What the streaming threads and the task share.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The publisher ended with an error (posted on the bus).
    pub failed: AtomicBool,
    /// Frames the publisher refused (its queue was full).
    pub dropped: AtomicU64,
}

/// A started publisher.
pub(super) struct Running {
    /// The task on the shared runtime, until it is closed.
    task: Option<tokio::task::JoinHandle<()>>,
    commands: mpsc::UnboundedSender<Command>,
    done: std::sync::mpsc::Receiver<()>,
    pub shared: Arc<Shared>,
}

impl Running {
    /// Starts connecting (returns at once); fails only on what fails every connection
    /// (credentials that cannot make a token, an unreadable CA file) or a runtime that
    /// cannot start.
    pub fn start(
        element: &LiveKitPublishSink,
        options: Options,
        redactor: Redactor,
    ) -> Result<Running, Error> {
        options.check()?;
        let runtime = RUNTIME
            .as_ref()
            .map_err(|e| Error::Runtime(format!("cannot start a tokio runtime: {e}")))?;
        let urls: Vec<String> = options.urls.iter().map(|u| u.to_string()).collect();
        let publisher = {
            let _entered = runtime.enter();
            Publisher::start(options)?
        };
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared::default());
        let task = Task {
            element: element.downgrade(),
            tracks: HashMap::new(),
            urls,
            redactor,
            shared: Arc::clone(&shared),
        };
        let task = runtime.spawn(async move {
            task.run(publisher, command_rx).await;
            let _ = done_tx.send(());
        });
        Ok(Running {
            task: Some(task),
            commands,
            done,
            shared,
        })
    }

    /// A handle that adds tracks, for a streaming thread (without holding the element's lock).
    pub fn adder(&self) -> Adder {
        Adder {
            commands: self.commands.clone(),
        }
    }

    /// Leaves the room, waiting at most [`CLOSE_TIMEOUT`] for the publisher to be done; a
    /// publisher not done by then is dropped.
    pub fn close(mut self) {
        let _ = self.commands.send(Command::Stop);
        let on_own_thread = std::thread::current().name() == Some(THREAD_NAME);
        if !on_own_thread {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                self.done.recv_timeout(CLOSE_TIMEOUT)
            {
                gst::warning!(
                    CAT,
                    "the publisher did not leave within {} s; dropping it",
                    CLOSE_TIMEOUT.as_secs()
                );
            }
        }
        // Done, or given up on (or closed from the runtime's own thread, which must not
        // wait for it): a task still running is dropped.
        if let Some(task) = self.task.take() {
            if on_own_thread {
                // It leaves by itself after the Stop; waiting here would hold its thread.
                return;
            }
            task.abort();
        }
    }
}

impl Drop for Running {
    /// An element dropped without a close: its publisher goes with it.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Adds tracks to a running publisher.
#[derive(Clone)]
pub(super) struct Adder {
    commands: mpsc::UnboundedSender<Command>,
}

impl Adder {
    /// The publisher's track for a pad's stream. Blocks the calling streaming thread only
    /// until the task has taken it (microseconds).
    pub fn add_track(
        &self,
        spec: TrackSpec,
        pad: &LiveKitPublishSinkPad,
    ) -> Result<LocalTrack, String> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let ended = || "the publisher has ended".to_string();
        self.commands
            .send(Command::AddTrack {
                spec: Box::new(spec),
                pad: pad.clone(),
                reply,
            })
            .map_err(|_| ended())?;
        match answer.recv_timeout(ADD_TRACK_TIMEOUT) {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(ended()),
        }
    }
}

/// The task's side: the publisher's events become actions and bus messages.
struct Task {
    element: glib::WeakRef<LiveKitPublishSink>,
    /// Each track's pad and name.
    tracks: HashMap<TrackId, (glib::WeakRef<LiveKitPublishSinkPad>, String)>,
    urls: Vec<String>,
    redactor: Redactor,
    shared: Arc<Shared>,
}

impl Task {
    async fn run(
        mut self,
        mut publisher: Publisher,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut stopping = false;
        loop {
            tokio::select! {
                biased;
                cmd = commands.recv(), if !stopping => match cmd {
                    Some(Command::AddTrack { spec, pad, reply }) => {
                        let name = spec.name.clone();
                        let result = publisher.add_track(*spec);
                        if let Ok(track) = &result {
                            self.tracks.insert(track.id(), (pad.downgrade(), name));
                        }
                        let _ = reply.send(result);
                    }
                    Some(Command::Stop) | None => {
                        stopping = true;
                        publisher.stop();
                    }
                },
                ev = publisher.next_event() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => break,
                },
            }
        }
        // Tracks asked for from now on are refused: the receiver goes with this task.
        drop(commands);
        match publisher.wait().await {
            Ok(()) => gst::debug!(CAT, "the publisher has left the room"),
            // Stopping: the application is shutting the element down; nothing to report.
            Err(e) if stopping => gst::debug!(CAT, "the publisher ended: {}", self.redact(&e)),
            Err(e) => {
                self.shared.failed.store(true, Ordering::SeqCst);
                if let Some(element) = self.element.upgrade() {
                    post_error(&element, &e, &self.redactor);
                }
            }
        }
    }

    fn redact(&self, e: &Error) -> String {
        self.redactor.redact(&e.to_string()).into_owned()
    }

    fn pad(&self, track: &TrackId) -> Option<LiveKitPublishSinkPad> {
        self.tracks.get(track).and_then(|(pad, _)| pad.upgrade())
    }

    fn post(&self, structure: gst::Structure) {
        if let Some(element) = self.element.upgrade() {
            let msg = gst::message::Element::builder(structure)
                .src(&element)
                .build();
            let _ = element.post_message(msg);
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::KeyframeRequested { track } => {
                if let Some(pad) = self.pad(&track) {
                    // An upstream event pushed on a sink pad travels to the encoder.
                    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                        .all_headers(true)
                        .build();
                    if !pad.push_event(event) {
                        gst::debug!(CAT, obj = pad, "keyframe request not handled upstream");
                    }
                }
            }
            Event::TargetBitrate { track, bps } => {
                let encoder = self
                    .pad(&track)
                    .and_then(|pad| pad.peer())
                    .and_then(|peer| upstream_encoder(&peer));
                if let Some(encoder) = encoder {
                    if !set_encoder_bitrate(&encoder, bps) {
                        gst::trace!(CAT, obj = encoder, "cannot set a bitrate on this encoder");
                    }
                }
            }
            Event::Connection(state) => {
                let builder = gst::Structure::builder("livekit-connection");
                let structure = match state {
                    ConnectionState::Joined { server, resumed } => builder
                        .field("state", if resumed { "resumed" } else { "joined" })
                        .field("server", server as u32)
                        .field("url", self.urls.get(server).cloned().unwrap_or_default()),
                    ConnectionState::Reconnecting { resume } => builder
                        .field("state", "reconnecting")
                        .field("resume", resume),
                }
                .build();
                self.post(structure);
            }
            Event::TrackPublished { track, sid } => {
                let (pad, name) = self.pad_and_name(&track);
                self.post(
                    gst::Structure::builder("livekit-track")
                        .field("state", "published")
                        .field("pad", pad)
                        .field("name", name)
                        .field("sid", sid.as_str())
                        .build(),
                );
            }
            Event::TrackEnded { track } => {
                let (pad, name) = self.pad_and_name(&track);
                self.post(
                    gst::Structure::builder("livekit-track")
                        .field("state", "ended")
                        .field("pad", pad)
                        .field("name", name)
                        .build(),
                );
            }
            Event::Stats { mut report, last } => {
                report.dropped_frames = self.shared.dropped.load(Ordering::Relaxed);
                let structure = self.stats(&report, last);
                self.post(structure);
            }
            // No simulcast and no source restarts here; the pipeline's own EOS ends the
            // stream, the element's state change the publisher.
            _ => {}
        }
    }

    fn pad_and_name(&self, track: &TrackId) -> (String, String) {
        match self.tracks.get(track) {
            Some((pad, name)) => (
                pad.upgrade()
                    .map(|p| p.name().to_string())
                    .unwrap_or_default(),
                name.clone(),
            ),
            None => (String::new(), String::new()),
        }
    }

    /// `livekit-stats`: the interval's figures, per track in `tracks` (an array of
    /// `livekit-track-stats`), and the whole report as JSON in `json`.
    fn stats(&self, report: &Report, last: bool) -> gst::Structure {
        let tracks = report.tracks.iter().map(|t| {
            let pad = self
                .tracks
                .get(&t.output)
                .and_then(|(pad, _)| pad.upgrade())
                .map(|p| p.name().to_string())
                .unwrap_or_default();
            gst::Structure::builder("livekit-track-stats")
                .field("pad", pad)
                .field("name", &t.name)
                .field("sid", &t.sid)
                .field(
                    "kind",
                    match t.kind {
                        Some(MediaKind::Video) => "video",
                        Some(MediaKind::Audio) => "audio",
                        None => "",
                    },
                )
                .field("codec", t.codec.map(|c| c.name()).unwrap_or(""))
                .field("bitrate", t.bitrate_bps)
                .field("target-bitrate", t.target_bps.unwrap_or(0))
                .field("fps", t.fps)
                .field("frames-sent", t.frames_sent)
                .field("keyframes-sent", t.keyframes_sent)
                .field("bytes-sent", t.bytes_sent)
                .field("packets-sent", t.packets_sent)
                .field("pli", t.plis)
                .field("fir", t.firs)
                .field("nack", t.nacks)
                .field("rtt-ms", t.rtt_ms.unwrap_or(-1.0))
                .field("loss", t.loss.map(f64::from).unwrap_or(-1.0))
                .build()
                .to_send_value()
        });
        gst::Structure::builder("livekit-stats")
            .field("last", last)
            .field("elapsed-ms", report.elapsed.as_millis() as u64)
            .field("dropped-frames", report.dropped_frames)
            .field("estimate-bitrate", report.estimate_bps.unwrap_or(0))
            .field("tracks", gst::Array::from_values(tracks))
            .field("json", report.to_json().to_string())
            .build()
    }
}

/// An ERROR message for a publisher that failed: the one-line reason, without secrets.
pub(super) fn post_error(element: &LiveKitPublishSink, e: &Error, redactor: &Redactor) {
    let text = redactor.redact(&e.to_string()).into_owned();
    let (kind, builder) = match e {
        Error::Usage(_) => (
            "usage",
            gst::message::Error::builder(gst::ResourceError::Settings, &text),
        ),
        Error::Auth(_) => (
            "auth",
            gst::message::Error::builder(gst::ResourceError::NotAuthorized, &text),
        ),
        Error::Connection(_) => (
            "connection",
            gst::message::Error::builder(gst::ResourceError::OpenWrite, &text),
        ),
        Error::Removed(_) => (
            "removed",
            gst::message::Error::builder(gst::ResourceError::Write, &text),
        ),
        Error::Pipeline(_) => (
            "pipeline",
            gst::message::Error::builder(gst::StreamError::Format, &text),
        ),
        Error::Runtime(_) => (
            "runtime",
            gst::message::Error::builder(gst::ResourceError::Failed, &text),
        ),
    };
    gst::error!(CAT, obj = element, "{text}");
    let msg = builder
        .src(element)
        .debug(&format!(
            "gstreamer-publisher: {kind} error (the CLI's exit code {})",
            e.exit_code()
        ))
        .build();
    let _ = element.post_message(msg);
}

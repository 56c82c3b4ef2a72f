//! The pipeline driver: runs the user's GStreamer pipeline, finds its encoded outputs and
//! hands out their frames.
//!
//! It owns everything GStreamer: parsing the gst-launch description, judging each unlinked
//! source pad by its caps, attaching a parser + appsink to every output (also to ones that
//! appear later on sometimes-pads), steering H.264 to a profile browsers decode, watching the
//! bus, and turning keyframe requests into force-key-unit events. It must not know about
//! LiveKit, WebRTC or RTP: it speaks only in [`Output`], [`Frame`] and [`PipelineEvent`], and
//! what happens to them is the session's business.
//!
//! Threads: frames and events are produced on GStreamer's streaming threads and a bus thread
//! of ours; none of them ever blocks on a channel (frames use `try_send` on a bounded channel
//! and drops are counted, control events go on an unbounded one).

mod browser;
mod caps;
mod discover;
mod doctor;
mod encoders;
mod frames;
mod inspect;
mod simulcast;
mod sink;
mod streams;

pub use discover::{discover, discover_with, Discovery};
pub use streams::{
    describe, is_codec_header, prepare_encoder, set_encoder_bitrate, short_caps, track_format,
    upstream_encoder,
};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer_video as gst_video;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::media::{Codec, Frame, Output, OutputId, PipelineEvent};

use caps::Verdict;
use sink::Shared;

/// How long [`Pipeline::stop`] waits for the pipeline to reach NULL before giving up.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the bus thread checks whether it should end.
const BUS_POLL: Duration = Duration::from_millis(100);

/// How the user's pipeline is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `--simulcast auto`: build ½ and ¼ size layers for every video output fed by a
    /// raw-video encoder.
    pub simulcast_auto: bool,
}

/// The user's pipeline and its outputs.
pub struct Pipeline {
    pipeline: gst::Pipeline,
    shared: Arc<Shared>,
    options: Options,
    simulcast_groups: Vec<Vec<String>>,
    /// Unlinked source pads found when parsing: with their output when the codec is known,
    /// without one when their caps are `ANY` and only negotiation will tell.
    candidates: Vec<(gst::Pad, Option<(OutputId, Codec)>)>,
    attached: bool,
    stopped: bool,
    bus_thread: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Pipeline {
    /// Parses `description` (gst-launch syntax) and finds its outputs: every unlinked source
    /// pad of the user's elements, judged by the caps it can produce.
    ///
    /// Fails with [`Error::Pipeline`] on a syntax error or unknown element, on an output in a
    /// codec we cannot publish (raw media, H.265, AAC, …), and when there is no encoded output
    /// at all and no element (demuxer, decodebin) that could still add one.
    pub fn new(description: &str) -> Result<Pipeline, Error> {
        Pipeline::with_options(description, Options::default())
    }

    /// The same, with `options` (e.g. simulcast layers built in).
    pub fn with_options(description: &str, options: Options) -> Result<Pipeline, Error> {
        Pipeline::with_first_id(description, 0, options)
    }

    /// The same pipeline again, built anew (a restart): its outputs get ids that follow
    /// those of `self`, so an id is never reused.
    pub fn rebuild(&self, description: &str) -> Result<Pipeline, Error> {
        Pipeline::with_first_id(description, self.shared.next_id(), self.options)
    }

    /// The simulcast groups `--simulcast auto` built: each group's output selectors,
    /// highest first.
    pub fn simulcast_groups(&self) -> &[Vec<String>] {
        &self.simulcast_groups
    }

    /// Start or pause the encoding of a simulcast layer's output (its valve); any thread.
    pub fn set_layer_active(&self, output: OutputId, active: bool) {
        if let Some(encoder) = self.shared.encoder(output) {
            simulcast::set_active(&self.pipeline, &encoder, active);
        }
    }

    fn with_first_id(
        description: &str,
        first_id: u32,
        options: Options,
    ) -> Result<Pipeline, Error> {
        let pipeline = inspect::parse(description)?;
        let simulcast_groups = if options.simulcast_auto {
            simulcast::build(&pipeline).map_err(Error::Pipeline)?
        } else {
            Vec::new()
        };
        let shared = Arc::new(Shared::default());
        shared.set_first_id(first_id);
        let elements = inspect::visible_elements(pipeline.upcast_ref());
        let mut candidates = Vec::new();
        for pad in inspect::unlinked_src_pads(&elements) {
            shared.mark_seen(&pad);
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            match caps::classify(&caps) {
                Verdict::Publishable(codec) => {
                    let id = shared.add_output(&pad, codec, &caps);
                    candidates.push((pad, Some((id, codec))));
                }
                Verdict::Undecided => candidates.push((pad, None)),
                Verdict::Unsupported(media_type) => {
                    let (element, pad_name) = inspect::pad_names(&pad);
                    return Err(Error::Pipeline(caps::unsupported_message(
                        &element,
                        &pad_name,
                        &media_type,
                        false,
                    )));
                }
            }
        }
        if candidates.is_empty() && !elements.iter().any(inspect::has_sometimes_src) {
            return Err(no_output_error());
        }
        Ok(Pipeline {
            pipeline,
            shared,
            options,
            simulcast_groups,
            candidates,
            attached: false,
            stopped: false,
            bus_thread: None,
        })
    }

    /// The underlying GStreamer pipeline, for library users who want to inspect or adjust it
    /// (e.g. element properties) before [`Pipeline::start`].
    pub fn gst_pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// Outputs known so far, with their format as far as their caps tell (all of it once
    /// negotiated).
    pub fn outputs(&self) -> Vec<Output> {
        self.shared.outputs()
    }

    /// Attaches a sink to every output (and to every output that appears later), starts the
    /// bus thread and sets the pipeline PLAYING. Frames go to `frames` (dropped and counted
    /// when it is full), everything else to `control`.
    ///
    /// An output's `OutputAdded` is sent before its first frame. Frames leave in real time:
    /// a live pipeline is paced by its sources; any other (a file, a `videotestsrc` without
    /// `is-live=true`) is paced by the pipeline clock, each frame at its running time.
    /// Fails with [`Error::Pipeline`] when the pipeline cannot start (a missing file, a
    /// busy device), naming the element.
    pub fn start(
        &mut self,
        control: mpsc::UnboundedSender<PipelineEvent>,
        frames: mpsc::Sender<Frame>,
    ) -> Result<(), Error> {
        if self.attached || self.stopped {
            return Err(Error::Runtime(
                "the pipeline was already started; create a new one".into(),
            ));
        }
        self.shared.set_channels(control.clone(), Some(frames));
        self.attach()?;
        // PAUSED first, to learn whether a source is live (NO_PREROLL). A live pipeline is
        // paced by its sources, so sinks take frames as they come; any other would run as
        // fast as the CPU allows, so sinks wait for each frame's running time instead.
        let live = match self.pipeline.set_state(gst::State::Paused) {
            Ok(success) => success == gst::StateChangeSuccess::NoPreroll,
            Err(_) => false,
        };
        self.shared.set_sync(!live);
        let _ = control.send(PipelineEvent::Started { live });
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            let message = self.pending_bus_error().unwrap_or_else(|| {
                "the pipeline cannot start (state change to PLAYING failed); run it with gst-launch-1.0 to see why".into()
            });
            self.stop();
            return Err(Error::Pipeline(message));
        }
        let Some(bus) = self.pipeline.bus() else {
            // Every pipeline has a bus; without one, EOS and errors would go unnoticed.
            self.stop();
            return Err(Error::Runtime("the pipeline has no bus".into()));
        };
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("gst-bus".into())
            .spawn({
                let done = Arc::clone(&done);
                let pipeline = self.pipeline.downgrade();
                let shared = Arc::clone(&self.shared);
                move || watch_bus(bus, pipeline, &shared, done)
            })
            .map_err(|e| Error::Runtime(format!("cannot start the bus thread: {e}")))?;
        self.bus_thread = Some((done, thread));
        Ok(())
    }

    /// Asks the encoder of `output` for a keyframe (with SPS/PPS or sequence headers) through
    /// an upstream force-key-unit event. Any thread; no-op for audio and unknown ids.
    pub fn request_keyframe(&self, output: OutputId) {
        request_keyframe(&self.shared, output);
    }

    /// Sets the target bitrate (bit/s) of `output`'s encoder; false when it has none we can
    /// steer. Any thread.
    pub fn set_bitrate(&self, output: OutputId, bps: u64) -> bool {
        self.shared
            .encoder(output)
            .is_some_and(|e| encoders::set_bitrate(&e, bps))
    }

    /// Frames dropped so far because the frames channel was full.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped()
    }

    /// Sets the pipeline to NULL and ends the bus thread. Idempotent; never waits more than
    /// about two seconds (a pipeline that does not stop by then is left behind, logged).
    pub fn stop(&mut self) {
        self.begin_stop().wait_blocking();
    }

    /// Starts stopping the pipeline on a thread of its own and returns at once: the run loop
    /// never blocks on GStreamer. Idempotent.
    pub fn begin_stop(&mut self) -> Stopping {
        if self.stopped {
            return Stopping { done: None };
        }
        self.stopped = true;
        self.shared.detach();
        let (tx, rx) = std::sync::mpsc::channel();
        let pipeline = self.pipeline.clone();
        let bus_thread = self.bus_thread.take();
        let spawned = std::thread::Builder::new()
            .name("gst-stop".into())
            .spawn(move || {
                if let Err(e) = pipeline.set_state(gst::State::Null) {
                    tracing::warn!("stopping the pipeline failed: {e}");
                }
                if let Some((done, thread)) = bus_thread {
                    done.store(true, Ordering::Relaxed);
                    // The bus thread notices within BUS_POLL.
                    let _ = thread.join();
                }
                let _ = tx.send(());
            });
        match spawned {
            Ok(_) => Stopping { done: Some(rx) },
            Err(e) => {
                tracing::warn!("cannot start a thread to stop the pipeline: {e}");
                Stopping { done: None }
            }
        }
    }

    /// Connects the handlers for outputs that appear later and attaches a sink to every
    /// output found so far.
    fn attach(&mut self) -> Result<(), Error> {
        self.attached = true;
        for element in inspect::visible_elements(self.pipeline.upcast_ref()) {
            watch_new_pads(&self.shared, &element);
        }
        let shared = Arc::clone(&self.shared);
        self.pipeline
            .connect_deep_element_added(move |_, _, element| {
                if inspect::is_visible(element) {
                    watch_new_pads(&shared, element);
                }
            });
        for (pad, output) in &self.candidates {
            match output {
                Some((id, codec)) => sink::link_chain(&self.shared, pad, *id, *codec, false)
                    .map_err(|e| Error::Pipeline(e.to_string()))?,
                None => sink::wait_for_caps(&self.shared, pad, false),
            }
        }
        Ok(())
    }

    /// The first error waiting on the bus, as one line.
    fn pending_bus_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(500),
            &[gst::MessageType::Error],
        )?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(error_line(&msg, e)),
            _ => None,
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A pipeline on its way to NULL ([`Pipeline::begin_stop`]).
pub struct Stopping {
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl Stopping {
    /// Waits until the pipeline stopped, at most two seconds; false when it did not.
    pub fn wait_blocking(self) -> bool {
        let Some(done) = self.done else {
            return true;
        };
        let stopped = done.recv_timeout(STOP_TIMEOUT).is_ok();
        if !stopped {
            tracing::warn!(
                "the pipeline did not stop within {} s; giving up on it",
                STOP_TIMEOUT.as_secs()
            );
        }
        stopped
    }

    /// The same, for async code: yields while it waits.
    pub async fn wait(self) -> bool {
        let Some(done) = self.done else {
            return true;
        };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match done.try_recv() {
                Ok(()) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return true,
                Err(std::sync::mpsc::TryRecvError::Empty) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    tracing::warn!(
                        "the pipeline did not stop within {} s; giving up on it",
                        STOP_TIMEOUT.as_secs()
                    );
                    return false;
                }
            }
        }
    }
}

fn request_keyframe(shared: &Shared, output: OutputId) {
    let Some(pad) = shared.video_sink_pad(output) else {
        return;
    };
    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    // Pushed on a sink pad, an upstream event travels to the encoder.
    if !pad.push_event(event) {
        tracing::debug!(%output, "keyframe request not handled upstream");
    }
}

/// Attaches a sink to each unlinked source pad `element` adds from now on. gst-launch's own
/// delayed links (`demux. ! queue`) were connected first and so have run before this.
fn watch_new_pads(shared: &Arc<Shared>, element: &gst::Element) {
    let shared = Arc::clone(shared);
    element.connect_pad_added(move |_, pad| {
        if pad.direction() != gst::PadDirection::Src || pad.is_linked() {
            return;
        }
        let requested = pad
            .pad_template()
            .is_some_and(|t| t.presence() == gst::PadPresence::Request);
        if requested || !shared.mark_seen(pad) {
            return;
        }
        sink::attach(&shared, pad, true);
    });
}

pub(crate) fn no_output_error() -> Error {
    Error::Pipeline(
        "the pipeline has no encoded output; end it with an encoder such as x264enc, vp8enc or opusenc, and no sink"
            .into(),
    )
}

/// "pipeline error from <element>: <message> (<last line of the debug text>)".
pub(crate) fn error_line(msg: &gst::Message, error: &gst::message::Error) -> String {
    let source = msg
        .src()
        .map(|s| format!(" from {}", s.name()))
        .unwrap_or_default();
    let mut line = format!("pipeline error{source}: {}", error.error().message().trim());
    let debug = error.debug().map(|d| d.to_string()).unwrap_or_default();
    if debug.contains("not-negotiated") {
        line.push_str(
            " (formats could not be negotiated: check that each output is in a publishable format; H.264 must be constrained-baseline, baseline, main or high)",
        );
    } else if let Some(detail) = debug.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        // The last debug line usually names the resource ("No such file …"); the first
        // ones are source locations.
        if !detail.contains("): ") && detail.len() <= 200 {
            line.push_str(&format!(" ({detail})"));
        }
    }
    line
}

/// The bus thread: EOS and errors become events, latency changes are applied, until `done`.
fn watch_bus(
    bus: gst::Bus,
    pipeline: glib::WeakRef<gst::Pipeline>,
    shared: &Shared,
    done: Arc<AtomicBool>,
) {
    let poll = gst::ClockTime::from_nseconds(BUS_POLL.as_nanos() as u64);
    while !done.load(Ordering::Relaxed) {
        let Some(msg) = bus.timed_pop(poll) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => {
                shared.emit(PipelineEvent::Eos);
            }
            gst::MessageView::Error(e) => {
                let line = error_line(&msg, e);
                tracing::error!("{line}");
                shared.emit(PipelineEvent::Error(line));
            }
            gst::MessageView::Warning(w) => {
                let source = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                tracing::warn!("pipeline warning from {source}: {}", w.error());
            }
            gst::MessageView::Latency(_) => {
                if let Some(pipeline) = pipeline.upgrade() {
                    let _ = pipeline.recalculate_latency();
                }
            }
            _ => {}
        }
    }
}

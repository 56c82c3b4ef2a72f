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
mod doctor;
mod inspect;
mod sink;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer_video as gst_video;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::media::{Codec, Frame, MediaKind, Output, OutputId, PipelineEvent};

use caps::Verdict;
use sink::Shared;

/// How long [`Pipeline::stop`] waits for the pipeline to reach NULL before giving up.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the bus thread checks whether it should end.
const BUS_POLL: Duration = Duration::from_millis(100);

/// The user's pipeline and its outputs.
pub struct Pipeline {
    pipeline: gst::Pipeline,
    shared: Arc<Shared>,
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
        let pipeline = inspect::parse(description)?;
        let shared = Arc::new(Shared::default());
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
                move || watch_bus(bus, pipeline, control, done)
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

    /// A handle that requests keyframes without borrowing the pipeline, for another thread
    /// or task.
    pub fn keyframe_requester(&self) -> KeyframeRequester {
        KeyframeRequester {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Frames dropped so far because the frames channel was full.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped()
    }

    /// Sets the pipeline to NULL and ends the bus thread. Idempotent; never waits more than
    /// about two seconds (a pipeline that does not stop by then is left behind, logged).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let (tx, rx) = std::sync::mpsc::channel();
        let pipeline = self.pipeline.clone();
        let spawned = std::thread::Builder::new()
            .name("gst-stop".into())
            .spawn(move || {
                let _ = tx.send(pipeline.set_state(gst::State::Null));
            });
        match spawned {
            Ok(_) => match rx.recv_timeout(STOP_TIMEOUT) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("stopping the pipeline failed: {e}"),
                Err(_) => tracing::warn!(
                    "the pipeline did not stop within {} s; giving up on it",
                    STOP_TIMEOUT.as_secs()
                ),
            },
            Err(e) => tracing::warn!("cannot start a thread to stop the pipeline: {e}"),
        }
        if let Some((done, thread)) = self.bus_thread.take() {
            done.store(true, Ordering::Relaxed);
            // The bus thread notices within BUS_POLL; do not wait on it much longer.
            let deadline = Instant::now() + 5 * BUS_POLL;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
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
                    .map_err(Error::Pipeline)?,
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

/// Requests keyframes for a running [`Pipeline`] from anywhere; cheap to clone.
#[derive(Clone)]
pub struct KeyframeRequester {
    shared: Arc<Shared>,
}

impl KeyframeRequester {
    /// Same as [`Pipeline::request_keyframe`].
    pub fn request_keyframe(&self, output: OutputId) {
        request_keyframe(&self.shared, output);
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

fn no_output_error() -> Error {
    Error::Pipeline(
        "the pipeline has no encoded output; end it with an encoder such as x264enc, vp8enc or opusenc, and no sink"
            .into(),
    )
}

/// "pipeline error from <element>: <message> (<last line of the debug text>)".
fn error_line(msg: &gst::Message, error: &gst::message::Error) -> String {
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
    control: mpsc::UnboundedSender<PipelineEvent>,
    done: Arc<AtomicBool>,
) {
    let poll = gst::ClockTime::from_nseconds(BUS_POLL.as_nanos() as u64);
    while !done.load(Ordering::Relaxed) {
        let Some(msg) = bus.timed_pop(poll) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => {
                let _ = control.send(PipelineEvent::Eos);
            }
            gst::MessageView::Error(e) => {
                let line = error_line(&msg, e);
                tracing::error!("{line}");
                let _ = control.send(PipelineEvent::Error(line));
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

/// For `--dry-run`: finds every output without publishing anything. Attaches the same sinks
/// as [`Pipeline::start`], prerolls the pipeline (PAUSED: files and devices are opened, no
/// data leaves) so that demuxers expose their pads and caps get negotiated, waits until that
/// is done, an error, or `timeout`, then stops. A live source does not preroll: its static
/// outputs, with the format their caps tell before running, are then all there is.
///
/// While the pipeline is prerolled, the doctor looks for what makes streams fail in browsers
/// (B-frames, 4:4:4 or 10-bit input, non-live sources, long GOPs, unparsed outputs); its
/// warnings come back with the outputs.
pub fn discover(description: &str, timeout: Duration) -> Result<Discovery, Error> {
    let deadline = Instant::now() + timeout;
    let mut pipeline = Pipeline::new(description)?;
    let (control, mut events) = mpsc::unbounded_channel();
    pipeline.shared.set_channels(control, None);

    // Elements that may still add pads; each says so with no-more-pads.
    let owed = Arc::new(AtomicUsize::new(0));
    for element in inspect::visible_elements(pipeline.pipeline.upcast_ref()) {
        if inspect::has_sometimes_src(&element) {
            owed.fetch_add(1, Ordering::Relaxed);
            let owed = Arc::clone(&owed);
            let once = AtomicBool::new(false);
            element.connect_no_more_pads(move |_| {
                if !once.swap(true, Ordering::Relaxed) {
                    owed.fetch_sub(1, Ordering::Relaxed);
                }
            });
        }
    }
    let recorder = doctor::Recorder::install(&pipeline.pipeline);
    pipeline.attach()?;
    let result = preroll(&pipeline, deadline, &mut events, &owed);
    let warnings = match result {
        Ok(()) => doctor::examine(&pipeline.pipeline, &pipeline.outputs(), &recorder, deadline),
        Err(_) => Vec::new(),
    };
    pipeline.stop();
    result?;
    while let Ok(event) = events.try_recv() {
        if let PipelineEvent::Error(message) = event {
            return Err(Error::Pipeline(message));
        }
    }
    let outputs = pipeline.outputs();
    if outputs.is_empty() {
        return Err(no_output_error());
    }
    Ok(Discovery { outputs, warnings })
}

/// What [`discover`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Discovery {
    pub outputs: Vec<Output>,
    /// The doctor's warnings: one line each, naming the element and saying the fix; no
    /// duplicates.
    pub warnings: Vec<String>,
}

/// Brings the pipeline to PAUSED and waits until every output is known and negotiated.
fn preroll(
    pipeline: &Pipeline,
    deadline: Instant,
    events: &mut mpsc::UnboundedReceiver<PipelineEvent>,
    owed: &AtomicUsize,
) -> Result<(), Error> {
    let Some(bus) = pipeline.pipeline.bus() else {
        return Ok(());
    };
    let mut prerolled = match pipeline.pipeline.set_state(gst::State::Paused) {
        Ok(gst::StateChangeSuccess::NoPreroll) => return Ok(()),
        Ok(gst::StateChangeSuccess::Success) => true,
        Ok(_) => false,
        Err(_) => {
            return Err(Error::Pipeline(pipeline.pending_bus_error().unwrap_or_else(|| {
                "the pipeline cannot start (state change to PAUSED failed); run it with gst-launch-1.0 to see why".into()
            })))
        }
    };
    loop {
        while let Ok(event) = events.try_recv() {
            if let PipelineEvent::Error(message) = event {
                return Err(Error::Pipeline(message));
            }
        }
        if prerolled && owed.load(Ordering::Relaxed) == 0 && pipeline.shared.all_negotiated() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::debug!("discovery timed out; reporting the outputs found so far");
            return Ok(());
        }
        let wait = (deadline - now).min(Duration::from_millis(20));
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(wait.as_nanos() as u64)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => return Err(Error::Pipeline(error_line(&msg, e))),
            gst::MessageView::AsyncDone(_) if msg.src() == Some(pipeline.pipeline.upcast_ref()) => {
                prerolled = true;
            }
            gst::MessageView::Eos(_) => return Ok(()),
            _ => {}
        }
    }
}

/// One aligned line per output for `--dry-run`, e.g.
/// `x264enc0.src              video  h264  320x240 30/1 fps, profile high (64000d)`.
pub fn describe(output: &Output) -> String {
    let f = &output.format;
    let mut parts = Vec::new();
    match output.kind() {
        MediaKind::Video => {
            let mut picture = Vec::new();
            if let (Some(w), Some(h)) = (f.width, f.height) {
                picture.push(format!("{w}x{h}"));
            }
            if let Some((n, d)) = f.framerate {
                picture.push(format!("{n}/{d} fps"));
            }
            if !picture.is_empty() {
                parts.push(picture.join(" "));
            }
            if let Some(profile) = &f.h264_profile {
                match &f.h264_profile_level_id {
                    Some(id) => parts.push(format!("profile {profile} ({id})")),
                    None => parts.push(format!("profile {profile}")),
                }
            }
        }
        MediaKind::Audio => {
            if let Some(rate) = f.sample_rate {
                parts.push(format!("{rate} Hz"));
            }
            if let Some(channels) = f.channels {
                parts.push(format!("{channels} ch"));
            }
        }
    }
    let summary = if parts.is_empty() {
        "format known once running".to_string()
    } else {
        parts.join(", ")
    };
    let pad = format!("{}.{}", output.element, output.pad);
    format!(
        "{pad:<24} {:<5}  {:<4}  {summary}",
        output.kind().to_string(),
        output.codec.name()
    )
}

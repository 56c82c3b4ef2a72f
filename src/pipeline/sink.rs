//! Where outputs end: the parser + appsink chain we link to each output pad, and the state
//! shared with the streaming threads that feed it (outputs so far, the channels, counters).
//!
//! Everything here may run on a GStreamer streaming thread, so nothing blocks: frames go out
//! with `try_send`, control events on an unbounded channel, and the state lock is never held
//! while calling into GStreamer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::caps::{self, Verdict};
use super::inspect::{self, OWN_PREFIX};
use crate::media::{Codec, Frame, MediaKind, Output, OutputId, PipelineEvent};

/// Appsink queue bound. Samples are taken by a callback as they arrive, so this only matters
/// if that callback ever falls behind; old frames are dropped then.
const MAX_QUEUED_SAMPLES: u32 = 8;

/// State shared between the [`super::Pipeline`] handle and the streaming threads.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(super) dropped: AtomicU64,
    /// The pipeline is stopping: nothing of it reaches the publisher any more (a restarted
    /// pipeline's outputs are new ones; the old one's last frames and its end are not news).
    pub(super) detached: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Indexed by `OutputId`.
    slots: Vec<Slot>,
    /// Pads already taken care of (attached, waiting for caps, or rejected).
    seen: Vec<glib::WeakRef<gst::Pad>>,
    /// Pads whose caps were `ANY` when found, still waiting for a caps event.
    undecided: usize,
    control: Option<mpsc::UnboundedSender<PipelineEvent>>,
    /// `None` for a dry run: sinks only preroll.
    frames: Option<mpsc::Sender<Frame>>,
    /// Whether appsinks wait for each frame's running time on the clock: yes for a pipeline
    /// without a live source, which would otherwise run as fast as the CPU allows.
    sync: bool,
    /// The id of this pipeline's first output.
    first_id: u32,
}

struct Slot {
    output: Output,
    negotiated: bool,
    /// The appsink's sink pad, where keyframe requests start.
    sink_pad: Option<glib::WeakRef<gst::Pad>>,
}

impl Slot {
    fn appsink(&self) -> Option<gst::Element> {
        self.sink_pad.as_ref()?.upgrade()?.parent_element()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters more than stopping the whole publisher would; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Output ids start here (after those of an earlier pipeline).
    pub(crate) fn set_first_id(&self, first: u32) {
        self.state().first_id = first;
    }

    /// The id the next output would get.
    pub(crate) fn next_id(&self) -> u32 {
        let state = self.state();
        state
            .first_id
            .saturating_add(u32::try_from(state.slots.len()).unwrap_or(u32::MAX))
    }

    pub(crate) fn set_channels(
        &self,
        control: mpsc::UnboundedSender<PipelineEvent>,
        frames: Option<mpsc::Sender<Frame>>,
    ) {
        let mut state = self.state();
        state.control = Some(control);
        state.frames = frames;
    }

    /// Sets whether appsinks sync on the clock, for the ones attached and those to come.
    pub(crate) fn set_sync(&self, sync: bool) {
        let sinks: Vec<gst::Element> = {
            let mut state = self.state();
            state.sync = sync;
            state.slots.iter().filter_map(Slot::appsink).collect()
        };
        for sink in sinks {
            // Our own appsinks: every GstBaseSink has a boolean "sync".
            sink.set_property("sync", sync);
        }
    }

    /// Nothing of this pipeline goes out any more (see `detached`).
    pub(crate) fn detach(&self) {
        self.detached.store(true, Ordering::Release);
        let mut state = self.state();
        state.control = None;
        state.frames = None;
    }

    pub(crate) fn emit(&self, event: PipelineEvent) {
        if let Some(control) = &self.state().control {
            // A closed receiver means the session is gone; nobody is left to tell.
            let _ = control.send(event);
        }
    }

    pub(crate) fn emit_error(&self, message: String) {
        tracing::error!("{message}");
        self.emit(PipelineEvent::Error(message));
    }

    /// Records `pad` as handled; false if it already was.
    pub(crate) fn mark_seen(&self, pad: &gst::Pad) -> bool {
        let mut state = self.state();
        if state.seen.iter().any(|w| w.upgrade().as_ref() == Some(pad)) {
            return false;
        }
        state.seen.push(pad.downgrade());
        true
    }

    /// A new output for `pad`, with what its caps tell so far.
    pub(crate) fn add_output(&self, pad: &gst::Pad, codec: Codec, caps: &gst::CapsRef) -> OutputId {
        let (element, pad_name) = inspect::pad_names(pad);
        let mut state = self.state();
        // Outputs are few (one per track); more than u32::MAX cannot be created. Ids go on
        // from those of an earlier pipeline (a restart), so none is ever reused.
        let index = u32::try_from(state.slots.len()).unwrap_or(u32::MAX);
        let id = OutputId(state.first_id.saturating_add(index));
        state.slots.push(Slot {
            output: Output {
                id,
                element,
                pad: pad_name,
                codec,
                format: caps::stream_format(caps, codec),
                caps: caps::short_caps(caps, Some(codec)),
                settings: Default::default(),
            },
            negotiated: false,
            sink_pad: None,
        });
        id
    }

    pub(crate) fn outputs(&self) -> Vec<Output> {
        self.state()
            .slots
            .iter()
            .map(|s| s.output.clone())
            .collect()
    }

    /// True when every output has negotiated caps and no pad still waits for its caps.
    pub(crate) fn all_negotiated(&self) -> bool {
        let state = self.state();
        state.undecided == 0 && state.slots.iter().all(|s| s.negotiated)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The appsink sink pad of a video output.
    pub(crate) fn video_sink_pad(&self, id: OutputId) -> Option<gst::Pad> {
        let state = self.state();
        let slot = state.slots.iter().find(|s| s.output.id == id)?;
        if slot.output.kind() != MediaKind::Video {
            return None;
        }
        slot.sink_pad.as_ref()?.upgrade()
    }

    /// The encoder that feeds output `id`, if any.
    pub(crate) fn encoder(&self, id: OutputId) -> Option<gst::Element> {
        let sink_pad = self.slot(id, |slot| slot.sink_pad.clone())??;
        let peer = sink_pad.upgrade()?.peer()?;
        super::browser::encoder_of(&peer)
    }

    /// Caps reached the appsink of `id`: the output is ready (first time) or changed.
    fn negotiated(&self, id: OutputId, caps: &gst::CapsRef) {
        // Read what we need under the lock, ask GStreamer outside it, update under it again.
        let Some((codec, sink_pad)) =
            self.slot(id, |slot| (slot.output.codec, slot.sink_pad.clone()))
        else {
            return;
        };
        let encoder = sink_pad
            .and_then(|p| p.upgrade())
            .and_then(|p| p.peer())
            .and_then(|peer| super::browser::encoder_of(&peer));
        let mut format = super::streams::stream_format(caps, codec, encoder.as_ref());
        let short = caps::short_caps(caps, Some(codec));
        let event = self.slot(id, |slot| {
            slot.output.caps = short;
            if slot.negotiated {
                // The encoder's bitrate is the user's ceiling only before we steer it: later
                // caps (a new SPS, a renegotiation) would read back our own target and make it
                // the ceiling for good (seen: a 1080p output held at 850 kbit/s).
                format.encoder_bitrate = slot.output.format.encoder_bitrate;
            }
            if !slot.negotiated {
                slot.negotiated = true;
                slot.output.format = format;
                Some(PipelineEvent::OutputAdded(slot.output.clone()))
            } else if slot.output.format != format {
                slot.output.format = format;
                Some(PipelineEvent::OutputChanged(slot.output.clone()))
            } else {
                None
            }
        });
        if let Some(event) = event.flatten() {
            tracing::debug!(?event, "output caps");
            self.emit(event);
        }
    }

    /// Runs `f` on output `id`'s slot under the lock (which `f` must not call GStreamer in).
    fn slot<T>(&self, id: OutputId, f: impl FnOnce(&mut Slot) -> T) -> Option<T> {
        let mut state = self.state();
        let slot = state.slots.iter_mut().find(|s| s.output.id == id)?;
        Some(f(slot))
    }
}

/// Why a sink could not be attached to an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttachError {
    /// A parser we insert is not installed.
    MissingElement {
        factory: &'static str,
        package: &'static str,
    },
    /// The appsink has no sink pad (a broken GStreamer installation).
    NoSinkPad,
    /// Adding, linking or starting the chain failed.
    Chain { output: String, why: String },
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachError::MissingElement { factory, package } => write!(
                f,
                "the GStreamer element {factory} is missing; install {package} (apt-get install {package})"
            ),
            AttachError::NoSinkPad => {
                f.write_str("appsink has no sink pad; check the GStreamer installation")
            }
            AttachError::Chain { output, why } => {
                write!(f, "cannot attach a sink to {output}: {why}")
            }
        }
    }
}

/// Attaches the right sink to an output pad found while the pipeline runs (a sometimes pad)
/// or when starting: a publishing chain for our codecs, an error and a fakesink for others,
/// or a wait for the caps event when the pad cannot tell yet.
pub(crate) fn attach(shared: &Arc<Shared>, pad: &gst::Pad, sometimes: bool) {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    decide(shared, pad, &caps, sometimes);
}

fn decide(shared: &Arc<Shared>, pad: &gst::Pad, caps: &gst::CapsRef, sometimes: bool) {
    match caps::classify(caps) {
        Verdict::Publishable(codec) => {
            let id = shared.add_output(pad, codec, caps);
            if let Err(e) = link_chain(shared, pad, id, codec, true) {
                shared.emit_error(e.to_string());
            }
        }
        Verdict::Unsupported(media_type) => reject(shared, pad, &media_type, sometimes),
        Verdict::Undecided => wait_for_caps(shared, pad, sometimes),
    }
}

/// Reports an output we cannot publish and gives it a fakesink, so that the pipeline does
/// not also fail with a less helpful "not-linked".
fn reject(shared: &Arc<Shared>, pad: &gst::Pad, media_type: &str, sometimes: bool) {
    let (element, pad_name) = inspect::pad_names(pad);
    shared.emit_error(caps::unsupported_message(
        &element, &pad_name, media_type, sometimes,
    ));
    // fakesink is a GstBaseSink: "sync" and "async" exist and are booleans.
    let sink = gst::ElementFactory::make("fakesink")
        .name(format!("{OWN_PREFIX}discard-{element}-{pad_name}"))
        .property("sync", false)
        .property("async", false)
        .build();
    if let Ok(sink) = sink {
        let _ = add_and_link(pad, &[sink]);
    }
}

/// For a pad whose caps are `ANY` (e.g. a queue after decodebin): decide when its caps event
/// comes by. Linking from inside the probe is fine: GStreamer re-sends sticky events after a
/// probe relinks the pad.
pub(crate) fn wait_for_caps(shared: &Arc<Shared>, pad: &gst::Pad, sometimes: bool) {
    shared.state().undecided += 1;
    let waiting = Arc::clone(shared);
    let probe = pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        let Some(gst::EventView::Caps(event)) = info.event().map(|e| e.view()) else {
            return gst::PadProbeReturn::Ok;
        };
        let caps = event.caps_owned();
        let mut state = waiting.state();
        state.undecided = state.undecided.saturating_sub(1);
        drop(state);
        match caps::classify(&caps) {
            Verdict::Undecided => reject(&waiting, pad, "ANY", sometimes),
            _ => decide(&waiting, pad, &caps, sometimes),
        }
        gst::PadProbeReturn::Remove
    });
    if probe.is_none() {
        let mut state = shared.state();
        state.undecided = state.undecided.saturating_sub(1);
        drop(state);
        let (element, pad_name) = inspect::pad_names(pad);
        shared.emit_error(format!(
            "cannot watch {element}.{pad_name} for its format; add a caps filter after it, e.g. `! video/x-h264`"
        ));
    }
}

/// The caps the appsink accepts for `codec`: what the publisher needs, forcing the encoder
/// (through the parser) into it.
fn sink_caps(codec: Codec) -> gst::Caps {
    match codec {
        // Browsers decode these four; without the constraint `videotestsrc ! x264enc`
        // negotiates High 4:4:4, which publishes but never renders.
        Codec::H264 => gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .field(
                "profile",
                gst::List::new(crate::media::BROWSER_H264_PROFILES),
            )
            .build(),
        Codec::Av1 => gst::Caps::builder("video/x-av1")
            .field("stream-format", "obu-stream")
            .field("alignment", "tu")
            .build(),
        Codec::Vp8 => gst::Caps::new_empty_simple("video/x-vp8"),
        Codec::Vp9 => gst::Caps::new_empty_simple("video/x-vp9"),
        Codec::Opus => gst::Caps::new_empty_simple("audio/x-opus"),
    }
}

fn make_parser(factory: &'static str, id: OutputId) -> Result<gst::Element, AttachError> {
    gst::ElementFactory::make(factory)
        .name(format!("{OWN_PREFIX}{factory}-{}", id.0))
        .build()
        .map_err(|_| AttachError::MissingElement {
            factory,
            package: inspect::debian_package(factory).unwrap_or("gstreamer1.0-plugins-bad"),
        })
}

/// Builds `[parser !] appsink` for output `id` and links `pad` to it. `running`: the pipeline
/// may already be past NULL, so the new elements follow its state and the sink does not take
/// part in prerolling.
pub(crate) fn link_chain(
    shared: &Arc<Shared>,
    pad: &gst::Pad,
    id: OutputId,
    codec: Codec,
    running: bool,
) -> Result<(), AttachError> {
    super::browser::prepare_encoder(pad, codec);
    let mut chain = Vec::new();
    match codec {
        Codec::H264 => {
            let parser = make_parser("h264parse", id)?;
            // Repeat SPS/PPS before every IDR, so a late subscriber can start decoding.
            if parser
                .find_property("config-interval")
                .is_some_and(|p| p.value_type() == i32::static_type())
            {
                parser.set_property("config-interval", -1i32);
            }
            chain.push(parser);
        }
        Codec::Av1 => chain.push(make_parser("av1parse", id)?),
        Codec::Vp8 | Codec::Vp9 | Codec::Opus => {}
    }
    let (frames, sync) = {
        let state = shared.state();
        (state.frames.clone(), state.sync)
    };
    let accepted = sink_caps(codec);
    let mut builder = gst_app::AppSink::builder()
        .name(format!("{OWN_PREFIX}sink-{}", id.0))
        .caps(&accepted)
        .sync(sync)
        .max_buffers(MAX_QUEUED_SAMPLES)
        .drop(true)
        .enable_last_sample(false)
        .async_(!running);
    if let Some(frames) = frames {
        builder = builder.callbacks(super::frames::callbacks(shared, id, codec, frames));
    }
    let appsink = builder.build();
    let sink_pad = appsink.static_pad("sink").ok_or(AttachError::NoSinkPad)?;
    let watcher = Arc::clone(shared);
    sink_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        match info.event().map(|e| e.view()) {
            Some(gst::EventView::Caps(event)) => watcher.negotiated(id, event.caps()),
            Some(gst::EventView::Eos(_)) => watcher.emit(PipelineEvent::OutputEos(id)),
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
    {
        let mut state = shared.state();
        if let Some(slot) = state.slots.iter_mut().find(|s| s.output.id == id) {
            slot.sink_pad = Some(sink_pad.downgrade());
        }
    }
    chain.push(appsink.upcast());
    add_and_link(pad, &chain)
}

/// Adds `chain` next to the pad's element, links it up, brings it to the pipeline's state and
/// only then links `pad` to its head, so no data reaches an element still in NULL.
fn add_and_link(pad: &gst::Pad, chain: &[gst::Element]) -> Result<(), AttachError> {
    let (element, pad_name) = inspect::pad_names(pad);
    let fail = |why: String| AttachError::Chain {
        output: format!("{element}.{pad_name}"),
        why,
    };
    let bin = pad
        .parent_element()
        .and_then(|e| e.parent())
        .and_then(|p| p.downcast::<gst::Bin>().ok())
        .ok_or_else(|| fail("its element is not in a bin".into()))?;
    bin.add_many(chain).map_err(|e| fail(e.to_string()))?;
    gst::Element::link_many(chain).map_err(|e| fail(e.to_string()))?;
    for element in chain.iter().rev() {
        element
            .sync_state_with_parent()
            .map_err(|e| fail(e.to_string()))?;
    }
    let head = chain
        .first()
        .and_then(|e| e.static_pad("sink"))
        .ok_or_else(|| fail("no sink pad".into()))?;
    pad.link(&head).map_err(|e| {
        let caps = caps::short_caps(&pad.query_caps(None), None);
        fail(format!("{e:?} (it offers {caps})"))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn caps_events_become_added_then_changed() {
        gst::init().expect("GStreamer initialises in unit tests");
        let shared = Shared::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        shared.set_channels(tx, None);
        let pad = gst::Pad::builder(gst::PadDirection::Src)
            .name("src")
            .build();
        let template = gst::Caps::from_str("video/x-vp8").expect("caps");
        let id = shared.add_output(&pad, Codec::Vp8, &template);
        assert!(!shared.all_negotiated());

        let small =
            gst::Caps::from_str("video/x-vp8, width=(int)320, height=(int)240").expect("caps");
        shared.negotiated(id, &small);
        match rx.try_recv() {
            Ok(PipelineEvent::OutputAdded(o)) => assert_eq!(o.format.width, Some(320)),
            other => panic!("expected OutputAdded: {other:?}"),
        }
        assert!(shared.all_negotiated());
        // The same format again (e.g. a caps event that changes nothing we use): no event.
        let same = gst::Caps::from_str(
            "video/x-vp8, width=(int)320, height=(int)240, colorimetry=(string)bt601",
        )
        .expect("caps");
        shared.negotiated(id, &same);
        assert!(rx.try_recv().is_err());

        let large =
            gst::Caps::from_str("video/x-vp8, width=(int)640, height=(int)480").expect("caps");
        shared.negotiated(id, &large);
        match rx.try_recv() {
            Ok(PipelineEvent::OutputChanged(o)) => {
                assert_eq!((o.id, o.format.height), (id, Some(480)))
            }
            other => panic!("expected OutputChanged: {other:?}"),
        }
        assert_eq!(shared.outputs()[0].format.width, Some(640));
    }

    #[test]
    fn the_encoders_bitrate_is_read_once_as_the_ceiling_not_again_after_we_steer_it() {
        gst::init().expect("GStreamer initialises in unit tests");
        let shared = Shared::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        shared.set_channels(tx, None);
        let encoder = gst::ElementFactory::make("x264enc")
            .property("bitrate", 4000u32)
            .build()
            .expect("x264enc");
        let appsink = gst::ElementFactory::make("appsink")
            .build()
            .expect("appsink");
        let bin = gst::Bin::new();
        bin.add_many([&encoder, &appsink]).expect("added");
        encoder.link(&appsink).expect("linked");
        let src = encoder.static_pad("src").expect("a src pad");
        let template = gst::Caps::from_str("video/x-h264").expect("caps");
        let id = shared.add_output(&src, Codec::H264, &template);
        let sink_pad = appsink.static_pad("sink").expect("a sink pad");
        shared.slot(id, |slot| slot.sink_pad = Some(sink_pad.downgrade()));

        let caps = |w: u32| {
            gst::Caps::from_str(&format!(
                "video/x-h264, stream-format=byte-stream, alignment=au, profile=high, width=(int){w}, height=(int)240"
            ))
            .expect("caps")
        };
        shared.negotiated(id, &caps(320));
        match rx.try_recv() {
            Ok(PipelineEvent::OutputAdded(o)) => {
                assert_eq!(o.format.encoder_bitrate, Some(4_000_000))
            }
            other => panic!("expected OutputAdded: {other:?}"),
        }
        // Congestion control steers the encoder down; then the caps change.
        super::super::encoders::set_bitrate(&encoder, 850_000);
        shared.negotiated(id, &caps(640));
        match rx.try_recv() {
            Ok(PipelineEvent::OutputChanged(o)) => {
                assert_eq!(o.format.width, Some(640));
                assert_eq!(
                    o.format.encoder_bitrate,
                    Some(4_000_000),
                    "the user's ceiling"
                );
            }
            other => panic!("expected OutputChanged: {other:?}"),
        }
    }
}

//! The element: properties, request pads, state changes, and each pad's stream (caps become a
//! track, buffers frames, EOS the track's end).

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_publisher::pipeline::{short_caps, track_format, upstream_encoder};
use gstreamer_publisher::redact::Redactor;
use gstreamer_publisher::{Codec, TrackSettings, TrackSpec, WriteError};

use super::pad::PadState;
use super::settings::Settings;
use super::task::{post_error, Running};
use crate::logging::CAT;

/// How far a frame's running time may be ahead of the clock before the element warns that
/// its source is not live.
const AHEAD_WARNING: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct LiveKitPublishSink {
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    /// The EOS message was posted (every pad reached EOS).
    eos_posted: Mutex<bool>,
}

#[glib::object_subclass]
impl ObjectSubclass for LiveKitPublishSink {
    const NAME: &'static str = "GstLiveKitPublishSink";
    type Type = super::LiveKitPublishSink;
    type ParentType = gst::Element;
    type Interfaces = (gst::ChildProxy,);
}

impl ObjectImpl for LiveKitPublishSink {
    fn properties() -> &'static [glib::ParamSpec] {
        Settings::properties()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        self.settings.lock().unwrap().set(value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.settings.lock().unwrap().get(pspec)
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_element_flags(gst::ElementFlags::SINK);
    }
}

impl GstObjectImpl for LiveKitPublishSink {}

/// The caps each template accepts: what the publisher sends and browsers decode.
fn video_caps() -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .field(
            "profile",
            gst::List::new(gstreamer_publisher::media::BROWSER_H264_PROFILES),
        )
        .build();
    {
        let caps = caps.get_mut().expect("not shared yet");
        caps.append(gst::Caps::new_empty_simple("video/x-vp8"));
        caps.append(gst::Caps::new_empty_simple("video/x-vp9"));
        caps.append(
            gst::Caps::builder("video/x-av1")
                .field("stream-format", "obu-stream")
                .field("alignment", "tu")
                .build(),
        );
    }
    caps
}

impl ElementImpl for LiveKitPublishSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "LiveKit publisher",
                "Sink/Network",
                "Publishes encoded H.264, VP8, VP9, AV1 and Opus streams into a LiveKit room, one track per request pad (feed it live sources: it does not wait on the clock)",
                "gstreamer-publisher",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let pad_type = super::LiveKitPublishSinkPad::static_type();
            vec![
                gst::PadTemplate::with_gtype(
                    "video_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &video_caps(),
                    pad_type,
                )
                .expect("a valid pad template"),
                gst::PadTemplate::with_gtype(
                    "audio_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &gst::Caps::new_empty_simple("audio/x-opus"),
                    pad_type,
                )
                .expect("a valid pad template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let obj = self.obj();
        let prefix = templ.name_template().trim_end_matches("%u").to_string();
        let name = match name {
            Some(n) if n.starts_with(&prefix) && n[prefix.len()..].parse::<u32>().is_ok() => {
                if obj.static_pad(n).is_some() {
                    gst::warning!(CAT, imp = self, "a pad named {n} exists already");
                    return None;
                }
                n.to_string()
            }
            Some(n) => {
                gst::warning!(
                    CAT,
                    imp = self,
                    "pad name {n} does not fit {}",
                    templ.name_template()
                );
                return None;
            }
            None => (0u32..)
                .map(|i| format!("{prefix}{i}"))
                .find(|n| obj.static_pad(n).is_none())
                .expect("a free pad name"),
        };
        let pad = gst::PadBuilder::<super::LiveKitPublishSinkPad>::from_template(templ)
            .name(name.as_str())
            .chain_function(|pad, parent, buffer| {
                LiveKitPublishSink::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |this| this.chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                LiveKitPublishSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |this| this.sink_event(pad, event),
                )
            })
            .link_function(|pad, parent, peer| {
                LiveKitPublishSink::catch_panic_pad_function(
                    parent,
                    || Err(gst::PadLinkError::Refused),
                    |this| this.linked(pad, peer),
                )
            })
            .build();
        if obj.is_active_state() {
            let _ = pad.set_active(true);
        }
        obj.add_pad(&pad).ok()?;
        obj.child_added(pad.upcast_ref::<glib::Object>(), &name);
        Some(pad.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        if let Some(p) = pad.downcast_ref::<super::LiveKitPublishSinkPad>() {
            let mut state = p.imp().state();
            if let Some(track) = state.track.take() {
                if !state.eos {
                    track.end();
                }
            }
        }
        let name = pad.name();
        let _ = pad.set_active(false);
        let obj = self.obj();
        let _ = obj.remove_pad(pad);
        obj.child_removed(pad.upcast_ref::<glib::Object>(), &name);
        // The pads left may all have ended.
        self.check_all_eos();
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            self.start()?;
        }
        let result = self.parent_change_state(transition);
        if result.is_err() && transition == gst::StateChange::ReadyToPaused {
            self.stop();
        }
        if transition == gst::StateChange::PausedToReady {
            self.stop();
        }
        result
    }
}

trait ActiveState {
    fn is_active_state(&self) -> bool;
}

impl ActiveState for super::LiveKitPublishSink {
    fn is_active_state(&self) -> bool {
        self.current_state() > gst::State::Ready || self.pending_state() > gst::State::Ready
    }
}

impl ChildProxyImpl for LiveKitPublishSink {
    fn child_by_name(&self, name: &str) -> Option<glib::Object> {
        self.obj().static_pad(name).map(|p| p.upcast())
    }

    fn child_by_index(&self, index: u32) -> Option<glib::Object> {
        self.obj()
            .sink_pads()
            .into_iter()
            .nth(index as usize)
            .map(|p| p.upcast())
    }

    fn children_count(&self) -> u32 {
        self.obj().num_sink_pads() as u32
    }
}

impl LiveKitPublishSink {
    fn start(&self) -> Result<(), gst::StateChangeError> {
        let settings = self.settings.lock().unwrap().clone();
        *self.eos_posted.lock().unwrap() = false;
        let started = settings
            .options()
            .map_err(|e| (e, Redactor::default()))
            .and_then(|(options, redactor)| {
                gst::info!(
                    CAT,
                    imp = self,
                    "publishing to {}",
                    options
                        .urls
                        .iter()
                        .map(|u| u.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                Running::start(&self.obj(), options, redactor.clone()).map_err(|e| (e, redactor))
            });
        match started {
            Ok(running) => {
                *self.running.lock().unwrap() = Some(running);
                Ok(())
            }
            Err((e, redactor)) => {
                post_error(&self.obj(), &e, &redactor);
                Err(gst::StateChangeError)
            }
        }
    }

    /// Leaves the room (bounded, see `Running::close`) and forgets every pad's stream.
    fn stop(&self) {
        let running = self.running.lock().unwrap().take();
        if let Some(running) = running {
            running.close();
        }
        for pad in self.obj().sink_pads() {
            if let Some(p) = pad.downcast_ref::<super::LiveKitPublishSinkPad>() {
                *p.imp().state() = PadState::default();
            }
        }
    }

    /// A branch is linked to a pad: prepare its encoder for live publishing to browsers, as
    /// the command-line tool does (B-frames off, real-time settings, 8-bit 4:2:0 input).
    fn linked(
        &self,
        pad: &super::LiveKitPublishSinkPad,
        peer: &gst::Pad,
    ) -> Result<gst::PadLinkSuccess, gst::PadLinkError> {
        let caps = peer.query_caps(Some(&pad.pad_template_caps()));
        if let Some((codec, _)) = track_format(&caps, None) {
            gstreamer_publisher::pipeline::prepare_encoder(peer, codec);
        }
        Ok(gst::PadLinkSuccess)
    }

    fn sink_event(&self, pad: &super::LiveKitPublishSinkPad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::Caps(c) => self.caps(pad, c.caps()),
            EventView::Segment(s) => {
                let segment = s.segment().downcast_ref::<gst::ClockTime>().cloned();
                if segment.is_none() {
                    gst::warning!(
                        CAT,
                        obj = pad,
                        "not a TIME segment: buffers will be dropped"
                    );
                }
                pad.imp().state().segment = segment;
                true
            }
            EventView::Eos(_) => {
                {
                    let mut state = pad.imp().state();
                    state.eos = true;
                    if let Some(track) = &state.track {
                        track.end();
                    }
                }
                gst::debug!(CAT, obj = pad, "end of stream");
                self.check_all_eos();
                true
            }
            EventView::FlushStop(_) => {
                {
                    let mut state = pad.imp().state();
                    state.eos = false;
                    state.segment = None;
                }
                *self.eos_posted.lock().unwrap() = false;
                true
            }
            EventView::StreamStart(_) => {
                pad.imp().state().eos = false;
                true
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    /// Posts EOS once every pad has reached it (the pipeline then ends).
    fn check_all_eos(&self) {
        let obj = self.obj();
        let pads = obj.sink_pads();
        let all = !pads.is_empty()
            && pads.iter().all(|p| {
                p.downcast_ref::<super::LiveKitPublishSinkPad>()
                    .is_some_and(|p| p.imp().state().eos)
            });
        if !all {
            return;
        }
        let mut posted = self.eos_posted.lock().unwrap();
        if !*posted {
            *posted = true;
            drop(posted);
            gst::debug!(CAT, imp = self, "every pad has ended");
            let _ = obj.post_message(gst::message::Eos::builder().src(&*obj).build());
        }
    }

    /// Caps on a pad: the first make its track, later ones update it.
    fn caps(&self, pad: &super::LiveKitPublishSinkPad, caps: &gst::CapsRef) -> bool {
        let encoder = pad.peer().and_then(|peer| upstream_encoder(&peer));
        let Some((codec, mut format)) = track_format(caps, encoder.as_ref()) else {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("{}: {} cannot be published", pad.name(), short_caps(caps))
            );
            return false;
        };
        let kept = {
            let state = pad.imp().state();
            state.track.is_some().then_some(state.encoder_bitrate)
        };
        if let Some(ceiling) = kept {
            // The encoder's bitrate is the user's ceiling only before we steer it: later caps
            // would read back our own target and make it the ceiling for good.
            format.encoder_bitrate = ceiling;
        }
        let settings = pad.imp().settings();
        let format_bitrate = format.encoder_bitrate;
        let spec = TrackSpec {
            name: settings
                .track_name
                .clone()
                .unwrap_or_else(|| pad.name().to_string()),
            pad: pad.name().to_string(),
            codec,
            format,
            description: short_caps(caps),
            settings: TrackSettings {
                source: settings.source.to_source(),
                ..TrackSettings::default()
            },
        };
        let mut state = pad.imp().state();
        if let Some(track) = &state.track {
            if state.codec != Some(codec) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "{}: the codec changed to {codec}; a track keeps its codec",
                        pad.name()
                    )
                );
                return false;
            }
            track.update(spec);
            return true;
        }
        gst::info!(
            CAT,
            obj = pad,
            "track {:?}: {}",
            spec.name,
            spec.description
        );
        let adder = self.running.lock().unwrap().as_ref().map(Running::adder);
        let Some(adder) = adder else {
            gst::warning!(CAT, obj = pad, "caps while stopped");
            return false;
        };
        match adder.add_track(spec, pad) {
            Ok(track) => {
                state.track = Some(track);
                state.codec = Some(codec);
                state.encoder_bitrate = format_bitrate;
                true
            }
            Err(e) => {
                gst::warning!(CAT, obj = pad, "no track: {e}");
                false
            }
        }
    }

    fn chain(
        &self,
        pad: &super::LiveKitPublishSinkPad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (track, frame) = {
            let mut state = pad.imp().state();
            if state.eos {
                return Err(gst::FlowError::Eos);
            }
            let Some(track) = state.track.clone() else {
                return Err(gst::FlowError::NotNegotiated);
            };
            let codec = state.codec.unwrap_or(Codec::H264);
            let Some(frame) = state.frame(codec, &buffer) else {
                return Ok(gst::FlowSuccess::Ok);
            };
            if !state.warned_ahead {
                self.warn_if_ahead(pad, &mut state, frame.timestamp);
            }
            (track, frame)
        };
        match track.write(frame) {
            Ok(()) => Ok(gst::FlowSuccess::Ok),
            Err(WriteError::Full) => {
                let shared = self.shared();
                let dropped = shared.map_or(0, |s| s.dropped.fetch_add(1, Ordering::Relaxed) + 1);
                if dropped == 1 || dropped % 100 == 0 {
                    gst::warning!(
                        CAT,
                        obj = pad,
                        "the publisher is behind; {dropped} frames dropped"
                    );
                }
                Ok(gst::FlowSuccess::Ok)
            }
            Err(WriteError::Closed) => {
                if self
                    .shared()
                    .is_some_and(|s| s.failed.load(Ordering::SeqCst))
                {
                    // The reason is on the bus already.
                    Err(gst::FlowError::Error)
                } else {
                    Err(gst::FlowError::Eos)
                }
            }
        }
    }

    /// The element does not wait on the clock: a source that is not live (a file) would
    /// send its whole stream at once. Says so once per pad, on the bus.
    fn warn_if_ahead(
        &self,
        pad: &super::LiveKitPublishSinkPad,
        state: &mut PadState,
        running_time: Duration,
    ) {
        let Some(now) = self.obj().current_running_time() else {
            return;
        };
        let ahead = running_time.saturating_sub(Duration::from_nanos(now.nseconds()));
        if ahead > AHEAD_WARNING {
            state.warned_ahead = true;
            gst::element_imp_warning!(
                self,
                gst::StreamError::Failed,
                (
                    "{}: frames arrive {:.1} s ahead of the clock: the source is not live, and livekitpublishsink does not wait on the clock; put `clocksync` (or `identity sync=true`) before it, or use a live source",
                    pad.name(),
                    ahead.as_secs_f64()
                )
            );
        }
    }

    fn shared(&self) -> Option<Arc<super::task::Shared>> {
        self.running
            .lock()
            .unwrap()
            .as_ref()
            .map(|r| Arc::clone(&r.shared))
    }
}

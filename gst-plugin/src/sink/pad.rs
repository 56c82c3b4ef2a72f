//! The request pad: its properties, and what it knows of its stream (segment, track, EOS).

use std::sync::{LazyLock, Mutex, MutexGuard};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer_publisher::pipeline::is_codec_header;
use gstreamer_publisher::{Codec, EncodedFrame, LocalTrack, MediaKind};

use crate::logging::CAT;

use super::TrackSource;

#[derive(Debug, Clone, Default)]
pub(super) struct PadSettings {
    pub track_name: Option<String>,
    pub source: TrackSource,
}

/// What the pad's stream has told so far; reset when the element stops.
#[derive(Debug, Default)]
pub(super) struct PadState {
    /// Its track, once caps came and the publisher took it.
    pub track: Option<LocalTrack>,
    pub codec: Option<Codec>,
    /// The encoder's bitrate at the first caps: the user's ceiling (later it is ours).
    pub encoder_bitrate: Option<u64>,
    pub segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    pub eos: bool,
    /// Buffers without a running time (outside the segment, or no timestamp) dropped.
    pub untimed: u64,
    /// The warning about a stream running ahead of the clock was posted.
    pub warned_ahead: bool,
}

#[derive(Default)]
pub struct LiveKitPublishSinkPad {
    settings: Mutex<PadSettings>,
    state: Mutex<PadState>,
}

impl LiveKitPublishSinkPad {
    pub(super) fn settings(&self) -> PadSettings {
        self.settings.lock().unwrap().clone()
    }

    pub(super) fn state(&self) -> MutexGuard<'_, PadState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for LiveKitPublishSinkPad {
    const NAME: &'static str = "GstLiveKitPublishSinkPad";
    type Type = super::LiveKitPublishSinkPad;
    type ParentType = gst::Pad;
}

impl ObjectImpl for LiveKitPublishSinkPad {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("track-name")
                    .nick("Track name")
                    .blurb(
                        "The track's name in the room (default: the pad's name, e.g. video_0); \
                         set before the stream's caps arrive",
                    )
                    .build(),
                glib::ParamSpecEnum::builder::<TrackSource>("source")
                    .nick("Track source")
                    .blurb(
                        "What subscribers are told the track is (camera, microphone, \
                         screen_share, screen_share_audio); set before the stream's caps arrive",
                    )
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "track-name" => {
                settings.track_name = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|n| !n.is_empty())
            }
            "source" => settings.source = value.get().expect("type checked upstream"),
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "track-name" => settings.track_name.to_value(),
            "source" => settings.source.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for LiveKitPublishSinkPad {}
impl PadImpl for LiveKitPublishSinkPad {}

impl PadState {
    /// The buffer as a frame at its running time; `None` for what is not media (gaps, Opus
    /// headers) and buffers without a running time.
    pub(super) fn frame(&mut self, codec: Codec, buffer: &gst::BufferRef) -> Option<EncodedFrame> {
        let state = self;
        if buffer.flags().contains(gst::BufferFlags::GAP) || buffer.size() == 0 {
            return None;
        }
        let running_time = state
            .segment
            .as_ref()
            .and_then(|s| s.to_running_time(buffer.pts().or(buffer.dts())));
        let Some(running_time) = running_time else {
            state.untimed += 1;
            if state.untimed == 1 || state.untimed % 100 == 0 {
                gst::warning!(
                    CAT,
                    "{} buffers without a running time dropped",
                    state.untimed
                );
            }
            return None;
        };
        let map = buffer.map_readable().ok()?;
        let data = map.as_slice();
        if is_codec_header(codec, buffer, data) {
            return None;
        }
        Some(EncodedFrame {
            data: Arc::from(data),
            timestamp: Duration::from_nanos(running_time.nseconds()),
            duration: buffer
                .duration()
                .map(|d| Duration::from_nanos(d.nseconds())),
            keyframe: codec.kind() == MediaKind::Audio
                || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            captured: Instant::now(),
        })
    }
}

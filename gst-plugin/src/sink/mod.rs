//! The `livekitpublishsink` element and its request pads.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

mod imp;
mod pad;
mod settings;
mod task;

glib::wrapper! {
    /// A sink that publishes every encoded stream linked to it (request pads `video_%u`,
    /// `audio_%u`) as one track of a LiveKit room.
    pub struct LiveKitPublishSink(ObjectSubclass<imp::LiveKitPublishSink>)
        @extends gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

glib::wrapper! {
    /// A request pad of [`LiveKitPublishSink`]: one track, with its `track-name` and `source`.
    pub struct LiveKitPublishSinkPad(ObjectSubclass<pad::LiveKitPublishSinkPad>)
        @extends gst::Pad, gst::Object;
}

/// What subscribers are told a track is (LiveKit's TrackSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "GstLiveKitTrackSource")]
pub enum TrackSource {
    #[default]
    #[enum_value(
        name = "By the media kind: camera for video, microphone for audio",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "Camera", nick = "camera")]
    Camera = 1,
    #[enum_value(name = "Microphone", nick = "microphone")]
    Microphone = 2,
    #[enum_value(name = "Screen share", nick = "screen_share")]
    ScreenShare = 3,
    #[enum_value(name = "Screen share audio", nick = "screen_share_audio")]
    ScreenShareAudio = 4,
}

impl TrackSource {
    pub(crate) fn to_source(self) -> Option<gstreamer_publisher::Source> {
        use gstreamer_publisher::Source;
        match self {
            TrackSource::Auto => None,
            TrackSource::Camera => Some(Source::Camera),
            TrackSource::Microphone => Some(Source::Microphone),
            TrackSource::ScreenShare => Some(Source::ScreenShare),
            TrackSource::ScreenShareAudio => Some(Source::ScreenShareAudio),
        }
    }
}

pub(crate) fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "livekitpublishsink",
        gst::Rank::NONE,
        LiveKitPublishSink::static_type(),
    )
}

//! GStreamer fixtures: media files made by a pipeline of their own.

use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;

/// The Go tool's README H.264 example as a user pastes it: a 720p test pattern with a clock,
/// `x264enc tune=zerolatency key-int-max=60 bitrate=2000`, and an Opus tone.
pub const GO_README_H264_EXAMPLE: &str = "videotestsrc is-live=true ! \
        video/x-raw,width=1280,height=720 ! \
        clockoverlay ! \
        videoconvert ! \
        x264enc tune=zerolatency key-int-max=60 bitrate=2000 \
    audiotestsrc is-live=true ! \
        audioresample ! \
        audioconvert ! \
        opusenc bitrate=64000";

/// Runs `description` (a fixture pipeline, e.g. one that writes a file) to EOS, within
/// `timeout`; panics if it fails or does not end.
pub fn run_to_eos(description: &str, timeout: Duration) {
    gst::init().expect("gstreamer init");
    let pipeline = gst::parse::launch(description).expect("fixture pipeline parses");
    let bus = pipeline.bus().expect("pipeline bus");
    pipeline
        .set_state(gst::State::Playing)
        .expect("fixture pipeline plays");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("fixture pipeline ends in time");
    pipeline
        .set_state(gst::State::Null)
        .expect("fixture pipeline stops");
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "fixture failed: {msg:?}"
    );
}

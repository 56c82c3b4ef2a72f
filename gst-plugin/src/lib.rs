//! `livekitpublishsink`: a GStreamer sink element that publishes the encoded streams linked to
//! it into a LiveKit room, through `gstreamer-publisher`'s library API
//! ([`gstreamer_publisher::Publisher`]), without libwebrtc.
//!
//! ```text
//! gst-launch-1.0 livekitpublishsink name=lk url=wss://… token=… \
//!     videotestsrc is-live=true ! x264enc tune=zerolatency ! lk. \
//!     audiotestsrc is-live=true ! opusenc ! lk.
//! ```
//!
//! Build with `cargo build --release -p gst-plugin-livekitpublish`; the plugin is
//! `target/release/libgstlivekitpublish.so` (`GST_PLUGIN_PATH=target/release`).

use gstreamer as gst;
use gstreamer::glib;

mod logging;
mod sink;

pub use sink::{LiveKitPublishSink, LiveKitPublishSinkPad, TrackSource};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    logging::init();
    sink::register(plugin)
}

gst::plugin_define!(
    livekitpublish,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    // One of the licence strings GStreamer accepts (gstplugin.c); the crate is Apache-2.0.
    "Apache 2.0",
    "gstreamer-publisher",
    "gstreamer-publisher",
    "gstreamer-publisher"
);

//! The library logs with `tracing`; inside GStreamer those lines go to GStreamer's debug log,
//! category `livekitpublish` (`GST_DEBUG=livekitpublish:4` shows the connection's steps,
//! `:5` and `:6` more). Lines pass through the library's JWT masking on the way.

use std::fmt::Write as _;
use std::sync::LazyLock;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::DebugLogger as _;
use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "livekitpublish",
        gst::DebugColorFlags::empty(),
        Some("LiveKit publishing (livekitpublishsink and the gstreamer-publisher library)"),
    )
});

fn gst_level(level: &Level) -> gst::DebugLevel {
    match *level {
        Level::ERROR => gst::DebugLevel::Error,
        Level::WARN => gst::DebugLevel::Warning,
        Level::INFO => gst::DebugLevel::Info,
        Level::DEBUG => gst::DebugLevel::Debug,
        Level::TRACE => gst::DebugLevel::Trace,
    }
}

/// Forwards `tracing` events to [`CAT`].
struct GstLayer;

impl<S: tracing::Subscriber> Layer<S> for GstLayer {
    /// Asked at every event, not cached per call site: the threshold may change at run time
    /// (`gst_debug_set_threshold_for_name`).
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        CAT.above_threshold(gst_level(metadata.level()))
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Line::default();
        event.record(&mut line);
        let text = gstreamer_publisher::redact::tokens(&line.0).into_owned();
        CAT.log(
            None::<&gst::Object>,
            gst_level(meta.level()),
            glib::gstr!("livekitpublish"),
            meta.module_path().unwrap_or(meta.target()),
            meta.line().unwrap_or(0),
            format_args!("{text}"),
        );
    }
}

/// `message key=value …`, as the command-line tool prints them.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// Installs the bridge as this plugin's `tracing` subscriber (the plugin has its own copy of
/// `tracing`, so an application's subscriber is not replaced). Idempotent.
pub(crate) fn init() {
    LazyLock::force(&CAT);
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(GstLayer));
}

//! The doctor: what `--dry-run` warns about, for pipelines that publish fine and then stutter,
//! never render or never recover in a browser.
//!
//! It reads the parsed pipeline while [`super::discover`] holds it prerolled (PAUSED): element
//! properties, the caps negotiated on encoders and outputs, and the timestamps of the buffers
//! that reached our sinks. Every warning is one line that names the element and says the fix;
//! each (element, check) pair is reported once. Nothing here changes the pipeline, and nothing
//! here may panic: a property that is missing, unreadable or of an unexpected type is skipped.
//!
//! The checks:
//! 1. B-frames: an encoder property (`bframes`, `b-frames`, `max-bframes`) above 0, or a
//!    prerolled buffer whose DTS is before its PTS / a PTS that goes backwards.
//! 2. Formats browsers do not decode: an encoder fed other than 8-bit 4:2:0 (negotiated, or
//!    the only thing upstream can offer), or an output whose caps carry an H.264 profile other
//!    than (constrained-)baseline/main/high, a VP9 profile other than 0, an AV1 profile other
//!    than main.
//! 3. Non-live sources: `is-live=false` on a source (paced by the pipeline clock, no catching
//!    up by skipping), and non-live sources next to live ones (unpaced in a live pipeline).
//! 4. GOPs longer than 10 s at the negotiated framerate, or keyframes turned off; and
//!    `av1enc` (which makes no keyframe on request) with keyframes more than 2 s apart.
//! 5. Unparsed outputs: coded data read straight from a source with no parser or demuxer,
//!    H.264/AV1 caps without `stream-format`/`alignment`; with the Debian package to install
//!    when the element to add is missing.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer_video as gst_video;

use super::browser::encoder_of;
use super::inspect::{self, OWN_PREFIX};
use crate::media::{Codec, MediaKind, Output};

mod bframes;
mod formats;
mod gop;
mod live;
mod parsers;
#[cfg(test)]
mod tests;

use bframes::*;
use formats::*;
use gop::*;
use live::*;
use parsers::*;

/// Longest keyframe interval we accept quietly, in seconds.
const MAX_GOP_SECONDS: f64 = 10.0;
/// The keyframe interval we suggest instead, in seconds.
const SUGGESTED_GOP_SECONDS: f64 = 2.0;
/// Framerate assumed for a GOP in frames when the pipeline has not told its framerate.
const ASSUMED_FPS: f64 = 30.0;
/// How long a live pipeline (which does not preroll) gets to negotiate its encoders' input.
const LIVE_SETTLE: Duration = Duration::from_millis(500);
/// Timestamps kept per output; prerolling delivers one or two buffers.
const MAX_STAMPS: usize = 64;
/// Upstream hops walked from an output before giving up.
const MAX_HOPS: usize = 32;

/// The H.264 profiles browsers decode.
use crate::media::BROWSER_H264_PROFILES;
/// Encoder properties that turn B-frames on when above 0.
const BFRAME_PROPERTIES: [&str; 3] = ["bframes", "b-frames", "max-bframes"];
/// Encoder properties holding the longest keyframe interval in frames (0 or less: automatic,
/// or "infinite" for -1 when the property's description says so).
const GOP_PROPERTIES: [&str; 6] = [
    "key-int-max",
    "keyframe-max-dist",
    "gop-size",
    "keyframe-period",
    "max-key-frame-interval",
    "intra-period-length",
];
/// Element classes that frame coded data (so what follows them is not raw bytes).
const FRAMING_CLASSES: [&str; 6] = [
    "Encoder",
    "Parser",
    "Demuxer",
    "Depayloader",
    "Decoder",
    "Muxer",
];

/// PTS and DTS (nanoseconds) of one buffer that reached an output's sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stamp {
    pub(crate) pts: Option<u64>,
    pub(crate) dts: Option<u64>,
}

/// Records the timestamps of the buffers reaching each output's appsink while prerolling.
/// Install before the sinks are attached.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    stamps: Arc<Mutex<HashMap<u32, Vec<Stamp>>>>,
}

impl Recorder {
    /// Watches `pipeline` for our appsinks (named `gstpub-sink-<output id>` by the sink
    /// module) and probes the buffers reaching them.
    pub(crate) fn install(pipeline: &gst::Pipeline) -> Recorder {
        let recorder = Recorder::default();
        let stamps = Arc::clone(&recorder.stamps);
        let prefix = format!("{OWN_PREFIX}sink-");
        pipeline.connect_deep_element_added(move |_, _, element| {
            let name = element.name();
            let Some(id) = name
                .strip_prefix(prefix.as_str())
                .and_then(|n| n.parse::<u32>().ok())
            else {
                return;
            };
            let Some(pad) = element.static_pad("sink") else {
                return;
            };
            let stamps = Arc::clone(&stamps);
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer() {
                    let stamp = Stamp {
                        pts: buffer.pts().map(|t| t.nseconds()),
                        dts: buffer.dts().map(|t| t.nseconds()),
                    };
                    let mut map = stamps.lock().unwrap_or_else(|p| p.into_inner());
                    let list = map.entry(id).or_default();
                    if list.len() < MAX_STAMPS {
                        list.push(stamp);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        });
        recorder
    }

    fn stamps(&self, id: u32) -> Vec<Stamp> {
        let map = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id).cloned().unwrap_or_default()
    }
}

/// Which check a warning comes from: each element gets at most one warning per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Check {
    BFrames,
    Format,
    Live,
    Gop,
    KeyframeRequests,
    Parser,
}

/// The warnings so far, one line each, deduplicated.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    keys: HashSet<(String, Check)>,
}

impl Report {
    fn has(&self, element: &str, check: Check) -> bool {
        self.keys.contains(&(element.to_string(), check))
    }

    fn warn(&mut self, element: &str, check: Check, line: String) {
        if !self.keys.insert((element.to_string(), check)) {
            return;
        }
        let line = one_line(&line);
        if !line.is_empty() && !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }
}

/// One output with the pad it comes from and the encoder behind it, when found.
struct Target<'a> {
    output: &'a Output,
    pad: Option<gst::Pad>,
    encoder: Option<gst::Element>,
}

impl Target<'_> {
    /// The element a warning about this output names: its encoder, or the output's element.
    fn culprit(&self) -> String {
        match &self.encoder {
            Some(e) => e.name().to_string(),
            None => self.output.element.clone(),
        }
    }
}

/// Runs every check on a pipeline that [`super::discover`] prerolled (or, when live, brought
/// to PAUSED) and returns the warnings, one line each. Waits at most until `deadline` (and no
/// more than half a second) for a live pipeline's encoders to negotiate their input.
pub(crate) fn examine(
    pipeline: &gst::Pipeline,
    outputs: &[Output],
    recorder: &Recorder,
    deadline: Instant,
) -> Vec<String> {
    let live = matches!(
        pipeline.state(gst::ClockTime::ZERO).0,
        Ok(gst::StateChangeSuccess::NoPreroll)
    );
    let elements = inspect::visible_elements(pipeline.upcast_ref());
    let targets: Vec<Target> = outputs
        .iter()
        .map(|output| {
            let pad = pipeline
                .by_name(&output.element)
                .and_then(|e| e.static_pad(&output.pad));
            let encoder = pad.as_ref().and_then(encoder_of);
            Target {
                output,
                pad,
                encoder,
            }
        })
        .collect();
    // Only encoders that feed an output: one that feeds a recording branch may use B-frames
    // and long GOPs as it likes.
    let mut encoders: Vec<gst::Element> = Vec::new();
    for e in targets.iter().filter_map(|t| t.encoder.clone()) {
        if !encoders.contains(&e) {
            encoders.push(e);
        }
    }
    if live {
        settle(&encoders, deadline);
    }

    let mut report = Report::default();
    check_bframes(&mut report, &encoders, &targets, recorder);
    check_formats(&mut report, &targets);
    check_live(&mut report, &elements, live);
    check_gops(&mut report, &encoders, &targets);
    check_parsers(&mut report, &targets);
    report.lines
}

/// Waits (briefly) until every video encoder has negotiated its input.
pub(super) fn settle(encoders: &[gst::Element], deadline: Instant) {
    let until = deadline.min(Instant::now() + LIVE_SETTLE);
    let ready = || {
        encoders
            .iter()
            .filter(|e| klass(e).contains("Video"))
            .filter_map(|e| e.static_pad("sink"))
            .all(|p| p.current_caps().is_some())
    };
    while !ready() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The factory's class ("Codec/Encoder/Video"); empty when unknown.
pub(super) fn factory_name(element: &gst::Element) -> String {
    element
        .factory()
        .map(|f| f.name().to_string())
        .unwrap_or_default()
}

pub(super) fn klass(element: &gst::Element) -> String {
    element
        .factory()
        .and_then(|f| f.metadata("klass").map(str::to_string))
        .unwrap_or_default()
}

pub(super) fn readable(element: &gst::Element, name: &str) -> Option<glib::ParamSpec> {
    element
        .find_property(name)
        .filter(|p| p.flags().contains(glib::ParamFlags::READABLE))
}

/// An integer property of any integer type, as i64.
pub(super) fn int_property(element: &gst::Element, name: &str) -> Option<i64> {
    readable(element, name)?;
    let value = element.property_value(name);
    if let Ok(v) = value.get::<u32>() {
        return Some(i64::from(v));
    }
    if let Ok(v) = value.get::<i32>() {
        return Some(i64::from(v));
    }
    if let Ok(v) = value.get::<i64>() {
        return Some(v);
    }
    if let Ok(v) = value.get::<u64>() {
        return i64::try_from(v).ok().or(Some(i64::MAX));
    }
    None
}

pub(super) fn bool_property(element: &gst::Element, name: &str) -> Option<bool> {
    readable(element, name)?;
    element.property_value(name).get::<bool>().ok()
}

/// The nick of an enum property's value ("disabled").
pub(super) fn enum_nick(element: &gst::Element, name: &str) -> Option<String> {
    readable(element, name)?;
    let value = element.property_value(name);
    glib::EnumValue::from_value(&value).map(|(_, v)| v.nick().to_string())
}

/// Whether a property still holds its default value.
pub(super) fn is_default(element: &gst::Element, name: &str) -> bool {
    let Some(pspec) = readable(element, name) else {
        return false;
    };
    let value = element.property_value(name);
    let default = pspec.default_value();
    value.type_() == default.type_() && value.compare(default) == Some(std::cmp::Ordering::Equal)
}

/// Folds a message onto one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

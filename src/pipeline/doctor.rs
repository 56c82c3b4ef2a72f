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
//! 4. GOPs longer than 10 s at the negotiated framerate, or keyframes turned off.
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
const BROWSER_H264_PROFILES: [&str; 4] = ["constrained-baseline", "baseline", "main", "high"];
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
fn settle(encoders: &[gst::Element], deadline: Instant) {
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

// ---------------------------------------------------------------- 1. B-frames

fn check_bframes(
    report: &mut Report,
    encoders: &[gst::Element],
    targets: &[Target],
    recorder: &Recorder,
) {
    for encoder in encoders {
        for property in BFRAME_PROPERTIES {
            if let Some(n) = int_property(encoder, property).filter(|n| *n > 0) {
                let name = encoder.name();
                report.warn(
                    &name,
                    Check::BFrames,
                    format!("{name} sends B-frames ({property}={n}); browsers stutter or drop frames: set {property}=0"),
                );
            }
        }
    }
    for target in targets
        .iter()
        .filter(|t| t.output.kind() == MediaKind::Video)
    {
        let culprit = target.culprit();
        if report.has(&culprit, Check::BFrames) || !reorders(&recorder.stamps(target.output.id.0)) {
            continue;
        }
        let fix = match &target.encoder {
            Some(e) => format!("turn B-frames off on {} (e.g. bframes=0)", e.name()),
            None => "re-encode it without B-frames (e.g. x264enc bframes=0)".to_string(),
        };
        report.warn(
            &culprit,
            Check::BFrames,
            format!(
                "{culprit} sends frames out of display order (B-frames, seen while prerolling {}.{}); browsers stutter or drop frames: {fix}",
                target.output.element, target.output.pad
            ),
        );
    }
}

/// True when frames arrive out of presentation order: a DTS before its PTS, or a PTS below
/// the one before it.
pub(crate) fn reorders(stamps: &[Stamp]) -> bool {
    let early_dts = stamps
        .iter()
        .any(|s| matches!((s.dts, s.pts), (Some(dts), Some(pts)) if dts < pts));
    let pts: Vec<u64> = stamps.iter().filter_map(|s| s.pts).collect();
    early_dts || pts.windows(2).any(|w| w[1] < w[0])
}

// ---------------------------------------------------------------- 2. profiles and formats

fn check_formats(report: &mut Report, targets: &[Target]) {
    for target in targets
        .iter()
        .filter(|t| t.output.kind() == MediaKind::Video)
    {
        let codec = target.output.codec;
        if let Some(encoder) = &target.encoder {
            if let Some((format, problem)) = encoder_input(encoder).and_then(|f| {
                let problem = raw_format_problem(&f, codec)?;
                Some((f, problem))
            }) {
                let name = encoder.name();
                report.warn(
                    &name,
                    Check::Format,
                    format!(
                        "{name} is fed {format} ({problem}); browsers decode only 8-bit 4:2:0 {}: add `videoconvert ! video/x-raw,format=I420` before {name}",
                        codec_label(codec)
                    ),
                );
            }
        }
        if let Some(profile) = output_profile(target).filter(|p| !browser_profile(codec, p)) {
            let culprit = target.culprit();
            let fix = match &target.encoder {
                Some(e) => format!("add `videoconvert ! video/x-raw,format=I420` before {}", e.name()),
                None => format!(
                    "re-encode it (decodebin ! videoconvert ! video/x-raw,format=I420 ! an encoder) after {}.{}",
                    target.output.element, target.output.pad
                ),
            };
            report.warn(
                &culprit,
                Check::Format,
                format!(
                    "{}.{} carries {} profile {profile}, which browsers do not decode: {fix}",
                    target.output.element,
                    target.output.pad,
                    codec_label(codec)
                ),
            );
        }
    }
}

/// The raw format the encoder takes: negotiated, or else the only kind upstream can offer
/// when none of what it offers is decodable (a live pipeline negotiates only once playing).
fn encoder_input(encoder: &gst::Element) -> Option<String> {
    let sink = encoder.static_pad("sink")?;
    if let Some(caps) = sink.current_caps() {
        return formats_in(&caps).into_iter().next();
    }
    let offered = sink.peer_query_caps(Some(&sink.pad_template_caps()));
    if offered.is_any() || offered.is_empty() {
        return None;
    }
    let formats = formats_in(&offered);
    // Any codec will do here: only "is it 8-bit 4:2:0" matters.
    if formats.is_empty()
        || formats
            .iter()
            .any(|f| raw_format_problem(f, Codec::H264).is_none())
    {
        return None;
    }
    formats.into_iter().next()
}

/// Every raw format named in `caps` (fixed strings and lists).
fn formats_in(caps: &gst::CapsRef) -> Vec<String> {
    let mut out = Vec::new();
    for s in caps.iter() {
        if let Ok(f) = s.get::<String>("format") {
            out.push(f);
        } else if let Ok(list) = s.get::<gst::List>("format") {
            out.extend(list.iter().filter_map(|v| v.get::<String>().ok()));
        }
    }
    out
}

/// Why browsers cannot decode `codec` made from raw `format`, e.g. "4:4:4" or "10-bit
/// 4:2:0"; `None` when they can (8-bit 4:2:0 YUV; for AV1 also 10-bit 4:2:0, Main profile)
/// or the format is unknown.
pub(crate) fn raw_format_problem(format: &str, codec: Codec) -> Option<String> {
    if gst::init().is_err() {
        return None;
    }
    let video_format = gst_video::VideoFormat::from_str(format).ok()?;
    let info = gst_video::VideoFormatInfo::from_format(video_format);
    let depth = info.depth().first().copied().unwrap_or(8);
    let chroma = if info.is_gray() {
        "4:0:0 (grey)"
    } else if !info.is_yuv() {
        "RGB"
    } else {
        match (info.w_sub().get(1).copied(), info.h_sub().get(1).copied()) {
            (Some(1), Some(1)) => "4:2:0",
            (Some(1), Some(0)) => "4:2:2",
            (Some(0), Some(0)) => "4:4:4",
            _ => "subsampled other than 4:2:0",
        }
    };
    let max_depth = if codec == Codec::Av1 { 10 } else { 8 };
    if chroma == "4:2:0" && depth <= max_depth {
        return None;
    }
    if depth > 8 {
        Some(format!("{depth}-bit {chroma}"))
    } else {
        Some(chroma.to_string())
    }
}

/// The profile an output's caps name, if fixed: from what reached our sink (our parsers add
/// it, e.g. for AV1) or else the pad's own caps.
fn output_profile(target: &Target) -> Option<String> {
    let codec = target.output.codec;
    if codec == Codec::H264 {
        if let Some(p) = &target.output.format.h264_profile {
            return Some(p.clone());
        }
    }
    let from_caps = |caps: &gst::CapsRef| {
        caps.iter()
            .filter(|s| super::caps::codec_of(s.name().as_str()) == Some(codec))
            .find_map(|s| s.get::<String>("profile").ok())
    };
    gst::Caps::from_str(&target.output.caps)
        .ok()
        .and_then(|c| from_caps(&c))
        .or_else(|| {
            target
                .pad
                .as_ref()?
                .current_caps()
                .and_then(|c| from_caps(&c))
        })
}

/// Whether browsers decode `codec` in `profile` (as GStreamer caps name it).
pub(crate) fn browser_profile(codec: Codec, profile: &str) -> bool {
    match codec {
        Codec::H264 => BROWSER_H264_PROFILES.contains(&profile),
        Codec::Vp9 => profile == "0",
        Codec::Av1 => profile == "main",
        Codec::Vp8 | Codec::Opus => true,
    }
}

fn codec_label(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "H.264",
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        Codec::Av1 => "AV1",
        Codec::Opus => "Opus",
    }
}

// ---------------------------------------------------------------- 3. live and non-live sources

/// A source the user wrote and whether it is live, when that can be told.
struct SourceInfo {
    element: gst::Element,
    live: Option<bool>,
    /// It has an `is-live` property (so `is-live=true` is the fix).
    switchable: bool,
}

fn check_live(report: &mut Report, elements: &[gst::Element], pipeline_live: bool) {
    let sources: Vec<SourceInfo> = elements
        .iter()
        .filter(|e| is_source(e))
        .map(|e| {
            let switchable = bool_property(e, "is-live").is_some();
            let live = bool_property(e, "is-live").or_else(|| queried_liveness(e));
            SourceInfo {
                element: e.clone(),
                live,
                switchable,
            }
        })
        .collect();
    let live_source = sources
        .iter()
        .find(|s| s.live == Some(true))
        .map(|s| s.element.name().to_string());
    let mixed = pipeline_live || live_source.is_some();
    for source in sources.iter().filter(|s| s.live == Some(false)) {
        let name = source.element.name().to_string();
        let line = match (mixed, source.switchable) {
            (false, false) => continue, // a file in a file-only pipeline: paced by the clock, fine
            (false, true) => non_live_warning(&name),
            (true, switchable) => mixed_warning(&name, live_source.as_deref(), switchable),
        };
        report.warn(&name, Check::Live, line);
    }
}

/// The warning for a source with `is-live=false` in a pipeline without live sources.
pub(crate) fn non_live_warning(name: &str) -> String {
    format!(
        "{name} is not live (is-live=false): only the publisher's clock-synced sinks pace it, so after a stall its frames go out late in a burst; set is-live=true"
    )
}

/// The warning for a non-live source in a pipeline that has a live one.
pub(crate) fn mixed_warning(name: &str, live_source: Option<&str>, switchable: bool) -> String {
    let live = match live_source {
        Some(l) => format!("{l} is"),
        None => "the pipeline is".to_string(),
    };
    let fix = if switchable {
        format!("set is-live=true on {name}")
    } else {
        format!("pace it with `identity sync=true` after {name}'s demuxer or decoder, or publish it from its own pipeline")
    };
    format!(
        "{name} is not live but {live}: a live pipeline's sinks do not wait for the clock, so {name}'s branch runs as fast as it can and drifts from the live one; {fix}"
    )
}

/// An element with source pads and no sink pads (nor templates for any).
fn is_source(element: &gst::Element) -> bool {
    let templates = element.pad_template_list();
    templates
        .iter()
        .any(|t| t.direction() == gst::PadDirection::Src)
        && templates
            .iter()
            .all(|t| t.direction() != gst::PadDirection::Sink)
}

/// Liveness as the source's latency query answers it (file sources: not live).
fn queried_liveness(element: &gst::Element) -> Option<bool> {
    let pad = element.src_pads().into_iter().next()?;
    let mut query = gst::query::Latency::new();
    if pad.query(&mut query) {
        Some(query.result().0)
    } else {
        None
    }
}

// ---------------------------------------------------------------- 4. GOP length

/// How an encoder places keyframes, as far as its properties tell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Gop {
    /// At most every `frames` frames, set by `property`.
    Frames {
        property: String,
        frames: u64,
        default: bool,
    },
    /// Never after the first, because of `setting`; `property` is the one to set instead.
    Never { setting: String, property: String },
}

fn check_gops(report: &mut Report, encoders: &[gst::Element], targets: &[Target]) {
    for encoder in encoders.iter().filter(|e| !klass(e).contains("Audio")) {
        let Some(gop) = gop_of(encoder) else { continue };
        let fps = targets
            .iter()
            .filter(|t| t.encoder.as_ref() == Some(encoder))
            .find_map(|t| t.output.format.framerate)
            .and_then(|(n, d)| fraction_fps(n, d))
            .or_else(|| encoder_fps(encoder));
        let name = encoder.name();
        if let Some(line) = gop_warning(&name, &gop, fps) {
            report.warn(&name, Check::Gop, line);
        }
    }
}

/// The encoder's keyframe placement from its properties; `None` when automatic (x264enc's
/// `key-int-max=0` is one keyframe every 10 s) or unknown.
fn gop_of(encoder: &gst::Element) -> Option<Gop> {
    if enum_nick(encoder, "keyframe-mode").as_deref() == Some("disabled") {
        let property = GOP_PROPERTIES
            .iter()
            .find(|p| encoder.find_property(p).is_some())
            .unwrap_or(&"keyframe-max-dist");
        return Some(Gop::Never {
            setting: "keyframe-mode=disabled".into(),
            property: format!("keyframe-mode=auto {property}"),
        });
    }
    for property in GOP_PROPERTIES {
        let Some(value) = int_property(encoder, property) else {
            continue;
        };
        if value > 0 {
            return Some(Gop::Frames {
                property: property.to_string(),
                frames: u64::try_from(value).ok()?,
                default: is_default(encoder, property),
            });
        }
        let infinite = encoder
            .find_property(property)
            .and_then(|p| p.blurb().map(|b| b.contains("infinite")))
            .unwrap_or(false);
        if value == -1 && infinite {
            return Some(Gop::Never {
                setting: format!("{property}=-1"),
                property: property.to_string(),
            });
        }
        return None;
    }
    None
}

/// The warning for a GOP longer than 10 s (or none), at `fps` (assumed 30 when unknown).
pub(crate) fn gop_warning(name: &str, gop: &Gop, fps: Option<f64>) -> Option<String> {
    let known = fps.filter(|f| f.is_finite() && *f > 0.0);
    let rate = known.unwrap_or(ASSUMED_FPS);
    let suggest = ((rate * SUGGESTED_GOP_SECONDS).round() as u64).max(1);
    let why = "this project sends keyframes on request, but recordings and late joiners on other SFUs wait for one";
    match gop {
        Gop::Frames {
            property,
            frames,
            default,
        } => {
            let seconds = *frames as f64 / rate;
            if seconds <= MAX_GOP_SECONDS {
                return None;
            }
            let default = if *default { ", the default," } else { "" };
            let at = match known {
                Some(f) => format!("at {} fps", fmt_number(f)),
                None => format!("at an assumed {} fps", fmt_number(rate)),
            };
            Some(format!(
                "{name} makes a keyframe every {} s ({property}={frames}{default} {at}); {why}: set {property}={suggest}",
                fmt_seconds(seconds)
            ))
        }
        Gop::Never { setting, property } => Some(format!(
            "{name} makes no keyframe after the first ({setting}); {why}: set {property}={suggest}"
        )),
    }
}

/// The framerate negotiated on (or offered to) the encoder's input.
fn encoder_fps(encoder: &gst::Element) -> Option<f64> {
    let sink = encoder.static_pad("sink")?;
    let caps = sink
        .current_caps()
        .unwrap_or_else(|| sink.peer_query_caps(Some(&sink.pad_template_caps())));
    caps.iter()
        .find_map(|s| s.get::<gst::Fraction>("framerate").ok())
        .and_then(|f| fraction_fps(f.numer(), f.denom()))
}

pub(crate) fn fraction_fps(numer: i32, denom: i32) -> Option<f64> {
    (numer > 0 && denom > 0).then(|| f64::from(numer) / f64::from(denom))
}

/// "16.7", "12", "0.5": one decimal, none when whole.
pub(crate) fn fmt_seconds(seconds: f64) -> String {
    let rounded = (seconds * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// "30", "29.97": up to two decimals.
pub(crate) fn fmt_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

// ---------------------------------------------------------------- 5. parsers

fn check_parsers(report: &mut Report, targets: &[Target]) {
    for target in targets
        .iter()
        .filter(|t| t.output.kind() == MediaKind::Video)
    {
        let Some(pad) = &target.pad else { continue };
        let codec = target.output.codec;
        let element = target.output.element.clone();
        let source = match upstream_of(pad) {
            Upstream::Framed => continue,
            Upstream::Raw(source) => Some(source),
            Upstream::Unknown => {
                // Nothing upstream told; the caps may still say the stream is not framed.
                let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
                if !matches!(codec, Codec::H264 | Codec::Av1) || !lacks_framing_fields(&caps, codec)
                {
                    continue;
                }
                None
            }
        };
        let installed = |factory: &str| gst::ElementFactory::find(factory).is_some();
        let line = parser_warning(&element, &pad.name(), codec, source.as_deref(), installed);
        report.warn(&element, Check::Parser, line);
    }
}

/// What feeds an output, walking upstream through single-input elements.
#[derive(Debug, Clone, PartialEq)]
enum Upstream {
    /// An encoder, parser, demuxer, depayloader… frames the stream.
    Framed,
    /// Bytes straight from this source element (`filesrc ! capsfilter caps=video/x-vp8`).
    Raw(String),
    /// The walk ended elsewhere (a bin's edge, an element with several inputs).
    Unknown,
}

fn upstream_of(pad: &gst::Pad) -> Upstream {
    let Some(mut element) = pad.parent_element() else {
        return Upstream::Unknown;
    };
    for _ in 0..MAX_HOPS {
        let class = klass(&element);
        if FRAMING_CLASSES.iter().any(|c| class.contains(c)) {
            return Upstream::Framed;
        }
        if is_source(&element) {
            return Upstream::Raw(element.name().to_string());
        }
        let sinks = element.sink_pads();
        let [sink] = sinks.as_slice() else {
            return Upstream::Unknown;
        };
        match sink.peer().and_then(|p| p.parent_element()) {
            Some(next) => element = next,
            None => return Upstream::Unknown,
        }
    }
    Upstream::Unknown
}

/// H.264 or AV1 caps that do not say how the stream is framed.
fn lacks_framing_fields(caps: &gst::CapsRef, codec: Codec) -> bool {
    if caps.is_any() || caps.is_empty() {
        return false;
    }
    caps.iter()
        .filter(|s| super::caps::codec_of(s.name().as_str()) == Some(codec))
        .any(|s| !s.has_field("stream-format") || !s.has_field("alignment"))
}

/// The warning for an unparsed output `element.pad` (from `source` when known), with the
/// package to install when the element to add is missing.
pub(crate) fn parser_warning(
    element: &str,
    pad: &str,
    codec: Codec,
    source: Option<&str>,
    installed: impl Fn(&str) -> bool,
) -> String {
    let label = codec_label(codec);
    let from = match source {
        Some(s) if s == element => format!("straight from {s}"),
        Some(s) => format!("straight from {s} with no parser or demuxer"),
        None => "without stream-format/alignment in its caps".to_string(),
    };
    let (add, what) = match codec {
        Codec::H264 => (vec!["h264parse"], format!("add h264parse after {element}")),
        Codec::Av1 => (vec!["av1parse"], format!("add av1parse after {element}")),
        _ => (
            vec!["matroskademux", "ivfparse"],
            format!(
                "read it through its container's demuxer instead (filesrc ! matroskademux for .webm/.mkv, filesrc ! ivfparse for .ivf), not raw from {}",
                source.unwrap_or(element)
            ),
        ),
    };
    let missing: Vec<String> = add
        .iter()
        .filter(|f| !installed(f))
        .filter_map(|f| {
            install_hint(f).map(|package| format!("{f} is not installed: apt install {package}"))
        })
        .collect();
    let missing = if missing.is_empty() {
        String::new()
    } else {
        format!(" ({})", missing.join("; "))
    };
    format!("{element}.{pad} carries {label} {from}, so frames have no boundaries or timestamps of their own: {what}{missing}")
}

/// The Debian package that provides a GStreamer element we suggest.
pub(crate) fn install_hint(factory: &str) -> Option<&'static str> {
    match factory {
        "h264parse" | "h265parse" | "av1parse" | "vp9parse" | "ivfparse" | "av1enc" => {
            Some("gstreamer1.0-plugins-bad")
        }
        "matroskademux" | "qtdemux" | "vp8enc" | "vp9enc" => Some("gstreamer1.0-plugins-good"),
        "x264enc" => Some("gstreamer1.0-plugins-ugly"),
        "opusenc" | "videoconvert" => Some("gstreamer1.0-plugins-base"),
        _ => None,
    }
}

// ---------------------------------------------------------------- reading elements

/// The factory's class ("Codec/Encoder/Video"); empty when unknown.
fn klass(element: &gst::Element) -> String {
    element
        .factory()
        .and_then(|f| f.metadata("klass").map(str::to_string))
        .unwrap_or_default()
}

fn readable(element: &gst::Element, name: &str) -> Option<glib::ParamSpec> {
    element
        .find_property(name)
        .filter(|p| p.flags().contains(glib::ParamFlags::READABLE))
}

/// An integer property of any integer type, as i64.
fn int_property(element: &gst::Element, name: &str) -> Option<i64> {
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

fn bool_property(element: &gst::Element, name: &str) -> Option<bool> {
    readable(element, name)?;
    element.property_value(name).get::<bool>().ok()
}

/// The nick of an enum property's value ("disabled").
fn enum_nick(element: &gst::Element, name: &str) -> Option<String> {
    readable(element, name)?;
    let value = element.property_value(name);
    glib::EnumValue::from_value(&value).map(|(_, v)| v.nick().to_string())
}

/// Whether a property still holds its default value.
fn is_default(element: &gst::Element, name: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(pts: u64, dts: u64) -> Stamp {
        Stamp {
            pts: Some(pts),
            dts: Some(dts),
        }
    }

    #[test]
    fn reordering_is_an_early_dts_or_a_pts_going_back() {
        assert!(!reorders(&[]));
        assert!(!reorders(&[stamp(0, 0), stamp(33, 33), stamp(66, 66)]));
        // x264enc bframes=2: the first buffer's DTS is one frame before its PTS.
        assert!(reorders(&[stamp(1_000, 933)]));
        assert!(reorders(&[
            Stamp {
                pts: Some(0),
                dts: None
            },
            Stamp {
                pts: Some(100),
                dts: None
            },
            Stamp {
                pts: Some(33),
                dts: None
            },
        ]));
        // No timestamps at all: nothing to say.
        assert!(!reorders(&[Stamp::default(), Stamp::default()]));
    }

    #[test]
    fn raw_formats_browsers_decode() {
        for ok in ["I420", "NV12", "YV12"] {
            assert_eq!(raw_format_problem(ok, Codec::Vp9), None, "{ok}");
        }
        assert_eq!(
            raw_format_problem("Y444", Codec::Vp9).as_deref(),
            Some("4:4:4")
        );
        assert_eq!(
            raw_format_problem("Y42B", Codec::H264).as_deref(),
            Some("4:2:2")
        );
        assert_eq!(
            raw_format_problem("I420_10LE", Codec::H264).as_deref(),
            Some("10-bit 4:2:0")
        );
        assert_eq!(raw_format_problem("I420_10LE", Codec::Av1), None);
        assert_eq!(
            raw_format_problem("Y444_12LE", Codec::Vp9).as_deref(),
            Some("12-bit 4:4:4")
        );
        assert_eq!(
            raw_format_problem("Y444", Codec::Av1).as_deref(),
            Some("4:4:4")
        );
        assert_eq!(
            raw_format_problem("BGRx", Codec::H264).as_deref(),
            Some("RGB")
        );
        assert!(raw_format_problem("GRAY8", Codec::H264).is_some());
        assert_eq!(raw_format_problem("not-a-format", Codec::H264), None);
    }

    #[test]
    fn browser_profiles() {
        assert!(browser_profile(Codec::H264, "constrained-baseline"));
        assert!(browser_profile(Codec::H264, "high"));
        assert!(!browser_profile(Codec::H264, "high-4:4:4"));
        assert!(!browser_profile(Codec::H264, "high-10"));
        assert!(browser_profile(Codec::Vp9, "0"));
        assert!(!browser_profile(Codec::Vp9, "1"));
        assert!(browser_profile(Codec::Av1, "main"));
        assert!(!browser_profile(Codec::Av1, "high"));
        assert!(browser_profile(Codec::Vp8, "anything"));
    }

    #[test]
    fn gop_warnings() {
        let frames = |n, default| Gop::Frames {
            property: "key-int-max".into(),
            frames: n,
            default,
        };
        let m = gop_warning("x264enc0", &frames(500, false), Some(30.0)).expect("warns");
        assert_eq!(
            m,
            "x264enc0 makes a keyframe every 16.7 s (key-int-max=500 at 30 fps); this project sends keyframes on request, but recordings and late joiners on other SFUs wait for one: set key-int-max=60"
        );
        assert_eq!(
            gop_warning("x", &frames(300, false), Some(30.0)),
            None,
            "exactly 10 s is fine"
        );
        assert_eq!(gop_warning("x", &frames(60, false), None), None);
        let m = gop_warning(
            "vp8enc0",
            &Gop::Frames {
                property: "keyframe-max-dist".into(),
                frames: 128,
                default: true,
            },
            Some(5.0),
        )
        .expect("warns");
        assert!(
            m.contains("every 25.6 s (keyframe-max-dist=128, the default, at 5 fps)")
                && m.ends_with("set keyframe-max-dist=10"),
            "{m}"
        );
        let m = gop_warning("x", &frames(1000, false), None).expect("warns");
        assert!(m.contains("at an assumed 30 fps"), "{m}");
        let m = gop_warning("x", &frames(1000, false), Some(29.97)).expect("warns");
        assert!(
            m.contains("at 29.97 fps") && m.ends_with("key-int-max=60"),
            "{m}"
        );
        let never = Gop::Never {
            setting: "keyframe-mode=disabled".into(),
            property: "keyframe-mode=auto keyframe-max-dist".into(),
        };
        let m = gop_warning("vp8enc0", &never, Some(15.0)).expect("warns");
        assert!(
            m.contains("no keyframe after the first (keyframe-mode=disabled)")
                && m.ends_with("set keyframe-mode=auto keyframe-max-dist=30"),
            "{m}"
        );
        // Nonsense framerates fall back to the assumption rather than dividing by zero.
        assert!(gop_warning("x", &frames(1000, false), Some(0.0)).is_some());
        assert!(gop_warning("x", &frames(1000, false), Some(f64::NAN)).is_some());
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(fmt_seconds(16.666), "16.7");
        assert_eq!(fmt_seconds(12.0), "12");
        assert_eq!(fmt_number(30.0), "30");
        assert_eq!(fmt_number(30000.0 / 1001.0), "29.97");
        assert_eq!(fraction_fps(30, 1), Some(30.0));
        assert_eq!(fraction_fps(0, 1), None);
        assert_eq!(fraction_fps(30, 0), None);
        assert_eq!(fraction_fps(-1, 1), None);
    }

    #[test]
    fn parser_warnings_name_the_fix_and_the_package() {
        let m = parser_warning("capsfilter0", "src", Codec::H264, Some("filesrc0"), |_| {
            true
        });
        assert!(
            m.contains("capsfilter0.src")
                && m.contains("filesrc0")
                && m.ends_with("add h264parse after capsfilter0"),
            "{m}"
        );
        let m = parser_warning("capsfilter0", "src", Codec::H264, None, |f| {
            f != "h264parse"
        });
        assert!(m.contains("without stream-format/alignment"), "{m}");
        assert!(
            m.ends_with("(h264parse is not installed: apt install gstreamer1.0-plugins-bad)"),
            "{m}"
        );
        let m = parser_warning("udpsrc0", "src", Codec::Vp8, Some("udpsrc0"), |_| true);
        assert!(
            m.contains("straight from udpsrc0,") && m.contains("matroskademux"),
            "{m}"
        );
        let m = parser_warning("c", "src", Codec::Av1, None, |_| false);
        assert!(m.contains("add av1parse after c (av1parse is not installed: apt install gstreamer1.0-plugins-bad)"), "{m}");
        assert_eq!(install_hint("h264parse"), Some("gstreamer1.0-plugins-bad"));
        assert_eq!(install_hint("ivfparse"), Some("gstreamer1.0-plugins-bad"));
        assert_eq!(
            install_hint("matroskademux"),
            Some("gstreamer1.0-plugins-good")
        );
        assert_eq!(install_hint("nosuchelement"), None);
    }

    #[test]
    fn live_warnings_are_accurate_and_one_line() {
        let m = non_live_warning("videotestsrc0");
        assert!(
            m.starts_with("videotestsrc0 is not live") && m.contains("set is-live=true"),
            "{m}"
        );
        let m = mixed_warning("audiotestsrc0", Some("videotestsrc0"), true);
        assert!(
            m.contains("but videotestsrc0 is") && m.ends_with("set is-live=true on audiotestsrc0"),
            "{m}"
        );
        let m = mixed_warning("filesrc0", None, false);
        assert!(
            m.contains("but the pipeline is") && m.contains("identity sync=true"),
            "{m}"
        );
        for m in [non_live_warning("a"), mixed_warning("a", None, true)] {
            assert!(!m.contains('\n'));
        }
    }

    #[test]
    fn reports_dedupe_and_fold_lines() {
        let mut r = Report::default();
        r.warn(
            "x264enc0",
            Check::BFrames,
            "x264enc0 sends B-frames\n(bframes=2)".into(),
        );
        r.warn(
            "x264enc0",
            Check::BFrames,
            "x264enc0 reorders frames".into(),
        );
        r.warn(
            "x264enc1",
            Check::BFrames,
            "x264enc0 sends B-frames (bframes=2)".into(),
        );
        r.warn("x264enc0", Check::Gop, "gop".into());
        assert_eq!(
            r.lines,
            vec![
                "x264enc0 sends B-frames (bframes=2)".to_string(),
                "gop".to_string()
            ]
        );
        assert!(r.has("x264enc0", Check::BFrames) && !r.has("x264enc1", Check::Gop));
    }
}

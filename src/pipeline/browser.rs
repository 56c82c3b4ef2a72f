//! Steering encoders towards streams browsers (and libwebrtc) actually decode.
//!
//! WebRTC decoders take 8-bit 4:2:0 video without B-frames. GStreamer's encoders happily
//! negotiate 4:4:4 or 10/12-bit input when the source offers it (`videotestsrc ! vp9enc`
//! picks Y444_12LE, VP9 profile 3; `av1enc` picks Y444, AV1 High), and `x264enc` uses its
//! preset's B-frames unless told otherwise. Such streams publish fine and never play. This
//! module finds the encoder behind an output and nudges it, without overriding anything the
//! user set explicitly:
//!
//! - the encoder's input caps queries are narrowed to 8-bit 4:2:0 formats whenever upstream
//!   can provide one (an explicit `format=Y444` upstream is left alone);
//! - `x264enc` gets `bframes=0` stated explicitly when the user left it at its default;
//! - encoders left at defaults made for files, not for live publishing, get real-time ones
//!   (each only where the user left the property at its default):
//!   - `av1enc` (libaom's good-quality mode, speed 0: nothing is sent at all):
//!     `usage-profile=realtime cpu-used=8`;
//!   - `vp9enc` (a 1 s deadline per frame and 25 frames of lag: 23 fps and keyframes 0.8 s
//!     late): `deadline=1 cpu-used=8 lag-in-frames=0`;
//!   - `x264enc` without a `tune` (a 40-frame lookahead: a requested keyframe comes 1.5 s
//!     late): `rc-lookahead=0 sync-lookahead=0`.
//!
//! It also rewrites a trailing caps string (`x264enc ! video/x-h264,profile=main`), which
//! gst-launch syntax only accepts between two elements, into a capsfilter.

use gst::prelude::*;
use gstreamer as gst;

use crate::media::Codec;

/// Raw formats every WebRTC decoder handles.
const DECODABLE_FORMATS: [&str; 3] = ["I420", "NV12", "YV12"];

/// Find the encoder that produces `pad`'s stream, walking upstream through single-input
/// elements (queue, capsfilter, parsers, tee…).
pub(crate) fn encoder_of(pad: &gst::Pad) -> Option<gst::Element> {
    let mut element = pad.parent_element()?;
    for _ in 0..32 {
        let klass = element
            .factory()
            .map(|f| f.metadata("klass").unwrap_or_default().to_string())
            .unwrap_or_default();
        if klass.contains("Encoder") {
            return Some(element);
        }
        let sinks = element.sink_pads();
        let [sink] = sinks.as_slice() else {
            return None;
        };
        element = sink.peer()?.parent_element()?;
    }
    None
}

/// Prepare the encoder behind a video output (no-op for audio or when there is none).
pub(crate) fn prepare_encoder(pad: &gst::Pad, codec: Codec) {
    if codec == Codec::Opus {
        return;
    }
    let Some(encoder) = encoder_of(pad) else {
        return;
    };
    if let Some(sink) = encoder.static_pad("sink") {
        narrow_input_to_420(&sink);
    }
    let factory = encoder
        .factory()
        .map(|f| f.name().to_string())
        .unwrap_or_default();
    match factory.as_str() {
        "av1enc" => {
            set_if_default(&encoder, "usage-profile", Value::Str("realtime"));
            set_if_default(&encoder, "cpu-used", Value::Int(8));
        }
        "vp9enc" => {
            set_if_default(&encoder, "deadline", Value::Int64(1));
            set_if_default(&encoder, "cpu-used", Value::Int(8));
            set_if_default(&encoder, "lag-in-frames", Value::Int(0));
        }
        "x264enc" if is_default(&encoder, "tune") => {
            set_if_default(&encoder, "rc-lookahead", Value::Int(0));
            set_if_default(&encoder, "sync-lookahead", Value::Int(0));
        }
        _ => {}
    }
    if factory == "x264enc" {
        if let Some(bframes) = encoder
            .find_property("bframes")
            .map(|_| encoder.property::<u32>("bframes"))
        {
            if bframes == 0 {
                // x264enc only passes explicitly set options to x264; its preset's B-frames
                // apply otherwise. Stating the default makes it stick.
                encoder.set_property("bframes", 0u32);
                tracing::debug!(
                    "{}: B-frames off (WebRTC decoders cannot reorder frames)",
                    encoder.name()
                );
            } else {
                // Not a warning here: `--dry-run`'s doctor reports it with the fix.
                tracing::debug!(
                    "{} sends B-frames (bframes={bframes}): subscribers will stutter or drop frames; set bframes=0",
                    encoder.name()
                );
            }
        }
    }
}

/// A value for [`set_if_default`].
enum Value {
    Str(&'static str),
    Int(i32),
    Int64(i64),
}

/// True when the user left `name` at its default.
fn is_default(encoder: &gst::Element, name: &str) -> bool {
    encoder.find_property(name).is_some_and(|pspec| {
        let value = encoder.property_value(name);
        let default = pspec.default_value();
        value.type_() == default.type_()
            && value.compare(default) == Some(std::cmp::Ordering::Equal)
    })
}

/// Sets `name` to `value` unless the user set it; only when the property exists with that
/// type, so an older or newer encoder is left alone.
fn set_if_default(encoder: &gst::Element, name: &str, value: Value) {
    let Some(pspec) = encoder.find_property(name) else {
        return;
    };
    if !is_default(encoder, name) {
        return;
    }
    let t = pspec.value_type();
    match value {
        Value::Str(v) => encoder.set_property_from_str(name, v),
        Value::Int(v) if t == i32::static_type() => encoder.set_property(name, v),
        Value::Int64(v) if t == i64::static_type() => encoder.set_property(name, v),
        _ => return,
    }
    tracing::debug!("{}: {name} set for live publishing", encoder.name());
}

/// Answer the encoder's caps queries with 8-bit 4:2:0 formats first, or only, when upstream
/// (the query's filter) allows one.
fn narrow_input_to_420(sink: &gst::Pad) {
    let decodable = gst::Caps::builder("video/x-raw")
        .field("format", gst::List::new(DECODABLE_FORMATS))
        .build();
    sink.add_probe(
        gst::PadProbeType::QUERY_DOWNSTREAM | gst::PadProbeType::PULL,
        move |_, info| {
            if let Some(query) = info.query_mut() {
                if let gst::QueryViewMut::Caps(q) = query.view_mut() {
                    let Some(result) = q.result_owned() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let narrowed =
                        result.intersect_with_mode(&decodable, gst::CapsIntersectMode::First);
                    let allowed = match q.filter_owned() {
                        Some(filter) => !narrowed.intersect(&filter).is_empty(),
                        None => true,
                    };
                    if !narrowed.is_empty() && allowed {
                        q.set_result(&narrowed);
                    }
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Rewrite caps strings that end a branch (`… ! video/x-h264,profile=main` followed by the end
/// or by another element) into `capsfilter caps="…"`, which gst-launch accepts anywhere.
pub(crate) fn trailing_caps_to_capsfilter(description: &str) -> String {
    let tokens: Vec<&str> = description.split_whitespace().collect();
    if tokens.iter().any(|t| t.contains('"') || t.contains('\'')) {
        // Quoted values: leave the description to GStreamer's own parser.
        return description.to_string();
    }
    let is_caps = |t: &str| {
        ["video/", "audio/", "image/", "application/", "text/"]
            .iter()
            .any(|p| t.starts_with(p))
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        if i > 0 && tokens[i - 1] == "!" && is_caps(t) {
            // Caps may continue over words ending in ',' ("video/x-raw, width=640").
            let mut caps = t.to_string();
            let mut j = i;
            while caps.ends_with(',') && j + 1 < tokens.len() {
                j += 1;
                caps.push_str(tokens[j]);
            }
            let followed_by_link = tokens
                .get(j + 1)
                .is_some_and(|n| *n == "!" || n.starts_with('!'));
            if !followed_by_link {
                out.push(format!("capsfilter caps=\"{caps}\""));
                i = j + 1;
                continue;
            }
        }
        out.push(t.to_string());
        i += 1;
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_caps_become_capsfilters() {
        assert_eq!(
            trailing_caps_to_capsfilter("videotestsrc ! x264enc ! video/x-h264,profile=baseline"),
            "videotestsrc ! x264enc ! capsfilter caps=\"video/x-h264,profile=baseline\""
        );
        assert_eq!(
            trailing_caps_to_capsfilter("videotestsrc ! x264enc ! video/x-h264, profile=main audiotestsrc ! opusenc"),
            "videotestsrc ! x264enc ! capsfilter caps=\"video/x-h264,profile=main\" audiotestsrc ! opusenc"
        );
        // Caps between two elements are left to gst-launch.
        let mid = "videotestsrc ! video/x-raw,width=320 ! x264enc";
        assert_eq!(trailing_caps_to_capsfilter(mid), mid);
    }
}

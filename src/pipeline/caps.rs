//! Reading caps: which codec an output carries, what we know of its stream, a short printable
//! form, and the one-line advice when an output cannot be published.
//!
//! Pure functions over `gst::Caps`; nothing here changes a pipeline.

use gstreamer as gst;

use crate::media::{Codec, StreamFormat};

/// What a pad's caps say about publishing it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// One of the codecs we publish.
    Publishable(Codec),
    /// Something else, named by its media type (empty when the caps are empty).
    Unsupported(String),
    /// `ANY`: nothing can be said until caps are negotiated.
    Undecided,
}

/// The codec for a caps media type, if we publish it.
pub(crate) fn codec_of(media_type: &str) -> Option<Codec> {
    match media_type {
        "video/x-h264" => Some(Codec::H264),
        "video/x-vp8" => Some(Codec::Vp8),
        "video/x-vp9" => Some(Codec::Vp9),
        "video/x-av1" => Some(Codec::Av1),
        "audio/x-opus" => Some(Codec::Opus),
        _ => None,
    }
}

/// Judges caps by their structures: the first one we can publish wins, so an element that
/// offers several formats is steered to that one by the caps of the sink we attach.
pub(crate) fn classify(caps: &gst::CapsRef) -> Verdict {
    if caps.is_any() {
        return Verdict::Undecided;
    }
    if let Some(codec) = caps.iter().find_map(|s| codec_of(s.name().as_str())) {
        return Verdict::Publishable(codec);
    }
    match caps.structure(0) {
        Some(s) => Verdict::Unsupported(s.name().to_string()),
        None => Verdict::Unsupported(String::new()),
    }
}

/// The first structure of `caps` that carries `codec`.
fn structure_for(caps: &gst::CapsRef, codec: Codec) -> Option<&gst::StructureRef> {
    caps.iter()
        .find(|s| codec_of(s.name().as_str()) == Some(codec))
}

/// Everything the caps fix about the stream; unfixed fields (ranges, lists) stay `None`.
pub(crate) fn stream_format(caps: &gst::CapsRef, codec: Codec) -> StreamFormat {
    let mut format = StreamFormat::default();
    let Some(s) = structure_for(caps, codec) else {
        return format;
    };
    let positive = |field: &str| {
        s.get_optional::<i32>(field)
            .ok()
            .flatten()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
    };
    match codec.kind() {
        crate::media::MediaKind::Video => {
            format.width = positive("width");
            format.height = positive("height");
            format.framerate = s
                .get_optional::<gst::Fraction>("framerate")
                .ok()
                .flatten()
                .map(|f| (f.numer(), f.denom()));
        }
        crate::media::MediaKind::Audio => {
            format.sample_rate = positive("rate");
            format.channels = positive("channels");
        }
    }
    if codec == Codec::H264 {
        let text = |field: &str| s.get_optional::<String>(field).ok().flatten();
        format.h264_profile = text("profile");
        format.h264_profile_level_id = format
            .h264_profile
            .as_deref()
            .zip(text("level").as_deref())
            .and_then(|(profile, level)| h264_profile_level_id(profile, level));
    }
    format
}

/// `profile-level-id` (six hex digits, as in the SDP fmtp) for a caps `profile` and `level`,
/// e.g. ("high", "3.1") → "64001f". `None` for profiles browsers do not decode or a level
/// that is not one of H.264's.
pub(crate) fn h264_profile_level_id(profile: &str, level: &str) -> Option<String> {
    // profile_idc and the constraint-flags byte. Level 1b is level_idc 11 with
    // constraint_set3 for Baseline and Main, but level_idc 9 for High (H.264 A.3.1, A.3.2).
    let (profile_iop, level_1b) = match profile {
        "constrained-baseline" => ("42e0", "42f00b"),
        "baseline" => ("4200", "42100b"),
        "main" => ("4d00", "4d100b"),
        "high" => ("6400", "640009"),
        _ => return None,
    };
    if level == "1b" {
        return Some(level_1b.to_string());
    }
    let (major, minor) = match level.split_once('.') {
        Some((major, minor)) => (major, minor),
        None => (level, "0"),
    };
    let major: u32 = major.parse().ok()?;
    let minor: u32 = minor.parse().ok()?;
    if !(1..=6).contains(&major) || minor > 9 {
        return None;
    }
    Some(format!("{profile_iop}{:02x}", major * 10 + minor))
}

/// Fields dropped from printed caps: binary blobs and noise that say nothing to a user.
const NOISY_FIELDS: [&str; 3] = ["codec_data", "streamheader", "multiview-flags"];

/// Caps as GStreamer prints them, keeping only the structures for `codec` (all when `None`)
/// and without the bulky fields.
pub(crate) fn short_caps(caps: &gst::CapsRef, codec: Option<Codec>) -> String {
    if caps.is_any() {
        return "ANY".to_string();
    }
    let parts: Vec<String> = caps
        .iter()
        .filter(|s| codec.is_none() || codec_of(s.name().as_str()) == codec)
        .map(|s| {
            let mut s = s.to_owned();
            s.remove_fields(NOISY_FIELDS);
            s.to_string()
        })
        .collect();
    if parts.is_empty() {
        "EMPTY".to_string()
    } else {
        parts.join("; ")
    }
}

/// The one-line message for an output we cannot publish: which pad, what it carries, and
/// what to add. `sometimes` outputs (from a demuxer or decodebin) can also be dropped.
pub(crate) fn unsupported_message(
    element: &str,
    pad: &str,
    media_type: &str,
    sometimes: bool,
) -> String {
    let what = format!("{element}.{pad}");
    let advice = if media_type.is_empty() {
        format!("{what} cannot negotiate any format; check the caps filters and elements before it")
    } else if media_type == "video/x-raw" {
        format!(
            "{what} outputs raw video (video/x-raw); add an encoder, e.g. `! x264enc tune=zerolatency`"
        )
    } else if media_type == "audio/x-raw" {
        format!("{what} outputs raw audio (audio/x-raw); add an encoder, e.g. `! opusenc`")
    } else if media_type.starts_with("video/") {
        format!(
            "{what} outputs {media_type}, which cannot be published; use an encoder for H.264, VP8, VP9 or AV1 (e.g. x264enc)"
        )
    } else if media_type.starts_with("audio/") {
        format!(
            "{what} outputs {media_type}, which cannot be published; audio must be Opus: use opusenc (e.g. `! decodebin ! audioconvert ! audioresample ! opusenc`)"
        )
    } else {
        format!(
            "{what} outputs {media_type}, which cannot be published; end each branch with an H.264, VP8, VP9, AV1 or Opus encoder, or with a sink"
        )
    };
    if sometimes && !media_type.is_empty() {
        format!("{advice}, or drop it with `{what} ! fakesink`")
    } else {
        advice
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn caps(s: &str) -> gst::Caps {
        gst::init().expect("GStreamer initialises in unit tests");
        gst::Caps::from_str(s).expect("test caps parse")
    }

    #[test]
    fn profile_level_ids() {
        assert_eq!(
            h264_profile_level_id("high", "3.1").as_deref(),
            Some("64001f")
        );
        assert_eq!(
            h264_profile_level_id("constrained-baseline", "3.1").as_deref(),
            Some("42e01f")
        );
        assert_eq!(
            h264_profile_level_id("baseline", "4").as_deref(),
            Some("420028")
        );
        assert_eq!(
            h264_profile_level_id("main", "5.2").as_deref(),
            Some("4d0034")
        );
        assert_eq!(
            h264_profile_level_id("high", "1b").as_deref(),
            Some("640009")
        );
        assert_eq!(
            h264_profile_level_id("constrained-baseline", "1b").as_deref(),
            Some("42f00b")
        );
        assert_eq!(h264_profile_level_id("high-4:4:4", "3"), None);
        assert_eq!(h264_profile_level_id("high", "x"), None);
        assert_eq!(h264_profile_level_id("high", "9.1"), None);
    }

    #[test]
    fn classify_and_format() {
        let c = caps("video/x-h264, profile=(string)main, level=(string)3.1, width=(int)640, height=(int)480, framerate=(fraction)30/1, codec_data=(buffer)0142");
        assert_eq!(classify(&c), Verdict::Publishable(Codec::H264));
        let f = stream_format(&c, Codec::H264);
        assert_eq!(
            (f.width, f.height, f.framerate),
            (Some(640), Some(480), Some((30, 1)))
        );
        assert_eq!(f.h264_profile_level_id.as_deref(), Some("4d001f"));
        assert!(!short_caps(&c, Some(Codec::H264)).contains("codec_data"));

        let c = caps("video/x-h264, width=(int)[16, 4096], profile=(string){high, main}");
        let f = stream_format(&c, Codec::H264);
        assert_eq!((f.width, f.h264_profile.as_deref()), (None, None));

        assert_eq!(classify(&caps("ANY")), Verdict::Undecided);
        assert_eq!(
            classify(&caps("EMPTY")),
            Verdict::Unsupported(String::new())
        );
        assert_eq!(
            classify(&caps("video/x-h265; video/x-vp8")),
            Verdict::Publishable(Codec::Vp8)
        );
        assert_eq!(
            classify(&caps("audio/mpeg, mpegversion=(int)4")),
            Verdict::Unsupported("audio/mpeg".into())
        );
        let f = stream_format(
            &caps("audio/x-opus, rate=(int)48000, channels=(int)2"),
            Codec::Opus,
        );
        assert_eq!((f.sample_rate, f.channels), (Some(48000), Some(2)));
    }

    #[test]
    fn unsupported_messages_say_what_to_add() {
        let m = unsupported_message("videotestsrc0", "src", "video/x-raw", false);
        assert!(m.contains("raw video") && m.contains("x264enc"), "{m}");
        let m = unsupported_message("d", "audio_0", "audio/mpeg", true);
        assert!(
            m.contains("opusenc") && m.contains("d.audio_0 ! fakesink"),
            "{m}"
        );
        let m = unsupported_message("x265enc0", "src", "video/x-h265", false);
        assert_eq!(
            m,
            "x265enc0.src outputs video/x-h265, which cannot be published; use an encoder for H.264, VP8, VP9 or AV1 (e.g. x264enc)"
        );
    }
}

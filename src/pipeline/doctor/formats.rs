//! Formats browsers do not decode: encoder input other than 8-bit 4:2:0, and H.264/VP9/AV1 profiles outside what browsers play.

use super::*;

pub(super) fn check_formats(report: &mut Report, targets: &[Target]) {
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
pub(super) fn encoder_input(encoder: &gst::Element) -> Option<String> {
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
pub(super) fn formats_in(caps: &gst::CapsRef) -> Vec<String> {
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
pub(super) fn output_profile(target: &Target) -> Option<String> {
    let codec = target.output.codec;
    if codec == Codec::H264 {
        if let Some(p) = &target.output.format.h264_profile {
            return Some(p.clone());
        }
    }
    let from_caps = |caps: &gst::CapsRef| {
        caps.iter()
            .filter(|s| crate::pipeline::caps::codec_of(s.name().as_str()) == Some(codec))
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

pub(super) fn codec_label(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "H.264",
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        Codec::Av1 => "AV1",
        Codec::Opus => "Opus",
    }
}

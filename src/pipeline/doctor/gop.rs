//! GOP length: keyframes further apart than 10 s at the negotiated framerate, or turned off.

use super::*;

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

pub(super) fn check_gops(report: &mut Report, encoders: &[gst::Element], targets: &[Target]) {
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
    for encoder in encoders.iter().filter(|e| factory_name(e) == "av1enc") {
        let fps = encoder_fps(encoder);
        if let Some(line) = deaf_encoder_warning(&encoder.name(), gop_of(encoder).as_ref(), fps) {
            report.warn(&encoder.name(), Check::KeyframeRequests, line);
        }
    }
}

/// `av1enc` (libaom, GStreamer 1.22) makes no keyframe when asked (seen in the browser tests:
/// a new viewer waited for its next scheduled keyframe): with keyframes more than 2 s apart,
/// say so, and how to keep the wait short.
pub(crate) fn deaf_encoder_warning(
    name: &str,
    gop: Option<&Gop>,
    fps: Option<f64>,
) -> Option<String> {
    let rate = fps
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(ASSUMED_FPS);
    let suggest = ((rate * SUGGESTED_GOP_SECONDS).round() as u64).max(1);
    let every = match gop {
        Some(Gop::Frames { frames, .. }) => {
            let seconds = *frames as f64 / rate;
            if seconds <= SUGGESTED_GOP_SECONDS {
                return None;
            }
            format!("every {} s", fmt_seconds(seconds))
        }
        Some(Gop::Never { .. }) => "never".to_string(),
        None => "when it decides".to_string(),
    };
    Some(format!(
        "{name} does not make a keyframe when a viewer asks for one (GStreamer 1.22's av1enc), so a viewer who joins waits for its next one ({every}): set keyframe-max-dist={suggest}, or use svtav1enc or rav1enc"
    ))
}

/// The encoder's keyframe placement from its properties; `None` when automatic (x264enc's
/// `key-int-max=0` is one keyframe every 10 s) or unknown.
pub(super) fn gop_of(encoder: &gst::Element) -> Option<Gop> {
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
pub(super) fn encoder_fps(encoder: &gst::Element) -> Option<f64> {
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

//! Unparsed outputs: coded data read straight from a source, or caps without stream-format/alignment; with the Debian package to install.

use super::*;

pub(super) fn check_parsers(report: &mut Report, targets: &[Target]) {
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
pub(super) enum Upstream {
    /// An encoder, parser, demuxer, depayloader… frames the stream.
    Framed,
    /// Bytes straight from this source element (`filesrc ! capsfilter caps=video/x-vp8`).
    Raw(String),
    /// The walk ended elsewhere (a bin's edge, an element with several inputs).
    Unknown,
}

pub(super) fn upstream_of(pad: &gst::Pad) -> Upstream {
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
pub(super) fn lacks_framing_fields(caps: &gst::CapsRef, codec: Codec) -> bool {
    if caps.is_any() || caps.is_empty() {
        return false;
    }
    caps.iter()
        .filter(|s| crate::pipeline::caps::codec_of(s.name().as_str()) == Some(codec))
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
    super::inspect::debian_package(factory)
}

//! Parsing a gst-launch description and finding its candidate outputs: every unlinked source
//! pad of every element the user wrote, looked into through the plain bins of `( … )` syntax.
//!
//! Bins with a behaviour of their own (decodebin, autovideosrc, …) are black boxes: their own
//! pads count, their insides do not.

use gst::prelude::*;
use gstreamer as gst;
use gstreamer::glib;

use crate::error::Error;

/// Prefix of the names of the elements we add, so that our own parsers and sinks are never
/// mistaken for the user's.
pub(crate) const OWN_PREFIX: &str = "gstpub-";

/// Initialises GStreamer (idempotent) and parses `description` into a pipeline.
pub(crate) fn parse(description: &str) -> Result<gst::Pipeline, Error> {
    gst::init().map_err(|e| {
        Error::Pipeline(format!(
            "GStreamer could not be initialised ({e}); check the GStreamer installation"
        ))
    })?;
    if description.trim().is_empty() {
        return Err(Error::Pipeline(
            "the pipeline description is empty; give one such as `videotestsrc ! x264enc`".into(),
        ));
    }
    let description = super::browser::trailing_caps_to_capsfilter(description);
    let description = description.as_str();
    let mut context = gst::ParseContext::new();
    let element = gst::parse::launch_full(
        description,
        Some(&mut context),
        gst::ParseFlags::FATAL_ERRORS,
    )
    .map_err(|e| parse_error(description, &e, &context))?;
    match element.downcast::<gst::Pipeline>() {
        Ok(pipeline) => Ok(pipeline),
        Err(element) => {
            let pipeline = gst::Pipeline::new();
            pipeline.add(&element).map_err(|e| {
                Error::Pipeline(format!(
                    "cannot put {} into a pipeline ({e}); check the pipeline description",
                    element.name()
                ))
            })?;
            Ok(pipeline)
        }
    }
}

/// One line that names the problem and says what to do.
fn parse_error(description: &str, error: &glib::Error, context: &gst::ParseContext) -> Error {
    let message = error.message().trim_end_matches('.').to_string();
    let text = match error.kind::<gst::ParseError>() {
        Some(gst::ParseError::NoSuchElement) => {
            let name = context
                .missing_elements()
                .into_iter()
                .next()
                .or_else(|| quoted(&message))
                .unwrap_or_else(|| message.clone());
            if description.contains(&format!("{name}/")) {
                // A caps string is only valid between two elements: at the end, gst-launch
                // reads `video/x-h264,…` as an element named "video".
                format!(
                    "a caps string such as `{name}/…` cannot end the pipeline; write it as `! capsfilter caps=\"{name}/…\"`"
                )
            } else {
                format!(
                    "unknown element '{name}' in the pipeline; check the name with gst-inspect-1.0 (its plugin may not be installed)"
                )
            }
        }
        Some(gst::ParseError::Syntax) => format!(
            "the pipeline description is invalid ({message}); check the gst-launch-1.0 syntax: elements joined by `!`, e.g. `videotestsrc ! x264enc`"
        ),
        Some(gst::ParseError::NoSuchProperty) => {
            format!("{message}; check the element's properties with gst-inspect-1.0")
        }
        Some(gst::ParseError::CouldNotSetProperty) => {
            format!("{message}; check the property's type and allowed values with gst-inspect-1.0")
        }
        Some(gst::ParseError::Link) | Some(gst::ParseError::DelayedLink) => format!(
            "{message}; their formats do not match: add a converter (videoconvert, audioconvert) or check the caps with gst-inspect-1.0"
        ),
        Some(gst::ParseError::Empty) | Some(gst::ParseError::EmptyBin) => format!(
            "the pipeline description is invalid ({message}); give elements joined by `!`, e.g. `videotestsrc ! x264enc`"
        ),
        _ => format!("cannot parse the pipeline ({message}); check the gst-launch-1.0 syntax"),
    };
    Error::Pipeline(text)
}

/// The first `"…"`-quoted word of a GStreamer message.
fn quoted(message: &str) -> Option<String> {
    let start = message.find('"')? + 1;
    let len = message[start..].find('"')?;
    Some(message[start..start + len].to_string())
}

/// A bin whose children are the user's own elements (`( … )` in gst-launch, or the pipeline),
/// as opposed to a bin subclass that manages its insides itself.
fn is_plain_bin(element: &gst::Element) -> bool {
    let t = element.type_();
    t == gst::Bin::static_type() || t == gst::Pipeline::static_type()
}

/// True for elements we added ourselves.
pub(crate) fn is_own(element: &gst::Element) -> bool {
    element.name().starts_with(OWN_PREFIX)
}

/// Whether `element` is one the user wrote (directly or in plain bins), not an auto-plugger's
/// internal element nor one of ours.
pub(crate) fn is_visible(element: &gst::Element) -> bool {
    if is_own(element) {
        return false;
    }
    let mut parent = element.parent();
    while let Some(p) = parent {
        match p.downcast_ref::<gst::Element>() {
            Some(e) if is_plain_bin(e) => parent = p.parent(),
            _ => return false,
        }
    }
    true
}

/// The user's elements, in the order they were written, nested bins followed by their
/// children.
pub(crate) fn visible_elements(bin: &gst::Bin) -> Vec<gst::Element> {
    let mut out = Vec::new();
    // A bin keeps its children newest first; gst-launch adds them in the order written.
    let mut children = bin.children();
    children.reverse();
    for child in children {
        if is_own(&child) {
            continue;
        }
        out.push(child.clone());
        if is_plain_bin(&child) {
            if let Some(inner) = child.downcast_ref::<gst::Bin>() {
                out.extend(visible_elements(inner));
            }
        }
    }
    out
}

/// True when the element may add source pads later (a demuxer, decodebin, …).
pub(crate) fn has_sometimes_src(element: &gst::Element) -> bool {
    element.pad_template_list().iter().any(|t| {
        t.direction() == gst::PadDirection::Src && t.presence() == gst::PadPresence::Sometimes
    })
}

/// Source pads of the user's elements that nothing is linked to, in the order written.
pub(crate) fn unlinked_src_pads(elements: &[gst::Element]) -> Vec<gst::Pad> {
    elements
        .iter()
        .flat_map(|e| e.src_pads())
        .filter(|p| !p.is_linked())
        .collect()
}

/// `element.pad` for messages.
pub(crate) fn pad_names(pad: &gst::Pad) -> (String, String) {
    let element = pad
        .parent()
        .map(|p| p.name().to_string())
        .unwrap_or_else(|| "?".to_string());
    (element, pad.name().to_string())
}

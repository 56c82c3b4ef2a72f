//! Parsing a gst-launch description and finding its candidate outputs: every unlinked source
//! pad of every element the user wrote, looked into through the plain bins of `( … )` syntax.
//!
//! Bins with a behaviour of their own (decodebin, autovideosrc, …) are black boxes: their own
//! pads count, their insides do not.

use gst::prelude::*;
use gstreamer as gst;
use gstreamer::glib;

use crate::error::{excerpt, Error};

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
    if let Some(name) = duplicate_name(description) {
        return Err(Error::Pipeline(format!(
            "two elements are named '{}'; give each element its own name= (names are unique within a pipeline or bin)",
            excerpt(&name, 80)
        )));
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
    let message = excerpt(error.message().trim_end_matches('.'), 200).into_owned();
    let text = match error.kind::<gst::ParseError>() {
        Some(gst::ParseError::NoSuchElement) => {
            let name = context
                .missing_elements()
                .into_iter()
                .next()
                .or_else(|| quoted(&message))
                .map(|n| excerpt(&n, 80).into_owned())
                .unwrap_or_else(|| message.clone());
            if description.contains(&format!("{name}/")) {
                // A caps string is only valid between two elements: at the end, gst-launch
                // reads `video/x-h264,…` as an element named "video".
                format!(
                    "a caps string such as `{name}/…` cannot end the pipeline; write it as `! capsfilter caps=\"{name}/…\"`"
                )
            } else if let Some(package) = debian_package(&name) {
                format!(
                    "unknown element '{name}' in the pipeline: its plugin is not installed; on Debian install {package} (apt-get install {package})"
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

/// The first `name=` given to two elements of the same bin, if any. GStreamer would refuse
/// the second element and then fail with a misleading "could not link" (and a raw warning).
/// Names are per bin: `( … )` opens a bin of its own.
fn duplicate_name(description: &str) -> Option<String> {
    let mut bins: Vec<std::collections::HashSet<String>> = vec![Default::default()];
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let finish = |word: &mut String, bins: &mut Vec<std::collections::HashSet<String>>| {
        let w = std::mem::take(word);
        let value = w.strip_prefix("name=")?;
        let value = value.trim_matches(|c| c == '"' || c == '\'').to_string();
        let names = bins.last_mut()?;
        (!names.insert(value.clone())).then_some(value)
    };
    for c in description.chars() {
        if let Some(q) = quote {
            word.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                word.push(c);
            }
            '(' | ')' | '!' => {
                if let Some(dup) = finish(&mut word, &mut bins) {
                    return Some(dup);
                }
                if c == '(' {
                    bins.push(Default::default());
                } else if c == ')' && bins.len() > 1 {
                    bins.pop();
                }
            }
            c if c.is_whitespace() => {
                if let Some(dup) = finish(&mut word, &mut bins) {
                    return Some(dup);
                }
            }
            c => word.push(c),
        }
    }
    finish(&mut word, &mut bins)
}

/// The Debian package that brings `element`, for the elements this project knows (the list
/// `scripts/elements.txt`, which the setup also installs from).
pub(crate) fn debian_package(element: &str) -> Option<&'static str> {
    const LIST: &str = include_str!("../../scripts/elements.txt");
    LIST.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(element))
                .then(|| words.next())
                .flatten()
        })
        .filter(|p| *p != "-")
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

#[cfg(test)]
mod tests {
    use super::duplicate_name;

    #[test]
    fn duplicate_names_are_found_per_bin() {
        assert_eq!(
            duplicate_name("videotestsrc ! x264enc name=a audiotestsrc ! opusenc name=\"a\""),
            Some("a".into())
        );
        assert_eq!(duplicate_name("videotestsrc name=a ! x264enc name=b"), None);
        assert_eq!(
            duplicate_name("( videotestsrc name=a ) ( audiotestsrc name=a ) x264enc"),
            None,
            "two bins may each have an `a`"
        );
        assert_eq!(
            duplicate_name("filesrc location=\"name=x name=x\" ! fakesink"),
            None,
            "quoted values are not names"
        );
    }
}

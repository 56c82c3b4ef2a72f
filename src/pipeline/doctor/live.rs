//! Live and non-live sources: unpaced test sources, and non-live sources next to live ones.

use super::*;

/// A source the user wrote and whether it is live, when that can be told.
pub(super) struct SourceInfo {
    element: gst::Element,
    live: Option<bool>,
    /// It has an `is-live` property (so `is-live=true` is the fix).
    switchable: bool,
}

pub(super) fn check_live(report: &mut Report, elements: &[gst::Element], pipeline_live: bool) {
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
pub(super) fn is_source(element: &gst::Element) -> bool {
    let templates = element.pad_template_list();
    templates
        .iter()
        .any(|t| t.direction() == gst::PadDirection::Src)
        && templates
            .iter()
            .all(|t| t.direction() != gst::PadDirection::Sink)
}

/// Liveness as the source's latency query answers it (file sources: not live).
pub(super) fn queried_liveness(element: &gst::Element) -> Option<bool> {
    let pad = element.src_pads().into_iter().next()?;
    let mut query = gst::query::Latency::new();
    if pad.query(&mut query) {
        Some(query.result().0)
    } else {
        None
    }
}

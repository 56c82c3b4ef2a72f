//! `--simulcast auto`: the layers of a video output built into the pipeline.
//!
//! For each video output whose encoder is fed raw video, the raw video is split with a `tee`
//! before the encoder: the first branch feeds the user's encoder (the full size), the others
//! a `videoscale` to ½ and ¼ of the size and a copy of the user's encoder (same properties,
//! bitrate scaled down). Fewer layers when the source is small: a layer is made while its
//! width stays at 160 pixels or more. A `valve` before each encoder lets a layer nobody
//! watches stop its encoder's work ([`set_active`]). The scaled sizes are set once the raw
//! caps are known (a probe on the tee), so any source size works.
//!
//! The copies are named after the user's encoder (`x264enc0` → `x264enc0-h`, `x264enc0-q`);
//! their source pads become outputs like any other, and [`build`] returns each group's
//! selectors, highest first, for the session.

use gst::prelude::*;
use gstreamer as gst;
use gstreamer::glib;

use super::browser::encoder_of;
use super::caps::{self, Verdict};
use super::encoders;
use super::inspect::{self, OWN_PREFIX};
use crate::media::MediaKind;

/// The scale of each lower layer (½, ¼), and its share of the full layer's bitrate.
const LOWER_LAYERS: [(&str, u32, f64); 2] = [("h", 2, 0.3), ("q", 4, 0.1)];
/// Smallest width a layer is made for.
const MIN_WIDTH: u32 = 160;

/// The valve before the encoder `encoder` (by name).
fn valve_name(encoder: &str) -> String {
    format!("{OWN_PREFIX}valve-{encoder}")
}

/// Builds the layers of every video output fed by a raw-video encoder; returns the groups'
/// selectors, highest first. Errors are one line naming the element.
pub(crate) fn build(pipeline: &gst::Pipeline) -> Result<Vec<Vec<String>>, String> {
    let elements = inspect::visible_elements(pipeline.upcast_ref());
    let mut groups = Vec::new();
    for pad in inspect::unlinked_src_pads(&elements) {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Verdict::Publishable(codec) = caps::classify(&caps) else {
            continue;
        };
        if codec.kind() != MediaKind::Video {
            continue;
        }
        let Some(encoder) = encoder_of(&pad) else {
            continue;
        };
        let Some(upstream) = encoder.static_pad("sink").and_then(|s| s.peer()) else {
            continue;
        };
        let raw = upstream.query_caps(None);
        if !raw.iter().any(|s| s.name() == "video/x-raw") {
            continue;
        }
        let width = raw
            .structure(0)
            .filter(|_| raw.is_fixed())
            .and_then(|s| s.get::<i32>("width").ok())
            .and_then(|w| u32::try_from(w).ok());
        let layers = LOWER_LAYERS
            .iter()
            .filter(|(_, div, _)| width.is_none_or(|w| w / div >= MIN_WIDTH))
            .count();
        if layers == 0 {
            tracing::info!(
                "{}: too small for simulcast layers; published as one",
                encoder.name()
            );
            continue;
        }
        let (element, pad_name) = inspect::pad_names(&pad);
        let mut group = vec![format!("{element}.{pad_name}")];
        group.extend(split(&encoder, &upstream, layers)?);
        groups.push(group);
    }
    Ok(groups)
}

/// Tee `upstream` into the user's `encoder` and `layers` scaled copies of it; returns the
/// copies' selectors.
fn split(
    encoder: &gst::Element,
    upstream: &gst::Pad,
    layers: usize,
) -> Result<Vec<String>, String> {
    let name = encoder.name().to_string();
    let fail = |what: String| format!("cannot build simulcast layers for {name}: {what}");
    let bin = encoder
        .parent()
        .and_then(|p| p.downcast::<gst::Bin>().ok())
        .ok_or_else(|| fail("it is not in a bin".into()))?;
    let make = |factory: &str, n: String| {
        gst::ElementFactory::make(factory)
            .name(n)
            .build()
            .map_err(|_| fail(format!("the element {factory} is missing")))
    };
    let tee = make("tee", format!("{OWN_PREFIX}tee-{name}"))?;
    let encoder_sink = encoder
        .static_pad("sink")
        .ok_or_else(|| fail("the encoder has no sink pad".into()))?;
    upstream
        .unlink(&encoder_sink)
        .map_err(|e| fail(e.to_string()))?;
    bin.add(&tee).map_err(|e| fail(e.to_string()))?;
    let tee_sink = tee.static_pad("sink").expect("tee has a sink pad");
    upstream
        .link(&tee_sink)
        .map_err(|e| fail(format!("{e:?}")))?;

    // The full layer: queue ! valve ! (the user's encoder)
    let full = [
        make("queue", format!("{OWN_PREFIX}queue-{name}"))?,
        make("valve", valve_name(&name))?,
    ];
    bin.add_many(&full).map_err(|e| fail(e.to_string()))?;
    gst::Element::link_many([&tee, &full[0], &full[1], encoder])
        .map_err(|e| fail(e.to_string()))?;

    let bitrate = encoders::read_bitrate(encoder);
    let mut selectors = Vec::new();
    let mut scalers = Vec::new();
    for (suffix, div, share) in LOWER_LAYERS.iter().take(layers) {
        let copy_name = format!("{name}-{suffix}");
        let copy = copy_encoder(encoder, &copy_name).map_err(fail)?;
        if let Some(b) = bitrate {
            encoders::set_bitrate(&copy, (b as f64 * share) as u64);
        }
        let filter = make("capsfilter", format!("{OWN_PREFIX}size-{copy_name}"))?;
        let branch = [
            make("queue", format!("{OWN_PREFIX}queue-{copy_name}"))?,
            make("valve", valve_name(&copy_name))?,
            make("videoscale", format!("{OWN_PREFIX}scale-{copy_name}"))?,
            filter.clone(),
            copy,
        ];
        bin.add_many(&branch).map_err(|e| fail(e.to_string()))?;
        let mut chain: Vec<&gst::Element> = vec![&tee];
        chain.extend(branch.iter());
        gst::Element::link_many(chain).map_err(|e| fail(e.to_string()))?;
        scalers.push((filter, *div));
        selectors.push(format!("{copy_name}.src"));
    }
    size_layers_on_caps(&tee_sink, scalers);
    Ok(selectors)
}

/// When the raw caps reach the tee, each lower layer's capsfilter gets its size.
fn size_layers_on_caps(tee_sink: &gst::Pad, scalers: Vec<(gst::Element, u32)>) {
    tee_sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some(gst::EventView::Caps(event)) = info.event().map(|e| e.view()) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(s) = event.caps().structure(0) else {
            return gst::PadProbeReturn::Ok;
        };
        let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height")) else {
            return gst::PadProbeReturn::Ok;
        };
        for (filter, div) in &scalers {
            let div = *div as i32;
            // Even sizes: 4:2:0 needs them.
            let size = gst::Caps::builder("video/x-raw")
                .field("width", (w / div) & !1)
                .field("height", (h / div) & !1)
                .build();
            filter.set_property("caps", size);
        }
        gst::PadProbeReturn::Ok
    });
}

/// A new encoder of the same factory with every property the user set on `encoder`.
fn copy_encoder(encoder: &gst::Element, name: &str) -> Result<gst::Element, String> {
    let factory = encoder
        .factory()
        .ok_or_else(|| "the encoder has no factory".to_string())?;
    let copy = factory
        .create()
        .name(name)
        .build()
        .map_err(|e| format!("cannot make another {}: {e}", factory.name()))?;
    for pspec in encoder.list_properties() {
        let flags = pspec.flags();
        let settable = flags.contains(glib::ParamFlags::READABLE | glib::ParamFlags::WRITABLE)
            && !flags.contains(glib::ParamFlags::CONSTRUCT_ONLY);
        if !settable || pspec.name() == "name" || pspec.name() == "parent" {
            continue;
        }
        let value = encoder.property_value(pspec.name());
        let default = pspec.default_value();
        let same = value.type_() == default.type_()
            && value.compare(default) == Some(std::cmp::Ordering::Equal);
        if !same {
            copy.set_property_from_value(pspec.name(), &value);
        }
    }
    Ok(copy)
}

/// Start or pause the encoding of the layer fed by `encoder`: its valve lets frames through or
/// drops them before the encoder. False when the encoder has no valve of ours (an explicit
/// layer the user built: only its frames stop being sent).
pub(crate) fn set_active(pipeline: &gst::Pipeline, encoder: &gst::Element, active: bool) -> bool {
    let Some(valve) = pipeline.by_name(&valve_name(&encoder.name())) else {
        return false;
    };
    valve.set_property("drop", !active);
    true
}

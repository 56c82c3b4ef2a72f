//! Encoder bitrates: which property of which encoder holds its target bitrate, in which unit,
//! and reading and setting it while the pipeline runs.
//!
//! One table for every encoder we know ([`BITRATE_PROPERTIES`]); the session decides the
//! targets, this module only turns a target in bit/s into the property value. Values are set
//! with the property's own type and clamped to its range; an encoder not in the table cannot
//! be adapted (its output is reported as such).

use gst::prelude::*;
use gstreamer as gst;
use gstreamer::glib;

/// The unit of a bitrate property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    BitsPerSecond,
    KilobitsPerSecond,
}

/// How the target reaches the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// A numeric property.
    Property(&'static str),
    /// A field of a V4L2 `extra-controls` structure (`v4l2h264enc`).
    ExtraControls(&'static str),
}

/// Where one encoder keeps its target bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BitrateProperty {
    pub(crate) factory: &'static str,
    pub(crate) via: Via,
    pub(crate) unit: Unit,
}

const fn prop(factory: &'static str, name: &'static str, unit: Unit) -> BitrateProperty {
    BitrateProperty {
        factory,
        via: Via::Property(name),
        unit,
    }
}

use Unit::{BitsPerSecond as Bps, KilobitsPerSecond as Kbps};

/// Every encoder whose bitrate we can steer.
pub(crate) const BITRATE_PROPERTIES: &[BitrateProperty] = &[
    // software
    prop("x264enc", "bitrate", Kbps),
    prop("x265enc", "bitrate", Kbps),
    prop("openh264enc", "bitrate", Bps),
    prop("vp8enc", "target-bitrate", Bps),
    prop("vp9enc", "target-bitrate", Bps),
    prop("av1enc", "target-bitrate", Kbps),
    prop("rav1enc", "bitrate", Bps),
    prop("svtav1enc", "target-bitrate", Kbps),
    prop("opusenc", "bitrate", Bps),
    // NVIDIA (nvcodec, and Jetson's V4L2 encoders)
    prop("nvh264enc", "bitrate", Kbps),
    prop("nvh265enc", "bitrate", Kbps),
    prop("nvav1enc", "bitrate", Kbps),
    prop("nvv4l2h264enc", "bitrate", Bps),
    prop("nvv4l2vp8enc", "bitrate", Bps),
    prop("nvv4l2vp9enc", "bitrate", Bps),
    // VA-API (the new `va` plugin and the older `vaapi` one)
    prop("vah264enc", "bitrate", Kbps),
    prop("vah264lpenc", "bitrate", Kbps),
    prop("vavp8enc", "bitrate", Kbps),
    prop("vavp9enc", "bitrate", Kbps),
    prop("vaav1enc", "bitrate", Kbps),
    prop("vaapih264enc", "bitrate", Kbps),
    prop("vaapivp8enc", "bitrate", Kbps),
    prop("vaapivp9enc", "bitrate", Kbps),
    // Intel Quick Sync
    prop("qsvh264enc", "bitrate", Kbps),
    prop("qsvvp9enc", "bitrate", Kbps),
    prop("qsvav1enc", "bitrate", Kbps),
    // AMD AMF, Rockchip MPP, Apple VideoToolbox
    prop("amfh264enc", "bitrate", Kbps),
    prop("amfav1enc", "bitrate", Kbps),
    prop("mpph264enc", "bps", Bps),
    prop("mppvp8enc", "bps", Bps),
    prop("vtenc_h264", "bitrate", Kbps),
    // V4L2 stateful encoders (Raspberry Pi and other SoCs)
    BitrateProperty {
        factory: "v4l2h264enc",
        via: Via::ExtraControls("video_bitrate"),
        unit: Bps,
    },
    BitrateProperty {
        factory: "v4l2vp8enc",
        via: Via::ExtraControls("video_bitrate"),
        unit: Bps,
    },
];

/// The entry for an encoder factory.
pub(crate) fn bitrate_property(factory: &str) -> Option<&'static BitrateProperty> {
    BITRATE_PROPERTIES.iter().find(|p| p.factory == factory)
}

impl BitrateProperty {
    /// bit/s → the property's unit (rounded, never 0).
    pub(crate) fn property_value(&self, bps: u64) -> u64 {
        match self.unit {
            Unit::BitsPerSecond => bps.max(1),
            Unit::KilobitsPerSecond => ((bps + 500) / 1000).max(1),
        }
    }

    /// The property's unit → bit/s.
    pub(crate) fn bps_of(&self, value: u64) -> u64 {
        match self.unit {
            Unit::BitsPerSecond => value,
            Unit::KilobitsPerSecond => value.saturating_mul(1000),
        }
    }
}

fn factory_name(encoder: &gst::Element) -> String {
    encoder
        .factory()
        .map(|f| f.name().to_string())
        .unwrap_or_default()
}

/// The encoder's configured target in bit/s, when it is in the table and says one.
pub(crate) fn read_bitrate(encoder: &gst::Element) -> Option<u64> {
    let entry = bitrate_property(&factory_name(encoder))?;
    let value = match entry.via {
        Via::Property(name) => read_number(encoder, name)?,
        Via::ExtraControls(field) => {
            let s = encoder
                .find_property("extra-controls")
                .and_then(|_| encoder.property::<Option<gst::Structure>>("extra-controls"))?;
            s.get::<i32>(field)
                .ok()
                .and_then(|v| u64::try_from(v).ok())?
        }
    };
    // A bitrate of 0 means "automatic" for some encoders (vp8enc's default is 256 kbit/s).
    (value > 0).then(|| entry.bps_of(value))
}

/// Set the encoder's target to `bps`; false when it is not in the table or refuses.
pub(crate) fn set_bitrate(encoder: &gst::Element, bps: u64) -> bool {
    let Some(entry) = bitrate_property(&factory_name(encoder)) else {
        return false;
    };
    let value = entry.property_value(bps);
    match entry.via {
        Via::Property(name) => set_number(encoder, name, value),
        Via::ExtraControls(field) => {
            if encoder.find_property("extra-controls").is_none() {
                return false;
            }
            let mut s = encoder
                .property::<Option<gst::Structure>>("extra-controls")
                .unwrap_or_else(|| gst::Structure::new_empty("controls"));
            s.set(field, i32::try_from(value).unwrap_or(i32::MAX));
            encoder.set_property("extra-controls", s);
            true
        }
    }
}

fn read_number(element: &gst::Element, name: &str) -> Option<u64> {
    let pspec = element.find_property(name)?;
    let v = element.property_value(name);
    let t = pspec.value_type();
    if t == u32::static_type() {
        v.get::<u32>().ok().map(u64::from)
    } else if t == i32::static_type() {
        v.get::<i32>().ok().and_then(|x| u64::try_from(x).ok())
    } else if t == u64::static_type() {
        v.get::<u64>().ok()
    } else if t == i64::static_type() {
        v.get::<i64>().ok().and_then(|x| u64::try_from(x).ok())
    } else {
        None
    }
}

/// Sets a numeric property with its own type, clamped to its range.
fn set_number(element: &gst::Element, name: &str, value: u64) -> bool {
    let Some(pspec) = element.find_property(name) else {
        return false;
    };
    if !pspec.flags().contains(glib::ParamFlags::WRITABLE) {
        return false;
    }
    let value: glib::Value = if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        (value.clamp(u64::from(p.minimum()), u64::from(p.maximum())) as u32).to_value()
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt>() {
        let v = i64::try_from(value).unwrap_or(i64::MAX);
        (v.clamp(i64::from(p.minimum()), i64::from(p.maximum())) as i32).to_value()
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
        value.clamp(p.minimum(), p.maximum()).to_value()
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt64>() {
        let v = i64::try_from(value).unwrap_or(i64::MAX);
        v.clamp(p.minimum(), p.maximum()).to_value()
    } else {
        return false;
    };
    element.set_property_from_value(name, &value);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_knows_the_common_encoders_and_their_units() {
        for f in [
            "x264enc",
            "openh264enc",
            "vp8enc",
            "vp9enc",
            "av1enc",
            "rav1enc",
            "svtav1enc",
            "nvh264enc",
            "nvh265enc",
            "vah264enc",
            "vaapih264enc",
            "qsvh264enc",
            "v4l2h264enc",
        ] {
            assert!(bitrate_property(f).is_some(), "{f}");
        }
        let x264 = bitrate_property("x264enc").unwrap();
        assert_eq!(x264.property_value(1_500_000), 1500);
        assert_eq!(x264.bps_of(4000), 4_000_000);
        assert_eq!(x264.property_value(100), 1, "never 0: that means automatic");
        let vp8 = bitrate_property("vp8enc").unwrap();
        assert_eq!(vp8.via, Via::Property("target-bitrate"));
        assert_eq!(vp8.property_value(1_500_000), 1_500_000);
        let v4l2 = bitrate_property("v4l2h264enc").unwrap();
        assert_eq!(v4l2.via, Via::ExtraControls("video_bitrate"));
        assert!(bitrate_property("fancyenc").is_none());
        // No encoder twice.
        let mut names: Vec<&str> = BITRATE_PROPERTIES.iter().map(|p| p.factory).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BITRATE_PROPERTIES.len());
    }

    #[test]
    fn real_encoders_are_read_and_set_with_their_own_types() {
        gst::init().expect("GStreamer initialises");
        for (factory, start, set, want) in [
            ("x264enc", 4000u64, 1_500_000u64, 1_500_000u64),
            ("vp8enc", 0, 800_000, 800_000),
            ("vp9enc", 0, 2_000_000, 2_000_000),
            ("av1enc", 0, 600_000, 600_000),
            ("opusenc", 64000, 32_000, 32_000),
        ] {
            let Ok(e) = gst::ElementFactory::make(factory).build() else {
                panic!("{factory} is installed by scripts/setup");
            };
            if start > 0 {
                let entry = bitrate_property(factory).unwrap();
                assert!(set_bitrate(&e, entry.bps_of(start)), "{factory}");
            }
            assert!(set_bitrate(&e, set), "{factory}");
            assert_eq!(read_bitrate(&e), Some(want), "{factory}");
        }
        // Clamped to the property's range: x264enc takes at most 2048000 kbit/s.
        let x = gst::ElementFactory::make("x264enc").build().unwrap();
        assert!(set_bitrate(&x, u64::MAX / 2));
        assert_eq!(read_bitrate(&x), Some(2_048_000_000));
    }
}

//! Helpers on encoded streams for every front-end: what a stream's caps make of it, the
//! encoder behind a pad (to ask it for keyframes, set its bitrate, make it browser-safe), and
//! one line per output for `--dry-run`. The sink element uses them on its own pads.

use gstreamer as gst;
use gstreamer::prelude::*;

use super::caps::{self, Verdict};
use super::{browser, encoders};
use crate::media::{Codec, MediaKind, Output, StreamFormat};

/// The codec and format of encoded `caps` (for a front-end that receives encoded media on
/// its own pads, such as a sink element); `None` for caps that cannot be published.
/// `format.keyframes_on_request` and the bitrate fields are those of `encoder` when given.
pub fn track_format(
    caps: &gst::CapsRef,
    encoder: Option<&gst::Element>,
) -> Option<(Codec, StreamFormat)> {
    let Verdict::Publishable(codec) = caps::classify(caps) else {
        return None;
    };
    Some((codec, stream_format(caps, codec, encoder)))
}

/// What `caps` of `codec` and the `encoder` behind them (if any) make of a stream, for every
/// front-end: asking for keyframes, the encoder's bitrate (the user's ceiling), whether it
/// adapts to the link, Opus's DTX.
pub(crate) fn stream_format(
    caps: &gst::CapsRef,
    codec: Codec,
    encoder: Option<&gst::Element>,
) -> StreamFormat {
    let mut format = caps::stream_format(caps, codec);
    let Some(e) = encoder else {
        return format;
    };
    format.keyframes_on_request = true;
    format.encoder_bitrate = encoders::read_bitrate(e);
    format.adaptable = codec != Codec::Opus
        && e.factory()
            .is_some_and(|f| encoders::bitrate_property(&f.name()).is_some());
    if codec == Codec::Opus {
        format.opus_dtx = e
            .find_property("dtx")
            .filter(|p| p.value_type() == bool::static_type())
            .map(|_| e.property::<bool>("dtx"));
    }
    format
}

/// The encoder that produces the stream of `pad` (a source pad), walking upstream through
/// single-input elements (queues, capsfilters, parsers, tees).
pub fn upstream_encoder(pad: &gst::Pad) -> Option<gst::Element> {
    browser::encoder_of(pad)
}

/// Sets the target bitrate (bit/s) of an encoder we know (x264enc, vp8enc, NVIDIA, VA-API…,
/// see `encoders.rs`); false for one we do not.
pub fn set_encoder_bitrate(encoder: &gst::Element, bps: u64) -> bool {
    encoders::set_bitrate(encoder, bps)
}

/// `caps` in a short form for logs (`video/x-h264, 1280x720, profile=high`).
pub fn short_caps(caps: &gst::CapsRef) -> String {
    caps::short_caps(caps, None)
}

/// One aligned line per output for `--dry-run`, e.g.
/// `x264enc0.src              video  h264  320x240 30/1 fps, profile high (64000d)`.
pub fn describe(output: &Output) -> String {
    let f = &output.format;
    let mut parts = Vec::new();
    match output.kind() {
        MediaKind::Video => {
            let mut picture = Vec::new();
            if let (Some(w), Some(h)) = (f.width, f.height) {
                picture.push(format!("{w}x{h}"));
            }
            if let Some((n, d)) = f.framerate {
                picture.push(format!("{n}/{d} fps"));
            }
            if !picture.is_empty() {
                parts.push(picture.join(" "));
            }
            if let Some(profile) = &f.h264_profile {
                match &f.h264_profile_level_id {
                    Some(id) => parts.push(format!("profile {profile} ({id})")),
                    None => parts.push(format!("profile {profile}")),
                }
            }
        }
        MediaKind::Audio => {
            if let Some(rate) = f.sample_rate {
                parts.push(format!("{rate} Hz"));
            }
            if let Some(channels) = f.channels {
                parts.push(format!("{channels} ch"));
            }
        }
    }
    let summary = if parts.is_empty() {
        "format known once running".to_string()
    } else {
        parts.join(", ")
    };
    let pad = format!("{}.{}", output.element, output.pad);
    format!(
        "{pad:<24} {:<5}  {:<4}  {summary}",
        output.kind().to_string(),
        output.codec.name()
    )
}

/// Prepares the encoder behind `pad` (a source pad carrying `codec`) for publishing to
/// browsers, as the command-line tool does for its outputs: B-frames off, real-time settings
/// where the user left file-oriented defaults, 8-bit 4:2:0 input preferred. Call it when the
/// pad is linked, before caps are negotiated; no-op for audio and encoders we do not know.
pub fn prepare_encoder(pad: &gst::Pad, codec: Codec) {
    browser::prepare_encoder(pad, codec)
}

/// Whether `buffer` (mapped as `data`) carries a codec header rather than media: Opus's
/// `OpusHead`/`OpusTags` packets, which WebRTC does not send.
pub fn is_codec_header(codec: Codec, buffer: &gst::BufferRef, data: &[u8]) -> bool {
    codec == Codec::Opus
        && (buffer.flags().contains(gst::BufferFlags::HEADER)
            || data.starts_with(b"OpusHead")
            || data.starts_with(b"OpusTags"))
}

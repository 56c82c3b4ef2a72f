//! Plain media types shared by the pipeline driver, the session core and the RTC driver.
//!
//! Nothing here touches GStreamer, tokio or str0m: these are the nouns the rest of the crate
//! speaks in. An [`Output`] is one encoded pad of the user's pipeline that we publish as one
//! track; a [`Frame`] is one encoded access unit (video) or packet (audio) taken from it.

use std::fmt;
use std::time::Duration;

/// Identifies one output for the life of the process. Assigned by the pipeline driver in the
/// order outputs are found; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputId(pub u32);

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A track's local id: `AddTrackRequest.cid`, and the msid track id of its media section,
/// which is how the server matches the two. Fresh for every publication.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackCid(String);

/// The server's id of a published track (`TR_…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TrackSid(String);

macro_rules! string_id {
    ($t:ident) => {
        impl $t {
            /// An id from its text.
            pub fn new(id: impl Into<String>) -> $t {
                $t(id.into())
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_id!(TrackCid);
string_id!(TrackSid);

/// The H.264 profiles browsers decode, as GStreamer names them in caps. The appsink accepts
/// only these, the doctor warns about others, and the tests check against this list.
pub const BROWSER_H264_PROFILES: [&str; 4] = ["constrained-baseline", "baseline", "main", "high"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
/// Audio or video.
pub enum MediaKind {
    /// Audio (Opus).
    Audio,
    /// Video (H.264, VP8, VP9, AV1).
    Video,
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        })
    }
}

/// The codecs we can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 (Annex B access units).
    H264,
    /// VP8.
    Vp8,
    /// VP9 (profile 0).
    Vp9,
    /// AV1 (low-overhead OBUs).
    Av1,
    /// Opus.
    Opus,
}

impl Codec {
    /// Audio for Opus, video otherwise.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Opus => MediaKind::Audio,
            _ => MediaKind::Video,
        }
    }

    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 90_000,
        }
    }

    /// The MIME type as LiveKit and WebRTC name it.
    pub fn mime(self) -> &'static str {
        match self {
            Codec::H264 => "video/H264",
            Codec::Vp8 => "video/VP8",
            Codec::Vp9 => "video/VP9",
            Codec::Av1 => "video/AV1",
            Codec::Opus => "audio/opus",
        }
    }

    /// Short lowercase name for messages and `--dry-run`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
            Codec::Opus => "opus",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What we know about an output's stream, from its caps. Fields are `None` until known
/// (a sometimes-pad or an unfixed caps query may not tell them yet).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamFormat {
    /// Picture width in pixels.
    pub width: Option<u32>,
    /// Picture height in pixels.
    pub height: Option<u32>,
    /// Frames per second as (numerator, denominator).
    pub framerate: Option<(i32, i32)>,
    /// Audio sample rate (Hz).
    pub sample_rate: Option<u32>,
    /// Audio channels.
    pub channels: Option<u32>,
    /// H.264 only: the caps' `profile` field (e.g. "constrained-baseline", "high").
    pub h264_profile: Option<String>,
    /// H.264 only: `profile-level-id` as six hex digits, from the SPS when known.
    pub h264_profile_level_id: Option<String>,
    /// Opus only: whether the encoder uses discontinuous transmission (opusenc `dtx`).
    pub opus_dtx: Option<bool>,
    /// The target bitrate configured on the output's encoder (bit/s), when it has one and
    /// tells it.
    pub encoder_bitrate: Option<u64>,
    /// The output's encoder takes a new target bitrate while running (congestion control).
    pub adaptable: bool,
    /// The output's encoder makes a keyframe when asked (a force-key-unit event); without
    /// one (a file, a camera's own stream), an H.264 stream keeps frames for its first
    /// viewer (see `session::held`), and later viewers wait for the stream's next keyframe.
    pub keyframes_on_request: bool,
}

/// One encoded output of the pipeline: an unconnected source pad we publish as a track.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Its id, never reused.
    pub id: OutputId,
    /// Name of the element that owns the pad (`name=` in the pipeline, or GStreamer's
    /// default such as `x264enc0`).
    pub element: String,
    /// Name of the pad, e.g. `src` or `video_0`.
    pub pad: String,
    /// Its codec.
    pub codec: Codec,
    /// What its caps tell of the stream.
    pub format: StreamFormat,
    /// Caps as GStreamer prints them, for `--dry-run` and messages.
    pub caps: String,
    /// Its name, source and bitrate bounds (from `--track`, or the library's `TrackSpec`).
    pub settings: TrackSettings,
}

impl Output {
    /// Audio or video, by codec.
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }
}

/// One encoded frame from an output.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The output it came from.
    pub output: OutputId,
    /// Running time of the buffer (PTS through the segment): one clock for all outputs, so
    /// RTP timestamps derived from it keep audio and video in sync.
    pub running_time: Duration,
    /// Duration of the buffer, when known.
    pub duration: Option<Duration>,
    /// True for a video keyframe (not DELTA_UNIT); always true for audio.
    pub keyframe: bool,
    /// Encoded data: H.264 as Annex-B byte-stream access units; VP8/VP9 frames; AV1 temporal
    /// units in OBU (low-overhead) format; Opus packets. Shared, so that the one copy made
    /// out of the GStreamer buffer is the one str0m packetizes.
    pub data: std::sync::Arc<[u8]>,
    /// When the appsink handed the frame over (for the internal latency figures).
    pub captured: std::time::Instant,
}

/// What the pipeline driver reports to the session, besides frames (which travel on their
/// own bounded channel so that control events are never dropped or stuck behind media).
#[derive(Debug, Clone)]
pub enum PipelineEvent {
    /// An output's caps were negotiated for the first time (at start, or later on a
    /// sometimes-pad): it can become a track now.
    OutputAdded(Output),
    /// An output's negotiated caps changed (e.g. resolution); carries the new description.
    OutputChanged(Output),
    /// The pipeline is playing; `live` when a source is live (paced by itself).
    /// `live`: a source is live (paced by itself).
    Started {
        /// A source is live (paced by itself).
        live: bool,
    },
    /// One output reached end-of-stream.
    OutputEos(OutputId),
    /// The whole pipeline reached end-of-stream.
    Eos,
    /// A fatal pipeline error, as one line naming the element.
    Error(String),
}

/// What a subscriber is told a track is (LiveKit's TrackSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A camera.
    Camera,
    /// A microphone.
    Microphone,
    /// A screen share.
    ScreenShare,
    /// A screen share's audio.
    ScreenShareAudio,
}

impl Source {
    /// Parse `camera`, `microphone` (`mic`), `screen_share` (`screen`), `screen_share_audio`.
    pub fn parse(text: &str) -> Option<Source> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "camera" => Some(Source::Camera),
            "microphone" | "mic" => Some(Source::Microphone),
            "screen_share" | "screenshare" | "screen" => Some(Source::ScreenShare),
            "screen_share_audio" | "screenshare_audio" | "screen_audio" => {
                Some(Source::ScreenShareAudio)
            }
            _ => None,
        }
    }

    /// The default for a kind: video is a camera, audio a microphone.
    pub fn default_for(kind: MediaKind) -> Source {
        match kind {
            MediaKind::Video => Source::Camera,
            MediaKind::Audio => Source::Microphone,
        }
    }
}

/// How one track is presented and paced: its name and source in the room, and the bounds of
/// its target bitrate. Every field is optional; the defaults are the output's name, camera or
/// microphone by kind, and the publisher's `min_bitrate`/`max_bitrate`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrackSettings {
    /// The track's name in the room.
    pub name: Option<String>,
    /// What subscribers are told the track is.
    pub source: Option<Source>,
    /// The lowest target bitrate (bit/s) congestion control gives this track.
    pub min_bitrate: Option<u64>,
    /// The highest target bitrate (bit/s).
    pub max_bitrate: Option<u64>,
    /// Its weight when tracks share the link (default 1).
    pub share: Option<f64>,
}

/// `--track SELECTOR=name:NAME,source:SOURCE,…`: the settings of the outputs `selector` selects.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackOption {
    /// An element name (`cam`) or `element.pad` (`demux.video_0`).
    pub selector: String,
    /// The settings it gives.
    pub settings: TrackSettings,
}

impl TrackOption {
    /// Parse `SELECTOR=name:NAME,source:SOURCE` (either key may be left out).
    pub fn parse(text: &str) -> Result<TrackOption, String> {
        let usage = "expected SELECTOR=KEY:VALUE,… with keys name, source, min, max, share, e.g. `--track cam=name:Camera,source:camera,max:2M`";
        let (selector, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("--track {text:?}: {usage}"))?;
        let selector = selector.trim();
        if selector.is_empty() {
            return Err(format!(
                "--track {text:?}: the selector before '=' is empty; {usage}"
            ));
        }
        let mut spec = TrackOption {
            selector: selector.to_string(),
            settings: TrackSettings::default(),
        };
        for part in rest.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once(':')
                .ok_or_else(|| format!("--track {text:?}: {part:?} is not key:value; {usage}"))?;
            match key.trim() {
                "name" => spec.settings.name = Some(value.trim().to_string()),
                "source" => {
                    spec.settings.source = Some(Source::parse(value).ok_or_else(|| {
                        format!(
                            "--track {text:?}: unknown source {value:?}; use camera, microphone, screen_share or screen_share_audio"
                        )
                    })?)
                }
                "min" => spec.settings.min_bitrate = Some(parse_bitrate(value).map_err(|e| format!("--track {text:?}: min: {e}"))?),
                "max" => spec.settings.max_bitrate = Some(parse_bitrate(value).map_err(|e| format!("--track {text:?}: max: {e}"))?),
                "share" => {
                    let share: f64 = value.trim().parse().ok().filter(|s: &f64| s.is_finite() && *s > 0.0).ok_or_else(|| {
                        format!("--track {text:?}: share: {value:?} is not a positive number")
                    })?;
                    spec.settings.share = Some(share);
                }
                other => return Err(format!("--track {text:?}: unknown key {other:?}; use name, source, min, max or share")),
            }
        }
        if spec.settings == TrackSettings::default() {
            return Err(format!("--track {text:?}: give at least one key; {usage}"));
        }
        if let (Some(min), Some(max)) = (spec.settings.min_bitrate, spec.settings.max_bitrate) {
            if min > max {
                return Err(format!("--track {text:?}: min is above max"));
            }
        }
        Ok(spec)
    }

    /// Does this spec select `output`?
    pub fn selects(&self, output: &Output) -> bool {
        TrackOption::selector_selects(&self.selector, output)
    }

    /// Does `selector` (an element name, or `element.pad`) select `output`?
    pub fn selector_selects(selector: &str, output: &Output) -> bool {
        selector == output.element
            || selector
                .split_once('.')
                .is_some_and(|(e, p)| e == output.element && p == output.pad)
    }
}

/// A bitrate as users write it: `800000`, `800k`, `2.5M` (bit/s; `k` and `M` are 1000 and
/// 1 000 000; a trailing `bps`/`b/s` is allowed).
pub fn parse_bitrate(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .trim_end_matches("bps")
        .trim_end_matches("b/s")
        .trim_end_matches("bit/s")
        .trim();
    let (number, factor) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a bitrate; write e.g. 800k or 2.5M (bit/s)"))?;
    let bps = value * factor;
    if !bps.is_finite() || !(10_000.0..=10e9).contains(&bps) {
        return Err(format!("{text:?} is outside 10k..10G bit/s"));
    }
    Ok(bps as u64)
}

/// One H.264 NAL unit that decoders skip: an SEI message of unregistered user data (this
/// product's UUID, no payload), in Annex-B. Sent in place of frames kept for a first viewer
/// (see `session::held`): the server sees the stream, and no receiver or server takes it for a
/// frame to show or for a keyframe (it has no slice and no SPS).
pub const H264_PLACEHOLDER: [u8; 24] = [
    0, 0, 0, 1,    // start code
    0x06, // SEI
    0x05, // payload type 5: user data unregistered
    0x10, // payload size 16: the UUID alone
    0x5f, 0x3a, 0x91, 0xc4, 0x27, 0xe8, 0x4b, 0x6d, 0x92, 0x1f, 0xa7, 0x3c, 0x58, 0xe6, 0x0b,
    0xd4, // UUID, no two zero bytes in a row (no emulation prevention needed)
    0x80, // rbsp trailing bits
];

/// The parameter sets (SPS and PPS NAL units) of an H.264 access unit in Annex-B form, as
/// Annex-B with 4-byte start codes; empty when it carries none.
pub fn h264_parameter_sets(access_unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in annex_b_units(access_unit) {
        if matches!(nal.first().map(|b| b & 0x1f), Some(7 | 8)) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    out
}

/// The NAL units of an Annex-B byte stream, without their start codes.
fn annex_b_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    // Each unit starts after a 00 00 01; the zero byte before it when the start code has
    // four bytes ends up at the end of the unit before, and is trimmed there.
    let starts: Vec<usize> = data
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .map(|(i, _)| i + 3)
        .collect();
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|s| s - 3)
        .chain(std::iter::once(data.len()))
        .collect();
    starts.into_iter().zip(ends).map(move |(s, e)| {
        let mut unit = &data[s..e.max(s)];
        while let [rest @ .., 0] = unit {
            unit = rest;
        }
        unit
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_parameter_sets_are_taken_from_an_access_unit() {
        let au = [
            0, 0, 0, 1, 0x09, 0xf0, // access unit delimiter
            0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1e, // SPS
            0, 0, 1, 0x68, 0xee, 0x3c, 0x80, // PPS, 3-byte start code
            0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, // IDR slice (a trailing zero of its own)
        ];
        assert_eq!(
            h264_parameter_sets(&au),
            vec![0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1e, 0, 0, 0, 1, 0x68, 0xee, 0x3c, 0x80]
        );
        assert!(h264_parameter_sets(&[0, 0, 0, 1, 0x41, 0x9a, 0x02]).is_empty());
        assert!(h264_parameter_sets(&[]).is_empty());
    }

    #[test]
    fn track_specs_parse_and_select() {
        let s = TrackOption::parse("screen=name:Screen,source:screen_share").unwrap();
        assert_eq!(s.selector, "screen");
        assert_eq!(s.settings.name.as_deref(), Some("Screen"));
        assert_eq!(s.settings.source, Some(Source::ScreenShare));
        let o = Output {
            id: OutputId(0),
            element: "screen".into(),
            pad: "src".into(),
            codec: Codec::Vp8,
            format: StreamFormat::default(),
            caps: String::new(),
            settings: TrackSettings::default(),
        };
        assert!(s.selects(&o));
        assert!(TrackOption::parse("screen.src=source:camera")
            .unwrap()
            .selects(&o));
        assert!(!TrackOption::parse("cam=name:x").unwrap().selects(&o));
        assert!(TrackOption::parse("cam=source:tv")
            .unwrap_err()
            .contains("screen_share"));
        assert!(TrackOption::parse("cam").is_err());
        assert!(TrackOption::parse("=name:x").is_err());
        assert!(TrackOption::parse("cam=colour:red").is_err());
        let b = TrackOption::parse("cam=max:2M,min:300k,share:2").unwrap();
        assert_eq!(
            (
                b.settings.max_bitrate,
                b.settings.min_bitrate,
                b.settings.share
            ),
            (Some(2_000_000), Some(300_000), Some(2.0))
        );
        assert!(TrackOption::parse("cam=min:3M,max:1M").is_err());
        assert!(TrackOption::parse("cam=share:0").is_err());
        assert_eq!(parse_bitrate("1500kbps"), Ok(1_500_000));
        assert_eq!(parse_bitrate("800000"), Ok(800_000));
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("1").is_err());
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
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
    H264,
    Vp8,
    Vp9,
    Av1,
    Opus,
}

impl Codec {
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
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frames per second as (numerator, denominator).
    pub framerate: Option<(i32, i32)>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    /// H.264 only: the caps' `profile` field (e.g. "constrained-baseline", "high").
    pub h264_profile: Option<String>,
    /// H.264 only: `profile-level-id` as six hex digits, from the SPS when known.
    pub h264_profile_level_id: Option<String>,
    /// Opus only: whether the encoder uses discontinuous transmission (opusenc `dtx`).
    pub opus_dtx: Option<bool>,
}

/// One encoded output of the pipeline: an unconnected source pad we publish as a track.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub id: OutputId,
    /// Name of the element that owns the pad (`name=` in the pipeline, or GStreamer's
    /// default such as `x264enc0`).
    pub element: String,
    /// Name of the pad, e.g. `src` or `video_0`.
    pub pad: String,
    pub codec: Codec,
    pub format: StreamFormat,
    /// Caps as GStreamer prints them, for `--dry-run` and messages.
    pub caps: String,
}

impl Output {
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }
}

/// One encoded frame from an output.
#[derive(Debug, Clone)]
pub struct Frame {
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
    Camera,
    Microphone,
    ScreenShare,
    ScreenShareAudio,
}

impl Source {
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

/// `--track SELECTOR=name:NAME,source:SOURCE`: how one output is presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    /// An element name (`cam`) or `element.pad` (`demux.video_0`).
    pub selector: String,
    pub name: Option<String>,
    pub source: Option<Source>,
}

impl TrackSpec {
    /// Parse `SELECTOR=name:NAME,source:SOURCE` (either key may be left out).
    pub fn parse(text: &str) -> Result<TrackSpec, String> {
        let usage = "expected SELECTOR=name:NAME,source:SOURCE, e.g. `--track cam=name:Camera,source:camera`";
        let (selector, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("--track {text:?}: {usage}"))?;
        let selector = selector.trim();
        if selector.is_empty() {
            return Err(format!(
                "--track {text:?}: the selector before '=' is empty; {usage}"
            ));
        }
        let mut spec = TrackSpec {
            selector: selector.to_string(),
            name: None,
            source: None,
        };
        for part in rest.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once(':')
                .ok_or_else(|| format!("--track {text:?}: {part:?} is not key:value; {usage}"))?;
            match key.trim() {
                "name" => spec.name = Some(value.trim().to_string()),
                "source" => {
                    spec.source = Some(Source::parse(value).ok_or_else(|| {
                        format!(
                            "--track {text:?}: unknown source {value:?}; use camera, microphone, screen_share or screen_share_audio"
                        )
                    })?)
                }
                other => return Err(format!("--track {text:?}: unknown key {other:?}; use name: and source:")),
            }
        }
        if spec.name.is_none() && spec.source.is_none() {
            return Err(format!(
                "--track {text:?}: give name: and/or source:; {usage}"
            ));
        }
        Ok(spec)
    }

    /// Does this spec select `output`?
    pub fn selects(&self, output: &Output) -> bool {
        self.selector == output.element
            || self.selector == format!("{}.{}", output.element, output.pad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_specs_parse_and_select() {
        let s = TrackSpec::parse("screen=name:Screen,source:screen_share").unwrap();
        assert_eq!(s.selector, "screen");
        assert_eq!(s.name.as_deref(), Some("Screen"));
        assert_eq!(s.source, Some(Source::ScreenShare));
        let o = Output {
            id: OutputId(0),
            element: "screen".into(),
            pad: "src".into(),
            codec: Codec::Vp8,
            format: StreamFormat::default(),
            caps: String::new(),
        };
        assert!(s.selects(&o));
        assert!(TrackSpec::parse("screen.src=source:camera")
            .unwrap()
            .selects(&o));
        assert!(!TrackSpec::parse("cam=name:x").unwrap().selects(&o));
        assert!(TrackSpec::parse("cam=source:tv")
            .unwrap_err()
            .contains("screen_share"));
        assert!(TrackSpec::parse("cam").is_err());
        assert!(TrackSpec::parse("=name:x").is_err());
        assert!(TrackSpec::parse("cam=colour:red").is_err());
    }
}

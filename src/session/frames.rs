//! Routing one frame: whether it goes out, on which media section, with which payload type,
//! at which RTP time.
//!
//! One media clock serves every track: a buffer's running time (its PTS through the segment)
//! becomes an RTP timestamp at the codec's clock rate and a wallclock instant on one shared
//! base, so audio and video stay in sync. The payload type of each section is chosen once,
//! when the answer is applied, from what was negotiated.

use std::time::{Duration, Instant};

use super::connection::Phase;
use super::held::Keep;
use super::timers::Timer;
use super::tracks::TrackState;
use super::{Mid, Session};
use crate::media::{Codec, MediaKind, OutputId};

/// Where and how a frame goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub mid: Mid,
    /// The simulcast layer (its rid), for a track in layers.
    pub rid: Option<&'static str>,
    /// The negotiated payload type.
    pub pt: u8,
    /// RTP time in units of `clock_rate`.
    pub rtp_time: u64,
    pub clock_rate: u32,
    /// The frame's capture time on the shared media clock (for RTCP sender reports).
    pub wallclock: Instant,
    /// Send the frame's packets at once rather than through the pacer (a video frame the
    /// estimate carries within `BURST_TIME`).
    pub burst: bool,
}

/// What becomes of a frame: where it goes out now, if it does, and what the driver keeps
/// of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    pub route: Option<Route>,
    /// Send, on `route`, not this frame but a placeholder (`media::H264_PLACEHOLDER`), just
    /// before the time of the keyframe kept for the first viewer (see [`held`](super::held)).
    pub placeholder: bool,
    /// The placeholder carries the kept keyframe's parameter sets (SPS and PPS) before it:
    /// some do in a track's first seconds (see [`ParameterSets`](super::held::ParameterSets)).
    pub with_parameter_sets: bool,
    pub keep: Keep,
}

/// One payload type negotiated for a media section, as the driver read it from the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub pt: u8,
    /// `None` for codecs we never send (RTX, RED, …).
    pub codec: Option<Codec>,
    /// H.264: `packetization-mode`.
    pub packetization_mode: Option<u8>,
    /// H.264: `profile-level-id` as a number (e.g. 0x42e01f).
    pub profile_level_id: Option<u32>,
}

/// The payload type to send `codec` with, among the negotiated ones. For H.264: one with
/// packetization-mode 1 and the stream's own profile (the first four hex digits of its
/// profile-level-id), else any with packetization-mode 1, else any.
pub fn choose_payload(
    codec: Codec,
    h264_profile_level_id: Option<&str>,
    negotiated: &[Payload],
) -> Option<u8> {
    let same_codec: Vec<&Payload> = negotiated
        .iter()
        .filter(|p| p.codec == Some(codec))
        .collect();
    if codec != Codec::H264 {
        return same_codec.first().map(|p| p.pt);
    }
    let want_profile = h264_profile_level_id.and_then(profile_prefix);
    let mode1 = |p: &&&Payload| p.packetization_mode == Some(1);
    same_codec
        .iter()
        .filter(mode1)
        .find(|p| want_profile.is_none_or(|w| p.profile_level_id.map(|id| id >> 8) == Some(w)))
        .or_else(|| same_codec.iter().find(mode1))
        .or(same_codec.first())
        .map(|p| p.pt)
}

/// First four hex digits of an H.264 profile-level-id (profile_idc + constraint flags).
pub(crate) fn profile_prefix(id: &str) -> Option<u32> {
    (id.len() == 6)
        .then(|| u32::from_str_radix(&id[..4], 16).ok())
        .flatten()
}

/// Running time → media time and wallclock, one base for every track.
///
/// A frame's wallclock stands for its capture: the base is the earliest arrival seen less
/// its media time, so no frame is ever placed after it arrived. Frames of one pipeline reach
/// the core after different delays (a small simulcast layer's encoder is quicker than the
/// full one's), and a wallclock in the future makes str0m send sender reports with RTP time
/// 0, which the server throws away, and without which it cannot line the layers of a
/// simulcast track up to switch a viewer between them.
///
/// A restarted pipeline starts its running time from zero again; the clock then shifts the
/// new running times so that media time goes on from where it was (timestamps that jumped
/// back would look like another stream to the server and to decoders).
#[derive(Debug, Default)]
pub(crate) struct MediaClock {
    base: Option<Instant>,
    /// Added to every running time (grows at each pipeline restart).
    offset: Duration,
    /// The latest media time given out.
    latest: Duration,
    /// A new pipeline starts: the next frame sets the offset.
    rebase: bool,
}

/// Media time left between the last frame of a pipeline and the first of its restart.
const RESTART_GAP: Duration = Duration::from_millis(40);

/// Where the session's media time starts: one millisecond in, so that a time just before
/// any frame's exists (a stream keeping frames for its first viewer sends placeholders one
/// tick before its kept keyframe, see [`held`](super::held)).
pub(crate) const MEDIA_START: Duration = Duration::from_millis(1);

impl MediaClock {
    /// A clock whose media time starts at `start`.
    pub(crate) fn starting_at(start: Duration) -> MediaClock {
        MediaClock {
            offset: start,
            ..MediaClock::default()
        }
    }

    /// The media time of a frame with this running time, and its wallclock.
    fn place(&mut self, now: Instant, running_time: Duration) -> (Duration, Instant) {
        if self.rebase {
            self.rebase = false;
            self.offset = (self.latest + RESTART_GAP).saturating_sub(running_time);
        }
        let media = running_time + self.offset;
        self.latest = self.latest.max(media);
        let arrived = now.checked_sub(media).unwrap_or(now);
        let base = self.base.map_or(arrived, |b| b.min(arrived));
        self.base = Some(base);
        (media, base + media)
    }

    /// The pipeline was restarted: its running time starts over.
    pub(crate) fn restart(&mut self) {
        self.rebase = true;
    }
}

/// `running_time` in ticks of `clock_rate`.
pub(crate) fn rtp_time(running_time: Duration, clock_rate: u32) -> u64 {
    (running_time.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u64
}

impl Session {
    /// Decide what becomes of a frame: whether and how it goes out now, and whether the
    /// driver keeps it for the track's first viewer (see [`held`](super::held)). Frames of
    /// outputs that are not live yet are not sent; a video track that just went live drops
    /// frames until its first keyframe, so the first frame a subscriber gets decodes.
    pub fn route_frame(
        &mut self,
        now: Instant,
        output: OutputId,
        running_time: Duration,
        keyframe: bool,
        bytes: usize,
    ) -> Fate {
        tracing::trace!(?output, keyframe, "frame from the pipeline");
        let (keep, keyframe_at) = match self.pubs.tracks.get_mut(&output) {
            Some(track) if track.keeps_for_first_viewer() => match track.first_viewer.kept_mut() {
                Some(kept) => {
                    let (media, wallclock) = self.clock.place(now, running_time);
                    (
                        kept.add(keyframe, media, wallclock, bytes),
                        kept.frames.first().copied(),
                    )
                }
                None => (Keep::Nothing, None),
            },
            _ => (Keep::Nothing, None),
        };
        let placeholder = keep != Keep::Nothing;
        let mut route = self.route(now, output, running_time, keyframe, bytes, placeholder);
        let mut with_parameter_sets = false;
        if let (true, Some(r), Some((media, wallclock))) =
            (placeholder, route.as_mut(), keyframe_at)
        {
            // Kept, not sent: the placeholder goes out one tick before the kept keyframe, so
            // that the kept frames, sent later, are newer than anything the server has (it
            // drops older ones), and no receiver takes the keyframe for more of the
            // placeholder's "frame" (same timestamp).
            r.rtp_time = rtp_time(media, r.clock_rate).saturating_sub(1);
            r.wallclock = wallclock;
            if let Some(track) = self.pubs.tracks.get_mut(&output) {
                with_parameter_sets = track.parameter_sets.due(now);
            }
        }
        Fate {
            route,
            placeholder,
            with_parameter_sets,
            keep,
        }
    }

    fn route(
        &mut self,
        now: Instant,
        output: OutputId,
        running_time: Duration,
        keyframe: bool,
        bytes: usize,
        placeholder: bool,
    ) -> Option<Route> {
        if self.phase != Phase::Joined || !self.link.publisher_connected {
            return None;
        }
        // A simulcast layer's frames go on its track, under its rid.
        let primary = self
            .simulcast
            .layer_of
            .get(&output)
            .copied()
            .unwrap_or(output);
        let track = self.pubs.tracks.get_mut(&primary)?;
        let TrackState::Live { mid, .. } = &track.state else {
            return None;
        };
        let (mid, pt) = (*mid, track.pt?);
        let clock_rate = track.output.codec.clock_rate();
        let video = track.output.kind() == MediaKind::Video;
        let rigid = video && !track.output.format.adaptable;
        let (waiting, rid) = match track.layers.iter_mut().find(|l| l.output == output) {
            Some(layer) if !layer.active => return None,
            Some(layer) => (&mut layer.awaiting_keyframe, Some(layer.rid)),
            None => (&mut track.awaiting_keyframe, None),
        };
        if *waiting {
            if !keyframe {
                return None;
            }
            *waiting = false;
            self.timers.stop(Timer::KeyframeRetry(output));
            tracing::debug!(?output, "first keyframe of the live track routed");
        } else if keyframe {
            tracing::trace!(?output, "keyframe routed");
        }
        if keyframe {
            // The keyframe asked for came: the next request is not throttled (a viewer
            // who joins right after the track went live gets its own at once).
            self.pubs.keyframe_asked.remove(&output);
        }
        let (media, wallclock) = self.clock.place(now, running_time);
        if rigid {
            self.meter(output, media, bytes);
        }
        if video && !placeholder {
            // The frame goes out before the bounds that start the estimator's probes.
            self.video_goes_out();
        }
        let burst = video && !placeholder && self.video_frame_bursts(output, keyframe, bytes);
        Some(Route {
            mid,
            rid,
            pt,
            rtp_time: rtp_time(media, clock_rate),
            clock_rate,
            wallclock,
            burst,
        })
    }

    /// Video goes out: the estimator may probe from now on (see `Congestion::video_sent`).
    /// Not before: its probes are made of the media in the pacer's queue, and probes of
    /// nothing (audio alone, placeholders) learn little.
    pub(super) fn video_goes_out(&mut self) {
        if !self.congestion.video_sent {
            self.congestion.video_sent = true;
            self.congestion.ramping = true;
            self.timers
                .set(Timer::StartRamp, self.now + super::burst::START_RAMP);
            self.reallocate();
        }
    }

    /// The answer is applied: each live section's payload type, from what was negotiated.
    pub(super) fn on_answer_applied(&mut self, payloads: Vec<(Mid, Vec<Payload>)>) {
        for track in self.pubs.tracks.values_mut() {
            let mid = match &track.state {
                TrackState::Live { mid, .. } | TrackState::Negotiating { mid, .. } => *mid,
                _ => continue,
            };
            if let Some((_, negotiated)) = payloads.iter().find(|(m, _)| *m == mid) {
                let format = &track.output.format;
                track.pt = choose_payload(
                    track.output.codec,
                    format.h264_profile_level_id.as_deref(),
                    negotiated,
                );
                if track.pt.is_none() {
                    tracing::warn!(
                        "{}: the server accepted no {} payload type; its frames are dropped",
                        track.output.element,
                        track.output.codec
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264(pt: u8, mode: u8, plid: u32) -> Payload {
        Payload {
            pt,
            codec: Some(Codec::H264),
            packetization_mode: Some(mode),
            profile_level_id: Some(plid),
        }
    }

    #[test]
    fn h264_gets_mode_1_with_the_streams_profile() {
        let offered = [
            h264(102, 1, 0x42e01f),
            h264(104, 0, 0x640028),
            h264(108, 1, 0x64001f),
        ];
        assert_eq!(
            choose_payload(Codec::H264, Some("640028"), &offered),
            Some(108)
        );
        assert_eq!(
            choose_payload(Codec::H264, Some("4d001f"), &offered),
            Some(102)
        );
        assert_eq!(choose_payload(Codec::H264, None, &offered), Some(102));
        assert_eq!(choose_payload(Codec::Vp8, None, &offered), None);
        let vp8 = Payload {
            pt: 96,
            codec: Some(Codec::Vp8),
            packetization_mode: None,
            profile_level_id: None,
        };
        assert_eq!(choose_payload(Codec::Vp8, None, &[vp8]), Some(96));
    }

    #[test]
    fn one_media_clock_for_every_track() {
        let t0 = Instant::now();
        let mut clock = MediaClock::default();
        let (_, a) = clock.place(t0, Duration::from_millis(40));
        // A later frame of another track, 20 ms of running time later, arriving 5 ms late.
        let (_, b) = clock.place(t0 + Duration::from_millis(25), Duration::from_millis(60));
        assert_eq!(b - a, Duration::from_millis(20));
        // A restarted pipeline starts from 0 again: media time goes on.
        clock.restart();
        let (m, _) = clock.place(t0 + Duration::from_secs(5), Duration::from_millis(10));
        assert_eq!(
            m,
            Duration::from_millis(100),
            "the last 60 ms + a 40 ms gap"
        );
        let (m, _) = clock.place(t0 + Duration::from_secs(5), Duration::from_millis(43));
        assert_eq!(m, Duration::from_millis(133));
        assert_eq!(rtp_time(Duration::from_secs(1), 90_000), 90_000);
        assert_eq!(rtp_time(Duration::from_millis(20), 48_000), 960);
    }

    #[test]
    fn no_frame_is_placed_after_it_arrived() {
        let t0 = Instant::now();
        let mut clock = MediaClock::default();
        let (_, a) = clock.place(t0, Duration::from_millis(40));
        assert_eq!(a, t0);
        // Another track's frame of the same running time, 3 ms sooner after its capture.
        let (_, b) = clock.place(t0 + Duration::from_millis(30), Duration::from_millis(73));
        assert!(b <= t0 + Duration::from_millis(30), "placed in the future");
        assert_eq!(b, t0 + Duration::from_millis(30));
        // From then on one base again: frames keep their spacing.
        let (_, c) = clock.place(t0 + Duration::from_millis(80), Duration::from_millis(103));
        assert_eq!(c - b, Duration::from_millis(30));
    }
}

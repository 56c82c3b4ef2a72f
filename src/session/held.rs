//! The first viewer of a stream that cannot make keyframes on request (a file, a camera's
//! own encoder) starts at once, on frames kept for it.
//!
//! The server forwards a track to a viewer from a keyframe on, and it binds a viewer only
//! after the track's first packets came; a stream that cannot make a keyframe when asked
//! would leave its first viewer waiting for the next one (a whole keyframe interval, seconds
//! for a file or a camera). So until a viewer asks for a keyframe, such a track keeps the
//! frames from its latest keyframe on, with their media times, and on that first request
//! sends them, keyframe first, at their own timestamps.
//!
//! The server drops a packet whose timestamp is older than one it already has (it takes it
//! for a stale one). So while a track keeps frames it sends none of them: for each, it sends
//! a placeholder instead, one H.264 SEI NAL unit that decoders skip (24 bytes), one tick
//! before the kept keyframe's timestamp. That lets the server see the stream and publish
//! it, keeps its stream tracker from calling the track stopped (it wants a packet every
//! 500 ms), and leaves the kept frames newer than anything sent. The placeholder carries no
//! SPS, so the server does not take it for a keyframe: a viewer it binds waits for a real
//! one and asks for it at once (with an SPS in it, the server would start the viewer on the
//! placeholder, and the request would come only from the viewer's decoder, most of a
//! second later). The parameter sets alone cannot serve: str0m holds them back for the next
//! NAL unit. But some placeholders in a track's first seconds do carry the kept keyframe's
//! parameter sets before them (see [`ParameterSets`]): until the server has seen a keyframe on
//! a track it asks for one every second (for up to 30 s), and those requests would pass for
//! the first viewer's; the parameter sets count as a keyframe there and stop them. Keeping
//! also keeps a large keyframe out of the pacer's queue before anyone watches
//! (a copy sent then would stand before its second copy). H.264 only, for the placeholder:
//! VP8 and VP9 have no NAL unit a decoder skips, and a file or camera in AV1 is rare; those
//! start their first viewer at their next keyframe.
//!
//! What is kept is bounded: [`KEEP_MAX_BYTES`] and [`KEEP_MAX_SPAN`] of media after the
//! keyframe. Beyond that the kept frames are let go, frames go out as they come, and the
//! next keyframe starts over (a viewer then waits for the next keyframe, as without this).
//! Only the first request is served so: a later viewer's would show the frames again to
//! those already watching. A new connection (a full reconnect) awaits a first viewer again.
//!
//! The kept frames go out [`SEND_KEPT_AFTER`] the request, not at once: the server asks as
//! it binds the viewer, and what it forwards at that moment is lost at the viewer.
//!
//! The session keeps the frames' times; the driver keeps their bytes, told by [`Keep`] with
//! each frame, and sends them when told by `Action::SendKept`.

use std::time::{Duration, Instant};

/// The most bytes kept for a first viewer (one 1080p keyframe of a high-rate file is
/// 0.7 MB; a keyframe interval of an 8 Mbit/s stream is about 2 MB a second).
pub const KEEP_MAX_BYTES: usize = 8 << 20;
/// The most media time kept after the keyframe: the first viewer starts at most this far
/// behind the stream, and catches up as its decoder's playout delay settles.
pub const KEEP_MAX_SPAN: Duration = Duration::from_secs(3);

/// Until the server has seen a keyframe on a track it asks for one every second, for up to
/// 30 s (livekit-server's "key frame seeder"): it stops once its count of keyframes grew past
/// the count it read when it started, which may be after our first packet came. So the first
/// placeholder of a publication carries the kept keyframe's parameter sets (the server counts
/// a packet with an SPS as a keyframe), and so does one every [`PARAMETER_SETS_EVERY`] for
/// [`PARAMETER_SETS_FOR`]: one of them lands in the seeder's first second however late it
/// starts. Not longer: a viewer bound when one passes would start on it, and not ask us (its
/// decoder would, later). Measured: with the first placeholder alone, on a loaded machine the
/// seeder asked 1.1 s after the track went live, and the kept frames went out for nobody.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ParameterSets {
    first: Option<Instant>,
    last: Option<Instant>,
}

/// How often a placeholder carries parameter sets, in a track's first [`PARAMETER_SETS_FOR`].
pub const PARAMETER_SETS_EVERY: Duration = Duration::from_millis(400);
/// How long after its first placeholder a track's placeholders may carry parameter sets.
pub const PARAMETER_SETS_FOR: Duration = Duration::from_secs(2);

impl ParameterSets {
    /// A placeholder goes out at `now`: does it carry parameter sets?
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        let first = *self.first.get_or_insert(now);
        let due = match self.last {
            None => true,
            Some(last) => {
                now.duration_since(first) <= PARAMETER_SETS_FOR
                    && now.duration_since(last) >= PARAMETER_SETS_EVERY
            }
        };
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// What a driver does with a frame's bytes, besides sending it or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep none of this output's frames (forget any kept before).
    Nothing,
    /// Forget any kept before, and keep this one (a keyframe; it is not sent now).
    First,
    /// Keep this one too, after those kept.
    Next,
}

/// How long after the first viewer's request the kept frames go out. The server asks when
/// it binds the viewer, and frames it forwards at once are lost at the viewer (measured with
/// the Python SDK's viewer: sent at once, none decoded, and the viewer waited for the next
/// keyframe; sent 50, 80 or 150 ms later, the first frame decoded 66–166 ms after it
/// subscribed). An encoder asked for a keyframe takes at least a frame interval too.
pub const SEND_KEPT_AFTER: Duration = Duration::from_millis(100);

/// A track's first viewer: still awaited (with what is kept for it), asked (the kept frames
/// go out at [`SEND_KEPT_AFTER`]; keeping goes on until then), or served.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FirstViewer {
    Awaited(Kept),
    Asked(Kept),
    Served,
}

impl FirstViewer {
    /// What is kept, while the first viewer is not served yet.
    pub(crate) fn kept_mut(&mut self) -> Option<&mut Kept> {
        match self {
            FirstViewer::Awaited(k) | FirstViewer::Asked(k) => Some(k),
            FirstViewer::Served => None,
        }
    }
}

impl Default for FirstViewer {
    fn default() -> Self {
        FirstViewer::Awaited(Kept::default())
    }
}

/// The kept frames' media times and wallclocks, the keyframe first, and their bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Kept {
    pub(crate) frames: Vec<(Duration, Instant)>,
    bytes: usize,
}

impl Kept {
    /// A frame of the stream, placed at `media` and `wallclock`: what to keep.
    pub(crate) fn add(
        &mut self,
        keyframe: bool,
        media: Duration,
        wallclock: Instant,
        bytes: usize,
    ) -> Keep {
        if keyframe {
            *self = Kept::default();
            if bytes > KEEP_MAX_BYTES {
                return Keep::Nothing;
            }
            self.push(media, wallclock, bytes);
            return Keep::First;
        }
        let Some(&(start, _)) = self.frames.first() else {
            return Keep::Nothing;
        };
        if self.bytes + bytes > KEEP_MAX_BYTES || media.saturating_sub(start) > KEEP_MAX_SPAN {
            *self = Kept::default();
            return Keep::Nothing;
        }
        self.push(media, wallclock, bytes);
        Keep::Next
    }

    fn push(&mut self, media: Duration, wallclock: Instant, bytes: usize) {
        self.frames.push((media, wallclock));
        self.bytes += bytes;
    }

    /// Media time from the keyframe to the latest kept frame.
    pub(crate) fn span(&self) -> Duration {
        match (self.frames.first(), self.frames.last()) {
            (Some((a, _)), Some((b, _))) => b.saturating_sub(*a),
            _ => Duration::ZERO,
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_keyframe_starts_what_is_kept_and_the_frames_after_it_follow() {
        let t = Instant::now();
        let mut k = Kept::default();
        assert_eq!(k.add(false, ms(0), t, 10), Keep::Nothing, "no keyframe yet");
        assert_eq!(k.add(true, ms(33), t, 100), Keep::First);
        assert_eq!(k.add(false, ms(66), t, 10), Keep::Next);
        assert_eq!(k.frames.len(), 2);
        assert_eq!(k.bytes(), 110);
        assert_eq!(k.span(), ms(33));
        assert_eq!(k.add(true, ms(99), t, 50), Keep::First, "starts over");
        assert_eq!(k.frames, vec![(ms(99), t)]);
        assert_eq!(k.bytes(), 50);
    }

    #[test]
    fn placeholders_carry_parameter_sets_at_first_and_now_and_then_for_a_while() {
        let t = Instant::now();
        let mut p = ParameterSets::default();
        let at = |ms| t + Duration::from_millis(ms);
        let due: Vec<u64> = (0..100)
            .map(|k| k * 33)
            .filter(|&ms| p.due(at(ms)))
            .collect();
        assert_eq!(due, vec![0, 429, 858, 1287, 1716]);
    }

    #[test]
    fn what_is_kept_is_let_go_beyond_its_bounds_until_the_next_keyframe() {
        let t = Instant::now();
        let mut k = Kept::default();
        assert_eq!(k.add(true, ms(0), t, 100), Keep::First);
        assert_eq!(k.add(false, KEEP_MAX_SPAN, t, 10), Keep::Next);
        assert_eq!(
            k.add(false, KEEP_MAX_SPAN + ms(1), t, 10),
            Keep::Nothing,
            "past the span"
        );
        assert!(k.frames.is_empty());
        assert_eq!(k.add(false, ms(5_000), t, 10), Keep::Nothing);
        assert_eq!(k.add(true, ms(6_000), t, KEEP_MAX_BYTES - 5), Keep::First);
        assert_eq!(
            k.add(false, ms(6_033), t, 6),
            Keep::Nothing,
            "past the bytes"
        );
        assert_eq!(
            k.add(true, ms(7_000), t, KEEP_MAX_BYTES + 1),
            Keep::Nothing,
            "a keyframe too large to keep"
        );
        assert!(k.frames.is_empty());
    }
}

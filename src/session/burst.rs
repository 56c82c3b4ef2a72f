//! Keyframes that burst: while the estimate leaves room, a video frame the link carries
//! within [`BURST_TIME`] goes to the socket at once rather than through str0m's pacer, and the
//! estimator is asked to find the room that bursts each output's largest recent keyframe
//! (at a connection's start all at once, see [`START_RAMP`]; after it in steps, and only
//! while the link carries the media). Part of congestion control (`bitrate`), whose state
//! it shares.

use std::time::Duration;

use super::Session;
use crate::media::OutputId;

/// While the estimate leaves room (it carries every output at its ceiling), a video frame
/// that the estimate carries within this time goes to the socket at once, not through str0m's
/// pacer, which sends at 1.1 × the estimate: a keyframe many times the size of the frames
/// around it (a detailed scene) would wait there, and every frame behind it, for hundreds of
/// milliseconds (measured: 720p at 4 Mbit/s, keyframes of 90-220 kB, the picture 61 ms old at
/// p50 and 294 ms at p99 when paced). A frame takes bits / capacity to cross the link's
/// narrowest point however it is sent: where the estimate is the capacity, a burst waits in
/// that link's queue about as long as it would have waited in the pacer, so the burst costs
/// nothing there; where the estimate is below the capacity (it grows only as fast as probes
/// find room), the burst saves the difference. What it asks of the link is a queue of this
/// much of the estimated rate (access links buffer more; the lab's hold 200 ms). At 40 ms
/// (libwebrtc's burst at its pacing rate) a 1080p keyframe of 450 kB needed 90 Mbit/s, which
/// the estimate reached on loopback only after 20 s; at 100 ms it needs 36 Mbit/s.
pub const BURST_TIME: Duration = Duration::from_millis(100);
/// The most the estimator is asked to probe for so that keyframes can burst (bit/s): a 1080p
/// keyframe of 450 kB needs 36 Mbit/s, asked for twice over (see [`BURST_MARGIN`]).
pub const MAX_BURST_DESIRED: u64 = 100_000_000;
/// How much of the largest keyframe an output remembers at each new one: the burst the
/// estimator is asked to find room for follows the keyframes down slowly.
const KEYFRAME_MEMORY: f64 = 0.8;
/// The room asked for bursts is this many times what the largest keyframes need: the estimate
/// moves up and down around what the probes found (measured on loopback, 720p: 15, then 11.6,
/// then 21.6 Mbit/s with 16 needed), and a keyframe that misses the room by a little waits in
/// the pacer for a hundred milliseconds, which the viewer's jitter buffer then keeps adding to
/// every frame for seconds (30-35 ms against 18-21 ms for a stream whose keyframes all burst).
const BURST_MARGIN: f64 = 2.0;
/// The room for bursts is asked for in steps of at most this many times the estimate: str0m
/// probes up to twice the desired rate, a 15 ms cluster at that rate, and periodically while
/// the link is little used, so a desired rate far above the estimate would send bursts of
/// padding the size of a keyframe into a link that may not hold them. In steps, a link with
/// room doubles its estimate a probe at a time (loopback, 1080p: from 7 to 36 Mbit/s in about
/// 5 s), and a smaller one sees probes of at most 4 × the estimate for 15 ms (60 ms of its
/// time).
const BURST_PROBE_STEP: f64 = 2.0;
/// The room asked for bursts changes only when it moves by more than this share: str0m makes
/// an allocation probe at every rise of the desired rate.
const BURST_ASK_CHANGE: f64 = 0.25;
/// For this long after the first video frame of a connection goes out, the estimator is asked
/// for the whole room that bursts the keyframes at once, not in [`BURST_PROBE_STEP`]s, and
/// whether or not the link carries the media yet. str0m then starts as libwebrtc does: probes
/// at 3 and 6 times its starting value, then at twice its estimate again after each probe that
/// found room, up to twice the desired rate. On a link with room that chain finds it within a
/// second; in steps, each waited for the estimate str0m reports, a 3 s average of its own
/// (measured on loopback, 720p: 3.9 Mbit/s for the first 3 s, 20 Mbit/s only after 7 s, the
/// keyframes of the first 6 s paced, 115 ms late, and the viewer's jitter buffer kept the
/// delay for 20 s). A probe that finds no room ends the chain, so a small link sees only the
/// two initial probes of 15 ms, which str0m sends at any desired rate above 3 Mbit/s; and the
/// periodic probes at twice the desired rate come only 5 s after the last probe, after this.
pub const START_RAMP: Duration = Duration::from_secs(3);

/// Whether a video frame of `bits` may burst (see [`BURST_TIME`]) on an estimate of
/// `estimate` bit/s.
pub fn bursts(bits: u64, estimate: Option<u64>) -> bool {
    estimate.is_some_and(|e| bits as f64 <= e as f64 * BURST_TIME.as_secs_f64())
}

/// The rate at which `keyframe_bits` (each output's largest recent keyframe) all go out
/// within [`BURST_TIME`], at most [`MAX_BURST_DESIRED`] (bit/s).
pub fn burst_rate(keyframe_bits: impl Iterator<Item = u64>) -> u64 {
    let bits: u64 = keyframe_bits.sum();
    ((bits as f64 / BURST_TIME.as_secs_f64()) as u64).min(MAX_BURST_DESIRED)
}

impl Session {
    /// A video frame of `bytes` goes out: may it burst (see [`BURST_TIME`])? Only while the
    /// estimate leaves room; a link held below the media's ceilings keeps the pacer. A
    /// keyframe also sizes the room the estimator probes for (the bounds are looked at again).
    pub(super) fn video_frame_bursts(
        &mut self,
        output: OutputId,
        keyframe: bool,
        bytes: usize,
    ) -> bool {
        let bits = bytes as u64 * 8;
        if keyframe {
            let kept = self
                .congestion
                .keyframe_bits
                .get(&output)
                .copied()
                .unwrap_or(0);
            let largest = bits.max((kept as f64 * KEYFRAME_MEMORY) as u64);
            self.congestion.keyframe_bits.insert(output, largest);
            self.congestion.burst_need =
                burst_rate(self.congestion.keyframe_bits.values().copied());
            self.reallocate();
        }
        self.congestion.roomy && bursts(bits, self.link())
    }

    /// The publisher connection's estimator's latest value.
    pub(super) fn on_capacity(&mut self, bps: u64) {
        self.congestion.capacity = Some(bps);
        self.reallocate();
    }

    /// What the estimator holds the link to carry now: its latest value, else the average.
    pub(super) fn link(&self) -> Option<u64> {
        self.congestion.capacity.or(self.congestion.estimate)
    }

    /// [`Timer::StartRamp`](super::timers::Timer::StartRamp): the start is over; the room for bursts is asked for in steps from
    /// now on, and only while the link carries the media.
    pub(super) fn start_ramp_over(&mut self) {
        self.congestion.ramping = false;
        self.reallocate();
    }

    /// The room for bursts the estimator is asked for now (see [`BURST_MARGIN`]), kept in
    /// [`Congestion::burst_asked`](super::bitrate::Congestion) when it moved by more than
    /// [`BURST_ASK_CHANGE`].
    pub(super) fn ask_burst_room(&mut self) {
        // Room for the media, or, once the link carries that, to burst its keyframes: a link
        // that cannot carry the media is not probed further for bursts (measured: asking for
        // 10 Mbit/s over a 1.5 Mbit/s link, its probes lost packets and froze the picture).
        // At the start, all of it at once (see [`START_RAMP`]).
        let need =
            ((self.congestion.burst_need as f64 * BURST_MARGIN) as u64).min(MAX_BURST_DESIRED);
        let ask = match (self.congestion.ramping, self.congestion.roomy, self.link()) {
            (true, _, _) => need,
            (false, true, Some(e)) => need.min((e as f64 * BURST_PROBE_STEP) as u64),
            _ => 0,
        };
        let was = self.congestion.burst_asked as f64;
        if (ask as f64 - was).abs() > was * BURST_ASK_CHANGE {
            self.congestion.burst_asked = ask;
        }
    }
}

//! Congestion control: the uplink's estimated bandwidth, split across the video outputs, sets
//! every encoder's target.
//!
//! str0m's estimator (Google congestion control on transport-wide feedback) reports the
//! bandwidth; [`allocate`] splits what is left after audio and after outputs that cannot adapt
//! (pre-encoded media) between the video outputs: each gets its floor first, then the rest in
//! proportion to its share, never above its ceiling (what a capped one leaves goes to the
//! others). The ceiling is the bitrate the user configured on the encoder unless `--max-bitrate`
//! says otherwise; tracks start from the estimator's starting value, not from their ceiling.
//! A target changes the encoder only when it moved by more than [`CHANGE`], so encoders are not
//! reconfigured at every report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::timers::Timer;
use super::tracks::{Track, TrackState};
use super::{Action, Session};
use crate::media::{MediaKind, OutputId};

/// The estimator's starting value (bit/s): what a link is assumed to carry before feedback.
pub const START_ESTIMATE: u64 = 1_000_000;
/// Floor of a video output unless configured (bit/s).
pub const DEFAULT_FLOOR: u64 = 150_000;
/// Ceiling of a video output whose encoder tells no bitrate, unless configured (bit/s).
pub const DEFAULT_CEILING: u64 = 2_500_000;
/// An Opus output whose encoder tells no bitrate is counted at this (bit/s).
pub const DEFAULT_AUDIO: u64 = 64_000;
/// Share of the estimate media may use; the rest is headroom for RTP/RTCP overhead,
/// retransmissions and estimate noise.
pub const USABLE: f64 = 0.85;
/// Smallest relative change of a target that reconfigures an encoder.
pub const CHANGE: f64 = 0.05;
/// How long an output that cannot adapt must send more than the link holds before the log
/// says so. The estimate starts from [`START_ESTIMATE`] and climbs as str0m probes; on
/// loopback (`scripts/bench`) it was above one 25 Mbit/s file within 2 s, but below four of
/// them (96 Mbit/s) at 4 s and above them at 6 s. A link that cannot hold the stream keeps
/// the estimate below it for good, so a few seconds more cost little and spare a good link a
/// false warning.
pub const RIGID_WARN_AFTER: Duration = Duration::from_secs(10);
/// While the estimate holds a video output below its ceiling, or a simulcast layer some viewer
/// wants is paused for want of bandwidth, the estimator is asked to probe this often (libwebrtc
/// probes an application-limited link every 5 s too).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What one video output asks of the link.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    pub output: OutputId,
    pub floor: u64,
    pub ceiling: u64,
    /// Relative weight (`--track SEL=share:N`, default 1).
    pub share: f64,
}

/// Split `available` bit/s between `demands` (see the module docs). Floors come first even
/// when they do not all fit (a link below the floors gets every output at its floor: the
/// estimator and the pacer then make the best of it).
pub fn allocate(available: u64, demands: &[Demand]) -> Vec<(OutputId, u64)> {
    let mut give: Vec<u64> = demands.iter().map(|d| d.floor.min(d.ceiling)).collect();
    let mut left = available.saturating_sub(give.iter().sum());
    let mut open: Vec<usize> = (0..demands.len())
        .filter(|&i| give[i] < demands[i].ceiling)
        .collect();
    // Water-filling: share what is left among those below their ceiling, until it is gone or
    // everyone is capped.
    while left > 0 && !open.is_empty() {
        let total_share: f64 = open.iter().map(|&i| demands[i].share.max(0.0)).sum();
        if total_share <= 0.0 {
            break;
        }
        let mut spent = 0;
        let mut still_open = Vec::new();
        for &i in &open {
            let portion = (left as f64 * demands[i].share.max(0.0) / total_share) as u64;
            let room = demands[i].ceiling - give[i];
            let take = portion.min(room);
            give[i] += take;
            spent += take;
            if give[i] < demands[i].ceiling {
                still_open.push(i);
            }
        }
        if spent == 0 {
            break;
        }
        left -= spent;
        open = still_open;
    }
    demands
        .iter()
        .zip(give)
        .map(|(d, g)| (d.output, g))
        .collect()
}

/// The most an encoder's target is lowered for its overshoot: enough to keep a VBR libvpx
/// inside a congested link, not so much that the estimate, which grows with what is sent,
/// stays down after the congestion has gone.
const MAX_OVERSHOOT: f64 = 1.25;

/// The smoothed ratio of what an encoder sent to the target it was given, counting only
/// overshoot (an encoder below its target is the picture's business) and at most
/// [`MAX_OVERSHOOT`].
fn overshoot(previous: f64, sent: u64, target: u64) -> f64 {
    let ratio = (sent as f64 / target.max(1) as f64).clamp(1.0, MAX_OVERSHOOT);
    0.5 * previous + 0.5 * ratio
}

/// The state of congestion control.
#[derive(Debug, Default)]
pub(crate) struct Congestion {
    /// The latest estimate (bit/s), str0m's average over 3 s: the encoders' targets follow it.
    pub(crate) estimate: Option<u64>,
    /// str0m's estimator's latest value (bit/s), what its pacer sends at: whether frames may
    /// burst follows it, as does the room asked for bursts.
    pub(crate) capacity: Option<u64>,
    /// The target each adaptable video output was last given.
    pub(crate) targets: BTreeMap<OutputId, u64>,
    /// Outputs that cannot adapt and were reported as too much for the link.
    warned: BTreeSet<OutputId>,
    /// Outputs that cannot adapt, not reported yet, sending more than the link holds since the
    /// last allocation: (sent, usable) in bit/s. Each has a [`Timer::RigidOver`] running.
    over: BTreeMap<OutputId, (u64, u64)>,
    /// What the run loop measured each output sending, bit/s.
    pub(crate) sent: BTreeMap<OutputId, u64>,
    /// How much each adaptable output sends above the target it was given (1.0: on target),
    /// smoothed; its next target is divided by it.
    overshoot: BTreeMap<OutputId, f64>,
    /// Added to the desired rate (bit/s), one more at each [`Timer::Probe`]: str0m probes when
    /// the desired rate grows above the estimate, and this is how to ask it to. Back to 0 once
    /// nothing waits for room.
    pub(crate) nudge: u64,
    /// At the last allocation, some adaptable video output got less than its ceiling.
    short: bool,
    /// A video frame went to the publisher connection since it was made. The estimator gets
    /// its bounds only then: str0m probes as soon as it has them, padding on the stream that
    /// sent last, and before any stream has sent it pads with the first negotiated codec's
    /// RTX payload type (VP8's, for an H.264 track), which the server drops, so the probe
    /// learns nothing and the estimate starts from its low starting value.
    pub(crate) video_sent: bool,
    /// What each video output that cannot adapt sent since it went live, from the frames
    /// routed: its rate until the first statistics interval measures it (see [`Meter`]).
    pub(crate) metered: BTreeMap<OutputId, Meter>,
    /// Each video output's largest recent keyframe (bits), fading by `burst::KEYFRAME_MEMORY`
    /// at each new one: the estimator probes for the room to burst them (see
    /// [`BURST_TIME`](super::burst::BURST_TIME)).
    pub(crate) keyframe_bits: BTreeMap<OutputId, u64>,
    /// The rate that bursts each output's largest recent keyframe (see
    /// [`burst_rate`](super::burst::burst_rate)).
    pub(crate) burst_need: u64,
    /// The room for bursts the estimator's bounds were last given: `burst::BURST_MARGIN` times
    /// the need, in steps of `burst::BURST_PROBE_STEP` times the estimate, 0 without room.
    pub(crate) burst_asked: u64,
    /// At the last allocation the estimate carried every output at its ceiling: frames may
    /// burst, and the estimator probes for the room to burst keyframes.
    pub(crate) roomy: bool,
    /// Within [`START_RAMP`](super::burst::START_RAMP) of the connection's first video frame:
    /// the room for bursts is asked for whole (see [`Timer::StartRamp`]).
    pub(crate) ramping: bool,
}

/// Media time an output that cannot adapt must have sent before its rate counts.
pub const METER_SPAN: Duration = Duration::from_millis(500);
/// The same when its rate is wanted at once: frames kept for a first viewer go out, and the
/// estimator's first probes should be made of them (see `held`).
pub const METER_SPAN_SHORT: Duration = Duration::from_millis(100);

/// The bytes an output routed over a span of media time. A pre-encoded stream (a file, a
/// camera's own encoder) sends what it sends: the estimator has to know that rate at once, or
/// it starts from [`START_ESTIMATE`], its pacer holds the stream to that (measured: an
/// 8 Mbit/s file held back 1 s and more for its first 3 s, its first keyframe paced over 2 s),
/// and nothing asks it to probe for more until the first statistics interval ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter {
    first: Duration,
    last: Duration,
    bytes: u64,
    /// Its rate is wanted now: [`METER_SPAN_SHORT`] of media is enough.
    hurried: bool,
}

impl Meter {
    fn new(media: Duration, bytes: usize) -> Meter {
        Meter {
            first: media,
            last: media,
            bytes: bytes as u64,
            hurried: false,
        }
    }

    /// Counts a frame; true when this frame completes the first [`METER_SPAN`].
    fn add(&mut self, media: Duration, bytes: usize) -> bool {
        let before = self.rate().is_some();
        self.bytes += bytes as u64;
        self.last = self.last.max(media);
        !before && self.rate().is_some()
    }

    /// bit/s, once [`METER_SPAN`] of media went out ([`METER_SPAN_SHORT`] when hurried).
    pub(crate) fn rate(&self) -> Option<u64> {
        let span = self.last.saturating_sub(self.first);
        let enough = if self.hurried {
            METER_SPAN_SHORT
        } else {
            METER_SPAN
        };
        (span >= enough).then(|| (self.bytes as f64 * 8.0 / span.as_secs_f64()) as u64)
    }
}

impl Session {
    /// A new estimate from the publisher connection.
    pub(super) fn on_estimate(&mut self, bps: u64, sent: Vec<(OutputId, u64)>) {
        self.congestion.estimate = Some(bps);
        let sent: BTreeMap<OutputId, u64> = sent.into_iter().collect();
        // The rates are those of the last complete statistics interval: learn from each
        // interval once, however many estimates come meanwhile.
        let new_interval = sent != self.congestion.sent;
        self.congestion.sent = sent;
        if new_interval {
            self.learn_overshoot();
        }
        self.reallocate();
    }

    fn learn_overshoot(&mut self) {
        for (output, target) in &self.congestion.targets {
            if let Some(&sent) = self.congestion.sent.get(output) {
                let previous = self.congestion.overshoot.get(output).copied();
                let factor = overshoot(previous.unwrap_or(1.0), sent, *target);
                self.congestion.overshoot.insert(*output, factor);
            }
        }
    }

    /// Split the estimate again (a new estimate, a track live or ended).
    pub(super) fn reallocate(&mut self) {
        let estimate = self.congestion.estimate.unwrap_or(START_ESTIMATE);
        let mut fixed = 0u64;
        // Some output that cannot adapt has no known rate yet.
        let mut unmeasured = false;
        let mut demands = Vec::new();
        let mut rigid = Vec::new();
        // Simulcast tracks: their layers' ceilings, lowest first.
        let mut ladders: BTreeMap<OutputId, Vec<(OutputId, u64)>> = BTreeMap::new();
        for (id, t) in &self.pubs.tracks {
            if !matches!(
                t.state,
                TrackState::Live { .. } | TrackState::Negotiating { .. }
            ) {
                continue;
            }
            let format = &t.output.format;
            match t.output.kind() {
                MediaKind::Audio => fixed += format.encoder_bitrate.unwrap_or(DEFAULT_AUDIO),
                MediaKind::Video if !format.adaptable => {
                    let sent = self
                        .congestion
                        .sent
                        .get(id)
                        .copied()
                        .or_else(|| self.congestion.metered.get(id).and_then(Meter::rate));
                    // Held only once it sends: one that never does must not keep the
                    // estimator from the other outputs.
                    unmeasured |= sent.is_none()
                        && format.encoder_bitrate.is_none()
                        && self.congestion.metered.contains_key(id);
                    fixed += sent.or(format.encoder_bitrate).unwrap_or(0);
                    rigid.push((*id, sent));
                }
                MediaKind::Video => {
                    let spec = &t.output.settings;
                    let floor = spec
                        .min_bitrate
                        .or(self.config.min_bitrate)
                        .unwrap_or(DEFAULT_FLOOR);
                    let ceiling = spec
                        .max_bitrate
                        .or(self.config.max_bitrate)
                        .or(format.encoder_bitrate)
                        .unwrap_or(DEFAULT_CEILING)
                        .max(floor);
                    let share = spec.share.unwrap_or(1.0);
                    let (floor, ceiling) = if t.layers.is_empty() {
                        (floor, ceiling)
                    } else {
                        let ladder = self.ladder(*id, t, ceiling);
                        // Every layer, wanted or not: a desired rate that fell with the
                        // layers nobody watches would take the estimate down with it (measured:
                        // 330 kbit/s with one 200 kbit/s layer wanted), and the next viewer of
                        // the full layer would wait for the estimate to climb back.
                        let sum = ladder.iter().map(|(_, c)| c).sum();
                        let lowest = ladder.first().map_or(floor, |(_, c)| *c);
                        ladders.insert(*id, ladder);
                        (lowest.min(floor), sum)
                    };
                    demands.push(Demand {
                        output: *id,
                        floor,
                        ceiling,
                        share,
                    });
                }
            }
        }
        let usable = (estimate as f64 * USABLE) as u64;
        let available = usable.saturating_sub(fixed);
        let targets = self.targets(available, &demands, &ladders);
        for (output, bps, share) in targets {
            let old = self.congestion.targets.get(&output).copied();
            let moved = old.is_none_or(|o| (bps as f64 - o as f64).abs() > o as f64 * CHANGE);
            if moved {
                self.congestion.targets.insert(output, bps);
                self.actions
                    .push_back(Action::SetBitrate { output, bps, share });
            }
        }
        // The link carries every output at its ceiling: there is room to burst.
        let ceilings: u64 = demands.iter().map(|d| d.ceiling).sum::<u64>() + fixed;
        self.congestion.roomy = self
            .link()
            .is_some_and(|l| (l as f64 * USABLE) as u64 >= ceilings);
        self.arm_probe();
        self.set_limits(&demands, fixed, ceilings, unmeasured);
        self.warn_rigid(usable, &rigid);
    }

    /// Each output's share of `available` as (output, encoder target, share), simulcast
    /// tracks split over their layers; notes whether some output got less than its ceiling.
    fn targets(
        &mut self,
        available: u64,
        demands: &[Demand],
        ladders: &BTreeMap<OutputId, Vec<(OutputId, u64)>>,
    ) -> Vec<(OutputId, u64, u64)> {
        let mut targets = Vec::new();
        self.congestion.short = false;
        // `allocate` answers in the order of `demands`.
        for (demand, (output, bps)) in demands.iter().zip(allocate(available, demands)) {
            match ladders.get(&output) {
                None => {
                    if (bps as f64) < demand.ceiling as f64 * (1.0 - CHANGE) {
                        self.congestion.short = true;
                    }
                    // An encoder that overshoots its target (libvpx in VBR on a busy picture
                    // sends half as much again) is given less, so what it sends fits.
                    let factor = self.congestion.overshoot.get(&output).copied();
                    let encoder = ((bps as f64 / factor.unwrap_or(1.0)) as u64).max(demand.floor);
                    targets.push((output, encoder, bps))
                }
                Some(ladder) => targets.extend(
                    self.layer_targets(output, bps, ladder)
                        .into_iter()
                        .map(|(layer, bps)| (layer, bps, bps)),
                ),
            }
        }
        targets
    }

    /// Does something wait for room: a video output below its ceiling, or a simulcast layer
    /// some viewer wants paused, because of the estimate?
    fn wants_room(&self) -> bool {
        self.congestion.estimate.is_some()
            && (self.congestion.short
                || self.pubs.tracks.values().any(|t| {
                    matches!(t.state, TrackState::Live { .. })
                        && t.layers.iter().any(|l| l.wanted && !l.fits)
                }))
    }

    /// Probing for room: on while something waits for it, off (and the nudge gone) after.
    fn arm_probe(&mut self) {
        if self.wants_room() {
            if !self.timers.is_set(Timer::Probe) {
                self.timers.set(Timer::Probe, self.now + PROBE_INTERVAL);
            }
        } else {
            self.timers.stop(Timer::Probe);
            self.congestion.nudge = 0;
        }
    }

    /// [`Timer::Probe`]: something has waited for room: nudge the desired rate up, so the
    /// estimator probes above its estimate. Without it the estimate, which grows only with
    /// what is sent and slowly near the capacity it last found, takes long to find a link that
    /// has grown, or never reaches a paused layer (str0m's own remedy comes after 15 s of a
    /// flat estimate).
    pub(super) fn probe_for_room(&mut self) {
        if self.wants_room() {
            self.congestion.nudge += 1;
            tracing::debug!("asking the estimator to probe the link for more");
        }
        self.reallocate();
    }

    /// A simulcast track's layers with their ceilings, lowest first; the top layer's is the
    /// track's `ceiling`.
    fn ladder(&self, id: OutputId, t: &Track, ceiling: u64) -> Vec<(OutputId, u64)> {
        t.layers
            .iter()
            .map(|l| {
                let c = if l.output == id {
                    ceiling
                } else {
                    self.simulcast
                        .layer_outputs
                        .get(&l.output)
                        .and_then(|o| o.format.encoder_bitrate)
                        .unwrap_or(DEFAULT_FLOOR)
                };
                (l.output, c)
            })
            .collect()
    }

    /// A simulcast track's share `bps` split over its layers: the layers that fit, from the
    /// lowest up, each at its ceiling but the top one, which gets what is left. Layers that
    /// do not fit are paused.
    fn layer_targets(
        &mut self,
        output: OutputId,
        bps: u64,
        ladder: &[(OutputId, u64)],
    ) -> Vec<(OutputId, u64)> {
        let ceilings: Vec<u64> = ladder.iter().map(|(_, c)| *c).collect();
        // Layers are sending (and stop at a lower share than they start) once the estimator
        // has spoken; before, only the lowest is sure.
        let sending = match self.congestion.estimate {
            None => 1,
            Some(_) => self
                .pubs
                .tracks
                .get(&output)
                .map_or(0, |t| t.layers.iter().take_while(|l| l.fits).count()),
        };
        let fitting = super::simulcast::layers_that_fit(bps, &ceilings, sending);
        let fitting = self.fit_layers(output, fitting);
        let below: u64 = ceilings[..fitting - 1].iter().sum();
        ladder
            .iter()
            .enumerate()
            .take(fitting)
            .map(|(i, (layer, ceiling))| {
                let target = if i + 1 == fitting {
                    bps.saturating_sub(below)
                        .clamp(DEFAULT_FLOOR.min(*ceiling), *ceiling)
                } else {
                    *ceiling
                };
                (*layer, target)
            })
            .collect()
    }

    /// The estimator's bounds: never below the floors, probing up to the ceilings. Not
    /// before a video frame went out (see [`Congestion::video_sent`]), nor while an output
    /// that cannot adapt has no measured rate: str0m makes its initial probes (3 and 6 times
    /// its starting value) once, when it first has bounds, and never above twice the desired
    /// rate, so a desired rate without that output's would waste them (measured: an
    /// 8 Mbit/s file's estimate stayed at 1.7 Mbit/s for 4 s).
    /// `ceilings`: every output's ceiling and what `fixed` outputs send, summed (bit/s).
    fn set_limits(&mut self, demands: &[Demand], fixed: u64, ceilings: u64, unmeasured: bool) {
        if !self.congestion.video_sent || unmeasured {
            return;
        }
        let floors: u64 = demands.iter().map(|d| d.floor).sum::<u64>() + fixed;
        self.ask_burst_room();
        let desired = (((ceilings as f64) / USABLE) as u64 + self.congestion.nudge)
            .max(self.congestion.burst_asked);
        let limits = (floors, desired);
        if self.congestion_limits != Some(limits) {
            self.congestion_limits = Some(limits);
            self.actions.push_back(Action::SetBandwidthLimits {
                min: limits.0,
                desired: limits.1,
            });
        }
    }

    /// Outputs that cannot adapt, sending more than the link holds: each is reported once,
    /// when that has lasted [`RIGID_WARN_AFTER`] (see [`Timer::RigidOver`]). One back within
    /// the link, or gone, starts over.
    fn warn_rigid(&mut self, usable: u64, rigid: &[(OutputId, Option<u64>)]) {
        let over: BTreeMap<OutputId, (u64, u64)> = match self.congestion.estimate {
            None => BTreeMap::new(),
            Some(_) => rigid
                .iter()
                .filter_map(|(id, sent)| Some((*id, (*sent)?)))
                .filter(|(id, sent)| *sent > usable && !self.congestion.warned.contains(id))
                .map(|(id, sent)| (id, (sent, usable)))
                .collect(),
        };
        self.timers
            .retain(|t| !matches!(t, Timer::RigidOver(id) if !over.contains_key(&id)));
        for id in over.keys() {
            if !self.timers.is_set(Timer::RigidOver(*id)) {
                self.timers
                    .set(Timer::RigidOver(*id), self.now + RIGID_WARN_AFTER);
            }
        }
        self.congestion.over = over;
    }

    /// [`Timer::RigidOver`]: `id` has sent more than the link holds since the timer was set
    /// (each allocation in between found it so): say so, with what to do.
    pub(super) fn warn_rigid_over(&mut self, id: OutputId) {
        let Some((sent, usable)) = self.congestion.over.remove(&id) else {
            return;
        };
        self.congestion.warned.insert(id);
        let name = self.pubs.element_of(id);
        tracing::warn!(
            "{name} sends {} kbit/s and cannot adapt (no encoder in the pipeline), but the link holds about {} kbit/s: lower its bitrate at the source, or decode and re-encode it in the pipeline",
            sent / 1000,
            usable / 1000
        );
        self.actions.push_back(Action::CannotAdapt { output: id });
    }

    /// A track ended or the connection started over: its target is forgotten.
    pub(super) fn forget_target(&mut self, id: OutputId) {
        self.congestion.targets.remove(&id);
        self.congestion.metered.remove(&id);
    }

    /// A frame of a video output that cannot adapt went out at media time `media`: once its
    /// first [`METER_SPAN`] is measured, the estimator's bounds count its rate.
    pub(super) fn meter(&mut self, output: OutputId, media: Duration, bytes: usize) {
        let done = match self.congestion.metered.get_mut(&output) {
            Some(m) => m.add(media, bytes),
            None => {
                self.congestion
                    .metered
                    .insert(output, Meter::new(media, bytes));
                false
            }
        };
        if done && !self.congestion.sent.contains_key(&output) {
            self.reallocate();
        }
    }

    /// `output`'s rate is wanted now: what it has measured so far will do, from
    /// [`METER_SPAN_SHORT`] of media on.
    pub(super) fn hurry_meter(&mut self, output: OutputId) {
        if let Some(m) = self.congestion.metered.get_mut(&output) {
            m.hurried = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: u32, floor: u64, ceiling: u64, share: f64) -> Demand {
        Demand {
            output: OutputId(id),
            floor,
            ceiling,
            share,
        }
    }

    #[test]
    fn overshoot_is_learnt_smoothly_and_bounded() {
        // On target, or below it: no correction.
        assert_eq!(overshoot(1.0, 1_000_000, 1_000_000), 1.0);
        assert_eq!(overshoot(1.0, 500_000, 1_000_000), 1.0);
        // 1.2 Mbit/s sent for 1.0 Mbit/s: the factor moves half way to 1.2 each interval.
        let f = overshoot(1.0, 1_200_000, 1_000_000);
        assert!((f - 1.1).abs() < 0.001, "{f}");
        let f = overshoot(f, 1_200_000, 1_000_000);
        assert!((f - 1.15).abs() < 0.001, "{f}");
        // Never more than MAX_OVERSHOOT, and it comes back down once the encoder keeps to
        // its target.
        assert_eq!(
            overshoot(MAX_OVERSHOOT, 9_000_000, 1_000_000),
            MAX_OVERSHOOT
        );
        assert_eq!(overshoot(1.2, 1_000_000, 1_000_000), 1.1);
    }

    #[test]
    fn floors_first_then_shares_capped_at_ceilings() {
        // One output: all it can take, up to its ceiling.
        assert_eq!(
            allocate(1_000_000, &[d(0, 150_000, 4_000_000, 1.0)]),
            vec![(OutputId(0), 1_000_000)]
        );
        assert_eq!(
            allocate(9_000_000, &[d(0, 150_000, 4_000_000, 1.0)]),
            vec![(OutputId(0), 4_000_000)]
        );
        // Two equal outputs split evenly.
        let a = allocate(
            2_000_000,
            &[d(0, 150_000, 4_000_000, 1.0), d(1, 150_000, 4_000_000, 1.0)],
        );
        assert_eq!(a, vec![(OutputId(0), 1_000_000), (OutputId(1), 1_000_000)]);
        // A capped one leaves the rest to the other.
        let a = allocate(
            3_000_000,
            &[d(0, 150_000, 500_000, 1.0), d(1, 150_000, 4_000_000, 1.0)],
        );
        assert_eq!(a[0].1, 500_000);
        assert!(a[1].1 >= 2_499_000, "{a:?}");
        // Shares weigh.
        let a = allocate(
            3_150_000,
            &[d(0, 0, 9_000_000, 2.0), d(1, 0, 9_000_000, 1.0)],
        );
        assert!(a[0].1 > a[1].1 * 19 / 10, "{a:?}");
        // Below the floors: everyone at the floor.
        let a = allocate(
            100_000,
            &[d(0, 150_000, 4_000_000, 1.0), d(1, 200_000, 4_000_000, 1.0)],
        );
        assert_eq!(a, vec![(OutputId(0), 150_000), (OutputId(1), 200_000)]);
        assert!(allocate(1_000_000, &[]).is_empty());
    }
}

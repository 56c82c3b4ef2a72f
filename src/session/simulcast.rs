//! Simulcast: one video track in several qualities, each a layer fed by an output of its own.
//!
//! A group is given as outputs, highest first (`--simulcast cam,cam_h,cam_q`, or built by the
//! pipeline driver for `--simulcast auto`). The highest output carries the track; the others
//! are its layers. The track is announced once every layer's output is known, with one
//! `VideoLayer` per layer (rids `q`, `h`, `f` from the lowest up, as LiveKit's SDKs name
//! them). A layer sends while some viewer wants its quality (`SubscribedQualityUpdate`) and
//! the estimate leaves room for it; otherwise it is paused (its encoder's input stopped where
//! the driver can). A paused layer that comes back starts on a keyframe.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use livekit_protocol as proto;

use super::tracks::TrackState;
use super::{Action, Session};
use crate::error::Error;
use crate::media::{Codec, Output, OutputId, TrackOption};

/// The rids of `n` layers, lowest first.
pub fn rids(n: usize) -> &'static [&'static str] {
    match n {
        0 | 1 => &[],
        2 => &["q", "h"],
        _ => &["q", "h", "f"],
    }
}

/// LiveKit's quality of the layer with this rid.
pub fn quality(rid: &str) -> proto::VideoQuality {
    match rid {
        "q" => proto::VideoQuality::Low,
        "h" => proto::VideoQuality::Medium,
        _ => proto::VideoQuality::High,
    }
}

/// One layer of a simulcast track.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layer {
    pub(crate) output: OutputId,
    pub(crate) rid: &'static str,
    /// Some viewer wants this quality (everything is wanted until the server says).
    pub(crate) wanted: bool,
    /// The estimate leaves room for it.
    pub(crate) fits: bool,
    /// Sending (wanted and fits).
    pub(crate) active: bool,
    /// Drop frames until a keyframe (after going live or being resumed).
    pub(crate) awaiting_keyframe: bool,
    /// When it last started to fit.
    pub(crate) fits_since: Option<Instant>,
    /// It stopped fitting soon after it started: it may not start again before then.
    pub(crate) blocked_until: Option<Instant>,
    /// How long the next such stop blocks it.
    pub(crate) backoff: Duration,
}

/// A layer that stops fitting within this long of starting failed to start: it waits
/// [`Layer::backoff`] before it may start again. A probe can find more than a shaped link
/// carries for long (a token bucket lets a short burst through), and without this the layer
/// would go on and off at every probe.
pub const LAYER_SETTLE: Duration = Duration::from_secs(10);
/// The first wait after a failed start; it doubles at each further one, up to
/// [`LAYER_MAX_BACKOFF`], and is back to this once a layer stayed on for [`LAYER_SETTLE`].
pub const LAYER_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait after failed starts.
pub const LAYER_MAX_BACKOFF: Duration = Duration::from_secs(80);

/// A group as configured: the outputs it takes, highest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub selectors: Vec<String>,
}

impl Group {
    /// The position of `output` in this group (0 = highest).
    fn position(&self, output: &Output) -> Option<usize> {
        self.selectors
            .iter()
            .position(|s| TrackOption::selector_selects(s, output))
    }
}

/// Checks a complete group: one codec, sizes that shrink from the highest down.
pub(crate) fn check_group(outputs: &[&Output]) -> Result<(), String> {
    let first = outputs[0];
    for o in &outputs[1..] {
        if o.codec != first.codec {
            return Err(format!(
                "the simulcast layers of {} are in different codecs ({} is {}, {} is {}); encode every layer with the same encoder",
                first.element, first.element, first.codec, o.element, o.codec
            ));
        }
        if first.codec == Codec::Opus {
            return Err(format!(
                "{} is audio: only video has simulcast layers",
                first.element
            ));
        }
    }
    for pair in outputs.windows(2) {
        let area = |o: &Output| {
            u64::from(o.format.width.unwrap_or(0)) * u64::from(o.format.height.unwrap_or(0))
        };
        if area(pair[1]) > area(pair[0]) {
            return Err(format!(
                "simulcast layer {} ({}x{}) is larger than the one before it, {} ({}x{}); list the layers from the largest down",
                pair[1].element,
                pair[1].format.width.unwrap_or(0),
                pair[1].format.height.unwrap_or(0),
                pair[0].element,
                pair[0].format.width.unwrap_or(0),
                pair[0].format.height.unwrap_or(0)
            ));
        }
    }
    Ok(())
}

/// Share of its ceiling a paused layer needs to start.
pub const LAYER_MIN_SHARE: f64 = 0.4;
/// Share of its ceiling below which a sending layer stops. Well below [`LAYER_MIN_SHARE`]:
/// the estimate often dips soon after a layer starts (measured on a 6 Mbit/s link: from 2.0
/// to 1.45 Mbit/s three seconds after a 2 Mbit/s layer started, with 1.7 Mbit/s sent), and
/// a layer that stopped there went on and off; kept at a low rate, it keeps the estimate fed
/// (which grows only with what is sent) and climbs with it.
pub const LAYER_KEEP_SHARE: f64 = 0.15;

/// How many layers of a group fit into `budget` bit/s, lowest first: the lowest always; a next
/// one when the layers below it at their ceilings leave it at least [`LAYER_MIN_SHARE`] of
/// its own ceiling, or [`LAYER_KEEP_SHARE`] when it is one of the `sending` lowest already.
pub fn layers_that_fit(budget: u64, ceilings_low_first: &[u64], sending: usize) -> usize {
    let mut below = 0u64;
    let mut n = 0;
    for (i, c) in ceilings_low_first.iter().enumerate() {
        let share = if i < sending {
            LAYER_KEEP_SHARE
        } else {
            LAYER_MIN_SHARE
        };
        let needs = (*c as f64 * share) as u64;
        if i > 0 && below + needs > budget {
            break;
        }
        below += c;
        n += 1;
    }
    n.max(1).min(ceilings_low_first.len())
}

/// Simulcast state: the configured groups and the layer outputs waiting for their track.
#[derive(Debug, Default)]
pub(crate) struct Simulcast {
    pub(crate) groups: Vec<Group>,
    /// Layer outputs (not the highest of their group), by output.
    pub(crate) layer_outputs: BTreeMap<OutputId, Output>,
    /// Every layer output of an announced track (the highest too) → that track's output.
    pub(crate) layer_of: BTreeMap<OutputId, OutputId>,
}

impl Simulcast {
    /// The group and position of `output`, if it is in one.
    pub(crate) fn place(&self, output: &Output) -> Option<(usize, usize)> {
        self.groups
            .iter()
            .enumerate()
            .find_map(|(g, group)| group.position(output).map(|p| (g, p)))
    }
}

impl Session {
    /// A new output that is a lower layer of a group: kept until its track is announced.
    /// Returns the output back when it is not a lower layer.
    pub(super) fn layer_output(&mut self, output: Output) -> Option<Output> {
        match self.simulcast.place(&output) {
            Some((_, position)) if position > 0 => {
                self.simulcast.layer_outputs.insert(output.id, output);
                self.announce_tracks();
                None
            }
            _ => Some(output),
        }
    }

    /// The outputs of `primary`'s group, highest first, when every one of them is known.
    pub(super) fn group_outputs(&self, primary: &Output) -> Option<Vec<Output>> {
        let (g, 0) = self.simulcast.place(primary)? else {
            return None;
        };
        let group = &self.simulcast.groups[g];
        let mut outputs = vec![primary.clone()];
        for position in 1..group.selectors.len() {
            let o = self
                .simulcast
                .layer_outputs
                .values()
                .find(|o| group.position(o) == Some(position))?;
            outputs.push(o.clone());
        }
        Some(outputs)
    }

    /// Is `primary` in a group whose layers are not all known yet?
    pub(super) fn group_incomplete(&self, primary: &Output) -> bool {
        matches!(self.simulcast.place(primary), Some((_, 0)))
            && self.group_outputs(primary).is_none()
    }

    /// The layers of a complete group, lowest first; `None` (after leaving with a clear error)
    /// when the group does not make sense.
    pub(super) fn make_layers(&mut self, outputs: &[Output]) -> Option<Vec<Layer>> {
        let refs: Vec<&Output> = outputs.iter().collect();
        if let Err(why) = check_group(&refs) {
            self.leave(Err(Error::Pipeline(why)));
            return None;
        }
        let rids = rids(outputs.len());
        Some(
            outputs
                .iter()
                .rev()
                .zip(rids)
                .map(|(o, rid)| Layer {
                    output: o.id,
                    rid,
                    wanted: true,
                    fits: true,
                    active: true,
                    awaiting_keyframe: false,
                    fits_since: None,
                    blocked_until: None,
                    backoff: LAYER_BACKOFF,
                })
                .collect(),
        )
    }

    /// `SubscribedQualityUpdate`: which qualities of a track some viewer wants.
    pub(super) fn on_quality_update(&mut self, update: proto::SubscribedQualityUpdate) {
        let Some(id) = self.pubs.tracks.iter().find_map(|(id, t)| match &t.state {
            TrackState::Live { sid, .. } | TrackState::Negotiating { sid, .. }
                if sid.as_str() == update.track_sid =>
            {
                Some(*id)
            }
            _ => None,
        }) else {
            return;
        };
        #[allow(deprecated)]
        let qualities = update
            .subscribed_codecs
            .first()
            .map(|c| c.qualities.clone())
            .unwrap_or(update.subscribed_qualities);
        if let Some(track) = self.pubs.tracks.get_mut(&id) {
            for layer in &mut track.layers {
                let q = quality(layer.rid) as i32;
                if let Some(s) = qualities.iter().find(|s| s.quality == q) {
                    layer.wanted = s.enabled;
                }
            }
        }
        self.apply_layers(id);
        // Which layers are wanted decides which of them wait for room, and so the probing.
        self.reallocate();
    }

    /// The lowest `fitting` layers of `primary`'s track fit, less any that failed to start
    /// lately (and those above it); the others pause. Returns how many fit.
    pub(super) fn fit_layers(&mut self, primary: OutputId, fitting: usize) -> usize {
        let now = self.now;
        let mut fit = fitting;
        if let Some(track) = self.pubs.tracks.get_mut(&primary) {
            for (i, layer) in track.layers.iter_mut().enumerate() {
                let blocked = layer.blocked_until.is_some_and(|t| t > now);
                let fits = i == 0 || (i < fit && (layer.fits || !blocked));
                if !fits {
                    fit = fit.min(i.max(1));
                }
                match (layer.fits, fits) {
                    (false, true) => layer.fits_since = Some(now),
                    (true, false) => {
                        let failed = layer
                            .fits_since
                            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_SETTLE);
                        if failed {
                            layer.blocked_until = Some(now + layer.backoff);
                            layer.backoff = (layer.backoff * 2).min(LAYER_MAX_BACKOFF);
                        }
                        layer.fits_since = None;
                    }
                    (true, true) => {
                        if layer
                            .fits_since
                            .is_some_and(|t| now.saturating_duration_since(t) >= LAYER_SETTLE)
                        {
                            layer.backoff = LAYER_BACKOFF;
                        }
                    }
                    (false, false) => {}
                }
                layer.fits = fits;
            }
        }
        self.apply_layers(primary);
        fit
    }

    /// Turn layers on or off as wanted and fitting say.
    fn apply_layers(&mut self, primary: OutputId) {
        let Some(track) = self.pubs.tracks.get_mut(&primary) else {
            return;
        };
        let mut changes = Vec::new();
        for layer in &mut track.layers {
            let active = layer.wanted && layer.fits;
            if active != layer.active {
                layer.active = active;
                layer.awaiting_keyframe = active;
                changes.push((layer.output, layer.rid, active, layer.wanted));
            }
        }
        let estimate = self.congestion.estimate;
        for (output, rid, active, wanted) in changes {
            let why = match (active, wanted, estimate) {
                (true, _, _) => String::new(),
                (false, false, _) => " (no viewer wants it)".into(),
                (false, true, Some(bps)) => {
                    format!(" (the estimate, {} kbit/s, leaves no room)", bps / 1000)
                }
                (false, true, None) => " (waiting for a bandwidth estimate)".into(),
            };
            tracing::info!(
                "simulcast layer {rid} of {}: {}{why}",
                self.pubs.element_of(primary),
                if active { "on" } else { "paused" }
            );
            self.actions
                .push_back(Action::SetLayerActive { output, active });
            if active {
                self.request_keyframe(output, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rids_and_qualities_from_the_lowest_up() {
        assert_eq!(rids(3), &["q", "h", "f"]);
        assert_eq!(rids(2), &["q", "h"]);
        assert!(rids(1).is_empty());
        assert_eq!(quality("q"), proto::VideoQuality::Low);
        assert_eq!(quality("f"), proto::VideoQuality::High);
    }

    #[test]
    fn the_top_layers_go_first_when_the_budget_shrinks() {
        let ceilings = [150_000, 500_000, 1_700_000];
        assert_eq!(layers_that_fit(5_000_000, &ceilings, 1), 3);
        // A paused top layer starts below its ceiling once it has 40 % of it.
        assert_eq!(layers_that_fit(1_400_000, &ceilings, 1), 3);
        assert_eq!(layers_that_fit(1_000_000, &ceilings, 1), 2);
        assert_eq!(layers_that_fit(300_000, &ceilings, 1), 1);
        assert_eq!(layers_that_fit(10, &ceilings, 3), 1, "the lowest always");
    }

    #[test]
    fn a_sending_layer_stops_lower_than_a_paused_one_starts() {
        let ceilings = [150_000, 500_000, 1_700_000];
        // 650k below and 15 % of 1.7M = 905k keeps it; 40 % = 1.33M starts it.
        assert_eq!(layers_that_fit(1_200_000, &ceilings, 2), 2, "paused: stays");
        assert_eq!(
            layers_that_fit(1_200_000, &ceilings, 3),
            3,
            "sending: stays"
        );
        assert_eq!(
            layers_that_fit(800_000, &ceilings, 3),
            2,
            "too little: stops"
        );
        // The same for the middle layer: 150k + 75k keeps it, 150k + 200k starts it.
        assert_eq!(layers_that_fit(300_000, &ceilings, 1), 1);
        assert_eq!(layers_that_fit(300_000, &ceilings, 2), 2);
        assert_eq!(layers_that_fit(200_000, &ceilings, 2), 1);
    }
}

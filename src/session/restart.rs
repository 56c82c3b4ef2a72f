//! `--restart-pipeline`: a pipeline that fails (or a live source that ends) is rebuilt and
//! started again, with backoff, while the room connection stays.
//!
//! Tracks wait through the restart. An output of the new pipeline with the same element, pad
//! and codec as a waiting track takes that track over (no unpublish; its first frame is a
//! keyframe); one with another codec ends the old track and becomes a new one. Tracks whose
//! output has not come back [`OUTPUTS_BACK`] after the restart are unpublished. Attempts are
//! spaced like reconnects and bounded by the reconnect timeout; a pipeline that runs again
//! until all its outputs are back resets the count.

use std::time::{Duration, Instant};

use super::held::Kept;
use super::timers::Timer;
use super::tracks::TrackState;
use super::{reconnect_delay, Action, Session};
use crate::error::Error;
use crate::media::{MediaKind, Output, OutputId};

/// How long after a restart the outputs have to come back.
pub const OUTPUTS_BACK: Duration = Duration::from_secs(15);

/// A restart in progress.
#[derive(Debug, Clone)]
pub(crate) struct Restart {
    /// When the pipeline first failed.
    since: Instant,
    attempts: u32,
}

impl Session {
    /// The pipeline failed or its live source ended: restart it, or give up.
    pub(super) fn pipeline_down(&mut self, why: &str) {
        let restart = self.restart.get_or_insert(Restart {
            since: self.now,
            attempts: 0,
        });
        restart.attempts += 1;
        let (attempts, since) = (restart.attempts, restart.since);
        let elapsed = self.now.duration_since(since);
        if elapsed >= self.config.reconnect_timeout {
            self.pipeline_stopped = true;
            self.leave(Err(Error::Runtime(format!(
                "gave up restarting the pipeline after {attempts} attempt(s) in {:.0} s: {why}",
                elapsed.as_secs_f64()
            ))));
            return;
        }
        let delay = reconnect_delay(attempts - 1).max(Duration::from_millis(200));
        tracing::warn!(
            "{why}; restarting the pipeline in {:.1} s (attempt {attempts})",
            delay.as_secs_f64()
        );
        for track in self.pubs.tracks.values_mut() {
            if track.state != TrackState::Ended {
                track.restarting = true;
            }
        }
        self.timers.stop(Timer::OutputsBack);
        self.timers.set(Timer::PipelineRestart, self.now + delay);
    }

    pub(super) fn restart_pipeline(&mut self) {
        if matches!(
            self.phase,
            super::connection::Phase::Leaving | super::connection::Phase::Done
        ) {
            return;
        }
        self.actions.push_back(Action::RestartPipeline);
        self.clock.restart();
        self.timers.set(Timer::OutputsBack, self.now + OUTPUTS_BACK);
    }

    /// An output of a restarted pipeline: takes over the waiting track of the same element,
    /// pad and codec; in another codec it is published anew and the old track ends. Returns
    /// the output back when it has nothing to do with a waiting track.
    pub(super) fn output_back(&mut self, output: Output) -> Option<Output> {
        let waiting = self.pubs.tracks.iter().find_map(|(id, t)| {
            (t.restarting && t.output.element == output.element && t.output.pad == output.pad)
                .then_some(*id)
        });
        let Some(old) = waiting else {
            return Some(output);
        };
        let same_codec = self.pubs.tracks[&old].output.codec == output.codec;
        if !same_codec {
            tracing::info!(
                "{}.{} came back as {}: its track is published anew",
                output.element,
                output.pad,
                output.codec
            );
            if let Some(t) = self.pubs.tracks.get_mut(&old) {
                t.restarting = false;
            }
            // The new track first, so that ending the old one never looks like the end of all.
            self.add_track(output);
            self.end_track(old);
            return None;
        }
        let mut track = self.pubs.tracks.remove(&old).expect("found just above");
        self.forget_target(old);
        let id = output.id;
        track.output = output;
        track.restarting = false;
        track.awaiting_keyframe = track.output.kind() == MediaKind::Video
            && matches!(track.state, TrackState::Live { .. });
        // Frames kept for a first viewer were the old output's (the driver lets them go):
        // the new one keeps its own from its first keyframe on.
        if let Some(kept) = track.first_viewer.kept_mut() {
            *kept = Kept::default();
        }
        self.pubs.tracks.insert(id, track);
        self.actions
            .push_back(Action::TrackResumed { old, output: id });
        tracing::info!("{} is back after the restart", self.pubs.element_of(id));
        self.request_keyframe(id, true);
        if !self.pubs.tracks.values().any(|t| t.restarting) {
            tracing::info!("the pipeline runs again");
            self.restart = None;
            self.timers.stop(Timer::OutputsBack);
        }
        self.reallocate();
        None
    }

    /// The outputs that did not come back after a restart are unpublished.
    pub(super) fn outputs_back_deadline(&mut self) {
        let gone: Vec<OutputId> = self
            .pubs
            .tracks
            .iter()
            .filter(|(_, t)| t.restarting)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            tracing::warn!(
                "{} did not come back after the restart; its track is unpublished",
                self.pubs.element_of(id)
            );
            if let Some(t) = self.pubs.tracks.get_mut(&id) {
                t.restarting = false;
            }
            self.end_track(id);
        }
        self.restart = None;
    }
}

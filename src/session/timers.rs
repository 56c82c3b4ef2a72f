//! Every timer of the session in one table, after quinn-proto's `TimerTable`.
//!
//! A [`Timer`] names what the deadline is for; the table holds at most one deadline per timer.
//! The session reads its next wake-up from here ([`TimerTable::next`]) and, when time has
//! come, takes the timers that expired ([`TimerTable::expired`]). Nothing else in the session
//! holds a deadline.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::media::OutputId;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// The current connection attempt must be answered (join or reconnect response) by then.
    Connect,
    /// The next reconnect attempt starts.
    Retry,
    /// `--delay` is over: announce the tracks.
    Publish,
    /// Send the next ping.
    Ping,
    /// No message from the server since `ping_timeout`: the link is dead.
    Silence,
    /// Publisher ICE has been disconnected too long: media is lost.
    MediaLost,
    /// The offer in flight has had no answer for too long.
    Answer,
    /// The server has not confirmed this output's AddTrackRequest.
    TrackConfirm(OutputId),
    /// This live video output has not produced its first keyframe yet: ask again.
    KeyframeRetry(OutputId),
    /// Send the frames kept for this output's first viewer (see `held`).
    SendKept(OutputId),
    /// Restart the failed pipeline (`--restart-pipeline`).
    PipelineRestart,
    /// The outputs of a restarted pipeline must be back by then.
    OutputsBack,
    /// Something waits for room (an output below its ceiling, a simulcast layer some viewer
    /// wants): ask the estimator to probe the link.
    Probe,
    /// The start of a connection's probing is over (see
    /// [`START_RAMP`](super::burst::START_RAMP)).
    StartRamp,
    /// This output that cannot adapt has sent more than the link holds for
    /// [`RIGID_WARN_AFTER`](super::bitrate::RIGID_WARN_AFTER): say so.
    RigidOver(OutputId),
}

/// At most one deadline per [`Timer`].
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    at: BTreeMap<Timer, Instant>,
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at.insert(timer, at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at.remove(&timer);
    }

    pub(crate) fn is_set(&self, timer: Timer) -> bool {
        self.at.contains_key(&timer)
    }

    /// Stops every timer `keep` says no to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(Timer) -> bool) {
        self.at.retain(|t, _| keep(*t));
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.values().min().copied()
    }

    /// Removes and returns the earliest timer whose deadline is at or before `now`. Taken one
    /// at a time, so that a timer stopped while handling another never fires.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (timer, _) = self
            .at
            .iter()
            .filter(|(_, at)| **at <= now)
            .min_by_key(|(t, at)| (**at, **t))?;
        let timer = *timer;
        self.at.remove(&timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_table_gives_the_earliest_deadline_and_hands_out_what_expired_in_order() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Ping, ms(500));
        t.set(Timer::Silence, ms(300));
        t.set(Timer::KeyframeRetry(OutputId(1)), ms(100));
        t.set(Timer::Ping, ms(200)); // re-armed: one deadline per timer
        assert_eq!(t.next(), Some(ms(100)));
        assert_eq!(
            t.pop_expired(ms(250)),
            Some(Timer::KeyframeRetry(OutputId(1)))
        );
        assert_eq!(t.pop_expired(ms(250)), Some(Timer::Ping));
        assert_eq!(t.next(), Some(ms(300)));
        assert_eq!(t.pop_expired(ms(250)), None);
        t.retain(|timer| timer != Timer::Silence);
        assert_eq!(t.next(), None);
    }
}

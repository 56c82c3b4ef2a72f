//! The publisher's events to its reader: none is ever dropped but statistics, which are
//! coalesced. A keyframe request, a new target bitrate, a source to stop or restart or a
//! track that ended must reach the application however slowly it reads (a lost keyframe
//! request is a viewer that never gets a picture); of the statistics only the last unread
//! one matters, so while one waits unread the next are skipped and memory stays bounded by
//! what the room asks for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Event;

/// The engine's end.
#[derive(Debug)]
pub(super) struct EventSender {
    tx: mpsc::UnboundedSender<Event>,
    /// A statistics event was sent and not read yet.
    stats_unread: Arc<AtomicBool>,
}

/// The reader's end.
#[derive(Debug)]
pub(super) struct EventReceiver {
    rx: mpsc::UnboundedReceiver<Event>,
    stats_unread: Arc<AtomicBool>,
}

pub(super) fn channel() -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stats_unread = Arc::new(AtomicBool::new(false));
    (
        EventSender {
            tx,
            stats_unread: Arc::clone(&stats_unread),
        },
        EventReceiver { rx, stats_unread },
    )
}

impl EventSender {
    /// Sends `event`, unless it is an interval's statistics and the last ones are still unread
    /// (the totals at the end always go). Nobody reading any more is not an error.
    pub(super) fn send(&self, event: Event) {
        if matches!(event, Event::Stats { last: false, .. })
            && self.stats_unread.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let _ = self.tx.send(event);
    }
}

impl EventReceiver {
    pub(super) async fn recv(&mut self) -> Option<Event> {
        let event = self.rx.recv().await;
        self.read(event)
    }

    pub(super) fn try_recv(&mut self) -> Option<Event> {
        let event = self.rx.try_recv().ok();
        self.read(event)
    }

    fn read(&self, event: Option<Event>) -> Option<Event> {
        if matches!(event, Some(Event::Stats { last: false, .. })) {
            self.stats_unread.store(false, Ordering::Release);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::TrackId;

    fn stats(last: bool) -> Event {
        Event::Stats {
            report: Box::default(),
            last,
        }
    }

    #[test]
    fn events_that_matter_are_kept_however_many_wait_and_statistics_are_coalesced() {
        let (tx, mut rx) = channel();
        for _ in 0..10_000 {
            tx.send(Event::KeyframeRequested { track: TrackId(1) });
            tx.send(stats(false));
        }
        tx.send(Event::RestartSource);
        tx.send(stats(true));
        let mut keyframes = 0;
        let mut interval_stats = 0;
        let mut seen = Vec::new();
        while let Some(e) = rx.try_recv() {
            match e {
                Event::KeyframeRequested { .. } => keyframes += 1,
                Event::Stats { last: false, .. } => interval_stats += 1,
                other => seen.push(format!("{other:?}").chars().take(20).collect::<String>()),
            }
        }
        assert_eq!(keyframes, 10_000, "no keyframe request is lost");
        assert_eq!(interval_stats, 1, "one unread statistics event at a time");
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].starts_with("RestartSource") && seen[1].starts_with("Stats"));
    }

    #[test]
    fn statistics_flow_again_once_read() {
        let (tx, mut rx) = channel();
        tx.send(stats(false));
        tx.send(stats(false));
        assert!(matches!(rx.try_recv(), Some(Event::Stats { .. })));
        assert!(rx.try_recv().is_none());
        tx.send(stats(false));
        assert!(matches!(rx.try_recv(), Some(Event::Stats { .. })));
    }
}

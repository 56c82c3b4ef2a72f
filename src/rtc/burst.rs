//! Frames that go out at once: the session marks a video frame that the estimate carries
//! within `BURST_TIME` as a burst (see `session::bitrate`), and the driver sends it without
//! str0m's pacer. str0m sends an unpaced stream's packets as soon as they are queued (audio
//! is unpaced by default): the stream is unpaced for the one drain that sends the frame, then
//! paced again, so its later padding and probes keep their pacing (padding a probe queued on
//! that stream just then goes out with the burst).

use str0m::media::{Mid, Rid};
use str0m::Rtc;

/// Pace (`false`) or unpace (`true`) the send stream of `mid` (`rid`), if it exists.
pub(super) fn set_unpaced(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>, unpaced: bool) {
    if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, rid) {
        stream.set_unpaced(unpaced);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::{Duration, Instant};

    use str0m::media::MediaTime;
    use str0m::net::Transmit;
    use str0m::{Event, Input, Output};

    use super::*;
    use crate::rtc::memcall::{pair, Side};

    /// RTP packets of the sender (not RTCP, STUN or DTLS): version 2, payload type 96-127.
    fn is_media(t: &Transmit) -> bool {
        let p = &t.contents;
        p.len() > 12 && p[0] >> 6 == 2 && (96..128).contains(&(p[1] & 0x7f))
    }

    /// Writes one 60 kB frame once the call is up, `burst` or not as the driver does (the
    /// stream unpaced, the time fed for as long as something is due, then paced again), and
    /// returns how long its media packets took to leave, first to last.
    fn spread_of_one_large_frame(burst: bool) -> Duration {
        let start = Instant::now();
        let (mut tx, mut rx, mid, pt) = pair(start);
        let mut wire: VecDeque<(bool, Transmit)> = VecDeque::new();
        let mut now = start;
        let mut connected = false;
        let mut sent: Vec<Instant> = Vec::new();
        let mut written = false;
        while now < start + Duration::from_secs(10) {
            let mut outs = Vec::new();
            tx.step(now, |o| outs.push((now, o)));
            rx.step(now, |o| {
                if let Output::Transmit(t) = o {
                    wire.push_back((false, t))
                }
            });
            if connected && !written && now >= start + Duration::from_secs(1) {
                // A second into the call: the estimator has had its first feedback.
                if burst {
                    set_unpaced(&mut tx.rtc, mid, None, true);
                }
                let data = vec![0x10; 60_000];
                tx.rtc
                    .writer(mid)
                    .expect("a writer")
                    .write(pt, now, MediaTime::from_90khz(90_000), data)
                    .expect("written");
                written = true;
                if burst {
                    outs.extend(drain_at(&mut tx, now));
                    set_unpaced(&mut tx.rtc, mid, None, false);
                }
            }
            for (at, o) in outs {
                match o {
                    Output::Transmit(t) => {
                        if written && is_media(&t) {
                            sent.push(at);
                        }
                        wire.push_back((true, t));
                    }
                    Output::Event(Event::Connected) => connected = true,
                    _ => {}
                }
            }
            while let Some((to_rx, t)) = wire.pop_front() {
                let side: &mut Side = if to_rx { &mut rx } else { &mut tx };
                side.receive(now, &t);
            }
            if sent.len() >= 50 {
                break;
            }
            now = tx
                .timeout
                .min(rx.timeout)
                .max(now + Duration::from_micros(100));
        }
        assert!(sent.len() >= 50, "{} media packets sent", sent.len());
        sent[sent.len() - 1] - sent[0]
    }

    /// The driver's drain: while str0m's next timeout has come, feed it the time, each round
    /// a microsecond later (as the real clock moves while the driver works); the outputs with
    /// the time each came at.
    fn drain_at(side: &mut Side, mut now: Instant) -> Vec<(Instant, Output)> {
        let mut outs = Vec::new();
        for _ in 0..512 {
            side.step(now, |o| outs.push((now, o)));
            if side.timeout > now + Duration::from_micros(1) {
                break;
            }
            now = side.timeout.max(now);
            side.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        }
        outs
    }

    #[test]
    fn an_unpaced_frame_leaves_at_once_and_a_paced_one_is_spread() {
        // 60 kB at str0m's pacing of 1.1 × the estimate (near its 1 Mbit/s start) takes
        // hundreds of milliseconds (measured: 382 ms); unpaced, every packet leaves in the
        // one drain, a microsecond apart.
        let paced = spread_of_one_large_frame(false);
        let burst = spread_of_one_large_frame(true);
        eprintln!("60 kB frame: paced over {paced:?}, as a burst over {burst:?}");
        assert!(paced >= Duration::from_millis(100), "paced over {paced:?}");
        assert!(
            burst < Duration::from_millis(1),
            "a burst spread over {burst:?}"
        );
    }
}

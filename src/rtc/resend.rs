//! How the send streams answer NACKs: str0m's resend cache, with a cap on resends that
//! lets a lossy link be repaired.

use std::time::Duration;

use str0m::media::{Mid, Rid};
use str0m::Rtc;

use crate::media::MediaKind;

/// How long a sent packet stays in the resend cache (str0m's default).
const RTX_CACHE_AGE: Duration = Duration::from_secs(3);

/// Resends stop while they are more than this share of a stream's bytes over the last
/// second (str0m clears the queued ones). str0m's default, 0.15, is reached at about 7 %
/// loss each way: in the network lab at 12 % it cleared resends 24-67 times in 15 s, each
/// packet left unrepaired froze the viewer until its decoder asked for a keyframe (3.1 s,
/// libwebrtc's wait for a frame), and it decoded 28-71 % of the frames. With the cap at 0.5
/// none of 8 runs at 10 % froze and 98-100 % of the frames were decoded. At 0.5 resends may
/// match the media's bytes, as libwebrtc's limit on them (the send rate) allows; a receiver
/// that asks for everything still cannot starve the media.
const RTX_RATIO_CAP: f32 = 0.5;

/// A send stream an offer adds: its mid, its rid (simulcast), its kind.
pub(super) type NewStream = (Mid, Option<Rid>, MediaKind);

/// Give the streams an answer just made their resend cache: `packets` (audio, video) as
/// str0m's configuration has it, [`RTX_CACHE_AGE`] and [`RTX_RATIO_CAP`]. Only for new
/// streams, before their first packet: str0m replaces the cache and what it held.
pub(super) fn configure(rtc: &mut Rtc, streams: Vec<NewStream>, packets: (usize, usize)) {
    for (mid, rid, kind) in streams {
        let size = match kind {
            MediaKind::Audio => packets.0,
            MediaKind::Video => packets.1,
        };
        if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, rid) {
            stream.set_rtx_cache(size, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Instant;

    use str0m::media::MediaTime;
    use str0m::{Event, Output};

    use super::*;
    use crate::rtc::memcall::pair;

    /// A datagram on its way: when it arrives, and to which side (`true`: the receiver).
    type InFlight = (Instant, bool, str0m::net::Transmit);

    /// A tiny generator (xorshift): `seed` picks the loss pattern.
    struct Dice(u64);
    impl Dice {
        fn lost(&mut self, percent: u64) -> bool {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % 100 < percent
        }
    }

    /// Frames of 2.4 kB (a few packets each) at 30 fps for `seconds`, from a sender built as
    /// the publisher builds its own (our codecs, the estimator on) to a plain str0m
    /// receiver, `loss` % of the datagrams lost each way once both are connected and 10 ms
    /// of delay, `seed` choosing which. Returns (frames written, frames the receiver
    /// assembled).
    fn call(loss: u64, seconds: u64, configure_resends: bool, seed: u64) -> (usize, usize) {
        let start = Instant::now();
        let (mut tx, mut rx, mid, pt) = pair(start);
        if configure_resends {
            let config = crate::rtc::rtc_config();
            let packets = (config.send_buffer_audio(), config.send_buffer_video());
            configure(&mut tx.rtc, vec![(mid, None, MediaKind::Video)], packets);
        }

        let mut dice = Dice(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut wire: VecDeque<InFlight> = VecDeque::new();
        let mut now = start;
        let mut connected = false;
        let mut media_from = None;
        let (mut written, mut assembled) = (0, 0);
        let frame = Duration::from_micros(33_333);
        let mut next_frame = start;
        let end = start + Duration::from_secs(seconds + 5);
        while now < end {
            // Each side: what is due, then everything it has to say.
            for (is_rx, side) in [(false, &mut tx), (true, &mut rx)] {
                side.step(now, |o| match o {
                    Output::Transmit(t) if !(connected && dice.lost(loss)) => {
                        wire.push_back((now + Duration::from_millis(10), !is_rx, t));
                    }
                    Output::Event(Event::Connected) => connected = true,
                    Output::Event(Event::MediaData(_)) if is_rx => assembled += 1,
                    _ => {}
                });
            }
            // Frames, from the moment the call is up, for `seconds`.
            if connected && now >= next_frame {
                let from = *media_from.get_or_insert(now);
                if now < from + Duration::from_secs(seconds) {
                    let rtp_time = MediaTime::from_90khz(90 * written as u64 * 1000 / 30);
                    let data = vec![0x10; 2400];
                    tx.rtc
                        .writer(mid)
                        .expect("a writer")
                        .write(pt, now, rtp_time, data)
                        .expect("written");
                    written += 1;
                }
                next_frame = now + frame;
            }
            // Whatever arrives now.
            while wire.front().is_some_and(|(at, _, _)| *at <= now) {
                let (_, to_rx, t) = wire.pop_front().expect("a datagram");
                let side = if to_rx { &mut rx } else { &mut tx };
                side.receive(now, &t);
            }
            // On to the next thing due.
            let mut next = tx.timeout.min(rx.timeout).min(end);
            if connected {
                next = next.min(next_frame);
            }
            if let Some((at, _, _)) = wire.front() {
                next = next.min(*at);
            }
            now = next.max(now + Duration::from_micros(100));
        }
        (written, assembled)
    }

    /// Frames lost for good over four calls (four loss patterns) at `loss` % each way.
    fn lost_over_four_calls(loss: u64, configure_resends: bool) -> usize {
        (1..=4u64)
            .map(|k| {
                let (written, assembled) = call(loss, 10, configure_resends, k);
                assert!(written >= 300, "{written} frames written");
                written - assembled
            })
            .sum()
    }

    #[test]
    fn ten_percent_loss_each_way_is_repaired_frame_for_frame() {
        // Measured: 0 or 1 lost with our cap (the same count over 40 runs in a row, another
        // at another time); with str0m's default (0.15) 13 of the 1204 frames were lost,
        // its cap clearing resends the receiver had asked for. The calls are not bit-for-bit
        // the same (str0m's own randomness and clock), hence the margins.
        let ours = lost_over_four_calls(10, true);
        let default = lost_over_four_calls(10, false);
        eprintln!("frames lost for good: {ours} with our cap, {default} with str0m's");
        assert!(ours <= 2, "{ours} frames lost for good");
        assert!(
            default > ours + 4,
            "the calls do not tell the caps apart: {default} lost with str0m's"
        );
    }
}

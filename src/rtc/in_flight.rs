//! Frames in flight: which frames written to str0m have not wholly gone to the socket yet,
//! per SSRC. When a frame's last packet goes, its time from the pipeline to the socket is
//! known (the statistics' latency), and a stream with a frame still in the pacer does not
//! burst (see `burst`).

use std::time::Instant;

/// Frames one SSRC may have in flight before the oldest is forgotten (a frame str0m never sent
/// must not shift the figures for good).
const MAX_IN_FLIGHT: usize = 256;

/// The header fields of an RTP packet as it goes to the socket (SRTP leaves the header in the
/// clear); `None` for anything else (RTCP, DTLS, STUN).
#[derive(Debug, Clone, Copy)]
pub(super) struct RtpHeader {
    pub ssrc: u32,
    pub seq: u16,
    pub pt: u8,
    pub marker: bool,
}

impl RtpHeader {
    pub(super) fn read(p: &[u8]) -> Option<RtpHeader> {
        // RTP version 2 and not RTCP (packet types 192-223: 64-95 without the marker bit).
        if p.len() < 12 || p[0] >> 6 != 2 || (64..96).contains(&(p[1] & 0x7f)) {
            return None;
        }
        Some(RtpHeader {
            ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            seq: u16::from_be_bytes([p[2], p[3]]),
            pt: p[1] & 0x7f,
            marker: p[1] & 0x80 != 0,
        })
    }
}

/// Frames written to str0m whose last packet has not gone to the socket yet, per SSRC: when
/// the last one goes, the frame's time from the pipeline to the socket is known.
#[derive(Default)]
pub(super) struct FramesInFlight(Vec<InFlight>);

struct InFlight {
    ssrc: u32,
    /// Every packet ends a frame (Opus); otherwise the marker bit does.
    per_packet: bool,
    /// The newest sequence number sent: a resend on the same SSRC is not newer.
    newest: Option<u16>,
    /// When the pipeline handed each frame over, oldest first.
    handed: std::collections::VecDeque<Instant>,
}

impl FramesInFlight {
    /// A frame of `ssrc`, handed over at `handed`, was written.
    pub(super) fn written(&mut self, ssrc: u32, per_packet: bool, handed: Instant) {
        let i = match self.0.iter().position(|f| f.ssrc == ssrc) {
            Some(i) => i,
            None => {
                self.0.push(InFlight {
                    ssrc,
                    per_packet,
                    newest: None,
                    handed: Default::default(),
                });
                self.0.len() - 1
            }
        };
        let f = &mut self.0[i];
        if f.handed.len() == MAX_IN_FLIGHT {
            f.handed.pop_front();
        }
        f.handed.push_back(handed);
    }

    /// Some frame of `ssrc` was written and not wholly sent: it waits in the pacer.
    pub(super) fn waiting(&self, ssrc: u32) -> bool {
        self.0
            .iter()
            .any(|f| f.ssrc == ssrc && !f.handed.is_empty())
    }

    /// An RTP packet went to the socket: when it ends a frame in flight, when that frame was
    /// handed over.
    pub(super) fn sent(&mut self, rtp: RtpHeader) -> Option<Instant> {
        let f = self.0.iter_mut().find(|f| f.ssrc == rtp.ssrc)?;
        if f.newest
            .is_some_and(|n| rtp.seq.wrapping_sub(n) as i16 <= 0)
        {
            return None; // a resend
        }
        f.newest = Some(rtp.seq);
        if f.per_packet || rtp.marker {
            f.handed.pop_front()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An RTP packet: version 2, payload type 102 (or with the marker bit), `seq`, `ssrc`.
    fn packet(ssrc: u32, seq: u16, marker: bool) -> Vec<u8> {
        let mut p = vec![0x80, 102 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        p
    }

    fn rtp(ssrc: u32, seq: u16, marker: bool) -> RtpHeader {
        RtpHeader::read(&packet(ssrc, seq, marker)).expect("an RTP packet")
    }

    #[test]
    fn a_stream_waits_while_a_frame_of_it_is_not_wholly_sent() {
        let t0 = Instant::now();
        let mut f = FramesInFlight::default();
        assert!(!f.waiting(7));
        f.written(7, false, t0);
        f.written(9, true, t0);
        assert!(f.waiting(7) && f.waiting(9));
        f.sent(rtp(7, 1, false));
        assert!(f.waiting(7), "its last packet is still queued");
        f.sent(rtp(7, 2, true));
        assert!(!f.waiting(7));
        f.sent(rtp(9, 1, false));
        assert!(!f.waiting(9), "audio: every packet ends a frame");
    }

    #[test]
    fn a_frame_is_out_with_its_last_packet() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(33);
        let mut f = FramesInFlight::default();
        f.written(7, false, t0);
        f.written(7, false, t1);
        f.written(9, true, t1);
        // Video: the first frame's packets, the last with the marker bit.
        assert_eq!(f.sent(rtp(7, 1, false)), None);
        assert_eq!(f.sent(rtp(7, 2, false)), None);
        assert_eq!(f.sent(rtp(7, 3, true)), Some(t0));
        // A resend of an earlier packet on the same SSRC ends nothing.
        assert_eq!(f.sent(rtp(7, 3, true)), None);
        // Opus: every packet is a frame; unknown SSRCs (RTX) and RTCP are not frames.
        assert_eq!(f.sent(rtp(5, 1, true)), None);
        let mut rtcp = packet(9, 1, false);
        rtcp[1] = 200; // a sender report
        assert!(RtpHeader::read(&rtcp).is_none());
        assert_eq!(f.sent(rtp(9, 1, false)), Some(t1));
        assert_eq!(f.sent(rtp(7, 4, true)), Some(t1));
        assert_eq!(f.sent(rtp(7, 5, true)), None, "nothing left in flight");
        // Sequence numbers wrap.
        f.written(7, false, t0);
        assert_eq!(f.sent(rtp(7, u16::MAX, true)), None, "older than 5");
        f.written(11, false, t0);
        assert_eq!(f.sent(rtp(11, u16::MAX, false)), None);
        assert_eq!(f.sent(rtp(11, 0, true)), Some(t0));
    }

    #[test]
    fn frames_never_sent_are_forgotten_after_a_bound() {
        let t0 = Instant::now();
        let mut f = FramesInFlight::default();
        for k in 0..(MAX_IN_FLIGHT as u64 + 10) {
            f.written(7, true, t0 + Duration::from_millis(k));
        }
        assert_eq!(
            f.sent(rtp(7, 1, false)),
            Some(t0 + Duration::from_millis(10)),
            "the 10 oldest were dropped"
        );
    }
}

//! An in-memory call for the driver's tests: a sender built as the publisher builds its own
//! (our codecs, the estimator on) and a plain str0m receiver, with one VP8 send section. No
//! network: the tests hand the datagrams from one side to the other, with the delays and
//! losses they choose, and pass the time themselves.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, MediaKind as RtcKind, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Input, Output, Rtc};

/// One side of the call: its `Rtc`, its address (never on a network), and its next timeout.
pub(super) struct Side {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub timeout: Instant,
}

impl Side {
    /// Feed the time if it is due, then hand every output to `out` until str0m waits.
    pub fn step(&mut self, now: Instant, mut out: impl FnMut(Output)) {
        if self.timeout <= now {
            self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        }
        loop {
            match self.rtc.poll_output().expect("poll") {
                Output::Timeout(t) => {
                    self.timeout = t;
                    break;
                }
                o => out(o),
            }
        }
    }

    /// A datagram from the other side arrives.
    pub fn receive(&mut self, now: Instant, t: &Transmit) {
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: t.source,
                destination: t.destination,
                contents: (&t.contents[..]).try_into().expect("a datagram"),
            },
        );
        self.rtc.handle_input(input).expect("received");
    }
}

/// The sender (the publisher's configuration, its estimator starting at `START_ESTIMATE`),
/// the receiver, the send section's mid and its VP8 payload type; not connected yet.
pub(super) fn pair(start: Instant) -> (Side, Side, Mid, Pt) {
    let config = crate::rtc::rtc_config().enable_bwe(Some(str0m::bwe::Bitrate::bps(
        crate::session::START_ESTIMATE,
    )));
    let mut tx = Side {
        rtc: config.build(start),
        addr: (Ipv4Addr::new(10, 0, 0, 1), 1000).into(),
        timeout: start,
    };
    let mut rx = Side {
        rtc: Rtc::builder().build(start),
        addr: (Ipv4Addr::new(10, 0, 0, 2), 2000).into(),
        timeout: start,
    };
    for side in [&mut tx, &mut rx] {
        let c = Candidate::host(side.addr, "udp").expect("a host candidate");
        side.rtc.add_local_candidate(c);
    }
    let mut api = tx.rtc.sdp_api();
    let mid = api.add_media(RtcKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().expect("an offer");
    let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).expect("parses");
    let answer = rx.rtc.sdp_api().accept_offer(offer).expect("an answer");
    tx.rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("answer accepted");
    let pt = tx
        .rtc
        .writer(mid)
        .expect("a writer")
        .payload_params()
        .find(|p| p.spec().codec == RtcCodec::Vp8)
        .map(|p| p.pt())
        .expect("VP8 negotiated");
    (tx, rx, mid, pt)
}

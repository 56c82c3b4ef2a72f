//! Congestion control in the core: the estimator is asked to probe while the link holds an
//! output back.

use super::*;
use crate::session::bitrate::USABLE;

/// One live H.264 output from an encoder set to 4 Mbit/s, whose first frame has gone out.
fn live_4m(h: &mut Harness) {
    live_4m_unsent(h);
    h.keyframe_out(0);
}

/// The start of the connection's probing is over (see `START_RAMP`).
fn past_start(h: &mut Harness) {
    h.at(crate::session::burst::START_RAMP.as_millis() as u64);
    h.feed(Input::Timeout);
}

/// One live H.264 output from an encoder set to 4 Mbit/s, no frame sent yet.
fn live_4m_unsent(h: &mut Harness) {
    live_outputs(h, vec![encoder(0, 4_000_000)]);
}

/// An H.264 output from an encoder set to `bps`.
pub(super) fn encoder(id: u32, bps: u64) -> Output {
    let mut o = output(id, Codec::H264);
    o.format.adaptable = true;
    o.format.encoder_bitrate = Some(bps);
    o
}

/// A pre-encoded H.264 output (a file, a camera's own encoder): no encoder to adapt.
pub(super) fn pre_encoded(id: u32) -> Output {
    let mut o = output(id, Codec::H264);
    o.element = format!("h264parse{id}");
    o.format.keyframes_on_request = false;
    o
}

/// A pre-encoded VP8 output: no encoder to adapt, and no frames kept for a first viewer
/// (that is H.264's, see `held`).
fn pre_encoded_vp8(id: u32) -> Output {
    let mut o = pre_encoded(id);
    o.codec = Codec::Vp8;
    o
}

/// Joined, `outputs` published on mids "1", "2", … and the publisher connected.
pub(super) fn live_outputs(h: &mut Harness, outputs: Vec<Output>) {
    h.join();
    h.offer_created(&[]);
    h.answer(1);
    let cids = add_outputs(h, outputs);
    publish_and_connect(h, &cids);
}

/// The pipeline found `outputs`: their tracks' cids, as announced.
pub(super) fn add_outputs(h: &mut Harness, outputs: Vec<Output>) -> Vec<String> {
    let mut cids = Vec::new();
    for o in outputs {
        cids.extend(add_track_cids(
            &h.feed(Input::Pipeline(PipelineEvent::OutputAdded(o))),
        ));
    }
    cids
}

/// The tracks `cids` published on mids "1", "2", … and the publisher connected; the actions
/// of the connection.
pub(super) fn publish_and_connect(h: &mut Harness, cids: &[String]) -> Vec<Action> {
    let mids: Vec<String> = (1..=cids.len()).map(|m| m.to_string()).collect();
    for (k, cid) in cids.iter().enumerate() {
        h.published(cid, &format!("TR_{k}"));
    }
    let sections: Vec<(&str, &str)> = cids
        .iter()
        .zip(&mids)
        .map(|(c, m)| (c.as_str(), m.as_str()))
        .collect();
    h.offer_created(&sections);
    h.answer(2);
    h.feed(Input::Connected(Pc::Publisher))
}

#[test]
fn an_output_held_below_its_ceiling_has_the_estimator_probe_every_5_s() {
    let mut h = Harness::new();
    live_4m(&mut h);
    let base = 4_705_882; // 4M / 0.85
    let estimate =
        |h: &mut Harness, bps: u64| h.feed(Input::BandwidthEstimate { bps, sent: vec![] });
    h.at(1_000);
    assert!(desired(&estimate(&mut h, 1_500_000)).is_none());
    h.at(4_900);
    assert!(desired(&h.feed(Input::Timeout)).is_none(), "not yet");
    h.at(200);
    assert_eq!(desired(&h.feed(Input::Timeout)), Some(base + 1));
    h.at(5_000);
    assert_eq!(desired(&h.feed(Input::Timeout)), Some(base + 2));
    // The link carries the ceiling: no more probing.
    let a = estimate(&mut h, 6_000_000);
    assert!(
        a.contains(&Action::SetBitrate {
            output: OutputId(0),
            bps: 4_000_000,
            share: 4_000_000
        }),
        "{a:?}"
    );
    assert_eq!(desired(&a), Some(base), "{a:?}");
    h.at(6_000);
    assert!(desired(&h.feed(Input::Timeout)).is_none());
}

#[test]
fn the_estimator_gets_its_bounds_once_a_video_frame_went_out() {
    // str0m probes as soon as it has bounds, padding on the stream that sent last; before
    // any has sent, its padding carries a payload type the server drops.
    let mut h = Harness::new();
    live_4m_unsent(&mut h);
    let a = h.feed(Input::BandwidthEstimate {
        bps: 1_500_000,
        sent: vec![],
    });
    assert!(desired(&a).is_none(), "no frame sent yet: {a:?}");
    assert!(
        desired(&h.keyframe_out(0)).is_some(),
        "the first frame brings the bounds"
    );
    assert!(desired(&h.keyframe_out(0)).is_none(), "once");
    // A new publisher connection has a new estimator: held again until its first frame.
    h.feed(Input::IceDisconnected(Pc::Publisher));
    h.feed(Input::SignalClosed("reset".into()));
    assert_eq!(connect_of(&h.feed(Input::Timeout)), Some(None));
    let cid = add_track_cids(&h.join()).pop().expect("published again");
    h.offer_created(&[]);
    h.answer(1);
    h.published(&cid, "TR_V2");
    h.offer_created(&[(&cid, "1")]);
    h.answer(2);
    let a = h.feed(Input::Connected(Pc::Publisher));
    assert!(desired(&a).is_none(), "{a:?}");
    assert!(desired(&h.keyframe_out(0)).is_some());
}

#[test]
fn an_output_that_cannot_adapt_is_measured_before_the_estimator_gets_its_bounds() {
    // str0m's initial probes come once, with the first bounds, and never above twice the
    // desired rate: a pre-encoded stream's rate must be in it by then.
    let mut h = Harness::new();
    // VP8: an H.264 stream would keep its frames for the first viewer (see `held`).
    live_outputs(&mut h, vec![pre_encoded_vp8(0)]);
    // 30 kB frames 33 ms apart: 16 of them span 0.495 s of media, short of the 0.5 s.
    let frame = |h: &mut Harness, k: u64| {
        let now = h.at(33);
        let routed =
            h.s.route_frame(
                now,
                OutputId(0),
                Duration::from_millis(1_000 + 33 * k),
                k == 0,
                30_000,
            )
            .route;
        assert!(routed.is_some(), "frame {k} goes out");
        std::iter::from_fn(|| h.s.poll_action()).collect::<Vec<_>>()
    };
    for k in 0..16 {
        let a = frame(&mut h, k);
        assert!(desired(&a).is_none(), "frame {k}: no rate yet: {a:?}");
    }
    // The 17th: 17 × 30 kB over 0.528 s is 7.73 Mbit/s, asked for with the usual headroom.
    let got = desired(&frame(&mut h, 16)).expect("bounds once measured");
    let want = 17.0 * 30_000.0 * 8.0 / 0.528 / USABLE;
    assert!(
        (got as f64 - want).abs() < want * 0.01,
        "desired {got}, want {want}"
    );
    // The statistics' measurement takes over once there is one.
    let a = h.feed(Input::BandwidthEstimate {
        bps: 9_000_000,
        sent: vec![(OutputId(0), 6_000_000)],
    });
    assert_eq!(desired(&a), Some((6_000_000.0 / USABLE) as u64), "{a:?}");
}

#[test]
fn an_output_that_cannot_adapt_and_sends_nothing_holds_nothing_back() {
    // An encoder's output and a pre-encoded one that has not sent (a camera not up yet):
    // the encoder's first frame gives the estimator its bounds as usual.
    let mut h = Harness::new();
    live_outputs(&mut h, vec![encoder(0, 2_000_000), pre_encoded(1)]);
    let a = h.keyframe_out(0);
    assert_eq!(
        desired(&a),
        Some((2_000_000.0 / USABLE) as u64),
        "bounds from the encoder's first frame: {a:?}"
    );
}

/// The actions report `output` as more than the link holds.
fn reported_over(actions: &[Action], output: u32) -> bool {
    actions.contains(&Action::CannotAdapt {
        output: OutputId(output),
    })
}

#[test]
fn an_output_that_cannot_adapt_is_reported_once_the_link_stays_below_it_for_10_s() {
    let mut h = Harness::new();
    live_outputs(&mut h, vec![pre_encoded_vp8(0)]);
    let estimate = |h: &mut Harness, bps: u64| {
        h.feed(Input::BandwidthEstimate {
            bps,
            sent: vec![(OutputId(0), 8_000_000)],
        })
    };
    // An 8 Mbit/s file on a good link: the estimate starts low and climbs past it within
    // seconds. The starting value is no reason to report anything.
    assert!(!reported_over(&estimate(&mut h, 1_000_000), 0));
    h.at(4_000);
    assert!(!reported_over(&estimate(&mut h, 6_000_000), 0));
    h.at(4_000);
    assert!(!reported_over(&estimate(&mut h, 12_000_000), 0));
    // Then the link shrinks to 3 Mbit/s and stays there: 10 s from now, not from the first
    // estimate, it has lasted long enough.
    h.at(1_000);
    assert!(!reported_over(&estimate(&mut h, 3_000_000), 0));
    h.at(2_000);
    assert!(!reported_over(&h.feed(Input::Timeout), 0), "not yet");
    h.at(5_000);
    // (The server answers pings meanwhile, or the session would call the link dead at 15 s.)
    h.feed(Input::Signal(Resp::PongResp(proto::Pong::default())));
    assert!(!reported_over(&estimate(&mut h, 3_100_000), 0), "not yet");
    h.at(2_800);
    assert!(!reported_over(&h.feed(Input::Timeout), 0), "not yet");
    h.at(200);
    assert!(reported_over(&h.feed(Input::Timeout), 0), "10 s below it");
    // Once only.
    h.at(1_000);
    h.feed(Input::Signal(Resp::PongResp(proto::Pong::default())));
    assert!(!reported_over(&estimate(&mut h, 2_000_000), 0));
    h.at(12_000);
    assert!(!reported_over(&h.feed(Input::Timeout), 0));
}

#[test]
fn an_output_that_cannot_adapt_is_not_reported_when_it_ends_within_10_s() {
    let mut h = Harness::new();
    // With another output, so that the session goes on when this one ends.
    live_outputs(&mut h, vec![pre_encoded_vp8(0), encoder(1, 2_000_000)]);
    let a = h.feed(Input::BandwidthEstimate {
        bps: 1_000_000,
        sent: vec![(OutputId(0), 8_000_000)],
    });
    assert!(!reported_over(&a, 0), "{a:?}");
    h.at(1_000);
    h.feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(0))));
    h.at(12_000);
    let a = h.feed(Input::Timeout);
    assert!(!reported_over(&a, 0), "{a:?}");
}

/// A frame of `output` with `bytes`, routed now: does it burst?
fn bursts(h: &mut Harness, output: u32, keyframe: bool, bytes: usize) -> bool {
    let now = h.now;
    let fate = h.s.route_frame(
        now,
        OutputId(output),
        Duration::from_millis(40),
        keyframe,
        bytes,
    );
    fate.route.expect("the output is live").burst
}

#[test]
fn a_video_frame_the_estimate_carries_within_100_ms_bursts_and_a_larger_one_is_paced() {
    use crate::session::burst::{bursts as rule, BURST_TIME};
    assert_eq!(BURST_TIME, Duration::from_millis(100));
    // 5 Mbit/s carries 500 kbit (62.5 kB) in 100 ms.
    assert!(rule(500_000, Some(5_000_000)));
    assert!(!rule(500_008, Some(5_000_000)));
    assert!(!rule(8, None), "no estimate yet: paced");

    let mut h = Harness::new();
    live_4m(&mut h);
    assert!(!bursts(&mut h, 0, false, 10_000), "no estimate yet");
    h.feed(Input::BandwidthEstimate {
        bps: 5_000_000,
        sent: vec![],
    });
    assert!(bursts(&mut h, 0, false, 62_500));
    assert!(
        !bursts(&mut h, 0, true, 62_501),
        "a frame over 100 ms of the estimate waits"
    );
}

#[test]
fn audio_never_bursts() {
    let mut h = Harness::new();
    live_outputs(&mut h, vec![encoder(0, 4_000_000), output(1, Codec::Opus)]);
    h.keyframe_out(0);
    h.feed(Input::BandwidthEstimate {
        bps: 50_000_000,
        sent: vec![],
    });
    assert!(
        !bursts(&mut h, 1, false, 100),
        "audio keeps str0m's own pacing"
    );
    assert!(bursts(&mut h, 0, false, 10_000));
}

#[test]
fn the_estimator_probes_for_room_to_burst_the_keyframes_in_steps_of_twice_the_estimate() {
    // A 400 kB keyframe bursts once the estimate carries it within 100 ms: 32 Mbit/s. The
    // estimator is asked for twice that (room to spare), at most twice its estimate at a time
    // (it probes up to twice its desired rate), at most 100 Mbit/s.
    let mut h = Harness::new();
    live_4m(&mut h);
    past_start(&mut h);
    let media = 4_705_882; // 4M / 0.85
    h.feed(Input::BandwidthEstimate {
        bps: 5_000_000,
        sent: vec![],
    });
    let limits = |h: &Harness| h.s.congestion_limits.expect("the estimator has bounds").1;
    let estimate = |h: &mut Harness, bps: u64| {
        h.feed(Input::BandwidthEstimate { bps, sent: vec![] });
    };
    assert_eq!(limits(&h), media, "a 1 kB keyframe needs no more");
    h.at(1_000);
    bursts(&mut h, 0, true, 400_000);
    assert_eq!(
        limits(&h),
        10_000_000,
        "twice the estimate, on the way to 64 Mbit/s"
    );
    estimate(&mut h, 14_000_000);
    assert_eq!(limits(&h), 28_000_000);
    estimate(&mut h, 30_000_000);
    assert_eq!(limits(&h), 60_000_000);
    estimate(&mut h, 33_000_000);
    assert_eq!(
        limits(&h),
        60_000_000,
        "64 is within a quarter of 60: not asked again"
    );
    // A keyframe twice the size asks for twice the room, up to 100 Mbit/s.
    bursts(&mut h, 0, true, 800_000);
    estimate(&mut h, 60_000_000);
    assert_eq!(limits(&h), 100_000_000);
    // Small keyframes lower it slowly (each keeps 80 % of the largest), never below the
    // media's own need.
    for _ in 0..30 {
        bursts(&mut h, 0, true, 1_000);
    }
    assert_eq!(limits(&h), media, "back to the media's need");
    // Once the estimate carries it, a large keyframe bursts.
    estimate(&mut h, 70_000_000);
    assert!(bursts(&mut h, 0, true, 800_000));
    assert!(
        !bursts(&mut h, 0, true, 900_000),
        "7.2 Mbit is more than 100 ms of 70 Mbit/s"
    );
}

#[test]
fn at_the_start_the_estimator_is_asked_for_the_whole_room_to_burst_the_keyframes() {
    // For the first 3 s of a connection's video, str0m's own start (probes at 3 and 6 times
    // its starting value, then twice its estimate after each that found room) may run up to
    // the room that bursts the keyframes, whatever the estimate says yet.
    let mut h = Harness::new();
    live_4m_unsent(&mut h);
    let media = 4_705_882; // 4M / 0.85
    let limits = |h: &Harness| h.s.congestion_limits.expect("the estimator has bounds").1;
    // The first frame is a 100 kB keyframe: 8 Mbit/s bursts it in 100 ms, asked twice over.
    let now = h.at(1);
    let routed =
        h.s.route_frame(now, OutputId(0), Duration::from_millis(10), true, 100_000)
            .route;
    assert!(routed.is_some());
    let a: Vec<Action> = std::iter::from_fn(|| h.s.poll_action()).collect();
    assert_eq!(desired(&a), Some(16_000_000), "{a:?}");
    // A low estimate does not take it back within the start.
    h.feed(Input::BandwidthEstimate {
        bps: 1_000_000,
        sent: vec![],
    });
    assert_eq!(limits(&h), 16_000_000);
    h.at(2_900);
    h.feed(Input::Timeout);
    assert_eq!(limits(&h), 16_000_000, "still the start");
    // After it, a link that does not carry the media is not probed for bursts...
    h.at(200);
    let a = h.feed(Input::Timeout);
    assert_eq!(desired(&a), Some(media), "{a:?}");
    // ...and one that does is asked in steps of twice its estimate.
    h.feed(Input::BandwidthEstimate {
        bps: 6_000_000,
        sent: vec![],
    });
    assert_eq!(limits(&h), 12_000_000);
}

#[test]
fn a_new_connection_starts_its_estimator_with_the_whole_room_again() {
    let mut h = Harness::new();
    live_4m(&mut h);
    let now = h.at(1);
    h.s.route_frame(now, OutputId(0), Duration::from_millis(20), true, 100_000);
    past_start(&mut h);
    assert!(!h.s.congestion.ramping);
    // The media path is lost: a new connection, a new estimator.
    h.feed(Input::IceDisconnected(Pc::Publisher));
    let a = h.feed(Input::SignalClosed("reset".into()));
    assert!(a.contains(&Action::Disconnect), "{a:?}");
    assert!(!h.s.congestion.ramping && !h.s.congestion.video_sent);
    // Its first video frame starts the ramp again, with the keyframes it remembers.
    h.s.video_goes_out();
    assert!(h.s.congestion.ramping);
    assert_eq!(
        h.s.congestion_limits.map(|l| l.1),
        Some(16_000_000),
        "the whole room again"
    );
}

#[test]
fn the_room_asked_for_bursts_is_capped() {
    use crate::session::burst::{burst_rate, MAX_BURST_DESIRED};
    assert_eq!(
        burst_rate([200_000u64 * 8, 100_000 * 8].into_iter()),
        24_000_000
    );
    assert_eq!(
        burst_rate([10_000_000u64 * 8].into_iter()),
        MAX_BURST_DESIRED
    );
}

#[test]
fn a_link_below_the_media_keeps_the_pacer_and_is_not_probed_for_bursts() {
    let mut h = Harness::new();
    live_4m(&mut h);
    past_start(&mut h);
    let media = 4_705_882; // 4M / 0.85
    h.feed(Input::BandwidthEstimate {
        bps: 3_000_000,
        sent: vec![],
    });
    assert!(
        !bursts(&mut h, 0, false, 1_000),
        "the link holds the encoder below its ceiling"
    );
    assert!(!bursts(&mut h, 0, true, 200_000));
    let limits = |h: &Harness| h.s.congestion_limits.expect("the estimator has bounds").1;
    assert_eq!(limits(&h), media, "no probing for burst room");
    // The link grows to carry the media: bursts, and the room for the keyframe is asked for
    // (twice the estimate at a time).
    h.feed(Input::BandwidthEstimate {
        bps: 5_000_000,
        sent: vec![],
    });
    assert_eq!(limits(&h), 10_000_000);
    assert!(bursts(&mut h, 0, false, 60_000));
    // It shrinks again: back to the media's need, paced.
    h.feed(Input::BandwidthEstimate {
        bps: 2_000_000,
        sent: vec![],
    });
    assert_eq!(limits(&h), media);
    assert!(!bursts(&mut h, 0, false, 1_000));
}

//! Frames kept for the first viewer of a stream that cannot make keyframes.

use super::congestion::{add_outputs, encoder, live_outputs, pre_encoded, publish_and_connect};
use super::*;
use crate::session::frames::Fate;
use crate::session::held::{Keep, SEND_KEPT_AFTER};

/// A frame of output 0 at media time `ms`.
fn frame(h: &mut Harness, ms: u64, keyframe: bool) -> Fate {
    let now = h.at(33);
    h.s.route_frame(
        now,
        OutputId(0),
        Duration::from_millis(ms),
        keyframe,
        10_000,
    )
}

fn kept_routes(actions: &[Action]) -> Option<&Vec<Route>> {
    actions.iter().find_map(|a| match a {
        Action::SendKept { output, routes } if *output == OutputId(0) => Some(routes),
        _ => None,
    })
}

fn viewer_asks(h: &mut Harness) -> Vec<Action> {
    h.feed(Input::KeyframeRequest {
        mid: mid("1"),
        rid: None,
    })
}

/// The first viewer asks: nothing at once (no encoder is asked either), the kept frames
/// [`SEND_KEPT_AFTER`] later. The actions then.
fn first_viewer(h: &mut Harness) -> Vec<Action> {
    let a = viewer_asks(h);
    assert!(kept_routes(&a).is_none(), "not at once: {a:?}");
    assert!(
        !a.contains(&Action::RequestKeyframe(OutputId(0))),
        "served from what is kept: {a:?}"
    );
    timeout_after(h, SEND_KEPT_AFTER)
}

fn timeout_after(h: &mut Harness, after: Duration) -> Vec<Action> {
    h.at(after.as_millis() as u64);
    h.feed(Input::Timeout)
}

#[test]
fn the_first_viewer_of_a_stream_without_keyframes_on_request_gets_the_kept_frames() {
    let mut h = Harness::new();
    live_outputs(&mut h, vec![pre_encoded(0)]);
    let a = std::iter::from_fn(|| h.s.poll_action()).collect::<Vec<_>>();
    assert!(kept_routes(&a).is_none());
    // Before anyone watches: the frames are kept, from the keyframe on, and each sends
    // a placeholder one tick before the keyframe instead (the server must
    // see the stream, and never a timestamp newer than the kept frames'). Media time starts
    // 1 ms in (90 ticks): the keyframe's time is 90_090.
    let key = frame(&mut h, 1_000, true);
    assert_eq!(key.keep, Keep::First);
    assert!(key.placeholder);
    assert!(
        key.with_parameter_sets,
        "the first placeholder carries the parameter sets (the server stops asking for a keyframe on its own)"
    );
    assert_eq!(key.route.map(|r| r.rtp_time), Some(90_089));
    for k in 1..=3 {
        let f = frame(&mut h, 1_000 + 33 * k, false);
        assert_eq!(f.keep, Keep::Next);
        assert!(f.placeholder && !f.with_parameter_sets, "frame {k}");
        assert_eq!(f.route.map(|r| r.rtp_time), Some(90_089), "frame {k}");
    }
    // The first viewer asks for a keyframe: the kept frames go out a little later (with
    // those that came meanwhile), keyframe first, at their own media times.
    let a = viewer_asks(&mut h);
    assert!(kept_routes(&a).is_none(), "not at once: {a:?}");
    assert!(!a.contains(&Action::RequestKeyframe(OutputId(0))), "{a:?}");
    let f = frame(&mut h, 1_132, false);
    assert_eq!(
        (f.keep, f.placeholder),
        (Keep::Next, true),
        "kept meanwhile"
    );
    let a = viewer_asks(&mut h);
    assert!(
        kept_routes(&a).is_none() && !a.contains(&Action::RequestKeyframe(OutputId(0))),
        "asked again before they went out: {a:?}"
    );
    let a = timeout_after(&mut h, SEND_KEPT_AFTER);
    let routes = kept_routes(&a).unwrap_or_else(|| panic!("kept frames sent: {a:?}"));
    let times: Vec<u64> = routes.iter().map(|r| r.rtp_time).collect();
    assert_eq!(times, vec![90_090, 93_060, 96_030, 99_000, 101_970]);
    assert!(routes.iter().all(|r| r.mid == mid("1") && r.rid.is_none()));
    // From then on, frames go out as they come and nothing is kept.
    let f = frame(&mut h, 1_165, false);
    assert_eq!((f.keep, f.placeholder), (Keep::Nothing, false));
    assert_eq!(f.route.map(|r| r.rtp_time), Some(104_940));
    let f = frame(&mut h, 3_000, true);
    assert_eq!((f.keep, f.placeholder), (Keep::Nothing, false));
    assert!(f.route.is_some());
    // A later viewer's request cannot be served so (the frames would show again to the
    // first): it goes to the encoder, which the statistics count as unserved.
    h.at(1_000);
    let a = viewer_asks(&mut h);
    assert!(kept_routes(&a).is_none(), "{a:?}");
    assert!(a.contains(&Action::RequestKeyframe(OutputId(0))), "{a:?}");
}

#[test]
fn frames_from_before_the_track_is_live_are_kept_for_the_first_viewer() {
    // A file's first keyframe comes at once, often before its track is live.
    let mut h = Harness::new();
    h.join();
    h.offer_created(&[]);
    h.answer(1);
    let cids = add_outputs(&mut h, vec![pre_encoded(0)]);
    let key = frame(&mut h, 0, true);
    assert_eq!((key.keep, key.route.is_none()), (Keep::First, true));
    let f = frame(&mut h, 33, false);
    assert_eq!(
        (f.keep, f.route.is_none()),
        (Keep::Next, true),
        "kept, not sent: not live yet"
    );
    publish_and_connect(&mut h, &cids);
    let f = frame(&mut h, 66, false);
    assert!(f.with_parameter_sets, "the first one sent");
    assert_eq!(
        (f.keep, f.route.map(|r| r.rtp_time)),
        (Keep::Next, Some(89)),
        "live now: a placeholder, a tick before the keyframe (media time starts at 1 ms)"
    );
    let a = first_viewer(&mut h);
    let routes = kept_routes(&a).unwrap_or_else(|| panic!("kept frames sent: {a:?}"));
    let times: Vec<u64> = routes.iter().map(|r| r.rtp_time).collect();
    assert_eq!(times, vec![90, 3_060, 6_030]);
}

#[test]
fn a_new_connection_awaits_a_first_viewer_again() {
    let mut h = Harness::new();
    live_outputs(&mut h, vec![pre_encoded(0)]);
    frame(&mut h, 0, true);
    assert!(kept_routes(&first_viewer(&mut h)).is_some());
    assert_eq!(frame(&mut h, 2_000, true).keep, Keep::Nothing, "served");
    // The connection is lost for good and made anew: viewers subscribe again.
    h.s.pubs.start_over();
    assert_eq!(frame(&mut h, 4_000, true).keep, Keep::First);
    // Its next publication's first placeholder carries the parameter sets again.
    assert_eq!(
        h.s.pubs.tracks[&OutputId(0)].parameter_sets,
        crate::session::held::ParameterSets::default()
    );
}

#[test]
fn an_encoder_output_keeps_nothing() {
    let mut h = Harness::new();
    live_outputs(&mut h, vec![encoder(0, 2_000_000)]);
    let key = frame(&mut h, 0, true);
    assert_eq!((key.keep, key.placeholder), (Keep::Nothing, false));
    assert!(key.route.is_some());
    let a = viewer_asks(&mut h);
    assert!(kept_routes(&a).is_none());
}

#[test]
fn past_its_bounds_a_stream_goes_out_as_it_comes_until_its_next_keyframe() {
    use crate::session::held::KEEP_MAX_SPAN;
    let mut h = Harness::new();
    live_outputs(&mut h, vec![pre_encoded(0)]);
    assert_eq!(frame(&mut h, 0, true).keep, Keep::First);
    let span = KEEP_MAX_SPAN.as_millis() as u64;
    let f = frame(&mut h, span + 33, false);
    assert_eq!((f.keep, f.placeholder), (Keep::Nothing, false));
    assert!(f.route.is_some(), "sent as it comes");
    // Nobody asked while it was kept: a request now has nothing to be served from.
    let a = viewer_asks(&mut h);
    assert!(kept_routes(&a).is_none(), "{a:?}");
    assert!(a.contains(&Action::RequestKeyframe(OutputId(0))), "{a:?}");
}

#[test]
fn a_stream_in_another_codec_keeps_nothing() {
    let mut h = Harness::new();
    let mut vp8 = output(0, Codec::Vp8);
    vp8.format.keyframes_on_request = false;
    live_outputs(&mut h, vec![vp8]);
    let key = frame(&mut h, 0, true);
    assert_eq!((key.keep, key.placeholder), (Keep::Nothing, false));
    assert!(key.route.is_some());
}

#[test]
fn the_estimator_gets_its_bounds_with_the_kept_frames_not_with_placeholders() {
    // Its first probes are made of what the pacer holds: placeholders would teach it little.
    let mut h = Harness::new();
    live_outputs(&mut h, vec![pre_encoded(0)]);
    // 165 ms of media: short of the 0.5 s a stream that cannot adapt is measured over, but
    // its rate is wanted when the kept frames go out, and 100 ms will do then.
    for k in 0..6 {
        let now = h.at(33);
        let f = h.s.route_frame(
            now,
            OutputId(0),
            Duration::from_millis(33 * k),
            k == 0,
            30_000,
        );
        assert!(f.placeholder, "frame {k}");
        let a: Vec<Action> = std::iter::from_fn(|| h.s.poll_action()).collect();
        assert!(desired(&a).is_none(), "frame {k}: {a:?}");
    }
    let a = first_viewer(&mut h);
    let send = a
        .iter()
        .position(|x| matches!(x, Action::SendKept { .. }))
        .unwrap_or_else(|| panic!("{a:?}"));
    let bounds = a
        .iter()
        .position(|x| matches!(x, Action::SetBandwidthLimits { .. }))
        .unwrap_or_else(|| panic!("bounds with the kept frames: {a:?}"));
    assert!(send < bounds, "the kept frames first: {a:?}");
}

#[test]
fn a_restarted_pipeline_keeps_its_own_frames_not_the_old_ones() {
    let mut h = Harness::with(SessionConfig {
        restart_pipeline: true,
        reconnect_timeout: Duration::from_secs(30),
        ..SessionConfig::default()
    });
    live_outputs(&mut h, vec![pre_encoded(0)]);
    assert_eq!(frame(&mut h, 0, true).keep, Keep::First);
    assert_eq!(frame(&mut h, 33, false).keep, Keep::Next);
    h.feed(Input::Pipeline(PipelineEvent::Error(
        "rtspsrc0: lost".into(),
    )));
    h.at(300);
    assert!(h.feed(Input::Timeout).contains(&Action::RestartPipeline));
    let mut back = pre_encoded(0);
    back.id = OutputId(5);
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputAdded(back)));
    assert!(
        a.contains(&Action::TrackResumed {
            old: OutputId(0),
            output: OutputId(5)
        }),
        "{a:?}"
    );
    // The old output's frames are gone with it (the driver lets them go): nothing to send.
    // (Past the 500 ms that throttle requests: the resumed track asked for one itself.)
    h.at(600);
    let a = h.feed(Input::KeyframeRequest {
        mid: mid("1"),
        rid: None,
    });
    let a = [a, timeout_after(&mut h, SEND_KEPT_AFTER)].concat();
    assert!(
        !a.iter().any(|x| matches!(x, Action::SendKept { .. })),
        "{a:?}"
    );
    assert!(a.contains(&Action::RequestKeyframe(OutputId(5))), "{a:?}");
}

#[test]
fn a_stream_that_cannot_make_a_keyframe_is_not_asked_for_one_when_it_goes_live() {
    // Nobody asked: the request would only count as unserved.
    let mut h = Harness::new();
    h.join();
    h.offer_created(&[]);
    h.answer(1);
    let cids = add_outputs(&mut h, vec![pre_encoded(0), encoder(1, 1_000_000)]);
    let a = publish_and_connect(&mut h, &cids);
    let live = |id| {
        a.iter()
            .any(|x| matches!(x, Action::TrackLive { output, .. } if *output == OutputId(id)))
    };
    assert!(live(0) && live(1), "{a:?}");
    assert!(!a.contains(&Action::RequestKeyframe(OutputId(0))), "{a:?}");
    assert!(a.contains(&Action::RequestKeyframe(OutputId(1))), "{a:?}");
}

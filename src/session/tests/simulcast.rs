//! Simulcast in the core: one track from a group of outputs, layers paused and resumed.

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;

use super::*;

fn sized(id: u32, element: &str, codec: Codec, w: u32, h: u32) -> Output {
    let mut o = output(id, codec);
    o.element = element.into();
    o.format.width = Some(w);
    o.format.height = Some(h);
    o
}

/// `sized`, from an encoder that takes a target bitrate.
fn adaptable(id: u32, element: &str, w: u32, h: u32) -> Output {
    let mut o = sized(id, element, Codec::H264, w, h);
    o.format.adaptable = true;
    o
}

fn with_group() -> Harness {
    Harness::with(SessionConfig {
        simulcast: vec![SimulcastGroup {
            selectors: vec!["f".into(), "h".into(), "q".into()],
        }],
        ..SessionConfig::default()
    })
}

fn add(h: &mut Harness, o: Output) -> Vec<Action> {
    h.feed(Input::Pipeline(PipelineEvent::OutputAdded(o)))
}

/// A group of three (pre-encoded) brought live on mid 1.
fn live_group(h: &mut Harness) -> Vec<Action> {
    live_group_of(h, |id, element, w, h| sized(id, element, Codec::H264, w, h))
}

/// A group of three made by `make` brought live on mid 1.
fn live_group_of(h: &mut Harness, make: fn(u32, &str, u32, u32) -> Output) -> Vec<Action> {
    h.join();
    h.offer_created(&[]);
    h.answer(1);
    assert!(add_tracks(&add(h, make(0, "f", 1280, 720))).is_empty());
    assert!(
        add_tracks(&add(h, make(1, "h", 640, 360))).is_empty(),
        "waits for every layer"
    );
    let a = add(h, make(2, "q", 320, 180));
    let req = add_tracks(&a).pop().expect("one track for the group");
    let layers: Vec<(i32, u32)> = req.layers.iter().map(|l| (l.quality, l.width)).collect();
    assert_eq!(
        layers,
        vec![
            (proto::VideoQuality::Low as i32, 320),
            (proto::VideoQuality::Medium as i32, 640),
            (proto::VideoQuality::High as i32, 1280)
        ]
    );
    let a = h.published(&req.cid, "TR_S");
    let offer = offers(&a).pop().expect("an offer");
    assert_eq!(offer.add[0].rids, vec!["q", "h", "f"]);
    h.offer_created(&[(&req.cid, "1")]);
    h.answer(2);
    let mut a = h.feed(Input::Connected(Pc::Publisher));
    a.extend(h.keyframe_out(2));
    a
}

#[test]
fn a_group_is_one_track_with_a_layer_per_output() {
    let mut h = with_group();
    let a = live_group(&mut h);
    for id in [0, 1, 2] {
        assert!(a.contains(&Action::RequestKeyframe(OutputId(id))), "{a:?}");
    }
    let now = h.now;
    let route = |h: &mut Harness, id: u32, key: bool| {
        h.s.route_frame(now, OutputId(id), Duration::from_millis(10), key, 1000)
            .route
            .map(|r| (r.mid, r.rid))
    };
    assert_eq!(route(&mut h, 2, true), Some((mid("1"), Some("q"))));
    assert_eq!(route(&mut h, 1, true), Some((mid("1"), Some("h"))));
    assert_eq!(route(&mut h, 0, true), Some((mid("1"), Some("f"))));
    // A keyframe request for one layer goes to that layer's encoder only.
    h.at(600);
    let a = h.feed(Input::KeyframeRequest {
        mid: mid("1"),
        rid: Some("h".into()),
    });
    assert_eq!(
        a.iter()
            .filter(|x| matches!(x, Action::RequestKeyframe(_)))
            .collect::<Vec<_>>(),
        vec![&Action::RequestKeyframe(OutputId(1))]
    );
}

/// `SubscribedQualityUpdate` for the group's track: which of low, medium, high are wanted.
fn update(on: [bool; 3]) -> Input {
    let quality = |q: proto::VideoQuality, on: bool| proto::SubscribedQuality {
        quality: q as i32,
        enabled: on,
    };
    Input::Signal(Resp::SubscribedQualityUpdate(
        proto::SubscribedQualityUpdate {
            track_sid: "TR_S".into(),
            subscribed_codecs: vec![proto::SubscribedCodec {
                codec: "h264".into(),
                qualities: vec![
                    quality(proto::VideoQuality::Low, on[0]),
                    quality(proto::VideoQuality::Medium, on[1]),
                    quality(proto::VideoQuality::High, on[2]),
                ],
            }],
            ..Default::default()
        },
    ))
}

/// The `SetLayerActive` of output `id` among `a`, if any.
fn layer_change(a: &[Action], id: u32) -> Option<bool> {
    a.iter().find_map(|x| match x {
        Action::SetLayerActive { output, active } if *output == OutputId(id) => Some(*active),
        _ => None,
    })
}

#[test]
fn a_sending_layer_holds_through_a_dip_that_would_not_start_it() {
    // Ceilings (no encoder bitrates known): q and h 150 kbit/s, f 2.5 Mbit/s. f starts with
    // 300k + 40 % of 2.5M = 1.3M of media (85 % of the estimate), and stops below
    // 300k + 15 % = 675k.
    let mut h = with_group();
    live_group_of(&mut h, adaptable);
    h.at(1_000);
    let estimate =
        |h: &mut Harness, bps: u64| h.feed(Input::BandwidthEstimate { bps, sent: vec![] });
    let a = estimate(&mut h, 5_000_000);
    assert_eq!(
        layer_change(&a, 0),
        Some(true),
        "paused at the start (1 Mbit/s assumed), fits now: {a:?}"
    );
    let a = estimate(&mut h, 1_200_000);
    assert_eq!(layer_change(&a, 0), None, "sending, holds at 1.2M: {a:?}");
    assert!(
        a.contains(&Action::SetBitrate {
            output: OutputId(0),
            bps: 720_000,
            share: 720_000
        }),
        "at what is left: {a:?}"
    );
    // On for 10 s: its stop below is not a failed start (see the next test).
    h.at(10_000);
    let a = estimate(&mut h, 700_000);
    assert_eq!(layer_change(&a, 0), Some(false), "too little: {a:?}");
    let a = estimate(&mut h, 1_200_000);
    assert_eq!(
        layer_change(&a, 0),
        None,
        "paused, 1.2M does not start it: {a:?}"
    );
    let a = estimate(&mut h, 1_600_000);
    assert_eq!(layer_change(&a, 0), Some(true), "{a:?}");
    assert!(a.contains(&Action::RequestKeyframe(OutputId(0))), "{a:?}");
}

#[test]
fn a_layer_that_fails_to_start_waits_longer_each_time() {
    let mut h = with_group();
    live_group_of(&mut h, adaptable);
    let estimate =
        |h: &mut Harness, bps: u64| h.feed(Input::BandwidthEstimate { bps, sent: vec![] });
    let f = |a: &[Action]| layer_change(a, 0);
    // A probe finds room, then the link says no within 10 s: a failed start.
    assert_eq!(f(&estimate(&mut h, 2_000_000)), Some(true));
    h.at(2_000);
    assert_eq!(f(&estimate(&mut h, 700_000)), Some(false));
    // Room again: it waits 10 s.
    assert_eq!(f(&estimate(&mut h, 2_000_000)), None, "blocked");
    h.at(9_000);
    assert_eq!(f(&estimate(&mut h, 2_000_000)), None, "still blocked");
    h.at(1_000);
    assert_eq!(f(&estimate(&mut h, 2_000_000)), Some(true), "tried again");
    // Fails again: 20 s this time.
    h.at(1_000);
    assert_eq!(f(&estimate(&mut h, 700_000)), Some(false));
    h.at(15_000);
    assert_eq!(f(&estimate(&mut h, 2_000_000)), None, "blocked for 20 s");
    h.at(5_000);
    assert_eq!(f(&estimate(&mut h, 2_000_000)), Some(true));
    // It holds for 10 s: a later stop is not a failed start, and does not block it.
    h.at(11_000);
    assert_eq!(f(&estimate(&mut h, 2_000_000)), None);
    assert_eq!(f(&estimate(&mut h, 700_000)), Some(false));
    assert_eq!(f(&estimate(&mut h, 2_000_000)), Some(true), "not blocked");
    // A stop right after that start is a failed start again, with the wait back at 10 s.
    assert_eq!(f(&estimate(&mut h, 700_000)), Some(false));
    assert_eq!(f(&estimate(&mut h, 2_000_000)), None, "blocked");
    h.at(10_100);
    assert_eq!(f(&estimate(&mut h, 2_000_000)), Some(true));
}

#[test]
fn a_layer_waiting_for_room_has_the_estimator_probe_for_it() {
    let mut h = with_group();
    live_group_of(&mut h, adaptable);
    let base = 3_294_117; // every ceiling / 0.85
    h.at(1_000);
    let a = h.feed(Input::BandwidthEstimate {
        bps: 1_000_000,
        sent: vec![],
    });
    assert!(desired(&a).is_none(), "unchanged: {a:?}");
    // f waits; every 5 s the desired rate grows a little, which makes str0m probe.
    h.at(4_900);
    assert!(desired(&h.feed(Input::Timeout)).is_none(), "not yet");
    h.at(200);
    assert_eq!(desired(&h.feed(Input::Timeout)), Some(base + 1));
    h.at(5_000);
    assert_eq!(desired(&h.feed(Input::Timeout)), Some(base + 2));
    // Nobody wants f any more: no probing.
    let a = h.feed(update([true, true, false]));
    assert_eq!(desired(&a), Some(base), "{a:?}");
    h.at(6_000);
    assert!(desired(&h.feed(Input::Timeout)).is_none());
    // Wanted again, and the probe found room: on, and no more probing.
    let a = h.feed(update([true, true, true]));
    assert!(desired(&a).is_none(), "{a:?}");
    h.at(5_000);
    assert_eq!(desired(&h.feed(Input::Timeout)), Some(base + 1));
    let a = h.feed(Input::BandwidthEstimate {
        bps: 2_000_000,
        sent: vec![],
    });
    assert_eq!(layer_change(&a, 0), Some(true), "{a:?}");
    assert_eq!(desired(&a), Some(base), "{a:?}");
    h.at(6_000);
    assert!(desired(&h.feed(Input::Timeout)).is_none());
}

#[test]
fn layers_nobody_wants_pause_and_come_back_on_a_keyframe() {
    let mut h = with_group();
    live_group(&mut h);
    let now = h.now;
    for id in [0, 1, 2] {
        h.s.route_frame(now, OutputId(id), Duration::from_millis(10), true, 1000);
    }
    let a = h.feed(update([true, false, false]));
    assert!(
        a.contains(&Action::SetLayerActive {
            output: OutputId(0),
            active: false
        }),
        "{a:?}"
    );
    assert!(
        a.contains(&Action::SetLayerActive {
            output: OutputId(1),
            active: false
        }),
        "{a:?}"
    );
    assert!(!a.iter().any(|x| matches!(
        x,
        Action::SetLayerActive {
            output: OutputId(2),
            ..
        }
    )));
    let now = h.now;
    assert!(
        h.s.route_frame(now, OutputId(0), Duration::from_millis(10), true, 1000)
            .route
            .is_none(),
        "paused"
    );
    // Wanted again: on, from a keyframe.
    let a = h.feed(update([true, true, true]));
    assert!(
        a.contains(&Action::SetLayerActive {
            output: OutputId(0),
            active: true
        }),
        "{a:?}"
    );
    assert!(a.contains(&Action::RequestKeyframe(OutputId(0))), "{a:?}");
    let now = h.now;
    assert!(
        h.s.route_frame(now, OutputId(0), Duration::from_millis(10), false, 1000)
            .route
            .is_none(),
        "a keyframe first"
    );
    assert!(h
        .s
        .route_frame(now, OutputId(0), Duration::from_millis(10), true, 1000)
        .route
        .is_some());
}

#[test]
fn a_group_in_two_codecs_or_growing_sizes_is_an_error() {
    let mut h = with_group();
    h.join();
    add(&mut h, sized(0, "f", Codec::H264, 1280, 720));
    add(&mut h, sized(1, "h", Codec::Vp8, 640, 360));
    let a = add(&mut h, sized(2, "q", Codec::H264, 320, 180));
    let e = exit_of(&a).expect("ends").unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::PIPELINE);
    assert!(e.to_string().contains("different codecs"), "{e}");

    let mut h = with_group();
    h.join();
    add(&mut h, sized(0, "f", Codec::H264, 640, 360));
    add(&mut h, sized(1, "h", Codec::H264, 1280, 720));
    let a = add(&mut h, sized(2, "q", Codec::H264, 320, 180));
    let e = exit_of(&a).expect("ends").unwrap_err();
    assert!(
        e.to_string().contains("larger than the one before it"),
        "{e}"
    );
}

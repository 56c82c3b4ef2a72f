//! Tracks: frames, keyframes, per-track end, audio features.

use livekit_protocol as proto;
use proto::signal_request::Message as Req;

use super::*;

#[test]
fn frames_flow_only_when_live_and_video_waits_for_a_keyframe() {
    let mut h = Harness::new();
    assert!(h.route(0, true).is_none());
    let (_, mid) = live_video(&mut h);
    assert!(
        h.route(0, false).is_none(),
        "delta frame before the first keyframe"
    );
    assert_eq!(h.route(0, true), Some(mid));
    assert_eq!(h.route(0, false), Some(mid));
}

#[test]
fn track_ending_before_the_join_completes() {
    let mut h = Harness::new();
    h.added(0, Codec::H264);
    h.added(1, Codec::Opus);
    assert!(h
        .feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(0))))
        .iter()
        .all(|a| !matches!(a, Action::Exit(_))));
    let a = h.join();
    assert_eq!(
        add_track_cids(&a).len(),
        1,
        "only the output still running is announced"
    );
}

#[test]
fn track_ending_between_add_track_and_track_published() {
    let mut h = Harness::new();
    h.join();
    h.offer_created(&[]);
    h.answer(1);
    let c0 = add_track_cids(&h.added(0, Codec::H264)).pop().unwrap();
    h.added(1, Codec::Opus);
    h.feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(0))));
    let a = h.published(&c0, "TR_V");
    assert!(
        offers(&a).is_empty(),
        "an ended track gets no m-line: {a:?}"
    );
}

#[test]
fn one_track_ends_while_others_go_on() {
    let mut h = Harness::new();
    let (_, mid) = live_video(&mut h);
    let c1 = add_track_cids(&h.added(1, Codec::Opus)).pop().unwrap();
    h.published(&c1, "TR_A");
    h.offer_created(&[(&c1, "2")]);
    h.answer(3);
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(0))));
    let o = offers(&a);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].remove, vec![mid]);
    assert!(exit_of(&a).is_none(), "audio goes on");
    assert!(h.route(0, true).is_none());
    assert!(h.route(1, true).is_some());
    // The last one ends: leave, exit 0.
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(1))));
    assert!(sent_leave(&a));
    assert_eq!(exit_of(&a), Some(Ok(())));
}

#[test]
fn pipeline_eos_leaves_and_exits_zero_once() {
    let mut h = Harness::new();
    live_video(&mut h);
    let a = h.feed(Input::Pipeline(PipelineEvent::Eos));
    assert_eq!(
        a.iter()
            .filter(|x| matches!(x, Action::Signal(Req::Leave(_))))
            .count(),
        1
    );
    assert_eq!(exit_of(&a), Some(Ok(())));
    assert!(
        !a.contains(&Action::StopPipeline),
        "the pipeline already stopped itself"
    );
}

#[test]
fn pipeline_error_leaves_with_a_runtime_error() {
    let mut h = Harness::new();
    live_video(&mut h);
    let a = h.feed(Input::Pipeline(PipelineEvent::Error(
        "pipeline error from src: boom".into(),
    )));
    assert!(sent_leave(&a));
    assert_eq!(
        exit_of(&a).unwrap().unwrap_err().exit_code(),
        crate::error::exit::RUNTIME
    );
}

#[test]
fn keyframe_requests_are_rate_limited() {
    let mut h = Harness::new();
    let (_, mid) = live_video(&mut h);
    h.at(600);
    let count = |a: &[Action]| {
        a.iter()
            .filter(|x| matches!(x, Action::RequestKeyframe(_)))
            .count()
    };
    assert_eq!(count(&h.feed(Input::KeyframeRequest { mid, rid: None })), 1);
    assert_eq!(
        count(&h.feed(Input::KeyframeRequest { mid, rid: None })),
        0,
        "within 500 ms"
    );
    h.at(500);
    assert_eq!(count(&h.feed(Input::KeyframeRequest { mid, rid: None })), 1);
}

#[test]
fn opus_stereo_and_dtx_become_audio_features() {
    let mut h = Harness::new();
    h.join();
    let mut o = output(0, Codec::Opus);
    o.format.channels = Some(2);
    o.format.opus_dtx = Some(false);
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputAdded(o)));
    let req = add_tracks(&a).pop().unwrap();
    assert!(req
        .audio_features
        .contains(&(proto::AudioTrackFeature::TfStereo as i32)));
    assert!(req
        .audio_features
        .contains(&(proto::AudioTrackFeature::TfNoDtx as i32)));
    let mut o = output(1, Codec::Opus);
    o.format.opus_dtx = Some(true);
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputAdded(o)));
    let req = add_tracks(&a).pop().unwrap();
    assert!(
        req.audio_features.is_empty(),
        "mono with DTX: {:?}",
        req.audio_features
    );
    assert_eq!(req.r#type, proto::TrackType::Audio as i32);
}

#[test]
fn the_leave_goes_out_before_the_pipeline_is_stopped() {
    let mut h = Harness::new();
    live_video(&mut h);
    let a = h.feed(Input::Stop);
    let leave = a
        .iter()
        .position(|x| matches!(x, Action::Signal(Req::Leave(_))));
    let stop = a.iter().position(|x| *x == Action::StopPipeline);
    let exit = a.iter().position(|x| matches!(x, Action::Exit(_)));
    assert!(
        leave < stop && stop < exit && leave.is_some(),
        "leave, then stop, then exit: {a:?}"
    );
}

#[test]
fn a_stream_without_an_encoder_flows_at_once_one_with_an_encoder_starts_on_a_keyframe() {
    let mut h = Harness::new();
    h.join();
    h.offer_created(&[]);
    h.answer(1);
    let mut file = output(0, Codec::H264);
    file.format.keyframes_on_request = false;
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputAdded(file)));
    let c0 = add_track_cids(&a).pop().unwrap();
    let c1 = add_track_cids(&h.added(1, Codec::Vp8)).pop().unwrap();
    h.published(&c0, "TR_F");
    h.published(&c1, "TR_E");
    h.offer_created(&[(&c0, "1"), (&c1, "2")]);
    h.answer(2);
    h.feed(Input::Connected(Pc::Publisher));
    assert!(
        h.route(0, false).is_some(),
        "the file's deltas flow at once"
    );
    assert!(
        h.route(1, false).is_none(),
        "the encoder's wait for its keyframe"
    );
    assert!(h.route(1, true).is_some());
}

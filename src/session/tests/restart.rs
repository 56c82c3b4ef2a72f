//! `--restart-pipeline`: the room connection stays while the pipeline is rebuilt.

use std::time::Duration;

use livekit_protocol as proto;

use super::*;

fn restarting() -> Harness {
    Harness::with(SessionConfig {
        restart_pipeline: true,
        reconnect_timeout: Duration::from_secs(30),
        ..SessionConfig::default()
    })
}

fn output_as(id: u32, element: &str, codec: Codec) -> Output {
    let mut o = output(id, codec);
    o.element = element.into();
    o
}

#[test]
fn a_failed_pipeline_comes_back_on_the_same_track() {
    let mut h = restarting();
    live_video(&mut h);
    let a = h.feed(Input::Pipeline(PipelineEvent::Error(
        "rtspsrc0: connection lost".into(),
    )));
    assert!(exit_of(&a).is_none(), "stays in the room: {a:?}");
    assert!(!a.contains(&Action::StopPipeline));
    h.at(300);
    let a = h.feed(Input::Timeout);
    assert!(a.contains(&Action::RestartPipeline), "{a:?}");
    // The new pipeline's output: same element and codec, a new id.
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputAdded(output_as(
        5,
        "enc0",
        Codec::H264,
    ))));
    assert!(
        a.contains(&Action::TrackResumed {
            old: OutputId(0),
            output: OutputId(5)
        }),
        "{a:?}"
    );
    assert!(add_track_cids(&a).is_empty(), "no new publication: {a:?}");
    assert!(offers(&a).is_empty(), "no renegotiation: {a:?}");
    assert!(a.contains(&Action::RequestKeyframe(OutputId(5))));
    assert_eq!(h.route(5, false), None, "waits for a keyframe");
    assert_eq!(h.route(5, true), Some(mid("1")), "on the same section");
    assert_eq!(h.route(0, true), None, "the old output is gone");
}

#[test]
fn an_output_that_comes_back_in_another_codec_is_published_anew_and_a_missing_one_ends() {
    let mut h = restarting();
    live_video(&mut h);
    h.feed(Input::Pipeline(PipelineEvent::Error("boom".into())));
    h.at(300);
    h.feed(Input::Timeout);
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputAdded(output_as(
        5,
        "enc0",
        Codec::Vp8,
    ))));
    assert_eq!(add_track_cids(&a).len(), 1, "a new track: {a:?}");
    assert!(
        a.contains(&Action::TrackEnded {
            output: OutputId(0)
        }),
        "{a:?}"
    );

    // Nothing comes back at all: after the deadline the track is unpublished.
    let mut h = restarting();
    live_video(&mut h);
    h.feed(Input::Pipeline(PipelineEvent::Error("boom".into())));
    h.at(300);
    h.feed(Input::Timeout);
    // The server keeps talking meanwhile.
    let pong = || {
        Input::Signal(proto::signal_response::Message::PongResp(
            proto::Pong::default(),
        ))
    };
    h.at(8_000);
    h.feed(pong());
    h.at(7_000);
    let a = h.feed(pong());
    let a = [a, h.feed(Input::Timeout)].concat();
    assert!(
        a.contains(&Action::TrackEnded {
            output: OutputId(0)
        }),
        "{a:?}"
    );
}

#[test]
fn a_live_source_that_ends_is_restarted_but_a_file_that_ends_leaves() {
    let mut h = restarting();
    h.feed(Input::Pipeline(PipelineEvent::Started { live: true }));
    live_video(&mut h);
    let a = h.feed(Input::Pipeline(PipelineEvent::Eos));
    assert!(exit_of(&a).is_none(), "{a:?}");

    // A live output that ends (a camera that drops out) restarts too.
    let mut h = restarting();
    h.feed(Input::Pipeline(PipelineEvent::Started { live: true }));
    live_video(&mut h);
    let a = h.feed(Input::Pipeline(PipelineEvent::OutputEos(OutputId(0))));
    assert!(
        exit_of(&a).is_none()
            && !a.contains(&Action::TrackEnded {
                output: OutputId(0)
            }),
        "{a:?}"
    );

    let mut h = restarting();
    h.feed(Input::Pipeline(PipelineEvent::Started { live: false }));
    live_video(&mut h);
    let a = h.feed(Input::Pipeline(PipelineEvent::Eos));
    assert_eq!(exit_of(&a), Some(Ok(())), "the file's end is the end");
}

#[test]
fn restarts_give_up_after_the_reconnect_timeout() {
    let mut h = restarting();
    live_video(&mut h);
    let mut exit = None;
    for _ in 0..100 {
        let a = h.feed(Input::Pipeline(PipelineEvent::Error("no camera".into())));
        if let Some(e) = exit_of(&a) {
            exit = Some(e);
            break;
        }
        h.at(2_000);
        h.feed(Input::Timeout);
    }
    let e = exit.expect("gives up").unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::RUNTIME);
    assert!(
        e.to_string().contains("gave up restarting the pipeline"),
        "{e}"
    );
}

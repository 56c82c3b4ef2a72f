//! Joining, the negotiation and what goes out first.

use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;

use super::*;

#[test]
fn output_found_before_join_is_published_after_it() {
    let mut h = Harness::new();
    assert!(
        h.added(0, Codec::Vp8).is_empty(),
        "nothing goes out before the join"
    );
    let a = h.join();
    assert_eq!(add_track_cids(&a).len(), 1);
    let o = offers(&a);
    assert_eq!(o.len(), 1);
    assert!(o[0].data_channels && o[0].add.is_empty());
}

#[test]
fn one_offer_at_a_time_and_changes_wait_for_the_answer() {
    let mut h = Harness::new();
    h.join();
    h.offer_created(&[]);
    let c0 = add_track_cids(&h.added(0, Codec::H264)).pop().unwrap();
    let c1 = add_track_cids(&h.added(1, Codec::Opus)).pop().unwrap();
    // Both published while the first offer (data channels) is in flight: no new offer yet.
    assert!(offers(&h.published(&c0, "TR_V")).is_empty());
    assert!(offers(&h.published(&c1, "TR_A")).is_empty());
    let a = h.answer(1);
    let o = offers(&a);
    assert_eq!(o.len(), 1, "one offer carries both tracks: {a:?}");
    assert_eq!(added_cids(&o[0]), vec![c0, c1]);
}

#[test]
fn answer_for_an_offer_that_is_no_longer_current_is_ignored() {
    let mut h = Harness::new();
    h.join();
    h.offer_created(&[]);
    let a = h.answer(7);
    assert!(
        !a.iter().any(|x| matches!(x, Action::ApplyAnswer(_))),
        "{a:?}"
    );
    let a = h.answer(1);
    assert!(a.iter().any(|x| matches!(x, Action::ApplyAnswer(_))));
    // A duplicate of the same answer has no offer to match any more.
    let a = h.answer(1);
    assert!(!a.iter().any(|x| matches!(x, Action::ApplyAnswer(_))));
}

#[test]
fn remote_candidates_wait_for_the_remote_description() {
    let mut h = Harness::new();
    h.join();
    let trickle = |target: proto::SignalTarget| {
        Input::Signal(Resp::Trickle(proto::TrickleRequest {
            candidate_init: "{}".into(),
            target: target as i32,
            ..Default::default()
        }))
    };
    assert!(h.feed(trickle(proto::SignalTarget::Publisher)).is_empty());
    h.offer_created(&[]);
    let a = h.answer(1);
    let pos_answer = a
        .iter()
        .position(|x| matches!(x, Action::ApplyAnswer(_)))
        .unwrap();
    let pos_cand = a
        .iter()
        .position(|x| matches!(x, Action::AddRemoteCandidate(Pc::Publisher, _)))
        .unwrap();
    assert!(
        pos_answer < pos_cand,
        "candidates after the description: {a:?}"
    );
    assert_eq!(h.feed(trickle(proto::SignalTarget::Publisher)).len(), 1);
}

#[test]
fn stop_during_connect_exits_cleanly_without_a_leave() {
    let mut h = Harness::new();
    h.added(0, Codec::H264);
    let a = h.feed(Input::Stop);
    assert!(!sent_leave(&a));
    assert!(a.contains(&Action::StopPipeline));
    assert_eq!(exit_of(&a), Some(Ok(())));
    assert!(h.s.is_done());
    // A join arriving after the stop changes nothing.
    assert!(h.join().is_empty());
}

#[test]
fn stop_requested_twice_and_from_two_sources() {
    let mut h = Harness::new();
    live_video(&mut h);
    let a = h.feed(Input::Stop);
    assert!(sent_leave(&a));
    assert_eq!(exit_of(&a), Some(Ok(())));
    assert!(h.feed(Input::Stop).is_empty());
    assert!(h.feed(Input::Pipeline(PipelineEvent::Eos)).is_empty());
}

#[test]
fn delay_holds_publishing_but_not_joining() {
    let mut h = Harness::with(SessionConfig {
        publish_delay: Duration::from_secs(2),
        ..SessionConfig::default()
    });
    h.added(0, Codec::Vp8);
    let a = h.join();
    let joined_at = h.now;
    assert!(
        add_track_cids(&a).is_empty(),
        "nothing published during --delay: {a:?}"
    );
    assert_eq!(
        offers(&a).len(),
        1,
        "the connection itself is set up at once"
    );
    // No fixed tick: the next wake-up is exactly the end of the delay.
    assert_eq!(h.s.poll_timeout(), Some(joined_at + Duration::from_secs(2)));
    h.at(1_000);
    assert!(add_track_cids(&h.feed(Input::Timeout)).is_empty());
    h.at(1_100);
    assert_eq!(add_track_cids(&h.feed(Input::Timeout)).len(), 1);
}

#[test]
fn cids_are_fresh_per_publication() {
    let mut h = Harness::new();
    h.join();
    let a = add_track_cids(&h.added(0, Codec::H264));
    let b = add_track_cids(&h.added(1, Codec::H264));
    assert_ne!(a, b);
    assert!(a[0].starts_with("TR_"));
}

#[test]
fn add_track_refused_is_an_auth_error() {
    let mut h = Harness::new();
    h.join();
    let cid = add_track_cids(&h.added(0, Codec::H264)).pop().unwrap();
    let a = h.feed(Input::Signal(Resp::RequestResponse(
        proto::RequestResponse {
            reason: proto::request_response::Reason::NotAllowed as i32,
            request: Some(proto::request_response::Request::AddTrack(
                proto::AddTrackRequest {
                    cid,
                    ..Default::default()
                },
            )),
            ..Default::default()
        },
    )));
    let e = exit_of(&a).unwrap().unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::AUTH);
    assert!(e.to_string().contains("enc0"), "{e}");
}

#[test]
fn the_paths_are_configured_from_the_join_before_any_offer() {
    let mut h = Harness::with(SessionConfig::default());
    let a = h.feed(Input::Signal(Resp::Join(proto::JoinResponse {
        participant: Some(proto::ParticipantInfo {
            sid: "PA_1".into(),
            ..Default::default()
        }),
        ice_servers: vec![proto::IceServer {
            urls: vec![
                "turn:10.0.0.1:3478?transport=udp".into(),
                "turns:turn.example:443?transport=tcp".into(),
            ],
            username: "u".into(),
            credential: "c".into(),
        }],
        client_configuration: Some(proto::ClientConfiguration {
            force_relay: proto::ClientConfigSetting::Enabled as i32,
            ..Default::default()
        }),
        ..Default::default()
    })));
    let configured = a.iter().position(|x| matches!(x, Action::ConfigureIce(_)));
    let offered = a.iter().position(|x| matches!(x, Action::CreateOffer(_)));
    assert!(configured < offered && configured.is_some(), "{a:?}");
    let Some(Action::ConfigureIce(policy)) = configured.map(|i| a[i].clone()) else {
        unreachable!()
    };
    assert!(!policy.host, "the server forces the relay");
    assert_eq!(policy.relays.len(), 2);
}

#[test]
fn a_relay_candidate_found_after_the_offer_is_trickled_to_its_first_section() {
    let mut h = Harness::new();
    h.join();
    // Before any SDP there is no section to name: nothing goes out.
    let a = h.feed(Input::LocalCandidate {
        pc: Pc::Publisher,
        candidate: "candidate:1 1 udp 2 10.0.0.1 30000 typ relay".into(),
    });
    assert!(a.is_empty(), "{a:?}");
    h.feed(Input::OfferCreated {
        sdp: "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n".into(),
        mids: vec![],
    });
    let a = h.feed(Input::LocalCandidate {
        pc: Pc::Publisher,
        candidate: "candidate:1 1 udp 2 10.0.0.1 30000 typ relay".into(),
    });
    let trickle = a
        .iter()
        .find_map(|x| match x {
            Action::Signal(Req::Trickle(t)) => Some(t.clone()),
            _ => None,
        })
        .expect("trickled");
    assert_eq!(trickle.target, proto::SignalTarget::Publisher as i32);
    let init: serde_json::Value = serde_json::from_str(&trickle.candidate_init).unwrap();
    assert_eq!(init["sdpMid"], "0");
    assert!(init["candidate"].as_str().unwrap().contains("typ relay"));
}

//! Losing the link: resume, rejoin, backoff, giving up, keep-alive, the connect deadline.

use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;

use super::*;

#[test]
fn server_disconnect_is_a_removal_with_its_own_exit_code() {
    let mut h = Harness::new();
    live_video(&mut h);
    let a = h.feed(Input::Signal(Resp::Leave(proto::LeaveRequest {
        reason: proto::DisconnectReason::ParticipantRemoved as i32,
        action: proto::leave_request::Action::Disconnect as i32,
        ..Default::default()
    })));
    let e = exit_of(&a).unwrap().unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::REMOVED);
    assert!(e.to_string().contains("PARTICIPANT_REMOVED"), "{e}");
}

#[test]
fn signal_loss_during_a_negotiation_resumes_and_keeps_the_publications() {
    let mut h = Harness::new();
    let (cid0, _) = live_video(&mut h);
    let c1 = add_track_cids(&h.added(1, Codec::Opus)).pop().unwrap();
    h.published(&c1, "TR_A");
    h.offer_created(&[(&c1, "2")]);
    // The WebSocket drops while that offer is in flight; media is still up.
    let a = h.feed(Input::SignalClosed("reset".into()));
    assert!(a.contains(&Action::CloseSignal), "{a:?}");
    assert!(
        !a.contains(&Action::Disconnect),
        "the peer connections are kept: {a:?}"
    );
    assert!(exit_of(&a).is_none());
    // The answer that was in flight arrives late on the dead link: ignored.
    assert!(h.answer(3).is_empty());
    let a = h.feed(Input::Timeout);
    let resume = connect_of(&a).expect("connects").expect("as a resume");
    assert_eq!(resume.participant_sid, "PA_1");
    let a = h.feed(Input::Signal(Resp::Reconnect(
        proto::ReconnectResponse::default(),
    )));
    let sync = a
        .iter()
        .find_map(|x| match x {
            Action::Signal(Req::SyncState(s)) => Some(s.clone()),
            _ => None,
        })
        .expect("sync_state after the resume");
    let synced: Vec<&str> = sync.publish_tracks.iter().map(|t| t.cid.as_str()).collect();
    assert!(
        synced.contains(&cid0.as_str()),
        "the live track is kept: {synced:?}"
    );
    assert!(add_track_cids(&a).is_empty(), "no track is published again");
    let o = offers(&a);
    assert_eq!(
        o.len(),
        1,
        "the offer that lost its answer is made again: {a:?}"
    );
    assert_eq!(added_cids(&o[0]), vec![c1]);
    assert_eq!(h.route(0, true), Some(mid("1")), "video keeps flowing");
}

#[test]
fn a_refused_resume_becomes_a_full_rejoin_with_fresh_cids() {
    let mut h = Harness::new();
    let (old_cid, _) = live_video(&mut h);
    h.feed(Input::SignalClosed("reset".into()));
    h.feed(Input::Timeout);
    let a = h.feed(Input::SignalConnectFailed(unauthorized()));
    assert!(a.contains(&Action::Disconnect), "{a:?}");
    assert!(exit_of(&a).is_none());
    let a = h.feed(Input::Timeout);
    assert_eq!(connect_of(&a), Some(None), "a fresh join: {a:?}");
    assert!(
        h.route(0, true).is_none(),
        "frames are dropped while disconnected"
    );
    let a = h.join();
    let cids = add_track_cids(&a);
    assert_eq!(cids.len(), 1);
    assert_ne!(cids[0], old_cid, "fresh cid");
    assert!(offers(&a)[0].data_channels, "a new publisher connection");
}

#[test]
fn media_loss_skips_the_resume() {
    let mut h = Harness::new();
    live_video(&mut h);
    h.feed(Input::IceDisconnected(Pc::Publisher));
    let a = h.feed(Input::SignalClosed("reset".into()));
    assert!(a.contains(&Action::Disconnect), "{a:?}");
    assert_eq!(connect_of(&h.feed(Input::Timeout)), Some(None));
}

#[test]
fn a_server_that_answers_a_resume_with_a_join_gets_a_clean_rejoin() {
    let mut h = Harness::new();
    live_video(&mut h);
    h.feed(Input::SignalClosed("reset".into()));
    h.feed(Input::Timeout);
    let a = h.join();
    assert!(a.contains(&Action::Disconnect), "{a:?}");
    assert_eq!(connect_of(&h.feed(Input::Timeout)), Some(None));
}

#[test]
fn first_connection_failure_is_fatal_but_later_ones_are_retried() {
    let mut h = Harness::new();
    let a = h.feed(Input::SignalConnectFailed(ConnectError::Unreachable(
        "refused".into(),
    )));
    assert_eq!(
        exit_of(&a).unwrap().unwrap_err().exit_code(),
        crate::error::exit::CONNECTION
    );

    let mut h = Harness::new();
    live_video(&mut h);
    h.feed(Input::SignalClosed("gone".into()));
    h.feed(Input::Timeout);
    // The resume fails: a full rejoin follows at once.
    let a = h.feed(Input::SignalConnectFailed(ConnectError::Unreachable(
        "refused".into(),
    )));
    assert!(exit_of(&a).is_none(), "{a:?}");
    assert_eq!(connect_of(&h.feed(Input::Timeout)), Some(None));
    let a = h.feed(Input::SignalConnectFailed(ConnectError::Unreachable(
        "refused".into(),
    )));
    assert!(exit_of(&a).is_none(), "{a:?}");
    // Backoff: the next attempt waits 300 ms.
    assert!(!h
        .feed(Input::Timeout)
        .iter()
        .any(|x| matches!(x, Action::Connect { .. })));
    h.at(300);
    assert!(h
        .feed(Input::Timeout)
        .iter()
        .any(|x| matches!(x, Action::Connect { .. })));
}

#[test]
fn every_connection_attempt_is_bounded_by_the_connect_timeout() {
    // The first attempt: exit 5 naming the step that did not answer.
    let mut h = Harness::new();
    h.feed(Input::ConnectStep(ConnectStep::Tcp));
    h.at(9_000);
    assert!(exit_of(&h.feed(Input::Timeout)).is_none(), "not yet");
    assert_eq!(
        h.s.poll_timeout(),
        Some(h.now + Duration::from_secs(1) - Duration::from_millis(2)),
        "the exact deadline"
    );
    h.at(1_000);
    let e = exit_of(&h.feed(Input::Timeout))
        .expect("gives up")
        .unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::CONNECTION);
    assert!(
        e.to_string()
            .contains("did not accept the TCP connection within 10 s"),
        "{e}"
    );

    // A reconnect attempt that hangs is a failed attempt, retried, not the end.
    let mut h = Harness::new();
    live_video(&mut h);
    h.feed(Input::IceDisconnected(Pc::Publisher));
    h.feed(Input::SignalClosed("gone".into()));
    let a = h.feed(Input::Timeout);
    assert!(connect_of(&a).is_some(), "{a:?}");
    h.feed(Input::SignalConnected);
    h.at(10_100);
    let a = h.feed(Input::Timeout);
    assert!(exit_of(&a).is_none(), "{a:?}");
    assert!(
        a.contains(&Action::Disconnect),
        "the hung attempt is dropped: {a:?}"
    );
    h.at(300);
    assert!(connect_of(&h.feed(Input::Timeout)).is_some(), "and retried");
}

#[test]
fn reconnect_backoff_is_quadratic_and_capped() {
    assert_eq!(reconnect_delay(0), Duration::ZERO);
    assert_eq!(reconnect_delay(1), Duration::from_millis(300));
    assert_eq!(reconnect_delay(2), Duration::from_millis(1200));
    assert_eq!(reconnect_delay(3), Duration::from_secs(2));
    assert_eq!(reconnect_delay(50), Duration::from_secs(2));
}

#[test]
fn reconnect_gives_up_when_the_reconnect_timeout_runs_out() {
    let mut h = Harness::new();
    live_video(&mut h);
    h.feed(Input::SignalClosed("gone".into()));
    let mut exit = None;
    for _ in 0..200 {
        h.at(1000);
        let a = h.feed(Input::Timeout);
        if a.iter().any(|x| matches!(x, Action::Connect { .. })) {
            let a = h.feed(Input::SignalConnectFailed(ConnectError::Unreachable(
                "refused".into(),
            )));
            if let Some(e) = exit_of(&a) {
                exit = Some(e);
                break;
            }
        }
    }
    let e = exit.expect("gives up").unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::CONNECTION);
    assert!(e.to_string().starts_with("gave up reconnecting"), "{e}");
}

#[test]
fn a_refused_token_while_rejoining_is_an_auth_error() {
    let mut h = Harness::new();
    live_video(&mut h);
    h.feed(Input::IceDisconnected(Pc::Publisher));
    h.feed(Input::SignalClosed("gone".into()));
    h.feed(Input::Timeout);
    let a = h.feed(Input::SignalConnectFailed(unauthorized()));
    assert_eq!(
        exit_of(&a).unwrap().unwrap_err().exit_code(),
        crate::error::exit::AUTH
    );
}

#[test]
fn stop_during_a_reconnect_exits_zero_at_once() {
    let mut h = Harness::new();
    live_video(&mut h);
    h.feed(Input::SignalClosed("gone".into()));
    let a = h.feed(Input::Stop);
    assert!(!sent_leave(&a), "no link to send it on");
    assert_eq!(exit_of(&a), Some(Ok(())));
}

#[test]
fn server_resume_or_reconnect_request_rejoins() {
    for action in [
        proto::leave_request::Action::Resume,
        proto::leave_request::Action::Reconnect,
    ] {
        let mut h = Harness::new();
        live_video(&mut h);
        let a = h.feed(Input::Signal(Resp::Leave(proto::LeaveRequest {
            reason: proto::DisconnectReason::StateMismatch as i32,
            action: action as i32,
            ..Default::default()
        })));
        assert!(a.contains(&Action::Disconnect), "{a:?}");
        assert!(exit_of(&a).is_none());
    }
}

#[test]
fn ice_disconnected_for_long_reconnects_but_a_short_blip_does_not() {
    let mut h = Harness::new();
    live_video(&mut h);
    h.feed(Input::IceDisconnected(Pc::Publisher));
    h.at(5_000);
    h.feed(Input::Signal(Resp::PongResp(proto::Pong::default())));
    assert!(!h.feed(Input::Timeout).contains(&Action::Disconnect));
    h.feed(Input::Connected(Pc::Publisher));
    h.at(20_000);
    h.feed(Input::Signal(Resp::PongResp(proto::Pong::default())));
    assert!(
        !h.feed(Input::Timeout).contains(&Action::Disconnect),
        "it came back"
    );
    h.feed(Input::IceDisconnected(Pc::Publisher));
    h.at(10_500);
    h.feed(Input::Signal(Resp::PongResp(proto::Pong::default())));
    assert!(h.feed(Input::Timeout).contains(&Action::Disconnect));
}

#[test]
fn pings_go_out_every_interval_and_silence_is_a_lost_link() {
    let mut h = Harness::new();
    h.join();
    h.at(5_100);
    let a = h.feed(Input::Timeout);
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Signal(Req::PingReq(_)))),
        "{a:?}"
    );
    h.at(16_000);
    let a = h.feed(Input::Timeout);
    assert!(
        a.contains(&Action::Disconnect),
        "silence means a dead link: reconnect {a:?}"
    );
}

fn unauthorized() -> ConnectError {
    ConnectError::Http {
        status: 401,
        reason: "Unauthorized".into(),
        body: String::new(),
    }
}

#[test]
fn the_first_server_that_answers_is_used_and_a_rejoin_tries_the_others() {
    let config = SessionConfig {
        servers: vec!["a:7880".into(), "b:7880".into()],
        ..SessionConfig::default()
    };
    let mut h = Harness::with(config);
    // A refuses: B is tried at once, no error yet.
    let a = h.feed(Input::SignalConnectFailed(ConnectError::Unreachable(
        "refused".into(),
    )));
    assert!(exit_of(&a).is_none(), "{a:?}");
    assert_eq!(server_of(&a), Some(1));
    live_video(&mut h);
    // B dies: the rejoin goes to B first (it may be a blip), then to A.
    h.feed(Input::IceDisconnected(Pc::Publisher));
    h.feed(Input::SignalClosed("gone".into()));
    let a = h.feed(Input::Timeout);
    assert_eq!(server_of(&a), Some(1));
    h.feed(Input::SignalConnectFailed(ConnectError::Unreachable(
        "refused".into(),
    )));
    h.at(300);
    let a = h.feed(Input::Timeout);
    assert_eq!(server_of(&a), Some(0), "then the other server: {a:?}");

    // With every server refusing the first time, the error names the last one.
    let mut h = Harness::with(SessionConfig {
        servers: vec!["a:7880".into(), "b:7880".into()],
        ..SessionConfig::default()
    });
    h.feed(Input::SignalConnectFailed(ConnectError::Unreachable(
        "refused".into(),
    )));
    let a = h.feed(Input::SignalConnectFailed(ConnectError::Unreachable(
        "refused".into(),
    )));
    let e = exit_of(&a).expect("gives up").unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::CONNECTION);
    assert!(e.to_string().contains("b:7880"), "{e}");
}

#[test]
fn a_server_shutting_down_is_left_for_the_next_server_not_an_exit() {
    let mut h = Harness::with(SessionConfig {
        servers: vec!["a:7880".into(), "b:7880".into()],
        ..SessionConfig::default()
    });
    live_video(&mut h);
    let a = h.feed(Input::Signal(Resp::Leave(proto::LeaveRequest {
        reason: proto::DisconnectReason::ServerShutdown as i32,
        action: proto::leave_request::Action::Disconnect as i32,
        ..Default::default()
    })));
    assert!(
        exit_of(&a).is_none(),
        "a drained node is not a removal: {a:?}"
    );
    assert!(a.contains(&Action::Disconnect), "{a:?}");
    assert!(
        a.contains(&Action::State(ConnectionState::Reconnecting {
            resume: false
        })),
        "{a:?}"
    );
    let a = h.feed(Input::Timeout);
    assert_eq!(server_of(&a), Some(1), "the other node first: {a:?}");
    assert_eq!(connect_of(&a), Some(None), "a rejoin, not a resume");
    // Back in the room: the watchers are told.
    let a = h.join();
    assert!(
        a.contains(&Action::State(ConnectionState::Joined {
            server: 1,
            resumed: false
        })),
        "{a:?}"
    );
}

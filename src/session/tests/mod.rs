//! The session core driven through hostile orderings, with the time passed in.
//!
//! [`Harness`] feeds inputs one millisecond apart and collects the actions; it plays the
//! drivers' part (offers created, answers applied) only where a test asks it to.

mod congestion;
mod held;
mod joining;
mod reconnect;
mod restart;
mod simulcast;
mod tracks;

use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;

use super::*;
use crate::media::{Output, StreamFormat};

pub(super) fn output(id: u32, codec: Codec) -> Output {
    Output {
        id: OutputId(id),
        element: format!("enc{id}"),
        pad: "src".into(),
        codec,
        format: StreamFormat {
            width: Some(640),
            height: Some(480),
            keyframes_on_request: true,
            ..Default::default()
        },
        caps: String::new(),
        settings: Default::default(),
    }
}

pub(super) fn mid(m: &str) -> Mid {
    Mid::from(m)
}

pub(super) struct Harness {
    pub(super) s: Session,
    pub(super) now: Instant,
    /// Every mid an offer gave out, for the payload types of [`Harness::answer`].
    mids: Vec<Mid>,
}

impl Harness {
    pub(super) fn new() -> Harness {
        Harness::with(SessionConfig::default())
    }

    pub(super) fn with(config: SessionConfig) -> Harness {
        let now = Instant::now();
        let mut s = Session::new(config, now, 1);
        assert_eq!(
            s.poll_action(),
            Some(Action::Connect {
                server: 0,
                token: TokenChoice::Credentials,
                resume: None
            })
        );
        Harness {
            s,
            now,
            mids: Vec::new(),
        }
    }

    pub(super) fn at(&mut self, ms: u64) -> Instant {
        self.now += Duration::from_millis(ms);
        self.now
    }

    pub(super) fn feed(&mut self, input: Input) -> Vec<Action> {
        let now = self.at(1);
        self.s.handle(now, input);
        std::iter::from_fn(|| self.s.poll_action()).collect()
    }

    pub(super) fn route(&mut self, output: u32, keyframe: bool) -> Option<Mid> {
        let now = self.now;
        self.s
            .route_frame(
                now,
                OutputId(output),
                Duration::from_millis(10),
                keyframe,
                1000,
            )
            .route
            .map(|r| r.mid)
    }

    /// A keyframe of `output` routed, and the actions that came of it.
    pub(super) fn keyframe_out(&mut self, output: u32) -> Vec<Action> {
        assert!(
            self.route(output, true).is_some(),
            "output {output} is live"
        );
        std::iter::from_fn(|| self.s.poll_action()).collect()
    }

    pub(super) fn join(&mut self) -> Vec<Action> {
        self.feed(Input::Signal(Resp::Join(proto::JoinResponse {
            participant: Some(proto::ParticipantInfo {
                sid: "PA_1".into(),
                ..Default::default()
            }),
            ping_interval: 5,
            ping_timeout: 15,
            ..Default::default()
        })))
    }

    pub(super) fn added(&mut self, id: u32, codec: Codec) -> Vec<Action> {
        self.feed(Input::Pipeline(PipelineEvent::OutputAdded(output(
            id, codec,
        ))))
    }

    /// The server's answer to offer `id`; when the session applies it, the driver's part
    /// follows: every codec negotiated on every mid offered so far.
    pub(super) fn answer(&mut self, id: u32) -> Vec<Action> {
        let mut a = self.feed(Input::Signal(Resp::Answer(proto::SessionDescription {
            r#type: "answer".into(),
            sdp: format!("answer{id}"),
            id,
            ..Default::default()
        })));
        if a.iter().any(|x| matches!(x, Action::ApplyAnswer(_))) {
            let all = [Codec::H264, Codec::Vp8, Codec::Vp9, Codec::Av1, Codec::Opus];
            let payloads = self
                .mids
                .iter()
                .map(|m| {
                    let p = all
                        .iter()
                        .enumerate()
                        .map(|(i, c)| Payload {
                            pt: 96 + i as u8,
                            codec: Some(*c),
                            packetization_mode: Some(1),
                            profile_level_id: None,
                        })
                        .collect();
                    (*m, p)
                })
                .collect();
            a.extend(self.feed(Input::AnswerApplied { payloads }));
        }
        a
    }

    pub(super) fn offer_created(&mut self, mids: &[(&str, &str)]) -> Vec<Action> {
        let mids: Vec<(TrackCid, Mid)> = mids
            .iter()
            .map(|(c, m)| (TrackCid::new(c.to_string()), mid(m)))
            .collect();
        self.mids.extend(mids.iter().map(|(_, m)| *m));
        self.feed(Input::OfferCreated {
            sdp: "offer".into(),
            mids,
        })
    }

    pub(super) fn published(&mut self, cid: &str, sid: &str) -> Vec<Action> {
        self.feed(Input::Signal(Resp::TrackPublished(
            proto::TrackPublishedResponse {
                cid: cid.into(),
                track: Some(proto::TrackInfo {
                    sid: sid.into(),
                    ..Default::default()
                }),
            },
        )))
    }
}

/// The desired rate of the last `SetBandwidthLimits` among `actions`.
pub(super) fn desired(actions: &[Action]) -> Option<u64> {
    actions.iter().rev().find_map(|x| match x {
        Action::SetBandwidthLimits { desired, .. } => Some(*desired),
        _ => None,
    })
}

pub(super) fn add_tracks(actions: &[Action]) -> Vec<proto::AddTrackRequest> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal(Req::AddTrack(t)) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn add_track_cids(actions: &[Action]) -> Vec<String> {
    add_tracks(actions).into_iter().map(|t| t.cid).collect()
}

pub(super) fn offers(actions: &[Action]) -> Vec<OfferChanges> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateOffer(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn added_cids(offer: &OfferChanges) -> Vec<String> {
    offer.add.iter().map(|m| m.cid.to_string()).collect()
}

pub(super) fn exit_of(actions: &[Action]) -> Option<Result<(), Error>> {
    actions.iter().find_map(|a| match a {
        Action::Exit(r) => Some(r.clone()),
        _ => None,
    })
}

pub(super) fn sent_leave(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Signal(Req::Leave(_))))
}

/// The server index of the connection attempt in `actions`.
pub(super) fn server_of(actions: &[Action]) -> Option<usize> {
    actions.iter().find_map(|a| match a {
        Action::Connect { server, .. } => Some(*server),
        _ => None,
    })
}

pub(super) fn connect_of(actions: &[Action]) -> Option<Option<Resume>> {
    actions.iter().find_map(|a| match a {
        Action::Connect { resume, .. } => Some(resume.clone()),
        _ => None,
    })
}

/// Join, publish one video output and bring it live. Returns (cid, mid).
pub(super) fn live_video(h: &mut Harness) -> (String, Mid) {
    h.join();
    h.offer_created(&[]);
    h.answer(1);
    let cid = add_track_cids(&h.added(0, Codec::H264)).pop().unwrap();
    let a = h.published(&cid, "TR_V");
    assert_eq!(offers(&a).len(), 1);
    h.offer_created(&[(&cid, "1")]);
    h.answer(2);
    let a = h.feed(Input::Connected(Pc::Publisher));
    assert!(a.contains(&Action::RequestKeyframe(OutputId(0))), "{a:?}");
    (cid, mid("1"))
}

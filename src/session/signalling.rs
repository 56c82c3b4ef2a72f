//! The server's messages, one by one: join and reconnect responses, answers to our offers,
//! the subscriber connection's offers, trickled candidates (held until their peer connection
//! has a remote description), track confirmations and refusals, token refreshes, and the
//! server's own leave.

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;

use super::connection::Phase;
use super::timers::Timer;
use super::{Action, Pc, Session};
use crate::error::Error;

/// What we know of the two peer connections' remote side.
#[derive(Debug, Default)]
pub(crate) struct Remote {
    /// The publisher has the server's answer (candidates can be applied).
    pub(crate) publisher_set: bool,
    /// The subscriber has the server's offer.
    pub(crate) subscriber_set: bool,
    /// Candidates that came before their peer connection's remote description.
    pending: Vec<(Pc, String)>,
    /// The last subscriber offer we got and the answer we gave, for SyncState on a resume.
    pub(crate) last_subscriber_offer: Option<proto::SessionDescription>,
    pub(crate) last_subscriber_answer: Option<proto::SessionDescription>,
    /// The first media section of each side's SDP, where trickled candidates go.
    pub(crate) publisher_first_mid: Option<String>,
    pub(crate) subscriber_first_mid: Option<String>,
}

impl Remote {
    fn is_set(&self, pc: Pc) -> bool {
        match pc {
            Pc::Publisher => self.publisher_set,
            Pc::Subscriber => self.subscriber_set,
        }
    }
}

impl Session {
    pub(super) fn on_signal(&mut self, msg: Resp) {
        match msg {
            Resp::Join(join) => self.on_join(join),
            Resp::Reconnect(r) => {
                if self.phase == Phase::Joining && self.link.resuming {
                    self.configure_ice(&r.ice_servers, r.client_configuration.as_ref());
                }
                self.on_resumed()
            }
            Resp::Answer(answer) => self.on_answer(answer),
            Resp::Offer(offer) if self.phase == Phase::Joined => {
                self.remote.subscriber_set = true;
                self.remote.last_subscriber_offer = Some(offer.clone());
                self.actions.push_back(Action::AnswerSubscriberOffer {
                    sdp: offer.sdp,
                    id: offer.id,
                });
                self.flush_candidates();
            }
            Resp::Trickle(t) => {
                let pc = Pc::from_target(t.target);
                if self.remote.is_set(pc) {
                    self.actions
                        .push_back(Action::AddRemoteCandidate(pc, t.candidate_init));
                } else {
                    self.remote.pending.push((pc, t.candidate_init));
                }
            }
            Resp::TrackPublished(p) => self.on_track_published(p),
            Resp::RequestResponse(r) => self.on_request_response(r),
            Resp::Leave(leave) => self.on_server_leave(leave),
            Resp::RefreshToken(t) => self.link.refresh_token = Some(t),
            Resp::SubscribedQualityUpdate(u) => self.on_quality_update(u),
            _ => {}
        }
    }

    fn on_join(&mut self, join: proto::JoinResponse) {
        if self.phase != Phase::Joining {
            return;
        }
        tracing::debug!("join response");
        if self.link.resuming {
            // The server started a new session instead of resuming ours: our peer
            // connections belong to the old one. Start over properly.
            self.lost("the server did not resume the session".into());
            return;
        }
        self.link.participant_sid = join.participant.map(|p| p.sid);
        if join.ping_interval > 0 {
            self.link.ping_interval = std::time::Duration::from_secs(join.ping_interval as u64);
        }
        if join.ping_timeout > 0 {
            self.link.ping_timeout = std::time::Duration::from_secs(join.ping_timeout as u64);
        }
        self.joined(false);
        self.configure_ice(&join.ice_servers, join.client_configuration.as_ref());
        // The publisher connection is offered at once (with its data channels), whatever
        // `fast_publish` says: we are a publisher, and the server answers either way.
        self.negotiate();
        if self.config.publish_delay.is_zero() {
            self.announce_tracks();
        } else {
            self.timers
                .set(Timer::Publish, self.now + self.config.publish_delay);
        }
    }

    fn on_answer(&mut self, answer: proto::SessionDescription) {
        let Some(id) = self.pubs.neg.in_flight else {
            tracing::debug!("ignoring an answer with no offer in flight");
            return;
        };
        // The server echoes our offer id; 0 means "not set" in older servers.
        if answer.id != id && answer.id != 0 {
            tracing::debug!(
                answer = answer.id,
                current = id,
                "ignoring an answer for an old offer"
            );
            return;
        }
        self.pubs.neg.in_flight = None;
        self.timers.stop(Timer::Answer);
        self.remote.publisher_set = true;
        self.actions.push_back(Action::ApplyAnswer(answer.sdp));
        self.flush_candidates();
        self.pubs.answered();
        self.go_live();
        if self.pubs.neg.again {
            self.pubs.neg.again = false;
            self.negotiate();
        }
    }

    pub(super) fn on_subscriber_answer(&mut self, sdp: String, id: u32) {
        if self.phase != Phase::Joined {
            return;
        }
        let answer = proto::SessionDescription {
            r#type: "answer".into(),
            sdp,
            id,
            ..Default::default()
        };
        self.remote.subscriber_first_mid = super::ice::first_mid(&answer.sdp);
        self.remote.last_subscriber_answer = Some(answer.clone());
        self.send(Req::Answer(answer));
    }

    fn on_request_response(&mut self, r: proto::RequestResponse) {
        use proto::request_response::{Reason, Request};
        if r.reason == Reason::Ok as i32 {
            return;
        }
        let reason = Reason::try_from(r.reason)
            .map(|r| r.as_str_name())
            .unwrap_or("UNKNOWN");
        let message = crate::redact::tokens(&r.message).into_owned();
        match r.request {
            Some(Request::AddTrack(add)) => {
                let name = self.pubs.element_of_cid(&add.cid);
                let err = if r.reason == Reason::NotAllowed as i32 {
                    Error::Auth(format!(
                        "the server refused to publish {name} ({reason}): the token lacks canPublish or this source in canPublishSources"
                    ))
                } else {
                    Error::Runtime(format!(
                        "the server refused to publish {name}: {reason} {message}"
                    ))
                };
                self.leave(Err(err));
            }
            _ => {
                tracing::warn!(reason, %message, "the server reported an error for a request")
            }
        }
    }

    fn on_server_leave(&mut self, leave: proto::LeaveRequest) {
        if self.phase == Phase::Leaving {
            self.finish(Ok(()));
            return;
        }
        let reason = proto::DisconnectReason::try_from(leave.reason)
            .map(|r| r.as_str_name())
            .unwrap_or("UNKNOWN_REASON");
        let action = proto::leave_request::Action::try_from(leave.action)
            .unwrap_or(proto::leave_request::Action::Disconnect);
        let shutdown = leave.reason == proto::DisconnectReason::ServerShutdown as i32;
        match action {
            // A server that shuts down (a drained node, an upgrade) has not removed us: the
            // room goes on elsewhere (another node of the cluster, or this one once it is
            // back), so we rejoin, trying the other servers first.
            proto::leave_request::Action::Disconnect if shutdown => {
                self.link.server = (self.link.server + 1) % self.config.servers.len().max(1);
                self.lost("the server is shutting down (SERVER_SHUTDOWN)".into())
            }
            proto::leave_request::Action::Disconnect => {
                self.stop_pipeline();
                self.finish(Err(Error::Removed(format!(
                    "the server removed this participant from the room ({reason})"
                ))));
            }
            _ => self.lost(format!(
                "the server asked this participant to reconnect ({reason})"
            )),
        }
    }

    fn flush_candidates(&mut self) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.remote.pending)
            .into_iter()
            .partition(|(pc, _)| self.remote.is_set(*pc));
        self.remote.pending = waiting;
        for (pc, c) in ready {
            self.actions.push_back(Action::AddRemoteCandidate(pc, c));
        }
    }

    /// New peer connections follow: nothing of the old remote sides is valid.
    pub(super) fn signalling_start_over(&mut self) {
        self.remote = Remote::default();
    }
}

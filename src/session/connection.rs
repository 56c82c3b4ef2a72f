//! Connecting, staying connected, and leaving: the life of the link to the server.
//!
//! Owns the phase of the session, the connection attempt and its deadline (each step of it
//! named for the user), the mapping of a failed attempt to "retry" or "give up", keep-alive,
//! and the two ways back after a loss: a *resume* (a new WebSocket for the same participant,
//! the peer connections kept) when only signalling was lost, and a full *rejoin* otherwise.
//! Also the clean end: the leave goes out first, then the pipeline stops, then the exit.

use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;

use super::timers::Timer;
use super::{Action, ConnectionState, Pc, Session, TokenChoice, ICE_DISCONNECTED_TIMEOUT};
use crate::error::Error;

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connecting the WebSocket, waiting for the join (or reconnect) response.
    Joining,
    /// In the room.
    Joined,
    /// Lost the connection; [`Timer::Retry`] starts the next attempt.
    Reconnecting,
    /// We sent (or are about to send) our leave; nothing else goes out.
    Leaving,
    /// Exit action issued.
    Done,
}

/// Parameters for a resume (`reconnect=1` on the signalling URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub participant_sid: String,
    /// `ReconnectReason` as an integer.
    pub reason: i32,
}

/// The steps of joining, in order; the driver reports the first four as they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStep {
    /// Resolving the server's host name.
    Resolve,
    /// The TCP connection (SYN → SYN-ACK).
    Tcp,
    /// The TLS handshake (wss:// only).
    Tls,
    /// The HTTP upgrade to a WebSocket.
    Upgrade,
    /// The WebSocket is open; the server's join (or reconnect) response is due.
    Response,
}

impl ConnectStep {
    /// What did not answer, and what to check, for "WHAT within N s; CHECK".
    fn unanswered(self, server: &str) -> (String, &'static str) {
        match self {
            ConnectStep::Resolve => (
                format!("the host name of {server} was not resolved"),
                "check the host name in --url",
            ),
            ConnectStep::Tcp => (
                format!("{server} did not accept the TCP connection"),
                "check --url and that no firewall drops the connection",
            ),
            ConnectStep::Tls => (
                format!("{server} accepted the connection but did not complete the TLS handshake"),
                "check that the server speaks TLS on that port (or use ws://)",
            ),
            ConnectStep::Upgrade => (
                format!(
                    "{server} accepted the connection but did not answer the WebSocket upgrade"
                ),
                "check that --url points at a LiveKit server",
            ),
            ConnectStep::Response => (
                format!("{server} opened the WebSocket but sent no join response"),
                "check that --url points at a LiveKit server",
            ),
        }
    }
}

/// Why the signalling driver could not open the WebSocket, as it saw it. The session decides
/// what that means for the user (and whether to retry): see [`classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The server answered the upgrade with an HTTP error: the status and the first 200
    /// characters of its body (already stripped of anything token-shaped).
    Http {
        status: u16,
        reason: String,
        body: String,
    },
    /// The server could not be reached (resolution, TCP, or the connection dropped).
    Unreachable(String),
    /// The TLS handshake failed.
    Tls(String),
    /// The request itself could not be made (the URL or the token).
    Request(String),
}

/// What a failed connection attempt means for the user: a refused token is an
/// authentication error (never retried), everything else a connection error.
pub(crate) fn classify(e: ConnectError, server: &str) -> Error {
    match e {
        ConnectError::Http {
            status,
            reason,
            body,
        } => {
            let body = if body.is_empty() {
                String::new()
            } else {
                format!(": {body}")
            };
            match status {
                401 | 403 => Error::Auth(format!(
                    "the server refused the token ({status} {reason}{body}); check the token, its expiry and the API key/secret"
                )),
                404 => Error::Connection(format!(
                    "{server} has no LiveKit signalling endpoint ({status} {reason}); check --url"
                )),
                _ => Error::Connection(format!(
                    "the server at {server} answered {status} {reason}{body}"
                )),
            }
        }
        ConnectError::Unreachable(why) => Error::Connection(format!(
            "cannot connect to {server}: {why}; check --url and that the server is running"
        )),
        ConnectError::Tls(why) => Error::Connection(format!(
            "cannot connect to {server}: the TLS handshake failed ({why}); check that the server speaks TLS on that port, or use ws://"
        )),
        ConnectError::Request(why) => Error::Usage(why),
    }
}

/// Delay before reconnect attempt `n` (0-based): n² × 300 ms as the LiveKit SDKs do, but
/// never more than 2 s, so a server that comes back is found within 2 s.
pub fn reconnect_delay(attempt: u32) -> Duration {
    Duration::from_millis((300 * u64::from(attempt.min(100)).pow(2)).min(2_000))
}

/// The state of the link to the server.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) participant_sid: Option<String>,
    /// The latest token the server gave us.
    pub(crate) refresh_token: Option<String>,
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    /// The step the current connection attempt is at.
    pub(crate) step: ConnectStep,
    /// The current attempt resumes the session rather than joining anew.
    pub(crate) resuming: bool,
    /// Failed attempts since the connection was lost, and when it was lost.
    pub(crate) attempts: u32,
    pub(crate) lost_at: Option<Instant>,
    pub(crate) publisher_connected: bool,
    /// The server tried or used (an index into the configured servers).
    pub(crate) server: usize,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            participant_sid: None,
            refresh_token: None,
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(15),
            step: ConnectStep::Resolve,
            resuming: false,
            attempts: 0,
            lost_at: None,
            publisher_connected: false,
            server: 0,
        }
    }
}

impl Session {
    /// Start a connection attempt, bounded by the connect timeout.
    pub(super) fn connect(&mut self, resume: Option<Resume>) {
        let token = match (&self.link.refresh_token, self.config.token_given) {
            (Some(t), true) => TokenChoice::Refreshed(t.clone()),
            _ => TokenChoice::Credentials,
        };
        self.link.step = ConnectStep::Resolve;
        self.timers
            .set(Timer::Connect, self.now + self.config.connect_timeout);
        self.actions.push_back(Action::Connect {
            server: self.link.server,
            token,
            resume,
        });
    }

    pub(super) fn on_connect_step(&mut self, step: ConnectStep) {
        if self.phase == Phase::Joining {
            self.link.step = step;
        }
    }

    /// The attempt did not complete in time: name the step that did not answer.
    pub(super) fn on_connect_deadline(&mut self) {
        if self.phase != Phase::Joining {
            return;
        }
        let (what, check) = self.link.step.unanswered(self.server_name());
        let why = format!(
            "{what} within {} s; {check}, or raise --connect-timeout",
            self.config.connect_timeout.as_secs_f64()
        );
        self.connect_failed(Error::Connection(why));
    }

    /// The connection attempt failed (or did not complete in time).
    pub(super) fn connect_failed(&mut self, e: Error) {
        self.timers.stop(Timer::Connect);
        match e {
            // A resume can be refused for many reasons (the server restarted, the refresh
            // token expired): a full rejoin is the answer to all of them.
            _ if self.link.resuming => self.lost(format!("the session could not be resumed: {e}")),
            // A refused token will not get better by retrying.
            Error::Auth(_) | Error::Usage(_) => self.fail(e),
            // Before the first join, the other servers are tried at once: the first that
            // answers is used.
            other
                if self.link.participant_sid.is_none()
                    && self.link.server + 1 < self.config.servers.len() =>
            {
                tracing::warn!("{other}; trying the next server");
                self.link.server += 1;
                self.connect(None);
            }
            other => self.lost(other.to_string()),
        }
    }

    /// In the room (joined or resumed): the attempt is over, keep-alive starts.
    pub(super) fn joined(&mut self, resumed: bool) {
        self.phase = Phase::Joined;
        self.timers.stop(Timer::Connect);
        self.actions
            .push_back(Action::State(ConnectionState::Joined {
                server: self.link.server,
                resumed,
            }));
        let how = if resumed {
            "resumed the session"
        } else {
            "rejoined the room"
        };
        if let Some(lost) = self.link.lost_at.take() {
            tracing::info!(
                "{how} after {:.1} s ({} attempt(s))",
                self.now.duration_since(lost).as_secs_f64(),
                self.link.attempts + 1
            );
        }
        self.link.attempts = 0;
        self.timers
            .set(Timer::Ping, self.now + self.link.ping_interval);
        self.timers
            .set(Timer::Silence, self.now + self.link.ping_timeout);
    }

    /// Any message from the server: the link is alive.
    pub(super) fn on_message(&mut self) {
        if self.phase == Phase::Joined {
            self.timers
                .set(Timer::Silence, self.now + self.link.ping_timeout);
        }
    }

    pub(super) fn ping(&mut self) {
        if self.phase != Phase::Joined {
            return;
        }
        let timestamp = self.now.duration_since(self.started).as_millis() as i64;
        self.send(Req::PingReq(proto::Ping { timestamp, rtt: 0 }));
        self.timers
            .set(Timer::Ping, self.now + self.link.ping_interval);
    }

    pub(super) fn on_signal_closed(&mut self, why: String) {
        match self.phase {
            Phase::Leaving => self.finish(Ok(())),
            Phase::Joined | Phase::Joining => {
                self.lost_signal(format!("the signalling connection closed: {why}"))
            }
            Phase::Reconnecting | Phase::Done => {}
        }
    }

    pub(super) fn on_connected(&mut self, pc: Pc) {
        if pc == Pc::Publisher {
            self.link.publisher_connected = true;
            self.timers.stop(Timer::MediaLost);
            self.go_live();
        }
    }

    pub(super) fn on_ice_disconnected(&mut self, pc: Pc) {
        if pc == Pc::Publisher && !self.timers.is_set(Timer::MediaLost) {
            self.timers
                .set(Timer::MediaLost, self.now + ICE_DISCONNECTED_TIMEOUT);
        }
    }

    /// The connection is gone (or unusable). Before the first join this is fatal (a wrong
    /// URL should fail fast); after it, rejoin with backoff until the attempts or the
    /// reconnect timeout run out.
    pub(super) fn lost(&mut self, why: String) {
        match self.phase {
            Phase::Leaving | Phase::Done => return,
            Phase::Joining if self.link.participant_sid.is_none() => {
                self.fail(Error::Connection(why));
                return;
            }
            _ => {}
        }
        let lost_at = *self.link.lost_at.get_or_insert(self.now);
        if self.phase != Phase::Joined && !self.link.resuming {
            // An attempt failed (a failed resume is followed by a rejoin at once): the next
            // one goes to the next server.
            self.link.attempts += 1;
            self.link.server = (self.link.server + 1) % self.config.servers.len().max(1);
        }
        let elapsed = self.now.duration_since(lost_at);
        if self.link.attempts >= self.config.max_reconnect_attempts
            || elapsed >= self.config.reconnect_timeout
        {
            self.fail(Error::Connection(format!(
                "gave up reconnecting after {} attempt(s) in {:.0} s: {why}",
                self.link.attempts,
                elapsed.as_secs_f64()
            )));
            return;
        }
        tracing::warn!("{why}; reconnecting");
        if self.phase == Phase::Joined || self.link.resuming {
            self.actions
                .push_back(Action::State(ConnectionState::Reconnecting {
                    resume: false,
                }));
        }
        self.link.resuming = false;
        self.link.publisher_connected = false;
        self.actions.push_back(Action::Disconnect);
        // Every publication starts over on the new connection, with fresh cids; its estimator
        // starts over too.
        self.pubs.start_over();
        self.congestion.estimate = None;
        self.congestion.capacity = None;
        self.congestion.video_sent = false;
        self.congestion.ramping = false;
        self.congestion_limits = None;
        self.signalling_start_over();
        self.timers.retain(|_| false);
        let retry_at = (self.now + reconnect_delay(self.link.attempts))
            .min(lost_at + self.config.reconnect_timeout);
        self.timers.set(Timer::Retry, retry_at);
        self.phase = Phase::Reconnecting;
    }

    /// Only the signalling connection is gone. With the media still flowing, resume: a new
    /// WebSocket for the same participant, the peer connections and every publication kept,
    /// so subscribers see nothing. Otherwise (never joined, media down too, or a resume that
    /// already failed) fall back to [`lost`](Self::lost).
    pub(super) fn lost_signal(&mut self, why: String) {
        let can_resume = self.phase == Phase::Joined
            && self.link.participant_sid.is_some()
            && self.link.publisher_connected
            && !self.timers.is_set(Timer::MediaLost);
        if !can_resume {
            self.lost(why);
            return;
        }
        tracing::warn!("{why}; resuming the session");
        self.actions
            .push_back(Action::State(ConnectionState::Reconnecting {
                resume: true,
            }));
        self.link.lost_at.get_or_insert(self.now);
        self.link.resuming = true;
        self.actions.push_back(Action::CloseSignal);
        // An offer in flight lost its answer, an AddTrackRequest its confirmation: both are
        // made again after the resume.
        self.pubs.signalling_lost();
        self.timers.retain(|t| {
            matches!(
                t,
                Timer::Publish | Timer::KeyframeRetry(_) | Timer::SendKept(_) | Timer::MediaLost
            )
        });
        self.timers.set(Timer::Retry, self.now);
        self.phase = Phase::Reconnecting;
    }

    /// The next attempt after a loss.
    pub(super) fn retry(&mut self) {
        if self.phase != Phase::Reconnecting {
            return;
        }
        self.phase = Phase::Joining;
        let resume = self.link.resuming.then(|| Resume {
            participant_sid: self.link.participant_sid.clone().unwrap_or_default(),
            reason: proto::ReconnectReason::RrSignalDisconnected as i32,
        });
        self.connect(resume);
    }

    /// The server resumed our session (`reconnect` response on the new WebSocket).
    pub(super) fn on_resumed(&mut self) {
        if self.phase != Phase::Joining || !self.link.resuming {
            return;
        }
        self.link.resuming = false;
        self.joined(true);
        // Tell the server what we have, so it keeps our tracks and subscriber connection.
        let sync = self.sync_state();
        self.send(Req::SyncState(sync));
        self.negotiate();
        self.announce_tracks();
    }

    /// Leave the room cleanly, then end with `result`: the leave goes out before the
    /// pipeline is stopped.
    pub(super) fn leave(&mut self, result: Result<(), Error>) {
        match self.phase {
            Phase::Leaving | Phase::Done => return,
            Phase::Joined => {
                self.send(Req::Leave(proto::LeaveRequest {
                    reason: proto::DisconnectReason::ClientInitiated as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                }));
            }
            Phase::Joining | Phase::Reconnecting => {}
        }
        self.phase = Phase::Leaving;
        self.stop_pipeline();
        self.finish(result);
    }

    /// Give up with an error: no leave can be sent (or it makes no sense).
    pub(super) fn fail(&mut self, err: Error) {
        if matches!(self.phase, Phase::Leaving | Phase::Done) {
            self.finish(Ok(()));
            return;
        }
        self.phase = Phase::Leaving;
        self.stop_pipeline();
        self.finish(Err(err));
    }

    pub(super) fn stop_pipeline(&mut self) {
        if !self.pipeline_stopped {
            self.pipeline_stopped = true;
            self.actions.push_back(Action::StopPipeline);
        }
    }

    pub(super) fn finish(&mut self, result: Result<(), Error>) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        self.timers.retain(|_| false);
        self.actions.push_back(Action::Exit(result));
    }
}

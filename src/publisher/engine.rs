//! The publisher's task: wires signalling and the RTC drivers to the session core.
//!
//! One task owns the [`Session`], both [`Peer`]s and the signalling link. It waits for the
//! next thing to happen and handles it in one named step: [`Engine::on_frame`],
//! [`Engine::on_datagram`], [`Engine::on_signal`], [`Engine::on_media`],
//! [`Engine::on_deadline`]; then it carries out the core's actions with [`Engine::apply`].
//! Each frame enters the core once and the RTC driver once. Nothing here decides anything:
//! the core does. What the media source must do (keyframes, bitrates, layers, restart, stop)
//! leaves as [`Event`]s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Credentials;
use super::{Event, Options};
use crate::error::Result;
use crate::media::{Frame, OutputId, PipelineEvent, TrackSid};
use crate::rtc::{Datagram, Peer, PeerEvent};
use crate::session::{
    Action, IcePolicy, Input, Keep, OfferChanges, Pc, Route, Session, SessionConfig,
    SimulcastGroup, TokenChoice,
};
use crate::signal::{self, ConnectError, ConnectStep, SignalEvent, SignalLink};
use crate::stats::Stats;

/// How long we give the WebSocket to flush our leave before the task ends.
const LEAVE_FLUSH: Duration = Duration::from_millis(500);

type Connecting = tokio::task::JoinHandle<std::result::Result<SignalLink, ConnectError>>;

/// The most frames one wake-up of the run loop writes before it sends what is due.
const FRAMES_PER_WAKE: usize = 16;

/// The drivers, and the one session they serve.
pub(super) struct Engine {
    session: Session,
    credentials: Credentials,
    urls: Vec<url::Url>,
    /// The server of the current connection (an index into `urls`).
    server: usize,
    stats_interval: Duration,
    /// The TLS configuration of every connection (system roots and `ca_file`).
    tls: Arc<rustls::ClientConfig>,
    /// The paths new peer connections gather.
    ice: IcePolicy,
    link: Option<SignalLink>,
    connecting: Option<Connecting>,
    publisher: Option<Peer>,
    subscriber: Option<Peer>,
    dgram_tx: mpsc::Sender<Datagram>,
    dgram_rx: Option<mpsc::Receiver<Datagram>>,
    /// The steps of the current connection attempt.
    steps: Option<mpsc::UnboundedReceiver<ConnectStep>>,
    stats: Stats,
    /// `name.pad` of each track, for logs.
    names: HashMap<OutputId, String>,
    /// Frames kept for a track's first viewer, as the session says (see `session::Keep`).
    kept: HashMap<OutputId, Vec<Frame>>,
    events: super::events::EventSender,
    /// Settings of the outputs a source numbered itself (see `Options::tracks`).
    track_options: Vec<crate::media::TrackOption>,
}

impl Engine {
    pub(super) fn new(options: Options, events: super::events::EventSender) -> Result<Engine> {
        let tls = options.tls()?;
        crate::rtc::warm_up();
        let start = Instant::now();
        let session = Session::new(
            SessionConfig {
                publish_delay: options.publish_delay,
                reconnect_timeout: options.reconnect_timeout,
                connect_timeout: options.connect_timeout,
                servers: options.urls.iter().map(server_name).collect(),
                token_given: matches!(options.credentials, Credentials::Token(_)),
                force_relay: options.force_relay,
                restart_pipeline: options.restart_source,
                simulcast: options
                    .simulcast
                    .iter()
                    .map(|g| SimulcastGroup {
                        selectors: g.clone(),
                    })
                    .collect(),
                min_bitrate: options.min_bitrate,
                max_bitrate: options.max_bitrate,
                ..SessionConfig::default()
            },
            start,
            rand::random::<u64>() & 0xFFFF_FFFF_FFFF,
        );
        let (dgram_tx, dgram_rx) = mpsc::channel::<Datagram>(1024);
        Ok(Engine {
            session,
            credentials: options.credentials,
            urls: options.urls,
            server: 0,
            stats_interval: options.stats_interval,
            track_options: options.tracks,
            tls,
            ice: IcePolicy::default(),
            link: None,
            connecting: None,
            publisher: None,
            subscriber: None,
            dgram_tx,
            dgram_rx: Some(dgram_rx),
            steps: None,
            stats: Stats::new(start),
            names: HashMap::new(),
            kept: HashMap::new(),
            events,
        })
    }

    /// Runs until the session ends; returns its result.
    pub(super) async fn run(
        mut self,
        mut media: mpsc::UnboundedReceiver<PipelineEvent>,
        mut stop: mpsc::UnboundedReceiver<()>,
        mut frames: mpsc::Receiver<Frame>,
    ) -> Result<()> {
        let mut datagrams = self.dgram_rx.take().expect("run once");
        let mut media_open = true;
        let mut stop_open = true;
        loop {
            // Carry out what the core decided.
            while let Some(action) = self.session.poll_action() {
                if let Action::Exit(result) = action {
                    return self.exit(result).await;
                }
                if let Some(input) = self.apply(action) {
                    self.session.handle(Instant::now(), input);
                }
            }
            self.deliver_peer_events();
            if self.session.has_actions() {
                continue;
            }
            let now = Instant::now();
            let deadline = [
                self.session.poll_timeout(),
                self.publisher.as_mut().map(|p| p.poll_timeout(now)),
                self.subscriber.as_mut().map(|p| p.poll_timeout(now)),
                Some(self.stats.next_report(self.stats_interval)),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("the stats report is always due some time");

            tokio::select! {
                biased;
                asked = stop.recv(), if stop_open => match asked {
                    Some(()) => self.session.handle(Instant::now(), Input::Stop),
                    None => stop_open = false,
                },
                ev = media.recv(), if media_open => match ev {
                    Some(ev) => self.on_media(ev),
                    // Every handle is gone: nobody can end the tracks or stop us any more.
                    None => {
                        media_open = false;
                        self.session.handle(Instant::now(), Input::Stop);
                    }
                },
                res = async { self.connecting.as_mut().expect("guarded").await }, if self.connecting.is_some() => {
                    self.connecting = None;
                    self.on_connected(res);
                }
                ev = async { self.link.as_mut().expect("guarded").events.recv().await }, if self.link.is_some() => {
                    self.on_signal(ev);
                }
                step = async { self.steps.as_mut().expect("guarded").recv().await }, if self.steps.is_some() => {
                    match step {
                        Some(step) => {
                            tracing::debug!(?step, "connecting");
                            self.session.handle(Instant::now(), Input::ConnectStep(step));
                        }
                        None => self.steps = None,
                    }
                }
                Some(frame) = frames.recv() => {
                    // Frames that came together are written together; the drain after the
                    // select sends them (see `Peer::send_frame`). An output's OutputAdded is
                    // sent before its first frame: what the source said since is taken first.
                    let mut frame = frame;
                    for taken in 1.. {
                        while let Ok(ev) = media.try_recv() {
                            self.on_media(ev);
                        }
                        self.on_frame(frame);
                        if taken == FRAMES_PER_WAKE {
                            break;
                        }
                        match frames.try_recv() {
                            Ok(next) => frame = next,
                            Err(_) => break,
                        }
                    }
                }
                Some(d) = datagrams.recv() => self.on_datagram(d),
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            self.on_deadline(Instant::now());
        }
    }

    fn emit(&self, event: Event) {
        // Never waits: a slow reader gets every event that matters later, and the latest
        // statistics (see `events`).
        self.events.send(event);
    }

    /// What the source said. An output the source numbered itself (see
    /// `Publisher::source_channels`) takes the settings of the first `--track` option that
    /// selects it.
    fn on_media(&mut self, mut ev: PipelineEvent) {
        if let PipelineEvent::OutputAdded(o) | PipelineEvent::OutputChanged(o) = &mut ev {
            if let Some(t) = self.track_options.iter().find(|t| t.selects(o)) {
                o.settings = t.settings.clone();
            }
        }
        if let PipelineEvent::OutputAdded(o) = &ev {
            tracing::info!("found output {}", crate::pipeline::describe(o));
            self.stats.output(o);
            self.names.insert(o.id, format!("{}.{}", o.element, o.pad));
        }
        self.session.handle(Instant::now(), Input::Pipeline(ev));
    }

    /// One frame: into the core once, to the publisher once.
    fn on_frame(&mut self, frame: Frame) {
        let now = Instant::now();
        let fate = self.session.route_frame(
            now,
            frame.output,
            frame.running_time,
            frame.keyframe,
            frame.data.len(),
        );
        match fate.keep {
            Keep::Nothing => {
                self.kept.remove(&frame.output);
            }
            Keep::First => {
                self.kept.insert(frame.output, vec![frame.clone()]);
            }
            Keep::Next => {
                if let Some(kept) = self.kept.get_mut(&frame.output) {
                    kept.push(frame.clone());
                }
            }
        }
        let Some(route) = fate.route else {
            return;
        };
        if fate.placeholder {
            let mut data = Vec::with_capacity(crate::media::H264_PLACEHOLDER.len());
            if fate.with_parameter_sets {
                if let Some(keyframe) = self.kept.get(&frame.output).and_then(|k| k.first()) {
                    data = crate::media::h264_parameter_sets(&keyframe.data);
                }
            }
            data.extend_from_slice(&crate::media::H264_PLACEHOLDER);
            if let Some(publisher) = self.publisher.as_mut() {
                publisher.send_frame(&route, Arc::from(data), frame.captured);
            }
        } else {
            self.send_frame(&route, frame);
        }
    }

    /// The frames kept for `output`'s first viewer go out now, on these routes.
    fn send_kept(&mut self, output: OutputId, routes: &[Route]) {
        let kept = self.kept.remove(&output).unwrap_or_default();
        if kept.len() != routes.len() {
            tracing::warn!(
                "{}: {} frames kept for the first viewer, {} routes for them; the extra ones are not sent",
                self.name(output),
                kept.len(),
                routes.len()
            );
        }
        let mut sent = 0;
        for (route, mut frame) in routes.iter().zip(kept) {
            // Their latency counts from now: their wait for a viewer is not the send path's.
            frame.captured = Instant::now();
            self.send_frame(route, frame);
            sent += 1;
        }
        self.stats.kept_sent(output, sent);
    }

    fn send_frame(&mut self, route: &Route, frame: Frame) {
        let Some(publisher) = self.publisher.as_mut() else {
            return;
        };
        let bytes = frame.data.len();
        let sent = publisher.send_frame(route, frame.data, frame.captured);
        self.stats.frame_sent(
            frame.output,
            bytes,
            frame.keyframe,
            sent.written,
            sent.burst,
        );
    }

    fn on_datagram(&mut self, d: Datagram) {
        if let Some(peer) = self.peer_mut(d.pc) {
            peer.receive(Instant::now(), d);
        }
    }

    fn on_connected(
        &mut self,
        res: std::result::Result<
            std::result::Result<SignalLink, ConnectError>,
            tokio::task::JoinError,
        >,
    ) {
        let now = Instant::now();
        let input = match res {
            Ok(Ok(link)) => {
                tracing::info!("connected to {}", server_name(&self.urls[self.server]));
                self.link = Some(link);
                Input::SignalConnected
            }
            Ok(Err(e)) => Input::SignalConnectFailed(e),
            Err(e) => Input::SignalConnectFailed(ConnectError::Unreachable(format!(
                "the connection task failed: {e}"
            ))),
        };
        self.session.handle(now, input);
    }

    fn on_signal(&mut self, ev: Option<SignalEvent>) {
        let now = Instant::now();
        match ev {
            Some(SignalEvent::Message(m)) => self.session.handle(now, Input::Signal(m)),
            Some(SignalEvent::Closed(why)) => {
                self.link = None;
                self.session.handle(now, Input::SignalClosed(why));
            }
            None => {
                self.link = None;
                self.session
                    .handle(now, Input::SignalClosed("connection closed".into()));
            }
        }
    }

    /// Time passes for everyone after every wake-up; statistics when due.
    fn on_deadline(&mut self, now: Instant) {
        for peer in [self.publisher.as_mut(), self.subscriber.as_mut()]
            .into_iter()
            .flatten()
        {
            if peer.poll_timeout(now) <= now {
                peer.handle_timeout(now);
            }
        }
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle(now, Input::Timeout);
        }
        if self.stats.due(now, self.stats_interval) {
            let report = Box::new(self.stats.report(now));
            self.emit(Event::Stats {
                report,
                last: false,
            });
        }
    }

    /// What the peers saw, to the core (and the statistics).
    fn deliver_peer_events(&mut self) {
        for pc in [Pc::Publisher, Pc::Subscriber] {
            let events: Vec<PeerEvent> = match self.peer_mut(pc) {
                Some(peer) => peer.events().collect(),
                None => continue,
            };
            for ev in events {
                let input = match ev {
                    PeerEvent::Connected => Input::Connected(pc),
                    PeerEvent::Disconnected => {
                        tracing::debug!(?pc, "ICE disconnected");
                        Input::IceDisconnected(pc)
                    }
                    PeerEvent::Closed => Input::Disconnected(pc),
                    PeerEvent::KeyframeRequest(mid, rid) => Input::KeyframeRequest { mid, rid },
                    PeerEvent::LocalCandidate(candidate) => Input::LocalCandidate { pc, candidate },
                    PeerEvent::Estimate(bps) => {
                        self.stats.estimate(bps);
                        Input::BandwidthEstimate {
                            bps,
                            sent: self.stats.recent_rates(),
                        }
                    }
                    PeerEvent::Capacity(bps) => Input::LinkCapacity(bps),
                    PeerEvent::Path(path, remote) => {
                        tracing::info!("{} media path: {path} to {remote}", pc_name(pc));
                        self.stats.path(pc_name(pc), path.to_string());
                        continue;
                    }
                    PeerEvent::FrameOut(latency) => {
                        self.stats.frame_out(latency);
                        continue;
                    }
                    PeerEvent::Egress(mid, egress) => {
                        if let Some(output) = self.session.output_for_mid(mid) {
                            self.stats.egress(output, egress);
                        }
                        continue;
                    }
                };
                self.session.handle(Instant::now(), input);
            }
        }
    }

    fn peer_mut(&mut self, pc: Pc) -> Option<&mut Peer> {
        match pc {
            Pc::Publisher => self.publisher.as_mut(),
            Pc::Subscriber => self.subscriber.as_mut(),
        }
    }

    /// The peer connection, created on first use: the one place peers are made.
    fn peer(
        &mut self,
        pc: Pc,
        now: Instant,
    ) -> std::result::Result<&mut Peer, crate::error::RtcError> {
        let slot = match pc {
            Pc::Publisher => &mut self.publisher,
            Pc::Subscriber => &mut self.subscriber,
        };
        if slot.is_none() {
            *slot = Some(Peer::new(pc, now, &self.ice, &self.tls, &self.dgram_tx)?);
        }
        Ok(slot.as_mut().expect("created just above"))
    }

    /// Carry out one action; some produce an input for the core at once.
    fn apply(&mut self, action: Action) -> Option<Input> {
        let now = Instant::now();
        match action {
            Action::State(state) => self.emit(Event::Connection(state)),
            Action::Connect {
                server,
                token,
                resume,
            } => self.connect(server, token, resume),
            Action::ConfigureIce(policy) => self.ice = policy,
            Action::CloseSignal => self.close_signal(),
            Action::Disconnect => {
                self.close_signal();
                self.publisher = None;
                self.subscriber = None;
            }
            Action::Signal(msg) => {
                if let Some(l) = &self.link {
                    l.send(msg);
                }
            }
            Action::CreateOffer(changes) => return Some(self.create_offer(now, &changes)),
            Action::ApplyAnswer(sdp) => return self.apply_answer(now, &sdp),
            Action::AnswerSubscriberOffer { sdp, id } => {
                return Some(self.answer_subscriber(now, &sdp, id))
            }
            Action::AddRemoteCandidate(pc, json) => {
                if let Some(peer) = self.peer_mut(pc) {
                    peer.add_remote_candidate(now, &json);
                }
            }
            Action::RequestKeyframe(track) => self.request_keyframe(track),
            Action::SendKept { output, routes } => self.send_kept(output, &routes),
            Action::SetBitrate { output, bps, share } => {
                if bps == share {
                    tracing::debug!("{}: target {} kbit/s", self.name(output), bps / 1000);
                } else {
                    tracing::debug!(
                        "{}: target {} kbit/s, {} kbit/s set on the encoder, which sends more than it is told",
                        self.name(output),
                        share / 1000,
                        bps / 1000
                    );
                }
                self.stats.target(output, share);
                self.emit(Event::TargetBitrate { track: output, bps });
            }
            Action::SetBandwidthLimits { min, desired } => {
                if let Some(p) = self.publisher.as_mut() {
                    p.set_bandwidth_limits(min, desired);
                }
            }
            Action::CannotAdapt { output } => self.stats.cannot_adapt(output),
            Action::SetLayerActive { output, active } => {
                self.stats.layer_active(output, active);
                self.emit(Event::LayerActive {
                    track: output,
                    active,
                });
            }
            Action::TrackLive { output, sid, rid } => self.track_live(output, &sid, rid),
            Action::TrackEnded { output } => {
                tracing::info!("{} ended; its track is unpublished", self.name(output));
                self.kept.remove(&output);
                self.emit(Event::TrackEnded { track: output });
            }
            Action::StopPipeline => self.emit(Event::StopSource),
            Action::RestartPipeline => self.emit(Event::RestartSource),
            Action::TrackResumed { old, output } => {
                self.kept.remove(&old);
                if let Some(name) = self.names.remove(&old) {
                    self.names.insert(output, name);
                }
                self.stats.resumed(old, output);
            }
            Action::Exit(_) => unreachable!("handled by the run loop"),
        }
        None
    }

    fn close_signal(&mut self) {
        self.drop_connection_attempt();
        if let Some(l) = self.link.take() {
            l.close();
        }
    }

    fn create_offer(&mut self, now: Instant, changes: &OfferChanges) -> Input {
        let offer = self
            .peer(Pc::Publisher, now)
            .and_then(|p| p.create_offer(now, changes));
        match offer {
            Ok((sdp, mids)) => Input::OfferCreated { sdp, mids },
            Err(e) => Input::RtcFailed(e),
        }
    }

    fn apply_answer(&mut self, now: Instant, sdp: &str) -> Option<Input> {
        tracing::debug!("publisher answer:\n{sdp}");
        let publisher = self.publisher.as_mut()?;
        Some(match publisher.accept_answer(now, sdp) {
            Ok(payloads) => Input::AnswerApplied { payloads },
            Err(e) => Input::RtcFailed(e),
        })
    }

    fn answer_subscriber(&mut self, now: Instant, sdp: &str, id: u32) -> Input {
        let answer = self
            .peer(Pc::Subscriber, now)
            .and_then(|s| s.accept_offer(now, sdp));
        match answer {
            Ok(sdp) => Input::AnswerCreated { sdp, id },
            Err(e) => Input::RtcFailed(e),
        }
    }

    fn request_keyframe(&mut self, track: OutputId) {
        if !self.stats.keyframe_requested(track) {
            tracing::debug!(
                "{}: a keyframe was asked for, but no encoder can make one; viewers wait for the stream's next keyframe",
                self.name(track)
            );
        }
        self.emit(Event::KeyframeRequested { track });
    }

    fn track_live(&mut self, output: OutputId, sid: &TrackSid, rid: Option<&'static str>) {
        if let Some(rid) = rid {
            self.stats.layer(output, rid);
        }
        tracing::info!("{} is live as track {sid}", self.name(output));
        self.stats.published(output, sid.as_str());
        self.emit(Event::TrackPublished {
            track: output,
            sid: sid.clone(),
        });
    }

    fn connect(
        &mut self,
        server: usize,
        token: TokenChoice,
        resume: Option<crate::session::Resume>,
    ) {
        self.server = server.min(self.urls.len() - 1);
        self.drop_connection_attempt();
        let token = match token {
            TokenChoice::Refreshed(t) => Ok(t),
            TokenChoice::Credentials => self.credentials.token(),
        };
        let (steps, step_rx) = mpsc::unbounded_channel();
        self.steps = Some(step_rx);
        let url = self.urls[self.server].clone();
        let tls = self.tls.clone();
        let task = tokio::spawn(async move {
            let token = token.map_err(|e| ConnectError::Request(e.to_string()))?;
            signal::connect(&url, &token, resume.as_ref(), tls, steps).await
        });
        self.connecting = Some(task);
    }

    fn name(&self, output: OutputId) -> &str {
        self.names.get(&output).map_or("output", String::as_str)
    }

    fn drop_connection_attempt(&mut self) {
        if let Some(c) = self.connecting.take() {
            c.abort();
        }
        // Steps of the dropped attempt must not count for the next one.
        self.steps = None;
    }

    /// The end: the leave (already sent) is flushed, bounded; then the last statistics.
    async fn exit(mut self, result: Result<()>) -> Result<()> {
        self.drop_connection_attempt();
        self.emit(Event::StopSource);
        if let Some(link) = self.link.take() {
            link.close();
            // Let the writer flush our leave; the server closes after it.
            let mut events = link.events;
            let _ = tokio::time::timeout(LEAVE_FLUSH, async {
                while let Some(ev) = events.recv().await {
                    if matches!(ev, SignalEvent::Closed(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        self.publisher = None;
        self.subscriber = None;
        let report = Box::new(self.stats.report(Instant::now()));
        self.emit(Event::Stats { report, last: true });
        result
    }
}

fn pc_name(pc: Pc) -> &'static str {
    match pc {
        Pc::Publisher => "publisher",
        Pc::Subscriber => "subscriber",
    }
}

/// `host:port` of the server, for messages.
fn server_name(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("the server");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

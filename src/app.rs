//! The run loop: wires the pipeline, signalling and RTC drivers to the session core.
//!
//! One task owns the [`Session`], both [`Peer`]s and the signalling link. It waits for the
//! next thing to happen (a signal message, a datagram, a pipeline event, a frame, a timer, a
//! stop request), feeds it to the core or the peers, then carries out the core's actions.
//! Nothing here decides anything the core could decide.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::cli::Config;
use crate::error::{Error, Result};
use crate::media::{Frame, PipelineEvent};
use crate::pipeline::{self, Pipeline};
use crate::rtc::{Datagram, Peer, PeerEvent};
use crate::session::{Action, Input, Pc, Session, SessionConfig};
use crate::signal::{self, SignalEvent, SignalLink};
use crate::stats::Stats;
use std::io::Write as _;

/// How long we give the WebSocket to flush our leave before the process ends.
const LEAVE_FLUSH: Duration = Duration::from_millis(500);

/// Print the pipeline's outputs (`--dry-run`) on stdout, then the doctor's warnings on stderr
/// (`warning: …`, one line each). Warnings do not change the exit code.
pub fn dry_run(config: &Config) -> Result<()> {
    let discovery = pipeline::discover(&config.pipeline, Duration::from_secs(5))?;
    check_track_specs(config, &discovery.outputs)?;
    for o in &discovery.outputs {
        println!("{}", pipeline::describe(o));
    }
    let _ = std::io::stdout().flush();
    for warning in &discovery.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// Every `--track` must select an output: a typo would otherwise be lost silently. Outputs
/// that appear later (sometimes-pads) cannot be checked yet; those specs are only warned about.
fn check_track_specs(config: &Config, outputs: &[crate::media::Output]) -> Result<()> {
    for spec in &config.tracks {
        if !outputs.iter().any(|o| spec.selects(o)) {
            let names: Vec<String> = outputs
                .iter()
                .map(|o| format!("{}.{}", o.element, o.pad))
                .collect();
            if outputs.is_empty() {
                tracing::warn!(
                    "--track {}: no output is known yet; it applies if one appears",
                    spec.selector
                );
            } else {
                return Err(Error::Usage(format!(
                    "--track {}: no output of that name; the outputs are {} (name elements with name=)",
                    spec.selector,
                    names.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Maps buffer running time to RTP time and wallclock, one mapping for every track so that
/// audio and video stay in sync.
struct Clock {
    base: Option<Instant>,
}

impl Clock {
    fn wallclock(&mut self, now: Instant, running_time: Duration) -> Instant {
        let base = *self
            .base
            .get_or_insert_with(|| now.checked_sub(running_time).unwrap_or(now));
        base + running_time
    }
}

/// Run until the session ends. Returns the session's result.
pub async fn run(config: Config, stops: mpsc::UnboundedReceiver<()>) -> Result<()> {
    let mut stops = stops;
    let credentials = config
        .credentials
        .clone()
        .ok_or_else(|| Error::Usage("no credentials".into()))?;
    let mut pipeline = Pipeline::new(&config.pipeline)?;
    let known = pipeline.outputs();
    for o in &known {
        tracing::info!("output {}", pipeline::describe(o));
    }
    check_track_specs(&config, &known)?;
    let mut stats_out = StatsOutput::open(&config)?;

    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<PipelineEvent>();
    let (frames_tx, mut frames_rx) = mpsc::channel::<Frame>(256);
    // The pipeline and the connection start together: neither waits for the other.
    pipeline.start(control_tx, frames_tx)?;

    // Fail fast on credentials we cannot even mint.
    credentials.token()?;
    let mut connecting: Option<tokio::task::JoinHandle<Result<SignalLink>>> = None;

    let start = Instant::now();
    let mut session = Session::new(
        SessionConfig {
            publish_delay: config.delay,
            reconnect_timeout: config.reconnect_timeout,
            tracks: config.tracks.clone(),
            ..SessionConfig::default()
        },
        start,
        rand::random::<u64>() & 0xFFFF_FFFF_FFFF,
    );
    let (dgram_tx, mut dgram_rx) = mpsc::channel::<Datagram>(1024);
    let mut link: Option<SignalLink> = None;
    let mut publisher: Option<Peer> = None;
    let mut subscriber: Option<Peer> = None;
    let mut clock = Clock { base: None };
    let mut peer_events = Vec::new();
    let mut stats = Stats::new(start);
    let mut names = std::collections::HashMap::new();

    loop {
        // Carry out what the core decided.
        while let Some(action) = session.poll_action() {
            let now = Instant::now();
            match action {
                Action::Connect {
                    refresh_token,
                    resume,
                } => {
                    if let Some(c) = connecting.take() {
                        c.abort();
                    }
                    // A token we were given may expire: prefer the server's refreshed one.
                    // Minted tokens are minted anew.
                    let token = match (&credentials, refresh_token) {
                        (crate::cli::Credentials::Token(_), Some(t)) => Ok(t),
                        _ => credentials.token(),
                    };
                    let url = config.url.clone();
                    connecting = Some(tokio::spawn(async move {
                        signal::connect(&url, &token?, resume.as_ref()).await
                    }));
                }
                Action::CloseSignal => {
                    if let Some(l) = link.take() {
                        l.close();
                    }
                    if let Some(c) = connecting.take() {
                        c.abort();
                    }
                }
                Action::Disconnect => {
                    if let Some(l) = link.take() {
                        l.close();
                    }
                    if let Some(c) = connecting.take() {
                        c.abort();
                    }
                    publisher = None;
                    subscriber = None;
                    // Datagrams still queued belong to the old peers.
                    while dgram_rx.try_recv().is_ok() {}
                }
                Action::Signal(msg) => {
                    if let Some(l) = &link {
                        l.send(msg);
                    }
                }
                Action::CreateOffer(changes) => {
                    if publisher.is_none() {
                        match Peer::new(Pc::Publisher, now, dgram_tx.clone()).await {
                            Ok(p) => publisher = Some(p),
                            Err(e) => {
                                session.handle(
                                    now,
                                    Input::RtcFailed(format!("cannot open UDP sockets: {e}")),
                                );
                                continue;
                            }
                        }
                    }
                    let p = publisher.as_mut().expect("created just above");
                    let input = match p.create_offer(now, &changes) {
                        Ok((sdp, mids)) => {
                            tracing::debug!("publisher offer:\n{sdp}");
                            Input::OfferCreated { sdp, mids }
                        }
                        Err(e) => Input::RtcFailed(e),
                    };
                    session.handle(now, input);
                }
                Action::ApplyAnswer(sdp) => {
                    tracing::debug!("publisher answer:\n{sdp}");
                    if let Some(p) = publisher.as_mut() {
                        if let Err(e) = p.accept_answer(now, &sdp) {
                            session.handle(now, Input::RtcFailed(e));
                        }
                    }
                }
                Action::AnswerSubscriberOffer { sdp, id } => {
                    if subscriber.is_none() {
                        match Peer::new(Pc::Subscriber, now, dgram_tx.clone()).await {
                            Ok(p) => subscriber = Some(p),
                            Err(e) => {
                                session.handle(
                                    now,
                                    Input::RtcFailed(format!("cannot open UDP sockets: {e}")),
                                );
                                continue;
                            }
                        }
                    }
                    let s = subscriber.as_mut().expect("created just above");
                    let input = match s.accept_offer(now, &sdp) {
                        Ok(answer) => Input::AnswerCreated { sdp: answer, id },
                        Err(e) => Input::RtcFailed(e),
                    };
                    session.handle(now, input);
                }
                Action::AddRemoteCandidate(pc, json) => {
                    let peer = match pc {
                        Pc::Publisher => publisher.as_mut(),
                        Pc::Subscriber => subscriber.as_mut(),
                    };
                    if let Some(p) = peer {
                        p.add_remote_candidate(now, &json);
                    }
                }
                Action::RequestKeyframe(id) => pipeline.request_keyframe(id),
                Action::TrackLive { output, sid } => {
                    tracing::info!(
                        "{} is live as track {sid}",
                        names.get(&output).map_or("output", String::as_str)
                    );
                    stats.published(output, &sid);
                }
                Action::TrackEnded { output } => {
                    tracing::info!(
                        "{} ended; its track is unpublished",
                        names.get(&output).map_or("output", String::as_str)
                    )
                }
                Action::StopPipeline => pipeline.stop(),
                Action::Exit(result) => {
                    if let Some(l) = link.take() {
                        l.close();
                        // Let the writer flush our leave; the server closes after it.
                        let mut events = l.events;
                        let _ = tokio::time::timeout(LEAVE_FLUSH, async {
                            while let Some(ev) = events.recv().await {
                                if matches!(ev, SignalEvent::Closed(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                    }
                    if let Some(c) = connecting.take() {
                        c.abort();
                    }
                    pipeline.stop();
                    // A last report, so --stats-json ends with the totals.
                    stats.set_dropped_frames(pipeline.dropped_frames());
                    stats_out.write_final(&stats.report(Instant::now()));
                    let dropped = pipeline.dropped_frames();
                    if dropped > 0 {
                        tracing::debug!(
                            dropped,
                            "frames dropped because the network side fell behind"
                        );
                    }
                    return result;
                }
            }
        }

        // Deliver peer events gathered while draining.
        for ev in peer_events.drain(..) {
            let now = Instant::now();
            let (pc, ev) = ev;
            let input = match ev {
                PeerEvent::Connected => Input::Connected(pc),
                PeerEvent::Disconnected => {
                    tracing::debug!(?pc, "ICE disconnected");
                    Input::IceDisconnected(pc)
                }
                PeerEvent::Closed => Input::Disconnected(pc),
                PeerEvent::KeyframeRequest(mid) => Input::KeyframeRequest { mid },
                PeerEvent::Egress(mid, egress) => {
                    if let Some(output) = session.output_for_mid(&mid) {
                        stats.egress(output, egress);
                    }
                    continue;
                }
            };
            session.handle(now, input);
        }
        if session.poll_action_pending() {
            continue;
        }

        let deadline = [
            Some(session.next_deadline()),
            publisher.as_ref().map(Peer::next_timeout),
            subscriber.as_ref().map(Peer::next_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_millis(100));

        tokio::select! {
            biased;
            stop = stops.recv() => {
                if stop.is_some() {
                    session.handle(Instant::now(), Input::Stop);
                }
            }
            res = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                connecting = None;
                let now = Instant::now();
                match res {
                    Ok(Ok(l)) => {
                        tracing::info!("connected to {}", config.url.host_str().unwrap_or("the server"));
                        link = Some(l);
                        session.handle(now, Input::SignalConnected);
                    }
                    Ok(Err(e)) => session.handle(now, Input::SignalConnectFailed(e)),
                    Err(e) => session.handle(now, Input::SignalConnectFailed(Error::Runtime(format!("connect task failed: {e}")))),
                }
            }
            ev = async { link.as_mut().expect("guarded").events.recv().await }, if link.is_some() => {
                let now = Instant::now();
                match ev {
                    Some(SignalEvent::Message(m)) => session.handle(now, Input::Signal(m)),
                    Some(SignalEvent::Closed(why)) => {
                        link = None;
                        session.handle(now, Input::SignalClosed(why));
                    }
                    None => {
                        link = None;
                        session.handle(now, Input::SignalClosed("connection closed".into()));
                    }
                }
            }
            ev = control_rx.recv() => {
                if let Some(ev) = ev {
                    if let PipelineEvent::OutputAdded(o) = &ev {
                        tracing::info!("found output {}", pipeline::describe(o));
                        stats.output(o);
                        names.insert(o.id, format!("{}.{}", o.element, o.pad));
                    }
                    session.handle(Instant::now(), Input::Pipeline(ev));
                }
            }
            frame = frames_rx.recv() => {
                if let Some(frame) = frame {
                    let now = Instant::now();
                    let codec_rate = session.clock_rate(frame.output).unwrap_or(90_000) as u128;
                    if let Some(mid) = session.route_frame(frame.output, frame.keyframe) {
                        if let Some(p) = publisher.as_mut() {
                            let wallclock = clock.wallclock(now, frame.running_time);
                            let ticks = (frame.running_time.as_nanos() * codec_rate / 1_000_000_000) as u64;
                            let bytes = frame.data.len();
                            p.write(mid, wallclock, ticks, frame.data);
                            p.drain_into_tagged(Pc::Publisher, &mut peer_events);
                            stats.frame_sent(frame.output, bytes, frame.keyframe, frame.captured.elapsed());
                        }
                    }
                }
            }
            d = dgram_rx.recv() => {
                if let Some(d) = d {
                    let now = Instant::now();
                    let peer = match d.pc { Pc::Publisher => publisher.as_mut(), Pc::Subscriber => subscriber.as_mut() };
                    if let Some(p) = peer {
                        p.handle_datagram(now, &d);
                        p.drain_into_tagged(d.pc, &mut peer_events);
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }

        // Time passes for everyone after every wake-up.
        let now = Instant::now();
        for (pc, peer) in [
            (Pc::Publisher, publisher.as_mut()),
            (Pc::Subscriber, subscriber.as_mut()),
        ] {
            if let Some(p) = peer {
                if p.next_timeout() <= now {
                    p.handle_timeout(now);
                }
                p.drain_into_tagged(pc, &mut peer_events);
            }
        }
        if session.next_deadline() <= now {
            session.handle(now, Input::Tick);
        }
        if stats.due(now, config.stats_interval) {
            stats.set_dropped_frames(pipeline.dropped_frames());
            stats_out.write(&stats.report(now));
        }
    }
}

/// Where statistics go: a JSON-lines file (or stdout) and/or a status line on a terminal.
struct StatsOutput {
    json: Option<Box<dyn std::io::Write + Send>>,
    status_line: bool,
}

impl StatsOutput {
    fn open(config: &Config) -> Result<StatsOutput> {
        use std::io::IsTerminal;
        let json: Option<Box<dyn std::io::Write + Send>> = match &config.stats_json {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
            Some(p) => Some(Box::new(std::io::LineWriter::new(
                std::fs::File::create(p).map_err(|e| {
                    Error::Usage(format!("cannot write --stats-json {}: {e}", p.display()))
                })?,
            ))),
        };
        Ok(StatsOutput {
            json,
            status_line: !config.quiet && std::io::stderr().is_terminal(),
        })
    }

    fn write_final(&mut self, report: &crate::stats::Report) {
        self.status_line = false;
        self.write(report);
    }

    fn write(&mut self, report: &crate::stats::Report) {
        if let Some(out) = self.json.as_mut() {
            if writeln!(out, "{}", report.to_json()).is_err() {
                tracing::warn!("cannot write statistics any more; --stats-json output stopped");
                self.json = None;
            }
        }
        if self.status_line && !report.tracks.is_empty() {
            eprintln!("{}", report.status_line());
        }
    }
}

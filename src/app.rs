//! The command-line front-end: runs the user's pipeline and publishes its outputs through
//! the library's API ([`gstreamer_publisher::publisher`]), nothing else.
//!
//! Each output of the pipeline becomes a [`LocalTrack`] (named and paced by `--track`); its
//! frames are written to it; what the room asks ([`Event`]s: keyframes, target bitrates,
//! simulcast layers, a restart, the stop) goes back to the pipeline. One task runs this
//! loop beside the publisher's own.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cli::Config;
use crate::report::Reporter;
use gstreamer_publisher::error::{Error, Result};
use gstreamer_publisher::media::{Frame, Output, OutputId, PipelineEvent};
use gstreamer_publisher::pipeline::{self, Pipeline, Stopping};
use gstreamer_publisher::publisher::{
    EncodedFrame, Event, LocalTrack, Options, Publisher, TrackId, TrackSpec, WriteError,
};

/// Print the pipeline's outputs (`--dry-run`) on stdout, then the doctor's warnings on stderr
/// (`warning: …`, one line each). Warnings do not change the exit code.
pub fn dry_run(config: &Config) -> Result<()> {
    let discovery =
        pipeline::discover_with(&config.pipeline, options(config), Duration::from_secs(5))?;
    check_track_specs(config, &discovery.outputs)?;
    for o in &discovery.outputs {
        println!("{}", pipeline::describe(o));
    }
    for group in config.simulcast.iter().chain(&discovery.simulcast_groups) {
        println!("simulcast: one track in layers {}", group.join(" > "));
    }
    let _ = std::io::stdout().flush();
    for warning in &discovery.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// The pipeline options the flags ask for.
fn options(config: &Config) -> pipeline::Options {
    pipeline::Options {
        simulcast_auto: config.simulcast_auto,
    }
}

/// Every `--track` and `--simulcast` selector must select an output: a typo would otherwise be
/// lost silently. Outputs that appear later (sometimes-pads) cannot be checked yet; those
/// selectors are only warned about.
fn check_track_specs(
    config: &Config,
    outputs: &[gstreamer_publisher::media::Output],
) -> Result<()> {
    let selectors = config
        .tracks
        .iter()
        .map(|s| ("--track", s.selector.as_str()))
        .chain(
            config
                .simulcast
                .iter()
                .flatten()
                .map(|s| ("--simulcast", s.as_str())),
        );
    for (flag, selector) in selectors {
        if outputs
            .iter()
            .any(|o| gstreamer_publisher::media::TrackOption::selector_selects(selector, o))
        {
            continue;
        }
        if outputs.is_empty() {
            tracing::warn!("{flag} {selector}: no output is known yet; it applies if one appears");
            continue;
        }
        let names: Vec<String> = outputs
            .iter()
            .map(|o| format!("{}.{}", o.element, o.pad))
            .collect();
        return Err(Error::Usage(format!(
            "{flag} {}: no output of that name; the outputs are {} (name elements with name=)",
            gstreamer_publisher::error::excerpt(selector, 80),
            names.join(", ")
        )));
    }
    Ok(())
}

/// Run until the publisher ends; returns how it ended.
pub async fn run(config: Config, stops: mpsc::UnboundedReceiver<()>) -> Result<()> {
    let credentials = config
        .credentials
        .clone()
        .ok_or_else(|| Error::Usage("no credentials".into()))?;
    let mut pipeline = Pipeline::with_options(&config.pipeline, options(&config))?;
    for o in &pipeline.outputs() {
        tracing::info!("output {}", pipeline::describe(o));
    }
    check_track_specs(&config, &pipeline.outputs())?;
    let stats_out = Reporter::open(&config)?;
    let publisher_options = Options {
        connect_timeout: config.connect_timeout,
        reconnect_timeout: config.reconnect_timeout,
        publish_delay: config.delay,
        ca_file: config.ca_file.clone(),
        force_relay: config.force_relay,
        min_bitrate: config.min_bitrate,
        max_bitrate: config.max_bitrate,
        simulcast: config
            .simulcast
            .iter()
            .chain(pipeline.simulcast_groups())
            .cloned()
            .collect(),
        restart_source: config.restart_pipeline,
        stats_interval: config.stats_interval,
        ..Options::with_credentials(config.urls.clone(), credentials)
    };
    // Fail on credentials we cannot even mint, and on a CA file we cannot read, before
    // anything starts.
    publisher_options.check()?;

    let (control_tx, control_rx) = mpsc::unbounded_channel::<PipelineEvent>();
    let (frames_tx, frames_rx) = mpsc::channel::<Frame>(256);
    // The pipeline and the connection start together: neither waits for the other.
    pipeline.start(control_tx, frames_tx.clone())?;
    let publisher = match Publisher::start(publisher_options) {
        Ok(p) => p,
        Err(e) => {
            pipeline.begin_stop().wait().await;
            return Err(e);
        }
    };
    Front {
        publisher,
        pipeline,
        description: config.pipeline.clone(),
        track_options: config.tracks.clone(),
        tracks: HashMap::new(),
        outputs: HashMap::new(),
        control: control_rx,
        frames_tx,
        stopping: None,
        stats_out,
        refused_frames: 0,
    }
    .run(stops, frames_rx)
    .await
}

/// The pipeline, and the publisher its outputs are tracks of.
struct Front {
    publisher: Publisher,
    pipeline: Pipeline,
    /// The pipeline's description (for a restart) and the `--track` options.
    description: String,
    track_options: Vec<gstreamer_publisher::media::TrackOption>,
    /// The track of each output, and the output of each track.
    tracks: HashMap<OutputId, LocalTrack>,
    outputs: HashMap<TrackId, OutputId>,
    /// The pipeline's events (a new channel for each pipeline), and where its frames go.
    control: mpsc::UnboundedReceiver<PipelineEvent>,
    frames_tx: mpsc::Sender<Frame>,
    /// The pipeline on its way to NULL.
    stopping: Option<Stopping>,
    stats_out: Reporter,
    /// Frames the publisher refused (its queue was full).
    refused_frames: u64,
}

impl Front {
    async fn run(
        mut self,
        mut stops: mpsc::UnboundedReceiver<()>,
        mut frames: mpsc::Receiver<Frame>,
    ) -> Result<()> {
        loop {
            tokio::select! {
                biased;
                Some(()) = stops.recv() => self.publisher.stop(),
                ev = self.publisher.next_event() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => break,
                },
                // An output's OutputAdded comes before its first frame.
                Some(ev) = self.control.recv() => self.on_pipeline(ev),
                Some(frame) = frames.recv() => self.on_frame(frame),
            }
        }
        let stopping = self
            .stopping
            .take()
            .unwrap_or_else(|| self.pipeline.begin_stop());
        stopping.wait().await;
        self.publisher.wait().await
    }

    /// What the room asks of the pipeline.
    fn on_event(&mut self, ev: Event) {
        let output = |track: &TrackId| self.outputs.get(track).copied();
        match ev {
            Event::KeyframeRequested { track } => {
                if let Some(o) = output(&track) {
                    self.pipeline.request_keyframe(o);
                }
            }
            Event::TargetBitrate { track, bps } => {
                if let Some(o) = output(&track) {
                    self.pipeline.set_bitrate(o, bps);
                }
            }
            Event::LayerActive { track, active } => {
                if let Some(o) = output(&track) {
                    self.pipeline.set_layer_active(o, active);
                }
            }
            Event::RestartSource => self.restart_pipeline(),
            Event::StopSource if self.stopping.is_none() => {
                self.stopping = Some(self.pipeline.begin_stop());
            }
            Event::Stats { mut report, last } => {
                report.dropped_frames = self.pipeline.dropped_frames() + self.refused_frames;
                if last {
                    if report.dropped_frames > 0 {
                        tracing::debug!(
                            dropped = report.dropped_frames,
                            "frames dropped because the network side fell behind"
                        );
                    }
                    self.stats_out.write_final(&report);
                } else {
                    self.stats_out.write(&report);
                }
            }
            _ => {}
        }
    }

    fn on_pipeline(&mut self, ev: PipelineEvent) {
        let sent = match ev {
            PipelineEvent::OutputAdded(o) => {
                let id = o.id;
                match self.publisher.add_track(self.spec(o)) {
                    Ok(track) => {
                        self.outputs.insert(track.id(), id);
                        self.tracks.insert(id, track);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            PipelineEvent::OutputChanged(o) => {
                if let Some(track) = self.tracks.get(&o.id) {
                    track.update(self.spec(o));
                }
                Ok(())
            }
            PipelineEvent::OutputEos(id) => {
                if let Some(track) = self.tracks.get(&id) {
                    track.end();
                }
                Ok(())
            }
            PipelineEvent::Started { live } => self.publisher.source_started(live),
            PipelineEvent::Eos => self.publisher.source_ended(),
            PipelineEvent::Error(msg) => self.publisher.source_failed(msg),
        };
        // Only an ended publisher refuses; its end comes as the events' end.
        if let Err(e) = sent {
            tracing::debug!("{e}");
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        let Some(track) = self.tracks.get(&frame.output) else {
            return;
        };
        let written = track.write(EncodedFrame {
            data: frame.data,
            timestamp: frame.running_time,
            duration: frame.duration,
            keyframe: frame.keyframe,
            captured: frame.captured,
        });
        if written == Err(WriteError::Full) {
            self.refused_frames += 1;
        }
    }

    /// The track an output becomes: named after its element and pad, with the settings of
    /// the first `--track` that selects it.
    fn spec(&self, o: Output) -> TrackSpec {
        let settings = self
            .track_options
            .iter()
            .find(|t| t.selects(&o))
            .map(|t| t.settings.clone())
            .unwrap_or_default();
        TrackSpec {
            name: o.element,
            pad: o.pad,
            codec: o.codec,
            format: o.format,
            description: o.caps,
            settings,
        }
    }

    /// Stop the pipeline and start the same description anew; its events come on a new
    /// channel, so nothing of the old one is mistaken for the new one's. Tracks of the old
    /// pipeline wait: the publisher gives their publications to the new outputs.
    fn restart_pipeline(&mut self) {
        // The old pipeline stops on its own thread; nobody needs to wait for it.
        drop(self.pipeline.begin_stop());
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        self.control = control_rx;
        self.tracks.clear();
        let started = self.pipeline.rebuild(&self.description).and_then(|mut p| {
            p.start(control_tx, self.frames_tx.clone())?;
            Ok(p)
        });
        match started {
            Ok(p) => {
                tracing::info!("the pipeline is restarted");
                self.pipeline = p;
            }
            Err(e) => {
                let _ = self.publisher.source_failed(e.to_string());
            }
        }
    }
}

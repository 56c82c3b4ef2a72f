//! The command-line front-end: runs the user's pipeline and publishes its outputs through
//! the library's API ([`gstreamer_publisher::publisher`]), nothing else.
//!
//! The pipeline's events and frames go straight to the publisher's task
//! ([`Publisher::source_channels`]): each output becomes the track of the same id, with the
//! settings of the `--track` that selects it. What the room asks ([`Event`]s: keyframes,
//! target bitrates, simulcast layers, a restart, the stop) comes back here for the pipeline.
//! One task runs this loop beside the publisher's own.

use std::io::Write as _;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cli::Config;
use crate::report::Reporter;
use gstreamer_publisher::error::{Error, Result};
use gstreamer_publisher::pipeline::{self, Pipeline, Stopping};
use gstreamer_publisher::publisher::{Event, Options, Publisher};

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
        tracks: config.tracks.clone(),
        ..Options::with_credentials(config.urls.clone(), credentials)
    };
    // Fail on credentials we cannot even mint, and on a CA file we cannot read, before
    // anything starts.
    publisher_options.check()?;

    // The pipeline and the connection start together: neither waits for the other. The
    // pipeline's events and frames go straight to the publisher's task: an appsink's frame
    // takes one queue to the engine.
    let publisher = Publisher::start(publisher_options)?;
    let (media, frames) = publisher.source_channels();
    if let Err(e) = pipeline.start(media, frames) {
        publisher.stop();
        let _ = publisher.wait().await;
        return Err(e);
    }
    Front {
        publisher,
        pipeline,
        description: config.pipeline.clone(),
        stopping: None,
        stats_out,
    }
    .run(stops)
    .await
}

/// The pipeline, and the publisher its outputs are tracks of: the pipeline's events and
/// frames go to the publisher by themselves (each output is the track of the same id); this
/// carries out what the room asks of the pipeline.
struct Front {
    publisher: Publisher,
    pipeline: Pipeline,
    /// The pipeline's description, for a restart.
    description: String,
    /// The pipeline on its way to NULL.
    stopping: Option<Stopping>,
    stats_out: Reporter,
}

impl Front {
    async fn run(mut self, mut stops: mpsc::UnboundedReceiver<()>) -> Result<()> {
        loop {
            tokio::select! {
                biased;
                Some(()) = stops.recv() => self.publisher.stop(),
                ev = self.publisher.next_event() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => break,
                },
            }
        }
        let stopping = self
            .stopping
            .take()
            .unwrap_or_else(|| self.pipeline.begin_stop());
        stopping.wait().await;
        self.publisher.wait().await
    }

    /// What the room asks of the pipeline; a track is named by its output's id.
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::KeyframeRequested { track } => self.pipeline.request_keyframe(track),
            Event::TargetBitrate { track, bps } => {
                self.pipeline.set_bitrate(track, bps);
            }
            Event::LayerActive { track, active } => self.pipeline.set_layer_active(track, active),
            Event::RestartSource => self.restart_pipeline(),
            Event::StopSource if self.stopping.is_none() => {
                self.stopping = Some(self.pipeline.begin_stop());
            }
            Event::Stats { mut report, last } => {
                report.dropped_frames = self.pipeline.dropped_frames();
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

    /// Stop the pipeline and start the same description anew; nothing of the old one reaches
    /// the publisher once it stops (see `Pipeline::begin_stop`), and the new one's outputs
    /// have new ids. Tracks of the old pipeline wait: the publisher gives their publications
    /// to the new outputs.
    fn restart_pipeline(&mut self) {
        // The old pipeline stops on its own thread; nobody needs to wait for it.
        drop(self.pipeline.begin_stop());
        let started = self.pipeline.rebuild(&self.description).and_then(|mut p| {
            let (media, frames) = self.publisher.source_channels();
            p.start(media, frames)?;
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

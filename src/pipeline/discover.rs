//! `--dry-run`: every output of a pipeline, found without publishing anything, and what the
//! doctor says about it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use tokio::sync::mpsc;

use super::{doctor, error_line, inspect, no_output_error, Pipeline};
use crate::error::Error;
use crate::media::{Output, PipelineEvent};

/// For `--dry-run`: finds every output without publishing anything. Attaches the same sinks
/// as [`Pipeline::start`], prerolls the pipeline (PAUSED: files and devices are opened, no
/// data leaves) so that demuxers expose their pads and caps get negotiated, waits until that
/// is done, an error, or `timeout`, then stops. A live source does not preroll: its static
/// outputs, with the format their caps tell before running, are then all there is.
///
/// While the pipeline is prerolled, the doctor looks for what makes streams fail in browsers
/// (B-frames, 4:4:4 or 10-bit input, non-live sources, long GOPs, unparsed outputs); its
/// warnings come back with the outputs.
pub fn discover(description: &str, timeout: Duration) -> Result<Discovery, Error> {
    discover_with(description, super::Options::default(), timeout)
}

/// [`discover`] with pipeline options (e.g. simulcast layers built in); the groups built are
/// in [`Discovery::simulcast_groups`].
pub fn discover_with(
    description: &str,
    options: super::Options,
    timeout: Duration,
) -> Result<Discovery, Error> {
    let deadline = Instant::now() + timeout;
    let mut pipeline = Pipeline::with_options(description, options)?;
    let (control, mut events) = mpsc::unbounded_channel();
    pipeline.shared.set_channels(control, None);

    // Elements that may still add pads; each says so with no-more-pads.
    let owed = Arc::new(AtomicUsize::new(0));
    for element in inspect::visible_elements(pipeline.pipeline.upcast_ref()) {
        if inspect::has_sometimes_src(&element) {
            owed.fetch_add(1, Ordering::Relaxed);
            let owed = Arc::clone(&owed);
            let once = AtomicBool::new(false);
            element.connect_no_more_pads(move |_| {
                if !once.swap(true, Ordering::Relaxed) {
                    owed.fetch_sub(1, Ordering::Relaxed);
                }
            });
        }
    }
    let recorder = doctor::Recorder::install(&pipeline.pipeline);
    pipeline.attach()?;
    let result = preroll(&pipeline, deadline, &mut events, &owed);
    let warnings = match result {
        Ok(()) => doctor::examine(&pipeline.pipeline, &pipeline.outputs(), &recorder, deadline),
        Err(_) => Vec::new(),
    };
    pipeline.stop();
    result?;
    while let Ok(event) = events.try_recv() {
        if let PipelineEvent::Error(message) = event {
            return Err(Error::Pipeline(message));
        }
    }
    let outputs = pipeline.outputs();
    if outputs.is_empty() {
        return Err(no_output_error());
    }
    Ok(Discovery {
        outputs,
        warnings,
        simulcast_groups: pipeline.simulcast_groups().to_vec(),
    })
}

/// What [`discover`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Discovery {
    /// The outputs found, in the order of their ids.
    pub outputs: Vec<Output>,
    /// The doctor's warnings: one line each, naming the element and saying the fix; no
    /// duplicates.
    pub warnings: Vec<String>,
    /// The simulcast groups built (`--simulcast auto`), highest first.
    pub simulcast_groups: Vec<Vec<String>>,
}

/// Brings the pipeline to PAUSED and waits until every output is known and negotiated.
fn preroll(
    pipeline: &Pipeline,
    deadline: Instant,
    events: &mut mpsc::UnboundedReceiver<PipelineEvent>,
    owed: &AtomicUsize,
) -> Result<(), Error> {
    let Some(bus) = pipeline.pipeline.bus() else {
        return Ok(());
    };
    let mut prerolled = match pipeline.pipeline.set_state(gst::State::Paused) {
        Ok(gst::StateChangeSuccess::NoPreroll) => return Ok(()),
        Ok(gst::StateChangeSuccess::Success) => true,
        Ok(_) => false,
        Err(_) => {
            return Err(Error::Pipeline(pipeline.pending_bus_error().unwrap_or_else(|| {
                "the pipeline cannot start (state change to PAUSED failed); run it with gst-launch-1.0 to see why".into()
            })))
        }
    };
    loop {
        while let Ok(event) = events.try_recv() {
            if let PipelineEvent::Error(message) = event {
                return Err(Error::Pipeline(message));
            }
        }
        if prerolled && owed.load(Ordering::Relaxed) == 0 && pipeline.shared.all_negotiated() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::debug!("discovery timed out; reporting the outputs found so far");
            return Ok(());
        }
        let wait = (deadline - now).min(Duration::from_millis(20));
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(wait.as_nanos() as u64)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => return Err(Error::Pipeline(error_line(&msg, e))),
            gst::MessageView::AsyncDone(_) if msg.src() == Some(pipeline.pipeline.upcast_ref()) => {
                prerolled = true;
            }
            gst::MessageView::Eos(_) => return Ok(()),
            _ => {}
        }
    }
}

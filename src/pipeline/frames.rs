//! Frames out of the appsinks: each sample becomes a [`Frame`] with its running time, sent
//! without ever blocking the streaming thread (a full channel drops the frame and counts it).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::sink::Shared;
use crate::media::{Codec, Frame, MediaKind, OutputId};

pub(crate) fn callbacks(
    shared: &Arc<Shared>,
    id: OutputId,
    codec: Codec,
    frames: mpsc::Sender<Frame>,
) -> gst_app::AppSinkCallbacks {
    let shared = Arc::clone(shared);
    gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            // Only fails when flushing or at EOS, when there is nothing to take.
            let Ok(sample) = sink.pull_sample() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            if shared.detached.load(Ordering::Acquire) {
                return Ok(gst::FlowSuccess::Ok);
            }
            let Some(frame) = frame_from_sample(id, codec, &sample) else {
                return Ok(gst::FlowSuccess::Ok);
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = frames.try_send(frame) {
                let dropped = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped == 1 || dropped % 100 == 0 {
                    tracing::warn!(dropped, "frames channel full; dropping frames");
                }
            }
            Ok(gst::FlowSuccess::Ok)
        })
        .build()
}

/// One encoded frame, or `None` for buffers that are not media (gaps, Opus headers) or that
/// fall outside the segment.
fn frame_from_sample(id: OutputId, codec: Codec, sample: &gst::Sample) -> Option<Frame> {
    let buffer = sample.buffer()?;
    if buffer.flags().contains(gst::BufferFlags::GAP) || buffer.size() == 0 {
        return None;
    }
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let running_time = segment.to_running_time(buffer.pts().or(buffer.dts()))?;
    let map = buffer.map_readable().ok()?;
    let data = map.as_slice();
    if super::is_codec_header(codec, buffer, data) {
        return None;
    }
    Some(Frame {
        output: id,
        running_time: Duration::from_nanos(running_time.nseconds()),
        duration: buffer
            .duration()
            .map(|d| Duration::from_nanos(d.nseconds())),
        keyframe: codec.kind() == MediaKind::Audio
            || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        data: std::sync::Arc::from(data),
        captured: std::time::Instant::now(),
    })
}

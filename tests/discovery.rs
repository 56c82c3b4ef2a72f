//! The pipeline driver against real GStreamer: output discovery, the errors a user sees, and
//! frames from a running pipeline. No network.

use std::time::{Duration, Instant};

use gstreamer::prelude::*;
use tokio::sync::mpsc;

use gstreamer_publisher::error::Error;
use gstreamer_publisher::media::{Codec, Frame, MediaKind, Output, OutputId, PipelineEvent};
use gstreamer_publisher::pipeline::{describe, discover, Pipeline};

const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

use gstreamer_publisher::media::BROWSER_H264_PROFILES as BROWSER_PROFILES;

fn discover_ok(description: &str) -> Vec<Output> {
    match discover(description, DISCOVER_TIMEOUT).map(|d| d.outputs) {
        Ok(outputs) => {
            for o in &outputs {
                eprintln!("{}", describe(o));
            }
            outputs
        }
        Err(e) => panic!("discover({description:?}) failed: {e}"),
    }
}

fn one_output(description: &str, codec: Codec) -> Output {
    let outputs = discover_ok(description);
    assert_eq!(outputs.len(), 1, "{description}: {outputs:?}");
    let output = outputs.into_iter().next().expect("one output");
    assert_eq!(output.codec, codec, "{description}: {output:?}");
    assert_eq!(output.kind(), codec.kind());
    assert_eq!(output.id, OutputId(0));
    output
}

/// The `Error::Pipeline` message for `description`, checked to be one line.
fn pipeline_error(description: &str) -> String {
    let message = match Pipeline::new(description) {
        Ok(_) => panic!("Pipeline::new({description:?}) should fail"),
        Err(Error::Pipeline(message)) => message,
        Err(other) => panic!("{description:?}: wrong error kind: {other:?}"),
    };
    eprintln!("{description:?} -> {message}");
    assert!(!message.contains('\n'), "not one line: {message}");
    // discover() reports the same problem (element numbers aside: they count up per process).
    let unnumbered = |m: &str| m.replace(|c: char| c.is_ascii_digit(), "");
    match discover(description, DISCOVER_TIMEOUT) {
        Err(Error::Pipeline(m)) => assert_eq!(unnumbered(&m), unnumbered(&message)),
        other => panic!("discover({description:?}) should fail the same way: {other:?}"),
    }
    message
}

// ---------------------------------------------------------------- discovery, one per codec

#[test]
fn h264_output() {
    let o = one_output("videotestsrc num-buffers=30 ! x264enc", Codec::H264);
    // GStreamer numbers unnamed elements per process: x264enc0, x264enc1, …
    assert!(o.element.starts_with("x264enc"), "{}", o.element);
    assert_eq!(o.pad, "src");
    // discover prerolls through the publishing chain: the real negotiated format.
    assert_eq!((o.format.width, o.format.height), (Some(320), Some(240)));
    let profile = o
        .format
        .h264_profile
        .as_deref()
        .expect("negotiated profile");
    assert!(BROWSER_PROFILES.contains(&profile), "{profile}");
    assert!(!o.caps.contains("codec_data"), "{}", o.caps);
}

#[test]
fn vp8_output() {
    let o = one_output("videotestsrc num-buffers=30 ! vp8enc", Codec::Vp8);
    assert_eq!(o.format.width, Some(320));
}

#[test]
fn vp9_output() {
    one_output(
        "videotestsrc num-buffers=30 ! vp9enc deadline=1",
        Codec::Vp9,
    );
}

#[test]
fn av1_output() {
    let o = one_output(
        "videotestsrc num-buffers=30 ! av1enc usage-profile=realtime cpu-used=10",
        Codec::Av1,
    );
    assert!(o.caps.contains("obu-stream"), "{}", o.caps);
}

#[test]
fn opus_output() {
    let o = one_output("audiotestsrc num-buffers=30 ! opusenc", Codec::Opus);
    assert_eq!(o.kind(), MediaKind::Audio);
    assert_eq!(o.format.sample_rate, Some(48000));
    assert!(describe(&o).contains("audio"), "{}", describe(&o));
}

// ---------------------------------------------------------------- what can follow an encoder

#[test]
fn encoder_then_queue() {
    let o = one_output(
        "videotestsrc num-buffers=30 ! x264enc ! queue name=q",
        Codec::H264,
    );
    assert_eq!(o.element, "q");
}

#[test]
fn encoder_then_capsfilter() {
    let description =
        "videotestsrc num-buffers=30 ! x264enc ! capsfilter caps=video/x-h264,profile=baseline";
    let p = Pipeline::new(description).expect("pipeline");
    let outputs = p.outputs();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].codec, Codec::H264);
    // Known from the caps query alone, before anything runs.
    assert_eq!(outputs[0].format.h264_profile.as_deref(), Some("baseline"));
    drop(p);
    let o = one_output(description, Codec::H264);
    // x264's baseline sets constraint_set1, which h264parse reports as constrained-baseline.
    let profile = o.format.h264_profile.as_deref();
    assert!(
        matches!(profile, Some("baseline" | "constrained-baseline")),
        "{profile:?}"
    );
    assert!(o
        .format
        .h264_profile_level_id
        .as_deref()
        .is_some_and(|id| id.starts_with("42")));
}

#[test]
fn encoder_then_caps_string_then_queue() {
    let o = one_output(
        "videotestsrc num-buffers=30 ! x264enc ! video/x-h264,profile=main ! queue",
        Codec::H264,
    );
    assert_eq!(o.format.h264_profile.as_deref(), Some("main"));
}

#[test]
fn trailing_caps_string_ends_a_pipeline() {
    // gst-launch only takes a caps string between two elements; we turn a trailing one into a
    // capsfilter, so the output is the caps string's and its constraint holds.
    let o = one_output(
        "videotestsrc num-buffers=30 ! x264enc ! video/x-h264,profile=baseline",
        Codec::H264,
    );
    assert_eq!(
        o.format.h264_profile.as_deref(),
        Some("constrained-baseline"),
        "{o:?}"
    );
    assert!(
        o.format
            .h264_profile_level_id
            .as_deref()
            .unwrap_or("")
            .starts_with("42e0"),
        "{o:?}"
    );
    // Also in the middle of a description, before the next branch.
    let outputs = discover(
        "videotestsrc num-buffers=30 ! x264enc ! video/x-h264,profile=main audiotestsrc num-buffers=30 ! opusenc",
        Duration::from_secs(10),
    )
    .unwrap()
    .outputs;
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert_eq!(outputs[0].format.h264_profile.as_deref(), Some("main"));
}

#[test]
fn vp9_and_av1_encoders_get_4_2_0_input() {
    // Left alone, both pick 4:4:4 (VP9 profile 3 at 12 bit, AV1 High), which WebRTC decoders
    // refuse. The output caps don't say the chroma format, so check what the encoder was fed.
    for enc in [
        "vp9enc deadline=1",
        "av1enc usage-profile=realtime cpu-used=10",
    ] {
        let desc =
            format!("videotestsrc num-buffers=5 ! video/x-raw,width=320,height=240 ! {enc} name=e");
        let mut p = Pipeline::new(&desc).unwrap();
        let (ctl, mut ctl_rx) = tokio::sync::mpsc::unbounded_channel();
        let (frames, _frames_rx) = tokio::sync::mpsc::channel(64);
        p.start(ctl, frames).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(gstreamer_publisher::media::PipelineEvent::OutputAdded(_)) = ctl_rx.try_recv()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let fed = encoder_input_format(&p, "e");
        p.stop();
        assert!(
            ["I420", "NV12", "YV12"].contains(&fed.as_str()),
            "{enc} was fed {fed}"
        );
    }
}

/// The raw format negotiated on the sink pad of element `name`.
fn encoder_input_format(p: &Pipeline, name: &str) -> String {
    let e = p.gst_pipeline().by_name(name).expect("element");
    let caps = e
        .static_pad("sink")
        .and_then(|s| s.current_caps())
        .expect("negotiated caps");
    caps.structure(0)
        .and_then(|s| s.get::<String>("format").ok())
        .unwrap_or_default()
}

#[test]
fn an_explicit_4_4_4_input_is_respected() {
    let desc = "videotestsrc num-buffers=5 ! video/x-raw,width=320,height=240,format=Y444 ! vp9enc deadline=1 name=e";
    let outputs = discover(desc, Duration::from_secs(10)).unwrap().outputs;
    assert_eq!(outputs.len(), 1);
}

#[test]
fn encoder_then_parser() {
    let o = one_output(
        "videotestsrc num-buffers=30 ! x264enc ! h264parse",
        Codec::H264,
    );
    assert_eq!(o.element, "h264parse0");
}

#[test]
fn two_videos_and_one_audio() {
    let description = "videotestsrc num-buffers=30 ! x264enc name=cam \
                       videotestsrc num-buffers=30 pattern=ball ! vp8enc name=screen \
                       audiotestsrc num-buffers=30 ! opusenc name=mic";
    let p = Pipeline::new(description).expect("pipeline");
    let found: Vec<(String, Codec, OutputId)> = p
        .outputs()
        .into_iter()
        .map(|o| (o.element, o.codec, o.id))
        .collect();
    assert_eq!(
        found,
        vec![
            ("cam".to_string(), Codec::H264, OutputId(0)),
            ("screen".to_string(), Codec::Vp8, OutputId(1)),
            ("mic".to_string(), Codec::Opus, OutputId(2)),
        ]
    );
    drop(p);
    let outputs = discover_ok(description);
    let kinds: Vec<MediaKind> = outputs.iter().map(|o| o.kind()).collect();
    assert_eq!(
        kinds,
        vec![MediaKind::Video, MediaKind::Video, MediaKind::Audio]
    );
    assert!(outputs
        .iter()
        .all(|o| o.format.width.is_some() || o.format.sample_rate.is_some()));
}

#[test]
fn outputs_inside_a_bin() {
    let outputs = discover_ok("( videotestsrc num-buffers=30 ! vp8enc name=inner )");
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].element, "inner");
}

// ---------------------------------------------------------------- sometimes pads

fn make_webm(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("clip.webm");
    let path = path.to_str().expect("utf-8 temp path").to_string();
    fixture(&format!(
        "videotestsrc num-buffers=30 ! video/x-raw,width=160,height=120 ! vp8enc deadline=1 ! webmmux ! filesink location={path}"
    ));
    path
}

#[test]
fn demuxer_sometimes_pad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_webm(&dir);
    let description = format!("filesrc location={path} ! matroskademux name=demux");
    // Nothing to see before running, but the demuxer may still add outputs: no error.
    let p = Pipeline::new(&description).expect("pipeline with a demuxer");
    assert!(p.outputs().is_empty());
    drop(p);
    let outputs = discover_ok(&description);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let o = &outputs[0];
    assert_eq!(o.codec, Codec::Vp8);
    assert_eq!(o.element, "demux");
    assert!(o.pad.starts_with("video_"), "{}", o.pad);
    assert_eq!((o.format.width, o.format.height), (Some(160), Some(120)));
}

#[test]
fn demuxer_pad_linked_by_name_is_not_an_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_webm(&dir);
    // gst-launch links d.video_0 itself: the queue after it is the output.
    let outputs = discover_ok(&format!(
        "filesrc location={path} ! matroskademux name=d d.video_0 ! queue name=q"
    ));
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(
        (outputs[0].element.as_str(), outputs[0].codec),
        ("q", Codec::Vp8)
    );
}

#[test]
fn demuxer_pad_in_unsupported_codec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raw.mkv");
    let path = path.to_str().expect("utf-8 temp path").to_string();
    fixture(&format!(
        "audiotestsrc num-buffers=10 ! audio/x-raw,format=S16LE ! matroskamux ! filesink location={path}"
    ));
    match discover(
        &format!("filesrc location={path} ! matroskademux name=d"),
        DISCOVER_TIMEOUT,
    ) {
        Err(Error::Pipeline(m)) => {
            eprintln!("{m}");
            assert!(m.contains("d.audio_0") && m.contains("raw audio"), "{m}");
            assert!(m.contains("fakesink"), "{m}");
        }
        other => panic!("expected a pipeline error: {other:?}"),
    }
}

#[test]
fn queue_after_demuxer_is_decided_by_negotiation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_webm(&dir);
    // The queue's caps are ANY until the demuxer links to it: not an output yet, not an error.
    let description = format!("filesrc location={path} ! matroskademux ! queue name=q");
    let p = Pipeline::new(&description).expect("pipeline");
    assert!(p.outputs().is_empty());
    drop(p);
    let outputs = discover_ok(&description);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(
        (outputs[0].element.as_str(), outputs[0].codec),
        ("q", Codec::Vp8)
    );

    let mut run = start(&description);
    let (events, frames) = run.collect_until_eos();
    assert_eq!(added(&events).len(), 1, "{events:?}");
    assert_eq!(frames.len(), 30);
}

#[test]
fn raw_output_found_by_negotiation_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_webm(&dir);
    match discover(
        &format!("filesrc location={path} ! decodebin ! queue name=q"),
        DISCOVER_TIMEOUT,
    ) {
        Err(Error::Pipeline(m)) => {
            eprintln!("{m}");
            assert!(m.contains("q.src") && m.contains("raw video"), "{m}");
        }
        other => panic!("expected a pipeline error: {other:?}"),
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn unsupported_codec() {
    let m = pipeline_error("videotestsrc num-buffers=5 ! x265enc");
    assert!(m.contains("x265enc") && m.contains("video/x-h265"), "{m}");
    assert!(m.contains("x264enc"), "says what to use instead: {m}");
}

#[test]
fn raw_video_only() {
    let m = pipeline_error("videotestsrc");
    assert!(m.contains("raw video") && m.contains("encoder"), "{m}");
}

#[test]
fn raw_audio_next_to_encoded_video() {
    let m = pipeline_error("videotestsrc ! vp8enc audiotestsrc name=mic");
    assert!(m.contains("mic.src") && m.contains("opusenc"), "{m}");
}

#[test]
fn no_encoded_output() {
    let m = pipeline_error("videotestsrc ! x264enc ! fakesink");
    assert!(m.contains("no encoded output"), "{m}");
}

#[test]
fn invalid_syntax() {
    let m = pipeline_error("videotestsrc ! ! x264enc");
    assert!(m.contains("syntax"), "{m}");
}

#[test]
fn unknown_element() {
    let m = pipeline_error("videotestsrc ! nosuchelement");
    assert!(
        m.contains("'nosuchelement'") && m.contains("gst-inspect-1.0"),
        "{m}"
    );
}

#[test]
fn unknown_property() {
    let m = pipeline_error("videotestsrc ! x264enc bogus=1");
    assert!(m.contains("bogus"), "{m}");
}

#[test]
fn empty_description() {
    pipeline_error("   ");
}

// ---------------------------------------------------------------- running

struct Running {
    pipeline: Pipeline,
    control: mpsc::UnboundedReceiver<PipelineEvent>,
    frames: mpsc::Receiver<Frame>,
    /// What `PipelineEvent::Started` said.
    live: Option<bool>,
}

fn start(description: &str) -> Running {
    let mut pipeline = Pipeline::new(description).expect("pipeline");
    let (control_tx, control) = mpsc::unbounded_channel();
    let (frames_tx, frames) = mpsc::channel(1000);
    pipeline
        .start(control_tx, frames_tx)
        .expect("pipeline starts");
    Running {
        pipeline,
        control,
        frames,
        live: None,
    }
}

impl Running {
    /// The next control event, or a panic after WAIT.
    /// The next event about outputs, EOS or errors (`Started`, which says whether the
    /// pipeline is live, is checked where it matters and passed over here).
    fn next_event(&mut self) -> PipelineEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.control.try_recv() {
                Ok(PipelineEvent::Started { live }) => self.live = Some(live),
                Ok(event) => return event,
                Err(mpsc::error::TryRecvError::Disconnected) => panic!("control channel closed"),
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            assert!(
                Instant::now() < deadline,
                "no control event within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (up to WAIT) for `Started`; other events meanwhile are dropped.
    fn wait_started(&mut self) {
        let deadline = Instant::now() + WAIT;
        while self.live.is_none() {
            match self.control.try_recv() {
                Ok(PipelineEvent::Started { live }) => self.live = Some(live),
                Ok(_) | Err(mpsc::error::TryRecvError::Empty) => {}
                Err(mpsc::error::TryRecvError::Disconnected) => panic!("control channel closed"),
            }
            assert!(Instant::now() < deadline, "no Started within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The next frame, or `None` once no frame came for a while.
    fn next_frame(&mut self, patience: Duration) -> Option<Frame> {
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(frame) = self.frames.try_recv() {
                return Some(frame);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Collects control events until pipeline EOS; frames received meanwhile are returned.
    fn collect_until_eos(&mut self) -> (Vec<PipelineEvent>, Vec<Frame>) {
        let mut events = Vec::new();
        loop {
            let event = self.next_event();
            let eos = matches!(event, PipelineEvent::Eos);
            if let PipelineEvent::Error(m) = &event {
                panic!("pipeline error: {m}");
            }
            events.push(event);
            if eos {
                break;
            }
        }
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame(Duration::from_millis(200)) {
            frames.push(frame);
        }
        (events, frames)
    }
}

fn added(events: &[PipelineEvent]) -> Vec<Output> {
    events
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::OutputAdded(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn assert_running_times(frames: &[Frame]) {
    for pair in frames.windows(2) {
        assert!(
            pair[1].running_time >= pair[0].running_time,
            "running time went back: {:?} then {:?}",
            pair[0].running_time,
            pair[1].running_time
        );
    }
}

#[test]
fn start_h264_without_profile_gets_a_browser_profile() {
    let mut run = start(
        "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240 ! x264enc tune=zerolatency",
    );
    let (events, frames) = run.collect_until_eos();
    let outputs = added(&events);
    assert_eq!(outputs.len(), 1, "{events:?}");
    let o = &outputs[0];
    assert_eq!(o.codec, Codec::H264);
    assert_eq!((o.format.width, o.format.height), (Some(320), Some(240)));
    let profile = o.format.h264_profile.as_deref().expect("profile in caps");
    assert!(BROWSER_PROFILES.contains(&profile), "negotiated {profile}");
    let id = o
        .format
        .h264_profile_level_id
        .as_deref()
        .expect("profile-level-id");
    assert!(
        id.len() == 6 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, PipelineEvent::OutputEos(i) if *i == o.id)));
    assert!(matches!(events.last(), Some(PipelineEvent::Eos)));

    assert_eq!(frames.len(), 60);
    assert!(frames.iter().all(|f| f.output == o.id));
    assert!(frames[0].keyframe, "first frame must be a keyframe");
    assert!(
        frames[0].data.starts_with(&[0, 0, 0, 1]) || frames[0].data.starts_with(&[0, 0, 1]),
        "Annex-B start code expected"
    );
    assert_running_times(&frames);
    assert!(frames[1].running_time > frames[0].running_time);
    assert_eq!(run.pipeline.dropped_frames(), 0);
    run.pipeline.stop();
    run.pipeline.stop();
}

#[test]
fn start_opus() {
    let mut run = start("audiotestsrc num-buffers=50 ! opusenc");
    let (events, frames) = run.collect_until_eos();
    let outputs = added(&events);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].codec, Codec::Opus);
    assert_eq!(outputs[0].format.sample_rate, Some(48000));
    assert!(!frames.is_empty());
    assert!(frames.iter().all(|f| f.keyframe));
    assert!(
        frames.iter().all(|f| !f.data.starts_with(b"Opus")),
        "headers are not frames"
    );
    assert_running_times(&frames);
    assert!(frames[0].duration.is_some());
}

#[test]
fn start_av1_gives_temporal_units() {
    let mut run = start(
        "videotestsrc num-buffers=10 ! video/x-raw,width=160,height=120 ! av1enc usage-profile=realtime cpu-used=10",
    );
    let (events, frames) = run.collect_until_eos();
    let outputs = added(&events);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].codec, Codec::Av1);
    assert_eq!(outputs[0].format.width, Some(160));
    assert_eq!(frames.len(), 10);
    assert!(frames[0].keyframe);
    // A temporal unit starts with a temporal delimiter OBU (type 2, header byte 0x12).
    assert_eq!(
        frames[0].data.first(),
        Some(&0x12),
        "{:02x?}",
        &frames[0].data[..4.min(frames[0].data.len())]
    );
    assert_running_times(&frames);
}

#[test]
fn start_vp8_and_opus_together() {
    let mut run = start(
        "videotestsrc num-buffers=20 ! video/x-raw,width=160,height=120 ! vp8enc deadline=1 \
         audiotestsrc num-buffers=20 ! opusenc",
    );
    let (events, frames) = run.collect_until_eos();
    let outputs = added(&events);
    assert_eq!(outputs.len(), 2, "{events:?}");
    let eos: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, PipelineEvent::OutputEos(_)))
        .collect();
    assert_eq!(eos.len(), 2);
    for o in &outputs {
        let mine: Vec<Frame> = frames
            .iter()
            .filter(|f| f.output == o.id)
            .cloned()
            .collect();
        assert!(!mine.is_empty(), "no frames for {o:?}");
        assert!(mine[0].keyframe);
        assert_running_times(&mine);
    }
}

#[test]
fn start_demuxer_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_webm(&dir);
    let mut run = start(&format!("filesrc location={path} ! matroskademux"));
    let (events, frames) = run.collect_until_eos();
    let outputs = added(&events);
    assert_eq!(outputs.len(), 1, "{events:?}");
    assert_eq!(outputs[0].codec, Codec::Vp8);
    assert_eq!(run.pipeline.outputs().len(), 1);
    assert_eq!(frames.len(), 30);
    assert!(frames[0].keyframe);
}

#[test]
fn request_keyframe_makes_one() {
    let mut run = start(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=300",
    );
    let id = match run.next_event() {
        PipelineEvent::OutputAdded(o) => o.id,
        other => panic!("expected OutputAdded, got {other:?}"),
    };
    // Let the first (key)frame and a few delta frames through.
    let mut seen_delta = false;
    for _ in 0..100 {
        let frame = run.next_frame(WAIT).expect("frames keep coming");
        if !frame.keyframe {
            seen_delta = true;
        }
        if seen_delta && frame.running_time > Duration::from_millis(200) {
            break;
        }
    }
    assert!(
        seen_delta,
        "x264enc with key-int-max=300 makes delta frames"
    );
    run.pipeline.request_keyframe(id);
    let mut got = None;
    for n in 0..15 {
        let frame = run.next_frame(WAIT).expect("frames keep coming");
        if frame.keyframe {
            got = Some(n);
            break;
        }
    }
    assert!(got.is_some(), "no keyframe within 15 frames of the request");
    // Requests for audio or unknown ids are ignored.
    run.pipeline.request_keyframe(OutputId(99));
    run.pipeline.stop();
}

#[test]
fn bus_error_names_the_element() {
    let mut p = Pipeline::new("filesrc name=file location=/nonexistent/clip.webm ! matroskademux")
        .expect("parses");
    let (control_tx, _control) = mpsc::unbounded_channel();
    let (frames_tx, _frames) = mpsc::channel(10);
    match p.start(control_tx, frames_tx) {
        Err(Error::Pipeline(m)) => {
            eprintln!("{m}");
            assert!(m.starts_with("pipeline error from file: "), "{m}");
            assert!(!m.contains('\n'));
        }
        other => panic!("expected a pipeline error: {other:?}"),
    }
}

#[test]
fn start_reports_a_sometimes_pad_in_an_unsupported_codec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raw.mkv");
    let path = path.to_str().expect("utf-8 temp path").to_string();
    fixture(&format!(
        "audiotestsrc num-buffers=10 ! audio/x-raw,format=S16LE ! matroskamux ! filesink location={path}"
    ));
    let mut run = start(&format!("filesrc location={path} ! matroskademux name=d"));
    match run.next_event() {
        PipelineEvent::Error(m) => {
            assert!(m.contains("d.audio_0") && m.contains("raw audio"), "{m}")
        }
        other => panic!("expected an error event: {other:?}"),
    }
}

#[test]
fn full_frames_channel_drops_and_counts() {
    let mut pipeline = Pipeline::new(
        "videotestsrc num-buffers=10 ! video/x-raw,width=160,height=120,framerate=100/1 ! vp8enc deadline=1",
    )
    .expect("pipeline");
    let (control_tx, control) = mpsc::unbounded_channel();
    let (frames_tx, _frames) = mpsc::channel(1);
    pipeline.start(control_tx, frames_tx).expect("starts");
    let mut run = Running {
        pipeline,
        control,
        frames: mpsc::channel(1).1,
        live: None,
    };
    run.collect_until_eos();
    assert_eq!(run.pipeline.dropped_frames(), 9);
}

#[test]
fn h264_profile_browsers_cannot_decode_is_an_error() {
    // 4:4:4 input forces x264enc into High 4:4:4, which the publishing chain refuses.
    let m = match discover(
        "videotestsrc num-buffers=5 ! video/x-raw,format=Y444 ! x264enc",
        DISCOVER_TIMEOUT,
    ) {
        Err(Error::Pipeline(m)) => m,
        other => panic!("expected a pipeline error: {other:?}"),
    };
    eprintln!("{m}");
    assert!(
        m.starts_with("pipeline error from ") && m.contains("baseline"),
        "{m}"
    );
}

#[test]
fn non_live_pipeline_is_paced_by_the_clock() {
    // 15 frames at 30 fps: half a second of video must not arrive all at once.
    let t = Instant::now();
    let mut run = start("videotestsrc num-buffers=15 ! video/x-raw,width=160,height=120,framerate=30/1 ! vp8enc deadline=1");
    let (_, frames) = run.collect_until_eos();
    assert_eq!(frames.len(), 15);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn pipeline_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pipeline>();
}

#[test]
fn start_says_whether_the_pipeline_is_live() {
    // `Started` and `OutputAdded` come from different threads, in either order.
    let mut run = start("videotestsrc is-live=true ! vp8enc deadline=1");
    assert!(matches!(run.next_event(), PipelineEvent::OutputAdded(_)));
    run.wait_started();
    assert_eq!(run.live, Some(true));
    let mut run = start("videotestsrc num-buffers=5 ! vp8enc deadline=1");
    let _ = run.collect_until_eos();
    assert_eq!(run.live, Some(false));
}

#[test]
fn stop_and_drop_are_quick() {
    let mut run = start("videotestsrc is-live=true ! vp8enc deadline=1");
    assert!(matches!(run.next_event(), PipelineEvent::OutputAdded(_)));
    let t = Instant::now();
    run.pipeline.stop();
    run.pipeline.stop();
    drop(run);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn discover_live_source_returns_static_outputs() {
    let t = Instant::now();
    let outputs = discover_ok("videotestsrc is-live=true ! x264enc");
    assert_eq!(outputs.len(), 1);
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// Runs a fixture pipeline (one that writes a file) to EOS.
fn fixture(description: &str) {
    harness::run_to_eos(description, WAIT);
}

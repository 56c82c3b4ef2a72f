//! A program that makes its own media and publishes it with the library.
//!
//! It draws 640x360 frames itself (a bar that moves across a gradient), encodes them with an
//! encoder of its own choosing (here GStreamer's x264enc behind an appsrc, but any H.264
//! encoder would do) and writes each access unit to a [`LocalTrack`]. It answers the room:
//! a keyframe request makes the next frame a keyframe, a target bitrate goes to the encoder.
//!
//! ```text
//! LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_TOKEN=… cargo run --release --example publish_frames -- 10
//! ```
//!
//! Credentials come from the environment: `LIVEKIT_TOKEN`, or `LIVEKIT_API_KEY`,
//! `LIVEKIT_API_SECRET` and `LIVEKIT_ROOM` to mint one. The argument is how many seconds to
//! publish (default 10). Exit code 0 after a clean leave, 1 on any error (one line).

use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_publisher::{
    Codec, CredentialParts, EncodedFrame, Event, LocalTrack, Options, Publisher, Source, TrackSpec,
};

const WIDTH: usize = 640;
const HEIGHT: usize = 360;
const FPS: u64 = 30;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| {
            s.parse()
                .map_err(|_| format!("{s:?} is not a number of seconds"))
        })
        .transpose()?
        .unwrap_or(10);
    let options = options_from_env()?;
    gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}"))?;
    let encoder = Encoder::new()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let mut publisher = Publisher::connect(options)
            .await
            .map_err(|e| e.to_string())?;
        println!("joined the room");
        let track = publisher
            .add_track(
                TrackSpec::new("generated", Codec::H264)
                    .size(WIDTH as u32, HEIGHT as u32)
                    .framerate(FPS as i32, 1)
                    .bitrate(1_000_000, true)
                    .source(Source::Camera)
                    // This program answers keyframe requests (see below).
                    .keyframes_on_request(true),
            )
            .map_err(|e| e.to_string())?;
        let frames = publish(&mut publisher, &track, &encoder, seconds).await;
        track.end();
        println!("sent {frames} frames");
        publisher.close().await.map_err(|e| e.to_string())
    })
}

/// Draws, encodes and writes frames in real time for `seconds`, answering the room's
/// events between frames. Returns how many encoded frames were written.
async fn publish(
    publisher: &mut Publisher,
    track: &LocalTrack,
    encoder: &Encoder,
    seconds: u64,
) -> u64 {
    let start = Instant::now();
    let period = Duration::from_nanos(1_000_000_000 / FPS);
    let mut tick = tokio::time::interval(period);
    let mut written = 0;
    for n in 0..seconds * FPS {
        tick.tick().await;
        let timestamp = start.elapsed();
        encoder.push(draw(n), timestamp);
        while let Some((data, keyframe, pts)) = encoder.pull() {
            if track.write(EncodedFrame::new(data, pts, keyframe)).is_ok() {
                written += 1;
            }
        }
        while let Some(event) = publisher.try_event() {
            match event {
                Event::KeyframeRequested { .. } => encoder.force_keyframe(),
                Event::TargetBitrate { bps, .. } => encoder.set_bitrate(bps),
                Event::TrackPublished { sid, .. } => println!("published as {sid}"),
                _ => {}
            }
        }
    }
    written
}

/// One I420 picture: a luma gradient with a bright bar at a position that moves with `n`.
fn draw(n: u64) -> Vec<u8> {
    let mut picture = vec![128u8; WIDTH * HEIGHT * 3 / 2];
    let bar = (n as usize * 8) % WIDTH;
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            picture[y * WIDTH + x] = if x.abs_diff(bar) < 24 {
                235
            } else {
                (16 + (x + y) * 200 / (WIDTH + HEIGHT)) as u8
            };
        }
    }
    picture
}

/// The program's own encoder: x264enc between an appsrc and an appsink.
struct Encoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    x264: gst::Element,
}

impl Encoder {
    fn new() -> Result<Encoder, String> {
        let description = format!(
            "appsrc name=src is-live=true format=time \
               caps=video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={FPS}/1 ! \
             x264enc name=enc tune=zerolatency speed-preset=veryfast bitrate=1000 key-int-max=120 ! \
             h264parse config-interval=-1 ! \
             video/x-h264,stream-format=byte-stream,alignment=au,profile=constrained-baseline ! \
             appsink name=sink sync=false"
        );
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| format!("cannot build the encoder: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())?;
        let by_name = |name: &str| {
            pipeline
                .by_name(name)
                .ok_or_else(|| format!("no element {name}"))
        };
        let src = by_name("src")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| "src is not an appsrc".to_string())?;
        let sink = by_name("sink")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| "sink is not an appsink".to_string())?;
        let x264 = by_name("enc")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start the encoder: {e}"))?;
        Ok(Encoder {
            pipeline,
            src,
            sink,
            x264,
        })
    }

    fn push(&self, picture: Vec<u8>, timestamp: Duration) {
        let mut buffer = gst::Buffer::from_mut_slice(picture);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(timestamp.as_nanos() as u64));
            b.set_duration(gst::ClockTime::from_nseconds(1_000_000_000 / FPS));
        }
        let _ = self.src.push_buffer(buffer);
    }

    /// An encoded access unit if one is ready: (Annex B bytes, keyframe, timestamp).
    fn pull(&self) -> Option<(Vec<u8>, bool, Duration)> {
        let sample = self
            .sink
            .try_pull_sample(gst::ClockTime::from_mseconds(0))?;
        let buffer = sample.buffer()?;
        let map = buffer.map_readable().ok()?;
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let pts = buffer
            .pts()
            .map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()));
        Some((map.as_slice().to_vec(), keyframe, pts))
    }

    fn force_keyframe(&self) {
        let event = gstreamer_video::DownstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        let _ = self.x264.send_event(event);
    }

    fn set_bitrate(&self, bps: u64) {
        // x264enc takes kbit/s.
        let kbps = (bps / 1000).clamp(100, 100_000) as u32;
        self.x264.set_property("bitrate", kbps);
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn options_from_env() -> Result<Options, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let url = var("LIVEKIT_URL").unwrap_or_else(|| "ws://127.0.0.1:7880".into());
    let urls = vec![gstreamer_publisher::normalise_url(&url).map_err(|e| e.to_string())?];
    let defaults = CredentialParts {
        identity: Some("publish-frames".into()),
        ..Default::default()
    };
    let credentials = CredentialParts::from_env()
        .or(defaults)
        .credentials()
        .map_err(|_| {
            "set LIVEKIT_TOKEN, or LIVEKIT_API_KEY, LIVEKIT_API_SECRET and LIVEKIT_ROOM"
        })?;
    Ok(Options::with_credentials(urls, credentials))
}

//! The doctor (`--dry-run` warnings) against real GStreamer pipelines: one test per check,
//! clean pipelines that must stay quiet, and the built binary. No network; every wait is
//! bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use gstreamer_publisher::pipeline::{discover, Discovery};

/// What discover may spend prerolling.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest any single test step may take before the test fails.
const WAIT: Duration = Duration::from_secs(40);

const CLEAN: &str = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency key-int-max=60";

/// Runs discover on its own thread and fails the test if it takes longer than `WAIT`.
fn doctor(description: &str) -> Discovery {
    let (tx, rx) = mpsc::channel();
    let desc = description.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(discover(&desc, DISCOVER_TIMEOUT));
    });
    let discovery = match rx.recv_timeout(WAIT) {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => panic!("discover({description:?}) failed: {e}"),
        Err(_) => panic!("discover({description:?}) did not finish within {WAIT:?}"),
    };
    eprintln!("{description}");
    for w in &discovery.warnings {
        eprintln!("  warning: {w}");
        assert!(
            !w.contains('\n') && !w.contains('\r'),
            "not one line: {w:?}"
        );
        assert_eq!(w.trim(), w, "untrimmed: {w:?}");
    }
    let mut unique = discovery.warnings.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        discovery.warnings.len(),
        "duplicates: {:?}",
        discovery.warnings
    );
    assert!(!discovery.outputs.is_empty());
    discovery
}

/// The one warning that contains every needle (fails when none or several do).
fn warning<'a>(d: &'a Discovery, needles: &[&str]) -> &'a str {
    let hits: Vec<&String> = d
        .warnings
        .iter()
        .filter(|w| needles.iter().all(|n| w.contains(n)))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "want one warning with {needles:?}: {:?}",
        d.warnings
    );
    hits[0]
}

fn no_warning_with(d: &Discovery, needle: &str) {
    assert!(
        d.warnings.iter().all(|w| !w.contains(needle)),
        "unexpected warning with {needle:?}: {:?}",
        d.warnings
    );
}

fn temp_file(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path()
        .join(name)
        .to_str()
        .expect("utf-8 temp path")
        .to_string()
}

// ---------------------------------------------------------------- clean pipelines

#[test]
fn clean_live_pipeline_has_no_warnings() {
    let d = doctor(CLEAN);
    assert_eq!(d.outputs.len(), 1);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn clean_file_pipeline_has_no_warnings() {
    // A file is paced by the clock on purpose (no is-live to set), demuxed (framed), VP8 at
    // 30 fps keeps vp8enc's default of a keyframe every 128 frames (4.3 s).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_file(&dir, "clip.webm");
    fixture(&format!(
        "videotestsrc num-buffers=30 ! video/x-raw,width=160,height=120,framerate=30/1 ! vp8enc deadline=1 ! webmmux ! filesink location={path}"
    ));
    let d = doctor(&format!("filesrc location={path} ! matroskademux name=d"));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

// ---------------------------------------------------------------- 1. B-frames

#[test]
fn b_frames_set_on_the_encoder() {
    let d = doctor(&format!("{CLEAN} bframes=2 name=enc"));
    assert_eq!(
        d.warnings,
        vec![
            "enc sends B-frames (bframes=2); browsers stutter or drop frames: set bframes=0"
                .to_string()
        ]
    );
}

#[test]
fn b_frames_seen_while_prerolling() {
    // No encoder to read properties from: an MP4 with B-frames. The first buffer's DTS is
    // before its PTS.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_file(&dir, "b.mp4");
    fixture(&format!(
        "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! x264enc bframes=2 speed-preset=ultrafast ! h264parse ! mp4mux ! filesink location={path}"
    ));
    let d = doctor(&format!(
        "filesrc location={path} ! qtdemux ! h264parse name=p"
    ));
    let w = warning(&d, &["p sends frames out of display order"]);
    assert!(w.contains("B-frames") && w.contains("bframes=0"), "{w}");
}

// ---------------------------------------------------------------- 2. formats and profiles

#[test]
fn vp9_fed_4_4_4() {
    let d = doctor("videotestsrc num-buffers=5 ! video/x-raw,width=320,height=240,format=Y444 ! vp9enc deadline=1 name=enc");
    let w = warning(&d, &["enc is fed Y444 (4:4:4)"]);
    assert!(
        w.ends_with("add `videoconvert ! video/x-raw,format=I420` before enc"),
        "{w}"
    );
}

#[test]
fn av1_fed_4_4_4() {
    let d = doctor(
        "videotestsrc num-buffers=5 ! video/x-raw,width=160,height=120,format=Y444 ! av1enc usage-profile=realtime cpu-used=10 name=enc",
    );
    let w = warning(&d, &["enc is fed Y444 (4:4:4)", "AV1"]);
    assert!(w.contains("video/x-raw,format=I420` before enc"), "{w}");
    // One warning per element and check: the High profile it makes is not reported again.
    assert_eq!(
        d.warnings.iter().filter(|w| w.contains("enc")).count(),
        1,
        "{:?}",
        d.warnings
    );
}

#[test]
fn h264_fed_10_bit_in_a_live_pipeline() {
    // Live: nothing prerolls and dry-run alone would say nothing; at run time x264enc makes
    // High 10, which the publishing chain refuses.
    let d = doctor(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1,format=I420_10LE ! x264enc tune=zerolatency key-int-max=60 name=enc",
    );
    assert_eq!(
        d.warnings,
        vec!["enc is fed I420_10LE (10-bit 4:2:0); browsers decode only 8-bit 4:2:0 H.264: add `videoconvert ! video/x-raw,format=I420` before enc".to_string()]
    );
}

#[test]
fn av1_high_profile_from_a_file() {
    // No encoder in the pipeline: the profile comes from the parsed output caps.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_file(&dir, "a444.mkv");
    fixture(&format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=Y444,width=64,height=64 ! av1enc usage-profile=realtime cpu-used=10 ! av1parse ! matroskamux ! filesink location={path}"
    ));
    let d = doctor(&format!("filesrc location={path} ! matroskademux name=d"));
    let w = warning(&d, &["d.video_0 carries AV1 profile high"]);
    assert!(w.contains("re-encode"), "{w}");
}

// ---------------------------------------------------------------- 3. live sources

#[test]
fn non_live_test_source() {
    let d = doctor("videotestsrc name=src num-buffers=30 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency key-int-max=60");
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    let w = warning(&d, &["src is not live (is-live=false)"]);
    assert!(
        w.contains("clock-synced sinks") && w.contains("; set is-live=true"),
        "{w}"
    );
}

#[test]
fn mixed_live_and_non_live_sources() {
    let d = doctor(&format!("{CLEAN} videotestsrc is-live=true name=cam ! video/x-raw,width=160,height=120,framerate=30/1 ! vp8enc deadline=1 audiotestsrc name=mic ! opusenc"));
    let w = warning(&d, &["mic is not live but", "is:"]);
    assert!(w.ends_with("set is-live=true on mic"), "{w}");
    // Said once, not also as the plain non-live warning.
    no_warning_with(&d, "(is-live=false)");
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
}

// ---------------------------------------------------------------- 4. GOP length

#[test]
fn gop_longer_than_10_s() {
    let d = doctor("videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency key-int-max=500 name=enc");
    assert_eq!(
        d.warnings,
        vec!["enc makes a keyframe every 16.7 s (key-int-max=500 at 30 fps); this project sends keyframes on request, but recordings and late joiners on other SFUs wait for one: set key-int-max=60".to_string()]
    );
}

#[test]
fn default_gop_too_long_at_a_low_framerate() {
    // vp8enc's default keyframe-max-dist=128 is 25.6 s at 5 fps.
    let d = doctor("videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=5/1 ! vp8enc deadline=1 name=enc");
    let w = warning(
        &d,
        &[
            "enc makes a keyframe every 25.6 s",
            "keyframe-max-dist=128, the default, at 5 fps",
        ],
    );
    assert!(w.ends_with("set keyframe-max-dist=10"), "{w}");
    // Keyframes turned off altogether.
    let d = doctor("videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! vp8enc deadline=1 keyframe-mode=disabled name=enc");
    let w = warning(
        &d,
        &["enc makes no keyframe after the first (keyframe-mode=disabled)"],
    );
    assert!(
        w.ends_with("set keyframe-mode=auto keyframe-max-dist=60"),
        "{w}"
    );
}

#[test]
fn x264_automatic_gop_is_10_s_at_any_framerate() {
    // The fact the doctor relies on to stay quiet about `key-int-max=0`: x264enc then places
    // a keyframe every 10 s (not x264's documented 250 frames), here at 5 fps.
    gst::init().expect("gstreamer init");
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=120 ! video/x-raw,format=I420,width=64,height=64,framerate=5/1 ! x264enc tune=zerolatency speed-preset=ultrafast ! fakesink name=sink",
    )
    .expect("parses");
    let bin = pipeline
        .downcast_ref::<gst::Bin>()
        .expect("a pipeline is a bin");
    let pad = bin
        .by_name("sink")
        .and_then(|s| s.static_pad("sink"))
        .expect("sink pad");
    let keyframes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = keyframes.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer() {
            if !b.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                seen.lock().unwrap().push(b.pts().map(|t| t.mseconds()));
            }
        }
        gst::PadProbeReturn::Ok
    });
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("plays");
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(WAIT.as_secs()),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).expect("stops");
    assert!(
        matches!(
            msg.as_ref().map(|m| m.view()),
            Some(gst::MessageView::Eos(_))
        ),
        "{msg:?}"
    );
    let keyframes = keyframes.lock().unwrap().clone();
    let first = keyframes
        .first()
        .copied()
        .flatten()
        .expect("a first keyframe");
    let gaps: Vec<u64> = keyframes.iter().flatten().map(|t| t - first).collect();
    assert_eq!(
        gaps,
        vec![0, 10_000, 20_000],
        "keyframes (ms from the first): {gaps:?}"
    );
    // And at 5 fps the doctor says nothing about it.
    let d = doctor("videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=5/1 ! x264enc tune=zerolatency");
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

// ---------------------------------------------------------------- 5. parsers

#[test]
fn h264_read_raw_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_file(&dir, "clip.h264");
    fixture(&format!(
        "videotestsrc num-buffers=10 ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! x264enc speed-preset=ultrafast ! video/x-h264,stream-format=byte-stream ! filesink location={path}"
    ));
    let d = doctor(&format!(
        "filesrc location={path} name=file ! capsfilter caps=video/x-h264 name=cf"
    ));
    let w = warning(
        &d,
        &["cf.src carries H.264 straight from file with no parser or demuxer"],
    );
    assert!(w.ends_with("add h264parse after cf"), "{w}");
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    // With the parser the user asked for, nothing to say.
    let d = doctor(&format!(
        "filesrc location={path} ! capsfilter caps=video/x-h264 ! h264parse"
    ));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn vp8_read_raw_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_file(&dir, "clip.vp8");
    std::fs::write(&path, vec![0x55u8; 16 * 1024]).expect("write fixture");
    let d = doctor(&format!(
        "filesrc location={path} name=file ! capsfilter caps=video/x-vp8 name=cf"
    ));
    let w = warning(
        &d,
        &["cf.src carries VP8 straight from file with no parser or demuxer"],
    );
    assert!(w.contains("matroskademux") && w.contains("ivfparse"), "{w}");
    // Both are installed here: no install hint.
    assert!(!w.contains("apt install"), "{w}");
}

// ---------------------------------------------------------------- the binary

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_binary(args: &[&str], env: &[(&str, &Path)], timeout: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gstreamer-publisher"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the binary");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    eprintln!(
        "{args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

fn warning_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect()
}

#[test]
fn dry_run_prints_outputs_then_warnings() {
    let run = run_binary(
        &[
            "--dry-run",
            "--",
            "videotestsrc",
            "name=src",
            "num-buffers=30",
            "!",
            "x264enc",
            "bframes=2",
            "key-int-max=60",
            "name=enc",
        ],
        &[],
        WAIT,
    );
    assert_eq!(run.code, Some(0));
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].starts_with("enc.src") && lines[0].contains("h264"),
        "{}",
        lines[0]
    );
    let warnings = warning_lines(&run.stderr);
    assert!(warnings.contains(&"warning: enc sends B-frames (bframes=2); browsers stutter or drop frames: set bframes=0"), "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("warning: src is not live")),
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");

    // The clean pipeline: the output, and no warning.
    let mut args = vec!["--dry-run", "--"];
    args.extend(CLEAN.split_whitespace());
    let run = run_binary(&args, &[], WAIT);
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.starts_with("x264enc"), "{}", run.stdout);
    assert!(warning_lines(&run.stderr).is_empty(), "{}", run.stderr);
}

/// A plugin directory with every system plugin but the `left_out` files, and a registry of
/// its own, as environment variables for the binary.
fn plugins_without(dir: &tempfile::TempDir, left_out: &[&str]) -> Vec<(&'static str, PathBuf)> {
    gst::init().expect("gstreamer init");
    let system = gst::Registry::get()
        .find_plugin("coreelements")
        .and_then(|p| p.filename())
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .expect("the system plugin directory");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("plugin dir");
    for entry in std::fs::read_dir(&system)
        .expect("read the plugin dir")
        .flatten()
    {
        let name = entry.file_name();
        if left_out.iter().any(|l| name.to_str() == Some(l)) {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), plugins.join(&name)).expect("symlink a plugin");
    }
    vec![
        ("GST_PLUGIN_SYSTEM_PATH_1_0", plugins),
        ("GST_PLUGIN_PATH_1_0", dir.path().join("none")),
        ("GST_REGISTRY_1_0", dir.path().join("registry.bin")),
    ]
}

#[test]
fn missing_parsers_name_the_debian_package() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = plugins_without(
        &dir,
        &[
            "libgstvideoparsersbad.so",
            "libgstmatroska.so",
            "libgstivfparse.so",
        ],
    );
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let raw = temp_file(&dir, "clip.vp8");
    std::fs::write(&raw, vec![0x55u8; 16 * 1024]).expect("write fixture");

    // The doctor's advice names the packages of the elements it suggests and that are missing.
    let pipeline = format!("filesrc location={raw} ! capsfilter caps=video/x-vp8 name=cf");
    let run = run_binary(
        &["--dry-run", "--", &pipeline],
        &env,
        Duration::from_secs(90),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.starts_with("cf.src"), "{}", run.stdout);
    let warnings = warning_lines(&run.stderr);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].ends_with("(matroskademux is not installed: apt install gstreamer1.0-plugins-good; ivfparse is not installed: apt install gstreamer1.0-plugins-bad)"),
        "{}",
        warnings[0]
    );

    // Without h264parse an H.264 output cannot be published at all: an error (exit 3) that
    // says which package to install.
    let run = run_binary(
        &["--dry-run", "--", "videotestsrc num-buffers=5 ! x264enc"],
        &env,
        Duration::from_secs(90),
    );
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        run.stderr.contains("h264parse") && run.stderr.contains("gstreamer1.0-plugins-bad"),
        "{}",
        run.stderr
    );
}

#[test]
fn encoders_that_feed_no_output_are_left_alone() {
    // A recording branch may use B-frames and long GOPs: only published outputs matter.
    let d = doctor(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! tee name=t t. ! queue ! x264enc tune=zerolatency key-int-max=60 name=pub t. ! queue ! x264enc bframes=2 key-int-max=1000 name=rec ! matroskamux ! fakesink",
    );
    assert_eq!(d.outputs.len(), 1, "{:?}", d.outputs);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

/// Runs a fixture pipeline (one that writes a file) to EOS.
fn fixture(description: &str) {
    harness::run_to_eos(description, WAIT);
}

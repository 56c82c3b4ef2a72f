//! The library's own front door: `examples/publish_frames.rs` (a program that draws and
//! encodes its own frames and writes them to a `LocalTrack`) publishes into a real
//! livekit-server, and the independent subscriber decodes what it sent.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::*;

/// `target/<profile>/examples/publish_frames`: `cargo test` builds the examples, but not
/// when only some test targets are asked for (`--test library`); then it is built here.
fn example_bin() -> PathBuf {
    let profile_dir = publisher_bin()
        .parent()
        .expect("target/<profile>")
        .to_path_buf();
    let bin = profile_dir.join("examples/publish_frames");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(manifest_dir())
            .args(["build", "--example", "publish_frames"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build --example");
        assert!(
            status.success(),
            "cargo build --example publish_frames failed"
        );
    }
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

#[test]
fn a_program_publishing_its_own_frames_through_the_library_is_decoded() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, dir, _) = fresh_room("library");
    let log = dir.path().join("example.log");
    let sub = Subscriber::spawn(
        &server,
        &room,
        &[
            "--duration",
            "25",
            "--wait-tracks",
            "1",
            "--exit-after-frames",
            "150",
        ],
    );
    let mut cmd = Command::new(example_bin());
    cmd.arg("12").env("LIVEKIT_URL", server.url()).env(
        "LIVEKIT_TOKEN",
        token(&server, &room, "library-example", false),
    );
    let mut p = ChildGuard::spawn_logged("publish_frames", cmd, &log);
    let report = sub.wait();
    let status = p.wait_or_kill(Duration::from_secs(20));
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "the example failed ({status}):\n{out}");
    assert!(out.contains("joined the room"), "{out}");
    assert!(out.contains("published as TR_"), "{out}");
    let track = report
        .track_named("generated")
        .unwrap_or_else(|| panic!("no track named generated:\n{}", report.pretty()));
    assert!(
        track.mime.eq_ignore_ascii_case("video/H264"),
        "{}",
        report.pretty()
    );
    assert_eq!(
        (track.width, track.height),
        (640, 360),
        "{}",
        report.pretty()
    );
    assert!(
        track.frames >= 150,
        "{} frames decoded\n{}",
        track.frames,
        report.pretty()
    );
    // The first frame came at once: the track went live on a keyframe the example made
    // when the room asked for it (its own GOP is 4 s).
    let wait = track
        .first_frame_t_wall
        .zip(track.subscribed_t_wall)
        .map(|(f, s)| f - s);
    assert!(
        wait.is_some_and(|w| w < 2.0),
        "first frame {wait:?} s after subscribing\n{}",
        report.pretty()
    );
    assert_no_panic(&log);
}

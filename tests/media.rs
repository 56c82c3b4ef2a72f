//! Media behaviour end to end: keyframes for late joiners, a resolution change mid-stream, and
//! the live statistics checked against what was configured. (Loss recovery with NACK/RTX, under
//! real loss, is in network.rs.)

use std::process::Command;
use std::time::Duration;

use harness::*;
use serde_json::Value;

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
fn late_joiner_with_a_10s_gop_sees_video_within_1s_of_subscribing() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("late");
    // A keyframe every 300 frames (10 s at 30 fps): without keyframes on request a viewer
    // joining at 4 s would wait about 6 s.
    let mut p = spawn_publisher(
        &server,
        Auth::Mint { room: &room, identity: "pub" },
        "videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=30/1 ! x264enc tune=zerolatency key-int-max=300",
        &log,
        &[],
        &[],
    );
    std::thread::sleep(Duration::from_secs(4));
    let mut sub = Subscriber::spawn(
        &server,
        &room,
        &[
            "--duration",
            "20",
            "--wait-tracks",
            "1",
            "--exit-after-frames",
            "30",
        ],
    );
    let first = sub
        .wait_event(Duration::from_secs(15), |e| {
            e["type"] == "first_frame" && e["kind"] == "video"
        })
        .unwrap_or_else(|| panic!("late joiner decoded nothing\n{}", tail_file(&log, 30)));
    let report = sub.wait();
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
    let t = report.video_tracks()[0].clone();
    let waited = first["t_wall"].as_f64().unwrap() - t.subscribed_t_wall.expect("subscribed");
    assert!(
        waited < 1.0,
        "late joiner waited {waited:.2} s for its first frame\n{}",
        report.pretty()
    );
}

#[test]
fn resolution_change_mid_stream_keeps_decoding_at_the_new_size() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("resize");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "40"]);
    sub.wait_event_type("connected", Duration::from_secs(15))
        .expect("subscriber connected");
    // 4 s at 320x240, then 640x360 until the end: concat switches sources, and the encoder
    // restarts at the new size.
    let pipeline = "concat name=c ! videoconvert ! vp8enc deadline=1 name=v \
                    videotestsrc num-buffers=120 ! video/x-raw,width=320,height=240,framerate=30/1 ! c. \
                    videotestsrc num-buffers=240 pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! c.";
    let mut p = spawn_publisher(
        &server,
        Auth::Mint {
            room: &room,
            identity: "pub",
        },
        pipeline,
        &log,
        &[],
        &[],
    );
    // The server's view of the track, polled until the change has happened.
    let mut server_sizes = Vec::new();
    while p.is_running() {
        if let Some(size) = server_track_size(&server, &room, "pub") {
            if server_sizes.last() != Some(&size) {
                server_sizes.push(size);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = p
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no EOS\n{}", tail_file(&log, 30)));
    assert_eq!(status.code(), Some(0), "{}", tail_file(&log, 30));
    sub.finish();
    let report = sub.wait();
    let t = &report.video_tracks()[0];
    assert_eq!(t.sizes.first(), Some(&(320, 240)), "{}", report.pretty());
    assert_eq!(t.sizes.last(), Some(&(640, 360)), "{}", report.pretty());
    assert!(
        t.frames >= 200,
        "kept decoding through the change: {}",
        report.pretty()
    );
    assert!(
        server_sizes.contains(&(640, 360)),
        "the server was told the new size (UpdateLocalVideoTrack): {server_sizes:?}"
    );
    assert_eq!(server_sizes.first(), Some(&(320, 240)), "{server_sizes:?}");
}

/// Width and height of `identity`'s first video track as the server has it (RoomService).
fn server_track_size(server: &LiveKitServer, room: &str, identity: &str) -> Option<(u32, u32)> {
    let mut cmd = Command::new(subscriber_python());
    cmd.arg(manifest_dir().join("tests/subscriber/room_admin.py"))
        .args([
            "tracks",
            "--url",
            &server.http_url(),
            "--api-key",
            server.api_key(),
            "--api-secret",
            server.api_secret(),
            "--room",
            room,
            "--identity",
            identity,
        ]);
    let out = run_with_timeout("room_admin", cmd, Duration::from_secs(10));
    let v: Value = serde_json::from_str(out.stdout.trim()).ok()?;
    let t = v["tracks"]
        .as_array()?
        .iter()
        .find(|t| t["mime"].as_str().is_some_and(|m| m.starts_with("video")))?;
    Some((t["width"].as_u64()? as u32, t["height"].as_u64()? as u32))
}

#[test]
fn stats_json_reports_the_configured_bitrate_and_frame_rate() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, dir, log) = fresh_room("stats");
    let stats = dir.path().join("stats.jsonl");
    let sub = Subscriber::spawn(&server, &room, &["--duration", "14"]);
    let mut p = spawn_publisher(
        &server,
        Auth::Mint { room: &room, identity: "pub" },
        "videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=30/1 ! x264enc tune=zerolatency bitrate=800 key-int-max=60 \
         audiotestsrc is-live=true ! opusenc bitrate=64000",
        &log,
        &["--stats-json", stats.to_str().unwrap(), "--stats-interval", "1"],
        &[],
    );
    let report = sub.wait();
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
    assert!(
        report.video_tracks().iter().any(|t| t.frames > 100),
        "{}",
        report.pretty()
    );
    let lines = stats_lines(&stats);
    assert!(
        lines.len() >= 8,
        "one object per second: {} lines",
        lines.len()
    );
    // Skip the first seconds (joining, encoder ramp-up) and the final partial interval.
    let steady: Vec<&Value> = lines
        .iter()
        .filter(|l| l["t"].as_f64().unwrap_or(0.0) > 4.0)
        .take(8)
        .collect();
    let video = |l: &Value| {
        l["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "video")
            .cloned()
            .unwrap()
    };
    let audio = |l: &Value| {
        l["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "audio")
            .cloned()
            .unwrap()
    };
    let bitrate = median(
        steady
            .iter()
            .map(|l| video(l)["bitrate_bps"].as_f64().unwrap())
            .collect(),
    );
    let fps = median(
        steady
            .iter()
            .map(|l| video(l)["fps"].as_f64().unwrap())
            .collect(),
    );
    // What congestion control did meanwhile: an estimate that fell lowers the target.
    let control: Vec<String> = steady
        .iter()
        .map(|l| {
            format!(
                "t={} estimate={} target={}",
                l["t"],
                l["estimate_bps"],
                video(l)["target_bps"]
            )
        })
        .collect();
    assert!(
        (bitrate - 800_000.0).abs() / 800_000.0 < 0.30,
        "video bitrate {bitrate} for a target of 800 kbit/s\n{}",
        control.join("\n")
    );
    assert!((fps - 30.0).abs() / 30.0 < 0.10, "fps {fps}");
    let abitrate = median(
        steady
            .iter()
            .map(|l| audio(l)["bitrate_bps"].as_f64().unwrap())
            .collect(),
    );
    assert!(
        (abitrate - 64_000.0).abs() / 64_000.0 < 0.30,
        "audio bitrate {abitrate}"
    );
    let last = lines.last().unwrap();
    assert!(
        video(last)["keyframes_sent"].as_u64().unwrap() >= 2,
        "{last}"
    );
    assert!(
        video(last)["rtt_ms"].as_f64().is_some(),
        "RTT from receiver reports: {last}"
    );
    // The latency figure counts each frame once its last packet is on the socket: every
    // frame of the interval, audio and video, and a median well inside a frame interval.
    for l in &steady {
        let samples = l["latency_us"]["samples"].as_f64().unwrap_or(0.0);
        let frames = (video(l)["fps"].as_f64().unwrap() + audio(l)["fps"].as_f64().unwrap())
            * l["interval_s"].as_f64().unwrap();
        assert!(
            samples >= 0.9 * frames && samples <= 1.1 * frames,
            "{samples} latency samples for {frames:.0} frames: {l}"
        );
        let p50 = l["latency_us"]["p50"].as_u64().unwrap_or(u64::MAX);
        assert!(p50 < 33_000, "median frame → socket {p50} µs: {l}");
        // Written into the connection before its last packet is on the socket.
        let written = l["written_us"]["p50"].as_u64().unwrap_or(u64::MAX);
        assert!(
            written <= p50,
            "written after {written} µs, out after {p50} µs: {l}"
        );
    }
}
